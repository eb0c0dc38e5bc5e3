/* SPDX-License-Identifier: MIT */
/*
 * A plain pthread program that knows nothing of libvthread. Run it under the
 * shim and its threads become vthreads, unchanged:
 *	vthread-run --stats ./shim_workers
 * Build: cc shim_workers.c -pthread (and -rdynamic, so that vthread-run --match
 * can name the thread routine).
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *worker(void *arg)
{
	long n = (long)arg, s = 0;

	for (long i = 1; i <= n; i++)
		s += i;
	return (void *)s;
}

int main(void)
{
	pthread_t t[3];
	long total = 0;

	for (long i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, worker, (void *)(1000 * (i + 1)));
	for (int i = 0; i < 3; i++) {
		void *r;

		pthread_join(t[i], &r);
		total += (long)r;
	}
	printf("3 workers: %ld\n", total);
	return total == 500500 + 2001000 + 4501500 ? 0 : 1;
}
