/* SPDX-License-Identifier: MIT */
/*
 * Four vthreads sum slices of one array; the host joins them as it would join
 * pthreads. vthread_pthread() names each one's backing thread, so that top -H,
 * gdb and /proc show which is which. Build: cc create_join.c $(pkg-config
 * --cflags --libs vthread)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <vthread.h>

#define N 4
#define LEN (1 << 20)

static uint32_t data[LEN];

static void *sum(void *arg)
{
	uintptr_t part = (uintptr_t)arg;
	uint64_t s = 0;

	for (size_t i = part * (LEN / N); i < (part + 1) * (LEN / N); i++)
		s += data[i];
	return (void *)(uintptr_t)s;
}

int main(void)
{
	vthread_t vt[N];
	uint64_t total = 0;
	int err;

	for (size_t i = 0; i < LEN; i++)
		data[i] = i;
	for (uintptr_t i = 0; i < N; i++) {
		char name[16];

		err = vthread_create(&vt[i], NULL, sum, (void *)i);
		if (err) {	/* ENOSYS: no usable KVM; vthread_backend_error() says why */
			fprintf(stderr, "vthread_create: %s (%s)\n", strerror(err),
				err == ENOSYS ? vthread_backend_error() : "");
			return 1;
		}
		snprintf(name, sizeof(name), "sum-%u", (unsigned)i);
		pthread_setname_np(vthread_pthread(vt[i]), name);
	}
	for (int i = 0; i < N; i++) {
		void *ret;

		vthread_join(vt[i], &ret);
		total += (uintptr_t)ret;
	}
	printf("%d vthreads on %s: sum %llu (expected %llu)\n", N, vthread_backend(),
	       (unsigned long long)total, (unsigned long long)LEN * (LEN - 1) / 2);
	return total == (uint64_t)LEN * (LEN - 1) / 2 ? 0 : 1;
}
