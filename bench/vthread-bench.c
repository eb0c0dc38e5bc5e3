/* SPDX-License-Identifier: MIT */
/*
 * vthread-bench: system calls, pthreads and vthreads measured side by side.
 * Every row runs the same body as a pthread and as a vthread, alternating sample
 * by sample, so that a shared machine's noise falls on both alike. The clock is
 * the vDSO's CLOCK_MONOTONIC, which runs natively inside the guest too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <linux/userfaultfd.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vthread.h>

#include "bench.h"
#include "commit.h"		/* BENCH_COMMIT, from meson's vcs_tag */
#include "vthread-bench-gp.h"	/* gnuplot_script: vthread-bench.gp, embedded */

void hv_guest_null_exit(void);	/* libvthread internal, reached by static linking */
void rt_bench_null_syscalls_on(void);	/* likewise */
void rt_bench_null_syscalls_off(void);

static bool quick;

double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- bodies: each returns nanoseconds per operation, as a double in a box */

struct job {
	void (*fn)(struct job *);
	long n;			/* operations */
	int mode;		/* a vthread's VTHREAD_SYSCALL_* */
	vthread_fault_fn fault;	/* a vthread's fault handler */
	vthread_irq_fn irq;	/* a vthread's interrupt handler */
	double ns;		/* result: per operation */
};

static void *run_job(void *p)
{
	struct job *j = p;

	j->fn(j);
	return NULL;
}

static void body_empty(struct job *j)
{
	(void)j;
}

/* A written __thread variable keeps a vthread's backing thread from being
 * parked for the next (runtime/park.c): each create makes a fresh thread. */
static __thread int touched;

static void body_touch_tls(struct job *j)
{
	(void)j;
	touched++;
}

static void body_getppid(struct job *j)
{
	double t = now_ns();

	for (long i = 0; i < j->n; i++)
		getppid();
	j->ns = (now_ns() - t) / j->n;
}

/* getppid() by a `syscall` of the bench's own: the runtime rewrites only libc's
 * (runtime/rewrite.c), so this one always traps. */
static void body_raw_getppid(struct job *j)
{
	double t = now_ns();

	for (long i = 0; i < j->n; i++) {
		long r = SYS_getppid;

		__asm__ volatile("syscall" : "+a"(r) : : "rcx", "r11", "memory");
	}
	j->ns = (now_ns() - t) / j->n;
}

static void body_yield(struct job *j)
{
	double t = now_ns();

	for (long i = 0; i < j->n; i++)
		sched_yield();
	j->ns = (now_ns() - t) / j->n;
}

static ffi_cif empty_cif;	/* void (void) */

/* A `syscall` that lands on a stub that returns at once: the trap alone. */
static void body_null_syscall(struct job *j)
{
	vthread_hostcall(&empty_cif, rt_bench_null_syscalls_on, NULL, NULL);
	body_raw_getppid(j);
	vthread_hostcall(&empty_cif, rt_bench_null_syscalls_off, NULL, NULL);
}

static void body_null_exit(struct job *j)
{
	double t = now_ns();

	for (long i = 0; i < j->n; i++)
		hv_guest_null_exit();
	j->ns = (now_ns() - t) / j->n;
}

static void body_sieve(struct job *j)
{
	char *composite = malloc(j->n);
	double t;
	long primes = 0;

	memset(composite, 0, j->n);	/* pages faulted in before the clock: compute only */
	t = now_ns();

	for (long i = 2; i < j->n; i++) {
		if (composite[i])
			continue;
		primes++;
		for (long k = i * i; k < j->n; k += i)
			composite[k] = 1;
	}
	j->ns = (now_ns() - t) / j->n;
	free(composite);
	if (primes == 0)
		abort();
}

/* First writes to j->n fresh pages; huge: in 2 MiB-aligned memory that asks
 * for transparent huge pages (MADV_HUGEPAGE), where the kernel has them. */
static void first_touch(struct job *j, bool huge)
{
	size_t len = j->n * 4096, extra = huge ? 2 << 20 : 0;
	char *m = mmap(NULL, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0), *p;
	double t;

	if (m == MAP_FAILED)
		abort();
	p = huge ? (char *)(((uintptr_t)m + extra - 1) & ~(uintptr_t)(extra - 1)) : m;
	if (huge)
		madvise(p, len, MADV_HUGEPAGE);
	t = now_ns();
	for (long i = 0; i < j->n; i++)
		p[i * 4096] = 1;
	j->ns = (now_ns() - t) / j->n;
	munmap(m, len + extra);
}

static void body_first_touch(struct job *j)
{
	first_touch(j, false);
}

static void body_first_touch_thp(struct job *j)
{
	first_touch(j, true);
}

#define RANDOM_BYTES (256ul << 20)
static uint64_t *random_area;

/* xorshift64: the random addresses of the memory rows */
static uint64_t next_random(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void body_random_access(struct job *j)
{
	uint64_t x = 88172645463325252ull, sum = 0;
	size_t words = RANDOM_BYTES / 8;
	double t = now_ns();

	for (long i = 0; i < j->n; i++)
		sum += random_area[next_random(&x) % words];
	j->ns = (now_ns() - t) / j->n;
	if (sum == 1)
		abort();
}

/*
 * Dirty tracking: per interval, n random 8-byte writes over the page-aligned
 * 256 MiB inside random_area, then a collect into a bitmap. A vthread uses
 * vthread_dirty_*; a pthread has soft-dirty bits or, on Linux 6.7+,
 * userfaultfd's asynchronous write protection with PAGEMAP_SCAN, whichever is
 * faster in that sample.
 */
#ifndef PAGEMAP_SCAN	/* Linux 6.7's ABI, for older headers */
struct page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif

#define DIRTY_INTERVALS	20
#define DIRTY_LEN	(RANDOM_BYTES - 4096)
#define DIRTY_PAGES	(DIRTY_LEN / 4096)
static uint64_t dirty_bits[(DIRTY_PAGES + 63) / 64];
static int pagemap_fd = -1, clear_refs_fd = -1;

static uint64_t *dirty_base(void)
{
	return (uint64_t *)(((uintptr_t)random_area + 4095) & ~4095ul);
}

static void dirty_writes(long n, uint64_t *x)
{
	uint64_t *base = dirty_base();

	for (long i = 0; i < n; i++)
		base[next_random(x) % (DIRTY_LEN / 8)] = i;
}

static void soft_dirty_collect(void)
{
	static uint64_t pm[DIRTY_PAGES];

	if (pread(pagemap_fd, pm, sizeof(pm), (uintptr_t)dirty_base() / 4096 * 8) != sizeof(pm))
		abort();
	memset(dirty_bits, 0, sizeof(dirty_bits));
	for (size_t i = 0; i < DIRTY_PAGES; i++)
		dirty_bits[i / 64] |= (pm[i] >> 55 & 1) << (i % 64);
	if (pwrite(clear_refs_fd, "4", 1, 0) != 1)
		abort();
}

/* 0, or -1 where the kernel lacks asynchronous write protection. */
static int uffd_arm(void)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct uffdio_register reg = { .range = { (uintptr_t)dirty_base(), DIRTY_LEN },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .range = reg.range, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg) ||
	    ioctl(fd, UFFDIO_WRITEPROTECT, &wp)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void uffd_collect(void)
{
	static struct page_region r[4096];
	struct pm_scan_arg a = {
		.size = sizeof(a), .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)dirty_base(), .end = (uintptr_t)dirty_base() + DIRTY_LEN,
		.vec = (uintptr_t)r, .vec_len = 4096,
		.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
	};
	long n;

	memset(dirty_bits, 0, sizeof(dirty_bits));
	do {
		n = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
		if (n < 0)
			abort();
		for (long i = 0; i < n; i++)
			for (uint64_t p = r[i].start; p < r[i].end; p += 4096) {
				size_t k = (p - (uintptr_t)dirty_base()) / 4096;

				dirty_bits[k / 64] |= 1ull << (k % 64);
			}
		a.start = a.walk_end;
	} while (a.walk_end < a.end);
}

enum { DIRTY_KVM, DIRTY_SOFT, DIRTY_UFFD };
static int dirty_how;
static bool have_soft_dirty, have_uffd_async;

/* What this kernel offers a pthread: soft-dirty bits that work, and WP_ASYNC. */
static void dirty_probe(void)
{
	uint64_t *page = dirty_base(), e = 0;
	int fd = uffd_arm();

	if (pwrite(clear_refs_fd, "4", 1, 0) == 1) {
		*(volatile uint64_t *)page = 2;
		have_soft_dirty = pread(pagemap_fd, &e, 8, (uintptr_t)page / 4096 * 8) == 8 &&
				  (e >> 55 & 1);
	}
	have_uffd_async = fd >= 0;
	if (fd >= 0)
		close(fd);
}

