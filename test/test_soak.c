/* SPDX-License-Identifier: MIT */
/*
 * A bounded soak: on every CPU, vthreads are created, joined and detached
 * while they compute, map and unmap memory, take signals in the guest, fork
 * and exit, for SOAK_SECONDS (default 20). Every result is checked, and at the
 * end nothing has grown: no vthread left, descriptors, memslots, runtime
 * memory and resident memory back within what the caches keep.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static atomic_ulong signals_taken, forks, maps, vthreads;
static atomic_int detached_running;
static __thread volatile unsigned long my_signals;	/* raise() is a leaf to GCC */

static void take_signal(int sig)
{
	(void)sig;
	my_signals++;
	signals_taken++;
}

/* What a vthread does, chosen by its seed; its value proves it ran to the end. */
static void *body(void *arg)
{
	uint64_t seed = (uintptr_t)arg, sum = 0;
	size_t len = ((seed % 64) + 1) << 16;	/* 64 KiB to 4 MiB */
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	for (size_t i = 0; i < len / 8; i += 512)
		p[i] = seed + i;
	for (size_t i = 0; i < len / 8; i += 512)
		sum += p[i];
	munmap(p, len);
	maps++;
	if (seed % 7 == 0) {
		unsigned long before = my_signals;

		raise(SIGUSR1);
		if (my_signals != before + 1)
			return NULL;	/* the handler runs before raise returns */
	}
	if (seed % 31 == 0) {
		int status;
		pid_t pid = fork();

		if (pid == 0)
			_exit((int)(seed % 100));
		if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != (int)(seed % 100))
			return NULL;
		forks++;
	}
	return (void *)(uintptr_t)(sum ^ seed);
}

static uint64_t expected(uint64_t seed)
{
	size_t len = ((seed % 64) + 1) << 16;
	uint64_t sum = 0;

	for (size_t i = 0; i < len / 8; i += 512)
		sum += seed + i;
	return sum ^ seed;
}

static void *detached_body(void *arg)
{
	body(arg);
	detached_running--;
	return NULL;
}

static double deadline;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One CPU's share: create and join, now and then a detached one. */
static void *driver(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 1000003;
	vthread_attr_t detached;

	vthread_attr_init(&detached);
	vthread_attr_setdetachstate(&detached, VTHREAD_CREATE_DETACHED);
	while (now() < deadline) {
		vthread_t vt;
		void *ret;

		seed++;
		if (seed % 5 == 0 && detached_running < 4) {
			detached_running++;
			if (vthread_create(&vt, &detached, detached_body, (void *)(uintptr_t)seed)) {
				detached_running--;
				return (void *)1;
			}
			continue;
		}
		if (vthread_create(&vt, NULL, body, (void *)(uintptr_t)seed) ||
		    vthread_join(vt, &ret))
			return (void *)2;
		if ((uintptr_t)ret != expected(seed))
			return (void *)3;
		vthreads++;
	}
	return NULL;
}

START_TEST(test_soak)
{
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	const char *s = getenv("SOAK_SECONDS");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), rss;
	pthread_t th[64];
	int fds, n = cpus < 2 ? 2 : cpus > 64 ? 64 : cpus;

	require_backend();
	signal(SIGUSR1, take_signal);
	deadline = now() + 1;	/* warm: the VM, vCPUs, the caches */
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, driver, (void *)(uintptr_t)i + 1), 0);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	while (detached_running)
		usleep(1000);
	vthread_get_stats(&before);
	fds = count_open_fds();
	rss = resident();

	deadline = now() + (s && atoi(s) > 0 ? atoi(s) : 20);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, driver, (void *)(uintptr_t)i + 100), 0);
	for (int i = 0; i < n; i++) {
		void *r;

		ck_assert_int_eq(pthread_join(th[i], &r), 0);
		ck_assert_msg(r == NULL, "driver %d: error %ld", i, (long)(intptr_t)r);
	}
	for (int i = 0; i < 10000 && detached_running; i++)
		usleep(1000);
	ck_assert_int_eq(detached_running, 0);
	for (int i = 0; i < 5000; i++) {	/* detached ones are reaped after they end */
		vthread_get_stats(&after);
		if (!after.vthreads_live)
			break;
		usleep(1000);
	}
	printf("soak: %d drivers, %lu vthreads joined, %lu maps, %lu signals, %lu forks\n", n,
	       (unsigned long)vthreads, (unsigned long)maps, (unsigned long)signals_taken,
	       (unsigned long)forks);
	ck_assert_uint_eq(after.vthreads_live, 0);
	ck_assert_uint_gt(vthreads, 0);
	/* a vCPU created since is a descriptor of the pool, not a leak */
	ck_assert_int_eq(count_open_fds() - (int)after.vcpus, fds - (int)before.vcpus);
	ck_assert_uint_le(after.memslots, before.memslots + 4);
	ck_assert_uint_le(after.vcpus, (unsigned long)n + 4 + 1);	/* joinable, detached, warm */
	ck_assert_uint_le(after.runtime_bytes, before.runtime_bytes + (48ul << 20));
	ck_assert_msg(resident() - rss < 128l << 20, "resident grew by %ld MiB",
		      (resident() - rss) >> 20);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("soak");
	TCase *tc = tcase_create("soak");

	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_soak);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
