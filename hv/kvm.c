/* SPDX-License-Identifier: MIT */
/* KVM plumbing shared by every backend: the VM, memslots, vCPUs and KVM_RUN. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hv.h"
#include "x86.h"

static int why_set(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

static int supported_cpuid(struct hv *hv)
{
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

	if (!c)
		return -ENOMEM;
	c->nent = n;
	if (ioctl(hv->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int err = -errno;

		free(c);
		return err;
	}
	hv->cpuid = c;
	return 0;
}

const struct kvm_cpuid_entry2 *hv_cpuid_leaf(const struct hv *hv, uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < hv->cpuid->nent; i++)
		if (hv->cpuid->entries[i].function == fn && hv->cpuid->entries[i].index == index)
			return &hv->cpuid->entries[i];
	return NULL;
}

/* Most specific first: PVM answers an MSR probe; the vendor modules follow the CPU. */
static const struct hv_backend *const backends[] = {
	&hv_backend_pvm, &hv_backend_svm, &hv_backend_vmx,
};

int hv_open(struct hv *hv, const char *dev, struct hv_vcpu *first, char *why, size_t whylen)
{
	int r;

	memset(hv, 0, sizeof(*hv));
	hv->vm_fd = -1;
	hv->kvm_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (hv->kvm_fd < 0)
		return why_set(why, whylen, -errno, "cannot open %s: %s", dev, strerror(errno));
	r = ioctl(hv->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		r = why_set(why, whylen, -ENOSYS, "%s has KVM API version %d, not %d", dev, r,
			    KVM_API_VERSION);
		goto err;
	}
	hv->vm_fd = ioctl(hv->kvm_fd, KVM_CREATE_VM, 0);
	if (hv->vm_fd < 0) {
		r = why_set(why, whylen, -errno, "KVM_CREATE_VM: %s", strerror(errno));
		goto err;
	}
	hv->run_size = ioctl(hv->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	r = ioctl(hv->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	hv->sync_regs = r > 0 && (r & KVM_SYNC_X86_REGS);
	hv->readonly_mem = ioctl(hv->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
	hv->max_vcpus = ioctl(hv->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (hv->max_vcpus <= 0)
		hv->max_vcpus = ioctl(hv->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (hv->run_size <= 0 || hv->max_vcpus <= 0) {
		r = why_set(why, whylen, -ENOSYS, "KVM reports no vCPU support");
		goto err;
	}
	r = supported_cpuid(hv);
	if (r < 0) {
		why_set(why, whylen, r, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		goto err;
	}
	/* Local APICs must exist before any vCPU, also the one that tells the
	 * backend, and every backend takes them: without them (refused by KVM)
	 * interrupts are not offered. */
	hv_irqchip_create(hv);
	r = hv_vcpu_create(hv, first, 0);
	if (r < 0) {
		why_set(why, whylen, r, "KVM_CREATE_VCPU: %s", strerror(-r));
		goto err;
	}
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]) && !hv->be; i++)
		if (backends[i]->detect(hv, first) > 0)
			hv->be = backends[i];
	if (!hv->be) {
		r = why_set(why, whylen, -ENOSYS, "cannot tell which KVM backend this is");
		goto err_vcpu;
	}
	r = ioctl(first->fd, KVM_GET_TSC_KHZ, 0);
	hv->tsc_khz = r > 0 ? r : 0;
	hv->vif = hv->be->vif && hv->irqchip;
	if (hv->be != &hv_backend_pvm) {
		const struct kvm_cpuid_entry2 *ext = hv_cpuid_leaf(hv, 0x80000001, 0);

		hv->huge_1g = ext && (ext->edx & (1u << 26));	/* pdpe1gb */
	}
	return 0;

err_vcpu:
	hv_vcpu_destroy(first);
err:
	hv_close(hv);
	return r;
}

void hv_close(struct hv *hv)
{
	if (hv->vm_fd >= 0)
		close(hv->vm_fd);
	if (hv->kvm_fd >= 0)
		close(hv->kvm_fd);
	free(hv->cpuid);
	hv->cpuid = NULL;
	hv->vm_fd = hv->kvm_fd = -1;
}

int hv_open_sibling(struct hv *hv, const struct hv *parent)
{
	size_t cpuid = sizeof(*parent->cpuid) + parent->cpuid->nent * sizeof(parent->cpuid->entries[0]);

	*hv = *parent;
	hv->kvm_fd = -1;	/* the parent's */
	hv->irqchip = hv->guest_ipi = hv->vif = false;
	hv->cpuid = malloc(cpuid);
	if (!hv->cpuid)
		return -ENOMEM;
	memcpy(hv->cpuid, parent->cpuid, cpuid);
	for (unsigned i = 0; i < hv->cpuid->nent;) {	/* no KVM paravirtual leaves */
		if ((hv->cpuid->entries[i].function & 0xffffff00) == 0x40000000)
			hv->cpuid->entries[i] = hv->cpuid->entries[--hv->cpuid->nent];
		else
			i++;
	}
	hv->vm_fd = ioctl(parent->kvm_fd, KVM_CREATE_VM, 0);
	if (hv->vm_fd < 0) {
		int r = -errno;

		free(hv->cpuid);
		hv->cpuid = NULL;
		return r;
	}
	return 0;
}

int hv_set_memslot(struct hv *hv, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
		   uint32_t flags)
{
	struct kvm_userspace_memory_region mr = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	return ioctl(hv->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0 ? -errno : 0;
}

/*
 * Without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM swaps the bitmap out and
 * write-protects the pages again in one call, so a racing guest write lands in
 * this bitmap or the next one.
 */
int hv_get_dirty_log(struct hv *hv, uint32_t slot, uint64_t *bitmap)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };

	return ioctl(hv->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

int hv_vcpu_create(struct hv *hv, struct hv_vcpu *vc, int id)
{
	memset(vc, 0, sizeof(*vc));
	vc->hv = hv;
	vc->id = id;
	vc->fd = ioctl(hv->vm_fd, KVM_CREATE_VCPU, id);
	if (vc->fd < 0)
		return -errno;
	vc->run = mmap(NULL, hv->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vc->fd, 0);
	if (vc->run == MAP_FAILED) {
		int err = -errno;

		close(vc->fd);
		vc->fd = -1;
		return err;
	}
	if (hv->sync_regs)
		vc->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	return 0;
}

void hv_vcpu_destroy(struct hv_vcpu *vc)
{
	if (vc->fd < 0)
		return;
	munmap(vc->run, vc->hv->run_size);
	close(vc->fd);
	vc->fd = -1;
	free(vc->lapic);
	vc->lapic = NULL;
}

/*
 * Where hv->vif the registers' IF is the guest's IF byte (hv/apic.c), both
 * ways. `syscall` turns that byte off and keeps nothing of it, not even in
 * R11: in a syscall stub, R11's IF is the slot's irq_on, which the guest keeps
 * as the byte outside `syscall`, so that sysret's emulation gives it back.
 */
static void vif_r11(struct hv_vcpu *vc, hv_regs *r)
{
	r->r11 = (r->r11 & ~RFLAGS_IF) | (hv_vcpu_ring(vc)->irq_on ? RFLAGS_IF : 0);
}

static void vif_get(struct hv_vcpu *vc, hv_regs *r)
{
	enum hv_stub at;

	if (!vc->hv->vif)
		return;
	r->rflags &= ~RFLAGS_IF;
	r->rflags |= *hv_vcpu_vif(vc) ? RFLAGS_IF : 0;
	at = hv_stub_at(r->rip);
	if (at == HV_STUB_SYSCALL || at == HV_STUB_RING)
		vif_r11(vc, r);
}

/* With KVM_CAP_SYNC_REGS, registers set go into kvm_run for the next KVM_RUN
 * to load, which saves a vCPU ioctl (microseconds on kvm_pvm); until then
 * they are what a read gives. */
int hv_vcpu_get_regs(struct hv_vcpu *vc, hv_regs *r)
{
	if (vc->hv->sync_regs && (vc->run->kvm_dirty_regs & KVM_SYNC_X86_REGS)) {
		*r = vc->run->s.regs.regs;
		return 0;
	}
	if (ioctl(vc->fd, KVM_GET_REGS, r) < 0)
		return -errno;
	vif_get(vc, r);
	return 0;
}

int hv_vcpu_set_regs(struct hv_vcpu *vc, const hv_regs *r)
{
	if (vc->hv->vif)
		*hv_vcpu_vif(vc) = !!(r->rflags & RFLAGS_IF);
	if (vc->hv->sync_regs) {
		vc->run->s.regs.regs = *r;
		vc->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		return 0;
	}
	return ioctl(vc->fd, KVM_SET_REGS, r) < 0 ? -errno : 0;
}

int hv_get_msr(struct hv_vcpu *vc, uint32_t index, uint64_t *val)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = { .h.nmsrs = 1, .e.index = index };
	int n = ioctl(vc->fd, KVM_GET_MSRS, &m);

	if (n < 0)
		return -errno;
	if (n != 1)
		return -ENOENT;
	*val = m.e.data;
	return 0;
}

int hv_set_msrs(struct hv_vcpu *vc, const struct kvm_msr_entry *e, unsigned n)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[HV_MSRS_MAX];
	} m = { .h.nmsrs = n };
	int done;

	if (n > HV_MSRS_MAX)
		return -EINVAL;
	memcpy(m.e, e, n * sizeof(*e));
	done = ioctl(vc->fd, KVM_SET_MSRS, &m);
	if (done < 0)
		return -errno;
	return (unsigned)done == n ? 0 : -EINVAL;	/* KVM refused a value: it stops there */
}

int hv_set_msr(struct hv_vcpu *vc, uint32_t index, uint64_t val)
{
	return hv_set_msrs(vc, &(struct kvm_msr_entry){ .index = index, .data = val }, 1);
}

int hv_vcpu_set_fs_base(struct hv_vcpu *vc, uint64_t base)
{
	return hv_set_msr(vc, MSR_FS_BASE, base);
}

int hv_vcpu_reset_fpu(struct hv_vcpu *vc)
{
	struct kvm_fpu fpu = {
		.fcw = 0x37f,		/* the x87 and SSE state a new thread starts with */
		.mxcsr = 0x1f80,
	};

	return ioctl(vc->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

int hv_vcpu_set_sigmask(struct hv_vcpu *vc, uint64_t mask)
{
	/* The set follows len with no padding: 4 bytes in, not 8. */
	uint32_t m[3] = { sizeof(mask), (uint32_t)mask, (uint32_t)(mask >> 32) };

	if (vc->sigmask_set && vc->sigmask == mask)
		return 0;
	if (ioctl(vc->fd, KVM_SET_SIGNAL_MASK, m) < 0)
		return -errno;
	vc->sigmask = mask;
	vc->sigmask_set = true;
	return 0;
}

int hv_vcpu_get_xsave(struct hv_vcpu *vc, struct kvm_xsave *x)
{
	return ioctl(vc->fd, KVM_GET_XSAVE, x) < 0 ? -errno : 0;
}

int hv_vcpu_set_xsave(struct hv_vcpu *vc, const struct kvm_xsave *x)
{
	return ioctl(vc->fd, KVM_SET_XSAVE, x) < 0 ? -errno : 0;
}

static bool vector_has_error_code(int v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

/* The exception stubs exit on IST1, so RSP points at the CPU-pushed frame. RSP
 * is the guest's to forge (a sandbox's `out`): checked before any read. */
static int read_frame(struct hv_vcpu *vc, struct hv_exit *ex)
{
	const char *ist = (const char *)vc->area + HV_AREA_IST;
	bool err = vector_has_error_code(ex->vector);
	uint64_t rsp = ex->regs.rsp, lo = (uintptr_t)ist;
	const uint64_t *sp = (const uint64_t *)(uintptr_t)rsp;

	if (rsp < lo || rsp > lo + HV_IST_SIZE - (err ? 6 : 5) * sizeof(uint64_t))
		return -EFAULT;
	if (err)
		ex->frame.error = *sp++;
	ex->frame.rip = sp[0];
	ex->frame.cs = sp[1];
	ex->frame.rflags = sp[2];
	ex->frame.rsp = sp[3];
	ex->frame.ss = sp[4];
	return 0;
}

static int io_exit(struct hv_vcpu *vc, struct hv_exit *ex)
{
	struct kvm_run *run = vc->run;
	unsigned port = run->io.port;
	struct kvm_sregs sregs;

	if (run->io.direction != KVM_EXIT_IO_OUT)
		return HV_EXIT_FAIL;
	switch (port) {
	case HV_PORT_SYSCALL:
		return HV_EXIT_SYSCALL;
	case HV_PORT_END:
		return HV_EXIT_END;
	case HV_PORT_PROBE:
		return HV_EXIT_PROBE;
	case HV_PORT_NULL:
		return HV_EXIT_NULL;
	case HV_PORT_RING:
		return HV_EXIT_RING;
	case HV_PORT_HOSTCALL:
		return HV_EXIT_HOSTCALL;
	}
	if (port < HV_PORT_VECTOR0 || port >= HV_PORT_VECTOR0 + HV_NR_VECTORS)
		return HV_EXIT_FAIL;
	ex->vector = port - HV_PORT_VECTOR0;
	if (read_frame(vc, ex) < 0)
		return HV_EXIT_FAIL;
	if (ex->vector == HV_VECTOR_PF) {
		if (ioctl(vc->fd, KVM_GET_SREGS, &sregs) < 0)
			return HV_EXIT_FAIL;
		ex->cr2 = sregs.cr2;
	}
	return HV_EXIT_EXCEPTION;
}

/* KVM_RUN without the libc wrapper: errno belongs to the guest, which shares
 * the backing thread's TLS, and a signal must not change it. R8 and R9 mark
 * the call for a debugger (HV_RUN_MARK). */
static int kvm_run(struct hv_vcpu *vc)
{
	register long r8 __asm__("r8") = (long)vc->run;
	register long r9 __asm__("r9") = (long)HV_RUN_MARK;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((long)SYS_ioctl), "D"((long)vc->fd), "S"((long)KVM_RUN), "d"(0L),
			   "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return (int)ret;
}

/* The registers as the exit left them: from kvm_run where KVM put them there. */
static int exit_regs(struct hv_vcpu *vc, hv_regs *r)
{
	if (!vc->hv->sync_regs)
		return hv_vcpu_get_regs(vc, r);
	*r = vc->run->s.regs.regs;
	vif_get(vc, r);
	return 0;
}

int hv_vcpu_run(struct hv_vcpu *vc, struct hv_exit *ex)
{
	int r;

	memset(ex, 0, sizeof(*ex));
	r = kvm_run(vc);
	if (r < 0) {
		ex->err = -r;
		if (r == -EINTR || r == -EAGAIN) {
			ex->kind = HV_EXIT_SIGNAL;
			return 0;
		}
		ex->kind = r == -EFAULT ? HV_EXIT_EFAULT : HV_EXIT_FAIL;
		return exit_regs(vc, &ex->regs);
	}
	ex->reason = vc->run->exit_reason;
	switch (ex->reason) {
	case KVM_EXIT_IO:
		if (exit_regs(vc, &ex->regs) < 0)
			return -errno;
		ex->kind = io_exit(vc, ex);
		if (ex->kind == HV_EXIT_SYSCALL && vc->hv->vif)
			vif_r11(vc, &ex->regs);	/* RIP is past the exit stub's `out` */
		return 0;
	case KVM_EXIT_INTR:
		ex->kind = HV_EXIT_SIGNAL;
		return 0;
	default:	/* HLT, SHUTDOWN (triple fault), FAIL_ENTRY, INTERNAL_ERROR, MMIO... */
		ex->kind = HV_EXIT_FAIL;
		if (ex->reason == KVM_EXIT_MMIO)
			ex->gpa = vc->run->mmio.phys_addr;
		return exit_regs(vc, &ex->regs);
	}
}

/* KVM completes a pending access at the start of KVM_RUN, before it looks at
 * immediate_exit: one such call settles it without entering the guest. */
int hv_vcpu_settle(struct hv_vcpu *vc)
{
	int r;

	vc->run->immediate_exit = 1;
	r = kvm_run(vc);
	vc->run->immediate_exit = 0;
	return r == -EINTR || r == 0 ? 0 : r;
}

/* KVM's paravirtual MSRs, with which a guest has KVM write into its memory
 * (kvmclock, steal time, async page faults, PV EOI...). */
static const uint32_t pv_msrs[] = {
	0x11, 0x12, 0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03, 0x4b564d04, 0x4b564d05,
	0x4b564d06, 0x4b564d08,
};

int hv_vcpu_confine(struct hv_vcpu *vc)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_ENFORCE_PV_FEATURE_CPUID, .args = { 1 } };

	return ioctl(vc->fd, KVM_ENABLE_CAP, &cap) < 0 ? -errno : 0;
}

int hv_vcpu_scrub(struct hv_vcpu *vc)
{
	struct kvm_debugregs dr = { .dr6 = 0xffff0ff0, .dr7 = 0x400 };	/* as at reset */
	struct kvm_vcpu_events ev = { 0 };
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[sizeof(pv_msrs) / sizeof(pv_msrs[0])];
	} m = { 0 };
	unsigned n = sizeof(pv_msrs) / sizeof(pv_msrs[0]);

	if (ioctl(vc->fd, KVM_SET_DEBUGREGS, &dr) < 0 || ioctl(vc->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	/* Off, one call for all; KVM stops at one it does not know, so go on after it. */
	for (unsigned i = 0; i < n;) {
		int done;

		m.h.nmsrs = n - i;
		for (unsigned j = i; j < n; j++)
			m.e[j - i] = (struct kvm_msr_entry){ .index = pv_msrs[j] };
		done = ioctl(vc->fd, KVM_SET_MSRS, &m);
		if (done < 0)
			return -errno;
		i += done + 1;
	}
	return 0;
}
