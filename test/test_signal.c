/* SPDX-License-Identifier: MIT */
/* Signals are delivered in the vthread's context, as to a pthread. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "common.h"

#define STACK_SIZE (256 << 10)

static char stack[STACK_SIZE] __attribute__((aligned(4096)));
static char altstack[64 << 10] __attribute__((aligned(4096)));
static atomic_int handled;
static atomic_uintptr_t handler_sp;
static atomic_int started;
static pthread_t backing;

static bool on(const void *p, const char *base, size_t size)
{
	return (const char *)p >= base && (const char *)p < base + size;
}

static void note(int sig, siginfo_t *si, void *uc)
{
	volatile char here;

	(void)sig, (void)si, (void)uc;
	handler_sp = (uintptr_t)&here;
	handled++;
}

static void catch(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa = { .sa_sigaction = fn, .sa_flags = SA_SIGINFO | flags };

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
}

static vthread_t start_on_known_stack(void *(*fn)(void *), void *arg)
{
	vthread_attr_t a;
	vthread_t vt;

	vthread_attr_init(&a);
	vthread_attr_setstack(&a, stack, sizeof(stack));
	ck_assert_int_eq(vthread_create(&vt, &a, fn, arg), 0);
	vthread_attr_destroy(&a);
	return vt;
}

static void *raise_self(void *arg)
{
	(void)arg;
	raise(SIGUSR1);
	return (void *)(intptr_t)handled;
}

START_TEST(test_raise_runs_the_handler_on_the_vthread_stack)
{
	vthread_t vt;
	void *ret;

	require_backend();
	catch(SIGUSR1, note, 0);
	vt = start_on_known_stack(raise_self, NULL);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 1);	/* ran before raise() returned */
	ck_assert_msg(on((void *)handler_sp, stack, sizeof(stack)), "handler sp %p",
		      (void *)handler_sp);
}
END_TEST

static void *spin_until_handled(void *arg)
{
	(void)arg;
	backing = pthread_self();
	started = 1;
	while (!handled)
		;
	return NULL;
}

