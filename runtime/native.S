/* SPDX-License-Identifier: MIT */
/*
 * The host side of a guest's clone, clone3, fork or vfork. The backing thread
 * makes the call; its child, a new host thread or process, does not return
 * into the runtime but becomes the guest's code running natively: the guest's
 * registers, stack, FS base, signal mask and FPU control, at the instruction
 * after the guest's `syscall`, with RAX = 0, as a child of that call would be.
 */
#include "native.h"

#define SYS_rt_sigprocmask	14
#define SYS_futex		202
#define SYS_arch_prctl		158
#define ARCH_SET_FS		0x1002
#define FUTEX_WAKE_PRIVATE	129

	.text
	.globl rt_native_clone
	.hidden rt_native_clone
	.type rt_native_clone, @function
rt_native_clone:
	.cfi_startproc
	pushq %r12
	.cfi_adjust_cfa_offset 8
	movq %rdi, %r12			/* survives the syscall in both processes */
	movq NC_NR(%r12), %rax
	movq NC_ARGS(%r12), %rdi
	movq NC_ARGS+8(%r12), %rsi
	movq NC_ARGS+16(%r12), %rdx
	movq NC_ARGS+24(%r12), %r10
	movq NC_ARGS+32(%r12), %r8
	movq NC_ARGS+40(%r12), %r9
	syscall
	testq %rax, %rax
	jz rt_native_enter_r12		/* the child: nothing above this frame is its own */
	popq %r12
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size rt_native_clone, . - rt_native_clone

/* void rt_native_enter(struct rt_native_clone *c): this thread becomes c's guest state. */
	.globl rt_native_enter
	.hidden rt_native_enter
	.type rt_native_enter, @function
rt_native_enter:
	movq %rdi, %r12
rt_native_enter_r12:
	movq NC_RSP(%r12), %rbx
	testq %rbx, %rbx
	cmovzq %rsp, %rbx		/* the target stack pointer */
	/*
	 * The switch ends with `popfq; ret $NC_RED_ZONE`: the guest's RIP is staged
	 * just below its red zone, so the return lands RSP exactly on the target.
	 * (Not `iretq`: QEMU's emulation of it at CPL3 reads the frame as a
	 * supervisor access, which SMAP refuses on user pages.)
	 */
	movq NC_RIP(%r12), %rax
	movq %rax, -NC_RED_ZONE-8(%rbx)
	leaq -NC_RED_ZONE-8(%rbx), %rsp
	pushq NC_RFLAGS(%r12)
	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14
	pushq NC_GPRS+8*\i(%r12)
	.endr

	ldmxcsr NC_MXCSR(%r12)
	fldcw NC_FCW(%r12)
	movq NC_XSAVE(%r12), %rdi
	testq %rdi, %rdi
	jz 3f
	cmpl $0, NC_XRSTOR(%r12)
	je 4f
	movl $-1, %eax			/* every component XCR0 enables */
	movl $-1, %edx
	xrstor64 (%rdi)
	jmp 3f
4:	fxrstor64 (%rdi)
3:
	movq NC_FS(%r12), %rsi
	testq %rsi, %rsi
	jz 2f
	movl $ARCH_SET_FS, %edi
	movl $SYS_arch_prctl, %eax
	syscall
2:	movl $SYS_rt_sigprocmask, %eax
	movl $2, %edi			/* SIG_SETMASK */
	leaq NC_MASK(%r12), %rsi
	xorl %edx, %edx
	movl $8, %r10d
	syscall
	/* From here on the parent may reuse *r12. */
	leaq NC_DONE(%r12), %rdi
	movl $1, (%rdi)
	movl $FUTEX_WAKE_PRIVATE, %esi
	movl $1, %edx
	movl $SYS_futex, %eax
	syscall

	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	popfq
	ret $NC_RED_ZONE
	.size rt_native_enter, . - rt_native_enter

	.section .note.GNU-stack, "", @progbits
