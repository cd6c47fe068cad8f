#!/usr/bin/env python3
"""cmake --install, end to end (CTest `install`).

Installs the build into a temporary prefix, moves the prefix elsewhere, and
then, with TT_STDLIB unset:
- checks the layout: bin/ttc, bin/ttrun, lib/libtt_runtime.a, include/tt/,
  share/tt/std/*.tt, lib/pkgconfig/tt.pc, share/man/man1/ttc.1 and ttrun.1;
- runs a script that uses the standard library (Linear, mse) with the moved
  ttrun: the binary finds PREFIX/share/tt/std relative to itself;
- `ttc --version` and `ttrun --version`;
- builds examples/aot from the installed share/tt/examples/aot with CMake,
  finding ttc through pkg-config (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig),
  and runs it.
"""
import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="the build tree to install")
    ap.add_argument("--cmake", default="cmake")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tt-install-")
    try:
        first = os.path.join(tmp, "first")
        r = run([a.cmake, "--install", a.build, "--prefix", first])
        check(r.returncode == 0, "cmake --install failed: " + r.stdout[-500:] + r.stderr)
        if r.returncode != 0:
            return 1
        prefix = os.path.join(tmp, "elsewhere", "tt")
        os.makedirs(os.path.dirname(prefix))
        shutil.move(first, prefix)
        env = dict(os.environ)
        env.pop("TT_STDLIB", None)
        libdir = "lib"
        for cand in ("lib", "lib64", "lib/x86_64-linux-gnu"):
            if os.path.exists(os.path.join(prefix, cand, "pkgconfig", "tt.pc")):
                libdir = cand
        for rel in ("bin/ttc", "bin/ttrun", libdir + "/libtt_runtime.a", "include/tt/value.h",
                    "include/tt/ir.h", "share/tt/std", libdir + "/pkgconfig/tt.pc",
                    "share/man/man1/ttc.1", "share/man/man1/ttrun.1",
                    "share/tt/examples/aot/CMakeLists.txt", "share/tt/examples/digits.tt"):
            check(os.path.exists(os.path.join(prefix, rel)), "not installed: " + rel)
        check(any(f.endswith(".tt") for f in os.listdir(os.path.join(prefix, "share/tt/std"))),
              "share/tt/std has no .tt files")

        # a script that needs the standard library, from the moved prefix
        script = os.path.join(tmp, "uses_std.tt")
        with open(script, "w") as f:
            f.write("let l = Linear(2, 3)\nprint(l(ones([4, 2])).shape)\n"
                    "print(item(mse(ones([2]), zeros([2]))))\n")
        r = run([os.path.join(prefix, "bin/ttrun"), script], env=env, cwd=tmp)
        check(r.returncode == 0, "the moved ttrun failed: " + r.stderr)
        check("standard library not found" not in r.stderr, "stdlib not found: " + r.stderr)
        check(r.stdout.split() == ["[4,", "3]", "1.0"], "script output: %r" % r.stdout)

        for tool in ("ttc", "ttrun"):
            r = run([os.path.join(prefix, "bin", tool), "--version"], env=env)
            check(r.returncode == 0 and r.stdout.startswith(tool + " "),
                  "%s --version: %r" % (tool, r.stdout + r.stderr))

        # examples/aot against the installed files, ttc found with pkg-config
        env["PKG_CONFIG_PATH"] = os.path.join(prefix, libdir, "pkgconfig")
        r = run(["pkg-config", "--variable=ttc", "tt"], env=env)
        check(r.returncode == 0 and os.path.realpath(r.stdout.strip()) ==
              os.path.realpath(os.path.join(prefix, "bin/ttc")),
              "pkg-config --variable=ttc tt: %r" % (r.stdout + r.stderr))
        ex = os.path.join(tmp, "example")
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        r = run([a.cmake, "-S", os.path.join(prefix, "share/tt/examples/aot"), "-B", ex] + gen,
                env=env)
        check(r.returncode == 0, "configuring examples/aot failed: " + r.stdout[-800:] + r.stderr)
        r = run([a.cmake, "--build", ex], env=env)
        check(r.returncode == 0, "building examples/aot failed: " + r.stdout[-800:] + r.stderr)
        csv = os.path.join(tmp, "digits.csv")
        with gzip.open(os.path.join(ROOT, "data/digits.csv.gz"), "rt") as f, open(csv, "w") as o:
            for i, line in enumerate(f):
                if i == 20:
                    break
                o.write(line)
        r = run([os.path.join(ex, "digits_aot"), csv], env=env)
        check(r.returncode == 0 and "accuracy" in r.stdout,
              "the installed example failed: " + r.stdout[-300:] + r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("install: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
