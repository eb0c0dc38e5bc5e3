/* SPDX-License-Identifier: MIT */
/*
 * Built by install.sh against an installed libvthread with pkg-config only,
 * linked shared and fully static. Needs no KVM: it checks what a packager
 * ships (versions, the stats struct's size rule) and, static, that the
 * archive's internals do not clash with a program's own names.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <vthread.h>

#ifdef OWN_NAMES	/* names the runtime uses inside */
int rt = 42;
int mm_init(void)
{
	return 7;
}
#endif

#define CHECK(c) ((c) ? (void)0 : (void)(fails++, fprintf(stderr, "failed: %s\n", #c)))

int main(void)
{
	struct vthread_stats st = VTHREAD_STATS_INIT;
	struct {
		struct vthread_stats st;
		unsigned long newer[4];	/* a caller built against a later header */
	} big;
	int fails = 0;

	CHECK(!strcmp(vthread_version(), VTHREAD_VERSION));
	CHECK(VTHREAD_CHECK_VERSION(VTHREAD_VERSION_MAJOR, VTHREAD_VERSION_MINOR, 0));
	CHECK(!VTHREAD_CHECK_VERSION(VTHREAD_VERSION_MAJOR + 1, 0, 0));
	CHECK(vthread_get_stats(&st) == 0 && st.size == sizeof(st));
	st.size = 0;
	CHECK(vthread_get_stats(&st) == EINVAL);
	st.size = sizeof(size_t) + sizeof(unsigned long);	/* a caller that knew one counter */
	st.vcpus = 99;
	CHECK(vthread_get_stats(&st) == 0 && st.size == sizeof(size_t) + sizeof(unsigned long) &&
	      st.vcpus == 99);
	memset(&big, 0xff, sizeof(big));
	big.st.size = sizeof(big);
	CHECK(vthread_get_stats(&big.st) == 0 && big.st.size == sizeof(big.st) && !big.newer[0] &&
	      !big.newer[3]);
	CHECK(vthread_get_stats(NULL) == EINVAL);
#ifdef OWN_NAMES
	CHECK(rt == 42 && mm_init() == 7);
#endif
	printf("libvthread %s (header %s)%s: %s\n", vthread_version(), VTHREAD_VERSION,
#ifdef OWN_NAMES
	       ", static, with its own rt and mm_init",
#else
	       "",
#endif
	       fails ? "FAILED" : "ok");
	return fails != 0;
}
