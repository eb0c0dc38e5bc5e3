/* SPDX-License-Identifier: MIT */
/*
 * Sandboxes, tested by an adversary: code that runs at guest supervisor level
 * and tries to reach memory outside its grants, host system calls, the
 * runtime's exits and the CPU state of later runs. After each attack the
 * host's memory outside the grants is unchanged (checksummed), the process is
 * alive, the violation says what happened, and the sandbox still serves an
 * honest call. The sandboxed code is naked assembly in a section of its own
 * (sbox_text), granted PROT_READ | PROT_EXEC, or bytes a test writes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PAGE	4096ul
/* Naked: arguments in RDI, RSI, RDX, RCX as the comments say. */
#define SBOX	__attribute__((naked, section("sbox_text"), used))

extern const char __start_sbox_text[], __stop_sbox_text[];

/* fn(a, b, c, d) for the call helpers: a system call nr(a, b, c). */
SBOX static long sb_syscall(void)
{
	__asm__("mov %rdi, %rax; mov %rsi, %rdi; mov %rdx, %rsi; mov %rcx, %rdx; syscall; ret");
}

SBOX static long sb_ret(void)
{
	__asm__("ret");
}

/* CR0.WP off, which lets supervisor code write read-only pages, then a store. */
SBOX static long sb_wp_store(void)
{
	__asm__("mov %cr0, %rax; and $~0x10000, %rax; mov %rax, %cr0; mov %rsi, (%rdi);"
		"xor %eax, %eax; ret");
}

SBOX static long sb_store(void)
{
	__asm__("mov %rsi, (%rdi); xor %eax, %eax; ret");
}

SBOX static long sb_load(void)
{
	__asm__("mov (%rdi), %rax; ret");
}

SBOX static long sb_spin(void)
{
	__asm__("1: jmp 1b");
}

/* The same with interrupts on, for the VMX lane: there a guest that runs with
 * IF=0 and never exits takes none of the host's interrupts (Bochs keeps them
 * masked as the host's IF was at VM entry, though external-interrupt exiting
 * makes IF irrelevant on hardware), so the host's tick, and with it the time
 * limit's CPU-time timer, never came, and the whole emulated machine hung. */
SBOX static long sb_spin_sti(void)
{
	__asm__("sti; 1: jmp 1b");
}

static bool lane_is(const char *name)
{
	const char *lane = getenv("VTHREAD_LANE");

	return lane && !strcmp(lane, name);
}

static long (*endless(void))(void)
{
	return lane_is("vmx") ? sb_spin_sti : sb_spin;
}

SBOX static long sb_hlt(void)
{
	__asm__("hlt; ret");
}

/* `out` of AL to port (the runtime's ports: 0xc0-0xdf, 0xf0-0xf5), RDI and RAX
 * rdi, RCX rcx (where a SYSCALL exit resumes). */
SBOX static long sb_out(void)
{
	__asm__("mov %edi, %edx; mov %rsi, %rdi; mov %rsi, %rax; out %al, (%dx); xor %eax, %eax; ret");
}

SBOX static long sb_in(void)
{
	__asm__("mov %edi, %edx; in (%dx), %al; ret");
}

SBOX static long sb_int80(void)
{
	__asm__("int $0x80; ret");
}

SBOX static long sb_vmcall(void)
{
	__asm__("mov %rdi, %rax; vmcall; ret");
}

SBOX static long sb_vmmcall(void)
{
	__asm__("mov %rdi, %rax; vmmcall; ret");
}

/* An empty IDT, then an exception: a triple fault. */
SBOX static long sb_lidt_empty(void)
{
	__asm__("push $0; push $0; lidt 6(%rsp); ud2");
}

/* A forged exception exit with RSP where the runtime would read the frame. */
SBOX static long sb_forged_pf(void)	/* (rsp) */
{
	__asm__("mov %rdi, %rsp; out %al, $0xce; ret");
}

/* What the breakpoint below is set on, called by no other test: QEMU's TCG
 * keeps a hit guest breakpoint armed for every later guest at that address
 * (below KVM: each test is a process of its own, with a VM of its own). */
SBOX static long sb_dr_target(void)
{
	__asm__("mov $7, %eax; ret");
}

/* A hardware breakpoint on addr, enabled, left for the next run. */
SBOX static long sb_set_dr0(void)	/* (addr) */
{
	__asm__("mov %rdi, %dr0; mov $0x401, %eax; mov %rax, %dr7; xor %eax, %eax; ret");
}

/* KVM's steal-time MSR pointed at gpa, enabled: KVM would write there at each entry. */
SBOX static long sb_steal_time(void)	/* (gpa) */
{
	__asm__("mov $0x4b564d03, %ecx; mov %edi, %eax; or $1, %eax; mov %rdi, %rdx; shr $32, %rdx;"
		"wrmsr; xor %eax, %eax; ret");
}

/* A GDT of nothing, then a segment load from it: #GP. */
SBOX static long sb_lgdt_empty(void)
{
	__asm__("push $0; push $0; lgdt 6(%rsp); mov $0x18, %eax; mov %eax, %ds; ret");
}

