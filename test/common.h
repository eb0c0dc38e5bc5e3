/* SPDX-License-Identifier: MIT */
/* Shared by the tests: a KVM that is missing is a failure, never a skip. */
#ifndef TEST_COMMON_H
#define TEST_COMMON_H

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vthread.h>

/* A seccomp filter on the calling thread only (no TSYNC, as libseccomp's
 * default) under which uname fails with EPERM: 0 or -1. */
static inline int deny_uname(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/*
 * For thread bodies whose memory accesses a test counts (mirror exits, memslots):
 * under ASan each access would also touch its shadow, mirrored on first use too.
 */
#define UNINSTRUMENTED __attribute__((no_sanitize("address")))

/*
 * A process a test ends through its last thread (the main thread's
 * pthread_exit(), a fork child's thread returning) has lost the main thread's
 * stack and the pointers on it: LeakSanitizer would call Check's allocations
 * leaked, as it would for the same program with pthreads. Such a child sets it.
 */
static int lsan_off;

__attribute__((visibility("default"), used)) int __lsan_is_turned_off(void)
{
	return lsan_off;
}

static inline void require_backend(void)
{
	const char *be = vthread_backend();

	ck_assert_msg(be != NULL, "no usable KVM: %s", vthread_backend_error());
}

/* Runs fn(arg) as a vthread to its end: its value. */
static inline intptr_t run_vthread(void *(*fn)(void *), void *arg)
{
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, fn, arg), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	return (intptr_t)ret;
}

/* The same in a system-call mode (VTHREAD_SYSCALL_*). */
static inline intptr_t run_vthread_mode(int mode, void *(*fn)(void *), void *arg)
{
	vthread_attr_t a;
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, mode), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, fn, arg), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	vthread_attr_destroy(&a);
	return (intptr_t)ret;
}

/*
 * Runs fn(arg) as a vthread in a forked child, for bodies that end the process:
 * the child's wait status (exit 99: no vthread; 98: the process outlived it).
 */
static inline int run_vthread_in_child(void *(*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	require_backend();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		vthread_t vt;

		signal(SIGTERM, SIG_DFL);	/* Check's handler kills the whole group */
		if (vthread_create(&vt, NULL, fn, arg))
			_exit(99);
		vthread_join(vt, NULL);
		_exit(98);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Entries of a directory, . and .. included. */
static inline int count_entries(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static inline int count_open_fds(void)
{
	return count_entries("/proc/self/fd");
}

/* Reads fd to its end, or until buf (len > 0) is full: NUL-terminated. */
static inline void read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
}

/* Runs body(arg) in a forked child whose stderr goes to out (read_all); its wait status. */
static inline int stderr_of_child(void (*body)(void *), void *arg, char *out, size_t len)
{
	int p[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		body(arg);
		_exit(0);
	}
	close(p[1]);
	read_all(p[0], out, len);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Resident memory of this process, in bytes. */
static inline long resident(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long size, pages = -1;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &pages), 2);
	fclose(f);
	return pages * sysconf(_SC_PAGESIZE);
}

/* One suite per program; every test runs in its own forked child (Check's default). */
static inline int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
