/* SPDX-License-Identifier: MIT */
/*
 * Interrupts for vthreads on kvm_intel and kvm_amd: KVM's local APIC in the
 * kernel (the split irqchip: no PIC, IOAPIC or PIT), in x2APIC mode, where the
 * guest reaches it with wrmsr and KVM answers without leaving the kernel. A
 * poke is a fixed interrupt to a vCPU's APIC: KVM_SIGNAL_MSI from a host
 * thread, an ICR write from a vthread. A vthread's timer is its APIC timer,
 * one-shot, which the guest arms for each expiry (the APIC's periodic mode is
 * held to KVM's min_timer_period_us, 200 µs by default).
 *
 * kvm_pvm runs the guest at CPL3, where `cli`, `sti` and `popfq` do not reach
 * the IF its interrupts obey (they trap, ~3 µs each, and change nothing): that
 * is the first byte of the vCPU area (hv->vif), which delivery clears and
 * `iretq` sets from the frame (pushed as the byte was). `syscall` clears it too
 * and keeps nothing of it, MSR_SYSCALL_MASK or not: the guest keeps a copy of
 * the byte outside system calls and handlers in its ring slot (irq_on), from
 * which the ring stub and sysret's emulation (hv/kvm.c) set it again. KVM
 * reads the byte only as it enters the guest: an interrupt that came while it
 * was 0 waits after it is 1 until the next entry, which may be the host's next
 * tick (~2.5 ms measured), so turning it on makes KVM enter (kick) when a poke
 * was sent (the slot's kick, set before the poke) or the timer is due (the
 * slot's timer, in TSC ticks). Every x2APIC access there traps into KVM
 * (~3 µs), never out to user space.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <x86intrin.h>

#include "hv.h"
#include "x86.h"

#define APICBASE_EXTD	(1ull << 10)	/* x2APIC mode */
#define APICBASE_EN	(1ull << 11)
#define SVR_ENABLE	0x100
#define TDCR_DIV1	0xb		/* KVM's APIC bus: 1 ns a tick at divide-by-1 */
#define ICR_ASSERT	0x4000
#define MSI_ADDRESS	0xfee00000u

/*
 * kvm_amd without NRIP save (only CPU emulators lack it) must decode a WRMSR
 * to skip it, which the fast path that takes ICR writes does without the
 * locks guest memory needs (KVM stopped doing so in 6.5, "Skip WRMSR fastpath
 * on VM-Exit if next RIP isn't valid"): there a vthread pokes through a host
 * call instead.
 */
