/* SPDX-License-Identifier: MIT */
/* What vthread-bench.c shares with the rows kept in files of their own. */
#ifndef BENCH_H
#define BENCH_H

/* A row's sample runs one kind: the native comparison, or the library's. */
enum kind { PTHREAD, VTHREAD };

double now_ns(void);
/* full operations, a quarter with --quick */
long ops(long full);

/* sandbox.c: a sandboxed call vs a seccomp child forked per call, or one
 * kept over pipes; reset + run of a target dirtying 1, 16, 256 pages of
 * 64 MiB vs an AFL-style fork server. */
double s_sandbox_call_fork(enum kind k);
double s_sandbox_call_pipe(enum kind k);
double s_reset_1(enum kind k);
double s_reset_16(enum kind k);
double s_reset_256(enum kind k);

#endif
