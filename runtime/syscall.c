/* SPDX-License-Identifier: MIT */
/*
 * System-call forwarding: the one place every guest system call passes through,
 * and so the place a policy would sit. The backing thread performs the call with
 * the guest's arguments, so thread-scoped calls (gettid, robust lists, names,
 * affinity, futexes) act for the vthread's own thread. Calls about the guest's
 * own state (FS base, signal mask and frames) or that would copy the backing
 * thread (clone, fork) are handled here instead.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

/* The guest's FS base is the vCPU's, not the backing thread's. */
static long guest_arch_prctl(struct vthread *vt, long code, unsigned long arg)
{
	int r;

	switch (code) {
	case ARCH_SET_FS:
		r = hv_vcpu_set_fs_base(vt->vcpu, arg);
		if (r < 0)
			return r;
		vt->fs_base = arg;
		return 0;
	case ARCH_GET_FS:
		return mm_copy_out((void *)arg, &vt->fs_base, sizeof(vt->fs_base));
	case ARCH_SET_GS:	/* the ring's slot was there: exit path from now on */
		rt_rewrite_off();	/* trampolines read the slot through GS */
		r = rt_ring_leave(vt);
		if (!r)
			r = hv_vcpu_set_gs_base(vt->vcpu, arg);
		if (r < 0)
			return r;
		vt->gs_base = arg;
		return 0;
	case ARCH_GET_GS:
		return mm_copy_out((void *)arg, &vt->gs_base, sizeof(vt->gs_base));
	default:
		return rt_syscall6(SYS_arch_prctl, code, arg, 0, 0, 0, 0);
	}
}

static long guest_sigprocmask(struct vthread *vt, long how, const uint64_t *set,
			      uint64_t *oldset, long size)
{
	uint64_t old = vt->mask, n, mask;

	if (size != sizeof(uint64_t))
		return -EINVAL;
	if (set) {
		if (mm_copy_in(&n, set, sizeof(n)) < 0)
			return -EFAULT;
		switch (how) {
		case SIG_BLOCK: mask = old | n; break;
		case SIG_UNBLOCK: mask = old & ~n; break;
		case SIG_SETMASK: mask = n; break;
		default: return -EINVAL;
		}
		if (rt_signal_set_mask(vt, mask) < 0)
			return -EINVAL;
	}
	if (oldset && mm_copy_out(oldset, &old, sizeof(old)) < 0)
		return -EFAULT;
	return 0;
}

/* The host thread blocks everything; the guest's pending set is what its mask blocks. */
static long guest_sigpending(struct vthread *vt, uint64_t *set, long size)
{
	uint64_t pending;
	long r;

	if (size > (long)sizeof(uint64_t))
		return -EINVAL;
	r = rt_syscall6(SYS_rt_sigpending, (long)&pending, sizeof(pending), 0, 0, 0, 0);
	if (r < 0)
		return r;
	pending &= vt->mask;
	return mm_copy_out(set, &pending, size);
}

/*
 * A signal ended a call early (sigaction.c): it is delivered in the guest after
 * the call or, if the call had not completed, at its `syscall` instruction, so
 * that the call is made again if the handler returns (the kernel's SA_RESTART).
 */
static void kicked(struct vthread *vt, hv_regs *r, long ret)
{
	int e;

	vt->kicked = 0;
	if (ret == RT_CALL_NOT_MADE)
		hv_regs_restart_syscall(r, r->rax);	/* RAX still holds the call's number */
	else
		hv_regs_sysret(r, ret);
	e = rt_signal_deliver(vt, &vt->kick_info, r, vt->mask, NULL, &vt->kick_action);
	if (!e)
		e = hv_vcpu_set_regs(vt->vcpu, r);
	if (e < 0)
		rt_die(vt, "cannot enter a signal handler", e);
}

/*
 * A call that may wait, continued from `moved` bytes a ring attempt moved:
 * what a blocking call returns, which counts them too.
 */
static long forward_waiting(struct vthread *vt, const hv_regs *r, long moved)
{
	hv_regs rest = *r;
	long ret;

	rest.rsi += moved;
	rest.rdx -= moved;
	if (r->rax == SYS_pread64 || r->rax == SYS_pwrite64)
		rest.r10 += moved;
	ret = rt_call_interruptible(vt, &rest);
	if (!moved)
		return ret;
	return ret < 0 ? moved : ret + moved;	/* also when a signal stopped the rest */
}

enum rt_next rt_syscall_forward(struct vthread *vt, hv_regs *r, long moved)
{
	uint64_t mask;
	long ret;

	rt.syscall_exits[r->rax < HV_RING_NR_MAX ? r->rax : HV_RING_NR_MAX]++;
	if (rt_path_changes_thread(r->rax)) {
		vt->thread_changed = true;
		if (vt->ring && rt_path_own_view(r->rax, r->rdi, r->rdx) && (ret = rt_ring_leave(vt)) < 0) {
			rt_resume_sysret(vt, r, ret);
			return RT_RESUME;
		}
	}
	switch (r->rax) {
	case SYS_exit:		/* the thread's own exit: ends the vthread */
		vt->retval = NULL;
		return RT_END;
	case SYS_arch_prctl:
		ret = guest_arch_prctl(vt, r->rdi, r->rsi);
		break;
	case SYS_rt_sigprocmask:
		ret = guest_sigprocmask(vt, r->rdi, (const uint64_t *)r->rsi, (uint64_t *)r->rdx,
					r->r10);
		break;
	case SYS_rt_sigpending:
		ret = guest_sigpending(vt, (uint64_t *)r->rdi, r->rsi);
		break;
	case SYS_rt_sigsuspend:
		if (r->rsi != sizeof(mask)) {
			ret = -EINVAL;
			break;
		}
		if (mm_copy_in(&mask, (void *)r->rdi, sizeof(mask)) < 0) {
			ret = -EFAULT;
			break;
		}
		ret = rt_signal_suspend(vt, r, mask);
		if (ret < 0)
			rt_die(vt, "cannot enter a signal handler", ret);
		return RT_RESUME;
	case SYS_pause:
		ret = rt_signal_suspend(vt, r, vt->mask);
		if (ret < 0)
			rt_die(vt, "cannot enter a signal handler", ret);
		return RT_RESUME;
	case SYS_rt_sigreturn:
		ret = rt_signal_return(vt, r);
		if (ret < 0)
			rt_bad_frame(vt, r);
		return RT_RESUME;
	case SYS_clone:
	case SYS_clone3:
	case SYS_fork:
	case SYS_vfork:
		ret = rt_clone(vt, r);
		break;
	case SYS_set_tid_address:	/* the backing thread's is glibc's, for joining it */
		ret = rt_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
		break;
	case SYS_exit_group:	/* _exit() skips atexit, where the report is */
		rt_stats_exiting();
		__attribute__((fallthrough));
	default:
		if (!rt_path_guest_mask(r->rax)) {
			ret = rt_syscall6(r->rax, r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9);
			break;
		}
		ret = forward_waiting(vt, r, moved);
		if (vt->kicked) {
			kicked(vt, r, ret);
			return RT_RESUME;
		}
		break;
	}
	rt_resume_sysret(vt, r, ret);
	return RT_RESUME;
}
