#!/usr/bin/env python3
"""Golden tests: each tests/golden/NAME.cmd holds one command line (its first
word is `ttrun` or `ttc`); its standard output must equal NAME.out exactly and
its exit status must be 0 (or the number in NAME.status). NAME.stdin, when
present, is fed to the command (a REPL session). Every examples/*.tt
must be covered by some .cmd file.

A `ttrun` command that names no backend runs twice: on the default backend
(the JIT), compared exactly, and on the reference (--backend=naive), compared
token by token with numbers allowed to differ by a small tolerance (the
backends round differently: the JIT contracts multiply-adds into FMAs).
NAME.tol, when present, holds "RTOL ATOL" for that test's naive comparison
(and a comment line saying why it needs more than the default).

A token {LO..HI} in NAME.out matches any number from LO to HI, on both
backends: for outputs that are only bounded (an accuracy after a short
training run, a measured speed-up), e.g. `accuracy {0.80..0.90}`.

    run_golden.py --ttrun PATH --ttc PATH SOURCE_ROOT [--only SUBSTR] [--update]
"""
import argparse
import re
import difflib
import os
import shlex
import subprocess
import sys
import time


NUM = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
BOUND = re.compile(r"^\{([^.{}]*(?:\.\d+)?)\.\.([^{}]*)\}$")


def in_bounds(want, got):
    """True when want is a {LO..HI} token and got a number within it."""
    m = BOUND.match(want)
    return bool(m and NUM.match(got) and float(m.group(1)) <= float(got) <= float(m.group(2)))


def close_enough(want, got, rtol=5e-3, atol=1e-3, exact=False):
    """Compares outputs token by token; numbers within tolerance. Measured:
    the reference's largest difference is 0.0028 (a test accuracy after a
    few epochs of training, 0.9638 vs 0.9666); this allows about twice that.
    {LO..HI} tokens bound numbers; with exact, other tokens must be equal."""
    wl, gl = want.splitlines(), got.splitlines()
    if len(wl) != len(gl):
        return f"{len(gl)} lines, expected {len(wl)}"
    for i, (w, g) in enumerate(zip(wl, gl), 1):
        wt = re.split(r"([\s\[\],()]+)", w)
        gt = re.split(r"([\s\[\],()]+)", g)
        if len(wt) != len(gt):
            return f"line {i}: {g!r}, expected {w!r}"
        for a, b in zip(wt, gt):
            if a == b or in_bounds(a, b) or (not a.strip() and not b.strip()):
                continue  # (a padded column's width follows its number's)
            if not exact and NUM.match(a) and NUM.match(b):
                x, y = float(a), float(b)
                if abs(x - y) <= atol + rtol * abs(x):
                    continue
            return f"line {i}: {g!r}, expected {w!r}"
    return None


def run(argv, root, timeout, stdin=None):
    try:
        return subprocess.run(argv, cwd=root, capture_output=True, text=True,
                              timeout=timeout, input=stdin)
    except subprocess.TimeoutExpired:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    ap.add_argument("--ttc", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--update", action="store_true",
                    help="rewrite the .out files from the actual output")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("root")
    a = ap.parse_args()
    gdir = os.path.join(a.root, "tests", "golden")
    cmds = sorted(f for f in os.listdir(gdir) if f.endswith(".cmd"))
    tools = {"ttrun": a.ttrun, "ttc": a.ttc}
    passed = failed = 0
    covered = set()
    for c in cmds:
        name = c[:-4]
        with open(os.path.join(gdir, c)) as f:
            line = f.read().strip()
        argv = shlex.split(line)
        for w in argv[1:]:
            if w.startswith("examples/") and w.endswith(".tt"):
                covered.add(os.path.basename(w))
        if a.only and a.only not in name:
            continue
        if argv[0] not in tools:
            print(f"FAIL {name}: command must start with ttrun or ttc")
            failed += 1
            continue
        argv[0] = tools[argv[0]]
        t0 = time.time()
        stdin = None
        ipath = os.path.join(gdir, name + ".stdin")
        if os.path.exists(ipath):  # a REPL session: the lines typed
            stdin = open(ipath).read()
        p = run(argv, a.root, a.timeout, stdin)
        if p is None:
            print(f"FAIL {name}: timed out after {a.timeout}s")
            failed += 1
            continue
        dt = time.time() - t0
        naive = None
        if line.split()[0] == "ttrun" and not any(w.startswith("--backend") for w in argv):
            naive = run([argv[0], "--backend=naive"] + argv[1:], a.root, a.timeout, stdin)
        want_status = 0
        spath = os.path.join(gdir, name + ".status")
        if os.path.exists(spath):
            want_status = int(open(spath).read().strip())
        opath = os.path.join(gdir, name + ".out")
        if a.update:
            with open(opath, "w") as f:
                f.write(p.stdout)
        want = open(opath).read() if os.path.exists(opath) else None
        problems = []
        if p.returncode != want_status:
            problems.append(f"exit status {p.returncode}, expected {want_status}")
        if want is None:
            problems.append(f"missing {opath}")
        elif p.stdout != want and ("{" not in want or close_enough(want, p.stdout, exact=True)):
            diff = difflib.unified_diff(want.splitlines(), p.stdout.splitlines(),
                                        "expected", "actual", lineterm="", n=2)
            problems.append("output differs:\n" + "\n".join(list(diff)[:60]))
        if want is not None and naive is not None and line.split()[0] == "ttrun":
            if naive.returncode != want_status:
                problems.append(f"--backend=naive: exit status {naive.returncode}")
            else:
                tol = {}
                tpath = os.path.join(gdir, name + ".tol")
                if os.path.exists(tpath):
                    words = [l for l in open(tpath).read().splitlines()
                             if l.strip() and not l.startswith("#")][0].split()
                    tol = {"rtol": float(words[0]), "atol": float(words[1])}
                why = close_enough(want, naive.stdout, **tol)
                if why:
                    problems.append(f"--backend=naive differs beyond tolerance: {why}")
        elif line.split()[0] == "ttrun" and naive is None and "--backend" not in line:
            problems.append("--backend=naive: timed out")
        if problems:
            print(f"FAIL {name} ({dt:.1f}s): " + "; ".join(problems))
            if p.stderr.strip():
                print("  stderr:\n" + "\n".join("    " + l for l in
                                                p.stderr.strip().splitlines()[-25:]))
            failed += 1
        else:
            print(f"PASS {name} ({dt:.1f}s)")
            passed += 1
    if not a.only:
        for ex in sorted(os.listdir(os.path.join(a.root, "examples"))):
            if ex.endswith(".tt") and ex not in covered:
                print(f"FAIL examples/{ex}: no golden test runs it")
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