/* MSR_LSTAR to 0, then `syscall`. */
SBOX static long sb_lstar_zero(void)
{
	__asm__("mov $0xc0000082, %ecx; xor %eax, %eax; xor %edx, %edx; wrmsr; syscall; ret");
}

/* A write to the runtime's IDT, which its tables map read-only. */
SBOX static long sb_idt_write(void)
{
	__asm__("sub $16, %rsp; sidt 6(%rsp); mov 8(%rsp), %rax; movq $0, (%rax); ret");
}

/* Writes above the stack's top: the runtime's page tables, which are not mapped. */
SBOX static long sb_above_stack(void)
{
	__asm__("movq $0, 4096(%rsp); ret");
}

SBOX static long sb_recurse(void)
{
	__asm__("1: push %rax; jmp 1b");
}

/* MSR_EFER without long mode: a guest may try; the next run must not see it. */
SBOX static long sb_efer(void)
{
	__asm__("mov $0xc0000080, %ecx; rdmsr; and $~0x800, %eax; wrmsr; mov $7, %eax; ret");
}

/* Stores val at base + offs[i] for i < n. */
SBOX static long sb_dirty(void)
{
	__asm__("1: test %rdx, %rdx; jz 2f; mov (%rsi), %r8; mov %rcx, (%rdi,%r8);"
		"add $8, %rsi; dec %rdx; jmp 1b; 2: xor %eax, %eax; ret");
}

/*
 * A page-table attack: builds tables in its own page tbl (GPA tbl_gpa, 8 pages)
 * that map its code's 2 MiB at the same GVA and the GPA window [4 GiB, 8 GiB)
 * at GVA 4 GiB; loads them and writes val to GVA (= GPA) target. The grants'
 * GPAs are no secret: a guest can find them this way.
 */
SBOX static long sb_cr3(void)
{
	__asm__(
		/* tbl: +0 PML4, +4K PDPT (GVA 4 GiB's), +8K PDPT (code's), +12K PD (code's),
		 * +16K.. 4 PDs for 4-8 GiB. Entries: P RW U A D (+PS). */
		"mov %rsi, %r8\n"			/* r8 = tbl_gpa */
		"lea 4096(%r8), %rax; or $0x67, %rax; movq %rax, 0(%rdi)\n"	/* PML4[0] */
		"lea 1f(%rip), %r9\n"			/* r9 = code GVA */
		"mov %r9, %r10; shr $39, %r10; and $511, %r10\n"
		"lea 8192(%r8), %rax; or $0x67, %rax; movq %rax, (%rdi,%r10,8)\n"
		"mov %r9, %r10; shr $30, %r10; and $511, %r10\n"
		"lea 12288(%r8), %rax; or $0x67, %rax; movq %rax, 8192(%rdi,%r10,8)\n"
		"mov %r9, %r10; shr $21, %r10; and $511, %r10\n"
		/* the code's 2 MiB: its GPA from the current tables is unknown, so use
		 * the layout's: grants start at 4 GiB, the first (this code) at the
		 * same offset in its 2 MiB as its host address */
		"mov $0x100000000, %rax; or $0xe7, %rax; movq %rax, 12288(%rdi,%r10,8)\n"
		/* PDPT for GVA 0-512 GiB: entries 4-7 point at the 4 PDs */
		"xor %r11, %r11\n"
		"2: lea 16384(%r8), %rax; mov %r11, %r10; shl $12, %r10; add %r10, %rax;"
		"or $0x67, %rax; movq %rax, 4096+32(%rdi,%r11,8)\n"
		"inc %r11; cmp $4, %r11; jne 2b\n"
		/* the 4 PDs: 2048 entries of 2 MiB from 4 GiB */
		"xor %r11, %r11\n"
		"3: mov %r11, %rax; shl $21, %rax; mov $0x100000000, %r10; add %r10, %rax;"
		"or $0xe7, %rax; movq %rax, 16384(%rdi,%r11,8)\n"
		"inc %r11; cmp $2048, %r11; jne 3b\n"
		"mov %r8, %cr3\n"
		"1: mov %rcx, (%rdx)\n"
		"xor %eax, %eax; ret\n");
}

/* Built with the stack protector: reads its canary at %fs:0x28. */
__attribute__((section("sbox_text"), stack_protect, noinline, no_sanitize("address", "undefined")))
static long sb_protected(long n)
{
	volatile char buf[64];
	long s = 0;

	for (int i = 0; i < 64; i++)
		buf[i] = (char)(n + i);
	for (int i = 0; i < 64; i++)
		s += buf[i];
	return s;
}

/* Host memory no sandbox is granted, and its checksum. */
static char secret[1 << 16] __attribute__((aligned(4096)));

static uint64_t sum(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ull;
	return h;
}

static void fill_secret(void)
{
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (char)(i * 7 + 1);
}

