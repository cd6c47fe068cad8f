#!/usr/bin/python3
"""PyTorch CPU peer of bench_mlp: the MLP 784-128-10, one SGD training step
at batch 64 (forward, cross entropy, backward, update) and inference at
batch 1 and 256, timed as bench_mlp times tt.

Run with Debian's /usr/bin/python3 (python3-torch):

    /usr/bin/python3 bench/mlp_torch.py [--threads N] [--quick]

Prints one line per figure, `torch NAME MEDIAN_US BEST_US`, which
bench_mlp parses. The thread count is set through OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS before torch is imported, and torch.set_num_threads.
"""
import argparse
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = str(a.threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"torch unavailable: {e}")
        return 3
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 784)
    y = torch.randint(0, 10, (64,))
    x1 = torch.randn(1, 784)
    x256 = torch.randn(256, 784)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def infer1():
        with torch.no_grad():
            model(x1)

    def infer256():
        with torch.no_grad():
            model(x256)

    sample_s = 0.005 if a.quick else 0.02
    total_s = 0.3 if a.quick else 1.5

    def measure(fn):
        for _ in range(3):
            fn()
        reps = 1
        while True:  # calibrate: one sample lasts about sample_s
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            dt = time.perf_counter() - t0
            if dt >= sample_s or reps >= 1 << 20:
                break
            reps *= 2
        samples = []
        start = time.perf_counter()
        while len(samples) < 5 or time.perf_counter() - start < total_s:
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            samples.append((time.perf_counter() - t0) / reps * 1e6)
        return statistics.median(samples), min(samples)

    print(f"torch version {torch.__version__} threads {torch.get_num_threads()}")
    for name, fn in (("step", step), ("infer1", infer1), ("infer256", infer256)):
        med, best = measure(fn)
        print(f"torch {name} {med:.2f} {best:.2f}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
