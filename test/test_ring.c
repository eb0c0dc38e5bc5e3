/* SPDX-License-Identifier: MIT */
/*
 * Exit-less system calls: a vthread in ring mode gets the same results and
 * errno as on the exit path, and its prompt calls really do avoid exits.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <linux/landlock.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

START_TEST(test_syscall_mode_attribute)
{
	vthread_attr_t a;
	int mode = -1;

	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_getsyscallmode(&a, &mode), 0);
	ck_assert_int_eq(mode, VTHREAD_SYSCALL_AUTO);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING), 0);
	ck_assert_int_eq(vthread_attr_getsyscallmode(&a, &mode), 0);
	ck_assert_int_eq(mode, VTHREAD_SYSCALL_RING);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, 3), EINVAL);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, -1), EINVAL);
	ck_assert_int_eq(vthread_attr_getsyscallmode(&a, NULL), EINVAL);
	ck_assert_int_eq(vthread_attr_setsyscallmode(NULL, VTHREAD_SYSCALL_EXIT), EINVAL);
}
END_TEST

#define CALLS 2000

static void *getppid_loop(void *arg)
{
	pid_t want = (pid_t)(intptr_t)arg;

	for (int i = 0; i < CALLS; i++)
		if (getppid() != want)
			return (void *)1;
	return NULL;
}

/* Pins the process's ring servers (threads named vthread-ring) to cpu. */
static void pin_servers(int cpu)
{
	cpu_set_t set;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		int fd;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		if (read(fd, comm, sizeof(comm) - 1) > 0 && !strcmp(comm, "vthread-ring\n"))
			ck_assert_int_eq(sched_setaffinity(atoi(e->d_name), sizeof(set), &set), 0);
		close(fd);
	}
	closedir(d);
}

/* The first two CPUs the process may run on; false if it may run on one only. */
static bool two_cpus(int cpu[2])
{
	cpu_set_t set;
	int n = 0;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cpu[n++] = c;
	return n == 2;
}

/*
 * Runs fn in ring mode until more than *want of its calls take the ring, up
 * to 40 tries (~60 ms each) where there are two CPUs, and leaves in *d what
 * the last try added to the process's stats; true if the process had two
 * CPUs to run on. With two CPUs the server must be able to run beside the
 * vthread. With another process busy (CI's Bochs lane) the scheduler kept
 * them on one CPU through 40 tries: the vthread, and so the server it starts,
 * go on the first CPU, then the server moves to the second. Tries also ride
 * out a moment when both CPUs are taken.
 */
static bool ring_tries(void *(*fn)(void *), void *arg, const long *want,
		       struct vthread_stats *d)
{
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	int cpu[2];
	bool two = two_cpus(cpu);
	cpu_set_t first;

	if (two) {
		CPU_ZERO(&first);
		CPU_SET(cpu[0], &first);
		ck_assert_int_eq(sched_setaffinity(0, sizeof(first), &first), 0);
	}
	for (int tries = 0; tries < (two ? 40 : 1); tries++) {
		ck_assert_int_eq(vthread_get_stats(&before), 0);
		ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, fn, arg), 0);
		ck_assert_int_eq(vthread_get_stats(&after), 0);
		if (after.syscalls_ring - before.syscalls_ring > (unsigned long)*want)
			break;
		if (two)
			pin_servers(cpu[1]);	/* started by the first try */
	}
	d->syscalls_ring = after.syscalls_ring - before.syscalls_ring;
	d->exit_ring = after.exit_ring - before.exit_ring;
	d->exit_syscall = after.exit_syscall - before.exit_syscall;
	return two;
}

START_TEST(test_ring_mode_makes_calls_without_exits)
{
	struct vthread_stats d = VTHREAD_STATS_INIT;
	const long want = CALLS / 2;

	if (ring_tries(getppid_loop, (void *)(intptr_t)getppid(), &want, &d)) {
		/* The server may sleep at first, or lose its CPU: most calls, not all. */
		ck_assert_uint_gt(d.syscalls_ring, CALLS / 2);
		ck_assert_uint_lt(d.exit_syscall, CALLS / 2);
	} else {
		/* One CPU (the SVM lane): the server runs only when the vCPU's thread is
		 * preempted, so calls come back by an exit, the ring's or the plain one. */
		ck_assert_uint_ge(d.syscalls_ring + d.exit_ring + d.exit_syscall, CALLS);
	}
}
END_TEST

/* getppid for 20 ms: a few of the host's ticks, where threads sharing a CPU change. */
static void *getppid_20ms(void *arg)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (getppid() != (pid_t)(intptr_t)arg)
			return (void *)1;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 20000000);
	return NULL;
}

/* The test, its vthreads and the ring's servers on one CPU (the servers
 * started by a ring vthread that makes getppid calls, arg, for 20 ms). */
static void all_on_one_cpu(void *arg)
{
	cpu_set_t one;
	int cpu[2];

	two_cpus(cpu);
	CPU_ZERO(&one);
	CPU_SET(cpu[0], &one);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, getppid_20ms, arg), 0);
	pin_servers(cpu[0]);
}

