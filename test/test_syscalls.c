/* SPDX-License-Identifier: MIT */
/*
 * System calls keep their meaning inside a vthread: thread-scoped ones act for
 * the vthread's own thread, clocks agree with the host's, and a blocked
 * vthread costs no CPU.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "common.h"

static void *name_thread(void *arg)
{
	char path[64], comm[32] = { 0 };
	int fd, n;

	(void)arg;
	if (prctl(PR_SET_NAME, "vt-worker"))
		return (void *)-1;
	/* The kernel names the thread gettid() returns, which is this thread. */
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", gettid());
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return (void *)-2;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return (void *)(intptr_t)(n > 0 && strcmp(comm, "vt-worker\n") == 0);
}

START_TEST(test_prctl_set_name_names_the_vthread_thread)
{
	ck_assert_int_eq(run_vthread(name_thread, NULL), 1);
}
END_TEST

static void *tids(void *arg)
{
	pid_t *t = arg;

	t[0] = gettid();
	t[1] = getpid();
	return NULL;
}

START_TEST(test_gettid_is_its_own_and_getpid_the_process)
{
	pid_t t[2];

	run_vthread(tids, t);
	ck_assert_int_ne(t[0], gettid());
	ck_assert_int_ne(t[0], getpid());
	ck_assert_int_eq(t[1], getpid());
}
END_TEST

static void *pin(void *arg)
{
	cpu_set_t set, got;
	int cpu = (int)(intptr_t)arg;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return (void *)-1;
	for (int i = 0; i < 20; i++) {
		sched_yield();
		if (sched_getcpu() != cpu)
			return (void *)-2;
	}
	if (sched_getaffinity(0, sizeof(got), &got) || !CPU_EQUAL(&set, &got))
		return (void *)-3;
	return (void *)1;
}

START_TEST(test_sched_setaffinity_pins_the_vthread)
{
	cpu_set_t mine, after;
	int last = -1;

	sched_getaffinity(0, sizeof(mine), &mine);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &mine))
			last = i;
	ck_assert_int_eq(run_vthread(pin, (void *)(intptr_t)last), 1);
	sched_getaffinity(0, sizeof(after), &after);
	ck_assert(CPU_EQUAL(&mine, &after));	/* the caller's own is untouched */
}
END_TEST

static void *robust_list(void *arg)
{
	struct robust_list_head *head;
	size_t len;

	(void)arg;
	/* glibc registered the thread's list at start; the vthread sees the same one. */
	if (syscall(SYS_get_robust_list, 0, &head, &len))
		return (void *)-1;
	return (void *)(intptr_t)(head != NULL && len == sizeof(*head));
}

START_TEST(test_robust_list_is_the_threads)
{
	ck_assert_int_eq(run_vthread(robust_list, NULL), 1);
}
END_TEST

/* Clocks: a host read, then a vthread read, then a host read, in that order. */
enum { NCLOCKS = 8 };
static const clockid_t clocks[NCLOCKS] = {
	CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME,
	CLOCK_TAI, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_REALTIME /* gettimeofday */
};

struct clock_probe {
	atomic_int ask, done;
	int64_t ns[NCLOCKS];
	uint64_t tsc;
	time_t secs;
};

/* rdtsc is not ordered with the loads around it without fences. */
static uint64_t tsc(void)
{
	uint64_t t;

	_mm_lfence();
	t = __rdtsc();
	_mm_lfence();
	return t;
}

static int64_t read_clock(int i)
{
	struct timespec ts;
	struct timeval tv;

	if (i == NCLOCKS - 1) {
		gettimeofday(&tv, NULL);
		return tv.tv_sec * 1000000000ll + tv.tv_usec * 1000ll;
	}
	clock_gettime(clocks[i], &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void *clock_server(void *arg)
{
	struct clock_probe *p = arg;

	for (int round = 1; round <= 200; round++) {
		while (atomic_load(&p->ask) != round)
			;
		for (int i = 0; i < NCLOCKS; i++)
			p->ns[i] = read_clock(i);
		p->tsc = tsc();
		p->secs = time(NULL);
		atomic_store(&p->done, round);
	}
	return NULL;
}

START_TEST(test_clocks_agree_with_the_host)
{
	struct clock_probe p = { 0 };
	int64_t before[NCLOCKS], after[NCLOCKS];
	uint64_t tsc0, tsc1;
	time_t s0, s1;
	vthread_t vt;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, clock_server, &p), 0);
	for (int round = 1; round <= 200; round++) {
		for (int i = 0; i < NCLOCKS; i++)
			before[i] = read_clock(i);
		tsc0 = tsc();
		s0 = time(NULL);
		atomic_store(&p.ask, round);
		while (atomic_load(&p.done) != round)
			;
		tsc1 = tsc();
		s1 = time(NULL);
		for (int i = 0; i < NCLOCKS; i++)
			after[i] = read_clock(i);
		for (int i = 0; i < NCLOCKS; i++)
			ck_assert_msg(before[i] <= p.ns[i] && p.ns[i] <= after[i],
				      "clock %d round %d: host %lld, vthread %lld, host %lld", i, round,
				      (long long)before[i], (long long)p.ns[i], (long long)after[i]);
		ck_assert_msg(tsc0 <= p.tsc && p.tsc <= tsc1, "round %d tsc %llu %llu %llu", round,
			      (unsigned long long)tsc0, (unsigned long long)p.tsc,
			      (unsigned long long)tsc1);
		ck_assert(s0 <= p.secs && p.secs <= s1);
	}
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
}
END_TEST

