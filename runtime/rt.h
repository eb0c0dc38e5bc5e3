/* SPDX-License-Identifier: MIT */
/* The runtime: process-wide state, vthread life cycle, exit dispatch (private). */
#ifndef RT_H
#define RT_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "../include/vthread.h"
#include "../hv/hv.h"
#include "../mm/mm.h"
#include "rt_shim.h"
#include "waitcall.h"	/* RT_CALL_NOT_MADE */

#define RT_API __attribute__((visibility("default")))

enum rt_state { RT_UNINIT, RT_READY, RT_FAILED };

/* What an exit's handler says happens next. */
enum rt_next { RT_RESUME, RT_END };

enum rt_exit_counter {
	RT_EXIT_SYSCALL,
	RT_EXIT_MIRROR,
	RT_EXIT_FAULT,
	RT_EXIT_END,
	RT_EXIT_SIGNAL,
	RT_EXIT_NULL,
	RT_EXIT_RING,
	RT_EXIT_HOSTCALL,
	RT_EXIT_OTHER,
	RT_EXIT_NR
};

/* Fits vthread_attr_t's 64 bytes, which binaries built against the header allocate. */
struct rt_attr {
	uint16_t magic;
	uint8_t detach;		/* VTHREAD_CREATE_* */
	uint8_t syscallmode;	/* VTHREAD_SYSCALL_* */
	uint32_t sandbox;	/* vthread_attr_setsandbox: its id; 0: none */
	size_t stacksize;
	size_t guardsize;
	void *stackaddr;	/* NULL: the runtime allocates the stack */
	vthread_fault_fn fault_fn;	/* vthread_attr_setfaulthandler */
	void *fault_ctx;
	vthread_irq_fn irq_fn;		/* vthread_attr_setirqhandler */
	void *irq_ctx;
};

/* attr.c: the attribute behind a, or NULL if a was not initialised */
const struct rt_attr *rt_attr(const vthread_attr_t *a);

/*
 * A vthread's one state word, under rt.lock (musl's detach_state). Who unlinks
 * and frees the struct vthread, whatever the order of the races:
 */
enum rt_thread_state {
	RT_THREAD_JOINABLE,	/* running; vthread_join or vthread_detach may come */
	RT_THREAD_DETACHED,	/* running, never joined: its backing thread frees it at
				 * the end (the shim's vthreads, which glibc joins, too) */
	RT_THREAD_JOINING,	/* vthread_join waits for the backing thread: it frees it */
	RT_THREAD_EXITED,	/* ended while joinable: vthread_join or _detach frees it */
};

/* The kernel's struct sigaction, which carries the restorer of whoever installed it. */
struct rt_ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

/*
 * A vthread's own counters (vthread_get_thread_stats). One writer at a time:
 * its backing thread, its guest, or the ring server making its call, which it
 * waits for; readers take relaxed loads.
 */
struct rt_counts {
	unsigned long exits[RT_EXIT_NR];
	unsigned long ring;		/* calls ring servers made */
	unsigned long guest_faults;	/* fault handler runs that needed no exit */
	unsigned long irqs;
	uint64_t guest_ns;		/* in KVM_RUN, the runs that have returned */
	uint64_t run_since;		/* when the run now in progress began; 0: none */
};

/* CLOCK_MONOTONIC: the clock KVM's APIC timer runs on; the vDSO's in a guest too. */
static inline uint64_t rt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

