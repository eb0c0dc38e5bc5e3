/* SPDX-License-Identifier: MIT */
/*
 * The exit dispatch: every reason a vCPU stops comes through this one switch,
 * counted per reason (VTHREAD_STATS=1). Runs on the vthread's backing thread.
 */
#include <errno.h>

#include "rt.h"

/* Resumes the guest at the instruction an exception interrupted. */
static void resume_from_frame(struct vthread *vt, struct hv_exit *ex)
{
	ex->regs.rip = ex->frame.rip;
	ex->regs.rsp = ex->frame.rsp;
	ex->regs.rflags = ex->frame.rflags;
	int r = hv_vcpu_set_regs(vt->vcpu, &ex->regs);

	if (r < 0)
		rt_die(vt, "cannot resume after a page fault", r);
}

/* The last page the mirror faulted in, and the instruction that touched it. */
struct last_mirror {
	uint64_t addr, rip;
};

/*
 * A guest page fault outside the mirror: the shared fault handler mirrors the
 * chunk if the process has memory there. A chunk another vCPU mirrored first
 * gets one retry; a second fault at the same address is the program's.
 */
static bool mirror_fault(struct vthread *vt, struct hv_exit *ex, struct last_mirror *last)
{
	int r = mm_fault(&rt.mm, ex->cr2);

	if (r == -EEXIST && ex->cr2 == last->addr)
		return false;
	if (r < 0 && r != -EEXIST)
		return false;
	*last = (struct last_mirror){ ex->cr2, ex->frame.rip };
	resume_from_frame(vt, ex);
	return true;
}

/*
 * A fault the program may handle: its SIGSEGV (SIGILL...) handler runs in the
 * vthread, else the vthread is reported and the process gets the signal. KVM
 * names no address when the host refuses an access (EFAULT), but when the same
 * instruction has just had its page mirrored, that page is the one refused.
 */
static void fault(struct vthread *vt, struct hv_exit *ex, const struct last_mirror *last)
{
	uint64_t addr = ex->kind == HV_EXIT_EFAULT && ex->regs.rip == last->rip ? last->addr : 0;

	rt.exits[RT_EXIT_FAULT]++;
	if (!rt_fault_to_handler(vt, ex, addr))
		rt_fault(vt, ex);
}

/* Handles one exit: true when the vthread has ended. */
static bool handle(struct vthread *vt, struct hv_exit *ex, struct last_mirror *last)
{
	int r;

	switch (ex->kind) {
	case HV_EXIT_SYSCALL:
		rt.exits[RT_EXIT_SYSCALL]++;
		rt_ring_missed(vt, ex->regs.rax);
		return rt_syscall_forward(vt, &ex->regs, 0);
	case HV_EXIT_RING:
		rt.exits[RT_EXIT_RING]++;
		return rt_ring_exit(vt, &ex->regs);
	case HV_EXIT_HOSTCALL:
		rt.exits[RT_EXIT_HOSTCALL]++;
		rt_hostcall(vt, &ex->regs);
		return false;
	case HV_EXIT_EXCEPTION:
		if (ex->vector == 14 && mirror_fault(vt, ex, last)) {
			rt.exits[RT_EXIT_MIRROR]++;
			return false;
		}
		fault(vt, ex, last);
		return false;
	case HV_EXIT_END:
		rt.exits[RT_EXIT_END]++;
		vt->retval = (void *)(uintptr_t)ex->regs.rax;
		return true;
	case HV_EXIT_SIGNAL:
		rt.exits[RT_EXIT_SIGNAL]++;
		r = vt->ring ? rt_ring_settle_for_signal(vt) : 0;
		if (!r)
			r = rt_signal_pending(vt);
		if (r < 0)
			rt_die(vt, "cannot deliver a signal", r);
		return false;
	case HV_EXIT_NULL:
		rt.exits[RT_EXIT_NULL]++;
		return false;
	case HV_EXIT_EFAULT:
		fault(vt, ex, last);
		return false;
	case HV_EXIT_PROBE:
	case HV_EXIT_FAIL:
		break;
	}
	rt.exits[RT_EXIT_OTHER]++;
	rt_fault(vt, ex);
}

void rt_dispatch(struct vthread *vt)
{
	struct last_mirror last = { ~0ull, 0 };
	struct hv_exit ex;
	int guest_errno, r;

	for (;;) {
		r = hv_vcpu_run(vt->vcpu, &ex);
		/* errno is the guest's (same TLS); runtime code must not change it. */
		guest_errno = errno;
		if (r < 0)
			rt_die(vt, "cannot read the vCPU's registers", r);
		if (vt->signals_held) {
			r = rt_signal_release(vt);
			if (r < 0)
				rt_die(vt, "cannot set the vCPU's signal mask", r);
		}
		if (ex.kind == HV_EXIT_HOSTCALL) {
			errno = guest_errno;	/* the host function's errno is the guest's */
			handle(vt, &ex, &last);
			guest_errno = errno;
		} else if (handle(vt, &ex, &last)) {
			return;
		}
		errno = guest_errno;
	}
}