struct box {
	vthread_sandbox_t sb;
	long *data;		/* DATA_PAGES granted RW */
	long *ro;		/* one page granted R */
	uint64_t secret_sum, code_sum, ro_sum;
};
#define DATA_PAGES	16

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* A sandbox granted its code (first, so at the layout's first GPA), data and a read-only page. */
static void box_open(struct box *b)
{
	uintptr_t lo = (uintptr_t)__start_sbox_text & ~(PAGE - 1);
	uintptr_t hi = ((uintptr_t)__stop_sbox_text + PAGE - 1) & ~(PAGE - 1);

	require_backend();
	fill_secret();
	ck_assert_int_eq(vthread_sandbox_create(&b->sb), 0);
	ck_assert_int_eq(vthread_sandbox_grant(b->sb, (void *)lo, hi - lo, PROT_READ | PROT_EXEC), 0);
	b->data = map(DATA_PAGES * PAGE);
	b->ro = map(PAGE);
	b->ro[0] = 0x1234;
	ck_assert_int_eq(vthread_sandbox_grant(b->sb, b->data, DATA_PAGES * PAGE,
					       PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(vthread_sandbox_grant(b->sb, b->ro, PAGE, PROT_READ), 0);
	b->secret_sum = sum(secret, sizeof(secret));
	b->code_sum = sum((void *)lo, hi - lo);
	b->ro_sum = sum(b->ro, PAGE);
}

/* fn(a0..a3) in the sandbox by vthread_call: vthread_call's result, *ret fn's. */
static int call4(vthread_sandbox_t sb, void *fn, long a0, long a1, long a2, long a3, long *ret)
{
	ffi_type *types[4] = { &ffi_type_sint64, &ffi_type_sint64, &ffi_type_sint64,
			       &ffi_type_sint64 };
	void *av[4] = { &a0, &a1, &a2, &a3 };
	vthread_attr_t at;
	ffi_cif cif;
	int r;

	ck_assert_int_eq(ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 4, &ffi_type_sint64, types), FFI_OK);
	ck_assert_int_eq(vthread_attr_init(&at), 0);
	ck_assert_int_eq(vthread_attr_setsandbox(&at, sb), 0);
	r = vthread_call(&at, &cif, (void (*)(void))fn, ret, av);
	vthread_attr_destroy(&at);
	return r;
}

/* fn's violation, which it must have; the caller's line in the message if not. */
#define violation_of(...) violation_at(__LINE__, __VA_ARGS__)

static struct vthread_violation violation_at(int line, void *fn, struct box *b, long a0, long a1,
					     long a2, long a3)
{
	struct vthread_violation v;
	long ret = 0;
	int r = call4(b->sb, fn, a0, a1, a2, a3, &ret);

	ck_assert_msg(r == ECANCELED, "line %d: vthread_call gave %d, not ECANCELED (ret %ld)", line,
		      r, ret);
	ck_assert_int_eq(vthread_sandbox_violation(b->sb, &v), 0);
	return v;
}

/* fn's value, which it must return without a violation; what the violation
 * says in the message if not. */
#define honest(...) honest_at(__LINE__, __VA_ARGS__)

static long honest_at(int line, vthread_sandbox_t sb, void *fn, long a0)
{
	struct vthread_violation v = { 0 };
	long ret = 0;
	int r = call4(sb, fn, a0, 0, 0, 0, &ret);

	if (r)
		vthread_sandbox_violation(sb, &v);
	ck_assert_msg(r == 0, "line %d: vthread_call gave %d: violation %d at %p, ip %#lx, signal %d",
		      line, r, v.kind, v.addr, v.ip, v.signo);
	return ret;
}

/* Nothing outside the grants changed, the read-only ones neither, and an honest call works. */
static void box_close(struct box *b)
{
	uintptr_t lo = (uintptr_t)__start_sbox_text & ~(PAGE - 1);
	uintptr_t hi = ((uintptr_t)__stop_sbox_text + PAGE - 1) & ~(PAGE - 1);

	ck_assert_uint_eq(sum(secret, sizeof(secret)), b->secret_sum);
	ck_assert_uint_eq(sum((void *)lo, hi - lo), b->code_sum);
	ck_assert_uint_eq(sum(b->ro, PAGE), b->ro_sum);
	ck_assert_int_eq(honest(b->sb, sb_protected, 1), 64 + 63 * 64 / 2);
	ck_assert_int_eq(honest(b->sb, sb_load, (long)b->ro), 0x1234);
	ck_assert_int_eq(vthread_sandbox_destroy(b->sb), 0);
	munmap(b->data, DATA_PAGES * PAGE);
	munmap(b->ro, PAGE);
}

START_TEST(test_jit_code_written_by_the_host_runs_and_returns_a_value)
{
	/* lea 42(%rdi), %rax; ret */
	static const unsigned char code[] = { 0x48, 0x8d, 0x47, 0x2a, 0xc3 };
	vthread_sandbox_t sb;
	vthread_attr_t at;
	unsigned char *buf;
	vthread_t vt;
	void *ret;
	long r;

	require_backend();
	buf = map(PAGE);
	memcpy(buf, code, sizeof(code));
	ck_assert_int_eq(mprotect(buf, PAGE, PROT_READ | PROT_EXEC), 0);
	ck_assert_int_eq(vthread_sandbox_create(&sb), 0);
	ck_assert_int_eq(vthread_sandbox_grant(sb, buf, PAGE, PROT_READ | PROT_EXEC), 0);
	ck_assert_int_eq(call4(sb, buf, 100, 0, 0, 0, &r), 0);
	ck_assert_int_eq(r, 142);
	/* and as a vthread of its own, arg in RDI */
	ck_assert_int_eq(vthread_attr_init(&at), 0);
	ck_assert_int_eq(vthread_attr_setsandbox(&at, sb), 0);
	ck_assert_int_eq(vthread_create(&vt, &at, (void *(*)(void *))buf, (void *)1000), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_int_eq((long)ret, 1042);
	ck_assert_int_eq(vthread_sandbox_violation(sb, &(struct vthread_violation){ 0 }), ENOENT);
	ck_assert_int_eq(vthread_sandbox_destroy(sb), 0);
	munmap(buf, PAGE);
}
END_TEST

struct sink {
	vthread_sandbox_t sb;
	char out[256];
	size_t len;
	long other;	/* the last call that was not write */
};

static long emulate_write(long nr, const long a[6], void *ctx)
{
	struct sink *s = ctx;

	if (nr != SYS_write) {
		s->other = nr;
		return -ENOSYS;
	}
	if (a[0] != 1)
		return -EBADF;
	if (vthread_sandbox_check(s->sb, (const void *)a[1], a[2], PROT_READ))
		return -EFAULT;
	if ((size_t)a[2] > sizeof(s->out) - s->len)
		return -ENOSPC;
	memcpy(s->out + s->len, (const void *)a[1], a[2]);
	s->len += a[2];
	return a[2];
}

START_TEST(test_a_handler_emulates_write_into_a_buffer)
{
	struct box b;
	struct sink s = { 0 };
	long ret;

	box_open(&b);
	s.sb = b.sb;
	strcpy((char *)b.data, "hello from the sandbox\n");
	ck_assert_int_eq(vthread_sandbox_set_syscall_handler(b.sb, emulate_write, &s), 0);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_write, 1, (long)b.data, 23, &ret), 0);
	ck_assert_int_eq(ret, 23);
	ck_assert_int_eq(s.len, 23);
	ck_assert_mem_eq(s.out, "hello from the sandbox\n", 23);
	/* the handler's own check keeps the secret out */
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_write, 1, (long)secret, 16, &ret), 0);
	ck_assert_int_eq(ret, -EFAULT);
	ck_assert_int_eq(s.len, 23);
	/* every call reaches it: exit_group too, which it refuses */
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_exit_group, 3, 0, 0, &ret), 0);
	ck_assert_int_eq(ret, -ENOSYS);
	ck_assert_int_eq(s.other, SYS_exit_group);
	/* without a handler, denied */
	ck_assert_int_eq(vthread_sandbox_set_syscall_handler(b.sb, NULL, NULL), 0);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_write, 1, (long)b.data, 23, &ret), 0);
	ck_assert_int_eq(ret, -ENOSYS);
	box_close(&b);
}
END_TEST

