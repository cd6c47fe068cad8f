#!/usr/bin/python3
"""PyTorch twins of the suite's workloads (bench/run runs this in the same
run as ttrun): the same models, batch sizes, optimizers and data as
bench/suite/*.tt, timed the way bench() times tt (untimed warm-up calls,
then timed ones; the median, the half-width of the distribution-free 95%
interval of the median, the minimum).

    /usr/bin/python3 bench/suite/twins_torch.py --threads N --runs R \
        --warmup W [--data-dir DIR] [--only NAME,...]

Prints one line per workload: `result NAME MEDIAN_MS CI95_MS MIN_MS RUNS`,
or `skip NAME WHY`. Threads: OMP_NUM_THREADS etc. before torch is imported,
and torch.set_num_threads.
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time

FASHION = "/usr/share/datasets/fashion-mnist/"


def stats(ts):
    """(median, ci95 half-width, min) in ms, as runtime/lib/builtins_bench.c."""
    t = sorted(x * 1e3 for x in ts)
    n = len(t)
    med = t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2])
    h = 0.98 * math.sqrt(n)
    lo, hi = max(0, math.floor(n / 2 - h)), min(n - 1, math.ceil(n / 2 + h))
    return med, 0.5 * (t[hi] - t[lo]), t[0]


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return stats(ts)


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--cnn-runs", type=int, default=None)
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "data"))
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    only = set(a.only.split(",")) if a.only else None
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        for name in sorted(only or ()):
            print("skip", name, "torch unavailable:", e)
        return 0
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    def want(name):
        return only is None or name in only

    def digits_net():
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def report(name, r, runs):
        print("result %s %.9g %.9g %.9g %d" % (name, r[0], r[1], r[2], runs), flush=True)

    if want("mlp_train"):
        # the first 32 rows of data/digits.csv.gz scaled by 1/16, Adam lr 0.01
        rows = []
        with gzip.open(os.path.join(a.data_dir, "digits.csv.gz"), "rt") as f:
            for line in f:
                if line.strip():
                    rows.append([float(v) for v in line.split(",")])
                if len(rows) == 32:
                    break
        x = torch.tensor([r[:64] for r in rows]) / 16.0
        y = torch.tensor([int(r[64]) for r in rows])
        net = digits_net()
        opt = torch.optim.Adam(net.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        report("mlp_train", timed(step, a.runs, a.warmup), a.runs)

    net = digits_net().eval()
    for b in (1, 256):
        if want("mlp_infer_b%d" % b):
            x = torch.rand(b, 64)
            with torch.no_grad():
                report("mlp_infer_b%d" % b, timed(lambda: net(x), a.runs, a.warmup), a.runs)
        if want("int8_infer_b%d" % b):
            # PyTorch's int8 Linear: dynamic quantization (weights int8 per
            # tensor, activations quantized per call)
            q = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
            x = torch.rand(b, 64)
            with torch.no_grad():
                report("int8_infer_b%d" % b, timed(lambda: q(x), a.runs, a.warmup), a.runs)

    if want("cnn_train"):
        if not os.path.exists(FASHION + "t10k-images-idx3-ubyte.gz"):
            print("skip cnn_train no Fashion-MNIST in", FASHION)
        else:
            _, px = load_idx(FASHION + "t10k-images-idx3-ubyte.gz")
            _, lb = load_idx(FASHION + "t10k-labels-idx1-ubyte.gz")
            x = torch.tensor(list(px[:64 * 784]), dtype=torch.float32).reshape(64, 1, 28, 28)
            x = x / 255.0
            y = torch.tensor(list(lb[:64]), dtype=torch.long)
            net = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)).train()
            opt = torch.optim.Adam(net.parameters(), lr=0.001)

            def cstep():
                opt.zero_grad()
                F.cross_entropy(net(x), y).backward()
                opt.step()
            runs = a.cnn_runs or a.runs
            report("cnn_train", timed(cstep, runs, min(a.warmup, 3)), runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