__attribute__((no_sanitize("address"))) static inline void rt_count(unsigned long *c)
{
	__atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

struct vthread {
	struct vthread *prev, *next;	/* registry of handles, under rt.lock */
	enum rt_thread_state state;	/* under rt.lock */
	uint64_t id;
	void *(*fn)(void *);
	void *arg;
	void *retval;
	pthread_t host;			/* the backing host thread */
	struct hv_vcpu *vcpu;
	char *stack;			/* lowest address, guard included if ours */
	size_t stack_size, guard;
	bool own_stack;
	int *started;			/* set to 1 when the guest runs, if not NULL */
	bool ring;			/* system calls may take the ring (ring.c) */
	bool unwound;			/* ended by pthread_exit() or cancellation */
	bool parkable;			/* its backing thread may park after it (park.c) */
	bool thread_changed;		/* it made a call that changes its thread */
	bool reused;			/* runs on a parked thread; mask set by its creator */
	bool own_host;			/* its backing thread is the runtime's to reap */
	bool reap;			/* its backing thread ends: join it */
	uint32_t done;			/* 1 once state says it ended (futex) */
	int guest_errno;		/* the guest's errno while the runtime runs */
	uint64_t fs_base;		/* the guest's, normally the backing thread's */
	uint64_t fpu;			/* the creator's MXCSR, x87 control word << 32 */
	uint64_t gs_base;		/* what the guest set with ARCH_SET_GS */
	uint64_t mask;			/* the guest's signal mask (bit n-1: signal n) */
	struct kvm_xsave xsave;		/* scratch for signal frames */
	const void *host_stack;		/* for ASan, while the guest runs */
	size_t host_stack_size;
	bool signals_held;		/* blocked in KVM_RUN until a stub exits */
	volatile bool waiting;		/* in a forwarded call a signal may end */
	bool on_host;			/* running a host call's function */
	volatile uint8_t kicked;	/* a signal came during it ... */
	siginfo_t kick_info;		/* ... with this, for the guest ... */
	struct rt_ksigaction kick_action;	/* ... under this action */
	vthread_fault_fn fault_fn;	/* runs in the guest (guestfault.c) */
	void *fault_ctx;
	bool fault_declined;		/* the handler said SIGNAL to a made-up fault */
	vthread_irq_fn irq_fn;		/* runs in the guest (irq.c) */
	void *irq_ctx;
	int irq_live;			/* pokes may be sent (irq.c) ... */
	int pokers;			/* ... and these are being sent */
	int irq_depth;			/* vthread_irq_disable's nesting */
	bool in_irq;			/* the handler runs */
	uint64_t timer_next;		/* CLOCK_MONOTONIC ns of the next expiry; 0: none */
	uint64_t timer_period;
	struct rt_counts counts;
	struct vthread_sandbox *sandbox;	/* runs there (sandbox.c) ... */
	long sb_args[6];			/* ... fn(args): RDI to R9 */
	bool native;			/* left its vCPU at a breakpoint (breakpoint.c) ... */
	void *native_back[5];		/* ... and ends there: __builtin_setjmp */
	uint64_t native_mask;		/* the exit loop's signal mask */
};

/* What a fault adds to a signal's ucontext. */
struct rt_sigtrap {
	uint64_t error, vector, cr2;
};

struct rt {
	pthread_mutex_t lock;		/* state, pool, registry */
	enum rt_state state;
	char why[256];			/* why the runtime is unusable */
	bool debug;
	bool park;			/* VTHREAD_PARK: park.c */
	bool rewrite;			/* VTHREAD_REWRITE: rewrite.c */
	int stats;			/* VTHREAD_STATS: 0, 1, 2 */
	struct hv hv;
	struct mm mm;
	void *idt;
	pthread_mutex_t pool_lock;
	struct hv_vcpu **vcpus;		/* every vCPU, max_vcpus slots */
	struct hv_vcpu **idle;		/* the pool's idle ones */
	unsigned nvcpus, nidle;
	struct vthread registry;	/* list head */
	uint64_t next_id;
	atomic_ulong created, live, reused;
	atomic_ulong exits[RT_EXIT_NR];
	size_t xsave_size;		/* bytes of FPU state in a signal frame */
	int syscallmode;		/* the default: VTHREAD_SYSCALL_EXIT or _RING */
	long exit_ns;			/* an empty exit's cost, measured at start */
	atomic_ulong ring_served;	/* calls servers made without a guest exit */
	atomic_ulong ring_late, ring_no_server, ring_bounced, ring_helped;	/* vthread_stats's */
	atomic_ulong syscall_exits[HV_RING_NR_MAX + 1];	/* by number; the last: any above */
};

extern struct rt rt;
extern __thread struct vthread *rt_current __attribute__((tls_model("initial-exec")));
/* vthread.c: whether vt is a handle not yet joined or reaped; rt.lock held */
bool rt_registry_has(const struct vthread *vt);

/* Code of the calling thread runs in a vthread's guest: not a host thread, a
 * host call's function or a handler run on the backing thread. */
static inline bool rt_in_guest(void)
{
	const struct vthread *vt = rt_current;

	return vt && !vt->on_host && !vt->waiting;
}

/* The access a page fault's error code names: PROT_EXEC, PROT_WRITE or PROT_READ. */
static inline int rt_fault_access(uint64_t error)
{
	return error & 16 ? PROT_EXEC : error & 2 ? PROT_WRITE : PROT_READ;
}

/* protect.c: the guest's translations after protections changed */
/* Whether a vCPU other than self may cache a translation older than now. */
bool rt_tlb_others_cached(const struct hv_vcpu *self);
/* Every vCPU's, from a host thread; 0 or -errno. */
int rt_tlb_flush_all(void);

/* irq.c: a vthread's interrupts, from its start to its end (on the backing
 * thread, after its last exit: no poke is in flight when it returns) */
void rt_irq_start(struct vthread *vt, const struct rt_attr *a);
void rt_irq_end(struct vthread *vt);
void rt_irq_begin(struct vthread *vt);	/* in the guest, at its start */

/* env.c: VTHREAD_SYSCALLS, as VTHREAD_SYSCALL_*; rt_env_flag in rt_shim.h */
int rt_env_syscalls(int *mode, char *why, size_t n);

/* init.c */
int rt_init(void);	/* 0, or -ENOSYS with rt.why set */

/* stack.c: a vthread's stack as the attribute asks, mirrored; put caches or unmaps it */
int rt_stack_get(struct vthread *vt, const struct rt_attr *a);
void rt_stack_put(struct vthread *vt);
/* glibc's stack size for a thread made without attributes (pthread_getattr_default_np). */
size_t rt_stack_default_size(void);
size_t rt_stack_bytes(void);	/* mapped for stacks, in use and cached; rt.pool_lock held */

/* vcpu.c: the vCPU pool */
int rt_vcpu_get(struct hv_vcpu **vc);
void rt_vcpu_put(struct hv_vcpu *vc);
int rt_vcpu_new(struct hv_vcpu *vc);
void rt_vcpu_forget_all(void);

/* dispatch.c: runs the vthread until it ends */
void rt_dispatch(struct vthread *vt);
/* The guest continues with registers r; what names the step for the report if
 * the vCPU refuses them. */
void rt_resume(struct vthread *vt, const hv_regs *r, const char *what);
/* The guest's system call returns ret (hv_regs_sysret) and the guest continues. */
void rt_resume_sysret(struct vthread *vt, hv_regs *r, long ret);

static inline long rt_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}