static void body_dirty(struct job *j)
{
	uint64_t x = 88172645463325252ull;
	int fd = -1;
	double t;

	if (dirty_how == DIRTY_KVM && vthread_dirty_start(dirty_base(), DIRTY_LEN))
		abort();
	if (dirty_how == DIRTY_SOFT && pwrite(clear_refs_fd, "4", 1, 0) != 1)
		abort();
	if (dirty_how == DIRTY_UFFD && (fd = uffd_arm()) < 0)
		abort();
	t = now_ns();
	for (int i = 0; i < DIRTY_INTERVALS; i++) {
		dirty_writes(j->n, &x);
		if (dirty_how == DIRTY_KVM) {
			if (vthread_dirty_collect(dirty_base(), DIRTY_LEN, dirty_bits))
				abort();
		} else {
			(dirty_how == DIRTY_SOFT ? soft_dirty_collect : uffd_collect)();
		}
	}
	j->ns = (now_ns() - t) / DIRTY_INTERVALS;
	if (dirty_how == DIRTY_KVM)
		vthread_dirty_stop(dirty_base(), DIRTY_LEN);
	if (fd >= 0)
		close(fd);	/* unregisters the range */
}

/*
 * Appel and Li's virtual-memory primitives, as Dune measured them: a pthread
 * has mprotect and a SIGSEGV handler, a vthread vthread_mprotect and its fault
 * handler. The handler unprotects the faulting page; in appel1 it also
 * protects the page of the fault before.
 */
#define VM_PAGES	100
#define VM_BYTES	(VM_PAGES * 4096ul)
static char *vm_area;
static int (*vm_protect)(void *, size_t, int);
static bool vm_appel1;
static char *vm_prev;

static void vm_fix(void *addr)
{
	char *page = (char *)((uintptr_t)addr & ~4095ul);

	if (vm_protect(page, 4096, PROT_READ | PROT_WRITE))
		abort();
	if (vm_appel1) {
		if (vm_prev && vm_protect(vm_prev, 4096, PROT_READ))
			abort();
		vm_prev = page;
	}
}

static void vm_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	vm_fix(si->si_addr);
}

static int vm_fault(const struct vthread_fault *f, void *ctx)
{
	(void)ctx;
	vm_fix(f->addr);
	return VTHREAD_FAULT_RETRY;
}

static void vm_protect_all(int prot)
{
	if (vm_protect(vm_area, VM_BYTES, prot))
		abort();
}

/* Every page writable for both kinds, protected again with the kind's call. */
static void vm_reset(int prot)
{
	if (mprotect(vm_area, VM_BYTES, PROT_READ | PROT_WRITE) ||
	    vthread_mprotect(vm_area, VM_BYTES, PROT_READ | PROT_WRITE))
		abort();
	vm_protect_all(prot);
	vm_prev = NULL;
}

static void vm_protect_first(void)
{
	if (vm_protect(vm_area, 4096, PROT_READ))
		abort();
}

static void vm_write_first(void)
{
	vm_area[0]++;
}

static void vm_unprotect_all(void)
{
	vm_protect_all(PROT_READ | PROT_WRITE);
}

static void vm_protect_all_ro(void)
{
	vm_protect_all(PROT_READ);
}

/* prot1: protect a page, write it: the fault, the handler's unprotect, the write. */
static void body_prot1(struct job *j)
{
	double t;

	vm_reset(PROT_READ | PROT_WRITE);
	t = now_ns();
	for (long i = 0; i < j->n; i++) {
		vm_protect_first();
		vm_write_first();
	}
	j->ns = (now_ns() - t) / j->n;
}

/* trap and protN: per round, one step timed and the step that undoes it not. */
static double vm_timed(struct job *j, void (*timed)(void), void (*untimed)(void))
{
	double sum = 0;

	vm_reset(PROT_READ | PROT_WRITE);
	for (long i = 0; i < j->n; i++) {
		double t;

		untimed();
		t = now_ns();
		timed();
		sum += now_ns() - t;
	}
	return sum / j->n;
}

/* trap: the write alone, fault and handler included. */
static void body_trap(struct job *j)
{
	j->ns = vm_timed(j, vm_write_first, vm_protect_first);
}

/* protN: one call protecting 100 pages. */
static void body_protn(struct job *j)
{
	j->ns = vm_timed(j, vm_protect_all_ro, vm_unprotect_all);
}

/* appel1: writes to random pages of 100 protected ones, per write. */
static void body_appel1(struct job *j)
{
	uint64_t x = 88172645463325252ull;
	double t;

	vm_reset(PROT_READ);
	vm_appel1 = true;
	t = now_ns();
	for (long i = 0; i < j->n; i++)
		vm_area[next_random(&x) % VM_PAGES * 4096]++;
	j->ns = (now_ns() - t) / j->n;
	vm_appel1 = false;
}

/* appel2: protect 100 pages with one call, write each, per page. */
static void body_appel2(struct job *j)
{
	double t;

	vm_reset(PROT_READ | PROT_WRITE);
	t = now_ns();
	for (long i = 0; i < j->n; i++) {
		vm_protect_all_ro();
		for (int p = 0; p < VM_PAGES; p++)
			vm_area[p * 4096]++;
	}
	j->ns = (now_ns() - t) / (j->n * VM_PAGES);
}

/*
 * Ping-pong: the measured thread and a partner pthread take turns on one line.
 * Where the two have no CPU each (a busy machine), each turn waits for a time
 * slice: a sample stops after PING_BUDGET_NS, or it would take minutes.
 */
#define PING_BUDGET_NS	2.5e8
#define PING_STOP	(-1L)

static volatile long turn __attribute__((aligned(64)));

