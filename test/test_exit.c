/* SPDX-License-Identifier: MIT */
/* How a vthread ends: return, pthread_exit, vthread_exit, raw exit, exit_group. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static int cleanups[64];
static atomic_int ncleanups;
static pthread_key_t key;
static int destructed;

static void note_cleanup(void *arg)
{
	int i = ncleanups++;

	if (i < 64)
		cleanups[i] = (int)(intptr_t)arg;
}

static void key_destructor(void *value)
{
	destructed = (int)(intptr_t)value;
}

static __attribute__((noinline)) void leave(void)
{
	pthread_exit((void *)0x5eed);
}

static __attribute__((noinline)) void inner(void)
{
	pthread_cleanup_push(note_cleanup, (void *)1);
	leave();
	pthread_cleanup_pop(0);
}

static __attribute__((noinline)) void outer(void)
{
	pthread_cleanup_push(note_cleanup, (void *)3);
	pthread_cleanup_push(note_cleanup, (void *)2);
	inner();
	pthread_cleanup_pop(0);
	pthread_cleanup_pop(0);
}

static void *exit_from_depth(void *arg)
{
	(void)arg;
	pthread_setspecific(key, (void *)77);
	outer();
	return (void *)1;	/* not reached */
}

START_TEST(test_pthread_exit_runs_cleanups_and_destructors)
{
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(pthread_key_create(&key, key_destructor), 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, exit_from_depth, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)0x5eed);
	/* innermost first, as in a pthread */
	ck_assert_int_eq(ncleanups, 3);
	ck_assert_int_eq(cleanups[0], 1);
	ck_assert_int_eq(cleanups[1], 2);
	ck_assert_int_eq(cleanups[2], 3);
	ck_assert_int_eq(destructed, 77);
}
END_TEST

static void *exit_through_vthread_exit(void *arg)
{
	pthread_cleanup_push(note_cleanup, arg);
	vthread_exit((void *)0xabc);
	pthread_cleanup_pop(0);
	return NULL;
}

START_TEST(test_vthread_exit_runs_cleanups)
{
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, exit_through_vthread_exit, (void *)9), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)0xabc);
	ck_assert_int_eq(ncleanups, 1);
	ck_assert_int_eq(cleanups[0], 9);
}
END_TEST

static void *return_with_cleanup_popped(void *arg)
{
	pthread_cleanup_push(note_cleanup, arg);
	pthread_cleanup_pop(1);
	pthread_setspecific(key, (void *)5);
	return (void *)0x42;
}

START_TEST(test_return_runs_destructors_and_popped_cleanups)
{
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(pthread_key_create(&key, key_destructor), 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, return_with_cleanup_popped, (void *)4), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)0x42);
	ck_assert_int_eq(ncleanups, 1);
	ck_assert_int_eq(cleanups[0], 4);
	ck_assert_int_eq(destructed, 5);
}
END_TEST

static void *detached_exit(void *arg)
{
	pthread_cleanup_push(note_cleanup, arg);
	pthread_exit(NULL);
	pthread_cleanup_pop(0);
	return NULL;
}

START_TEST(test_detached_pthread_exit_is_reclaimed)
{
	struct vthread_stats st = VTHREAD_STATS_INIT;
	vthread_attr_t a;
	vthread_t vt;

	require_backend();
	vthread_attr_init(&a);
	vthread_attr_setdetachstate(&a, VTHREAD_CREATE_DETACHED);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(vthread_create(&vt, &a, detached_exit, NULL), 0);
	for (int i = 0; i < 2000; i++) {
		vthread_get_stats(&st);
		if (st.vthreads_live == 0)
			break;
		usleep(1000);
	}
	ck_assert_uint_eq(st.vthreads_live, 0);
	ck_assert_uint_eq(st.vcpus_busy, 0);
	ck_assert_int_eq(ncleanups, 50);
}
END_TEST

static void *raw_exit(void *arg)
{
	(void)arg;
	syscall(SYS_exit, 0);
	return (void *)1;
}

START_TEST(test_raw_exit_ends_only_the_vthread)
{
	vthread_t vt;
	void *ret = (void *)1;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, raw_exit, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_null(ret);
}
END_TEST

