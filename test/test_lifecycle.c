/* SPDX-License-Identifier: MIT */
/* Create, join, detach, exit, self and equal, with pthread's error numbers. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"

static void *return_arg_plus_one(void *arg)
{
	return (char *)arg + 1;
}

START_TEST(test_join_returns_value)
{
	vthread_t vt;
	void *ret = NULL;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, return_arg_plus_one, (void *)41), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)42);
}
END_TEST

#define MANY 64
#define ELEMS 4096
static uint64_t squares[MANY][ELEMS];

static void *fill_squares(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	uint64_t sum = 0;

	for (uint64_t j = 0; j < ELEMS; j++) {
		squares[i][j] = (i + 1) * j * j;
		sum += squares[i][j];
	}
	return (void *)(uintptr_t)sum;
}

START_TEST(test_64_vthreads_compute_into_shared_arrays)
{
	vthread_t vt[MANY];

	require_backend();
	for (uintptr_t i = 0; i < MANY; i++)
		ck_assert_int_eq(vthread_create(&vt[i], NULL, fill_squares, (void *)i), 0);
	for (uintptr_t i = 0; i < MANY; i++) {
		void *ret;
		uint64_t expect = 0;

		ck_assert_int_eq(vthread_join(vt[i], &ret), 0);
		for (uint64_t j = 0; j < ELEMS; j++) {
			ck_assert_uint_eq(squares[i][j], (i + 1) * j * j);
			expect += (i + 1) * j * j;
		}
		ck_assert_uint_eq((uintptr_t)ret, expect);
	}
}
END_TEST

static void *exit_early(void *arg)
{
	vthread_exit((char *)arg + 7);
	return NULL;
}

START_TEST(test_vthread_exit_gives_join_its_value)
{
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, exit_early, (void *)1), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)8);
}
END_TEST

static void *report_self(void *arg)
{
	*(vthread_t *)arg = vthread_self();
	return NULL;
}

START_TEST(test_self_and_equal)
{
	vthread_t vt, seen = NULL;

	require_backend();
	ck_assert_ptr_null(vthread_self());
	ck_assert_int_eq(vthread_create(&vt, NULL, report_self, &seen), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert(vthread_equal(seen, vt));
	ck_assert(!vthread_equal(seen, NULL));
}
END_TEST

/* Waits for the host's go, then reads its own thread name with a system call. */
static void *name_after_go(void *arg)
{
	static char name[16];

	while (!atomic_load((atomic_int *)arg))
		usleep(1000);
	if (prctl(PR_GET_NAME, name) < 0)
		return NULL;
	return name;
}

START_TEST(test_vthread_pthread_takes_a_name_and_an_affinity)
{
	atomic_int go = 0;
	cpu_set_t allowed, one, got;
	char name[16];
	vthread_t vt;
	pthread_t t;
	void *ret;
	int cpu = 0;

	require_backend();
	ck_assert_int_eq(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
	while (!CPU_ISSET(cpu, &allowed))
		cpu++;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	ck_assert_int_eq(vthread_create(&vt, NULL, name_after_go, &go), 0);
	t = vthread_pthread(vt);
	ck_assert(!pthread_equal(t, pthread_self()));
	ck_assert_int_eq(pthread_setname_np(t, "vt-named"), 0);
	ck_assert_int_eq(pthread_getname_np(t, name, sizeof(name)), 0);
	ck_assert_str_eq(name, "vt-named");
	ck_assert_int_eq(pthread_setaffinity_np(t, sizeof(one), &one), 0);
	ck_assert_int_eq(pthread_getaffinity_np(t, sizeof(got), &got), 0);
	ck_assert(CPU_EQUAL(&got, &one));
	go = 1;
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_nonnull(ret);
	ck_assert_str_eq(ret, "vt-named");	/* the vthread's own thread has the name */
	ck_assert(pthread_equal(vthread_pthread(NULL), (pthread_t)0));
}
END_TEST

static void *join_self(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)vthread_join(vthread_self(), NULL);
}

