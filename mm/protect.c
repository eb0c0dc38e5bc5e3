/* SPDX-License-Identifier: MIT */
/*
 * Guest-side page protections. A 2 MiB page that holds a protected page is
 * split into a 4 KiB page table whose entries carry MM_PTE_GUARDED and the
 * protection: PROT_NONE is not present (the address kept), no PROT_WRITE
 * clears RW, no PROT_EXEC sets NX. Host protections still apply on top: KVM
 * refuses what the host refuses. The tables and the per-slot index of them are
 * guest-visible (mm_alloc), so that a vthread can change and read entries
 * without an exit; a split, which rewrites a present entry, is made on a host
 * thread and followed by mm_flush_tlbs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "mm.h"

/* Not instrumented, here and below: a vthread's fault path reads the tables, and
 * ASan's shadow of them may not be mirrored yet. */
__attribute__((no_sanitize("address"))) static uint64_t *split_pt(const struct mm *mm, uint64_t a)
{
	uint64_t c = a >> MM_CHUNK_SHIFT;
	const struct mm_slot *s;

	if (!(mm->chunk[c] & MM_CHUNK_LINKED))
		return NULL;
	s = &mm->slots[mm_slot_of(mm, c)];
	if (s->huge || !s->pt)
		return NULL;
	return __atomic_load_n(&s->pt[(a >> 21) & 511], __ATOMIC_ACQUIRE);
}

__attribute__((no_sanitize("address"))) static bool pte_allows(uint64_t pte, int access)
{
	if (!(pte & MM_PTE_P))
		return false;
	if (access & PROT_WRITE)
		return pte & MM_PTE_RW;
	if (access & PROT_EXEC)
		return !(pte & MM_PTE_NX);
	return true;
}

__attribute__((no_sanitize("address"))) int mm_prot_allows(const struct mm *mm, uint64_t addr,
								int access)
{
	const uint64_t *pt = addr < MM_USER_TOP ? split_pt(mm, addr) : NULL;

	if (!pt)
		return -1;
	return pte_allows(__atomic_load_n(&pt[(addr >> 12) & 511], __ATOMIC_ACQUIRE), access);
}

/* A chunk mapped by one 1 GiB entry gets a page directory of 2 MiB entries. */
static int unhuge(struct mm *mm, uint64_t c, struct mm_slot *s)
{
	unsigned slot = s - mm->slots;
	uint64_t *pd = s->pd;

	if (!pd && !(pd = mm_alloc(mm, MM_PAGE_SIZE)))
		return -ENOMEM;
	s->pd = pd;
	for (unsigned i = 0; i < 512; i++)
		pd[i] = (mm_slot_gpa(slot) + i * MM_PAGE_2M) | mm_pte_flags(mm) | MM_PTE_PS;
	__atomic_store_n(&mm->pdpt[c >> 9][c & 511], mm_gpa(mm, pd) | mm_pte_flags(mm),
			 __ATOMIC_RELEASE);
	s->huge = false;
	return 0;
}

/* The 2 MiB page at a, mirrored, becomes a page table of the same mappings. */
static int split(struct mm *mm, uint64_t a)
{
	uint64_t c = a >> MM_CHUNK_SHIFT, *pt;
	unsigned i = (a >> 21) & 511;
	struct mm_slot *s;
	int r = mm_mirror_range(mm, (void *)(uintptr_t)a, MM_PAGE_2M);

	if (r < 0)
		return r;
	s = &mm->slots[mm_slot_of(mm, c)];
	if (s->huge && (r = unhuge(mm, c, s)) < 0)
		return r;
	if (!s->pt && !(s->pt = mm_alloc(mm, MM_PAGE_SIZE)))
		return -ENOMEM;
	if (s->pt[i])
		return 0;
	if (!(pt = mm_alloc(mm, MM_PAGE_SIZE)))
		return -ENOMEM;
	for (unsigned j = 0; j < 512; j++)
		pt[j] = ((s->pd[i] & MM_PTE_ADDR & ~(MM_PAGE_2M - 1)) + j * MM_PAGE_SIZE) |
			mm_pte_flags(mm) | MM_PTE_GUARDED;
	__atomic_store_n(&s->pt[i], pt, __ATOMIC_RELEASE);
	__atomic_store_n(&s->pd[i], mm_gpa(mm, pt) | mm_pte_flags(mm), __ATOMIC_RELEASE);
	return 0;
}

