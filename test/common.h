/* SPDX-License-Identifier: MIT */
/* Shared by the tests: a KVM that is missing is a failure, never a skip. */
#ifndef TEST_COMMON_H
#define TEST_COMMON_H

#include <check.h>
#include <dirent.h>
#include <stdlib.h>
#include <vthread.h>

/*
 * For thread bodies whose memory accesses a test counts (mirror exits, memslots):
 * under ASan each access would also touch its shadow, mirrored on first use too.
 */
#define UNINSTRUMENTED __attribute__((no_sanitize("address")))

static inline void require_backend(void)
{
	const char *be = vthread_backend();

	ck_assert_msg(be != NULL, "no usable KVM: %s", vthread_backend_error());
}

static inline int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
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
