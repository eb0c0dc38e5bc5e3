/* SPDX-License-Identifier: MIT */
/*
 * Typed calls across the boundary: vthread_hostcall() from a vthread to a host
 * function, vthread_call() from the host into a new vthread, with libffi
 * describing doubles, structs by value, long double, many and variadic arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"

struct point {
	double x, y;
};

static double half(double d)
{
	return d / 2;
}

static struct point mirror_point(struct point p)
{
	return (struct point){ p.y, -p.x };
}

static long double third(long double d)
{
	return d / 3;
}

/* Ten arguments of mixed classes: six integer registers, then the stack. */
static double mixed(int a, double b, long c, float d, char e, short f, long long g,
		    double h, unsigned i, const char *j)
{
	return a + b + c + d + e + f + g + h + i + strlen(j);
}

static ffi_type *point_fields[] = { &ffi_type_double, &ffi_type_double, NULL };
static ffi_type point_type = { 0, 0, FFI_TYPE_STRUCT, point_fields };

/* A call: signature, arguments and where the result goes. */
struct call {
	ffi_cif cif;
	void (*fn)(void);
	void *ret;
	void **args;
};

static void *hostcall_in_vthread(void *p)
{
	struct call *c = p;

	return (void *)(intptr_t)vthread_hostcall(&c->cif, c->fn, c->ret, c->args);
}

static struct vthread_stats stats_before = VTHREAD_STATS_INIT;

/* Runs c through vthread_hostcall inside a vthread (how == 0) or vthread_call. */
static void run(struct call *c, int how)
{
	struct vthread_stats after = VTHREAD_STATS_INIT;

	require_backend();
	vthread_get_stats(&stats_before);
	if (how == 0)
		ck_assert_int_eq(run_vthread(hostcall_in_vthread, c), 0);
	else
		ck_assert_int_eq(vthread_call(NULL, &c->cif, c->fn, c->ret, c->args), 0);
	vthread_get_stats(&after);
	if (how == 0)	/* one exit per host call: it did leave the guest */
		ck_assert_uint_eq(after.exit_hostcall - stats_before.exit_hostcall, 1);
}

static void check_double(int how)
{
	ffi_type *at[] = { &ffi_type_double };
	double in = 5.0, out = 0;
	void *av[] = { &in };
	struct call c = { .fn = (void (*)(void))half, .ret = &out, .args = av };

	ck_assert_int_eq(ffi_prep_cif(&c.cif, FFI_DEFAULT_ABI, 1, &ffi_type_double, at), FFI_OK);
	run(&c, how);
	ck_assert_double_eq(out, 2.5);
}

static void check_struct(int how)
{
	ffi_type *at[] = { &point_type };
	struct point in = { 1.5, 2.5 }, out = { 0, 0 };
	void *av[] = { &in };
	struct call c = { .fn = (void (*)(void))mirror_point, .ret = &out, .args = av };

	ck_assert_int_eq(ffi_prep_cif(&c.cif, FFI_DEFAULT_ABI, 1, &point_type, at), FFI_OK);
	run(&c, how);
	ck_assert_double_eq(out.x, 2.5);
	ck_assert_double_eq(out.y, -1.5);
}

static void check_long_double(int how)
{
	ffi_type *at[] = { &ffi_type_longdouble };
	long double in = 1.0L, out = 0;
	void *av[] = { &in };
	struct call c = { .fn = (void (*)(void))third, .ret = &out, .args = av };

	ck_assert_int_eq(ffi_prep_cif(&c.cif, FFI_DEFAULT_ABI, 1, &ffi_type_longdouble, at), FFI_OK);
	run(&c, how);
	ck_assert(out == 1.0L / 3);	/* all 64 bits of the x87 mantissa */
}

static void check_mixed(int how)
{
	ffi_type *at[] = { &ffi_type_sint, &ffi_type_double, &ffi_type_slong, &ffi_type_float,
			   &ffi_type_schar, &ffi_type_sshort, &ffi_type_sint64, &ffi_type_double,
			   &ffi_type_uint, &ffi_type_pointer };
	int a = 1;
	double b = 0.5, h = 0.25, out = 0;
	long c_ = 100;
	float d = 0.125f;
	char e = 3;
	short f = -4;
	long long g = 1000000;
	unsigned i = 7;
	const char *j = "twelve chars";
	void *av[] = { &a, &b, &c_, &d, &e, &f, &g, &h, &i, &j };
	struct call c = { .fn = (void (*)(void))mixed, .ret = &out, .args = av };

	ck_assert_int_eq(ffi_prep_cif(&c.cif, FFI_DEFAULT_ABI, 10, &ffi_type_double, at), FFI_OK);
	run(&c, how);
	ck_assert_double_eq(out, mixed(a, b, c_, d, e, f, g, h, i, j));
}

static void check_variadic(int how)
{
	ffi_type *at[] = { &ffi_type_pointer, &ffi_type_ulong, &ffi_type_pointer, &ffi_type_sint,
			   &ffi_type_double, &ffi_type_pointer };
	char buf[64] = { 0 };
	char *bp = buf;
	unsigned long size = sizeof(buf);
	const char *fmt = "%d %.2f %s";
	int n = 42;
	double x = 3.25;
	const char *s = "end";
	void *av[] = { &bp, &size, &fmt, &n, &x, &s };
	ffi_arg out = 0;
	struct call c = { .fn = (void (*)(void))snprintf, .ret = &out, .args = av };

	ck_assert_int_eq(ffi_prep_cif_var(&c.cif, FFI_DEFAULT_ABI, 3, 6, &ffi_type_sint, at), FFI_OK);
	run(&c, how);
	ck_assert_str_eq(buf, "42 3.25 end");
	ck_assert_int_eq((int)out, 11);
}