/* CPU time of the calling thread, in ms: the vthread's, since KVM_RUN runs on it. */
static long thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int block_pipe[2];
static atomic_int futex_word;

static void *block_in(void *arg)
{
	int how = (int)(intptr_t)arg;
	long cpu = thread_cpu_ms();
	char c;

	switch (how) {
	case 0:
		nanosleep(&(struct timespec){ 0, 300000000 }, NULL);
		break;
	case 1:
		if (read(block_pipe[0], &c, 1) != 1)
			return (void *)-1;
		break;
	case 2:
		syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
		break;
	}
	return (void *)(thread_cpu_ms() - cpu);
}

static void blocked_costs_no_cpu(int how)
{
	vthread_t vt;
	void *ms;

	require_backend();
	ck_assert_int_eq(pipe(block_pipe), 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, block_in, (void *)(intptr_t)how), 0);
	usleep(300000);
	ck_assert_int_eq(write(block_pipe[1], "x", 1), 1);
	atomic_store(&futex_word, 1);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	ck_assert_int_eq(vthread_join(vt, &ms), 0);
	/* 300 ms blocked; a spinning wait would have used most of it. */
	ck_assert_msg((intptr_t)ms < 60, "%ld ms of CPU while blocked", (long)(intptr_t)ms);
}

START_TEST(test_nanosleep_costs_no_cpu)
{
	blocked_costs_no_cpu(0);
}
END_TEST

START_TEST(test_read_on_an_empty_pipe_costs_no_cpu)
{
	blocked_costs_no_cpu(1);
}
END_TEST

START_TEST(test_futex_wait_costs_no_cpu)
{
	blocked_costs_no_cpu(2);
}
END_TEST

static void *errno_of_bad_calls(void *arg)
{
	int *e = arg, p[2];

	e[0] = close(-1) == -1 ? errno : 0;
	e[1] = open("/nonexistent/file", O_RDONLY) == -1 ? errno : 0;
	e[2] = write(1, NULL, 0) == 0 ? 0 : errno;
	if (pipe(p) || write(p[1], "x", 1) != 1)
		return (void *)-1;
	e[3] = syscall(SYS_read, p[0], (void *)8, 1) == -1 ? errno : 0;	/* a bad buffer */
	close(p[0]);
	close(p[1]);
	return NULL;
}

START_TEST(test_failing_calls_give_the_native_errno)
{
	int in[4], out[4];

	run_vthread(errno_of_bad_calls, in);
	errno_of_bad_calls(out);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(in[i], out[i]);
	ck_assert_int_eq(in[0], EBADF);
	ck_assert_int_eq(in[1], ENOENT);
	ck_assert_int_eq(in[3], EFAULT);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("syscalls");
	TCase *tc = tcase_create("syscalls");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_prctl_set_name_names_the_vthread_thread);
	tcase_add_test(tc, test_gettid_is_its_own_and_getpid_the_process);
	tcase_add_test(tc, test_sched_setaffinity_pins_the_vthread);
	tcase_add_test(tc, test_robust_list_is_the_threads);
	tcase_add_test(tc, test_clocks_agree_with_the_host);
	tcase_add_test(tc, test_nanosleep_costs_no_cpu);
	tcase_add_test(tc, test_read_on_an_empty_pipe_costs_no_cpu);
	tcase_add_test(tc, test_futex_wait_costs_no_cpu);
	tcase_add_test(tc, test_failing_calls_give_the_native_errno);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
