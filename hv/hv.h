/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor interface: one VM per process, vCPUs that run guest code at
 * CPL0 with GVA == HVA. Backends (kvm_pvm, kvm_intel, kvm_amd) differ only
 * behind this header. Functions return 0 or -errno and never print.
 */
#ifndef HV_H
#define HV_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <linux/kvm.h>
#include "guest_abi.h"

/* Guest-side entry points (hv/guest.S). */
extern const char hv_guest_syscall[];	/* MSR_LSTAR: forward a system call */
extern const char hv_guest_start[];	/* a vthread's entry: FS and GS base, FPU, start routine */
extern const char hv_guest_return[];	/* return address of a vthread's start routine */
extern const char hv_guest_vectors[];	/* 32 exception stubs, HV_VECTOR_STUB bytes apart */
extern const char hv_guest_probe[];	/* a timed loop proving native execution */
void hv_guest_end(void *retval) __attribute__((noreturn));
void hv_guest_null_exit(void);	/* in a vthread: one empty exit (bench/) */
extern const char hv_guest_syscall_null[];	/* MSR_LSTAR returning at once (bench/) */
extern const char hv_guest_syscall_ring[];	/* MSR_LSTAR in ring mode */
/* A rewritten `syscall`'s trampoline, copied per site: the rel32 that ends at
 * hv_tramp_site and the one that ends at hv_tramp_back name the site's return
 * address, the 8 bytes at hv_tramp_ring the ring stub. */
extern const char hv_tramp[], hv_tramp_site[], hv_tramp_back[], hv_tramp_ring[], hv_tramp_end[];
extern uint8_t hv_ring_calls[HV_RING_NR_MAX / 8];
extern uint64_t hv_ring_spin, hv_ring_stale;
extern volatile uint32_t hv_ring_awake;
extern volatile uint64_t hv_ring_beat;
/* Page faults: the #PF stub hands faults on a vthread's stack to hv_guest_fault_entry
 * while hv_guest_pf_fast is set; the entry saves the FPU state with XSAVE (or
 * FXSAVE when hv_guest_xsave is 0) in hv_guest_xsave_size bytes. */
extern uint32_t hv_guest_pf_fast, hv_guest_xsave;
extern uint64_t hv_guest_xsave_size;
/* A sandbox's code page, copied (guest_abi.h, HV_SB_*). */
extern const char hv_sb_code[], hv_sb_code_end[];

/* A call vthread_hostcall() asks the backing thread to make (hv_guest_hostcall). */
struct hv_hostcall;
void hv_guest_hostcall(struct hv_hostcall *call);

/* The per-vCPU ring slot; offsets in guest_abi.h. */
struct hv_ring_slot {
	uint32_t state;
	uint32_t nr;
	int64_t ret;
	uint64_t args[6];
	uint64_t deadline;
	unsigned long *served;	/* the host's: the vthread's count of calls served */
	uint64_t yielded;	/* the host's: TSC of the vthread's last real sched_yield */
	uint64_t site;
	uint8_t direct;
	uint8_t irq_on;
	uint8_t kick;
	uint64_t timer;
	char pad[HV_RING_SIZE - 112];
} __attribute__((aligned(64)));
_Static_assert(__builtin_offsetof(struct hv_ring_slot, args) == HV_RING_ARG0, "ring slot");
_Static_assert(__builtin_offsetof(struct hv_ring_slot, deadline) == HV_RING_DEADLINE, "ring slot");
_Static_assert(__builtin_offsetof(struct hv_ring_slot, site) == HV_RING_SITE, "ring slot");
_Static_assert(__builtin_offsetof(struct hv_ring_slot, direct) == HV_RING_DIRECT, "ring slot");
_Static_assert(__builtin_offsetof(struct hv_ring_slot, irq_on) == HV_RING_IRQ_ON, "ring slot");
_Static_assert(__builtin_offsetof(struct hv_ring_slot, kick) == HV_RING_KICK, "ring slot");
_Static_assert(__builtin_offsetof(struct hv_ring_slot, timer) == HV_RING_TIMER, "ring slot");
_Static_assert(sizeof(struct hv_ring_slot) == HV_RING_SIZE, "ring slot");

