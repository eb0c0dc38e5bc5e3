/* SPDX-License-Identifier: MIT */
/*
 * The guest side: the only code written for the vCPU. Everything else a vthread
 * runs is the process's own code. Each path exits with `out` to a port that names
 * the reason; `out imm8, %al` changes no register, so the runtime sees the guest's
 * registers as they were. The runtime then sets RIP itself, so no path here returns
 * on its own and the `ud2` after each exit is never reached.
 */
#include "ports.h"

	.text

/* MSR_LSTAR. `syscall` at CPL0 lands here with RCX = return RIP, R11 = RFLAGS and
 * RSP untouched; the runtime performs the call and resumes at RCX. */
	.globl hv_guest_syscall
	.type hv_guest_syscall, @function
	.balign 16
hv_guest_syscall:
	outb %al, $HV_PORT_SYSCALL	/* RAX = number; RDI RSI RDX R10 R8 R9 = args */
	ud2
	.size hv_guest_syscall, . - hv_guest_syscall

/* The return address under a vthread's start routine: RAX holds its value. */
	.globl hv_guest_return
	.type hv_guest_return, @function
	.balign 16
hv_guest_return:
	outb %al, $HV_PORT_END
	ud2
	.size hv_guest_return, . - hv_guest_return

/* vthread_exit() inside a vthread: same exit, value moved into RAX. */
	.globl hv_guest_end
	.type hv_guest_end, @function
	.balign 16
hv_guest_end:
	movq %rdi, %rax
	jmp hv_guest_return
	.size hv_guest_end, . - hv_guest_end

/* An empty exit: the runtime resumes after the `out` (KVM completes it), changing
 * nothing. The cheapest guest-to-host round trip, for measuring the floor. */
	.globl hv_guest_null_exit
	.type hv_guest_null_exit, @function
	.balign 16
hv_guest_null_exit:
	outb %al, $HV_PORT_NULL
	ret
	.size hv_guest_null_exit, . - hv_guest_null_exit

/* Runs HV_PROBE_LOOPS iterations: ~1 cycle each when the vCPU executes natively,
 * microseconds each when KVM emulates every instruction. */
	.globl hv_guest_probe
	.type hv_guest_probe, @function
	.balign 16
hv_guest_probe:
	movl $HV_PROBE_LOOPS, %ecx
1:	decl %ecx
	jnz 1b
	outb %al, $HV_PORT_PROBE
	ud2
	.size hv_guest_probe, . - hv_guest_probe

/* IDT gates 0..31, all on IST1 so that the frame never lands in the red zone
 * below the interrupted code's RSP. Each stub exits with its vector in the port. */
	.globl hv_guest_vectors
	.type hv_guest_vectors, @function
	.balign HV_VECTOR_STUB
hv_guest_vectors:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.balign HV_VECTOR_STUB
	outb %al, $(HV_PORT_VECTOR0 + \v)
	ud2
	.endr
	.size hv_guest_vectors, . - hv_guest_vectors

	.section .note.GNU-stack, "", @progbits
