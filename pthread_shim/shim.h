/* SPDX-License-Identifier: MIT */
/* The pthread shim's configuration, from the environment (private). */
#ifndef SHIM_H
#define SHIM_H

#include <stdbool.h>
#include <stddef.h>

enum shim_mode { SHIM_NONE, SHIM_ALL, SHIM_MATCH };

struct shim_config {
	enum shim_mode mode;
	char *globs;		/* VTHREAD_SHIM_MATCH, each glob NUL-terminated */
	size_t nglobs;
	unsigned long max;	/* live vthreads at most; ULONG_MAX: no limit */
	bool log, stats;
};

/* 0, or -EINVAL with why the environment is wrong written to err. */
int shim_config_read(struct shim_config *c, char *err, size_t n);
/* The start routine's name matches one of the globs. */
bool shim_config_matches(const struct shim_config *c, const char *name);

/* symbols.c: the name of the symbol that starts at fn, static ones too; NULL */
const char *shim_routine_name(void *(*fn)(void *));

#endif