/*
 * With the servers on the vthread's own CPU, a posted call waits for a server
 * that cannot run while the vCPU spins: the guest gives it up once no server
 * has scanned for half its spin budget, and the exit path makes it
 * (hv/guest.S). Each such call is counted in ring_no_server; without the
 * check every late call spun its whole budget and none was.
 */
START_TEST(test_calls_no_running_server_can_take_are_given_up_early)
{
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	void *arg = (void *)(intptr_t)getppid();
	unsigned long late, none;

	all_on_one_cpu(arg);
	ck_assert_int_eq(vthread_get_stats(&before), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, getppid_20ms, arg), 0);
	ck_assert_int_eq(vthread_get_stats(&after), 0);
	late = after.ring_late - before.ring_late;
	none = after.ring_no_server - before.ring_no_server;
	ck_assert_uint_gt(late, 0);
	ck_assert_uint_le(none, late);
	ck_assert_uint_ge(none * 10, late * 9);
}
END_TEST

/*
 * Two ring vthreads, the servers on the first one's CPU, the second on the
 * other CPU: a guest that gave up on the servers (the first starves them)
 * finds the other guest's call posted, and its backing thread makes that
 * call before its own, saving the other an exit (ring_helped). On one CPU
 * (the SVM lane) the other guest's call is posted only if its vCPU was
 * preempted while it waited, which is the scheduler's; on kvm_pvm too a
 * process now and then went 20 tries of 20 ms without: up to 100.
 */
static atomic_int pair_started;

/* getppid for 20 ms once both of a pair run: on one CPU (the SVM lane) the
 * first would otherwise end before its creator made the second. */
static void *getppid_20ms_as_a_pair(void *arg)
{
	atomic_fetch_add(&pair_started, 1);
	while (atomic_load(&pair_started) < 2)
		;
	return getppid_20ms(arg);
}

START_TEST(test_a_backing_thread_makes_the_calls_other_guests_wait_on)
{
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	void *arg = (void *)(intptr_t)getppid(), *ret;
	vthread_attr_t a;
	vthread_t vt[2];
	cpu_set_t cpus[2];
	int cpu[2];

	all_on_one_cpu(arg);
	if (!two_cpus(cpu))
		cpu[1] = cpu[0];
	for (int i = 0; i < 2; i++) {
		CPU_ZERO(&cpus[i]);
		CPU_SET(cpu[i], &cpus[i]);
	}
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING), 0);
	ck_assert_int_eq(vthread_get_stats(&before), 0);
	after = before;
	for (int tries = 0; tries < 100 && after.ring_helped == before.ring_helped; tries++) {
		pair_started = 0;
		for (int i = 0; i < 2; i++) {
			/* the second on the other CPU, where there is one: the first
			 * then starves the servers while the second waits on them */
			ck_assert_int_eq(sched_setaffinity(0, sizeof(cpus[i]), &cpus[i]), 0);
			ck_assert_int_eq(vthread_create(&vt[i], &a, getppid_20ms_as_a_pair, arg), 0);
		}
		ck_assert_int_eq(sched_setaffinity(0, sizeof(cpus[0]), &cpus[0]), 0);
		for (int i = 0; i < 2; i++) {
			ck_assert_int_eq(vthread_join(vt[i], &ret), 0);
			ck_assert_ptr_null(ret);
		}
		ck_assert_int_eq(vthread_get_stats(&after), 0);
	}
	ck_assert_uint_gt(after.ring_helped, before.ring_helped);
	ck_assert_uint_le(after.ring_helped - before.ring_helped,
			  after.syscalls_ring - before.syscalls_ring);
}
END_TEST

/* sched_yield for 30 ms: the count of calls in n[0], half of it in n[1]. */
static void *yield_loop(void *arg)
{
	struct timespec t0, t;
	long *n = arg;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (n[0] = 0;; n[0]++) {
		n[1] = n[0] / 2;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec > 30000000)
			return NULL;
		if (sched_yield())
			return (void *)1;
	}
}

/*
 * A ring vthread's sched_yield is answered on the ring, but one call per
 * millisecond still takes the exit path and yields the CPU for real
 * (runtime/ring.c), where a lock holder sharing the vthread's CPU gets to run:
 * over 30 ms about 30 such exits, at least 10 asked for (without the real
 * yields, 0 to 5 exits were seen: the server's misses).
 */
START_TEST(test_ring_sched_yield_still_yields_each_millisecond)
{
	struct vthread_stats d = VTHREAD_STATS_INIT;
	long n[2] = { 0, 0 };
	bool two = ring_tries(yield_loop, n, &n[1], &d);

	ck_assert_int_gt(n[0], 0);
	if (two) {
		ck_assert_uint_gt(d.syscalls_ring, (unsigned long)n[1]);
		ck_assert_uint_ge(d.exit_ring + d.exit_syscall, 10);
	} else {
		ck_assert_uint_ge(d.syscalls_ring + d.exit_ring + d.exit_syscall,
				  (unsigned long)n[0]);
	}
}
END_TEST

START_TEST(test_exit_mode_never_uses_the_ring)
{
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;

	ck_assert_int_eq(vthread_get_stats(&before), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_EXIT, getppid_loop, (void *)(intptr_t)getppid()), 0);
	ck_assert_int_eq(vthread_get_stats(&after), 0);
	ck_assert_uint_eq(after.syscalls_ring, before.syscalls_ring);
	ck_assert_uint_ge(after.exit_syscall - before.exit_syscall, CALLS);
}
END_TEST

