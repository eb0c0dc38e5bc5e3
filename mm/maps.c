/* SPDX-License-Identifier: MIT */
/*
 * The process's mappings, a line of /proc/self/maps at a time. No malloc (the
 * fault path, a crash report) and no cancellation point (a backing thread
 * shares the guest's state): raw system calls into a buffer on the stack. Of
 * a line longer than the buffer only its start comes, once; the range is there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mm.h"

int mm_maps_each(bool (*line)(char *text, void *arg), void *arg)
{
	char buf[4096];
	size_t have = 0;
	bool skip = false, done = false;
	long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	long n;

	if (fd < 0)
		return -errno;
	while (!done && ((n = syscall(SYS_read, fd, buf + have, sizeof(buf) - 1 - have)) > 0 ||
			 (n < 0 && errno == EINTR))) {
		char *p = buf, *nl, *end = buf + have + (n > 0 ? n : 0);

		*end = '\0';
		for (; !done && (nl = memchr(p, '\n', end - p)); p = nl + 1, skip = false) {
			*nl = '\0';
			if (!skip)
				done = line(p, arg);
		}
		have = end - p;
		memmove(buf, p, have);
		if (!done && have == sizeof(buf) - 1) {
			buf[have] = '\0';
			if (!skip)
				done = line(buf, arg);
			skip = true;
			have = 0;
		}
	}
	n = done ? 0 : n < 0 ? -errno : 0;
	syscall(SYS_close, fd);
	return n;
}
