/* SPDX-License-Identifier: MIT */
/* The address-space mirror and its shared fault handler. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mm.h"

#define MM_NCHUNKS	(1u << (47 - MM_CHUNK_SHIFT))
#define MM_EAGER_MAX	(16ul << 30)	/* larger mappings are mirrored on first use */
#define MM_MAX_SLOTS	MM_FLUSH_SLOT	/* KVM's 32764, less protect.c's */
#define MM_SLOTS_BYTES	(MM_MAX_SLOTS * sizeof(struct mm_slot))

/* A chunk's bytes: the last one stops at the end of user space. */
static uint64_t chunk_size(uint64_t c)
{
	uint64_t base = c << MM_CHUNK_SHIFT;

	return base + MM_CHUNK > MM_USER_TOP ? MM_USER_TOP - base : MM_CHUNK;
}

/* A deleted slot first: KVM dropped every translation to its addresses with it. */
int mm_chunk_slot(struct mm *mm, uint64_t c)
{
	uint64_t base = c << MM_CHUNK_SHIFT;
	unsigned slot;
	int r;

	if (mm->chunk[c])
		return mm_slot_of(mm, c);
	if (mm->free)
		slot = mm->free - 1;
	else if (mm->nslots == MM_MAX_SLOTS)
		return -ENOSPC;
	else
		slot = mm->nslots;
	r = hv_set_memslot(mm->hv, slot, mm_slot_gpa(slot), chunk_size(c), (void *)(uintptr_t)base, 0);
	if (r < 0)
		return r;
	if (slot == mm->nslots)
		mm->nslots++;
	else
		mm->free = mm->slots[slot].next;
	mm->slots[slot].hva = base;
	mm->live++;
	mm->chunk[c] = slot + 1;
	return slot;
}

int mm_chunk_flags(struct mm *mm, uint64_t c, uint32_t flags)
{
	unsigned slot = mm_slot_of(mm, c);

	return hv_set_memslot(mm->hv, slot, mm_slot_gpa(slot), chunk_size(c),
			      (void *)(uintptr_t)(c << MM_CHUNK_SHIFT), flags);
}

uint64_t mm_gpa(struct mm *mm, const void *hva)
{
	uint64_t a = (uintptr_t)hva, c = a >> MM_CHUNK_SHIFT;

	return mm->chunk[c] ? mm_slot_gpa(mm_slot_of(mm, c)) + (a & (MM_CHUNK - 1)) : 0;
}

/* A page-table page: it needs guest-physical backing, not a guest-virtual mapping. */
static uint64_t *pt_page(struct mm *mm)
{
	uint64_t *p = mm_arena_alloc(MM_PAGE_SIZE);

	if (p && mm_chunk_slot(mm, (uintptr_t)p >> MM_CHUNK_SHIFT) < 0) {
		mm_arena_free(p, MM_PAGE_SIZE);
		return NULL;
	}
	return p;
}

/*
 * Links the chunk into the guest tables: one 1 GiB entry when the whole chunk is
 * mapped and the CPU allows it, else an empty page directory whose 2 MiB entries
 * turn present as host mappings are seen (mm_pde_present). No present entry changes.
 */
static int chunk_link(struct mm *mm, uint64_t c, bool whole)
{
	unsigned i4 = c >> 9, i3 = c & 511;
	uint64_t flags = mm_pte_flags(mm);
	struct mm_slot *s;
	int slot;

	if (mm->chunk[c] & MM_CHUNK_LINKED)
		return 0;
	slot = mm_chunk_slot(mm, c);
	if (slot < 0)
		return slot;
	if (!mm->pdpt[i4]) {
		uint64_t *pdpt = pt_page(mm);

		if (!pdpt)
			return -ENOMEM;
		mm->pdpt[i4] = pdpt;
		__atomic_store_n(&mm->pml4[i4], mm_gpa(mm, pdpt) | flags, __ATOMIC_RELEASE);
	}
	s = &mm->slots[slot];
	s->huge = whole && mm->hv->huge_1g;
	if (s->huge) {
		__atomic_store_n(&mm->pdpt[i4][i3], mm_slot_gpa(slot) | flags | MM_PTE_PS,
				 __ATOMIC_RELEASE);
	} else {
		if (!s->pd && !(s->pd = pt_page(mm)))
			return -ENOMEM;
		__atomic_store_n(&mm->pdpt[i4][i3], mm_gpa(mm, s->pd) | flags, __ATOMIC_RELEASE);
	}
	mm->chunk[c] |= MM_CHUNK_LINKED;
	return 0;
}

