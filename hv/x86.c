/* SPDX-License-Identifier: MIT */
/*
 * Architectural guest state common to every backend: a 64-bit CPL0 context with
 * GVA == HVA, one IDT per VM whose gates exit to the runtime, and per vCPU a
 * GDT and a TSS whose IST1 stack takes every exception frame.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "hv.h"
#include "x86.h"

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
	uint16_t offset_lo;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_hi;
	uint32_t reserved;
} __attribute__((packed));

static struct idt_gate gate(const char *stub, int ist)
{
	uint64_t off = (uintptr_t)stub;

	return (struct idt_gate){
		.offset_lo = off & 0xffff,
		.selector = SEL_CODE,
		.ist = ist,
		.type_attr = 0xee,	/* present, DPL 3 (PVM wants it), interrupt gate */
		.offset_mid = (off >> 16) & 0xffff,
		.offset_hi = off >> 32,
	};
}

extern const char hv_guest_irq_poke[], hv_guest_irq_timer[], hv_guest_irq_spurious[];

/* Exceptions on IST1; interrupts on IST2, so that a page fault while an
 * interrupt's stub moves its frame does not overwrite it. */
void hv_idt_fill(void *idt)
{
	struct idt_gate *g = idt;

	hv_idt_fill_sandbox(idt, (uintptr_t)hv_guest_vectors - HV_SB_VECTORS);
	g[HV_VECTOR_POKE] = gate(hv_guest_irq_poke, 2);
	g[HV_VECTOR_TIMER] = gate(hv_guest_irq_timer, 2);
	g[HV_VECTOR_SPURIOUS] = gate(hv_guest_irq_spurious, 2);
}

void hv_idt_fill_sandbox(void *idt, uint64_t code)
{
	struct idt_gate *g = idt;

	memset(idt, 0, HV_IDT_SIZE);
	for (int v = 0; v < HV_NR_VECTORS; v++)
		g[v] = gate((const char *)(uintptr_t)code + HV_SB_VECTORS + v * HV_VECTOR_STUB, 1);
}

static void gdt_fill(char *area)
{
	uint64_t *gdt = (uint64_t *)(area + HV_AREA_GDT);
	struct tss64 *tss = (struct tss64 *)(area + HV_AREA_TSS);
	uint64_t base = (uintptr_t)tss, limit = sizeof(*tss) - 1;
	uint64_t ist_top = (uintptr_t)area + HV_AREA_IST + HV_IST_SIZE;

	memset(gdt, 0, 10 * sizeof(*gdt));
	gdt[SEL_CODE / 8] = 0x00af9b000000ffffull;	/* 64-bit code, DPL 0 */
	gdt[SEL_DATA / 8] = 0x00cf93000000ffffull;	/* data, DPL 0 */
	gdt[0x28 / 8] = 0x00cff3000000ffffull;		/* user data (STAR layout) */
	gdt[0x30 / 8] = 0x00affb000000ffffull;		/* user 64-bit code */
	gdt[SEL_TSS / 8] = limit | (base & 0xffffff) << 16 | 0x89ull << 40 |
			   ((base >> 24) & 0xff) << 56;
	gdt[SEL_TSS / 8 + 1] = base >> 32;

	memset(tss, 0, sizeof(*tss));
	tss->rsp[0] = ist_top;
	tss->ist[0] = ist_top;
	tss->ist[1] = (uintptr_t)area + HV_AREA_IST;	/* IST2 ends where IST1 starts */
	tss->iomap_base = sizeof(*tss);
}

static int setup_cpuid(struct hv_vcpu *vc)
{
	return ioctl(vc->fd, KVM_SET_CPUID2, vc->hv->cpuid) < 0 ? -errno : 0;
}

static int setup_sregs(struct hv_vcpu *vc, const struct hv_layout *lay)
{
	char *area = vc->area;
	struct kvm_segment data = {
		.limit = 0xffffffff,
		.selector = SEL_DATA,
		.type = 0x3,
		.present = 1,
		.db = 1,
		.s = 1,
		.g = 1,
	};
	struct kvm_sregs *s = &vc->sregs;

	/* KVM's defaults once; a rearm (a sandbox's every run) starts from what
	 * the first setup set rather than read back, which saves an ioctl. */
	if (!s->cr0 && ioctl(vc->fd, KVM_GET_SREGS, s) < 0)
		return -errno;
	s->cs = (struct kvm_segment){
		.limit = 0xffffffff,
		.selector = SEL_CODE,
		.type = 0xb,
		.present = 1,
		.s = 1,
		.l = 1,
		.g = 1,
	};
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->gs.base = (uintptr_t)area + HV_AREA_RING;	/* glibc leaves GS alone */
	s->tr = (struct kvm_segment){
		.base = (uintptr_t)area + HV_AREA_TSS,
		.limit = sizeof(struct tss64) - 1,
		.selector = SEL_TSS,
		.type = 0xb,	/* busy 64-bit TSS */
		.present = 1,
	};
	s->gdt.base = (uintptr_t)area + HV_AREA_GDT;
	s->gdt.limit = 10 * 8 - 1;
	s->idt.base = (uintptr_t)lay->idt;
	s->idt.limit = HV_IDT_SIZE - 1;
	s->cr0 = CR0_GUEST;
	s->cr3 = lay->cr3;
	s->cr4 = CR4_GUEST;
	s->efer = EFER_GUEST;
	return ioctl(vc->fd, KVM_SET_SREGS, s) < 0 ? -errno : 0;
}

