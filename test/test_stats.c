/* SPDX-License-Identifier: MIT */
/* Each vthread's own counters, and the VTHREAD_STATS=2 report of them. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define CALLS	50
#define SPIN_NS	50000000ll

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

struct job {
	bool calls;		/* makes CALLS system calls, else none */
	volatile int done;	/* its work is over; it waits for go */
	volatile int go;
	struct vthread_thread_stats self;	/* what it read of itself */
};

static void *work(void *p)
{
	struct job *j = p;
	long long end;

	for (int i = 0; j->calls && i < CALLS; i++)
		syscall(SYS_getppid);
	end = now_ns() + SPIN_NS;	/* spun in the guest, after the calls' exits */
	while (now_ns() < end)
		;
	j->self = (struct vthread_thread_stats)VTHREAD_THREAD_STATS_INIT;
	if (vthread_get_thread_stats(vthread_self(), &j->self))
		return (void *)1;
	j->done = 1;
	while (!j->go)
		;
	return NULL;
}

static unsigned long syscalls(const struct vthread_thread_stats *s)
{
	return s->exit_syscall + s->syscalls_ring + s->exit_ring;
}

START_TEST(test_each_vthread_counts_its_own_calls_and_time_in_the_guest)
{
	struct job a = { .calls = true }, b = { .calls = false };
	struct vthread_thread_stats sa = VTHREAD_THREAD_STATS_INIT, sb = VTHREAD_THREAD_STATS_INIT;
	struct vthread_stats all = VTHREAD_STATS_INIT;
	long long t0 = now_ns(), wall;
	vthread_t va, vb;

	require_backend();
	ck_assert_int_eq(vthread_create(&va, NULL, work, &a), 0);
	ck_assert_int_eq(vthread_create(&vb, NULL, work, &b), 0);
	while (!a.done || !b.done)
		sched_yield();
	ck_assert_int_eq(vthread_get_thread_stats(va, &sa), 0);
	ck_assert_int_eq(vthread_get_thread_stats(vb, &sb), 0);
	wall = now_ns() - t0;
	ck_assert_int_eq(vthread_get_stats(&all), 0);
	ck_assert_uint_eq(sa.size, sizeof(sa));
	/* the calls are a's; b's are the runtime's few (a contended lock's futex) */
	ck_assert_uint_ge(syscalls(&sa), CALLS);
	ck_assert_uint_lt(syscalls(&sb), CALLS / 2);
	ck_assert_uint_ge(syscalls(&a.self), CALLS);
	ck_assert_uint_eq(sa.exit_end + sb.exit_end, 0);	/* both still run */
	/* the process's counts hold both vthreads' */
	ck_assert_uint_ge(all.exit_syscall, sa.exit_syscall + sb.exit_syscall);
	ck_assert_uint_ge(all.exit_mirror, sa.exit_mirror + sb.exit_mirror);
	ck_assert_uint_ge(all.syscalls_ring, sa.syscalls_ring + sb.syscalls_ring);
	/* each spun SPIN_NS in the guest: its time there is at least most of that */
	ck_assert_msg(sa.guest_ns >= SPIN_NS * 8 / 10 && sa.guest_ns <= (uint64_t)wall,
		      "%llu ns in the guest, %lld wall", sa.guest_ns, wall);
	ck_assert_msg(sb.guest_ns >= SPIN_NS * 8 / 10 && sb.guest_ns <= (uint64_t)wall,
		      "%llu ns in the guest, %lld wall", sb.guest_ns, wall);
	/* what a vthread reads of itself is what it had then: no more than now */
	ck_assert_uint_le(a.self.guest_ns, sa.guest_ns);
	ck_assert_uint_le(syscalls(&a.self), syscalls(&sa));
	a.go = b.go = 1;
	ck_assert_int_eq(vthread_join(va, NULL), 0);
	ck_assert_int_eq(vthread_join(vb, NULL), 0);
	ck_assert_int_eq(vthread_get_thread_stats(va, &sa), ESRCH);
}
END_TEST

static void *wait_go(void *p)
{
	struct job *j = p;

	j->done = 1;
	while (!j->go)
		;
	return NULL;
}

