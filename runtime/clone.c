/* SPDX-License-Identifier: MIT */
/*
 * clone, clone3, fork and vfork from a vthread. The backing thread makes the
 * call for the guest, and the child is what the guest asked for, only not
 * virtualised: a pthread_create() inside a vthread makes an ordinary thread,
 * and a fork() an ordinary process, each continuing the guest's code natively
 * (runtime/native.S). A fork child runs glibc's atfork handlers, ours among
 * them, and can use libvthread afresh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>

#include "native.h"
#include "rt.h"

_Static_assert(offsetof(struct rt_native_clone, gprs) == NC_GPRS, "native.h");
_Static_assert(offsetof(struct rt_native_clone, rip) == NC_RIP, "native.h");
_Static_assert(offsetof(struct rt_native_clone, mask) == NC_MASK, "native.h");
_Static_assert(offsetof(struct rt_native_clone, mxcsr) == NC_MXCSR, "native.h");
_Static_assert(offsetof(struct rt_native_clone, fcw) == NC_FCW, "native.h");
_Static_assert(offsetof(struct rt_native_clone, done) == NC_DONE, "native.h");
_Static_assert(offsetof(struct rt_native_clone, xrstor) == NC_XRSTOR, "native.h");
_Static_assert(offsetof(struct rt_native_clone, xsave) == NC_XSAVE, "native.h");
_Static_assert(sizeof(struct rt_native_clone) == NC_SIZE, "native.h");

/* The flags, and whether the caller gave the child a stack of its own. */
static int clone_flags(const hv_regs *r, uint64_t *flags, bool *stack)
{
	struct clone_args ca;

	switch (r->rax) {
	case SYS_fork:
		*flags = 0;
		*stack = false;
		return 0;
	case SYS_vfork:
		*flags = CLONE_VM | CLONE_VFORK;
		*stack = false;
		return 0;
	case SYS_clone:
		*flags = r->rdi;
		*stack = r->rsi != 0;
		return 0;
	default:	/* clone3 */
		if (r->rsi < offsetof(struct clone_args, stack_size) + sizeof(ca.stack_size))
			return -EINVAL;
		if (mm_copy_in(&ca, (void *)r->rdi, offsetof(struct clone_args, tls)) < 0)
			return -EFAULT;
		*flags = ca.flags;
		*stack = ca.stack != 0;
		return 0;
	}
}

bool rt_native_ready(hv_regs *r)
{
	char staged[NC_STAGED] = { 0 };

	r->rflags = (r->rflags & 0xcd5) | 2;	/* the arithmetic flags and DF; not AC, TF */
	return r->rsp && mm_copy_out((void *)(uintptr_t)(r->rsp - NC_RED_ZONE - NC_STAGED), staged,
				     sizeof(staged)) == 0;
}

int rt_native_guest(struct vthread *vt, const hv_regs *r, struct rt_native_clone *c,
		    struct kvm_xsave *vectors)
{
	const char *fx = (const char *)vt->xsave.region;	/* the FXSAVE layout */
	int ret;

	*c = (struct rt_native_clone){
		.gprs = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->r8,
			  r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15 },
		.rip = r->rip,
		.rflags = r->rflags,
		.rsp = r->rsp,
		.fs = vt->fs_base,
		.mask = vt->mask,
	};
	/* Not KVM_GET_FPU, whose MXCSR kvm_pvm reports as 0 (every exception unmasked). */
	ret = hv_vcpu_get_xsave(vt->vcpu, &vt->xsave);
	if (ret < 0)
		return ret;
	memcpy(&c->mxcsr, fx + 24, sizeof(c->mxcsr));
	memcpy(&c->fcw, fx, sizeof(c->fcw));
	if (vectors) {
		memcpy(vectors, &vt->xsave, sizeof(*vectors));
		c->xsave = vectors;
		c->xrstor = rt.hv.guest_xsave;	/* set up only where the host has XSAVE */
	}
	return 0;
}

long rt_clone(struct vthread *vt, const hv_regs *r)
{
	struct rt_native_clone c;
	uint64_t flags;
	bool stack;
	long ret;

	ret = clone_flags(r, &flags, &stack);
	if (ret < 0)
		return ret;
	ret = rt_native_guest(vt, r, &c, NULL);	/* after a call: no vector registers live */
	if (ret < 0)
		return ret;
	c.nr = r->rax;
	memcpy(c.args, (uint64_t[]){ r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9 }, sizeof(c.args));
	c.gprs[0] = 0;		/* RAX = 0 */
	c.rip = r->rcx;		/* as after the `syscall` in the guest */
	c.rflags = r->r11;
	c.rsp = stack ? 0 : r->rsp;
	if (flags & CLONE_SETTLS)
		c.fs = 0;
	ret = rt_native_clone(&c);
	/* A child sharing memory reads c from this stack until it says otherwise. */
	while (ret > 0 && (flags & CLONE_VM) && !__atomic_load_n(&c.done, __ATOMIC_ACQUIRE))
		rt_syscall6(SYS_futex, (long)&c.done, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
	return ret;
}
