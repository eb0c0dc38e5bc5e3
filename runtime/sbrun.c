/* SPDX-License-Identifier: MIT */
/*
 * Running a vthread in its sandbox, on the backing thread or vthread_call's
 * caller. Each run starts from state the runtime writes afresh (code page,
 * IDT, TLS, page tables, descriptor tables, control registers, MSRs, FPU),
 * since the last run's code could change all of it. Every exit is untrusted: the only ones that do not
 * end the run are the `syscall` exit, whose call goes through the policy, and
 * the time limit's signal, which ends it when it is ours. Memory arguments of
 * allowed calls are checked against the grants before the host makes them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rt_sandbox.h"

/* A memory argument: pointer in argument ptr, its length in argument len or,
 * when len is -1, size bytes; may be NULL where nullable. */
struct mem_arg {
	signed char ptr, len;
	unsigned char size, prot;
	bool nullable;
};

#define FD	true	/* the call's first argument is a file descriptor */
#define NOFD	false

#define R	PROT_READ	/* the kernel reads it */
#define W	PROT_WRITE	/* the kernel writes it */
#define TS	16		/* struct timespec, struct timeval */
#define NONE	{ -1, -1, 0, 0, false }

static const struct checkable {
	short nr;
	struct mem_arg m[2];
	bool fd;
} calls[] = {
	{ SYS_read, { { 1, 2, 0, W, false }, NONE }, FD },
	{ SYS_write, { { 1, 2, 0, R, false }, NONE }, FD },
	{ SYS_pread64, { { 1, 2, 0, W, false }, NONE }, FD },
	{ SYS_pwrite64, { { 1, 2, 0, R, false }, NONE }, FD },
	{ SYS_close, { NONE, NONE }, FD },
	{ SYS_lseek, { NONE, NONE }, FD },
	{ SYS_getpid, { NONE, NONE }, NOFD },
	{ SYS_getppid, { NONE, NONE }, NOFD },
	{ SYS_gettid, { NONE, NONE }, NOFD },
	{ SYS_sched_yield, { NONE, NONE }, NOFD },
	{ SYS_clock_gettime, { { 1, -1, TS, W, false }, NONE }, NOFD },
	{ SYS_clock_getres, { { 1, -1, TS, W, true }, NONE }, NOFD },
	{ SYS_gettimeofday, { { 0, -1, TS, W, true }, { 1, -1, 8, W, true } }, NOFD },
	{ SYS_nanosleep, { { 0, -1, TS, R, false }, { 1, -1, TS, W, true } }, NOFD },
	{ SYS_clock_nanosleep, { { 2, -1, TS, R, false }, { 3, -1, TS, W, true } }, NOFD },
	{ SYS_getrandom, { { 0, 1, 0, W, false }, NONE }, NOFD },
};

static const struct checkable *checkable(long nr)
{
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		if (calls[i].nr == nr)
			return &calls[i];
	return NULL;
}

bool rt_sb_checkable(long nr)
{
	return nr >= 0 && nr < RT_SB_NR_MAX && checkable(nr);
}

static void violate(struct vthread_sandbox *sb, int kind, uint64_t addr, uint64_t ip, long nr,
		    int signo)
{
	pthread_mutex_lock(&sb->lock);
	sb->violation = (struct vthread_violation){
		.kind = kind,
		.addr = (void *)(uintptr_t)addr,
		.ip = ip,
		.syscall_nr = nr,
		.signo = signo,
	};
	sb->violations++;
	pthread_mutex_unlock(&sb->lock);
}

/* Whether fd is the runtime's: /dev/kvm, a VM's or a vCPU's (each sandbox's
 * too), which the process's policy never meant to hand out. */
static bool runtime_fd(long fd)
{
	char path[40], link[32];
	long n;

	snprintf(path, sizeof(path), "/proc/self/fd/%ld", fd);
	n = rt_syscall6(SYS_readlinkat, AT_FDCWD, (long)path, (long)link, sizeof(link) - 1, 0, 0);
	if (n <= 0)
		return false;
	link[n] = 0;
	return !strncmp(link, "anon_inode:kvm", 14) || !strcmp(link, "/dev/kvm");
}

/* The bytes memory argument m spans. */
static uint64_t mem_len(const struct mem_arg *m, const long *a)
{
	return m->len >= 0 ? (uint64_t)a[(int)m->len] : m->size;
}

