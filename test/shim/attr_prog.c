/* SPDX-License-Identifier: MIT */
/*
 * A pthread program for the shim test: threads made with every combination of
 * the attributes an unprivileged user may set (stack size or a stack of the
 * caller's, guard size, detach state, inherited or explicit scheduling, CPU
 * affinity, signal mask), each checking what it got as a pthread would; then
 * a real-time thread above its creator's priority runs first; semaphores
 * initialised in a thread, waited for by others, while the main thread ends
 * early with pthread_exit(). Same output natively and under
 * vthread-run; a failed check prints FAIL and makes the exit status 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int failed;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			printf("FAIL combination %d: %s\n", want->id, #cond);          \
			failed = 1;                                                    \
		}                                                                      \
	} while (0)

enum { STACK_DEFAULT, STACK_SIZE_64K, STACK_SIZE_4M, STACK_OWN, NSTACK };
enum { GUARD_DEFAULT, GUARD_NONE, GUARD_64K, NGUARD };
/* What an unprivileged user may ask: glibc's attributes take OTHER, FIFO and RR,
 * and FIFO and RR need privilege. */
enum { SCHED_INHERITED, SCHED_EXPLICIT, NSCHED };

struct want {
	int id;
	int stack, guard, detached, sched;
	bool affinity, sigmask;
	char *own;		/* the caller's stack */
	size_t own_size;
	sem_t *done;		/* posted by a detached thread */
};

static void *check_attrs(void *arg)
{
	const struct want *want = arg;
	struct sched_param sp;
	pthread_attr_t a;
	size_t size, guard;
	void *addr;
	int state, policy;

	if (pthread_getattr_np(pthread_self(), &a)) {
		CHECK(!"pthread_getattr_np");
		return NULL;
	}
	pthread_attr_getstack(&a, &addr, &size);
	pthread_attr_getguardsize(&a, &guard);
	pthread_attr_getdetachstate(&a, &state);
	pthread_attr_destroy(&a);
	CHECK((char *)&a > (char *)addr && (char *)&a < (char *)addr + size);
	if (want->stack == STACK_OWN) {
		CHECK(addr == want->own && size == want->own_size);
	} else {
		CHECK(size >= (want->stack == STACK_SIZE_64K ? 64u << 10 :
			       want->stack == STACK_SIZE_4M ? 4u << 20 : 16u << 10));
		CHECK(guard == (want->guard == GUARD_NONE ? 0 : want->guard == GUARD_64K ?
				64u << 10 : (size_t)sysconf(_SC_PAGESIZE)));
	}
	CHECK(state == (want->detached ? PTHREAD_CREATE_DETACHED : PTHREAD_CREATE_JOINABLE));
	CHECK(pthread_getschedparam(pthread_self(), &policy, &sp) == 0);
	CHECK(policy == SCHED_OTHER && sp.sched_priority == 0);
	if (want->affinity) {
		cpu_set_t set;

		CHECK(pthread_getaffinity_np(pthread_self(), sizeof(set), &set) == 0);
		CHECK(CPU_COUNT(&set) == 1 && CPU_ISSET(0, &set));
	}
	if (want->sigmask) {
		sigset_t mask;

		pthread_sigmask(SIG_SETMASK, NULL, &mask);
		CHECK(sigismember(&mask, SIGUSR1) && !sigismember(&mask, SIGUSR2));
	}
	if (want->detached)
		sem_post(want->done);
	return (void *)(intptr_t)want->id;
}

static void run_combination(struct want *want, sem_t *done)
{
	pthread_attr_t a;
	pthread_t th;
	void *ret;
	int r;

	pthread_attr_init(&a);
	switch (want->stack) {
	case STACK_SIZE_64K:
		pthread_attr_setstacksize(&a, 64 << 10);
		break;
	case STACK_SIZE_4M:
		pthread_attr_setstacksize(&a, 4 << 20);
		break;
	case STACK_OWN:
		want->own_size = 256 << 10;
		want->own = aligned_alloc(4096, want->own_size);
		pthread_attr_setstack(&a, want->own, want->own_size);
		break;
	}
	if (want->guard != GUARD_DEFAULT)
		pthread_attr_setguardsize(&a, want->guard == GUARD_NONE ? 0 : 64 << 10);
	pthread_attr_setdetachstate(&a, want->detached ? PTHREAD_CREATE_DETACHED :
							 PTHREAD_CREATE_JOINABLE);
	if (want->sched != SCHED_INHERITED) {
		struct sched_param sp = { 0 };

		pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
		pthread_attr_setschedpolicy(&a, SCHED_OTHER);
		pthread_attr_setschedparam(&a, &sp);
		pthread_attr_setscope(&a, PTHREAD_SCOPE_SYSTEM);
	}
	if (want->affinity) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		pthread_attr_setaffinity_np(&a, sizeof(set), &set);
	}
	if (want->sigmask) {
		sigset_t mask;

		sigemptyset(&mask);
		sigaddset(&mask, SIGUSR1);
		pthread_attr_setsigmask_np(&a, &mask);
	}
	want->done = done;
	r = pthread_create(&th, &a, check_attrs, want);
	pthread_attr_destroy(&a);
	if (r) {
		printf("combination %d: pthread_create: %s\n", want->id, strerror(r));
		failed = 1;
	} else if (want->detached) {
		sem_wait(done);
	} else {
		CHECK(pthread_join(th, &ret) == 0 && ret == (void *)(intptr_t)want->id);
		free(want->own);
	}	/* a detached thread may still be on its own stack: kept */
}