/* syscall.c: makes the guest's call and resumes it, or ends the vthread
 * (SYS_exit). moved: bytes a ring attempt of a read or write already moved,
 * which the call continues from. */
enum rt_next rt_syscall_forward(struct vthread *vt, hv_regs *regs, long moved);

/* paths.c: which path each system call takes, and why */
enum rt_path {
	RT_PATH_EXIT,		/* the backing thread makes it, all signals blocked */
	RT_PATH_GUEST,		/* the runtime emulates it */
	RT_PATH_THREAD,		/* thread-scoped: the backing thread makes it */
	RT_PATH_WAIT,		/* may wait: backing thread, guest's signal mask */
	RT_PATH_RING,		/* a ring server may make it */
	RT_PATH_RING_TRY,	/* read/write: a server tries it without waiting */
	RT_PATH_RING_WAKE,	/* futex: a server makes the wakes */
	RT_PATH_RING_YIELD,	/* sched_yield: the round trip, a real yield per YIELD_NS */
	RT_PATH_RING_OPEN,	/* open, openat: a server opens regular files and directories */
	RT_PATH_RING_CLOCK,	/* clock_gettime: the calling thread's CPU clock bounces */
};
struct rt_path_entry {
	enum rt_path path;
	const char *why;
};
const struct rt_path_entry *rt_syscall_path(long nr);
/* Made with the guest's signal mask when it takes the exit path. */
bool rt_path_guest_mask(long nr);
/* Whether the call may change the calling thread (a parked one must not have). */
bool rt_path_changes_thread(long nr);
/* Of those, the calls after which the thread's files or credentials are its own. */
bool rt_path_own_view(long nr, uint64_t arg0, uint64_t arg2);
/* Fills the guest's bitmap of the calls the ring takes. */
void rt_paths_publish(void);

