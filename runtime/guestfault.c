/* SPDX-License-Identifier: MIT */
/*
 * The guest's own page-fault path: hv/guest.S hands a page fault taken on a
 * vthread's stack to rt_guest_fault, which runs in the guest. A fault that a
 * guest protection no longer refuses (a translation from before a change) is
 * retried after an invlpg; one that a protection refuses goes to the vthread's
 * fault handler; everything else, and what the handler declines, exits as
 * before (dispatch.c). Only the host knows what the process has mapped: for an
 * access to a page it has not, the backing thread enters the same path with
 * the record made up (rt_fault_inject), and the handler runs as for the others.
 */
#include "rt.h"

/* Not instrumented: ASan's checks of the record would fault on its shadow. */
__attribute__((no_sanitize("address"))) void rt_guest_fault(struct hv_fault_rec *f)
{
	struct vthread *vt = rt_current;
	int access = rt_fault_access(f->frame.error);
	int allows = mm_prot_allows(&rt.mm, f->cr2, access);

	if (f->cfg->held) {	/* signals came while the stub ran: let them in */
		f->cfg->held = 0;
		hv_guest_null_exit();
	}
	if (allows == 1) {
		__asm__ volatile("invlpg (%0)" : : "r"(f->cr2) : "memory");
		f->frame_at = 0;
		return;
	}
	if (vt && vt->fault_fn && (allows == 0 || f->injected)) {
		struct vthread_fault vf = {
			.addr = (void *)(uintptr_t)f->cr2,
			.ip = f->frame.rip,
			.access = access,
		};
		int r;

		hv_guest_handler_enter(vt->vcpu, 0);
		r = vt->fault_fn(&vf, vt->fault_ctx);
		hv_guest_handler_leave(vt->vcpu, f->frame.rflags);
		if (r == VTHREAD_FAULT_RETRY) {
			rt_count(&vt->counts.guest_faults);
			f->frame_at = 0;
			return;
		}
		vt->fault_declined = f->injected;	/* its exit is the program's */
	} else if (allows < 0 && !(f->frame.error & 1) && mm_pde_present(&rt.mm, f->cr2)) {
		/* mirrored meanwhile, by a fault of this path's own: an exit would look
		 * like the same fault twice (dispatch.c) */
		f->frame_at = 0;
		return;
	}
	hv_fault_forward(f);
}

bool rt_fault_inject(struct vthread *vt, struct hv_exit *ex)
{
	struct hv_fault_rec f = { .cr2 = ex->cr2, .injected = 1 };
	hv_regs r = ex->regs;
	uint64_t sp;

	if (!vt->fault_fn || vt->fault_declined) {
		vt->fault_declined = false;
		return false;
	}
	f.frame = ex->frame;
	if (ex->kind != HV_EXIT_EXCEPTION) {
		f.frame.rip = r.rip;
		f.frame.rsp = r.rsp;
		f.frame.rflags = r.rflags;
	}
	sp = hv_vcpu_fault_entry(vt->vcpu, &r, &f);
	if (!sp || mm_copy_out((void *)(uintptr_t)sp, &f.frame_at, HV_FAULT_REC) < 0)
		return false;
	rt_resume(vt, &r, "cannot enter the fault handler");
	return true;
}
