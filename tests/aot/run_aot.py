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
  status 1, a clear message, no output file left;
- --weights-external (tests/aot/ext_main.c against ext_model.o): no
  weights before a load (EWEIGHTS); the weights save() wrote give the
  JIT's logits; other values of the same shapes (written by Python with
  another key order, whitespace and __metadata__) give the JIT's logits
  for those; every bad file (missing, truncated, wrong shape or dtype,
  missing tensor, huge header length, offsets out of range or
  inconsistent, bad JSON) is refused with a message naming the problem
  and the weights loaded before stay; nm -u and the four exports; the
  object is smaller than the embedded one; --weights is checked at
  compile time.
"""
import argparse
import ctypes
import gzip
import json
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


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file, in header order."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    return {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def write_safetensors(path, tensors, order=None, indent=None, metadata=None, raw_header=None,
                      length=None, offsets=None):
    """tensors: {name: (dtype, shape, bytes)}; the header in `order`, pretty
    printed with `indent`, with __metadata__ first when given. raw_header,
    length and offsets ({name: [b, e]}) make corrupt files."""
    order = order or list(tensors)
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order:
        dt, shape, b = tensors[name]
        off = (offsets or {}).get(name, [len(blob), len(blob) + len(b)])
        header[name] = {"shape": shape, "data_offsets": off, "dtype": dt}
        blob += b
    text = raw_header if raw_header is not None else json.dumps(header, indent=indent)
    text = text.encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text) if length is None else length) + text + blob)


def ext_run(exe, csv, *cmds):
    """ext_aot's lines: [(kind, rc, rest)] and the rows of each forward."""
    r = run([exe, csv] + list(cmds))
    events, cur = [], None
    for line in r.stdout.splitlines():
        parts = line.split(" ", 2)
        if parts[0] in ("load", "forward"):
            cur = [parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", []]
            events.append(cur)
        elif cur is not None:
            cur[3].append(line)
    return r, events


def test_external(a, tmp, csv, ref, ref2_of):
    """ttc --weights-external, end to end (see the module's docstring)."""
    digits = os.path.join(ROOT, "examples/digits.tt")
    w = os.path.join(tmp, "digits.safetensors")
    r = run([a.ttrun, "--seed=0", os.path.join(HERE, "save_digits_weights.tt"), w], cwd=ROOT)
    check(r.returncode == 0, "save_digits_weights.tt failed: " + r.stderr)
    ts = read_safetensors(w)
    check(sorted(ts) == ["fc1.b", "fc1.w", "fc2.b", "fc2.w"], "saved tensors: %s" % sorted(ts))

    # 1. nothing loaded, then save()'s file: the JIT's logits
    r, ev = ext_run(a.ext, csv, "forward", "load:" + w, "forward", "free", "forward")
    check(r.returncode == 0 and len(ev) == 4, "ext_aot: %s %s" % (r.stdout[-300:], r.stderr))
    if len(ev) == 4:
        check(ev[0][1] == 4 and not ev[0][3], "forward before a load returned %d, not EWEIGHTS"
              % ev[0][1])
        check(ev[1][1] == 0, "loading save()'s file failed: %s" % ev[1][2])
        got = rows_of("\n".join(ev[2][3]))
        flat = [v for _, _, l in got for v in l]
        worst = compare(flat, ref, "ext_aot (save()'s weights)")
        print("ext_aot: save()'s weights, max |logit - JIT| = %.3g" % worst)
        check(ev[3][1] == 4, "forward after free returned %d, not EWEIGHTS" % ev[3][1])

    # 2. other values of the same shapes, written by Python: key order
    # reversed, indented JSON, __metadata__ first, an extra tensor, a name
    # with a JSON escape; the outputs follow them
    def scaled(b, k, d):
        vals = struct.unpack("<%df" % (len(b) // 4), b)
        return struct.pack("<%df" % len(vals), *[v * k + d for v in vals])
    other = {n: (dt, sh, scaled(b, -0.75 if n.endswith("w") else 1.0, 0.01 * (i + 1)))
             for i, (n, (dt, sh, b)) in enumerate(ts.items())}
    w2 = os.path.join(tmp, "other.safetensors")
    write_safetensors(w2, other, order=sorted(other, reverse=True), indent=3,
                      metadata={"format": "pt", "note": "a \"quoted\" {brace}, [bracket]"})
    w2tt = os.path.join(tmp, "other_for_jit.safetensors")
    write_safetensors(w2tt, other)
    extra = dict(other)
    extra["opt/m\u00e9"] = ("F32", [2], struct.pack("<2f", 1, 2))
    w3 = os.path.join(tmp, "extra.safetensors")
    write_safetensors(w3, extra, order=["opt/m\u00e9"] + sorted(other))
    ref2 = ref2_of(w2tt)
    r, ev = ext_run(a.ext, csv, "load:" + w2, "forward", "load:" + w3, "forward", "load:" + w,
                    "forward")
    check(len(ev) == 6, "ext_aot (swap): %s %s" % (r.stdout[-300:], r.stderr))
    if len(ev) == 6:
        check(ev[0][1] == 0, "Python's file (order, whitespace, __metadata__): %s" % ev[0][2])
        flat = [v for _, _, l in rows_of("\n".join(ev[1][3])) for v in l]
        worst = compare(flat, ref2, "ext_aot (swapped weights)")
        check(max(abs(x - y) for x, y in zip(ref, ref2)) > 0.1, "the swapped weights change "
              "nothing")
        print("ext_aot: swapped weights, max |logit - JIT| = %.3g" % worst)
        check(ev[2][1] == 0, "a file with an extra tensor: %s" % ev[2][2])
        flat = [v for _, _, l in rows_of("\n".join(ev[3][3])) for v in l]
        compare(flat, ref2, "ext_aot (extra tensor)")
        flat = [v for _, _, l in rows_of("\n".join(ev[5][3])) for v in l]
        compare(flat, ref, "ext_aot (save()'s weights again)")

    # 3. bad files: refused, a message naming the problem, no crash; the
    # weights loaded before stay
    good = open(w, "rb").read()
    bad = {}
    def bad_file(name, content=None, **kw):
        p = os.path.join(tmp, name + ".safetensors")
        if content is not None:
            with open(p, "wb") as f:
                f.write(content)
        else:
            write_safetensors(p, kw.pop("tensors", ts), **kw)
        return p
    f32 = ts["fc1.b"]
    bad["missing file"] = (os.path.join(tmp, "no_such.safetensors"),
                           ["cannot open", "no_such.safetensors"])
    bad["empty"] = (bad_file("empty", b""), ["truncated", "8-byte header length"])
    bad["truncated data"] = (bad_file("trunc", good[:len(good) // 2]),
                             ["run past the data", "truncated"])
    bad["truncated header"] = (bad_file("trunch", good[:40]), ["header length"])
    bad["wrong shape"] = (bad_file("shape", tensors=dict(ts, **{"fc1.b": ("F32", [64], f32[2][:256])})),
                          ["tensor 'fc1.b' has shape [64]", "expects [128]"])
    bad["wrong dtype"] = (bad_file("dtype", tensors=dict(ts, **{"fc2.b": ("I32", [10], ts["fc2.b"][2])})),
                          ["tensor 'fc2.b' has dtype I32", "expects F32"])
    bad["missing tensor"] = (bad_file("missing", tensors={k: v for k, v in ts.items() if k != "fc2.w"}),
                             ["missing tensor 'fc2.w'"])
    bad["every mismatch"] = (bad_file("every", tensors={"fc1.w": ts["fc1.w"],
                                                        "fc1.b": ("F32", [64], f32[2][:256]),
                                                        "fc2.w": ("I8", [128, 40], ts["fc2.w"][2])}),
                             ["'fc1.b' has shape", "'fc2.w' has dtype I8", "missing tensor 'fc2.b'"])
    bad["huge header length"] = (bad_file("huge", length=1 << 60), ["header length", "corrupt"])
    n1 = len(ts["fc1.w"][2])
    bad["offsets out of range"] = (bad_file("range", offsets={"fc2.b": [10 ** 9, 10 ** 9 + 40]}),
                                   ["'fc2.b'", "run past the data"])
    bad["offsets inconsistent"] = (bad_file("incons", offsets={"fc1.w": [0, n1 - 4]}),
                                   ["'fc1.w'", "need %d bytes, data_offsets give %d" % (n1, n1 - 4)])
    bad["offsets reversed"] = (bad_file("rev", offsets={"fc1.w": [n1, 0]}),
                               ["'fc1.w'", "end before they begin"])
    bad["not JSON"] = (bad_file("json", raw_header='{"fc1.w": {"dtype": "F32", "shape": [64,'),
                       ["not valid JSON"])
    bad["named twice"] = (bad_file("twice", raw_header='{"fc1.b": {"dtype": "F32", "shape": [128], "data_offsets": [0, 512]}, '
                                     '"fc1.b": {"dtype": "F32", "shape": [128], '
                                     '"data_offsets": [0, 512]}}'),
                          ["names tensor 'fc1.b' twice"])
    bad["no offsets"] = (bad_file("nooff", raw_header='{"fc1.b": {"dtype": "F32", "shape": [128]}}'),
                         ["'fc1.b' has no 'data_offsets'"])
    cmds = ["load:" + w]
    for what, (path, _) in bad.items():
        cmds += ["load:" + path]
    cmds += ["forward"]
    r, ev = ext_run(a.ext, csv, *cmds)
    check(r.returncode == 0 and len(ev) == len(bad) + 2,
          "ext_aot (bad files) exited %d: %s %s" % (r.returncode, r.stdout[-500:], r.stderr[-500:]))
    if len(ev) == len(bad) + 2:
        for (what, (path, msgs)), e in zip(bad.items(), ev[1:]):
            check(e[1] == 4, "bad file (%s): load returned %d, not EWEIGHTS" % (what, e[1]))
            for m in msgs:
                check(m in e[2], "bad file (%s): message lacks %r: %s" % (what, m, e[2]))
            print("bad file (%s): %s" % (what, e[2][:150]))
        flat = [v for _, _, l in rows_of("\n".join(ev[-1][3])) for v in l]
        check(ev[-1][1] == 0, "forward after the bad files returned %d" % ev[-1][1])
        compare(flat, ref, "ext_aot (after the bad files)")

    # 4. nm -u and exports; size against the embedded object
    und = [s for s in run(["nm", "-u", a.ext_object]).stdout.split() if s not in ("U", "w", "v")]
    libs = allowed_symbols()
    badsyms = [s for s in und if s not in libs or s.startswith(("tt", "LLVM", "llvm", "_Z"))]
    check(not badsyms, "external object: undefined symbols outside libc/libm/pthreads: %s" % badsyms)
    print("nm -u %s: %s" % (os.path.basename(a.ext_object), " ".join(und)))
    exported = [l.split()[-1] for l in run(["nm", "--defined-only", "-g", a.ext_object])
                .stdout.splitlines() if l.strip()]
    check(sorted(exported) == ["ext_forward", "ext_free_weights", "ext_load_weights",
                               "ext_workspace_bytes"], "external object exports %s" % exported)
    se, sx = os.path.getsize(a.object), os.path.getsize(a.ext_object)
    print("object size: embedded %d bytes, --weights-external %d bytes" % (se, sx))
    check(sx < se, "the external-weights object is not smaller (%d >= %d)" % (sx, se))
    hdr = open(os.path.splitext(a.ext_object)[0] + ".h").read()
    for decl in ("int ext_load_weights(const char *path, char *err, size_t errlen);",
                 "void ext_free_weights(void);", "#define EXT_EWEIGHTS 4", "fc1.w: f32[64, 128]"):
        check(decl in hdr, "external header lacks: " + decl)

    # 5. --weights with --weights-external: checked at compile time
    o = os.path.join(tmp, "extw.o")
    r = run([a.ttc, digits, "--model", "DigitsNet", "--weights-external", "--weights", w, "-o", o,
             "--header", os.path.join(tmp, "extw.h")])
    check(r.returncode == 0 and os.path.exists(o), "--weights-external --weights: " + r.stderr)
    # 6. keyed by name: two zero biases are two tensors of the file; a
    # constant that is not model state stays embedded, with a note
    cst = os.path.join(tmp, "cst.tt")
    with open(cst, "w") as f:
        f.write("model C {\n    param w = ones([4, 4])\n    let k = randn([4, 4])\n"
                "    param b = zeros([4])\n    param b2 = zeros([4])\n"
                "    forward(x: f32[B, 4]) -> f32[B, 4] {\n"
                "        return (x @ w + b) @ k + b2\n    }\n}\n")
    r = run([a.ttc, cst, "--model", "C", "--weights-external", "-o", os.path.join(tmp, "cst.o"),
             "--header", os.path.join(tmp, "cst.h")])
    check(r.returncode == 0, "--weights-external (two zero biases): " + r.stderr)
    if r.returncode == 0:
        h = open(os.path.join(tmp, "cst.h")).read()
        check(" *   b: f32[4]\n" in h and " *   b2: f32[4]\n" in h and " *   w: f32[4, 4]\n" in h,
              "two zero biases are not two tensors of the file: " + h[:1500])
        check(r.stderr.count("stays embedded") == 1 and "64-byte tensor" in r.stderr,
              "the embedded constant's note: " + r.stderr)
    wbad = bad["missing tensor"][0]
    o = os.path.join(tmp, "extbad.o")
    r = run([a.ttc, digits, "--model", "DigitsNet", "--weights-external", "--weights", wbad, "-o",
             o])
    check(r.returncode == 1 and "missing tensor 'fc2.w'" in r.stderr and not os.path.exists(o),
          "--weights-external with mismatching --weights: %d %s" % (r.returncode, r.stderr))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttc", required=True)
    ap.add_argument("--ttrun", required=True)
    ap.add_argument("--example", required=True, help="build/examples/aot/digits_aot")
    ap.add_argument("--object", required=True, help="build/examples/aot/digits_model.o")
    ap.add_argument("--ext", required=True, help="build/ext_aot (tests/aot/ext_main.c)")
    ap.add_argument("--ext-object", required=True, help="build/tests/aot/ext_model.o")
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

        # 7. --weights-external
        def jit_logits(weights):
            out = os.path.join(tmp, "ref_w.npy")
            r = run([a.ttrun, "--backend=jit", "--seed=0", os.path.join(HERE, "digits_ref.tt"),
                     csv, out, weights], cwd=ROOT)
            check(r.returncode == 0, "the JIT reference with %s failed: %s" % (weights, r.stderr))
            return read_npy_f32(out)[1] if r.returncode == 0 else []
        test_external(a, tmp, csv, ref, jit_logits)

        # 8. bad input: status 1, a message, no file left
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