START_TEST(test_join_errors_match_pthread)
{
	vthread_t vt;
	void *ret;
	int dummy;

	require_backend();
	ck_assert_int_eq(vthread_join((vthread_t)&dummy, NULL), ESRCH);
	ck_assert_int_eq(vthread_join(NULL, NULL), ESRCH);
	ck_assert_int_eq(vthread_detach((vthread_t)&dummy), ESRCH);

	ck_assert_int_eq(vthread_create(&vt, NULL, join_self, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, EDEADLK);
	ck_assert_int_eq(vthread_join(vt, NULL), ESRCH);	/* already joined */
}
END_TEST

static volatile int detached_done;

static void *mark_done(void *arg)
{
	(void)arg;
	__atomic_store_n(&detached_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

START_TEST(test_detached_vthreads_are_reaped)
{
	vthread_attr_t a;
	vthread_t vt;
	struct vthread_stats st = VTHREAD_STATS_INIT;

	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setdetachstate(&a, VTHREAD_CREATE_DETACHED), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, mark_done, NULL), 0);
	for (int i = 0; i < 10000 && !__atomic_load_n(&detached_done, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	ck_assert_int_eq(detached_done, 1);
	for (int i = 0; i < 5000; i++) {
		vthread_get_stats(&st);
		if (st.vthreads_live == 0)
			break;
		usleep(1000);
	}
	ck_assert_uint_eq(st.vthreads_live, 0);

	detached_done = 0;
	ck_assert_int_eq(vthread_create(&vt, NULL, mark_done, NULL), 0);
	ck_assert_int_eq(vthread_detach(vt), 0);
	ck_assert_int_eq(vthread_attr_destroy(&a), 0);
}
END_TEST

/* Blocks until told, so that its handle stays valid while the test uses it. */
static volatile int go;

static void *wait_go(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST))
		sched_yield();
	return NULL;
}

START_TEST(test_detach_then_join_is_einval)
{
	vthread_attr_t a;
	vthread_t vt;

	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, wait_go, NULL), 0);
	ck_assert_int_eq(vthread_detach(vt), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), EINVAL);
	ck_assert_int_eq(vthread_detach(vt), EINVAL);
	__atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
}
END_TEST

START_TEST(test_create_errors_match_pthread)
{
	vthread_attr_t a, junk;
	vthread_t vt;
	size_t sz;
	void *addr;
	int st;

	require_backend();
	ck_assert_int_eq(vthread_create(NULL, NULL, return_arg_plus_one, NULL), EINVAL);
	ck_assert_int_eq(vthread_create(&vt, NULL, NULL, NULL), EINVAL);
	memset(&junk, 0xa5, sizeof(junk));
	ck_assert_int_eq(vthread_create(&vt, &junk, return_arg_plus_one, NULL), EINVAL);

	ck_assert_int_eq(vthread_attr_init(NULL), EINVAL);
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setstacksize(&a, PTHREAD_STACK_MIN - 1), EINVAL);
	ck_assert_int_eq(vthread_attr_setstacksize(&a, 1 << 20), 0);
	ck_assert_int_eq(vthread_attr_getstacksize(&a, &sz), 0);
	ck_assert_uint_eq(sz, 1 << 20);
	ck_assert_int_eq(vthread_attr_setdetachstate(&a, 7), EINVAL);
	ck_assert_int_eq(vthread_attr_getdetachstate(&a, &st), 0);
	ck_assert_int_eq(st, VTHREAD_CREATE_JOINABLE);
	ck_assert_int_eq(vthread_attr_setstack(&a, NULL, 1 << 20), EINVAL);
	ck_assert_int_eq(vthread_attr_setstack(&a, &a, 16), EINVAL);
	ck_assert_int_eq(vthread_attr_getstack(&a, &addr, &sz), 0);
	ck_assert_int_eq(vthread_attr_destroy(&a), 0);
	ck_assert_int_eq(vthread_attr_destroy(&a), EINVAL);	/* destroyed is not initialised */
	ck_assert_int_eq(vthread_create(&vt, &a, return_arg_plus_one, NULL), EINVAL);
}
END_TEST

