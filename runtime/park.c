/* SPDX-License-Identifier: MIT */
/*
 * Parked vthreads (Akaros parks its exited vthreads; Wasp caches VM shells).
 * A backing thread whose vthread returned keeps its vCPU and waits here for
 * the next vthread_create, which then costs a wake instead of a clone, a
 * thread's start and exit, and KVM's switch of the vCPU to a new thread.
 *
 * The next vthread must not tell the difference from a fresh pthread, so a
 * thread parks only when nothing of its last vthread would show (can_park):
 * its __thread variables (every module's but libc's and the runtime's) equal
 * their initial images, it holds no pthread key value and no robust mutex,
 * no cancellation is pending, no signal waits, libc's resolver state is
 * unused, and the vthread made no call that changes its thread (paths.c:
 * name, affinity, credentials...). Its thread_local destructors
 * (__cxa_thread_atexit) run as at a thread's exit. What would show anyway is
 * reset when the thread is taken: errno, the locale, the cancellation state
 * and type, the signal mask (the creator's), signals sent to the thread while
 * it was parked (dropped: a fresh thread would not have them). The creator's
 * scheduling policy, priority, nice value, CPU affinity, name and seccomp
 * mode must equal the parked thread's, as a fresh thread inherits them. Anything
 * else, and the thread ends as a pthread does, its key destructors run
 * before vthread_join returns.
 *
 * A thread is offered (put on the list) before its joiner is told, so that
 * the joiner's next create finds it still awake; it spins a while, then
 * sleeps. glibc ends the process when its count of threads falls to zero:
 * parked threads are taken off it, as the ring's servers are, so that a
 * program whose last thread exits does not live on for them, and the last
 * counted thread never parks. A thread parked longer than RT_PARK_IDLE_S
 * seconds ends; one is ended early when the vCPUs run out.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <linux/futex.h>
#include <link.h>
#include <locale.h>
#include <netdb.h>
#include <resolv.h>
#undef p_type		/* resolv.h's, for its own p_type(); ELF's is a field */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

#define RT_PARK_MAX	16
#define RT_PARK_IDLE_S	1
#define RT_PARK_SPIN_NS	50000

/* SLEEPING: PARKED, in (or on its way to) the futex wait: only then is a wake
 * worth its system call. */
enum { PARKED, TAKEN_JOB, ENDED, SLEEPING };

static struct rt_park *parked;		/* under rt.pool_lock */
static unsigned nparked;

int rt_nthreads_add(int n)
{
	static int *nthreads;

	if (!nthreads)
		nthreads = dlvsym(RTLD_DEFAULT, "__nptl_nthreads", "GLIBC_PRIVATE");
	return nthreads ? __atomic_add_fetch(nthreads, n, __ATOMIC_SEQ_CST) : -1;
}

unsigned rt_park_count(void)
{
	return __atomic_load_n(&nparked, __ATOMIC_RELAXED);
}

static void env_get(struct rt_thread_env *e)
{
	int saved = errno;

	memset(e, 0, sizeof(*e));
	sched_getaffinity(0, sizeof(e->cpus), &e->cpus);
	e->policy = sched_getscheduler(0);
	/* Only the real-time policies have a priority other than 0. */
	if ((e->policy & ~SCHED_RESET_ON_FORK) == SCHED_FIFO ||
	    (e->policy & ~SCHED_RESET_ON_FORK) == SCHED_RR)
		sched_getparam(0, &e->param);
	e->nice = getpriority(PRIO_PROCESS, 0);	/* the calling thread's, on Linux */
	prctl(PR_GET_NAME, e->comm);
	e->seccomp = prctl(PR_GET_SECCOMP);
	errno = saved;
}

static bool env_equal(const struct rt_thread_env *a, const struct rt_thread_env *b)
{
	return CPU_EQUAL(&a->cpus, &b->cpus) && a->policy == b->policy && a->nice == b->nice &&
	       a->param.sched_priority == b->param.sched_priority &&
	       !strncmp(a->comm, b->comm, sizeof(a->comm)) && a->seccomp == b->seccomp;
}

static long futex(uint32_t *w, int op, uint32_t val, const struct timespec *t)
{
	return rt_syscall6(SYS_futex, (long)w, op, val, (long)t, 0, 0);
}

