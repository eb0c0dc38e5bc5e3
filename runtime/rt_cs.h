/* SPDX-License-Identifier: MIT */
/* Capstone's functions, dlopen()ed by libcs.c; only its header is a build dependency. */
#ifndef RT_CS_H
#define RT_CS_H

#include <capstone/capstone.h>
#include <stdbool.h>

#define RT_CS_FN(f) __typeof__(cs_##f) *f
struct rt_cs {
	RT_CS_FN(option);
	RT_CS_FN(disasm);
	RT_CS_FN(disasm_iter);
	RT_CS_FN(malloc);
	RT_CS_FN(free);
	RT_CS_FN(close);
	RT_CS_FN(open);		/* set once every one is there */
};
#undef RT_CS_FN

extern struct rt_cs rt_cs;
/* Loads Capstone once: whether every function above is there. Not thread-safe. */
bool rt_cs_load(void);

#endif
