/* SPDX-License-Identifier: MIT */
/*
 * gdb_prog MODE: what test/gdb/gdb.sh debugs. crash: work() runs as a vthread
 * and writes through NULL two static functions down; interrupt: four vthreads
 * compute while the process is sent SIGINT (a Ctrl-C under gdb), and check
 * their sums. Built with -DGDB_PTHREAD (gdb_pthread_prog, not linked with
 * libvthread): work() runs in a pthread, a vthread under vthread-run.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
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

int main(int argc, char **argv)
{
	vthread_t vt;

	if (argc > 1 && !strcmp(argv[1], "interrupt"))
		return interrupt();
	return vthread_create(&vt, NULL, work, NULL) || vthread_join(vt, NULL);
}
#endif
