/* SPDX-License-Identifier: MIT */
/*
 * Parked vthreads (runtime/park.c): a plain vthread runs on the backing thread
 * of one that ended, and nothing of that one shows; a thread that would show
 * something ends instead, as a pthread would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <resolv.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* ASan keeps a pthread key value in every thread, for its own thread
 * destructor: a thread that ends holding one is not parked, so under ASan
 * none is, and these tests check that instead. */
#ifdef __SANITIZE_ADDRESS__
#define PARKS 0
#else
#define PARKS 1
#endif

static __thread int tls_counter = 7;
static __thread char tls_zeroed[64];

static void *tid(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)syscall(SYS_gettid);
}

static struct vthread_stats stats(void)
{
	struct vthread_stats st = VTHREAD_STATS_INIT;

	ck_assert_int_eq(vthread_get_stats(&st), 0);
	return st;
}

START_TEST(test_a_vthread_runs_on_the_thread_of_one_that_returned)
{
	struct vthread_stats before;
	long first;

	first = run_vthread(tid, NULL);
	before = stats();
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(run_vthread(tid, NULL) == first, PARKS);
	ck_assert_uint_eq(stats().vthreads_reused, before.vthreads_reused + 20 * PARKS);
	ck_assert_uint_eq(stats().vthreads_parked, PARKS);
}
END_TEST

static void *bump_tls(void *arg)
{
	(void)arg;
	tls_zeroed[10] = 1;
	return (void *)(intptr_t)++tls_counter;
}

static void *read_tls(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(tls_counter * 1000 + tls_zeroed[10]);
}

/* A thread whose __thread variables changed ends; the next starts afresh. */
START_TEST(test_thread_variables_start_from_their_initial_values)
{
	long t0 = run_vthread(tid, NULL), t1;

	ck_assert_int_eq(run_vthread(bump_tls, NULL), 8);
	ck_assert_int_eq(run_vthread(read_tls, NULL), 7000);
	ck_assert_int_eq(run_vthread(bump_tls, NULL), 8);
	t1 = run_vthread(tid, NULL);
	ck_assert_int_ne(t1, t0);	/* the thread bump_tls ran on ended */
	ck_assert_int_eq(run_vthread(read_tls, NULL), 7000);
	ck_assert_int_eq(run_vthread(tid, NULL) == t1, PARKS);	/* reading keeps it */
}
END_TEST

static pthread_key_t key;
static int destructed;

static void destructor(void *v)
{
	(void)v;
	__atomic_add_fetch(&destructed, 1, __ATOMIC_SEQ_CST);
}

static void *set_key(void *arg)
{
	pthread_setspecific(key, arg);
	return NULL;
}

static void *get_key(void *arg)
{
	(void)arg;
	return pthread_getspecific(key);
}

START_TEST(test_key_destructors_run_before_join_and_keys_start_empty)
{
	ck_assert_int_eq(pthread_key_create(&key, destructor), 0);
	for (int i = 1; i <= 5; i++) {
		run_vthread(set_key, &destructed);
		ck_assert_int_eq(__atomic_load_n(&destructed, __ATOMIC_SEQ_CST), i);
		ck_assert_ptr_null((void *)run_vthread(get_key, NULL));
	}
}
END_TEST

/* glibc keeps keys from 32 on in blocks of their own: one of them set
 * counts as much as a key of the first block. */
START_TEST(test_a_key_past_the_first_block_set_at_the_end_is_destructed)
{
	pthread_key_t keys[64];
	int n = 0;

	do
		ck_assert_int_eq(pthread_key_create(&keys[n], destructor), 0);
	while (keys[n++] < 32 && n < 64);
	key = keys[n - 1];
	ck_assert_uint_ge(key, 32);
	destructed = 0;
	for (int i = 1; i <= 3; i++) {
		run_vthread(set_key, &destructed);
		ck_assert_int_eq(__atomic_load_n(&destructed, __ATOMIC_SEQ_CST), i);
		ck_assert_ptr_null((void *)run_vthread(get_key, NULL));
	}
	while (n--)
		pthread_key_delete(keys[n]);
}
END_TEST

static void *set_errno(void *arg)
{
	(void)arg;
	errno = EILSEQ;
	return NULL;
}