START_TEST(test_allowed_calls_are_made_and_checked)
{
	struct vthread_violation v;
	int fds[2];
	struct box b;
	char got[8];
	long ret;

	box_open(&b);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_getpid, 0, 0, 0, &ret), 0);
	ck_assert_int_eq(ret, -ENOSYS);
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, SYS_getpid), 0);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_getpid, 0, 0, 0, &ret), 0);
	ck_assert_int_eq(ret, getpid());
	/* write from a grant goes out; from the secret it is a violation, and nothing goes out */
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, SYS_write), 0);
	memcpy(b.data, "granted", 8);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_write, fds[1], (long)b.data, 8, &ret), 0);
	ck_assert_int_eq(ret, 8);
	ck_assert_int_eq(read(fds[0], got, 8), 8);
	ck_assert_str_eq(got, "granted");
	v = violation_of(sb_syscall, &b, SYS_write, fds[1], (long)secret, 8);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_SYSCALL);
	ck_assert_ptr_eq(v.addr, secret);
	ck_assert_int_eq(v.syscall_nr, SYS_write);
	ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(read(fds[0], got, 8), -1);	/* the pipe got nothing */
	/* read into the read-only grant, and a length that runs past the writable one
	 * (whatever the host maps next to it, no writable grant) */
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, SYS_read), 0);
	v = violation_of(sb_syscall, &b, SYS_read, fds[0], (long)b.ro, 8);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_SYSCALL);
	ck_assert_ptr_eq(v.addr, b.ro);
	v = violation_of(sb_syscall, &b, SYS_read, fds[0], (long)b.data, DATA_PAGES * PAGE + 1);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_SYSCALL);
	ck_assert_ptr_eq(v.addr, b.data);
	close(fds[0]);
	close(fds[1]);
	box_close(&b);
}
END_TEST