static void *partner_pong(void *p)
{
	long n = (long)p, t;

	for (long i = 0; i < n; i++) {
		while ((t = __atomic_load_n(&turn, __ATOMIC_ACQUIRE)) != 2 * i + 1)
			if (t == PING_STOP)
				return NULL;
		__atomic_store_n(&turn, 2 * i + 2, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void body_ping(struct job *j)
{
	double t = now_ns();
	long i = 0;

	while (i < j->n) {
		__atomic_store_n(&turn, 2 * i + 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != 2 * i + 2)
			;
		if (!(++i & 63) && now_ns() - t > PING_BUDGET_NS)
			break;
	}
	j->ns = (now_ns() - t) / i;
	__atomic_store_n(&turn, PING_STOP, __ATOMIC_RELEASE);
}

static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static long handoff_count;
static volatile int handoff_ready;

/* Both threads start the clock together, or the first would finish uncontended. */
static void body_mutex(struct job *j)
{
	double t;

	__atomic_add_fetch(&handoff_ready, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&handoff_ready, __ATOMIC_SEQ_CST) < 2)
		;
	t = now_ns();

	for (long i = 0; i < j->n; i++) {
		pthread_mutex_lock(&handoff_lock);
		handoff_count++;
		pthread_mutex_unlock(&handoff_lock);
	}
	j->ns = (now_ns() - t) / j->n;
}

static int pipe_fd[2];

static void *drain_pipe(void *p)
{
	char buf[65536];

	(void)p;
	while (read(pipe_fd[0], buf, sizeof(buf)) > 0)
		;
	return NULL;
}

static void body_pipe_write(struct job *j)
{
	static char page[4096];
	double t = now_ns();

	for (long i = 0; i < j->n; i++)
		if (write(pipe_fd[1], page, sizeof(page)) != sizeof(page))
			abort();
	j->ns = (now_ns() - t) / j->n;
}

/*
 * The ring's shape without a VM (pipe-write-handoff): a pthread hands each
 * write to a helper pthread that makes it without waiting (RWF_NOWAIT; what
 * would wait, the poster makes itself, as the exit path would) and spins for
 * the answer, as a ring vthread and its server do. What that shape costs where
 * the poster, the helper and the drainer share the machine's CPUs.
 */
enum { HANDOFF_IDLE, HANDOFF_POSTED, HANDOFF_DONE, HANDOFF_WOULD_WAIT };
static struct {
	_Atomic int state __attribute__((aligned(64)));
	_Atomic bool stop;
} handoff;

static void *handoff_helper(void *p)
{
	static char page[4096];
	struct iovec iov = { page, sizeof(page) };

	(void)p;
	while (!handoff.stop)
		if (handoff.state == HANDOFF_POSTED)
			handoff.state = pwritev2(pipe_fd[1], &iov, 1, -1, RWF_NOWAIT) == sizeof(page) ?
				HANDOFF_DONE : HANDOFF_WOULD_WAIT;
		else
			__builtin_ia32_pause();
	return NULL;
}

static void body_pipe_handoff(struct job *j)
{
	static char page[4096];
	double t = now_ns();

	for (long i = 0; i < j->n; i++) {
		handoff.state = HANDOFF_POSTED;
		while (handoff.state == HANDOFF_POSTED)
			__builtin_ia32_pause();
		if (handoff.state == HANDOFF_WOULD_WAIT &&
		    write(pipe_fd[1], page, sizeof(page)) != sizeof(page))
			abort();
	}
	j->ns = (now_ns() - t) / j->n;
}

static void empty_function(void)
{
}

/* A host function called from the thread: vthread_hostcall, which is a plain
 * ffi_call in a pthread and one exit to the backing thread in a vthread. */
static void body_hostcall(struct job *j)
{
	double t = now_ns();

	for (long i = 0; i < j->n; i++)
		vthread_hostcall(&empty_cif, empty_function, NULL, NULL);
	j->ns = (now_ns() - t) / j->n;
}

/*
 * Interrupts against what a pthread has: a poke against pthread_kill() and a
 * signal handler, a vthread's timer against a POSIX timer signalling its thread
 * (SIGEV_THREAD_ID). Both handlers count; the timers' note how late each tick
 * came after the period's boundary.
 */
static volatile long irq_count __attribute__((aligned(64)));
static volatile int irq_stop;
static double tick_start, tick_late[2000];
static volatile long ticks;	/* a handler counts while the body spins */

#define TICK_NS		100000.0
#define SIG_IRQ		SIGUSR2

static void note_tick(void)
{
	if (ticks < (long)(sizeof(tick_late) / sizeof(tick_late[0])))
		tick_late[ticks] = fmod(now_ns() - tick_start, TICK_NS);
	ticks++;
}

static void irq_note(int source, void *ctx)
{
	(void)ctx;
	if (source == VTHREAD_IRQ_TIMER)
		note_tick();
	else
		irq_count++;
}

static void sig_note(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (si->si_code == SI_TIMER)
		note_tick();
	else
		irq_count++;
}

static void body_spin(struct job *j)
{
	(void)j;
	while (!irq_stop)
		;
}

/* The poked thread of each kind; a poke, then the wait for its handler. */
static pthread_t poked_pt;
static vthread_t poked_vt;

static void poke_round(bool pthread)
{
	long want = irq_count + 1;

	if (pthread)
		pthread_kill(poked_pt, SIG_IRQ);
	else
		vthread_poke(poked_vt);
	while (irq_count < want)
		;
}

/* n rounds: the time of one. */
static double poke_rounds(long n)
{
	double t;

	poke_round(!poked_vt);	/* the handler's first run mirrors its pages */
	t = now_ns();
	for (long i = 0; i < n; i++)
		poke_round(!poked_vt);
	return (now_ns() - t) / n;
}

/* Ticks of a 100 µs periodic timer while spinning: j->n of them. */
static void body_ticker(struct job *j)
{
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIG_IRQ };
	struct itimerspec its = { { 0, TICK_NS }, { 0, TICK_NS } };
	timer_t tm;

	ticks = 0;
	ev._sigev_un._tid = gettid();
	if (j->irq) {
		tick_start = now_ns();
		vthread_timer(TICK_NS, TICK_NS);
	} else {
		if (timer_create(CLOCK_MONOTONIC, &ev, &tm))
			abort();
		tick_start = now_ns();
		timer_settime(tm, 0, &its, NULL);
	}
	while (ticks < j->n)
		;
	if (j->irq)
		vthread_timer(0, 0);
	else
		timer_delete(tm);
}

/* ---- how a sample runs: one body in a pthread, or in a vthread */

static void start(enum kind k, struct job *j, pthread_t *pt, vthread_t *vt)
{
	vthread_attr_t a;
	int r;

	vthread_attr_init(&a);
	vthread_attr_setsyscallmode(&a, j->mode);
	vthread_attr_setfaulthandler(&a, j->fault, NULL);
	vthread_attr_setirqhandler(&a, j->irq, NULL);
	r = k == PTHREAD ? pthread_create(pt, NULL, run_job, j) : vthread_create(vt, &a, run_job, j);
	vthread_attr_destroy(&a);

	if (r) {
		fprintf(stderr, "vthread-bench: cannot create a %s: %s\n",
			k == PTHREAD ? "pthread" : "vthread", strerror(r));
		exit(1);
	}
}

static void finish(enum kind k, pthread_t pt, vthread_t vt)
{
	if (k == PTHREAD)
		pthread_join(pt, NULL);
	else
		vthread_join(vt, NULL);
}

/* Runs the job in a new thread of the kind to its end: its time per operation. */
static double run_in(enum kind k, struct job *j)
{
	pthread_t pt;
	vthread_t vt;

	start(k, j, &pt, &vt);
	finish(k, pt, vt);
	return j->ns;
}

static double one_body_mode(enum kind k, void (*fn)(struct job *), long n, int mode)
{
	struct job j = { .fn = fn, .n = n, .mode = mode };

	return run_in(k, &j);
}

static double one_body(enum kind k, void (*fn)(struct job *), long n)
{
	return one_body_mode(k, fn, n, VTHREAD_SYSCALL_AUTO);
}

long ops(long full)
{
	return quick ? (full + 3) / 4 : full;
}

static double s_getppid(enum kind k)
{
	return one_body_mode(k, body_getppid, k == PTHREAD ? ops(20000) : ops(400),
			     VTHREAD_SYSCALL_EXIT);
}

static double s_getppid_ring(enum kind k)
{
	return one_body_mode(k, body_getppid, ops(20000), VTHREAD_SYSCALL_RING);
}

static double s_getppid_ring_trap(enum kind k)
{
	return k == PTHREAD ? s_getppid(k) :
		one_body_mode(k, body_raw_getppid, ops(20000), VTHREAD_SYSCALL_RING);
}

static double s_trap_floor(enum kind k)
{
	return k == PTHREAD ? s_getppid(k) : one_body(k, body_null_syscall, ops(20000));
}

static double s_yield_ring(enum kind k)
{
	return one_body_mode(k, body_yield, ops(20000), VTHREAD_SYSCALL_RING);
}

static double s_hostcall(enum kind k)
{
	return one_body(k, body_hostcall, k == PTHREAD ? ops(20000) : ops(400));
}

/* The function run in a fresh thread of the kind, its value waited for. */
static void *call_in_pthread(void *p)
{
	ffi_call(&empty_cif, empty_function, NULL, p);
	return NULL;
}

static double s_call(enum kind k)
{
	long n = ops(200);
	double t = now_ns();

	for (long i = 0; i < n; i++) {
		pthread_t pt;

		if (k == VTHREAD) {
			if (vthread_call(NULL, &empty_cif, empty_function, NULL, NULL))
				abort();
		} else if (pthread_create(&pt, NULL, call_in_pthread, NULL) || pthread_join(pt, NULL)) {
			abort();
		}
	}
	return (now_ns() - t) / n;
}

static double s_floor(enum kind k)
{
	return k == PTHREAD ? s_getppid(k) : one_body(k, body_null_exit, ops(400));
}

static double s_sieve(enum kind k)
{
	return one_body(k, body_sieve, ops(16 << 20));
}

static double s_first_touch(enum kind k)
{
	return one_body(k, body_first_touch, ops(4096));
}

static double s_first_touch_thp(enum kind k)
{
	return one_body(k, body_first_touch_thp, ops(4096));
}

static double s_random(enum kind k)
{
	return one_body(k, body_random_access, ops(2 << 20));
}

static double dirty_sample(enum kind k, long n)
{
	double soft = INFINITY, uffd = INFINITY;

	if (k == VTHREAD) {
		dirty_how = DIRTY_KVM;
		return one_body(k, body_dirty, n);
	}
	if (have_soft_dirty) {
		dirty_how = DIRTY_SOFT;
		soft = one_body(k, body_dirty, n);
	}
	if (have_uffd_async) {
		dirty_how = DIRTY_UFFD;
		uffd = one_body(k, body_dirty, n);
	}
	return uffd < soft ? uffd : soft;
}

static double s_dirty_100(enum kind k)
{
	return dirty_sample(k, 100);
}

static double s_dirty_10k(enum kind k)
{
	return dirty_sample(k, 10000);
}

/* The Appel-Li rows: each kind protects with its own call and handles its faults. */
static double vm_sample(enum kind k, void (*fn)(struct job *), long n)
{
	struct sigaction sa = { .sa_sigaction = vm_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };
	struct job j = { .fn = fn, .n = n, .fault = vm_fault };

	if (!vm_area) {
		vm_area = mmap(NULL, VM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (vm_area == MAP_FAILED || sigaction(SIGSEGV, &sa, NULL))
			abort();
	}
	vm_protect = k == PTHREAD ? mprotect : vthread_mprotect;
	return run_in(k, &j);
}

static double s_prot1(enum kind k)
{
	return vm_sample(k, body_prot1, ops(2000));
}

static double s_protn(enum kind k)
{
	return vm_sample(k, body_protn, ops(2000));
}

static double s_trap(enum kind k)
{
	return vm_sample(k, body_trap, ops(2000));
}

static double s_appel1(enum kind k)
{
	return vm_sample(k, body_appel1, ops(2000));
}

static double s_appel2(enum kind k)
{
	return vm_sample(k, body_appel2, ops(20));
}

static unsigned long reused(void)
{
	struct vthread_stats st = VTHREAD_STATS_INIT;

	return vthread_get_stats(&st) ? 0 : st.vthreads_reused;
}

static double create_join(enum kind k, void (*body)(struct job *))
{
	long n = ops(200);
	double t = now_ns();

	for (long i = 0; i < n; i++) {
		struct job j = { .fn = body };
		pthread_t pt;
		vthread_t vt;

		start(k, &j, &pt, &vt);
		finish(k, pt, vt);
	}
	return (now_ns() - t) / n;
}

/* Whether create-join's vthreads ran on parked threads, as the row means them to:
 * 0.7.2 found that the bench had never parked one. */
static bool cj_parked;

static double s_create_join(enum kind k)
{
	unsigned long before;
	double ns;

	if (k != VTHREAD)
		return create_join(k, body_empty);
	before = reused();
	ns = create_join(k, body_empty);
	if (reused() > before)
		cj_parked = true;
	return ns;
}

static double s_create_join_fresh(enum kind k)
{
	return create_join(k, body_touch_tls);
}

/* The first vthread of a process pays for the VM: measured in a fresh child. */
static double s_first_create(enum kind k)
{
	int p[2];
	double ns = -1;
	pid_t pid;

	if (k == PTHREAD)
		return s_create_join(k);
	if (pipe(p) < 0)
		abort();
	pid = fork();
	if (pid == 0) {
		struct job j = { .fn = body_empty };
		double t = now_ns();
		pthread_t pt;
		vthread_t vt;

		start(VTHREAD, &j, &pt, &vt);
		finish(VTHREAD, pt, vt);
		t = now_ns() - t;
		_exit(write(p[1], &t, sizeof(t)) == sizeof(t) ? 0 : 1);
	}
	close(p[1]);
	if (read(p[0], &ns, sizeof(ns)) != sizeof(ns))
		ns = NAN;
	close(p[0]);
	waitpid(pid, NULL, 0);
	return ns;
}

static double with_partner(enum kind k, void *(*partner)(void *), void *arg,
			   void (*fn)(struct job *), long n)
{
	pthread_t other;
	double ns;

	pthread_create(&other, NULL, partner, arg);
	ns = one_body(k, fn, n);
	pthread_join(other, NULL);
	return ns;
}

static double s_pingpong(enum kind k)
{
	long n = ops(20000);

	turn = 0;
	return with_partner(k, partner_pong, (void *)n, body_ping, n);
}

/*
 * A cache line's round trip between the first two CPUs this process may use,
 * a thread pinned to each: the median of 5 bursts, in ns (NAN with one CPU).
 * The host decides it, not the bench: on the README's kvm_pvm machine, itself
 * a VM whose two vCPUs the host places near each other or not, it was ~110 ns
 * in some hours and ~380 ns in others, and every row where a guest and a ring
 * server hand lines back and forth follows it (syscall-ring ~0.26 against
 * ~0.8 us per call).
 */
static double line_rtt_ns(int cpu[2])
{
	cpu_set_t mine, set;
	pthread_attr_t a;
	double s[5];
	int n = 0;

	if (sched_getaffinity(0, sizeof(mine), &mine))
		return NAN;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &mine))
			cpu[n++] = c;
	if (n < 2)
		return NAN;
	pthread_attr_init(&a);
	CPU_ZERO(&set);
	CPU_SET(cpu[1], &set);
	pthread_attr_setaffinity_np(&a, sizeof(set), &set);
	CPU_ZERO(&set);
	CPU_SET(cpu[0], &set);
	sched_setaffinity(0, sizeof(set), &set);
	for (int i = 0; i < 5; i++) {
		struct job j = { .n = 20000 };
		pthread_t other;

		turn = 0;
		if (pthread_create(&other, &a, partner_pong, (void *)j.n))
			abort();
		body_ping(&j);
		pthread_join(other, NULL);
		s[i] = j.ns;
	}
	sched_setaffinity(0, sizeof(mine), &mine);
	pthread_attr_destroy(&a);
	return summarise(s, 5).median;
}