START_TEST(test_pthread_kill_interrupts_guest_code)
{
	vthread_t vt;

	require_backend();
	catch(SIGUSR2, note, 0);
	vt = start_on_known_stack(spin_until_handled, NULL);
	while (!started)
		usleep(100);
	ck_assert_int_eq(pthread_kill(backing, SIGUSR2), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(handled, 1);
	ck_assert(on((void *)handler_sp, stack, sizeof(stack)));
}
END_TEST

static atomic_int queued;

static void note_value(int sig, siginfo_t *si, void *uc)
{
	note(sig, si, uc);
	queued = si->si_code == SI_QUEUE ? si->si_value.sival_int : -1;
}

static void *publish_self_and_spin(void *arg)
{
	*(pthread_t *)arg = pthread_self();
	started = 1;
	while (!handled)
		;
	return NULL;
}

/* The host needs nothing from the vthread to signal it: vthread_pthread names it. */
START_TEST(test_sigqueue_to_vthread_pthread_reaches_guest_code)
{
	pthread_t inside;
	vthread_t vt;

	require_backend();
	catch(SIGUSR2, note_value, 0);
	vt = start_on_known_stack(publish_self_and_spin, &inside);
	while (!started)
		usleep(100);
	ck_assert(pthread_equal(vthread_pthread(vt), inside));
	ck_assert_int_eq(pthread_sigqueue(vthread_pthread(vt), SIGUSR2,
					  (union sigval){ .sival_int = 1234 }), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(queued, 1234);
	ck_assert(on((void *)handler_sp, stack, sizeof(stack)));
}
END_TEST

static void *block_then_unblock(void *arg)
{
	sigset_t set, pending;
	intptr_t seen;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	raise(SIGUSR1);
	if (handled)
		return (void *)-1;	/* delivered while blocked */
	sigpending(&pending);
	if (!sigismember(&pending, SIGUSR1))
		return (void *)-2;
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	seen = handled;		/* delivered as the mask opened */
	sigpending(&pending);
	return (void *)(seen * 10 + sigismember(&pending, SIGUSR1));
}

START_TEST(test_blocked_signal_waits_for_the_mask)
{
	intptr_t ret;

	catch(SIGUSR1, note, 0);
	ret = run_vthread(block_then_unblock, NULL);
	ck_assert_int_eq(ret, 10);
}
END_TEST

static void *suspend(void *arg)
{
	sigset_t set, none;
	int r, e;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	backing = pthread_self();
	started = 1;
	sigemptyset(&none);
	r = sigsuspend(&none);
	e = errno;
	pthread_sigmask(SIG_BLOCK, NULL, &set);	/* restored after the handler */
	return (void *)(intptr_t)(r == -1 && e == EINTR && handled == 1 &&
				  sigismember(&set, SIGUSR1));
}

START_TEST(test_sigsuspend_returns_eintr_after_the_handler)
{
	vthread_t vt;
	void *ret;

	require_backend();
	catch(SIGUSR1, note, 0);
	ck_assert_int_eq(vthread_create(&vt, NULL, suspend, NULL), 0);
	while (!started)
		usleep(100);
	usleep(20000);
	ck_assert_int_eq(pthread_kill(backing, SIGUSR1), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 1);
}
END_TEST

static int pipefd[2];

static void *read_blocked(void *arg)
{
	char c = 0;
	ssize_t n;

	(void)arg;
	backing = pthread_self();
	started = 1;
	n = read(pipefd[0], &c, 1);
	if (n < 0)
		return (void *)(intptr_t)-errno;
	return (void *)(intptr_t)c;
}

/* Starts fn on the known stack and sends it SIGUSR1 once it blocks in read(pipefd[0]). */
static vthread_t interrupt_blocked(void *(*fn)(void *), void *arg)
{
	vthread_t vt;

	ck_assert_int_eq(pipe(pipefd), 0);
	vt = start_on_known_stack(fn, arg);
	while (!started)
		usleep(100);
	usleep(50000);		/* let it block */
	ck_assert_int_eq(pthread_kill(backing, SIGUSR1), 0);
	return vt;
}

static intptr_t interrupt_read(int flags)
{
	vthread_t vt;
	void *ret;

	catch(SIGUSR1, note, flags);
	vt = interrupt_blocked(read_blocked, NULL);
	while (!handled)
		usleep(100);
	usleep(20000);
	ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	return (intptr_t)ret;
}

START_TEST(test_sa_restart_restarts_a_blocked_read)
{
	require_backend();
	ck_assert_int_eq(interrupt_read(SA_RESTART), 'x');
}
END_TEST

START_TEST(test_without_sa_restart_a_blocked_read_fails_eintr)
{
	require_backend();
	ck_assert_int_eq(interrupt_read(0), -EINTR);
}
END_TEST

/*
 * A handler for a signal that interrupts a blocked call runs in the vthread's
 * context as anywhere else: on its stack or sigaltstack, with its registers in
 * the ucontext, and free to leave by siglongjmp.
 */
enum { IN_PLACE, ON_ALTSTACK, LONGJMP };
static sigjmp_buf env;
static atomic_uintptr_t context_sp;

static void note_context(int sig, siginfo_t *si, void *uc)
{
	context_sp = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RSP];
	note(sig, si, uc);
}

static void jump(int sig, siginfo_t *si, void *uc)
{
	note(sig, si, uc);
	siglongjmp(env, 1);
}

static void *read_blocked_in(void *arg)
{
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) }, old;
	int mode = (int)(intptr_t)arg;
	sigset_t mask;
	char c = 0;

	if (mode == ON_ALTSTACK && sigaltstack(&ss, &old))
		return (void *)-1;
	if (mode == LONGJMP && sigsetjmp(env, 1)) {
		pthread_sigmask(SIG_SETMASK, NULL, &mask);
		if (sigismember(&mask, SIGUSR1))
			return (void *)-2;	/* siglongjmp restores the mask */
		if (read(pipefd[0], &c, 1) != 1)	/* the vthread goes on, calls and all */
			return (void *)-3;
		return (void *)(intptr_t)c;
	}
	backing = pthread_self();
	started = 1;
	if (read(pipefd[0], &c, 1) != 1)
		c = 'E';
	if (mode == ON_ALTSTACK)
		sigaltstack(&old, NULL);
	return (void *)(intptr_t)c;
}

