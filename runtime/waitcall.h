/* SPDX-License-Identifier: MIT */
/* What runtime/waitcall.S and cancel.c agree on (private). */
#ifndef RT_WAITCALL_H
#define RT_WAITCALL_H

#define RT_CALL_NOT_MADE	(-512)	/* ended by SIGCANCEL before completing */

#ifndef __ASSEMBLER__
#include <stdint.h>

/*
 * The system call call[0] with arguments call[1..6], unless *kicked is set
 * first. Between rt_wait_check and rt_wait_done the call has not completed;
 * a SIGCANCEL handler that finds the thread there sends it to rt_wait_skip,
 * and the call returns RT_CALL_NOT_MADE.
 */
long rt_wait_syscall(const volatile uint8_t *kicked, const long call[7]);
extern const char rt_wait_check[], rt_wait_done[], rt_wait_skip[];
#endif
#endif