bool line_rtt_sample(struct line_rtt *l, int when)
{
	double *r = l->ns;

	r[when] = line_rtt_ns(l->cpu);
	if (isnan(r[when]))
		return false;
	printf("a cache line's round trip between CPUs %d and %d at the %s: %.0f ns\n",
	       l->cpu[0], l->cpu[1], when ? "end" : "start", r[when]);
	return when && fmax(r[0], r[1]) / fmin(r[0], r[1]) > NOISY_SPREAD;
}

void line_rtt_json(FILE *f, const struct line_rtt *l)
{
	if (isnan(l->ns[0]))
		fputs("null", f);
	else
		fprintf(f, "{\"cpus\": [%d, %d], \"start\": %.3f, \"end\": %.3f}", l->cpu[0],
			l->cpu[1], l->ns[0], l->ns[1]);
}

static double s_mutex(enum kind k)
{
	struct job a = { .fn = body_mutex, .n = ops(4000) }, b = a;
	pthread_t pa, pb;
	vthread_t va, vb;

	handoff_ready = 0;
	start(k, &a, &pa, &va);
	start(k, &b, &pb, &vb);
	finish(k, pa, va);
	finish(k, pb, vb);
	return (a.ns + b.ns) / 2;
}

static double pipe_run(enum kind k, void (*body)(struct job *), long n, int mode)
{
	pthread_t drainer;
	double ns;

	if (pipe(pipe_fd) < 0)
		abort();
	pthread_create(&drainer, NULL, drain_pipe, NULL);
	ns = one_body_mode(k, body, n, mode);
	close(pipe_fd[1]);
	pthread_join(drainer, NULL);
	close(pipe_fd[0]);
	return ns;
}

static double pipe_mode(enum kind k, int mode)
{
	return pipe_run(k, body_pipe_write,
			k == PTHREAD || mode == VTHREAD_SYSCALL_RING ? ops(20000) : ops(400), mode);
}

static double s_pipe(enum kind k)
{
	return pipe_mode(k, VTHREAD_SYSCALL_EXIT);
}

static double s_pipe_ring(enum kind k)
{
	return pipe_mode(k, VTHREAD_SYSCALL_RING);
}

/* Its "vthread" side is pthreads: the poster and a helper (above). */
static double s_pipe_handoff(enum kind k)
{
	pthread_t helper;
	double ns;

	if (k == PTHREAD)
		return s_pipe(k);
	handoff.stop = false;
	handoff.state = HANDOFF_IDLE;
	pthread_create(&helper, NULL, handoff_helper, NULL);
	ns = pipe_run(PTHREAD, body_pipe_handoff, ops(20000), VTHREAD_SYSCALL_AUTO);
	handoff.stop = true;
	pthread_join(helper, NULL);
	return ns;
}

/* The poker of poke-vv: a thread of the kind. */
static void body_poker(struct job *j)
{
	j->ns = poke_rounds(j->n);
}

/* A spinning thread of the kind, poked by a host pthread, or (same) by another
 * thread of the kind. */
static double poke_sample(enum kind k, bool same)
{
	struct job spin = { .fn = body_spin, .irq = irq_note };
	struct job poker = { .fn = body_poker, .n = ops(2000) };

	irq_stop = 0;
	start(k, &spin, &poked_pt, &poked_vt);
	if (k == PTHREAD)
		poked_vt = NULL;
	if (same)
		run_in(k, &poker);
	else
		body_poker(&poker);
	irq_stop = 1;
	finish(k, poked_pt, poked_vt);
	return poker.ns;
}

static double s_poke(enum kind k)
{
	return poke_sample(k, false);
}

