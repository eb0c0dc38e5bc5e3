#!/usr/bin/env python3
"""vthread-bench --quick --json writes well-formed JSON with every row measured.

No timing is asserted: only that each row has positive medians and samples."""
import json
import os
import subprocess
import sys
import tempfile

ROWS = ["syscall", "syscall-ring", "exit-floor", "create-join", "first-vthread", "compute",
        "first-touch", "random-access", "ping-pong", "mutex", "pipe-write", "pipe-write-ring",
        "hostcall", "vthread-call"]

# Under QEMU (test/lanes/kvm-or-lane) the whole quick run takes over 5 minutes:
# the rows the SVM lane runs anyway.
LANE_ROWS = ["syscall", "syscall-ring", "exit-floor", "create-join", "pipe-write", "hostcall"]

bench = sys.argv[1]
only = []
if os.environ.get("VTHREAD_LANE"):
    ROWS = LANE_ROWS
    only = ["--only", ",".join(ROWS)]
    print("in the SVM lane: rows " + " ".join(ROWS))
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "bench.json")
    svg = os.path.join(d, "bench.svg")
    subprocess.run([bench, "--quick", "--json", out, "--svg", svg] + only, check=True, timeout=300)
    with open(out) as f:
        data = json.load(f)
    with open(svg) as f:
        assert f.read().startswith("<svg"), "the chart is not an SVG"

assert data["backend"] in ("kvm-pvm", "kvm-vmx", "kvm-svm"), data["backend"]
assert data["kernel"] and data["machine"]["cpu"], data
names = [r["name"] for r in data["rows"]]
assert names == ROWS, names
for r in data["rows"]:
    for kind in ("native", "vthread"):
        s = r[kind]
        assert s["samples"] > 0 and s["median_ns"] > 0, (r["name"], kind, s)
        assert s["p10_ns"] <= s["median_ns"] <= s["p90_ns"], (r["name"], kind, s)
    assert r["ratio"] > 0, r
print("bench JSON: every row present and well formed")
