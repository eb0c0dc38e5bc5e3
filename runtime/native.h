/* SPDX-License-Identifier: MIT */
/*
 * What runtime/native.S and runtime/clone.c agree on: the guest state a clone
 * child continues from, natively, at the instruction after the guest's
 * `syscall`; also the state of a fatal fault that fault.c runs again natively,
 * and of a vthread that runs on natively from a breakpoint (breakpoint.c).
 * Offsets in bytes; clone.c checks them against the struct.
 */
#define NC_RED_ZONE	128
/* What rt_native_enter writes below the target stack's red zone: RIP, RFLAGS, 15 registers */
#define NC_STAGED	(17 * 8)
#ifndef RT_NATIVE_H
#define RT_NATIVE_H

#define NC_NR		0	/* the call and its six arguments */
#define NC_ARGS		8
#define NC_GPRS		56	/* rax rbx rcx rdx rsi rdi rbp r8..r15: 15 values */
#define NC_RIP		176
#define NC_RFLAGS	184
#define NC_RSP		192	/* 0: keep the stack the kernel gave the child */
#define NC_FS		200	/* 0: keep the FS base */
#define NC_MASK		208	/* the child's signal mask */
#define NC_MXCSR	216
#define NC_FCW		220
#define NC_DONE		224	/* set by a child that shares memory once it no longer reads this */
#define NC_XRSTOR	228	/* xsave holds an XSAVE area (XRSTOR), else an FXSAVE one */
#define NC_XSAVE	232	/* the vector registers to take, 64-byte aligned; 0: the thread's */
#define NC_SIZE		240

#ifndef __ASSEMBLER__
#include <stdint.h>

struct rt_native_clone {
	uint64_t nr, args[6];
	uint64_t gprs[15];
	uint64_t rip, rflags, rsp, fs, mask;
	uint32_t mxcsr;
	uint16_t fcw, pad;
	int32_t done;
	uint32_t xrstor;
	const void *xsave;
};

/* Makes the call; returns its result in the parent, never in the child. */
long rt_native_clone(struct rt_native_clone *c);
/* The calling thread becomes c's guest state, as a clone child does (c->nr unused). */
void rt_native_enter(struct rt_native_clone *c) __attribute__((noreturn));
#endif
#endif
