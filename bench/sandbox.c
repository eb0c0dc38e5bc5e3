/* SPDX-License-Identifier: MIT */
/*
 * The sandbox rows. Sandboxed: vthread_call into one sandbox that holds the
 * target's code and 64 MiB, reset after each case. Native, as the issue's
 * peers isolate: a child in seccomp strict mode (read, write, exit only)
 * that gets a request and answers over pipes, forked per call or kept; and
 * an AFL-style fork server, a child forked per case that dirties its pages
 * and exits.
 */
#define _GNU_SOURCE
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vthread.h>

#include "bench.h"

#define BIG	(64ul << 20)
#define PAGE	4096ul

/* The targets, naked so that they run as they are in the sandbox too. */
#define TARGET	__attribute__((naked, section("bench_sbox"), used))

extern const char __start_bench_sbox[], __stop_bench_sbox[];

TARGET static long target_empty(void)
{
	__asm__("xor %eax, %eax; ret");
}

/* Writes a byte to each of RSI pages of the 64 MiB at RDI: page i at
 * (i MiB + i pages) modulo 64 MiB, distinct for i below 256. */
TARGET static long target_dirty(void)
{
	__asm__("xor %ecx, %ecx; 1: cmp %rsi, %rcx; je 2f; mov %rcx, %rax; shl $20, %rax;"
		"mov %rcx, %rdx; shl $12, %rdx; add %rdx, %rax; and $0x3fff000, %rax;"
		"movb $1, (%rdi,%rax); inc %rcx; jmp 1b; 2: xor %eax, %eax; ret");
}

static struct {
	vthread_sandbox_t sb;
	vthread_attr_t attr;
	char *big;
	ffi_cif cif0, cif2;
} box;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void setup(void)
{
	static ffi_type *args[2] = { &ffi_type_pointer, &ffi_type_sint64 };
	uintptr_t lo = (uintptr_t)__start_bench_sbox & ~(PAGE - 1);
	uintptr_t hi = ((uintptr_t)__stop_bench_sbox + PAGE - 1) & ~(PAGE - 1);

	if (box.sb)
		return;
	box.big = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (box.big == MAP_FAILED)
		die("vthread-bench: mmap");
	memset(box.big, 7, BIG);
	if (vthread_sandbox_create(&box.sb) ||
	    vthread_sandbox_grant(box.sb, (void *)lo, hi - lo, PROT_READ | PROT_EXEC) ||
	    vthread_sandbox_grant(box.sb, box.big, BIG, PROT_READ | PROT_WRITE) ||
	    vthread_sandbox_snapshot(box.sb) || vthread_attr_init(&box.attr) ||
	    vthread_attr_setsandbox(&box.attr, box.sb))
		die("vthread-bench: sandbox");
	if (ffi_prep_cif(&box.cif0, FFI_DEFAULT_ABI, 0, &ffi_type_sint64, NULL) != FFI_OK ||
	    ffi_prep_cif(&box.cif2, FFI_DEFAULT_ABI, 2, &ffi_type_sint64, args) != FFI_OK)
		die("vthread-bench: ffi_prep_cif");
}

static void sandboxed_call(void)
{
	long ret;

	if (vthread_call(&box.attr, &box.cif0, (void (*)(void))target_empty, &ret, NULL))
		die("vthread-bench: sandboxed call");
}

/* In a child: strict mode, then answer each byte read with the call's result. */
static void __attribute__((noreturn)) serve(int req, int ans, long calls)
{
	char c;

	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) < 0)
		syscall(SYS_exit, 2);
	for (long i = 0; i < calls; i++) {
		if (read(req, &c, 1) != 1)
			break;
		c = (char)((long (*)(void))target_empty)();
		if (write(ans, &c, 1) != 1)
			break;
	}
	syscall(SYS_exit, 0);	/* exit_group is not allowed in strict mode */
	__builtin_unreachable();
}

static pid_t spawn_server(int *req, int *ans, long calls)
{
	int a[2], b[2];
	pid_t pid;

	if (pipe(a) < 0 || pipe(b) < 0)
		die("vthread-bench: pipe");
	pid = fork();
	if (pid < 0)
		die("vthread-bench: fork");
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		serve(a[0], b[1], calls);
	}
	close(a[0]);
	close(b[1]);
	*req = a[1];
	*ans = b[0];
	return pid;
}

static void ask(int req, int ans)
{
	char c = 0;

	if (write(req, &c, 1) != 1 || read(ans, &c, 1) != 1)
		die("vthread-bench: seccomp child");
}

static void reap(pid_t pid, int req, int ans)
{
	close(req);
	close(ans);
	if (waitpid(pid, NULL, 0) != pid)
		die("vthread-bench: waitpid");
}

double s_sandbox_call_fork(enum kind k)
{
	long n = ops(200);
	double t;

	setup();
	t = now_ns();
	for (long i = 0; i < n; i++) {
		int req, ans;
		pid_t pid;

		if (k == VTHREAD) {
			sandboxed_call();
			continue;
		}
		pid = spawn_server(&req, &ans, 1);
		ask(req, ans);
		reap(pid, req, ans);
	}
	return (now_ns() - t) / n;
}

double s_sandbox_call_pipe(enum kind k)
{
	long n = ops(200);
	int req = -1, ans = -1;
	pid_t pid = 0;
	double t;

	setup();
	if (k == PTHREAD)
		pid = spawn_server(&req, &ans, n);
	t = now_ns();
	for (long i = 0; i < n; i++) {
		if (k == VTHREAD)
			sandboxed_call();
		else
			ask(req, ans);
	}
	t = (now_ns() - t) / n;
	if (k == PTHREAD)
		reap(pid, req, ans);
	return t;
}

static double reset_case(enum kind k, long pages)
{
	long n = ops(100), ret;
	void *args[2] = { &box.big, &pages };
	double t;

	setup();
	t = now_ns();
	for (long i = 0; i < n; i++) {
		pid_t pid;

		if (k == VTHREAD) {
			if (vthread_call(&box.attr, &box.cif2, (void (*)(void))target_dirty, &ret, args) ||
			    vthread_sandbox_reset(box.sb))
				die("vthread-bench: sandboxed case");
			continue;
		}
		pid = fork();
		if (pid < 0)
			die("vthread-bench: fork");
		if (pid == 0) {
			long (*volatile fn)(char *, long) =
				(long (*)(char *, long))(void (*)(void))target_dirty;

			fn(box.big, pages);
			syscall(SYS_exit, 0);
		}
		if (waitpid(pid, NULL, 0) != pid)
			die("vthread-bench: waitpid");
	}
	return (now_ns() - t) / n;
}

double s_reset_1(enum kind k)
{
	return reset_case(k, 1);
}

double s_reset_16(enum kind k)
{
	return reset_case(k, 16);
}

double s_reset_256(enum kind k)
{
	return reset_case(k, 256);
}