/* park.c: backing threads kept for the next vthread */
/* What a new thread inherits from its creator and a parked one must match. */
struct rt_thread_env {
	cpu_set_t cpus;
	int policy, nice;
	struct sched_param param;
	char comm[16];
	int seccomp;	/* mode: a filter added since a thread parked is not its */
};

struct rt_park {
	struct rt_park *next;
	pthread_t host;
	struct hv_vcpu *vcpu;
	struct vthread *vt;		/* the next one, once word is TAKEN_JOB */
	bool taken;			/* off the list, under rt.pool_lock */
	uint32_t word;
	struct rt_thread_env env;
};

/* One fit to back the caller's child, its vCPU in *vc; or NULL. */
struct rt_park *rt_park_take(struct hv_vcpu **vc);
void rt_park_untake(struct rt_park *p);
void rt_park_give(struct rt_park *p, struct vthread *vt);	/* sets vt->host, wakes it */
/* On vt's backing thread once vt ended, before its joiner is told: whether
 * the thread parks (p then on the list, its vCPU vt's); then the next
 * vthread, or NULL: the thread is to end. */
bool rt_park_offer(struct rt_park *p, const struct vthread *vt);
struct vthread *rt_park_wait(struct rt_park *p);
bool rt_park_evict(void);		/* one parked thread ends, its vCPU returned */
void rt_park_forget(void);		/* in a fork child */
unsigned rt_park_count(void);
int rt_nthreads_add(int n);		/* glibc's count of threads after; -1 without it */

/* ring.c: exit-less system calls */
/* Picks the default mode, mode or AUTO's choice; after the exit cost is known. */
void rt_ring_init(int mode);
void rt_ring_forget(void);		/* in a fork child: the servers are the parent's */
void rt_ring_prepare(struct vthread *vt);	/* on the creating thread: may turn vt->ring off */
int rt_ring_attach(struct vthread *vt);	/* at start: the vCPU's entry and slot */
void rt_ring_detach(struct vthread *vt);
int rt_ring_leave(struct vthread *vt);	/* exit path from now on (ARCH_SET_GS, own view) */
/* An exit of a ring vthread whose call could have taken the ring (regs at its `syscall`). */
void rt_ring_missed(const struct vthread *vt, const hv_regs *r);
/* HV_EXIT_RING: the call is completed, or made on the exit path. */
enum rt_next rt_ring_exit(struct vthread *vt, hv_regs *r);
/* Before a signal is delivered: a vCPU stopped inside the ring stub is moved to
 * before or after its call. 0 or -errno. */
int rt_ring_settle_for_signal(struct vthread *vt);

/* rewrite.c: libc's `syscall`s the ring takes, rewritten in the guest's view.
 * init: once the mirror and the mode are set, in ring mode; seen: a server
 * took a call that returns to ret; off: at a vthread's ARCH_SET_GS, for good. */