START_TEST(test_handler_for_a_signal_in_a_blocked_call_runs_in_the_vthread)
{
	int mode = _i;
	vthread_t vt;
	void *ret;

	require_backend();
	catch(SIGUSR1, mode == LONGJMP ? jump : note_context,
	      SA_RESTART | (mode == ON_ALTSTACK ? SA_ONSTACK : 0));
	vt = interrupt_blocked(read_blocked_in, (void *)(intptr_t)mode);
	while (!handled)
		usleep(100);
	ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 'x');
	ck_assert_int_eq(handled, 1);
	if (mode == ON_ALTSTACK) {
		ck_assert(on((void *)handler_sp, altstack, sizeof(altstack)));
	} else {
		ck_assert(on((void *)handler_sp, stack, sizeof(stack)));
	}
	if (mode == IN_PLACE)
		ck_assert(on((void *)context_sp, stack, sizeof(stack)));
}
END_TEST

/* SA_RESETHAND: the handler runs once, in the vthread, and the action is SIG_DFL after. */
static void *read_then_action(void *arg)
{
	struct sigaction now;
	char c;

	(void)arg;
	backing = pthread_self();
	started = 1;
	if (read(pipefd[0], &c, 1) != -1 || errno != EINTR)
		return (void *)-1;
	sigaction(SIGUSR1, NULL, &now);
	return (void *)(intptr_t)(now.sa_handler == SIG_DFL);
}

START_TEST(test_sa_resethand_in_a_blocked_call_runs_the_handler_once)
{
	vthread_t vt;
	void *ret;

	require_backend();
	catch(SIGUSR1, note, SA_RESETHAND);
	vt = interrupt_blocked(read_then_action, NULL);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 1);
	ck_assert_int_eq(handled, 1);
	ck_assert(on((void *)handler_sp, stack, sizeof(stack)));
}
END_TEST

/* The runtime routes handlers through its own; the program sees its own, everywhere. */
static void plain(int sig)
{
	(void)sig;
}

static void *swap_handler(void *arg)
{
	struct sigaction now;

	(void)arg;
	sigaction(SIGUSR1, NULL, &now);
	if (now.sa_sigaction != note || !(now.sa_flags & SA_SIGINFO))
		return (void *)-1;
	return (void *)(intptr_t)((void *)signal(SIGUSR1, plain) == (void *)note);
}