/* Failing calls of each ring class: the native errno. */
static void *failing_calls(void *arg)
{
	char buf[8];
	int p[2];

	(void)arg;
	if (close(-1) != -1 || errno != EBADF)
		return (void *)1;
	if (read(-1, buf, 1) != -1 || errno != EBADF)
		return (void *)2;
	if (pread(0, buf, 1, -1) != -1 || errno != EINVAL)
		return (void *)3;
	if (pipe(p))
		return (void *)4;
	if (pwrite(p[1], buf, 1, 0) != -1 || errno != ESPIPE)
		return (void *)5;
	if (mkdir("/proc/no/such", 0700) != -1 || errno != ENOENT)
		return (void *)6;
	if (munmap((void *)1, 4096) != -1 || errno != EINVAL)
		return (void *)7;
	close(p[0]);
	close(p[1]);
	return NULL;
}

START_TEST(test_failing_calls_give_the_same_errno_in_both_modes)
{
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, failing_calls, NULL), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_EXIT, failing_calls, NULL), 0);
}
END_TEST

/*
 * open and openat as a direct call gives them, whichever path takes them
 * (paths.c: a server opens regular files and directories; creating, FIFOs,
 * devices and /proc take the exit path). Run in both modes.
 */
static char open_dir[64];

static int lowest_free_fd(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

static void *open_calls(void *arg)
{
	char path[128], link[128], comm[32] = "", want[32] = "", buf[16];
	int fd, lowest;

	(void)arg;
	snprintf(path, sizeof(path), "%s/file", open_dir);
	snprintf(link, sizeof(link), "%s/link", open_dir);
	/* a new file: created, with its mode */
	fd = open(path, O_WRONLY | O_CREAT, 0640);
	if (fd < 0 || write(fd, "hello", 5) != 5 || close(fd))
		return (void *)1;
	struct stat st;
	if (stat(path, &st) || (st.st_mode & 0777) != 0640)
		return (void *)2;
	/* an existing file: the lowest free number, its data, its flags */
	lowest = lowest_free_fd();
	fd = open(path, O_RDONLY);
	if (fd != lowest || read(fd, buf, sizeof(buf)) != 5 || memcmp(buf, "hello", 5) ||
	    read(fd, buf, sizeof(buf)) != 0)
		return (void *)3;
	if (fcntl(fd, F_GETFD) != 0 || (fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != O_RDONLY)
		return (void *)4;
	close(fd);
	fd = open(path, O_RDONLY | O_NONBLOCK);
	if (fd < 0 || !(fcntl(fd, F_GETFL) & O_NONBLOCK))
		return (void *)4;
	close(fd);
	fd = openat(AT_FDCWD, path, O_RDWR | O_CLOEXEC | O_APPEND);
	if (fd < 0 || fcntl(fd, F_GETFD) != FD_CLOEXEC ||
	    (fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND)) != (O_RDWR | O_APPEND))
		return (void *)5;
	close(fd);
	/* O_CREAT of an existing file opens it; with O_EXCL it fails */
	fd = open(path, O_RDONLY | O_CREAT, 0600);
	if (fd < 0 || fstat(fd, &st) || st.st_size != 5 || (st.st_mode & 0777) != 0640)
		return (void *)6;
	close(fd);
	if (open(path, O_RDONLY | O_CREAT | O_EXCL, 0600) != -1 || errno != EEXIST)
		return (void *)7;
	/* O_TRUNC truncates */
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0 || fstat(fd, &st) || st.st_size != 0)
		return (void *)8;
	close(fd);
	/* errors */
	if (open("/no/such/file", O_RDONLY) != -1 || errno != ENOENT)
		return (void *)9;
	if (open(path, O_RDONLY | O_DIRECTORY) != -1 || errno != ENOTDIR)
		return (void *)10;
	if (open(open_dir, O_WRONLY) != -1 || errno != EISDIR)
		return (void *)11;
	if (symlink(path, link) || open(link, O_RDONLY | O_NOFOLLOW) != -1 || errno != ELOOP)
		return (void *)12;
	if (openat(-1, "relative", O_RDONLY) != -1 || errno != EBADF)
		return (void *)13;
	/* a directory; a device */
	fd = open(open_dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fstat(fd, &st) || !S_ISDIR(st.st_mode))
		return (void *)14;
	close(fd);
	fd = open("/dev/null", O_WRONLY);
	if (fd < 0 || write(fd, "x", 1) != 1)
		return (void *)15;
	close(fd);
	/* /proc/thread-self is the calling thread's, not a server's: 20 times, as
	 * one open may leave the guest while no server is awake */
	prctl(PR_GET_NAME, want);
	for (int i = 0; i < 20; i++) {
		memset(comm, 0, sizeof(comm));
		fd = open("/proc/thread-self/comm", O_RDONLY);
		if (fd < 0 || read(fd, comm, sizeof(comm) - 1) <= 0)
			return (void *)16;
		close(fd);
		if (strncmp(comm, want, strlen(want)) || comm[strlen(want)] != '\n')
			return (void *)17;
	}
	unlink(link);
	unlink(path);
	return NULL;
}

