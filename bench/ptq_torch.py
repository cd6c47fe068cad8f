#!/usr/bin/python3
"""Quantized vs f32 inference of the MLP 784-128-10 at batch 1 and 256: tt
(bench/ptq_bench.tt through ttrun: quantize(net, calib=x), the graph pass)
and PyTorch (torch.ao.quantization.quantize_dynamic on the Linear layers) in
the same run, on one thread. Prints the CPU model, every median in
microseconds, and the ratios.

    /usr/bin/python3 bench/ptq_torch.py [--ttrun build/ttrun] [--runs 50]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def median_us(fn, runs):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", default="build/ttrun")
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    print("CPU:", cpu_model())
    out = subprocess.run([a.ttrun, "--threads=1", os.path.join(os.path.dirname(__file__),
                          "ptq_bench.tt")], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("ttrun failed:\n" + out.stderr)
    fig = {}
    for line in out.stdout.splitlines():
        print(line)
        w = line.split()
        if w[0] == "tt" and len(w) == 3:
            fig["tt " + w[1]] = float(w[2])
    import torch
    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10)).eval()
    qnet = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        for b in (1, 256):
            x = torch.rand(b, 784)
            for name, m in (("f32", net), ("int8", qnet)):
                us = median_us(lambda: m(x), a.runs)
                fig["torch %s_b%d" % (name, b)] = us
                print("torch %s_b%d %.1f" % (name, b, us))
    for b in (1, 256):
        tq, tf, pq = fig["tt int8_b%d" % b], fig["tt f32_b%d" % b], fig["torch int8_b%d" % b]
        print("batch %d: tt int8/f32 time %.2f, tt int8 / torch int8 time %.2f" % (b, tq / tf,
                                                                                tq / pq))


if __name__ == "__main__":
    main()
