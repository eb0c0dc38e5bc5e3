/* SPDX-License-Identifier: MIT */
/*
 * pthread_cancel() of a vthread blocked in a forwarded call. glibc interrupts
 * a thread blocked at a cancellation point with SIGCANCEL, whose handler
 * unwinds the stack it interrupted: for a vthread that must be the guest's,
 * never the runtime's frames on the host. So SIGCANCEL is routed as the
 * program's signals are (sigaction.c): on a backing thread in a forwarded call
 * it ends the call and glibc's handler runs in the guest; anywhere else
 * glibc's handler runs in place. glibc installs that handler on the first
 * pthread_cancel(), and only then: cancelling a helper thread that ignores
 * cancellation makes it do so now, before it is routed.
 */
#define _GNU_SOURCE
#include <semaphore.h>
#include <signal.h>

#include "rt.h"

static bool ready;

static void *ignore_cancel(void *p)
{
	sem_t *s = p;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	sem_post(&s[0]);
	sem_wait(&s[1]);
	return NULL;
}

/* Has glibc install its handler: SIG_DFL until the first pthread_cancel(). */
static void glibc_install(void)
{
	pthread_t th;
	sem_t s[2];

	sem_init(&s[0], 0, 0);
	sem_init(&s[1], 0, 0);
	if (pthread_create(&th, NULL, ignore_cancel, s) == 0) {
		sem_wait(&s[0]);
		pthread_cancel(th);
		sem_post(&s[1]);
		pthread_join(th, NULL);
	}
	sem_destroy(&s[0]);
	sem_destroy(&s[1]);
}

void rt_cancel_init(void)
{
	struct rt_ksigaction ka;

	if (rt_sigaction_raw(RT_SIGCANCEL, NULL, &ka) < 0)
		return;
	if (ka.handler == (void *)rt_action_entry) {	/* a fork child's */
		ready = true;
		return;
	}
	if (ka.handler == SIG_DFL) {
		glibc_install();
		if (rt_sigaction_raw(RT_SIGCANCEL, NULL, &ka) < 0)
			return;
	}
	if (ka.handler == SIG_DFL || ka.handler == SIG_IGN || !(ka.flags & SA_SIGINFO))
		return;	/* not glibc's: SIGCANCEL stays blocked in forwarded calls */
	ready = rt_action_route(RT_SIGCANCEL, &ka) == 0;
}

bool rt_cancel_ready(void)
{
	return ready;
}

long rt_call_interruptible(struct vthread *vt, const hv_regs *r)
{
	const long call[7] = { r->rax, r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9 };
	hv_regs guest = *r;
	long ret;

	hv_regs_sysret(&guest, r->rax);		/* where gdb finds the vthread */
	vt->waiting = true;
	rt_signal_unblock_host(vt);
	ret = rt_wait_syscall(&vt->kicked, call, &guest);
	rt_signal_block_host();
	vt->waiting = false;
	return ret;
}
