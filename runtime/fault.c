/* SPDX-License-Identifier: MIT */
/*
 * A vthread that faults is reported like kvmtool reports a dead guest (fault,
 * address, registers, the symbol and code at RIP), then the process gets the
 * signal the same fault would have raised in a pthread, so crash handlers, core
 * dumps and a parent's waitpid() see what they would have seen.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

struct report {
	char buf[2048];
	size_t len;
};

static void say(struct report *rp, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (rp->len >= sizeof(rp->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(rp->buf + rp->len, sizeof(rp->buf) - rp->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		rp->len += n;
	if (rp->len > sizeof(rp->buf))
		rp->len = sizeof(rp->buf);
}

/* Not stdio: the guest may have died holding stderr's lock, which it shares
 * with this thread; not write(): a cancellation point, which would act on the
 * guest's cancellation. */
static void flush(struct report *rp)
{
	if (rt_syscall6(SYS_write, STDERR_FILENO, (long)rp->buf, rp->len, 0, 0, 0) < 0)
		return;
	rp->len = 0;
}

static const struct {
	int signo;
	const char *name;
} vectors[HV_NR_VECTORS] = {
	[0] = { SIGFPE, "divide error" },
	[1] = { SIGTRAP, "debug trap" },
	[3] = { SIGTRAP, "breakpoint" },
	[4] = { SIGSEGV, "overflow" },
	[5] = { SIGSEGV, "bound range exceeded" },
	[6] = { SIGILL, "invalid opcode" },
	[7] = { SIGSEGV, "device not available" },
	[8] = { SIGSEGV, "double fault" },
	[10] = { SIGSEGV, "invalid TSS" },
	[11] = { SIGBUS, "segment not present" },
	[12] = { SIGBUS, "stack-segment fault" },
	[13] = { SIGSEGV, "general protection fault" },
	[HV_VECTOR_PF] = { SIGSEGV, "page fault" },
	[16] = { SIGFPE, "x87 floating-point exception" },
	[17] = { SIGBUS, "alignment check" },
	[18] = { SIGBUS, "machine check" },
	[19] = { SIGFPE, "SIMD floating-point exception" },
};

static int describe(struct report *rp, const struct hv_exit *ex, uint64_t *rip)
{
	int signo = SIGSEGV;

	*rip = ex->regs.rip;
	switch (ex->kind) {
	case HV_EXIT_EXCEPTION:
		*rip = ex->frame.rip;
		if (vectors[ex->vector].name)
			signo = vectors[ex->vector].signo;
		say(rp, "%s: %s (vector %d)", strsignal(signo),
		    vectors[ex->vector].name ? vectors[ex->vector].name : "exception", ex->vector);
		if (ex->vector == HV_VECTOR_PF)
			say(rp, " at address 0x%llx (%s, %s)", (unsigned long long)ex->cr2,
			    ex->frame.error & 16 ? "instruction fetch" :
			    ex->frame.error & 2 ? "write" : "read",
			    ex->frame.error & 1 ? "protection" : "not mapped");
		else if (ex->frame.error)
			say(rp, ", error code 0x%llx", (unsigned long long)ex->frame.error);
		break;
	case HV_EXIT_EFAULT:
		if (ex->cr2)
			say(rp, "%s: memory access refused by the host at address 0x%llx (the"
				" instruction's; unmapped, read-only or PROT_NONE memory)",
			    strsignal(signo), (unsigned long long)ex->cr2);
		else
			say(rp, "%s: memory access refused by the host (unmapped, read-only or"
				" PROT_NONE memory; the instruction names no address)", strsignal(signo));
		break;
	default:
		say(rp, "%s: the vCPU stopped (KVM exit reason %u, errno %d)", strsignal(signo),
		    ex->reason, ex->err);
		break;
	}
	return signo;
}

static void registers(struct report *rp, const hv_regs *r, uint64_t rip, uint64_t rsp,
		      uint64_t rflags)
{
	Dl_info di;
	unsigned char code[16];

	say(rp, "\nlibvthread:   rip 0x%016llx", (unsigned long long)rip);
	if (dladdr((void *)(uintptr_t)rip, &di) && di.dli_fname) {
		if (di.dli_sname)
			say(rp, " <%s+%#lx>", di.dli_sname, (unsigned long)(rip - (uintptr_t)di.dli_saddr));
		say(rp, " in %s", di.dli_fname);
	}
	say(rp, "\nlibvthread:   rax 0x%016llx rbx 0x%016llx rcx 0x%016llx rdx 0x%016llx"
		"\nlibvthread:   rsi 0x%016llx rdi 0x%016llx rbp 0x%016llx rsp 0x%016llx"
		"\nlibvthread:   r8  0x%016llx r9  0x%016llx r10 0x%016llx r11 0x%016llx"
		"\nlibvthread:   r12 0x%016llx r13 0x%016llx r14 0x%016llx r15 0x%016llx"
		"\nlibvthread:   rflags 0x%llx",
	    r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp,
	    (unsigned long long)rsp, r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14,
	    r->r15, (unsigned long long)rflags);
	if (mm_copy_in(code, (void *)(uintptr_t)rip, sizeof(code)) == 0) {
		say(rp, "\nlibvthread:   code at rip:");
		for (size_t i = 0; i < sizeof(code); i++)
			say(rp, " %02x", code[i]);
	}
	say(rp, "\n");
}

