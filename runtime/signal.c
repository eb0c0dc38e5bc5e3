/* SPDX-License-Identifier: MIT */
/*
 * Signals in the vthread's context. The backing thread blocks every signal
 * while it runs runtime code; KVM_RUN runs with the guest's own mask, so a
 * signal the guest accepts interrupts the vCPU and stays pending. It is then
 * taken here and delivered as the kernel would deliver it to a pthread: a frame
 * (return address, ucontext_t, siginfo_t, XSAVE image) on the guest's stack or
 * sigaltstack, the handler entered with the guest's registers, and the
 * handler's rt_sigreturn restoring whatever the frame then holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "rt.h"

#define BIT(sig)	(1ull << ((sig) - 1))
#define UNBLOCKABLE	(BIT(SIGKILL) | BIT(SIGSTOP))
/* Ignored by default (man 7 signal); the rest terminate or stop. */
#define DEFAULT_IGNORED	(BIT(SIGCHLD) | BIT(SIGURG) | BIT(SIGWINCH) | BIT(SIGCONT))
/* The flags a handler may change through its ucontext, as the kernel allows;
 * and IF, the interrupted code's (irq.c): rt_sigreturn's own `syscall` turned
 * it off. */
#define USER_RFLAGS	0x50dd5ull
#define RFLAGS_IF	0x200ull
#define RFLAGS_TF_DF	0x500ull

struct sigframe {
	void *pretcode;		/* the handler returns into sa_restorer */
	ucontext_t uc;
	siginfo_t info;
};

long rt_sigaction_raw(int sig, const struct rt_ksigaction *act, struct rt_ksigaction *old)
{
	return rt_syscall6(SYS_rt_sigaction, sig, (long)act, (long)old, sizeof(uint64_t), 0, 0);
}

bool rt_signal_caught(const struct vthread *vt, int sig)
{
	struct rt_ksigaction ka;

	return !(vt->mask & BIT(sig)) && rt_action_get(sig, &ka) == 0 &&
	       ka.handler != SIG_DFL && ka.handler != SIG_IGN;
}

void rt_signal_host_mask(uint64_t mask, uint64_t *old)
{
	rt_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, (long)old, sizeof(mask), 0, 0);
}

void rt_signal_block_host(void)
{
	rt_signal_host_mask(RT_HOST_BLOCKED, NULL);
}

/*
 * glibc's cancellation signal stays blocked unless its handler is the
 * runtime's (cancel.c): glibc's own would unwind the runtime's frames.
 */
void rt_signal_unblock_host(const struct vthread *vt)
{
	rt_signal_host_mask(vt->mask | (rt_cancel_ready() ? 0 : BIT(RT_SIGCANCEL)), NULL);
}

int rt_signal_thread_start(struct vthread *vt)
{
	/* A vthread starts with its creator's mask, as a pthread does: the new
	 * thread's, or what the creator of a reused one read (park.c). */
	rt_signal_host_mask(RT_HOST_BLOCKED, vt->reused ? NULL : &vt->mask);
	return hv_vcpu_set_sigmask(vt->vcpu, vt->mask);
}

int rt_signal_set_mask(struct vthread *vt, uint64_t mask)
{
	vt->mask = mask & ~UNBLOCKABLE;
	return hv_vcpu_set_sigmask(vt->vcpu, vt->mask);
}

/* A pending signal the guest accepts, dequeued: its number, or 0. */
static int take(uint64_t accepted, siginfo_t *si, bool wait)
{
	struct timespec zero = { 0, 0 };
	uint64_t set = accepted & ~UNBLOCKABLE;
	long r;

	do
		r = rt_syscall6(SYS_rt_sigtimedwait, (long)&set, (long)si,
				wait ? 0 : (long)&zero, sizeof(set), 0, 0);
	while (r == -EINTR && wait);
	return r > 0 ? (int)r : 0;
}

/* A signal whose action is the default and is not to ignore it: the process
 * gets it from the host as it would have, unblocked for the moment. */
static void default_action(int sig, siginfo_t *si)
{
	if (BIT(sig) & DEFAULT_IGNORED)
		return;
	rt_signal_host_mask(~BIT(sig), NULL);
	rt_syscall6(SYS_rt_tgsigqueueinfo, getpid(), gettid(), sig, (long)si, 0, 0);
	rt_signal_block_host();
}

