/* SPDX-License-Identifier: MIT */
/* One address space: what the host maps the guest sees, and the other way round. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

static void *double_in_place(void *arg)
{
	uint32_t *v = arg;

	for (int i = 0; i < 1024; i++)
		v[i] *= 2;
	return NULL;
}

START_TEST(test_vthread_reads_and_writes_host_memory)
{
	uint32_t *v = malloc(1024 * sizeof(*v));
	vthread_t vt;

	require_backend();
	for (int i = 0; i < 1024; i++)
		v[i] = i;
	ck_assert_int_eq(vthread_create(&vt, NULL, double_in_place, v), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	for (int i = 0; i < 1024; i++)
		ck_assert_uint_eq(v[i], 2u * i);
	free(v);
}
END_TEST

/* Host and vthread hand a value back and forth through memory mapped mid-run. */
struct handoff {
	volatile char *volatile page;	/* set by the host after the vthread started */
	volatile int stage;
};

UNINSTRUMENTED static void *wait_for_new_mapping(void *arg)
{
	struct handoff *h = arg;
	long v;

	__atomic_store_n(&h->stage, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&h->stage, __ATOMIC_ACQUIRE) != 2)
		;
	v = h->page[100];		/* a chunk the mirror has not seen yet */
	h->page[200] = 'g';
	__atomic_store_n(&h->stage, 3, __ATOMIC_RELEASE);
	return (void *)v;
}

/* Far from the usual mmap area, so that it lands in a chunk of its own. */
static void *map_far(uintptr_t hint)
{
	void *p = mmap((void *)hint, 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

START_TEST(test_host_mapping_made_after_start_is_seen)
{
	struct handoff h = { 0 };
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, wait_for_new_mapping, &h), 0);
	/* Counted once the vthread runs: its stack may have taken a chunk of its own. */
	while (__atomic_load_n(&h.stage, __ATOMIC_ACQUIRE) != 1)
		;
	vthread_get_stats(&before);
	h.page = map_far(0x250000000000);
	h.page[100] = 'h';
	__atomic_store_n(&h.stage, 2, __ATOMIC_RELEASE);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((long)ret, 'h');
	ck_assert_int_eq(h.page[200], 'g');
	vthread_get_stats(&after);
	ck_assert_uint_ge(after.exit_mirror, before.exit_mirror + 1);
	ck_assert_uint_eq(after.memslots, before.memslots + 1);
}
END_TEST

static void *map_in_guest(void *arg)
{
	char *p = mmap((void *)0x260000000000, 1 << 20, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	(void)arg;
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 'v', 1 << 20);
	return p;
}

START_TEST(test_vthread_mapping_is_seen_by_host)
{
	vthread_t vt;
	char *p;

	require_backend();
	ck_assert_int_eq(vthread_create(&vt, NULL, map_in_guest, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, (void **)&p), 0);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 1 << 20; i += 4096)
		ck_assert_int_eq(p[i], 'v');
	ck_assert_int_eq(munmap(p, 1 << 20), 0);
}
END_TEST

/*
 * A first vthread, so that what any vthread touches anyway (its backing thread's
 * TLS, in a stack glibc then caches for the next one) is mirrored before a test
 * counts the mirror's exits.
 */
UNINSTRUMENTED static void *nothing(void *arg)
{
	return arg;
}

static void warm_up(void)
{
	ck_assert_int_eq(run_vthread(nothing, NULL), 0);
}

UNINSTRUMENTED static void *read_byte(void *arg)
{
	return (void *)(uintptr_t)*(volatile unsigned char *)arg;
}

