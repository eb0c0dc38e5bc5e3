/* SPDX-License-Identifier: MIT */
/*
 * An ordinary pthread program, built without libvthread, for the shim test:
 * its output must be the same natively and under vthread-run. Each part
 * prints what it observed, never a timing or an address, and checks that a
 * pthread would pass; a failed check prints FAIL and makes the exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 4

static int failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("FAIL %s:%d: %s\n", __func__, __LINE__, #cond); \
			failed = 1;                                            \
		}                                                              \
	} while (0)

static void start(pthread_t *th, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	int r = pthread_create(th, a, fn, arg);

	if (r) {
		printf("pthread_create: %s\n", strerror(r));
		exit(2);
	}
}

/* pthread_once, barrier, thread-specific data with a destructor, errno. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int once_runs, destructed;
static pthread_barrier_t barrier;
static pthread_key_t key;
static long partial[NTHREADS];

static void init_once(void)
{
	once_runs++;
}

static void destructor(void *v)
{
	destructed += (int)(intptr_t)v;
}

void *worker_sum(void *arg)
{
	int i = (int)(intptr_t)arg;
	long s = 0;

	pthread_once(&once, init_once);
	pthread_setspecific(key, (void *)(intptr_t)(i + 1));
	errno = 1000 + i;
	for (long k = i; k < 1000000; k += NTHREADS)
		s += k % 7;
	partial[i] = s;
	pthread_barrier_wait(&barrier);
	CHECK(errno == 1000 + i);
	CHECK((intptr_t)pthread_getspecific(key) == i + 1);
	return (void *)(intptr_t)(s & 0xffff);
}

static void part_once_barrier_tsd(void)
{
	pthread_t th[NTHREADS];
	long total = 0, rets = 0;

	pthread_key_create(&key, destructor);
	pthread_barrier_init(&barrier, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++)
		start(&th[i], NULL, worker_sum, (void *)(intptr_t)i);
	for (int i = 0; i < NTHREADS; i++) {
		void *r;

		pthread_join(th[i], &r);
		rets += (intptr_t)r;
		total += partial[i];
	}
	printf("once: %d run(s); sum %ld; returns %ld; destructors %d\n", (int)once_runs, total,
	       rets, (int)destructed);
	pthread_barrier_destroy(&barrier);
	pthread_key_delete(key);
}

/* A bounded buffer with two condition variables. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER, not_empty = PTHREAD_COND_INITIALIZER;
static int buf[8], head, count;

void *worker_produce(void *arg)
{
	for (int i = 1; i <= (int)(intptr_t)arg; i++) {
		pthread_mutex_lock(&lock);
		while (count == 8)
			pthread_cond_wait(&not_full, &lock);
		buf[(head + count++) % 8] = i;
		pthread_cond_signal(&not_empty);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

void *worker_consume(void *arg)
{
	long sum = 0;

	for (int i = 0; i < (int)(intptr_t)arg; i++) {
		pthread_mutex_lock(&lock);
		while (count == 0)
			pthread_cond_wait(&not_empty, &lock);
		sum += buf[head];
		head = (head + 1) % 8;
		count--;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&lock);
	}
	return (void *)sum;
}

static void part_condvar(void)
{
	pthread_t p, c;
	void *sum;

	start(&c, NULL, worker_consume, (void *)20000);
	start(&p, NULL, worker_produce, (void *)20000);
	pthread_join(p, NULL);
	pthread_join(c, &sum);
	printf("condvar: consumed sum %ld\n", (long)sum);
}

/* Cancellation: blocked in pthread_cond_wait, blocked in read, at a testcancel. */
static atomic_int cleanups, ready;
static int cancel_pipe[2];

static void cleanup_unlock(void *m)
{
	cleanups++;
	pthread_mutex_unlock(m);
}

static void cleanup_count(void *arg)
{
	(void)arg;
	cleanups++;
}

void *victim_cond_wait(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	pthread_cleanup_push(cleanup_unlock, &lock);
	ready = 1;
	for (;;)
		pthread_cond_wait(&not_empty, &lock);
	pthread_cleanup_pop(1);
	return NULL;
}

