/* SPDX-License-Identifier: MIT */
/*
 * vthread_sandbox_*: a sandbox is a VM of its own (hv_open_sibling) whose
 * memory is its grants and one region of the runtime's (mm/space.c), with one
 * vCPU and a system-call policy. Handles are checked against a list, so that
 * a destroyed sandbox gets EINVAL, and attributes name a sandbox by id, so
 * that an attribute outliving its sandbox names none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "rt_sandbox.h"

static struct {
	pthread_mutex_t lock;		/* the list and each sandbox's running */
	struct vthread_sandbox *list;
	uint32_t next_id;
} sbs = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The live sandbox with this attribute id (0: none), or NULL; sbs.lock held. */
static struct vthread_sandbox *by_id(uint32_t id)
{
	struct vthread_sandbox *s;

	for (s = sbs.list; s && (!id || s->id != id); s = s->next)
		;
	return s;
}

/* The live sandbox sb, locked; NULL for a bad handle. */
static struct vthread_sandbox *get(vthread_sandbox_t sb)
{
	struct vthread_sandbox *s;

	pthread_mutex_lock(&sbs.lock);
	for (s = sbs.list; s && s != sb; s = s->next)
		;
	if (s)
		pthread_mutex_lock(&s->lock);
	pthread_mutex_unlock(&sbs.lock);
	return s;
}

static int vcpu_init(struct vthread_sandbox *sb)
{
	char *region = sb->space.region;
	struct hv_vcpu *vc = &sb->vcpu;
	int r = hv_vcpu_create(&sb->hv, vc, 0);

	if (r < 0)
		return r;
	hv_vcpu_confine(vc);	/* where KVM cannot, hv_vcpu_scrub's MSRs still hold */
	vc->area = region + MM_SB_AREA * MM_PAGE_SIZE;
	sb->lay = (struct hv_layout){
		.cr3 = mm_space_cr3(),
		.idt = region + MM_SB_IDT * MM_PAGE_SIZE,
		.area_gpa = mm_space_gpa(&sb->space, vc->area),
		.code = (uintptr_t)region + MM_SB_CODE * MM_PAGE_SIZE,
	};
	hv_idt_fill_sandbox(sb->lay.idt, sb->lay.code);
	r = hv_vcpu_setup(vc, &sb->lay);
	if (!r)	/* KVM_RUN is left only for the time limit's signal */
		r = hv_vcpu_set_sigmask(vc, ~(1ull << (RT_SIGSANDBOX - 1)));
	return r;
}

