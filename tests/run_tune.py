#!/usr/bin/env python3
"""run_tune.py - GEMM and vector schedule tuning end to end (gemm_tune.c, vtune.c).

With TT_TUNE=1 the first product of a shape class times the candidate
schedules and stores the winner in the compiled-code cache directory; a
second process reads it back. The tuning cache follows the object cache's
trust rules (objcache.h): a directory writable by others is neither read
nor written, an entry writable by others is a miss. Every schedule gives
bit-identical results, so the script prints the same whatever was chosen.
--explain-schedule and --profile say which schedule each product got.
The vector schedule of the JIT's loops (compiler/jit/vtune.c) is tuned,
cached and explained the same way, once per host.

    run_tune.py --ttrun PATH
"""
import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

PROGRAM = """let a = randn([96, 96], seed=1)
let b = randn([96, 96], seed=2)
print(sum(a @ b))
"""
# one conv2d, trained a step: its forward and weight gradient are two
# geometries (x needs no gradient)
CONV_PROGRAM = """let x = randn([4, 3, 12, 12], seed=1)
let w = randn([8, 3, 3, 3], seed=2)
model M(w) {
    param w = w
    forward(x) { return conv2d(x, w, padding=1) }
}
let m = M(w)
let y = m(x * 1.0)
backward(sum(y * y))
print(round(item(sum(m.w.grad)) * 100) / 100)
"""
SHAPE = "96x96x96 (1 run; class M<=256 N<=256 K<=256): "


def run(ttrun, script, cache, tune="1", flag="--explain-schedule", lanes=None, load=None):
    env = dict(os.environ, TT_CACHE_DIR=cache, TT_TUNE=tune)
    if tune is None:
        env.pop("TT_TUNE")
    env.pop("TT_TUNE_LOADAVG", None)
    if load is not None:
        env["TT_TUNE_LOADAVG"] = load
    env.pop("TT_CACHE_DEBUG", None)
    env.pop("TT_GEMM_LANES", None)
    if lanes:
        env["TT_GEMM_LANES"] = lanes
    return subprocess.run([ttrun, "--backend=jit", "--threads=1", flag, script], env=env,
                          capture_output=True, text=True, timeout=120)


def line_for(stderr):
    for l in stderr.splitlines():
        if SHAPE in l:
            return l
    return ""


def vec_line(stderr):
    for l in stderr.splitlines():
        if l.startswith("vector loops ("):
            return l
    return ""


def vec_alternatives(stderr):
    return len(re.findall(r"^\s+[* ] (LLVM's choice|\d+ lanes x \d+): [\d.]+ us$", stderr, re.M))