START_TEST(test_hostcall_double)      { check_double(0); } END_TEST
START_TEST(test_hostcall_struct)      { check_struct(0); } END_TEST
START_TEST(test_hostcall_long_double) { check_long_double(0); } END_TEST
START_TEST(test_hostcall_ten_mixed)   { check_mixed(0); } END_TEST
START_TEST(test_hostcall_variadic)    { check_variadic(0); } END_TEST
START_TEST(test_call_double)          { check_double(1); } END_TEST
START_TEST(test_call_struct)          { check_struct(1); } END_TEST
START_TEST(test_call_long_double)     { check_long_double(1); } END_TEST
START_TEST(test_call_ten_mixed)       { check_mixed(1); } END_TEST
START_TEST(test_call_variadic)        { check_variadic(1); } END_TEST

/* Where a function's frame is: on the caller's guest stack, or elsewhere. */
static char *guest_stack;
#define GUEST_STACK (256 << 10)

static long frame_on_guest_stack(void)
{
	volatile char here;

	errno = 1234;	/* a host function's errno is its caller's */
	return &here >= guest_stack && &here < guest_stack + GUEST_STACK;
}

static void *where_calls_run(void *arg)
{
	long host = -1;

	(void)arg;
	if (vthread_hostcall_long(&host, (void (*)(void))frame_on_guest_stack, 0, NULL))
		return (void *)1;
	if (host != 0 || errno != 1234)
		return (void *)2;
	if (frame_on_guest_stack() != 1)
		return (void *)3;
	return NULL;
}

START_TEST(test_hostcall_runs_outside_the_guest)
{
	vthread_attr_t a;
	vthread_t vt;
	void *ret;

	require_backend();
	guest_stack = mmap(NULL, GUEST_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	ck_assert_ptr_ne(guest_stack, MAP_FAILED);
	vthread_attr_init(&a);
	ck_assert_int_eq(vthread_attr_setstack(&a, guest_stack, GUEST_STACK), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, where_calls_run, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, NULL);
}
END_TEST

static long sum6(long a, long b, long c, long d, long e, long f)
{
	return a + 10 * b + 100 * c + 1000 * d + 10000 * e + 100000 * f;
}

static void *hostcall_six(void *arg)
{
	const long args[6] = { 1, 2, 3, 4, 5, 6 };
	long r = 0;

	(void)arg;
	if (vthread_hostcall_long(&r, (void (*)(void))sum6, 6, args))
		return (void *)-1;
	return (void *)r;
}

START_TEST(test_hostcall_long_form)
{
	const long args[7] = { 0 };
	long r;

	ck_assert_int_eq(run_vthread(hostcall_six, NULL), 654321);
	/* From a host thread it is a direct call. */
	ck_assert_int_eq(vthread_hostcall_long(&r, (void (*)(void))sum6, 6, args), 0);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(vthread_hostcall_long(&r, (void (*)(void))sum6, 7, args), EINVAL);
	ck_assert_int_eq(vthread_hostcall_long(NULL, (void (*)(void))sum6, 0, NULL), EINVAL);
	ck_assert_int_eq(vthread_hostcall_long(&r, NULL, 0, NULL), EINVAL);
}
END_TEST

static long in_vthread(void)
{
	return vthread_self() != NULL;
}

START_TEST(test_call_runs_inside_a_vthread_and_checks_arguments)
{
	ffi_cif cif;
	ffi_arg out = 0;
	vthread_attr_t bad;

	require_backend();
	ck_assert_int_eq(ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 0, &ffi_type_slong, NULL), FFI_OK);
	ck_assert_int_eq(vthread_call(NULL, &cif, (void (*)(void))in_vthread, &out, NULL), 0);
	ck_assert_int_eq((long)out, 1);
	ck_assert_int_eq(vthread_call(NULL, NULL, (void (*)(void))in_vthread, &out, NULL), EINVAL);
	ck_assert_int_eq(vthread_call(NULL, &cif, NULL, &out, NULL), EINVAL);
	memset(&bad, 0, sizeof(bad));
	ck_assert_int_eq(vthread_call(&bad, &cif, (void (*)(void))in_vthread, &out, NULL), EINVAL);
	/* a detached vthread could not be waited for */
	out = 0;
	vthread_attr_init(&bad);
	vthread_attr_setdetachstate(&bad, VTHREAD_CREATE_DETACHED);
	ck_assert_int_eq(vthread_call(&bad, &cif, (void (*)(void))in_vthread, &out, NULL), EINVAL);
	ck_assert_int_eq((long)out, 0);
	vthread_attr_destroy(&bad);
	ck_assert_int_eq(vthread_hostcall(NULL, (void (*)(void))in_vthread, &out, NULL), EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("calls");
	TCase *tc = tcase_create("calls");

	tcase_add_test(tc, test_hostcall_double);
	tcase_add_test(tc, test_hostcall_struct);
	tcase_add_test(tc, test_hostcall_long_double);
	tcase_add_test(tc, test_hostcall_ten_mixed);
	tcase_add_test(tc, test_hostcall_variadic);
	tcase_add_test(tc, test_call_double);
	tcase_add_test(tc, test_call_struct);
	tcase_add_test(tc, test_call_long_double);
	tcase_add_test(tc, test_call_ten_mixed);
	tcase_add_test(tc, test_call_variadic);
	tcase_add_test(tc, test_hostcall_runs_outside_the_guest);
	tcase_add_test(tc, test_hostcall_long_form);
	tcase_add_test(tc, test_call_runs_inside_a_vthread_and_checks_arguments);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
