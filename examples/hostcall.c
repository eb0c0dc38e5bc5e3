/* SPDX-License-Identifier: MIT */
/*
 * Calls across the boundary. From the host, vthread_call() runs a function with
 * any libffi signature inside a fresh vthread; inside it, vthread_hostcall()
 * runs a host function on the backing thread, outside the guest (for code that
 * must not run in a vCPU: a library that is not thread-safe, a blocking call
 * you want out of the guest). Build: cc hostcall.c $(pkg-config --cflags --libs
 * vthread)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <vthread.h>

/* Runs on the vthread's backing host thread, outside the vCPU, with the same TLS
 * and errno as the vthread: vthread_self() still names the vthread it serves. */
static long on_host(long a, long b)
{
	return a * b;
}

/* Runs inside the vthread. */
static double scale(double x, long factor)
{
	long product;

	vthread_hostcall_long(&product, (void (*)(void))on_host, 2, (long[]){ factor, 10 });
	return vthread_self() ? x * product : -1;
}

int main(void)
{
	ffi_cif cif;
	ffi_type *args[] = { &ffi_type_double, &ffi_type_slong };
	double x = 1.5, r = 0;
	long factor = 3;
	int err;

	ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &ffi_type_double, args);
	err = vthread_call(NULL, &cif, (void (*)(void))scale, &r, (void *[]){ &x, &factor });
	if (err) {
		fprintf(stderr, "vthread_call: %s (%s)\n", strerror(err),
			err == ENOSYS ? vthread_backend_error() : "");
		return 1;
	}
	printf("scale(1.5, 3) inside a vthread, with 3 * 10 on the host: %g\n", r);
	return r == 45.0 ? 0 : 1;
}
