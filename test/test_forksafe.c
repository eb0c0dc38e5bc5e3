/* SPDX-License-Identifier: MIT */
/*
 * The mirror's fault path never calls malloc: a vthread that forks may touch
 * memory the guest has not seen while glibc's fork holds malloc's locks, and
 * the runtime mirrors it on the vthread's own backing thread. This program
 * replaces malloc to count the calls made while a vthread touches 40 fresh
 * 1 GiB chunks (40 memslots, page directories, a growing slot table); under
 * ASan, whose allocator is not to be replaced, it only touches them.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "common.h"

static atomic_bool counting;
static atomic_int calls;

#ifndef __SANITIZE_ADDRESS__
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

void *malloc(size_t n)
{
	calls += counting;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	calls += counting;
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	calls += counting;
	return __libc_realloc(p, n);
}

void free(void *p)
{
	calls += counting && p;
	__libc_free(p);
}
#endif

#define CHUNKS 40

/* Memory the guest has not seen: one touch per chunk, each a mirror fault. */
UNINSTRUMENTED static void *touch_chunks(void *arg)
{
	volatile char *p = arg;

	counting = true;
	for (int i = 0; i < CHUNKS; i++)
		p[(size_t)i << 30] = 1;
	counting = false;
	return NULL;
}

static void *nothing(void *arg)
{
	return arg;
}

START_TEST(test_mirror_faults_call_no_malloc)
{
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	/* above 16 GiB: mirrored on first use, chunk by chunk */
	char *p = mmap(NULL, (size_t)(CHUNKS + 1) << 30, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	vthread_t vt;

	require_backend();
	ck_assert(p != MAP_FAILED);
	p = (char *)(((uintptr_t)p + (1ul << 30) - 1) & ~((1ul << 30) - 1));
	ck_assert_int_eq(vthread_create(&vt, NULL, nothing, NULL), 0);	/* warm */
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	vthread_get_stats(&before);
	ck_assert_int_eq(vthread_create(&vt, NULL, touch_chunks, p), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	vthread_get_stats(&after);
	ck_assert_uint_ge(after.memslots, before.memslots + CHUNKS);
	ck_assert_int_eq(calls, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("forksafe");
	TCase *tc = tcase_create("forksafe");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_mirror_faults_call_no_malloc);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
