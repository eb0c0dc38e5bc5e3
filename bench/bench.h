/* SPDX-License-Identifier: MIT */
/* What vthread-bench.c shares with the rows kept in files of their own. */
#ifndef BENCH_H
#define BENCH_H

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
