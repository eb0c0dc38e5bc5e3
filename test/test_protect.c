/* SPDX-License-Identifier: MIT */
/* Guest page protections (vthread_mprotect) and fault handlers inside vthreads. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PAGE	4096ul
#define MIB2	(2ul << 20)
#define GIB	(1ul << 30)

static char *map(size_t len, int prot)
{
	char *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* Runs fn(arg) as a vthread with the fault handler h(ctx): its value. */
static intptr_t run_handled(void *(*fn)(void *), void *arg, vthread_fault_fn h, void *ctx)
{
	vthread_attr_t a;
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setfaulthandler(&a, h, ctx), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, fn, arg), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	vthread_attr_destroy(&a);
	return (intptr_t)ret;
}

/* What a handler saw, and what it does: unprotect after `retries` RETRYs. */
struct seen {
	char *page;
	int prot_fix;		/* the protection the handler sets */
	unsigned retries;	/* RETRY without a fix this many times first */
	int verdict;		/* VTHREAD_FAULT_SIGNAL: decline instead */
	unsigned calls;
	void *addr;
	unsigned long ip;
	int access;
};

static int handler(const struct vthread_fault *f, void *ctx)
{
	struct seen *s = ctx;

	s->calls++;
	s->addr = f->addr;
	s->ip = f->ip;
	s->access = f->access;
	if (s->verdict == VTHREAD_FAULT_SIGNAL)
		return VTHREAD_FAULT_SIGNAL;
	if (s->calls <= s->retries)
		return VTHREAD_FAULT_RETRY;
	if (vthread_mprotect(s->page, PAGE, s->prot_fix))
		return VTHREAD_FAULT_SIGNAL;
	return VTHREAD_FAULT_RETRY;
}

UNINSTRUMENTED __attribute__((noinline)) static void store(volatile char *p, char v)
{
	*p = v;
}

UNINSTRUMENTED __attribute__((noinline)) static char load(volatile char *p)
{
	return *p;
}

static bool ip_in(unsigned long ip, const void *fn)
{
	return ip >= (uintptr_t)fn && ip < (uintptr_t)fn + 64;
}

#define ROUNDS	100

/* A write to a read-only page, 100 times: each faults into the handler, which
 * unprotects, and the write lands; no round leaves the guest. */
struct rounds {
	struct seen *s;
	struct vthread_stats st[2];
	struct vthread_thread_stats own;
};

UNINSTRUMENTED static void *write_rounds(void *arg)
{
	struct rounds *w = arg;
	struct seen *s = w->s;

	if (vthread_mprotect(s->page, PAGE, PROT_READ))	/* the split: one host call */
		return (void *)-1;
	for (int n = 0; n < 2; n++) {
		for (int i = 1; i <= ROUNDS; i++) {
			if (vthread_mprotect(s->page, PAGE, PROT_READ))
				return (void *)-2;
			store(s->page, i);
			if (load(s->page) != i)
				return (void *)-3;
		}
		vthread_get_stats(&w->st[n]);
	}
	return (void *)(intptr_t)vthread_get_thread_stats(vthread_self(), &w->own);
}

START_TEST(test_a_write_fault_is_handled_in_the_vthread_and_retried_without_an_exit)
{
	struct seen s = { .page = map(PAGE, PROT_READ | PROT_WRITE), .prot_fix = PROT_READ | PROT_WRITE };
	struct rounds w = { &s, { VTHREAD_STATS_INIT, VTHREAD_STATS_INIT }, VTHREAD_THREAD_STATS_INIT };
	intptr_t r = run_handled(write_rounds, &w, handler, &s);

	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(w.own.faults_in_guest, 2 * ROUNDS);	/* its own count */
	for (unsigned long *a = &w.st[0].exit_syscall, *b = &w.st[1].exit_syscall;
	     a <= &w.st[0].exit_hostcall; a++, b++)
		ck_assert_msg(*a == *b, "exit counter %ld moved from %lu to %lu over %d handled faults",
			      (long)(a - &w.st[0].exit_syscall), *a, *b, ROUNDS);
	ck_assert_uint_eq(s.calls, 2 * ROUNDS);
	ck_assert_ptr_eq(s.addr, s.page);
	ck_assert_msg(ip_in(s.ip, store), "ip %#lx is not in store() at %p", s.ip, (void *)store);
	ck_assert_int_eq(s.access, PROT_WRITE);
	ck_assert_int_eq(s.page[0], ROUNDS);
}
END_TEST