static size_t default_size(void)
{
	vthread_attr_t a;
	size_t sz = 0;

	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_getstacksize(&a, &sz), 0);
	vthread_attr_destroy(&a);
	return sz;
}

/* A vthread's default stack size is a pthread's: what pthread_setattr_default_np
 * set, and RLIMIT_STACK as the process started, not as it was changed later. */
START_TEST(test_default_stack_size_is_a_pthreads)
{
	struct rlimit rl = { 1 << 20, 1 << 20 };
	pthread_attr_t d, set;
	size_t want;

	ck_assert_int_eq(pthread_getattr_default_np(&d), 0);
	ck_assert_int_eq(pthread_attr_getstacksize(&d, &want), 0);
	ck_assert_uint_eq(default_size(), want);
	ck_assert_int_eq(pthread_attr_init(&set), 0);
	ck_assert_int_eq(pthread_attr_setstacksize(&set, 3 << 20), 0);
	ck_assert_int_eq(pthread_setattr_default_np(&set), 0);
	ck_assert_uint_eq(default_size(), 3 << 20);
	ck_assert_int_eq(pthread_setattr_default_np(&d), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_STACK, &rl), 0);
	ck_assert_uint_eq(default_size(), want);
	pthread_attr_destroy(&set);
	pthread_attr_destroy(&d);
}
END_TEST

static void *stack_probe(void *arg)
{
	char local;

	*(uintptr_t *)arg = (uintptr_t)&local;
	return NULL;
}

START_TEST(test_setstack_runs_on_the_given_stack)
{
	static char stack[256 << 10] __attribute__((aligned(4096)));
	vthread_attr_t a;
	vthread_t vt;
	uintptr_t where = 0;

	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setstack(&a, stack, sizeof(stack)), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, stack_probe, &where), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert(where > (uintptr_t)stack && where < (uintptr_t)stack + sizeof(stack));
}
END_TEST

/*
 * A stack that is not mapped writable: pthread_create() faults in its caller,
 * writing its thread descriptor at the stack's top; vthread_create() faults the
 * same way, never later in the guest or in whatever is mapped there by then.
 * The child reports the signal, its code and whether the address is in the stack.
 */
static int segv_pipe[2];
static char *bad_stack;

static void report_segv(int sig, siginfo_t *si, void *uc)
{
	long v[3] = { sig, si->si_code,
		      (char *)si->si_addr >= bad_stack && (char *)si->si_addr < bad_stack + (1 << 20) };

	(void)uc;
	if (write(segv_pipe[1], v, sizeof(v)) != sizeof(v))
		_exit(3);
	_exit(0);
}

