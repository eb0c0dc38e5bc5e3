/* SPDX-License-Identifier: MIT */
/* Dirty-page tracking: every vthread write reported, nothing else. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define PAGE		4096ul
#define GIB		(1ul << 30)
#define REGION		(256ul << 20)
#define REGION_PAGES	(REGION / PAGE)
#define WORDS		(REGION_PAGES / 64)

/* 256 MiB across a 1 GiB boundary, so that it lies in two memory slots. */
static char *map_region(void)
{
	char *p = mmap(NULL, 3 * GIB, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return (char *)(((uintptr_t)p + GIB - 1) & ~(GIB - 1)) + GIB - REGION / 2;
}

static void set_bit(uint64_t *b, size_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static bool bit(const uint64_t *b, size_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define WRITERS		4
#define WRITES		10000
#define INTERVALS	50

struct writes {
	char *base;
	const uint32_t *off;	/* 8-byte slots from base */
	unsigned n;
	uint64_t value;
};

UNINSTRUMENTED static void *write_all(void *arg)
{
	const struct writes *w = arg;

	for (unsigned i = 0; i < w->n; i++)
		((volatile uint64_t *)w->base)[w->off[i]] = w->value;
	return NULL;
}

START_TEST(test_random_writes_of_four_vthreads_are_reported_exactly)
{
	static uint32_t off[WRITES];
	static uint64_t want[WORDS], got[WORDS];
	char *base = map_region();
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	struct writes w[WRITERS];
	vthread_t vt[WRITERS];

	require_backend();
	ck_assert_int_eq(vthread_dirty_start(base, REGION), 0);
	for (int round = 0; round < INTERVALS; round++) {
		memset(want, 0, sizeof(want));
		for (unsigned i = 0; i < WRITES; i++) {
			off[i] = next_random(&seed) % (REGION / 8);
			set_bit(want, off[i] * 8 / PAGE);
		}
		for (int t = 0; t < WRITERS; t++) {
			w[t] = (struct writes){ base, off + t * (WRITES / WRITERS), WRITES / WRITERS,
						round + 1 };
			ck_assert_int_eq(vthread_create(&vt[t], NULL, write_all, &w[t]), 0);
		}
		for (int t = 0; t < WRITERS; t++)
			ck_assert_int_eq(vthread_join(vt[t], NULL), 0);
		/* A host write is not reported: a page no vthread wrote this time. */
		for (size_t p = next_random(&seed) % REGION_PAGES; ; p = (p + 1) % REGION_PAGES)
			if (!bit(want, p)) {
				base[p * PAGE] = 1;
				break;
			}
		ck_assert_int_eq(vthread_dirty_collect(base, REGION, got), 0);
		for (size_t i = 0; i < WORDS; i++)
			ck_assert_msg(got[i] == want[i], "interval %d, pages %zu-%zu: %#lx, wrote %#lx",
				      round, i * 64, i * 64 + 63, got[i], want[i]);
		for (unsigned i = 0; i < WRITES; i++)
			ck_assert_uint_eq(((uint64_t *)base)[off[i]], round + 1);
	}
	ck_assert_int_eq(vthread_dirty_stop(base, REGION), 0);
}
END_TEST

/* Two vthreads write each page of their half once while the host collects. */
#define RACE_PAGES	8192

struct sweep {
	char *base;
	size_t first, n;
	volatile int *done;
};

UNINSTRUMENTED static void *sweep(void *arg)
{
	const struct sweep *s = arg;

	for (size_t p = s->first; p < s->first + s->n; p++)
		*(volatile uint64_t *)(s->base + p * PAGE + (p % 512) * 8) = p;
	__atomic_fetch_add(s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

START_TEST(test_writes_racing_collects_are_each_reported_once_or_more)
{
	static uint64_t got[RACE_PAGES / 64], seen[RACE_PAGES / 64];
	char *base = map_region();
	volatile int done = 0;
	struct sweep s[2] = { { base, 0, RACE_PAGES / 2, &done },
			      { base, RACE_PAGES / 2, RACE_PAGES / 2, &done } };
	vthread_t vt[2];
	int collects = 0;

	require_backend();
	ck_assert_int_eq(vthread_dirty_start(base, RACE_PAGES * PAGE), 0);
	for (int t = 0; t < 2; t++)
		ck_assert_int_eq(vthread_create(&vt[t], NULL, sweep, &s[t]), 0);
	for (int last = 0; !last; collects++) {
		last = __atomic_load_n(&done, __ATOMIC_ACQUIRE) == 2;
		ck_assert_int_eq(vthread_dirty_collect(base, RACE_PAGES * PAGE, got), 0);
		for (size_t i = 0; i < RACE_PAGES / 64; i++)
			seen[i] |= got[i];
	}
	for (int t = 0; t < 2; t++)
		ck_assert_int_eq(vthread_join(vt[t], NULL), 0);
	for (size_t i = 0; i < RACE_PAGES / 64; i++)
		ck_assert_msg(seen[i] == ~0ull, "pages %zu-%zu: %#lx after %d collects",
			      i * 64, i * 64 + 63, seen[i], collects);
	ck_assert_int_eq(vthread_dirty_stop(base, RACE_PAGES * PAGE), 0);
}
END_TEST

/* A vthread writes, forks, writes again; its child starts untracked. */
UNINSTRUMENTED static void *write_fork_write(void *arg)
{
	char *base = arg;
	uint64_t bitmap;
	int status;
	pid_t pid;

	base[3 * PAGE] = 1;
	pid = fork();
	if (pid == 0) {
		base[5 * PAGE] = 1;
		_exit(vthread_dirty_collect(base, 64 * PAGE, &bitmap) == EINVAL ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return (void *)1;
	base[7 * PAGE] = 1;
	return (void *)(intptr_t)status;
}

START_TEST(test_tracking_goes_on_in_the_parent_of_a_fork)
{
	char *base = map_region();
	uint64_t bitmap;

	require_backend();
	ck_assert_int_eq(vthread_dirty_start(base, 64 * PAGE), 0);
	ck_assert_int_eq(run_vthread(write_fork_write, base), 0);
	ck_assert_int_eq(vthread_dirty_collect(base, 64 * PAGE, &bitmap), 0);
	ck_assert_uint_eq(bitmap, 1u << 3 | 1u << 7);
	ck_assert_int_eq(vthread_dirty_stop(base, 64 * PAGE), 0);
}
END_TEST

UNINSTRUMENTED static void *write_pages(void *arg)
{
	char **pages = arg;

	for (; *pages; pages++)
		**pages = 1;
	return NULL;
}

/* Two ranges in one memory slot, started at different times, collected apart. */
START_TEST(test_ranges_sharing_a_slot_keep_their_own_intervals)
{
	char *a = map_region(), *b = a + 64 * PAGE;
	char *before[] = { a + PAGE, b + 2 * PAGE, NULL }, *after[] = { a + 4 * PAGE, b, NULL };
	struct vthread_stats before_run = VTHREAD_STATS_INIT, after_run = VTHREAD_STATS_INIT;
	uint64_t bitmap;

	require_backend();
	ck_assert_int_eq(vthread_dirty_start(a, 64 * PAGE), 0);
	ck_assert_int_eq(run_vthread(write_pages, before), 0);
	ck_assert_int_eq(vthread_dirty_start(b, 64 * PAGE), 0);	/* b's write came first */
	ck_assert_int_eq(run_vthread(write_pages, after), 0);
	ck_assert_int_eq(vthread_dirty_collect(b, 64 * PAGE, &bitmap), 0);
	ck_assert_uint_eq(bitmap, 1);
	ck_assert_int_eq(vthread_dirty_collect(a, 64 * PAGE, &bitmap), 0);
	ck_assert_uint_eq(bitmap, 1u << 1 | 1u << 4);
	/* KVM takes the write-protect faults of logging itself: no exit for them. */
	vthread_get_stats(&before_run);
	ck_assert_int_eq(run_vthread(write_pages, after), 0);
	vthread_get_stats(&after_run);
	ck_assert_uint_eq(after_run.exit_mirror, before_run.exit_mirror);
	ck_assert_uint_eq(after_run.exit_fault, before_run.exit_fault);
	ck_assert_uint_eq(after_run.exit_other, before_run.exit_other);
	ck_assert_int_eq(vthread_dirty_collect(a + 4 * PAGE, PAGE, &bitmap), 0);	/* a part */
	ck_assert_uint_eq(bitmap, 1);
	ck_assert_int_eq(vthread_dirty_collect(a, 64 * PAGE, &bitmap), 0);
	ck_assert_uint_eq(bitmap, 0);
	ck_assert_int_eq(vthread_dirty_stop(a, 64 * PAGE), 0);
	ck_assert_int_eq(vthread_dirty_collect(b, 64 * PAGE, &bitmap), 0);
	ck_assert_uint_eq(bitmap, 1);
	ck_assert_int_eq(vthread_dirty_stop(b, 64 * PAGE), 0);
}
END_TEST

UNINSTRUMENTED static void *collect_inside(void *arg)
{
	char *a = arg;
	uint64_t bitmap = 0;

	a[9 * PAGE] = 1;
	if (vthread_dirty_collect(a, 64 * PAGE, &bitmap))
		return (void *)-1;
	return (void *)(uintptr_t)bitmap;
}

START_TEST(test_a_vthread_collects_its_own_writes)
{
	char *a = map_region();

	require_backend();
	ck_assert_int_eq(vthread_dirty_start(a, 64 * PAGE), 0);
	ck_assert_uint_eq(run_vthread(collect_inside, a), 1u << 9);
	ck_assert_int_eq(vthread_dirty_stop(a, 64 * PAGE), 0);
}
END_TEST

START_TEST(test_bad_ranges_get_the_errors_the_header_names)
{
	char *a = map_region();
	char *hole = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t bitmap;

	require_backend();
	ck_assert_ptr_ne(hole, MAP_FAILED);
	ck_assert_int_eq(munmap(hole, PAGE), 0);
	ck_assert_int_eq(vthread_dirty_start(a + 1, PAGE), EINVAL);
	ck_assert_int_eq(vthread_dirty_start(a, 100), EINVAL);
	ck_assert_int_eq(vthread_dirty_start(a, 0), EINVAL);
	ck_assert_int_eq(vthread_dirty_start(hole, PAGE), ENOMEM);
	ck_assert_int_eq(vthread_dirty_start((void *)(0x800000000000ul - PAGE), 2 * PAGE), ENOMEM);
	ck_assert_int_eq(vthread_dirty_start(a, (size_t)-PAGE), ENOMEM);
	ck_assert_int_eq(vthread_dirty_collect(a, PAGE, &bitmap), EINVAL);
	ck_assert_int_eq(vthread_dirty_stop(a, PAGE), EINVAL);
	ck_assert_int_eq(vthread_dirty_start(a, 8 * PAGE), 0);
	ck_assert_int_eq(vthread_dirty_start(a + 7 * PAGE, 8 * PAGE), EBUSY);
	ck_assert_int_eq(vthread_dirty_collect(a, 8 * PAGE, NULL), EINVAL);
	ck_assert_int_eq(vthread_dirty_collect(a, 9 * PAGE, &bitmap), EINVAL);
	ck_assert_int_eq(vthread_dirty_collect(a - PAGE, 2 * PAGE, &bitmap), EINVAL);
	ck_assert_int_eq(vthread_dirty_stop(a, 4 * PAGE), EINVAL);
	ck_assert_int_eq(vthread_dirty_stop(a, 8 * PAGE), 0);
	ck_assert_int_eq(vthread_dirty_stop(a, 8 * PAGE), EINVAL);
	ck_assert_int_eq(vthread_dirty_collect(a, 8 * PAGE, &bitmap), EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dirty");
	TCase *volume = tcase_create("volume"), *tc = tcase_create("dirty");

	/* Tens of thousands of pages each: the VMX lane (Bochs) leaves them out. */
	tcase_set_tags(volume, "volume");
	tcase_set_timeout(volume, 600);
	tcase_add_test(volume, test_random_writes_of_four_vthreads_are_reported_exactly);
	tcase_add_test(volume, test_writes_racing_collects_are_each_reported_once_or_more);
	suite_add_tcase(s, volume);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_tracking_goes_on_in_the_parent_of_a_fork);
	tcase_add_test(tc, test_ranges_sharing_a_slot_keep_their_own_intervals);
	tcase_add_test(tc, test_a_vthread_collects_its_own_writes);
	tcase_add_test(tc, test_bad_ranges_get_the_errors_the_header_names);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