START_TEST(test_open_gives_what_a_direct_call_gives_in_both_modes)
{
	snprintf(open_dir, sizeof(open_dir), "/tmp/vthread-open-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(open_dir));
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, open_calls, NULL), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_EXIT, open_calls, NULL), 0);
	ck_assert_int_eq(rmdir(open_dir), 0);
}
END_TEST

/* Opening a FIFO waits for its peer, and wakes a peer that waits. */
static char fifo_path[64];
static atomic_int fifo_opened;

static void *open_fifo(void *arg)
{
	int fd = open(fifo_path, arg ? O_RDONLY : O_WRONLY);

	fifo_opened = 1;
	if (fd < 0)
		return (void *)1;
	close(fd);
	return NULL;
}

static void fifo_peer(bool vthread_reads)
{
	vthread_attr_t a;
	vthread_t vt;
	int fd;
	void *ret;

	/* /dev/shm: tmpfs, where the lanes' /tmp (9p) holds no FIFO */
	snprintf(fifo_path, sizeof(fifo_path), "/dev/shm/vthread-fifo-%d", getpid());
	unlink(fifo_path);
	ck_assert_int_eq(mkfifo(fifo_path, 0600), 0);
	fifo_opened = 0;
	require_backend();
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, open_fifo, vthread_reads ? (void *)1 : NULL), 0);
	usleep(100 * 1000);
	ck_assert_int_eq(fifo_opened, 0);	/* still waiting for a peer */
	fd = open(fifo_path, vthread_reads ? O_WRONLY : O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(fifo_opened, 1);
	close(fd);
	vthread_attr_destroy(&a);
	unlink(fifo_path);
}

START_TEST(test_opening_a_fifo_waits_for_its_peer)
{
	fifo_peer(true);
	fifo_peer(false);
}
END_TEST

/* 500 opens and closes of a file, and reads of it to its end. */
#define OPENS 500

static void *open_read_loop(void *arg)
{
	char buf[4096];

	for (int i = 0; i < OPENS; i++) {
		int fd = open(arg, O_RDONLY);

		if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0 || close(fd))
			return (void *)1;
	}
	return NULL;
}

/*
 * A regular file's open, and a read that stops at its end, take the ring:
 * at most OPENS / 2 of the 3 * OPENS calls exit (the reads alone were OPENS
 * exits before a read to the end stayed on the ring).
 */
START_TEST(test_open_and_a_read_to_the_end_take_the_ring)
{
	struct vthread_stats d = VTHREAD_STATS_INIT;
	const long calls = 3 * OPENS, want = calls - OPENS / 2;
	char path[] = "/tmp/vthread-open-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "short", 5), 5);
	close(fd);
	if (ring_tries(open_read_loop, path, &want, &d)) {
		ck_assert_uint_gt(d.syscalls_ring, want);
		ck_assert_uint_lt(d.exit_syscall + d.exit_ring, OPENS / 2);
	} else {
		ck_assert_uint_ge(d.syscalls_ring + d.exit_ring + d.exit_syscall, calls);
	}
	unlink(path);
}
END_TEST

/*
 * After unshare(CLONE_FILES) a thread's descriptors are its own: the files it
 * opens are not in the process's table, which a server would have used.
 */
#define PRIVATE_OPENS 100
static int private_fd[PRIVATE_OPENS];

/* The table made the vthread's own by unshare, or by close_range's
 * CLOSE_RANGE_UNSHARE (closing nothing). */
static void *open_after_unshare(void *arg)
{
	static int how;

	if (how++ % 2 ? syscall(SYS_close_range, ~0u, ~0u, CLOSE_RANGE_UNSHARE) :
			unshare(CLONE_FILES))
		return (void *)1;
	for (int i = 0; i < PRIVATE_OPENS; i++)
		if ((private_fd[i] = open(arg, O_RDONLY)) < 0)
			return (void *)2;
	return NULL;
}

START_TEST(test_unshared_descriptors_are_the_vthreads_own)
{
	char path[] = "/tmp/vthread-unshare-XXXXXX";
	int fd = mkstemp(path), shared = 0;

	ck_assert_int_ge(fd, 0);
	close(fd);
	for (int how = 0; how < 2; how++) {
		ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, open_after_unshare, path), 0);
		for (int i = 0; i < PRIVATE_OPENS; i++) {
			struct stat a, b;

			/* a number free in ours, or a file other than the one opened */
			if (!fstat(private_fd[i], &a) && !stat(path, &b) && a.st_ino == b.st_ino &&
			    a.st_dev == b.st_dev)
				shared++;
		}
	}
	ck_assert_int_eq(shared, 0);
	unlink(path);
}
END_TEST

static volatile sig_atomic_t pipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	pipes++;
}

/* The server's attempt must not steal the vthread's SIGPIPE. */
static void *write_to_closed_pipe(void *arg)
{
	int p[2];
	ssize_t n;

	(void)arg;
	if (pipe(p))
		return (void *)1;
	close(p[0]);
	n = write(p[1], "x", 1);
	close(p[1]);
	return (void *)(intptr_t)(n == -1 && errno == EPIPE && pipes == 1 ? 0 : 2);
}

