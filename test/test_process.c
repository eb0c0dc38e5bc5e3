/* SPDX-License-Identifier: MIT */
/* fork, vfork, clone (pthread_create), posix_spawn and execve from a vthread. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* The exit status of a child that exited, or -1. */
static intptr_t exit_status(pid_t pid)
{
	int status;

	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void *child_body(void *arg)
{
	return (void *)((intptr_t)arg * 2);
}

static void *fork_inside(void *arg)
{
	volatile long local = 1234;	/* on the vthread's stack, copied */
	pid_t pid;

	(void)arg;
	pid = fork();
	if (pid == 0) {
		vthread_t vt;
		void *ret = NULL;

		/* An ordinary process, which can start vthreads of its own. */
		if (vthread_self() != NULL || local != 1234)
			_exit(10);
		if (vthread_create(&vt, NULL, child_body, (void *)21) || vthread_join(vt, &ret))
			_exit(11);
		_exit(ret == (void *)42 ? 7 : 12);
	}
	return (void *)exit_status(pid);
}

START_TEST(test_fork_in_a_vthread_continues_as_an_ordinary_process)
{
	intptr_t ret = run_vthread(fork_inside, NULL);

	ck_assert_int_eq(ret, 7);
}
END_TEST

/*
 * A child forked inside a vthread whose thread then ends (return, pthread_exit,
 * vthread_exit) ends as a process whose last pthread ended: status 0, after the
 * thread's cleanup handlers and the process's atexit handlers.
 */
static int end_pipe[2];

static void say_char(int c)
{
	char b = (char)c;

	if (write(end_pipe[1], &b, 1) != 1)
		_exit(13);
}

static void cleanup_says(void *arg)
{
	(void)arg;
	say_char('c');
}

static void atexit_says(void)
{
	say_char('x');
}

static void *fork_then_end(void *arg)
{
	intptr_t how = (intptr_t)arg;
	pid_t pid = fork();
	int status = -1;

	if (pid == 0) {
		lsan_off = 1;
		atexit(atexit_says);
		pthread_cleanup_push(cleanup_says, NULL);
		if (how == 1)
			pthread_exit(NULL);
		if (how == 2)
			vthread_exit(NULL);
		pthread_cleanup_pop(0);
		return NULL;
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return (void *)-1;
	return (void *)(intptr_t)status;
}

START_TEST(test_fork_child_of_a_vthread_ends_with_its_thread)
{
	static const char *const said[] = { "x", "cx", "cx" };
	char got[4] = "";
	intptr_t status;

	ck_assert_int_eq(pipe(end_pipe), 0);
	status = run_vthread(fork_then_end, (void *)(intptr_t)_i);
	close(end_pipe[1]);
	ck_assert_int_ge(read(end_pipe[0], got, sizeof(got) - 1), 0);
	close(end_pipe[0]);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "ending by %d: child wait status %#lx", _i, (long)status);
	ck_assert_str_eq(got, said[_i]);
}
END_TEST

/*
 * A fork handler that runs after the runtime's, inside the vthread that forks,
 * and touches memory no vthread has touched: the mirror must map it, page-table
 * pages included, while the runtime's prepare handler holds its locks.
 */
static volatile char *unmirrored;

static void touch_unmirrored(void)
{
	if (unmirrored)
		unmirrored[0] = 5;
}

static void *fork_touching(void *arg)
{
	pid_t pid;

	(void)arg;
	pid = fork();
	if (pid == 0)
		_exit(unmirrored[0] == 5 ? 7 : 13);
	return (void *)exit_status(pid);
}

START_TEST(test_fork_handler_in_a_vthread_touches_new_memory)
{
	intptr_t ret;

	ck_assert_int_eq(pthread_atfork(touch_unmirrored, NULL, NULL), 0);
	require_backend();	/* the runtime's handlers, registered now, prepare first */
	unmirrored = mmap((void *)0x2c0000000000, 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_ptr_ne((void *)unmirrored, MAP_FAILED);
	ret = run_vthread(fork_touching, NULL);
	ck_assert_int_eq(ret, 7);
	ck_assert_int_eq(unmirrored[0], 5);
}
END_TEST

static void *vfork_inside(void *arg)
{
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		if (arg)
			execl("/bin/sh", "sh", "-c", "exit 5", (char *)NULL);
		_exit(3);
	}
	return (void *)exit_status(pid);
}

START_TEST(test_vfork_and_exit_in_a_vthread)
{
	intptr_t ret = run_vthread(vfork_inside, NULL);

	ck_assert_int_eq(ret, 3);
}
END_TEST

START_TEST(test_vfork_and_exec_in_a_vthread)
{
	intptr_t ret = run_vthread(vfork_inside, (void *)1);

	ck_assert_int_eq(ret, 5);
}
END_TEST

static void *run_system(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)system("exit 4");
}

