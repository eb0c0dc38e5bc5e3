/* SPDX-License-Identifier: MIT */
/*
 * libvthread: run chosen threads of an ordinary Linux process inside KVM vCPUs.
 *
 * The API mirrors pthreads: same shapes, same error numbers. A vthread runs the
 * process's own code on its own stack at the same virtual addresses; its system
 * calls are performed for it by a backing host thread, whose TLS it shares.
 */
#ifndef VTHREAD_H
#define VTHREAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <ffi.h>

/* The version of this header; vthread_version() gives the library's. */
#define VTHREAD_VERSION_MAJOR 0
#define VTHREAD_VERSION_MINOR 7
#define VTHREAD_VERSION_PATCH 8
#define VTHREAD_VERSION "0.7.8"
/* True when this header is version major.minor.patch or later. */
#define VTHREAD_CHECK_VERSION(major, minor, patch)				\
	(VTHREAD_VERSION_MAJOR > (major) ||					\
	 (VTHREAD_VERSION_MAJOR == (major) && VTHREAD_VERSION_MINOR > (minor)) ||	\
	 (VTHREAD_VERSION_MAJOR == (major) && VTHREAD_VERSION_MINOR == (minor) &&	\
	  VTHREAD_VERSION_PATCH >= (patch)))

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vthread *vthread_t;

/* Opaque; initialise with vthread_attr_init(). */
typedef struct {
	union {
		unsigned char opaque[64];
		long long align_;
	};
} vthread_attr_t;

enum {
	VTHREAD_CREATE_JOINABLE = 0,	/* same values as PTHREAD_CREATE_* */
	VTHREAD_CREATE_DETACHED = 1,
};

/*
 * Returns 0, or an error number as pthread_create would: EINVAL (NULL vt or fn,
 * bad attribute), EAGAIN (no vCPU, thread or memory can be had), ENOSYS (no
 * usable KVM on this machine; see vthread_backend_error()).
 *
 * From a host thread, a vthread may run on the backing thread and vCPU of one
 * that returned and was parked (VTHREAD_PARK=0: never), only where nothing of
 * that one would show: __thread variables at their initial values, no pthread
 * key value, no cancellation pending, the creator's signal mask, scheduling,
 * affinity and name (README, "Parked vthreads"). Its thread ID is then that
 * vthread's.
 */
int vthread_create(vthread_t *vt, const vthread_attr_t *attr,
		   void *(*fn)(void *), void *arg);
/* ESRCH: unknown vthread; EINVAL: detached or already being joined; EDEADLK: self. */
int vthread_join(vthread_t vt, void **retval);
int vthread_detach(vthread_t vt);
/* Ends the calling vthread as pthread_exit() ends a pthread (cleanup handlers run;
 * vthread_join gets retval). Inside a vthread, pthread_exit() does the same. */
void vthread_exit(void *retval) __attribute__((noreturn));
/* The calling vthread, or NULL when called outside a vthread. */
vthread_t vthread_self(void);
int vthread_equal(vthread_t a, vthread_t b);
/*
 * The host thread that backs vt, for the pthread calls that act on a thread from
 * outside: pthread_kill, pthread_sigqueue, pthread_setname_np, the affinity and
 * scheduling calls. Signals sent to it are delivered inside the vthread. Valid
 * while vt is: until it is joined, or until a detached vthread ends; a parked
 * thread may then back another vthread.
 * pthread_cancel on it cancels the vthread, as a pthread's. Joining, detaching
 * and ending a vthread go through vthread_join, vthread_detach and
 * vthread_exit, never through pthread_join, pthread_detach or pthread_exit on
 * this thread. NULL gives 0.
 */
pthread_t vthread_pthread(vthread_t vt);

int vthread_attr_init(vthread_attr_t *attr);
int vthread_attr_destroy(vthread_attr_t *attr);
/* EINVAL below PTHREAD_STACK_MIN, as pthread_attr_setstacksize; it replaces a
 * stack set with vthread_attr_setstack. Getters: EINVAL for NULL. */
int vthread_attr_setstacksize(vthread_attr_t *attr, size_t size);
int vthread_attr_getstacksize(const vthread_attr_t *attr, size_t *size);
/* A caller-owned stack [addr, addr + size); it must stay valid until the vthread
 * ends. EINVAL: NULL addr, size below PTHREAD_STACK_MIN, a range that wraps. */
