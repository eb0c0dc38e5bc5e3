/* SPDX-License-Identifier: MIT */
/*
 * libc's `syscall`s rewritten in the guest's view (runtime/rewrite.c): a
 * vthread in ring mode sees its own copy of libc's code, whose sites jump to
 * the ring stub without the trap, while host threads run the original; the
 * calls give what the trap gave, also when restarted after a signal, after a
 * fork, and once a vthread takes GS for itself (the sites are put back); the
 * copy is of the code in memory.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define TRIES 20000	/* calls until a server took one: the lanes have one CPU */

/* Where getppid's `syscall` is, as host threads see libc: its first 0f 05. */
static const unsigned char *getppid_site(void)
{
	const unsigned char *p = (const unsigned char *)getppid;

	for (int i = 0; i < 32; i++)
		if (p[i] == 0x0f && p[i + 1] == 0x05)
			return p + i;
	ck_abort_msg("no syscall instruction in getppid's first 32 bytes");
	return NULL;
}

/* Calls getppid until the guest sees its site rewritten: the first byte seen. */
static void *getppid_until_rewritten(void *arg)
{
	const volatile unsigned char *site = arg;

	for (int i = 0; i < TRIES && *site == 0x0f; i++)
		if (getppid() != (pid_t)syscall(SYS_getppid))
			return (void *)-1;
	return (void *)(uintptr_t)*site;
}

static intptr_t run_ring(void *(*fn)(void *), void *arg)
{
	return run_vthread_mode(VTHREAD_SYSCALL_RING, fn, arg);
}

START_TEST(test_the_guest_runs_its_own_rewritten_libc)
{
	const unsigned char *site = getppid_site();

	ck_assert_int_eq(run_ring(getppid_until_rewritten, (void *)site), 0xeb);	/* jmp rel8 */
	ck_assert_int_eq(site[0], 0x0f);	/* host threads run the original */
	ck_assert_int_eq(site[1], 0x05);
	ck_assert_int_eq(getppid(), (pid_t)syscall(SYS_getppid));
	/* A second vthread finds the site rewritten from its first call. */
	ck_assert_int_eq(run_ring(getppid_until_rewritten, (void *)site), 0xeb);
}
END_TEST

START_TEST(test_vthread_rewrite_0_keeps_the_trap)
{
	setenv("VTHREAD_REWRITE", "0", 1);	/* read when this child's runtime starts */
	ck_assert_int_eq(run_ring(getppid_until_rewritten, (void *)getppid_site()), 0x0f);
}
END_TEST

/* The calls a program makes most, each repeated past its rewrite: the results,
 * errno included, are what a host thread gets. */
static void *calls(void *arg)
{
	char path[] = "/dev/shm/vthread-rewrite-XXXXXX", buf[8];
	int p[2];

	(void)arg;
	for (int i = 0; i < 200; i++) {
		struct stat st;
		int fd = mkstemp(path);

		if (fd < 0 || write(fd, "abcdefg", 7) != 7 || lseek(fd, 0, SEEK_SET) != 0 ||
		    read(fd, buf, 8) != 7 || memcmp(buf, "abcdefg", 7) || fstat(fd, &st) ||
		    st.st_size != 7 || close(fd) || unlink(path))
			return (void *)1;
		strcpy(path, "/dev/shm/vthread-rewrite-XXXXXX");
		errno = 0;
		if (close(-1) != -1 || errno != EBADF || read(-1, buf, 1) != -1 || errno != EBADF)
			return (void *)2;
		if (open("/nonexistent/x", O_RDONLY) != -1 || errno != ENOENT)
			return (void *)3;
		if (pipe(p) || write(p[1], "x", 1) != 1 || read(p[0], buf, 1) != 1 || buf[0] != 'x' ||
		    close(p[0]) || close(p[1]))
			return (void *)4;
		if (getpid() != (pid_t)syscall(SYS_getpid))
			return (void *)5;
	}
	return NULL;
}

START_TEST(test_rewritten_calls_give_what_the_trap_gives)
{
	ck_assert_int_eq(run_ring(calls, NULL), 0);
	ck_assert_int_eq(run_ring(calls, NULL), 0);
}
END_TEST

/*
 * Fills every hole in the 2 GiB below `at` with reserved, inaccessible
 * mappings, as the runtime's 1 GiB-aligned regions, thread stacks and malloc's
 * 64 MiB arenas may: trampolines must then go above libc's code.
 */