static int setup_msrs(struct hv_vcpu *vc, const struct hv_layout *lay)
{
	uint64_t entry = lay->code ? lay->code + HV_SB_SYSCALL : (uintptr_t)hv_guest_syscall;
	const struct kvm_msr_entry e[] = {
		{ .index = MSR_STAR, .data = STAR_GUEST },
		{ .index = MSR_LSTAR, .data = entry },
		{ .index = MSR_SYSCALL_MASK, .data = SFMASK_GUEST },
	};
	int r = hv_set_msrs(vc, e, sizeof(e) / sizeof(e[0]));

	if (!r)
		vc->ring_entry = vc->direct = false;
	hv_vcpu_ring(vc)->direct = 0;
	return r;
}

/* kvmtool's order: CPUID before long-mode SREGS (newer kernels check it), then MSRs. */
int hv_vcpu_setup(struct hv_vcpu *vc, const struct hv_layout *lay)
{
	int r = setup_cpuid(vc);

	return r ? r : hv_vcpu_rearm(vc, lay);
}

int hv_vcpu_rearm(struct hv_vcpu *vc, const struct hv_layout *lay)
{
	int r;

	gdt_fill(vc->area);
	r = setup_sregs(vc, lay);
	if (!r)
		r = setup_msrs(vc, lay);
	if (!r)
		r = vc->hv->be->vcpu_setup(vc, lay);
	if (!r)
		r = hv_vcpu_reset_fpu(vc);
	return r;
}

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Runs the guest at rip until it exits; *ns = wall time. */
static int run_timed(struct hv_vcpu *vc, const char *rip, enum hv_exit_kind want, long *ns)
{
	hv_regs regs = {
		.rip = (uintptr_t)rip,
		.rsp = (uintptr_t)vc->area + HV_AREA_IST + HV_IST_SIZE,
		.rflags = 2,
	};
	struct hv_exit ex;
	int r;

	/*
	 * KVM completes the previous exit's `out` on the next KVM_RUN, and without
	 * NRIP-save (kvm_amd in QEMU) it may take an `out` at a new RIP for it and
	 * skip it. Completing it before RIP moves rules that out.
	 */
	vc->run->immediate_exit = 1;
	r = hv_vcpu_run(vc, &ex);
	vc->run->immediate_exit = 0;
	if (r < 0)
		return r;
	r = hv_vcpu_set_regs(vc, &regs);
	if (r < 0)
		return r;
	*ns = now_ns();
	do
		r = hv_vcpu_run(vc, &ex);
	while (!r && ex.kind == HV_EXIT_SIGNAL);
	*ns = now_ns() - *ns;
	if (r < 0)
		return r;
	return ex.kind == want ? 0 : -EIO;
}

/* Up to three timed runs, *ns the best: a shared host can stall any one. Stops at
 * the first under `enough` ns (0, else -ENOEXEC). */
static int best_of_three(struct hv_vcpu *vc, const char *rip, enum hv_exit_kind want,
			 long enough, long *ns)
{
	*ns = -1;
	for (int i = 0; i < 3; i++) {
		long t;
		int r = run_timed(vc, rip, want, &t);

		if (r < 0)
			return r;
		if (*ns < 0 || t < *ns)
			*ns = t;
		if (t < enough)
			return 0;
	}
	return -ENOEXEC;
}

/*
 * A guest that KVM emulates instruction by instruction also "works", 10,000 times
 * slower. Time a loop: natively it takes ~1 cycle per iteration; emulated, microseconds.
 */
int hv_vcpu_probe_native(struct hv_vcpu *vc, long *ns)
{
	return best_of_three(vc, hv_guest_probe, HV_EXIT_PROBE, HV_PROBE_LOOPS * 250L, ns);
}

int hv_vcpu_exit_cost(struct hv_vcpu *vc, long *ns)
{
	int r = best_of_three(vc, (const char *)hv_guest_null_exit, HV_EXIT_NULL, 0, ns);

	return r == -ENOEXEC ? 0 : r;	/* all three ran */
}

struct hv_ring_slot *hv_vcpu_ring(struct hv_vcpu *vc)
{
	return (struct hv_ring_slot *)((char *)vc->area + HV_AREA_RING);
}

int hv_vcpu_set_gs_base(struct hv_vcpu *vc, uint64_t base)
{
	return hv_set_msr(vc, MSR_GS_BASE, base);
}

static const char *syscall_entry(bool ring)
{
	return ring ? hv_guest_syscall_ring : hv_guest_syscall;
}

int hv_vcpu_set_syscall_entry(struct hv_vcpu *vc, bool ring, bool direct)
{
	int r = 0;

	if (vc->ring_entry != ring)
		r = hv_set_msr(vc, MSR_LSTAR, (uintptr_t)syscall_entry(ring));
	if (r)
		return r;
	vc->ring_entry = ring;
	vc->direct = ring && direct;
	hv_vcpu_ring(vc)->direct = vc->direct;
	return 0;
}