static void *call_exit(void *arg)
{
	exit((int)(intptr_t)arg);
}

START_TEST(test_exit_in_a_vthread_ends_the_process)
{
	int status = run_vthread_in_child(call_exit, (void *)23);

	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 23);
}
END_TEST

/*
 * The main thread's pthread_exit() leaves the process to its other threads:
 * they go on (the runtime's copies of guest memory must not name the ended
 * main thread), and it ends, status 0, when the last of them ends, in every
 * system-call mode (the ring's servers must not keep it alive).
 */
static int token_pipe[2];

/* After the main thread has ended: a call the runtime copies memory for. */
static void *token_after_a_while(void *arg)
{
	char c = (char)(intptr_t)arg;
	sigset_t mask;

	usleep(20000);
	if (pthread_sigmask(SIG_BLOCK, NULL, &mask) || write(token_pipe[1], &c, 1) != 1)
		abort();
	return NULL;
}

START_TEST(test_main_pthread_exit_ends_the_process_with_its_last_thread)
{
	char got[8] = "";
	int status = 0;
	pid_t pid;

	require_backend();
	ck_assert_int_eq(pipe(token_pipe), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);	/* Check's handler kills the whole group */
		close(token_pipe[0]);
		for (intptr_t i = 0; i < 3; i++) {
			vthread_t vt;

			if (vthread_create(&vt, NULL, token_after_a_while, (void *)('a' + i)) ||
			    vthread_detach(vt))
				_exit(99);
		}
		lsan_off = 1;
		pthread_exit(NULL);
	}
	close(token_pipe[1]);
	/* Bounded: a process that outlives its threads is killed and the test fails. */
	for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(100000);
	if (kill(pid, SIGKILL) == 0)
		waitpid(pid, &status, 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "wait status %#x: the process outlived its last thread", status);
	ck_assert_int_eq(read(token_pipe[0], got, sizeof(got) - 1), 3);
	close(token_pipe[0]);
}
END_TEST

/* _exit() skips atexit; the VTHREAD_STATS=1 report comes anyway, once. */
static void *underscore_exit(void *arg)
{
	_exit((int)(intptr_t)arg);
}

static void stats_then__exit(void *arg)
{
	vthread_t vt;

	(void)arg;
	setenv("VTHREAD_STATS", "1", 1);	/* read when the runtime starts, below */
	if (vthread_create(&vt, NULL, underscore_exit, (void *)5))
		_exit(99);
	vthread_join(vt, NULL);
	_exit(98);
}

START_TEST(test_stats_report_comes_when_a_vthread_calls__exit)
{
	char out[4096], *report;
	int status;

	require_backend();
	status = stderr_of_child(stats_then__exit, NULL, out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 5);
	report = strstr(out, "libvthread stats:");
	ck_assert_msg(report && !strstr(report + 1, "libvthread stats:"), "not one report: %s", out);
}
END_TEST

static void *self_of_backing(void *arg)
{
	*(pthread_t *)arg = pthread_self();
	return NULL;
}

START_TEST(test_pthread_self_is_the_backing_thread)
{
	pthread_t inside = 0;
	vthread_t vt;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, self_of_backing, &inside), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert(inside != 0);
	ck_assert(!pthread_equal(inside, pthread_self()));
}
END_TEST

static atomic_int spinning;

static void *cancel_point_loop(void *arg)
{
	pthread_cleanup_push(note_cleanup, arg);
	if (arg == (void *)2)
		pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
	spinning = 1;
	for (;;)
		if (arg == (void *)1)
			pthread_testcancel();
	pthread_cleanup_pop(0);
	return NULL;
}

static pthread_t backing_of_target;

static void *record_backing(void *arg)
{
	backing_of_target = pthread_self();
	return cancel_point_loop(arg);
}

static void cancel_spinner(void *how)
{
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, record_backing, how), 0);
	while (!spinning)
		usleep(100);
	ck_assert_int_eq(pthread_cancel(backing_of_target), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_int_eq(ncleanups, 1);
	ck_assert_int_eq(cleanups[0], (int)(intptr_t)how);
}

