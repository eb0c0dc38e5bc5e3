/* SPDX-License-Identifier: MIT */
/* Zydis's functions, dlopen()ed by libzydis.c; only its header is a build dependency. */
#ifndef RT_ZYDIS_H
#define RT_ZYDIS_H

#include <stdbool.h>
#include <Zydis/Zydis.h>

#define RT_ZY_FN(f) __typeof__(Zydis##f) *f
struct rt_zydis {
	RT_ZY_FN(DecoderDecodeInstruction);
	RT_ZY_FN(DecoderDecodeFull);
	RT_ZY_FN(DecoderInit);		/* set once every one is there */
};
#undef RT_ZY_FN

extern struct rt_zydis rt_zydis;
/* Loads Zydis once: whether every function above is there. Not thread-safe. */
bool rt_zydis_load(void);
/* A 64-bit decoder. */
void rt_zydis_decoder(ZydisDecoder *d);

#endif