static uint64_t pte_for(const struct mm *mm, uint64_t old, int prot)
{
	uint64_t pte = (old & MM_PTE_ADDR) | MM_PTE_GUARDED;

	if (prot)
		pte |= mm_pte_flags(mm) & ~MM_PTE_RW;
	if (prot & PROT_WRITE)
		pte |= MM_PTE_RW;
	if (!(prot & PROT_EXEC))
		pte |= MM_PTE_NX;
	return pte;
}

static const int accesses[] = { PROT_READ, PROT_WRITE, PROT_EXEC };

__attribute__((no_sanitize("address"))) int mm_protect(struct mm *mm, uint64_t lo, uint64_t hi,
							 int prot, bool may_split, unsigned *what)
{
	int r = 0;

	*what = 0;
	pthread_mutex_lock(&mm->lock);
	mm->protecting = true;
	for (uint64_t a = lo & ~(MM_PAGE_2M - 1); !r && a < hi; a += MM_PAGE_2M) {
		if (split_pt(mm, a))
			continue;
		if (!may_split)
			r = -EAGAIN;
		else if (!(r = split(mm, a)))
			*what |= MM_PROT_SPLIT;
	}
	for (uint64_t a = lo; !r && a < hi; a += MM_PAGE_SIZE) {
		uint64_t *e = &split_pt(mm, a)[(a >> 12) & 511], old = *e, pte = pte_for(mm, old, prot);

		for (unsigned k = 0; k < 3; k++) {
			bool was = pte_allows(old, accesses[k]), now = pte_allows(pte, accesses[k]);

			*what |= was > now ? MM_PROT_RESTRICT : was < now ? MM_PROT_RELAX : 0;
		}
		__atomic_store_n(e, pte, __ATOMIC_RELEASE);
	}
	mm->protecting = false;
	pthread_mutex_unlock(&mm->lock);
	return r;
}

int mm_private(struct mm *mm, uint64_t lo, uint64_t hi, const void *copy)
{
	int r = 0;

	pthread_mutex_lock(&mm->lock);
	mm->protecting = true;
	for (uint64_t a = lo & ~(MM_PAGE_2M - 1); !r && a < hi; a += MM_PAGE_2M)
		if (!split_pt(mm, a))
			r = split(mm, a);
	for (uint64_t a = lo; !r && a < hi; a += MM_PAGE_SIZE) {
		uint64_t gpa = mm_gpa(mm, (const char *)copy + (a - lo));

		if (!gpa)
			r = -EINVAL;
		else
			__atomic_store_n(&split_pt(mm, a)[(a >> 12) & 511],
					 pte_for(mm, gpa, PROT_READ | PROT_EXEC), __ATOMIC_RELEASE);
	}
	if (!r)
		r = mm_flush_tlbs(mm);
	mm->protecting = false;
	pthread_mutex_unlock(&mm->lock);
	return r;
}

void mm_prot_drop(struct mm_slot *s)
{
	if (!s->pt)
		return;
	for (unsigned i = 0; i < 512; i++) {
		mm_free(s->pt[i], MM_PAGE_SIZE);
		s->pt[i] = NULL;
	}
}

int mm_flush_tlbs(struct mm *mm)
{
	int r;

	if (!mm->flush_page && !(mm->flush_page = mm_arena_alloc(MM_PAGE_SIZE)))
		return -ENOMEM;
	__atomic_add_fetch(&mm->flush_gen, 1, __ATOMIC_SEQ_CST);
	r = hv_set_memslot(mm->hv, MM_FLUSH_SLOT, 0, MM_PAGE_SIZE, mm->flush_page, 0);
	if (r < 0)
		return r;
	return hv_set_memslot(mm->hv, MM_FLUSH_SLOT, 0, 0, mm->flush_page, 0);
}