static uint64_t frame_top(uint64_t sp, const struct rt_ksigaction *ka, stack_t *ss)
{
	if (rt_syscall6(SYS_sigaltstack, 0, (long)ss, 0, 0, 0, 0) < 0)
		ss->ss_flags = SS_DISABLE;
	if ((uint64_t)(uintptr_t)ss->ss_sp < sp &&
	    sp <= (uint64_t)(uintptr_t)ss->ss_sp + ss->ss_size && !(ss->ss_flags & SS_DISABLE)) {
		ss->ss_flags = SS_ONSTACK;	/* already on it: stay, as the kernel does */
		return sp - HV_RED_ZONE;
	}
	if ((ka->flags & SA_ONSTACK) && !(ss->ss_flags & SS_DISABLE))
		return (uint64_t)(uintptr_t)ss->ss_sp + ss->ss_size;
	return sp - HV_RED_ZONE;
}

static void save_gregs(greg_t *g, const hv_regs *r, const struct rt_sigtrap *t)
{
	g[REG_R8] = r->r8;
	g[REG_R9] = r->r9;
	g[REG_R10] = r->r10;
	g[REG_R11] = r->r11;
	g[REG_R12] = r->r12;
	g[REG_R13] = r->r13;
	g[REG_R14] = r->r14;
	g[REG_R15] = r->r15;
	g[REG_RDI] = r->rdi;
	g[REG_RSI] = r->rsi;
	g[REG_RBP] = r->rbp;
	g[REG_RBX] = r->rbx;
	g[REG_RDX] = r->rdx;
	g[REG_RAX] = r->rax;
	g[REG_RCX] = r->rcx;
	g[REG_RSP] = r->rsp;
	g[REG_RIP] = r->rip;
	g[REG_EFL] = r->rflags;
	g[REG_CSGSFS] = 0x33 | (0x2bll << 48);	/* what a pthread's handler sees */
	if (t) {
		g[REG_ERR] = t->error;
		g[REG_TRAPNO] = t->vector;
		g[REG_CR2] = t->cr2;
	}
}

static void load_gregs(hv_regs *r, const greg_t *g)
{
	r->r8 = g[REG_R8];
	r->r9 = g[REG_R9];
	r->r10 = g[REG_R10];
	r->r11 = g[REG_R11];
	r->r12 = g[REG_R12];
	r->r13 = g[REG_R13];
	r->r14 = g[REG_R14];
	r->r15 = g[REG_R15];
	r->rdi = g[REG_RDI];
	r->rsi = g[REG_RSI];
	r->rbp = g[REG_RBP];
	r->rbx = g[REG_RBX];
	r->rdx = g[REG_RDX];
	r->rax = g[REG_RAX];
	r->rcx = g[REG_RCX];
	r->rsp = g[REG_RSP];
	r->rip = g[REG_RIP];
	r->rflags = (r->rflags & ~(USER_RFLAGS | RFLAGS_IF)) | (g[REG_EFL] & (USER_RFLAGS | RFLAGS_IF));
}

