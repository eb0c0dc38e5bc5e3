/* SPDX-License-Identifier: MIT */
/*
 * The address-space mirror: guest virtual == host virtual. Each 1 GiB chunk of
 * the process's address space that holds mappings gets one memslot at a compact
 * guest-physical address; guest page tables map, in 2 MiB pages, the parts that
 * hold host mappings, so that a guest access elsewhere is a guest page fault with
 * its address. Entries only ever go from not present to present: a present entry
 * rewritten is not seen by a shadow-paging backend. The exceptions are a chunk
 * with nothing mapped left, whose memslot is deleted (collect.c): deleting a slot
 * makes KVM drop every translation through it on every vCPU; and guest page
 * protections (protect.c), whose changes are followed by such a flush where
 * needed. The fault path never
 * calls malloc: a vthread may fault while glibc's fork holds malloc's locks.
 * Functions return 0 or -errno and never print.
 */
#ifndef MM_H
#define MM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../hv/hv.h"

#define MM_PAGE_SIZE	4096ul
#define MM_CHUNK_SHIFT	30
#define MM_CHUNK	(1ull << MM_CHUNK_SHIFT)
/* The end of user space; memslots must end at or below it. */
#define MM_USER_TOP	0x7ffffffff000ull
#define MM_PAGE_2M	(1ull << 21)

/* Guest paging entry bits */
#define MM_PTE_P	(1ull << 0)
#define MM_PTE_RW	(1ull << 1)
#define MM_PTE_PS	(1ull << 7)
#define MM_PTE_GUARDED	(1ull << 9)	/* software: a split page, under vthread_mprotect */
#define MM_PTE_NX	(1ull << 63)
#define MM_PTE_ADDR	0x000ffffffffff000ull

struct mm_slot {
	uint64_t hva;	/* chunk base; MM_SLOT_FREE once deleted */
	uint64_t *pd;	/* page directory, kept with the slot for its next chunk */
	bool huge;	/* a 1 GiB entry maps the chunk, not pd */
	unsigned next;	/* a free slot: the next free one + 1 */
	unsigned tracked;	/* dirty-tracked ranges in the chunk: KVM logs its writes */
	uint64_t *logged;	/* pages KVM logged and no collect has taken yet */
	uint64_t **pt;		/* per 2 MiB: its 4 KiB page table once split (protect.c) */
};

#define MM_SLOT_FREE	UINT64_MAX
/* struct mm's chunk entries: slot + 1, and these */
#define MM_CHUNK_LINKED	(1u << 31)	/* in the guest tables */
#define MM_CHUNK_SEEN	(1u << 30)	/* mapped, by collect.c's reading of the maps */
#define MM_COLLECT_MIN	64		/* live slots below which none is collected */
#define MM_FLUSH_SLOT	32763		/* KVM's last slot id: protect.c's flushes */

struct mm {
	pthread_mutex_t lock;		/* recursive: a page-table page may need a slot */
	struct hv *hv;
	uint64_t *pml4;
	uint64_t *pdpt[256];		/* per lower-half PML4 entry */
	uint32_t *chunk;		/* per chunk: slot + 1 and MM_CHUNK_ flags */
	struct mm_slot *slots;		/* every slot KVM allows, reserved at init */
	unsigned nslots;		/* slots ever made, free ones included */
	unsigned live;			/* slots in KVM now */
	unsigned free;			/* the first free slot + 1 */
	unsigned collect_at;		/* live slots that make the next collection */
	struct mm_dirty *dirty;		/* dirty-tracked ranges */
	uint64_t *dirty_scratch;	/* one slot's dirty log, as KVM hands it out */
	uint64_t flush_gen;		/* TLB flushes of every vCPU so far (protect.c) */
	void *flush_page;		/* what the flush slot maps */
	bool protecting;		/* a guest changes protections: no collection */
};

/*
 * The memslot of a chunk that has one. Not instrumented: a vthread's own fault
 * path reads it (mm_prot_allows, mm_pde_present), where a check of ASan's
 * shadow could fault again on that shadow, and GCC does not inline an
 * instrumented function into an uninstrumented one.
 */
__attribute__((no_sanitize("address"))) static inline unsigned mm_slot_of(const struct mm *mm,
									   uint64_t c)
{
	return (mm->chunk[c] & ~(MM_CHUNK_LINKED | MM_CHUNK_SEEN)) - 1;
}

/* GPA 0 stays unbacked, and so does the GiB that holds the local APIC's page
 * (0xfee00000), which KVM may back with a memslot of its own (hv/apic.c). */
static inline uint64_t mm_slot_gpa(unsigned slot)
{
	return (uint64_t)(slot + 1 + (slot >= 2)) << MM_CHUNK_SHIFT;
}