/* Sets a parked thread's word, waking it if it sleeps. */
static void tell(struct rt_park *p, uint32_t w)
{
	if (__atomic_exchange_n(&p->word, w, __ATOMIC_ACQ_REL) == SLEEPING)
		futex(&p->word, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static void unlink_locked(struct rt_park *p)
{
	for (struct rt_park **q = &parked; *q; q = &(*q)->next) {
		if (*q == p) {
			*q = p->next;
			break;
		}
	}
	p->taken = true;
	nparked--;
	rt_nthreads_add(1);
}

struct rt_park *rt_park_take(struct hv_vcpu **vc)
{
	struct rt_thread_env e;
	struct rt_park *p;

	if (!rt_park_count())
		return NULL;
	env_get(&e);
	pthread_mutex_lock(&rt.pool_lock);
	for (p = parked; p && !env_equal(&p->env, &e); p = p->next)
		;
	if (p) {
		unlink_locked(p);
		*vc = p->vcpu;
	}
	pthread_mutex_unlock(&rt.pool_lock);
	return p;
}

/* false: the caller's thread is the process's last counted one, which must
 * end, and the process with it, as after a pthread's last thread. */
static bool push_locked(struct rt_park *p)
{
	if (rt_nthreads_add(-1) == 0) {
		rt_nthreads_add(1);
		return false;
	}
	p->taken = false;
	p->next = parked;
	parked = p;
	nparked++;
	return true;
}

void rt_park_untake(struct rt_park *p)
{
	pthread_mutex_lock(&rt.pool_lock);
	push_locked(p);		/* true: the caller is a counted thread */
	pthread_mutex_unlock(&rt.pool_lock);
}

void rt_park_give(struct rt_park *p, struct vthread *vt)
{
	vt->host = p->host;
	p->vt = vt;
	tell(p, TAKEN_JOB);
}

bool rt_park_evict(void)
{
	struct rt_park *p;
	struct hv_vcpu *vc;

	pthread_mutex_lock(&rt.pool_lock);
	p = parked;
	if (p) {
		unlink_locked(p);
		vc = p->vcpu;
		/* After the exchange p may be gone with its thread's stack: a
		 * wake of a futex no longer there is harmless. */
		tell(p, ENDED);
	}
	pthread_mutex_unlock(&rt.pool_lock);
	if (p)
		rt_vcpu_put(vc);
	return p;
}

void rt_park_forget(void)
{
	parked = NULL;
	nparked = 0;
}

/* Modules whose TLS is not the program's to see: libc's (errno, malloc's
 * caches, the locale: reset or invisible), the runtime's, the sanitizers'. */
static char libc_name[PATH_MAX], self_name[PATH_MAX];

static void find_names(void)
{
	Dl_info i;

	if (dladdr((void *)gnu_get_libc_version, &i) && i.dli_fname)
		snprintf(libc_name, sizeof(libc_name), "%s", i.dli_fname);
	if (dladdr((void *)find_names, &i) && i.dli_fname)
		snprintf(self_name, sizeof(self_name), "%s", i.dli_fname);
}

static bool tls_private(const char *name)
{
	static const char *const libs[] = { "/libasan.so", "/libubsan.so", "/liblsan.so",
					    "/libtsan.so", "/libhwasan.so" };
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, find_names);
	if (!strcmp(name, libc_name) || !strcmp(name, self_name) || strstr(name, "/ld-linux"))
		return true;
	for (size_t k = 0; k < sizeof(libs) / sizeof(libs[0]); k++)
		if (strstr(name, libs[k]))
			return true;
	return false;
}

/* Bytes [lo, hi) of a TLS block against its initial image (zeros past filesz). */
static bool block_changed(const char *block, const char *image, size_t filesz, size_t lo,
			  size_t hi)
{
	size_t img = hi < filesz ? hi : filesz;

	if (lo < img && memcmp(block + lo, image + lo, img - lo))
		return true;
	for (size_t b = lo > filesz ? lo : filesz; b < hi; b++)
		if (block[b])
			return true;
	return false;
}

/*
 * A runtime linked into the program (libvthread.a) has its rt_current in the
 * program's block, set while the vthread ends: those bytes are left out, or
 * no thread of such a program would ever park.
 */
static int tls_changed(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *block = info->dlpi_tls_data, *own = (const char *)&rt_current;

	(void)size;
	if (!block || tls_private(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *image = (const char *)info->dlpi_addr + ph->p_vaddr;
		size_t skip = ph->p_memsz, end = ph->p_memsz;

		if (ph->p_type != PT_TLS)
			continue;
		if (own >= block && own < block + ph->p_memsz) {
			skip = own - block;
			end = skip + sizeof(rt_current);
		}
		if (block_changed(block, image, ph->p_filesz, 0, skip) ||
		    block_changed(block, image, ph->p_filesz, end, ph->p_memsz))
			return *(bool *)arg = true;
	}
	return 0;
}

/*
 * glibc's table of keys (GLIBC_PRIVATE, read by libthread_db as well): a key
 * is in use while its sequence number is odd. Asking only those keys costs
 * ~0.3 µs where asking all 1024 cost ~2 µs of each park; without the table,
 * every key is asked.
 */
struct glibc_key {
	uintptr_t seq;
	void (*destr)(void *);
};

static bool keys_held(void)
{
	static const struct glibc_key *keys;
	static bool looked;

	if (!__atomic_load_n(&looked, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&keys, dlvsym(RTLD_DEFAULT, "__pthread_keys", "GLIBC_PRIVATE"),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&looked, true, __ATOMIC_RELEASE);
	}
	for (pthread_key_t k = 0; k < PTHREAD_KEYS_MAX; k++)
		if ((!keys || __atomic_load_n(&keys[k].seq, __ATOMIC_RELAXED) & 1) &&
		    pthread_getspecific(k))
			return true;
	return false;
}

static bool robust_held(void)
{
	struct robust_list_head *head;
	size_t len;

	if (rt_syscall6(SYS_get_robust_list, 0, (long)&head, (long)&len, 0, 0, 0) < 0)
		return true;
	return head && (head->list.next != &head->list || head->list_op_pending);
}

/*
 * A pthread_cancel that came after the vthread's last cancellation point is
 * acted on here, at glibc's: the unwind lands in this frame, and the thread
 * then ends as it would have, its return value kept.
 */
static bool cancel_pending(void)
{
	__pthread_unwind_buf_t buf;
	int old;

	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old);
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
	if (__sigsetjmp_cancel(buf.__cancel_jmp_buf, 0)) {
		__pthread_unregister_cancel(&buf);
		return true;
	}
	__pthread_register_cancel(&buf);
	pthread_testcancel();
	__pthread_unregister_cancel(&buf);
	return false;
}

/* glibc runs a thread's thread_local destructors (__cxa_thread_atexit_impl)
 * as it exits: a parked thread runs them as its vthread ends, on its own. */
static void call_tls_dtors(void)
{
	static void (*call)(void);
	static bool looked;

	if (!__atomic_load_n(&looked, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&call, dlvsym(RTLD_DEFAULT, "__call_tls_dtors", "GLIBC_PRIVATE"),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&looked, true, __ATOMIC_RELEASE);
	}
	if (call)
		call();
}

static bool can_park(const struct vthread *vt)
{
	sigset_t pending;
	bool changed = false;

	if (!vt->parkable || vt->unwound || vt->thread_changed || rt_park_count() >= RT_PARK_MAX)
		return false;
	call_tls_dtors();
	/* glibc keeps the resolver's state per thread and clears it at exit */
	if (cancel_pending() || keys_held() || robust_held() || (_res.options & RES_INIT))
		return false;
	if (sigpending(&pending) || !sigisemptyset(&pending))
		return false;
	dl_iterate_phdr(tls_changed, &changed);
	return !changed;
}

/*
 * A thread that sleeps at once is woken on its own CPU, gone idle meanwhile:
 * on kvm_pvm's 2-vCPU development VM that wake took ~20 µs more than a clone,
 * and parking lost to a fresh thread. Spinning a while first keeps the next
 * create of a create-join loop, or a vthread_call, off that path.
 */
static void spin(const struct rt_park *p)
{
	uint64_t until = rt_now_ns() + RT_PARK_SPIN_NS;

	while (!__atomic_load_n(&p->word, __ATOMIC_ACQUIRE) && rt_now_ns() < until)
		__builtin_ia32_pause();
}

/*
 * A signal sent to the thread while it was parked (its last vthread's ID,
 * say) was sent to a thread a fresh one is not: dropped. Only the thread's
 * own pending set, which /proc has apart from the process's, is read, and
 * only when something is pending at all.
 */
static void drop_signals_sent_while_parked(void)
{
	const struct timespec zero = { 0, 0 };
	unsigned long long own = 0;
	char buf[2048], *at;
	sigset_t pending;
	int fd;
	long n;

	if (sigpending(&pending) || sigisemptyset(&pending))
		return;
	fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	at = strstr(buf, "\nSigPnd:");
	if (!at || sscanf(at, "\nSigPnd: %llx", &own) != 1)
		return;
	for (int sig = 1; sig <= 64; sig++) {
		sigset_t one;

		if (!(own & 1ull << (sig - 1)))
			continue;
		sigemptyset(&one);
		sigaddset(&one, sig);
		while (sigtimedwait(&one, NULL, &zero) == sig)
			;
	}
}

bool rt_park_offer(struct rt_park *p, const struct vthread *vt)
{
	bool parks;

	if (!can_park(vt))
		return false;
	*p = (struct rt_park){ .host = pthread_self(), .vcpu = vt->vcpu };
	env_get(&p->env);
	pthread_mutex_lock(&rt.pool_lock);
	parks = push_locked(p);
	pthread_mutex_unlock(&rt.pool_lock);
	return parks;
}

struct vthread *rt_park_wait(struct rt_park *p)
{
	const struct timespec idle = { RT_PARK_IDLE_S, 0 };
	bool idled = false;
	uint32_t w;

	rt_current = NULL;
	spin(p);
	for (;;) {
		w = PARKED;
		if (!__atomic_compare_exchange_n(&p->word, &w, SLEEPING, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE) && w != SLEEPING)
			break;
		if (futex(&p->word, FUTEX_WAIT_PRIVATE, SLEEPING, &idle) != -ETIMEDOUT)
			continue;
		pthread_mutex_lock(&rt.pool_lock);
		if (!p->taken) {
			unlink_locked(p);
			p->word = ENDED;
			idled = true;
		}
		pthread_mutex_unlock(&rt.pool_lock);
	}
	if (idled)
		rt_vcpu_put(p->vcpu);	/* else an eviction's: the evictor returned it */
	if (w == ENDED)
		return NULL;
	drop_signals_sent_while_parked();
	errno = 0;
	h_errno = 0;
	uselocale(LC_GLOBAL_LOCALE);
	return p->vt;
}
