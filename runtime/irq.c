/* SPDX-License-Identifier: MIT */
/*
 * A vthread's interrupts: pokes, its timer, and holding them back (the local
 * APIC behind them is hv/apic.c's). The handler runs in the guest from
 * rt_guest_irq, which hv/guest.S calls on the interrupted code's stack with
 * interrupts off. Pokes go to a vthread only while it runs (irq_live), and
 * its end waits for those being sent before its vCPU's APIC is reset for the
 * next vthread: none reaches a vthread it was not meant for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

#include "rt.h"

#define RFLAGS_IF	0x200ull

_Static_assert(VTHREAD_IRQ_POKE == HV_IRQ_POKE && VTHREAD_IRQ_TIMER == HV_IRQ_TIMER, "sources");

void rt_irq_start(struct vthread *vt, const struct rt_attr *a)
{
	vt->irq_fn = a->irq_fn;
	vt->irq_ctx = a->irq_ctx;
	__atomic_store_n(&vt->irq_live, 1, __ATOMIC_SEQ_CST);
}

void rt_irq_end(struct vthread *vt)
{
	int r;

	__atomic_store_n(&vt->irq_live, 0, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&vt->pokers, __ATOMIC_SEQ_CST))
		sched_yield();
	if (vt->irq_fn && (r = hv_vcpu_irq_reset(vt->vcpu)) < 0)
		rt_die(vt, "cannot reset its local APIC", r);
}

/* With interrupts off: whether the timer is due, and armed for its next expiry. */
static bool timer_due(struct vthread *vt)
{
	uint64_t now = rt_now_ns(), p = vt->timer_period;

	if (!vt->timer_next)
		return false;	/* disarmed since it was armed */
	if (now < vt->timer_next) {
		hv_guest_timer(vt->vcpu, vt->timer_next - now);	/* a wait longer than one arming */
		return false;
	}
	if (p) {
		vt->timer_next += ((now - vt->timer_next) / p + 1) * p;	/* missed ones coalesce */
		hv_guest_timer(vt->vcpu, vt->timer_next - now);
	} else {
		vt->timer_next = 0;
	}
	return true;
}

/* In guest_main: where hv->vif, interrupts come on only now (hv/apic.c). Not
 * instrumented, as guest_main: ASan's check of vt would mirror the shadow of
 * wherever the allocator put it, for every vthread. */
__attribute__((no_sanitize("address"))) void rt_irq_begin(struct vthread *vt)
{
	if (vt->irq_fn && rt.hv.vif)
		hv_guest_irq_on(vt->vcpu);
}

/* Not instrumented, as rt_guest_fault: the record sits below any frame ASan knows. */
__attribute__((no_sanitize("address"))) void rt_guest_irq(struct hv_irq_rec *q)
{
	struct vthread *vt = rt_current;
	int e = errno;

	if (q->cfg->held) {	/* signals came while the stub ran: let them in */
		q->cfg->held = 0;
		hv_guest_null_exit();
	}
	if (!vt || !vt->irq_fn) {
		errno = e;
		return;
	}
	hv_guest_handler_enter(vt->vcpu, (int)q->source);	/* before timer_due arms again */
	if (q->source != HV_IRQ_TIMER || timer_due(vt)) {
		rt_count(&vt->counts.irqs);
		vt->in_irq = true;
		vt->irq_fn((int)q->source, vt->irq_ctx);
		vt->in_irq = false;
	}
	if (vt->irq_depth)	/* the handler held them back: they stay held */
		q->rflags &= ~RFLAGS_IF;
	hv_guest_handler_leave(vt->vcpu, q->rflags);
	errno = e;
}

/* A vthread's poke where it may not write the ICR (hv->guest_ipi): on its backing thread. */
static long poke_on_host(long vcpu)
{
	return hv_vcpu_poke((struct hv_vcpu *)vcpu);
}

RT_API int vthread_poke(vthread_t vt)
{
	long e;
	int r = 0;

	if (!vt)
		return ESRCH;
	__atomic_fetch_add(&vt->pokers, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&vt->irq_live, __ATOMIC_SEQ_CST)) {
		r = ESRCH;
		goto out;
	}
	if (!vt->irq_fn)
		goto out;	/* it ignores them */
	hv_vcpu_poke_mark(vt->vcpu);	/* before it may arrive */
	if (!rt_in_guest())
		r = -hv_vcpu_poke(vt->vcpu);
	else if (rt.hv.guest_ipi)
		hv_guest_poke(vt->vcpu->id);
	else if (!(r = vthread_hostcall_long(&e, (void (*)(void))poke_on_host, 1,
					     (long[]){ (long)vt->vcpu })))
		r = -e;
out:
	__atomic_fetch_sub(&vt->pokers, 1, __ATOMIC_SEQ_CST);
	return r;
}

RT_API int vthread_timer(uint64_t first_ns, uint64_t period_ns)
{
	struct vthread *vt = rt_current;
	bool on;

	if (!rt_in_guest())
		return EPERM;
	if (first_ns > INT64_MAX || period_ns > INT64_MAX)
		return EINVAL;	/* a bad argument first, as pthread's calls check */
	if (!rt.hv.irqchip)
		return ENOTSUP;
	if (!vt->irq_fn)
		return 0;	/* ignored: nothing would run */
	on = hv_guest_irq_save(vt->vcpu);
	vt->timer_period = period_ns;
	vt->timer_next = first_ns ? rt_now_ns() + first_ns : 0;
	hv_guest_timer(vt->vcpu, first_ns);
	if (on)
		hv_guest_irq_on(vt->vcpu);
	return 0;
}

RT_API int vthread_irq_disable(void)
{
	if (!rt_in_guest())
		return EPERM;
	if (rt.hv.irqchip)
		hv_guest_irq_off(rt_current->vcpu);
	rt_current->irq_depth++;
	return 0;
}

RT_API int vthread_irq_enable(void)
{
	struct vthread *vt = rt_current;

	if (!rt_in_guest())
		return EPERM;
	if (!vt->irq_depth)
		return EINVAL;
	if (!--vt->irq_depth && !vt->in_irq && rt.hv.irqchip)
		hv_guest_irq_on(vt->vcpu);
	return 0;
}
