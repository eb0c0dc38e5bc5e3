#!/usr/bin/env python3
"""vthread-bench's modes that need no KVM: --version (and vthread-demo's), --compare
of a schema 1 and a schema 2 run, and --plot (the chart, with gnuplot and without).

usage: check_bench_compare.py BENCH DEMO VERSION A-SCHEMA1.json B-SCHEMA2.json"""
import os
import re
import subprocess
import sys
import tempfile

bench, demo, version, old, new = sys.argv[1:]


def run(*args, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


for prog, name in ((bench, "vthread-bench"), (demo, "vthread-demo")):
    p = run(prog, "--version")
    assert p.returncode == 0 and p.stdout == "%s (libvthread) %s\n" % (name, version), (p.stdout, p.stderr)

p = run(bench, "--compare", old, new)
assert p.returncode == 0, p.stderr
out = p.stdout.splitlines()
assert out[0] == "A: %s (schema 1): libvthread (version unknown), kvm-pvm, Test CPU, 2 cores" % old, out[0]
assert out[1] == "B: %s (schema 2): libvthread 0.2.0 (abc1234), kvm-pvm, Test CPU, 2 cores (a noisy run)" % new, out[1]
rows = {line.split()[0]: " ".join(line.split()[1:]) for line in out[3:-1]}
# Schema 1: the ratio of the medians, whiskers vthread p10 / native p90 to vthread p90 / native p10.
assert rows == {
    "syscall": "200.00x [180.95, 221.05] 20.00x [18.00, 22.00] -90.0% changed",
    "create-join": "7.00x [5.71, 8.80] 7.70x [6.90, 8.50] +10.0% within noise",
    "compute": "1.10x [1.00, 1.21] 2.20x [2.00, 2.40] +100.0% changed",
    "mutex": "0.80x [0.57, 1.12] - only in A",
    "hostcall": "- 30000.00x [20000.00, 50000.00] only in B",
}, rows
assert out[-1] == "2 changed, 1 within noise", out[-1]

p = run(bench, "--compare", old, os.path.join(os.path.dirname(old), "missing.json"))
assert p.returncode == 1 and "missing.json" in p.stderr, (p.returncode, p.stderr)
p = run(bench, "--compare", old)
assert p.returncode == 2, p.returncode

with tempfile.TemporaryDirectory() as d:
    p = run(bench, "--plot", new, "--out", os.path.join(d, "charts"))
    svg = os.path.join(d, "charts", "vthread-bench.svg")
    assert p.returncode == 0 and p.stdout == "chart: %s\n" % svg, (p.stdout, p.stderr)
    with open(svg) as f:
        chart = f.read()
    assert "<svg" in chart and "libvthread 0.2.0 (abc1234), kvm-pvm" in chart, chart[:200]
    for name in ("syscall", "create-join", "compute", "hostcall", "30000x (off the axis)"):
        assert re.search(r">%s<" % re.escape(name), chart), name
    # Without gnuplot a chart asked for is an error.
    p = run(bench, "--plot", new, "--svg", os.path.join(d, "none.svg"), env={"PATH": d})
    assert p.returncode == 1 and "gnuplot is not installed" in p.stderr, (p.returncode, p.stderr)
print("bench: --version, --compare (schema 1 and 2) and --plot as expected")