static void *read_none(void *arg)
{
	struct seen *s = arg;

	s->page[5] = 42;
	if (vthread_mprotect(s->page, PAGE, PROT_NONE))
		return (void *)-1;
	return (void *)(intptr_t)load(s->page + 5);
}

START_TEST(test_a_read_of_a_prot_none_page_reaches_the_handler)
{
	struct seen s = { .page = map(PAGE, PROT_READ | PROT_WRITE), .prot_fix = PROT_READ };

	ck_assert_int_eq(run_handled(read_none, &s, handler, &s), 42);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_ptr_eq(s.addr, s.page + 5);
	ck_assert_int_eq(s.access, PROT_READ);
	ck_assert_msg(ip_in(s.ip, load), "ip %#lx is not in load()", s.ip);
}
END_TEST

static void *call_code(void *arg)
{
	struct seen *s = arg;

	if (vthread_mprotect(s->page, PAGE, PROT_READ | PROT_WRITE))
		return (void *)-1;
	return (void *)(intptr_t)((int (*)(void))(void *)s->page)();
}

START_TEST(test_a_jump_into_a_page_without_exec_reaches_the_handler)
{
	static const unsigned char ret7[] = { 0xb8, 7, 0, 0, 0, 0xc3 };	/* mov $7, %eax; ret */
	struct seen s = { .page = map(PAGE, PROT_READ | PROT_WRITE | PROT_EXEC),
			  .prot_fix = PROT_READ | PROT_EXEC };

	memcpy(s.page, ret7, sizeof(ret7));
	ck_assert_int_eq(run_handled(call_code, &s, handler, &s), 7);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_ptr_eq(s.addr, s.page);
	ck_assert_uint_eq(s.ip, (uintptr_t)s.page);
	ck_assert_int_eq(s.access, PROT_EXEC);
}
END_TEST

static void *write_once(void *arg)
{
	struct seen *s = arg;

	if (vthread_mprotect(s->page, PAGE, PROT_READ))
		return (void *)-1;
	store(s->page, 9);
	return (void *)(intptr_t)load(s->page);
}

START_TEST(test_retry_without_a_fix_faults_again)
{
	struct seen s = { .page = map(PAGE, PROT_READ | PROT_WRITE), .prot_fix = PROT_READ | PROT_WRITE,
			  .retries = 5 };

	ck_assert_int_eq(run_handled(write_once, &s, handler, &s), 9);
	ck_assert_uint_eq(s.calls, 6);
}
END_TEST

/* The program's SIGSEGV handler: records, then makes the page writable. */
static volatile siginfo_t segv;
static volatile int segvs;
static char *segv_page;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	segv = *si;
	segvs++;
	vthread_mprotect(segv_page, PAGE, PROT_READ | PROT_WRITE);
	mprotect(segv_page, PAGE, PROT_READ | PROT_WRITE);
}

static void catch_segv(char *page)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };

	segv_page = page;
	segvs = 0;
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
}

START_TEST(test_signal_reaches_the_programs_sigsegv_handler)
{
	struct seen s = { .page = map(PAGE, PROT_READ | PROT_WRITE), .verdict = VTHREAD_FAULT_SIGNAL };

	catch_segv(s.page);
	ck_assert_int_eq(run_handled(write_once, &s, handler, &s), 9);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_int_eq(segvs, 1);
	ck_assert_int_eq(segv.si_signo, SIGSEGV);
	ck_assert_int_eq(segv.si_code, SEGV_ACCERR);
	ck_assert_ptr_eq(segv.si_addr, s.page);
}
END_TEST

START_TEST(test_without_a_handler_a_protection_fault_is_a_sigsegv)
{
	struct seen s = { .page = map(PAGE, PROT_READ | PROT_WRITE) };

	catch_segv(s.page);
	ck_assert_int_eq(run_vthread(write_once, &s), 9);
	ck_assert_int_eq(segvs, 1);
	ck_assert_int_eq(segv.si_code, SEGV_ACCERR);
	ck_assert_ptr_eq(segv.si_addr, s.page);
}
END_TEST

