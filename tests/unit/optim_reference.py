#!/usr/bin/python3
"""Reference numbers for tests/unit/test_optim.c, computed with PyTorch.

Run with /usr/bin/python3 (python3-torch). It prints C initializers that are
pasted into test_optim.c: the weights after 3 optimizer steps for each
optimizer configuration, and a few loss values.

The problem: w f32[3, 2], b f32[2]; loss = mse(x @ w + b, t) on three fixed
batches x f32[4, 3], t f32[4, 2] (one batch per step).
"""
import torch

W0 = [[0.5, -0.25], [0.125, 0.75], [-0.5, 0.375]]
B0 = [0.1, -0.2]
X = [
    [[1.0, 2.0, 0.5], [-1.0, 0.5, 1.5], [0.25, -0.75, 2.0], [1.5, 1.0, -1.0]],
    [[0.5, -1.0, 1.0], [2.0, 0.25, -0.5], [-1.5, 1.0, 0.75], [0.0, 0.5, 1.0]],
    [[1.0, 1.0, 1.0], [-0.5, -0.5, 2.0], [0.75, 1.25, -0.25], [1.0, -2.0, 0.5]],
]
T = [
    [[1.0, 0.0], [0.5, 1.0], [-1.0, 2.0], [0.0, -0.5]],
    [[0.25, 0.75], [1.5, -1.0], [0.0, 0.5], [1.0, 1.0]],
    [[-0.5, 0.5], [2.0, 0.0], [0.5, -1.5], [1.0, 0.25]],
]

CONFIGS = [
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_plain", lambda p: torch.optim.SGD(p, lr=0.1)),
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01)),
    ("adam_wd", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1)),
    ("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
]


def fmt(vals):
    return ", ".join("%.9gf" % v for v in vals)


def run(make):
    w = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    opt = make([w, b])
    for step in range(3):
        x, t = torch.tensor(X[step]), torch.tensor(T[step])
        loss = torch.nn.functional.mse_loss(x @ w + b, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().flatten().tolist() + b.detach().flatten().tolist()


for name, make in CONFIGS:
    print("static const float want_%s[8] = {%s};" % (name, fmt(run(make))))

F = torch.nn.functional
logits = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, -0.5, 3.0, 1.0], [2.5, 2.5, -2.0, 0.0]])
labels = torch.tensor([1, 2, 0])
pred = torch.tensor([[0.5, 1.5], [-1.0, 2.0], [0.25, 0.0]])
target = torch.tensor([[1.0, 1.0], [0.0, 2.5], [0.5, -0.5]])
prob = torch.tensor([0.9, 0.2, 0.6, 0.0, 1.0])
ptarget = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
print("static const float want_cross_entropy = %.9gf;" % F.cross_entropy(logits, labels).item())
print("static const float want_mse = %.9gf;" % F.mse_loss(pred, target).item())
print("static const float want_bce = %.9gf;" % F.binary_cross_entropy(prob, ptarget).item())

# Gradients through the standard library's composites (LayerNorm, gelu,
# log_softmax/cross_entropy, sigmoid/bce, softmax/kl_div, mse): model G of
# test_optim.c.
Z = [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, -2.0]]
WG = [[0.2, -0.4, 0.1], [0.3, 0.5, -0.2], [-0.6, 0.1, 0.4], [0.05, -0.3, 0.25]]
z = torch.tensor(Z, requires_grad=True)
w = torch.tensor(WG, requires_grad=True)
ln = torch.nn.LayerNorm(4)
h = F.gelu(ln(z), approximate="tanh") @ w
loss = (F.cross_entropy(h, torch.tensor([2, 0]))
        + F.binary_cross_entropy(torch.sigmoid(z), torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]))
        + F.kl_div(F.log_softmax(h, -1), F.softmax(torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]), -1))
        + F.mse_loss(h, torch.tensor([[0.1, 0.2, 0.3], [-0.1, 0.0, 0.1]])))
loss.backward()
print("static const float want_g_loss = %.9gf;" % loss.item())
print("static const float want_g_z[8] = {%s};" % fmt(z.grad.flatten().tolist()))
print("static const float want_g_w[12] = {%s};" % fmt(w.grad.flatten().tolist()))
print("static const float want_g_lnw[4] = {%s};" % fmt(ln.weight.grad.flatten().tolist()))
print("static const float want_g_lnb[4] = {%s};" % fmt(ln.bias.grad.flatten().tolist()))
