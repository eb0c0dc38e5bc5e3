/* SPDX-License-Identifier: MIT */
/*
 * kvm_pvm as found on our development machines (shared/docs/PLATFORM.md): guest
 * supervisor code runs at hardware CPL3 on shadow page tables. Native execution
 * needs the control MSR pointed at a shared page with flag 0x400, and U=1 in
 * every paging entry; exceptions arrive through the ordinary IDT. KVM's local
 * APIC works as on kvm_intel, but for the guest's IF (hv/apic.c).
 */
#include "hv.h"
#include "x86.h"

#define MSR_PVM_CONTROL	0x4b564d10
#define MSR_PVM_ID	0x4b564d11
#define PVM_ID		0x4d5650ull	/* "PVM" */
#define PVM_NATIVE	0x400ull

static int pvm_detect(struct hv *hv, struct hv_vcpu *vc)
{
	uint64_t id;

	(void)hv;
	return hv_get_msr(vc, MSR_PVM_ID, &id) == 0 && id == PVM_ID;
}

static int pvm_vcpu_setup(struct hv_vcpu *vc, const struct hv_layout *lay)
{
	/* XSAVE is not emulated: the guest runs with the host's XCR0 (PLATFORM.md 2). */
	vc->hv->guest_xsave = true;
	if (vc->hv->irqchip) {
		int r = hv_vcpu_irq_setup(vc);

		if (r < 0)
			return r;
	}
	/* Refused (silently, by KVM) when the page has no memslot. */
	return hv_set_msr(vc, MSR_PVM_CONTROL, (lay->area_gpa + HV_AREA_PVM) | PVM_NATIVE);
}

const struct hv_backend hv_backend_pvm = {
	.name = "kvm-pvm",
	.pte_user = 1ull << 2,
	.detect = pvm_detect,
	.vcpu_setup = pvm_vcpu_setup,
	.vif = true,
};