/* The allowed call c with the guest's args, its memory checked: false for a violation. */
static bool make_allowed(struct vthread_sandbox *sb, const struct checkable *c,
			 const long *a, long *ret, const hv_regs *r)
{
	for (int i = 0; i < 2 && c->m[i].ptr >= 0; i++) {
		const struct mem_arg *m = &c->m[i];
		uint64_t p = a[(int)m->ptr], len = mem_len(m, a);

		if ((!p && m->nullable) || !len)
			continue;
		if (!mm_space_covers(&sb->space, p, len, m->prot)) {
			violate(sb, VTHREAD_VIOLATION_SYSCALL, p, r->rcx - HV_SYSCALL_LEN, c->nr, 0);
			return false;
		}
	}
	if (c->fd && runtime_fd(a[0])) {
		*ret = -EBADF;	/* not the process's to give: as if not open */
		return true;
	}
	*ret = rt_syscall6(c->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	for (int i = 0; i < 2 && c->m[i].ptr >= 0; i++) {
		const struct mem_arg *m = &c->m[i];

		if ((m->prot & W) && a[(int)m->ptr])
			mm_space_written(&sb->space, a[(int)m->ptr], mem_len(m, a));
	}
	return true;
}

/* The guest's `syscall` under the policy: false for a violation, else r is
 * what the guest returns to. */
static bool sb_syscall(struct vthread_sandbox *sb, hv_regs *r)
{
	const long a[6] = { r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9 };
	long nr = r->rax, ret = -ENOSYS;
	vthread_syscall_fn fn;
	bool allowed;
	void *ctx;

	pthread_mutex_lock(&sb->lock);
	allowed = nr >= 0 && nr < RT_SB_NR_MAX && (sb->allowed[nr / 64] >> (nr % 64) & 1);
	fn = sb->handler;
	ctx = sb->handler_ctx;
	pthread_mutex_unlock(&sb->lock);
	if (allowed) {
		if (!make_allowed(sb, checkable(nr), a, &ret, r))
			return false;
	} else if (fn) {
		ret = fn(nr, a, ctx);
	}
	hv_regs_sysret(r, ret);
	return true;
}

/* The signal a pthread gets for the exception, as Linux sends it. */
static int vector_signal(int v)
{
	switch (v) {
	case 0: case 16: case 19:
		return SIGFPE;
	case 1: case 3:
		return SIGTRAP;
	case 6:
		return SIGILL;
	case 11: case 12: case 17:
		return SIGBUS;
	default:
		return SIGSEGV;
	}
}

/* The run's first state: fn(args) on the sandbox's stack, returning to its code page. */
static int arm(struct vthread_sandbox *sb, const struct rt_sb_run *run)
{
	char *region = sb->space.region;
	uint64_t *tls = (uint64_t *)(region + MM_SB_TLS * MM_PAGE_SIZE + MM_PAGE_SIZE / 2);
	uint64_t *sp = (uint64_t *)(region + (MM_SB_STACK + MM_SB_STACK_PAGES) * MM_PAGE_SIZE) - 1;
	hv_regs regs = {
		.rip = (uintptr_t)run->fn,
		.rdi = run->args[0], .rsi = run->args[1], .rdx = run->args[2],
		.rcx = run->args[3], .r8 = run->args[4], .r9 = run->args[5],
		.rsp = (uintptr_t)sp,
		.rflags = 2,
	};
	int r;

	/* An `out` the last run ended with (a forged one too) KVM would finish at
	 * the next entry, skipping an instruction where RIP is the same. */
	r = hv_vcpu_settle(&sb->vcpu);
	if (!r)
		r = hv_vcpu_scrub(&sb->vcpu);
	if (r < 0)
		return r;
	/* A canary of its own per run: one run's code learns nothing of the next's. */
	if (getrandom(&sb->canary, sizeof(sb->canary), GRND_NONBLOCK) == sizeof(sb->canary))
		sb->canary &= ~0xffull;
	memcpy(region + MM_SB_CODE * MM_PAGE_SIZE, hv_sb_code, hv_sb_code_end - hv_sb_code);
	hv_idt_fill_sandbox(sb->lay.idt, sb->lay.code);
	/* The TCB in the middle of its page, static TLS below it: what glibc's
	 * code reads at %fs:0 (self), %fs:0x10 (self) and %fs:0x28 (canary). */
	memset(region + MM_SB_TLS * MM_PAGE_SIZE, 0, MM_PAGE_SIZE);
	tls[0] = tls[2] = (uintptr_t)tls;
	tls[5] = sb->canary;
	*sp = sb->lay.code + HV_SB_RETURN;	/* fn's return address; RSP + 8 16-aligned */
	r = mm_space_rearm(&sb->space);
	if (!r)
		r = hv_vcpu_rearm(&sb->vcpu, &sb->lay);
	if (!r)
		r = hv_vcpu_set_fs_base(&sb->vcpu, (uintptr_t)tls);
	if (!r)
		r = hv_vcpu_set_regs(&sb->vcpu, &regs);
	return r;
}

/* A CPU-time timer for this thread that sends it RT_SIGSANDBOX, run its value. */
static int timer_start(struct vthread_sandbox *sb, struct rt_sb_run *run, timer_t *t)
{
	struct sigevent ev = {
		.sigev_notify = SIGEV_THREAD_ID,
		.sigev_signo = RT_SIGSANDBOX,
		.sigev_value.sival_ptr = run,
	};
	struct itimerspec its = {
		.it_value = { sb->time_limit / 1000000000, sb->time_limit % 1000000000 },
	};

	ev._sigev_un._tid = gettid();	/* glibc 2.36 has no name for it */
	if (timer_create(CLOCK_THREAD_CPUTIME_ID, &ev, t) < 0)
		return -errno;
	if (timer_settime(*t, 0, &its, NULL) < 0) {
		int r = -errno;

		timer_delete(*t);
		return r;
	}
	return 0;
}

/* After KVM_RUN gave way to a signal: true when it was the time limit's. A
 * process-directed RT_SIGSANDBOX this thread took in KVM_RUN goes back to
 * the process. */
static bool timed_out(const struct rt_sb_run *run)
{
	uint64_t set = 1ull << (RT_SIGSANDBOX - 1);
	struct timespec zero = { 0, 0 };
	siginfo_t si;

	while (rt_syscall6(SYS_rt_sigtimedwait, (long)&set, (long)&si, (long)&zero, sizeof(set),
			   0, 0) == RT_SIGSANDBOX) {
		if (si.si_code == SI_TIMER && si.si_value.sival_ptr == run)
			return true;
		rt_syscall6(SYS_rt_sigqueueinfo, getpid(), RT_SIGSANDBOX, (long)&si, 0, 0, 0);
	}
	return false;
}

/* In the process's counters and the vthread's, as dispatch.c counts. */
static void count(struct rt_sb_run *run, int which)
{
	rt.exits[which]++;
	if (run->counts)
		rt_count(&run->counts->exits[which]);
}

/* One exit: true to run on. */
static bool sb_exit(struct vthread_sandbox *sb, struct rt_sb_run *run, struct hv_exit *ex)
{
	uint64_t ip = ex->regs.rip;

	switch (ex->kind) {
	case HV_EXIT_SYSCALL:
		count(run, RT_EXIT_SYSCALL);
		if (!sb_syscall(sb, &ex->regs))
			break;
		if (hv_vcpu_set_regs(&sb->vcpu, &ex->regs) < 0) {
			run->err = -EIO;
			return false;
		}
		return true;
	case HV_EXIT_END:
		count(run, RT_EXIT_END);
		run->retval = (void *)(uintptr_t)ex->regs.rax;
		return false;
	case HV_EXIT_SIGNAL:
		count(run, RT_EXIT_SIGNAL);
		if (!timed_out(run))
			return true;
		hv_vcpu_get_regs(&sb->vcpu, &ex->regs);
		violate(sb, VTHREAD_VIOLATION_TIME, 0, ex->regs.rip, -1, 0);
		break;
	case HV_EXIT_EXCEPTION:
		count(run, RT_EXIT_FAULT);
		if (ex->vector == HV_VECTOR_PF)
			violate(sb, VTHREAD_VIOLATION_MEMORY, ex->cr2, ex->frame.rip, -1, SIGSEGV);
		else
			violate(sb, VTHREAD_VIOLATION_FAULT, 0, ex->frame.rip, -1,
				vector_signal(ex->vector));
		break;
	case HV_EXIT_EFAULT:
		count(run, RT_EXIT_FAULT);
		violate(sb, VTHREAD_VIOLATION_MEMORY, 0, ip, -1, SIGSEGV);
		break;
	default:
		count(run, RT_EXIT_OTHER);
		if (ex->kind == HV_EXIT_FAIL && ex->reason == KVM_EXIT_MMIO)
			violate(sb, VTHREAD_VIOLATION_MEMORY, mm_space_hva(&sb->space, ex->gpa), ip,
				-1, SIGSEGV);
		else
			violate(sb, VTHREAD_VIOLATION_EXIT, 0, ip, -1, 0);
		break;
	}
	run->retval = VTHREAD_SANDBOX_VIOLATION;
	run->violated = true;
	return false;
}

int rt_sandbox_run(struct vthread_sandbox *sb, struct rt_sb_run *run)
{
	bool timed = sb->time_limit != 0;
	struct hv_exit ex;
	timer_t timer;
	int r;

	r = arm(sb, run);
	if (!r && timed)
		r = timer_start(sb, run, &timer);
	if (r < 0)
		return r;
	do {
		uint64_t t0 = rt_now_ns();

		r = hv_vcpu_run(&sb->vcpu, &ex);
		if (run->counts)
			run->counts->guest_ns += rt_now_ns() - t0;
	} while (r == 0 && sb_exit(sb, run, &ex));
	if (timed) {
		timer_delete(timer);
		timed_out(run);	/* a signal it queued before: taken, not left pending */
	}
	return r < 0 ? r : run->err;
}

void rt_sandbox_main(struct vthread *vt)
{
	struct rt_sb_run run = { .fn = (void *)vt->fn, .counts = &vt->counts };
	int r;

	memcpy(run.args, vt->sb_args, sizeof(run.args));
	rt_signal_block_host();
	r = rt_sandbox_run(vt->sandbox, &run);
	if (r < 0)
		rt_die(vt, "lost its sandbox's vCPU", r);
	vt->retval = run.retval;
	rt_sandbox_release(vt->sandbox);
}
