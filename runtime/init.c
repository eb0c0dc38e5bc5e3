/* SPDX-License-Identifier: MIT */
/*
 * Process-wide state, set up on first use: the guest-memory arena, the VM, the
 * mirror of the address space as it is now, the IDT and the first vCPU, which
 * must prove that it executes natively before anything runs on it.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"
#include "rt_zydis.h"

struct rt rt = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.pool_lock = PTHREAD_MUTEX_INITIALIZER,
	.registry = { .prev = &rt.registry, .next = &rt.registry },
};

static bool atfork_ready;

static void debug_why(void)
{
	if (rt.debug)
		fprintf(stderr, "libvthread: no backend: %s\n", rt.why);
}

/* The VM belongs to the parent's address space; a child starts afresh. */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&rt.lock);
	pthread_mutex_lock(&rt.pool_lock);
	if (rt.state == RT_READY)
		pthread_mutex_lock(&rt.mm.lock);
	mm_arena_lock();	/* the mirror takes it under mm.lock */
}

static void atfork_parent(void)
{
	mm_arena_unlock();
	if (rt.state == RT_READY)
		pthread_mutex_unlock(&rt.mm.lock);
	pthread_mutex_unlock(&rt.pool_lock);
	pthread_mutex_unlock(&rt.lock);
}

static void atfork_child(void)
{
	mm_arena_fork_child();
	if (rt.state == RT_READY) {
		rt_vcpu_forget_all();
		rt_park_forget();
		rt_ring_forget();
		rt_rewrite_forget();
		mm_free(rt.idt, HV_IDT_SIZE);
		rt.idt = NULL;
		pthread_mutex_unlock(&rt.mm.lock);
		mm_destroy(&rt.mm);
		hv_close(&rt.hv);
	}
	pthread_mutex_unlock(&rt.pool_lock);
	/* The parent's vthreads do not exist here: their handles become unknown,
	 * and a child forked inside one is an ordinary process. */
	rt_current = NULL;
	rt.registry.prev = rt.registry.next = &rt.registry;
	rt.live = 0;
	rt.state = RT_UNINIT;
	pthread_mutex_unlock(&rt.lock);
}

static void fail(const char *what, int err)
{
	snprintf(rt.why, sizeof(rt.why), "%s: %s", what, strerror(-err));
}

/* The FPU state a signal frame holds: the XSAVE area for the features the
 * host enabled (CPUID 0xd), which the guest's XCR0 never exceeds. */
static size_t xsave_size(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid_count(0xd, 0, &a, &b, &c, &d) || b < 576)
		return 512;
	return b < sizeof(struct kvm_xsave) ? b : sizeof(struct kvm_xsave);
}

/* 0, -ENOSYS with rt.why set, or -EAGAIN when memory ran out (try again later). */
static int init_locked(int mode)
{
	const char *dev = getenv("VTHREAD_KVM");
	struct hv_vcpu *first = calloc(1, sizeof(*first));
	long ns;
	int r;

	if (!first)
		return -EAGAIN;
	/* Now, before any vthread: neither a rewrite nor a fault's decode may dlopen. */
	if (!rt_zydis_load()) {
		snprintf(rt.why, sizeof(rt.why), "Zydis cannot be loaded: %s", dlerror());
		free(first);
		return -ENOSYS;
	}
	first->fd = -1;
	rt.xsave_size = xsave_size();
	r = hv_open(&rt.hv, dev && *dev ? dev : "/dev/kvm", first, rt.why, sizeof(rt.why));
	if (r < 0) {
		free(first);
		return -ENOSYS;
	}
	r = mm_init(&rt.mm, &rt.hv);
	if (!r)
		r = mm_mirror_process(&rt.mm);
	if (r < 0) {
		fail("cannot mirror the address space", r);
		goto err;
	}
	rt.idt = mm_alloc(&rt.mm, HV_IDT_SIZE);
	if (!rt.idt) {
		fail("cannot allocate the IDT", -ENOMEM);
		goto err;
	}
	hv_idt_fill(rt.idt);
	r = rt_vcpu_new(first);
	if (r < 0) {
		fail("cannot set up a vCPU", r);
		goto err;
	}
	/* The vCPU's setup says whether guests may XSAVE (hv/std.c, hv/pvm.c): the
	 * guest's fault and interrupt paths keep the whole vector state then. */
	hv_guest_xsave = rt.hv.guest_xsave && rt.xsave_size > 512;
	hv_guest_xsave_size = hv_guest_xsave ? rt.xsave_size : 512;
	r = hv_vcpu_probe_native(first, &ns);
	if (r < 0) {
		if (r == -ENOEXEC)
			snprintf(rt.why, sizeof(rt.why),
				 "%s does not execute the guest natively (%d-iteration loop took %ld us)",
				 rt.hv.be->name, HV_PROBE_LOOPS, ns / 1000);
		else
			fail("the native-execution probe failed", r);
		goto err;
	}
	r = hv_vcpu_exit_cost(first, &rt.exit_ns);
	if (r < 0) {
		fail("cannot time an exit", r);
		goto err;
	}
	rt_ring_init(mode);
	if (rt.rewrite && rt.syscallmode == VTHREAD_SYSCALL_RING)
		rt_rewrite_init();
	if (rt.debug)
		fprintf(stderr, "libvthread: backend %s, %u memslots, native probe %ld us, "
			"exit %ld us, system calls by %s\n", rt.hv.be->name, rt.mm.live, ns / 1000,
			rt.exit_ns / 1000, rt.syscallmode == VTHREAD_SYSCALL_RING ? "ring" : "exit");
	rt_vcpu_put(first);
	return 0;

err:
	if (rt.nvcpus) {
		rt_vcpu_forget_all();	/* first is in the pool's list */
	} else {
		hv_vcpu_destroy(first);
		free(first);
	}
	mm_free(rt.idt, HV_IDT_SIZE);
	rt.idt = NULL;
	mm_destroy(&rt.mm);
	hv_close(&rt.hv);
	return -ENOSYS;
}

