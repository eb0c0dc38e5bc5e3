/* SPDX-License-Identifier: MIT */
/*
 * Guest memory access from the runtime. Guest addresses are the process's own
 * (GVA == HVA), but a guest may hand the runtime any pointer: the copies go
 * through process_vm_readv/writev, which fail with EFAULT where a plain access
 * would have faulted the backing thread. They name the calling thread, not the
 * process: once the main thread has ended (pthread_exit), the process ID names
 * a zombie without memory, and the calls fail with ESRCH.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mm.h"

int mm_copy_in(void *dst, const void *src, size_t n)
{
	struct iovec l = { dst, n }, r = { (void *)src, n };

	return process_vm_readv(gettid(), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -EFAULT;
}

int mm_copy_out(void *dst, const void *src, size_t n)
{
	struct iovec l = { (void *)src, n }, r = { dst, n };

	return process_vm_writev(gettid(), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -EFAULT;
}