/* The trampolines' direct jump is off meanwhile, so that they trap too. */
int hv_vcpu_set_syscall_null(struct hv_vcpu *vc, bool on)
{
	const char *entry = on ? hv_guest_syscall_null : syscall_entry(vc->ring_entry);

	hv_vcpu_ring(vc)->direct = !on && vc->direct;
	return hv_set_msr(vc, MSR_LSTAR, (uintptr_t)entry);
}

/* A thread starts with its creator's PKRU: the backing thread's, read here. */
static int inherit_pkru(struct hv_vcpu *vc)
{
	struct kvm_xsave x;
	uint64_t bv;
	uint32_t pkru;
	int r;

	__asm__ volatile(".byte 0x0f, 0x01, 0xee" : "=a"(pkru) : "c"(0) : "rdx");	/* rdpkru */
	r = hv_vcpu_get_xsave(vc, &x);
	if (r < 0)
		return r;
	memcpy((char *)x.region + vc->pkru_offset, &pkru, sizeof(pkru));
	memcpy(&bv, (char *)x.region + 512, sizeof(bv));	/* XSTATE_BV */
	bv |= XFEATURE_PKRU;
	memcpy((char *)x.region + 512, &bv, sizeof(bv));
	return hv_vcpu_set_xsave(vc, &x);
}

int hv_vcpu_start(struct hv_vcpu *vc, void *(*fn)(void *), void *arg,
		  void *stack_top, uint64_t fs_base, uint64_t fpu)
{
	uint64_t *sp = (uint64_t *)((uintptr_t)stack_top & ~15ul) - 1;
	hv_regs regs = {
		.rip = (uintptr_t)hv_guest_start,
		.rdi = (uintptr_t)arg,
		.rsi = (uintptr_t)fn,
		.rdx = fs_base,
		.rcx = 2 | (vc->hv->irqchip ? RFLAGS_IF : 0),	/* interrupts on, at fn */
		.r8 = (uintptr_t)hv_vcpu_ring(vc),	/* GS base: whatever the last one set */
		.r9 = fpu,
		.rsp = (uintptr_t)sp,
		.rflags = 2,
	};
	int r = 0;

	*sp = (uintptr_t)hv_guest_return;	/* fn's return address; RSP + 8 is 16-aligned */
	hv_vcpu_ring(vc)->irq_on = hv_vcpu_ring(vc)->kick = 0;	/* hv->vif: off until rt_irq_begin */
	hv_vcpu_ring(vc)->timer = ~0ull;
	if (vc->pkru_offset)
		r = inherit_pkru(vc);
	if (!r)
		r = hv_vcpu_set_regs(vc, &regs);
	return r;
}

static struct hv_fault_cfg *fault_cfg(struct hv_vcpu *vc)
{
	return (struct hv_fault_cfg *)((char *)vc->area + HV_AREA_FAULT);
}

void hv_vcpu_set_fault_stack(struct hv_vcpu *vc, uint64_t lo, uint64_t hi)
{
	struct hv_fault_cfg *c = fault_cfg(vc);

	c->lo = lo + HV_FAULT_SLACK < hi ? lo + HV_FAULT_SLACK : hi;
	c->hi = hi;
	c->held = 0;
}

void hv_vcpu_fault_held(struct hv_vcpu *vc)
{
	fault_cfg(vc)->held = 1;
}

/* Runs in the guest, after whatever faults the handler took: the frame they
 * overwrote on the IST stack, and CR2, are put back for the exit. Must not
 * fault itself (a fault here would be forwarded after its cause was gone): not
 * instrumented, as ASan's shadow of the IST stack may not be mirrored. */
__attribute__((no_sanitize("address"))) void hv_fault_forward(struct hv_fault_rec *f)
{
	volatile uint64_t *ist = (uint64_t *)(uintptr_t)f->frame_at;
	const uint64_t *w = &f->frame.error;

	for (int i = 0; i < 6; i++)
		ist[i] = w[i];
	__asm__ volatile("mov %0, %%cr2" : : "r"(f->cr2) : "memory");
}

extern const char hv_guest_fault_entry[];

uint64_t hv_vcpu_fault_entry(struct hv_vcpu *vc, hv_regs *r, struct hv_fault_rec *f)
{
	struct hv_fault_cfg *c = fault_cfg(vc);
	uint64_t sp = (f->frame.rsp - HV_RED_ZONE - HV_FAULT_REC) & ~15ull;

	if (!hv_guest_pf_fast || sp < c->lo || sp >= c->hi)
		return 0;
	f->frame_at = (uintptr_t)vc->area + HV_AREA_IST + HV_IST_SIZE - sizeof(f->frame);
	f->cfg = c;
	f->frame.cs = SEL_CODE;
	f->frame.ss = SEL_DATA;
	r->rsp = sp;
	r->rip = (uintptr_t)hv_guest_fault_entry;
	r->rflags = f->frame.rflags;
	return sp;
}
