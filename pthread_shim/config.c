/* SPDX-License-Identifier: MIT */
/*
 * VTHREAD_SHIM, VTHREAD_SHIM_MATCH, VTHREAD_SHIM_MAX, VTHREAD_SHIM_LOG and
 * VTHREAD_STATS, under the runtime's rule (runtime/env.c): a value that is not
 * understood is an error, never a guess.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/rt_shim.h"
#include "shim.h"

/* A comma-separated list of fnmatch(3) patterns, none of them empty. */
static int globs(struct shim_config *c, const char *v, char *err, size_t n)
{
	size_t len = strlen(v);

	if (v[0] == ',' || v[len - 1] == ',' || strstr(v, ",,"))
		return rt_env_bad(err, n, "VTHREAD_SHIM_MATCH", v, "an empty pattern");
	c->globs = strdup(v);
	if (!c->globs)
		return rt_env_bad(err, n, "VTHREAD_SHIM_MATCH", v, "out of memory");
	c->nglobs = 1;
	for (char *p = c->globs; (p = strchr(p, ',')); p++) {
		*p = '\0';
		c->nglobs++;
	}
	return 0;
}

int shim_config_read(struct shim_config *c, char *err, size_t n)
{
	const char *mode = getenv("VTHREAD_SHIM"), *match = getenv("VTHREAD_SHIM_MATCH");
	const char *max = getenv("VTHREAD_SHIM_MAX");
	int r, stats;

	*c = (struct shim_config){ .mode = SHIM_ALL, .max = ULONG_MAX };
	r = rt_env_stats(&stats, err, n);
	c->stats = stats > 0;
	if (!r)
		r = rt_env_flag("VTHREAD_SHIM_LOG", &c->log, err, n);
	if (r < 0)
		return r;
	if (max && *max) {
		char *end;

		errno = 0;
		c->max = strtoul(max, &end, 10);
		if (*end || errno || *max == '-')	/* ULONG_MAX: no limit, as unset */
			return rt_env_bad(err, n, "VTHREAD_SHIM_MAX", max, "expected a number of threads");
	}
	if (!mode || !*mode)
		mode = match && *match ? "match" : "all";
	if (!strcmp(mode, "none")) {
		c->mode = SHIM_NONE;
	} else if (!strcmp(mode, "all")) {
		c->mode = SHIM_ALL;
	} else if (!strcmp(mode, "match")) {
		if (!match || !*match)
			return rt_env_bad(err, n, "VTHREAD_SHIM", mode, "needs VTHREAD_SHIM_MATCH=GLOB[,GLOB...]");
		c->mode = SHIM_MATCH;
		return globs(c, match, err, n);
	} else {
		return rt_env_bad(err, n, "VTHREAD_SHIM", mode, "expected all, none or match");
	}
	return 0;
}

bool shim_config_matches(const struct shim_config *c, const char *name)
{
	const char *g = c->globs;

	for (size_t i = 0; i < c->nglobs; i++, g += strlen(g) + 1)
		if (fnmatch(g, name, 0) == 0)
			return true;
	return false;
}