/* The page directory of a linked chunk, NULL when a 1 GiB entry maps it. */
static uint64_t *chunk_pd(struct mm *mm, uint64_t c)
{
	struct mm_slot *s = &mm->slots[mm_slot_of(mm, c)];

	return s->huge ? NULL : s->pd;
}

/*
 * The entry goes first, so that the walks KVM redoes once the slot's
 * translations are gone find nothing there. The page directory, kept for the
 * slot's next chunk, is cleared only then, and a chunk whose slot KVM would not
 * delete is linked again, with the same entries, at its next fault.
 */
void mm_chunk_drop(struct mm *mm, uint64_t c)
{
	unsigned slot = mm_slot_of(mm, c);
	struct mm_slot *s = &mm->slots[slot];

	if (mm->chunk[c] & MM_CHUNK_LINKED)
		__atomic_store_n(&mm->pdpt[c >> 9][c & 511], 0, __ATOMIC_RELEASE);
	mm->chunk[c] = slot + 1;
	if (hv_set_memslot(mm->hv, slot, mm_slot_gpa(slot), 0, (void *)(uintptr_t)s->hva, 0) < 0)
		return;
	if (s->pd)
		memset(s->pd, 0, MM_PAGE_SIZE);
	mm_prot_drop(s);
	s->hva = MM_SLOT_FREE;
	s->next = mm->free;
	mm->free = slot + 1;
	mm->live--;
	mm->chunk[c] = 0;
}

__attribute__((no_sanitize("address"))) bool mm_pde_present(const struct mm *mm, uint64_t gva)
{
	uint64_t c = gva >> MM_CHUNK_SHIFT;
	const struct mm_slot *s;

	if (gva >= MM_USER_TOP || !(mm->chunk[c] & MM_CHUNK_LINKED))
		return false;
	s = &mm->slots[mm_slot_of(mm, c)];
	return s->huge || (__atomic_load_n(&s->pd[(gva >> 21) & 511], __ATOMIC_ACQUIRE) & MM_PTE_P);
}

void mm_walk(const struct mm *mm, uint64_t gva, struct mm_walk *w)
{
	uint64_t c = gva >> MM_CHUNK_SHIFT;
	const struct mm_slot *s;

	*w = (struct mm_walk){ .slot = -1 };
	if (gva >= MM_USER_TOP || !mm->chunk || (int)mm_slot_of(mm, c) < 0)
		return;
	w->slot = mm_slot_of(mm, c);
	w->linked = mm->chunk[c] & MM_CHUNK_LINKED;
	s = &mm->slots[w->slot];
	w->huge = w->linked && s->huge;
	if (!w->linked || w->huge || !s->pd)
		return;
	w->pde = __atomic_load_n(&s->pd[(gva >> 21) & 511], __ATOMIC_ACQUIRE);
	if ((w->pde & MM_PTE_P) && !(w->pde & MM_PTE_PS) && s->pt && s->pt[(gva >> 21) & 511])
		w->pte = __atomic_load_n(&s->pt[(gva >> 21) & 511][(gva >> 12) & 511],
					 __ATOMIC_ACQUIRE);
}

