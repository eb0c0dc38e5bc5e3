/* SPDX-License-Identifier: MIT */
/*
 * The exit dispatch: every reason a vCPU stops comes through this one table,
 * one handler per exit kind, each saying what happens next; each exit is
 * counted here, once, under the counter its handler settles on
 * (VTHREAD_STATS=1). Runs on the vthread's backing thread.
 */
#include <errno.h>

#include "rt.h"

void rt_resume(struct vthread *vt, const hv_regs *r, const char *what)
{
	int e = hv_vcpu_set_regs(vt->vcpu, r);

	if (e < 0)
		rt_die(vt, what, e);
}

void rt_resume_sysret(struct vthread *vt, hv_regs *r, long ret)
{
	hv_regs_sysret(r, ret);
	rt_resume(vt, r, "cannot resume after a system call");
}

/* What one dispatch loop remembers between exits. */
struct dispatch {
	uint64_t mirror_addr;			/* the last page mirrored */
	bool unmapped;				/* the fault's page: the process has none */
	enum rt_exit_counter counter;		/* what this exit counts as */
};

/*
 * A guest page fault the mirror or a guest protection explains: the shared
 * fault handler mirrors the chunk if the process has memory there. A chunk
 * another vCPU mirrored first gets one retry; a second fault at the same
 * address is the program's. A protection that allows the access now leaves a
 * stale translation, which a flush of every vCPU's drops; one that refuses it
 * makes it the program's, as a protection fault (SEGV_ACCERR).
 */
static bool mirror_fault(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	int r = mm_fault(&rt.mm, ex->cr2, rt_fault_access(ex->frame.error));

	if (r == -EAGAIN && ex->cr2 == d->mirror_addr)
		rt_die(vt, "kept a translation a flush of every vCPU should have dropped", -EAGAIN);
	if (r == -EAGAIN && (r = rt_tlb_flush_all()) < 0)
		rt_die(vt, "cannot flush the vCPUs' translations", r);
	if (r == -EACCES)
		ex->frame.error |= 1;
	d->unmapped = r == -EFAULT;
	if (r == -EEXIST && ex->cr2 == d->mirror_addr)
		return false;
	if (r < 0 && r != -EEXIST)
		return false;
	d->mirror_addr = ex->cr2;
	hv_regs_from_frame(&ex->regs, &ex->frame);
	rt_resume(vt, &ex->regs, "cannot resume after a page fault");
	return true;
}

/*
 * A fault the program may handle: its SIGSEGV (SIGILL...) handler runs in the
 * vthread, else the vthread is reported and the process gets the signal. KVM
 * names no address when the host refuses an access (EFAULT): the instruction
 * says which (decode.c), and the report and the handler get it in cr2.
 */
static enum rt_next fault(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	bool write = false;
	int code = 0;

	if (ex->kind == HV_EXIT_EFAULT) {
		if (rt_fault_address(vt, &ex->regs, &ex->cr2, &code, &write) < 0)
			ex->cr2 = 0;
		/* as a pthread's page fault: user mode, write, protection (not absence) */
		ex->frame.error = 4 | (write ? 2 : 0) | (code == SEGV_ACCERR);
		d->unmapped = ex->cr2 && code == SEGV_MAPERR;
	}
	if (d->unmapped && rt_fault_inject(vt, ex))
		return RT_RESUME;
	if (!rt_fault_to_handler(vt, ex, code))
		rt_fault(vt, ex);
	return RT_RESUME;
}

static enum rt_next on_syscall(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	(void)d;
	rt_ring_missed(vt, &ex->regs);
	return rt_syscall_forward(vt, &ex->regs, 0);
}

static enum rt_next on_ring(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	(void)d;
	return rt_ring_exit(vt, &ex->regs);
}

static enum rt_next on_hostcall(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	(void)d;
	rt_hostcall(vt, &ex->regs);
	return RT_RESUME;
}