int vthread_attr_setstack(vthread_attr_t *attr, void *addr, size_t size);
int vthread_attr_getstack(const vthread_attr_t *attr, void **addr, size_t *size);
/* The PROT_NONE gap below a runtime-allocated stack, in bytes rounded up to
 * pages (default one page; 0: none); address space only. vthread_create gives
 * EINVAL when stack and guard overflow together. Ignored with
 * vthread_attr_setstack. */
int vthread_attr_setguardsize(vthread_attr_t *attr, size_t size);
int vthread_attr_getguardsize(const vthread_attr_t *attr, size_t *size);
int vthread_attr_setdetachstate(vthread_attr_t *attr, int state);
int vthread_attr_getdetachstate(const vthread_attr_t *attr, int *state);

/*
 * How a vthread's system calls reach the host. EXIT: each is a guest exit,
 * made by the vthread's backing thread. RING: the calls the runtime knows to
 * be prompt and thread-independent are posted to a host server thread without
 * an exit; the rest exit as before (README, "System calls"). AUTO, the
 * default: VTHREAD_SYSCALLS=exit|ring|auto if set, else RING where an exit
 * costs 10 us or more and there are two CPUs or more, else EXIT. Results and
 * errno are the same either way.
 */
enum {
	VTHREAD_SYSCALL_AUTO = 0,
	VTHREAD_SYSCALL_EXIT = 1,
	VTHREAD_SYSCALL_RING = 2,
};
int vthread_attr_setsyscallmode(vthread_attr_t *attr, int mode);	/* EINVAL: no such mode */
int vthread_attr_getsyscallmode(const vthread_attr_t *attr, int *mode);

/*
 * A fault handler runs inside the faulting vthread, in its context (on its own
 * stack, below the red zone, with every register and the FPU state saved), when
 * one of its accesses breaks a protection set by vthread_mprotect or touches a
 * page the process has not mapped. RETRY runs the access again (the handler
 * fixed its cause, e.g. with vthread_mprotect); SIGNAL goes on as without a
 * handler: the program's SIGSEGV handler, or the report and SIGSEGV. On
 * kvm_intel and kvm_amd a fault on a protection, which the handler fixes,
 * makes no guest exit; one on unmapped memory costs the exit that finds it
 * unmapped. Faults taken on another stack than the vthread's own (sigaltstack,
 * a coroutine's) go straight to SIGSEGV. vthread_attr_setfaulthandler: fn NULL
 * removes it; EINVAL: attr not initialised.
 */
struct vthread_fault {
	void *addr;		/* the address the access touched */
	unsigned long ip;	/* the faulting instruction */
	int access;		/* PROT_READ, PROT_WRITE or PROT_EXEC: what was attempted */
};
enum { VTHREAD_FAULT_RETRY = 0, VTHREAD_FAULT_SIGNAL = 1 };
typedef int (*vthread_fault_fn)(const struct vthread_fault *f, void *ctx);
int vthread_attr_setfaulthandler(vthread_attr_t *attr, vthread_fault_fn fn, void *ctx);
int vthread_attr_getfaulthandler(const vthread_attr_t *attr, vthread_fault_fn *fn, void **ctx);

/*
 * Interrupts. An interrupt handler runs inside the interrupted vthread, in its
 * context (on its stack below the red zone, every register, the flags, the
 * whole vector state (XSAVE: x87, SSE, AVX, AVX-512 where the CPU has them)
 * and errno saved and restored; before 0.7.3 not the upper halves of the AVX
 * registers), between any two of its
 * instructions, also while it spins without system calls; returning resumes
 * the interrupted code. It runs with further interrupts held back (they wait,
 * coalesced, until it returns) and must be async-signal-safe, as a signal
 * handler. A vthread without a handler ignores pokes and its timer.
 *
 * A vthread inside a system call that exits to the host (a blocking read,
 * futex, nanosleep...) takes its interrupts when the call returns; they do not
 * interrupt the call (no EINTR). Signals and interrupts nest either way: a
 * signal handler may be interrupted, and a signal may arrive in an interrupt
 * handler.
 *
 * Interrupts come from KVM's in-kernel local APIC: a poke or a timer expiry
 * reaches a running vthread without a guest exit to the process, on kvm_intel
 * and kvm_amd, and on kvm_pvm since 0.7.3 (before, ENOTSUP there), where each
 * APIC access traps into KVM (~3 µs; vthread_poke(3)). A backend without them
 * gives ENOTSUP for a vthread with an interrupt handler, and for vthread_timer.
 */
