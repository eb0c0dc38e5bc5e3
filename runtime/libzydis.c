/* SPDX-License-Identifier: MIT */
/*
 * Zydis, the decoder of libc's code (rewrite.c) and of a faulting
 * instruction (decode.c), loaded when the process makes its VM (rt_init):
 * before any vthread runs, so that neither ever calls dlopen, and not by a
 * process that makes no vthread. dlopen()ed rather than linked because
 * Debian ships no static Zydis: a program linked with libvthread.a gets it
 * the same way. Without it there is no backend (vthread_backend_error says
 * so): a fault's siginfo would lack its address.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

#include "rt_zydis.h"

struct rt_zydis rt_zydis;

#define SYM(f) (rt_zydis.f = dlsym(h, "Zydis" #f))

bool rt_zydis_load(void)
{
	__typeof__(ZydisDecoderInit) *init;
	void *h;

	if (rt_zydis.loaded)
		return true;
	h = dlopen(RT_ZYDIS_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h || !SYM(DecoderDecodeInstruction) || !SYM(DecoderDecodeFull) ||
	    !(init = dlsym(h, "ZydisDecoderInit")))
		return false;
	rt_zydis.loaded = ZYAN_SUCCESS(init(&rt_zydis.decoder, ZYDIS_MACHINE_MODE_LONG_64,
					    ZYDIS_STACK_WIDTH_64));
	return rt_zydis.loaded;
}