/* The variables read once, at the first use: 0, or -ENOSYS with rt.why set. */
static int read_env(int *mode)
{
	const char *park = getenv("VTHREAD_PARK"), *rewrite = getenv("VTHREAD_REWRITE");

	if (rt_env_flag("VTHREAD_DEBUG", &rt.debug, rt.why, sizeof(rt.why)) < 0 ||
	    rt_env_flag("VTHREAD_PARK", &rt.park, rt.why, sizeof(rt.why)) < 0 ||
	    rt_env_flag("VTHREAD_REWRITE", &rt.rewrite, rt.why, sizeof(rt.why)) < 0 ||
	    rt_env_stats(&rt.stats, rt.why, sizeof(rt.why)) < 0 ||
	    rt_env_syscalls(mode, rt.why, sizeof(rt.why)) < 0)
		return -ENOSYS;
	/* On unless 0; without glibc's thread count a parked thread would keep
	 * the process alive (park.c). */
	rt.park = (!park || !*park || rt.park) && rt_nthreads_add(0) >= 0;
	rt.rewrite = !rewrite || !*rewrite || rt.rewrite;
	if (!atfork_ready) {
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		atfork_ready = true;
	}
	if (rt.stats)
		rt_stats_at_exit();	/* again in a fork child that starts its own */
	return 0;
}

int rt_init(void)
{
	int mode, r = 0;

	pthread_mutex_lock(&rt.lock);
	if (rt.state == RT_UNINIT) {
		r = read_env(&mode);
		if (!r)
			r = init_locked(mode);
		if (!r)
			rt_cancel_init();
		if (r == -ENOSYS) {
			rt.state = RT_FAILED;
			debug_why();
		} else if (!r) {
			rt.state = RT_READY;
		}
	} else if (rt.state == RT_FAILED) {
		r = -ENOSYS;
	}
	pthread_mutex_unlock(&rt.lock);
	return r;
}

/* The header this file is built with is the library's own. */
RT_API const char *vthread_version(void)
{
	return VTHREAD_VERSION;
}

RT_API const char *vthread_backend(void)
{
	return rt_init() ? NULL : rt.hv.be->name;
}

RT_API unsigned vthread_backend_features(void)
{
	if (rt_init())
		return 0;
	return (rt.hv.be->ring0 ? VTHREAD_FEAT_RING0 : 0) |
	       (rt.hv.be->pte_user ? 0 : VTHREAD_FEAT_SUPERVISOR_PAGES) |
	       (rt.hv.huge_1g ? VTHREAD_FEAT_HUGE_1G : 0) |
	       (rt.hv.irqchip ? VTHREAD_FEAT_INTERRUPTS : 0) |
	       (rt.hv.guest_ipi ? VTHREAD_FEAT_GUEST_IPI : 0);
}

RT_API const char *vthread_backend_error(void)
{
	int r = rt_init();

	return r == -ENOSYS ? rt.why : r ? "out of memory while starting; try again" : NULL;
}