static void *get_errno(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)errno;
}

START_TEST(test_errno_starts_at_zero_on_a_reused_thread)
{
	long t = run_vthread(tid, NULL);

	run_vthread(set_errno, NULL);
	ck_assert_int_eq(run_vthread(get_errno, NULL), 0);
	ck_assert_int_eq(run_vthread(tid, NULL) == t, PARKS);	/* all on one thread */
}
END_TEST

static void *blocked_sigusr2(void *arg)
{
	sigset_t s;

	(void)arg;
	pthread_sigmask(SIG_BLOCK, NULL, &s);
	return (void *)(intptr_t)sigismember(&s, SIGUSR2);
}

START_TEST(test_a_reused_thread_takes_its_creators_signal_mask)
{
	sigset_t s;
	long t;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	t = run_vthread(tid, NULL);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	ck_assert_int_eq(run_vthread(blocked_sigusr2, NULL), 1);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	ck_assert_int_eq(run_vthread(blocked_sigusr2, NULL), 0);
	ck_assert_int_eq(run_vthread(tid, NULL) == t, PARKS);
}
END_TEST

static void *rename_self(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)prctl(PR_SET_NAME, "renamed");
}

static void *comm(void *arg)
{
	char name[16] = "";

	prctl(PR_GET_NAME, name);
	return (void *)(intptr_t)!strcmp(name, (const char *)arg);
}

START_TEST(test_a_thread_that_renamed_itself_is_not_reused)
{
	char mine[16] = "";

	prctl(PR_GET_NAME, mine);
	ck_assert_int_eq(run_vthread(rename_self, NULL), 0);
	ck_assert_int_eq(run_vthread(comm, mine), 1);
}
END_TEST

/* A memory policy of its own (set_mempolicy is per thread): the thread ends,
 * and the next vthread starts with the default policy, as a pthread would. */
static void *bind_memory(void *arg)
{
	unsigned long node0 = 1;

	(void)arg;
	return (void *)syscall(SYS_set_mempolicy, 2 /* MPOL_BIND */, &node0, 8 * sizeof(node0));
}

static void *mempolicy_mode(void *arg)
{
	int mode = -1;

	(void)arg;
	if (syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 0))
		return (void *)-1;
	return (void *)(intptr_t)mode;
}

START_TEST(test_a_thread_with_a_memory_policy_of_its_own_is_not_reused)
{
	ck_assert_int_eq(run_vthread(mempolicy_mode, NULL), 0);	/* MPOL_DEFAULT */
	ck_assert_int_eq(run_vthread(bind_memory, NULL), 0);
	ck_assert_int_eq(run_vthread(mempolicy_mode, NULL), 0);
}
END_TEST

/* A creator that filtered itself (seccomp) since a thread parked gets a fresh
 * thread, which inherits the filter, not the parked one. */
static void *uname_denied(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(syscall(SYS_uname, NULL) == -1 && errno == EPERM);
}

static void *filter_then_run(void *arg)
{
	vthread_t vt;
	void *ret;

	(void)arg;
	if (deny_uname())
		return (void *)-1;
	if (vthread_create(&vt, NULL, uname_denied, NULL) || vthread_join(vt, &ret))
		return (void *)-2;
	return ret;
}

START_TEST(test_a_creator_with_a_seccomp_filter_gets_no_unfiltered_thread)
{
	pthread_t p;
	void *ret;

	run_vthread(tid, NULL);	/* one parks, unfiltered */
	ck_assert_int_eq(pthread_create(&p, NULL, filter_then_run, NULL), 0);
	ck_assert_int_eq(pthread_join(p, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 1);
}
END_TEST

/* Resolver state (per thread in glibc, cleared at a thread's exit): a thread
 * whose vthread used it ends; the next starts with none. */
static void *use_resolver(void *arg)
{
	(void)arg;
	if (res_init())
		return (void *)-1;
	_res.retrans = 77;
	return NULL;
}

static void *resolver_state(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)(_res.options & RES_INIT);
}

START_TEST(test_a_thread_that_used_the_resolver_is_not_reused)
{
	ck_assert_int_eq(run_vthread(use_resolver, NULL), 0);
	ck_assert_int_eq(run_vthread(resolver_state, NULL), 0);
}
END_TEST

