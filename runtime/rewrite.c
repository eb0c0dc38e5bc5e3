/* SPDX-License-Identifier: MIT */
/*
 * System calls without the `syscall` trap. On kvm_pvm the guest's `syscall`
 * traps into the host kernel and back to LSTAR (~1 us, most of a ring call).
 * The guest runs its own copy of libc's code (mm_private); host threads run
 * the original. A `syscall` in libc whose call the ring took, or could have
 * taken, is then rewritten in the copy, once: into `jmp rel8` to 5 bytes of
 * padding between two functions, which become `jmp rel32` to a trampoline of
 * the site's own (hv_tramp). That leaves RCX and R11 as `syscall` would and
 * enters the ring stub directly. zpoline's idea, confined to the guest's
 * view, without its page at address 0 (a NULL read must still fault) and
 * without pushing a return address into the red zone. What keeps it exact:
 * - the site: RCX of a call the ring took is the address after a `syscall`
 *   the guest executed, and a decode from its function's start (the
 *   .eh_frame_hdr table) confirms an instruction boundary there;
 * - 2 bytes become 2 bytes in one store that no cache line splits: a vCPU
 *   running there executes the old instruction or the new;
 * - the padding lies outside every function the table knows, and all of it
 *   decodes as nops or int3;
 * - only libc, whose code nobody writes: a stale copy would run old code.
 * A trampoline reads its vCPU's direct flag through GS: the first ARCH_SET_GS
 * of a vthread puts every site back (rt_rewrite_off).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rt.h"
#include "rt_zydis.h"

#define TRAMP_SIZE	80		/* per site: hv_tramp, rounded up */
#define TRAMP_BYTES	(64 * 1024)
#define NTRAMP		(TRAMP_BYTES / TRAMP_SIZE)
#define REACH		(INT32_MAX - 4096ull)	/* of a jmp rel32, with room to spare */
#define PAD_SIZE	5		/* jmp rel32 */

static struct {
	pthread_mutex_t lock;
	bool on;
	uint64_t lo, hi;		/* libc's code, page-aligned */
	const char *path;		/* libc's file, */
	uint64_t off;			/* and where its code starts there, when whole */
	char *copy;			/* what the guest runs there */
	const uint8_t *hdr;		/* libc's .eh_frame_hdr */
	const uint8_t *table;		/* its (start, FDE) pairs, sdata4 from hdr */
	size_t nfde;
	uint8_t *tried, *taken;		/* a bit per byte of code: a site seen; padding used */
	char *tramp;			/* TRAMP_BYTES, within REACH of the code */
	size_t ntramp;
	uint64_t *sites;		/* rewritten ones, for rt_rewrite_off */
} rw = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int32_t s32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static bool bit(const uint8_t *map, uint64_t a)
{
	a -= rw.lo;
	return __atomic_load_n(&map[a / 8], __ATOMIC_RELAXED) & (1u << (a % 8));
}

static void set_bit(uint8_t *map, uint64_t a)
{
	a -= rw.lo;
	__atomic_or_fetch(&map[a / 8], 1u << (a % 8), __ATOMIC_RELAXED);
}

static const uint8_t *uleb(const uint8_t *p, uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	do
		*v |= (uint64_t)(*p & 0x7f) << shift, shift += 7;
	while (*p++ & 0x80 && shift < 64);
	return p;
}

/* Bytes of a pointer in DWARF encoding enc; 0 for those not read here. */
static unsigned enc_size(int enc)
{
	switch (enc & 0x0f) {
	case 0x00: case 0x04: case 0x0c: return 8;
	case 0x03: case 0x0b: return 4;
	case 0x02: case 0x0a: return 2;
	default: return 0;
	}
}

/* The encoding of the addresses in a CIE's FDEs, or -1. */
static int fde_encoding(const uint8_t *cie)
{
	const uint8_t *p = cie + 9, *aug = p;	/* length, id, version */
	uint64_t v;

	p += strlen((const char *)aug) + 1;
	if (aug[0] != 'z')
		return 0;			/* absolute, 8 bytes */
	p = uleb(p, &v);			/* code alignment */
	p = uleb(p, &v);			/* data alignment, as unsigned: skipped */
	p = cie[8] == 1 ? p + 1 : uleb(p, &v);	/* return register */
	p = uleb(p, &v);			/* augmentation length */
	for (aug++; *aug; aug++) {
		switch (*aug) {
		case 'R':
			return *p;
		case 'L':
			p++;
			break;
		case 'P':
			if (!enc_size(*p))
				return -1;
			p += 1 + enc_size(*p);
			break;
		case 'S':
			break;
		default:
			return -1;
		}
	}
	return 0;
}

