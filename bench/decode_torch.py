#!/usr/bin/env python3
"""decode_torch.py - PyTorch's side of bench_decode: the same GPT (nanoGPT's
layout, the weights tt saved as safetensors, each Linear's w transposed into
PyTorch's weight [out, in]) decoding one token at a time at given positions,
with a KV cache written the usual way (preallocated [1, H, ctx, hd] per layer,
the new row written at p, attention over rows 0..p) and without one (the
whole prefix through forward).

    decode_torch.py --weights W.safetensors --config V,D,H,L,CTX
                    --positions 32,64 --threads 1 [--reps 8]

Prints `torch version X`, then `cached P US` and `full P US` lines: the median
CPU microseconds (time.process_time, as bench_decode measures tt) per token
at position P. Exit status 77 without PyTorch.
"""
import argparse
import json
import math
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"SKIP: decode_torch.py needs PyTorch and NumPy ({e})")
    sys.exit(77)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]).copy()
    return out


def sdpa(q, k, v, causal=False):
    """F.scaled_dot_product_attention (PyTorch >= 2.0), else nanoGPT's explicit path."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    if causal:
        T = q.size(-2)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
    return F.softmax(att, dim=-1) @ v


class Attn(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def split(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        shape = (B, T, self.heads, C // self.heads)
        return (q.view(shape).transpose(1, 2), k.view(shape).transpose(1, 2),
                v.view(shape).transpose(1, 2))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.split(x)
        y = sdpa(q, k, v, causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def step(self, x, kc, vc, p):
        """x [B, 1, C] at position p; kc, vc [B, H, ctx, hd] written at p."""
        B, _, C = x.shape
        q, k, v = self.split(x)
        kc[:, :, p] = k[:, :, 0]
        vc[:, :, p] = v[:, :, 0]
        y = sdpa(q, kc[:, :, :p + 1], vc[:, :, :p + 1])
        return self.proj(y.transpose(1, 2).reshape(B, 1, C))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attn(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def mlp(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def step(self, x, kc, vc, p):
        x = x + self.attn.step(self.ln1(x), kc, vc, p)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, d, heads, layers, ctx):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))

    def step(self, tok, p, caches):
        x = self.tok(tok) + self.pos(torch.tensor([p]))
        for b, (kc, vc) in zip(self.blocks, caches):
            x = b.step(x, kc, vc, p)
        return self.head(self.ln(x))


def load(model, weights):
    sd = {}
    for name, a in weights.items():
        parts = name.split(".")
        if len(parts) >= 3 and parts[2] == "mlp":  # blocks.i.mlp.fc1.w -> blocks.i.fc1.weight
            parts = parts[:2] + parts[3:]
        leaf = parts[-1]
        parts[-1] = {"w": "weight", "b": "bias"}.get(leaf, leaf)
        t = torch.from_numpy(a)
        sd[".".join(parts)] = t.t().contiguous() if leaf == "w" else t
    model.load_state_dict(sd, strict=True)


def median_us(f, reps):
    ts = []
    for _ in range(reps):
        t0 = time.process_time()
        f()
        ts.append(time.process_time() - t0)
    ts.sort()
    return 1e6 * ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--positions", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    vocab, d, heads, layers, ctx = (int(x) for x in a.config.split(","))
    positions = [int(x) for x in a.positions.split(",")]
    model = GPT(vocab, d, heads, layers, ctx)
    load(model, read_safetensors(a.weights))
    model.eval()
    print(f"torch version {torch.__version__}", flush=True)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (1, max(positions) + a.reps + 1), generator=g)
    hd = d // heads
    with torch.inference_mode():
        caches = [(torch.zeros(1, heads, ctx, hd), torch.zeros(1, heads, ctx, hd))
                  for _ in range(layers)]
        p = 0
        for P in positions:  # the prefix through the cache, then timed steps at P, P+1, ...
            while p < P:
                model.step(ids[:, p:p + 1], p, caches)
                p += 1
            ts = []
            for _ in range(a.reps):
                t0 = time.process_time()
                model.step(ids[:, p:p + 1], p, caches)
                ts.append(time.process_time() - t0)
                p += 1
            ts.sort()
            print(f"cached {P} {1e6 * ts[len(ts) // 2]:.1f}", flush=True)
        for P in positions:
            x = ids[:, :P + 1]
            model(x)  # warm-up
            print(f"full {P} {median_us(lambda: model(x), max(3, a.reps // 2)):.1f}", flush=True)


if __name__ == "__main__":
    main()
