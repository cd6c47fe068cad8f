#!/usr/bin/env python3
"""run_trace.py - ttrun --trace=FILE writes Chrome trace events.

On both backends: the file is one JSON object in the Trace Event format;
every graph the run executed is one "graph" event on the main thread's row,
named with its number; the JIT adds a "compile" event per compiled graph and
a "kernel" event per kernel run, each inside the span of a graph; the naive
runtime adds one "op" event per node run; with --threads=2 a parallel loop
puts a "parallel range" on a worker's row. The workers claim ranges as
they come, so the loops are made long enough (a few milliseconds) for a
worker that was asleep to wake and take some; even so, when the other core
is busy (the suite runs two tests at once on two cores) the main thread can
finish a loop alone, which is what the pool is for. So the JIT's run is
repeated, up to 8 times, until one puts a range on a worker's row; every
other check holds for every run. A destination in a missing
directory is an error naming it, status 1, and nothing is written.

    run_trace.py --ttrun PATH
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

PROGRAM = """let a = randn([2048, 2048])
let x = relu(a) * 2.0 + 1.0
print(item(sum(x)) > 0.0)
let y = sum(exp(a * 0.01))
print(y > 0.0)
"""


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def run(ttrun, args, script):
    return subprocess.run([ttrun] + args + [script], capture_output=True, text=True,
                          timeout=120)


def check(ttrun, backend, tmp, script):
    out = os.path.join(tmp, "trace_%s.json" % backend)
    p = run(ttrun, ["--backend=" + backend, "--threads=2", "--trace=" + out], script)
    if p.returncode != 0:
        fail("%s: status %d: %s" % (backend, p.returncode, p.stderr))
    if p.stdout.split() != ["true", "1."]:
        fail("%s: output %r" % (backend, p.stdout))
    with open(out) as f:
        d = json.load(f)
    ev = [e for e in d["traceEvents"] if e["ph"] == "X"]
    meta = [e for e in d["traceEvents"] if e["ph"] == "M"]
    if not any(e["name"] == "thread_name" and e["args"]["name"] == "main" for e in meta):
        fail("%s: no thread_name metadata for the main thread" % backend)
    graphs = [e for e in ev if e["cat"] == "graph"]
    if len(graphs) < 2 or not all(e["tid"] == 1 for e in graphs):
        fail("%s: graph events %r" % (backend, graphs))
    if not all(e["name"].startswith("graph ") and backend in e["name"] for e in graphs):
        fail("%s: graph event names %r" % (backend, [e["name"] for e in graphs]))
    for e in ev:
        if e["dur"] < 0 or e["ts"] < 0:
            fail("%s: negative time in %r" % (backend, e))
    inner = [e for e in ev if e["cat"] == ("kernel" if backend == "jit" else "op")]
    if not inner:
        fail("%s: no %s events" % (backend, "kernel" if backend == "jit" else "op"))
    eps = 1.0  # us: the graph's clock reads bracket the kernels' own
    for e in inner:
        if not any(g["ts"] - eps <= e["ts"] and e["ts"] + e["dur"] <= g["ts"] + g["dur"] + eps
                   for g in graphs):
            fail("%s: %r lies outside every graph" % (backend, e))
    if backend == "naive" and not any(e["name"] == "exp" for e in inner):
        fail("naive: no op event named exp: %r" % sorted({e["name"] for e in inner}))
    if backend == "jit":
        if not any(e["cat"] == "compile" for e in ev):
            fail("jit: no compile event")
        return any(e["cat"] == "parallel" and e["tid"] >= 2 for e in ev)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "t.tt")
        with open(script, "w") as f:
            f.write(PROGRAM)
        check(a.ttrun, "naive", tmp, script)
        if not any(check(a.ttrun, "jit", tmp, script) for _ in range(8)):
            fail("jit: no parallel range on a worker's row at --threads=2 in 8 runs")
        bad = os.path.join(tmp, "missing", "t.json")
        p = run(a.ttrun, ["--trace=" + bad], script)
        if p.returncode != 1 or bad not in p.stderr or "--trace" not in p.stderr:
            fail("missing directory: status %d, stderr %r" % (p.returncode, p.stderr))
        if os.path.exists(os.path.join(tmp, "missing")):
            fail("missing directory: something was created")
    print("trace: ok")


if __name__ == "__main__":
    main()
