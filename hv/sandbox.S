/* SPDX-License-Identifier: MIT */
/*
 * A sandbox's guest code: the runtime copies these bytes into a page of the
 * sandbox's own memory, since the library's text is no grant of it. Nothing
 * here refers to anything else, so it runs wherever it is copied; every path
 * exits as the vthread stubs do (hv/guest.S) and the runtime sets RIP after it.
 */
#include "guest_abi.h"

	.section .rodata
	.globl hv_sb_code
	.hidden hv_sb_code
	.globl hv_sb_code_end
	.hidden hv_sb_code_end
	.balign 16
hv_sb_code:
	outb %al, $HV_PORT_SYSCALL	/* HV_SB_SYSCALL: MSR_LSTAR */
	ud2
	.balign 16
	outb %al, $HV_PORT_END		/* HV_SB_RETURN: RAX the value */
	ud2
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.balign HV_VECTOR_STUB		/* HV_SB_VECTORS + v * HV_VECTOR_STUB */
	outb %al, $(HV_PORT_VECTOR0 + \v)
	ud2
	.endr
hv_sb_code_end:

	.section .note.GNU-stack, "", @progbits
