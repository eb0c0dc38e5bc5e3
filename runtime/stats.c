/* SPDX-License-Identifier: MIT */
/* Counters: vthread_get_stats(), vthread_get_thread_stats(), and the VTHREAD_STATS
 * reports: the process's at exit (1), each vthread's as it ends (2). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

/* The caller's struct may be older (shorter) or newer (longer) than ours. */
RT_API int vthread_get_stats(struct vthread_stats *st)
{
	struct vthread_stats s;
	size_t n;

	if (!st || st->size < offsetof(struct vthread_stats, vthreads_created) +
				  sizeof(st->vthreads_created))
		return EINVAL;
	n = st->size < sizeof(s) ? st->size : sizeof(s);
	pthread_mutex_lock(&rt.pool_lock);
	s = (struct vthread_stats){
		.size = n,
		.vthreads_created = rt.created,
		.vthreads_live = rt.live,
		.vcpus = rt.nvcpus,
		.vcpus_busy = rt.nvcpus - rt.nidle - rt_park_count(),
		.memslots = rt.state == RT_READY ? rt.mm.live : 0,
		.runtime_bytes = mm_arena_in_use() + rt_stack_bytes(),
		.exit_syscall = rt.exits[RT_EXIT_SYSCALL],
		.exit_mirror = rt.exits[RT_EXIT_MIRROR],
		.exit_fault = rt.exits[RT_EXIT_FAULT],
		.exit_end = rt.exits[RT_EXIT_END],
		.exit_signal = rt.exits[RT_EXIT_SIGNAL],
		.exit_null = rt.exits[RT_EXIT_NULL],
		.exit_ring = rt.exits[RT_EXIT_RING],
		.exit_hostcall = rt.exits[RT_EXIT_HOSTCALL],
		.syscalls_ring = rt.ring_served,
		.exit_other = rt.exits[RT_EXIT_OTHER],
		.vthreads_reused = rt.reused,
		.vthreads_parked = rt_park_count(),
		.ring_late = rt.ring_late,
		.ring_no_server = rt.ring_no_server,
		.ring_bounced = rt.ring_bounced,
		.ring_helped = rt.ring_helped,
	};
	pthread_mutex_unlock(&rt.pool_lock);
	memset((char *)st + n, 0, st->size - n);
	memcpy(st, &s, n);
	return 0;
}

/*
 * Time in the guest, the run in progress included. The backing thread clears
 * run_since before it adds the run to guest_ns, and sets it anew before the
 * next: a read between two equal run_since loads counts no run twice.
 */
static uint64_t guest_ns(const struct rt_counts *c)
{
	uint64_t since, ns;

	do {
		since = __atomic_load_n(&c->run_since, __ATOMIC_SEQ_CST);
		ns = __atomic_load_n(&c->guest_ns, __ATOMIC_SEQ_CST);
	} while (since != __atomic_load_n(&c->run_since, __ATOMIC_SEQ_CST));
	return since ? ns + rt_now_ns() - since : ns;
}

/* The caller's struct, sized as vthread_get_stats's. */
RT_API int vthread_get_thread_stats(vthread_t vt, struct vthread_thread_stats *st)
{
	struct vthread_thread_stats s;
	const struct rt_counts *c;
	size_t n;

	if (!st || st->size < offsetof(struct vthread_thread_stats, exit_syscall) +
				  sizeof(st->exit_syscall))
		return EINVAL;
	n = st->size < sizeof(s) ? st->size : sizeof(s);
	pthread_mutex_lock(&rt.lock);
	if (!rt_registry_has(vt)) {
		pthread_mutex_unlock(&rt.lock);
		return ESRCH;
	}
	c = &vt->counts;
#define LOAD(f) __atomic_load_n(&c->f, __ATOMIC_RELAXED)
	s = (struct vthread_thread_stats){
		.size = n,
		.exit_syscall = LOAD(exits[RT_EXIT_SYSCALL]),
		.exit_mirror = LOAD(exits[RT_EXIT_MIRROR]),
		.exit_fault = LOAD(exits[RT_EXIT_FAULT]),
		.exit_end = LOAD(exits[RT_EXIT_END]),
		.exit_signal = LOAD(exits[RT_EXIT_SIGNAL]),
		.exit_null = LOAD(exits[RT_EXIT_NULL]),
		.exit_other = LOAD(exits[RT_EXIT_OTHER]),
		.exit_ring = LOAD(exits[RT_EXIT_RING]),
		.exit_hostcall = LOAD(exits[RT_EXIT_HOSTCALL]),
		.syscalls_ring = LOAD(ring),
		.faults_in_guest = LOAD(guest_faults),
		.irqs = LOAD(irqs),
		.guest_ns = guest_ns(c),
	};
#undef LOAD
	pthread_mutex_unlock(&rt.lock);
	memset((char *)st + n, 0, st->size - n);
	memcpy(st, &s, n);
	return 0;
}

void rt_stats_thread(const struct vthread *vt)
{
	const struct rt_counts *c = &vt->counts;
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf),
		     "libvthread stats: vthread %llu (tid %d): %llu.%03llu ms in the guest; exits:"
		     " syscall %lu, mirror %lu, fault %lu, end %lu, signal %lu, null %lu, ring %lu,"
		     " hostcall %lu, other %lu; ring calls %lu, faults in the guest %lu,"
		     " interrupts %lu\n",
		     (unsigned long long)vt->id, gettid(),
		     (unsigned long long)(c->guest_ns / 1000000),
		     (unsigned long long)(c->guest_ns / 1000 % 1000), c->exits[RT_EXIT_SYSCALL],
		     c->exits[RT_EXIT_MIRROR], c->exits[RT_EXIT_FAULT], c->exits[RT_EXIT_END],
		     c->exits[RT_EXIT_SIGNAL], c->exits[RT_EXIT_NULL], c->exits[RT_EXIT_RING],
		     c->exits[RT_EXIT_HOSTCALL], c->exits[RT_EXIT_OTHER], c->ring, c->guest_faults,
		     c->irqs);
	if (n > 0)
		rt_syscall6(SYS_write, STDERR_FILENO, (long)buf, n, 0, 0, 0);
}