static enum rt_next on_exception(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	d->unmapped = false;
	if (ex->vector == HV_VECTOR_PF && mirror_fault(vt, ex, d)) {
		d->counter = RT_EXIT_MIRROR;
		return RT_RESUME;
	}
	if (rt_breakpoint_native(vt, ex))
		return RT_END;
	return fault(vt, ex, d);
}

static enum rt_next on_end(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	(void)d;
	vt->retval = (void *)(uintptr_t)ex->regs.rax;
	return RT_END;
}

static enum rt_next on_signal(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	int r = vt->ring ? rt_ring_settle_for_signal(vt) : 0;

	(void)ex, (void)d;
	if (!r)
		r = rt_signal_pending(vt);
	if (r < 0)
		rt_die(vt, "cannot deliver a signal", r);
	return RT_RESUME;
}

static enum rt_next on_null(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	(void)vt, (void)ex, (void)d;
	return RT_RESUME;
}

/* The probe runs before any vthread: here it is as wrong as a failed entry. */
static enum rt_next on_other(struct vthread *vt, struct hv_exit *ex, struct dispatch *d)
{
	(void)d;
	rt_fault(vt, ex);
}

static const struct {
	enum rt_next (*handle)(struct vthread *vt, struct hv_exit *ex, struct dispatch *d);
	enum rt_exit_counter counter;
} exits[] = {
	[HV_EXIT_SYSCALL] = { on_syscall, RT_EXIT_SYSCALL },
	[HV_EXIT_RING] = { on_ring, RT_EXIT_RING },
	[HV_EXIT_HOSTCALL] = { on_hostcall, RT_EXIT_HOSTCALL },
	[HV_EXIT_EXCEPTION] = { on_exception, RT_EXIT_FAULT },	/* or MIRROR */
	[HV_EXIT_EFAULT] = { fault, RT_EXIT_FAULT },
	[HV_EXIT_END] = { on_end, RT_EXIT_END },
	[HV_EXIT_SIGNAL] = { on_signal, RT_EXIT_SIGNAL },
	[HV_EXIT_NULL] = { on_null, RT_EXIT_NULL },
	[HV_EXIT_PROBE] = { on_other, RT_EXIT_OTHER },
	[HV_EXIT_FAIL] = { on_other, RT_EXIT_OTHER },
};

void rt_dispatch(struct vthread *vt)
{
	struct dispatch d = { .mirror_addr = ~0ull };
	enum rt_next next;
	struct hv_exit ex;
	int r;

	do {
		uint64_t t = rt_now_ns();

		__atomic_store_n(&vt->counts.run_since, t, __ATOMIC_SEQ_CST);
		__atomic_store_n(&vt->vcpu->in_run, 1, __ATOMIC_SEQ_CST);
		r = hv_vcpu_run(vt->vcpu, &ex);
		t = rt_now_ns() - t;
		__atomic_store_n(&vt->counts.run_since, 0, __ATOMIC_SEQ_CST);	/* stats.c */
		__atomic_store_n(&vt->counts.guest_ns, vt->counts.guest_ns + t, __ATOMIC_SEQ_CST);
		/* protect.c: what this vCPU may cache dates from this flush on */
		__atomic_store_n(&vt->vcpu->ran_gen, __atomic_load_n(&rt.mm.flush_gen, __ATOMIC_SEQ_CST),
				 __ATOMIC_RELEASE);
		__atomic_store_n(&vt->vcpu->in_run, 0, __ATOMIC_RELEASE);
		/* errno is the guest's (same TLS); runtime code must not change it. */
		vt->guest_errno = errno;
		if (r < 0)
			rt_die(vt, "cannot read the vCPU's registers", r);
		if (vt->signals_held) {
			r = rt_signal_release(vt);
			if (r < 0)
				rt_die(vt, "cannot set the vCPU's signal mask", r);
		}
		d.counter = exits[ex.kind].counter;
		next = exits[ex.kind].handle(vt, &ex, &d);
		rt.exits[d.counter]++;
		rt_count(&vt->counts.exits[d.counter]);
		errno = vt->guest_errno;
	} while (next == RT_RESUME);
}
