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

/*
 * A guest page fault outside the mirror: the shared fault handler mirrors the
 * chunk if the process has memory there. A chunk another vCPU mirrored first
 * gets one retry; a second fault at the same address is the program's.
 */
static bool mirror_fault(struct vthread *vt, struct hv_exit *ex, uint64_t *last)
{
	int r = mm_fault(&rt.mm, ex->cr2);

	if (r == -EEXIST && ex->cr2 == *last)
		return false;
	if (r < 0 && r != -EEXIST)
		return false;
	*last = ex->cr2;
	resume_from_frame(vt, ex);
	return true;
}

void rt_dispatch(struct vthread *vt)
{
	uint64_t last_fault = ~0ull;
	struct hv_exit ex;
	int r;

	for (;;) {
		r = hv_vcpu_run(vt->vcpu, &ex);
		if (r < 0)
			rt_die(vt, "cannot read the vCPU's registers", r);
		switch (ex.kind) {
		case HV_EXIT_SYSCALL:
			rt.exits[RT_EXIT_SYSCALL]++;
			if (rt_syscall_forward(vt, &ex.regs))
				return;
			break;
		case HV_EXIT_EXCEPTION:
			if (ex.vector == 14 && mirror_fault(vt, &ex, &last_fault)) {
				rt.exits[RT_EXIT_MIRROR]++;
				break;
			}
			rt.exits[RT_EXIT_FAULT]++;
			rt_fault(vt, &ex);
		case HV_EXIT_END:
			rt.exits[RT_EXIT_END]++;
			vt->retval = (void *)(uintptr_t)ex.regs.rax;
			return;
		case HV_EXIT_SIGNAL:
			rt.exits[RT_EXIT_SIGNAL]++;
			break;
		case HV_EXIT_NULL:
			rt.exits[RT_EXIT_NULL]++;
			break;
		case HV_EXIT_EFAULT:
			rt.exits[RT_EXIT_FAULT]++;
			rt_fault(vt, &ex);
		case HV_EXIT_PROBE:
		case HV_EXIT_FAIL:
			rt.exits[RT_EXIT_OTHER]++;
			rt_fault(vt, &ex);
		}
	}
}
