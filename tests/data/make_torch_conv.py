#!/usr/bin/env python3
"""Writes tests/data/torch_conv/*.npy: fixed inputs and PyTorch's outputs and
gradients for conv2d, max_pool2d, avg_pool2d and BatchNorm2d (training-mode
forward, gradients, running statistics, eval-mode forward), which
tests/lang/lib_torch_conv.tt compares tt against.

Run from the source root with the system Python and PyTorch:
    /usr/bin/python3 tests/data/make_torch_conv.py
Every loss is sum(out * r) with r a fixed random tensor of out's shape.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_conv")
torch.manual_seed(0)


def save(name, t):
    np.save(os.path.join(OUT, name + ".npy"), t.detach().numpy().astype(np.float32))


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float32)


# conv2d: groups 2, stride (2, 1), padding (1, 2), dilation (1, 2), a bias
x = rnd(2, 4, 7, 6).requires_grad_()
w = rnd(6, 2, 3, 2).requires_grad_()
b = rnd(6).requires_grad_()
y = F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
r = rnd(*y.shape)
(y * r).sum().backward()
for n, t in [("conv_x", x), ("conv_w", w), ("conv_b", b), ("conv_y", y), ("conv_r", r),
             ("conv_gx", x.grad), ("conv_gw", w.grad), ("conv_gb", b.grad)]:
    save(n, t)

# max_pool2d (3, stride 2, padding 1) and avg_pool2d ((3, 2), stride (2, 1),
# padding (1, 1)) of the same input
p = rnd(2, 3, 7, 6).requires_grad_()
m = F.max_pool2d(p, 3, stride=2, padding=1)
rm = rnd(*m.shape)
(m * rm).sum().backward()
save("pool_x", p); save("max_y", m); save("max_r", rm); save("max_gx", p.grad)
p.grad = None
a = F.avg_pool2d(p, (3, 2), stride=(2, 1), padding=(1, 1))
ra = rnd(*a.shape)
(a * ra).sum().backward()
save("avg_y", a); save("avg_r", ra); save("avg_gx", p.grad)

# BatchNorm2d(3): two training steps' forward (running statistics), the
# gradients of the second, then an eval-mode forward
bn = torch.nn.BatchNorm2d(3)
with torch.no_grad():
    bn.weight.copy_(rnd(3))
    bn.bias.copy_(rnd(3))
save("bn_weight", bn.weight); save("bn_bias", bn.bias)
x1 = rnd(4, 3, 5, 5) * 2 + 1
bn(x1)
x2 = (rnd(4, 3, 5, 5) * 3 - 2).requires_grad_()
y2 = bn(x2)
r2 = rnd(*y2.shape)
(y2 * r2).sum().backward()
save("bn_x1", x1); save("bn_x2", x2); save("bn_y2", y2); save("bn_r", r2)
save("bn_gx", x2.grad); save("bn_gweight", bn.weight.grad); save("bn_gbias", bn.bias.grad)
save("bn_running_mean", bn.running_mean); save("bn_running_var", bn.running_var)
bn.eval()
save("bn_eval_y", bn(x1))
