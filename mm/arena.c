/* SPDX-License-Identifier: MIT */
/*
 * One jemalloc arena holds all guest-visible runtime memory: page tables, vCPU
 * areas, the IDT and vthread stacks. Its extents come from 1 GiB-aligned regions
 * of ours, so each region is one mirror chunk, and it never returns or purges
 * pages (decay off), so memory reused by the next vthread is still mapped by
 * the guest and by KVM's shadow tables.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <jemalloc/jemalloc.h>

#include "mm.h"

static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static char *region_next, *region_end;
static unsigned arena_index;
static atomic_size_t in_use;

/* A fresh region of whole chunks, 1 GiB aligned; reserved, touched only as used. */
static int region_new(size_t size)
{
	size_t len = (size + MM_CHUNK - 1) & ~(MM_CHUNK - 1);
	char *p = mmap(NULL, len + MM_CHUNK, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *base;

	if (p == MAP_FAILED)
		return -errno;
	base = (char *)(((uintptr_t)p + MM_CHUNK - 1) & ~(MM_CHUNK - 1));
	if (base > p)
		munmap(p, base - p);
	munmap(base + len, p + MM_CHUNK - base);
	region_next = base;
	region_end = base + len;
	return 0;
}

static void *extent_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t align,
			  bool *zero, bool *commit, unsigned ind)
{
	char *p;

	(void)h;
	(void)ind;
	if (new_addr)
		return NULL;	/* we place extents ourselves */
	pthread_mutex_lock(&region_lock);
	p = (char *)(((uintptr_t)region_next + align - 1) & ~(align - 1));
	if (!region_next || p + size > region_end) {
		if (region_new(size) < 0) {
			pthread_mutex_unlock(&region_lock);
			return NULL;
		}
		p = region_next;
	}
	region_next = p + size;
	pthread_mutex_unlock(&region_lock);
	*zero = true;	/* fresh anonymous memory */
	*commit = true;
	return p;
}

/* Returning true refuses: extents stay with the arena, pages stay resident. */
static bool extent_refuse(extent_hooks_t *h, void *addr, size_t size, bool committed,
			  unsigned ind)
{
	(void)h, (void)addr, (void)size, (void)committed, (void)ind;
	return true;
}

static bool extent_split(extent_hooks_t *h, void *addr, size_t size, size_t a, size_t b,
			 bool committed, unsigned ind)
{
	(void)h, (void)addr, (void)size, (void)a, (void)b, (void)committed, (void)ind;
	return false;	/* our memory is plain anonymous memory: any split is fine */
}

static bool extent_merge(extent_hooks_t *h, void *a, size_t as, void *b, size_t bs,
			 bool committed, unsigned ind)
{
	(void)h, (void)a, (void)as, (void)b, (void)bs, (void)committed, (void)ind;
	return false;
}

static extent_hooks_t hooks = {
	.alloc = extent_alloc,
	.dalloc = extent_refuse,
	.split = extent_split,
	.merge = extent_merge,
};

static int set_decay(const char *what)
{
	char name[64];
	ssize_t never = -1;

	snprintf(name, sizeof(name), "arena.%u.%s", arena_index, what);
	return -mallctl(name, NULL, NULL, &never, sizeof(never));
}

int mm_arena_init(void)
{
	extent_hooks_t *hp = &hooks;
	size_t sz = sizeof(arena_index);
	int r = mallctl("arenas.create", &arena_index, &sz, &hp, sizeof(hp));

	if (r)
		return -r;
	r = set_decay("dirty_decay_ms");
	if (!r)
		r = set_decay("muzzy_decay_ms");
	return r;
}

void *mm_arena_alloc(size_t size, size_t align)
{
	void *p = mallocx(size, MALLOCX_ARENA(arena_index) | MALLOCX_TCACHE_NONE |
				    MALLOCX_ZERO | MALLOCX_ALIGN(align));

	if (p)
		in_use += sallocx(p, 0);
	return p;
}

void mm_arena_free(void *p)
{
	if (!p)
		return;
	in_use -= sallocx(p, 0);
	dallocx(p, MALLOCX_TCACHE_NONE);
}

size_t mm_arena_in_use(void)
{
	return in_use;
}
