/* SPDX-License-Identifier: MIT */
/*
 * The smallest useful libvthread program: four vthreads count primes in four
 * ranges, print what they found from inside the guest (stdio, forwarded system
 * calls), and the host checks their sums against the same work done natively.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vthread.h>

#define NTHREADS 4
#define SPAN 250000

static long count_primes(long lo, long hi)
{
	long n = 0;

	for (long i = lo < 2 ? 2 : lo; i < hi; i++) {
		long d = 2;

		while (d * d <= i && i % d)
			d++;
		n += d * d > i;
	}
	return n;
}

static void *body(void *arg)
{
	long i = (long)arg, n = count_primes(i * SPAN, (i + 1) * SPAN);

	printf("  vthread %ld: %ld primes in [%ld, %ld)\n", i, n, i * SPAN, (i + 1) * SPAN);
	return (void *)n;
}

int main(int argc, char **argv)
{
	vthread_t vt[NTHREADS];
	long total = 0, expect;
	const char *be;
	int r;

	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("vthread-demo (libvthread) %s\n", vthread_version());
		return 0;
	}
	expect = count_primes(0, NTHREADS * SPAN);
	be = vthread_backend();
	if (!be) {
		fprintf(stderr, "vthread-demo: no usable KVM: %s\n", vthread_backend_error());
		return 1;
	}
	printf("backend: %s\n", be);
	for (long i = 0; i < NTHREADS; i++) {
		r = vthread_create(&vt[i], NULL, body, (void *)i);
		if (r) {
			fprintf(stderr, "vthread_create: %s\n", strerror(r));
			return 1;
		}
	}
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;

		vthread_join(vt[i], &ret);
		total += (long)ret;
	}
	printf("total %ld primes below %d (native: %ld) %s\n", total, NTHREADS * SPAN, expect,
	       total == expect ? "OK" : "MISMATCH");
	return total == expect ? 0 : 1;
}
