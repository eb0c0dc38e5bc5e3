/* SPDX-License-Identifier: MIT */
/*
 * vthread-bench --scaling: 1, 2, 4 ... up to every online core of threads of
 * a kind at once, each running its own loop, and the throughput of them all
 * together per thread count. Where vthreads stop scaling while pthreads go
 * on, something shared in the runtime (the ring's servers, the vCPU pool, a
 * lock) is the bottleneck. Kinds alternate per sample, as in the main table.
 * A sample is a fixed time, every thread counting its operations until the
 * same deadline: a fixed count per thread (2-3 ms of getppid natively) made
 * the window end with the last thread, so that a thread the scheduler started
 * a millisecond late halved what two threads seemed to do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <vthread.h>

#include "bench.h"

#define SAMPLES		5
#define MAX_THREADS	256
#define SAMPLE_NS	100e6	/* each sample's length */

struct worker {
	const struct load *load;
	enum kind kind;
	long n;			/* operations done before the deadline */
	double t1;		/* when its last batch ended */
	int fd[2];		/* pipe: its own, written then read back */
};

struct load {
	const char *name, *what;
	void (*body)(struct worker *);	/* makes batch operations */
	long batch;		/* operations between two looks at the clock */
	bool host;		/* the workers are pthreads for both kinds (create-join) */
};

static atomic_int ready, go;
static double deadline;

static void body_getppid(struct worker *w)
{
	for (long i = 0; i < w->load->batch; i++)
		getppid();
}

static void body_pipe(struct worker *w)
{
	static char buf[4096];

	for (long i = 0; i < w->load->batch; i++)
		if (write(w->fd[1], buf, sizeof(buf)) != sizeof(buf) ||
		    read(w->fd[0], buf, sizeof(buf)) != sizeof(buf))
			abort();
}

static void *empty(void *p)
{
	return p;
}

static void body_create_join(struct worker *w)
{
	for (long i = 0; i < w->load->batch; i++) {
		pthread_t pt;
		vthread_t vt;

		if (w->kind == PTHREAD ? pthread_create(&pt, NULL, empty, NULL) ||
					 pthread_join(pt, NULL)
				       : vthread_create(&vt, NULL, empty, NULL) ||
					 vthread_join(vt, NULL))
			abort();
	}
}

static const struct load loads[] = {
	{ "syscall", "getppid() in a loop; vthreads in the default mode (AUTO)", body_getppid, 100,
	  false },
	{ "pipe", "write 4 KiB to its own pipe, read it back", body_pipe, 10, false },
	{ "create-join", "each a pthread creating and joining threads of the kind (empty function)",
	  body_create_join, 1, true },
};

static void *work(void *p)
{
	struct worker *w = p;

	atomic_fetch_add(&ready, 1);
	while (!atomic_load(&go))
		sched_yield();
	do {
		w->load->body(w);
		w->n += w->load->batch;
	} while ((w->t1 = now_ns()) < deadline);
	return NULL;
}

/* n threads of the kind at once: operations per second, all together. */
static double run(const struct load *l, enum kind k, int n)
{
	static struct worker w[MAX_THREADS];
	pthread_t pt[MAX_THREADS];
	vthread_t vt[MAX_THREADS];
	bool as_vthread = k == VTHREAD && !l->host;
	double t0, t1 = 0, len = ops(SAMPLE_NS), total = 0;

	ready = 0;
	go = 0;
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ .load = l, .kind = k };
		if (l->body == body_pipe && pipe(w[i].fd) < 0)
			abort();
		if (as_vthread ? vthread_create(&vt[i], NULL, work, &w[i])
			       : pthread_create(&pt[i], NULL, work, &w[i])) {
			fprintf(stderr, "vthread-bench: --scaling: cannot create thread %d of %d\n",
				i + 1, n);
			exit(1);
		}
	}
	while (atomic_load(&ready) < n)
		sched_yield();
	t0 = now_ns();
	deadline = t0 + len;
	atomic_store(&go, 1);
	for (int i = 0; i < n; i++) {
		if (as_vthread)
			vthread_join(vt[i], NULL);
		else
			pthread_join(pt[i], NULL);
		if (l->body == body_pipe) {
			close(w[i].fd[0]);
			close(w[i].fd[1]);
		}
		total += w[i].n;
		if (w[i].t1 > t1)
			t1 = w[i].t1;
	}
	/* A batch may end past the deadline: the window lasts until the last one. */
	return total / ((t1 - t0) / 1e9);
}

/* "12.3M", "456k": operations per second. */
static const char *rate(char *buf, size_t len, double r)
{
	static const struct { double at; const char *unit; } u[] = {
		{ 1e6, "M" }, { 1e3, "k" }, { 1, "" },
	};
	size_t i = 0;

	while (i < 2 && r < u[i].at)
		i++;
	snprintf(buf, len, "%.3g%s", r / u[i].at, u[i].unit);
	return buf;
}

