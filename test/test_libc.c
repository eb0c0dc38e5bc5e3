/* SPDX-License-Identifier: MIT */
/* Ordinary thread bodies: stdio, malloc, floating point, memcpy, mutexes, TLS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

static void *print_to_fd(void *arg)
{
	FILE *f = fdopen(dup(*(int *)arg), "w");

	if (!f)
		return (void *)1;
	fprintf(f, "vthread says %d %s\n", 42, "hello");
	return (void *)(intptr_t)fclose(f);
}

START_TEST(test_printf_inside_vthread)
{
	char buf[128] = { 0 };
	int p[2];
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, print_to_fd, &p[1]), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_null(ret);
	close(p[1]);
	ck_assert_int_gt(read(p[0], buf, sizeof(buf) - 1), 0);
	ck_assert_str_eq(buf, "vthread says 42 hello\n");
	close(p[0]);
}
END_TEST

static void *malloc_churn(void *arg)
{
	void *blocks[256];
	uintptr_t sum = 0;

	(void)arg;
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 256; i++) {
			blocks[i] = malloc(16 + i * 97);
			memset(blocks[i], i, 16 + i * 97);
		}
		for (int i = 0; i < 256; i++) {
			sum += ((unsigned char *)blocks[i])[i * 97];
			free(blocks[i]);
		}
	}
	char *big = malloc(8 << 20);	/* mmap-backed: a forwarded mmap and munmap */
	memset(big, 1, 8 << 20);
	sum += big[(8 << 20) - 1];
	free(big);
	return (void *)sum;
}

START_TEST(test_malloc_free_inside_vthread)
{
	vthread_t vt;
	void *ret;
	uintptr_t expect = 1;

	require_backend();
	for (int i = 0; i < 256; i++)
		expect += 20 * (unsigned char)i;
	ck_assert_int_eq(vthread_create(&vt, NULL, malloc_churn, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_uint_eq((uintptr_t)ret, expect);
}
END_TEST

static void *format_float(void *arg)
{
	volatile double x = 3.0;

	snprintf(arg, 64, "%f %.3e %g", x / 7.0, x * 1e10, x * x * 0.5);
	return NULL;
}

START_TEST(test_snprintf_float_inside_vthread)
{
	char in_guest[64], on_host[64];
	volatile double x = 3.0;
	vthread_t vt;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, format_float, in_guest), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	snprintf(on_host, sizeof(on_host), "%f %.3e %g", x / 7.0, x * 1e10, x * x * 0.5);
	ck_assert_str_eq(in_guest, on_host);
}
END_TEST

static char src[1 << 20], dst[1 << 20];

static void *copy_meg(void *arg)
{
	(void)arg;
	memcpy(dst, src, sizeof(dst));
	return NULL;
}

START_TEST(test_memcpy_1mib_inside_vthread)
{
	vthread_t vt;

	require_backend();
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (char)(i * 131 + 7);
	ck_assert_int_eq(vthread_create(&vt, NULL, copy_meg, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(memcmp(src, dst, sizeof(dst)), 0);
}
END_TEST

#define ROUNDS 2000
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *bump_counter(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		pthread_mutex_lock(&counter_lock);
		counter++;
		pthread_mutex_unlock(&counter_lock);
	}
	return NULL;
}

START_TEST(test_mutex_shared_by_vthreads_and_pthreads)
{
	vthread_t vt[4];
	pthread_t pt[4];

	require_backend();
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(vthread_create(&vt[i], NULL, bump_counter, NULL), 0);
		ck_assert_int_eq(pthread_create(&pt[i], NULL, bump_counter, NULL), 0);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(vthread_join(vt[i], NULL), 0);
		ck_assert_int_eq(pthread_join(pt[i], NULL), 0);
	}
	ck_assert_int_eq(counter, 8L * ROUNDS);
}
END_TEST

static __thread int tls_value = 7;
static __thread char tls_buf[64];

static void *use_tls(void *arg)
{
	int was = tls_value;

	tls_value = (int)(intptr_t)arg;
	snprintf(tls_buf, sizeof(tls_buf), "%d", tls_value);
	return (void *)(intptr_t)(was == 7 && tls_buf[0] && tls_value == (intptr_t)arg &&
				   gettid() != getpid());
}

START_TEST(test_thread_locals_are_fresh_per_vthread)
{
	vthread_t vt[8];
	void *ret;

	require_backend();
	tls_value = 99;
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(vthread_create(&vt[i], NULL, use_tls, (void *)(intptr_t)(i + 100)), 0);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(vthread_join(vt[i], &ret), 0);
		ck_assert_int_eq((intptr_t)ret, 1);
	}
	ck_assert_int_eq(tls_value, 99);
}
END_TEST

static void *open_missing(void *arg)
{
	int fd = open("/nonexistent/file", O_RDONLY);

	*(int *)arg = errno;
	return (void *)(intptr_t)fd;
}

START_TEST(test_errno_of_failed_call_inside_vthread)
{
	vthread_t vt;
	void *ret;
	int err = 0;

	require_backend();
	errno = 0;
	ck_assert_int_eq(vthread_create(&vt, NULL, open_missing, &err), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, -1);
	ck_assert_int_eq(err, ENOENT);
	ck_assert_int_eq(errno, 0);	/* the vthread's errno is its own */
}
END_TEST

/*
 * Protection keys: glibc's pkey_get and pkey_set execute RDPKRU and WRPKRU, in
 * the vthread, on the rights it started with, its creator's.
 */
static int key;

static void *use_pkey(void *arg)
{
	(void)arg;
	if (pkey_get(key) != PKEY_DISABLE_WRITE)
		return (void *)1;
	if (pkey_set(key, PKEY_DISABLE_ACCESS))
		return (void *)2;
	return (void *)(intptr_t)(pkey_get(key) == PKEY_DISABLE_ACCESS ? 0 : 3);
}

static void *alloc_pkey(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(pkey_alloc(0, PKEY_DISABLE_WRITE) < 0 ? errno : 0);
}

START_TEST(test_protection_keys_as_in_a_pthread)
{
	require_backend();
	key = pkey_alloc(0, PKEY_DISABLE_WRITE);
	if (key < 0) {	/* no PKU here: the vthread is refused as a pthread is (the
			 * kernel's first refusal may differ from the next ones) */
		pthread_t pt;
		void *e;

		ck_assert_int_eq(pthread_create(&pt, NULL, alloc_pkey, NULL), 0);
		ck_assert_int_eq(pthread_join(pt, &e), 0);
		ck_assert_int_ne((intptr_t)e, 0);
		ck_assert_int_eq(run_vthread(alloc_pkey, NULL), (intptr_t)e);
		return;
	}
	ck_assert_int_eq(run_vthread(use_pkey, NULL), 0);
	ck_assert_int_eq(pkey_get(key), PKEY_DISABLE_WRITE);	/* the creator's own */
	ck_assert_int_eq(pkey_free(key), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("libc");
	TCase *tc = tcase_create("libc");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_printf_inside_vthread);
	tcase_add_test(tc, test_malloc_free_inside_vthread);
	tcase_add_test(tc, test_snprintf_float_inside_vthread);
	tcase_add_test(tc, test_memcpy_1mib_inside_vthread);
	tcase_add_test(tc, test_mutex_shared_by_vthreads_and_pthreads);
	tcase_add_test(tc, test_thread_locals_are_fresh_per_vthread);
	tcase_add_test(tc, test_errno_of_failed_call_inside_vthread);
	tcase_add_test(tc, test_protection_keys_as_in_a_pthread);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
