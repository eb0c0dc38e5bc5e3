/* SPDX-License-Identifier: MIT */
/* What the pthread shim (pthread_shim/) uses of the runtime, and nothing more (private). */
#ifndef RT_SHIM_H
#define RT_SHIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "../include/vthread.h"

/*
 * A vthread whose handle is its backing thread's pthread_t, made with host's
 * attributes (the stack replaced by the runtime's). Joining or detaching it is
 * the pthread's business; the runtime forgets the vthread when it ends.
 * Error numbers as vthread_create's, and pthread_create's own for host's.
 */
int rt_create_pthread(pthread_t *th, const vthread_attr_t *attr, pthread_attr_t *host,
		      void *(*fn)(void *), void *arg);
/* The usable stack and guard size of th if it is a running vthread. */
bool rt_guest_stack(pthread_t th, void **addr, size_t *size, size_t *guard);

/* The report at exit is report(), in place of the VTHREAD_STATS=1 one; it is
 * printed once, also when the process ends with _exit() (rt_stats_exiting). */
void rt_stats_report_at_exit(void (*report)(void));
void rt_stats_exiting(void);
void rt_stats_print(int fd);

/* Reads a boolean variable: unset, empty or 0 is false, 1 is true; anything
 * else is -EINVAL with the reason written to why. */
int rt_env_flag(const char *var, bool *on, char *why, size_t n);
/* VTHREAD_STATS: 0, 1 (the process's report at exit) or 2 (each vthread's too) */
int rt_env_stats(int *level, char *why, size_t n);
/* Writes "VAR=VAL: want" to why, the one form of every variable's error: -EINVAL. */
int rt_env_bad(char *why, size_t n, const char *var, const char *val, const char *want);

#endif
