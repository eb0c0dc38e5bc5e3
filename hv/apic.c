/* SPDX-License-Identifier: MIT */
/*
 * Interrupts for vthreads on kvm_intel and kvm_amd: KVM's local APIC in the
 * kernel (the split irqchip: no PIC, IOAPIC or PIT), in x2APIC mode, where the
 * guest reaches it with wrmsr and KVM answers without leaving the kernel. A
 * poke is a fixed interrupt to a vCPU's APIC: KVM_SIGNAL_MSI from a host
 * thread, an ICR write from a vthread. A vthread's timer is its APIC timer,
 * one-shot, which the guest arms for each expiry (the APIC's periodic mode is
 * held to KVM's min_timer_period_us, 200 µs by default).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

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

void hv_guest_timer(uint64_t ns)
{
	guest_wrmsr(MSR_X2APIC_TMICT, ns > HV_TIMER_MAX ? HV_TIMER_MAX : ns);
}
