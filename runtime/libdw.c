/* SPDX-License-Identifier: MIT */
/*
 * libdw, loaded when first needed: for the names of static functions (the
 * shim's --match) and for a crashed vthread's backtrace (backtrace.c). Loading
 * it costs a program a few milliseconds, and most never need it; a program on
 * a machine without libdw1 goes without, and is told so.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <unistd.h>

#include "rt_dw.h"

struct rt_dw rt_dw;

#define SYM(f) (rt_dw.f = dlsym(h, "dwfl_" #f))

bool rt_dw_load(void)
{
	void *h;

	if (rt_dw.begin)
		return true;
	h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return false;
	rt_dw.callbacks.find_elf = dlsym(h, "dwfl_linux_proc_find_elf");
	rt_dw.callbacks.find_debuginfo = dlsym(h, "dwfl_standard_find_debuginfo");
	if (!rt_dw.callbacks.find_elf || !rt_dw.callbacks.find_debuginfo || !SYM(report_begin) ||
	    !SYM(linux_proc_report) || !SYM(report_end) || !SYM(addrmodule) ||
	    !SYM(module_addrinfo) || !SYM(module_info) || !SYM(module_relocate_address) ||
	    !SYM(attach_state) || !SYM(getthread_frames) || !SYM(thread_state_registers) ||
	    !SYM(frame_pc) || !SYM(errmsg) || !SYM(begin))
		return false;	/* begin last: it says all the others are there */
	return true;
}

bool rt_dw_report(Dwfl *dwfl)
{
	rt_dw.report_begin(dwfl);
	return rt_dw.linux_proc_report(dwfl, getpid()) == 0 &&
	       rt_dw.report_end(dwfl, NULL, NULL) == 0;
}
