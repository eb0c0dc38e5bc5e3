/* SPDX-License-Identifier: MIT */
/*
 * vthread stacks, kept as glibc keeps pthread stacks: each is a mapping of its
 * own with its guard below, so that pages the thread never touches never become
 * resident and a guard of any size costs address space only. The stacks freed
 * last wait in a cache (RT_STACK_CACHE bytes in all) for a vthread asking for
 * the same size, with their pages and the guest's view of them; the others are
 * unmapped, and their memory goes back to the system. Only the part a vthread
 * may use is mirrored: a guard never needs a memslot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "rt.h"

#define RT_STACK_CACHE	(40ul << 20)	/* glibc's stack cache size */

struct cached {
	char *addr;
	size_t size, guard;
	struct cached *next;
};

/* Under rt.pool_lock, which fork's handlers hold across it. */
static struct cached *cache;	/* the newest first */
static size_t mapped_bytes;

static struct cached *cache_take(size_t size, size_t guard)
{
	for (struct cached **c = &cache; *c; c = &(*c)->next) {
		struct cached *x = *c;

		if (x->size != size || x->guard != guard)
			continue;
		*c = x->next;
		return x;
	}
	return NULL;
}

/* Unmaps what the cache holds beyond RT_STACK_CACHE, the oldest first. */
static void cache_trim(void)
{
	struct cached **c = &cache;
	size_t kept = 0;

	while (*c && kept + (*c)->size <= RT_STACK_CACHE) {
		kept += (*c)->size;
		c = &(*c)->next;
	}
	while (*c) {
		struct cached *x = *c;

		*c = x->next;
		mapped_bytes -= x->size;
		munmap(x->addr, x->size);
		free(x);
	}
}

static int stack_map(struct vthread *vt, size_t usable, size_t guard)
{
	char *p;

	if (usable + guard < usable)
		return -EINVAL;
	p = mmap(NULL, usable + guard, guard ? PROT_NONE : PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return -EAGAIN;
	if (guard && mprotect(p + guard, usable, PROT_READ | PROT_WRITE) < 0) {
		munmap(p, usable + guard);
		return -EAGAIN;
	}
	vt->stack = p;
	vt->stack_size = usable + guard;
	pthread_mutex_lock(&rt.pool_lock);
	mapped_bytes += vt->stack_size;
	pthread_mutex_unlock(&rt.pool_lock);
	return 0;
}

/* Not instrumented: ASan would report memory that is not the caller's heap
 * where the kernel raises the fault a pthread gets. */
__attribute__((no_sanitize("address"))) static void touch(volatile char *p)
{
	*p = *p;
}

/*
 * A stack for vt as the attribute asks: 0; -EINVAL when stack and guard
 * overflow together, -EAGAIN without memory (pthread_create's answers). A
 * caller-owned stack is touched at its top first, where glibc writes its
 * thread descriptor: memory that is not mapped writable faults in the
 * creator, as pthread_create() does, instead of in the guest later, or in
 * whatever comes to be mapped there meanwhile.
 */
int rt_stack_get(struct vthread *vt, const struct rt_attr *a)
{
	size_t usable = mm_page_round(a->stacksize), guard = mm_page_round(a->guardsize);
	struct cached *c;
	int r;

	if (a->stackaddr) {
		touch((char *)a->stackaddr + a->stacksize - 1);
		vt->stack = a->stackaddr;
		vt->stack_size = a->stacksize;
		return mm_mirror_range(&rt.mm, vt->stack, vt->stack_size) < 0 ? -EAGAIN : 0;
	}
	if (usable < a->stacksize || guard < a->guardsize)
		return -EINVAL;	/* rounding up to a page wrapped */
	pthread_mutex_lock(&rt.pool_lock);
	c = cache_take(usable + guard, guard);
	pthread_mutex_unlock(&rt.pool_lock);
	if (c) {
		vt->stack = c->addr;
		vt->stack_size = c->size;
		free(c);
	} else {
		r = stack_map(vt, usable, guard);
		if (r < 0)
			return r;
	}
	vt->guard = guard;
	vt->own_stack = true;
	if (mm_mirror_range(&rt.mm, vt->stack + guard, usable) < 0) {
		rt_stack_put(vt);
		return -EAGAIN;
	}
	return 0;
}

void rt_stack_put(struct vthread *vt)
{
	struct cached *c;

	if (!vt->own_stack)
		return;
	vt->own_stack = false;
	c = malloc(sizeof(*c));
	pthread_mutex_lock(&rt.pool_lock);
	if (!c || vt->stack_size > RT_STACK_CACHE) {
		mapped_bytes -= vt->stack_size;
		pthread_mutex_unlock(&rt.pool_lock);
		free(c);
		munmap(vt->stack, vt->stack_size);
		return;
	}
	*c = (struct cached){ vt->stack, vt->stack_size, vt->guard, NULL };
	c->next = cache;
	cache = c;
	cache_trim();
	pthread_mutex_unlock(&rt.pool_lock);
}

size_t rt_stack_bytes(void)
{
	return mapped_bytes;
}

/*
 * glibc's default: RLIMIT_STACK as the process started (2 MiB where it was
 * unlimited), or what the program set with pthread_setattr_default_np. Read
 * without a system call, where getrlimit cost one per create without
 * attributes, and followed a limit changed later, which glibc does not.
 */
size_t rt_stack_default_size(void)
{
	size_t sz = 2ul << 20;
	pthread_attr_t d;

	if (pthread_getattr_default_np(&d) == 0) {
		pthread_attr_getstacksize(&d, &sz);
		pthread_attr_destroy(&d);
	}
	return sz;
}
