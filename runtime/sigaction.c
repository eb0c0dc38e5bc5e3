/* SPDX-License-Identifier: MIT */
/*
 * The program's signal handlers, and where they run. A vthread in a forwarded
 * call that may wait (read, futex, nanosleep...) is interrupted by a signal on
 * its backing thread, where the kernel would run the program's handler on the
 * host's stack and registers. So the kernel's action for each handler the
 * program installs is rt_action_entry(): on any other thread it calls the
 * program's handler in place; on a backing thread in such a call it ends the call as the
 * signal would and keeps the signal for the guest, where rt_signal_deliver
 * enters the handler in the vthread's context (OpenJDK's libjsig chains
 * handlers the same way). sigaction() and the signal() family are interposed
 * so that the program sees its own handlers; actions installed behind their
 * back (raw rt_sigaction, glibc's internal calls such as sigset()) are left as
 * they are, and such a handler still runs on the host during those calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "rt.h"

#define NSIGS		64

/* Each routed signal's action as the program gave it; seq is odd while it changes. */
static struct {
	atomic_uint seq;
	struct rt_ksigaction ka;
} actions[NSIGS];
static atomic_flag lock = ATOMIC_FLAG_INIT;

void rt_restore(void);
/*
 * The handlers' return: glibc's __restore_rt's bytes and, as there, no unwind
 * entry (nor for the byte before), so that gdb and libgcc's unwinder recognise
 * the signal frame by its code.
 */
__asm__(".text\n"
	"	nop\n"
	"	.globl rt_restore\n"
	"	.hidden rt_restore\n"
	"	.type rt_restore, @function\n"
	"rt_restore:\n"
	"	movq $15, %rax\n"
	"	syscall\n"
	"	.size rt_restore, .-rt_restore\n");

static void read_action(int sig, struct rt_ksigaction *ka)
{
	unsigned s;

	do {
		while ((s = atomic_load(&actions[sig - 1].seq)) & 1)
			;
		*ka = actions[sig - 1].ka;
		atomic_thread_fence(memory_order_acquire);
	} while (atomic_load(&actions[sig - 1].seq) != s);
}

static void write_action(int sig, const struct rt_ksigaction *ka)
{
	atomic_fetch_add(&actions[sig - 1].seq, 1);
	atomic_thread_fence(memory_order_release);
	actions[sig - 1].ka = *ka;
	atomic_fetch_add(&actions[sig - 1].seq, 1);
}

/* A kernel action ka that is rt_action_entry() as the program set it, p. */
static void show(struct rt_ksigaction *ka, const struct rt_ksigaction *p)
{
	ka->handler = p->handler;
	ka->flags = (ka->flags & ~(unsigned long)SA_SIGINFO) | (p->flags & SA_SIGINFO);
}

int rt_action_get(int sig, struct rt_ksigaction *ka)
{
	struct rt_ksigaction p;
	long r = rt_sigaction_raw(sig, NULL, ka);

	if (r < 0)
		return (int)r;
	if (ka->handler == (void *)rt_action_entry) {
		read_action(sig, &p);
		show(ka, &p);
	}
	return 0;
}

/*
 * A signal that came to a backing thread in a forwarded call that may wait:
 * the call ends early (at rt_wait_skip if it had not been made or is to be
 * restarted) and the signal, with the action it came under, waits for the
 * guest. The thread leaves with every signal blocked, so a second one stays
 * pending for the guest too.
 */
static void kick(struct vthread *vt, int sig, siginfo_t *si, ucontext_t *uc)
{
	greg_t *rip = &uc->uc_mcontext.gregs[REG_RIP];

	if (vt->kicked) {
		rt_syscall6(SYS_rt_tgsigqueueinfo, getpid(), gettid(), sig, (long)si, 0, 0);
	} else {
		vt->kick_info = *si;
		read_action(sig, &vt->kick_action);	/* SA_RESETHAND reset the kernel's */
		vt->kicked = 1;
	}
	if (*rip >= (greg_t)(uintptr_t)rt_wait_check && *rip < (greg_t)(uintptr_t)rt_wait_done)
		*rip = (greg_t)(uintptr_t)rt_wait_skip;
	sigfillset(&uc->uc_sigmask);
}