enum { VTHREAD_IRQ_POKE = 1, VTHREAD_IRQ_TIMER = 2 };
typedef void (*vthread_irq_fn)(int source, void *ctx);
/* fn NULL removes it; EINVAL: attr not initialised. */
int vthread_attr_setirqhandler(vthread_attr_t *attr, vthread_irq_fn fn, void *ctx);
int vthread_attr_getirqhandler(const vthread_attr_t *attr, vthread_irq_fn *fn, void **ctx);
/* From any thread, host or vthread: vt runs its handler with VTHREAD_IRQ_POKE as
 * soon as it can. Pokes that arrive while one is pending coalesce, as on an
 * interrupt line; one sent after the handler started runs it again. 0, or ESRCH:
 * vt has ended (a handle not yet joined). */
int vthread_poke(vthread_t vt);
/* In a vthread: its own timer, first after first_ns, then every period_ns (0:
 * once); first_ns 0 disarms it. Expiries missed while interrupts were held or
 * the vthread was in a system call coalesce into one, and the period keeps its
 * phase. EPERM outside a vthread; EINVAL: first_ns past 2^63. */
int vthread_timer(uint64_t first_ns, uint64_t period_ns);
/* In a vthread: hold back its interrupts, and let them through again (cli and
 * sti): what arrived meanwhile runs in vthread_irq_enable. Nestable; inside the
 * handler interrupts stay held until it returns. EPERM outside a vthread;
 * vthread_irq_enable: EINVAL when not disabled. */
int vthread_irq_disable(void);
int vthread_irq_enable(void);

/*
 * Calls across the boundary, described with libffi (any signature: doubles,
 * structs by value, long double, variadic with ffi_prep_cif_var).
 *
 * vthread_hostcall: from a vthread, calls fn on its backing host thread,
 * outside the guest, as ffi_call(cif, fn, rvalue, avalue) would; from a host
 * thread it is that ffi_call. The function runs with every signal blocked
 * (they reach the vthread when it returns) and may set errno for the caller;
 * it runs with the vthread's TLS, so vthread_self() there still names it.
 * 0, or EINVAL for a NULL cif or fn.
 */
int vthread_hostcall(ffi_cif *cif, void (*fn)(void), void *rvalue, void **avalue);
/* The same for up to six integer or pointer arguments and a long result:
 * *ret = fn(args[0], ..., args[nargs - 1]). EINVAL: NULL fn or ret, nargs > 6. */
int vthread_hostcall_long(long *ret, void (*fn)(void), unsigned nargs, const long *args);

/*
 * From the host: runs fn as ffi_call(cif, fn, rvalue, avalue) inside a new
 * vthread made with attr (NULL: defaults) and waits for it; rvalue holds the
 * result. 0, EINVAL (NULL cif or fn, bad or detached attr), or vthread_create's error.
 * Each call makes a vthread, on a parked thread where one fits (vthread_create).
 */
int vthread_call(const vthread_attr_t *attr, ffi_cif *cif, void (*fn)(void), void *rvalue,
		 void **avalue);

/*
 * "kvm-pvm", "kvm-vmx" or "kvm-svm", or NULL when no usable KVM was found, in
 * which case vthread_backend_error() says why. The first call sets up the VM.
 */
const char *vthread_backend(void);
const char *vthread_backend_error(void);

/*
 * What the backend gives vthreads, for code that wants more than the pthread
 * model: a mask of VTHREAD_FEAT_*, 0 when there is no usable KVM. kvm-svm and
 * kvm-vmx have all but the third, which they have where the CPU has 1 GiB pages;
 * kvm-pvm has the last two (README, "Backends").
 */
enum {
	/* Guest supervisor code runs at hardware CPL0: privileged instructions
	 * and the CPU's own protection checks behave as on bare metal. */
	VTHREAD_FEAT_RING0 = 1 << 0,
	/* Guest page tables can hide pages from guest user mode (U=0). */
	VTHREAD_FEAT_SUPERVISOR_PAGES = 1 << 1,
	/* The address-space mirror maps 1 GiB at a time where it can. */
	VTHREAD_FEAT_HUGE_1G = 1 << 2,
	/* Interrupts: vthread_poke, vthread_timer (every backend, since 0.7.3). */
	VTHREAD_FEAT_INTERRUPTS = 1 << 3,
	/* A vthread pokes another with a write to its local APIC, without an exit;
	 * else through a host call. Missing only on kvm_amd without NRIP save
	 * (CPU emulators), where KVM cannot skip that write in its fast path. */
	VTHREAD_FEAT_GUEST_IPI = 1 << 4,
};
unsigned vthread_backend_features(void);

