#!/usr/bin/env python3
"""vthread-bench --quick writes its JSON (schema 2) and its chart to the current
directory, with every row measured, and --compare reads the run back.

No timing is asserted: only that each row has positive medians and samples, and
that the summaries are those of the raw samples."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROWS = ["syscall", "syscall-ring", "syscall-ring-trap", "yield-ring", "trap-floor", "exit-floor", "create-join", "create-join-fresh", "first-vthread", "compute",
        "first-touch", "first-touch-thp", "random-access", "dirty-100", "dirty-10k", "prot1", "protN", "trap", "appel1",
        "appel2", "ping-pong", "mutex", "pipe-write", "pipe-write-ring", "pipe-write-handoff",
        "poke", "poke-vv", "timer", "timer-p99", "hostcall", "vthread-call",
        "sandbox-call-fork", "sandbox-call-pipe", "reset-1", "reset-16", "reset-256"]
# Under QEMU (test/lanes/kvm-or-lane) the whole quick run takes over 5 minutes:
# the rows the SVM lane runs anyway.
LANE_ROWS = ["syscall", "syscall-ring", "exit-floor", "create-join", "pipe-write", "hostcall",
             "sandbox-call-pipe", "reset-16"]

bench = os.path.abspath(sys.argv[1])
only = []
if os.environ.get("VTHREAD_LANE"):
    ROWS = LANE_ROWS
    only = ["--only", ",".join(ROWS)]
    print("in the SVM lane: rows " + " ".join(ROWS))


def run(*args, cwd=None):
    p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # A hang: every thread's stack (the vthreads' through the auto-loaded gdb script),
        # and the rows printed so far, before the kill.
        if shutil.which("gdb"):
            try:
                subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt"],
                               timeout=120)
            except subprocess.TimeoutExpired:
                print("gdb did not finish in 120 s")
        p.kill()
        out, err = p.communicate()
        sys.stdout.write(out)
        sys.stderr.write(err)
        raise AssertionError((args, "over 300 s"))
    sys.stdout.write(out)
    sys.stderr.write(err)
    assert p.returncode == 0, (args, p.returncode)
    return subprocess.CompletedProcess(args, p.returncode, out, err)


def percentiles(v):
    """vthread-bench's median, p10 and p90."""
    s, n = sorted(v), len(v)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return median, s[math.floor(0.1 * (n - 1))], s[math.ceil(0.9 * (n - 1))]


def close(a, b, rel=2e-3):
    return abs(a - b) <= rel * abs(b) + 1e-3


def check_rtt(rtt):
    """A cache line's round trip between the first two CPUs we may use, at the
    start and at the end; null with one CPU. Returns the end's over the start's,
    or the reverse: over 2, the run is noisy."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        assert rtt is None, rtt
        return 1
    assert rtt["cpus"] == cpus[:2] and rtt["start"] > 0 and rtt["end"] > 0, rtt
    return max(rtt["start"], rtt["end"]) / min(rtt["start"], rtt["end"])


with tempfile.TemporaryDirectory() as d:
    p = run(bench, "--quick", *only, cwd=d)
    with open(os.path.join(d, "vthread-bench.json")) as f:
        data = json.load(f)
    if shutil.which("gnuplot"):
        with open(os.path.join(d, "vthread-bench.svg")) as f:
            assert "<svg" in f.read(), "the chart is not an SVG"
    else:
        assert "chart: skipped, gnuplot is not installed" in p.stdout, p.stdout
    out = os.path.join(d, "vthread-bench.json")
    cmp = run(bench, "--compare", out, out).stdout.splitlines()
    run(bench, "--quick", "--scaling", cwd=d)
    with open(os.path.join(d, "vthread-scaling.json")) as f:
        scaling = json.load(f)

assert data["schema"] == 2, data.get("schema")
assert re.fullmatch(r"\d+\.\d+\.\d+", data["version"]), data["version"]
assert data["commit"] is None or data["commit"], data["commit"]
assert data["backend"] in ("kvm-pvm", "kvm-vmx", "kvm-svm"), data["backend"]
machine = data["machine"]
assert machine["cpu"] and machine["cores"] >= 1 and machine["kernel"] == data["kernel"], data
for when in ("start", "end"):
    load = data["loadavg"][when]
    assert len(load) == 3 and all(x >= 0 for x in load), (when, load)
noisy = data["noisy"]
assert noisy["verdict"] == bool(noisy["reasons"]), noisy
spread = check_rtt(data["line_rtt_ns"])  # the JSON's 3 decimals aside
assert (spread > 2) == any("round trip" in why for why in noisy["reasons"]) or abs(spread - 2) < 1e-4, data
assert ("vthread-bench: warning: a noisy run" in p.stderr) == noisy["verdict"], p.stderr
# create-join measures parked threads (under ASan none parks, and the bench says so).
assert "create-join: no vthread on a parked thread" not in p.stderr, p.stderr
names = [r["name"] for r in data["rows"]]
assert names == ROWS, names  # every backend has interrupts since 0.7.3
for r in data["rows"]:
    raw = {}
    for kind in ("native", "vthread"):
        s = r[kind]
        raw[kind] = s["raw_ns"]
        assert s["samples"] > 0 and s["median_ns"] > 0, (r["name"], kind, s)
        assert len(raw[kind]) == s["samples"] and all(x > 0 for x in raw[kind]), (r["name"], kind, s)
        assert s["p10_ns"] <= s["median_ns"] <= s["p90_ns"], (r["name"], kind, s)
        assert all(close(a, b) for a, b in zip(percentiles(raw[kind]), (s["median_ns"], s["p10_ns"], s["p90_ns"]))), \
            (r["name"], kind, s)
    paired = [v / n for v, n in zip(raw["vthread"], raw["native"])]
    ratio = (r["ratio"], r["ratio_p10"], r["ratio_p90"])
    assert r["ratio_p10"] <= r["ratio"] <= r["ratio_p90"] and r["ratio"] > 0, r
    assert all(close(a, b) for a, b in zip(percentiles(paired), ratio)), (r["name"], percentiles(paired), ratio)
    assert r["noisy"] == any(why.startswith(r["name"] + ":") for why in noisy["reasons"]), (r["name"], noisy)

# A run compared with itself: every row within noise, no change.
assert cmp[-1] == "0 changed, %d within noise" % len(ROWS), cmp
for line in cmp[3:-1]:
    assert line.endswith(" +0.0%  within noise"), line
# --scaling: every load at 1, 2, 4 ... thread counts up to every core.
cores = scaling["cores"]
counts = [1 << i for i in range(cores.bit_length()) if 1 << i < cores] + [cores]
assert scaling["schema"] == 1 and scaling["version"] == data["version"], scaling
assert scaling["backend"] == data["backend"] and cores == machine["cores"], scaling
assert [l["name"] for l in scaling["loads"]] == ["syscall", "pipe", "create-join"], scaling
noisy = 0
for l in scaling["loads"]:
    assert [p["threads"] for p in l["points"]] == counts, l
    for p in l["points"]:
        for k in ("pthread", "vthread"):
            assert 0 < p[k + "_p10"] <= p[k] <= p[k + "_p90"], p
        # noisy: either kind's samples spread over 2x (the JSON's 6 digits aside)
        spread = max(p[k + "_p90"] / p[k + "_p10"] for k in ("pthread", "vthread"))
        assert p["noisy"] == (spread > 2) or abs(spread - 2) < 1e-4, p
        noisy += p["noisy"]
assert scaling["noisy_points"] == noisy, scaling
check_rtt(scaling["line_rtt_ns"])
print("bench JSON: schema 2, every row present and well formed; --compare reads it back")