static void create_on_bad_stack(bool as_vthread, bool mapped, long got[3])
{
	pid_t pid;
	int status;

	ck_assert_int_eq(pipe(segv_pipe), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sigaction sa = { .sa_sigaction = report_segv, .sa_flags = SA_SIGINFO };

		sigaction(SIGSEGV, &sa, NULL);
		/* the runtime's first allocations before the hole, which they might fill */
		if (as_vthread && !vthread_backend())
			_exit(4);
		bad_stack = mmap(NULL, 1 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (bad_stack == MAP_FAILED || (!mapped && munmap(bad_stack, 1 << 20)))
			_exit(1);
		if (as_vthread) {
			vthread_attr_t a;
			vthread_t vt;

			vthread_attr_init(&a);
			vthread_attr_setstack(&a, bad_stack, 1 << 20);
			vthread_create(&vt, &a, return_arg_plus_one, NULL);
		} else {
			pthread_attr_t a;
			pthread_t th;

			pthread_attr_init(&a);
			pthread_attr_setstack(&a, bad_stack, 1 << 20);
			pthread_create(&th, &a, return_arg_plus_one, NULL);
		}
		_exit(2);	/* created: no fault */
	}
	close(segv_pipe[1]);
	memset(got, 0, 3 * sizeof(*got));
	ck_assert_int_eq(read(segv_pipe[0], got, 3 * sizeof(*got)), 3 * sizeof(*got));
	close(segv_pipe[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(test_create_on_a_stack_it_cannot_write_faults_as_pthread_create)
{
	bool mapped = _i;	/* 0: not mapped; 1: mapped read-only */
	long native[3], vthread[3];

	require_backend();
	create_on_bad_stack(false, mapped, native);
	create_on_bad_stack(true, mapped, vthread);
	ck_assert_int_eq(native[0], SIGSEGV);
	ck_assert_int_eq(native[1], mapped ? SEGV_ACCERR : SEGV_MAPERR);
	ck_assert_int_eq(vthread[0], native[0]);
	ck_assert_int_eq(vthread[1], native[1]);
	ck_assert_int_eq(vthread[2], 1);
}
END_TEST

/* Sizes glibc accepts, vthreads accept; what it refuses at create, so do they. */
static int create_with(bool as_vthread, size_t stack, size_t guard)
{
	int r;

	if (as_vthread) {
		vthread_attr_t a;
		vthread_t vt;

		ck_assert_int_eq(vthread_attr_init(&a), 0);
		ck_assert_int_eq(vthread_attr_setstacksize(&a, stack), 0);
		ck_assert_int_eq(vthread_attr_setguardsize(&a, guard), 0);
		r = vthread_create(&vt, &a, return_arg_plus_one, (void *)1);
		if (!r) {
			void *ret;

			ck_assert_int_eq(vthread_join(vt, &ret), 0);
			ck_assert_ptr_eq(ret, (void *)2);
		}
	} else {
		pthread_attr_t a;
		pthread_t th;

		ck_assert_int_eq(pthread_attr_init(&a), 0);
		ck_assert_int_eq(pthread_attr_setstacksize(&a, stack), 0);
		ck_assert_int_eq(pthread_attr_setguardsize(&a, guard), 0);
		r = pthread_create(&th, &a, return_arg_plus_one, (void *)1);
		if (!r)
			ck_assert_int_eq(pthread_join(th, NULL), 0);
	}
	return r;
}

START_TEST(test_stack_and_guard_sizes_match_pthread)
{
	static const struct {
		size_t stack, guard;
		int want;
	} cases[] = {
		{ 1ul << 30, 4096, 0 },			/* 1 GiB stack, mapped on demand */
		{ 1 << 20, 1ul << 40, 0 },		/* 1 TiB guard: address space only */
		{ 1 << 20, ~0ul - 4096, EINVAL },	/* stack + guard overflow */
		{ SIZE_MAX, 4096, EINVAL },		/* a stack size that wraps */
		{ 1ul << 46, 4096, EAGAIN },		/* more than the address space */
	};
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;

	require_backend();
	ck_assert_int_eq(create_with(true, 1 << 20, 4096), 0);
	vthread_get_stats(&before);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(create_with(false, cases[i].stack, cases[i].guard), cases[i].want);
		ck_assert_int_eq(create_with(true, cases[i].stack, cases[i].guard), cases[i].want);
	}
	vthread_get_stats(&after);
	/* A guard is never mirrored: the 1 TiB one would cost 1024 memslots. */
	ck_assert_uint_le(after.memslots, before.memslots + 4);
}
END_TEST

static void *block_on_pipe(void *arg)
{
	char c;

	return (void *)read(*(int *)arg, &c, 1);	/* sleeps in the host until EOF */
}

START_TEST(test_running_out_of_vcpus_gives_eagain_then_recovers)
{
	enum { LIMIT = 8192 };
	static vthread_t vt[LIMIT];
	vthread_attr_t a;
	struct vthread_stats st = VTHREAD_STATS_INIT;
	int p[2], n, r = 0;

	require_backend();
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setstacksize(&a, 64 << 10), 0);
	for (n = 0; n < LIMIT; n++) {
		r = vthread_create(&vt[n], &a, block_on_pipe, &p[0]);
		if (r)
			break;
	}
	ck_assert_int_eq(r, EAGAIN);
	ck_assert_int_gt(n, 0);
	vthread_get_stats(&st);
	ck_assert_uint_eq(st.vcpus_busy, (unsigned long)n);
	close(p[1]);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(vthread_join(vt[i], NULL), 0);
	ck_assert_int_eq(vthread_create(&vt[0], &a, return_arg_plus_one, NULL), 0);
	ck_assert_int_eq(vthread_join(vt[0], NULL), 0);
	close(p[0]);
}
END_TEST

static void *read_cs(void *arg)
{
	uint16_t cs;

	(void)arg;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return (void *)(uintptr_t)cs;
}

/* CS's low bits are the privilege the CPU runs the guest at: 0 on kvm-svm and
 * kvm-vmx, 3 on kvm-pvm, which deprivileges guest supervisor code. */
START_TEST(test_backend_features_match_what_the_guest_sees)
{
	const unsigned std = VTHREAD_FEAT_RING0 | VTHREAD_FEAT_SUPERVISOR_PAGES;
	unsigned f, eax, ebx, ecx, edx = 0;
	vthread_t vt;
	void *cs;

	require_backend();
	f = vthread_backend_features();
	ck_assert_int_eq(vthread_create(&vt, NULL, read_cs, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &cs), 0);
	ck_assert_int_eq(((uintptr_t)cs & 3) == 0, (f & VTHREAD_FEAT_RING0) != 0);
	if (strcmp(vthread_backend(), "kvm-pvm") == 0) {
		ck_assert_uint_eq(f, VTHREAD_FEAT_INTERRUPTS | VTHREAD_FEAT_GUEST_IPI);
	} else {
		ck_assert_uint_eq(f & std, std);
		/* 1 GiB pages exactly when the host CPU has them (pdpe1gb) */
		__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx);
		ck_assert_int_eq((f & VTHREAD_FEAT_HUGE_1G) != 0, (edx >> 26) & 1);
	}
}
END_TEST

/* Whether the process maps a file whose name has this in it. */
static bool maps_file(const char *name)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	ck_assert_ptr_nonnull(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, name) != NULL;
	fclose(f);
	return found;
}

