#!/usr/bin/env python3
"""Checks that a safetensors file written by rl-layers opens in Python and PyTorch.

A manual interoperability check, not part of CI (it needs torch, several GB):
write a network with `Sequential::save_safetensors` and its output for an
input as CASE.json, then run, in the venv made by make_reference.py,

    check_rust_file.py NET.safetensors CASE.json

CASE.json holds {"x": {"shape", "data"}, "y": {"shape", "data"}}: an input of
the MinAtar network and the output rl-layers computed for it. The file must
open with safetensors.numpy.load_file, load into the equivalent nn.Sequential
with load_state_dict(strict=True), and reproduce y to 1e-5.
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.numpy import load_file

path, case_path = sys.argv[1], sys.argv[2]
arrays = load_file(path)
assert all(a.dtype == np.float32 for a in arrays.values()), {k: a.dtype for k, a in arrays.items()}
actions = arrays["5.weight"].shape[0]
net = nn.Sequential(nn.Conv2d(4, 16, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(),
                    nn.Linear(128, actions))
net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)
case = json.load(open(case_path))
x = torch.tensor(case["x"]["data"], dtype=torch.float32).reshape(case["x"]["shape"])
want = np.array(case["y"]["data"], dtype=np.float32).reshape(case["y"]["shape"])
with torch.no_grad():
    got = net(x).numpy()
err = float(np.max(np.abs(got - want)))
assert err <= 1e-5, f"max abs difference {err}"
print(f"ok: {len(arrays)} tensors, max abs difference {err:.2e}")
