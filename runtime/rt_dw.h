/* SPDX-License-Identifier: MIT */
/* libdw's functions, dlopen()ed by libdw.c; only its header is a build dependency. */
#ifndef RT_DW_H
#define RT_DW_H

#include <elfutils/libdwfl.h>
#include <stdbool.h>

#define RT_DW_FN(f) __typeof__(dwfl_##f) *f
struct rt_dw {
	Dwfl_Callbacks callbacks;	/* for this process's modules */
	RT_DW_FN(begin);		/* set once every one is there */
	RT_DW_FN(report_begin);
	RT_DW_FN(linux_proc_report);
	RT_DW_FN(report_end);
	RT_DW_FN(addrmodule);
	RT_DW_FN(module_addrinfo);
	RT_DW_FN(module_info);
	RT_DW_FN(module_relocate_address);
	RT_DW_FN(attach_state);
	RT_DW_FN(getthread_frames);
	RT_DW_FN(thread_state_registers);
	RT_DW_FN(frame_pc);
	RT_DW_FN(errmsg);
};
#undef RT_DW_FN

extern struct rt_dw rt_dw;
/* Loads libdw once: whether every function above is there. Not thread-safe. */
bool rt_dw_load(void);
/* Reports the modules the process maps now to dwfl: whether that worked. */
bool rt_dw_report(Dwfl *dwfl);

#endif
