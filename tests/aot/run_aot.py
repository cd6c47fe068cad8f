#!/usr/bin/env python3
"""ttc ahead of time, end to end (CTest `aot`).

- examples/aot's program (digits_aot: C + the ttc-built DigitsNet object)
  gives the JIT's logits (tests/aot/digits_ref.tt) within 1e-4, the same
  argmax, on 100 rows (64 + 4*8 + 4: every compiled chunk size runs);
- its object has no undefined symbol outside libc, libm and libpthread
  (`nm -u`), and exports exactly digitsnet_forward and
  digitsnet_workspace_bytes;
- the header declares the issue's signatures;
- `-o x.so` gives a shared library that ctypes calls, with the same
  logits; --threads 2, -D B=5 (no symbolic batch) and --prefix too;
- bad input: a model that does not exist, an unbound dimension, weights
  that do not match (every mismatch listed), an output path in a missing
  directory, a -D that contradicts an annotation, a forward whose rows mix:
  status 1, a clear message, no output file left.
"""
import argparse
import ctypes
import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def read_npy_f32(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    assert "'<f4'" in header, header
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    body = data[10 + hlen:]
    vals = struct.unpack("<%df" % (len(body) // 4), body)
    return shape, vals


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def allowed_symbols():
    """Names libc, libm and libpthread define (the object may need these)."""
    names = set()
    for lib in ("libc.so.6", "libm.so.6", "libpthread.so.0"):
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"):
            p = os.path.join(d, lib)
            if os.path.exists(p):
                out = run(["nm", "-D", "--defined-only", p]).stdout
                names.update(line.split()[-1].split("@")[0] for line in out.splitlines()
                             if line.strip())
                break
    return names


def rows_of(out):
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 13 and parts[0].isdigit():
            rows.append((int(parts[1]), int(parts[2]), [float(v) for v in parts[3:]]))
    return rows


def compare(logits, ref, what):
    worst = max((abs(a - b) for a, b in zip(logits, ref)), default=0.0)
    check(len(logits) == len(ref), "%s: %d logits, the JIT gave %d" % (what, len(logits), len(ref)))
    check(worst <= 1e-4, "%s: logits differ from the JIT's by %g" % (what, worst))
    return worst


def argmaxes(vals, n):
    return [max(range(n), key=lambda c: vals[i * n + c]) for i in range(len(vals) // n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttc", required=True)
    ap.add_argument("--ttrun", required=True)
    ap.add_argument("--example", required=True, help="build/examples/aot/digits_aot")
    ap.add_argument("--object", required=True, help="build/examples/aot/digits_model.o")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tt-aot-")
    try:
        rows = 100
        csv = os.path.join(tmp, "digits.csv")
        with gzip.open(os.path.join(ROOT, "data/digits.csv.gz"), "rt") as f, open(csv, "w") as o:
            for i, line in enumerate(f):
                if i == rows:
                    break
                o.write(line)
        ref_npy = os.path.join(tmp, "ref.npy")
        r = run([a.ttrun, "--backend=jit", "--seed=0", os.path.join(HERE, "digits_ref.tt"), csv,
                 ref_npy], cwd=ROOT)
        check(r.returncode == 0, "the JIT reference failed: " + r.stderr)
        shape, ref = read_npy_f32(ref_npy)
        check(shape == (rows, 10), "reference shape %s" % (shape,))

        # 1. the example program against the JIT
        r = run([a.example, csv])
        check(r.returncode == 0, "digits_aot failed (%d): %s%s" % (r.returncode, r.stdout[-300:],
                                                                     r.stderr))
        got = rows_of(r.stdout)
        check(len(got) == rows, "digits_aot printed %d rows" % len(got))
        flat = [v for _, _, l in got for v in l]
        worst = compare(flat, ref, "digits_aot")
        check([p for _, p, _ in got] == argmaxes(ref, 10), "digits_aot: argmax differs")
        print("digits_aot: %d rows, max |logit - JIT| = %.3g" % (len(got), worst))

        # 2. nm -u: libc, libm, pthreads only; two exported functions
        und = run(["nm", "-u", a.object]).stdout.split()
        und = [s for s in und if s not in ("U", "w", "v")]
        libs = allowed_symbols()
        bad = [s for s in und if s not in libs or s.startswith(("tt", "LLVM", "llvm", "_Z"))]
        check(not bad, "undefined symbols outside libc/libm/pthreads: %s" % bad)
        exported = [l.split()[-1] for l in run(["nm", "--defined-only", "-g", a.object])
                    .stdout.splitlines() if l.strip()]
        check(sorted(exported) == ["digitsnet_forward", "digitsnet_workspace_bytes"],
              "exported symbols: %s" % exported)
        print("nm -u %s: %s" % (os.path.basename(a.object), " ".join(und) or "(nothing)"))

        # 3. the header
        header = open(os.path.join(os.path.dirname(a.object), "digits_model.h")).read()
        for decl in ("size_t digitsnet_workspace_bytes(int64_t B);",
                     "int digitsnet_forward(const float *x, float *y, int64_t B, void *workspace);"):
            check(decl in header, "header lacks: " + decl)
        check("x: f32[B, 64]" in header and "y: f32[B, 10]" in header, "header: shape comment")

        digits = os.path.join(ROOT, "examples/digits.tt")

        # 4. a shared library, called through ctypes, on 2 threads
        so = os.path.join(tmp, "digits.so")
        r = run([a.ttc, digits, "--model", "DigitsNet", "--threads", "2", "-O3", "-o", so,
                 "--header", os.path.join(tmp, "digits_so.h")])
        check(r.returncode == 0, "ttc -o digits.so failed: " + r.stderr)
        if r.returncode == 0:
            lib = ctypes.CDLL(so)
            lib.digitsnet_forward.restype = ctypes.c_int
            lib.digitsnet_forward.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                              ctypes.c_void_p]
            lib.digitsnet_workspace_bytes.restype = ctypes.c_size_t
            lib.digitsnet_workspace_bytes.argtypes = [ctypes.c_int64]
            xs = []
            with open(csv) as f:
                for line in f:
                    xs.extend(float(v) / 16.0 for v in line.split(",")[:64])
            x = (ctypes.c_float * len(xs))(*xs)
            y = (ctypes.c_float * (rows * 10))()
            ws = ctypes.create_string_buffer(lib.digitsnet_workspace_bytes(rows) + 1)
            rc = lib.digitsnet_forward(x, y, rows, ws)
            check(rc == 0, "digits.so: forward returned %d" % rc)
            compare(list(y), ref, "digits.so")
            check(lib.digitsnet_forward(x, y, -3, ws) == 1, "digits.so: B=-3 is not EDIM")

        # 5. -D B=5: no symbolic dimension left; --prefix
        r = run([a.ttc, digits, "--model", "DigitsNet", "-D", "B=5", "--prefix", "d5", "-o",
                 os.path.join(tmp, "d5.o"), "--header", os.path.join(tmp, "d5.h")])
        check(r.returncode == 0, "ttc -D B=5 failed: " + r.stderr)
        if r.returncode == 0:
            h = open(os.path.join(tmp, "d5.h")).read()
            check("size_t d5_workspace_bytes(void);" in h, "-D B=5: workspace_bytes(void)")
            check("int d5_forward(const float *x, float *y, void *workspace);" in h,
                  "-D B=5: forward without B")

        # 6. --emit=dot: ops with shapes, the fused kernels as clusters
        r = run([a.ttc, digits, "--model", "DigitsNet", "--emit=dot", "-D", "B=4"])
        check(r.returncode == 0 and r.stdout.startswith("digraph") and
              r.stdout.count("subgraph cluster_") == 2 and "matmul\\nf32[4, 128]" in r.stdout
              and "relu" in r.stdout, "--emit=dot: %r" % (r.stdout[:300] + r.stderr))

        # 7. bad input: status 1, a message, no file left
        w_bad = os.path.join(tmp, "bad.safetensors")
        r = run([a.ttrun, os.path.join(HERE, "save_bad_weights.tt"), w_bad],
                cwd=ROOT)
        check(r.returncode == 0, "save_bad_weights.tt failed: " + r.stderr)
        unbound = os.path.join(tmp, "unbound.tt")
        with open(unbound, "w") as f:
            f.write("model Seq {\n    param w = ones([4, 4])\n"
                    "    forward(x: f32[B, T, 4]) -> f32[B, T, 4] {\n        return x @ w\n"
                    "    }\n}\n")
        contra = os.path.join(tmp, "contra.tt")
        with open(contra, "w") as f:
            f.write("model M {\n    let n = 8\n    param w = ones([8, 2])\n"
                    "    forward(x: f32[B, n]) -> f32[B, 2] {\n        return x @ w\n"
                    "    }\n}\n")
        mixing = os.path.join(tmp, "mixing.tt")
        with open(mixing, "w") as f:
            f.write("model Mix {\n    forward(x: f32[B, 4]) -> f32[B, 4] {\n"
                    "        return x - mean(x, axis=0)\n    }\n}\n")
        cases = [
            ("no such model", [digits, "--model", "NoSuchNet"], "defines no model 'NoSuchNet'"),
            ("unbound dimension", [unbound, "--model", "Seq"],
             "dimension 'T' of Seq.forward is not bound"),
            ("weights mismatch", [digits, "--model", "DigitsNet", "--weights", w_bad],
             ["'fc1.w' has shape", "missing tensor 'fc2.b'"]),
            ("missing directory", [digits, "--model", "DigitsNet", "-o",
                                   os.path.join(tmp, "no/such/dir/x.o")], "does not exist"),
            ("-D contradicts", [contra, "--model", "M", "-D", "n=4"], "contradicts"),
            ("rows mix", [mixing, "--model", "Mix"], "mixes the rows"),
        ]
        for what, args, msgs in cases:
            out = os.path.join(tmp, "bad_" + what.replace(" ", "_") + ".o")
            hdr = out[:-2] + ".h"
            if "-o" not in args:
                args = args + ["-o", out, "--header", hdr]
            r = run([a.ttc] + args)
            check(r.returncode == 1, "%s: status %d, not 1" % (what, r.returncode))
            for m in [msgs] if isinstance(msgs, str) else msgs:
                check(m in r.stderr, "%s: message lacks %r: %s" % (what, m, r.stderr))
            check("error" in r.stderr, "%s: no error printed" % what)
            check(not os.path.exists(out) and not os.path.exists(hdr),
                  "%s: an output file was left" % what)
            check(not [f for f in os.listdir(tmp) if ".tmp" in f or f.startswith(".")],
                  "%s: a temporary file was left" % what)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("aot: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