START_TEST(test_system_in_a_vthread)
{
	intptr_t ret = run_vthread(run_system, NULL);

	ck_assert(WIFEXITED(ret));
	ck_assert_int_eq(WEXITSTATUS(ret), 4);
}
END_TEST

static void *run_popen(void *arg)
{
	char *out = arg;
	FILE *f = popen("echo hello from sh", "r");

	if (!f || !fgets(out, 64, f))
		return (void *)-1;
	return (void *)(intptr_t)pclose(f);
}

START_TEST(test_popen_in_a_vthread)
{
	char out[64] = "";

	ck_assert_int_eq(run_vthread(run_popen, out), 0);
	ck_assert_str_eq(out, "hello from sh\n");
}
END_TEST

static void *in_pthread(void *arg)
{
	/* An ordinary thread: its own TLS, no vthread. */
	if (vthread_self() != NULL)
		return (void *)-1;
	return (void *)((intptr_t)arg + 1);
}

static void *pthreads_inside(void *arg)
{
	pthread_t t[4];
	intptr_t sum = 0;
	void *r;

	(void)arg;
	for (int i = 0; i < 4; i++)
		if (pthread_create(&t[i], NULL, in_pthread, (void *)(intptr_t)(i * 10)))
			return (void *)-1;
	for (int i = 0; i < 4; i++) {
		if (pthread_join(t[i], &r))
			return (void *)-2;
		sum += (intptr_t)r;
	}
	return (void *)sum;
}

START_TEST(test_pthread_create_in_a_vthread)
{
	intptr_t ret = run_vthread(pthreads_inside, NULL);

	ck_assert_int_eq(ret, 0 + 10 + 20 + 30 + 4);
}
END_TEST

static void *exec_inside(void *arg)
{
	(void)arg;
	/* The new program must not inherit the runtime's all-blocked mask. */
	execl("/bin/sh", "sh", "-c",
	      "grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status && exit 9; exit 8",
	      (char *)NULL);
	return (void *)(intptr_t)errno;
}

START_TEST(test_execve_in_a_vthread_replaces_the_process)
{
	int status = run_vthread_in_child(exec_inside, NULL);

	ck_assert_msg(WIFEXITED(status), "status %#x", status);
	ck_assert_int_eq(WEXITSTATUS(status), 9);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process");
	TCase *tc = tcase_create("process");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fork_in_a_vthread_continues_as_an_ordinary_process);
	tcase_add_test(tc, test_fork_handler_in_a_vthread_touches_new_memory);
	tcase_add_loop_test(tc, test_fork_child_of_a_vthread_ends_with_its_thread, 0, 3);
	tcase_add_test(tc, test_vfork_and_exit_in_a_vthread);
	tcase_add_test(tc, test_vfork_and_exec_in_a_vthread);
	tcase_add_test(tc, test_system_in_a_vthread);
	tcase_add_test(tc, test_popen_in_a_vthread);
	tcase_add_test(tc, test_pthread_create_in_a_vthread);
	tcase_add_test(tc, test_execve_in_a_vthread_replaces_the_process);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