START_TEST(test_epipe_raises_sigpipe_in_the_vthread)
{
	signal(SIGPIPE, on_sigpipe);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, write_to_closed_pipe, NULL), 0);
	ck_assert_int_eq(pipes, 1);
}
END_TEST

/* ftruncate and truncate past RLIMIT_FSIZE: EFBIG, and SIGXFSZ to the vthread
 * (taken off a server that made the call; the exit path raises it). */
static volatile sig_atomic_t xfsz;

static void on_sigxfsz(int sig)
{
	(void)sig;
	xfsz++;
}

static void *truncate_past_limit(void *arg)
{
	const char *path = arg;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), bad = 0;

	if (fd < 0)
		return (void *)-1;
	for (int i = 0; i < 50; i++) {
		for (int j = 0; j < 50; j++)	/* keeps a server awake */
			getppid();
		bad += ftruncate(fd, 1 << 20) != -1 || errno != EFBIG;
		bad += truncate(path, 1 << 20) != -1 || errno != EFBIG;
	}
	close(fd);
	return (void *)(intptr_t)bad;
}

START_TEST(test_efbig_from_truncate_raises_sigxfsz_in_the_vthread)
{
	struct rlimit lim = { 4096, RLIM_INFINITY };
	char path[] = "/tmp/vthread-xfsz-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	signal(SIGXFSZ, on_sigxfsz);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, truncate_past_limit, path), 0);
	unlink(path);
	ck_assert_int_eq(xfsz, 100);
}
END_TEST

/* A read of a signalfd takes the signals pending for the reading thread: a
 * server must not make it for the vthread (its own are not the vthread's). */
static void *read_own_signals(void *arg)
{
	struct signalfd_siginfo si;
	intptr_t missed = 0;
	sigset_t set;
	int fd;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) || (fd = signalfd(-1, &set, SFD_NONBLOCK)) < 0)
		return (void *)-1;
	for (int i = 0; i < 100; i++) {
		if (syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1))
			return (void *)-2;
		for (int j = 0; j < 50; j++)	/* keeps a server awake */
			getppid();
		missed += read(fd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR1;
	}
	close(fd);
	return (void *)missed;
}

START_TEST(test_a_signalfd_reads_the_vthreads_own_signals)
{
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, read_own_signals, NULL), 0);
}
END_TEST

/*
 * Attacks on a thread's own restrictions: what a ring vthread's calls must not
 * escape once it (or its creator) restricted itself, as a pthread's cannot.
 * The servers are the process's: the thread leaves the ring instead.
 */

/* uname() 100 times, a server kept awake: how often it got past the filter. */
static void *uname_loop(void *arg)
{
	struct utsname u;
	intptr_t passed = 0;

	(void)arg;
	for (int i = 0; i < 100; i++) {
		for (int j = 0; j < 50; j++)
			getppid();
		passed += uname(&u) == 0 || errno != EPERM;
	}
	return (void *)passed;
}

static void *filter_then_uname(void *arg)
{
	if (deny_uname())
		return (void *)-1;
	return uname_loop(arg);
}

START_TEST(test_a_ring_vthreads_own_seccomp_filter_binds_its_calls)
{
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, filter_then_uname, NULL), 0);
}
END_TEST

/* A Landlock domain of its own that forbids making directories: mkdir()
 * 50 times under a fresh directory, a server kept awake. The kernel must
 * have Landlock: this machine's does, and CI's is the same. */
static void *landlock_then_mkdir(void *arg)
{
	struct landlock_ruleset_attr ra = { .handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_DIR };
	intptr_t made = 0;
	char path[300];
	long rs;

	rs = syscall(SYS_landlock_create_ruleset, &ra, sizeof(ra), 0);
	if (rs < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    syscall(SYS_landlock_restrict_self, rs, 0))
		return (void *)-1;
	for (int i = 0; i < 50; i++) {
		for (int j = 0; j < 50; j++)
			getppid();
		snprintf(path, sizeof(path), "%s/d%d", (const char *)arg, i);
		made += mkdir(path, 0700) == 0 || errno != EACCES;
	}
	return (void *)made;
}

START_TEST(test_a_ring_vthreads_own_landlock_domain_binds_its_calls)
{
	char dir[] = "/tmp/vthread-landlock-XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, landlock_then_mkdir, dir), 0);
	ck_assert_int_eq(rmdir(dir), 0);	/* nothing was made in it */
}
END_TEST

/* glibc's setresgid() made by another thread changes every thread, the
 * servers too: a ring vthread then sees the new group and keeps the ring
 * (before 0.7.5 glibc's signal ran its handler in the guest, whose raw call
 * made the vthread leave the ring for good). Not root: a change to the same
 * IDs, which still signals every thread. */
static atomic_int setxid_phase;

static void *getegid_around_setresgid(void *arg)
{
	struct vthread_thread_stats st = VTHREAD_THREAD_STATS_INIT;
	unsigned long ring;

	atomic_store(&setxid_phase, 1);
	while (atomic_load(&setxid_phase) < 2)
		getppid();
	if (vthread_get_thread_stats(vthread_self(), &st))
		return (void *)-1;
	ring = st.syscalls_ring;
	for (int i = 0; i < 2000; i++)
		if (getegid() != (gid_t)(intptr_t)arg)
			return (void *)-2;
	if (vthread_get_thread_stats(vthread_self(), &st))
		return (void *)-1;
	return (void *)(st.syscalls_ring - ring);
}

