/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page tracking with KVM's dirty log: exact for guest writes on every
 * backend, and without exits (KVM handles the write-protect faults itself).
 * A chunk's memslot logs while any tracked range lies in it. KVM hands out a
 * whole slot's log at once, so the bits a collect takes for pages outside its
 * range wait in the slot's own bitmap (logged) for the collect of theirs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "mm.h"

#define LOG_WORDS	(MM_CHUNK / MM_PAGE_SIZE / 64)

struct mm_dirty {
	uint64_t lo, hi;
	struct mm_dirty *next;
};

/*
 * Moves the bits of the chunk's pages in [lo, hi) from its log to out, whose
 * bit 0 is the page at base (out NULL: drops them). Lock held.
 */
static int take(struct mm *mm, uint64_t c, uint64_t lo, uint64_t hi, uint64_t *out, uint64_t base)
{
	unsigned slot = mm_slot_of(mm, c);
	uint64_t *log = mm->slots[slot].logged, clo = c << MM_CHUNK_SHIFT;
	uint64_t p = ((lo > clo ? lo : clo) - clo) / MM_PAGE_SIZE;
	uint64_t end = ((hi < clo + MM_CHUNK ? hi : clo + MM_CHUNK) - clo) / MM_PAGE_SIZE;
	int r = hv_get_dirty_log(mm->hv, slot, mm->dirty_scratch);

	if (r < 0)
		return -EAGAIN;
	for (unsigned i = 0; i < LOG_WORDS; i++)
		log[i] |= mm->dirty_scratch[i];
	for (; p < end; p++) {
		uint64_t *w = &log[p / 64], bit = 1ull << (p % 64), o;

		if (p % 64 == 0 && !*w && p + 64 <= end) {
			p += 63;
			continue;
		}
		if (!(*w & bit))
			continue;
		*w &= ~bit;
		if (out) {
			o = (clo + p * MM_PAGE_SIZE - base) / MM_PAGE_SIZE;
			out[o / 64] |= 1ull << (o % 64);
		}
	}
	return 0;
}

static void untrack(struct mm *mm, uint64_t c)
{
	struct mm_slot *s = &mm->slots[mm_slot_of(mm, c)];

	if (--s->tracked)
		return;
	mm_chunk_flags(mm, c, 0);	/* a failure leaves it logging, harmlessly */
	free(s->logged);
	s->logged = NULL;
}

/* Pages in [lo, hi) of a chunk that already logs were written before the start. */
static int track(struct mm *mm, uint64_t c, uint64_t lo, uint64_t hi)
{
	int slot = mm_chunk_slot(mm, c);
	struct mm_slot *s;

	if (slot < 0)
		return -EAGAIN;
	s = &mm->slots[slot];
	if (s->tracked) {
		int r = take(mm, c, lo, hi, NULL, 0);

		if (!r)
			s->tracked++;
		return r;
	}
	s->logged = calloc(LOG_WORDS, sizeof(uint64_t));
	if (s->logged && !mm_chunk_flags(mm, c, KVM_MEM_LOG_DIRTY_PAGES)) {
		s->tracked = 1;
		return 0;
	}
	free(s->logged);
	s->logged = NULL;
	return -EAGAIN;
}

/* The tracked range that holds [lo, hi), and only that one when exact. */
static struct mm_dirty **find(struct mm *mm, uint64_t lo, uint64_t hi, bool exact)
{
	struct mm_dirty **d;

	for (d = &mm->dirty; *d; d = &(*d)->next)
		if (exact ? (*d)->lo == lo && (*d)->hi == hi : (*d)->lo <= lo && hi <= (*d)->hi)
			return d;
	return NULL;
}

int mm_dirty_start(struct mm *mm, uint64_t lo, uint64_t hi)
{
	struct mm_dirty *d = malloc(sizeof(*d));
	uint64_t c, first = lo >> MM_CHUNK_SHIFT;
	int r = 0;

	if (!d)
		return -EAGAIN;
	pthread_mutex_lock(&mm->lock);
	if (!mm_host_mapped(lo, hi))
		r = -ENOMEM;
	for (struct mm_dirty *e = mm->dirty; !r && e; e = e->next)
		if (e->lo < hi && lo < e->hi)
			r = -EBUSY;
	if (!r && !mm->dirty_scratch &&
	    !(mm->dirty_scratch = malloc(LOG_WORDS * sizeof(uint64_t))))
		r = -EAGAIN;
	for (c = first; !r && c <= (hi - 1) >> MM_CHUNK_SHIFT; c++) {
		r = track(mm, c, lo, hi);
		if (r < 0)
			while (c-- > first)
				untrack(mm, c);
	}
	if (!r) {
		*d = (struct mm_dirty){ .lo = lo, .hi = hi, .next = mm->dirty };
		mm->dirty = d;
	}
	pthread_mutex_unlock(&mm->lock);
	if (r)
		free(d);
	return r;
}

int mm_dirty_collect(struct mm *mm, uint64_t lo, uint64_t hi, uint64_t *bitmap)
{
	uint64_t pages = (hi - lo) / MM_PAGE_SIZE;
	int r = 0;

	memset(bitmap, 0, (pages + 63) / 64 * sizeof(uint64_t));
	pthread_mutex_lock(&mm->lock);
	if (!find(mm, lo, hi, false))
		r = -EINVAL;
	for (uint64_t c = lo >> MM_CHUNK_SHIFT; !r && c <= (hi - 1) >> MM_CHUNK_SHIFT; c++)
		r = take(mm, c, lo, hi, bitmap, lo);
	pthread_mutex_unlock(&mm->lock);
	return r;
}

int mm_dirty_stop(struct mm *mm, uint64_t lo, uint64_t hi)
{
	struct mm_dirty **link, *d = NULL;

	pthread_mutex_lock(&mm->lock);
	link = find(mm, lo, hi, true);
	if (link) {
		d = *link;
		*link = d->next;
		for (uint64_t c = lo >> MM_CHUNK_SHIFT; c <= (hi - 1) >> MM_CHUNK_SHIFT; c++)
			untrack(mm, c);
	}
	pthread_mutex_unlock(&mm->lock);
	free(d);
	return d ? 0 : -EINVAL;
}

void mm_dirty_forget(struct mm *mm)
{
	while (mm->dirty) {
		struct mm_dirty *d = mm->dirty;

		mm->dirty = d->next;
		free(d);
	}
	for (unsigned i = 0; mm->slots && i < mm->nslots; i++) {
		free(mm->slots[i].logged);
		mm->slots[i].logged = NULL;
		mm->slots[i].tracked = 0;
	}
	free(mm->dirty_scratch);
	mm->dirty_scratch = NULL;
}
