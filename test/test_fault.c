/* SPDX-License-Identifier: MIT */
/* A faulting vthread is reported and raises the signal a faulting pthread would. */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* Runs fn as a vthread in a child; returns its termination signal and stderr. */
static void crash(void *fn)
{
	struct rlimit no_core = { 0, 0 };
	vthread_t vt;

	setrlimit(RLIMIT_CORE, &no_core);
	if (vthread_create(&vt, NULL, (void *(*)(void *))fn, NULL) != 0)
		_exit(100);
	vthread_join(vt, NULL);
	_exit(101);	/* survived: the test fails on the exit status */
}

static int crash_in_child(void *(*fn)(void *), char *report, size_t len)
{
	int status = stderr_of_child(crash, (void *)fn, report, len);

	ck_assert_msg(WIFSIGNALED(status), "child exited with %d, report: %s",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1, report);
	return WTERMSIG(status);
}

/* Deliberate: UBSan would stop it before the vCPU could fault. */
__attribute__((noinline, no_sanitize("undefined"))) void *deref_null(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)*(volatile int *)0;
}

START_TEST(test_null_dereference_raises_sigsegv_with_report)
{
	char report[16384];

	require_backend();
	ck_assert_int_eq(crash_in_child(deref_null, report, sizeof(report)), SIGSEGV);
	ck_assert_msg(strstr(report, "vthread 1 "), "%s", report);
	ck_assert_msg(strstr(report, "page fault"), "%s", report);
	ck_assert_msg(strstr(report, "at address 0x0 (read"), "%s", report);
	ck_assert_msg(strstr(report, "<deref_null+"), "%s", report);
	ck_assert_msg(strstr(report, "rsp 0x"), "%s", report);
	ck_assert_msg(strstr(report, "mirror of 0x0: GiB 0x0 "), "%s", report);
	ck_assert_msg(strstr(report, "host mapping: none"), "%s", report);
}
END_TEST

/* Three static functions deep, none a tail call: the backtrace names each, in order. */
static volatile int depth;

__attribute__((noinline, no_sanitize("undefined"))) static int crash_deep(int *p)
{
	*(volatile int *)p = depth;
	return depth++;
}

__attribute__((noinline)) static int crash_middle(int *p)
{
	return crash_deep(p) + depth++;
}

__attribute__((noinline)) static void *crash_top(void *arg)
{
	return (void *)(uintptr_t)(crash_middle(arg) + depth++);
}

START_TEST(test_the_report_has_a_backtrace_of_the_guest_stack_with_static_functions)
{
	const char *frames[] = { "#0 ", "crash_deep+0x", "#1 ", "crash_middle+", "#2 ",
				 "crash_top+" };
	char report[16384], *at;

	require_backend();
	ck_assert_int_eq(crash_in_child(crash_top, report, sizeof(report)), SIGSEGV);
	at = strstr(report, "backtrace:\n");
	ck_assert_msg(at, "%s", report);
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		at = strstr(at, frames[i]);
		ck_assert_msg(at, "no %s in order in: %s", frames[i], report);
	}
	ck_assert_msg(strstr(report, " (test_fault+0x"), "%s", report);	/* module+offset */
	/* the code before RIP too, RIP's byte marked */
	at = strstr(report, "code:");
	ck_assert_msg(at && strchr(at, '<') && strchr(at, '<') - at > 3 * 32, "%s", report);
}
END_TEST

/*
 * A crash while malloc's lock is held, which libdw needs: the report goes
 * without its backtrace, and the process still dies of its fault, in time.
 * malloc_stats() prints to stderr holding an arena's lock; with one arena it is
 * the backing thread's. ASan's malloc has neither those locks nor malloc_stats.
 */
__attribute__((no_sanitize("undefined"))) static ssize_t crash_on_write(void *cookie,
									  const char *buf, size_t n)
{
	(void)cookie, (void)buf;
	*(volatile size_t *)NULL = n;
	return n;
}

static void *crash_holding_mallocs_lock(void *arg)
{
	(void)arg;
	stderr = fopencookie(NULL, "w", (cookie_io_functions_t){ .write = crash_on_write });
	setvbuf(stderr, NULL, _IONBF, 0);
	malloc_stats();
	return NULL;
}

START_TEST(test_a_crash_holding_a_lock_libdw_needs_still_ends_in_its_signal)
{
	char report[16384];

#ifdef __SANITIZE_ADDRESS__
	return;
#endif
	require_backend();
	ck_assert_int_eq(mallopt(M_ARENA_MAX, 1), 1);
	ck_assert_int_eq(crash_in_child(crash_holding_mallocs_lock, report, sizeof(report)),
			 SIGSEGV);
	ck_assert_msg(strstr(report, "at address 0x0 (write"), "%s", report);
	ck_assert_msg(strstr(report, "backtrace given up"), "%s", report);
}
END_TEST

#define MAPPED_PAGE	0x290000000000ull
#define UNMAPPED_NEAR	(MAPPED_PAGE + (4ull << 20))	/* same 1 GiB chunk, nothing there */

__attribute__((noinline)) void *read_unmapped_near_mapping(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)*(volatile char *)UNMAPPED_NEAR;
}