/* Per vCPU, in its area: where the #PF stub may hand a fault to the guest. */
struct hv_fault_cfg {
	uint64_t lo, hi;	/* the vthread's stack, as the stub may use it */
	volatile uint8_t held;	/* signals wait for an exit (rt_signal_pending) */
};

/* The interrupt frame the CPU pushed on the IST stack. */
struct hv_frame {
	uint64_t error;		/* 0 for vectors without an error code */
	uint64_t rip, cs, rflags, rsp, ss;
};

/*
 * What the #PF stub leaves on the vthread's stack, below the red zone, for
 * rt_guest_fault (called by hv_guest_fault_entry, in the guest): the
 * interrupted code's registers and fault. Setting frame_at to 0 resumes the
 * access; else hv_fault_forward has put the frame back and the fault exits as
 * any page fault does.
 */
struct hv_fault_rec {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t frame_at;	/* the frame on the IST stack */
	uint64_t cr2;
	struct hv_fault_cfg *cfg;
	uint64_t injected;	/* by the runtime, for a page the process has not mapped */
	struct hv_frame frame;
};
_Static_assert(__builtin_offsetof(struct hv_fault_rec, frame_at) == 15 * 8, "fault record");
_Static_assert(sizeof(struct hv_fault_rec) - 15 * 8 == HV_FAULT_REC, "fault record");
void rt_guest_fault(struct hv_fault_rec *f);
/* In the guest: makes the fault f exit as the stub would have. */
void hv_fault_forward(struct hv_fault_rec *f);

/*
 * What an interrupt stub leaves on the interrupted code's stack, below its red
 * zone, for rt_guest_irq (called by hv_guest_irq_entry, in the guest, with
 * interrupts off): the code's registers, the source, and the frame `iretq`
 * returns with (its rflags may be changed).
 */
struct hv_irq_rec {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
	struct hv_fault_cfg *cfg;	/* held: signals wait for an exit */
	uint64_t source;		/* HV_IRQ_POKE or HV_IRQ_TIMER */
	uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct hv_irq_rec) - 15 * 8 == HV_IRQ_REC, "interrupt record");
void rt_guest_irq(struct hv_irq_rec *q);

/* Guest-visible per-vCPU memory, page aligned, supplied by the caller. */
#define HV_VCPU_AREA_SIZE	(4 * 4096)
/* Guest-visible per-VM IDT, supplied by the caller. */
#define HV_IDT_SIZE		4096

typedef struct kvm_regs hv_regs;

/*
 * In KVM_RUN a backing thread holds HV_RUN_MARK in R9 and its kvm_run in R8:
 * a debugger that stops it there (hv/libvthread-gdb.py.in) finds the guest's
 * registers in kvm_run->s.regs, which KVM fills as KVM_RUN returns.
 */
#define HV_RUN_MARK	0x6e75722d6d766b76ull	/* "vkvm-run" */

enum hv_exit_kind {
	HV_EXIT_SYSCALL,	/* guest executed `syscall`: number and args in regs */
	HV_EXIT_EXCEPTION,	/* CPU exception; vector and frame in the exit */
	HV_EXIT_END,		/* the start routine returned; RAX holds its value */
	HV_EXIT_PROBE,		/* end of hv_guest_probe */
	HV_EXIT_NULL,		/* hv_guest_null_exit: resume as is */
	HV_EXIT_RING,		/* the ring stub gave up waiting, or was bounced */
	HV_EXIT_HOSTCALL,	/* hv_guest_hostcall: RDI = the call; resume as is */
	HV_EXIT_SIGNAL,		/* KVM_RUN interrupted by a host signal (regs not read) */
	HV_EXIT_EFAULT,		/* guest touched host memory it may not (address unknown) */
	HV_EXIT_FAIL,		/* triple fault, entry failure, internal error, unknown */
};

/* The registers of the code an exception interrupted: the stub's, with the frame's. */
static inline void hv_regs_from_frame(hv_regs *r, const struct hv_frame *f)
{
	r->rip = f->rip;
	r->rsp = f->rsp;
	r->rflags = f->rflags;
}

/* Leaves a guest's `syscall` with ret, as sysret would: after the `syscall`
 * (RCX), flags from R11. */
static inline void hv_regs_sysret(hv_regs *r, long ret)
{
	r->rax = ret;
	r->rip = r->rcx;
	r->rflags = r->r11;
}

