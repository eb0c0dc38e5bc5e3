/* SPDX-License-Identifier: MIT */
/*
 * vthread-run: runs a program with libvthread-shim.so preloaded, so that its
 * threads run as vthreads. It sets the shim's variables and executes the
 * program in its own place: the exit status is the program's.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHIM_NAME	"libvthread-shim.so"
#define EXIT_USAGE	125	/* as env(1): vthread-run itself failed */

static const char usage[] =
"NAME\n"
"    vthread-run - run a program's threads as vthreads (KVM vCPUs)\n"
"\n"
"SYNOPSIS\n"
"    vthread-run [--match GLOB[,GLOB...]] [--max N] [--stats] [--log] [--]\n"
"                PROGRAM [ARGS...]\n"
"\n"
"DESCRIPTION\n"
"    Executes PROGRAM with " SHIM_NAME " preloaded. Each pthread_create()\n"
"    of the program then starts a vthread instead of a pthread, unless the\n"
"    options say otherwise. The thread handle, its results and the program's\n"
"    output are those it would have with pthreads. Without a usable KVM the\n"
"    shim prints one warning and every thread is an ordinary pthread.\n"
"\n"
"OPTIONS\n"
"    --match GLOB[,GLOB...]\n"
"        Only threads whose start routine's symbol name matches one of the\n"
"        fnmatch(3) patterns become vthreads. Routines without a dynamic\n"
"        symbol (static or stripped) never match.\n"
"    --max N\n"
"        At most N vthreads live at once; later threads are pthreads.\n"
"    --stats\n"
"        At exit, print how many threads went each way and the runtime's\n"
"        exit counts (VTHREAD_STATS=1).\n"
"    --log\n"
"        Print one line per thread created: routine, vthread or pthread, and\n"
"        why (VTHREAD_SHIM_LOG=1).\n"
"    -h, --help\n"
"        Print this text.\n"
"    --version\n"
"        Print the version and exit.\n"
"\n"
"ENVIRONMENT\n"
"    The options set VTHREAD_SHIM, VTHREAD_SHIM_MATCH, VTHREAD_SHIM_MAX,\n"
"    VTHREAD_STATS and VTHREAD_SHIM_LOG, and prepend the shim to LD_PRELOAD.\n"
"    The shim is looked for next to vthread-run, then in " SHIM_LIBDIR ".\n"
"\n"
"EXIT STATUS\n"
"    PROGRAM's. 125 if vthread-run itself fails, 126 if PROGRAM cannot be\n"
"    executed, 127 if it is not found.\n";

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "vthread-run: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

/* The shim next to this program (the build tree), else the installed one. */
static void find_shim(char *path, size_t n)
{
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (len > 0) {
		self[len] = '\0';
		snprintf(path, n, "%s/" SHIM_NAME, dirname(self));
		if (access(path, R_OK) == 0)
			return;
	}
	snprintf(path, n, "%s/" SHIM_NAME, SHIM_LIBDIR);
	if (access(path, R_OK) != 0)
		die("cannot find " SHIM_NAME " next to vthread-run or in %s", SHIM_LIBDIR);
}

/* The file execvp would run for name, or NULL. */
static char *which(const char *name)
{
	const char *path = getenv("PATH");
	char *dirs, *dir, *save, *file;

	if (strchr(name, '/'))
		return strdup(name);
	dirs = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&file, "%s/%s", dir, name) < 0)
			break;
		if (access(file, X_OK) == 0) {
			free(dirs);
			return file;
		}
		free(file);
	}
	free(dirs);
	return NULL;
}

/* An ELF executable without an interpreter: the dynamic linker, and so LD_PRELOAD, never runs. */
static bool static_elf(const char *file)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	bool interp = false;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ph)) {
		close(fd);
		return false;
	}
	for (int i = 0; i < eh.e_phnum && !interp; i++)
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) == sizeof(ph))
			interp = ph.p_type == PT_INTERP;
	close(fd);
	return !interp;
}

static void preload(const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	char *v;

	if (asprintf(&v, "%s%s%s", shim, old && *old ? ":" : "", old ? old : "") < 0)
		die("%s", strerror(ENOMEM));
	setenv("LD_PRELOAD", v, 1);
	free(v);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "match", required_argument, NULL, 'm' },
		{ "max", required_argument, NULL, 'n' },
		{ "stats", no_argument, NULL, 's' },
		{ "log", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	char shim[PATH_MAX + sizeof(SHIM_NAME)];
	char *end, *file;
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			setenv("VTHREAD_SHIM", "match", 1);
			setenv("VTHREAD_SHIM_MATCH", optarg, 1);
			break;
		case 'n':
			errno = 0;
			if (!*optarg || *optarg == '-' || (strtoul(optarg, &end, 10), *end || errno))
				die("--max %s: expected a number of threads", optarg);
			setenv("VTHREAD_SHIM_MAX", optarg, 1);
			break;
		case 's':
			setenv("VTHREAD_STATS", "1", 1);
			break;
		case 'l':
			setenv("VTHREAD_SHIM_LOG", "1", 1);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			puts("vthread-run (libvthread) " VTHREAD_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'vthread-run --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		die("%s", "no program to run; try 'vthread-run --help'");
	find_shim(shim, sizeof(shim));
	preload(shim);
	file = which(argv[optind]);
	if (file && static_elf(file))
		fprintf(stderr, "vthread-run: %s is statically linked: LD_PRELOAD cannot reach it, "
				"its threads stay pthreads\n", argv[optind]);
	free(file);
	execvp(argv[optind], argv + optind);
	c = errno;
	fprintf(stderr, "vthread-run: %s: %s\n", argv[optind], strerror(c));
	return c == ENOENT ? 127 : 126;
}