int scaling_run(const char *json_path)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int counts[32], ncounts = 0, noisy = 0;
	struct line_rtt rtt;
	struct utsname u;
	FILE *f;

	for (long n = 1; n < cores && n < MAX_THREADS; n *= 2)
		counts[ncounts++] = n;
	counts[ncounts++] = cores < MAX_THREADS ? cores : MAX_THREADS;
	f = fopen(json_path, "w");
	if (!f) {
		fprintf(stderr, "vthread-bench: %s: %s\n", json_path, strerror(errno));
		return 1;
	}
	uname(&u);
	fprintf(f, "{\"schema\": 1, \"version\": \"%s\", \"backend\": \"%s\", \"cores\": %ld, "
		"\"kernel\": \"%s %s\", \"samples\": %d, \"loads\": [",
		vthread_version(), vthread_backend(), cores, u.sysname, u.release, SAMPLES);
	printf("backend %s, %ld cores; operations per second of all threads together, medians of %d;\n"
	       "ratio: pthreads' throughput / vthreads'; x1: throughput / that of one thread;\n"
	       "noisy: a kind's samples spread over %gx (p90/p10)\n",
	       vthread_backend(), cores, SAMPLES, NOISY_SPREAD);
	line_rtt_sample(&rtt, 0);
	for (size_t l = 0; l < sizeof(loads) / sizeof(loads[0]); l++) {
		double one[2] = { 0, 0 };

		printf("\n%s: %s\n%8s %12s %7s %12s %7s %8s\n", loads[l].name, loads[l].what,
		       "threads", "pthreads", "x1", "vthreads", "x1", "ratio");
		fprintf(f, "%s\n  {\"name\": \"%s\", \"what\": \"%s\", \"points\": [", l ? "," : "",
			loads[l].name, loads[l].what);
		for (int c = 0; c < ncounts; c++) {
			double s[2][SAMPLES], m[2];
			struct summary sum[2];
			char b0[16], b1[16];
			bool noise = false;

			for (int i = 0; i < SAMPLES; i++)
				for (int k = PTHREAD; k <= VTHREAD; k++)
					s[k][i] = run(&loads[l], k, counts[c]);
			for (int k = PTHREAD; k <= VTHREAD; k++) {
				sum[k] = summarise(s[k], SAMPLES);
				m[k] = sum[k].median;
				noise |= sum[k].p90 / sum[k].p10 > NOISY_SPREAD;
				if (!c)
					one[k] = m[k];
			}
			noisy += noise;
			printf("%8d %12s %6.2fx %12s %6.2fx %7.2fx%s\n", counts[c],
			       rate(b0, sizeof(b0), m[PTHREAD]), m[PTHREAD] / one[PTHREAD],
			       rate(b1, sizeof(b1), m[VTHREAD]), m[VTHREAD] / one[VTHREAD],
			       m[PTHREAD] / m[VTHREAD], noise ? "  noisy" : "");
			fprintf(f, "%s{\"threads\": %d, \"pthread\": %.6g, \"vthread\": %.6g, "
				"\"pthread_p10\": %.6g, \"pthread_p90\": %.6g, \"vthread_p10\": %.6g, "
				"\"vthread_p90\": %.6g, \"noisy\": %s}",
				c ? ", " : "", counts[c], m[PTHREAD], m[VTHREAD], sum[PTHREAD].p10,
				sum[PTHREAD].p90, sum[VTHREAD].p10, sum[VTHREAD].p90,
				noise ? "true" : "false");
			fflush(stdout);
		}
		fprintf(f, "]}");
	}
	putchar('\n');
	if (line_rtt_sample(&rtt, 1))
		fprintf(stderr, "vthread-bench: warning: a cache line's round trip went from %.0f to "
			"%.0f ns: the host moved this machine's CPUs (the ring's points follow it)\n",
			rtt.ns[0], rtt.ns[1]);
	fprintf(f, "\n], \"line_rtt_ns\": ");
	line_rtt_json(f, &rtt);
	fprintf(f, ", \"noisy_points\": %d}\n", noisy);
	if (fclose(f)) {
		fprintf(stderr, "vthread-bench: %s: %s\n", json_path, strerror(errno));
		return 1;
	}
	printf("json: %s\n", json_path);
	if (noisy)
		fprintf(stderr, "vthread-bench: warning: a noisy run: %d of %zu points' samples "
			"spread over %gx (p90/p10)\n", noisy, ncounts * (sizeof(loads) / sizeof(loads[0])),
			NOISY_SPREAD);
	return 0;
}