/* Leaves it so that the call is made again: back at the `syscall`, RAX its number. */
static inline void hv_regs_restart_syscall(hv_regs *r, long nr)
{
	hv_regs_sysret(r, nr);
	r->rip -= HV_SYSCALL_LEN;
}

struct hv_exit {
	enum hv_exit_kind kind;
	int vector;		/* HV_EXIT_EXCEPTION */
	uint64_t cr2;		/* HV_EXIT_EXCEPTION, vector 14 */
	struct hv_frame frame;	/* HV_EXIT_EXCEPTION */
	uint64_t gpa;		/* HV_EXIT_FAIL of reason KVM_EXIT_MMIO: the address */
	uint32_t reason;	/* KVM exit reason, for reports */
	int err;		/* errno of a failed KVM_RUN */
	hv_regs regs;	/* the guest's registers, for every kind but SIGNAL */
};

struct hv {
	int kvm_fd, vm_fd;
	const struct hv_backend *be;
	int run_size;
	int max_vcpus;
	bool huge_1g;			/* 1 GiB guest pages work */
	bool guest_xsave;		/* guests may execute XSAVE */
	bool irqchip;			/* in-kernel local APICs: interrupts (apic.c) */
	bool vif;			/* the guest's IF is a byte of its vCPU area
					 * (kvm_pvm), not RFLAGS.IF (apic.c) */
	uint64_t tsc_khz;		/* KVM_GET_TSC_KHZ: the vCPUs' and the host's (no
					 * scaling is asked for); 0 if unknown, where
					 * every armed vif timer looks due */
	bool guest_ipi;			/* guests may write the ICR (hv_guest_poke) */
	bool readonly_mem;		/* KVM_CAP_READONLY_MEM: read-only memslots */
	bool sync_regs;			/* KVM_CAP_SYNC_REGS: kvm_run holds the guest's
					 * registers after every KVM_RUN */
	struct kvm_cpuid2 *cpuid;	/* what guests are given */
};

struct hv_vcpu {
	int fd, id;
	struct kvm_run *run;
	struct hv *hv;
	void *area;			/* HV_VCPU_AREA_SIZE of guest memory */
	struct kvm_sregs sregs;		/* as last set */
	bool ring_entry;		/* MSR_LSTAR is hv_guest_syscall_ring */
	bool direct;			/* and the slot's direct flag may be set */
	uint32_t pkru_offset;		/* of PKRU in the XSAVE area; 0: no CR4.PKE */
	volatile uint32_t in_run;	/* in KVM_RUN (the runtime's dispatch loop) */
	uint64_t ran_gen;		/* mm's flush_gen when it last left KVM_RUN */
	struct kvm_lapic_state *lapic;	/* its APIC as set up, for hv_vcpu_irq_reset */
	uint64_t sigmask;		/* as last set, if sigmask_set */
	bool sigmask_set;
};

/* Where guest memory sits, for the vCPU's architectural setup. */
struct hv_layout {
	uint64_t cr3;		/* GPA of the PML4 */
	void *idt;		/* HV_IDT_SIZE bytes, filled by hv_idt_fill */
	uint64_t area_gpa;	/* GPA of the vCPU area */
	uint64_t code;		/* a sandbox's copy of hv_sb_code; 0: hv/guest.S */
};

struct hv_backend {
	const char *name;
	uint64_t pte_user;	/* U bit for every guest paging entry (0 or 1 << 2) */
	bool ring0;		/* guest CPL0 is hardware CPL0 (not deprivileged) */
	bool vif;		/* ... held by the area's IF byte (hv->vif) */
	/* Returns 1 if this backend serves the VM whose first vCPU is given. */
	int (*detect)(struct hv *hv, struct hv_vcpu *vc);
	int (*vcpu_setup)(struct hv_vcpu *vc, const struct hv_layout *lay);
};

extern const struct hv_backend hv_backend_pvm, hv_backend_vmx, hv_backend_svm;

