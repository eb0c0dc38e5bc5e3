/* SPDX-License-Identifier: MIT */
/* x86 constants and the layout of the guest-visible vCPU area (private to hv/). */
#ifndef HV_X86_H
#define HV_X86_H

#define MSR_IA32_TSC		0x10
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_FS_BASE		0xc0000100
#define MSR_GS_BASE		0xc0000101
#define MSR_KERNEL_GS_BASE	0xc0000102

#define SEL_CODE	0x10
#define SEL_DATA	0x18
#define SEL_TSS		0x40

#define CR0_GUEST	0x80050033ull	/* PE MP ET NE WP AM PG */
#define CR4_GUEST	0x10620ull	/* PAE OSFXSR OSXMMEXCPT FSGSBASE */
#define CR4_OSXSAVE	(1ull << 18)
#define CR4_PKE		(1ull << 22)
#define XFEATURE_PKRU	(1ull << 9)
#define EFER_GUEST	0xd01ull	/* SCE LME LMA NXE */
/* `syscall` at CPL0 loads CS = 0x10, SS = 0x18; sysret would give 0x33/0x2b. */
#define STAR_GUEST	0x0023001000000000ull
#define SFMASK_GUEST	0x47700ull	/* TF DF IF NT AC cleared on `syscall` */

/* vCPU area: the PVM shared page, the GDT, the TSS and the IST stack. */
#define HV_AREA_PVM	0x0000
#define HV_AREA_GDT	0x1000
#define HV_AREA_TSS	0x1100
#define HV_AREA_RING	0x1800	/* the ring slot; the guest's GS base */
#define HV_AREA_FAULT	0x1900	/* struct hv_fault_cfg */
#define HV_AREA_IST2	0x1c00	/* interrupts' stack (IST2), up to HV_AREA_IST */
#define HV_AREA_IST	0x2000
#define HV_IST_SIZE	0x2000

/* The local APIC in x2APIC mode (hv/apic.c). */
#define MSR_IA32_APICBASE	0x1b
#define MSR_X2APIC_TPR		0x808
#define MSR_X2APIC_EOI		0x80b
#define MSR_X2APIC_SVR		0x80f
#define MSR_X2APIC_ICR		0x830
#define MSR_X2APIC_LVT_TIMER	0x832
#define MSR_X2APIC_TMICT	0x838
#define MSR_X2APIC_TDCR		0x83e
#define RFLAGS_IF		0x200ull

#endif
