# SPDX-License-Identifier: MIT
# Shared by the shim tests: run a command natively and under vthread-run, and
# compare. Sourced with $run (vthread-run) set.

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

absolute() {
	case $1 in
	/*) echo "$1" ;;
	*) echo "$PWD/$1" ;;
	esac
}

need() {
	command -v "$1" >/dev/null || fail "$1 is not installed (.ci/deps installs it)"
}

now_ns() {
	date +%s%N
}

# stderr without the shim's and the runtime's own lines
program_stderr() {
	grep -v -e '^libvthread' -e '^  vthreads created' -e '^  exits:' -e '^  system calls made' -e '^  system calls that exited' -e '^  [0-9]* pthread (' "$1" || true
}

# compare LABEL CMD...: stdout, exit status and stderr equal natively and under
# vthread-run --stats, and at least one thread ran as a vthread. Prints the
# wall-clock ratio (shim / native), a figure for the record, not a check.
compare() {
	label=$1
	shift
	t0=$(now_ns)
	set +e
	"$@" >native.out 2>native.err
	ns=$?
	t1=$(now_ns)
	"$run" --stats -- "$@" >shim.out 2>shim.err
	ss=$?
	t2=$(now_ns)
	set -e
	[ "$ns" = "$ss" ] || fail "$label: exit status $ns natively, $ss under the shim"
	cmp -s native.out shim.out || fail "$label: standard output differs"
	program_stderr native.err >native.err2
	program_stderr shim.err >shim.err2
	cmp -s native.err2 shim.err2 || fail "$label: standard error differs"
	v=$(awk '/^libvthread-shim: [0-9]+ threads as vthreads/ { n += $2 } END { print n + 0 }' shim.err)
	[ "${v:-0}" -ge 1 ] || { cat shim.err >&2; fail "$label: no thread ran as a vthread"; }
	awk -v l="$label" -v n=$((t1 - t0)) -v s=$((t2 - t1)) -v v="$v" 'BEGIN {
		printf "%-24s native %7.3f s  shim %7.3f s  ratio %5.2f  (%d vthreads)\n",
		       l, n / 1e9, s / 1e9, s / n, v }'
}