/* stub.c: where a stopped vCPU stands in the guest stubs */
enum hv_stub {
	HV_STUB_NONE,		/* the process's own code */
	HV_STUB_SYSCALL,	/* the exit path's entry, its exit not yet taken */
	HV_STUB_RING,		/* the ring stub: see hv_ring_unwind */
	HV_STUB_VECTOR,		/* an exception stub, on the IST stack */
};
enum hv_stub hv_stub_at(uint64_t rip);
enum hv_ring_stop {
	HV_RING_STOP_UNPOSTED,	/* nothing posted: the registers are the `syscall`'s */
	HV_RING_STOP_POSTED,	/* posted: the slot's state says who has the call */
	HV_RING_STOP_DONE,	/* RAX is the result; the slot is free again */
};
/*
 * For a vCPU stopped in the ring stub: puts back what the stub changed, so that
 * r holds the guest's registers as at its `syscall` (RAX the number) or, when
 * the result is in, as after it but for the return itself (hv_regs_sysret).
 */
enum hv_ring_stop hv_ring_unwind(struct hv_vcpu *vc, hv_regs *r);

/* kvm.c: the KVM plumbing shared by all backends */
int hv_open(struct hv *hv, const char *dev, struct hv_vcpu *first, char *why, size_t whylen);
void hv_close(struct hv *hv);
/* Another VM on parent's KVM and backend, with no vCPU and no local APICs
 * (a sandbox's); hv_close closes it. */
int hv_open_sibling(struct hv *hv, const struct hv *parent);
const struct kvm_cpuid_entry2 *hv_cpuid_leaf(const struct hv *hv, uint32_t fn, uint32_t index);
/* size 0 deletes the slot; flags: KVM_MEM_LOG_DIRTY_PAGES or 0 */
int hv_set_memslot(struct hv *hv, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
		   uint32_t flags);
/* The slot's pages written by guests since the last call, one bit per page; clears it. */
int hv_get_dirty_log(struct hv *hv, uint32_t slot, uint64_t *bitmap);
int hv_vcpu_create(struct hv *hv, struct hv_vcpu *vc, int id);
void hv_vcpu_destroy(struct hv_vcpu *vc);
int hv_vcpu_run(struct hv_vcpu *vc, struct hv_exit *ex);
/* A sandbox's vCPU. Once: KVM's paravirtual MSRs follow its CPUID, which has
 * no KVM leaves. Before each run: debug registers, pending events and those
 * MSRs as at reset, so that one run leaves nothing armed for the next. */
int hv_vcpu_confine(struct hv_vcpu *vc);
int hv_vcpu_scrub(struct hv_vcpu *vc);
/* Ends what KVM keeps pending from the last exit (an access it emulates
 * on the next KVM_RUN), so that registers set now are the ones that run. */
int hv_vcpu_settle(struct hv_vcpu *vc);
int hv_vcpu_get_regs(struct hv_vcpu *vc, hv_regs *r);
int hv_vcpu_set_regs(struct hv_vcpu *vc, const hv_regs *r);
int hv_vcpu_set_fs_base(struct hv_vcpu *vc, uint64_t base);
int hv_vcpu_reset_fpu(struct hv_vcpu *vc);
/* The signals KVM_RUN lets interrupt the guest are those not in mask (bit n-1 = signal n). */
int hv_vcpu_set_sigmask(struct hv_vcpu *vc, uint64_t mask);
int hv_vcpu_get_xsave(struct hv_vcpu *vc, struct kvm_xsave *x);
int hv_vcpu_set_xsave(struct hv_vcpu *vc, const struct kvm_xsave *x);
int hv_get_msr(struct hv_vcpu *vc, uint32_t index, uint64_t *val);
int hv_set_msr(struct hv_vcpu *vc, uint32_t index, uint64_t val);
/* n (at most HV_MSRS_MAX) MSRs, in order, with one ioctl: each vCPU ioctl
 * costs ~5 us on kvm_pvm, and a sandbox's every run rewrites several. */
#define HV_MSRS_MAX	8
int hv_set_msrs(struct hv_vcpu *vc, const struct kvm_msr_entry *e, unsigned n);

/*
 * apic.c: interrupts, where hv->irqchip. Before the VM's first vCPU: its local
 * APICs (0, or -errno and none).
 */