/* Each attack: its violation, what it says, and box_close's checks after it. */
START_TEST(test_memory_outside_the_grants_is_out_of_reach)
{
	struct vthread_violation v;
	struct box b;

	box_open(&b);
	v = violation_of(sb_store, &b, (long)secret, 0x666, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	ck_assert_ptr_eq(v.addr, secret);
	ck_assert_int_eq(v.signo, SIGSEGV);
	v = violation_of(sb_load, &b, (long)secret + 64, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	ck_assert_ptr_eq(v.addr, secret + 64);
	v = violation_of(sb_store, &b, (long)b.ro, 0x666, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	ck_assert_ptr_eq(v.addr, b.ro);
	/* the library's own code and data */
	v = violation_of(sb_load, &b, (long)(void *)vthread_create, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	box_close(&b);
}
END_TEST

/* The GPAs mm/space.c gives grants, in order: from 4 GiB, each at its host
 * address's offset in 2 MiB. What a guest can learn by probing, known here. */
static uint64_t next_gpa = 4ull << 30;

static uint64_t layout_gpa(const void *lo, size_t len)
{
	uint64_t gpa = ((next_gpa + (2ul << 20) - 1) & ~((2ul << 20) - 1)) +
		       ((uintptr_t)lo & ((2ul << 20) - 1));

	next_gpa = gpa + ((len + PAGE - 1) & ~(PAGE - 1));
	return gpa;
}

START_TEST(test_own_page_tables_reach_no_more)
{
	uintptr_t lo = (uintptr_t)__start_sbox_text & ~(PAGE - 1);
	uintptr_t hi = ((uintptr_t)__stop_sbox_text + PAGE - 1) & ~(PAGE - 1);
	struct vthread_violation v;
	struct box b;
	char *tbl = map(32 * PAGE);
	uint64_t ro_gpa, tbl_gpa;

	box_open(&b);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, tbl, 32 * PAGE, PROT_READ | PROT_WRITE), 0);
	ck_assert_uint_eq(layout_gpa((void *)lo, hi - lo), 4ull << 30 | (lo & ((2ul << 20) - 1)));
	layout_gpa(b.data, DATA_PAGES * PAGE);
	ro_gpa = layout_gpa(b.ro, PAGE);
	tbl_gpa = layout_gpa(tbl, 32 * PAGE);
	/* its own tables, which map every GPA from 4 to 8 GiB: the read-only grant's too */
	v = violation_of(sb_cr3, &b, (long)tbl, tbl_gpa, ro_gpa, 0x666);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	ck_assert_ptr_eq(v.addr, b.ro);
	box_close(&b);
	munmap(tbl, 32 * PAGE);
}
END_TEST

START_TEST(test_cpu_state_a_run_changes_is_gone_at_the_next)
{
	struct vthread_violation v;
	struct box b;
	long ret;

	box_open(&b);
	v = violation_of(sb_lidt_empty, &b, 0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_EXIT);
	ck_assert_int_eq(call4(b.sb, sb_load, (long)b.ro, 0, 0, 0, &ret), 0);
	v = violation_of(sb_lgdt_empty, &b, 0, 0, 0, 0);
	ck_assert(v.kind == VTHREAD_VIOLATION_FAULT || v.kind == VTHREAD_VIOLATION_EXIT);
	ck_assert_int_eq(call4(b.sb, sb_load, (long)b.ro, 0, 0, 0, &ret), 0);
	v = violation_of(sb_lstar_zero, &b, 0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	ck_assert_ptr_eq(v.addr, NULL);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_getpid, 0, 0, 0, &ret), 0);
	ck_assert_int_eq(ret, -ENOSYS);
	v = violation_of(sb_idt_write, &b, 0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	/* without write protection a read-only grant is still read-only: its memslot is */
	v = violation_of(sb_wp_store, &b, (long)b.ro, 0x666, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	ck_assert_ptr_eq(v.addr, b.ro);
	/* EFER without LME: refused by KVM (#GP) or not; the next run is in long mode */
	call4(b.sb, sb_efer, 0, 0, 0, 0, &ret);
	ck_assert_int_eq(call4(b.sb, sb_load, (long)b.ro, 0, 0, 0, &ret), 0);
	ck_assert_int_eq(ret, 0x1234);
	box_close(&b);
}
END_TEST

START_TEST(test_the_runtimes_exits_are_no_way_out)
{
	static volatile int host_called;
	struct vthread_violation v;
	struct box b;
	long ret;

	box_open(&b);
	/* every port of the runtime's, RDI a would-be host-call descriptor */
	for (long port = 0xc0; port <= 0xf5; port++) {
		if (port >= 0xe0 && port < 0xf0)
			continue;
		if (call4(b.sb, sb_out, port, (long)&host_called, 0, (long)sb_ret, &ret) == 0)
			continue;	/* SYSCALL and END are the sandbox's own: see below */
		ck_assert_int_eq(vthread_sandbox_violation(b.sb, &v), 0);
		ck_assert(v.kind == VTHREAD_VIOLATION_EXIT || v.kind == VTHREAD_VIOLATION_FAULT ||
			  v.kind == VTHREAD_VIOLATION_MEMORY);
	}
	ck_assert_int_eq(host_called, 0);
	/* a forged SYSCALL exit is a system call like any: denied */
	ck_assert_int_eq(call4(b.sb, sb_out, 0xf0, SYS_getpid, 0, (long)sb_ret, &ret), 0);
	ck_assert_int_eq(ret, -ENOSYS);
	v = violation_of(sb_in, &b, 0xf0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_EXIT);
	/* hlt with no interrupt to wait for: KVM exits (kvm_amd, kvm_intel: a violation)
	 * or goes on (kvm_pvm); either way it neither hangs nor leaves */
	if (call4(b.sb, sb_hlt, 0, 0, 0, 0, &ret) != 0) {
		ck_assert_int_eq(vthread_sandbox_violation(b.sb, &v), 0);
		ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_EXIT);
	}
	/* no gate for 0x80: #GP (kvm_amd, kvm_intel), or an exit of kvm_pvm's own */
	v = violation_of(sb_int80, &b, 0, 0, 0, 0);
	ck_assert(v.kind == VTHREAD_VIOLATION_FAULT || v.kind == VTHREAD_VIOLATION_EXIT);
	ck_assert_int_eq(v.signo, v.kind == VTHREAD_VIOLATION_FAULT ? SIGSEGV : 0);
	/* hypercalls: KVM's own, which the sandbox's VM keeps to itself */
	call4(b.sb, sb_vmcall, 5, 0, 0, 0, &ret);
	call4(b.sb, sb_vmmcall, 5, 0, 0, 0, &ret);
	box_close(&b);
}
END_TEST

START_TEST(test_a_smashed_stack_ends_the_vthread)
{
	struct vthread_violation v;
	struct box b;

	box_open(&b);
	v = violation_of(sb_above_stack, &b, 0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	v = violation_of(sb_recurse, &b, 0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_MEMORY);
	box_close(&b);
}
END_TEST

/* The number of an fd of the runtime's: a vCPU's. */
static int a_vcpu_fd(void)
{
	char path[300], link[64];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fd = -1;

	ck_assert_ptr_nonnull(d);
	while (fd < 0 && (e = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && (link[n] = 0, !strncmp(link, "anon_inode:kvm-vcpu", 19)))
			fd = atoi(e->d_name);
	}
	closedir(d);
	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(test_nothing_a_run_arms_outlives_it)
{
	struct vthread_violation v;
	uintptr_t lo = (uintptr_t)__start_sbox_text & ~(PAGE - 1);
	uintptr_t hi = ((uintptr_t)__stop_sbox_text + PAGE - 1) & ~(PAGE - 1);
	struct box b;
	long ret;
	int fd;

	box_open(&b);
	/* a frame read through a forged RSP: unmapped, the secret, the stack */
	v = violation_of(sb_forged_pf, &b, 0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_EXIT);
	v = violation_of(sb_forged_pf, &b, (long)secret, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_EXIT);
	/* a breakpoint on the next run's function (refused, or cleared before it);
	 * not in the SVM lane, whose QEMU does not clear it (above) */
	if (!lane_is("svm")) {
		call4(b.sb, sb_set_dr0, (long)sb_dr_target, 0, 0, 0, &ret);
		ck_assert_int_eq(honest(b.sb, sb_dr_target, 0), 7);
	}
	/* KVM's steal time aimed at the data grant (its GPA as the layout gives it) */
	memset(b.data, 0, DATA_PAGES * PAGE);
	layout_gpa((void *)lo, hi - lo);
	call4(b.sb, sb_steal_time, (long)layout_gpa(b.data, DATA_PAGES * PAGE), 0, 0, 0, &ret);
	ck_assert_int_eq(call4(b.sb, sb_load, (long)b.ro, 0, 0, 0, &ret), 0);
	ck_assert_int_eq(call4(b.sb, sb_load, (long)b.ro, 0, 0, 0, &ret), 0);
	for (size_t i = 0; i < DATA_PAGES * PAGE / sizeof(long); i++)
		ck_assert_msg(b.data[i] == 0, "KVM wrote the grant at +%zu", i * sizeof(long));
	/* the runtime's file descriptors are not the policy's to give */
	fd = a_vcpu_fd();
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, SYS_close), 0);
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, SYS_write), 0);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_close, fd, 0, 0, &ret), 0);
	ck_assert_int_eq(ret, -EBADF);
	ck_assert_int_eq(call4(b.sb, sb_syscall, SYS_write, fd, (long)b.data, 8, &ret), 0);
	ck_assert_int_eq(ret, -EBADF);
	ck_assert_int_ne(fcntl(fd, F_GETFD), -1);
	box_close(&b);
}
END_TEST

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(test_the_time_limit_ends_an_endless_loop)
{
	struct vthread_violation v;
	vthread_attr_t at;
	struct box b;
	vthread_t vt;
	void *ret;
	double t0;

	box_open(&b);
	ck_assert_int_eq(vthread_sandbox_set_time_limit(b.sb, 500000000), 0);
	ck_assert_int_eq(vthread_attr_init(&at), 0);
	ck_assert_int_eq(vthread_attr_setsandbox(&at, b.sb), 0);
	t0 = now();
	ck_assert_int_eq(vthread_create(&vt, &at, (void *(*)(void *))(void (*)(void))endless(), NULL), 0);
	ck_assert_int_eq(vthread_join(vt, &ret), 0);
	ck_assert_ptr_eq(ret, VTHREAD_SANDBOX_VIOLATION);
	ck_assert_msg(now() - t0 < 1.0, "took %.2f s for a 0.5 s limit", now() - t0);
	ck_assert_int_eq(vthread_sandbox_violation(b.sb, &v), 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_TIME);
	/* vthread_call runs it on the calling thread: the limit holds there too, and
	 * the timer's signal is not left pending there (SIGRTMAX would end the process) */
	t0 = now();
	v = violation_of(endless(), &b, 0, 0, 0, 0);
	ck_assert_int_eq(v.kind, VTHREAD_VIOLATION_TIME);
	ck_assert_msg(now() - t0 < 1.0, "took %.2f s for a 0.5 s limit", now() - t0);
	ck_assert_int_eq(vthread_sandbox_set_time_limit(b.sb, 0), 0);
	box_close(&b);
}
END_TEST

