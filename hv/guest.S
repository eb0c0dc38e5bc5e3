/* SPDX-License-Identifier: MIT */
/*
 * The guest side: the only code written for the vCPU. Everything else a vthread
 * runs is the process's own code. Each path exits with `out` to a port that names
 * the reason; `out imm8, %al` changes no register, so the runtime sees the guest's
 * registers as they were. The runtime then sets RIP itself, so no path here returns
 * on its own and the `ud2` after each exit is never reached.
 */
#include <asm/unistd.h>

#include "guest_abi.h"
#include "x86.h"

	.text

/* MSR_LSTAR. `syscall` at CPL0 lands here with RCX = return RIP, R11 = RFLAGS and
 * RSP untouched; the runtime performs the call and resumes at RCX. */
	.globl hv_guest_syscall
	.hidden hv_guest_syscall
	.type hv_guest_syscall, @function
	.balign 16
hv_guest_syscall:
exit_syscall:
	outb %al, $HV_PORT_SYSCALL	/* RAX = number; RDI RSI RDX R10 R8 R9 = args */
	ud2
	.size hv_guest_syscall, . - hv_guest_syscall

/*
 * MSR_LSTAR of a vthread in ring mode (runtime/ring.c). A call the ring takes,
 * while a server is awake, is posted to this vCPU's slot (GS) and the guest
 * spins until a server posts the result, or until hv_ring_spin TSC ticks have
 * passed, or the server bounces it, or no server has scanned for hv_ring_stale
 * ticks while the call waits to be taken (every server is off its CPU: spinning
 * on would only keep it off longer): then it exits and the runtime settles the
 * slot. hv/stub.c reads where a stopped vCPU is by these labels:
 * - up to hv_guest_ring_posted nothing is posted and no register but RFLAGS
 *   has changed (the return takes the flags from R11 anyway);
 * - from there to hv_guest_ring_done the call is posted, RAX and RDX are
 *   scratch (their values are in the slot);
 * - from hv_guest_ring_done on the result is in; between hv_guest_ring_below
 *   and hv_guest_ring_above RSP is moved below the red zone (and 8 more at
 *   hv_guest_ring_pushed), which is left alone.
 */
	.globl hv_guest_syscall_ring, hv_guest_ring_posted, hv_guest_ring_done, hv_guest_ring_end
	.globl hv_guest_ring_below, hv_guest_ring_pushed, hv_guest_ring_above
	.hidden hv_guest_syscall_ring, hv_guest_ring_posted, hv_guest_ring_done, hv_guest_ring_end
	.hidden hv_guest_ring_below, hv_guest_ring_pushed, hv_guest_ring_above
	.type hv_guest_syscall_ring, @function
	.balign 16
hv_guest_syscall_ring:
	cmpq $HV_RING_NR_MAX, %rax		/* a number beyond the bitmap: exit */
	jae exit_syscall
	btq %rax, hv_ring_calls(%rip)		/* a call the ring may not take: exit */
	jnc exit_syscall
	cmpl $__NR_futex, %eax			/* a futex wait, which a server would */
	jne 3f					/* only bounce: exit now, not after */
	testl $0x76, %esi			/* spinning for a server. The command */
	jnz 3f					/* (op & 0x7f) is FUTEX_WAIT (0) or */
	testl $9, %esi				/* FUTEX_WAIT_BITSET (9) when bits 1-2 */
	jp exit_syscall				/* and 4-6 are clear, bits 0 and 3 equal */
3:
	cmpl $0, hv_ring_awake(%rip)		/* no server awake to take it: exit */
	je exit_syscall
	movl %eax, %gs:HV_RING_NR		/* the number and six arguments ... */
	movq %rdi, %gs:HV_RING_ARG0
	movq %rsi, %gs:HV_RING_ARG0 + 8
	movq %rdx, %gs:HV_RING_ARG0 + 16
	movq %r10, %gs:HV_RING_ARG0 + 24
	movq %r8, %gs:HV_RING_ARG0 + 32
	movq %r9, %gs:HV_RING_ARG0 + 40
	movq %rcx, %gs:HV_RING_SITE		/* where it came from (runtime/rewrite.c) */
	movl $HV_RING_POSTED, %gs:HV_RING_STATE	/* ... then the state: posted */
hv_guest_ring_posted:
	rdtsc					/* EDX:EAX = now ... */
	shlq $32, %rdx
	orq %rdx, %rax
	addq hv_ring_spin(%rip), %rax		/* ... + the spin budget = the deadline */
	movq %rax, %gs:HV_RING_DEADLINE