int mm_mirror_range(struct mm *mm, const void *addr, size_t len)
{
	uint64_t a = (uintptr_t)addr & ~((1ull << 21) - 1), end = (uintptr_t)addr + len;
	int r = 0;

	if (end > MM_USER_TOP)
		end = MM_USER_TOP;
	pthread_mutex_lock(&mm->lock);
	if (mm->live >= mm->collect_at && !mm->protecting)
		mm_collect(mm);	/* a failure leaves more slots than needed, no more */
	for (uint64_t c = a >> MM_CHUNK_SHIFT; !r && (c << MM_CHUNK_SHIFT) < end; c++) {
		uint64_t lo = c << MM_CHUNK_SHIFT, hi = lo + MM_CHUNK;
		bool whole = (uintptr_t)addr <= lo && end >= (hi < MM_USER_TOP ? hi : MM_USER_TOP);
		uint64_t *pd;

		r = chunk_link(mm, c, whole);
		if (r < 0 || !(pd = chunk_pd(mm, c)))
			continue;
		for (uint64_t v = lo > a ? lo : a; v < end && v < hi; v += 1ull << 21) {
			unsigned i = (v >> 21) & 511;
			uint64_t gpa = mm_slot_gpa(mm_slot_of(mm, c)) + (v - lo);

			if (!(pd[i] & MM_PTE_P))
				__atomic_store_n(&pd[i], gpa | mm_pte_flags(mm) | MM_PTE_PS, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&mm->lock);
	return r;
}

/*
 * Mirrors what is mapped now. Inaccessible (PROT_NONE) and very large mappings
 * (a sanitizer's shadow, a runtime's heap reservation) are left to the fault
 * handler: they would cost a memslot per GiB up front for memory mostly unused.
 */
int mm_mirror_process(struct mm *mm)
{
	FILE *f = fopen("/proc/self/maps", "rce");	/* c: no cancellation points */
	unsigned long lo, hi;
	char line[512], perms[5];
	int r = 0;

	if (!f)
		return -errno;
	while (!r && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && lo < MM_USER_TOP &&
		    strncmp(perms, "---", 3) && hi - lo <= MM_EAGER_MAX)
			r = mm_mirror_range(mm, (void *)lo, hi - lo);
	}
	fclose(f);
	return r;
}

int mm_init(struct mm *mm, struct hv *hv)
{
	pthread_mutexattr_t a;

	memset(mm, 0, sizeof(*mm));
	mm->hv = hv;
	mm->collect_at = MM_COLLECT_MIN;
	mm->flush_gen = 1;	/* above every vCPU's ran_gen before it first runs */
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&mm->lock, &a);
	pthread_mutexattr_destroy(&a);
	mm->chunk = calloc(MM_NCHUNKS, sizeof(*mm->chunk));
	mm->slots = mmap(NULL, MM_SLOTS_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mm->slots == MAP_FAILED)
		mm->slots = NULL;
	if (!mm->chunk || !mm->slots)
		return -ENOMEM;
	mm->pml4 = pt_page(mm);
	return mm->pml4 ? 0 : -ENOMEM;
}

void mm_destroy(struct mm *mm)
{
	mm_dirty_forget(mm);
	for (unsigned i = 0; i < mm->nslots; i++) {
		mm_prot_drop(&mm->slots[i]);
		mm_arena_free(mm->slots[i].pt, MM_PAGE_SIZE);
		mm_arena_free(mm->slots[i].pd, MM_PAGE_SIZE);
	}
	mm_arena_free(mm->flush_page, MM_PAGE_SIZE);
	for (unsigned i = 0; i < 256; i++)
		mm_arena_free(mm->pdpt[i], MM_PAGE_SIZE);
	mm_arena_free(mm->pml4, MM_PAGE_SIZE);
	if (mm->slots)
		munmap(mm->slots, MM_SLOTS_BYTES);
	free(mm->chunk);
	pthread_mutex_destroy(&mm->lock);
	memset(mm, 0, sizeof(*mm));
}

void *mm_alloc(struct mm *mm, size_t size)
{
	void *p = mm_arena_alloc(size);

	if (p && mm_mirror_range(mm, p, size) < 0) {
		mm_arena_free(p, size);
		return NULL;
	}
	return p;
}

void mm_free(void *p, size_t size)
{
	mm_arena_free(p, size);
}

/*
 * msync fails with ENOMEM exactly when part of the range is not mapped. The
 * system call itself: glibc's msync is a cancellation point, and the backing
 * thread that handles a fault shares its cancellation state with the guest.
 */
bool mm_host_mapped(uint64_t lo, uint64_t hi)
{
	return syscall(SYS_msync, lo, hi - lo, MS_ASYNC) == 0 || errno != ENOMEM;
}

int mm_fault(struct mm *mm, uint64_t gva, int access)
{
	uint64_t page = gva & ~(MM_PAGE_SIZE - 1);
	int r;

	if (gva >= MM_USER_TOP)
		return -EFAULT;
	pthread_mutex_lock(&mm->lock);
	if (!mm_host_mapped(page, page + MM_PAGE_SIZE))
		r = -EFAULT;
	else if ((r = mm_prot_allows(mm, gva, access)) >= 0)
		r = r ? -EAGAIN : -EACCES;
	else if (mm_pde_present(mm, gva))
		r = -EEXIST;
	else
		r = mm_mirror_range(mm, (void *)(uintptr_t)page, MM_PAGE_SIZE);
	pthread_mutex_unlock(&mm->lock);
	return r;
}
