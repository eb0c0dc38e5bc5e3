/* SPDX-License-Identifier: MIT */
/*
 * dlopen_prog LIB: a program that does not link libvthread loads it with dlopen,
 * as a plugin or a language binding would, and runs a vthread through it. The
 * runtime's TLS must fit the static TLS a dlopen()ed library may use.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

typedef struct vthread *vthread_t;

static void *ask_parent(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)getppid();
}

#define SYM(name) (name = dlsym(lib, #name)) ? (void)0 : (void)(missing = #name)

int main(int argc, char **argv)
{
	int (*vthread_create)(vthread_t *, const void *, void *(*)(void *), void *);
	int (*vthread_join)(vthread_t, void **);
	const char *(*vthread_version)(void), *(*vthread_backend)(void);
	const char *(*vthread_backend_error)(void);
	const char *missing = NULL;
	vthread_t vt;
	void *lib, *ret = NULL;
	int err;

	if (argc != 2)
		return 2;
	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	SYM(vthread_create), SYM(vthread_join), SYM(vthread_version), SYM(vthread_backend);
	SYM(vthread_backend_error);
	if (missing) {
		fprintf(stderr, "dlsym %s: %s\n", missing, dlerror());
		return 1;
	}
	err = vthread_create(&vt, NULL, ask_parent, NULL);
	if (err) {
		fprintf(stderr, "vthread_create: %d (%s)\n", err, vthread_backend_error());
		return 1;
	}
	vthread_join(vt, &ret);
	printf("libvthread %s dlopened, backend %s, getppid in a vthread: %ld (host: %ld)\n",
	       vthread_version(), vthread_backend(), (long)(intptr_t)ret, (long)getppid());
	return (intptr_t)ret == getppid() ? 0 : 1;
}
