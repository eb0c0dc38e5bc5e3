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
	ZydisDecoder decoder;	/* 64-bit; only read once made, by any thread */
	bool loaded;		/* set once all of the above are */
};
#undef RT_ZY_FN

extern struct rt_zydis rt_zydis;
/* Loads Zydis once and makes the decoder: whether it could. Not thread-safe. */
bool rt_zydis_load(void);

#endif