static void crowd_below(const void *at)
{
	uint64_t top = (uintptr_t)at & ~4095ull, floor = top - (2ull << 30), prev = 0;
	uint64_t holes[2][256];
	size_t n = 0;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");

	ck_assert_ptr_nonnull(f);
	while (n < 256 && fgets(line, sizeof(line), f)) {
		char *end;
		uint64_t lo = strtoull(line, &end, 16), hi = strtoull(end + 1, NULL, 16);
		uint64_t a = prev > floor ? prev : floor, b = lo < top ? lo : top;

		if (a < b) {
			holes[0][n] = a;
			holes[1][n++] = b;
		}
		prev = hi;
	}
	fclose(f);
	for (size_t i = 0; i < n; i++)
		ck_assert(mmap((void *)(uintptr_t)holes[0][i], holes[1][i] - holes[0][i], PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
			       -1, 0) == (void *)(uintptr_t)holes[0][i]);
}

/* Where the guest's rewritten site leads: its jmp rel8 to a jmp rel32. */
static void *trampoline_of(void *arg)
{
	const unsigned char *site = arg, *pad;
	int32_t d;

	if (getppid_until_rewritten(arg) != (void *)0xeb)
		return NULL;
	pad = site + 2 + (int8_t)site[1];
	if (pad[0] != 0xe9)
		return NULL;
	memcpy(&d, pad + 1, 4);
	return (void *)(pad + 5 + d);
}

START_TEST(test_trampolines_find_room_with_none_below_libc)
{
	const unsigned char *site = getppid_site();
	void *t;

	crowd_below(site);
	t = (void *)run_ring(trampoline_of, (void *)site);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_gt((uintptr_t)t, (uintptr_t)site);	/* above libc */
	ck_assert_int_eq(run_ring(calls, NULL), 0);
}
END_TEST

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

struct restart {
	int fds[2];
	const unsigned char *site;
};

/* A read rewritten, then one that waits, is interrupted by a SA_RESTART
 * handler and restarted from the rewritten site. */
static void *read_restarted(void *arg)
{
	struct restart *r = arg;
	char c;

	if (getppid_until_rewritten((void *)r->site) != (void *)0xeb)
		return (void *)1;
	for (int i = 0; i < 100; i++) {
		if (write(r->fds[1], "y", 1) != 1 || read(r->fds[0], &c, 1) != 1)
			return (void *)2;
	}
	if (read(r->fds[0], &c, 1) != 1 || c != 'z')
		return (void *)3;
	return NULL;
}

START_TEST(test_a_rewritten_read_restarts_after_a_handler)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct restart r = { .site = getppid_site() };
	vthread_attr_t a;
	vthread_t vt;
	void *ret;

	require_backend();
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	ck_assert_int_eq(pipe(r.fds), 0);
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING), 0);
	ck_assert_int_eq(vthread_create(&vt, &a, read_restarted, &r), 0);
	for (int i = 0; i < 5; i++) {
		struct timespec t = { 0, 50 * 1000 * 1000 };

		nanosleep(&t, NULL);
		ck_assert_int_eq(pthread_kill(vthread_pthread(vt), SIGUSR1), 0);
	}
	ck_assert_int_eq(write(r.fds[1], "z", 1), 1);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_null(ret);
	ck_assert_int_ge(handled, 1);
	vthread_attr_destroy(&a);
}
END_TEST

/* Takes GS for itself after the rewrite: the site is the original again. */
static void *own_gs(void *arg)
{
	static uint64_t area[8];

	if (getppid_until_rewritten(arg) != (void *)0xeb)
		return (void *)1;
	if (syscall(SYS_arch_prctl, ARCH_SET_GS, area))
		return (void *)2;
	if (getppid() != (pid_t)syscall(SYS_getppid) || *(const unsigned char *)arg != 0x0f)
		return (void *)3;
	return NULL;
}

START_TEST(test_a_vthread_taking_gs_puts_the_sites_back)
{
	const unsigned char *site = getppid_site();

	ck_assert_int_eq(run_ring(own_gs, (void *)site), 0);
	ck_assert_int_eq(run_ring(getppid_until_rewritten, (void *)site), 0x0f);	/* for good */
	ck_assert_int_eq(run_ring(calls, NULL), 0);
}
END_TEST