START_TEST(test_deferred_cancellation_at_a_cancellation_point)
{
	cancel_spinner((void *)1);
}
END_TEST

START_TEST(test_asynchronous_cancellation_of_guest_code)
{
	cancel_spinner((void *)2);
}
END_TEST

/*
 * A cancellation pending while the runtime handles the vthread's exits (here a
 * first touch of fresh memory, which the mirror maps) waits, as for a pthread,
 * for the vthread's next cancellation point: the runtime, which shares the
 * thread's cancellation state, must call none itself.
 */
static atomic_int touched;

static void *cancel_self_then_touch(void *arg)
{
	size_t len = 64ul << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	if (p == MAP_FAILED)
		return NULL;
	pthread_cancel(pthread_self());		/* deferred: pending until a cancellation point */
	for (size_t i = 0; i < len; i += 2 << 20)
		p[i] = 1;
	touched = 1;
	pthread_testcancel();
	return NULL;
}

START_TEST(test_pending_cancellation_waits_for_a_cancellation_point)
{
	void *ret;

	require_backend();
	ret = (void *)run_vthread(cancel_self_then_touch, NULL);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_int_eq(touched, 1);
}
END_TEST

/* Cancellation of a vthread blocked in a forwarded call, as of a pthread. */
enum block { IN_READ, IN_COND_WAIT, IN_SLEEP, CANCEL_DISABLED };

static int block_pipe[2];
static pthread_mutex_t block_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t block_cond = PTHREAD_COND_INITIALIZER;
static atomic_int blocking;
static long disabled_read;

static void unlock_block_lock(void *arg)
{
	note_cleanup(arg);
	pthread_mutex_unlock(&block_lock);
}

static void *block(void *arg)
{
	enum block how = (enum block)(intptr_t)arg;
	char c;

	backing_of_target = pthread_self();
	pthread_cleanup_push(note_cleanup, (void *)10);
	switch (how) {
	case IN_READ:
		blocking = 1;
		read(block_pipe[0], &c, 1);
		break;
	case IN_COND_WAIT:
		pthread_mutex_lock(&block_lock);
		pthread_cleanup_push(unlock_block_lock, (void *)11);
		blocking = 1;
		for (;;)
			pthread_cond_wait(&block_cond, &block_lock);
		pthread_cleanup_pop(1);
		break;
	case IN_SLEEP:
		blocking = 1;
		sleep(100);
		break;
	case CANCEL_DISABLED:
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		blocking = 1;
		disabled_read = read(block_pipe[0], &c, 1);
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		pthread_testcancel();
		break;
	}
	pthread_cleanup_pop(0);
	return NULL;
}

static void cancel_blocked(enum block how, bool as_vthread)
{
	pthread_t th;
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(pipe(block_pipe), 0);
	if (as_vthread)
		ck_assert_int_eq(vthread_create(&vt, NULL, block, (void *)(intptr_t)how), 0);
	else
		ck_assert_int_eq(pthread_create(&th, NULL, block, (void *)(intptr_t)how), 0);
	while (!blocking)
		usleep(1000);
	usleep(100 * 1000);	/* into the call, most likely; the result is the same if not */
	ck_assert_int_eq(pthread_cancel(backing_of_target), 0);
	if (how == CANCEL_DISABLED) {
		usleep(100 * 1000);
		ck_assert_int_eq(write(block_pipe[1], "x", 1), 1);
	}
	if (as_vthread)
		ck_assert_int_eq(vthread_join(vt, &ret), 0);
	else
		ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	if (how == IN_COND_WAIT) {
		ck_assert_int_eq(ncleanups, 2);
		ck_assert_int_eq(cleanups[0], 11);
		ck_assert_int_eq(pthread_mutex_trylock(&block_lock), 0);
		pthread_mutex_unlock(&block_lock);
	} else {
		ck_assert_int_eq(ncleanups, 1);
	}
	ck_assert_int_eq(cleanups[ncleanups - 1], 10);
	if (how == CANCEL_DISABLED)
		ck_assert_int_eq(disabled_read, 1);	/* not EINTR: SA_RESTART, as glibc's */
	close(block_pipe[0]);
	close(block_pipe[1]);
}