#define BIG	(64ul << 20)
#define CYCLES	1000

START_TEST(test_snapshot_and_reset_restore_memory_exactly)
{
	struct box b;
	char *big = map(BIG), *orig = map(BIG);
	long *offs = map(200 * sizeof(long) + PAGE);
	unsigned seed = 12345;

	box_open(&b);
	for (size_t i = 0; i < BIG; i += 8)
		*(uint64_t *)(big + i) = i * 0x9e3779b97f4a7c15ull;
	memcpy(orig, big, BIG);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, big, BIG, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, offs, 200 * sizeof(long), PROT_READ), 0);
	ck_assert_int_eq(vthread_sandbox_reset(b.sb), EINVAL);
	ck_assert_int_eq(vthread_sandbox_snapshot(b.sb), 0);
	for (int c = 0; c < CYCLES; c++) {
		long n = 1 + rand_r(&seed) % 200, ret;

		for (long i = 0; i < n; i++)
			offs[i] = (long)(rand_r(&seed) % (BIG / PAGE)) * PAGE + rand_r(&seed) % (PAGE / 8) * 8;
		ck_assert_int_eq(call4(b.sb, sb_dirty, (long)big, (long)offs, n, ~(long)c, &ret), 0);
		for (long i = 0; i < n; i++)
			ck_assert_int_eq(*(long *)(big + offs[i]), ~(long)c);
		ck_assert_int_eq(vthread_sandbox_reset(b.sb), 0);
		for (long i = 0; i < n; i++)
			ck_assert_int_eq(memcmp(big + (offs[i] & ~(PAGE - 1)),
						orig + (offs[i] & ~(PAGE - 1)), PAGE), 0);
		if (c % 100 == 99)
			ck_assert_int_eq(memcmp(big, orig, BIG), 0);
	}
	ck_assert_int_eq(memcmp(big, orig, BIG), 0);
	box_close(&b);
	munmap(big, BIG);
	munmap(orig, BIG);
	munmap(offs, 200 * sizeof(long) + PAGE);
}
END_TEST

