/* SPDX-License-Identifier: MIT */
/* vthread_attr_*: the pthread_attr_* subset that applies, with its error numbers. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "rt.h"

#define ATTR_MAGIC	0x7674u		/* "vt": catches attributes never initialised */

_Static_assert(sizeof(struct rt_attr) <= sizeof(vthread_attr_t), "vthread_attr_t too small");

/* As glibc's pthread_create without attributes, at least PTHREAD_STACK_MIN. */
static size_t default_stacksize(void)
{
	size_t sz = rt_stack_default_size();

	return sz < PTHREAD_STACK_MIN ? PTHREAD_STACK_MIN : mm_page_round(sz);
}

const struct rt_attr *rt_attr(const vthread_attr_t *a)
{
	const struct rt_attr *ra = (const struct rt_attr *)a;

	return ra && ra->magic == ATTR_MAGIC ? ra : NULL;
}

static struct rt_attr *attr_rw(vthread_attr_t *a)
{
	return (struct rt_attr *)rt_attr(a);
}

RT_API int vthread_attr_init(vthread_attr_t *a)
{
	struct rt_attr *ra = (struct rt_attr *)a;

	if (!a)
		return EINVAL;
	*ra = (struct rt_attr){
		.magic = ATTR_MAGIC,
		.detach = VTHREAD_CREATE_JOINABLE,
		.stacksize = default_stacksize(),
		.guardsize = MM_PAGE_SIZE,	/* one page, as glibc's default */
		.syscallmode = VTHREAD_SYSCALL_AUTO,
	};
	return 0;
}

RT_API int vthread_attr_destroy(vthread_attr_t *a)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra)
		return EINVAL;
	ra->magic = 0;
	return 0;
}

RT_API int vthread_attr_setstacksize(vthread_attr_t *a, size_t size)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra || size < PTHREAD_STACK_MIN)
		return EINVAL;
	ra->stacksize = size;
	ra->stackaddr = NULL;
	return 0;
}

RT_API int vthread_attr_getstacksize(const vthread_attr_t *a, size_t *size)
{
	const struct rt_attr *ra = rt_attr(a);

	if (!ra || !size)
		return EINVAL;
	*size = ra->stacksize;
	return 0;
}

RT_API int vthread_attr_setstack(vthread_attr_t *a, void *addr, size_t size)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra || !addr || size < PTHREAD_STACK_MIN ||
	    (uintptr_t)addr + size < (uintptr_t)addr)
		return EINVAL;
	ra->stackaddr = addr;
	ra->stacksize = size;
	return 0;
}

RT_API int vthread_attr_getstack(const vthread_attr_t *a, void **addr, size_t *size)
{
	const struct rt_attr *ra = rt_attr(a);

	if (!ra || !addr || !size)
		return EINVAL;
	*addr = ra->stackaddr;
	*size = ra->stacksize;
	return 0;
}

/* Rounded up to whole pages; 0 means none. Ignored with a caller-owned stack. */
RT_API int vthread_attr_setguardsize(vthread_attr_t *a, size_t size)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra)
		return EINVAL;
	ra->guardsize = size;
	return 0;
}

RT_API int vthread_attr_getguardsize(const vthread_attr_t *a, size_t *size)
{
	const struct rt_attr *ra = rt_attr(a);

	if (!ra || !size)
		return EINVAL;
	*size = ra->guardsize;
	return 0;
}

RT_API int vthread_attr_setdetachstate(vthread_attr_t *a, int state)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra || (state != VTHREAD_CREATE_JOINABLE && state != VTHREAD_CREATE_DETACHED))
		return EINVAL;
	ra->detach = state;
	return 0;
}

RT_API int vthread_attr_getdetachstate(const vthread_attr_t *a, int *state)
{
	const struct rt_attr *ra = rt_attr(a);

	if (!ra || !state)
		return EINVAL;
	*state = ra->detach;
	return 0;
}

RT_API int vthread_attr_setsyscallmode(vthread_attr_t *a, int mode)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra || (mode != VTHREAD_SYSCALL_AUTO && mode != VTHREAD_SYSCALL_EXIT &&
		    mode != VTHREAD_SYSCALL_RING))
		return EINVAL;
	ra->syscallmode = mode;
	return 0;
}

RT_API int vthread_attr_getsyscallmode(const vthread_attr_t *a, int *mode)
{
	const struct rt_attr *ra = rt_attr(a);

	if (!ra || !mode)
		return EINVAL;
	*mode = ra->syscallmode;
	return 0;
}

RT_API int vthread_attr_setfaulthandler(vthread_attr_t *a, vthread_fault_fn fn, void *ctx)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra)
		return EINVAL;
	ra->fault_fn = fn;
	ra->fault_ctx = fn ? ctx : NULL;
	return 0;
}

RT_API int vthread_attr_getfaulthandler(const vthread_attr_t *a, vthread_fault_fn *fn, void **ctx)
{
	const struct rt_attr *ra = rt_attr(a);

	if (!ra || !fn || !ctx)
		return EINVAL;
	*fn = ra->fault_fn;
	*ctx = ra->fault_ctx;
	return 0;
}

RT_API int vthread_attr_setirqhandler(vthread_attr_t *a, vthread_irq_fn fn, void *ctx)
{
	struct rt_attr *ra = attr_rw(a);

	if (!ra)
		return EINVAL;
	ra->irq_fn = fn;
	ra->irq_ctx = fn ? ctx : NULL;
	return 0;
}

RT_API int vthread_attr_getirqhandler(const vthread_attr_t *a, vthread_irq_fn *fn, void **ctx)
{
	const struct rt_attr *ra = rt_attr(a);

	if (!ra || !fn || !ctx)
		return EINVAL;
	*fn = ra->irq_fn;
	*ctx = ra->irq_ctx;
	return 0;
}