/* A thread_local destructor (C++'s, __cxa_thread_atexit) runs before the
 * vthread's join returns, as a pthread's does at its exit, parked or not. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso);
extern void *__dso_handle;
static volatile int dtors;

static void count_dtor(void *obj)
{
	(void)obj;
	dtors++;
}

static void *register_dtor(void *arg)
{
	(void)arg;
	__cxa_thread_atexit_impl(count_dtor, NULL, &__dso_handle);
	return NULL;
}

START_TEST(test_thread_local_destructors_run_before_join_returns)
{
	for (int i = 1; i <= 5; i++) {
		ck_assert_int_eq(run_vthread(register_dtor, NULL), 0);
		ck_assert_int_eq(dtors, i);
	}
}
END_TEST

/* A signal sent to a parked thread (by its last vthread's ID) is not the next
 * vthread's: a fresh thread would not get it (the ID would be gone: ESRCH). */
static volatile int usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void *spin_20ms(void *arg)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 20000000);
	return arg;
}

START_TEST(test_a_signal_sent_to_a_parked_thread_is_not_the_next_vthreads)
{
	long t;

	signal(SIGUSR1, on_usr1);
	for (int i = 0; i < 5; i++) {
		t = run_vthread(tid, NULL);
		usleep(1000);	/* parked, awake or asleep */
		ck_assert_int_eq(syscall(SYS_tgkill, getpid(), t, SIGUSR1) == 0, PARKS);
		ck_assert_int_eq(run_vthread(spin_20ms, NULL), 0);
		ck_assert_int_eq(usr1, 0);
	}
}
END_TEST

/* close_range with CLOSE_RANGE_UNSHARE gives the thread a table of its own:
 * it ends, and the next vthread sees the process's descriptors. */
static void *unshare_descriptors(void *arg)
{
	(void)arg;
	return (void *)syscall(SYS_close_range, ~0u, ~0u, CLOSE_RANGE_UNSHARE);
}

static void *descriptor_flags(void *arg)
{
	return (void *)(intptr_t)fcntl((int)(intptr_t)arg, F_GETFD);
}

START_TEST(test_a_thread_with_a_descriptor_table_of_its_own_is_not_reused)
{
	int fd;

	ck_assert_int_eq(run_vthread(unshare_descriptors, NULL), 0);
	fd = open("/dev/null", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(run_vthread(descriptor_flags, (void *)(intptr_t)fd), 0);
	close(fd);
}
END_TEST

/* glibc's setuid() and the like wait until every thread has answered their
 * signal: a parked thread answers (it hung them for good before 0.7.5). Run
 * alone, so that a hang is this test's timeout. */
START_TEST(test_setresuid_returns_with_a_thread_parked)
{
	run_vthread(tid, NULL);
	ck_assert_uint_eq(stats().vthreads_parked, PARKS);
	ck_assert_int_eq(setresuid(getuid(), geteuid(), -1), 0);
	ck_assert_int_eq(setresgid(getgid(), getegid(), -1), 0);
}
END_TEST

static volatile int go;

static void *wait_go(void *arg)
{
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	return arg;
}

static void *sleep_a_little(void *arg)
{
	usleep(1000);	/* a cancellation point */
	return arg;
}

/* Renamed from outside while it ran: a creator of another name gets another thread. */
START_TEST(test_a_thread_renamed_from_outside_backs_no_creator_of_another_name)
{
	char mine[16] = "";
	vthread_t vt;

	prctl(PR_GET_NAME, mine);
	run_vthread(tid, NULL);
	go = 0;
	ck_assert_int_eq(vthread_create(&vt, NULL, wait_go, NULL), 0);
	ck_assert_int_eq(pthread_setname_np(vthread_pthread(vt), "outside"), 0);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(run_vthread(comm, mine), 1);
}
END_TEST

/* Cancelled after its last cancellation point: its value stands, and the
 * cancellation never reaches the next vthread. */
START_TEST(test_a_late_cancellation_does_not_reach_the_next_vthread)
{
	vthread_t vt;
	void *ret;

	run_vthread(tid, NULL);
	go = 0;
	ck_assert_int_eq(vthread_create(&vt, NULL, wait_go, (void *)1), 0);
	ck_assert_int_eq(pthread_cancel(vthread_pthread(vt)), 0);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)1);
	ck_assert_int_eq(run_vthread(sleep_a_little, (void *)42), 42);
}
END_TEST

