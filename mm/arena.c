/* SPDX-License-Identifier: MIT */
/*
 * Guest-visible runtime memory, in whole pages: page tables, vCPU areas and the
 * IDT (vthread stacks are mappings of their own: runtime/stack.c). It comes
 * from 1 GiB-aligned regions of ours, so each region is one mirror chunk, and
 * it is never unmapped or purged, so memory reused by the next vthread is still
 * mapped by the guest and by KVM's shadow tables. A region is handed out front
 * to back, untouched until used; freed extents wait in an address-ordered
 * list, merged with their neighbours, and are zeroed when taken again. The list
 * lives in the freed pages themselves, so the arena never calls malloc: page
 * tables are allocated on the mirror's fault path, which may run while glibc's
 * fork holds malloc's locks. A general-purpose allocator is no help here:
 * jemalloc's arenas did this job, but its initial-exec TLS does not fit the
 * static TLS a dlopen()ed library may use, so libvthread could not be dlopened.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "mm.h"

/* The head of a freed extent, in its first page. */
struct extent {
	size_t len;
	struct extent *next;
};

/*
 * Recursive, as the mirror's lock: a vthread that forks runs the runtime's
 * prepare handler, which takes both, in the guest with its backing thread's
 * identity, and a later fork handler's first touch of new memory is mirrored
 * by that same thread, page-table pages from here included.
 */
static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static char *region_next, *region_end;	/* the untouched rest of the newest region */
static struct extent *freed;		/* by address; never adjacent to each other */
static size_t in_use;

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

/* First fit among freed extents; the caller zeroes what it gets. */
static char *take_freed(size_t size)
{
	for (struct extent **e = &freed; *e; e = &(*e)->next) {
		struct extent *x = *e;

		if (x->len < size)
			continue;
		if (x->len > size) {	/* the rest keeps a head of its own */
			struct extent *rest = (struct extent *)((char *)x + size);

			*rest = (struct extent){ x->len - size, x->next };
			*e = rest;
		} else {
			*e = x->next;
		}
		return (char *)x;
	}
	return NULL;
}

/* fork(): the runtime's handlers hold the lock across it, after the mirror's. */
void mm_arena_lock(void)
{
	pthread_mutex_lock(&lock);
}

void mm_arena_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

/* A fork child has one thread, not the one that took the lock (a recursive
 * mutex checks): the lock starts afresh there. */
void mm_arena_fork_child(void)
{
	lock = (pthread_mutex_t)PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
}

void *mm_arena_alloc(size_t size)
{
	char *p;

	size = mm_page_round(size);
	pthread_mutex_lock(&lock);
	p = take_freed(size);
	if (p) {
		memset(p, 0, size);
	} else {
		if (!region_next || region_end - region_next < (ptrdiff_t)size) {
			if (region_new(size) < 0) {
				pthread_mutex_unlock(&lock);
				return NULL;
			}
		}
		p = region_next;	/* fresh anonymous memory is zero */
		region_next += size;
	}
	in_use += size;
	pthread_mutex_unlock(&lock);
	return p;
}

/* Into the address-ordered list, merged with a neighbour on either side. */
void mm_arena_free(void *addr, size_t size)
{
	struct extent **e = &freed, *prev = NULL, *x = addr;

	if (!addr)
		return;
	size = mm_page_round(size);
	pthread_mutex_lock(&lock);
	in_use -= size;
	while (*e && (char *)*e < (char *)addr) {
		prev = *e;
		e = &(*e)->next;
	}
	if (prev && (char *)prev + prev->len == (char *)addr) {
		prev->len += size;
		if (*e && (char *)prev + prev->len == (char *)*e) {
			prev->len += (*e)->len;
			prev->next = (*e)->next;
		}
	} else if (*e && (char *)addr + size == (char *)*e) {
		*x = (struct extent){ size + (*e)->len, (*e)->next };
		*e = x;
	} else {
		*x = (struct extent){ size, *e };
		*e = x;
	}
	pthread_mutex_unlock(&lock);
}

size_t mm_arena_in_use(void)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = in_use;
	pthread_mutex_unlock(&lock);
	return n;
}
