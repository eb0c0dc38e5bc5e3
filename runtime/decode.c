/* SPDX-License-Identifier: MIT */
/*
 * The address a refused guest access touched. When the host refuses a guest
 * access (a page unmapped, read-only or PROT_NONE inside a mirrored region,
 * a stack's guard), KVM_RUN fails with EFAULT and names no address. The
 * instruction at RIP is decoded (Capstone) and every address it may touch is
 * computed from the guest's registers: its memory operands, and the stack slot
 * a push, call, pop or return uses (or RIP itself, when the code cannot be
 * read). The first one the host's mapping does not allow is the address, as
 * the kernel would have named it to a pthread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>

#include "rt.h"
#include "rt_cs.h"

#define MAX_INSN	15	/* bytes of the longest x86 instruction */

struct touch {
	uint64_t addr;
	unsigned size;
	bool write;
};

/* A register's value in r; 32-bit names give the low half. */
static bool reg_value(const hv_regs *r, unsigned reg, uint64_t *v)
{
	static const struct {
		unsigned r64, r32;
		size_t off;
	} regs[] = {
#define R(n, n32, field) { X86_REG_##n, X86_REG_##n32, offsetof(hv_regs, field) }
		R(RAX, EAX, rax), R(RBX, EBX, rbx), R(RCX, ECX, rcx), R(RDX, EDX, rdx),
		R(RSI, ESI, rsi), R(RDI, EDI, rdi), R(RBP, EBP, rbp), R(RSP, ESP, rsp),
		R(R8, R8D, r8), R(R9, R9D, r9), R(R10, R10D, r10), R(R11, R11D, r11),
		R(R12, R12D, r12), R(R13, R13D, r13), R(R14, R14D, r14), R(R15, R15D, r15),
		R(RIP, EIP, rip),
#undef R
	};

	if (reg == X86_REG_INVALID) {
		*v = 0;
		return true;
	}
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		const uint64_t *p = (const uint64_t *)((const char *)r + regs[i].off);

		if (reg == regs[i].r64 || reg == regs[i].r32) {
			*v = reg == regs[i].r64 ? *p : (uint32_t)*p;
			return true;
		}
	}
	return false;
}

/* The addresses the instruction may touch: up to max, their number. */
static size_t touches(const struct vthread *vt, const hv_regs *r, const cs_insn *in,
		      struct touch *t, size_t max)
{
	const cs_x86 *x = &in->detail->x86;
	size_t n = 0;

	for (unsigned i = 0; i < x->op_count && n < max; i++) {
		const cs_x86_op *op = &x->operands[i];
		uint64_t base, index, seg = 0;

		if (op->type != X86_OP_MEM || !reg_value(r, op->mem.base, &base) ||
		    !reg_value(r, op->mem.index, &index))
			continue;
		if (op->mem.base == X86_REG_RIP)
			base += in->size;	/* relative to the next instruction */
		if (op->mem.segment == X86_REG_FS)
			seg = vt->fs_base;
		else if (op->mem.segment == X86_REG_GS)
			seg = vt->gs_base;
		t[n++] = (struct touch){ seg + base + index * op->mem.scale + op->mem.disp,
					 op->size ? op->size : 1, op->access & CS_AC_WRITE };
	}
	switch (in->id) {	/* the stack slot, which is no operand */
	case X86_INS_PUSH: case X86_INS_PUSHFQ: case X86_INS_CALL: case X86_INS_ENTER:
		if (n < max)
			t[n++] = (struct touch){ r->rsp - 8, 8, true };
		break;
	case X86_INS_POP: case X86_INS_POPFQ: case X86_INS_RET:
		if (n < max)
			t[n++] = (struct touch){ r->rsp, 8, false };
		break;
	case X86_INS_LEAVE:
		if (n < max)
			t[n++] = (struct touch){ r->rbp, 8, false };
		break;
	}
	return n;
}

/* The host's protection of the page at a: PROT_* bits, or -1 when unmapped. */
static int host_prot(uint64_t a)
{
	FILE *f = fopen("/proc/self/maps", "rce");	/* c: no cancellation points */
	unsigned long lo, hi;
	char line[512], perms[5];
	int prot = -1;

	if (!f)
		return PROT_READ | PROT_WRITE | PROT_EXEC;	/* cannot tell: allowed */
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 || a < lo || a >= hi)
			continue;
		prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0);
		break;
	}
	fclose(f);
	return prot;
}

/* 0 with *addr and *code (SEGV_MAPERR, SEGV_ACCERR) if the access is refused. */
static int refused(const struct touch *t, uint64_t *addr, int *code, bool *write)
{
	uint64_t ends[2] = { t->addr, t->addr + t->size - 1 };

	for (int i = 0; i < 2; i++) {
		uint64_t a = i ? ends[1] & ~(MM_PAGE_SIZE - 1) : ends[0];
		int prot = host_prot(ends[i]);

		if (i && ends[0] / MM_PAGE_SIZE == ends[1] / MM_PAGE_SIZE)
			break;	/* one page */
		if (prot < 0 || !(prot & (t->write ? PROT_WRITE : PROT_READ))) {
			*addr = a;
			*code = prot < 0 ? SEGV_MAPERR : SEGV_ACCERR;
			*write = t->write;
			return 0;
		}
	}
	return -ENOENT;
}

int rt_fault_address(const struct vthread *vt, const hv_regs *r, uint64_t *addr, int *code,
		     bool *write)
{
	uint8_t bytes[MAX_INSN];
	struct touch t[4];
	size_t len = sizeof(bytes), n = 0;
	cs_insn *in = NULL;
	csh cs;
	int ret = -ENOENT;

	/* An instruction near the end of a mapping is shorter than MAX_INSN. */
	while (len && mm_copy_in(bytes, (void *)(uintptr_t)r->rip, len) < 0)
		len--;
	if (!len)	/* the fetch itself was refused */
		return refused(&(struct touch){ r->rip, 1, false }, addr, code, write);
	if (rt_cs.open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return -ENOENT;
	rt_cs.option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	if (rt_cs.disasm(cs, bytes, len, r->rip, 1, &in) == 1)
		n = touches(vt, r, in, t, sizeof(t) / sizeof(t[0]));
	for (size_t i = 0; i < n && ret < 0; i++)
		ret = refused(&t[i], addr, code, write);
	rt_cs.free(in, 1);
	rt_cs.close(&cs);
	return ret;
}