/*
 * Guest-side protection of [addr, addr + len), addr page-aligned, len rounded
 * up to whole pages: what every vthread of the process sees from then on, as
 * mprotect(2) sets it for threads: PROT_NONE, or PROT_READ, PROT_WRITE and
 * PROT_EXEC combined (on x86, write and exec imply read). Host threads keep
 * the host's protection, and a vthread never gets more than the host allows:
 * a vthread's write to host-read-only memory faults whatever the guest side
 * says. Protections belong to addresses: they outlive an munmap until the
 * 1 GiB range holds nothing mapped, and a fork child starts without them.
 * Callable from host threads and vthreads, also inside a fault handler. From a
 * vthread, a change to 2 MiB that already hold protected pages is made in the
 * guest without an exit, unless it takes rights away while another vCPU may
 * cache the old ones; the first change in a 2 MiB range, and such a
 * shoot-down, cost an exit and a flush of every vCPU's translations.
 * Errors: EINVAL (unaligned addr, unknown prot bits), ENOMEM (outside the
 * address space, or a page the process has not mapped), ENOSYS (no usable
 * KVM), EAGAIN (out of memory or memory slots).
 */
int vthread_mprotect(void *addr, size_t len, int prot);

/*
 * Dirty-page tracking of [addr, addr + len): addr and len whole 4 KiB pages,
 * memory the process maps when tracking starts. What is reported are writes
 * made by vthreads, every one of them, exactly, with KVM's dirty log and no
 * guest exit; writes made by host threads are NOT reported. To get those too,
 * track the host side with soft-dirty bits (write 4 to /proc/self/clear_refs,
 * read bit 55 of /proc/self/pagemap) or userfaultfd's write-protect mode.
 * Callable from host threads and vthreads (there, one exit per call). Tracked
 * ranges may not overlap; tracking ends with vthread_dirty_stop, or in a fork
 * child, which starts untracked (the parent's tracking goes on).
 * Errors: EINVAL (unaligned, len 0), ENOMEM (outside the address space, or a
 * page the process has not mapped), EBUSY (overlaps a tracked range), ENOSYS
 * (no usable KVM), EAGAIN (out of memory or memory slots).
 */
int vthread_dirty_start(void *addr, size_t len);
/*
 * For [addr, addr + len) inside one tracked range: sets bit i (bitmap[i / 64]
 * >> (i % 64)) for each page i written by a vthread since the start or since
 * the previous collect of that page, clears the others of the (len / 4096 + 63)
 * / 64 words, and starts a new interval. A write racing the collect is in this
 * bitmap or the next one, never in none. EINVAL: not inside a tracked range,
 * NULL bitmap, unaligned.
 */
int vthread_dirty_collect(void *addr, size_t len, uint64_t *bitmap);
/* Ends the tracking started with exactly this range; EINVAL: no such range. */
int vthread_dirty_stop(void *addr, size_t len);

/*
 * Process-wide counters: what VTHREAD_STATS=1 prints at exit, and vcpus_busy. The
 * caller sets size to sizeof(struct vthread_stats) (VTHREAD_STATS_INIT does), so
 * that the struct can grow: the library fills what both it and the caller know,
 * zeroes the caller's fields it does not know, and sets size to the bytes it
 * filled. EINVAL: NULL st, or size below sizeof(size_t) + one counter.
 */
