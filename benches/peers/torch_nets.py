"""The PyTorch peer of `rl-lab bench nets --json` (and of
`cargo bench -p rl-dqn --bench nets`): the identical DQN update on one
thread, printing the same JSON object.

    python3 -m venv benches/peers/.venv
    benches/peers/.venv/bin/pip install -r benches/peers/requirements-nets.txt
    benches/peers/.venv/bin/python benches/peers/torch_nets.py [SECONDS_PER_NET]

One update at batch 32: online forward, target forward on the next states
(no grad), max over actions, Huber loss (delta 1) on the taken actions,
backward, optimiser step. MinAtar net: 4x10x10 input, Conv16 3x3/1, ReLU,
Linear 1024->128, ReLU, Linear 128->6, RMSprop(lr 2.5e-4, alpha 0.95,
eps 0.01, centered). Nature net: 4x84x84, Conv32 8x8/4, Conv64 4x4/2,
Conv64 3x3/1, Linear 3136->512, Linear 512->6, ReLUs between, Adam(lr 1e-4,
eps 1.5e-4). Inference: one observation, eval, no grad.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)
BUDGET = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
BATCH, ACTIONS, GAMMA = 32, 6, 0.99


def minatar():
    net = nn.Sequential(nn.Conv2d(4, 16, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(),
                        nn.Linear(128, ACTIONS))
    return net, (4, 10, 10), lambda p: torch.optim.RMSprop(p, lr=2.5e-4, alpha=0.95, eps=0.01, centered=True)


def nature():
    net = nn.Sequential(nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(), nn.Conv2d(64, 64, 3, 1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, ACTIONS))
    return net, (4, 84, 84), lambda p: torch.optim.Adam(p, lr=1e-4, eps=1.5e-4)


def measure(make):
    online, shape, make_opt = make()
    target, _, _ = make()
    target.load_state_dict(online.state_dict())
    opt = make_opt(online.parameters())
    obs = torch.rand(BATCH, *shape)
    next_obs = torch.rand(BATCH, *shape)
    actions = torch.randint(0, ACTIONS, (BATCH,))
    rewards = torch.rand(BATCH) * 2 - 1
    terminated = (torch.rand(BATCH) < 0.1).float()

    def update():
        with torch.no_grad():
            # y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
            y = rewards + GAMMA * (1 - terminated) * target(next_obs).max(dim=1).values
        q = online(obs).gather(1, actions[:, None]).squeeze(1)
        loss = F.huber_loss(q, y, delta=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        update()
    start, n = time.perf_counter(), 0
    while n < 3 or time.perf_counter() - start < 0.8 * BUDGET:
        update()
        n += 1
    ups = n / (time.perf_counter() - start)

    one = obs[:1].clone()
    with torch.no_grad():
        for _ in range(3):
            online(one)
        start, calls = time.perf_counter(), 0
        while calls < 10 or time.perf_counter() - start < 0.2 * BUDGET:
            online(one)
            calls += 1
        infer = (time.perf_counter() - start) * 1e6 / calls
    return {"updates_per_second": ups, "infer_b1_us": infer}


print(json.dumps({"minatar": measure(minatar), "nature": measure(nature)}))