static void *write_direct(void *arg)
{
	struct seen *s = arg;

	store(s->page, 9);
	return (void *)(intptr_t)load(s->page);
}

static void *read_page(void *arg)
{
	return (void *)(intptr_t)load(arg);
}

START_TEST(test_host_threads_keep_the_hosts_protection)
{
	char *p = map(PAGE, PROT_READ | PROT_WRITE);
	struct seen s = { .page = p, .prot_fix = PROT_READ };

	require_backend();
	ck_assert_int_eq(vthread_mprotect(p, PAGE, PROT_NONE), 0);
	p[1] = 5;	/* the host thread writes and reads as before */
	ck_assert_int_eq(p[1], 5);
	ck_assert_int_eq(run_handled(read_page, p + 1, handler, &s), 5);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_int_eq(s.access, PROT_READ);
}
END_TEST

START_TEST(test_a_vthread_cannot_write_host_read_only_memory)
{
	char *p = map(PAGE, PROT_READ);
	struct seen s = { .page = p, .prot_fix = PROT_READ | PROT_WRITE };

	require_backend();
	catch_segv(p);
	ck_assert_int_eq(vthread_mprotect(p, PAGE, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(run_handled(write_direct, &s, handler, &s), 9);
	ck_assert_int_eq(segvs, 1);	/* the host refused the write; SIGSEGV's handler fixed it */
	ck_assert_ptr_eq(segv.si_addr, p);
	ck_assert_uint_eq(s.calls, 0);	/* not a guest protection's fault */
}
END_TEST

/* Writes one byte to each of the pages; faults go to the handler. */
struct pages {
	char *p[4];
};

static void *write_pages(void *arg)
{
	struct pages *ps = arg;

	for (int i = 0; i < 4; i++)
		store(ps->p[i], 1);
	return NULL;
}

START_TEST(test_protections_stay_within_their_pages)
{
	char *base = map(3 * GIB, PROT_READ | PROT_WRITE);
	char *g = (char *)(((uintptr_t)base + GIB - 1) & ~(GIB - 1));	/* a 1 GiB boundary */
	struct seen s = { .prot_fix = PROT_READ | PROT_WRITE };
	struct pages ps = { { g - MIB2, g - MIB2 - PAGE, g, g + MIB2 } };

	require_backend();
	/* the last page below a 2 MiB boundary, and the last below a 1 GiB one */
	ck_assert_int_eq(vthread_mprotect(g - MIB2 - PAGE, PAGE, PROT_READ), 0);
	ck_assert_int_eq(vthread_mprotect(g - PAGE, PAGE, PROT_NONE), 0);
	s.page = g - MIB2 - PAGE;
	run_handled(write_pages, &ps, handler, &s);
	ck_assert_uint_eq(s.calls, 1);		/* g - MIB2 - PAGE alone */
	ck_assert_ptr_eq(s.addr, g - MIB2 - PAGE);
	ps = (struct pages){ { g - PAGE - PAGE, g, g + PAGE, g - MIB2 } };
	s.calls = 0;
	run_handled(write_pages, &ps, handler, &s);
	ck_assert_uint_eq(s.calls, 0);
	ps.p[0] = g - PAGE;
	s.page = g - PAGE;
	run_handled(write_pages, &ps, handler, &s);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_ptr_eq(s.addr, g - PAGE);
}
END_TEST

/* A page the process has not mapped: the handler maps it and retries. */
static int map_it(const struct vthread_fault *f, void *ctx)
{
	struct seen *s = ctx;
	void *page = (void *)((uintptr_t)f->addr & ~(PAGE - 1));

	s->calls++;
	s->addr = f->addr;
	s->access = f->access;
	if (mmap(page, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0) != page)
		return VTHREAD_FAULT_SIGNAL;
	return VTHREAD_FAULT_RETRY;
}

/* The hole is made by the vthread itself, just before the read: one made
 * before it starts may be filled by then (the VMX lane's kernel put a 4 KiB
 * mapping of the runtime's there, which the read then rightly found). */
static void *unmap_then_read(void *arg)
{
	char *p = arg;

	if (munmap((void *)((uintptr_t)p & ~(PAGE - 1)), PAGE))
		return (void *)-1;
	return (void *)(intptr_t)load(p);
}

START_TEST(test_a_page_the_process_has_not_mapped_reaches_the_handler)
{
	char *p = map(2 * GIB, PROT_NONE) + GIB;	/* a hole in a reservation */
	struct seen s = { 0 };

	ck_assert_int_eq(run_handled(unmap_then_read, p + 7, map_it, &s), 0);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_ptr_eq(s.addr, p + 7);
	ck_assert_int_eq(s.access, PROT_READ);
}
END_TEST

/* A counter a vthread writes, and what its fault handler saw. */
struct racer {
	volatile long *counter;
	volatile int stop, faulted, release;
	volatile long seen;
};

/* The same inside a 2 MiB range the vthread already reached: KVM finds it unmapped. */
static void *touch_then_read(void *arg)
{
	char *p = arg;

	store(p - 5 * PAGE, 1);
	if (munmap(p, PAGE))
		return (void *)-1;
	return (void *)(intptr_t)load(p + 9);
}

START_TEST(test_an_unmapped_page_among_mapped_ones_reaches_the_handler)
{
	char *p = (char *)(((uintptr_t)map(4 * MIB2, PROT_READ | PROT_WRITE) + MIB2 - 1) & ~(MIB2 - 1)) +
		  64 * PAGE;
	struct seen s = { 0 };

	ck_assert_int_eq(run_handled(touch_then_read, p, map_it, &s), 0);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_ptr_eq(s.addr, p + 9);
	ck_assert_int_eq(s.access, PROT_READ);
}
END_TEST

/* Signals to a vthread that takes protection faults without end: both are handled. */
static volatile int usr1s;

static void on_usr1(int sig)
{
	(void)sig;
	usr1s++;
}

static void *fault_until_stopped(void *arg)
{
	struct racer *r = arg;

	while (!r->stop) {
		if (vthread_mprotect((void *)r->counter, PAGE, PROT_READ))
			return (void *)-1;
		(*r->counter)++;
	}
	return NULL;
}

static int unprotect(const struct vthread_fault *f, void *ctx)
{
	struct racer *r = ctx;

	(void)f;
	r->faulted++;
	return vthread_mprotect((void *)r->counter, PAGE, PROT_READ | PROT_WRITE) ?
		VTHREAD_FAULT_SIGNAL : VTHREAD_FAULT_RETRY;
}

START_TEST(test_signals_and_handled_faults_do_not_spoil_each_other)
{
	struct racer r = { .counter = (long *)map(PAGE, PROT_READ | PROT_WRITE) };
	struct timespec ms = { 0, 1000000 };
	vthread_attr_t a;
	vthread_t vt;
	void *ret;
	int sent = 0;

	require_backend();
	signal(SIGUSR1, on_usr1);
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setfaulthandler(&a, unprotect, &r), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, fault_until_stopped, &r), 0);
	for (; sent < 200 || *r.counter < 1000; sent++) {
		ck_assert_int_eq(pthread_kill(vthread_pthread(vt), SIGUSR1), 0);
		nanosleep(&ms, NULL);
	}
	r.stop = 1;
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(*r.counter, r.faulted);	/* each increment faulted once */
	ck_assert_int_gt(usr1s, 0);
}
END_TEST

