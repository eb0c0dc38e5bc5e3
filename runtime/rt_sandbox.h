/* SPDX-License-Identifier: MIT */
/* A sandbox (sandbox.c: the API; sbrun.c: running a vthread in it). */
#ifndef RT_SANDBOX_H
#define RT_SANDBOX_H

#include "rt.h"

#define RT_SB_NR_MAX	512	/* system call numbers allow knows are below it */

struct vthread_sandbox {
	struct vthread_sandbox *next;	/* sandboxes, under their lock (sandbox.c) */
	uint32_t id;			/* what attributes hold */
	pthread_mutex_t lock;		/* all below */
	bool running;			/* a vthread runs in it: grants, tables, snapshot fixed */
	struct hv hv;			/* its own VM */
	struct hv_vcpu vcpu;
	struct hv_layout lay;
	struct mm_space space;
	uint64_t canary;		/* its stack-protector canary */
	uint64_t allowed[RT_SB_NR_MAX / 64];
	vthread_syscall_fn handler;
	void *handler_ctx;
	uint64_t time_limit;		/* ns of CPU time per run; 0: none */
	struct vthread_violation violation;	/* the latest */
	unsigned long violations;	/* so far */
};

/* One run of fn(args) in a sandbox, on whichever thread makes it. */
struct rt_sb_run {
	void *fn;
	long args[6];
	struct rt_counts *counts;	/* the vthread's, or NULL */
	void *retval;			/* out: fn's, or VTHREAD_SANDBOX_VIOLATION */
	bool violated;			/* out */
	int err;			/* a vCPU that failed: -errno */
};

/* sbrun.c: whether allow may take nr. */
bool rt_sb_checkable(long nr);
/* Runs it on this thread, whose host signals the caller has blocked: 0, or
 * -errno when the vCPU failed. The sandbox is claimed. */
int rt_sandbox_run(struct vthread_sandbox *sb, struct rt_sb_run *run);

#endif