int hv_irqchip_create(struct hv *hv);
int hv_vcpu_irq_setup(struct hv_vcpu *vc);	/* x2APIC mode, the vectors */
int hv_vcpu_irq_reset(struct hv_vcpu *vc);	/* as set up: nothing pending, no timer */
int hv_vcpu_poke(struct hv_vcpu *vc);		/* from the host: the poke vector */
/* In the guest: the poke vector to vCPU id; the vCPU's own timer, in ns from
 * now (0 stops it; at most HV_TIMER_MAX, a longer wait needs another). */
void hv_guest_poke(int id);
void hv_guest_timer(struct hv_vcpu *vc, uint64_t ns);
#define HV_TIMER_MAX	0xffffffffull

/*
 * In the guest: interrupts off; on, and what waited meanwhile delivered; off,
 * saying whether they were on. Where hv->vif, a poke sent to it must mark its
 * slot first (hv_vcpu_poke_mark).
 */
volatile uint8_t *hv_vcpu_vif(struct hv_vcpu *vc);	/* where hv->vif: the IF byte */
void hv_guest_irq_off(struct hv_vcpu *vc);
void hv_guest_irq_on(struct hv_vcpu *vc);
bool hv_guest_irq_save(struct hv_vcpu *vc);
void hv_vcpu_poke_mark(struct hv_vcpu *vc);
/* In the guest, around an interrupt's handler (source) or a fault's (0): where
 * hv->vif, a `syscall` there leaves interrupts off, and after, as the frame's
 * RFLAGS say. */
void hv_guest_handler_enter(struct hv_vcpu *vc, int source);
void hv_guest_handler_leave(struct hv_vcpu *vc, uint64_t rflags);

/* x86.c: architectural guest state common to all backends */
void hv_idt_fill(void *idt);
/* A sandbox's IDT: the 32 exception stubs of its code page at code, no interrupts. */
void hv_idt_fill_sandbox(void *idt, uint64_t code);
int hv_vcpu_setup(struct hv_vcpu *vc, const struct hv_layout *lay);
/* hv_vcpu_setup but for CPUID, again: the architectural state a guest at CPL0
 * may have changed (descriptor tables, control registers, MSRs, FPU). */
int hv_vcpu_rearm(struct hv_vcpu *vc, const struct hv_layout *lay);
/* 0 if the vCPU runs natively (not instruction by instruction); *ns = best loop time */
int hv_vcpu_probe_native(struct hv_vcpu *vc, long *ns);
/* The best of three empty exits, in ns: what any exit costs at least. */
int hv_vcpu_exit_cost(struct hv_vcpu *vc, long *ns);
/* This vCPU's ring slot, which the guest addresses through GS. */
struct hv_ring_slot *hv_vcpu_ring(struct hv_vcpu *vc);
/* MSR_LSTAR: the ring stub, or the stub that exits for every call. direct: a
 * rewritten `syscall` (hv_tramp) goes to the ring stub without the trap. */
int hv_vcpu_set_syscall_entry(struct hv_vcpu *vc, bool ring, bool direct);
/* on: MSR_LSTAR is hv_guest_syscall_null; off: the entry set above, again. */
int hv_vcpu_set_syscall_null(struct hv_vcpu *vc, bool on);
/* The guest's own GS base, until the vCPU's next hv_vcpu_start. */
int hv_vcpu_set_gs_base(struct hv_vcpu *vc, uint64_t base);
/* The stack on which the #PF stub may hand faults to the guest's handler. */
void hv_vcpu_set_fault_stack(struct hv_vcpu *vc, uint64_t lo, uint64_t hi);
/* Signals wait: the fault path exits at its next step. */
void hv_vcpu_fault_held(struct hv_vcpu *vc);
/*
 * Points r at hv_guest_fault_entry for the fault f (error, cr2 and frame set),
 * on its stack as the #PF stub would: fills in the rest of f and returns where
 * its HV_FAULT_REC bytes from frame_at go, or 0 where the stub would not.
 */
uint64_t hv_vcpu_fault_entry(struct hv_vcpu *vc, hv_regs *r, struct hv_fault_rec *f);
/* Points the vCPU at fn(arg) on the given stack, returning to hv_guest_return;
 * fpu: MXCSR, and the x87 control word << 32. */
int hv_vcpu_start(struct hv_vcpu *vc, void *(*fn)(void *), void *arg,
		  void *stack_top, uint64_t fs_base, uint64_t fpu);

#endif
