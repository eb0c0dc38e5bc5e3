/* SPDX-License-Identifier: MIT */
/*
 * long rt_wait_syscall(const volatile uint8_t *kicked, const long call[7]):
 * the system call call[0] with arguments call[1..6], unless *kicked is set
 * first. Between rt_wait_check and rt_wait_done the call has not completed, so
 * a SIGCANCEL handler that finds the thread there (not yet at the `syscall`,
 * or wound back to it for a restart) sends it to rt_wait_skip instead. Either
 * way the call is then reported as not made. R12 and R13 mark the call for a
 * debugger (RT_WAIT_MARK).
 */
#include "waitcall.h"

	.text
	.globl rt_wait_syscall, rt_wait_check, rt_wait_done, rt_wait_skip
	.hidden rt_wait_syscall, rt_wait_check, rt_wait_done, rt_wait_skip
	.type rt_wait_syscall, @function
rt_wait_syscall:
	.cfi_startproc
	pushq %r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r12, 0
	pushq %r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r13, 0
	movabsq $RT_WAIT_MARK, %r12
	movq %rdx, %r13
	movq %rdi, %r11
	movq 0(%rsi), %rax
	movq 8(%rsi), %rdi
	movq 24(%rsi), %rdx
	movq 32(%rsi), %r10
	movq 40(%rsi), %r8
	movq 48(%rsi), %r9
	movq 16(%rsi), %rsi
rt_wait_check:
	cmpb $0, (%r11)
	jne rt_wait_skip
	syscall
rt_wait_done:
	.cfi_remember_state
	popq %r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r13
	popq %r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r12
	ret
	.cfi_restore_state
rt_wait_skip:
	movq $RT_CALL_NOT_MADE, %rax
	jmp rt_wait_done
	.cfi_endproc
	.size rt_wait_syscall, .-rt_wait_syscall

	.section .note.GNU-stack, "", @progbits