START_TEST(test_host_munmap_and_remap_is_seen)
{
	unsigned char *p = map_far(0x270000000000);
	vthread_t vt;
	void *ret;

	require_backend();
	p[0] = 1;
	ck_assert_int_eq(vthread_create(&vt, NULL, read_byte, p), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((uintptr_t)ret, 1);
	/* Same address, new memory: the guest must see the new contents, with no copy. */
	ck_assert_int_eq(munmap(p, 4096), 0);
	p = map_far(0x270000000000);
	p[0] = 2;
	ck_assert_int_eq(vthread_create(&vt, NULL, read_byte, p), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((uintptr_t)ret, 2);
}
END_TEST

START_TEST(test_new_mapping_inside_a_mirrored_chunk_is_seen)
{
	unsigned char *first = map_far(0x2a0000000000), *later;
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	vthread_t vt;
	void *ret;

	require_backend();	/* mirrors first's chunk, and only the 2 MiB around it */
	warm_up();
	vthread_get_stats(&before);
	later = map_far(0x2a0000600000);
	later[9] = 77;
	ck_assert_int_eq(vthread_create(&vt, NULL, read_byte, later + 9), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((uintptr_t)ret, 77);
	vthread_get_stats(&after);
	ck_assert_uint_eq(after.memslots, before.memslots);
	ck_assert_uint_eq(after.exit_mirror, before.exit_mirror + 1);
	(void)first;
}
END_TEST

UNINSTRUMENTED static void *write_byte(void *arg)
{
	*(volatile char *)arg = 'w';
	return NULL;
}

START_TEST(test_reservations_are_mirrored_only_when_used)
{
	size_t len = 4ull << 30;
	char *res = mmap((void *)0x280000000000, len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	char *used = res + (2ull << 30) + 4096;
	vthread_t vt;

	ck_assert_ptr_ne(res, MAP_FAILED);
	require_backend();	/* the VM is made now, with the reservation in place */
	warm_up();
	vthread_get_stats(&before);
	ck_assert_int_eq(mprotect(used, 4096, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, write_byte, used), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(*used, 'w');
	vthread_get_stats(&after);
	ck_assert_uint_eq(after.memslots, before.memslots + 1);
	ck_assert_uint_eq(after.exit_mirror, before.exit_mirror + 1);
	munmap(res, len);
}
END_TEST

/*
 * Chunks mapped and unmapped in turn, each once touched by the guest: their
 * memslots are deleted and reused, and the pages that stay mapped meanwhile keep
 * their contents (a translation left over from a deleted slot would write into
 * whatever chunk its guest-physical addresses back next).
 */
#define CHURN_BASE	0x2c0000000000ull
#define CHURN_PLACES	150
#define CHURN_ROUNDS	400
#define CHURN_WINDOW	6

UNINSTRUMENTED static void *churn_chunks(void *arg)
{
	volatile uint64_t *live[CHURN_WINDOW] = { 0 };
	uint64_t tag[CHURN_WINDOW] = { 0 };

	(void)arg;
	for (uint64_t i = 0; i < CHURN_ROUNDS + CHURN_WINDOW; i++) {
		unsigned w = i % CHURN_WINDOW;

		for (unsigned k = 0; k < CHURN_WINDOW; k++)
			if (live[k] && *live[k] != tag[k])
				return (void *)(uintptr_t)(1000 + i);
		if (live[w] && munmap((void *)live[w], 4096))
			return (void *)1;
		live[w] = NULL;
		if (i >= CHURN_ROUNDS)
			continue;
		live[w] = mmap((void *)(CHURN_BASE + ((i % CHURN_PLACES) << 30)), 4096,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (live[w] == MAP_FAILED)
			return (void *)2;
		*live[w] = tag[w] = 0x5eed0000 + i;
	}
	return NULL;
}

START_TEST(test_memslots_of_unmapped_chunks_are_deleted_and_reused)
{
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	unsigned long bound;

	require_backend();
	warm_up();
	vthread_get_stats(&before);
	ck_assert_int_eq(run_vthread(churn_chunks, NULL), 0);
	vthread_get_stats(&after);
	/*
	 * The runtime's promise: live slots within twice the chunks mapped, or 64,
	 * give or take the slots one fault adds. Without deletion: one per place.
	 */
	bound = 2 * (before.memslots + CHURN_WINDOW);
	ck_assert_uint_le(after.memslots, (bound > 64 ? bound : 64) + 2);
	ck_assert_uint_lt(after.memslots, before.memslots + CHURN_PLACES);
	/* A place used again after its chunk lost its slot faults and is linked again. */
	ck_assert_uint_ge(after.exit_mirror, before.exit_mirror + CHURN_ROUNDS);
}
END_TEST

#define STACK_MIB	32
#define TOUCH_MIB	24
#ifdef __SANITIZE_ADDRESS__	/* ASan's shadow of what was touched stays resident */
#define SHADOW_MIB	(8 * TOUCH_MIB / 8)
#else
#define SHADOW_MIB	0
#endif

static pthread_barrier_t touched;

/* Writes TOUCH_MIB of its stack, waits until every one has, then until the
 * host has measured. */
static void *touch_stack(void *arg)
{
	volatile char big[TOUCH_MIB << 20];

	for (size_t i = 0; i < sizeof(big); i += 4096)
		big[i] = 1;
	pthread_barrier_wait(&touched);
	pthread_barrier_wait(&touched);
	return arg;
}

/*
 * Stacks go back to the system once their vthreads are joined, as glibc's do:
 * all but the few its cache keeps (40 MiB, here one stack).
 */
START_TEST(test_joined_stacks_go_back_to_the_system)
{
	enum { N = 8 };
	vthread_attr_t a;
	vthread_t vt[N];
	long before, during, after;

	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setstacksize(&a, STACK_MIB << 20), 0);
	ck_assert_int_eq(pthread_barrier_init(&touched, NULL, N + 1), 0);
	before = resident();
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(vthread_create(&vt[i], &a, touch_stack, NULL), 0);
	pthread_barrier_wait(&touched);
	during = resident();
	pthread_barrier_wait(&touched);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(vthread_join(vt[i], NULL), 0);
	after = resident();
	ck_assert_msg(during - before >= ((long)N * (TOUCH_MIB - 4) << 20),
		      "resident +%ld MiB with %d stacks touched", (during - before) >> 20, N);
	ck_assert_msg(after - before <= (40 + 16 + SHADOW_MIB) << 20,
		      "resident +%ld MiB after the joins", (after - before) >> 20);
}
END_TEST

/* A stack's pages the vthread never touched never become resident, also when
 * the stack is used again from the cache. */
START_TEST(test_untouched_stack_pages_stay_unresident)
{
	vthread_attr_t a;
	vthread_t vt;
	long before;

	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setstacksize(&a, 16 << 20), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, nothing, NULL), 0);	/* the VM, warm */
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	before = resident();
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(vthread_create(&vt, &a, nothing, NULL), 0);
		ck_assert_int_eq(vthread_join(vt, NULL), 0);
	}
	ck_assert_msg(resident() - before < 4 << 20, "resident +%ld KiB",
		      (resident() - before) >> 10);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("memory");
	TCase *tc = tcase_create("memory");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_vthread_reads_and_writes_host_memory);
	tcase_add_test(tc, test_host_mapping_made_after_start_is_seen);
	tcase_add_test(tc, test_vthread_mapping_is_seen_by_host);
	tcase_add_test(tc, test_host_munmap_and_remap_is_seen);
	tcase_add_test(tc, test_reservations_are_mirrored_only_when_used);
	tcase_add_test(tc, test_new_mapping_inside_a_mirrored_chunk_is_seen);
	tcase_add_test(tc, test_joined_stacks_go_back_to_the_system);
	tcase_add_test(tc, test_untouched_stack_pages_stay_unresident);
	tcase_add_test(tc, test_memslots_of_unmapped_chunks_are_deleted_and_reused);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
