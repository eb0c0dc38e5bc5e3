/* SPDX-License-Identifier: MIT */
/*
 * Memslot collection. A chunk whose mappings are all gone (a joined vthread's
 * stack, anything a host thread unmapped) would keep its slot, and KVM's
 * memory for it (~2.5 MiB per slot on shadow paging), for good. Host threads'
 * munmaps are not seen, so the maps are read instead, once the live slots have
 * doubled since the last collection: slots stay within twice the chunks the
 * process maps, or MM_COLLECT_MIN. The maps may miss a mapping made meanwhile;
 * dropping its chunk costs one more guest fault, which links it again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mm.h"

static void seen(struct mm *mm, const char *line)
{
	char *end;
	uint64_t lo = strtoull(line, &end, 16), hi;

	if (*end != '-')
		return;
	hi = strtoull(end + 1, NULL, 16);
	if (hi > MM_USER_TOP)
		hi = MM_USER_TOP;
	for (uint64_t c = lo >> MM_CHUNK_SHIFT; lo < hi && c <= (hi - 1) >> MM_CHUNK_SHIFT; c++)
		if (mm->chunk[c])
			mm->chunk[c] |= MM_CHUNK_SEEN;
}

/*
 * Marks every chunk that has a slot and a mapping. No malloc (the fault path)
 * and no cancellation point (a backing thread shares the guest's state), so
 * the maps are read with raw system calls; of a line longer than the buffer
 * only its start, the range, is needed.
 */
static int mark(struct mm *mm)
{
	char buf[4096];
	size_t have = 0;
	bool skip = false;
	long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	long n;

	if (fd < 0)
		return -errno;
	while ((n = syscall(SYS_read, fd, buf + have, sizeof(buf) - 1 - have)) > 0 ||
	       (n < 0 && errno == EINTR)) {
		char *p = buf, *nl, *end = buf + have + (n > 0 ? n : 0);

		*end = '\0';
		for (; (nl = memchr(p, '\n', end - p)); p = nl + 1, skip = false)
			if (!skip)
				seen(mm, p);
		have = end - p;
		memmove(buf, p, have);
		if (have == sizeof(buf) - 1) {
			if (!skip)
				seen(mm, buf);
			skip = true;
			have = 0;
		}
	}
	if (n < 0)
		n = -errno;
	syscall(SYS_close, fd);
	return n;
}

int mm_collect(struct mm *mm)
{
	int r = mark(mm);

	for (unsigned slot = 0; slot < mm->nslots; slot++) {
		uint64_t hva = mm->slots[slot].hva, c = hva >> MM_CHUNK_SHIFT;

		if (hva == MM_SLOT_FREE)
			continue;
		if (mm->chunk[c] & MM_CHUNK_SEEN)
			mm->chunk[c] &= ~MM_CHUNK_SEEN;
		else if (!r && !mm->slots[slot].tracked)	/* its log would be lost */
			mm_chunk_drop(mm, c);
	}
	mm->collect_at = mm->live * 2 > MM_COLLECT_MIN ? mm->live * 2 : MM_COLLECT_MIN;
	return r;
}