void rt_action_entry(int sig, siginfo_t *si, void *ctx)
{
	struct vthread *vt = rt_current;
	struct rt_ksigaction ka;

	if (vt && vt->waiting) {
		kick(vt, sig, si, ctx);
		return;
	}
	read_action(sig, &ka);
	((void (*)(int, siginfo_t *, void *))ka.handler)(sig, si, ctx);
}

static uint64_t block_all(void)
{
	uint64_t all = ~0ull, old;

	rt_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, (long)&old, sizeof(all), 0, 0);
	return old;
}

static void set_mask(uint64_t mask)
{
	rt_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, sizeof(mask), 0, 0);
}

/* Installs ka with rt_action_entry() in the kernel (ka's handler a function), or as it is. */
static long route(int sig, const struct rt_ksigaction *ka, struct rt_ksigaction *old)
{
	struct rt_ksigaction k = *ka, prev;
	uint64_t mask = block_all();
	bool routed = ka->handler != SIG_DFL && ka->handler != SIG_IGN;
	long r;

	while (atomic_flag_test_and_set(&lock))
		;
	read_action(sig, &prev);
	if (routed) {
		write_action(sig, ka);	/* before the kernel can call rt_action_entry() with it */
		k.handler = (void *)rt_action_entry;
		k.flags |= SA_SIGINFO;
	}
	r = rt_sigaction_raw(sig, &k, old);
	if (r < 0 && routed)
		write_action(sig, &prev);
	if (r == 0 && old && old->handler == (void *)rt_action_entry)
		show(old, &prev);
	atomic_flag_clear(&lock);
	set_mask(mask);
	return r;
}

long rt_action_route(int sig, const struct rt_ksigaction *ka)
{
	return route(sig, ka, NULL);
}

/* glibc's checks, then the kernel's; errno as glibc sets it. */
RT_API int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	struct rt_ksigaction k, old;
	long r;

	if (sig <= 0 || sig > NSIGS || sig == RT_SIGCANCEL || sig == RT_SIGSETXID) {
		errno = EINVAL;
		return -1;
	}
	if (act) {
		k.handler = (void *)act->sa_handler;
		k.flags = (unsigned long)act->sa_flags | RT_SA_RESTORER;
		k.restorer = (void *)rt_restore;
		memcpy(&k.mask, &act->sa_mask, sizeof(k.mask));
		r = route(sig, &k, &old);
	} else {
		r = rt_action_get(sig, &old);
	}
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	if (oact) {
		memset(oact, 0, sizeof(*oact));
		oact->sa_handler = (void (*)(int))old.handler;
		oact->sa_flags = (int)old.flags;
		oact->sa_restorer = (void (*)(void))old.restorer;
		memcpy(&oact->sa_mask, &old.mask, sizeof(old.mask));
	}
	return 0;
}

static sighandler_t set_handler(int sig, sighandler_t fn, int flags)
{
	struct sigaction sa = { .sa_handler = fn, .sa_flags = flags }, old;

	if (fn == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&sa.sa_mask);
	if (!(flags & SA_NODEFER) && sig > 0 && sig <= NSIGS)
		sigaddset(&sa.sa_mask, sig);
	return sigaction(sig, &sa, &old) < 0 ? SIG_ERR : old.sa_handler;
}

/* Signals siginterrupt() made interrupt system calls: signal() leaves out SA_RESTART. */
static atomic_ullong interrupting;

static unsigned long long bit(int sig)
{
	return sig > 0 && sig <= NSIGS ? 1ull << (sig - 1) : 0;
}

RT_API sighandler_t signal(int sig, sighandler_t fn)
{
	return set_handler(sig, fn, atomic_load(&interrupting) & bit(sig) ? 0 : SA_RESTART);
}

RT_API sighandler_t bsd_signal(int sig, sighandler_t fn)
{
	return signal(sig, fn);
}

RT_API sighandler_t sysv_signal(int sig, sighandler_t fn)
{
	return set_handler(sig, fn, SA_RESETHAND | SA_NODEFER);
}

RT_API int siginterrupt(int sig, int flag)
{
	struct sigaction sa;

	if (sigaction(sig, NULL, &sa) < 0)
		return -1;
	if (flag) {
		atomic_fetch_or(&interrupting, bit(sig));
		sa.sa_flags &= ~SA_RESTART;
	} else {
		atomic_fetch_and(&interrupting, ~bit(sig));
		sa.sa_flags |= SA_RESTART;
	}
	return sigaction(sig, &sa, NULL);
}
