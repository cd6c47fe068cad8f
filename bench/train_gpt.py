#!/usr/bin/env python3
"""train_gpt.py - training tokens per second of TinyGPT in tt (the JIT) and
of the same model in PyTorch, on 1 and 2 threads, in the same run.

The model is the standard library's TinyGPT(65, 128, 4, 4, 128) (the
character-level configuration of examples/tinygpt.tt) and its PyTorch twin
(nanoGPT's layout, bench/decode_torch.py's classes with causal attention),
trained with AdamW (lr 1e-3, weight decay 0.1) on random token batches of
16 x 128. Each side runs `--warmup` steps (the JIT's compiles), then times
`--steps` steps with a wall clock (tt's clock(), which finishes pending
work first; PyTorch's time.perf_counter) and reports tokens per second =
steps * 16 * 128 / seconds.

    train_gpt.py --ttrun build/ttrun [--steps 5] [--warmup 2] [--threads 1,2]

Without PyTorch only tt's figures are printed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

B, T, VOCAB, D, HEADS, LAYERS = 16, 128, 65, 128, 4, 4

TT = """
let gpt = TinyGPT({V}, {D}, {H}, {L}, {T})
let opt = AdamW(gpt, lr=1e-3, weight_decay=0.1)
let x = randint(0, {V}, [{B}, {T}], seed=1)
let y = randint(0, {V}, [{B}, {T}], seed=2)
fn step() {{
    opt.zero_grad()
    let loss = cross_entropy(reshape(gpt(x), [{B} * {T}, {V}]), reshape(y, [{B} * {T}]))
    backward(loss)
    opt.step()
    return loss
}}
for i in 0..{warmup} {{ step() }}
let t0 = clock()
for i in 0..{steps} {{ step() }}
let dt = clock() - t0
print("tt", {steps} * {B} * {T} / dt)
"""


def run_tt(ttrun, threads, steps, warmup):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.tt")
        with open(path, "w") as f:
            f.write(TT.format(V=VOCAB, D=D, H=HEADS, L=LAYERS, T=T, B=B, steps=steps,
                              warmup=warmup))
        r = subprocess.run([ttrun, "--backend=jit", f"--threads={threads}", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"ttrun failed:\n{r.stderr}")
        for line in r.stdout.splitlines():
            if line.startswith("tt "):
                return float(line.split()[1])
    return float("nan")


def run_torch(threads, steps, warmup):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None, None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from decode_torch import GPT
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT(VOCAB, D, HEADS, LAYERS, T)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x = torch.randint(0, VOCAB, (B, T))
    y = torch.randint(0, VOCAB, (B, T))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x).view(B * T, VOCAB), y.view(B * T))
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * B * T / (time.perf_counter() - t0), torch.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    print(f"CPU: {cpu}")
    print(f"TinyGPT({VOCAB}, {D}, {HEADS}, {LAYERS}, {T}), AdamW, batch {B} x {T} tokens; "
          f"{a.steps} timed steps after {a.warmup}")
    print(f"{'threads':>8} {'tt tok/s':>10} {'torch tok/s':>12} {'tt/torch':>9}")
    version = None
    for th in (int(t) for t in a.threads.split(",")):
        tt = run_tt(os.path.abspath(a.ttrun), th, a.steps, a.warmup)
        pt, version = run_torch(th, a.steps, a.warmup)
        ratio = f"{tt / pt:8.2f}x" if pt else "        -"
        print(f"{th:>8} {tt:>10.0f} {pt if pt else float('nan'):>12.0f} {ratio}")
    if version:
        print(f"PyTorch {version}")


if __name__ == "__main__":
    main()