1:	movl %gs:HV_RING_STATE, %eax		/* what the server made of the call */
	cmpl $HV_RING_DONE, %eax
	je hv_guest_ring_done			/* the result is in */
	ja 2f					/* bounced: the exit path makes it */
	pause					/* posted or taken: wait, kindly to the sibling */
	rdtsc					/* past the deadline? */
	shlq $32, %rdx
	orq %rdx, %rax
	movq %gs:HV_RING_DEADLINE, %rdx		/* the ticks left ... */
	subq %rax, %rdx
	jbe 2f					/* ... none: past the deadline */
	addq hv_ring_stale(%rip), %rdx		/* waited hv_ring_stale yet? */
	cmpq hv_ring_spin(%rip), %rdx
	ja 1b
	cmpl $HV_RING_POSTED, %gs:HV_RING_STATE	/* and no server took the call ... */
	jne 1b
	subq hv_ring_beat(%rip), %rax		/* ... nor scanned since: none runs */
	cmpq hv_ring_stale(%rip), %rax
	jl 1b
	movq $0, %gs:HV_RING_DEADLINE		/* given up early (the runtime's count) */
2:	outb %al, $HV_PORT_RING			/* the runtime settles the slot */
	ud2
hv_guest_ring_done:
	movq %gs:HV_RING_RET, %rax		/* the call's result, as sysret leaves it */
	movq %gs:HV_RING_ARG2, %rdx		/* RDX back as the guest had it */
	movl $HV_RING_FREE, %gs:HV_RING_STATE	/* the slot is free for the next call */
	cmpb $0, %gs:HV_RING_IRQ_ON		/* hv->vif: `syscall` turned interrupts off */
	jne hv_guest_ring_irq_on
	leaq -HV_RED_ZONE(%rsp), %rsp		/* below the red zone, flags unchanged */
hv_guest_ring_below:
	pushq %r11				/* the flags `syscall` saved ... */
hv_guest_ring_pushed:
	popfq					/* ... restored, as sysret does */
	leaq HV_RED_ZONE(%rsp), %rsp		/* RSP back, flags unchanged */
hv_guest_ring_above:
	jmp *%rcx				/* to the instruction after the `syscall` */
hv_guest_ring_end:
	.size hv_guest_syscall_ring, . - hv_guest_syscall_ring

/*
 * The ring stub's way back where hv->vif and interrupts were on (hv/apic.c):
 * the IF byte set again, and KVM made to enter the guest when what waited
 * meanwhile would wait on otherwise, as hv_guest_irq_on does. The call is done
 * and its slot free: ordinary code, which an interrupt or a signal may stop
 * anywhere; what it changes waits below the red zone.
 */
	.type hv_guest_ring_irq_on, @function
hv_guest_ring_irq_on:
	leaq -HV_RED_ZONE(%rsp), %rsp
	pushq %rax
	pushq %rdx
	pushq %rcx
	movb $1, %gs:(HV_AREA_PVM - HV_AREA_RING)
	mfence					/* then the look at what waits */
	cmpb $0, %gs:HV_RING_KICK		/* a poke was sent */
	jne 1f
	rdtsc					/* the timer is due */
	shlq $32, %rdx
	orq %rdx, %rax
	cmpq %gs:HV_RING_TIMER, %rax
	jb 2f
1:	movl $MSR_X2APIC_TPR, %ecx		/* a read KVM emulates: it enters again */
	rdmsr
2:	popq %rcx
	popq %rdx
	popq %rax
	pushq %r11				/* the flags, as sysret leaves them */
	popfq
	leaq HV_RED_ZONE(%rsp), %rsp
	jmp *%rcx
	.size hv_guest_ring_irq_on, . - hv_guest_ring_irq_on

/*
 * What a rewritten `syscall` jumps to (runtime/rewrite.c copies this per site
 * and fills in the return address and the ring stub's): RCX and R11 as the
 * instruction would have left them, then the ring stub directly when this
 * vCPU's slot says so, else the `syscall` itself. The flags are read and set
 * below the red zone.
 */
	.globl hv_tramp, hv_tramp_site, hv_tramp_back, hv_tramp_ring, hv_tramp_end
	.hidden hv_tramp, hv_tramp_site, hv_tramp_back, hv_tramp_ring, hv_tramp_end
	.balign 8