void rt_rewrite_init(void);
void rt_rewrite_forget(void);		/* in a fork child */
void rt_rewrite_seen(uint64_t ret);
void rt_rewrite_off(void);
unsigned rt_rewrite_count(void);	/* sites rewritten now */

/* hostcall.c: HV_EXIT_HOSTCALL */
void rt_hostcall(struct vthread *vt, const hv_regs *r);
/* hostcall.c, for vthread-bench: `syscall` returns at once in the caller, or not. */
void rt_bench_null_syscalls_on(void);
void rt_bench_null_syscalls_off(void);

/* clone.c: the guest's clone, clone3, fork or vfork; the parent's result */
long rt_clone(struct vthread *vt, const hv_regs *r);
/* The guest's state as r and the vCPU hold it, for a native switch (native.h),
 * its vector registers too when given a 64-byte aligned area to keep them in:
 * 0, or -errno with the FPU control words unset. */
struct rt_native_clone;
int rt_native_guest(struct vthread *vt, const hv_regs *r, struct rt_native_clone *c,
		    struct kvm_xsave *vectors);
/* Readies r, where a fault or a breakpoint stopped the guest, for a native
 * switch: the flags a thread may take back, and whether the guest's stack
 * takes what rt_native_enter stages below its red zone. */
bool rt_native_ready(hv_regs *r);

/* signal.c: 0, or -errno; deliver and pending return 1 when a handler was entered */
int rt_signal_thread_start(struct vthread *vt);
/* The backing thread's own mask: set to mask, the old one in *old (NULL: not wanted). */
void rt_signal_host_mask(uint64_t mask, uint64_t *old);
void rt_signal_block_host(void);
void rt_signal_unblock_host(const struct vthread *vt);
int rt_signal_set_mask(struct vthread *vt, uint64_t mask);
/* The guest accepts sig and has a handler for it. */
bool rt_signal_caught(const struct vthread *vt, int sig);
/* Under action ka, or the current one when ka is NULL. */
int rt_signal_deliver(struct vthread *vt, siginfo_t *si, hv_regs *r, uint64_t saved_mask,
		      const struct rt_sigtrap *trap, const struct rt_ksigaction *ka);
int rt_signal_pending(struct vthread *vt);
/* After the exit of a stub rt_signal_pending held signals back for. */
int rt_signal_release(struct vthread *vt);
/* sigsuspend(during): waits for a signal the guest accepts and enters its handler */
int rt_signal_suspend(struct vthread *vt, hv_regs *r, uint64_t during);
int rt_signal_return(struct vthread *vt, hv_regs *r);

#define RT_SA_RESTORER	0x04000000	/* <asm/signal.h>; glibc hides it */
#define RT_SIGCANCEL	32		/* glibc's; SIGRTMIN is after its two */
#define RT_SIGSETXID	33		/* glibc's setuid() and the like: every thread answers */
/*
 * What a backing thread blocks in the runtime's host code (KVM_RUN takes the
 * guest's mask): all but glibc's setxid signal. glibc's setuid() waits until
 * every thread has run that signal's handler, which makes the raw call for its
 * thread: blocked, a parked thread hung it for good, and taken into the guest
 * the call made the vthread's credentials look like its own (leaving the ring).
 * The handler runs on the host thread instead, async-signal-safe, SA_RESTART.
 */
#define RT_HOST_BLOCKED	(~(1ull << (RT_SIGSETXID - 1)))
#define RT_SIGSANDBOX	64		/* SIGRTMAX: a sandbox's time limit (sbrun.c) */

long rt_sigaction_raw(int sig, const struct rt_ksigaction *act, struct rt_ksigaction *old);
/* sigaction.c: the kernel's action for sig as the program set it (rt_action_entry
 * stands for the program's handler); installing ka routes it through rt_action_entry. */
