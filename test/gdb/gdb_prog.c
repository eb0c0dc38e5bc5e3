/* SPDX-License-Identifier: MIT */
/*
 * gdb_prog MODE: what test/gdb/gdb.sh debugs. crash: work() runs as a vthread
 * and writes through NULL two static functions down; interrupt: four vthreads
 * compute while the process is sent SIGINT (a Ctrl-C under gdb), and check
 * their sums; spin FILE: a vthread spins in spin() while gdb attaches and
 * detaches (FILE.ready says it spins, FILE.stop that gdb is gone), and must
 * spin on after; step: stepper() runs as a vthread; libc: two vthreads in turn call
 * getppid(); vectors: a vthread's XMM registers across its own int3; ends: vthreads
 * ending by vthread_exit() and by cancellation; block FILE: a vthread waits in
 * read() while gdb attaches (FILE.ready, FILE.stop as for spin). Built with -DGDB_PTHREAD (gdb_pthread_prog, not linked with
 * libvthread): work() runs in a pthread, a vthread under vthread-run.
 */
#define _GNU_SOURCE
#include <dirent.h>
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
	/* what the core's vector registers must show */
	__asm__ volatile("movq %0, %%xmm7" : : "r"(0x7766554433221100ull) : "xmm7");
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

int watched;	/* a global the vthread writes: gdb watches it */

__attribute__((noinline)) static int twice(int v)
{
	return 2 * v;
}

/* What gdb breaks in and steps through: 7 gives 32. */
__attribute__((noinline)) void *stepper(void *arg)
{
	int local = (int)(intptr_t)arg + 1;

	local = twice(local);
	watched = local;
	local += watched;
	return (void *)(intptr_t)local;
}

#ifdef GDB_PTHREAD
int main(int argc, char **argv)
{
	pthread_t pt;
	void *ret;

	if (argc > 1 && !strcmp(argv[1], "step")) {
		if (pthread_create(&pt, NULL, stepper, (void *)7) || pthread_join(pt, &ret))
			return 2;
		printf("step: %ld\n", (long)(intptr_t)ret);
		return 0;
	}
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

/* A libc function a vthread calls: gdb breaks in it. */
__attribute__((noinline)) static void *parent_of(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)getppid();
}

/* Sixteen XMM registers set, an int3 (gdb stops, and continue drops its SIGTRAP),
 * then read: how many changed. */
__attribute__((noinline)) static void *vectors(void *arg)
{
	uint64_t in[32], out[32];
	int changed = 0;

	(void)arg;
	for (int i = 0; i < 32; i++)
		in[i] = 0x0101010101010101ull * (i + 1);
	__asm__ volatile(
		".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
		"movdqu 16*\\n(%0), %%xmm\\n\n"
		".endr\n"
		"int3\n"
		".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
		"movdqu %%xmm\\n, 16*\\n(%1)\n"
		".endr\n"
		: : "r"(in), "r"(out)
		: "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
		  "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	for (int i = 0; i < 32; i++)
		changed += in[i] != out[i];
	return (void *)(intptr_t)changed;
}

/* Ends by vthread_exit(), or by cancellation, after a breakpoint. */
__attribute__((noinline)) static void *leaver(void *arg)
{
	vthread_exit((void *)((intptr_t)arg * 3));
	return NULL;
}

__attribute__((noinline)) static void *cancelled(void *arg)
{
	(void)arg;
	for (;;)
		pthread_testcancel();
	return NULL;
}

static int ends(void)
{
	void *ret[3];
	vthread_t vt;

	if (vthread_create(&vt, NULL, leaver, (void *)5) || vthread_join(vt, &ret[0]) ||
	    vthread_create(&vt, NULL, cancelled, NULL) || pthread_cancel(vthread_pthread(vt)) ||
	    vthread_join(vt, &ret[1]) ||
	    vthread_create(&vt, NULL, leaver, (void *)7) || vthread_join(vt, &ret[2]))
		return 2;
	printf("ends: %ld %s %ld\n", (long)(intptr_t)ret[0],
	       ret[1] == PTHREAD_CANCELED ? "cancelled" : "not cancelled", (long)(intptr_t)ret[2]);
	return 0;
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

/* Reads a byte from the pipe *arg: blocks until the program writes one. */
__attribute__((noinline)) static void *reader(void *arg)
{
	char c = 0;

	return (void *)(intptr_t)(read(*(int *)arg, &c, 1) == 1 ? c : -1);
}

/* Whether a thread of the process waits in read(fd, ...). */
static bool reading(int fd)
{
	char want[32], line[256], path[300];
	struct dirent *d;
	bool found = false;
	DIR *dir = opendir("/proc/self/task");

	snprintf(want, sizeof(want), "0 0x%x ", fd);
	while (dir && !found && (d = readdir(dir))) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", d->d_name);
		if (d->d_name[0] == '.' || !(f = fopen(path, "r")))
			continue;
		found = fgets(line, sizeof(line), f) && !strncmp(line, want, strlen(want));
		fclose(f);
	}
	if (dir)
		closedir(dir);
	return found;
}

static int block_while_attached(const char *file)
{
	char path[4096];
	int fds[2];
	vthread_t vt;
	void *ret;
	FILE *f;

	if (pipe(fds) || vthread_create(&vt, NULL, reader, &fds[0]))
		return 2;
	for (int i = 0; i < 12000 && !reading(fds[0]); i++)
		usleep(10000);
	snprintf(path, sizeof(path), "%s.ready", file);
	if (!(f = fopen(path, "w")) || fclose(f))
		return 3;
	for (int i = 0; i < 12000 && !exists(file, ".stop"); i++)
		usleep(10000);
	if (write(fds[1], "r", 1) != 1 || vthread_join(vt, &ret))
		return 4;
	printf("block: %s after the detach\n", (intptr_t)ret == 'r' ? "read" : "did not read");
	return 0;
}

int main(int argc, char **argv)
{
	vthread_t vt;

	if (argc > 2 && !strcmp(argv[1], "block"))
		return block_while_attached(argv[2]);
	if (argc > 1 && !strcmp(argv[1], "interrupt"))
		return interrupt();
	if (argc > 2 && !strcmp(argv[1], "spin"))
		return spin_while_attached(argv[2]);
	if (argc > 1 && !strcmp(argv[1], "ends"))
		return ends();
	if (argc > 1 && !strcmp(argv[1], "vectors")) {
		void *ret;

		if (vthread_create(&vt, NULL, vectors, NULL) || vthread_join(vt, &ret))
			return 2;
		printf("vectors: %ld of 32 halves changed\n", (long)(intptr_t)ret);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "libc")) {
		int right = 0;
		void *ret;

		for (int i = 0; i < 2; i++)
			if (!vthread_create(&vt, NULL, parent_of, NULL) && !vthread_join(vt, &ret))
				right += (pid_t)(intptr_t)ret == getppid();
		printf("libc: %d of 2 right\n", right);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "step")) {
		void *ret;

		if (vthread_create(&vt, NULL, stepper, (void *)7) || vthread_join(vt, &ret))
			return 2;
		printf("step: %ld\n", (long)(intptr_t)ret);
		return 0;
	}
	return vthread_create(&vt, NULL, work, NULL) || vthread_join(vt, NULL);
}
#endif
