/* SPDX-License-Identifier: MIT */
/*
 * A sandbox's guest memory: a VM of its own whose memslots hold only the
 * granted ranges (read-only ones as KVM_MEM_READONLY slots, so that a guest
 * that rewrites page tables or clears CR0.WP still cannot write them) and one
 * region of the runtime's pages that no one else uses. Each page is mapped at
 * its host address. The page tables are not mapped in the guest, but a guest
 * that loads tables of its own can reach their slot (it cannot be read-only:
 * AMD's nested paging takes every guest table walk for a write), so the
 * runtime keeps their master copy outside the VM, trusts nothing it reads
 * back, and before each run puts back what a guest changed, then has KVM drop
 * what it cached of them (deleting and adding their slot), since a shadow-
 * paging KVM does not see the runtime's own writes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mm.h"

#define REGION_GPA	MM_CHUNK		/* GPA 0 stays unbacked */
#define GRANT_GPA	(4 * MM_CHUNK)		/* grants from here up */
#define PTE_A		(1ull << 5)
#define PTE_D		(1ull << 6)
#define SLOT_TABLES	1			/* slot 0 is the rest of the region's */
#define SLOT_GRANT0	2

static uint64_t *table(char *base, unsigned t)
{
	return (uint64_t *)(base + (size_t)t * MM_PAGE_SIZE);
}

static uint64_t table_gpa(unsigned t)
{
	return REGION_GPA + (uint64_t)(MM_SB_TABLES + t) * MM_PAGE_SIZE;
}

/* Sets gva's 4 KiB entry in the master tables and the guest's copy; the
 * tables only ever gain entries (mm.h). */
static int map_page(struct mm_space *sp, uint64_t gva, uint64_t pte)
{
	char *guest = sp->region + MM_SB_TABLES * MM_PAGE_SIZE;
	uint64_t dir = MM_PTE_P | MM_PTE_RW | PTE_A | sp->hv->be->pte_user;
	unsigned t = 0;

	for (int shift = 39; shift > 12; shift -= 9) {
		unsigned i = (gva >> shift) & 511;
		uint64_t *e = &table((char *)sp->master, t)[i];

		if (!*e) {
			if (sp->tables == MM_SB_NTABLES)
				return -ENOMEM;
			*e = table_gpa(sp->tables++) | dir;
			table(guest, t)[i] = *e;
		}
		t = ((*e & MM_PTE_ADDR) - table_gpa(0)) / MM_PAGE_SIZE;
	}
	table((char *)sp->master, t)[(gva >> 12) & 511] = pte;
	table(guest, t)[(gva >> 12) & 511] = pte;
	return 0;
}

static int tables_slot(struct mm_space *sp)
{
	return hv_set_memslot(sp->hv, SLOT_TABLES, table_gpa(0), MM_SB_NTABLES * MM_PAGE_SIZE,
			      sp->region + MM_SB_TABLES * MM_PAGE_SIZE, 0);
}

int mm_space_rearm(struct mm_space *sp)
{
	char *guest = sp->region + MM_SB_TABLES * MM_PAGE_SIZE;
	size_t len = (size_t)sp->tables * MM_PAGE_SIZE;
	int r;

	if (!memcmp(guest, sp->master, len))
		return 0;
	memcpy(guest, sp->master, len);
	r = hv_set_memslot(sp->hv, SLOT_TABLES, table_gpa(0), 0, NULL, 0);
	return r ? r : tables_slot(sp);
}

static uint64_t leaf(const struct mm_space *sp, uint64_t gpa, int prot)
{
	uint64_t pte = gpa | MM_PTE_P | PTE_A | PTE_D | sp->hv->be->pte_user;

	if (prot & PROT_WRITE)
		pte |= MM_PTE_RW;
	if (!(prot & PROT_EXEC))
		pte |= MM_PTE_NX;
	return pte;
}

static int map_range(struct mm_space *sp, uint64_t va, uint64_t len, uint64_t gpa, int prot)
{
	int r = 0;

	for (uint64_t o = 0; o < len && !r; o += MM_PAGE_SIZE)
		r = map_page(sp, va + o, leaf(sp, gpa + o, prot));
	return r;
}