#define CALLS	10000

START_TEST(test_a_sandbox_serves_many_calls_and_leaks_nothing)
{
	struct vthread_stats st0 = VTHREAD_STATS_INIT, st1 = VTHREAD_STATS_INIT;
	struct box b;
	int fds;
	long ret;

	box_open(&b);
	ck_assert_int_eq(call4(b.sb, sb_load, (long)b.ro, 0, 0, 0, &ret), 0);
	fds = count_open_fds();
	ck_assert_int_eq(vthread_get_stats(&st0), 0);
	for (int i = 0; i < CALLS; i++) {
		ck_assert_int_eq(call4(b.sb, sb_store, (long)&b.data[i % 512], i, 0, 0, &ret), 0);
		ck_assert_int_eq(b.data[i % 512], i);
	}
	ck_assert_int_eq(vthread_get_stats(&st1), 0);
	ck_assert_int_eq(count_open_fds(), fds);
	ck_assert_uint_eq(st1.vthreads_live, st0.vthreads_live);
	ck_assert_uint_eq(st1.vcpus, st0.vcpus);
	ck_assert_uint_eq(st1.memslots, st0.memslots);
	ck_assert_uint_eq(st1.runtime_bytes, st0.runtime_bytes);
	ck_assert_uint_ge(st1.exit_end - st0.exit_end, CALLS);
	box_close(&b);
}
END_TEST

static void *nothing(void *p)
{
	return p;
}

static int on_fault(const struct vthread_fault *f, void *ctx)
{
	(void)f;
	(void)ctx;
	return 0;
}

