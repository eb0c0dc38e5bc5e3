/* SPDX-License-Identifier: MIT */
/*
 * The mirror's fault path never calls malloc: a vthread that forks may touch
 * memory the guest has not seen while glibc's fork holds malloc's locks, and
 * the runtime mirrors it on the vthread's own backing thread. This program
 * replaces malloc to count the calls the vthread's backing thread makes while
 * the vthread touches 40 fresh 1 GiB chunks (40 memslots, page directories, a
 * growing slot table); under ASan, whose allocator is not to be replaced, it
 * only touches them. Other threads' calls do not count: fork's locks stop them
 * until fork is done, the forking thread's own would never return.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

static atomic_int backing;	/* the touching vthread's backing thread, while it touches */
static atomic_int calls;
static void *_Atomic first_caller;

#ifndef __SANITIZE_ADDRESS__
static void count(void *caller)
{
	void *none = NULL;

	if (!backing || gettid() != backing)
		return;
	calls++;
	atomic_compare_exchange_strong(&first_caller, &none, caller);
}

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

void *malloc(size_t n)
{
	count(__builtin_return_address(0));
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	count(__builtin_return_address(0));
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	count(__builtin_return_address(0));
	return __libc_realloc(p, n);
}

void free(void *p)
{
	if (p)
		count(__builtin_return_address(0));
	__libc_free(p);
}
#endif

#define CHUNKS 40

/* Memory the guest has not seen: one touch per chunk, each a mirror fault. */
UNINSTRUMENTED static void *touch_chunks(void *arg)
{
	volatile char *p = arg;

	backing = gettid();	/* a system call the backing thread makes */
	for (int i = 0; i < CHUNKS; i++)
		p[(size_t)i << 30] = 1;
	backing = 0;
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
	if (calls) {
		Dl_info i = { 0 };

		dladdr(first_caller, &i);
		ck_abort_msg("%d malloc calls on the backing thread, the first from %p (%s in %s)",
			     (int)calls, first_caller, i.dli_sname ? i.dli_sname : "?",
			     i.dli_fname ? i.dli_fname : "?");
	}
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