hv_tramp:
	leaq -HV_RED_ZONE(%rsp), %rsp
	pushfq
	popq %r11
	leaq HV_RED_ZONE(%rsp), %rsp
	testb $1, %gs:HV_RING_DIRECT
	jz 1f
	leaq 0(%rip), %rcx			/* the site's return address: disp32 filled in */
hv_tramp_site:
	jmpq *hv_tramp_ring(%rip)
1:	leaq -HV_RED_ZONE(%rsp), %rsp
	pushq %r11
	popfq
	leaq HV_RED_ZONE(%rsp), %rsp
	syscall
	.byte 0xe9				/* jmp rel32 to the site's return address */
	.long 0
hv_tramp_back:
hv_tramp_ring:
	.quad 0					/* hv_guest_syscall_ring, filled in */
hv_tramp_end:

/* vthread_hostcall() inside a vthread: the runtime makes the call on the backing
 * thread and resumes after the `out`. */
	.globl hv_guest_hostcall
	.hidden hv_guest_hostcall
	.type hv_guest_hostcall, @function
	.balign 16
hv_guest_hostcall:
	outb %al, $HV_PORT_HOSTCALL
	ret
	.size hv_guest_hostcall, . - hv_guest_hostcall

/* A vthread's first instructions: the FS base (RDX), the GS base (R8: the ring
 * slot, which the last vthread on this vCPU may have moved with wrgsbase) and
 * the creator's FPU control state (R9: MXCSR, x87 control word << 32; C11 7.6),
 * set here rather than by vCPU ioctls, each of which costs microseconds on
 * kvm_pvm; then its flags (RCX: interrupts on only now, as their handler needs
 * the FS base) and its start routine (RSI), arg in RDI. */
	.globl hv_guest_start
	.hidden hv_guest_start
	.type hv_guest_start, @function
	.balign 16
hv_guest_start:
	wrfsbase %rdx
	wrgsbase %r8		/* the ring slot, even if the last vthread moved GS */
	fninit
	movq %r9, -8(%rsp)	/* below the return address: free */
	ldmxcsr -8(%rsp)
	fldcw -4(%rsp)
	push %rcx
	popfq
	jmp *%rsi
	.size hv_guest_start, . - hv_guest_start

/* The return address under a vthread's start routine: RAX holds its value. Its
 * CFI ends the guest's stack for unwinders (gdb, libdw), which look up a return
 * address minus one: the nop. */
	.globl hv_guest_return
	.hidden hv_guest_return
	.type hv_guest_return, @function
	.balign 16
	.cfi_startproc
	.cfi_undefined rip
	nop
hv_guest_return:
	outb %al, $HV_PORT_END
	ud2
	.cfi_endproc
	.size hv_guest_return, . - hv_guest_return

/* vthread_exit() inside a vthread: same exit, value moved into RAX. */
	.globl hv_guest_end
	.hidden hv_guest_end
	.type hv_guest_end, @function
	.balign 16
hv_guest_end:
	movq %rdi, %rax
	jmp hv_guest_return
	.size hv_guest_end, . - hv_guest_end

/* MSR_LSTAR for vthread-bench's trap-floor row: back to the caller at once, as
 * sysret would return, with nothing done. What the `syscall` trap alone costs. */
	.globl hv_guest_syscall_null
	.hidden hv_guest_syscall_null
	.type hv_guest_syscall_null, @function
	.balign 16
hv_guest_syscall_null:
	leaq -HV_RED_ZONE(%rsp), %rsp
	pushq %r11
	popfq
	leaq HV_RED_ZONE(%rsp), %rsp
	jmp *%rcx
	.size hv_guest_syscall_null, . - hv_guest_syscall_null

/* An empty exit: the runtime resumes after the `out` (KVM completes it), changing
 * nothing. The cheapest guest-to-host round trip, for measuring the floor. */
	.globl hv_guest_null_exit
	.hidden hv_guest_null_exit
	.type hv_guest_null_exit, @function
	.balign 16
hv_guest_null_exit:
	outb %al, $HV_PORT_NULL
	ret
	.size hv_guest_null_exit, . - hv_guest_null_exit

/* Runs HV_PROBE_LOOPS iterations: ~1 cycle each when the vCPU executes natively,
 * microseconds each when KVM emulates every instruction. */
	.globl hv_guest_probe
	.hidden hv_guest_probe
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
 * below the interrupted code's RSP. Each stub exits with its vector in the port,
 * but for page faults, which may be handled in the guest (hv_guest_pf). Up to
 * hv_guest_vectors_end the vCPU is on the IST stack (hv/stub.c). */
	.globl hv_guest_vectors, hv_guest_vectors_end
	.hidden hv_guest_vectors, hv_guest_vectors_end
	.type hv_guest_vectors, @function
	.balign HV_VECTOR_STUB