START_TEST(test_sigaction_shows_the_programs_handlers)
{
	struct sigaction now;

	require_backend();
	catch(SIGUSR1, note, 0);
	ck_assert_int_eq(run_vthread(swap_handler, NULL), 1);
	ck_assert_int_eq(sigaction(SIGUSR1, NULL, &now), 0);
	ck_assert(now.sa_handler == plain);
	ck_assert(!(now.sa_flags & SA_SIGINFO) && (now.sa_flags & SA_RESTART));
	ck_assert_int_eq(raise(SIGUSR1), 0);
	ck_assert_int_eq(sigaction(32, NULL, &now), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static void *alarm_wait(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (*(int *)arg)
		alarm(1);
	else
		setitimer(ITIMER_REAL, &(struct itimerval){ .it_value = { 0, 20000 } }, NULL);
	while (!handled)
		;
	return NULL;
}

static void process_signal_reaches_vthread(int use_alarm)
{
	sigset_t set;
	vthread_t vt;

	require_backend();
	catch(SIGALRM, note, 0);
	/* Only the vthread accepts SIGALRM, so the kernel must pick its thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	vt = start_on_known_stack(alarm_wait, &use_alarm);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(handled, 1);
	ck_assert(on((void *)handler_sp, stack, sizeof(stack)));
}

START_TEST(test_alarm_is_delivered_in_the_vthread)
{
	process_signal_reaches_vthread(1);
}
END_TEST

START_TEST(test_setitimer_is_delivered_in_the_vthread)
{
	process_signal_reaches_vthread(0);
}
END_TEST

/* ud2 is 2 bytes: skipping it through the ucontext proves sigreturn uses the frame. */
static void skip_ud2(int sig, siginfo_t *si, void *p)
{
	ucontext_t *uc = p;

	(void)sig;
	if (si->si_addr == (void *)uc->uc_mcontext.gregs[REG_RIP])
		uc->uc_mcontext.gregs[REG_RIP] += 2;
	handled++;
}

static void *execute_ud2(void *arg)
{
	(void)arg;
	__asm__ volatile("ud2");
	__asm__ volatile("ud2");
	return (void *)0x600d;
}

START_TEST(test_sigill_handler_edits_the_context_and_returns)
{
	intptr_t ret;

	catch(SIGILL, skip_ud2, 0);
	ret = run_vthread(execute_ud2, NULL);
	ck_assert_int_eq(ret, 0x600d);
	ck_assert_int_eq(handled, 2);
}
END_TEST

static struct {
	int code;
	void *addr;
	uint64_t rip;
} trapped;

static void on_trap(int sig, siginfo_t *si, void *p)
{
	ucontext_t *uc = p;

	(void)sig;
	trapped.code = si->si_code;
	trapped.addr = si->si_addr;
	trapped.rip = uc->uc_mcontext.gregs[REG_RIP];
	handled++;
}

extern const char test_after_int3[];

__attribute__((noinline, noclone)) static void *execute_int3(void *arg)
{
	(void)arg;
	__asm__ volatile("int3\n.globl test_after_int3\ntest_after_int3:");
	return (void *)0x600d;
}

/* With no debugger attached, a vthread's int3 is a pthread's: SIGTRAP, the same
 * siginfo, RIP after it, and the handler's return goes on from there. */
START_TEST(test_int3_raises_what_it_raises_in_a_pthread)
{
	pthread_t pt;
	void *ret;
	int code;
	void *addr;

	catch(SIGTRAP, on_trap, 0);
	ck_assert_int_eq(pthread_create(&pt, NULL, execute_int3, NULL), 0);
	ck_assert_int_eq(pthread_join(pt, &ret), 0);
	ck_assert_ptr_eq(ret, (void *)0x600d);
	ck_assert_uint_eq(trapped.rip, (uintptr_t)test_after_int3);
	code = trapped.code;
	addr = trapped.addr;
	memset(&trapped, 0, sizeof(trapped));
	ck_assert_int_eq(run_vthread(execute_int3, NULL), 0x600d);
	ck_assert_int_eq(trapped.code, code);
	ck_assert_ptr_eq(trapped.addr, addr);
	ck_assert_uint_eq(trapped.rip, (uintptr_t)test_after_int3);
	ck_assert_int_eq(handled, 2);
}
END_TEST

static char *reserved;

static void commit_page(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	handler_sp = (uintptr_t)si->si_addr;
	mprotect((void *)((uintptr_t)si->si_addr & ~4095ul), 4096, PROT_READ | PROT_WRITE);
	handled++;
}

static void *touch_reserved(void *arg)
{
	(void)arg;
	reserved[100] = 42;
	return (void *)(intptr_t)reserved[100];
}

START_TEST(test_sigsegv_handler_commits_a_reserved_page)
{
	vthread_t vt;
	void *ret;
	char *map;

	require_backend();
	catch(SIGSEGV, commit_page, 0);
	/* A PROT_NONE reservation of its own, as a garbage collector makes one. */
	map = mmap(NULL, 8 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert(map != MAP_FAILED);
	reserved = (char *)(((uintptr_t)map + (2 << 20)) & ~((2ul << 20) - 1));
	ck_assert_int_eq(vthread_create(&vt, NULL, touch_reserved, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 42);
	ck_assert_int_eq(handled, 1);
	ck_assert_ptr_eq((void *)handler_sp, reserved + 100);
}
END_TEST

/*
 * A page a vthread has already used turns unusable on the host (PROT_NONE,
 * read-only, unmapped): KVM refuses the access without an address. The
 * program's handler gets what the kernel gives a pthread for the same access
 * (code and address), in the vthread, and the access is retried after it.
 */
enum { GONE_NONE, GONE_READ_ONLY, GONE_UNMAPPED };
static char *victim;
static int gone;
static siginfo_t fixed_info;
static bool fixed_in_vthread;

static void fix_page(int sig, siginfo_t *si, void *uc)
{
	void *page = (void *)((uintptr_t)si->si_addr & ~4095ul);

	(void)sig, (void)uc;
	fixed_info = *si;
	fixed_in_vthread = vthread_self() != NULL;
	if (gone == GONE_UNMAPPED)
		mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	else
		mprotect(page, 4096, PROT_READ | PROT_WRITE);
	handled++;
}

static void *use_a_page_that_goes(void *arg)
{
	volatile char *page = (volatile char *)victim + 4096;
	volatile long i = (long)(intptr_t)arg;	/* an indexed operand */

	page[i] = 1;	/* mirrored and present */
	if (gone == GONE_UNMAPPED)
		munmap((void *)page, 4096);
	else
		mprotect((void *)page, 4096, gone == GONE_NONE ? PROT_NONE : PROT_READ);
	if (gone == GONE_READ_ONLY) {
		page[i] = 7;
		return (void *)(intptr_t)page[i];
	}
	return (void *)(intptr_t)(page[i] + 7);	/* 1 + 7; unmapped comes back as zeros */
}

/* An fxsave whose 512 bytes cross into a page that turns read-only: an access
 * of an instruction with no register operand, which the decode must size. */
static void *fxsave_across_a_page_that_goes(void *arg)
{
	char *area = victim + 4096 - 256;

	(void)arg;
	victim[0] = victim[4096] = 1;	/* mirrored and present */
	mprotect(victim + 4096, 4096, PROT_READ);
	__asm__ volatile("fxsave64 %0" : "=m"(*(char (*)[512])area) : : "memory");
	return (void *)(intptr_t)*(volatile uint16_t *)area;	/* the FPU control word */
}

/* The handler's view of one run of fn, as a vthread or as a pthread; si_addr
 * made an offset into the pages. */
static intptr_t run_gone(void *(*fn)(void *), bool as_vthread, siginfo_t *si, bool *in_vthread)
{
	void *arg = (void *)123, *ret = NULL;

	victim = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(victim != MAP_FAILED);
	handled = 0;
	if (as_vthread) {
		vthread_t vt;

		ck_assert_int_eq(vthread_create(&vt, NULL, fn, arg), 0);
		ck_assert_int_eq(vthread_join(vt, &ret), 0);
	} else {
		pthread_t th;

		ck_assert_int_eq(pthread_create(&th, NULL, fn, arg), 0);
		ck_assert_int_eq(pthread_join(th, &ret), 0);
	}
	ck_assert_int_eq(handled, 1);
	*si = fixed_info;
	si->si_addr = (void *)((char *)si->si_addr - victim);
	*in_vthread = fixed_in_vthread;
	munmap(victim, 2 * 4096);
	return (intptr_t)ret;
}

START_TEST(test_sigsegv_on_a_page_the_host_took_away_is_a_pthreads)
{
	const intptr_t want = _i == GONE_NONE ? 8 : 7;
	siginfo_t native, guest;
	bool in_vthread;

	require_backend();
	gone = _i;
	catch(SIGSEGV, fix_page, 0);
	ck_assert_int_eq(run_gone(use_a_page_that_goes, false, &native, &in_vthread), want);
	ck_assert_int_eq(native.si_code, gone == GONE_UNMAPPED ? SEGV_MAPERR : SEGV_ACCERR);
	ck_assert_int_eq(run_gone(use_a_page_that_goes, true, &guest, &in_vthread), want);
	ck_assert(in_vthread);
	ck_assert_int_eq(guest.si_signo, SIGSEGV);
	ck_assert_int_eq(guest.si_code, native.si_code);
	ck_assert_ptr_eq(native.si_addr, (void *)(4096 + 123));
	ck_assert_ptr_eq(guest.si_addr, native.si_addr);
}
END_TEST

/* CPUs differ in which byte of the area they name (AMD's: the last): the page
 * is what a handler can act on, and the one the decode names. */
START_TEST(test_sigsegv_of_an_fxsave_across_pages_names_the_page)
{
	siginfo_t native, guest;
	intptr_t fcw;
	bool in_vthread;

	require_backend();
	gone = GONE_READ_ONLY;
	catch(SIGSEGV, fix_page, 0);
	fcw = run_gone(fxsave_across_a_page_that_goes, false, &native, &in_vthread);
	ck_assert_int_eq(native.si_code, SEGV_ACCERR);
	ck_assert_int_eq((uintptr_t)native.si_addr / 4096, 1);
	ck_assert_int_eq(run_gone(fxsave_across_a_page_that_goes, true, &guest, &in_vthread), fcw);
	ck_assert(in_vthread);
	ck_assert_int_eq(guest.si_signo, SIGSEGV);
	ck_assert_int_eq(guest.si_code, SEGV_ACCERR);
	ck_assert_int_eq((uintptr_t)guest.si_addr / 4096, 1);
}
END_TEST

static void *use_altstack(void *arg)
{
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) }, old;

	(void)arg;
	if (sigaltstack(&ss, &old))
		return (void *)-1;
	raise(SIGUSR2);
	sigaltstack(&old, NULL);	/* ASan unmaps a thread's altstack when it ends */
	return NULL;
}

START_TEST(test_sa_onstack_handler_runs_on_the_sigaltstack)
{
	vthread_t vt;

	require_backend();
	catch(SIGUSR2, note, SA_ONSTACK);
	ck_assert_int_eq(vthread_create(&vt, NULL, use_altstack, NULL), 0);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(handled, 1);
	ck_assert(on((void *)handler_sp, altstack, sizeof(altstack)));
}
END_TEST

static void clobber(int sig, siginfo_t *si, void *uc)
{
	volatile double x = 1e300;

	(void)sig, (void)si, (void)uc;
	errno = EBADF;
	x = x * x;	/* dirties the FPU state and raises overflow flags */
	handled++;
}

/* errno and the vector registers of interrupted code survive handlers. */
static void *steady_state(void *arg)
{
	double sum = 0;
	long bad = 0;

	(void)arg;
	backing = pthread_self();
	started = 1;
	for (long i = 0; i < 30000000 && handled < 50; i++) {
		errno = (int)(i & 0x7f);
		sum += 0.5;
		if (errno != (int)(i & 0x7f))
			bad++;
		if (sum != (i + 1) * 0.5)
			bad++;
	}
	return (void *)bad;
}

START_TEST(test_errno_and_fpu_survive_signals)
{
	vthread_t vt;
	void *ret;

	require_backend();
	catch(SIGUSR1, clobber, SA_RESTART);
	ck_assert_int_eq(vthread_create(&vt, NULL, steady_state, NULL), 0);
	while (!started)
		usleep(100);
	for (int i = 0; i < 50; i++) {
		pthread_kill(backing, SIGUSR1);
		usleep(500);
	}
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((intptr_t)ret, 0);
	ck_assert_int_gt(handled, 0);
}
END_TEST

static void *raise_term(void *arg)
{
	(void)arg;
	raise(SIGTERM);
	return NULL;
}

START_TEST(test_default_action_terminates_the_process)
{
	int status = run_vthread_in_child(raise_term, NULL);

	ck_assert_msg(WIFSIGNALED(status), "status %#x", status);
	ck_assert_int_eq(WTERMSIG(status), SIGTERM);
}
END_TEST

static void *raise_ignored(void *arg)
{
	(void)arg;
	raise(SIGUSR1);
	raise(SIGCHLD);		/* ignored by default */
	return (void *)0x1;
}

START_TEST(test_ignored_signals_are_dropped)
{
	intptr_t ret;

	signal(SIGUSR1, SIG_IGN);
	ret = run_vthread(raise_ignored, NULL);
	ck_assert_int_eq(ret, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("signal");
	TCase *tc = tcase_create("signal");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_raise_runs_the_handler_on_the_vthread_stack);
	tcase_add_test(tc, test_pthread_kill_interrupts_guest_code);
	tcase_add_test(tc, test_sigqueue_to_vthread_pthread_reaches_guest_code);
	tcase_add_test(tc, test_blocked_signal_waits_for_the_mask);
	tcase_add_test(tc, test_sigsuspend_returns_eintr_after_the_handler);
	tcase_add_test(tc, test_sa_restart_restarts_a_blocked_read);
	tcase_add_test(tc, test_without_sa_restart_a_blocked_read_fails_eintr);
	tcase_add_loop_test(tc, test_handler_for_a_signal_in_a_blocked_call_runs_in_the_vthread,
			    IN_PLACE, LONGJMP + 1);
	tcase_add_test(tc, test_sa_resethand_in_a_blocked_call_runs_the_handler_once);
	tcase_add_test(tc, test_sigaction_shows_the_programs_handlers);
	tcase_add_test(tc, test_alarm_is_delivered_in_the_vthread);
	tcase_add_test(tc, test_setitimer_is_delivered_in_the_vthread);
	tcase_add_test(tc, test_sigill_handler_edits_the_context_and_returns);
	tcase_add_test(tc, test_int3_raises_what_it_raises_in_a_pthread);
	tcase_add_test(tc, test_sigsegv_handler_commits_a_reserved_page);
	tcase_add_loop_test(tc, test_sigsegv_on_a_page_the_host_took_away_is_a_pthreads, 0, 3);
	tcase_add_test(tc, test_sigsegv_of_an_fxsave_across_pages_names_the_page);
	tcase_add_test(tc, test_sa_onstack_handler_runs_on_the_sigaltstack);
	tcase_add_test(tc, test_errno_and_fpu_survive_signals);
	tcase_add_test(tc, test_default_action_terminates_the_process);
	tcase_add_test(tc, test_ignored_signals_are_dropped);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