struct vthread_stats {
	size_t size;
	unsigned long vthreads_created;
	unsigned long vthreads_live;	/* created and not yet joined or reaped */
	unsigned long vcpus;		/* vCPUs created; they are pooled and reused */
	unsigned long vcpus_busy;	/* running a vthread: parked ones' are not */
	unsigned long memslots;		/* in KVM now: chunks of unmapped memory lose theirs */
	unsigned long runtime_bytes;	/* runtime memory guests see: tables, stacks (cached too) */
	/* guest exits, by reason */
	unsigned long exit_syscall;	/* forwarded system calls */
	unsigned long exit_mirror;	/* page faults that grew the address-space mirror */
	unsigned long exit_fault;	/* faults: those a handler recovered from, and fatal ones */
	unsigned long exit_end;		/* vthread returned or called vthread_exit */
	unsigned long exit_signal;	/* KVM_RUN interrupted by a host signal */
	unsigned long exit_null;	/* empty exits (the benchmark's floor) */
	unsigned long exit_other;
	unsigned long exit_ring;	/* ring calls that ended in an exit after all */
	unsigned long exit_hostcall;	/* vthread_hostcall() from a vthread */
	unsigned long syscalls_ring;	/* system calls made without an exit */
	/* vthreads created on a parked backing thread (README, "Parked vthreads") */
	unsigned long vthreads_reused;
	unsigned long vthreads_parked;	/* backing threads parked now, each with a vCPU */
	/* since 0.7.4: why ring calls ended in an exit (exit_ring counts these and
	 * calls a server finished as the guest gave up waiting) */
	unsigned long ring_late;	/* no server took it in time: the exit path made it */
	unsigned long ring_no_server;	/* of ring_late: given up early, no server running */
	unsigned long ring_bounced;	/* it would wait, or reads the caller's CPU clock: the
					 * exit path made (the rest of) it */
	/* since 0.7.5: of syscalls_ring, the calls another ring vthread's backing
	 * thread made, its guest having given up on a server that was not running */
	unsigned long ring_helped;
};
#define VTHREAD_STATS_INIT { .size = sizeof(struct vthread_stats) }
int vthread_get_stats(struct vthread_stats *st);

/*
 * One vthread's counters since it started, sized as struct vthread_stats
 * (VTHREAD_THREAD_STATS_INIT): its exits by reason (as above), its system
 * calls by path, the faults its handler took in the guest, its interrupts, and
 * its time in the guest. VTHREAD_STATS=2 prints them as each vthread ends. Any
 * vthread not yet joined or reaped, the caller itself included. ESRCH: no such
 * vthread; EINVAL: NULL st, or size below sizeof(size_t) + one counter.
 */
struct vthread_thread_stats {
	size_t size;
	unsigned long exit_syscall;	/* system calls forwarded by an exit */
	unsigned long exit_mirror;
	unsigned long exit_fault;
	unsigned long exit_end;
	unsigned long exit_signal;
	unsigned long exit_null;
	unsigned long exit_other;
	unsigned long exit_ring;
	unsigned long exit_hostcall;
	unsigned long syscalls_ring;	/* system calls a ring server made: no exit */
	unsigned long faults_in_guest;	/* its fault handler's runs without an exit */
	unsigned long irqs;		/* its interrupt handler's runs */
	unsigned long long guest_ns;	/* in KVM_RUN: its code and the runtime's guest side */
};
#define VTHREAD_THREAD_STATS_INIT { .size = sizeof(struct vthread_thread_stats) }
int vthread_get_thread_stats(vthread_t vt, struct vthread_thread_stats *st);

/*
 * Sandboxes: a sandboxed vthread runs in a VM of its own that holds only the
 * memory granted to the sandbox and the runtime's pages for it (its code page,
 * descriptor tables, a 1 MiB stack and a TLS block with a stack-protector
 * canary); its system calls go through the sandbox's policy. The code is
 * assumed hostile: whatever it does at guest supervisor level stays inside
 * its grants (README, "Sandboxes"). One vthread runs in a sandbox at a time.
 * Functions: 0 or an error number; EINVAL for a NULL or destroyed sandbox.
 */
typedef struct vthread_sandbox *vthread_sandbox_t;
/* ENOSYS without KVM, ENOTSUP where KVM has no read-only memory slots, EAGAIN
 * when no VM or memory can be had. */
int vthread_sandbox_create(vthread_sandbox_t *sb);
/* EBUSY while a vthread runs in it. */
int vthread_sandbox_destroy(vthread_sandbox_t sb);
/*
 * Grants [addr, addr + len) with prot (PROT_READ, _WRITE, _EXEC; at least
 * one): the sandbox sees it at the same address. addr page aligned, len
 * rounded up to pages, and mapped by the process as long as the sandbox lives
 * (a range unmapped and mapped again is granted with what is there then);
 * EINVAL for those, for other prot bits, or for a range that overlaps an
 * earlier grant; ENOMEM where the process maps no memory, or
 * too many pages are granted; EBUSY while a vthread runs in the sandbox.
 * The code must be granted PROT_EXEC. Grants last as long as the sandbox.
 */