START_TEST(test_glibc_setresgid_changes_ring_vthreads_and_keeps_them_on_the_ring)
{
	gid_t want = geteuid() ? getegid() : 65534;
	vthread_attr_t a;
	vthread_t vt;
	void *ring;
	int cpu[2];

	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, getegid_around_setresgid,
					(void *)(intptr_t)want), 0);
	while (atomic_load(&setxid_phase) < 1)
		sched_yield();
	ck_assert_int_eq(setresgid(-1, want, -1), 0);
	atomic_store(&setxid_phase, 2);
	ck_assert_int_eq(vthread_join(vt, &ring), 0);
	ck_assert_int_ge((intptr_t)ring, 0);
	if (two_cpus(cpu))	/* a server may run beside it */
		ck_assert_int_gt((intptr_t)ring, 0);
}
END_TEST

/* A pthread that filters itself after the servers started, then makes a
 * ring vthread: the vthread inherits the filter, the servers do not. */
static void *filter_then_create(void *arg)
{
	vthread_attr_t a;
	vthread_t vt;
	void *ret;

	if (deny_uname())
		return (void *)-1;
	vthread_attr_init(&a);
	vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING);
	if (vthread_create(&vt, &a, uname_loop, arg) || vthread_join(vt, &ret))
		return (void *)-2;
	return ret;
}

START_TEST(test_a_filter_the_creator_added_binds_a_ring_vthreads_calls)
{
	pthread_t p;
	void *ret;

	/* the servers start here, unfiltered, and a backing thread parks */
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, getppid_loop,
					  (void *)(intptr_t)getppid()), 0);
	ck_assert_int_eq(pthread_create(&p, NULL, filter_then_create, NULL), 0);
	ck_assert_int_eq(pthread_join(p, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 0);
}
END_TEST

/* A personality of its own (uname's machine), and where the test runs as
 * root, credentials of its own set by the raw call (glibc's setresuid()
 * changes every thread; the raw one only the caller, as privilege-separating
 * programs use it): a server would answer with the process's. */
static void *own_credentials(void *arg)
{
	struct utsname u;
	intptr_t wrong = 0;

	if (personality(PER_LINUX32) == -1)
		return (void *)-1;
	if (geteuid() == 0 && syscall(SYS_setresuid, 65534, 65534, 65534))
		return (void *)-2;
	for (int i = 0; i < 100; i++) {
		for (int j = 0; j < 50; j++)
			getppid();
		wrong += uname(&u) || strcmp(u.machine, "i686");
		wrong += getuid() != (uid_t)(intptr_t)arg;
	}
	return (void *)wrong;
}

START_TEST(test_a_ring_vthreads_own_personality_and_credentials_are_its_own)
{
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, own_credentials,
					  (void *)(intptr_t)(geteuid() ? getuid() : 65534)), 0);
}
END_TEST

#define BIG (1 << 20)

static int big_pipe[2];

static void *slow_drain(void *arg)
{
	char *buf = malloc(BIG);
	size_t got = 0;
	ssize_t n;

	(void)arg;
	while ((n = read(big_pipe[0], buf, 4096)) > 0) {
		got += n;
		usleep(got % (64 << 10) ? 0 : 1000);
	}
	free(buf);
	return (void *)got;
}

/* A 1 MiB write to a pipe blocks until all is written: the ring's first,
 * non-waiting attempt moves part of it, and the exit path moves the rest. */
static void *big_write(void *arg)
{
	char *buf = malloc(BIG);
	ssize_t n;

	(void)arg;
	memset(buf, 7, BIG);
	n = write(big_pipe[1], buf, BIG);
	free(buf);
	return (void *)n;
}

START_TEST(test_a_blocking_write_moves_everything)
{
	pthread_t drain;
	void *got;

	ck_assert_int_eq(pipe(big_pipe), 0);
	ck_assert_int_eq(pthread_create(&drain, NULL, slow_drain, NULL), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, big_write, NULL), BIG);
	close(big_pipe[1]);
	ck_assert_int_eq(pthread_join(drain, &got), 0);
	ck_assert_int_eq((intptr_t)got, BIG);
	close(big_pipe[0]);
}
END_TEST

static int late_pipe[2];

static void *late_writer(void *arg)
{
	(void)arg;
	usleep(50000);
	return (void *)(intptr_t)write(late_pipe[1], "late", 4);
}

/* An empty pipe: the ring bounces the read and the exit path waits for data. */
static void *read_late(void *arg)
{
	char buf[16] = { 0 };

	(void)arg;
	return (void *)(intptr_t)(read(late_pipe[0], buf, sizeof(buf)) == 4 && !strcmp(buf, "late"));
}

START_TEST(test_a_read_that_must_wait_waits)
{
	pthread_t w;

	ck_assert_int_eq(pipe(late_pipe), 0);
	ck_assert_int_eq(pthread_create(&w, NULL, late_writer, NULL), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, read_late, NULL), 1);
	pthread_join(w, NULL);
	close(late_pipe[0]);
	close(late_pipe[1]);
}
END_TEST

