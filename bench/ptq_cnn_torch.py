#!/usr/bin/python3
"""Quantized vs f32 inference of a 28x28 CNN (bench/ptq_cnn_bench.tt: two
3x3 convolutions with relu and 2x2 max pools, a Linear head) at batch 1 and
64: tt (quantize(net, calib=x): qconv2d on the int8 GEMM) and PyTorch
(torch.ao.quantization static post-training quantization on the first of
fbgemm, onednn, qnnpack the installed build supports, conv+relu fused, the
same calibration size) in the same run, on one thread. Prints the
CPU model, every median in microseconds, and the ratios.

    /usr/bin/python3 bench/ptq_cnn_torch.py [--ttrun build/ttrun] [--runs 30]
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


def torch_cnn(engine):
    import torch
    from torch import nn
    from torch.ao import quantization as tq

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = tq.QuantStub()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(32 * 7 * 7, 10)
            self.dequant = tq.DeQuantStub()

        def forward(self, x):
            x = self.quant(x)
            x = self.pool(self.relu1(self.conv1(x)))
            x = self.pool(self.relu2(self.conv2(x)))
            return self.dequant(self.fc(torch.flatten(x, 1)))

    net = CNN().eval()
    q = CNN().eval()
    q.load_state_dict(net.state_dict())
    q.qconfig = tq.get_default_qconfig(engine)
    q = tq.fuse_modules(q, [["conv1", "relu1"], ["conv2", "relu2"]])
    q = tq.prepare(q)
    with torch.no_grad():
        q(torch.rand(64, 1, 28, 28))
    return net, tq.convert(q)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", default="build/ttrun")
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    print("CPU:", cpu_model())
    out = subprocess.run([a.ttrun, "--threads=1", os.path.join(os.path.dirname(__file__),
                          "ptq_cnn_bench.tt"), str(a.runs)], capture_output=True, text=True)
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
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("fbgemm", "onednn", "qnnpack") if e in engines), None)
    if engine is None:
        sys.exit("this PyTorch has no quantized engine (%s)" % engines)
    torch.backends.quantized.engine = engine
    print("torch engine", engine)
    net, qnet = torch_cnn(engine)
    with torch.no_grad():
        for b in (1, 64):
            x = torch.rand(b, 1, 28, 28)
            for name, m in (("f32", net), ("int8", qnet)):
                us = median_us(lambda: m(x), a.runs)
                fig["torch %s_b%d" % (name, b)] = us
                print("torch %s_b%d %.1f" % (name, b, us))
    for b in (1, 64):
        tq, tf, pq = fig["tt int8_b%d" % b], fig["tt f32_b%d" % b], fig["torch int8_b%d" % b]
        print("batch %d: tt int8/f32 time %.2f, tt int8 / torch int8 time %.2f" % (b, tq / tf,
                                                                                tq / pq))


if __name__ == "__main__":
    main()
