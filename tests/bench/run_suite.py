#!/usr/bin/python3
"""The benchmark suite runs (CTest `bench_suite`): `bench/run --smoke` on the
build's ttrun writes results.jsonl (every line a JSON object with the fields
bench/README.md lists, naive and jit-O2 present), leaderboard.md and a
well-formed speedups.svg; an unknown workload is refused with status 2.
Times nothing against a threshold: the figures are only checked to exist.

    run_suite.py --build BUILD_DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIELDS = {"name": str, "config": str, "median_ms": float, "ci95_ms": float, "min_ms": float,
          "runs": int, "cpu": str, "threads": int, "tool": str, "mode": str}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    run = [sys.executable, os.path.join(ROOT, "bench", "run")]
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run(run + ["--smoke", "--build", a.build, "--out", out],
                           capture_output=True, text=True)
        print(p.stdout, p.stderr)
        if p.returncode != 0:
            fail("bench/run --smoke exited %d" % p.returncode)
        if "CPU:" not in p.stdout:
            fail("no CPU line")
        rows = []
        with open(os.path.join(out, "results.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                for k, t in FIELDS.items():
                    if not isinstance(r.get(k), t) or (t is float and not r[k] >= 0):
                        fail("field %s of %r" % (k, r))
                if r["median_ms"] <= 0 or r["min_ms"] > r["median_ms"]:
                    fail("median/min of %r" % r)
                rows.append(r)
        configs = {r["config"] for r in rows if r["name"] == "mlp_infer_b1"}
        if not {"naive", "jit-O2"} <= configs:
            fail("configs %s" % sorted(configs))
        md = open(os.path.join(out, "leaderboard.md")).read()
        if "## mlp_infer_b1" not in md or "| jit-O2 |" not in md:
            fail("leaderboard.md lacks the workload's table")
        svg = ET.parse(os.path.join(out, "speedups.svg")).getroot()
        if not svg.tag.endswith("svg") or not any(e.tag.endswith("rect") for e in svg.iter()):
            fail("speedups.svg has no bars")
        p = subprocess.run(run + ["--build", a.build, "--out", out, "--only", "no_such"],
                           capture_output=True, text=True)
        if p.returncode != 2 or "unknown workload" not in p.stderr:
            fail("an unknown workload: status %d, %r" % (p.returncode, p.stderr))
    # the jit-O2-nofuse configuration really turns fusion off: without it the
    # profile's (heaviest) kernel is matmul_relu, with it a bare matmul
    ttrun = os.path.join(a.build, "ttrun")
    script = os.path.join(ROOT, "bench", "suite", "mlp_infer.tt")
    kernels = {}
    for fuse in ("1", "0"):
        p = subprocess.run([ttrun, "--threads=1", "--profile", script, "2", "2", "4"], cwd=ROOT,
                           env=dict(os.environ, TT_JIT_FUSE=fuse), capture_output=True, text=True)
        if p.returncode != 0:
            fail("ttrun --profile with TT_JIT_FUSE=%s: %s" % (fuse, p.stderr))
        kernels[fuse] = p.stdout + p.stderr
    if "matmul_relu" not in kernels["1"] or "matmul_relu" in kernels["0"] \
            or not re.search(r"\bk\d+_matmul\s", kernels["0"]):
        fail("TT_JIT_FUSE=0 did not change the kernels:\n%s\n---\n%s" % (kernels["1"],
                                                                          kernels["0"]))
    print("ok: %d result lines" % len(rows))


if __name__ == "__main__":
    main()
