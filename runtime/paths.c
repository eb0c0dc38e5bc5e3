/* SPDX-License-Identifier: MIT */
/*
 * Which path each system call of a vthread takes, and why: the one table.
 *
 * The exit path is always correct: the backing thread, the vthread's own host
 * thread, makes the call. The ring (ring.c) hands a call to a server thread
 * without a guest exit, so it takes only calls whose result does not depend on
 * which thread makes them and that return promptly. Calls not listed exit.
 */
#define _GNU_SOURCE
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "rt.h"

#define P(nr, path, why)	[SYS_##nr] = { RT_PATH_##path, why }

static const char
	process[] = "process-wide and prompt",
	file[] = "file-system or descriptor bookkeeping, process-wide and prompt",
	memory[] = "the address space is the process's; KVM's MMU notifiers keep the mirror in step",
	rw[] = "tried on the ring without waiting (RWF_NOWAIT); what would wait takes the exit path",
	futex[] = "wake and requeue are prompt and thread-independent; waits take the exit path "
		  "from the guest's stub (hv/guest.S)",
	yield[] = "answered on the ring, the guest pausing; one call per millisecond takes "
		  "the exit path and yields the backing thread's CPU (ring.c)",
	thread[] = "acts on or for the calling thread: the backing thread must make it",
	wait[] = "may wait for long: made on the backing thread with the guest's signal mask, "
		 "so that signals and cancellation interrupt it",
	exec[] = "the new program inherits the guest's signal mask",
	guest[] = "about the guest's own state: the runtime emulates it",
	sig[] = "a signal to the own process must arrive before the call returns (POSIX), "
		"which only the calling thread's call ensures",
	open_[] = "a server finds the file with O_PATH, which never waits, and opens it through "
		 "/proc/self/fd only if it is a regular file or a directory; what may wait (FIFOs, "
		 "devices) or must create takes the exit path (ring.c)",
	open2[] = "may wait for long (a FIFO waits for its peer)",
	cpuclock[] = "process-wide and prompt, but for the calling thread's CPU clock "
		  "(CLOCK_THREAD_CPUTIME_ID, tid 0's), which a server bounces to the exit path";

