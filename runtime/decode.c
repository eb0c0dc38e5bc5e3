/* SPDX-License-Identifier: MIT */
/*
 * The address a refused guest access touched. When the host refuses a guest
 * access (a page unmapped, read-only or PROT_NONE inside a mirrored region,
 * a stack's guard), KVM_RUN fails with EFAULT and names no address. The
 * instruction at RIP is decoded (Zydis, which never allocates: the guest may
 * hold malloc's lock on this thread) and every address it may touch is
 * computed from the guest's registers: its memory operands (string ones and
 * fxsave's area included; xsave's as far as Zydis sizes it, 576 bytes), and
 * the stack slot a push, call, pop or return uses (or RIP itself, when the
 * code cannot be read). The first one the host's mapping does not allow is
 * the address, as the kernel would have named it to a pthread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>

#include "rt.h"
#include "rt_zydis.h"

struct touch {
	uint64_t addr;
	unsigned size;
	bool write;
};

/* A register's value in r; 32-bit names give the low half. */
static bool reg_value(const hv_regs *r, ZydisRegister reg, uint64_t *v)
{
	static const struct {
		ZydisRegister r64, r32;
		size_t off;
	} regs[] = {
#define R(n, n32, field) { ZYDIS_REGISTER_##n, ZYDIS_REGISTER_##n32, offsetof(hv_regs, field) }
		R(RAX, EAX, rax), R(RBX, EBX, rbx), R(RCX, ECX, rcx), R(RDX, EDX, rdx),
		R(RSI, ESI, rsi), R(RDI, EDI, rdi), R(RBP, EBP, rbp), R(RSP, ESP, rsp),
		R(R8, R8D, r8), R(R9, R9D, r9), R(R10, R10D, r10), R(R11, R11D, r11),
		R(R12, R12D, r12), R(R13, R13D, r13), R(R14, R14D, r14), R(R15, R15D, r15),
		R(RIP, EIP, rip),
#undef R
	};

	if (reg == ZYDIS_REGISTER_NONE) {
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
	return false;	/* a vector index (gathers, scatters): not computed */
}

/* The addresses the instruction may touch: up to max, their number. */
static size_t touches(const struct vthread *vt, const hv_regs *r,
		      const ZydisDecodedInstruction *in, const ZydisDecodedOperand *ops,
		      struct touch *t, size_t max)
{
	size_t n = 0;

	if (in->mnemonic == ZYDIS_MNEMONIC_NOP)	/* `nop [rax]` reads nothing */
		return 0;
	for (unsigned i = 0; i < in->operand_count && n < max; i++) {
		const ZydisDecodedOperand *op = &ops[i];
		uint64_t base, index, seg = 0;

		/* Memory accesses only (not lea's); the stack slot is below. */
		if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type != ZYDIS_MEMOP_TYPE_MEM ||
		    (op->visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN &&
		     op->mem.segment == ZYDIS_REGISTER_SS) ||
		    !reg_value(r, op->mem.base, &base) || !reg_value(r, op->mem.index, &index))
			continue;
		if (op->mem.base == ZYDIS_REGISTER_RIP)
			base += in->length;	/* relative to the next instruction */
		if (op->mem.segment == ZYDIS_REGISTER_FS)
			seg = vt->fs_base;
		else if (op->mem.segment == ZYDIS_REGISTER_GS)
			seg = vt->gs_base;
		t[n++] = (struct touch){ seg + base + index * op->mem.scale + op->mem.disp.value,
					 op->size >= 8 ? op->size / 8 : 1,
					 op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE };
	}
	switch (in->mnemonic) {	/* the stack slot */
	case ZYDIS_MNEMONIC_PUSH: case ZYDIS_MNEMONIC_PUSHFQ: case ZYDIS_MNEMONIC_CALL:
	case ZYDIS_MNEMONIC_ENTER:
		if (n < max)
			t[n++] = (struct touch){ r->rsp - 8, 8, true };
		break;
	case ZYDIS_MNEMONIC_POP: case ZYDIS_MNEMONIC_POPFQ: case ZYDIS_MNEMONIC_RET:
		if (n < max)
			t[n++] = (struct touch){ r->rsp, 8, false };
		break;
	case ZYDIS_MNEMONIC_LEAVE:
		if (n < max)
			t[n++] = (struct touch){ r->rbp, 8, false };
		break;
	default:
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
	uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH];
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	ZydisDecodedInstruction in;
	struct touch t[4];
	size_t len = sizeof(bytes), n = 0;
	int ret = -ENOENT;

	/* An instruction near the end of a mapping is shorter than the longest. */
	while (len && mm_copy_in(bytes, (void *)(uintptr_t)r->rip, len) < 0)
		len--;
	if (!len)	/* the fetch itself was refused */
		return refused(&(struct touch){ r->rip, 1, false }, addr, code, write);
	if (ZYAN_SUCCESS(rt_zydis.DecoderDecodeFull(&rt_zydis.decoder, bytes, len, &in, ops)))
		n = touches(vt, r, &in, ops, t, sizeof(t) / sizeof(t[0]));
	for (size_t i = 0; i < n && ret < 0; i++)
		ret = refused(&t[i], addr, code, write);
	return ret;
}