/* What the guest reaches of the region: all but the guard below the stack and the tables. */
static int map_region(struct mm_space *sp)
{
	static const struct { unsigned first, n; int prot; } part[] = {
		{ MM_SB_CODE, 1, PROT_READ | PROT_EXEC },
		{ MM_SB_IDT, 1, PROT_READ },
		{ MM_SB_AREA, HV_VCPU_AREA_SIZE / MM_PAGE_SIZE, PROT_READ | PROT_WRITE },
		{ MM_SB_TLS, 1, PROT_READ | PROT_WRITE },
		{ MM_SB_STACK, MM_SB_STACK_PAGES, PROT_READ | PROT_WRITE },
	};
	int r = 0;

	for (size_t i = 0; i < sizeof(part) / sizeof(part[0]) && !r; i++)
		r = map_range(sp, (uintptr_t)sp->region + part[i].first * MM_PAGE_SIZE,
			      part[i].n * MM_PAGE_SIZE,
			      REGION_GPA + part[i].first * MM_PAGE_SIZE, part[i].prot);
	return r;
}

int mm_space_init(struct mm_space *sp, struct hv *hv)
{
	int r;

	memset(sp, 0, sizeof(*sp));
	sp->hv = hv;
	sp->next_gpa = GRANT_GPA;
	sp->region = mmap(NULL, MM_SB_REGION, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sp->region == MAP_FAILED)
		return -ENOMEM;
	sp->tables = 1;	/* the PML4 */
	sp->master = calloc(MM_SB_NTABLES, MM_PAGE_SIZE);
	r = !sp->master ? -ENOMEM : hv->readonly_mem ? 0 : -ENOTSUP;
	if (!r)
		r = hv_set_memslot(hv, 0, REGION_GPA, MM_SB_TABLES * MM_PAGE_SIZE, sp->region, 0);
	if (!r)
		r = tables_slot(sp);
	if (!r)
		r = map_region(sp);
	if (r < 0)
		mm_space_destroy(sp);
	return r;
}

void mm_space_destroy(struct mm_space *sp)
{
	for (unsigned i = 0; i < sp->ngrants; i++) {
		struct mm_grant *g = &sp->grants[i];

		if (g->snap)
			munmap(g->snap, g->hi - g->lo);
		free(g->written);
		free(g->log);
	}
	free(sp->grants);
	free(sp->master);
	if (sp->region && sp->region != MAP_FAILED)
		munmap(sp->region, MM_SB_REGION);
	memset(sp, 0, sizeof(*sp));
}

uint64_t mm_space_cr3(void)
{
	return table_gpa(0);
}

uint64_t mm_space_gpa(const struct mm_space *sp, const void *region_addr)
{
	return REGION_GPA + (uint64_t)((const char *)region_addr - sp->region);
}

const struct mm_grant *mm_space_find(const struct mm_space *sp, uint64_t addr)
{
	for (unsigned i = 0; i < sp->ngrants; i++)
		if (addr >= sp->grants[i].lo && addr < sp->grants[i].hi)
			return &sp->grants[i];
	return NULL;
}

bool mm_space_covers(const struct mm_space *sp, uint64_t lo, uint64_t len, int prot)
{
	uint64_t hi = lo + len;

	if (hi < lo)
		return false;
	while (lo < hi) {
		const struct mm_grant *g = mm_space_find(sp, lo);

		if (!g || (g->prot & prot) != prot)
			return false;
		lo = g->hi;
	}
	return true;
}

uint64_t mm_space_hva(const struct mm_space *sp, uint64_t gpa)
{
	for (unsigned i = 0; i < sp->ngrants; i++) {
		const struct mm_grant *g = &sp->grants[i];

		if (gpa >= g->gpa && gpa < g->gpa + (g->hi - g->lo))
			return g->lo + (gpa - g->gpa);
	}
	return 0;
}

/* At most the table pages mapping [lo, hi) may add: a PT per 2 MiB, a PD per
 * GiB, a PDPT per 512 GiB it touches. */
static unsigned tables_needed(uint64_t lo, uint64_t hi)
{
	unsigned n = 0;

	for (int shift = 21; shift <= 39; shift += 9)
		n += ((hi - 1) >> shift) - (lo >> shift) + 1;
	return n;
}

static size_t log_bytes(const struct mm_grant *g)
{
	return ((g->hi - g->lo) / MM_PAGE_SIZE + 63) / 64 * 8;
}

