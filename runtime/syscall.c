/* SPDX-License-Identifier: MIT */
/*
 * System-call forwarding: the one place every guest system call passes through,
 * and so the place a policy would sit. The backing thread performs the call with
 * the guest's arguments, so thread-scoped calls (gettid, signal masks, futexes)
 * act for the vthread's host identity. Calls that would change or copy the
 * backing thread itself are handled here instead.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

static long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

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
		return rt_copy_out((void *)arg, &vt->fs_base, sizeof(vt->fs_base));
	default:
		return raw_syscall6(SYS_arch_prctl, code, arg, 0, 0, 0, 0);
	}
}

bool rt_syscall_forward(struct vthread *vt, hv_regs *r)
{
	long ret;

	switch (r->rax) {
	case SYS_exit:		/* the thread's own exit: ends the vthread */
		vt->retval = NULL;
		return true;
	case SYS_arch_prctl:
		ret = guest_arch_prctl(vt, r->rdi, r->rsi);
		break;
	case SYS_clone:		/* would copy the backing thread, not the guest */
	case SYS_clone3:
	case SYS_fork:
	case SYS_vfork:
	case SYS_rt_sigreturn:	/* no host signal frame exists for a guest */
		ret = -ENOSYS;
		break;
	case SYS_set_tid_address:	/* the backing thread's is glibc's, for joining it */
		ret = raw_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
		break;
	default:
		ret = raw_syscall6(r->rax, r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9);
		break;
	}
	r->rax = ret;
	r->rip = r->rcx;	/* as sysret: back after the `syscall`, flags from R11 */
	r->rflags = r->r11;
	ret = hv_vcpu_set_regs(vt->vcpu, r);
	if (ret < 0)
		rt_die(vt, "cannot resume after a system call", ret);
	return false;
}
