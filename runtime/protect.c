/* SPDX-License-Identifier: MIT */
/*
 * vthread_mprotect (the tables: mm/protect.c) and the shoot-down that follows
 * taking rights away. A vCPU caches translations across exits, so "may cache"
 * means: in KVM_RUN now, or left it after the last flush of every vCPU
 * (ran_gen, set by the dispatch loop). A vthread that takes rights away when
 * no other vCPU may cache them flushes its own TLB and is done, in the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "rt.h"

bool rt_tlb_others_cached(const struct hv_vcpu *self)
{
	uint64_t gen = __atomic_load_n(&rt.mm.flush_gen, __ATOMIC_SEQ_CST);
	bool cached = false;

	pthread_mutex_lock(&rt.pool_lock);
	for (unsigned i = 0; i < rt.nvcpus && !cached; i++) {
		const struct hv_vcpu *vc = rt.vcpus[i];

		cached = vc != self && (__atomic_load_n(&vc->in_run, __ATOMIC_SEQ_CST) ||
					__atomic_load_n(&vc->ran_gen, __ATOMIC_ACQUIRE) == gen);
	}
	pthread_mutex_unlock(&rt.pool_lock);
	return cached;
}

int rt_tlb_flush_all(void)
{
	int r;

	pthread_mutex_lock(&rt.mm.lock);
	r = mm_flush_tlbs(&rt.mm);
	pthread_mutex_unlock(&rt.mm.lock);
	return r;
}

/* In the guest: this vCPU's translations of [lo, hi). */
static void flush_own(uint64_t lo, uint64_t hi)
{
	uint64_t cr3;

	if (hi - lo > 64 * MM_PAGE_SIZE) {
		__asm__ volatile("mov %%cr3, %0\n\tmov %0, %%cr3" : "=r"(cr3) : : "memory");
		return;
	}
	for (uint64_t a = lo; a < hi; a += MM_PAGE_SIZE)
		__asm__ volatile("invlpg (%0)" : : "r"(a) : "memory");
}

/*
 * On a host thread: splits what needs it, then flushes every vCPU when a present
 * entry was rewritten, when rights went that a vCPU may cache, or whenever an
 * entry changed on a backend that shadows the guest's tables (a host write is
 * not seen there).
 */
static long protect_on_host(long lo, long hi, long prot)
{
	unsigned what;
	int r;

	if (!mm_host_mapped(lo, hi))
		return -ENOMEM;
	r = mm_protect(&rt.mm, lo, hi, prot, true, &what);
	if (r < 0)
		return r == -ENOMEM || r == -ENOSPC ? -EAGAIN : r;
	if ((what & MM_PROT_SPLIT) || (!rt.hv.be->ring0 && what) ||
	    ((what & MM_PROT_RESTRICT) && rt_tlb_others_cached(NULL)))
		r = rt_tlb_flush_all();
	return r < 0 ? -EAGAIN : 0;
}

static long flush_on_host(void)
{
	return rt_tlb_flush_all() < 0 ? -EAGAIN : 0;
}

/*
 * In the guest, where every 2 MiB of the range is split already: 0, or -EAGAIN
 * when a host thread must make the change. Not checked against the host's
 * mappings, which would take a system call.
 */
static long protect_in_guest(uint64_t lo, uint64_t hi, int prot)
{
	unsigned what;
	long r = mm_protect(&rt.mm, lo, hi, prot, false, &what);

	if (r < 0)
		return r;
	flush_own(lo, hi);
	if ((what & MM_PROT_RESTRICT) && rt_tlb_others_cached(rt_current->vcpu))
		vthread_hostcall_long(&r, (void (*)(void))flush_on_host, 0, (const long[]){ 0 });
	return r;
}

RT_API int vthread_mprotect(void *addr, size_t len, int prot)
{
	uint64_t lo = (uintptr_t)addr, hi = lo + mm_page_round(len);
	long r;

	if (lo & (MM_PAGE_SIZE - 1) || prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))
		return EINVAL;
	if (hi < lo || hi > MM_USER_TOP || (len && hi == lo))
		return ENOMEM;
	if (hi == lo)
		return 0;
	r = rt_init();
	if (r)
		return r == -ENOSYS ? ENOSYS : EAGAIN;
	__atomic_store_n(&hv_guest_pf_fast, 1, __ATOMIC_RELAXED);
	if (rt_in_guest() && (r = protect_in_guest(lo, hi, prot)) != -EAGAIN)
		return -r;
	vthread_hostcall_long(&r, (void (*)(void))protect_on_host, 3,
			      (const long[]){ (long)lo, (long)hi, prot });
	return -r;
}
