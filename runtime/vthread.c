/* SPDX-License-Identifier: MIT */
/*
 * The vthread life cycle. Each vthread has a backing host thread, created fresh
 * as a pthread would be or a parked one no different from it (park.c), so that
 * TLS, errno, the stack-protector canary and pthread keys behave as in a
 * pthread: the guest's FS base is the backing thread's. The backing thread runs
 * the vCPU and performs the guest's system calls.
 *
 * Create, in Akaros' steps: vt_alloc() takes what can run out (the struct, the
 * stack, stack.c, a vCPU from the pool, vcpu.c, unless a parked thread brings
 * its own); vt_init_ctx() says where the guest starts; vt_run() registers the
 * vthread and starts its backing thread or wakes the parked one.
 * vthread_create() composes them, and so does rt_create_pthread() for the shim.
 *
 * Run: backing_main() points the vCPU at guest_main() on the vthread's stack
 * (hv_vcpu_start) and hands it to rt_dispatch() (dispatch.c), which handles
 * exits until one ends the vthread. There are three ways to end:
 * - the start routine returns into hv_guest_return (hv/guest.S), whose `out`
 *   is the END exit, RAX the value;
 * - vthread_exit(), pthread_exit() or cancellation unwinds to guest_main()'s
 *   buffer, which calls hv_guest_end(): the same exit, and backing_main()
 *   then finishes the unwind on the host;
 * - the guest's own exit system call (syscall.c), as a raw clone child would.
 *
 * Exit and join: backing_main() returns the stack and, unless it parks, the
 * vCPU; the state word (enum rt_thread_state) says who frees the vthread, and
 * hand_over() tells the joiner, who also joins the backing thread if it ended.
 * The shim's pthreads are joined by the program, with pthread_join().
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

/*
 * ASan must know which stack the thread is on: its no-return and vfork paths
 * unpoison "the current stack", which is the guest's while the vthread runs
 * (the runtime's own code between exits calls no such path but a fatal one).
 * What a pthread_exit() left poisoned there must not outlive the stack, whose
 * memory the next vthread may get. The guard is no part of it: a guard may be
 * any size, and its shadow would be written for nothing.
 */
static void asan_enter_guest_stack(struct vthread *vt)
{
	__sanitizer_start_switch_fiber(NULL, vt->stack + vt->guard, vt->stack_size - vt->guard);
	__sanitizer_finish_switch_fiber(NULL, &vt->host_stack, &vt->host_stack_size);
}

static void asan_leave_guest_stack(struct vthread *vt)
{
	__sanitizer_start_switch_fiber(NULL, vt->host_stack, vt->host_stack_size);
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
	ASAN_UNPOISON_MEMORY_REGION(vt->stack + vt->guard, vt->stack_size - vt->guard);
}
#else
static void asan_enter_guest_stack(struct vthread *vt)
{
	(void)vt;
}

static void asan_leave_guest_stack(struct vthread *vt)
{
	(void)vt;
}
#endif

/* Host stack of a backing thread: the exit loop, reports and host signal handlers. */
#define RT_HOST_STACK	(256ul << 10)

__thread struct vthread *rt_current __attribute__((tls_model("initial-exec")));

/* Registry of live handles, under rt.lock: bad handles get ESRCH, not a crash.
 * It keeps the live count. */
static void registry_add(struct vthread *vt)
{
	vt->next = rt.registry.next;
	vt->prev = &rt.registry;
	rt.registry.next->prev = vt;
	rt.registry.next = vt;
	rt.live++;
}

static void registry_del(struct vthread *vt)
{
	vt->prev->next = vt->next;
	vt->next->prev = vt->prev;
	rt.live--;
}

bool rt_registry_has(const struct vthread *vt)
{
	for (const struct vthread *v = rt.registry.next; v != &rt.registry; v = v->next)
		if (v == vt)
			return true;
	return false;
}

/*
 * The guest's pthread_exit() left its value in the backing thread's own result
 * (the guest runs on that thread's TLS); finishing the unwind here, to
 * start_thread's buffer, ends the backing thread the same way, keeping it.
 */