hv_guest_vectors:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31	/* HV_NR_VECTORS */
	.balign HV_VECTOR_STUB
	.if \v == HV_VECTOR_PF
	jmp hv_guest_pf
	.else
	outb %al, $(HV_PORT_VECTOR0 + \v)
	ud2
	.endif
	.endr

/*
 * A page fault while hv_guest_pf_fast is set, on the stack the runtime gave the
 * vCPU (struct hv_fault_cfg, found from the IST stack's top): the frame and CR2
 * are copied below the red zone there (struct hv_fault_rec, less the registers),
 * and the `iretq` enters hv_guest_fault_entry on that stack, off the IST stack,
 * which a fault in the handler would overwrite. Anywhere else the fault exits.
 */
#define PF_CFG	(HV_AREA_FAULT - HV_AREA_IST - HV_IST_SIZE + 48)	/* from RSP at entry */
hv_guest_pf:
	cmpl $0, hv_guest_pf_fast(%rip)
	je 2f
	pushq %rax
	pushq %rcx
	movq 16+32(%rsp), %rax			/* the interrupted RSP */
	subq $(HV_RED_ZONE + HV_FAULT_REC), %rax
	andq $-16, %rax
	cmpq 16+PF_CFG(%rsp), %rax		/* within the vthread's stack? */
	jb 1f
	cmpq 16+PF_CFG+8(%rsp), %rax
	jae 1f
	leaq 16(%rsp), %rcx
	movq %rcx, 0(%rax)			/* frame_at */
	movq %cr2, %rcx
	movq %rcx, 8(%rax)			/* cr2 */
	leaq 16+PF_CFG(%rsp), %rcx
	movq %rcx, 16(%rax)			/* cfg */
	movq $0, 24(%rax)			/* injected: no */
	.irp w, 0,1,2,3,4,5			/* the error code and the frame */
	movq 16+8*\w(%rsp), %rcx
	movq %rcx, 32+8*\w(%rax)
	.endr
	leaq hv_guest_fault_entry(%rip), %rcx
	movq %rcx, 16+8(%rsp)			/* the frame now returns to the entry ... */
	movq %rax, 16+32(%rsp)			/* ... on the vthread's stack */
	popq %rcx
	popq %rax
	addq $8, %rsp				/* the error code */
	iretq
1:	popq %rcx
	popq %rax
2:	outb %al, $(HV_PORT_VECTOR0 + HV_VECTOR_PF)
	ud2
hv_guest_pf_forward:				/* RSP at the record: back to the frame */
	movq (%rsp), %rsp
	jmp 2b

/*
 * Interrupts (hv/apic.c), on IST2 with interrupts off: the APIC is told the
 * interrupt is taken (EOI, so that the next one waits in its IRR), the frame is
 * moved below the interrupted code's red zone on its own stack (struct
 * hv_irq_rec, less the registers), and hv_guest_irq_entry runs there,
 * interrupts still off until its `iretq`.
 */
#define IRQ_CFG	(HV_AREA_FAULT - HV_AREA_IST + 72)	/* from RSP after the pushes */
	.globl hv_guest_irq_poke, hv_guest_irq_timer, hv_guest_irq_spurious
	.hidden hv_guest_irq_poke, hv_guest_irq_timer, hv_guest_irq_spurious
hv_guest_irq_poke:
	pushq $HV_IRQ_POKE
	jmp 1f
hv_guest_irq_timer:
	pushq $HV_IRQ_TIMER
1:	pushq %rax				/* RSP: rdx rcx rax source rip cs rflags rsp ss */
	pushq %rcx
	pushq %rdx
	movl $MSR_X2APIC_EOI, %ecx
	xorl %eax, %eax
	xorl %edx, %edx
	wrmsr
	movq 8*7(%rsp), %rax			/* the interrupted RSP */
	subq $(HV_RED_ZONE + HV_IRQ_REC + 8), %rax
	andq $-16, %rax
	movq 16(%rsp), %rcx			/* its RAX, popped from there */
	movq %rcx, 0(%rax)
	leaq IRQ_CFG(%rsp), %rcx
	movq %rcx, 8(%rax)			/* cfg */
	.irp w, 0,1,2,3,4,5			/* the source and the frame */
	movq 24+8*\w(%rsp), %rcx
	movq %rcx, 16+8*\w(%rax)
	.endr
	popq %rdx
	popq %rcx
	movq %rax, %rsp
	popq %rax
	jmp hv_guest_irq_entry