static const struct rt_path_entry paths[HV_RING_NR_MAX] = {
	P(getpid, RING, process), P(getppid, RING, process), P(getuid, RING, process),
	P(geteuid, RING, process), P(getgid, RING, process), P(getegid, RING, process),
	P(getresuid, RING, process), P(getresgid, RING, process), P(getgroups, RING, process),
	P(getpgrp, RING, process), P(getpgid, RING, process), P(getsid, RING, process),
	P(uname, RING, process), P(sysinfo, RING, process), P(times, RING, process),
	P(getrlimit, RING, process), P(prlimit64, RING, process), P(umask, RING, process),
	P(getcwd, RING, process), P(chdir, RING, process), P(fchdir, RING, process),
	P(getrandom, RING, process), P(rt_sigaction, RING, process), P(clock_gettime, RING_CLOCK, cpuclock),
	P(clock_getres, RING, process), P(gettimeofday, RING, process), P(time, RING, process),

	P(close, RING, file), P(lseek, RING, file), P(fstat, RING, file), P(stat, RING, file),
	P(lstat, RING, file), P(newfstatat, RING, file), P(statx, RING, file),
	P(statfs, RING, file), P(fstatfs, RING, file), P(access, RING, file),
	P(faccessat, RING, file), P(faccessat2, RING, file), P(readlink, RING, file),
	P(readlinkat, RING, file), P(getdents64, RING, file), P(dup, RING, file),
	P(dup2, RING, file), P(dup3, RING, file), P(pipe, RING, file), P(pipe2, RING, file),
	P(mkdir, RING, file), P(mkdirat, RING, file), P(rmdir, RING, file),
	P(unlink, RING, file), P(unlinkat, RING, file), P(rename, RING, file),
	P(renameat, RING, file), P(renameat2, RING, file), P(link, RING, file),
	P(linkat, RING, file), P(symlink, RING, file), P(symlinkat, RING, file),
	P(chmod, RING, file), P(fchmod, RING, file), P(fchmodat, RING, file),
	P(chown, RING, file), P(fchown, RING, file), P(lchown, RING, file),
	P(fchownat, RING, file), P(truncate, RING, file), P(ftruncate, RING, file),
	P(utimensat, RING, file), P(eventfd2, RING, file), P(epoll_create1, RING, file),
	P(epoll_ctl, RING, file), P(timerfd_create, RING, file),
	P(timerfd_settime, RING, file), P(timerfd_gettime, RING, file),
	P(memfd_create, RING, file), P(socket, RING, file), P(socketpair, RING, file),
	P(bind, RING, file), P(listen, RING, file), P(getsockname, RING, file),
	P(getpeername, RING, file), P(setsockopt, RING, file), P(getsockopt, RING, file),
	P(shutdown, RING, file),

	P(mmap, RING, memory), P(munmap, RING, memory), P(mprotect, RING, memory),
	P(madvise, RING, memory), P(mremap, RING, memory), P(brk, RING, memory),
	P(mincore, RING, memory),

	P(read, RING_TRY, rw), P(write, RING_TRY, rw), P(pread64, RING_TRY, rw),
	P(pwrite64, RING_TRY, rw),

	P(futex, RING_WAKE, futex), P(sched_yield, RING_YIELD, yield),

	P(gettid, THREAD, thread), P(set_robust_list, THREAD, thread),
	P(get_robust_list, THREAD, thread), P(sched_setaffinity, THREAD, thread),
	P(sched_getaffinity, THREAD, thread),
	P(sched_setscheduler, THREAD, thread), P(sched_getscheduler, THREAD, thread),
	P(sched_setparam, THREAD, thread), P(sched_getparam, THREAD, thread),
	P(sched_setattr, THREAD, thread), P(sched_getattr, THREAD, thread),
	P(prctl, THREAD, thread), P(setpriority, THREAD, thread),
	P(getpriority, THREAD, thread), P(rseq, THREAD, thread), P(sigaltstack, THREAD, thread),
	P(capget, THREAD, thread), P(capset, THREAD, thread), P(setuid, THREAD, thread),
	P(setgid, THREAD, thread), P(setreuid, THREAD, thread), P(setregid, THREAD, thread),
	P(setresuid, THREAD, thread), P(setresgid, THREAD, thread),
	P(setfsuid, THREAD, thread), P(setfsgid, THREAD, thread), P(setgroups, THREAD, thread),
	P(tgkill, THREAD, sig), P(tkill, THREAD, sig), P(kill, THREAD, sig),
	P(rt_sigqueueinfo, THREAD, sig), P(rt_tgsigqueueinfo, THREAD, sig),
	P(unshare, THREAD, thread), P(setns, THREAD, thread), P(seccomp, THREAD, thread),
	P(getrusage, THREAD, thread), P(timer_create, THREAD, thread),
	P(ioprio_set, THREAD, thread), P(ioprio_get, THREAD, thread),
	P(personality, THREAD, thread),

	P(readv, WAIT, wait), P(preadv, WAIT, wait), P(preadv2, WAIT, wait),
	P(writev, WAIT, wait), P(pwritev, WAIT, wait), P(pwritev2, WAIT, wait),
	P(recvfrom, WAIT, wait), P(recvmsg, WAIT, wait), P(recvmmsg, WAIT, wait),
	P(sendto, WAIT, wait), P(sendmsg, WAIT, wait), P(sendmmsg, WAIT, wait),
	P(sendfile, WAIT, wait), P(splice, WAIT, wait), P(tee, WAIT, wait),
	P(accept, WAIT, wait), P(accept4, WAIT, wait), P(connect, WAIT, wait),
	P(poll, WAIT, wait), P(ppoll, WAIT, wait), P(select, WAIT, wait),
	P(pselect6, WAIT, wait), P(epoll_wait, WAIT, wait), P(epoll_pwait, WAIT, wait),
	P(epoll_pwait2, WAIT, wait), P(futex_waitv, WAIT, wait), P(nanosleep, WAIT, wait),
	P(clock_nanosleep, WAIT, wait), P(wait4, WAIT, wait), P(waitid, WAIT, wait),
	P(rt_sigtimedwait, WAIT, wait), P(msgrcv, WAIT, wait), P(msgsnd, WAIT, wait),
	P(semop, WAIT, wait), P(semtimedop, WAIT, wait), P(flock, WAIT, wait),
	P(fcntl, WAIT, wait), P(io_getevents, WAIT, wait), P(io_pgetevents, WAIT, wait),
	P(io_uring_enter, WAIT, wait), P(mq_timedreceive, WAIT, wait),
	P(mq_timedsend, WAIT, wait),
	P(open, RING_OPEN, open_), P(openat, RING_OPEN, open_), P(openat2, WAIT, open2),
	P(execve, WAIT, exec), P(execveat, WAIT, exec),

	P(exit, GUEST, guest), P(arch_prctl, GUEST, guest), P(rt_sigprocmask, GUEST, guest),
	P(rt_sigpending, GUEST, guest), P(rt_sigsuspend, GUEST, guest), P(pause, GUEST, guest),
	P(rt_sigreturn, GUEST, guest),
	P(set_tid_address, GUEST, guest), P(clone, GUEST, guest), P(clone3, GUEST, guest),
	P(fork, GUEST, guest), P(vfork, GUEST, guest),
};