static double s_poke_vv(enum kind k)
{
	return poke_sample(k, true);
}

static int cmp_double(const void *a, const void *b);

/* Mean or 99th percentile lateness of ops(2000) ticks (tick_late holds them all). */
static double tick_sample(enum kind k, bool p99)
{
	struct job j = { .fn = body_ticker, .n = ops(2000), .irq = k == VTHREAD ? irq_note : NULL };
	double sum = 0;

	run_in(k, &j);
	qsort(tick_late, j.n, sizeof(double), cmp_double);
	for (long i = 0; i < j.n; i++)
		sum += tick_late[i];
	return p99 ? tick_late[j.n * 99 / 100] : sum / j.n;
}

static double s_timer(enum kind k)
{
	return tick_sample(k, false);
}

static double s_timer_p99(enum kind k)
{
	return tick_sample(k, true);
}

/* ---- rows */

struct row {
	const char *name, *what;
	double (*sample)(enum kind);
	int samples;
	bool wanted;
	double *v[2];		/* samples per kind */
	int n;			/* 0: not measured */
	struct summary sum[2];	/* per kind, once measured */
	struct summary ratio;	/* of the paired ratios, vthread sample i / pthread sample i */
	bool noisy;		/* the paired ratios' p90/p10 is over NOISY_SPREAD */
};