static bool nrips_off(void)
{
	char c = 0;
	int fd = open("/sys/module/kvm_amd/parameters/nrips", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c == '0' || c == 'N';
}

/* 32-bit APIC IDs in MSIs (vCPU ids past 255); then the APICs. */
int hv_irqchip_create(struct hv *hv)
{
	struct kvm_enable_cap ids = {
		.cap = KVM_CAP_X2APIC_API,
		.args[0] = KVM_X2APIC_API_USE_32BIT_IDS,
	};
	struct kvm_enable_cap split = { .cap = KVM_CAP_SPLIT_IRQCHIP };	/* no IOAPIC pins */

	if (ioctl(hv->vm_fd, KVM_ENABLE_CAP, &ids) < 0 ||
	    ioctl(hv->vm_fd, KVM_ENABLE_CAP, &split) < 0)
		return -errno;
	hv->irqchip = true;
	hv->guest_ipi = !nrips_off();
	return 0;
}

/* After the vCPU's CPUID (which has x2APIC: KVM emulates it): x2APIC mode,
 * software-enabled, the timer one-shot on its vector; kept for the resets. */
int hv_vcpu_irq_setup(struct hv_vcpu *vc)
{
	uint64_t base;
	int r = hv_get_msr(vc, MSR_IA32_APICBASE, &base);

	base |= APICBASE_EN | APICBASE_EXTD;
	vc->sregs.apic_base = base;	/* KVM_SET_SREGS sets it too */
	if (!r)
		r = hv_set_msr(vc, MSR_IA32_APICBASE, base);
	if (!r)
		r = hv_set_msr(vc, MSR_X2APIC_SVR, SVR_ENABLE | HV_VECTOR_SPURIOUS);
	if (!r)
		r = hv_set_msr(vc, MSR_X2APIC_LVT_TIMER, HV_VECTOR_TIMER);
	if (!r)
		r = hv_set_msr(vc, MSR_X2APIC_TDCR, TDCR_DIV1);
	if (r < 0)
		return r;
	/* With a local APIC in the kernel, KVM starts every vCPU but the first
	 * waiting for INIT and SIPI: this one runs at once, as without. */
	if (ioctl(vc->fd, KVM_SET_MP_STATE, &(struct kvm_mp_state){ KVM_MP_STATE_RUNNABLE }) < 0)
		return -errno;
	vc->lapic = malloc(sizeof(*vc->lapic));
	if (!vc->lapic)
		return -ENOMEM;
	return ioctl(vc->fd, KVM_GET_LAPIC, vc->lapic) < 0 ? -errno : 0;
}

int hv_vcpu_irq_reset(struct hv_vcpu *vc)
{
	return ioctl(vc->fd, KVM_SET_LAPIC, vc->lapic) < 0 ? -errno : 0;
}

int hv_vcpu_poke(struct hv_vcpu *vc)
{
	struct kvm_msi msi = {
		.address_lo = MSI_ADDRESS | (vc->id & 0xff) << 12,
		.address_hi = vc->id & ~0xffu,
		.data = HV_VECTOR_POKE,	/* fixed, edge */
	};

	return ioctl(vc->hv->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

static void guest_wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
			 : "memory");
}

void hv_guest_poke(int id)
{
	guest_wrmsr(MSR_X2APIC_ICR, (uint64_t)id << 32 | ICR_ASSERT | HV_VECTOR_POKE);
}

volatile uint8_t *hv_vcpu_vif(struct hv_vcpu *vc)
{
	return (volatile uint8_t *)vc->area + HV_AREA_PVM;
}

void hv_guest_irq_off(struct hv_vcpu *vc)
{
	if (vc->hv->vif)
		*hv_vcpu_vif(vc) = hv_vcpu_ring(vc)->irq_on = 0;
	else
		__asm__ volatile("cli" : : : "memory");
}

/* A read of the task priority: KVM emulates it and enters the guest again. */
static void kick(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(MSR_X2APIC_TPR) : "memory");
}

/* Where hv->vif, KVM delivers what waited only as it next enters the guest:
 * made to enter when a poke may wait or the timer is due. guest.S's ring stub
 * does the same after a call. */
void hv_guest_irq_on(struct hv_vcpu *vc)
{
	struct hv_ring_slot *s = hv_vcpu_ring(vc);

	if (!vc->hv->vif) {
		__asm__ volatile("sti; nop" : : : "memory");	/* what waited runs after the nop */
		return;
	}
	*hv_vcpu_vif(vc) = s->irq_on = 1;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);	/* then the look at what waits */
	if (__atomic_load_n(&s->kick, __ATOMIC_SEQ_CST) || __rdtsc() >= s->timer)
		kick();
}

bool hv_guest_irq_save(struct hv_vcpu *vc)
{
	unsigned long f;
	bool on;

	if (vc->hv->vif) {
		on = hv_vcpu_ring(vc)->irq_on;
		hv_guest_irq_off(vc);
		return on;
	}
	__asm__ volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
	return f & RFLAGS_IF;
}

void hv_vcpu_poke_mark(struct hv_vcpu *vc)
{
	if (vc->hv->vif)
		__atomic_store_n(&hv_vcpu_ring(vc)->kick, 1, __ATOMIC_SEQ_CST);
}

void hv_guest_handler_enter(struct hv_vcpu *vc, int source)
{
	struct hv_ring_slot *s = hv_vcpu_ring(vc);

	if (!vc->hv->vif)
		return;
	s->irq_on = 0;
	if (source == HV_IRQ_POKE)	/* those sent from now on mark it again */
		__atomic_store_n(&s->kick, 0, __ATOMIC_SEQ_CST);
	else if (source == HV_IRQ_TIMER)
		s->timer = ~0ull;	/* until armed again */
}

void hv_guest_handler_leave(struct hv_vcpu *vc, uint64_t rflags)
{
	if (vc->hv->vif)
		hv_vcpu_ring(vc)->irq_on = !!(rflags & RFLAGS_IF);
}

void hv_guest_timer(struct hv_vcpu *vc, uint64_t ns)
{
	if (ns > HV_TIMER_MAX)
		ns = HV_TIMER_MAX;
	if (vc->hv->vif)
		hv_vcpu_ring(vc)->timer = ns ? __rdtsc() + ns * vc->hv->tsc_khz / 1000000 : ~0ull;
	guest_wrmsr(MSR_X2APIC_TMICT, ns);
}