void *victim_read(void *arg)
{
	char c;

	(void)arg;
	pthread_cleanup_push(cleanup_count, NULL);
	ready = 1;
	for (;;)
		if (read(cancel_pipe[0], &c, 1) < 0)
			break;
	pthread_cleanup_pop(0);
	return NULL;
}

void *victim_testcancel(void *arg)
{
	volatile long spins = 0;

	(void)arg;
	pthread_cleanup_push(cleanup_count, NULL);
	ready = 1;
	for (;;) {
		spins++;
		pthread_testcancel();
	}
	pthread_cleanup_pop(0);
	return NULL;
}

static void cancel_one(const char *what, void *(*fn)(void *))
{
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	pthread_t th;
	void *ret;

	ready = 0;
	start(&th, NULL, fn, NULL);
	while (!ready)
		sched_yield();
	nanosleep(&pause, NULL);	/* let it block */
	CHECK(pthread_cancel(th) == 0);
	CHECK(pthread_join(th, &ret) == 0);
	printf("cancel %s: %s\n", what, ret == PTHREAD_CANCELED ? "canceled" : "not canceled");
}

static void part_cancel(void)
{
	CHECK(pipe(cancel_pipe) == 0);
	cancel_one("in cond_wait", victim_cond_wait);
	cancel_one("in read", victim_read);
	cancel_one("at testcancel", victim_testcancel);
	printf("cancel: %d cleanup handler(s); mutex free: %s\n", (int)cleanups,
	       pthread_mutex_trylock(&lock) == 0 ? "yes" : "no");
	pthread_mutex_unlock(&lock);
	close(cancel_pipe[0]);
	close(cancel_pipe[1]);
}

/* pthread_exit from depth; detach; tryjoin and timedjoin. */
static sem_t detached_done, release;

static __attribute__((noinline)) void exit_inner(void)
{
	pthread_exit((void *)42);
}

static __attribute__((noinline)) void exit_outer(void)
{
	exit_inner();
}

void *worker_exit(void *arg)
{
	(void)arg;
	exit_outer();
	return NULL;
}

void *worker_detached(void *arg)
{
	(void)arg;
	sem_post(&detached_done);
	return NULL;
}

void *worker_wait(void *arg)
{
	(void)arg;
	sem_wait(&release);
	return (void *)7;
}

static void part_exit_detach_join(void)
{
	struct timespec t;
	pthread_t th;
	void *ret;

	start(&th, NULL, worker_exit, NULL);
	pthread_join(th, &ret);
	printf("pthread_exit: %ld\n", (long)ret);

	sem_init(&detached_done, 0, 0);
	start(&th, NULL, worker_detached, NULL);
	CHECK(pthread_detach(th) == 0);
	sem_wait(&detached_done);
	printf("detach: done\n");

	sem_init(&release, 0, 0);
	start(&th, NULL, worker_wait, NULL);
	CHECK(pthread_tryjoin_np(th, &ret) == EBUSY);
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_nsec += 20 * 1000 * 1000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	CHECK(pthread_timedjoin_np(th, &ret, &t) == ETIMEDOUT);
	sem_post(&release);
	CHECK(pthread_join(th, &ret) == 0);
	printf("tryjoin/timedjoin: %ld\n", (long)ret);
}

/* pthread_kill, names, pthread_self, and the stack pthread_getattr_np reports. */
static atomic_int signalled;
static pthread_t target;

static void on_usr1(int sig)
{
	(void)sig;
	signalled = pthread_equal(pthread_self(), target) ? 1 : 2;
}

void *worker_spin_until_signalled(void *arg)
{
	(void)arg;
	while (!signalled)
		sched_yield();
	return (void *)(intptr_t)pthread_equal(pthread_self(), target);
}

