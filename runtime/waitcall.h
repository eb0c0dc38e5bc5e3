/* SPDX-License-Identifier: MIT */
/* What runtime/waitcall.S and cancel.c agree on (private). */
#ifndef RT_WAITCALL_H
#define RT_WAITCALL_H

#define RT_CALL_NOT_MADE	(-512)	/* ended by SIGCANCEL before completing */
/* In the call, R12 holds this and R13 the guest's registers: gdb's unwinder
 * (hv/libvthread-gdb.py.in) shows the vthread's frames under the call. */
#define RT_WAIT_MARK		0x7469617774766bull	/* "kvtwait" */

#ifndef __ASSEMBLER__
#include <stdint.h>

/*
 * The system call call[0] with arguments call[1..6], unless *kicked is set
 * first. Between rt_wait_check and rt_wait_done the call has not completed;
 * a SIGCANCEL handler that finds the thread there sends it to rt_wait_skip,
 * and the call returns RT_CALL_NOT_MADE. guest: the vthread's registers as
 * after its `syscall` (struct kvm_regs), for a debugger.
 */
long rt_wait_syscall(const volatile uint8_t *kicked, const long call[7], const void *guest);
extern const char rt_wait_check[], rt_wait_done[], rt_wait_skip[];
#endif
#endif
