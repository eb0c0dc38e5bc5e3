/* SPDX-License-Identifier: MIT */
/*
 * kvm_intel and kvm_amd: hardware virtualisation, so guest CPL0 is real ring 0
 * and supervisor pages have U=0. The guest runs the process's code, whose
 * string and memory functions glibc picked for the host CPU (AVX and up), so
 * the guest gets the host's XCR0 wherever KVM allows it.
 */
#include <cpuid.h>
#include <errno.h>
#include <sys/ioctl.h>

#include "hv.h"
#include "x86.h"

static int is_amd(const struct hv *hv)
{
	const struct kvm_cpuid_entry2 *l0 = hv_cpuid_leaf(hv, 0, 0);

	/* "AuthenticAMD", "HygonGenuine" */
	return l0 && (l0->ebx == 0x68747541 || l0->ebx == 0x6f677948);
}

static int svm_detect(struct hv *hv, struct hv_vcpu *vc)
{
	(void)vc;
	return is_amd(hv);
}

static int vmx_detect(struct hv *hv, struct hv_vcpu *vc)
{
	(void)vc;
	return !is_amd(hv);
}

static uint64_t host_xcr0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

/*
 * The guest's vDSO turns rdtsc into time with the host's clock data (mirrored
 * memory), so the guest's TSC must be the host's, not one that started at 0
 * with the VM: offset 0, or on kernels before 5.16 the host's TSC written in.
 */
static int host_tsc(struct hv_vcpu *vc)
{
	uint64_t offset = 0;
	struct kvm_device_attr a = {
		.group = KVM_VCPU_TSC_CTRL,
		.attr = KVM_VCPU_TSC_OFFSET,
		.addr = (uint64_t)(uintptr_t)&offset,
	};

	if (ioctl(vc->fd, KVM_SET_DEVICE_ATTR, &a) == 0)
		return 0;
	return hv_set_msr(vc, MSR_IA32_TSC, __builtin_ia32_rdtsc());
}

/* The host kernel enabled protection keys (CPUID.7.ECX.OSPKE). */
static bool host_ospke(void)
{
	unsigned a, b, c, d;

	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 4));
}

/*
 * Protection keys, where KVM and the host have them: glibc's pkey_get and
 * pkey_set execute RDPKRU and WRPKRU, which raise #UD without CR4.PKE, and a
 * program that got a key from pkey_alloc() (on the host) uses them. Guest
 * pages are supervisor pages, which PKRU does not restrict.
 */
static void enable_pkeys(struct hv_vcpu *vc, uint64_t xcr0)
{
	const struct kvm_cpuid_entry2 *l7 = hv_cpuid_leaf(vc->hv, 7, 0);
	const struct kvm_cpuid_entry2 *pk = hv_cpuid_leaf(vc->hv, 0xd, 9);

	if (l7 && (l7->ecx & (1u << 3)) && pk && pk->ebx && (xcr0 & XFEATURE_PKRU) && host_ospke()) {
		vc->sregs.cr4 |= CR4_PKE;
		vc->pkru_offset = pk->ebx;
	}
}

static int std_vcpu_setup(struct hv_vcpu *vc, const struct hv_layout *lay)
{
	const struct kvm_cpuid_entry2 *l1 = hv_cpuid_leaf(vc->hv, 1, 0);
	const struct kvm_cpuid_entry2 *xs = hv_cpuid_leaf(vc->hv, 0xd, 0);
	struct kvm_xcrs xcrs = { .nr_xcrs = 1 };
	uint64_t xcr0;
	int r;

	(void)lay;
	r = host_tsc(vc);
	if (!r && vc->hv->irqchip)
		r = hv_vcpu_irq_setup(vc);
	if (r < 0)
		return r;
	/* CPUID.OSXSAVE is not in KVM's supported set: it follows the guest's CR4. */
	if (!l1 || !(l1->ecx & (1u << 26)) || !xs)
		return 0;	/* no XSAVE for the guest: SSE only */
	xcr0 = host_xcr0() & ((uint64_t)xs->edx << 32 | xs->eax);
	vc->sregs.cr4 |= CR4_OSXSAVE;
	vc->hv->guest_xsave = true;
	enable_pkeys(vc, xcr0);
	if (ioctl(vc->fd, KVM_SET_SREGS, &vc->sregs) < 0)
		return -errno;
	xcrs.xcrs[0].xcr = 0;
	xcrs.xcrs[0].value = xcr0;
	return ioctl(vc->fd, KVM_SET_XCRS, &xcrs) < 0 ? -errno : 0;
}

const struct hv_backend hv_backend_svm = {
	.name = "kvm-svm",
	.pte_user = 0,
	.ring0 = true,
	.detect = svm_detect,
	.vcpu_setup = std_vcpu_setup,
};

const struct hv_backend hv_backend_vmx = {
	.name = "kvm-vmx",
	.pte_user = 0,
	.ring0 = true,
	.detect = vmx_detect,
	.vcpu_setup = std_vcpu_setup,
};
