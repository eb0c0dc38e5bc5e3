/* SPDX-License-Identifier: MIT */
/*
 * The environment variables, under one rule for the runtime and the shim: a
 * value that is not understood is an error, never a guess. The runtime then
 * refuses to start (ENOSYS, with the reason in vthread_backend_error()); the
 * shim runs without itself and says why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

int rt_env_bad(char *why, size_t n, const char *var, const char *val, const char *want)
{
	snprintf(why, n, "%s=%s: %s", var, val, want);
	return -EINVAL;
}

int rt_env_flag(const char *var, bool *on, char *why, size_t n)
{
	const char *v = getenv(var);

	*on = v && !strcmp(v, "1");
	if (!v || !*v || !strcmp(v, "0") || *on)
		return 0;
	return rt_env_bad(why, n, var, v, "expected 0 or 1");
}

int rt_env_stats(int *level, char *why, size_t n)
{
	const char *v = getenv("VTHREAD_STATS");

	*level = v && (!strcmp(v, "1") || !strcmp(v, "2")) ? *v - '0' : 0;
	if (!v || !*v || !strcmp(v, "0") || *level)
		return 0;
	return rt_env_bad(why, n, "VTHREAD_STATS", v, "expected 0, 1 or 2");
}

int rt_env_syscalls(int *mode, char *why, size_t n)
{
	const char *v = getenv("VTHREAD_SYSCALLS");

	if (!v || !*v || !strcmp(v, "auto"))
		*mode = VTHREAD_SYSCALL_AUTO;
	else if (!strcmp(v, "exit"))
		*mode = VTHREAD_SYSCALL_EXIT;
	else if (!strcmp(v, "ring"))
		*mode = VTHREAD_SYSCALL_RING;
	else
		return rt_env_bad(why, n, "VTHREAD_SYSCALLS", v, "expected exit, ring or auto");
	return 0;
}