START_TEST(test_fault_in_a_mirrored_chunk_names_the_address)
{
	char report[16384];

	ck_assert_ptr_eq(mmap((void *)MAPPED_PAGE, 4096, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
			 (void *)MAPPED_PAGE);
	require_backend();	/* the chunk is mirrored now, at VM creation */
	ck_assert_int_eq(crash_in_child(read_unmapped_near_mapping, report, sizeof(report)),
			 SIGSEGV);
	ck_assert_msg(strstr(report, "at address 0x290000400000 (read, not mapped)"), "%s", report);
	ck_assert_msg(strstr(report, "mirror of 0x290000400000: GiB 0x290000000000 is memslot "),
		      "%s", report);
	ck_assert_msg(strstr(report, "its 2 MiB entry is not present"), "%s", report);
	ck_assert_msg(strstr(report, "host mapping: none"), "%s", report);
}
END_TEST

static const char rodata[16] = "read only";

__attribute__((noinline)) void *write_rodata(void *arg)
{
	(void)arg;
	((volatile char *)rodata)[3] = 'x';
	return NULL;
}

START_TEST(test_write_to_readonly_memory_raises_sigsegv)
{
	char report[16384], where[64], *at;

	require_backend();
	ck_assert_int_eq(crash_in_child(write_rodata, report, sizeof(report)), SIGSEGV);
	ck_assert_msg(strstr(report, "<write_rodata+"), "%s", report);
	/* KVM names no address here: the report has it from the instruction */
	snprintf(where, sizeof(where), "refused by the host at address %p", (void *)(rodata + 3));
	ck_assert_msg(strstr(report, where), "%s", report);
	ck_assert_msg((at = strstr(report, "host mapping: ")) && strstr(at, " r--p ") &&
		      strstr(at, "test_fault"), "%s", report);
}
END_TEST

/* A call into a page unmapped inside a region the guest maps: the fetch itself
 * is refused, and the report names RIP's page as the address. */
static char *gone_code;

__attribute__((noinline)) void *call_unmapped(void *arg)
{
	(void)arg;
	gone_code[0] = 1;	/* the region is mirrored */
	munmap(gone_code + 4096, 4096);
	((void (*)(void))(gone_code + 4096))();
	return NULL;
}

START_TEST(test_call_into_unmapped_code_names_the_address)
{
	char report[16384], where[64];

	require_backend();
	gone_code = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(gone_code != MAP_FAILED);
	ck_assert_int_eq(crash_in_child(call_unmapped, report, sizeof(report)), SIGSEGV);
	snprintf(where, sizeof(where), "refused by the host at address %p", (void *)(gone_code + 4096));
	ck_assert_msg(strstr(report, where), "%s", report);
}
END_TEST

__attribute__((noinline)) void *execute_ud2(void *arg)
{
	(void)arg;
	__asm__ volatile("ud2");
	return NULL;
}

START_TEST(test_invalid_opcode_raises_sigill)
{
	char report[16384];

	require_backend();
	ck_assert_int_eq(crash_in_child(execute_ud2, report, sizeof(report)), SIGILL);
	ck_assert_msg(strstr(report, "invalid opcode"), "%s", report);
	ck_assert_msg(strstr(report, " <0f> 0b"), "%s", report);
}
END_TEST

/* In assembly: GCC computes 1 / x without a division instruction. */
__attribute__((noinline)) void *divide_by_zero(void *arg)
{
	long q;

	__asm__ volatile("xor %%ecx, %%ecx; mov $1, %%eax; cqo; idiv %%rcx"
			 : "=a"(q) : : "rcx", "rdx");
	return (void *)(q + (intptr_t)arg);
}

START_TEST(test_divide_error_raises_sigfpe)
{
	char report[16384];

	require_backend();
	ck_assert_int_eq(crash_in_child(divide_by_zero, report, sizeof(report)), SIGFPE);
	ck_assert_msg(strstr(report, "divide error"), "%s", report);
}
END_TEST

static volatile int depth_limit = 1 << 30;	/* never reached: the stack ends first */

__attribute__((noinline)) void *overflow_stack(void *arg)
{
	volatile char pad[4096];
	intptr_t depth = (intptr_t)arg;

	pad[0] = (char)depth;
	if (depth >= depth_limit)
		return NULL;
	return (char *)overflow_stack((void *)(depth + 1)) + pad[0];
}

START_TEST(test_stack_overflow_hits_the_guard_page)
{
	char report[16384];

	require_backend();
	ck_assert_int_eq(crash_in_child(overflow_stack, report, sizeof(report)), SIGSEGV);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault");
	TCase *tc = tcase_create("fault"), *held = tcase_create("held");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_null_dereference_raises_sigsegv_with_report);
	tcase_add_test(tc, test_the_report_has_a_backtrace_of_the_guest_stack_with_static_functions);
	/* 10 s of the guest's clock waiting, which Bochs' clock makes minutes: long */
	tcase_set_timeout(held, 60);
	tcase_set_tags(held, "long");
	tcase_add_test(held, test_a_crash_holding_a_lock_libdw_needs_still_ends_in_its_signal);
	suite_add_tcase(s, held);
	tcase_add_test(tc, test_fault_in_a_mirrored_chunk_names_the_address);
	tcase_add_test(tc, test_write_to_readonly_memory_raises_sigsegv);
	tcase_add_test(tc, test_call_into_unmapped_code_names_the_address);
	tcase_add_test(tc, test_invalid_opcode_raises_sigill);
	tcase_add_test(tc, test_divide_error_raises_sigfpe);
	tcase_add_test(tc, test_stack_overflow_hits_the_guard_page);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