static uint64_t fde_start(size_t i)
{
	return (uintptr_t)rw.hdr + s32(rw.table + 8 * i);
}

/* Function i's end, from its FDE; 0 when the FDE is not of a kind read here. */
static uint64_t fde_end(size_t i)
{
	const uint8_t *fde = rw.hdr + s32(rw.table + 8 * i + 4);
	int enc;
	uint64_t len = 0;

	if (s32(fde) == -1)			/* 64-bit DWARF */
		return 0;
	enc = fde_encoding(fde + 4 - s32(fde + 4));
	if (enc < 0 || !enc_size(enc))
		return 0;
	memcpy(&len, fde + 8 + enc_size(enc), enc_size(enc));
	return fde_start(i) + len;
}

/* The function whose start is at or below a: its index, or nfde. */
static size_t fde_find(uint64_t a)
{
	size_t lo = 0, hi = rw.nfde;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (fde_start(mid) <= a)
			lo = mid;
		else
			hi = mid;
	}
	return rw.nfde && fde_start(lo) <= a ? lo : rw.nfde;
}

/* Decodes the original code [from, to): whether it ends exactly at to, each
 * instruction passing ok (NULL: any). Zydis never allocates: rewrite() may not. */
static bool decode(uint64_t from, uint64_t to, bool (*ok)(const ZydisDecodedInstruction *),
		   ZydisDecodedInstruction *in)
{
	uint64_t at = from;

	while (at < to) {
		if (!ZYAN_SUCCESS(rt_zydis.DecoderDecodeInstruction(&rt_zydis.decoder, NULL,
				(const void *)(uintptr_t)at, to - at, in)) || (ok && !ok(in)))
			return false;
		at += in->length;
	}
	return at == to;
}

static bool is_pad(const ZydisDecodedInstruction *in)
{
	return in->mnemonic == ZYDIS_MNEMONIC_NOP || in->mnemonic == ZYDIS_MNEMONIC_INT3;
}

/* PAD_SIZE free bytes of padding in the gap [g0, g1), starting in [from, to]: 0 if none. */
static uint64_t pad_in(uint64_t g0, uint64_t g1, uint64_t from, uint64_t to,
		       ZydisDecodedInstruction *in)
{
	if (g0 >= g1 || g0 < rw.lo || g1 > rw.hi || g1 < from + PAD_SIZE || g0 > to ||
	    !decode(g0, g1, is_pad, in))
		return 0;
	for (uint64_t t = g0 > from ? g0 : from; t + PAD_SIZE <= g1 && t <= to; t++) {
		unsigned k = 0;

		while (k < PAD_SIZE && !bit(rw.taken, t + k))
			k++;
		if (k == PAD_SIZE)
			return t;
	}
	return 0;
}

/* Padding within reach of a `jmp rel8` ending at from + 128, function i's. */
static uint64_t pad_near(size_t i, uint64_t from, uint64_t to, ZydisDecodedInstruction *in)
{
	uint64_t t = 0;

	for (size_t j = i; !t && j + 1 < rw.nfde && fde_start(j) <= to; j++)
		t = pad_in(fde_end(j), fde_start(j + 1), from, to, in);
	for (size_t j = i; !t && j-- > 0 && fde_start(j + 1) >= from + PAD_SIZE;)
		t = pad_in(fde_end(j), fde_start(j + 1), from, to, in);
	return t;
}

/* The guest's copy of code address a. */
static char *copy_of(uint64_t a)
{
	return rw.copy + (a - rw.lo);
}

/* Writes 2 bytes with one store: a vCPU executing them sees the old or the new. */
static void store2(uint64_t a, uint16_t v)
{
	__asm__ volatile("movw %1, %0" : "=m"(*(char (*)[2])copy_of(a)) : "r"(v) : "memory");
}

/*
 * On a ring server or on the backing thread of the vthread whose exit named
 * the site, which may hold malloc's lock in the guest: no malloc here.
 */
