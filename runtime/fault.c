/* SPDX-License-Identifier: MIT */
/*
 * A vthread that faults is reported like kvmtool reports a dead guest (fault,
 * address, registers, the symbol at RIP and the code around it), with how the
 * mirror maps the faulting address and a backtrace (backtrace.c); then the
 * process gets the signal the same fault would have raised in a pthread, so
 * crash handlers, core dumps and a parent's waitpid() see what they would have
 * seen. Nothing here allocates or takes a lock the guest may have held.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"
#include "rt.h"

#define CODE_BEFORE	32	/* bytes of code shown before RIP, and from it */
#define CODE_FROM	16

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

/* The code around rip, rip's byte marked; what of it is readable. */
static void code(struct report *rp, uint64_t rip)
{
	unsigned char b[CODE_BEFORE + CODE_FROM];
	uint64_t lo = rip - CODE_BEFORE, hi = rip + CODE_FROM, page = rip & ~(MM_PAGE_SIZE - 1);

	if (mm_copy_in(b, (void *)(uintptr_t)lo, hi - lo) < 0) {
		lo = lo < page ? page : lo;	/* the part on rip's own page */
		hi = hi > page + MM_PAGE_SIZE ? page + MM_PAGE_SIZE : hi;
		if (mm_copy_in(b, (void *)(uintptr_t)lo, hi - lo) < 0)
			return;
	}
	say(rp, "\nlibvthread:   code:");
	for (uint64_t a = lo; a < hi; a++)
		say(rp, a == rip ? " <%02x>" : " %02x", b[a - lo]);
}

static void registers(struct report *rp, const hv_regs *r, uint64_t rip, uint64_t rsp,
		      uint64_t rflags)
{
	Dl_info di;

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
	code(rp, rip);
	say(rp, "\n");
}

struct mapping {
	struct report *rp;
	uint64_t addr;
	bool found;
};

/* Says the line of the maps that holds m->addr, if this is it. */
static bool mapping_line(char *line, void *arg)
{
	struct mapping *m = arg;
	char *end;
	uint64_t lo = strtoull(line, &end, 16);

	if (*end != '-' || m->addr < lo || m->addr >= strtoull(end + 1, NULL, 16))
		return false;
	say(m->rp, "libvthread:   host mapping: %s\n", line);
	return m->found = true;
}

/* How the mirror reaches addr: its GiB's memslot, the guest's entries, the host's mapping. */
static void walk(struct report *rp, uint64_t addr)
{
	uint64_t gib = addr & ~(MM_CHUNK - 1);
	struct mapping m = { rp, addr, false };
	struct mm_walk w;

	mm_walk(&rt.mm, addr, &w);
	say(rp, "libvthread:   mirror of 0x%llx: GiB 0x%llx ", (unsigned long long)addr,
	    (unsigned long long)gib);
	if (w.slot < 0)
		say(rp, "has no memslot\n");
	else if (!w.linked)
		say(rp, "has memslot %d, not linked in the guest's tables\n", w.slot);
	else if (w.huge)
		say(rp, "is memslot %d, mapped by one 1 GiB entry\n", w.slot);
	else if (!(w.pde & MM_PTE_P))
		say(rp, "is memslot %d; its 2 MiB entry is not present\n", w.slot);
	else if (w.pde & MM_PTE_PS)
		say(rp, "is memslot %d; 2 MiB entry 0x%llx\n", w.slot, (unsigned long long)w.pde);
	else
		say(rp, "is memslot %d; 2 MiB entry split, 4 KiB entry 0x%llx (%s%s%s,"
			" vthread_mprotect)\n", w.slot, (unsigned long long)w.pte,
		    w.pte & MM_PTE_P ? "r" : "-", w.pte & MM_PTE_RW ? "w" : "-",
		    w.pte & MM_PTE_NX ? "-" : "x");
	if (mm_maps_each(mapping_line, &m) == 0 && !m.found)
		say(rp, "libvthread:   host mapping: none\n");
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

/*
 * Whether the faulting instruction faults the same way run natively, on this
 * thread, with the guest's registers: an access where the process maps
 * nothing, one the host refused, a divide error, a ud2. Another fault (a
 * guest protection, a missing CPU feature) might not, and the guest's code
 * must not go on running on the host. (Another thread mapping the address in
 * between is a race the program lost either way: its access then succeeds.)
 */
static bool refaults_natively(const struct hv_exit *ex, uint64_t rip)
{
	uint64_t page = ex->cr2 & ~(MM_PAGE_SIZE - 1);
	unsigned char op[2];

	if (ex->kind == HV_EXIT_EFAULT)
		return ex->cr2 != 0;
	if (ex->kind != HV_EXIT_EXCEPTION)
		return false;
	switch (ex->vector) {
	case HV_VECTOR_PF:
		return !(ex->frame.error & 1) && !mm_host_mapped(page, page + MM_PAGE_SIZE);
	case 0:
		return true;
	case 6:		/* ud2, ud1, ud0 */
		return mm_copy_in(op, (void *)(uintptr_t)rip, 2) == 0 && op[0] == 0x0f &&
		       (op[1] == 0x0b || op[1] == 0xb9 || op[1] == 0xff);
	default:
		return false;
	}
}

/*
 * Runs the faulting instruction again on this thread with the guest's
 * registers, stack, FS base and signal mask, where it faults as it did in the
 * guest: the kernel then delivers its own signal (siginfo included) to a thread
 * whose registers are the guest's, which a debugger stopping on it and a core
 * dump show, with the guest's stack to unwind. Only once per process: a second
 * vthread dying meanwhile raises its signal as before.
 */
static void refault_natively(struct vthread *vt, const struct hv_exit *ex, uint64_t rip,
			     uint64_t rsp, uint64_t rflags)
{
	static atomic_flag once = ATOMIC_FLAG_INIT;
	struct kvm_xsave x __attribute__((aligned(64)));	/* XRSTOR's alignment */
	struct rt_native_clone c;
	hv_regs r = ex->regs;

	r.rip = rip;
	r.rsp = rsp;
	r.rflags = rflags;
	if (!refaults_natively(ex, rip) || !rt_native_ready(&r) || atomic_flag_test_and_set(&once))
		return;
	if (rt_native_guest(vt, &r, &c, &x) < 0) {	/* the core's vector registers too */
		c.mxcsr = 0x1f80;	/* the ABI's defaults */
		c.fcw = 0x37f;
	}
	rt_native_enter(&c);
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
	rt_backtrace(r, r->rcx, r->rsp);
	raise_fault_signal(SIGSEGV);
}

void rt_fault(struct vthread *vt, const struct hv_exit *ex)
{
	bool frame = ex->kind == HV_EXIT_EXCEPTION;
	uint64_t rip, rsp = frame ? ex->frame.rsp : ex->regs.rsp;
	struct report rp = { .len = 0 };
	int signo;

	say(&rp, "libvthread: vthread %llu (tid %d) ", (unsigned long long)vt->id, gettid());
	signo = describe(&rp, ex, &rip);
	registers(&rp, &ex->regs, rip, rsp, frame ? ex->frame.rflags : ex->regs.rflags);
	if ((frame && ex->vector == HV_VECTOR_PF) ||
	    (ex->kind == HV_EXIT_EFAULT && ex->cr2))
		walk(&rp, ex->cr2);
	flush(&rp);
	rt_backtrace(&ex->regs, rip, rsp);
	refault_natively(vt, ex, rip, rsp, frame ? ex->frame.rflags : ex->regs.rflags);
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
