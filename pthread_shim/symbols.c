/* SPDX-License-Identifier: MIT */
/*
 * The name of a thread routine, for --match and --log: the dynamic symbol
 * table (dladdr) when it has the routine, else every symbol table libdw finds
 * for its module (.symtab, the MiniDebugInfo in .gnu_debugdata, a separate
 * debug file), so that static functions, and a stripped library's with its
 * debug file installed, have their names too. libdw is loaded at the first
 * routine dladdr cannot name: loading it costs every program a few
 * milliseconds, and most never need it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "shim.h"

static struct {
	pthread_mutex_t lock;
	bool tried;
	Dwfl *dwfl;
	Dwfl_Callbacks callbacks;
	__typeof__(dwfl_begin) *begin;
	__typeof__(dwfl_report_begin) *report_begin;
	__typeof__(dwfl_linux_proc_report) *proc_report;
	__typeof__(dwfl_report_end) *report_end;
	__typeof__(dwfl_addrmodule) *addrmodule;
	__typeof__(dwfl_module_addrinfo) *addrinfo;
} dw = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The modules mapped now; again when a routine lies in none (a later dlopen). */
static bool report(void)
{
	dw.report_begin(dw.dwfl);
	return dw.proc_report(dw.dwfl, getpid()) == 0 && dw.report_end(dw.dwfl, NULL, NULL) == 0;
}

static bool load(void)
{
	void *h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);

	if (!h)
		return false;
	dw.begin = dlsym(h, "dwfl_begin");
	dw.report_begin = dlsym(h, "dwfl_report_begin");
	dw.proc_report = dlsym(h, "dwfl_linux_proc_report");
	dw.report_end = dlsym(h, "dwfl_report_end");
	dw.addrmodule = dlsym(h, "dwfl_addrmodule");
	dw.addrinfo = dlsym(h, "dwfl_module_addrinfo");
	dw.callbacks.find_elf = dlsym(h, "dwfl_linux_proc_find_elf");
	dw.callbacks.find_debuginfo = dlsym(h, "dwfl_standard_find_debuginfo");
	if (!dw.begin || !dw.report_begin || !dw.proc_report || !dw.report_end ||
	    !dw.addrmodule || !dw.addrinfo || !dw.callbacks.find_elf ||
	    !dw.callbacks.find_debuginfo)
		return false;
	dw.dwfl = dw.begin(&dw.callbacks);
	return dw.dwfl && report();
}

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
	pthread_mutex_lock(&dw.lock);
	if (!dw.tried) {
		dw.tried = true;
		if (!load())
			dw.dwfl = NULL;
	}
	if (dw.dwfl) {
		m = dw.addrmodule(dw.dwfl, a);
		if (!m && report())
			m = dw.addrmodule(dw.dwfl, a);
		if (m)
			name = dw.addrinfo(m, a, &off, &sym, NULL, NULL, NULL);
		if (name && off)
			name = NULL;	/* inside a function, not at its start */
	}
	pthread_mutex_unlock(&dw.lock);
	return name;
}