static void __attribute__((noreturn)) finish_unwind(void)
{
	__pthread_unwind_buf_t buf;

	__pthread_register_cancel(&buf);
	__pthread_unwind_next(&buf);
}

/*
 * Runs inside the vCPU: the start routine under a cancellation buffer of its own,
 * which pthread_exit() and cancellation unwind to once the thread's cleanup
 * handlers have run, as they unwind to start_thread's in a pthread. A child
 * forked inside the vthread comes back here natively, with no vthread
 * (rt_current NULL): its thread ends as the backing pthread would, which ends
 * the child as its last thread. Not instrumented: its accesses would mirror
 * ASan's shadow of every guest stack.
 */
__attribute__((no_sanitize("address"))) static void *guest_main(void *p)
{
	struct vthread *vt = p;
	__pthread_unwind_buf_t buf;
	void *ret;

	if (__sigsetjmp_cancel(buf.__cancel_jmp_buf, 0)) {
		__pthread_unregister_cancel(&buf);
		if (!rt_current)
			finish_unwind();
		rt_current->unwound = true;
		if (rt_current->native)
			rt_breakpoint_end(rt_current, NULL);
		hv_guest_end(NULL);
	}
	__pthread_register_cancel(&buf);
	rt_irq_begin(vt);
	if (vt->started) {
		__atomic_store_n(vt->started, 1, __ATOMIC_RELEASE);
		rt_syscall6(SYS_futex, (long)vt->started, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
	}
	ret = vt->fn(vt->arg);
	__pthread_unregister_cancel(&buf);
	if (!rt_current)
		pthread_exit(ret);
	if (rt_current->native)
		rt_breakpoint_end(rt_current, ret);
	return ret;
}

/* The guest side of a vthread's life, on its backing thread. */
static void run_guest(struct vthread *vt)
{
	unsigned long fs;
	int r;

	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
	vt->fs_base = fs;
	r = hv_vcpu_start(vt->vcpu, guest_main, vt, vt->stack + vt->stack_size, fs, vt->fpu);
	hv_vcpu_set_fault_stack(vt->vcpu, (uintptr_t)vt->stack + vt->guard,
				(uintptr_t)vt->stack + vt->stack_size);
	if (!r)
		r = rt_signal_thread_start(vt);
	if (!r)
		r = rt_ring_attach(vt);
	if (r < 0)
		rt_die(vt, "cannot start its vCPU", r);
	asan_enter_guest_stack(vt);
	rt_dispatch(vt);
	asan_leave_guest_stack(vt);
	rt_ring_detach(vt);
	rt_irq_end(vt);
	rt_stack_put(vt);
}

/*
 * The vthread has ended: the joiner, if any, may go on. A backing thread of
 * the runtime's own (own_host) is joinable; one that ends rather than parks is
 * joined by the vthread's joiner (reap), after its key destructors ran, or
 * detaches itself when the vthread is detached.
 */
static void hand_over(struct vthread *vt, bool park)
{
	bool wake = false;

	pthread_mutex_lock(&rt.lock);
	vt->reap = !park;
	if (vt->state == RT_THREAD_DETACHED) {
		if (!park && vt->own_host)
			pthread_detach(pthread_self());
		registry_del(vt);
		free(vt);
	} else {
		/* RT_THREAD_JOINING: the joiner frees it, after rt.lock */
		wake = vt->state == RT_THREAD_JOINING;
		if (vt->state == RT_THREAD_JOINABLE)
			vt->state = RT_THREAD_EXITED;
		__atomic_store_n(&vt->done, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&rt.lock);
	/* Woken out of the lock, the joiner does not wait for it at once. vt may be
	 * freed by now: a wake of a futex no longer there is harmless. */
	if (wake)
		rt_syscall6(SYS_futex, (long)&vt->done, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
}

static void *backing_main(void *p)
{
	struct vthread *vt = p;

	for (;;) {
		struct rt_park parked;
		struct hv_vcpu *vc;
		bool unwound, park;
		void *ret;

		rt_current = vt;
		if (vt->sandbox)
			rt_sandbox_main(vt);
		else
			run_guest(vt);
		if (rt.stats == 2)
			rt_stats_thread(vt);
		unwound = vt->unwound;
		ret = vt->retval;
		vc = vt->vcpu;
		/* Offered before the joiner goes on: its next create finds this
		 * thread, still awake. */
		park = rt_park_offer(&parked, vt);
		if (vc && !park)
			rt_vcpu_put(vc);
		hand_over(vt, park);
		if (!park) {
			if (unwound)
				finish_unwind();
			return ret;
		}
		vt = rt_park_wait(&parked);
		if (!vt) {		/* it idled or was evicted */
			pthread_detach(pthread_self());
			return NULL;
		}
	}
}

/* The vthread, its stack and a vCPU: 0, ENOSYS without KVM, ENOTSUP for an
 * interrupt handler where the backend has no interrupts, EAGAIN when one
 * of them cannot be had, EINVAL when stack and guard sizes overflow together
 * (as pthread_create). */
static int vt_alloc(const struct rt_attr *a, struct vthread **out, bool vcpu)
{
	struct vthread *vt;
	int r = rt_init();

	if (r < 0)
		return -r;
	if (a->irq_fn && !rt.hv.irqchip)
		return ENOTSUP;
	if (a->sandbox && (a->irq_fn || a->fault_fn))
		return EINVAL;	/* the handlers are the process's code */
	vt = calloc(1, sizeof(*vt));
	if (!vt)
		return EAGAIN;
	if (a->sandbox) {	/* the sandbox has its own stack and vCPU */
		r = rt_sandbox_claim(a->sandbox, &vt->sandbox);
		if (r < 0)
			goto err;
		*out = vt;
		return 0;
	}
	r = rt_stack_get(vt, a);
	if (r < 0)
		goto err;
	/* Parked threads hold vCPUs: one gives its back before EAGAIN. */
	while (vcpu && (r = rt_vcpu_get(&vt->vcpu)) == -EAGAIN && rt_park_evict())
		;
	if (vcpu && r < 0)
		goto err_stack;
	*out = vt;
	return 0;

err_stack:
	rt_stack_put(vt);
err:
	free(vt);
	return -r;
}

static void vt_free(struct vthread *vt)
{
	if (vt->sandbox) {
		rt_sandbox_release(vt->sandbox);
	} else {
		if (vt->vcpu)
			rt_vcpu_put(vt->vcpu);
		rt_stack_put(vt);
	}
	free(vt);
}

/* Where the guest starts: fn(arg) on the stack, system calls by the mode asked
 * for. The registers themselves are set on the backing thread, whose FS base
 * the guest takes. */
static void vt_init_ctx(struct vthread *vt, const struct rt_attr *a, void *(*fn)(void *),
			void *arg)
{
	uint32_t mxcsr;
	uint16_t fcw;

	vt->fn = fn;
	vt->arg = arg;
	if (vt->sandbox)
		return;
	/* A new thread's floating-point environment is its creator's (C11 7.6). */
	__asm__ volatile("stmxcsr %0; fnstcw %1" : "=m"(mxcsr), "=m"(fcw));
	vt->fpu = mxcsr | (uint64_t)fcw << 32;
	vt->ring = (a->syscallmode == VTHREAD_SYSCALL_AUTO ? rt.syscallmode : a->syscallmode) ==
		   VTHREAD_SYSCALL_RING;
	vt->fault_fn = a->fault_fn;
	vt->fault_ctx = a->fault_ctx;
	if (a->fault_fn)
		__atomic_store_n(&hv_guest_pf_fast, 1, __ATOMIC_RELAXED);
	rt_irq_start(vt, a);
	rt_ring_prepare(vt);
}

/* host makes a thread that preempts its creator: a real-time policy above the creator's. */
static bool outranks_creator(const pthread_attr_t *host)
{
	struct sched_param n, c;
	int inherit, policy;

	if (pthread_attr_getinheritsched(host, &inherit) || inherit != PTHREAD_EXPLICIT_SCHED ||
	    pthread_attr_getschedpolicy(host, &policy) ||
	    (policy != SCHED_FIFO && policy != SCHED_RR) || pthread_attr_getschedparam(host, &n))
		return false;
	policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
	if (policy != SCHED_FIFO && policy != SCHED_RR)
		return true;
	return sched_getparam(0, &c) == 0 && n.sched_priority > c.sched_priority;
}

/*
 * Registers the vthread in state and starts its backing thread with host's
 * attributes, its stack replaced by the runtime's. Both happen under rt.lock,
 * so that a detached vthread cannot end and be freed before its pthread_t is
 * stored in *th. On failure vt is freed and pthread_create's error returned.
 *
 * A pthread that outranks its creator runs before pthread_create returns. A
 * vthread on a pooled vCPU first waits in KVM_RUN for an RCU grace period (KVM
 * synchronizes when a vCPU's thread changes), in which its creator would run
 * on: so the creator waits until the guest runs.
 */
static int vt_run(struct vthread *vt, pthread_attr_t *host, enum rt_thread_state state,
		  pthread_t *th, struct rt_park *parked)
{
	bool wait = !parked && outranks_creator(host);
	int started = 0, r = 0;

	pthread_attr_setstacksize(host, RT_HOST_STACK);
	vt->started = wait ? &started : NULL;
	pthread_mutex_lock(&rt.lock);
	vt->id = ++rt.next_id;
	vt->state = state;
	registry_add(vt);
	if (parked) {
		rt_park_give(parked, vt);
		rt.reused++;
	} else {
		r = pthread_create(&vt->host, host, backing_main, vt);
	}
	if (r)
		registry_del(vt);
	else if (th)
		*th = vt->host;
	pthread_mutex_unlock(&rt.lock);
	if (r) {
		vt_free(vt);
		return r;
	}
	rt.created++;
	while (wait && !__atomic_load_n(&started, __ATOMIC_ACQUIRE))
		rt_syscall6(SYS_futex, (long)&started, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
	return 0;
}

int rt_create_pthread(pthread_t *th, const vthread_attr_t *attr, pthread_attr_t *host,
		      void *(*fn)(void *), void *arg)
{
	const struct rt_attr *a = rt_attr(attr);
	struct vthread *vt;
	int r;

	if (!a)
		return EINVAL;
	r = vt_alloc(a, &vt, true);
	if (r)
		return r;
	vt_init_ctx(vt, a, fn, arg);
	return vt_run(vt, host, RT_THREAD_DETACHED, th, NULL);	/* the pthread is joined */
}

bool rt_guest_stack(pthread_t th, void **addr, size_t *size, size_t *guard)
{
	bool found = false;

	pthread_mutex_lock(&rt.lock);
	for (const struct vthread *v = rt.registry.next; v != &rt.registry; v = v->next) {
		if (v->state != RT_THREAD_EXITED && pthread_equal(v->host, th)) {
			*addr = v->stack + v->guard;
			*size = v->stack_size - v->guard;
			*guard = v->guard;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&rt.lock);
	return found;
}

/* A host thread's plain vthread: sandboxes and interrupt state stay out, and a
 * vthread's children are made through the guest's clone. */
static bool parkable(const struct rt_attr *a)
{
	return rt.park && !a->sandbox && !a->irq_fn && !rt_current;
}

int rt_create_with_args(vthread_t *out, const vthread_attr_t *attr, void *(*fn)(void *),
			const long args[6])
{
	struct rt_park *parked = NULL;
	struct hv_vcpu *vc = NULL;
	vthread_attr_t def;
	const struct rt_attr *a;
	pthread_attr_t host;
	struct vthread *vt;
	bool detached;
	int r;

	if (!out || !fn)
		return EINVAL;
	if (!attr) {
		vthread_attr_init(&def);
		attr = &def;
	}
	a = rt_attr(attr);
	if (!a)
		return EINVAL;
	if (parkable(a))
		parked = rt_park_take(&vc);
	r = vt_alloc(a, &vt, !parked);
	if (r) {
		if (parked)
			rt_park_untake(parked);
		return r;
	}
	if (parked) {
		vt->vcpu = vc;
		vt->reused = true;	/* the mask a new thread would inherit */
		rt_syscall6(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&vt->mask, sizeof(vt->mask),
			    0, 0);
	}
	vt_init_ctx(vt, a, fn, (void *)args[0]);
	for (int i = 0; i < 6; i++)
		vt->sb_args[i] = args[i];
	vt->own_host = true;
	vt->parkable = parkable(a);	/* again: the first vt_alloc read VTHREAD_PARK */
	detached = a->detach == VTHREAD_CREATE_DETACHED;
	pthread_attr_init(&host);	/* joinable: hand_over says who reaps it */
	r = vt_run(vt, &host, detached ? RT_THREAD_DETACHED : RT_THREAD_JOINABLE, NULL, parked);
	pthread_attr_destroy(&host);
	if (!r)
		*out = vt;
	return r;
}

RT_API int vthread_create(vthread_t *out, const vthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	const long args[6] = { (long)arg };

	return rt_create_with_args(out, attr, fn, args);
}

/* A cancelled joiner leaves the vthread joinable, as pthread_join does. */
static void join_cancelled(void *p)
{
	struct vthread *vt = p;

	pthread_mutex_lock(&rt.lock);
	vt->state = __atomic_load_n(&vt->done, __ATOMIC_ACQUIRE) ? RT_THREAD_EXITED
								 : RT_THREAD_JOINABLE;
	pthread_mutex_unlock(&rt.lock);
}

RT_API int vthread_join(vthread_t vt, void **retval)
{
	void *host_ret = NULL;
	int r = 0;

	pthread_mutex_lock(&rt.lock);
	if (!rt_registry_has(vt))
		r = ESRCH;
	else if (vt == rt_current)
		r = EDEADLK;
	else if (vt->state == RT_THREAD_DETACHED || vt->state == RT_THREAD_JOINING)
		r = EINVAL;
	else
		vt->state = RT_THREAD_JOINING;
	pthread_mutex_unlock(&rt.lock);
	if (r)
		return r;

	/* Joinable vthreads are vthread_create's: their backing thread is own_host.
	 * The wait is a cancellation point, as pthread_join's is (glibc's own
	 * waits enable asynchronous cancellation around the futex call too). */
	pthread_cleanup_push(join_cancelled, vt);
	while (!__atomic_load_n(&vt->done, __ATOMIC_ACQUIRE)) {
		int type;

		pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &type);
		rt_syscall6(SYS_futex, (long)&vt->done, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
		pthread_setcanceltype(type, NULL);
	}
	pthread_cleanup_pop(0);
	if (vt->reap)
		pthread_join(vt->host, &host_ret);
	if (retval)	/* an unwind's value is the thread's; a return's, vt's */
		*retval = vt->reap && vt->unwound ? host_ret : vt->retval;
	pthread_mutex_lock(&rt.lock);
	registry_del(vt);
	pthread_mutex_unlock(&rt.lock);
	free(vt);
	return 0;
}

RT_API int vthread_detach(vthread_t vt)
{
	int r = 0;

	pthread_mutex_lock(&rt.lock);
	if (!rt_registry_has(vt)) {
		r = ESRCH;
	} else if (vt->state == RT_THREAD_DETACHED || vt->state == RT_THREAD_JOINING) {
		r = EINVAL;
	} else if (vt->state == RT_THREAD_EXITED) {
		if (vt->reap)
			pthread_detach(vt->host);
		registry_del(vt);
		free(vt);
	} else {
		vt->state = RT_THREAD_DETACHED;	/* hand_over detaches its thread */
	}
	pthread_mutex_unlock(&rt.lock);
	return r;
}

/* Inside a vthread pthread_exit() unwinds to guest_main, so one call serves both. */
RT_API void vthread_exit(void *retval)
{
	pthread_exit(retval);
}

RT_API vthread_t vthread_self(void)
{
	return rt_current;
}

RT_API int vthread_equal(vthread_t a, vthread_t b)
{
	return a == b;
}

RT_API pthread_t vthread_pthread(vthread_t vt)
{
	return vt ? vt->host : (pthread_t)0;
}
