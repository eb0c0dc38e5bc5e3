/* SPDX-License-Identifier: MIT */
/*
 * Exit-less system calls (FlexSC's idea). A vthread in ring mode posts the
 * calls paths.c lets the ring take into its vCPU's slot (hv/guest.S); a server
 * thread makes the call and posts the result, and the guest never exits. The
 * guest spins about as long as an exit costs (half of that if no server
 * scans meanwhile), then exits and the backing thread settles the slot: it
 * takes the call back if no server has, or sleeps until the server is done.
 * Servers are few (one per spare CPU), start with the first ring vthread,
 * spin while calls come, and sleep on a futex when none do; with none awake
 * the guest does not post at all and takes the exit path, whose handler wakes
 * one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "rt.h"

#define WAITER		0x100u		/* in a slot's state: the backing thread sleeps on it */
#define MAX_SERVERS	4
#define AUTO_MIN_EXIT_NS	10000	/* AUTO picks the ring above this exit cost */
#define YIELD_NS	1000000	/* a ring vthread's sched_yield really yields this often */

static struct {
	pthread_mutex_t lock;
	struct hv_ring_slot **active;	/* slots of running ring vthreads */
	_Atomic unsigned nactive;
	unsigned nservers, max_servers;
	volatile bool more;		/* a backing thread found every server busy */
	_Atomic uint32_t bell;		/* sleeping servers wait for it to change */
	uint64_t idle_ticks;		/* a server spins this long without work, then sleeps */
	uint64_t yield_ticks;		/* YIELD_NS in TSC ticks */
	int seccomp;			/* the servers' seccomp mode (they inherit it) */
} ring = { .lock = PTHREAD_MUTEX_INITIALIZER };

static long futex(_Atomic uint32_t *w, int op, uint32_t val)
{
	return rt_syscall6(SYS_futex, (long)w, op | FUTEX_PRIVATE_FLAG, val, 0, 0, 0);
}

/*
 * The guest spins about as long as an exit costs (5-100 us), counted in TSC
 * ticks, or half of that after the last server's scan; servers idle for
 * four times that. Ticks per ms: KVM's TSC rate, else 200 us of counting,
 * paid by the first ring vthread's creator.
 */
static void set_spin(void)
{
	long spin_ns = rt.exit_ns < 5000 ? 5000 : rt.exit_ns > 100000 ? 100000 : rt.exit_ns;
	struct timespec a, b;
	uint64_t t0, ticks = rt.hv.tsc_khz, ns = 1000000;

	if (!ticks) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		t0 = __rdtsc();
		do
			clock_gettime(CLOCK_MONOTONIC, &b);
		while ((ns = (b.tv_sec - a.tv_sec) * 1000000000L + b.tv_nsec - a.tv_nsec) < 200000);
		ticks = __rdtsc() - t0;
	}
	/* In integers: floating point would raise FE_INEXACT in the creator. */
	hv_ring_spin = spin_ns * ticks / ns;
	hv_ring_stale = hv_ring_spin / 2;
	ring.idle_ticks = 4 * hv_ring_spin;
	ring.yield_ticks = YIELD_NS * ticks / ns;
}

/*
 * AUTO takes the ring when an exit costs more than several ring round trips
 * and a server can have a CPU of its own while a vthread spins.
 */
void rt_ring_init(int mode)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int automatic = rt.exit_ns >= AUTO_MIN_EXIT_NS && cpus >= 2 ? VTHREAD_SYSCALL_RING :
		VTHREAD_SYSCALL_EXIT;

	rt.syscallmode = mode == VTHREAD_SYSCALL_AUTO ? automatic : mode;
	ring.max_servers = cpus > 2 ? (cpus - 1 < MAX_SERVERS ? cpus - 1 : MAX_SERVERS) : 1;
	rt_paths_publish();
	if (!ring.active)
		ring.active = calloc(rt.hv.max_vcpus, sizeof(*ring.active));
}

void rt_ring_forget(void)
{
	ring.more = false;
	ring.nactive = 0;
	ring.nservers = 0;
	hv_ring_awake = 0;
	pthread_mutex_init(&ring.lock, NULL);
}

/* The signal a failed write raised on the server, which belongs to the vthread:
 * taken off the server, and the exit path repeats the call to raise its own. */
