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
#include <stdlib.h>

#include "mm.h"

/* Marks the chunks of one line of the maps that have a slot. */
static bool seen(char *line, void *arg)
{
	struct mm *mm = arg;
	char *end;
	uint64_t lo = strtoull(line, &end, 16), hi;

	if (*end != '-')
		return false;
	hi = strtoull(end + 1, NULL, 16);
	if (hi > MM_USER_TOP)
		hi = MM_USER_TOP;
	for (uint64_t c = lo >> MM_CHUNK_SHIFT; lo < hi && c <= (hi - 1) >> MM_CHUNK_SHIFT; c++)
		if (mm->chunk[c])
			mm->chunk[c] |= MM_CHUNK_SEEN;
	return false;
}

int mm_collect(struct mm *mm)
{
	int r = mm_maps_each(seen, mm);	/* every chunk with a slot and a mapping */

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
