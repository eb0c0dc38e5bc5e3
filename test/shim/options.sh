#!/bin/sh
# SPDX-License-Identifier: MIT
# Our pthread program under the shim, then the shim's selection, its fallbacks
# and vthread-run's own behaviour.
# usage: options.sh VTHREAD_RUN WORKDIR PTHREAD_PROG STATIC_PROG ATTR_PROG ZYDIS_SONAME
set -eu
run=$1
work=$2
prog=$3
. "$(dirname "$0")/lib.sh"
run=$(absolute "$run")
prog=$(absolute "$prog")
static_prog=$(absolute "$4")
attr_prog=$(absolute "$5")
zydis=$6	# the soname the build dlopen()s
mkdir -p "$work"
cd "$work"

# lines of FILE matching PATTERN (grep -c, without its exit status)
count() {
	grep -c -e "$2" "$1" || true
}

echo "== cancel, cleanup, once, barrier, condvars, TSD, exit, join, kill, stack"
compare "pthread program" "$prog"
[ "$(count shim.err '^libvthread-shim: 18 threads as vthreads, 1 as pthreads')" = 1 ] ||
	fail "not 18 threads as vthreads (one made inside a vthread) and as a pthread the one refused"

echo "== --stats: one report, also when the program ends with _exit()"
"$run" --stats -- "$prog" _exit >shim.out 2>shim.err
cmp -s native.out shim.out || fail "_exit: output differs"
# one from the program, none from its child, which made no threads
[ "$(count shim.err '^libvthread-shim: 18 threads as vthreads, 1 as pthreads')" = 1 ] &&
	[ "$(count shim.err '^libvthread-shim: [0-9]* threads as vthreads')" = 1 ] &&
	[ "$(count shim.err '^libvthread stats: backend')" = 1 ] ||
	{ cat shim.err >&2; fail "_exit: not one report"; }

echo "== --match: only the routines named"
"$run" --log --match 'worker_sum,victim_*,worker_static' -- "$prog" >shim.out 2>shim.err
cmp -s native.out shim.out || fail "--match: output differs"
[ "$(count shim.err ', worker_sum: vthread$')" = 4 ] || fail "--match: worker_sum not a vthread"
[ "$(count shim.err ', victim_[a-z_]*: vthread$')" = 3 ] || fail "--match: victim_* not vthreads"
[ "$(count shim.err ', worker_consume: pthread (no VTHREAD_SHIM_MATCH pattern matches)$')" = 1 ] ||
	fail "--match: worker_consume not a pthread"
# a static function: named by the symbol table (libdw), not the dynamic one
[ "$(count shim.err ', worker_static: vthread$')" = 1 ] || fail "--match: static worker_static not found"
[ "$(count shim.err ': vthread$')" = 8 ] || fail "--match: more vthreads than named"

echo "== --log: one line per thread"
"$run" --log -- "$prog" >shim.out 2>shim.err
[ "$(wc -l <shim.err)" = 19 ] || fail "--log: not one line per thread"
[ "$(count shim.err ', worker_child: vthread$')" = 1 ] ||
	fail "--log: the thread made inside a vthread is not a vthread"
# pthread_create's own error for the attributes, not EAGAIN
[ "$(count shim.err ', worker_refused: pthread (vthread_create failed): Invalid argument$')" = 1 ] ||
	fail "--log: the refused thread's error is not pthread_create's EINVAL"

echo "== routines are named (libdw loaded, milliseconds) only for --match and --log"
LD_DEBUG=files "$run" -- "$prog" >shim.out 2>shim.err
[ "$(count shim.err 'file=libdw\.so')" = 0 ] || fail "libdw loaded without --match or --log"
LD_DEBUG=files "$run" --log -- "$prog" >shim.out 2>shim.err
[ "$(count shim.err 'file=libdw\.so.*dynamically loaded')" = 1 ] || fail "--log: libdw not loaded"

echo "== --max 1: the rest fall back to pthreads"
"$run" --log --max 1 -- "$prog" >shim.out 2>shim.err
cmp -s native.out shim.out || fail "--max: output differs"
[ "$(count shim.err 'pthread (VTHREAD_SHIM_MAX live vthreads reached)')" -ge 3 ] ||
	fail "--max 1: barrier workers did not fall back"