/* Sized as vthread_get_stats: an older caller's struct, a newer one's, bad ones. */
START_TEST(test_the_struct_can_grow_and_bad_arguments_are_refused)
{
	struct {
		struct vthread_thread_stats s;
		unsigned long newer[4];
	} big;
	struct vthread_thread_stats old;
	struct job j = { 0 };
	vthread_t vt;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, wait_go, &j), 0);
	while (!j.done)
		sched_yield();
	memset(&big, 0xa5, sizeof(big));
	big.s.size = sizeof(big);
	ck_assert_int_eq(vthread_get_thread_stats(vt, &big.s), 0);
	ck_assert_uint_eq(big.s.size, sizeof(big.s));
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(big.newer[i], 0);
	memset(&old, 0xa5, sizeof(old));
	old.size = offsetof(struct vthread_thread_stats, exit_mirror);
	ck_assert_int_eq(vthread_get_thread_stats(vt, &old), 0);
	ck_assert_uint_eq(old.size, offsetof(struct vthread_thread_stats, exit_mirror));
	ck_assert_uint_eq(old.exit_mirror, 0xa5a5a5a5a5a5a5a5ul);	/* not the caller's */
	old.size = sizeof(size_t);
	ck_assert_int_eq(vthread_get_thread_stats(vt, &old), EINVAL);
	ck_assert_int_eq(vthread_get_thread_stats(vt, NULL), EINVAL);
	ck_assert_int_eq(vthread_get_thread_stats(NULL, &big.s), ESRCH);
	j.go = 1;
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
}
END_TEST

static void *two_calls(void *p)
{
	(void)p;
	syscall(SYS_getppid);
	syscall(SYS_getppid);
	return NULL;
}

/* A child's body: n vthreads of fn, one after the other, under VTHREAD_STATS=level. */
struct stats_child {
	const char *level;
	void *(*fn)(void *);
	int n;
};

static void vthreads_with_stats(void *arg)
{
	const struct stats_child *c = arg;
	vthread_t vt;

	setenv("VTHREAD_STATS", c->level, 1);	/* read when the runtime starts, below */
	for (int i = 0; i < c->n; i++)
		if (vthread_create(&vt, NULL, c->fn, NULL) || vthread_join(vt, NULL))
			_exit(99);
	exit(0);
}

START_TEST(test_stats_2_prints_each_vthread_as_it_ends)
{
	char out[8192], *line;
	int status;

	require_backend();
	/* VTHREAD_STATS=2: a line per vthread as it ends, and the process's report. */
	status = stderr_of_child(vthreads_with_stats, &(struct stats_child){ "2", two_calls, 2 },
				 out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 1; i <= 2; i++) {
		char want[64];

		snprintf(want, sizeof(want), "libvthread stats: vthread %d (tid ", i);
		line = strstr(out, want);
		ck_assert_msg(line, "%s", out);
		ck_assert_msg(strstr(line, " ms in the guest; exits: syscall "), "%s", out);
		ck_assert_msg(strstr(line, " end 1, "), "%s", out);
	}
	ck_assert_msg(strstr(out, "libvthread stats: backend "), "%s", out);
}
END_TEST

/* 37 gettid calls, each made by an exit whatever the mode (paths.c). */
static void *gettids(void *p)
{
	(void)p;
	for (int i = 0; i < 37; i++)
		syscall(SYS_gettid);
	return NULL;
}

START_TEST(test_stats_1_names_the_system_calls_that_exited_most)
{
	char out[8192], *line;
	int status;

	require_backend();
	status = stderr_of_child(vthreads_with_stats, &(struct stats_child){ "1", gettids, 1 },
				 out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	line = strstr(out, "  system calls that exited, most first: gettid 37");
	ck_assert_msg(line, "%s", out);
}
END_TEST

/* The report sums the exits and prices them at the empty exit timed at start. */
START_TEST(test_stats_1_prices_the_exits)
{
	unsigned long e[9], total, ms, sum = 0;
	char out[8192], *line;
	long ns;
	int status;

	require_backend();
	status = stderr_of_child(vthreads_with_stats, &(struct stats_child){ "1", gettids, 1 },
				 out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	line = strstr(out, "  exits: syscall ");
	ck_assert_msg(line, "%s", out);
	ck_assert_int_eq(sscanf(line, "  exits: syscall %lu, mirror %lu, fault %lu, end %lu, "
				"signal %lu, null %lu, ring %lu, hostcall %lu, other %lu; %lu exits "
				"cost at least %lu ms of CPU (an empty exit took %ld ns at start)",
				&e[0], &e[1], &e[2], &e[3], &e[4], &e[5], &e[6], &e[7], &e[8],
				&total, &ms, &ns), 12);
	for (int i = 0; i < 9; i++)
		sum += e[i];
	ck_assert_uint_eq(total, sum);
	ck_assert_uint_ge(total, 37 + 1);	/* the gettids and the end */
	ck_assert_int_gt(ns, 0);
	ck_assert_uint_eq(ms, total * ns / 1000000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_each_vthread_counts_its_own_calls_and_time_in_the_guest);
	tcase_add_test(tc, test_the_struct_can_grow_and_bad_arguments_are_refused);
	tcase_add_test(tc, test_stats_2_prints_each_vthread_as_it_ends);
	tcase_add_test(tc, test_stats_1_names_the_system_calls_that_exited_most);
	tcase_add_test(tc, test_stats_1_prices_the_exits);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