/* The flags of every present guest entry. */
static inline uint64_t mm_pte_flags(const struct mm *mm)
{
	return MM_PTE_P | MM_PTE_RW | mm->hv->be->pte_user;
}

/* n rounded up to whole pages */
static inline size_t mm_page_round(size_t n)
{
	return (n + MM_PAGE_SIZE - 1) & ~(MM_PAGE_SIZE - 1);
}

/* access.c: copies to or from guest memory that never fault the host: 0 or -EFAULT */
int mm_copy_in(void *dst, const void *src, size_t n);
int mm_copy_out(void *dst, const void *src, size_t n);

/* arena.c: guest-visible runtime memory, whole pages from regions of ours */
void *mm_arena_alloc(size_t size);	/* zeroed, page-aligned */
void mm_arena_free(void *p, size_t size);
void mm_arena_lock(void);
void mm_arena_unlock(void);
void mm_arena_fork_child(void);
size_t mm_arena_in_use(void);

/*
 * collect.c: deletes the memslots of chunks that have nothing mapped any more;
 * lock held, no chunk being linked. 0 or -errno.
 */
int mm_collect(struct mm *mm);

/*
 * dirty.c: dirty-page tracking of page-aligned ranges the process maps, with
 * KVM's dirty log; 0, -EBUSY (overlap), -ENOMEM (unmapped), -EINVAL (not a
 * tracked range), or what KVM says.
 */
int mm_dirty_start(struct mm *mm, uint64_t lo, uint64_t hi);
int mm_dirty_collect(struct mm *mm, uint64_t lo, uint64_t hi, uint64_t *bitmap);
int mm_dirty_stop(struct mm *mm, uint64_t lo, uint64_t hi);
/* What mm_destroy leaves behind of it. */
void mm_dirty_forget(struct mm *mm);

/*
 * protect.c: guest-side page protections (vthread_mprotect). The 2 MiB pages
 * that hold protected pages are split into 4 KiB guest page tables, which
 * stay split. mm_protect sets prot on the pages of [lo, hi), which the process
 * maps; without may_split only on pages already split (else -EAGAIN, nothing
 * changed), which needs no memory and no ioctl, so that a guest can make it.
 * *what gets MM_PROT_ flags. Lock taken.
 */
enum { MM_PROT_RESTRICT = 1, MM_PROT_RELAX = 2, MM_PROT_SPLIT = 4 };
int mm_protect(struct mm *mm, uint64_t lo, uint64_t hi, int prot, bool may_split, unsigned *what);
/* Whether the guest protection of addr allows access (PROT_READ, _WRITE or
 * _EXEC): 1, 0, or -1 when no guest protection covers it. No lock, no fault. */
int mm_prot_allows(const struct mm *mm, uint64_t addr, int access);
/*
 * The guest runs the pages [lo, hi) from copy (mm_alloc'ed, as long) where
 * host threads run the original: guarded entries, PROT_READ | PROT_EXEC, then
 * mm_flush_tlbs. Lock taken; 0 or -errno.
 */
int mm_private(struct mm *mm, uint64_t lo, uint64_t hi, const void *copy);
/* The page tables of a dropped chunk; lock held. */
void mm_prot_drop(struct mm_slot *s);
/*
 * Drops every vCPU's cached translations before it runs guest code again:
 * deleting a memory slot makes KVM invalidate every vCPU's paging structures
 * and TLB, and wait for the running ones. Lock held; 0 or -errno.
 */
int mm_flush_tlbs(struct mm *mm);

/* mirror.c */
int mm_init(struct mm *mm, struct hv *hv);
/* Forgets the VM's tables without ioctls; for a fork child and for init failure. */
void mm_destroy(struct mm *mm);
/* The chunk's memslot, made if it has none: the slot, or -errno; lock held. */
int mm_chunk_slot(struct mm *mm, uint64_t c);
/* Sets a chunk's memslot flags (KVM_MEM_LOG_DIRTY_PAGES); lock held. */
int mm_chunk_flags(struct mm *mm, uint64_t c, uint32_t flags);
/* Unlinks a chunk that has a slot and deletes the slot; lock held. */
void mm_chunk_drop(struct mm *mm, uint64_t c);
/* Whether the guest's entry for gva's 2 MiB is present; no lock, no fault. */
bool mm_pde_present(const struct mm *mm, uint64_t gva);
/* How the guest's tables reach gva, for a fault report; no lock, no fault. */
struct mm_walk {
	int slot;		/* the memslot of gva's GiB, or -1 */
	bool linked;		/* that GiB is in the guest's tables */
	bool huge;		/* by one 1 GiB entry */
	uint64_t pde;		/* else its 2 MiB entry for gva */
	uint64_t pte;		/* and, when split (vthread_mprotect), its 4 KiB entry */
};
void mm_walk(const struct mm *mm, uint64_t gva, struct mm_walk *w);
/* maps.c: calls line() on each line of /proc/self/maps until it returns true;
 * no malloc, no cancellation point. 0 or -errno. */
