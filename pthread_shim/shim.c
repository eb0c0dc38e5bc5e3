/* SPDX-License-Identifier: MIT */
/*
 * libvthread-shim.so: preloaded, it makes the program's pthread_create() start
 * vthreads, for the start routines VTHREAD_SHIM selects. The pthread_t handed
 * back is the vthread's backing thread: a real pthread, whose TLS and thread
 * id the vthread runs with. Join, tryjoin, timedjoin, detach, kill, exit,
 * cancel, self, equal, names, affinity and scheduling therefore work on it as
 * they are. Only pthread_create and pthread_getattr_np (whose stack is the
 * guest's) are replaced here.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../runtime/rt_shim.h"
#include "shim.h"

#define SHIM_API __attribute__((visibility("default")))

/* Why a thread went the way it did; the first is the only vthread. */
enum why {
	AS_VTHREAD,
	SHIM_OFF,	/* VTHREAD_SHIM=none, or a bad setting */
	NO_MATCH,
	UNNAMED,
	AT_MAX,
	NO_KVM,
	ATTR,
	FAILED,
	NWHY
};

static const char *const why_text[NWHY] = {
	[AS_VTHREAD] = "vthread",
	[SHIM_OFF] = "pthread (shim off)",
	[NO_MATCH] = "pthread (no VTHREAD_SHIM_MATCH pattern matches)",
	[UNNAMED] = "pthread (routine has no symbol name to match)",
	[AT_MAX] = "pthread (VTHREAD_SHIM_MAX live vthreads reached)",
	[NO_KVM] = "pthread (no backend for vthreads)",
	[ATTR] = "pthread (attributes a vthread cannot honour)",
	[FAILED] = "pthread (vthread_create failed)",
};

static int (*real_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static int (*real_getattr)(pthread_t, pthread_attr_t *);
static struct shim_config cfg;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static enum { KVM_UNKNOWN, KVM_USABLE, KVM_NONE } kvm;
static atomic_ulong counts[NWHY], serial;
static int report_fd = STDERR_FILENO;
/* Set while the runtime makes its own threads, which must be plain pthreads. */
static __thread bool in_runtime __attribute__((tls_model("initial-exec")));

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "libvthread-shim: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(report_fd, buf, n) < 0)
		return;
}

/* At exit, from a process that made threads (not from every process of a script). */
static void report(void)
{
	unsigned long p = 0;

	for (int w = AS_VTHREAD + 1; w < NWHY; w++)
		p += counts[w];
	if (!p && !counts[AS_VTHREAD])
		return;
	if (kvm != KVM_UNKNOWN)
		rt_stats_print(report_fd);
	say("%lu threads as vthreads, %lu as pthreads", (unsigned long)counts[AS_VTHREAD], p);
	for (int w = AS_VTHREAD + 1; w < NWHY; w++)
		if (counts[w])
			say("  %lu %s", (unsigned long)counts[w], why_text[w]);
}

/* A fork child reports the threads it makes itself, if any. */
static void forget_counts(void)
{
	for (int w = 0; w < NWHY; w++)
		counts[w] = 0;
	rt_stats_report_at_exit(report);
}

/*
 * _exit() and _Exit() skip atexit handlers: the report comes first, as from
 * exit(). glibc's own, found at setup: a vfork child must not take the
 * loader's lock, which a thread of its parent may hold.
 */
static void (*real_exit)(int) __attribute__((noreturn));

static void __attribute__((noreturn)) leave(int status)
{
	rt_stats_exiting();
	if (real_exit)
		real_exit(status);
	for (;;)
		syscall(SYS_exit_group, status);
}

SHIM_API void _exit(int status)
{
	leave(status);
}

SHIM_API void _Exit(int status)
{
	leave(status);
}

static void setup(void)
{
	char err[256];

	real_create = dlsym(RTLD_NEXT, "pthread_create");
	real_getattr = dlsym(RTLD_NEXT, "pthread_getattr_np");
	real_exit = dlsym(RTLD_NEXT, "_exit");
	if (shim_config_read(&cfg, err, sizeof(err)) < 0) {
		say("%s; running without the shim", err);
		cfg = (struct shim_config){ .mode = SHIM_NONE };
	}
	if (cfg.stats) {
		/* Some programs (xz) close stderr before they exit. */
		int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 512);

		if (fd >= 0)
			report_fd = fd;
		rt_stats_report_at_exit(report);
		pthread_atfork(NULL, NULL, forget_counts);
	}
}

__attribute__((constructor)) static void shim_init(void)
{
	pthread_once(&once, setup);
}

static bool kvm_usable(void)
{
	const char *be;

	if (kvm == KVM_UNKNOWN) {
		in_runtime = true;
		be = vthread_backend();
		in_runtime = false;
		kvm = be ? KVM_USABLE : KVM_NONE;
		if (!be)
			say("no backend for vthreads (%s); threads run as ordinary pthreads",
			    vthread_backend_error());
	}
	return kvm == KVM_USABLE;
}

static enum why choose(const char *name)
{
	if (cfg.mode == SHIM_NONE)
		return SHIM_OFF;
	if (cfg.mode == SHIM_MATCH) {
		if (!name)
			return UNNAMED;
		if (!shim_config_matches(&cfg, name))
			return NO_MATCH;
	}
	return AS_VTHREAD;
}

/* All ones: what glibc reports for an attribute without an affinity. */
static bool affinity_set(const pthread_attr_t *pa, cpu_set_t *cpus)
{
	return pthread_attr_getaffinity_np(pa, sizeof(*cpus), cpus) == 0 &&
	       CPU_COUNT(cpus) < CPU_SETSIZE;
}