/* Semaphores a thread initialises, posted by one set of threads for another,
 * while the main thread has already ended. */
#define PAIRS 4
static sem_t ready, items;
static atomic_int consumed;

static void *consumer(void *arg)
{
	(void)arg;
	sem_wait(&ready);
	sem_post(&ready);
	sem_wait(&items);
	consumed++;
	return NULL;
}

static void *producer(void *arg)
{
	(void)arg;
	sem_wait(&ready);
	sem_post(&ready);
	sem_post(&items);
	return NULL;
}

static void *last(void *arg)
{
	pthread_t *th = arg;

	for (int i = 0; i < 2 * PAIRS; i++)
		pthread_join(th[i], NULL);
	printf("semaphores: %d consumed; %s\n", consumed, failed ? "FAILED" : "all passed");
	exit(failed);
}

static void *initialiser(void *arg)
{
	static pthread_t th[2 * PAIRS];
	pthread_t waiter;

	(void)arg;
	sem_init(&ready, 0, 0);
	sem_init(&items, 0, 0);
	for (int i = 0; i < PAIRS; i++) {
		pthread_create(&th[2 * i], NULL, consumer, NULL);
		pthread_create(&th[2 * i + 1], NULL, producer, NULL);
	}
	sem_post(&ready);
	pthread_create(&waiter, NULL, last, th);
	return NULL;
}

/*
 * A thread with a real-time priority above its creator's runs before
 * pthread_create returns: all on one CPU, twice (the second on a vCPU that
 * another thread used, under the shim). Needs the privilege for SCHED_FIFO.
 */
static atomic_int ran;

static void *mark(void *arg)
{
	ran = 1;
	return arg;
}

static void fifo_attr(pthread_attr_t *a, int prio)
{
	struct sched_param sp = { .sched_priority = prio };
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	pthread_attr_init(a);
	pthread_attr_setinheritsched(a, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(a, SCHED_FIFO);
	pthread_attr_setschedparam(a, &sp);
	pthread_attr_setaffinity_np(a, sizeof(one), &one);
}

static void *create_above(void *arg)
{
	pthread_attr_t a;
	pthread_t t;
	int seen;

	(void)arg;
	fifo_attr(&a, 2);
	ran = 0;
	if (pthread_create(&t, &a, mark, NULL))
		return (void *)-1;
	seen = ran;
	pthread_join(t, NULL);
	pthread_attr_destroy(&a);
	return (void *)(intptr_t)seen;
}

static void preemption(void)
{
	pthread_attr_t a;
	pthread_t t;
	void *seen;

	fifo_attr(&a, 1);
	for (int round = 0; round < 2; round++) {
		if (pthread_create(&t, &a, create_above, NULL)) {
			printf("real-time preemption: not permitted here\n");
			return;
		}
		pthread_join(t, &seen);
		if (seen != (void *)1) {
			printf("FAIL: a thread above its creator's priority had not run (round %d)\n", round);
			failed = 1;
		}
	}
	pthread_attr_destroy(&a);
	printf("real-time preemption: checked\n");
}

int main(void)
{
	int id = 0, combinations = 0;
	pthread_t init;
	sem_t done;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sem_init(&done, 0, 0);
	for (int st = 0; st < NSTACK; st++)
		for (int g = 0; g < NGUARD; g++)
			for (int d = 0; d < 2; d++)
				for (int s = 0; s < NSCHED; s++) {
					struct want w = { id++, st, g, d, s, s && d, !s && !d,
							  NULL, 0, NULL };

					run_combination(&w, &done);
					combinations++;
				}
	preemption();
	printf("attributes: %d combinations, %s\n", combinations, failed ? "FAILED" : "all passed");
	pthread_create(&init, NULL, initialiser, NULL);
	pthread_detach(init);
	pthread_exit(NULL);
}
