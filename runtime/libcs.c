/* SPDX-License-Identifier: MIT */
/*
 * Capstone, loaded when the process makes its VM (rt_init), not when it
 * starts: mapping and relocating it took ~1 ms of every process under the
 * shim, threads or none. Loaded before any vthread runs, so that neither a
 * rewrite (rewrite.c) nor a fault's decode (decode.c) ever calls dlopen.
 * Without it there is no backend (vthread_backend_error says so): a fault's
 * siginfo would lack its address.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

#include "rt_cs.h"

struct rt_cs rt_cs;

#define SYM(f) (rt_cs.f = dlsym(h, "cs_" #f))

bool rt_cs_load(void)
{
	void *h;

	if (rt_cs.open)
		return true;
	h = dlopen(RT_CS_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return false;
	if (!SYM(option) || !SYM(disasm) || !SYM(disasm_iter) || !SYM(malloc) || !SYM(free) ||
	    !SYM(close) || !SYM(open))
		return false;	/* open last: it says all the others are there */
	return true;
}