hv_guest_irq_spurious:				/* no EOI for these */
	iretq
hv_guest_vectors_end:
	.size hv_guest_vectors, . - hv_guest_vectors

/* Saves every register and the FPU state below RSP, RBX pointing at the registers. */
	.macro save_all
	cld
	.irp r, r15,r14,r13,r12,r11,r10,r9,r8,rbp,rdi,rsi,rdx,rcx,rbx,rax
	pushq %\r
	.endr
	movq %rsp, %rbx
	subq hv_guest_xsave_size(%rip), %rsp
	andq $-64, %rsp
	movl $-1, %eax
	movl $-1, %edx
	cmpl $0, hv_guest_xsave(%rip)
	je 1f
	/* XSAVE writes only XSTATE_BV's bits of the components it saves, and
	 * nothing past it: what the stack held there would make XRSTOR fault */
	.irp o, 512,520,528,536,544,552,560,568
	movq $0, \o(%rsp)
	.endr
	xsave64 (%rsp)
	jmp 2f
1:	fxsave64 (%rsp)
2:
	.endm

	.macro restore_all
	movl $-1, %eax
	movl $-1, %edx
	cmpl $0, hv_guest_xsave(%rip)
	je 3f
	xrstor64 (%rsp)
	jmp 4f
3:	fxrstor64 (%rsp)
4:	movq %rbx, %rsp
	.irp r, rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15
	popq %\r
	.endr
	.endm

/*
 * The guest's page-fault path, on the vthread's stack: saves every register and
 * the FPU state (the handler is any C code), calls rt_guest_fault, restores, and
 * resumes the access with `iretq` from the record, or exits with the fault.
 * Ordinary code: a signal may be delivered here.
 */
	.globl hv_guest_fault_entry
	.hidden hv_guest_fault_entry
	.type hv_guest_fault_entry, @function
hv_guest_fault_entry:
	save_all
	movq %rbx, %rdi
	call rt_guest_fault
	restore_all
	cmpq $0, (%rsp)				/* frame_at: 0 resumes the access */
	jne hv_guest_pf_forward
	addq $40, %rsp				/* frame_at, cr2, cfg, injected, the error code */
	iretq
	.size hv_guest_fault_entry, . - hv_guest_fault_entry

/*
 * An interrupt's path, on the interrupted code's stack: the same saving around
 * rt_guest_irq, then `iretq` back to that code with its flags. Ordinary code:
 * a signal may be delivered here.
 */
	.globl hv_guest_irq_entry
	.hidden hv_guest_irq_entry
	.type hv_guest_irq_entry, @function
hv_guest_irq_entry:
	save_all
	movq %rbx, %rdi
	call rt_guest_irq
	restore_all
	addq $16, %rsp				/* cfg, source */
	iretq
	.size hv_guest_irq_entry, . - hv_guest_irq_entry

/* What the ring stub reads, written by the runtime (runtime/ring.c). */
	.data
	.globl hv_ring_calls, hv_ring_spin, hv_ring_awake, hv_ring_stale
	.hidden hv_ring_calls, hv_ring_spin, hv_ring_awake, hv_ring_stale
	.balign 64
hv_ring_calls:			/* bit n: call n may take the ring */
	.zero HV_RING_NR_MAX / 8
hv_ring_spin:			/* TSC ticks a guest spins before exiting */
	.quad 0
hv_ring_awake:			/* servers awake; none: every call exits */
	.long 0
	.balign 8
hv_ring_stale:			/* TSC ticks without a scan: no server runs */
	.quad 0
	.globl hv_ring_beat
	.hidden hv_ring_beat
	.balign 64			/* written by servers: a line of its own */
hv_ring_beat:			/* TSC of a server's latest scan */
	.quad 0
	.balign 64

	.globl hv_guest_pf_fast, hv_guest_xsave, hv_guest_xsave_size
	.hidden hv_guest_pf_fast, hv_guest_xsave, hv_guest_xsave_size
	.balign 8
hv_guest_xsave_size:		/* bytes of FPU state the fault path saves */
	.quad 512
hv_guest_pf_fast:		/* page faults may be handled in the guest */
	.long 0
hv_guest_xsave:			/* XSAVE, else FXSAVE */
	.long 0

	.section .note.GNU-stack, "", @progbits