/* Another vCPU's cached rights end when vthread_mprotect returns. */
static int racer_fault(const struct vthread_fault *f, void *ctx)
{
	struct racer *r = ctx;

	(void)f;
	r->seen = *r->counter;
	r->faulted = 1;
	while (!r->release)	/* the counter stays as the fault left it meanwhile */
		;
	vthread_mprotect((void *)r->counter, PAGE, PROT_READ | PROT_WRITE);
	return VTHREAD_FAULT_RETRY;
}

static void *count_up(void *arg)
{
	struct racer *r = arg;

	while (!r->stop)
		(*r->counter)++;
	return NULL;
}

START_TEST(test_rights_taken_away_end_on_every_vcpu_before_the_call_returns)
{
	struct racer r = { .counter = (long *)map(PAGE, PROT_READ | PROT_WRITE) };
	struct timespec ms = { 0, 1000000 };
	vthread_attr_t a;
	vthread_t vt;
	long v;

	require_backend();
	ck_assert_int_eq(vthread_mprotect((void *)r.counter, PAGE, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setfaulthandler(&a, racer_fault, &r), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, count_up, &r), 0);
	while (*r.counter < 1000)
		nanosleep(&ms, NULL);
	ck_assert_int_eq(vthread_mprotect((void *)r.counter, PAGE, PROT_READ), 0);
	v = *r.counter;
	while (!r.faulted)
		nanosleep(&ms, NULL);
	r.release = 1;
	r.stop = 1;
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(r.seen, v);
}
END_TEST