static struct row rows[] = {
	{ .name = "syscall", .what = "null system call, getppid(): native in a pthread vs a vthread's exit path",
	  .sample = s_getppid, .samples = 21 },
	{ .name = "syscall-ring", .what = "null system call, getppid(): native in a pthread vs a vthread's ring",
	  .sample = s_getppid_ring, .samples = 21 },
	{ .name = "syscall-ring-trap", .what = "the same by a `syscall` outside libc, which traps: native in a pthread vs a vthread's ring",
	  .sample = s_getppid_ring_trap, .samples = 21 },
	{ .name = "yield-ring", .what = "sched_yield() with no other thread waiting: native in a pthread vs a vthread's ring",
	  .sample = s_yield_ring, .samples = 21 },
	{ .name = "trap-floor", .what = "a vthread's `syscall` to a stub that returns at once (the trap alone) vs a native getppid()",
	  .sample = s_trap_floor, .samples = 21 },
	{ .name = "exit-floor", .what = "cheapest guest exit and resume (an empty `out`) vs a native getppid()",
	  .sample = s_floor, .samples = 21 },
	{ .name = "create-join", .what = "create + join of a thread running an empty function",
	  .sample = s_create_join, .samples = 11 },
	{ .name = "create-join-fresh", .what = "the same, the function writing a __thread variable: no parked thread reused",
	  .sample = s_create_join_fresh, .samples = 11 },
	{ .name = "first-vthread", .what = "the process's first vthread (creates the VM) vs a pthread create + join",
	  .sample = s_first_create, .samples = 7 },
	{ .name = "compute", .what = "integer sieve over 16 Mi entries, per entry",
	  .sample = s_sieve, .samples = 11 },
	{ .name = "first-touch", .what = "first write to each of 4096 fresh pages, per page",
	  .sample = s_first_touch, .samples = 11 },
	{ .name = "first-touch-thp", .what = "the same in 2 MiB-aligned memory with MADV_HUGEPAGE (transparent huge pages)",
	  .sample = s_first_touch_thp, .samples = 11 },
	{ .name = "random-access", .what = "random 8-byte reads over 256 MiB, per read",
	  .sample = s_random, .samples = 11 },
	{ .name = "dirty-100", .what = "100 random 8-byte writes over 256 MiB, then collect the pages written, per interval",
	  .sample = s_dirty_100, .samples = 11 },
	{ .name = "dirty-10k", .what = "10,000 random 8-byte writes over 256 MiB, then collect the pages written, per interval",
	  .sample = s_dirty_10k, .samples = 11 },
	{ .name = "prot1", .what = "protect a page, write it: fault, handler unprotects, write retried (Appel-Li)",
	  .sample = s_prot1, .samples = 11 },
	{ .name = "protN", .what = "protect 100 pages with one call (Appel-Li), per call",
	  .sample = s_protn, .samples = 11 },
	{ .name = "trap", .what = "a write to a protected page: fault, handler unprotects, write retried (Appel-Li)",
	  .sample = s_trap, .samples = 11 },
	{ .name = "appel1", .what = "writes to random pages of 100 protected: handler unprotects, protects the last (Appel-Li)",
	  .sample = s_appel1, .samples = 11 },
	{ .name = "appel2", .what = "protect 100 pages with one call, write each: handler unprotects (Appel-Li), per page",
	  .sample = s_appel2, .samples = 11 },
	{ .name = "ping-pong", .what = "cache-line round trip with a host pthread",
	  .sample = s_pingpong, .samples = 11 },
	{ .name = "mutex", .what = "contended pthread_mutex lock/unlock between two threads of a kind, per pair",
	  .sample = s_mutex, .samples = 11 },
	{ .name = "pipe-write", .what = "write(2) of 4 KiB to a pipe that a pthread drains; vthread: exit path",
	  .sample = s_pipe, .samples = 11 },
	{ .name = "pipe-write-ring", .what = "write(2) of 4 KiB to a pipe that a pthread drains; vthread: ring",
	  .sample = s_pipe_ring, .samples = 11 },
	{ .name = "pipe-write-handoff", .what = "the same, no VM: a pthread hands each write to a helper pthread that makes it (the ring's shape)",
	  .sample = s_pipe_handoff, .samples = 11 },
	{ .name = "poke", .what = "host thread pokes a spinning thread, waits for its handler: vthread_poke vs pthread_kill",
	  .sample = s_poke, .samples = 11 },
	{ .name = "poke-vv", .what = "the same, poked by a thread of the kind: vthread_poke from a vthread vs pthread_kill from a pthread",
	  .sample = s_poke_vv, .samples = 11 },
	{ .name = "timer", .what = "100 us periodic timer in a spinning thread, mean lateness: vthread_timer vs a POSIX timer",
	  .sample = s_timer, .samples = 11 },
	{ .name = "timer-p99", .what = "the same timer, 99th percentile of lateness",
	  .sample = s_timer_p99, .samples = 11 },
	{ .name = "hostcall", .what = "vthread_hostcall() of an empty function: a plain ffi_call in a pthread",
	  .sample = s_hostcall, .samples = 11 },
	{ .name = "vthread-call", .what = "vthread_call() of an empty function vs ffi_call in a new pthread, joined",
	  .sample = s_call, .samples = 11 },
	{ .name = "sandbox-call-fork", .what = "vthread_call() in a sandbox vs a seccomp-strict child forked per call, over a pipe",
	  .sample = s_sandbox_call_fork, .samples = 11 },
	{ .name = "sandbox-call-pipe", .what = "vthread_call() in a sandbox vs a call to a persistent seccomp-strict child, over pipes",
	  .sample = s_sandbox_call_pipe, .samples = 11 },
	{ .name = "reset-1", .what = "run a target that dirties 1 page of 64 MiB, then reset: sandbox vs fork server",
	  .sample = s_reset_1, .samples = 11 },
	{ .name = "reset-16", .what = "the same, 16 pages",
	  .sample = s_reset_16, .samples = 11 },
	{ .name = "reset-256", .what = "the same, 256 pages",
	  .sample = s_reset_256, .samples = 11 },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct summary summarise(double *v, int n)
{
	double *s = malloc(n * sizeof(*s));
	struct summary r = { .n = n };

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	r.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	r.p10 = s[(int)floor(0.1 * (n - 1))];
	r.p90 = s[(int)ceil(0.9 * (n - 1))];
	free(s);
	return r;
}

static bool measured(double (*sample)(enum kind))
{
	for (size_t i = 0; i < NROWS; i++)
		if (rows[i].sample == sample)
			return rows[i].n;
	return false;
}

/* Why the run is noisy, a line each: on stderr and in the JSON. */
static char noise[NROWS + 2][160];
static int nnoise;

static void __attribute__((format(printf, 1, 2))) noisy(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(noise[nnoise++], sizeof(noise[0]), fmt, ap);
	va_end(ap);
}

/*
 * Alternates the kinds sample by sample, and which goes first, so drift hits both.
 * The two samples of a pair ran back to back: their ratio cancels the drift they
 * share, which the ratio of two medians would not.
 */
static void measure(struct row *r)
{
	int n = quick ? (r->samples + 1) / 3 + 2 : r->samples;
	double *paired = calloc(n, sizeof(double));

	r->v[0] = calloc(n, sizeof(double));
	r->v[1] = calloc(n, sizeof(double));
	for (int i = 0; i < n; i++) {
		enum kind first = i % 2 ? VTHREAD : PTHREAD;

		r->v[first][i] = r->sample(first);
		r->v[!first][i] = r->sample(!first);
		paired[i] = r->v[VTHREAD][i] / r->v[PTHREAD][i];
	}
	r->n = n;
	r->sum[PTHREAD] = summarise(r->v[PTHREAD], n);
	r->sum[VTHREAD] = summarise(r->v[VTHREAD], n);
	r->ratio = summarise(paired, n);
	free(paired);
	r->noisy = r->ratio.p90 / r->ratio.p10 > NOISY_SPREAD;
	if (r->noisy)
		noisy("%s: p90/p10 of the paired ratios is %.2f, over %g", r->name,
		      r->ratio.p90 / r->ratio.p10, NOISY_SPREAD);
}

static const char *fmt_ns(double ns, char *buf, size_t len)
{
	if (ns >= 1e6)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else if (ns >= 1e3)
		snprintf(buf, len, "%.2f us", ns / 1e3);
	else
		snprintf(buf, len, "%.2f ns", ns);
	return buf;
}

/* "median [p10, p90]" */
static const char *fmt_summary(struct summary s, char *buf, size_t len)
{
	char m[16], lo[16], hi[16];

	snprintf(buf, len, "%s [%s, %s]", fmt_ns(s.median, m, sizeof(m)), fmt_ns(s.p10, lo, sizeof(lo)),
		 fmt_ns(s.p90, hi, sizeof(hi)));
	return buf;
}

/* "ratio [p10, p90]" */
static const char *fmt_ratio(struct summary s, char *buf, size_t len)
{
	snprintf(buf, len, "%.2fx [%.2f, %.2f]", s.median, s.p10, s.p90);
	return buf;
}

static void print_table(void)
{
	char a[64], b[64], c[64];

	printf("%-14s %30s %30s %28s %3s  %s\n", "row", "native median [p10, p90]",
	       "vthread median [p10, p90]", "ratio [p10, p90]", "n",
	       "what (per operation; ratio: of the samples paired as taken)");
	for (size_t i = 0; i < NROWS; i++) {
		struct row *r = &rows[i];

		if (!r->n)
			continue;
		printf("%-14s %30s %30s %28s %3d  %s\n", r->name,
		       fmt_summary(r->sum[PTHREAD], a, sizeof(a)),
		       fmt_summary(r->sum[VTHREAD], b, sizeof(b)), fmt_ratio(r->ratio, c, sizeof(c)),
		       r->n, r->what);
	}
}

/* ---- the run's record: JSON, and the chart gnuplot draws from it */

/*
 * Schema 2 adds to schema 1 (which had no "schema"): "schema", "version", "commit"
 * (null outside git), "machine"."kernel", "loadavg", "noisy", and per row the raw
 * samples of each side ("raw_ns"), the p10 and p90 of the paired ratios and
 * "noisy". A row's "ratio" is now the median of its paired ratios; schema 1's was
 * the ratio of the two medians.
 */
#define JSON_SCHEMA 2

static struct {
	char cpu[128], kernel[160];
	long cores;		/* online */
	double load[2][3];	/* at the start and at the end: over 1, 5 and 15 minutes */
	struct line_rtt rtt;
} host;

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	snprintf(buf, len, "unknown");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && c) {
			snprintf(buf, len, "%s", c + 2);
			buf[strcspn(buf, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
}

/* A load average over the core count: other work competed for the CPUs (the end's
 * counts the bench's own threads too, one or two runnable). */
static void sample_load(int when)
{
	double *l = host.load[when];

	if (getloadavg(l, 3) != 3)
		l[0] = l[1] = l[2] = NAN;
	if (l[0] > host.cores)
		noisy("load average %.2f at the %s, over the %ld online cores", l[0],
		      when ? "end" : "start", host.cores);
}

static void sample_rtt(int when)
{
	const struct line_rtt *l = &host.rtt;

	if (line_rtt_sample(&host.rtt, when))
		noisy("a cache line's round trip between CPUs %d and %d went from %.0f to %.0f ns: "
		      "the host moved this machine's CPUs (the ring rows follow it)",
		      l->cpu[0], l->cpu[1], l->ns[0], l->ns[1]);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* JSON has no NaN: a sample that failed (first-vthread's child) is null. */
static void json_number(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.3f", v);
	else
		fputs("null", f);
}

static void json_numbers(FILE *f, const double *v, int n)
{
	fputc('[', f);
	for (int i = 0; i < n; i++) {
		fputs(i ? ", " : "", f);
		json_number(f, v[i]);
	}
	fputc(']', f);
}

static void json_side(FILE *f, const char *key, struct summary s, const double *raw)
{
	fprintf(f, "\"%s\": {\"median_ns\": %.3f, \"p10_ns\": %.3f, \"p90_ns\": %.3f, \"samples\": %d, "
		"\"raw_ns\": ", key, s.median, s.p10, s.p90, s.n);
	json_numbers(f, raw, s.n);
	fputc('}', f);
}

static int write_json(const char *path)
{
	FILE *f = fopen(path, "w");
	bool first = true;

	if (!f)
		return -errno;
	fprintf(f, "{\n  \"schema\": %d,\n  \"version\": ", JSON_SCHEMA);
	json_string(f, vthread_version());
	fprintf(f, ",\n  \"commit\": ");
	if (*BENCH_COMMIT)
		json_string(f, BENCH_COMMIT);
	else
		fputs("null", f);
	fprintf(f, ",\n  \"machine\": {\"cpu\": ");
	json_string(f, host.cpu);
	fprintf(f, ", \"cores\": %ld, \"kernel\": ", host.cores);
	json_string(f, host.kernel);
	fprintf(f, "},\n  \"kernel\": ");
	json_string(f, host.kernel);
	fprintf(f, ",\n  \"backend\": \"%s\",\n  \"quick\": %s,\n  \"loadavg\": {\"start\": ",
		vthread_backend(), quick ? "true" : "false");
	json_numbers(f, host.load[0], 3);
	fprintf(f, ", \"end\": ");
	json_numbers(f, host.load[1], 3);
	fprintf(f, "},\n  \"line_rtt_ns\": ");
	line_rtt_json(f, &host.rtt);
	fprintf(f, ",\n  \"noisy\": {\"verdict\": %s, \"reasons\": [", nnoise ? "true" : "false");
	for (int i = 0; i < nnoise; i++) {
		fputs(i ? ", " : "", f);
		json_string(f, noise[i]);
	}
	fprintf(f, "]},\n  \"rows\": [");
	for (size_t i = 0; i < NROWS; i++) {
		struct row *r = &rows[i];

		if (!r->n)
			continue;
		fprintf(f, "%s\n    {\"name\": \"%s\", \"what\": ", first ? "" : ",", r->name);
		json_string(f, r->what);
		fprintf(f, ",\n     ");
		json_side(f, "native", r->sum[PTHREAD], r->v[PTHREAD]);
		fprintf(f, ",\n     ");
		json_side(f, "vthread", r->sum[VTHREAD], r->v[VTHREAD]);
		fprintf(f, ",\n     \"ratio\": %.6g, \"ratio_p10\": %.6g, \"ratio_p90\": %.6g, \"noisy\": %s}",
			r->ratio.median, r->ratio.p10, r->ratio.p90, r->noisy ? "true" : "false");
		first = false;
	}
	fprintf(f, "\n  ]\n}\n");
	return fclose(f) ? -errno : 0;
}

static void chart_title(char *buf, size_t len, const char *version, const char *commit,
			const char *backend, const char *cpu, long cores, bool noisy_run)
{
	snprintf(buf, len, "libvthread %s%s%s%s, %s, %s, %ld cores%s", version,
		 commit ? " (" : "", commit ? commit : "", commit ? ")" : "", backend, cpu, cores,
		 noisy_run ? " (a noisy run)" : "");
}

/* The legend's words for the points and whiskers: a run measured now, or saved by schema 1. */
static const char paired_key[] = "median of the paired ratios, whiskers at p10 and p90";
static const char medians_key[] = "ratio of the medians, whiskers from the sides' p10 and p90";

/* A gnuplot string: within single quotes only a quote is special, doubled. */
static void gp_string(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

/*
 * Draws the chart of the measured rows into svg: gnuplot reads the settings and
 * data that vthread-bench.gp expects, then the script itself, from a pipe (no
 * shell, no temporary file). It reads it as a script file, /proc/self/fd/0 (a
 * bare lane guest has no /dev/stdin), which the first error ends: as commands on
 * stdin, a failed `set output` would go on to draw on our stdout. Returns 0,
 * -ENOENT when gnuplot is not installed, another -errno, or gnuplot's exit status
 * (it said why on stderr).
 */
static int plot(const char *svg, const char *title, const char *key, const struct row *rs, size_t n)
{
	char *argv[] = { "gnuplot", "/proc/self/fd/0", NULL };
	posix_spawn_file_actions_t fa;
	int p[2], r, status, shown = 0;
	pid_t pid;
	FILE *f;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], STDIN_FILENO);
	r = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	if (r) {
		close(p[1]);
		return -r;
	}
	/* A gnuplot that stopped early is reported by its status, not by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	f = fdopen(p[1], "w");
	if (!f) {
		r = -errno;
		close(p[1]);
		waitpid(pid, NULL, 0);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		shown += rs[i].n > 0;
	fprintf(f, "rows = %d\nnoisy_spread = %g\nchart_title = ", shown, NOISY_SPREAD);
	gp_string(f, title);
	fprintf(f, "\nratio_key = ");
	gp_string(f, key);
	fprintf(f, "\nset output ");
	gp_string(f, svg);
	fprintf(f, "\n$ratios << EOD\n");
	for (size_t i = 0; i < n; i++) {
		if (rs[i].n)
			fprintf(f, "\"%s\" %g %g %g %d\n", rs[i].name, rs[i].ratio.median,
				rs[i].ratio.p10, rs[i].ratio.p90, rs[i].noisy);
	}
	fprintf(f, "EOD\n%s", gnuplot_script);
	fclose(f);
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Without gnuplot the chart is skipped with a note, unless it was asked for. */
static int chart(const char *svg, bool asked, const char *title, const char *key,
		 const struct row *rs, size_t n)
{
	int r = plot(svg, title, key, rs, n);

	if (r == -ENOENT && !asked) {
		printf("chart: skipped, gnuplot is not installed\n");
		return 0;
	}
	if (r == -ENOENT)
		fprintf(stderr, "vthread-bench: %s: gnuplot is not installed\n", svg);
	else if (r < 0)
		fprintf(stderr, "vthread-bench: %s: cannot run gnuplot: %s\n", svg, strerror(-r));
	else if (r > 0)
		fprintf(stderr, "vthread-bench: %s: gnuplot failed (status %d)\n", svg, r);
	else
		printf("chart: %s\n", svg);
	return r ? 1 : 0;
}

/* ---- saved runs: --plot and --compare */

struct run {
	json_object *root;	/* owns the strings below */
	const char *path, *version, *commit, *backend, *cpu;
	int schema;
	long cores;
	bool noisy;
	double rtt[2];		/* line_rtt_ns at the start and end; NAN: not recorded */
	struct row *rows;	/* name, n, ratio, noisy */
	size_t n;
};

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static double jnum(json_object *o, const char *key)
{
	json_object *v = jget(o, key);

	return json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int) ?
	       json_object_get_double(v) : NAN;
}

static const char *jstr(json_object *o, const char *key, const char *absent)
{
	json_object *v = jget(o, key);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : absent;
}

/* Reads a run that vthread-bench saved, schema 1 or 2; -1 when it cannot (said why). */
static int load_run(const char *path, struct run *run)
{
	json_object *rows_o, *machine;

	*run = (struct run){ .path = path, .root = json_object_from_file(path) };
	if (!run->root) {
		fprintf(stderr, "vthread-bench: %s: %s", path, json_util_get_last_err());
		return -1;
	}
	run->schema = jget(run->root, "schema") ? json_object_get_int(jget(run->root, "schema")) : 1;
	run->version = jstr(run->root, "version", "(version unknown)");
	run->commit = jstr(run->root, "commit", NULL);
	run->backend = jstr(run->root, "backend", "unknown backend");
	machine = jget(run->root, "machine");
	run->cpu = jstr(machine, "cpu", "unknown CPU");
	run->cores = json_object_get_int(jget(machine, "cores"));
	run->noisy = json_object_get_boolean(jget(jget(run->root, "noisy"), "verdict"));
	run->rtt[0] = jnum(jget(run->root, "line_rtt_ns"), "start");
	run->rtt[1] = jnum(jget(run->root, "line_rtt_ns"), "end");
	rows_o = jget(run->root, "rows");
	run->n = json_object_is_type(rows_o, json_type_array) ? json_object_array_length(rows_o) : 0;
	run->rows = calloc(run->n, sizeof(*run->rows));
	for (size_t i = 0; i < run->n; i++) {
		json_object *o = json_object_array_get_idx(rows_o, i);
		json_object *nat = jget(o, "native"), *vt = jget(o, "vthread");
		struct row *r = &run->rows[i];

		r->name = jstr(o, "name", NULL);
		r->n = json_object_get_int(jget(vt, "samples"));
		if (run->schema >= 2) {
			r->ratio = (struct summary){ .median = jnum(o, "ratio"), .p10 = jnum(o, "ratio_p10"),
						     .p90 = jnum(o, "ratio_p90"), .n = r->n };
			r->noisy = json_object_get_boolean(jget(o, "noisy"));
		} else {
			/* No samples kept: medians_key's ratio and whiskers, as wide
			 * as the two sides' spreads allow. */
			r->ratio = (struct summary){
				.median = jnum(vt, "median_ns") / jnum(nat, "median_ns"),
				.p10 = jnum(vt, "p10_ns") / jnum(nat, "p90_ns"),
				.p90 = jnum(vt, "p90_ns") / jnum(nat, "p10_ns"),
				.n = r->n,
			};
		}
		/* Written this way, NaN (a field missing) fails too. */
		if (!r->name || r->n <= 0 || !(r->ratio.p10 > 0) || !(r->ratio.p10 <= r->ratio.median) ||
		    !(r->ratio.median <= r->ratio.p90)) {
			fprintf(stderr, "vthread-bench: %s: row %zu has no name, samples or ratio\n", path, i + 1);
			return -1;
		}
	}
	if (!run->n) {
		fprintf(stderr, "vthread-bench: %s: no rows\n", path);
		return -1;
	}
	return 0;
}

static void free_run(struct run *run)
{
	free(run->rows);
	json_object_put(run->root);
}

static void run_title(const struct run *run, char *buf, size_t len)
{
	chart_title(buf, len, run->version, run->commit, run->backend, run->cpu, run->cores, run->noisy);
}

static int replot(const char *path, const char *svg)
{
	struct run run;
	char title[512];
	int r = 1;

	if (!load_run(path, &run)) {
		run_title(&run, title, sizeof(title));
		r = chart(svg, true, title, run.schema >= 2 ? paired_key : medians_key, run.rows, run.n);
	}
	free_run(&run);
	return r;
}

static const struct row *find_row(const struct run *run, const char *name)
{
	for (size_t i = 0; i < run->n; i++) {
		if (!strcmp(run->rows[i].name, name))
			return &run->rows[i];
	}
	return NULL;
}

/* Rows in a and b (a's order), then rows in b only. */
static void compare_row(const struct row *a, const struct row *b, int *changed, int *same)
{
	char fa[64] = "-", fb[64] = "-";
	bool overlap;

	if (a)
		fmt_ratio(a->ratio, fa, sizeof(fa));
	if (b)
		fmt_ratio(b->ratio, fb, sizeof(fb));
	printf("%-16s %28s %28s", a ? a->name : b->name, fa, fb);
	if (!a || !b) {
		printf(" %8s  only in %s\n", "", a ? "A" : "B");
		return;
	}
	/* The whiskers' overlap: either run's spread could hold the other's ratio. */
	overlap = a->ratio.p10 <= b->ratio.p90 && b->ratio.p10 <= a->ratio.p90;
	printf(" %+7.1f%%  %s\n", (b->ratio.median / a->ratio.median - 1) * 100,
	       overlap ? "within noise" : "changed");
	if (overlap)
		(*same)++;
	else
		(*changed)++;
}

static int compare(const char *path_a, const char *path_b)
{
	struct run run[2] = { 0 };
	int changed = 0, same = 0, r = 1;

	if (load_run(path_a, &run[0]) || load_run(path_b, &run[1]))
		goto out;
	for (int i = 0; i < 2; i++) {
		char title[512];

		run_title(&run[i], title, sizeof(title));
		printf("%c: %s (schema %d): %s", 'A' + i, run[i].path, run[i].schema, title);
		if (!isnan(run[i].rtt[0]))	/* since 0.7.8: the ring rows follow it */
			printf("; a cache line's round trip %.0f ns at the start, %.0f at the end",
			       run[i].rtt[0], run[i].rtt[1]);
		putchar('\n');
	}
	printf("%-16s %28s %28s %8s  %s\n", "row", "A: ratio [p10, p90]", "B: ratio [p10, p90]",
	       "change", "whiskers");
	for (size_t i = 0; i < run[0].n; i++)
		compare_row(&run[0].rows[i], find_row(&run[1], run[0].rows[i].name), &changed, &same);
	for (size_t i = 0; i < run[1].n; i++) {
		if (!find_row(&run[0], run[1].rows[i].name))
			compare_row(NULL, &run[1].rows[i], &changed, &same);
	}
	printf("%d changed, %d within noise\n", changed, same);
	r = 0;
out:
	free_run(&run[0]);
	free_run(&run[1]);
	return r;
}

/* ---- main */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vthread-bench [--quick] [--only NAME[,NAME...]] [--out DIR] [--json FILE] [--svg FILE]\n"
		"       vthread-bench [--quick] [--out DIR] [--json FILE] --scaling\n"
		"       vthread-bench [--out DIR] [--svg FILE] --plot RUN.json\n"
		"       vthread-bench --compare A.json B.json\n"
		"       vthread-bench --version\n"
		"Measures each row as a pthread (or native call) and as a vthread, alternating,\n"
		"and prints median per operation and the ratio vthread / native of the samples\n"
		"paired as taken; warns on stderr when the run was noisy.\n"
		"  --quick      fewer samples and operations (under a minute)\n"
		"  --only LIST  run only these rows\n"
		"  --out DIR    where vthread-bench.json and vthread-bench.svg go (default: the\n"
		"               current directory)\n"
		"  --json FILE  the JSON's own path: machine, load, version, every row's samples\n"
		"  --svg FILE   the chart's own path; the chart needs gnuplot, and without it is\n"
		"               skipped with a note unless this names it\n"
		"  --plot RUN   draws the chart of a saved run instead of measuring\n"
		"  --scaling    instead of the rows: 1, 2, 4 ... every core of pthreads, and of\n"
		"               vthreads, at once, making system calls, pipe writes, create + join:\n"
		"               throughput per thread count (JSON: vthread-scaling.json)\n"
		"  --compare    prints each row's ratio in two saved runs, the change, and whether\n"
		"               their p10-p90 whiskers overlap (within noise) or not (changed)\n"
		"rows:");
	for (size_t i = 0; i < NROWS; i++)
		fprintf(f, " %s", rows[i].name);
	fprintf(f, "\n");
}

/* Marks the rows a comma-separated list names (all rows without one); -1 on an unknown name. */
static int select_rows(const char *only)
{
	for (size_t i = 0; i < NROWS; i++)
		rows[i].wanted = !only;
	for (const char *p = only; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
		size_t i = 0, len = strcspn(p, ",");

		while (i < NROWS && (strlen(rows[i].name) != len || strncmp(p, rows[i].name, len)))
			i++;
		if (i == NROWS) {
			fprintf(stderr, "vthread-bench: --only: unknown row '%.*s'\n", (int)len, p);
			return -1;
		}
		rows[i].wanted = true;
	}
	return 0;
}

/* NAME in DIR, or in the current directory without one. */
static const char *out_path(char *buf, size_t len, const char *dir, const char *name)
{
	if (!dir)
		return name;
	snprintf(buf, len, "%s/%s", dir, name);
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quick", no_argument, NULL, 'q' }, { "only", required_argument, NULL, 'o' },
		{ "out", required_argument, NULL, 'O' }, { "json", required_argument, NULL, 'j' },
		{ "svg", required_argument, NULL, 's' }, { "plot", required_argument, NULL, 'p' },
		{ "compare", no_argument, NULL, 'c' }, { "version", no_argument, NULL, 'V' },
		{ "scaling", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	const char *only = NULL, *out = NULL, *json = NULL, *svg = NULL, *saved = NULL;
	char json_buf[4096], svg_buf[4096], title[512];
	bool svg_named, cmp = false, scaling = false;
	struct utsname u;
	int c, r;

	while ((c = getopt_long(argc, argv, "qo:O:j:s:p:cSVh", opts, NULL)) != -1) {
		switch (c) {
		case 'q': quick = true; break;
		case 'o': only = optarg; break;
		case 'O': out = optarg; break;
		case 'j': json = optarg; break;
		case 's': svg = optarg; break;
		case 'p': saved = optarg; break;
		case 'c': cmp = true; break;
		case 'S': scaling = true; break;
		case 'V': printf("vthread-bench (libvthread) %s\n", vthread_version()); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - (cmp ? 2 : 0)) {
		usage(stderr);
		return 2;
	}
	if (cmp)
		return compare(argv[optind], argv[optind + 1]);
	if (out && mkdir(out, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "vthread-bench: --out %s: %s\n", out, strerror(errno));
		return 1;
	}
	svg_named = svg;
	if (!svg)
		svg = out_path(svg_buf, sizeof(svg_buf), out, "vthread-bench.svg");
	if (!json)
		json = out_path(json_buf, sizeof(json_buf), out,
				scaling ? "vthread-scaling.json" : "vthread-bench.json");
	if (saved)
		return replot(saved, svg);
	if (select_rows(only) < 0) {
		usage(stderr);
		return 2;
	}
	if (!vthread_backend()) {
		fprintf(stderr, "vthread-bench: no usable KVM: %s\n", vthread_backend_error());
		return 1;
	}
	if (scaling)
		return scaling_run(json);
	random_area = malloc(RANDOM_BYTES);
	memset(random_area, 1, RANDOM_BYTES);
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	clear_refs_fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (pagemap_fd < 0 || clear_refs_fd < 0) {
		fprintf(stderr, "vthread-bench: /proc/self/pagemap or clear_refs: %s\n", strerror(errno));
		return 1;
	}
	dirty_probe();
	for (size_t i = 0; i < NROWS && !have_soft_dirty && !have_uffd_async; i++)
		if (rows[i].wanted && (rows[i].sample == s_dirty_100 || rows[i].sample == s_dirty_10k)) {
			fprintf(stderr, "vthread-bench: this kernel has neither working soft-dirty bits "
				"nor userfaultfd's WP_ASYNC: no native side for the dirty rows\n");
			return 1;
		}
	if (ffi_prep_cif(&empty_cif, FFI_DEFAULT_ABI, 0, &ffi_type_void, NULL) != FFI_OK)
		abort();
	uname(&u);
	snprintf(host.kernel, sizeof(host.kernel), "%s %s", u.sysname, u.release);
	cpu_model(host.cpu, sizeof(host.cpu));
	host.cores = sysconf(_SC_NPROCESSORS_ONLN);
	printf("backend %s, %ld cores; absolute times vary between machines, compare ratios\n",
	       vthread_backend(), host.cores);
	if (sigaction(SIG_IRQ, &(struct sigaction){ .sa_sigaction = sig_note, .sa_flags = SA_SIGINFO }, NULL))
		abort();
	for (size_t i = 0; i < NROWS; i++)
		if (rows[i].wanted && !(vthread_backend_features() & VTHREAD_FEAT_INTERRUPTS) &&
		    (rows[i].sample == s_poke || rows[i].sample == s_poke_vv || rows[i].sample == s_timer ||
		     rows[i].sample == s_timer_p99)) {
			printf("%s: left out, %s has no interrupts in this version\n", rows[i].name,
			       vthread_backend());
			rows[i].wanted = false;
		}
	sample_load(0);
	sample_rtt(0);
	for (size_t i = 0; i < NROWS; i++) {
		if (rows[i].wanted)
			measure(&rows[i]);
	}
	sample_load(1);
	sample_rtt(1);
	print_table();
	if (measured(s_create_join) && !cj_parked)
#ifdef __SANITIZE_ADDRESS__
		printf("create-join: no vthread on a parked thread (under ASan none parks)\n");
#else
		fprintf(stderr, "vthread-bench: warning: create-join: no vthread on a parked thread "
			"(VTHREAD_PARK=0?): the row measured fresh threads\n");
#endif
	for (int i = 0; i < nnoise; i++)
		fprintf(stderr, "vthread-bench: warning: a noisy run: %s\n", noise[i]);
	if ((r = write_json(json)) < 0) {
		fprintf(stderr, "vthread-bench: %s: %s\n", json, strerror(-r));
		return 1;
	}
	printf("json: %s\n", json);
	chart_title(title, sizeof(title), vthread_version(), *BENCH_COMMIT ? BENCH_COMMIT : NULL,
		    vthread_backend(), host.cpu, host.cores, nnoise);
	return chart(svg, svg_named, title, paired_key, rows, NROWS);
}