/* Zydis (the decoder of libc's code and of faulting instructions) is loaded
 * with the VM, before any vthread runs (a fault or a rewrite must not dlopen),
 * never by a process that makes none. */
START_TEST(test_the_decoder_is_loaded_with_the_vm_not_before)
{
	ck_assert(!maps_file("libZydis"));
	require_backend();
	ck_assert(maps_file("libZydis"));
}
END_TEST

START_TEST(test_no_kvm_gives_enosys_with_reason)
{
	vthread_t vt;

	setenv("VTHREAD_KVM", "/nonexistent/kvm", 1);
	ck_assert_ptr_null(vthread_backend());
	ck_assert_int_eq(vthread_create(&vt, NULL, return_arg_plus_one, NULL), ENOSYS);
	ck_assert_ptr_nonnull(strstr(vthread_backend_error(), "/nonexistent/kvm"));
	ck_assert_uint_eq(vthread_backend_features(), 0);
}
END_TEST

/* One rule for every variable: a value not understood is an error, never a guess. */
START_TEST(test_bad_variable_refuses_with_reason)
{
	static const char *const bad[][2] = {
		{ "VTHREAD_SYSCALLS", "fast" },
		{ "VTHREAD_STATS", "yes" },
		{ "VTHREAD_DEBUG", "2" },
	};
	char want[64];
	vthread_t vt;

	setenv(bad[_i][0], bad[_i][1], 1);
	snprintf(want, sizeof(want), "%s=%s: expected ", bad[_i][0], bad[_i][1]);
	ck_assert_ptr_null(vthread_backend());
	ck_assert_int_eq(vthread_create(&vt, NULL, return_arg_plus_one, NULL), ENOSYS);
	ck_assert_ptr_nonnull(strstr(vthread_backend_error(), want));
}
END_TEST

/* Leaves the FPU as its creator does not: x87 rounding toward zero, single
 * precision; SSE rounding toward zero, flush-to-zero, an exception unmasked. */
static void *spoil_fpu(void *arg)
{
	uint16_t cw = 0x0c7f & ~0x0300;
	uint32_t csr = (0x1f80 | 0x6000 | 0x8000) & ~0x0200;

	__asm__ volatile("fldcw %0; ldmxcsr %1" : : "m"(cw), "m"(csr));
	return arg;
}

