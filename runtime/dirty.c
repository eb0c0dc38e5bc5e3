/* SPDX-License-Identifier: MIT */
/*
 * vthread_dirty_*(): dirty-page tracking (mm/dirty.c). Made on a host thread:
 * inside a vthread through a host call, since the mirror's lock must not be
 * held in the guest (a mirror fault there needs it).
 */
#include <errno.h>
#include <stdint.h>

#include "rt.h"

enum { DIRTY_START, DIRTY_COLLECT, DIRTY_STOP };

static long dirty_op(long op, long addr, long len, long bitmap)
{
	uint64_t lo = addr, hi = lo + len;

	switch (op) {
	case DIRTY_START:
		return mm_dirty_start(&rt.mm, lo, hi);
	case DIRTY_COLLECT:
		return mm_dirty_collect(&rt.mm, lo, hi, (uint64_t *)bitmap);
	default:
		return mm_dirty_stop(&rt.mm, lo, hi);
	}
}

static int dirty(int op, void *addr, size_t len, uint64_t *bitmap)
{
	uintptr_t a = (uintptr_t)addr;
	long r;

	if ((a | len) & (MM_PAGE_SIZE - 1) || !len || (op == DIRTY_COLLECT && !bitmap))
		return EINVAL;
	if (a + len < a || a + len > MM_USER_TOP)
		return ENOMEM;		/* as mprotect: outside the address space */
	r = rt_init();
	if (r)
		return r == -ENOSYS ? ENOSYS : EAGAIN;
	vthread_hostcall_long(&r, (void (*)(void))dirty_op, 4,
			      (const long[]){ op, (long)a, (long)len, (long)bitmap });
	return -r;
}

RT_API int vthread_dirty_start(void *addr, size_t len)
{
	return dirty(DIRTY_START, addr, len, NULL);
}

RT_API int vthread_dirty_collect(void *addr, size_t len, uint64_t *bitmap)
{
	return dirty(DIRTY_COLLECT, addr, len, bitmap);
}

RT_API int vthread_dirty_stop(void *addr, size_t len)
{
	return dirty(DIRTY_STOP, addr, len, NULL);
}
