/* SPDX-License-Identifier: MIT */
/*
 * Where a stopped vCPU stands in the guest stubs (hv/guest.S), and how it is
 * brought out of the ring stub: the one place outside guest.S that knows the
 * stubs' labels and what each instruction has changed so far.
 */
#include "hv.h"

/* Points of the ring stub; guest.S's comment says what holds between them. */
extern const char hv_guest_vectors_end[];
extern const char hv_guest_ring_posted[], hv_guest_ring_done[], hv_guest_ring_below[],
	hv_guest_ring_pushed[], hv_guest_ring_above[], hv_guest_ring_end[];

static bool within(uint64_t rip, const char *lo, const char *hi)
{
	return rip >= (uintptr_t)lo && rip < (uintptr_t)hi;
}

enum hv_stub hv_stub_at(uint64_t rip)
{
	if (within(rip, hv_guest_vectors, hv_guest_vectors_end))
		return HV_STUB_VECTOR;
	if (rip == (uintptr_t)hv_guest_syscall)
		return HV_STUB_SYSCALL;
	if (within(rip, hv_guest_syscall_ring, hv_guest_ring_end))
		return HV_STUB_RING;
	return HV_STUB_NONE;
}

enum hv_ring_stop hv_ring_unwind(struct hv_vcpu *vc, hv_regs *r)
{
	struct hv_ring_slot *s = hv_vcpu_ring(vc);

	if (r->rip < (uintptr_t)hv_guest_ring_posted)
		return HV_RING_STOP_UNPOSTED;
	r->rdx = s->args[2];		/* rdtsc took it */
	if (r->rip < (uintptr_t)hv_guest_ring_done) {
		r->rax = s->nr;		/* the state and the deadline took it */
		return HV_RING_STOP_POSTED;
	}
	if (within(r->rip, hv_guest_ring_below, hv_guest_ring_above))
		r->rsp += HV_RED_ZONE + (r->rip == (uintptr_t)hv_guest_ring_pushed ? 8 : 0);
	r->rax = s->ret;
	s->state = HV_RING_FREE;
	return HV_RING_STOP_DONE;
}