static void *read_fpu(void *arg)
{
	uint16_t cw;
	uint32_t csr;

	(void)arg;
	__asm__ volatile("fnstcw %0; stmxcsr %1" : "=m"(cw), "=m"(csr));
	return (void *)(((uintptr_t)cw << 32) | csr);
}

static uint64_t pthread_fpu(void)
{
	pthread_t p;
	void *ret;

	ck_assert_int_eq(pthread_create(&p, NULL, read_fpu, NULL), 0);
	ck_assert_int_eq(pthread_join(p, &ret), 0);
	return (uintptr_t)ret;
}

static uint64_t vthread_fpu(void)
{
	vthread_t vt;
	void *ret;

	ck_assert_int_eq(vthread_create(&vt, NULL, read_fpu, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	return (uintptr_t)ret;
}

/* A new thread starts with its creator's FPU control state and flags (C11 7.6,
 * as a pthread does), whatever the last vthread on its pooled vCPU left; and
 * making vthreads raises no exception flag in the creator. */
START_TEST(test_vthread_starts_with_its_creators_fpu_control_state)
{
	uint16_t cw, down_cw = 0x037f | 0x0400;	/* x87: round down */
	uint32_t csr, down_csr = 0x1f80 | 0x2000 | 0x0001;	/* SSE: round down, IE raised */
	vthread_t vt;

	require_backend();
	__asm__ volatile("fnstcw %0; stmxcsr %1" : "=m"(cw), "=m"(csr));
	csr &= ~0x3fu;	/* no flag raised */
	__asm__ volatile("ldmxcsr %0" : : "m"(csr));
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(vthread_create(&vt, NULL, spoil_fpu, NULL), 0);
		ck_assert_int_eq(vthread_join(vt, NULL), 0);
		ck_assert_uint_eq(vthread_fpu(), pthread_fpu());
	}
	ck_assert_uint_eq(vthread_fpu(), ((uint64_t)cw << 32) | csr);
	__asm__ volatile("fldcw %0; ldmxcsr %1" : : "m"(down_cw), "m"(down_csr));
	ck_assert_uint_eq(vthread_fpu(), ((uint64_t)down_cw << 32) | down_csr);
	ck_assert_uint_eq(pthread_fpu(), ((uint64_t)down_cw << 32) | down_csr);
	__asm__ volatile("fldcw %0; ldmxcsr %1" : : "m"(cw), "m"(csr));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_join_returns_value);
	tcase_add_test(tc, test_default_stack_size_is_a_pthreads);
	tcase_add_test(tc, test_vthread_starts_with_its_creators_fpu_control_state);
	tcase_add_test(tc, test_64_vthreads_compute_into_shared_arrays);
	tcase_add_test(tc, test_vthread_exit_gives_join_its_value);
	tcase_add_test(tc, test_self_and_equal);
	tcase_add_test(tc, test_vthread_pthread_takes_a_name_and_an_affinity);
	tcase_add_test(tc, test_join_errors_match_pthread);
	tcase_add_test(tc, test_detached_vthreads_are_reaped);
	tcase_add_test(tc, test_detach_then_join_is_einval);
	tcase_add_test(tc, test_create_errors_match_pthread);
	tcase_add_test(tc, test_setstack_runs_on_the_given_stack);
	tcase_add_loop_test(tc, test_create_on_a_stack_it_cannot_write_faults_as_pthread_create, 0, 2);
	tcase_add_test(tc, test_stack_and_guard_sizes_match_pthread);
	tcase_add_test(tc, test_running_out_of_vcpus_gives_eagain_then_recovers);
	tcase_add_test(tc, test_backend_features_match_what_the_guest_sees);
	tcase_add_test(tc, test_the_decoder_is_loaded_with_the_vm_not_before);
	tcase_add_test(tc, test_no_kvm_gives_enosys_with_reason);
	tcase_add_loop_test(tc, test_bad_variable_refuses_with_reason, 0, 3);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
