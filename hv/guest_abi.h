/* SPDX-License-Identifier: MIT */
/*
 * The guest ABI: what hv/guest.S and the C side agree on. Exit ports, the
 * exception stubs' spacing, and the layout of the ring slot the guest reaches
 * through GS (struct hv_ring_slot in hv.h checks these offsets).
 */
#ifndef HV_GUEST_ABI_H
#define HV_GUEST_ABI_H
#define HV_PORT_VECTOR0	0xc0	/* + vector 0..31; not 0x80, which KVM swallows as io-delay */
#define HV_PORT_SYSCALL	0xf0
#define HV_PORT_END	0xf1
#define HV_PORT_PROBE	0xf2
#define HV_PORT_NULL	0xf3
#define HV_PORT_RING	0xf4	/* a ring call the runtime must settle */
#define HV_PORT_HOSTCALL	0xf5	/* RDI = struct hv_hostcall * */

#define HV_VECTOR_STUB	16	/* bytes between exception stubs */
#define HV_NR_VECTORS	32
#define HV_VECTOR_BP	3	/* int3 */
#define HV_VECTOR_PF	14	/* page fault: CR2 holds the address */
#define HV_PROBE_LOOPS	20000
#define HV_SYSCALL_LEN	2	/* bytes of the `syscall` instruction */
#define HV_RED_ZONE	128	/* below RSP, the interrupted code's (SysV ABI) */
#define HV_FAULT_REC	80	/* struct hv_fault_rec less its registers */
#define HV_FAULT_SLACK	4096	/* stack the #PF stub leaves below for the handler */
/* Interrupts (hv/apic.c): vectors and the source each hands to rt_guest_irq. */
#define HV_VECTOR_POKE		0x40
#define HV_VECTOR_TIMER		0x41
#define HV_VECTOR_SPURIOUS	0xff
#define HV_IRQ_POKE	1	/* VTHREAD_IRQ_POKE */
#define HV_IRQ_TIMER	2	/* VTHREAD_IRQ_TIMER */
#define HV_IRQ_REC	56	/* struct hv_irq_rec less its registers */

/*
 * The ring slot (struct hv_ring_slot), one per vCPU, which the guest reaches
 * through GS: the first cache line is what guest and server exchange.
 */
#define HV_RING_STATE	0	/* u32, HV_RING_FREE... */
#define HV_RING_NR	4	/* u32 */
#define HV_RING_RET	8
#define HV_RING_ARG0	16	/* RDI RSI RDX R10 R8 R9, 8 bytes each */
#define HV_RING_ARG2	32
#define HV_RING_DEADLINE	64	/* the guest's own: TSC when it stops spinning */
#define HV_RING_SITE	88	/* the guest's: RCX of the call, where it returns */
#define HV_RING_DIRECT	96	/* u8, the host's: rewritten sites jump to the ring stub */
#define HV_RING_IRQ_ON	97	/* u8, the guest's: hv->vif, interrupts on outside handlers */
#define HV_RING_KICK	98	/* u8: hv->vif, a poke may wait */
#define HV_RING_TIMER	104	/* hv->vif: TSC of the timer's expiry; ~0: none */
#define HV_RING_SIZE	128
#define HV_RING_FREE	0
#define HV_RING_POSTED	1	/* by the guest */
#define HV_RING_TAKEN	2	/* by a server, or by the runtime settling it */
#define HV_RING_DONE	3	/* RET is the result */
#define HV_RING_BOUNCED	4	/* the exit path must make the call; RET bytes already moved */
#define HV_RING_NR_MAX	512	/* calls at or above it always exit */

/*
 * A sandbox's code page (hv/sandbox.S, copied into the sandbox's own memory):
 * the `syscall` entry, the return address of the code it runs, and 32
 * exception stubs HV_VECTOR_STUB bytes apart; each only exits.
 */
#define HV_SB_SYSCALL	0
#define HV_SB_RETURN	16
#define HV_SB_VECTORS	32
#endif