static void rewrite(uint64_t site)
{
	uint64_t ret = site + HV_SYSCALL_LEN, pad;
	size_t i = fde_find(site);
	char *t = rw.tramp + rw.ntramp * TRAMP_SIZE;
	uint64_t ring = (uintptr_t)hv_guest_syscall_ring;
	ZydisDecodedInstruction in;
	int32_t d;

	/* A whole `syscall` of a known function, not split by a cache line. */
	if (i == rw.nfde || fde_start(i) < rw.lo || site >= fde_end(i) || site % 64 == 63 ||
	    memcmp(copy_of(site), "\x0f\x05", 2) || !decode(fde_start(i), site, NULL, &in) ||
	    !decode(site, ret, NULL, &in) || in.mnemonic != ZYDIS_MNEMONIC_SYSCALL)
		return;
	if (rw.ntramp == NTRAMP || !(pad = pad_near(i, ret - 128, ret + 127, &in)))
		return;
	rw.sites[rw.ntramp++] = site;
	memcpy(t, hv_tramp, hv_tramp_end - hv_tramp);
	d = ret - (uintptr_t)(t + (hv_tramp_site - hv_tramp));
	memcpy(t + (hv_tramp_site - hv_tramp) - 4, &d, 4);
	d = ret - (uintptr_t)(t + (hv_tramp_back - hv_tramp));
	memcpy(t + (hv_tramp_back - hv_tramp) - 4, &d, 4);
	memcpy(t + (hv_tramp_ring - hv_tramp), &ring, 8);
	for (unsigned k = 0; k < PAD_SIZE; k++)
		set_bit(rw.taken, pad + k);
	d = (uintptr_t)t - (pad + PAD_SIZE);
	*copy_of(pad) = (char)0xe9;
	memcpy(copy_of(pad) + 1, &d, 4);
	store2(site, 0xeb | (uint16_t)(uint8_t)(pad - ret) << 8);	/* jmp rel8 */
}

void rt_rewrite_seen(uint64_t ret)
{
	uint64_t site = ret - HV_SYSCALL_LEN;

	if (!__atomic_load_n(&rw.on, __ATOMIC_ACQUIRE) || ret < rw.lo + HV_SYSCALL_LEN ||
	    ret > rw.hi || bit(rw.tried, site))
		return;
	pthread_mutex_lock(&rw.lock);
	if (rw.on && !bit(rw.tried, site)) {
		set_bit(rw.tried, site);
		rewrite(site);
	}
	pthread_mutex_unlock(&rw.lock);
}

void rt_rewrite_off(void)
{
	pthread_mutex_lock(&rw.lock);
	__atomic_store_n(&rw.on, false, __ATOMIC_RELEASE);
	for (size_t i = 0; i < rw.ntramp; i++)
		store2(rw.sites[i], 0x050f);
	pthread_mutex_unlock(&rw.lock);
}

unsigned rt_rewrite_count(void)
{
	return __atomic_load_n(&rw.on, __ATOMIC_ACQUIRE) ? rw.ntramp : 0;
}

static int find_libc(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *base = strrchr(info->dlpi_name, '/');
	uint64_t lo = 0, hi = 0;

	(void)size, (void)arg;
	base = base ? base + 1 : info->dlpi_name;
	if (strncmp(base, "libc.so.", 8))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			lo = (info->dlpi_addr + ph->p_vaddr) & ~(MM_PAGE_SIZE - 1);
			hi = mm_page_round(info->dlpi_addr + ph->p_vaddr + ph->p_memsz);
			rw.path = ph->p_filesz == ph->p_memsz ? info->dlpi_name : NULL;
			rw.off = ph->p_offset & ~(MM_PAGE_SIZE - 1);
		} else if (ph->p_type == PT_GNU_EH_FRAME) {
			rw.hdr = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		}
	}
	rw.lo = lo;
	rw.hi = hi;
	return 1;
}

struct room {
	uint64_t prev;			/* end of the mapping before this line's */
	uint64_t at;			/* the nearest hole's start, 0 if none yet */
};

static uint64_t distance(uint64_t t)
{
	return t < rw.lo ? rw.hi - t : t + TRAMP_BYTES - rw.lo;
}

/* A hole of TRAMP_BYTES, as near the code as the holes allow. */
static bool room_line(char *line, void *arg)
{
	struct room *r = arg;
	char *end;
	uint64_t lo = strtoull(line, &end, 16), hi = strtoull(end + 1, NULL, 16);
	uint64_t below = (lo < rw.lo ? lo : rw.lo) - TRAMP_BYTES;
	uint64_t above = r->prev > rw.hi ? r->prev : rw.hi;

	if (below >= r->prev && below < rw.lo && (!r->at || distance(below) < distance(r->at)))
		r->at = below;
	if (above + TRAMP_BYTES <= lo && (!r->at || distance(above) < distance(r->at)))
		r->at = above;
	r->prev = hi;
	return r->prev > rw.hi && r->at > rw.hi;	/* nothing nearer beyond */
}