START_TEST(test_cancel_blocked_in_read)
{
	cancel_blocked(IN_READ, true);
}
END_TEST

START_TEST(test_cancel_blocked_in_cond_wait)
{
	cancel_blocked(IN_COND_WAIT, true);
}
END_TEST

START_TEST(test_cancel_blocked_in_sleep)
{
	cancel_blocked(IN_SLEEP, true);
}
END_TEST

START_TEST(test_cancel_while_disabled_leaves_a_read_alone)
{
	cancel_blocked(CANCEL_DISABLED, true);
}
END_TEST

/* The runtime's SIGCANCEL handler passes a pthread's cancellation to glibc's. */
START_TEST(test_cancel_of_a_pthread_blocked_in_read)
{
	cancel_blocked(IN_READ, false);
}
END_TEST

/* vthread_join is a cancellation point, as pthread_join is, and a cancelled
 * join leaves its vthread joinable. */
static atomic_int release_target;
static vthread_t join_target;

static void *wait_for_release(void *arg)
{
	while (!release_target)
		usleep(1000);
	return arg;
}

static void *cancelled_joiner(void *arg)
{
	void *ret = NULL;

	(void)arg;
	backing_of_target = pthread_self();
	pthread_cleanup_push(note_cleanup, (void *)20);
	blocking = 1;
	vthread_join(join_target, &ret);
	pthread_cleanup_pop(0);
	return ret;	/* not reached: the join is cancelled */
}

static void cancel_joiner(bool as_vthread)
{
	pthread_t th;
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_create(&join_target, NULL, wait_for_release, (void *)42), 0);
	if (as_vthread)
		ck_assert_int_eq(vthread_create(&vt, NULL, cancelled_joiner, NULL), 0);
	else
		ck_assert_int_eq(pthread_create(&th, NULL, cancelled_joiner, NULL), 0);
	while (!blocking)
		usleep(1000);
	usleep(100 * 1000);	/* into the wait, most likely; the result is the same if not */
	ck_assert_int_eq(pthread_cancel(backing_of_target), 0);
	if (as_vthread)
		ck_assert_int_eq(vthread_join(vt, &ret), 0);
	else
		ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_int_eq(ncleanups, 1);
	ck_assert_int_eq(cleanups[0], 20);
	release_target = 1;
	ck_assert_int_eq(vthread_join(join_target, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)42);
}

START_TEST(test_cancelled_join_leaves_the_vthread_joinable)
{
	cancel_joiner(false);
}
END_TEST

START_TEST(test_cancelled_join_inside_a_vthread)
{
	cancel_joiner(true);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("exit");
	TCase *tc = tcase_create("exit");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pthread_exit_runs_cleanups_and_destructors);
	tcase_add_test(tc, test_vthread_exit_runs_cleanups);
	tcase_add_test(tc, test_return_runs_destructors_and_popped_cleanups);
	tcase_add_test(tc, test_detached_pthread_exit_is_reclaimed);
	tcase_add_test(tc, test_raw_exit_ends_only_the_vthread);
	tcase_add_test(tc, test_exit_in_a_vthread_ends_the_process);
	tcase_add_test(tc, test_main_pthread_exit_ends_the_process_with_its_last_thread);
	tcase_add_test(tc, test_stats_report_comes_when_a_vthread_calls__exit);
	tcase_add_test(tc, test_pthread_self_is_the_backing_thread);
	tcase_add_test(tc, test_deferred_cancellation_at_a_cancellation_point);
	tcase_add_test(tc, test_asynchronous_cancellation_of_guest_code);
	tcase_add_test(tc, test_pending_cancellation_waits_for_a_cancellation_point);
	tcase_add_test(tc, test_cancel_blocked_in_read);
	tcase_add_test(tc, test_cancel_blocked_in_cond_wait);
	tcase_add_test(tc, test_cancel_blocked_in_sleep);
	tcase_add_test(tc, test_cancel_while_disabled_leaves_a_read_alone);
	tcase_add_test(tc, test_cancel_of_a_pthread_blocked_in_read);
	tcase_add_test(tc, test_cancelled_join_leaves_the_vthread_joinable);
	tcase_add_test(tc, test_cancelled_join_inside_a_vthread);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
