#!/usr/bin/env python3
"""run_capture.py - captured calls change nothing a script prints.

Runs each tests/capture/*.tt twice on the JIT, with captured calls on
(TT_CAPTURE=1) and off (TT_CAPTURE=0), and requires the same stdout, byte
for byte (losses are printed as the f32 values the steps computed, so a
replay must be bit-identical), exit status 0, and that the captured run did
replay calls (its --profile line "capture: R recorded, H replayed, ..."
has H > 0); the uncaptured run must replay none.

usage: python3 tests/run_capture.py --ttrun PATH [--only SUBSTR] DIR
(run from the source root: the scripts read data/)
"""
import argparse
import os
import re
import subprocess
import sys

LINE = re.compile(r"capture: (\d+) recorded, (\d+) replayed, (\d+) guard misses, (\d+) callees")


def run(ttrun, path, capture):
    env = dict(os.environ, TT_CAPTURE="1" if capture else "0")
    p = subprocess.run([ttrun, "--threads=1", "--profile", path], env=env,
                       capture_output=True, text=True, timeout=600)
    m = LINE.search(p.stderr)
    hits = int(m.group(2)) if m else 0
    return p.returncode, p.stdout, p.stderr, hits, m.group(0) if m else "no capture line"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("dir")
    args = ap.parse_args()
    files = sorted(f for f in os.listdir(args.dir) if f.endswith(".tt") and args.only in f)
    bad = 0
    for f in files:
        path = os.path.join(args.dir, f)
        rc1, out1, err1, hits1, line1 = run(args.ttrun, path, True)
        rc0, out0, err0, hits0, _ = run(args.ttrun, path, False)
        problems = []
        if rc1 != 0 or rc0 != 0:
            problems.append("exit status %d (capture on), %d (off):\n%s%s" % (rc1, rc0, err1, err0))
        if out1 != out0:
            a, b = out1.splitlines(), out0.splitlines()
            for i in range(max(len(a), len(b))):
                x = a[i] if i < len(a) else "<none>"
                y = b[i] if i < len(b) else "<none>"
                if x != y:
                    problems.append("stdout differs at line %d:\n  on:  %s\n  off: %s" % (i + 1, x, y))
                    break
        if hits1 == 0:
            problems.append("nothing was replayed (%s)" % line1)
        if hits0 != 0:
            problems.append("TT_CAPTURE=0 replayed %d calls" % hits0)
        if problems:
            bad += 1
            print("FAIL %s\n  %s" % (f, "\n  ".join(problems)))
        else:
            print("ok   %s (%d lines; %s)" % (f, len(out1.splitlines()), line1))
    print("%d of %d failed" % (bad, len(files)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
