/* SPDX-License-Identifier: MIT */
/* Create/join cycles reuse vCPUs, memslots, descriptors and memory: nothing grows. */
#include <stdint.h>
#include <stdlib.h>

#include "common.h"

/* 10000, or LEAK_CYCLES: the emulator lanes, where a cycle costs ~35 ms, use fewer. */
static uintptr_t cycles(void)
{
	const char *n = getenv("LEAK_CYCLES");

	return n && atol(n) > 0 ? (uintptr_t)atol(n) : 10000;
}

static void *nothing(void *arg)
{
	return arg;
}

START_TEST(test_create_join_cycles_leak_nothing)
{
	const uintptr_t n = cycles();
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	vthread_t vt;
	void *ret;
	int fds;

	require_backend();
	/* Warm up: the first vthread creates the VM and its first vCPU. */
	ck_assert_int_eq(vthread_create(&vt, NULL, nothing, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	fds = count_open_fds();
	vthread_get_stats(&before);
	for (uintptr_t i = 0; i < n; i++) {
		ck_assert_int_eq(vthread_create(&vt, NULL, nothing, (void *)i), 0);
		ck_assert_int_eq(vthread_join(vt, &ret), 0);
		ck_assert_ptr_eq(ret, (void *)i);
	}
	vthread_get_stats(&after);
	ck_assert_int_eq(count_open_fds(), fds);
	ck_assert_uint_eq(after.vcpus, before.vcpus);
	ck_assert_uint_eq(after.memslots, before.memslots);
	ck_assert_uint_eq(after.runtime_bytes, before.runtime_bytes);
	ck_assert_uint_eq(after.vthreads_live, 0);
	ck_assert_uint_eq(after.vthreads_created, before.vthreads_created + n);
	ck_assert_uint_eq(after.exit_end, before.exit_end + n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("leaks");
	TCase *tc = tcase_create("leaks");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_create_join_cycles_leak_nothing);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