static pthread_mutex_t robust;

static void *lock_robust(void *arg)
{
	return (void *)(intptr_t)pthread_mutex_lock(arg);
}

/* A vthread that ends holding a robust mutex is an owner that died. */
START_TEST(test_a_robust_mutex_held_at_the_end_is_owner_dead)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	ck_assert_int_eq(pthread_mutex_init(&robust, &a), 0);
	run_vthread(tid, NULL);
	ck_assert_int_eq(run_vthread(lock_robust, &robust), 0);
	/* Dead by the time join returned; EBUSY: its owner lives on. */
	ck_assert_int_eq(pthread_mutex_trylock(&robust), EOWNERDEAD);
}
END_TEST

static int count_tasks(void)
{
	return count_entries("/proc/self/task") - 2;
}

/* Parked threads end once idle for a second: nothing is left behind. */
START_TEST(test_parked_threads_end_when_idle)
{
	int tasks, i;

	run_vthread(tid, NULL);
	ck_assert_uint_eq(stats().vthreads_parked, PARKS);
	if (!PARKS)
		return;
	tasks = count_tasks();	/* with the VM's kernel thread and the ring's server */
	for (i = 0; i < 100 && stats().vthreads_parked; i++)
		usleep(50000);
	ck_assert_uint_eq(stats().vthreads_parked, 0);
	for (i = 0; i < 100 && count_tasks() > tasks - 1; i++)
		usleep(10000);
	ck_assert_int_eq(count_tasks(), tasks - 1);
	ck_assert_uint_eq(stats().vcpus_busy, 0);
}
END_TEST

/* The process ends with its last thread, the main thread's pthread_exit, with
 * a thread parked. */
START_TEST(test_the_process_ends_when_its_last_thread_exits_with_one_parked)
{
	int status = 0;
	pid_t pid;

	require_backend();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		if (run_vthread(tid, NULL) <= 0 || stats().vthreads_parked != PARKS)
			_exit(3);
		lsan_off = 1;
		pthread_exit(NULL);
	}
	for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ck_abort_msg("the process outlived its last thread");
	}
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("park");
	TCase *tc = tcase_create("park");

	tcase_add_test(tc, test_a_vthread_runs_on_the_thread_of_one_that_returned);
	tcase_add_test(tc, test_thread_variables_start_from_their_initial_values);
	tcase_add_test(tc, test_key_destructors_run_before_join_and_keys_start_empty);
	tcase_add_test(tc, test_a_key_past_the_first_block_set_at_the_end_is_destructed);
	tcase_add_test(tc, test_errno_starts_at_zero_on_a_reused_thread);
	tcase_add_test(tc, test_a_reused_thread_takes_its_creators_signal_mask);
	tcase_add_test(tc, test_a_thread_that_renamed_itself_is_not_reused);
	tcase_add_test(tc, test_a_thread_renamed_from_outside_backs_no_creator_of_another_name);
	tcase_add_test(tc, test_a_thread_with_a_memory_policy_of_its_own_is_not_reused);
	tcase_add_test(tc, test_setresuid_returns_with_a_thread_parked);
	tcase_add_test(tc, test_a_thread_that_used_the_resolver_is_not_reused);
	tcase_add_test(tc, test_thread_local_destructors_run_before_join_returns);
	tcase_add_test(tc, test_a_signal_sent_to_a_parked_thread_is_not_the_next_vthreads);
	tcase_add_test(tc, test_a_thread_with_a_descriptor_table_of_its_own_is_not_reused);
	tcase_add_test(tc, test_a_creator_with_a_seccomp_filter_gets_no_unfiltered_thread);
	tcase_add_test(tc, test_a_late_cancellation_does_not_reach_the_next_vthread);
	tcase_add_test(tc, test_a_robust_mutex_held_at_the_end_is_owner_dead);
	tcase_add_test(tc, test_parked_threads_end_when_idle);
	tcase_add_test(tc, test_the_process_ends_when_its_last_thread_exits_with_one_parked);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