int mm_space_grant(struct mm_space *sp, uint64_t lo, uint64_t hi, int prot)
{
	uint64_t region = (uintptr_t)sp->region;
	struct mm_grant *g, *more;
	uint64_t gpa;
	int r;

	if (lo < region + MM_SB_REGION && hi > region)
		return -EINVAL;
	for (unsigned i = 0; i < sp->ngrants; i++)
		if (lo < sp->grants[i].hi && hi > sp->grants[i].lo)
			return -EINVAL;
	if (!mm_host_mapped(lo, hi))
		return -ENOMEM;
	if (tables_needed(lo, hi) > MM_SB_NTABLES - sp->tables)
		return -ENOMEM;	/* checked first: a grant is made whole or not at all */
	more = realloc(sp->grants, (sp->ngrants + 1) * sizeof(*more));
	if (!more)
		return -ENOMEM;
	sp->grants = more;
	/* Same offset in its 2 MiB as the host's, so that KVM can map huge pages. */
	gpa = (sp->next_gpa + MM_PAGE_2M - 1) & ~(MM_PAGE_2M - 1);
	gpa += lo & (MM_PAGE_2M - 1);
	g = &sp->grants[sp->ngrants];
	*g = (struct mm_grant){ .lo = lo, .hi = hi, .prot = prot, .gpa = gpa,
				.slot = SLOT_GRANT0 + sp->ngrants };
	r = hv_set_memslot(sp->hv, g->slot, gpa, hi - lo, (void *)(uintptr_t)lo,
			   prot & PROT_WRITE ? 0 : KVM_MEM_READONLY);
	if (r < 0)
		return r;
	sp->ngrants++;
	sp->next_gpa = gpa + (hi - lo);
	return map_range(sp, lo, hi - lo, gpa, prot);	/* cannot run out: checked */
}

void mm_space_written(struct mm_space *sp, uint64_t lo, uint64_t len)
{
	for (uint64_t p = lo & ~(MM_PAGE_SIZE - 1); p < lo + len; p += MM_PAGE_SIZE) {
		const struct mm_grant *g = mm_space_find(sp, p);
		uint64_t i;

		if (!g || !g->written)
			continue;
		i = (p - g->lo) / MM_PAGE_SIZE;
		g->written[i / 64] |= 1ull << (i % 64);
	}
}

int mm_space_snapshot(struct mm_space *sp)
{
	for (unsigned i = 0; i < sp->ngrants; i++) {
		struct mm_grant *g = &sp->grants[i];
		size_t len = g->hi - g->lo;
		int r;

		if (!(g->prot & PROT_WRITE))
			continue;
		if (!g->snap) {
			g->snap = mmap(NULL, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			g->written = calloc(1, log_bytes(g));
			g->log = calloc(1, log_bytes(g));
			if (g->snap == MAP_FAILED)
				g->snap = NULL;
			if (!g->snap || !g->written || !g->log)
				return -ENOMEM;
			r = hv_set_memslot(sp->hv, g->slot, g->gpa, len, (void *)(uintptr_t)g->lo,
					   KVM_MEM_LOG_DIRTY_PAGES);
			if (r < 0)
				return r;
		}
		/* What KVM logged before now is no write since the snapshot. */
		r = hv_get_dirty_log(sp->hv, g->slot, g->log);
		if (r < 0)
			return r;
		memset(g->written, 0, log_bytes(g));
		memcpy(g->snap, (void *)(uintptr_t)g->lo, len);
	}
	sp->snapped = true;
	return 0;
}

int mm_space_reset(struct mm_space *sp)
{
	for (unsigned i = 0; i < sp->ngrants; i++) {
		struct mm_grant *g = &sp->grants[i];
		size_t words = log_bytes(g) / 8;
		int r;

		if (!g->snap)
			continue;
		r = hv_get_dirty_log(sp->hv, g->slot, g->log);
		if (r < 0)
			return r;
		for (size_t w = 0; w < words; w++) {
			uint64_t bits = g->log[w] | g->written[w];

			g->written[w] = 0;
			while (bits) {
				uint64_t off = (w * 64 + __builtin_ctzll(bits)) * MM_PAGE_SIZE;

				memcpy((char *)(uintptr_t)g->lo + off, g->snap + off, MM_PAGE_SIZE);
				bits &= bits - 1;
			}
		}
	}
	return 0;
}