def alternatives(stderr):
    return len(re.findall(r"^\s+[* ] \d+x\d+/\d+ lanes .*: [\d.]+ GFLOP/s$", stderr, re.M))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    args = ap.parse_args()
    problems = []

    def check(cond, what):
        if not cond:
            problems.append(what)
        return cond

    with tempfile.TemporaryDirectory(prefix="tt_tune_test_") as top:
        script = os.path.join(top, "prog.tt")
        with open(script, "w") as f:
            f.write(PROGRAM)
        private = os.path.join(top, "private")

        # tuning off: the default table, nothing timed
        p = run(args.ttrun, script, private, tune="0")
        want = p.stdout
        check(p.returncode == 0 and want.strip(), "TT_TUNE=0: %r %r" % (p.stdout, p.stderr))
        check("default table (TT_TUNE=0)" in line_for(p.stderr) and alternatives(p.stderr) == 0,
              "TT_TUNE=0: %r" % p.stderr)
        check(vec_line(p.stderr).endswith(": LLVM's choice, TT_TUNE=0")
              and vec_alternatives(p.stderr) == 0, "TT_TUNE=0, vector loops: %r" % p.stderr)

        # no tuning cache: the vector schedule is not timed (a process would
        # pay it every time), LLVM's choice
        p = run(args.ttrun, script, "off")
        check(p.stdout == want and vec_line(p.stderr).endswith(
            ": LLVM's choice, no tuning cache: not tuned"), "cache off, vector loops: %r" % p.stderr)

        # TT_TUNE unset on a busy machine (a load average of 99): the
        # default table, nothing timed, nothing stored (the next run, with
        # TT_TUNE=1 on the same busy machine, tunes: no entry was found)
        p = run(args.ttrun, script, private, tune=None, load="99")
        check(p.returncode == 0 and p.stdout == want, "busy: %r %r" % (p.stdout, p.stderr))
        check("default table (machine busy: load 99.0 on " in line_for(p.stderr)
              and alternatives(p.stderr) == 0, "busy: tuned: %r" % p.stderr)
        check(": LLVM's choice, machine busy: load 99.0 on " in vec_line(p.stderr)
              and vec_alternatives(p.stderr) == 0, "busy, vector loops: %r" % p.stderr)

        # cold: tuned now, every candidate timed, one of them starred
        p = run(args.ttrun, script, private, load="99")
        check(p.returncode == 0 and p.stdout == want, "tuned: a different result %r" % p.stdout)
        check("tuned now" in line_for(p.stderr), "cold: not tuned: %r" % p.stderr)
        n = alternatives(p.stderr)
        check(n >= 2 and p.stderr.count("      * ") == 2,
              "cold: expected the timed alternatives, one chosen: %r" % p.stderr)
        nv = vec_alternatives(p.stderr)
        check(vec_line(p.stderr).endswith(", tuned now") and nv >= 4,
              "cold, vector loops: %r" % p.stderr)

        # warm: from the tuning cache, alternatives as measured then;
        # --profile says it too
        p = run(args.ttrun, script, private, flag="--profile")
        check(p.returncode == 0 and p.stdout == want, "warm: %r" % p.stdout)
        check("tuned earlier on this host (tuning cache)" in line_for(p.stderr)
              and alternatives(p.stderr) == n, "warm, --profile: not from the cache: %r" % p.stderr)
        check(vec_line(p.stderr).endswith(", tuned earlier on this host (tuning cache)")
              and vec_alternatives(p.stderr) == nv, "warm, vector loops: %r" % p.stderr)

        # TT_GEMM_LANES=8: only the 6x16 tile, a cache entry of its own
        p = run(args.ttrun, script, private, lanes="8")
        check(p.stdout == want and "tuned now" in line_for(p.stderr)
              and "16 lanes" not in p.stderr.split("vector loops (")[0],
              "TT_GEMM_LANES=8: %r" % p.stderr)

        # the same entries planted in a directory writable by others: not
        # read, not written, tuned again in memory
        shared = os.path.join(top, "shared")
        os.mkdir(shared)
        for e in os.listdir(private):
            if e.endswith(".ttobj"):
                dst = os.path.join(shared, e)
                shutil.copyfile(os.path.join(private, e), dst)
                os.chmod(dst, 0o600)
        os.chmod(shared, 0o1777)
        before = sorted(os.listdir(shared))
        p = run(args.ttrun, script, shared)
        check(p.returncode == 0 and p.stdout == want, "shared: %r" % p.stdout)
        check("tuned now" in line_for(p.stderr), "shared: a 1777 directory was read: %r" % p.stderr)
        check("warning: ignoring the compiled-code cache" in p.stderr, "shared: no warning")
        check(sorted(os.listdir(shared)) == before, "shared: the directory was written to")

        # an entry writable by group and others is a miss
        for e in os.listdir(private):
            if e.endswith(".ttobj"):
                os.chmod(os.path.join(private, e), 0o666)
        p = run(args.ttrun, script, private)
        check(p.stdout == want and "tuned now" in line_for(p.stderr),
              "mode 666 entry: it was trusted: %r" % p.stderr)

        # convolution lowerings (compiler/jit/ctune.c): each geometry timed
        # once, then from the cache; TT_TUNE=0 keeps the rule, says nothing
        conv = os.path.join(top, "conv.tt")
        with open(conv, "w") as f:
            f.write(CONV_PROGRAM)
        cc = os.path.join(top, "conv_cache")
        p0 = run(args.ttrun, conv, cc, tune="0")
        check(p0.returncode == 0 and "conv lowerings (" not in p0.stderr,
              "conv, TT_TUNE=0: %r" % p0.stderr)
        p = run(args.ttrun, conv, cc, load="99")
        lines = [l for l in p.stderr.splitlines() if l.startswith("  conv2d")]
        check(p.returncode == 0 and p.stdout == p0.stdout and len(lines) == 2
              and all(l.endswith(", tuned now") for l in lines)
              and len(re.findall(r"^      [* ] (the rule|direct|im2col|implicit): [\d.]+ us$",
                                 p.stderr, re.M)) == 8,
              "conv, cold: %r %r" % (p.stdout, p.stderr))
        p = run(args.ttrun, conv, cc, tune=None, load="99")
        lines = [l for l in p.stderr.splitlines() if l.startswith("  conv2d")]
        check(p.stdout == p0.stdout and len(lines) == 2
              and all(l.endswith(", tuned earlier on this host (tuning cache)") for l in lines),
              "conv, warm: %r" % p.stderr)
        p = run(args.ttrun, conv, os.path.join(top, "conv_busy"), tune=None, load="99")
        check(p.stdout == p0.stdout and ": the rule, machine busy: load 99.0 on " in p.stderr,
              "conv, busy: %r" % p.stderr)

    for what in problems:
        print("FAIL:", what)
    print("%d problems" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