/* Non-blocking descriptors get EAGAIN from the ring itself. */
static void *read_nonblocking(void *arg)
{
	char c;
	int p[2];
	ssize_t n;

	(void)arg;
	if (pipe2(p, O_NONBLOCK))
		return (void *)1;
	n = read(p[0], &c, 1);
	close(p[0]);
	close(p[1]);
	return (void *)(intptr_t)(n == -1 && errno == EAGAIN ? 0 : 2);
}

START_TEST(test_nonblocking_read_gets_eagain)
{
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, read_nonblocking, NULL), 0);
}
END_TEST

static long long clock_ns(clockid_t c)
{
	struct timespec ts;

	if (clock_gettime(c, &ts))
		return -1;
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/*
 * The calling thread's CPU clock, CLOCK_THREAD_CPUTIME_ID or the thread clock
 * of tid 0 (the kernel's encoding, -2), read between two reads of the backing
 * thread's clock by its id, which any thread may make. The vthread first
 * spins 30 ms in the guest, so its CPU time is far from an idle server's.
 */
static void *own_cpu_clocks(void *arg)
{
	const clockid_t own[] = { CLOCK_THREAD_CPUTIME_ID, -2 };
	long long end = clock_ns(CLOCK_MONOTONIC) + 30000000;
	clockid_t by_id;

	if (pthread_getcpuclockid(pthread_self(), &by_id))
		return (void *)1;
	while (clock_ns(CLOCK_MONOTONIC) < end)
		;
	for (int i = 0; i < 100; i++) {
		for (int j = 0; j < 20; j++)	/* keeps a server awake */
			if (getppid() != (pid_t)(intptr_t)arg)
				return (void *)2;
		for (int c = 0; c < 2; c++) {
			long long before = clock_ns(by_id), t = clock_ns(own[c]);

			if (t < before || t > clock_ns(by_id))
				return (void *)(intptr_t)(3 + c);
		}
	}
	return NULL;
}

/* The thread's own CPU clock is the vthread's, not a server's: a server
 * hands such reads to the exit path. */
START_TEST(test_the_threads_own_cpu_clock_is_the_vthreads)
{
	struct vthread_stats d = VTHREAD_STATS_INIT;
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	const long want = 1000;

	ck_assert_int_eq(vthread_get_stats(&before), 0);
	if (ring_tries(own_cpu_clocks, (void *)(intptr_t)getppid(), &want, &d)) {
		ck_assert_int_eq(vthread_get_stats(&after), 0);
		ck_assert_uint_gt(after.ring_bounced, before.ring_bounced);	/* posted, bounced */
	}
}
END_TEST

/*
 * Futex waits whose word has changed (EAGAIN at once), plain and bitset, with
 * getppid calls and futex wakes between them to keep a server busy.
 */
static void *futex_waits(void *arg)
{
	static _Atomic uint32_t word;
	const long ops[] = { FUTEX_WAIT_PRIVATE, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME };

	for (int i = 0; i < 100; i++) {
		for (int j = 0; j < 20; j++)
			if (getppid() != (pid_t)(intptr_t)arg)
				return (void *)1;
		for (int k = 0; k < 2; k++)
			if (syscall(SYS_futex, &word, ops[k], word + 1, NULL, NULL,
				    FUTEX_BITSET_MATCH_ANY) != -1 || errno != EAGAIN)
				return (void *)(intptr_t)(2 + k);
		if (syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) != 0)
			return (void *)4;
	}
	return NULL;
}

/* A futex wait leaves by the exit path from the guest's stub at once: no
 * server takes it only to hand it back, nor does the guest wait for one. */
