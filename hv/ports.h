/* SPDX-License-Identifier: MIT */
/* What guest.S and the C side must agree on: exit ports and stub layout. */
#ifndef HV_PORTS_H
#define HV_PORTS_H
#define HV_PORT_VECTOR0	0xc0	/* + vector 0..31; not 0x80, which KVM swallows as io-delay */
#define HV_PORT_SYSCALL	0xf0
#define HV_PORT_END	0xf1
#define HV_PORT_PROBE	0xf2
#define HV_PORT_NULL	0xf3

#define HV_VECTOR_STUB	16	/* bytes between exception stubs */
#define HV_PROBE_LOOPS	20000
#endif
