#!/usr/bin/env python3
"""Reference values from PyTorch for rl-layers' parity tests.

Run from the repository root (CPU only; about 10 s after installing):

    python3 -m venv agents/layers/tests/reference/.venv
    agents/layers/tests/reference/.venv/bin/pip install -r agents/layers/tests/reference/requirements.txt
    agents/layers/tests/reference/.venv/bin/python agents/layers/tests/reference/make_reference.py

Writes, next to this script:
  - torch_reference.json: Conv2d and Linear forward/backward, every loss and
    its gradient, five steps of every optimiser from fixed gradients, and the
    policy-gradient pieces (log-softmax, a categorical policy's
    log-probabilities, entropies and their gradients, orthogonal
    initialisation, and a two-headed actor-critic network);
  - torch_net.safetensors: a small nn.Sequential's state dict written by
    Python's safetensors, plus its output on a fixed input in the JSON, so the
    Rust test checks that a Python-written file loads and computes the same.

Arrays are stored as {"shape": [...], "data": [...]} in row-major order.
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = pathlib.Path(__file__).resolve().parent
torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(1234)


def t(shape, lo=-1.0, hi=1.0):
    return torch.tensor(rng.uniform(lo, hi, size=shape).astype(np.float32))


def enc(x):
    a = x.detach().cpu().numpy().astype(np.float32)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


out = {"torch_version": torch.__version__}

# --- Conv2d forward and backward -------------------------------------------
convs = []
for (n, c, h, w, f, k, s, p) in [(2, 3, 7, 6, 4, 3, 2, 1), (2, 4, 10, 10, 5, 3, 1, 0), (1, 2, 12, 12, 3, 4, 2, 2)]:
    x = t((n, c, h, w)).requires_grad_()
    conv = nn.Conv2d(c, f, k, stride=s, padding=p)
    y = conv(x)
    dy = t(tuple(y.shape))
    y.backward(dy)
    convs.append({
        "stride": s, "padding": p,
        "x": enc(x), "weight": enc(conv.weight), "bias": enc(conv.bias), "y": enc(y), "dy": enc(dy),
        "dx": enc(x.grad), "dweight": enc(conv.weight.grad), "dbias": enc(conv.bias.grad),
    })
out["conv2d"] = convs

# --- Linear (Affine), with N-d input flattened -----------------------------
x = t((3, 2, 2, 2)).requires_grad_()
lin = nn.Linear(8, 5)
y = lin(x.flatten(1))
dy = t((3, 5))
y.backward(dy)
out["affine"] = {"x": enc(x), "weight": enc(lin.weight), "bias": enc(lin.bias), "y": enc(y), "dy": enc(dy),
                 "dx": enc(x.grad), "dweight": enc(lin.weight.grad), "dbias": enc(lin.bias.grad)}

# --- Losses ------------------------------------------------------------------
losses = []


def loss_case(name, fn, y, target, **extra):
    y = y.clone().requires_grad_()
    l = fn(y, target)
    l.backward()
    losses.append({"loss": name, "y": enc(y), "t": enc(target), "value": float(l.detach()), "grad": enc(y.grad), **extra})


y = t((4, 5), -2, 2)
target = t((4, 5), -2, 2)
n = y.shape[0]
# squared error with the ½ convention: (1/N) Σ_n ½ Σ_k (y − t)²
loss_case("squared_error", lambda a, b: 0.5 * F.mse_loss(a, b, reduction="sum") / n, y, target)
loss_case("mean_squared_error", F.mse_loss, y, target)
for delta in (0.5, 1.0, 2.0):
    loss_case("huber", lambda a, b, d=delta: F.huber_loss(a, b, delta=d), y, target, delta=delta)
probs = t((4, 5), 0.02, 0.98)
bin_t = t((4, 5), 0.0, 1.0)
loss_case("binary_cross_entropy", F.binary_cross_entropy, probs, bin_t)
soft = torch.softmax(t((4, 5), -2, 2), dim=1)
pr = torch.softmax(t((4, 5), -2, 2), dim=1)
loss_case("cross_entropy", lambda a, b: -(b * torch.log(a)).sum() / a.shape[0], pr, soft)
loss_case("softmax_cross_entropy", F.cross_entropy, y, soft)
onehot = F.one_hot(torch.tensor([0, 3, 1, 4]), 5).float()
loss_case("softmax_cross_entropy", F.cross_entropy, y, onehot)
out["losses"] = losses

# --- Optimisers: five steps from fixed gradients ----------------------------
p0 = t((3, 4))
grads = [t((3, 4), -2, 2) for _ in range(5)]
configs = [
    ({"kind": "sgd", "lr": 0.1}, lambda p: torch.optim.SGD([p], lr=0.1)),
    ({"kind": "momentum", "lr": 0.1, "momentum": 0.9}, lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9)),
    ({"kind": "nesterov", "lr": 0.1, "momentum": 0.9},
     lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)),
    ({"kind": "ada_grad", "lr": 0.1, "eps": 1e-10}, lambda p: torch.optim.Adagrad([p], lr=0.1, eps=1e-10)),
    ({"kind": "rms_prop", "lr": 0.01, "alpha": 0.99, "eps": 1e-8, "centered": False},
     lambda p: torch.optim.RMSprop([p], lr=0.01, alpha=0.99, eps=1e-8)),
    ({"kind": "rms_prop", "lr": 2.5e-4, "alpha": 0.95, "eps": 0.01, "centered": True},
     lambda p: torch.optim.RMSprop([p], lr=2.5e-4, alpha=0.95, eps=0.01, centered=True)),
    ({"kind": "rms_prop", "lr": 0.01, "alpha": 0.9, "eps": 1e-6, "centered": True},
     lambda p: torch.optim.RMSprop([p], lr=0.01, alpha=0.9, eps=1e-6, centered=True)),
    ({"kind": "ada_delta", "lr": 1.0, "rho": 0.9, "eps": 1e-6}, lambda p: torch.optim.Adadelta([p], lr=1.0, rho=0.9, eps=1e-6)),
    ({"kind": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
     lambda p: torch.optim.Adam([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    ({"kind": "adam", "lr": 1e-4, "beta1": 0.8, "beta2": 0.99, "eps": 1.5e-4},
     lambda p: torch.optim.Adam([p], lr=1e-4, betas=(0.8, 0.99), eps=1.5e-4)),
]
opts = []
for cfg, make in configs:
    p = p0.clone().requires_grad_()
    opt = make(p)
    trajectory = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        trajectory.append(enc(p))
    opts.append({"config": cfg, "trajectory": trajectory})
out["optimizers"] = {"p0": enc(p0), "grads": [enc(g) for g in grads], "cases": opts}

# --- A whole network saved by Python's safetensors --------------------------
# Same as the architecture
#   [{"conv": {"out": 3, "kernel": 3, "stride": 2, "padding": 1}}, "relu", "flatten",
#    {"affine": 6}, "tanh", {"affine": "actions"}]  on input [2, 6, 6] with actions = 4
net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(27, 6), nn.Tanh(),
                    nn.Linear(6, 4))
save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(HERE / "torch_net.safetensors"))
xin = t((3, 2, 6, 6))
out["net"] = {
    "architecture": [{"conv": {"out": 3, "kernel": 3, "stride": 2, "padding": 1}}, "relu", "flatten",
                     {"affine": 6}, "tanh", {"affine": "actions"}],
    "input_shape": [2, 6, 6], "actions": 4, "x": enc(xin), "y": enc(net(xin)),
}

# --- Policy-gradient pieces ----------------------------------------------------
# Drawn after everything above, so the earlier cases keep their values.
extreme = torch.tensor([[1e4, 0.0, -1e4, 5.0, 0.0, 0.0],
                        [-3e4, -3e4 + 1.0, -3e4 + 2.0, -3e4, -3e4, -3e4],
                        [50.0, 50.0, -50.0, 0.0, 1e-3, -1e-3]])
logits = torch.cat([t((5, 6), -3, 3), extreme])
out["log_softmax"] = {"x": enc(logits), "y": enc(F.log_softmax(logits, dim=1))}

# A categorical policy: L = Σ a·ln p(action) + b·H, differentiated by autograd
# in float64 from the same f32 logits. In float32, Categorical subtracts a
# logsumexp rounded to f32, which at logits of −3e4 is off by up to 1e-3
# (half an ulp at that magnitude); the double-precision values are the exact
# ones that an f32 implementation can match to rounding.
actions = torch.tensor([int(v) for v in rng.integers(0, 6, size=logits.shape[0])])
actions[5] = 2  # the action of probability 0 at logits of ±1e4
d_log_prob, d_entropy = t((logits.shape[0],)), t((logits.shape[0],))
x = logits.double().requires_grad_()
policy = torch.distributions.Categorical(logits=x)
log_prob, entropy = policy.log_prob(actions), policy.entropy()
((d_log_prob.double() * log_prob).sum() + (d_entropy.double() * entropy).sum()).backward()
out["categorical"] = {"logits": enc(logits), "actions": [int(a) for a in actions],
                      "d_log_prob": enc(d_log_prob), "d_entropy": enc(d_entropy),
                      "log_prob": enc(log_prob), "entropy": enc(entropy), "d_logits": enc(x.grad)}

# orthogonal_ on a weight, and the normal matrix it drew (the same generator
# state, drawn again), so that the QR step is checked on identical input.
orthogonal = []
for k, (shape, gain) in enumerate([((8, 4), 1.0), ((3, 7), 2 ** 0.5), ((5, 5), 0.01), ((4, 2, 3, 3), 2 ** 0.5)]):
    rows, cols = shape[0], int(np.prod(shape[1:]))
    normal = torch.empty(rows, cols).normal_(0, 1, generator=torch.Generator().manual_seed(100 + k))
    weight = torch.empty(shape)
    nn.init.orthogonal_(weight, gain=gain, generator=torch.Generator().manual_seed(100 + k))
    orthogonal.append({"gain": gain, "normal": enc(normal), "weight": enc(weight)})
out["orthogonal"] = orthogonal

# An actor-critic network: a torso and two heads on its features.
# Same as SharedTorso of torso [{"affine": 8}, "tanh", {"affine": 8}, "relu"]
# on input [4], and heads policy [{"affine": 3}] and value [{"affine": 1}].
class ActorCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.torso = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU())
        self.policy = nn.Sequential(nn.Linear(8, 3))
        self.value = nn.Sequential(nn.Linear(8, 1))

    def forward(self, x):
        features = self.torso(x)
        return self.policy(features), self.value(features)


actor_critic = ActorCritic()
xin = t((5, 4))
policy_logits, value = actor_critic(xin)
d_policy, d_value = t((5, 3)), t((5, 1))
((policy_logits * d_policy).sum() + (value * d_value).sum()).backward()
out["shared_torso"] = {
    "torso": [{"affine": 8}, "tanh", {"affine": 8}, "relu"], "input_shape": [4],
    "heads": {"policy": [{"affine": 3}], "value": [{"affine": 1}]},
    "params": {k: enc(v) for k, v in actor_critic.state_dict().items()},
    "grads": {k: enc(v.grad) for k, v in actor_critic.named_parameters()},
    "x": enc(xin), "policy": enc(policy_logits), "value": enc(value),
    "d_policy": enc(d_policy), "d_value": enc(d_value),
}

(HERE / "torch_reference.json").write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
print("wrote", HERE / "torch_reference.json", "and", HERE / "torch_net.safetensors")
