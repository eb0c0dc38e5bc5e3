/* SPDX-License-Identifier: MIT */
/*
 * Typed calls across the boundary, with libffi: vthread_hostcall() runs a host
 * function on a vthread's backing thread, outside the guest (one exit), and
 * vthread_call() runs a function inside a new vthread for a host caller.
 */
#include <errno.h>

#include "rt.h"

struct hv_hostcall {
	ffi_cif *cif;
	void (*fn)(void);
	void *rvalue;
	void **avalue;
};

static void make(const struct hv_hostcall *c)
{
	ffi_call(c->cif, c->fn, c->rvalue, c->avalue);
}

void rt_hostcall(struct vthread *vt, const hv_regs *r)
{
	struct hv_hostcall c;

	if (mm_copy_in(&c, (const void *)(uintptr_t)r->rdi, sizeof(c)) < 0)
		rt_die(vt, "made a host call with a bad descriptor", -EFAULT);
	vt->on_host = true;
	vt->thread_changed = true;	/* host code ran on its thread: no parking after */
	errno = vt->guest_errno;	/* the host function's errno is the guest's */
	make(&c);
	vt->guest_errno = errno;
	vt->on_host = false;
}

RT_API int vthread_hostcall(ffi_cif *cif, void (*fn)(void), void *rvalue, void **avalue)
{
	struct hv_hostcall c = { cif, fn, rvalue, avalue };

	if (!cif || !fn)
		return EINVAL;
	if (rt_in_guest())
		hv_guest_hostcall(&c);
	else
		make(&c);
	return 0;
}

RT_API int vthread_hostcall_long(long *ret, void (*fn)(void), unsigned nargs, const long *args)
{
	ffi_type *types[6];
	void *values[6];
	ffi_cif cif;
	ffi_arg r;

	if (!ret || !fn || nargs > 6 || (nargs && !args))
		return EINVAL;
	for (unsigned i = 0; i < nargs; i++) {
		types[i] = &ffi_type_slong;
		values[i] = (void *)&args[i];
	}
	if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, nargs, &ffi_type_slong, types) != FFI_OK)
		return EINVAL;
	vthread_hostcall(&cif, fn, &r, values);
	*ret = (long)r;
	return 0;
}

static void *call_body(void *c)
{
	make(c);
	return NULL;
}

RT_API int vthread_call(const vthread_attr_t *attr, ffi_cif *cif, void (*fn)(void),
			void *rvalue, void **avalue)
{
	struct hv_hostcall c = { cif, fn, rvalue, avalue };
	vthread_sandbox_t sb;
	vthread_t vt;
	int r, detached = VTHREAD_CREATE_JOINABLE;

	if (!cif || !fn)
		return EINVAL;
	/* A detached vthread could not be waited for; c lives on this frame. */
	if (attr && (r = vthread_attr_getdetachstate(attr, &detached)))
		return r;
	if (detached != VTHREAD_CREATE_JOINABLE)
		return EINVAL;
	if (attr && vthread_attr_getsandbox(attr, &sb) == 0 && sb)
		return rt_sandbox_call(attr, cif, fn, rvalue, avalue);
	r = vthread_create(&vt, attr, call_body, &c);
	return r ? r : vthread_join(vt, NULL);
}

/*
 * For vthread-bench's trap-floor row, through vthread_hostcall: the calling
 * vthread's `syscall` instruction returns at once (on), or is served again.
 */
void rt_bench_null_syscalls_on(void)
{
	hv_vcpu_set_syscall_null(rt_current->vcpu, true);
}

void rt_bench_null_syscalls_off(void)
{
	hv_vcpu_set_syscall_null(rt_current->vcpu, false);
}
