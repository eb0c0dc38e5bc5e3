/* SPDX-License-Identifier: MIT */
/*
 * A debugger's breakpoint in code a vthread runs. gdb writes its int3 into the
 * process's memory, which the guest mirrors, so the vCPU stops with #BP; but
 * gdb reads and steps threads with ptrace, which sees the backing thread in
 * KVM_RUN, not the guest. So while a tracer is attached, the vthread leaves
 * its vCPU at the breakpoint: its backing thread takes the guest's registers,
 * vector registers included, stack, FS base and signal mask (native.S, as a
 * clone child does) and executes the int3 itself. The kernel stops it there
 * for gdb, and from then on gdb's step, next, finish and watchpoints work as
 * on any thread, because the vthread runs natively until it ends: its system calls,
 * signals and faults are then the host's, as a pthread's. Its end comes back
 * here (rt_breakpoint_end), onto the stack the exit loop left, and the
 * vthread ends as through an exit. A sandboxed vthread never leaves its vCPU.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"
#include "rt.h"

/* No malloc (the guest may have stopped inside malloc) and no cancellation
 * point (the backing thread shares the guest's state): raw system calls. */
bool rt_traced(void)
{
	char buf[2048], *p;
	long fd = syscall(SYS_openat, AT_FDCWD, "/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	long n;

	if (fd < 0)
		return false;
	n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strstr(buf, "\nTracerPid:");
	return p && strtol(p + sizeof("\nTracerPid:") - 1, NULL, 10) != 0;
}

bool rt_breakpoint_native(struct vthread *vt, const struct hv_exit *ex)
{
	struct kvm_xsave x __attribute__((aligned(64)));	/* XRSTOR's alignment */
	struct rt_native_clone c;
	unsigned char op;
	hv_regs r = ex->regs;

	if (ex->kind != HV_EXIT_EXCEPTION || ex->vector != HV_VECTOR_BP || vt->sandbox ||
	    mm_copy_in(&op, (void *)(uintptr_t)(ex->frame.rip - 1), 1) < 0 || op != 0xcc ||
	    !rt_traced())
		return false;
	hv_regs_from_frame(&r, &ex->frame);
	r.rip--;				/* the int3 runs again, natively */
	/* Unlike after a call, vector registers may be live at a breakpoint. */
	if (!rt_native_ready(&r) || rt_native_guest(vt, &r, &c, &x) < 0)
		return false;
	if (vt->gs_base)			/* glibc leaves the host thread's GS alone */
		syscall(SYS_arch_prctl, ARCH_SET_GS, vt->gs_base);
	vt->thread_changed = true;		/* not parked after: the program ran on it */
	rt_signal_host_mask(RT_HOST_BLOCKED, &vt->native_mask);
	if (__builtin_setjmp(vt->native_back) == 0) {
		vt->native = true;
		rt_native_enter(&c);
	}
	/* Back from rt_breakpoint_end, on this frame: only rt_current is sure. */
	rt_current->native = false;
	rt_signal_host_mask(rt_current->native_mask, NULL);
	return true;
}

void rt_breakpoint_end(struct vthread *vt, void *ret)
{
	vt->retval = ret;
	__builtin_longjmp(vt->native_back, 1);
}