/*
 * The program's attributes, split: the stack for the vthread, the rest
 * (detach state, scheduling, affinity, signal mask) for its backing thread.
 * Without a signal mask of its own the thread gets mask, the creator's.
 */
static int split_attr(const pthread_attr_t *pa, const sigset_t *mask, vthread_attr_t *va,
		      pthread_attr_t *host)
{
	struct sched_param sp;
	size_t size, guard;
	cpu_set_t cpus;
	sigset_t own;
	void *lo;
	int v, r;

	vthread_attr_init(va);
	pthread_attr_init(host);
	pthread_attr_getstack(pa, &lo, &size);
	if ((uintptr_t)lo + size) {	/* a stack of the program's: its top is set */
		r = vthread_attr_setstack(va, lo, size);
	} else {
		pthread_attr_getstacksize(pa, &size);	/* the default if none was set */
		pthread_attr_getguardsize(pa, &guard);
		r = vthread_attr_setstacksize(va, size);
		if (!r)
			r = vthread_attr_setguardsize(va, guard);
	}
	if (r)
		return r;
	pthread_attr_getdetachstate(pa, &v);
	pthread_attr_setdetachstate(host, v);
	pthread_attr_getinheritsched(pa, &v);
	pthread_attr_setinheritsched(host, v);
	pthread_attr_getschedpolicy(pa, &v);
	pthread_attr_setschedpolicy(host, v);
	pthread_attr_getschedparam(pa, &sp);
	pthread_attr_setschedparam(host, &sp);
	pthread_attr_getscope(pa, &v);
	pthread_attr_setscope(host, v);
	if (affinity_set(pa, &cpus))
		pthread_attr_setaffinity_np(host, sizeof(cpus), &cpus);
	pthread_attr_setsigmask_np(host, pthread_attr_getsigmask_np(pa, &own) == 0 ? &own : mask);
	return 0;
}

static enum why create_vthread(pthread_t *th, const pthread_attr_t *attr, const sigset_t *mask,
			       void *(*fn)(void *), void *arg, int *err)
{
	pthread_attr_t def, host;
	struct vthread_stats st = VTHREAD_STATS_INIT;
	vthread_attr_t va;
	enum why why = AS_VTHREAD;

	if (!attr) {
		pthread_getattr_default_np(&def);
		attr = &def;
	}
	pthread_mutex_lock(&create_lock);
	if (!kvm_usable()) {
		why = NO_KVM;
	} else if (cfg.max != ULONG_MAX && !vthread_get_stats(&st) && st.vthreads_live >= cfg.max) {
		why = AT_MAX;
	} else if (split_attr(attr, mask, &va, &host)) {
		why = ATTR;
		pthread_attr_destroy(&host);
	} else {
		in_runtime = true;
		*err = rt_create_pthread(th, &va, &host, fn, arg);
		in_runtime = false;
		pthread_attr_destroy(&host);
		if (*err)
			why = FAILED;
	}
	pthread_mutex_unlock(&create_lock);
	if (attr == &def)
		pthread_attr_destroy(&def);
	return why;
}

/*
 * A thread created inside a vthread: the runtime's locks and allocations must
 * not be taken in the guest (a mirror fault there needs them), so the vthread
 * is made on the backing thread, through a host call.
 */
struct nested {
	pthread_t *th;
	const pthread_attr_t *attr;
	const sigset_t *mask;
	void *(*fn)(void *);
	void *arg;
	int err;
	enum why why;
};

static long create_nested(long p)
{
	struct nested *n = (struct nested *)p;

	n->why = create_vthread(n->th, n->attr, n->mask, n->fn, n->arg, &n->err);
	return 0;
}

static enum why create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
		       void *arg, int *err)
{
	struct nested n = { th, attr, NULL, fn, arg, 0, FAILED };
	sigset_t mask;
	long unused;

	/* the creator's mask: the backing thread's, or in a vthread the guest's */
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	if (!vthread_self())
		return create_vthread(th, attr, &mask, fn, arg, err);
	n.mask = &mask;
	vthread_hostcall_long(&unused, (void (*)(void))create_nested, 1, (const long[]){ (long)&n });
	*err = n.err;
	return n.why;
}

SHIM_API int pthread_create(pthread_t *th, const pthread_attr_t *attr,
			    void *(*fn)(void *), void *arg)
{
	const char *name;
	enum why why;
	int err = 0;

	pthread_once(&once, setup);
	if (in_runtime)
		return real_create(th, attr, fn, arg);
	name = cfg.mode == SHIM_MATCH || cfg.log ? shim_routine_name(fn) : NULL;
	why = choose(name);
	if (why == AS_VTHREAD)
		why = create(th, attr, fn, arg, &err);
	if (cfg.log) {
		unsigned long n = ++serial;

		if (name)
			say("thread %lu, %s: %s%s%s", n, name, why_text[why],
			    err ? ": " : "", err ? strerror(err) : "");
		else
			say("thread %lu, routine %p: %s%s%s", n, (void *)fn, why_text[why],
			    err ? ": " : "", err ? strerror(err) : "");
	}
	counts[why]++;
	return why == AS_VTHREAD ? 0 : real_create(th, attr, fn, arg);
}

/* A vthread's stack is the one its code runs on, not its backing thread's. */
SHIM_API int pthread_getattr_np(pthread_t th, pthread_attr_t *attr)
{
	size_t size, guard;
	void *lo;
	int r;

	pthread_once(&once, setup);
	r = real_getattr(th, attr);
	if (r == 0 && !in_runtime && rt_guest_stack(th, &lo, &size, &guard)) {
		pthread_attr_setstack(attr, lo, size);
		pthread_attr_setguardsize(attr, guard);
	}
	return r;
}