START_TEST(test_futex_waits_are_never_posted_to_the_ring)
{
	struct vthread_stats d = VTHREAD_STATS_INIT;
	struct vthread_stats before = VTHREAD_STATS_INIT, after = VTHREAD_STATS_INIT;
	const long want = 1000;

	ck_assert_int_eq(vthread_get_stats(&before), 0);
	if (ring_tries(futex_waits, (void *)(intptr_t)getppid(), &want, &d)) {
		ck_assert_int_eq(vthread_get_stats(&after), 0);
		ck_assert_uint_eq(after.ring_bounced, before.ring_bounced);
		ck_assert_uint_ge(d.exit_syscall, 200);	/* the last try's waits */
	}
}
END_TEST

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *contend(void *arg)
{
	for (long i = 0; i < (long)arg; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

/* Futex wakes go by the ring, waits by the exit path: no wakeup is lost. */
START_TEST(test_mutex_contention_with_host_threads)
{
	vthread_attr_t a;
	vthread_t v[2];
	pthread_t p;

	require_backend();
	vthread_attr_init(&a);
	vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING);
	ck_assert_int_eq(pthread_create(&p, NULL, contend, (void *)20000), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(vthread_create(&v[i], &a, contend, (void *)2000), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(vthread_join(v[i], NULL), 0);
	pthread_join(p, NULL);
	ck_assert_int_eq(counter, 24000);
}
END_TEST

static pthread_t backing;	/* pthread_self() inside a vthread is its backing thread */
static volatile int reading;

static void *cancel_me(void *arg)
{
	char c;

	backing = pthread_self();
	reading = 1;
	(void)read((int)(intptr_t)arg, &c, 1);	/* a cancellation point that waits */
	return (void *)1;
}

START_TEST(test_cancel_a_ring_vthread_blocked_in_read)
{
	vthread_attr_t a;
	vthread_t vt;
	void *ret;
	int p[2];

	require_backend();
	ck_assert_int_eq(pipe(p), 0);
	vthread_attr_init(&a);
	vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING);
	ck_assert_int_eq(vthread_create(&vt, &a, cancel_me, (void *)(intptr_t)p[0]), 0);
	while (!reading)
		usleep(100);
	usleep(20000);
	ck_assert_int_eq(pthread_cancel(backing), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
}
END_TEST

static uint64_t gs_word = 0x5a5a;

/* The ring's slot is where GS points; a vthread may take GS for itself. */
static void *own_gs(void *arg)
{
	uint64_t base = 0, v;

	(void)arg;
	if (syscall(SYS_arch_prctl, ARCH_SET_GS, &gs_word))
		return (void *)1;
	if (syscall(SYS_arch_prctl, ARCH_GET_GS, &base) || base != (uintptr_t)&gs_word)
		return (void *)2;
	__asm__ volatile("movq %%gs:0, %0" : "=r"(v));
	if (v != 0x5a5a || getppid() != (pid_t)(intptr_t)arg)
		return (void *)3;
	return NULL;
}

START_TEST(test_arch_set_gs_is_the_vthreads_own)
{
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, own_gs, (void *)(intptr_t)getppid()), 0);
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_EXIT, own_gs, (void *)(intptr_t)getppid()), 0);
	/* The vCPU's next vthread gets the ring back. */
	ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, getppid_loop, (void *)(intptr_t)getppid()), 0);
}
END_TEST

/* GS moved by the vthread itself (wrgsbase, no system call) and left so. */
static void *wrgsbase_and_return(void *arg)
{
	__asm__ volatile("wrgsbase %0" : : "r"(arg));
	return NULL;
}

/* The next vthread on that vCPU has its ring slot under GS again: its calls
 * take the ring (before 0.7.5 the first one faulted at the moved base). */
START_TEST(test_a_gs_base_a_vthread_moved_is_not_the_next_ones)
{
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, wrgsbase_and_return,
						  (void *)0x1234000), 0);
		ck_assert_int_eq(run_vthread_mode(VTHREAD_SYSCALL_RING, getppid_loop,
						  (void *)(intptr_t)getppid()), 0);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ring");
	TCase *tc = tcase_create("ring");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_syscall_mode_attribute);
	tcase_add_test(tc, test_ring_mode_makes_calls_without_exits);
	tcase_add_test(tc, test_calls_no_running_server_can_take_are_given_up_early);
	tcase_add_test(tc, test_a_backing_thread_makes_the_calls_other_guests_wait_on);
	tcase_add_test(tc, test_ring_sched_yield_still_yields_each_millisecond);
	tcase_add_test(tc, test_exit_mode_never_uses_the_ring);
	tcase_add_test(tc, test_failing_calls_give_the_same_errno_in_both_modes);
	tcase_add_test(tc, test_open_gives_what_a_direct_call_gives_in_both_modes);
	tcase_add_test(tc, test_opening_a_fifo_waits_for_its_peer);
	tcase_add_test(tc, test_open_and_a_read_to_the_end_take_the_ring);
	tcase_add_test(tc, test_unshared_descriptors_are_the_vthreads_own);
	tcase_add_test(tc, test_epipe_raises_sigpipe_in_the_vthread);
	tcase_add_test(tc, test_efbig_from_truncate_raises_sigxfsz_in_the_vthread);
	tcase_add_test(tc, test_a_signalfd_reads_the_vthreads_own_signals);
	tcase_add_test(tc, test_a_ring_vthreads_own_seccomp_filter_binds_its_calls);
	tcase_add_test(tc, test_a_ring_vthreads_own_landlock_domain_binds_its_calls);
	tcase_add_test(tc, test_glibc_setresgid_changes_ring_vthreads_and_keeps_them_on_the_ring);
	tcase_add_test(tc, test_a_filter_the_creator_added_binds_a_ring_vthreads_calls);
	tcase_add_test(tc, test_a_ring_vthreads_own_personality_and_credentials_are_its_own);
	tcase_add_test(tc, test_a_blocking_write_moves_everything);
	tcase_add_test(tc, test_a_read_that_must_wait_waits);
	tcase_add_test(tc, test_nonblocking_read_gets_eagain);
	tcase_add_test(tc, test_the_threads_own_cpu_clock_is_the_vthreads);
	tcase_add_test(tc, test_futex_waits_are_never_posted_to_the_ring);
	tcase_add_test(tc, test_mutex_contention_with_host_threads);
	tcase_add_test(tc, test_cancel_a_ring_vthread_blocked_in_read);
	tcase_add_test(tc, test_arch_set_gs_is_the_vthreads_own);
	tcase_add_test(tc, test_a_gs_base_a_vthread_moved_is_not_the_next_ones);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