int rt_action_get(int sig, struct rt_ksigaction *ka);
long rt_action_route(int sig, const struct rt_ksigaction *ka);
void rt_action_entry(int sig, siginfo_t *si, void *ctx);

/* cancel.c: SIGCANCEL is routed through rt_action_entry once rt_cancel_init() has run. */
void rt_cancel_init(void);
bool rt_cancel_ready(void);
/* A forwarded call that may wait, made with the guest's signal mask: its result,
 * or RT_CALL_NOT_MADE. vt->kicked says whether a signal came meanwhile. */
long rt_call_interruptible(struct vthread *vt, const hv_regs *r);

/* backtrace.c: the guest's stack unwound from these registers, to stderr */
void rt_backtrace(const hv_regs *r, uint64_t rip, uint64_t rsp);

/* breakpoint.c: whether a tracer (gdb, strace) is attached to this thread */
bool rt_traced(void);
/* A tracer's breakpoint (#BP at an int3 the process's memory
 * holds): the vthread runs on natively from it, and true once it has ended
 * (vt->retval set); false, and nothing done, for any other exit. */
bool rt_breakpoint_native(struct vthread *vt, const struct hv_exit *ex);
/* The end of a vthread running natively: back to rt_breakpoint_native. */
void rt_breakpoint_end(struct vthread *vt, void *ret) __attribute__((noreturn));

/* fault.c */
void rt_fault(struct vthread *vt, const struct hv_exit *ex) __attribute__((noreturn));
/* Enters the guest's handler for the fault's signal, if it has one: 1, else 0.
 * An EFAULT exit's address is in cr2 (0: unknown), its page-fault error code in
 * frame.error, its si_code given. */
int rt_fault_to_handler(struct vthread *vt, struct hv_exit *ex, int code);

/* guestfault.c: for an access to a page the process has not mapped (cr2; an
 * EFAULT exit's frame.error filled in), enters the vthread's fault handler: true,
 * else false (no handler, it declined this one, or not on the vthread's stack). */
bool rt_fault_inject(struct vthread *vt, struct hv_exit *ex);

/* decode.c: the address a refused access touched, from the instruction at RIP:
 * 0 with *addr, *code (SEGV_MAPERR, SEGV_ACCERR) and *write; -ENOENT. */
int rt_fault_address(const struct vthread *vt, const hv_regs *r, uint64_t *addr, int *code,
		     bool *write);
void rt_bad_frame(struct vthread *vt, const hv_regs *r) __attribute__((noreturn));
/*
 * sandbox.c: the sandbox with this attribute id, claimed for one run: 0,
 * -EINVAL (none), -EAGAIN (a vthread runs there). Released by rt_sandbox_main
 * at the end of the run, or by rt_sandbox_release if it never started.
 */
int rt_sandbox_claim(uint32_t id, struct vthread_sandbox **out);
void rt_sandbox_release(struct vthread_sandbox *sb);
/* sbrun.c: on the backing thread, runs vt->fn(vt->sb_args) in vt->sandbox
 * until it returns or breaks a rule; sets vt->retval and releases it. */
void rt_sandbox_main(struct vthread *vt);
/* hostcall.c's vthread_call for a sandbox: fn called by register, not libffi. */
int rt_sandbox_call(const vthread_attr_t *attr, ffi_cif *cif, void (*fn)(void), void *rvalue,
		    void **avalue);
/* vthread.c: vthread_create with every argument register set. */
int rt_create_with_args(vthread_t *out, const vthread_attr_t *attr, void *(*fn)(void *),
			const long args[6]);

void rt_die(struct vthread *vt, const char *what, int err) __attribute__((noreturn));

/* stats.c: registers the VTHREAD_STATS=1 report at exit, unless the shim has its own;
 * rt_stats_thread prints a vthread's counters as it ends (VTHREAD_STATS=2) */
void rt_stats_thread(const struct vthread *vt);
void rt_stats_at_exit(void);
void rt_stats_exiting(void);	/* the process is ending: the report, once */

#endif
