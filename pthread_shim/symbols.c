/* SPDX-License-Identifier: MIT */
/*
 * The name of a thread routine, for --match and --log: the dynamic symbol
 * table (dladdr) when it has the routine, else every symbol table libdw finds
 * for its module (.symtab, the MiniDebugInfo in .gnu_debugdata, a separate
 * debug file), so that static functions, and a stripped library's with its
 * debug file installed, have their names too. libdw is loaded (libdw.c) at
 * the first routine dladdr cannot name.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

#include "../runtime/rt_dw.h"
#include "shim.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool tried;
static Dwfl *dwfl;

const char *shim_routine_name(void *(*fn)(void *))
{
	Dwarf_Addr a = (uintptr_t)fn;
	const char *name = NULL;
	Dwfl_Module *m;
	GElf_Off off;
	GElf_Sym sym;
	Dl_info info;

	if (dladdr((void *)fn, &info) && info.dli_sname && info.dli_saddr == (void *)fn)
		return info.dli_sname;
	pthread_mutex_lock(&lock);
	if (!tried) {
		tried = true;
		if (rt_dw_load() && (dwfl = rt_dw.begin(&rt_dw.callbacks)) && !rt_dw_report(dwfl))
			dwfl = NULL;
	}
	if (dwfl) {
		m = rt_dw.addrmodule(dwfl, a);
		if (!m && rt_dw_report(dwfl))	/* a later dlopen */
			m = rt_dw.addrmodule(dwfl, a);
		if (m)
			name = rt_dw.module_addrinfo(m, a, &off, &sym, NULL, NULL, NULL);
		if (name && off)
			name = NULL;	/* inside a function, not at its start */
	}
	pthread_mutex_unlock(&lock);
	return name;
}
