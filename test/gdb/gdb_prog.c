/* SPDX-License-Identifier: MIT */
/*
 * gdb_prog MODE: what test/gdb/gdb.sh debugs. crash: work() runs as a vthread
 * and writes through NULL two static functions down; interrupt: four vthreads
 * compute while the process is sent SIGINT (a Ctrl-C under gdb), and check
 * their sums; spin FILE: a vthread spins in spin() while gdb attaches and
 * detaches (FILE.ready says it spins, FILE.stop that gdb is gone), and must
 * spin on after. Built with -DGDB_PTHREAD (gdb_pthread_prog, not linked with
 * libvthread): work() runs in a pthread, a vthread under vthread-run.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifndef GDB_PTHREAD
#include <vthread.h>
#endif

int counter = 41;	/* a global gdb prints */

__attribute__((noinline)) static int store(int *p, int v)
{
	*(volatile int *)p = v;
	return v + counter;
}

__attribute__((noinline)) static int step(int *p, int v)
{
	return store(p, v + 1) + 1;
}

__attribute__((noinline)) void *work(void *arg)
{
	counter++;
	return (void *)(intptr_t)step(arg, counter);
}

#ifdef GDB_PTHREAD
int main(void)
{
	pthread_t pt;

	return pthread_create(&pt, NULL, work, NULL) || pthread_join(pt, NULL);
}
#else
#define N	4
#define ROUNDS	40000000ul

static volatile int started;

static void *sum(void *arg)
{
	unsigned long s = 0, k = (uintptr_t)arg;

	__atomic_fetch_add(&started, 1, __ATOMIC_SEQ_CST);
	for (unsigned long i = 0; i < ROUNDS; i++)
		s += i ^ k;
	return (void *)s;
}

static int interrupt(void)
{
	vthread_t vt[N];
	void *ret;
	int bad = 0;

	for (uintptr_t k = 0; k < N; k++)
		if (vthread_create(&vt[k], NULL, sum, (void *)k))
			return 2;
	while (started < N)
		sched_yield();
	kill(getpid(), SIGINT);
	for (uintptr_t k = 0; k < N; k++) {
		unsigned long s = 0;

		for (unsigned long i = 0; i < ROUNDS; i++)
			s += i ^ k;
		vthread_join(vt[k], &ret);
		bad += (unsigned long)ret != s;
	}
	printf("interrupt: %d of %d sums wrong\n", bad, N);
	return bad != 0;
}

static volatile unsigned long spins;
static volatile int stop;

__attribute__((noinline)) static void *spin(void *arg)
{
	(void)arg;
	while (!stop)
		spins++;
	return (void *)spins;
}

static bool exists(const char *base, const char *suffix)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s%s", base, suffix);
	return access(path, F_OK) == 0;
}

static int spin_while_attached(const char *file)
{
	char path[4096];
	unsigned long before;
	vthread_t vt;
	void *ret;
	FILE *f;

	if (vthread_create(&vt, NULL, spin, NULL))
		return 2;
	while (spins < 1000)
		sched_yield();
	snprintf(path, sizeof(path), "%s.ready", file);
	if (!(f = fopen(path, "w")) || fclose(f))
		return 3;
	for (int i = 0; i < 12000 && !exists(file, ".stop"); i++)
		usleep(10000);
	before = spins;
	for (int i = 0; i < 6000 && spins < before + 1000000; i++)
		usleep(10000);
	stop = 1;
	vthread_join(vt, &ret);
	printf("spin: %s after the detach\n", spins >= before + 1000000 &&
	       (unsigned long)ret == spins ? "went on" : "stopped");
	return 0;
}

int main(int argc, char **argv)
{
	vthread_t vt;

	if (argc > 1 && !strcmp(argv[1], "interrupt"))
		return interrupt();
	if (argc > 2 && !strcmp(argv[1], "spin"))
		return spin_while_attached(argv[2]);
	return vthread_create(&vt, NULL, work, NULL) || vthread_join(vt, NULL);
}
#endif
