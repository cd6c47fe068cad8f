#!/usr/bin/python3
"""PyTorch CPU peer of bench_conv: conv2d forward and forward + backward
(the gradients of x and w for a given gy) on the shapes bench_conv passes,
and one SGD training step at batch 64 of the Fashion-MNIST CNN of
examples/fashion_cnn.tt, timed as bench_conv times tt.

    /usr/bin/python3 bench/conv_torch.py --threads N [--quick] \
        [--shapes "N,C,H,W,O,k,stride,pad,groups;..."]

Prints `torch version V threads T`, then one line per shape,
`torch conv I FWD_US FWDBWD_US`, and `torch cnnstep STEP_US`, which
bench_conv parses (medians). The thread count is set through
OMP_NUM_THREADS (and the BLAS variables) before torch is imported, and
torch.set_num_threads.
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
    ap.add_argument("--shapes", default="")
    ap.add_argument("--cpu", action="store_true", help="process CPU time instead of wall time")
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(f"torch unavailable: {e}")
        return 3
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    sample_s = 0.005 if a.quick else 0.02
    total_s = 0.2 if a.quick else 1.0
    clock = time.process_time if a.cpu else time.perf_counter

    def measure(fn):
        for _ in range(2):
            fn()
        reps = 1
        while True:  # calibrate: one sample lasts about sample_s
            t0 = clock()
            for _ in range(reps):
                fn()
            if clock() - t0 >= sample_s or reps >= 1 << 20:
                break
            reps *= 2
        samples = []
        start = clock()
        while len(samples) < 5 or clock() - start < total_s:
            t0 = clock()
            for _ in range(reps):
                fn()
            samples.append((clock() - t0) / reps * 1e6)
        return statistics.median(samples)

    print(f"torch version {torch.__version__} threads {torch.get_num_threads()}")
    for i, spec in enumerate(s for s in a.shapes.split(";") if s):
        n, c, h, w, o, k, st, pad, g = (int(v) for v in spec.split(","))
        x = torch.rand(n, c, h, w) - 0.5
        wt = torch.rand(o, c // g, k, k) - 0.5
        xg = x.clone().requires_grad_(True)
        wg = wt.clone().requires_grad_(True)

        def fwd():
            with torch.no_grad():
                F.conv2d(x, wt, None, st, pad, 1, g)

        gy = torch.rand_like(F.conv2d(x, wt, None, st, pad, 1, g)) - 0.5

        def fwdbwd():
            xg.grad = wg.grad = None
            F.conv2d(xg, wg, None, st, pad, 1, g).backward(gy)

        print(f"torch conv {i} {measure(fwd):.2f} {measure(fwdbwd):.2f}")
        sys.stdout.flush()

    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    print(f"torch cnnstep {measure(step):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