START_TEST(test_bad_arguments_get_the_errors_the_header_names)
{
	char *a = map(4 * PAGE, PROT_READ | PROT_WRITE);
	vthread_attr_t attr;
	vthread_fault_fn fn;
	void *ctx;

	require_backend();
	ck_assert_int_eq(munmap(a + 2 * PAGE, PAGE), 0);
	ck_assert_int_eq(vthread_mprotect(a + 1, PAGE, PROT_READ), EINVAL);
	ck_assert_int_eq(vthread_mprotect(a, PAGE, 8), EINVAL);
	ck_assert_int_eq(vthread_mprotect(a, 3 * PAGE, PROT_READ), ENOMEM);
	ck_assert_int_eq(vthread_mprotect((void *)(0x800000000000ul - PAGE), 2 * PAGE, PROT_READ), ENOMEM);
	ck_assert_int_eq(vthread_mprotect(a, (size_t)-PAGE, PROT_READ), ENOMEM);
	ck_assert_int_eq(vthread_mprotect(a, 0, PROT_READ), 0);
	ck_assert_int_eq(vthread_mprotect(a, 100, PROT_READ), 0);	/* one page, rounded up */
	ck_assert_int_eq(vthread_mprotect(a, 2 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	memset(&attr, 0, sizeof(attr));
	ck_assert_int_eq(vthread_attr_setfaulthandler(&attr, handler, NULL), EINVAL);
	ck_assert_int_eq(vthread_attr_init(&attr), 0);
	ck_assert_int_eq(vthread_attr_getfaulthandler(&attr, &fn, &ctx), 0);
	ck_assert_ptr_null((void *)fn);
	ck_assert_int_eq(vthread_attr_setfaulthandler(&attr, handler, a), 0);
	ck_assert_int_eq(vthread_attr_getfaulthandler(&attr, &fn, &ctx), 0);
	ck_assert_ptr_eq((void *)fn, (void *)handler);
	ck_assert_ptr_eq(ctx, a);
	ck_assert_int_eq(vthread_attr_getfaulthandler(&attr, NULL, &ctx), EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("protect");
	TCase *tc = tcase_create("protect"), *more = tcase_create("more");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_a_write_fault_is_handled_in_the_vthread_and_retried_without_an_exit);
	tcase_add_test(tc, test_a_read_of_a_prot_none_page_reaches_the_handler);
	tcase_add_test(tc, test_a_jump_into_a_page_without_exec_reaches_the_handler);
	tcase_add_test(tc, test_retry_without_a_fix_faults_again);
	tcase_add_test(tc, test_signal_reaches_the_programs_sigsegv_handler);
	tcase_add_test(tc, test_without_a_handler_a_protection_fault_is_a_sigsegv);
	tcase_add_test(tc, test_host_threads_keep_the_hosts_protection);
	tcase_add_test(tc, test_a_vthread_cannot_write_host_read_only_memory);
	tcase_add_test(tc, test_bad_arguments_get_the_errors_the_header_names);
	suite_add_tcase(s, tc);
	/* Sleeps, signals, gigabytes and a vCPU kicked while it runs guest code on
	 * another CPU: the VMX lane leaves these out (Bochs's clock runs ~100 times
	 * slower, and its two CPUs stall there when KVM must kick a vCPU running on
	 * the other, as KVM_GET_DIRTY_LOG does too); the SVM lane runs them. */
	tcase_set_tags(more, "long");
	tcase_set_timeout(more, 300);
	tcase_add_test(more, test_protections_stay_within_their_pages);
	tcase_add_test(more, test_a_page_the_process_has_not_mapped_reaches_the_handler);
	tcase_add_test(more, test_an_unmapped_page_among_mapped_ones_reaches_the_handler);
	tcase_add_test(more, test_signals_and_handled_faults_do_not_spoil_each_other);
	tcase_add_test(more, test_rights_taken_away_end_on_every_vcpu_before_the_call_returns);
	suite_add_tcase(s, more);
	return run_suite(s);
}