#include "rt_syscall_names.h"

#define RT_STATS_TOP	10

/* The system calls that left the guest most often, with their counts: where the
 * ring or the runtime could still save exits (paths.c). */
static int print_top_exits(char *buf, size_t size)
{
	unsigned long seen[RT_STATS_TOP] = { 0 };
	int nr[RT_STATS_TOP], n, k = 0;

	for (int i = 0; i <= HV_RING_NR_MAX; i++) {
		unsigned long c = rt.syscall_exits[i];
		int j;

		if (!c || (k == RT_STATS_TOP && c <= seen[k - 1]))
			continue;
		j = k < RT_STATS_TOP ? k++ : k - 1;	/* a new place, or the last one's */
		for (; j > 0 && seen[j - 1] < c; j--) {
			seen[j] = seen[j - 1];
			nr[j] = nr[j - 1];
		}
		seen[j] = c;
		nr[j] = i;
	}
	n = snprintf(buf, size, "  system calls that exited, most first:");
	for (int j = 0; j < k && n > 0 && (size_t)n < size; j++) {
		const char *name = nr[j] < (int)(sizeof(rt_syscall_names) / sizeof(*rt_syscall_names)) ?
					   rt_syscall_names[nr[j]] : NULL;

		if (nr[j] == HV_RING_NR_MAX)
			name = "(above 511)";
		n += name ? snprintf(buf + n, size - n, " %s %lu", name, seen[j]) :
			    snprintf(buf + n, size - n, " #%d %lu", nr[j], seen[j]);
	}
	if (n > 0 && (size_t)n < size)
		n += snprintf(buf + n, size - n, "%s\n", k ? "" : " none");
	return n;
}

void rt_stats_print(int fd)
{
	struct vthread_stats s = VTHREAD_STATS_INIT;
	char buf[1280], cost[128] = "";
	unsigned long exits;
	int n;

	vthread_get_stats(&s);
	/* A lower bound: a forwarded call's exit costs more than an empty one. */
	exits = s.exit_syscall + s.exit_mirror + s.exit_fault + s.exit_end + s.exit_signal +
		s.exit_null + s.exit_ring + s.exit_hostcall + s.exit_other;
	if (rt.exit_ns > 0)
		snprintf(cost, sizeof(cost),
			 "; %lu exits cost at least %lu ms of CPU (an empty exit took %ld ns at start)",
			 exits, exits * rt.exit_ns / 1000000, rt.exit_ns);
	n = snprintf(buf, sizeof(buf),
		     "libvthread stats: backend %s\n"
		     "  vthreads created %lu (on parked threads %lu), live %lu, parked %lu; vCPUs %lu; "
		     "memslots %lu; runtime memory %lu KiB\n"
		     "  exits: syscall %lu, mirror %lu, fault %lu, end %lu, signal %lu, null %lu, "
		     "ring %lu, hostcall %lu, other %lu%s\n"
		     "  system calls made without an exit (ring): %lu; default mode %s; "
		     "libc sites without the trap: %u; ring exits: no server in time %lu "
		     "(none running %lu), would wait %lu; made by backing threads %lu\n",
		     rt.state == RT_READY ? rt.hv.be->name : "none", s.vthreads_created,
		     s.vthreads_reused, s.vthreads_live, s.vthreads_parked, s.vcpus, s.memslots,
		     s.runtime_bytes >> 10, s.exit_syscall,
		     s.exit_mirror, s.exit_fault, s.exit_end, s.exit_signal, s.exit_null, s.exit_ring,
		     s.exit_hostcall, s.exit_other, cost, s.syscalls_ring,
		     rt.syscallmode == VTHREAD_SYSCALL_RING ? "ring" : "exit", rt_rewrite_count(),
		     s.ring_late, s.ring_no_server, s.ring_bounced, s.ring_helped);
	if (n > 0 && (size_t)n < sizeof(buf))
		n += print_top_exits(buf + n, sizeof(buf) - n);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (n > 0)
		rt_syscall6(SYS_write, fd, (long)buf, n, 0, 0, 0);	/* not a cancellation point */
}

/*
 * The report at exit, printed once however the process ends normally: from
 * atexit, or before the exit_group a vthread makes (_exit() skips atexit), or
 * from the shim's _exit(). Only by the process that armed it: a fork child
 * arms it again if it has its own to say, a vfork child never does.
 */
static void (*exit_report)(void);
static pid_t exit_pid;
static atomic_flag reported = ATOMIC_FLAG_INIT;

void rt_stats_exiting(void)
{
	if (exit_report && getpid() == exit_pid && !atomic_flag_test_and_set(&reported))
		exit_report();
}

void rt_stats_report_at_exit(void (*report)(void))
{
	if (!exit_report)
		atexit(rt_stats_exiting);
	exit_report = report;
	exit_pid = getpid();
}

static void print_to_stderr(void)
{
	rt_stats_print(STDERR_FILENO);
}

void rt_stats_at_exit(void)
{
	if (!exit_report || exit_report == print_to_stderr)
		rt_stats_report_at_exit(print_to_stderr);
}
