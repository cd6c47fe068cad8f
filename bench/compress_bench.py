#!/usr/bin/python3
"""The compression bench of issue 13 item 7 in one run: int8 vs f32 GEMM
(build/bench_qgemm), quantized vs f32 inference of the MLP 784-128-10 at
batch 1 and 256 in tt and in PyTorch (bench/ptq_torch.py, which runs
bench/ptq_bench.tt through build/ttrun and torch.ao.quantization's
quantize_dynamic), quantized vs f32 inference of a 28x28 CNN at batch 1 and
64 in tt and in PyTorch (bench/ptq_cnn_torch.py: bench/ptq_cnn_bench.tt,
qconv2d, against torch.ao.quantization's static quantization), and the
structured-pruned vs dense MLP (build/bench_prune).
Every program runs on one thread in this same run; each prints its own
table, and this script ends with one summary table (ratios against the
peer measured in the same program) under the CPU model.

    /usr/bin/python3 bench/compress_bench.py [--build build] [--full]

--full: bench_qgemm and bench_prune without --quick (minutes instead of
about half a minute).
"""
import argparse
import os
import subprocess
import sys


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def run(argv):
    print("$ " + " ".join(argv), flush=True)
    out = subprocess.run(argv, capture_output=True, text=True)
    sys.stdout.write(out.stdout)
    if out.returncode != 0:
        sys.exit("%s failed (status %d):\n%s" % (argv[0], out.returncode, out.stderr))
    print(flush=True)
    return out.stdout.splitlines()


def qgemm_rows(lines):
    """{shape: (i8 GOPS, f32 GOPS, ratio, i8 best, f32 best)} from
    bench_qgemm's table (medians, and best samples: steadier under load)"""
    rows = {}
    for line in lines:
        if not (line.startswith("square") or line.startswith("mlp")):
            continue
        w = line.split()
        # name words, threads, i8, (best), f32, (best), ratio
        name = " ".join(w[:-6])
        rows[name] = (float(w[-5]), float(w[-3]), w[-1], float(w[-4]), float(w[-2]))
    return rows


def prune_rows(lines):
    rows = {}
    for line in lines:
        w = line.split()
        if len(w) == 4 and w[0].isdigit():
            rows[int(w[0])] = (float(w[1]), float(w[2]), w[3])
    return rows


def ptq_figures(lines):
    fig = {}
    for line in lines:
        w = line.split()
        if len(w) == 5 and w[1] == "bytes_f32":
            fig["bytes"] = (int(w[2]), int(w[4]))
        if len(w) == 3 and w[0] in ("tt", "torch"):
            try:
                fig[w[0] + " " + w[1]] = float(w[2])
            except ValueError:
                pass
    return fig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    quick = [] if a.full else ["--quick"]
    here = os.path.dirname(os.path.abspath(__file__))
    q = qgemm_rows(run([os.path.join(a.build, "bench_qgemm"), "--threads", "1"] + quick))
    p = ptq_figures(run(["/usr/bin/python3", os.path.join(here, "ptq_torch.py"), "--ttrun",
                         os.path.join(a.build, "ttrun")]))
    c = ptq_figures(run(["/usr/bin/python3", os.path.join(here, "ptq_cnn_torch.py"), "--ttrun",
                         os.path.join(a.build, "ttrun")]))
    s = prune_rows(run([os.path.join(a.build, "bench_prune")] + quick))

    print("CPU: %s, one thread" % cpu_model())
    print("%-44s %12s %12s %8s" % ("", "tt", "peer", "peer/tt"))
    print("%-44s %12s %12s %8s %8s" % ("int8 GEMM vs f32 GEMM (GOPS, median)", "i8", "f32",
                                       "i8/f32", "(best)"))
    names = [n for n in ("square 256", "square 512", "square 1024", "square 2048") if n in q]
    names += [n for n in q if n.startswith("mlp")]
    for name in names:
        i8, f32, r, bi, bf = q[name]
        print("  %-42s %12.1f %12.1f %8s %7.2fx" % (name, i8, f32, r, bi / bf))
    print("%-44s %12s %12s %8s" % ("MLP 784-128-10 inference (us)", "tt int8", "", ""))
    for b in (1, 256):
        ti, tf = p.get("tt int8_b%d" % b), p.get("tt f32_b%d" % b)
        pi, pf = p.get("torch int8_b%d" % b), p.get("torch f32_b%d" % b)
        if ti is None or tf is None:
            continue
        print("  batch %-4d int8 vs tt f32 %23.1f %12.1f %7.2fx" % (b, ti, tf, tf / ti))
        if pi is not None:
            print("  batch %-4d int8 vs torch int8 (dynamic) %12.1f %12.1f %7.2fx" %
                  (b, ti, pi, pi / ti))
        if pf is not None:
            print("  batch %-4d (torch f32 %.1f us)" % (b, pf))
    print("%-44s %12s %12s %8s" % ("CNN 28x28 conv16-conv32-fc inference (us)", "tt int8", "",
                                   ""))
    for b in (1, 64):
        ti, tf = c.get("tt int8_b%d" % b), c.get("tt f32_b%d" % b)
        pi, pf = c.get("torch int8_b%d" % b), c.get("torch f32_b%d" % b)
        if ti is None or tf is None:
            continue
        print("  batch %-4d int8 vs tt f32 %23.1f %12.1f %7.2fx" % (b, ti, tf, tf / ti))
        if pi is not None:
            print("  batch %-4d int8 vs torch int8 (static) %13.1f %12.1f %7.2fx" %
                  (b, ti, pi, pi / ti))
        if pf is not None:
            print("  batch %-4d (torch f32 %.1f us)" % (b, pf))
    print("%-44s %12s %12s %8s" % ("MLP 784-256-10 pruned 50% structured (us)", "pruned", "dense",
                                   "speed-up"))
    for b, (dense, pruned, r) in sorted(s.items()):
        print("  batch %-36d %12.1f %12.1f %8s" % (b, pruned, dense, r))
    if "bytes" in p:
        f, i = p["bytes"]
        print("%-44s %12d %12d %7.2fx" % ("MLP 784-128-10 parameter bytes", i, f, f / i))
    if "bytes" in c:
        f, i = c["bytes"]
        print("%-44s %12d %12d %7.2fx" % ("CNN parameter bytes", i, f, f / i))
    print("peer/tt > 1: tt's int8 (or pruned) side is faster; GEMM rows: int8 GOPS over f32 GOPS")


if __name__ == "__main__":
    main()