int mm_maps_each(bool (*line)(char *text, void *arg), void *arg);
/* Whether [lo, hi) is all mapped by the process. */
bool mm_host_mapped(uint64_t lo, uint64_t hi);
int mm_mirror_range(struct mm *mm, const void *addr, size_t len);
int mm_mirror_process(struct mm *mm);
uint64_t mm_gpa(struct mm *mm, const void *hva);
/* Guest-visible runtime memory, mirrored before it is returned; mm_free frees it. */
void *mm_alloc(struct mm *mm, size_t size);
void mm_free(void *p, size_t size);

/*
 * space.c: a sandbox's guest memory (see there). Its region holds, in pages:
 * the code page, the IDT, the vCPU area, a TLS page, a guard, the stack, and
 * the page tables, not mapped in its address space.
 */
#define MM_SB_CODE	0
#define MM_SB_IDT	1
#define MM_SB_AREA	2
#define MM_SB_TLS	(MM_SB_AREA + HV_VCPU_AREA_SIZE / MM_PAGE_SIZE)
#define MM_SB_STACK	(MM_SB_TLS + 2)		/* a guard page below it */
#define MM_SB_STACK_PAGES	256		/* 1 MiB */
#define MM_SB_TABLES	(MM_SB_STACK + MM_SB_STACK_PAGES)
#define MM_SB_NTABLES	1024			/* 1 GiB of grants in 4 KiB pages at least */
#define MM_SB_REGION	((size_t)(MM_SB_TABLES + MM_SB_NTABLES) * MM_PAGE_SIZE)

struct mm_grant {
	uint64_t lo, hi;	/* host addresses, the guest's too */
	int prot;
	uint32_t slot;
	uint64_t gpa;
	char *snap;		/* writable grants: the pages at the snapshot */
	uint64_t *written;	/* pages the runtime wrote for the guest since */
	uint64_t *log;		/* KVM's dirty log, as it hands it out */
};

struct mm_space {
	struct hv *hv;
	char *region;		/* MM_SB_REGION bytes */
	uint64_t *master;	/* the page tables as the runtime wrote them */
	unsigned tables;	/* table pages in use, the PML4 first */
	struct mm_grant *grants;
	unsigned ngrants;
	uint64_t next_gpa;
	bool snapped;
};

/* 0 or -errno (-ENOTSUP without read-only memslots); the VM of hv gets the
 * region's memslots. */
int mm_space_init(struct mm_space *sp, struct hv *hv);
void mm_space_destroy(struct mm_space *sp);
uint64_t mm_space_cr3(void);
uint64_t mm_space_gpa(const struct mm_space *sp, const void *region_addr);
/* [lo, hi) page aligned and mapped by the process: 0, -EINVAL (overlaps a
 * grant or the region), -ENOMEM (unmapped, or the tables are full), or KVM's. */
int mm_space_grant(struct mm_space *sp, uint64_t lo, uint64_t hi, int prot);
const struct mm_grant *mm_space_find(const struct mm_space *sp, uint64_t addr);
/* Whether grants that allow prot cover [lo, lo + len). */
bool mm_space_covers(const struct mm_space *sp, uint64_t lo, uint64_t len, int prot);
/* Before a run: the guest's tables as the master says, KVM's cache of them
 * dropped where a guest had changed them. 0 or -errno. */
int mm_space_rearm(struct mm_space *sp);
/* The host address of a grant's GPA, or 0. */
uint64_t mm_space_hva(const struct mm_space *sp, uint64_t gpa);
/* The runtime wrote [lo, lo + len) for the guest (a system call): reset restores it. */
void mm_space_written(struct mm_space *sp, uint64_t lo, uint64_t len);
/* Copies the writable grants and starts KVM's dirty log on them. */
int mm_space_snapshot(struct mm_space *sp);
/* Copies back the pages written since. */
int mm_space_reset(struct mm_space *sp);

/*
 * The shared fault handler, for a guest page fault at gva: 0 when the address is
 * now mirrored (retry the access), -EEXIST when it already was, -EFAULT when the
 * process has nothing mapped there, -EACCES when a guest protection refuses the
 * access (PROT_READ, _WRITE or _EXEC), -EAGAIN when it allows it now (a stale
 * translation: flush, retry).
 */
int mm_fault(struct mm *mm, uint64_t gva, int access);

#endif