START_TEST(test_a_fork_child_rewrites_its_own_copy)
{
	const unsigned char *site = getppid_site();
	int status;
	pid_t pid;

	ck_assert_int_eq(run_ring(getppid_until_rewritten, (void *)site), 0xeb);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		_exit(run_ring(getppid_until_rewritten, (void *)site) == 0xeb &&
		      run_ring(calls, NULL) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}
END_TEST

/* Many blocks: malloc grows and trims its arena (mprotect, madvise) holding
 * the arena's lock, which the rewrite of those calls' sites, made on this very
 * thread when the call exits (no server awake), must not need. */
static void *many_blocks(void *arg)
{
	static char *p[1024];

	(void)arg;
	for (int i = 0; i < 1024; i++)
		if (!(p[i] = malloc(64 << 10)))
			return (void *)1;
	for (int i = 0; i < 1024; i++)
		free(p[i]);
	return NULL;
}

START_TEST(test_a_call_from_inside_malloc_is_rewritten_without_malloc)
{
	struct timespec idle = { 0, 200 * 1000 * 1000 };

	ck_assert_int_eq(run_ring(getppid_until_rewritten, (void *)getppid_site()), 0xeb);
	nanosleep(&idle, NULL);		/* the servers fall asleep */
	ck_assert_int_eq(run_ring(many_blocks, NULL), 0);
}
END_TEST

static void on_irq(int source, void *ctx)
{
	(void)source, (void)ctx;
}

/* The vCPU slot's direct flag (hv/guest_abi.h: HV_RING_DIRECT), which sends
 * rewritten sites to the ring stub without the trap. */
static void *direct_flag(void *arg)
{
	unsigned char d;

	(void)arg;
	__asm__ volatile("movb %%gs:96, %0" : "=r"(d));
	return (void *)(uintptr_t)d;
}

/* `syscall` masks interrupts on the way to the ring stub, a jump would not: a
 * vthread with an interrupt handler keeps the trap. */
START_TEST(test_a_vthread_with_an_interrupt_handler_keeps_the_trap)
{
	vthread_attr_t a;
	vthread_t vt;
	void *ret;

	ck_assert_int_eq(run_ring(direct_flag, NULL), 1);
	ck_assert_int_eq(vthread_attr_init(&a), 0);
	ck_assert_int_eq(vthread_attr_setsyscallmode(&a, VTHREAD_SYSCALL_RING), 0);
	ck_assert_int_eq(vthread_attr_setirqhandler(&a, on_irq, NULL), 0);
	if (!(vthread_backend_features() & VTHREAD_FEAT_INTERRUPTS)) {
		ck_assert_int_eq(vthread_create(&vt, &a, direct_flag, NULL), ENOTSUP);
	} else {
		ck_assert_int_eq(vthread_create(&vt, &a, direct_flag, NULL), 0);
		ck_assert_int_eq(vthread_join(vt, &ret), 0);
		ck_assert_ptr_null(ret);
	}
	vthread_attr_destroy(&a);
	ck_assert_int_eq(run_ring(direct_flag, NULL), 1);	/* the vCPU's next vthread */
}
END_TEST

/* The end of libc's code, as host threads have it mapped. */
static int code_end(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *name = strrchr(info->dlpi_name, '/');

	(void)size;
	if (!name || strncmp(name + 1, "libc.so.", 8))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_LOAD && (info->dlpi_phdr[i].p_flags & PF_X))
			*(uintptr_t *)arg = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr +
					    info->dlpi_phdr[i].p_memsz;
	return 1;
}

static void *byte_at(void *arg)
{
	return (void *)(uintptr_t)*(const volatile unsigned char *)arg;
}

/* The guest's copy is of the code that runs, not of libc's file: here a byte
 * of the last code page, past the last function, changed in memory before the
 * first vthread. The sites are rewritten in that copy all the same. */
START_TEST(test_the_guests_libc_is_the_code_in_memory_not_the_file)
{
	uintptr_t end = 0, page;
	unsigned char *b, was;

	dl_iterate_phdr(code_end, &end);
	ck_assert_uint_ne(end % 4096, 0);	/* a byte to change that never runs */
	page = end & ~4095ul;
	b = (unsigned char *)page + 4095;
	ck_assert_int_eq(mprotect((void *)page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	was = *b;
	*b = was ^ 0x5a;
	ck_assert_int_eq(mprotect((void *)page, 4096, PROT_READ | PROT_EXEC), 0);
	ck_assert_int_eq(run_ring(byte_at, b), was ^ 0x5a);
	ck_assert_int_eq(run_ring(getppid_until_rewritten, (void *)getppid_site()), 0xeb);
	ck_assert_int_eq(run_ring(calls, NULL), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rewrite");
	TCase *tc = tcase_create("rewrite");

	/* The process's mode, which the rewrite follows: ring, on any machine. */
	setenv("VTHREAD_SYSCALLS", "ring", 1);
	setenv("VTHREAD_DEBUG", "1", 0);	/* a failure shows why the sites kept their trap */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_the_guest_runs_its_own_rewritten_libc);
	tcase_add_test(tc, test_trampolines_find_room_with_none_below_libc);
	tcase_add_test(tc, test_vthread_rewrite_0_keeps_the_trap);
	tcase_add_test(tc, test_rewritten_calls_give_what_the_trap_gives);
	tcase_add_test(tc, test_a_rewritten_read_restarts_after_a_handler);
	tcase_add_test(tc, test_a_vthread_taking_gs_puts_the_sites_back);
	tcase_add_test(tc, test_a_fork_child_rewrites_its_own_copy);
	tcase_add_test(tc, test_a_call_from_inside_malloc_is_rewritten_without_malloc);
	tcase_add_test(tc, test_a_vthread_with_an_interrupt_handler_keeps_the_trap);
	tcase_add_test(tc, test_the_guests_libc_is_the_code_in_memory_not_the_file);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