echo "== VTHREAD_SHIM=none"
VTHREAD_SHIM=none "$run" --stats -- "$prog" >shim.out 2>shim.err
cmp -s native.out shim.out || fail "none: output differs"
[ "$(count shim.err '^libvthread-shim: 0 threads as vthreads, 19 as pthreads')" = 1 ] ||
	fail "none: some thread was a vthread"

echo "== a bad setting: one error line, and the program runs without the shim"
for bad in VTHREAD_SHIM=some VTHREAD_SHIM_MAX=lots VTHREAD_SHIM_LOG=yes VTHREAD_SHIM=match VTHREAD_STATS=yes; do
	env "$bad" LD_PRELOAD="$(dirname "$run")/libvthread-shim.so" "$prog" >shim.out 2>shim.err
	cmp -s native.out shim.out || fail "$bad: output differs"
	[ "$(wc -l <shim.err)" = 1 ] && [ "$(count shim.err 'running without the shim$')" = 1 ] ||
		{ cat shim.err >&2; fail "$bad: not exactly one error line"; }
done

echo "== no usable KVM: one warning line, pthreads, the same output"
VTHREAD_KVM=/nonexistent/kvm "$run" -- "$prog" >shim.out 2>shim.err
cmp -s native.out shim.out || fail "no KVM: output differs"
[ "$(wc -l <shim.err)" = 1 ] && [ "$(count shim.err '^libvthread-shim: no backend for vthreads (cannot open /nonexistent/kvm')" = 1 ] ||
	{ cat shim.err >&2; fail "no KVM: not exactly one warning line"; }

echo "== no Zydis (loaded with the VM): one warning line, pthreads, the same output"
mkdir -p nozydis
cp "$(gcc -print-file-name=libffi.so)" "nozydis/$zydis"	# a library without Zydis's functions
LD_LIBRARY_PATH=$PWD/nozydis "$run" -- "$prog" >shim.out 2>shim.err
cmp -s native.out shim.out || fail "no Zydis: output differs"
[ "$(wc -l <shim.err)" = 1 ] && [ "$(count shim.err '^libvthread-shim: no backend for vthreads (Zydis cannot be loaded')" = 1 ] ||
	{ cat shim.err >&2; fail "no Zydis: not exactly one warning line naming it"; }

echo "== vthread-run itself"
"$run" --help | grep -q '^SYNOPSIS' || fail "--help has no SYNOPSIS"
set +e
"$run" -- sh -c 'exit 3'; [ $? = 3 ] || fail "exit status not the program's"
"$run" -- sh -c 'kill -TERM $$'; [ $? = 143 ] || fail "death by signal not passed on"
"$run" -- /nonexistent/program 2>/dev/null; [ $? = 127 ] || fail "missing program: not 127"
"$run" --max many -- true 2>/dev/null; [ $? = 125 ] || fail "--max many: not 125"
"$run" --max 18446744073709551616 -- true 2>/dev/null; [ $? = 125 ] || fail "--max 2^64: not 125"
"$run" --max 18446744073709551615 -- "$prog" >shim.out 2>shim.err || fail "--max 2^64-1: failed"
cmp -s native.out shim.out && [ ! -s shim.err ] || fail "--max 2^64-1: the shim refused it"
"$run" 2>/dev/null; [ $? = 125 ] || fail "no program: not 125"
"$run" -- "$static_prog" 2>shim.err
grep -q 'is statically linked' shim.err || fail "a static program is not warned about"
"$run" -- true 2>shim.err
[ ! -s shim.err ] || fail "a dynamic program is warned about"
set -e

echo "== every attribute combination; semaphores while the main thread has ended"
compare "attribute combinations" "$attr_prog"
grep -q '^attributes: 48 combinations, all passed$' shim.out || fail "attribute combinations failed"
# CI runs as root; elsewhere SCHED_FIFO may be refused, the same natively
grep -q '^real-time preemption: \(checked\|not permitted here\)$' shim.out || fail "real-time preemption"
grep -q '^semaphores: 4 consumed; all passed$' shim.out || fail "semaphores failed"
echo "all passed"