static const struct rt_path_entry unlisted = {
	RT_PATH_EXIT, "not classified: the exit path is always correct"
};

const struct rt_path_entry *rt_syscall_path(long nr)
{
	if (nr < 0 || nr >= HV_RING_NR_MAX || !paths[nr].why)
		return &unlisted;
	return &paths[nr];
}

bool rt_path_guest_mask(long nr)
{
	enum rt_path p = rt_syscall_path(nr)->path;

	return p == RT_PATH_WAIT || p == RT_PATH_RING_TRY || p == RT_PATH_RING_WAKE ||
	       p == RT_PATH_RING_OPEN;
}

void rt_paths_publish(void)
{
	for (int nr = 0; nr < HV_RING_NR_MAX; nr++)
		if (rt_syscall_path(nr)->path >= RT_PATH_RING)
			hv_ring_calls[nr / 8] |= 1u << (nr % 8);
}

/*
 * Calls after which the thread may differ from a fresh one in what the kernel
 * keeps per thread (name, scheduling, credentials, namespaces, stacks and
 * lists it registered, its FS base, memory policy, Landlock domain, thread
 * and session keyrings, a descriptor table of its own): its backing thread is
 * not parked (park.c) but ends. Getters are listed too where the call number
 * is shared (prctl, arch_prctl, keyctl; close_range without
 * CLOSE_RANGE_UNSHARE): a false "changed" costs one thread, never correctness.
 */
bool rt_path_changes_thread(long nr)
{
	switch (nr) {
	case SYS_exit: case SYS_arch_prctl: case SYS_prctl: case SYS_set_robust_list:
	case SYS_rseq: case SYS_sigaltstack: case SYS_set_tid_address:
	case SYS_sched_setaffinity: case SYS_sched_setscheduler: case SYS_sched_setparam:
	case SYS_sched_setattr: case SYS_setpriority: case SYS_ioprio_set:
	case SYS_capset: case SYS_setuid: case SYS_setgid: case SYS_setreuid:
	case SYS_setregid: case SYS_setresuid: case SYS_setresgid: case SYS_setfsuid:
	case SYS_setfsgid: case SYS_setgroups: case SYS_unshare: case SYS_setns:
	case SYS_seccomp: case SYS_personality: case SYS_timer_create:
	case SYS_landlock_restrict_self: case SYS_set_mempolicy: case SYS_keyctl:
	case SYS_add_key: case SYS_request_key: case SYS_close_range:
		return true;
	default:
		return false;
	}
}

/*
 * Calls after which the thread may see files or credentials of its own (all
 * of them among rt_path_changes_thread's): its own descriptor table (unshare,
 * close_range's CLOSE_RANGE_UNSHARE), root,
 * working directory or umask (unshare), namespaces (setns), credentials set
 * by the raw calls (glibc's setuid() and the like change every thread, the
 * servers too, but fsuid, fsgid and a raw setresuid() are the caller's),
 * capabilities, a seccomp filter or Landlock domain of its own, a personality
 * (uname's machine, READ_IMPLIES_EXEC). A server sees the process's: the
 * thread's calls take the exit path from then on, as the failed call's do
 * too (the exit path is always correct).
 */
bool rt_path_own_view(long nr, uint64_t arg0, uint64_t arg2)
{
	switch (nr) {
	case SYS_unshare: case SYS_setns: case SYS_capset: case SYS_setuid: case SYS_setgid:
	case SYS_setreuid: case SYS_setregid: case SYS_setresuid: case SYS_setresgid:
	case SYS_setfsuid: case SYS_setfsgid: case SYS_setgroups: case SYS_seccomp:
	case SYS_landlock_restrict_self:
		return true;
	case SYS_personality:
		return (unsigned)arg0 != 0xffffffffu;	/* that one only asks */
	case SYS_prctl:
		return arg0 == PR_SET_SECCOMP || arg0 == PR_CAPBSET_DROP ||
		       arg0 == PR_SET_SECUREBITS || arg0 == PR_CAP_AMBIENT;
	case SYS_close_range:
		return arg2 & CLOSE_RANGE_UNSHARE;
	default:
		return false;
	}
}
