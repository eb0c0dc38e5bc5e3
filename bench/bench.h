/* SPDX-License-Identifier: MIT */
/* What vthread-bench.c shares with the rows kept in files of their own. */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stdio.h>

/* A row's sample runs one kind: the native comparison, or the library's. */
enum kind { PTHREAD, VTHREAD };

double now_ns(void);
/* full operations, a quarter with --quick */
long ops(long full);

struct summary {
	double median, p10, p90;
	int n;
};
/* The median, 10th and 90th percentile of n samples (v left as it is). */
struct summary summarise(double *v, int n);

/*
 * A row is noisy when the p90/p10 of its paired ratios is over this: their middle
 * 80% then spans more than a factor of 2, and a change between two runs smaller
 * than that cannot be told from noise. On a quiet machine (README's kvm_pvm run)
 * each side's p90/p10 is 1.0-1.4 in most rows; the rows that contend with another
 * thread (mutex, pipe-write) reach 2-2.5 there, and may be flagged even so. A
 * scaling point is noisy when either kind's samples spread so.
 */
#define NOISY_SPREAD 2.0

/* A cache line's round trip between the first two CPUs this process may use,
 * pinned, at a run's start and end (ns; NAN with one CPU). The host sets it,
 * and the ring's rows and points follow it (vthread-bench.c). */
struct line_rtt {
	int cpu[2];
	double ns[2];
};
/* Measures and prints it at the start (when 0) or the end (1): whether it
 * moved over NOISY_SPREAD from the start. */
bool line_rtt_sample(struct line_rtt *l, int when);
/* Its JSON value: the CPUs, start and end, or null. */
void line_rtt_json(FILE *f, const struct line_rtt *l);

/* sandbox.c: a sandboxed call vs a seccomp child forked per call, or one
 * kept over pipes; reset + run of a target dirtying 1, 16, 256 pages of
 * 64 MiB vs an AFL-style fork server. */
double s_sandbox_call_fork(enum kind k);
double s_sandbox_call_pipe(enum kind k);
double s_reset_1(enum kind k);
double s_reset_16(enum kind k);
double s_reset_256(enum kind k);

/* scaling.c: --scaling, throughput of 1, 2, 4 ... every core of threads of
 * each kind at once; the JSON to json_path. 0, or 1 on an error. */
int scaling_run(const char *json_path);

#endif