/* As the kernel forces a fault's signal: unblocked, and deadly if ignored. */
static void __attribute__((noreturn)) raise_fault_signal(int signo)
{
	struct sigaction sa;
	sigset_t set;

	sigaction(signo, NULL, &sa);
	if (sa.sa_handler == SIG_IGN)
		signal(signo, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	pthread_kill(pthread_self(), signo);
	/* A handler returned: a pthread would fault again at once; end as that ends. */
	signal(signo, SIG_DFL);
	pthread_kill(pthread_self(), signo);
	abort();
}

/* si_code of each vector's signal, as Linux fills it for a pthread. */
static int fault_code(const struct hv_exit *ex)
{
	switch (ex->vector) {
	case 0: return FPE_INTDIV;
	case 6: return ILL_ILLOPN;
	case HV_VECTOR_PF: return ex->frame.error & 1 ? SEGV_ACCERR : SEGV_MAPERR;
	case 16: case 19: return FPE_FLTINV;
	case 17: return BUS_ADRALN;
	default: return SI_KERNEL;
	}
}

int rt_fault_to_handler(struct vthread *vt, struct hv_exit *ex, int code)
{
	struct rt_sigtrap trap = { 0 };
	siginfo_t si = { 0 };
	hv_regs r = ex->regs;
	uint64_t addr = ex->cr2;

	if (ex->kind == HV_EXIT_EXCEPTION) {
		si.si_signo = vectors[ex->vector].name ? vectors[ex->vector].signo : SIGSEGV;
		si.si_code = fault_code(ex);
		trap = (struct rt_sigtrap){ ex->frame.error, ex->vector, ex->cr2 };
		addr = ex->vector == HV_VECTOR_PF ? ex->cr2 : si.si_code == SI_KERNEL ? 0 : ex->frame.rip;
		hv_regs_from_frame(&r, &ex->frame);
	} else if (ex->kind == HV_EXIT_EFAULT && addr) {
		si.si_signo = SIGSEGV;
		si.si_code = code;
		trap = (struct rt_sigtrap){ ex->frame.error, HV_VECTOR_PF, addr };
	} else {
		return 0;	/* without an address, a handler could only loop */
	}
	si.si_addr = (void *)(uintptr_t)addr;
	/* A blocked or default fault signal kills, as the kernel forces it. */
	if (!rt_signal_caught(vt, si.si_signo))
		return 0;
	return rt_signal_deliver(vt, &si, &r, vt->mask, &trap, NULL) == 1;
}

void rt_bad_frame(struct vthread *vt, const hv_regs *r)
{
	struct report rp = { .len = 0 };

	say(&rp, "libvthread: vthread %llu (tid %d) %s: rt_sigreturn found no valid signal frame"
		 " at 0x%llx", (unsigned long long)vt->id, gettid(), strsignal(SIGSEGV),
	    (unsigned long long)r->rsp - 8);
	registers(&rp, r, r->rcx, r->rsp, r->r11);
	flush(&rp);
	raise_fault_signal(SIGSEGV);
}

void rt_fault(struct vthread *vt, const struct hv_exit *ex)
{
	struct report rp = { .len = 0 };
	uint64_t rip;
	int signo;

	say(&rp, "libvthread: vthread %llu (tid %d) ", (unsigned long long)vt->id, gettid());
	signo = describe(&rp, ex, &rip);
	if (ex->kind == HV_EXIT_EXCEPTION)
		registers(&rp, &ex->regs, rip, ex->frame.rsp, ex->frame.rflags);
	else
		registers(&rp, &ex->regs, rip, ex->regs.rsp, ex->regs.rflags);
	flush(&rp);
	raise_fault_signal(signo);
}

void rt_die(struct vthread *vt, const char *what, int err)
{
	struct report rp = { .len = 0 };

	say(&rp, "libvthread: vthread %llu: internal error: %s%s%s\n",
	    (unsigned long long)vt->id, what, err < 0 ? ": " : "", err < 0 ? strerror(-err) : "");
	flush(&rp);
	abort();
}
