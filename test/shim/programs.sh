#!/bin/sh
# SPDX-License-Identifier: MIT
# Real multithreaded programs from Debian packages, natively and under
# vthread-run: the same output and exit status, with vthreads.
# usage: programs.sh VTHREAD_RUN WORKDIR pigz|zstd|xz|sort|python PYTHON_SCRIPT
set -eu
run=$1
work=$2
case=$3
. "$(dirname "$0")/lib.sh"
run=$(absolute "$run")
script=$(absolute "${4:-}")
mkdir -p "$work"
cd "$work"

# 64 MiB of base64 text from a fixed seed, made once per build directory.
data64() {
	[ -s data64 ] || python3 -c 'import base64, random, sys
sys.stdout.buffer.write(base64.encodebytes(random.Random(4).randbytes(48 << 20)))' >data64
}

case $case in
pigz)
	need pigz
	data64
	compare "pigz -p 2 compress" pigz -p 2 -c data64
	cp native.out data64.gz
	compare "pigz -p 2 decompress" pigz -p 2 -dc data64.gz
	cmp -s shim.out data64 || fail "pigz: decompressed data differs from the input"
	;;
zstd)
	need zstd
	data64
	compare "zstd -T2 compress" zstd -T2 -q -c data64
	cp native.out data64.zst
	compare "zstd -T2 decompress" zstd -T2 -q -dc data64.zst
	cmp -s shim.out data64 || fail "zstd: decompressed data differs from the input"
	;;
xz)
	need xz
	data64
	head -c 16M data64 >data16	# 3 MiB blocks at -1: both threads get work
	compare "xz -T2 -1 compress" xz -T2 -1 -c data16
	cp native.out data16.xz
	compare "xz -T2 decompress" xz -T2 -dc data16.xz
	cmp -s shim.out data16 || fail "xz: decompressed data differs from the input"
	;;
sort)
	need sort
	[ -s lines ] || python3 -c 'import random
r = random.Random(7)
w = "alpha beta gamma delta epsilon zeta eta theta".split()
print("\n".join("%s %d %s" % (r.choice(w), r.randrange(10**9), r.choice(w))
                for _ in range(1000000)))' >lines
	compare "sort --parallel=2" sort --parallel=2 -S 64M lines
	;;
python)
	need python3
	compare "python3 threading" python3 "$script"
	;;
*)
	fail "unknown case $case"
	;;
esac