int rt_signal_deliver(struct vthread *vt, siginfo_t *si, hv_regs *r, uint64_t saved_mask,
		      const struct rt_sigtrap *trap, const struct rt_ksigaction *action)
{
	struct kvm_xsave *x = &vt->xsave;	/* only rt.xsave_size bytes travel */
	int sig = si->si_signo;
	struct rt_ksigaction ka;
	struct sigframe f;
	uint64_t top, fp, sp;
	stack_t ss;
	int e;

	if (action)
		ka = *action;
	else if (rt_action_get(sig, &ka) < 0)
		return 0;
	if (ka.handler == SIG_IGN)
		return 0;
	if (ka.handler == SIG_DFL) {
		default_action(sig, si);
		return 0;
	}
	top = frame_top(r->rsp, &ka, &ss);
	fp = (top - rt.xsave_size) & ~63ull;
	sp = ((fp - sizeof(f)) & ~15ull) - 8;	/* as after a call: RSP+8 16-byte aligned */

	memset(&f, 0, sizeof(f));
	f.pretcode = ka.restorer;
	f.uc.uc_stack = ss;
	save_gregs(f.uc.uc_mcontext.gregs, r, trap);
	f.uc.uc_mcontext.fpregs = (fpregset_t)(uintptr_t)fp;
	memcpy(&f.uc.uc_sigmask, &saved_mask, sizeof(saved_mask));
	f.info = *si;
	e = hv_vcpu_get_xsave(vt->vcpu, x);
	if (e < 0)
		return e;
	if (!(ka.flags & RT_SA_RESTORER) ||
	    mm_copy_out((void *)(uintptr_t)fp, x, rt.xsave_size) < 0 ||
	    mm_copy_out((void *)(uintptr_t)sp, &f, sizeof(f)) < 0)
		return -EFAULT;	/* no room for the frame: the kernel forces SIGSEGV */

	r->rsp = sp;
	r->rip = (uint64_t)(uintptr_t)ka.handler;
	r->rdi = sig;
	r->rsi = sp + offsetof(struct sigframe, info);
	r->rdx = sp + offsetof(struct sigframe, uc);
	r->rax = 0;
	r->rflags &= ~RFLAGS_TF_DF;
	e = rt_signal_set_mask(vt, vt->mask | ka.mask | (ka.flags & SA_NODEFER ? 0 : BIT(sig)));
	if (!e)
		e = hv_vcpu_set_regs(vt->vcpu, r);
	if (!e)
		e = hv_vcpu_reset_fpu(vt->vcpu);	/* handlers start with a clean FPU */
	if (e < 0)
		return e;
	if ((ka.flags & SA_RESETHAND) && !action) {	/* a given one was reset already */
		ka.handler = SIG_DFL;
		ka.flags &= ~SA_RESETHAND;
		rt_sigaction_raw(sig, &ka, NULL);
	}
	return 1;
}

/*
 * A signal can stop the vCPU after an exception or a `syscall` has entered its
 * stub but before the stub's exit. For an exception the registers are then the
 * stub's, on the IST stack, and a handler entered there would run on that
 * stack, which the next exception overwrites; for a system call the frame would
 * return into the stub, which has no unwind information. Signals are held back
 * until the stub has exited instead: a pthread gets them after the call or the
 * fault's handling too. (The ring stub is settled before this: ring.c.)
 */
int rt_signal_pending(struct vthread *vt)
{
	enum hv_stub stub;
	siginfo_t si;
	hv_regs r;
	int e;

	e = hv_vcpu_get_regs(vt->vcpu, &r);
	if (e < 0)
		return e;
	stub = hv_stub_at(r.rip);
	if (stub == HV_STUB_VECTOR || stub == HV_STUB_SYSCALL) {
		vt->signals_held = true;
		if (stub == HV_STUB_VECTOR)
			hv_vcpu_fault_held(vt->vcpu);	/* if the guest handles it, an exit */
		return hv_vcpu_set_sigmask(vt->vcpu, ~UNBLOCKABLE);
	}
	if (!take(~vt->mask, &si, false))
		return 0;
	return rt_signal_deliver(vt, &si, &r, vt->mask, NULL, NULL);
}

int rt_signal_release(struct vthread *vt)
{
	vt->signals_held = false;
	return hv_vcpu_set_sigmask(vt->vcpu, vt->mask);
}

int rt_signal_suspend(struct vthread *vt, hv_regs *r, uint64_t during)
{
	uint64_t saved = vt->mask;
	siginfo_t si;
	int e;

	hv_regs_sysret(r, -EINTR);
	for (;;) {
		take(~during, &si, true);
		vt->mask = during;
		e = rt_signal_deliver(vt, &si, r, saved, NULL, NULL);
		if (e)
			return e;	/* a handler runs, then the call returns EINTR */
		vt->mask = saved;
	}
}

int rt_signal_return(struct vthread *vt, hv_regs *r)
{
	struct kvm_xsave *x = &vt->xsave;
	struct sigframe f;
	uint64_t mask;
	int e;

	if (mm_copy_in(&f, (void *)(uintptr_t)(r->rsp - 8), sizeof(f)) < 0)
		return -EFAULT;
	load_gregs(r, f.uc.uc_mcontext.gregs);
	if (f.uc.uc_mcontext.fpregs) {
		memset(x, 0, sizeof(*x));
		if (mm_copy_in(x, f.uc.uc_mcontext.fpregs, rt.xsave_size) < 0)
			return -EFAULT;
		e = hv_vcpu_set_xsave(vt->vcpu, x);
		if (e < 0)
			return e;
	}
	memcpy(&mask, &f.uc.uc_sigmask, sizeof(mask));
	e = rt_signal_set_mask(vt, mask);
	return e ? e : hv_vcpu_set_regs(vt->vcpu, r);
}