/* 1: the reported stack holds a local, is at least 1 MiB, and has the guard asked for */
static int stack_holds_local(size_t guard_wanted)
{
	size_t size, guard;
	pthread_attr_t a;
	void *lo;
	int local;

	if (pthread_getattr_np(pthread_self(), &a))
		return -1;
	pthread_attr_getstack(&a, &lo, &size);
	pthread_attr_getguardsize(&a, &guard);
	pthread_attr_destroy(&a);
	return (char *)&local >= (char *)lo && (char *)&local < (char *)lo + size &&
	       size >= 1 << 20 && guard == guard_wanted;
}

void *worker_stack(void *arg)
{
	return (void *)(intptr_t)stack_holds_local((size_t)(uintptr_t)arg);
}

static void part_kill_names_stack(void)
{
	char name[16] = "";
	pthread_attr_t a;
	void *ret, *mem;

	signal(SIGUSR1, on_usr1);
	start(&target, NULL, worker_spin_until_signalled, NULL);
	CHECK(pthread_setname_np(target, "shim-target") == 0);
	CHECK(pthread_getname_np(target, name, sizeof(name)) == 0);
	CHECK(pthread_kill(target, SIGUSR1) == 0);
	pthread_join(target, &ret);
	printf("pthread_kill: handler on the target %s; self equal %ld; name %s\n",
	       signalled == 1 ? "yes" : "no", (long)ret, name);

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 1 << 20);
	pthread_attr_setguardsize(&a, 64 << 10);
	start(&target, &a, worker_stack, (void *)(64 << 10));
	pthread_join(target, &ret);
	printf("stack of 1 MiB with a 64 KiB guard holds the thread's locals: %ld\n", (long)ret);

	mem = aligned_alloc(4096, 1 << 20);
	pthread_attr_setstack(&a, mem, 1 << 20);
	start(&target, &a, worker_stack, 0);
	pthread_join(target, &ret);
	printf("stack of our own holds the thread's locals: %ld\n", (long)ret);
	free(mem);
	pthread_attr_destroy(&a);
}

/* A thread that makes a thread, which starts with its creator's signal mask. */
void *worker_child(void *arg)
{
	sigset_t mask;

	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	CHECK(sigismember(&mask, SIGUSR2) && !sigismember(&mask, SIGUSR1));
	return (void *)((intptr_t)arg * 2);
}

/* Only in the symbol table, not the dynamic one: --match finds it all the same. */
static __attribute__((noinline)) void *worker_static(void *arg)
{
	return (void *)((intptr_t)arg + 1);
}

void *worker_parent(void *arg)
{
	pthread_t th;
	sigset_t mask;
	void *ret;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	start(&th, NULL, worker_child, arg);
	pthread_join(th, &ret);
	return ret;
}

static void part_nested(void)
{
	pthread_t th;
	void *ret;

	start(&th, NULL, worker_parent, (void *)21);
	pthread_join(th, &ret);
	printf("thread from a thread: %ld\n", (long)ret);
	start(&th, NULL, worker_static, (void *)41);
	pthread_join(th, &ret);
	printf("static routine: %ld\n", (long)ret);
}

/* Attributes pthread_create refuses: the same error under the shim, whose own
 * attempt gets it from pthread_create too. */
void *worker_refused(void *arg)
{
	return arg;
}

static void part_refused_attributes(void)
{
	struct sched_param sp = { 0 };
	pthread_attr_t a;
	pthread_t th;
	int r;

	pthread_attr_init(&a);
	pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedparam(&a, &sp);
	pthread_attr_setschedpolicy(&a, SCHED_FIFO);	/* priority 0 is not FIFO's */
	r = pthread_create(&th, &a, worker_refused, NULL);
	if (!r)
		pthread_join(th, NULL);
	printf("explicit SCHED_FIFO at priority 0: %s\n", strerror(r));
	pthread_attr_destroy(&a);
}

/* With the argument _exit, the program ends with _exit(), as lbzip2 does, after
 * a child forked with the threads' counts behind it has ended with _exit() too. */
int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	part_once_barrier_tsd();
	part_condvar();
	part_cancel();
	part_exit_detach_join();
	part_kill_names_stack();
	part_nested();
	part_refused_attributes();
	if (argc > 1 && !strcmp(argv[1], "_exit")) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			failed = 1;
		_exit(failed);
	}
	return failed;
}