static void sb_free(struct vthread_sandbox *sb)
{
	hv_vcpu_destroy(&sb->vcpu);
	mm_space_destroy(&sb->space);
	hv_close(&sb->hv);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

RT_API int vthread_sandbox_create(vthread_sandbox_t *out)
{
	struct vthread_sandbox *sb;
	int r;

	if (!out)
		return EINVAL;
	r = rt_init();
	if (r < 0)
		return -r;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return EAGAIN;
	sb->vcpu.fd = -1;
	sb->hv.vm_fd = sb->hv.kvm_fd = -1;
	pthread_mutex_init(&sb->lock, NULL);
	r = hv_open_sibling(&sb->hv, &rt.hv);
	if (!r)
		r = mm_space_init(&sb->space, &sb->hv);
	if (!r)
		r = vcpu_init(sb);
	if (r < 0) {
		sb_free(sb);
		return r == -ENOTSUP ? ENOTSUP : EAGAIN;
	}
	/* As glibc's: random, its low byte 0 so that string overruns stop at it. */
	if (getrandom(&sb->canary, sizeof(sb->canary), 0) != sizeof(sb->canary))
		sb->canary = (uintptr_t)sb ^ rt_now_ns();
	sb->canary &= ~0xffull;
	pthread_mutex_lock(&sbs.lock);
	sb->id = ++sbs.next_id ? sbs.next_id : ++sbs.next_id;
	sb->next = sbs.list;
	sbs.list = sb;
	pthread_mutex_unlock(&sbs.lock);
	*out = sb;
	return 0;
}

RT_API int vthread_sandbox_destroy(vthread_sandbox_t sb)
{
	struct vthread_sandbox **p;

	pthread_mutex_lock(&sbs.lock);
	for (p = &sbs.list; *p && *p != sb; p = &(*p)->next)
		;
	if (!*p || sb->running) {
		pthread_mutex_unlock(&sbs.lock);
		return *p ? EBUSY : EINVAL;
	}
	*p = sb->next;
	pthread_mutex_unlock(&sbs.lock);
	sb_free(sb);
	return 0;
}

int rt_sandbox_claim(uint32_t id, struct vthread_sandbox **out)
{
	struct vthread_sandbox *s;
	int r = -EINVAL;

	pthread_mutex_lock(&sbs.lock);
	s = by_id(id);
	if (s) {
		pthread_mutex_lock(&s->lock);
		r = s->running ? -EAGAIN : 0;
		s->running = true;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&sbs.lock);
	*out = s;
	return r;
}

void rt_sandbox_release(struct vthread_sandbox *sb)
{
	pthread_mutex_lock(&sbs.lock);
	pthread_mutex_lock(&sb->lock);
	sb->running = false;
	pthread_mutex_unlock(&sb->lock);
	pthread_mutex_unlock(&sbs.lock);
}

/* The rest: the sandbox locked, EBUSY where a run would see the change. */
#define WITH(sb, busy_matters, body)					\
	do {								\
		struct vthread_sandbox *s_ = get(sb);			\
		int r_;							\
									\
		if (!s_)						\
			return EINVAL;					\
		if ((busy_matters) && s_->running)			\
			r_ = EBUSY;					\
		else							\
			r_ = (body);					\
		pthread_mutex_unlock(&s_->lock);			\
		return r_;						\
	} while (0)

RT_API int vthread_sandbox_grant(vthread_sandbox_t sb, void *addr, size_t len, int prot)
{
	uint64_t lo = (uintptr_t)addr, hi;

	if (lo & (MM_PAGE_SIZE - 1) || !len || len > MM_USER_TOP || !prot ||
	    (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
		return EINVAL;
	hi = lo + mm_page_round(len);
	if (hi > MM_USER_TOP)
		return ENOMEM;
	WITH(sb, true, -mm_space_grant(&s_->space, lo, hi, prot));
}

RT_API int vthread_sandbox_allow(vthread_sandbox_t sb, long nr)
{
	if (!rt_sb_checkable(nr))
		return nr < 0 ? EINVAL : ENOTSUP;
	WITH(sb, false, (s_->allowed[nr / 64] |= 1ull << (nr % 64), 0));
}

RT_API int vthread_sandbox_set_syscall_handler(vthread_sandbox_t sb, vthread_syscall_fn fn,
					       void *ctx)
{
	WITH(sb, false, (s_->handler = fn, s_->handler_ctx = ctx, 0));
}

RT_API int vthread_sandbox_check(vthread_sandbox_t sb, const void *addr, size_t len, int prot)
{
	WITH(sb, false, mm_space_covers(&s_->space, (uintptr_t)addr, len, prot) ? 0 : EFAULT);
}

RT_API int vthread_sandbox_set_time_limit(vthread_sandbox_t sb, uint64_t ns)
{
	WITH(sb, false, (s_->time_limit = ns, 0));
}

RT_API int vthread_sandbox_violation(vthread_sandbox_t sb, struct vthread_violation *v)
{
	if (!v)
		return EINVAL;
	WITH(sb, false, s_->violations ? (*v = s_->violation, 0) : ENOENT);
}

RT_API int vthread_sandbox_snapshot(vthread_sandbox_t sb)
{
	WITH(sb, true, -mm_space_snapshot(&s_->space));
}

RT_API int vthread_sandbox_reset(vthread_sandbox_t sb)
{
	WITH(sb, true, !s_->space.snapped ? EINVAL : mm_space_reset(&s_->space) ? EIO : 0);
}

RT_API int vthread_attr_setsandbox(vthread_attr_t *attr, vthread_sandbox_t sb)
{
	struct rt_attr *ra = (struct rt_attr *)rt_attr(attr);
	struct vthread_sandbox *s = NULL;

	if (!ra)
		return EINVAL;
	if (sb) {
		s = get(sb);
		if (!s)
			return EINVAL;
		pthread_mutex_unlock(&s->lock);
	}
	ra->sandbox = s ? s->id : 0;
	return 0;
}

RT_API int vthread_attr_getsandbox(const vthread_attr_t *attr, vthread_sandbox_t *sb)
{
	const struct rt_attr *ra = rt_attr(attr);
	struct vthread_sandbox *s;

	if (!ra || !sb)
		return EINVAL;
	pthread_mutex_lock(&sbs.lock);
	s = by_id(ra->sandbox);
	pthread_mutex_unlock(&sbs.lock);
	*sb = s;
	return 0;
}

static bool int_like(const ffi_type *t)
{
	return t->type == FFI_TYPE_INT || t->type == FFI_TYPE_POINTER ||
	       (t->type >= FFI_TYPE_UINT8 && t->type <= FFI_TYPE_SINT64);
}

/* An integer argument or result as a register holds it: sign- or zero-extended. */
static long widen(const void *p, const ffi_type *t)
{
	switch (t->type) {
	case FFI_TYPE_UINT8: return *(const uint8_t *)p;
	case FFI_TYPE_SINT8: return *(const int8_t *)p;
	case FFI_TYPE_UINT16: return *(const uint16_t *)p;
	case FFI_TYPE_SINT16: return *(const int16_t *)p;
	case FFI_TYPE_UINT32: return *(const uint32_t *)p;
	case FFI_TYPE_INT: case FFI_TYPE_SINT32: return *(const int32_t *)p;
	default: return *(const long *)p;
	}
}

/* fn(args) in a vthread of its own: from inside a vthread, which cannot enter
 * a vCPU itself. 0, 1 when it ended in a violation, or -errno. */
static int call_in_vthread(const vthread_attr_t *attr, void (*fn)(void), const long *args,
			    long *rax)
{
	vthread_sandbox_t sb;
	struct vthread_sandbox *s;
	unsigned long before = 0;
	vthread_t vt;
	void *ret;
	int r;

	vthread_attr_getsandbox(attr, &sb);
	if ((s = get(sb))) {
		before = s->violations;
		pthread_mutex_unlock(&s->lock);
	}
	r = rt_create_with_args(&vt, attr, (void *(*)(void *))fn, args);
	if (r)
		return -r;	/* a positive error number from the API */
	vthread_join(vt, &ret);
	*rax = (long)ret;
	r = 0;
	if (ret == VTHREAD_SANDBOX_VIOLATION && (s = get(sb))) {
		r = s->violations != before;
		pthread_mutex_unlock(&s->lock);
	}
	return r;
}

/* fn(args) on this thread, its host signals held meanwhile: no thread to
 * make, and no RCU wait in KVM while the same thread calls again. */
static int call_here(const struct rt_attr *ra, void (*fn)(void), const long *args, long *rax)
{
	struct rt_sb_run run = { .fn = (void *)fn };
	struct vthread_sandbox *s;
	uint64_t old;
	int r = rt_sandbox_claim(ra->sandbox, &s);

	if (r < 0)
		return r;
	memcpy(run.args, args, sizeof(run.args));
	rt_signal_host_mask(RT_HOST_BLOCKED, &old);
	r = rt_sandbox_run(s, &run);
	rt_signal_host_mask(old, NULL);
	rt_sandbox_release(s);
	*rax = (long)run.retval;
	return r < 0 ? -EAGAIN : run.violated;
}

int rt_sandbox_call(const vthread_attr_t *attr, ffi_cif *cif, void (*fn)(void), void *rvalue,
		    void **avalue)
{
	const struct rt_attr *ra = rt_attr(attr);
	long args[6] = { 0 }, rax;
	int r;

	if (cif->nargs > 6 || (cif->rtype->type != FFI_TYPE_VOID && !int_like(cif->rtype)))
		return ENOTSUP;
	for (unsigned i = 0; i < cif->nargs; i++) {
		if (!int_like(cif->arg_types[i]))
			return ENOTSUP;
		args[i] = widen(avalue[i], cif->arg_types[i]);
	}
	r = rt_in_guest() ? call_in_vthread(attr, fn, args, &rax) : call_here(ra, fn, args, &rax);
	if (r)
		return r < 0 ? -r : ECANCELED;
	if (cif->rtype->type == FFI_TYPE_SINT64 || cif->rtype->type == FFI_TYPE_UINT64 ||
	    cif->rtype->type == FFI_TYPE_POINTER)
		*(long *)rvalue = rax;
	else if (cif->rtype->type != FFI_TYPE_VOID)	/* libffi widens to ffi_arg */
		*(ffi_arg *)rvalue = (ffi_arg)widen(&rax, cif->rtype);
	return 0;
}