static void drop_signal(int sig)
{
	uint64_t set = 1ull << (sig - 1);
	struct timespec zero = { 0, 0 };

	rt_syscall6(SYS_rt_sigtimedwait, (long)&set, 0, (long)&zero, sizeof(set), 0, 0);
}

/* Where a read of r bytes left the file: pread64's offset plus r, or read's
 * file position (-1 if it cannot be had: the read bounces). */
static long read_end(const uint64_t *a, bool pos, long r)
{
	return pos ? (long)a[3] + r : rt_syscall6(SYS_lseek, a[0], 0, SEEK_CUR, 0, 0, 0);
}

/* A signalfd's read takes the reading thread's pending signals, and a
 * server's are not the vthread's. A signalfd is open for reading and
 * writing, a file of no type (an anonymous inode, as eventfd and timerfd
 * are) and says so in its link; a read shorter than one signal's record
 * takes none. Each test is dearer than the one before, and most reads stop
 * at the first (one fcntl: 4 KiB ring reads ~465 to ~595 ns; an fstat of
 * every read cost more, ~720 ns). Any doubt bounces. */
static bool reads_own_signals(long fd)
{
	char self[40], link[32];
	struct stat st;
	long n, fl = rt_syscall6(SYS_fcntl, fd, F_GETFL, 0, 0, 0, 0);

	if (fl >= 0 && (fl & O_ACCMODE) != O_RDWR)
		return false;
	if (rt_syscall6(SYS_fstat, fd, (long)&st, 0, 0, 0, 0) < 0)
		return true;
	if (st.st_mode & S_IFMT)
		return false;
	snprintf(self, sizeof(self), "/proc/self/fd/%ld", fd);
	n = rt_syscall6(SYS_readlink, (long)self, (long)link, sizeof(link) - 1, 0, 0, 0);
	if (n < 0)
		return true;
	link[n] = 0;
	return strstr(link, "[signalfd]") != NULL;
}

/*
 * read, write, pread64, pwrite64 without waiting: true with *ret when done;
 * false to bounce, *moved bytes already moved (a blocking call would have
 * moved them all, so the exit path moves the rest).
 */
static bool try_rw(long nr, const uint64_t *a, long *ret, long *moved)
{
	bool pos = nr == SYS_pread64 || nr == SYS_pwrite64;
	bool wr = nr == SYS_write || nr == SYS_pwrite64;
	struct iovec iov = { (void *)a[1], a[2] };
	struct stat st;
	long r, fl;

	*moved = 0;
	if ((pos && (long)a[3] < 0) || a[2] > 0x7ffff000 ||
	    (nr == SYS_read && a[2] >= sizeof(struct signalfd_siginfo) &&
	     reads_own_signals((long)a[0])))
		return false;	/* the exit path gives the call's own answer */
	r = rt_syscall6(wr ? SYS_pwritev2 : SYS_preadv2, a[0], (long)&iov, 1, pos ? (long)a[3] : -1,
			0, RWF_NOWAIT);
	switch (r) {
	case -EAGAIN:	/* the call's own answer only if the file does not block */
		*ret = r;
		fl = rt_syscall6(SYS_fcntl, a[0], F_GETFL, 0, 0, 0, 0);
		return fl >= 0 && (fl & O_NONBLOCK);
	case -EPIPE:
		drop_signal(SIGPIPE);
		return false;
	case -EFBIG:
		drop_signal(SIGXFSZ);
		return false;
	case -EOPNOTSUPP:
	case -EINTR:
		return false;
	}
	*ret = r;
	if (r <= 0 || (uint64_t)r == a[2])
		return true;
	/* Short: a blocking write goes on; a blocking read of a file does too,
	 * unless it stopped at the end of a regular file, as a blocking read would. */
	if (!wr && (rt_syscall6(SYS_fstat, a[0], (long)&st, 0, 0, 0, 0) < 0 ||
		    !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) ||
		    (S_ISREG(st.st_mode) && read_end(a, pos, r) >= st.st_size)))
		return true;
	*moved = r;
	return false;
}

static bool futex_prompt(uint64_t op)
{
	switch (op & FUTEX_CMD_MASK) {
	case FUTEX_WAKE: case FUTEX_WAKE_BITSET: case FUTEX_WAKE_OP:
	case FUTEX_REQUEUE: case FUTEX_CMP_REQUEUE:
		return true;
	}
	return false;
}

