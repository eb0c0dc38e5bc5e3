/* SPDX-License-Identifier: MIT */
/*
 * A crashed vthread's backtrace, for its fault report: libdw unwinds the
 * guest's stack from the guest's registers (CFI, so frames without a frame
 * pointer too) and names every frame, static functions included. libdw
 * allocates, and the guest may have died holding malloc's lock (or the
 * loader's, or stdio's), which this thread would then wait for forever. So
 * the unwinding runs in a child made with a bare clone: a copy of the process
 * as it was (no fork handlers, which take those locks), that writes the frames
 * to stderr and exits, and is killed if it is not done in time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"
#include "rt_dw.h"

#define MAX_FRAMES	64
#define WAIT_MS		10000	/* libdw reading a large binary's CFI, under an emulator */

struct unwind {
	Dwarf_Word regs[17];	/* DWARF's x86-64 order: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip */
	Dwfl *dwfl;
	int frames;
};

static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (n > 0)
		rt_syscall6(SYS_write, STDERR_FILENO, (long)line, n, 0, 0, 0);
}

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_arg)
{
	(void)dwfl;
	if (*thread_arg)
		return 0;
	*thread_arg = arg;
	return getpid();
}

/* The guest's memory is this process's (GVA == HVA); a bad pointer ends the walk. */
static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	(void)dwfl, (void)arg;
	return mm_copy_in(result, (void *)(uintptr_t)addr, sizeof(*result)) == 0;
}

static bool initial_registers(Dwfl_Thread *thread, void *arg)
{
	struct unwind *u = arg;

	return rt_dw.thread_state_registers(thread, 0, 17, u->regs);
}

static const Dwfl_Thread_Callbacks callbacks = {
	.next_thread = next_thread,
	.memory_read = memory_read,
	.set_initial_registers = initial_registers,
};

static int frame(Dwfl_Frame *state, void *arg)
{
	struct unwind *u = arg;
	const char *name = NULL, *module = NULL, *base;
	Dwarf_Addr pc, at, rel;
	bool activation;
	Dwfl_Module *m;
	GElf_Off off = 0;
	GElf_Sym sym;

	if (!rt_dw.frame_pc(state, &pc, &activation))
		return DWARF_CB_ABORT;
	at = activation ? pc : pc - 1;	/* a return address may start the next function */
	if ((m = rt_dw.addrmodule(u->dwfl, at))) {
		module = rt_dw.module_info(m, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		name = rt_dw.module_addrinfo(m, at, &off, &sym, NULL, NULL, NULL);
	}
	rel = at;
	if (!m || rt_dw.module_relocate_address(m, &rel) < 0)
		rel = at;
	rel += pc - at;
	base = !module ? "?" : strrchr(module, '/') ? strrchr(module, '/') + 1 : module;
	if (name)
		put("libvthread:     #%-2d 0x%016" PRIx64 " %s+0x%" PRIx64 " (%s+%#" PRIx64 ")\n",
		    u->frames, (uint64_t)pc, name, (uint64_t)(off + pc - at), base, (uint64_t)rel);
	else
		put("libvthread:     #%-2d 0x%016" PRIx64 " ?? (%s+%#" PRIx64 ")\n", u->frames,
		    (uint64_t)pc, base, (uint64_t)rel);
	return ++u->frames < MAX_FRAMES ? DWARF_CB_OK : DWARF_CB_ABORT;
}

static void __attribute__((noreturn)) unwind(struct unwind *u)
{
	int r = 1;

	if (!rt_dw_load()) {
		put("libvthread:   no backtrace: libdw.so.1 not found (Debian: libdw1)\n");
	} else if (!(u->dwfl = rt_dw.begin(&rt_dw.callbacks)) || !rt_dw_report(u->dwfl) ||
		   !rt_dw.attach_state(u->dwfl, NULL, getpid(), &callbacks, u)) {
		put("libvthread:   no backtrace: %s\n", rt_dw.errmsg(-1));
	} else {
		put("libvthread:   backtrace:\n");
		/* it ends where CFI does (the runtime's entry code) or at a bad frame */
		rt_dw.getthread_frames(u->dwfl, getpid(), frame, u);
		r = 0;
	}
	rt_syscall6(SYS_exit_group, r, 0, 0, 0, 0, 0);
	__builtin_unreachable();
}

void rt_backtrace(const hv_regs *r, uint64_t rip, uint64_t rsp)
{
	struct unwind u = {
		.regs = { r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi, r->rbp, rsp, r->r8, r->r9,
			  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, rip },
	};
	const struct timespec tick = { 0, 10000000 };
	long pid;

	/* No exit signal: the child is no one's but ours, a SIGCHLD handler never sees
	 * it; untraced: a debugger would take it for a thread of this process. */
	pid = rt_syscall6(SYS_clone, CLONE_UNTRACED, 0, 0, 0, 0, 0);
	if (pid == 0)
		unwind(&u);
	if (pid < 0) {
		put("libvthread:   no backtrace: clone: %s\n", strerror(-pid));
		return;
	}
	for (int ms = 0; ms < WAIT_MS; ms += 10) {
		int status = 0;
		long w = rt_syscall6(SYS_wait4, pid, (long)&status, WNOHANG | __WCLONE, 0, 0, 0);

		if (w == pid && WIFSIGNALED(status))	/* under gdb: its breakpoint in dlopen */
			put("libvthread:   (no backtrace: the unwinding child died of %s%s)\n",
			    strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGTRAP ?
			    ", a debugger's breakpoint: the debugger has the backtrace" : "");
		if (w == pid || w == -ECHILD)
			return;
		rt_syscall6(SYS_nanosleep, (long)&tick, 0, 0, 0, 0, 0);
	}
	rt_syscall6(SYS_kill, pid, SIGKILL, 0, 0, 0, 0);
	rt_syscall6(SYS_wait4, pid, 0, __WCLONE, 0, 0, 0);
	put("libvthread:   (backtrace given up after %d s: the vthread may have died holding a"
	    " lock libdw needs, malloc's or the loader's)\n", WAIT_MS / 1000);
}