int vthread_sandbox_grant(vthread_sandbox_t sb, void *addr, size_t len, int prot);
/*
 * System calls are denied (-ENOSYS) unless allowed here, when they are made
 * on the host as for an ordinary vthread. Only calls whose memory arguments
 * the runtime checks against the grants can be allowed: read, write, pread64,
 * pwrite64, close, lseek, getpid, getppid, gettid, sched_yield, clock_gettime,
 * clock_getres, gettimeofday, nanosleep, clock_nanosleep, getrandom; ENOTSUP
 * for others (give them to the handler). A call whose memory lies outside the
 * grants ends the vthread (VTHREAD_VIOLATION_SYSCALL); one on a descriptor of
 * the runtime's (/dev/kvm, a VM, a vCPU) gets -EBADF.
 */
int vthread_sandbox_allow(vthread_sandbox_t sb, long nr);
/*
 * Runs on a host thread (the vthread's backing thread; vthread_call's caller)
 * for every call that is not allowed; its result (or -errno) is what the sandboxed code gets. Pointers in
 * args are the guest's: vthread_sandbox_check them before use. NULL fn: back
 * to -ENOSYS.
 */
typedef long (*vthread_syscall_fn)(long nr, const long args[6], void *ctx);
int vthread_sandbox_set_syscall_handler(vthread_sandbox_t sb, vthread_syscall_fn fn, void *ctx);
/* 0 when grants with at least prot cover [addr, addr + len); else EFAULT. */
int vthread_sandbox_check(vthread_sandbox_t sb, const void *addr, size_t len, int prot);
/* CPU time a vthread may spend in the sandbox per run (guest and system calls);
 * 0: no limit. */
int vthread_sandbox_set_time_limit(vthread_sandbox_t sb, uint64_t ns);
/*
 * vthreads created with this attribute run in the sandbox (NULL: none). Their
 * start routine gets arg in RDI as usual; the attribute's stack and fault or
 * interrupt handler do not apply (EINVAL at create for a handler), and
 * signals sent to the backing thread wait until the vthread ends. EAGAIN at
 * create while another vthread runs in the sandbox.
 *
 * vthread_call with it runs fn in the sandbox, not through libffi, which the
 * sandbox does not hold: up to six integer or pointer arguments and an
 * integer, pointer or void result; ENOTSUP for other signatures, ECANCELED
 * when the call ended in a violation, EAGAIN while another vthread runs in the
 * sandbox. From a host thread it runs the vCPU on that thread, no vthread
 * made, its signals held until the call returns.
 */
int vthread_attr_setsandbox(vthread_attr_t *attr, vthread_sandbox_t sb);
int vthread_attr_getsandbox(const vthread_attr_t *attr, vthread_sandbox_t *sb);
/*
 * A sandboxed vthread that breaks out of its grants, runs past its time limit
 * or faults ends; vthread_join gives VTHREAD_SANDBOX_VIOLATION, and
 * vthread_sandbox_violation the sandbox's latest violation (ENOENT: none yet).
 * Its fields are what the guest's state said: hostile code can forge them.
 */
#define VTHREAD_SANDBOX_VIOLATION ((void *)-2)
enum {
	VTHREAD_VIOLATION_MEMORY = 1,	/* an access outside the grants or their prot: addr */
	VTHREAD_VIOLATION_FAULT,	/* another CPU exception: signo says which */
	VTHREAD_VIOLATION_TIME,		/* past the time limit */
	VTHREAD_VIOLATION_SYSCALL,	/* an allowed call's memory outside the grants: addr */
	VTHREAD_VIOLATION_EXIT,		/* an exit the sandbox offers no way to (hlt, `out`
					 * to a port of the runtime's, a triple fault) */
};
struct vthread_violation {
	int kind;		/* VTHREAD_VIOLATION_* */
	void *addr;		/* the address, where the kind has one */
	unsigned long ip;	/* the guest's RIP */
	long syscall_nr;	/* VTHREAD_VIOLATION_SYSCALL: the call; else -1 */
	int signo;		/* the signal a pthread would have got, or 0 */
};
int vthread_sandbox_violation(vthread_sandbox_t sb, struct vthread_violation *v);
/*
 * Snapshot copies the granted writable memory; reset restores it, copying
 * only the pages written since the snapshot: by the sandboxed code (KVM's
 * dirty log) or by allowed calls. Pages the host's own threads write are not
 * tracked. Reset without a snapshot: EINVAL. EBUSY while a vthread runs in
 * the sandbox.
 */
int vthread_sandbox_snapshot(vthread_sandbox_t sb);
int vthread_sandbox_reset(vthread_sandbox_t sb);

/* The library's version, "MAJOR.MINOR.PATCH": the one loaded, not the header's. */
const char *vthread_version(void);

#ifdef __cplusplus
}
#endif
#endif