/*
 * Whether the file behind an O_PATH descriptor opens without waiting and as
 * from any thread: a regular file or a directory, not of /proc. A FIFO's open
 * waits for its peer (and, made without waiting, wakes a peer that waits), a
 * device's may wait too; /proc/thread-self would be the server's.
 */
static bool prompt_to_open(long found)
{
	struct statfs fs;
	struct stat st;

	return rt_syscall6(SYS_fstat, found, (long)&st, 0, 0, 0, 0) == 0 &&
	       (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
	       rt_syscall6(SYS_fstatfs, found, (long)&fs, 0, 0, 0, 0) == 0 &&
	       fs.f_type != PROC_SUPER_MAGIC;
}

/*
 * Opens the file behind the O_PATH descriptor found with flags, through
 * /proc/self/fd (so the file checked is the file opened), in found's place:
 * the lowest free number, as the call's own would be. O_NONBLOCK, which for
 * these files only keeps the open from waiting for a lease to break, is
 * cleared after unless asked for. False, found unchanged, if any step fails.
 */
static bool reopen(long found, long flags)
{
	char self[40];
	long fd;
	bool done;

	snprintf(self, sizeof(self), "/proc/self/fd/%ld", found);
	fd = rt_syscall6(SYS_openat, AT_FDCWD, (long)self,
			 (flags & ~(O_CREAT | O_NOFOLLOW)) | O_NONBLOCK, 0, 0, 0);
	if (fd < 0)
		return false;
	done = ((flags & O_NONBLOCK) ||
		rt_syscall6(SYS_fcntl, fd, F_SETFL, flags & (O_APPEND | O_DIRECT | O_NOATIME),
			    0, 0, 0) == 0) &&
	       rt_syscall6(SYS_dup3, fd, found, flags & O_CLOEXEC, 0, 0, 0) >= 0;
	rt_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
	return done;
}

/*
 * open and openat without waiting: true with *ret when done, false to bounce.
 * The file is first found with O_PATH, which opens nothing and never waits.
 * Creating, what may wait or depends on the thread, and any doubt take the
 * exit path.
 */
static bool try_open(long nr, const uint64_t *a, long *ret)
{
	long dirfd = nr == SYS_open ? AT_FDCWD : (long)a[0];
	uint64_t path = nr == SYS_open ? a[0] : a[1];
	long flags = nr == SYS_open ? (long)a[1] : (long)a[2], found;

	if ((flags & O_TMPFILE) == O_TMPFILE || (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
		return false;
	found = rt_syscall6(SYS_openat, dirfd, path,
			    O_PATH | O_CLOEXEC | (flags & (O_NOFOLLOW | O_DIRECTORY)), 0, 0, 0);
	if (found == -ENOENT || found == -ENOTDIR) {
		*ret = found;
		return !(flags & O_CREAT);	/* not there: the call creates it */
	}
	if (found < 0)
		return false;
	if (prompt_to_open(found) && reopen(found, flags)) {
		*ret = found;
		return true;
	}
	rt_syscall6(SYS_close, found, 0, 0, 0, 0, 0);
	return false;
}

/*
 * sched_yield gives the CPU to a runnable thread beside the caller, if any. A
 * vthread spinning on a lock with it (sysbench threads, spin-then-yield locks)
 * would pay an exit per call: the round trip, with the guest's pause while it
 * waits, answers instead, and one call per YIELD_NS bounces to the backing
 * thread for a real yield, so that a lock holder sharing the vthread's CPU
 * runs within YIELD_NS, as the host's tick would let it run anyway.
 */
static bool yield_prompt(struct hv_ring_slot *s)
{
	uint64_t now = __rdtsc();

	if (now - s->yielded < ring.yield_ticks)
		return true;
	s->yielded = now;
	return false;
}

/* CLOCK_THREAD_CPUTIME_ID, or a thread clock naming tid 0 (the kernel's
 * encoding: ~tid << 3, bit 2 set): the caller's own, which a server's is not.
 * A clockid_t is an int: the register's upper half is not the caller's. */
static bool own_cpu_clock(int clock)
{
	return clock == CLOCK_THREAD_CPUTIME_ID || (clock < 0 && (clock & 4) && clock >> 3 == -1);
}

static void serve(struct hv_ring_slot *s)
{
	_Atomic uint32_t *state = (_Atomic uint32_t *)&s->state;
	const uint64_t *a = s->args;
	long nr = s->nr, ret = 0, moved = 0;
	uint64_t site = s->site;
	bool done = true;

	switch (rt_syscall_path(nr)->path) {
	case RT_PATH_RING_TRY:
		done = try_rw(nr, a, &ret, &moved);
		break;
	case RT_PATH_RING_WAKE:
		done = futex_prompt(a[1]);
		if (done)
			ret = rt_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		break;
	case RT_PATH_RING_YIELD:
		done = yield_prompt(s);
		break;
	case RT_PATH_RING_OPEN:
		done = try_open(nr, a, &ret);
		break;
	case RT_PATH_RING_CLOCK:
		done = !own_cpu_clock((int)a[0]);
		if (done)
			ret = rt_syscall6(nr, a[0], a[1], 0, 0, 0, 0);
		break;
	default:
		ret = rt_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (ret == -EFBIG && (nr == SYS_truncate || nr == SYS_ftruncate)) {
			drop_signal(SIGXFSZ);	/* the vthread's: the exit path raises it */
			done = false;
		}
		break;
	}
	s->ret = done ? ret : moved;
	if (done) {
		rt.ring_served++;
		rt_count(s->served);
	}
	if (atomic_exchange(state, done ? HV_RING_DONE : HV_RING_BOUNCED) & WAITER)
		futex(state, FUTEX_WAKE, 1);
	rt_rewrite_seen(site);
}

/*
 * A server runs: guests waiting for one to take their call keep spinning
 * (hv/guest.S). Written once per a sixteenth of hv_ring_stale at most, as
 * every guest that spins reads the line; BUSY while a server makes a call,
 * which may take longer than that (an open is seven system calls) and leaves
 * the calls it then finds for it, not for the exit path.
 */
#define BUSY	(UINT64_MAX >> 1)	/* after any TSC: no guest gives up */

static uint64_t beat(void)
{
	uint64_t now = __rdtsc();

	if (now - hv_ring_beat > hv_ring_stale / 16)
		hv_ring_beat = now;
	return now;
}

/* One pass over the slots: the calls served. */
static unsigned scan(void)
{
	unsigned n = ring.nactive, served = 0;

	for (unsigned i = 0; i < n; i++) {
		struct hv_ring_slot *s = __atomic_load_n(&ring.active[i], __ATOMIC_ACQUIRE);
		uint32_t posted = HV_RING_POSTED;

		if (s && s->state == HV_RING_POSTED &&
		    atomic_compare_exchange_strong((_Atomic uint32_t *)&s->state, &posted,
						   HV_RING_TAKEN)) {
			hv_ring_beat = BUSY;
			serve(s);
			served++;
		}
	}
	return served;
}

static void add_server(void);

/*
 * A server sleeps after idle_ticks of spinning without a call, yielding its
 * CPU between scans for the last three quarters of them: on 2 cores a server
 * woken for a vthread that makes no call would otherwise hold a CPU that
 * threads spinning on each other need. Time it did not run (preempted) is not
 * spinning: it neither served nor kept a CPU from others.
 */
static void *server_main(void *p)
{
	sigset_t all;
	uint64_t idle = 0, prev = __rdtsc();

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);	/* glibc keeps its own two */
	__atomic_store_n((_Atomic uint32_t *)p, 1, __ATOMIC_RELEASE);	/* start_server's */
	futex(p, FUTEX_WAKE, 1);
	for (;;) {
		uint64_t now = beat();

		if (ring.more)
			add_server();
		if (scan()) {
			idle = 0;
			prev = beat();
			continue;
		}
		if (now - prev < ring.idle_ticks / 8)	/* else it did not run meanwhile */
			idle += now - prev;
		prev = now;
		if (idle < ring.idle_ticks) {
			if (idle < ring.idle_ticks / 4)
				_mm_pause();
			else	/* awake still, but a thread that waits for this CPU runs */
				sched_yield();
			continue;
		}
		uint32_t bell = ring.bell;

		__atomic_sub_fetch(&hv_ring_awake, 1, __ATOMIC_SEQ_CST);
		if (!scan())
			futex(&ring.bell, FUTEX_WAIT, bell);
		prev = beat();
		__atomic_add_fetch(&hv_ring_awake, 1, __ATOMIC_SEQ_CST);
		idle = 0;
	}
	return NULL;
}

/*
 * glibc ends the process when its count of live threads falls to zero: after
 * the last thread's pthread_exit(), as the main thread's. Servers are taken off
 * that count (rt_nthreads_add), or a program whose main thread calls
 * pthread_exit() would never end: its last thread gone, the servers (every
 * signal blocked) would live on. The count is private to glibc (libthread_db
 * reads it); without it, servers count as threads and the README says what
 * that costs. The creator waits until the server runs: a thread's start
 * allocates (glibc's pthread_getattr_np under ASan), and a vthread that forks
 * meanwhile would leave its child the allocator's locks held by a thread it
 * does not have (GCC 12's ASan does not take them around fork: seen as a hung
 * fork child in test_process).
 */
static void start_server(void)
{
	_Atomic uint32_t started = 0;
	pthread_attr_t a;
	pthread_t th;

	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 << 10);
	if (!ring.nservers)	/* the rest start from a server: the same */
		ring.seccomp = prctl(PR_GET_SECCOMP);
	__atomic_add_fetch(&hv_ring_awake, 1, __ATOMIC_SEQ_CST);
	if (pthread_create(&th, &a, server_main, (void *)&started) == 0) {
		pthread_setname_np(th, "vthread-ring");
		rt_nthreads_add(-1);
		ring.nservers++;
		while (!__atomic_load_n(&started, __ATOMIC_ACQUIRE))
			futex(&started, FUTEX_WAIT, 0);
	} else {
		__atomic_sub_fetch(&hv_ring_awake, 1, __ATOMIC_SEQ_CST);
	}
	pthread_attr_destroy(&a);
}

/*
 * Servers are started outside the guest: by the creator of a ring vthread, or
 * by a server asked for company. A backing thread handling an exit only asks
 * (ring.more), keeping thread creation off the guest's system-call path.
 */
static void add_server(void)
{
	pthread_mutex_lock(&ring.lock);
	if (!hv_ring_spin)	/* a fork child keeps its parent's */
		set_spin();
	if (ring.nservers < ring.max_servers)
		start_server();
	ring.more = false;
	pthread_mutex_unlock(&ring.lock);
}

/* Wakes a sleeping server; busy: all are busy, ask for one more. */
static void nudge(bool busy)
{
	if (busy && ring.nservers < ring.max_servers)
		ring.more = true;
	if (hv_ring_awake)
		return;
	ring.bell++;
	futex(&ring.bell, FUTEX_WAKE, 1);
}

/*
 * A server woken by the creator, not by the vthread's backing thread: the
 * host puts a woken thread near its waker, and one queued behind a vCPU that
 * spins may wait milliseconds for a CPU while every call takes an exit.
 */
void rt_ring_prepare(struct vthread *vt)
{
	if (!vt->ring)
		return;
	if (!ring.nservers)
		add_server();
	else
		nudge(false);
	/* A seccomp filter its creator has and the servers lack (or the reverse)
	 * would not apply to the calls a server makes: the exit path makes them. */
	if (prctl(PR_GET_SECCOMP) != ring.seccomp)
		vt->ring = false;
}

int rt_ring_attach(struct vthread *vt)
{
	struct hv_ring_slot *s = hv_vcpu_ring(vt->vcpu);
	/* Interrupts may come in the ring stub once `syscall` no longer masks them. */
	int r = hv_vcpu_set_syscall_entry(vt->vcpu, vt->ring, !vt->irq_fn);

	if (r < 0 || !vt->ring)
		return r;
	s->state = HV_RING_FREE;
	s->served = &vt->counts.ring;
	pthread_mutex_lock(&ring.lock);
	__atomic_store_n(&ring.active[ring.nactive], s, __ATOMIC_RELEASE);
	ring.nactive++;
	pthread_mutex_unlock(&ring.lock);
	nudge(false);
	return 0;
}

void rt_ring_detach(struct vthread *vt)
{
	struct hv_ring_slot *s = hv_vcpu_ring(vt->vcpu);

	if (!vt->ring)
		return;
	pthread_mutex_lock(&ring.lock);
	for (unsigned i = 0; i < ring.nactive; i++) {
		if (ring.active[i] != s)
			continue;
		__atomic_store_n(&ring.active[i], ring.active[ring.nactive - 1], __ATOMIC_RELEASE);
		ring.nactive--;
		break;
	}
	pthread_mutex_unlock(&ring.lock);
}

int rt_ring_leave(struct vthread *vt)
{
	rt_ring_detach(vt);
	vt->ring = false;
	return hv_vcpu_set_syscall_entry(vt->vcpu, false, false);
}

void rt_ring_missed(const struct vthread *vt, const hv_regs *r)
{
	long nr = r->rax;

	if (!vt->ring || rt_syscall_path(nr)->path < RT_PATH_RING)
		return;
	/* a futex wait (hv/guest.S) needs no server, but its site is rewritten */
	if (!hv_ring_awake && (nr != SYS_futex || futex_prompt(r->rsi)))
		nudge(false);
	rt_rewrite_seen(r->rcx);	/* the ring may take it next time: without the trap */
}

/*
 * A backing thread whose guest gave up because no server ran (on 2 cores,
 * say, both CPUs taken by spinning vCPUs) has a CPU now: before its own
 * call, which may wait, it makes the calls other guests are spinning on,
 * each of which would cost that guest an exit too. Its signals are blocked
 * while it handles an exit (all but glibc's setxid signal, RT_HOST_BLOCKED),
 * as a server's always are.
 */
static void help(void)
{
	unsigned served = scan();	/* not rt.ring_served's change: servers add to it meanwhile */

	if (!served)
		return;
	hv_ring_beat = __rdtsc();	/* not BUSY: it does not scan again */
	rt.ring_helped += served;
}

enum settled { BEFORE, AFTER, BOUNCED };

/*
 * Brings a vCPU stopped in the ring stub to before its call (registers as at
 * the `syscall`), after it (RAX the result), or to a bounced call with
 * *moved bytes moved. The slot is free again.
 */
static enum settled settle(struct vthread *vt, hv_regs *r, long *moved)
{
	struct hv_ring_slot *s = hv_vcpu_ring(vt->vcpu);
	_Atomic uint32_t *state = (_Atomic uint32_t *)&s->state;
	uint32_t st = HV_RING_POSTED;

	switch (hv_ring_unwind(vt->vcpu, r)) {
	case HV_RING_STOP_UNPOSTED:
		return BEFORE;
	case HV_RING_STOP_DONE:
		return AFTER;
	case HV_RING_STOP_POSTED:
		break;
	}
	if (atomic_compare_exchange_strong(state, &st, HV_RING_FREE))
		return BEFORE;
	while (st == HV_RING_TAKEN || st == (HV_RING_TAKEN | WAITER)) {
		if (st == HV_RING_TAKEN &&
		    !atomic_compare_exchange_strong(state, &st, HV_RING_TAKEN | WAITER))
			continue;
		futex(state, FUTEX_WAIT, HV_RING_TAKEN | WAITER);
		st = *state;
	}
	*state = HV_RING_FREE;
	if (st == HV_RING_DONE) {
		r->rax = s->ret;
		return AFTER;
	}
	*moved = s->ret;
	return BOUNCED;
}

enum rt_next rt_ring_exit(struct vthread *vt, hv_regs *r)
{
	long moved = 0;

	if (hv_stub_at(r->rip) != HV_STUB_RING)
		rt_fault(vt, &(struct hv_exit){ .kind = HV_EXIT_FAIL, .regs = *r });
	switch (settle(vt, r, &moved)) {
	case AFTER:
		rt_resume_sysret(vt, r, r->rax);
		return RT_RESUME;
	case BEFORE:
		rt.ring_late++;
		if (!hv_vcpu_ring(vt->vcpu)->deadline) {	/* hv/guest.S: none running */
			rt.ring_no_server++;
			help();
		}
		nudge(true);	/* posted, and no server came in time */
		return rt_syscall_forward(vt, r, 0);
	case BOUNCED:
		break;
	}
	rt.ring_bounced++;
	return rt_syscall_forward(vt, r, moved);
}

int rt_ring_settle_for_signal(struct vthread *vt)
{
	long moved = 0;
	hv_regs r;
	int e = hv_vcpu_get_regs(vt->vcpu, &r);

	if (e < 0 || hv_stub_at(r.rip) != HV_STUB_RING)
		return e;
	switch (settle(vt, &r, &moved)) {
	case BOUNCED:
		if (moved) {
			hv_regs_sysret(&r, moved);
			break;
		}
		/* nothing moved: the call is made again after the handler */
		__attribute__((fallthrough));
	case BEFORE:
		hv_regs_restart_syscall(&r, r.rax);
		break;
	case AFTER:
		hv_regs_sysret(&r, r.rax);
		break;
	}
	return hv_vcpu_set_regs(vt->vcpu, &r);
}