/*
 * Trampolines within REACH of all of the code, mirrored: a jmp rel32 reaches
 * them. Found in /proc/self/maps: the GiB below libc may be all ours (mm/arena.c's
 * aligned regions land just below the libraries), stacks or malloc's arenas.
 * Another thread may take the hole first: then a fresh look.
 */
static char *tramp_region(void)
{
	for (int tries = 0; tries < 4; tries++) {
		struct room r = { .prev = MM_PAGE_SIZE };
		char *p;

		if (mm_maps_each(room_line, &r) < 0 || !r.at || distance(r.at) > REACH)
			return NULL;
		p = mmap((void *)(uintptr_t)r.at, TRAMP_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			continue;
		if ((uintptr_t)p == r.at && mm_mirror_range(&rt.mm, p, TRAMP_BYTES) == 0)
			return p;
		munmap(p, TRAMP_BYTES);
		return NULL;
	}
	return NULL;
}

/*
 * The guest's copy of libc's code: a private mapping of libc's file, whose
 * pages are the page cache's until a site is written (copy on write: KVM's
 * MMU notifier moves the guest to the new page), where a copy of memory took
 * ~0.6 ms of page allocation per process. Used only if it holds what runs (a
 * libc upgraded since the process started, or code written meanwhile, would
 * not): else a copy of memory.
 */
static char *text_copy(size_t len)
{
	int fd = rw.path ? open(rw.path, O_RDONLY | O_CLOEXEC) : -1;
	char *p = MAP_FAILED;

	if (fd >= 0) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)rw.off);
		close(fd);
		if (p != MAP_FAILED && memcmp(p, (void *)(uintptr_t)rw.lo, len)) {
			munmap(p, len);
			p = MAP_FAILED;
		}
	}
	if (p == MAP_FAILED) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		memcpy(p, (void *)(uintptr_t)rw.lo, len);
	}
	if (mm_mirror_range(&rt.mm, p, len) < 0) {
		munmap(p, len);
		return NULL;
	}
	return p;
}

static void release(void)
{
	if (rw.tramp)
		munmap(rw.tramp, TRAMP_BYTES);
	if (rw.copy)
		munmap(rw.copy, rw.hi - rw.lo);
	free(rw.tried);
	free(rw.taken);
	free(rw.sites);
	memset(&rw, 0, sizeof(rw));
	pthread_mutex_init(&rw.lock, NULL);
}

/* .eh_frame_hdr as GNU ld writes it: a sorted table of 4-byte offsets. */
static bool table_usable(void)
{
	const uint8_t *h = rw.hdr;

	if (!h || h[0] != 1 || h[1] != 0x1b || h[2] != 0x03 || h[3] != 0x3b)
		return false;
	rw.nfde = (uint32_t)s32(h + 8);
	rw.table = h + 12;
	return true;
}

void rt_rewrite_init(void)
{
	size_t len, bits;
	const char *why = NULL;

	dl_iterate_phdr(find_libc, NULL);
	len = rw.hi - rw.lo;
	bits = (len + 7) / 8;
	if (rt_traced())	/* the copy would keep its breakpoints as they are now */
		why = "a debugger is attached: the guest runs libc's own code, breakpoints included";
	else if (!len || !table_usable())
		why = "libc's code or its .eh_frame_hdr not found";
	else if (hv_tramp_end - hv_tramp > TRAMP_SIZE)
		why = "the trampoline is too big";
	else if (!(rw.tried = calloc(1, bits)) || !(rw.taken = calloc(1, bits)) ||
		 !(rw.sites = calloc(NTRAMP, sizeof(*rw.sites))) || !(rw.copy = text_copy(len)))
		why = "out of memory";
	else if (!(rw.tramp = tramp_region()))
		why = "no room for trampolines near libc";
	else if (mm_private(&rt.mm, rw.lo, rw.hi, rw.copy) < 0) {
		why = "libc's pages cannot be the guest's own";
		rw.copy = NULL;		/* some guest entries may point there: kept */
	}
	if (why) {
		if (rt.debug)
			fprintf(stderr, "libvthread: system calls keep their trap: %s\n", why);
		release();
		return;
	}
	__atomic_store_n(&rw.on, true, __ATOMIC_RELEASE);
}

void rt_rewrite_forget(void)
{
	release();
}