START_TEST(test_errors)
{
	struct box b;
	vthread_sandbox_t gone, got;
	vthread_attr_t at;
	ffi_cif cif;
	ffi_type *dbl[1] = { &ffi_type_double };
	double d = 1;
	void *av[1] = { &d };
	long ret;
	vthread_t vt, vt2;
	char *p = map(2 * PAGE);

	box_open(&b);
	ck_assert_int_eq(vthread_sandbox_create(NULL), EINVAL);
	ck_assert_int_eq(vthread_sandbox_create(&gone), 0);
	ck_assert_int_eq(vthread_sandbox_destroy(gone), 0);
	ck_assert_int_eq(vthread_sandbox_destroy(gone), EINVAL);
	ck_assert_int_eq(vthread_sandbox_destroy(NULL), EINVAL);
	ck_assert_int_eq(vthread_sandbox_grant(gone, p, PAGE, PROT_READ), EINVAL);
	ck_assert_int_eq(vthread_sandbox_allow(gone, SYS_getpid), EINVAL);
	ck_assert_int_eq(vthread_sandbox_snapshot(gone), EINVAL);
	ck_assert_int_eq(vthread_sandbox_set_time_limit(gone, 1), EINVAL);
	ck_assert_int_eq(vthread_sandbox_violation(gone, &(struct vthread_violation){ 0 }), EINVAL);
	ck_assert_int_eq(vthread_sandbox_violation(b.sb, NULL), EINVAL);
	ck_assert_int_eq(vthread_sandbox_violation(b.sb, &(struct vthread_violation){ 0 }), ENOENT);
	/* grants */
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, p + 1, PAGE, PROT_READ), EINVAL);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, p, 0, PROT_READ), EINVAL);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, p, PAGE, 0), EINVAL);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, p, PAGE, PROT_READ | 0x100), EINVAL);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, (char *)b.data + PAGE, PAGE, PROT_READ), EINVAL);
	ck_assert_int_eq(munmap(p + PAGE, PAGE), 0);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, p, 2 * PAGE, PROT_READ), ENOMEM);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, p, 1, PROT_READ), 0);	/* a page */
	/* policy */
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, -1), EINVAL);
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, SYS_openat), ENOTSUP);
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, SYS_mmap), ENOTSUP);
	ck_assert_int_eq(vthread_sandbox_allow(b.sb, 100000), ENOTSUP);
	ck_assert_int_eq(vthread_sandbox_check(b.sb, b.data, DATA_PAGES * PAGE, PROT_WRITE), 0);
	ck_assert_int_eq(vthread_sandbox_check(b.sb, b.ro, 8, PROT_WRITE), EFAULT);
	ck_assert_int_eq(vthread_sandbox_check(b.sb, secret, 8, PROT_READ), EFAULT);
	ck_assert_int_eq(vthread_sandbox_check(b.sb, (void *)-8l, 16, PROT_READ), EFAULT);
	/* attributes */
	ck_assert_int_eq(vthread_attr_init(&at), 0);
	ck_assert_int_eq(vthread_attr_setsandbox(&at, gone), EINVAL);
	ck_assert_int_eq(vthread_attr_setsandbox(&at, b.sb), 0);
	ck_assert_int_eq(vthread_attr_getsandbox(&at, &got), 0);
	ck_assert_ptr_eq(got, b.sb);
	ck_assert_int_eq(vthread_attr_setfaulthandler(&at, on_fault, NULL), 0);
	ck_assert_int_eq(vthread_create(&vt, &at, nothing, NULL), EINVAL);
	ck_assert_int_eq(vthread_attr_setfaulthandler(&at, NULL, NULL), 0);
	ck_assert_int_eq(ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 1, &ffi_type_sint64, dbl), FFI_OK);
	ck_assert_int_eq(vthread_call(&at, &cif, (void (*)(void))sb_load, &ret, av), ENOTSUP);
	/* busy while a vthread runs in it */
	ck_assert_int_eq(vthread_sandbox_set_time_limit(b.sb, 2000000000), 0);
	ck_assert_int_eq(vthread_create(&vt, &at, (void *(*)(void *))(void (*)(void))endless(), NULL), 0);
	ck_assert_int_eq(vthread_create(&vt2, &at, nothing, NULL), EAGAIN);
	ck_assert_int_eq(vthread_sandbox_destroy(b.sb), EBUSY);
	ck_assert_int_eq(vthread_sandbox_snapshot(b.sb), EBUSY);
	ck_assert_int_eq(vthread_sandbox_reset(b.sb), EBUSY);
	ck_assert_int_eq(vthread_sandbox_grant(b.sb, p, PAGE, PROT_READ), EBUSY);
	ck_assert_int_eq(vthread_join(vt, NULL), 0);
	ck_assert_int_eq(vthread_sandbox_set_time_limit(b.sb, 0), 0);
	/* an attribute that outlives its sandbox names none */
	ck_assert_int_eq(vthread_sandbox_create(&gone), 0);
	ck_assert_int_eq(vthread_attr_setsandbox(&at, gone), 0);
	ck_assert_int_eq(vthread_sandbox_destroy(gone), 0);
	ck_assert_int_eq(vthread_create(&vt, &at, nothing, NULL), EINVAL);
	ck_assert_int_eq(vthread_attr_getsandbox(&at, &got), 0);
	ck_assert_ptr_eq(got, NULL);
	vthread_attr_destroy(&at);
	box_close(&b);
	munmap(p, PAGE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_jit_code_written_by_the_host_runs_and_returns_a_value);
	tcase_add_test(tc, test_a_handler_emulates_write_into_a_buffer);
	tcase_add_test(tc, test_allowed_calls_are_made_and_checked);
	tcase_add_test(tc, test_memory_outside_the_grants_is_out_of_reach);
	tcase_add_test(tc, test_own_page_tables_reach_no_more);
	tcase_add_test(tc, test_cpu_state_a_run_changes_is_gone_at_the_next);
	tcase_add_test(tc, test_the_runtimes_exits_are_no_way_out);
	tcase_add_test(tc, test_a_smashed_stack_ends_the_vthread);
	tcase_add_test(tc, test_nothing_a_run_arms_outlives_it);
	tcase_add_test(tc, test_the_time_limit_ends_an_endless_loop);
	tcase_add_test(tc, test_errors);
	suite_add_tcase(s, tc);
	tc = tcase_create("volume");	/* thousands of runs: not in the VMX lane's Bochs */
	tcase_set_tags(tc, "volume");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_snapshot_and_reset_restore_memory_exactly);
	tcase_add_test(tc, test_a_sandbox_serves_many_calls_and_leaks_nothing);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
