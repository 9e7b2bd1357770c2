"""The PyTorch peer of `rl-lab bench dqn --json`: a CleanRL-style,
single-file DQN on Python MinAtar Breakout, timed the same way.

    python3 -m venv benches/peers/.venv
    benches/peers/.venv/bin/pip install -r benches/peers/requirements-dqn.txt
    benches/peers/.venv/bin/python benches/peers/dqn_peer.py [SECONDS]

The same work as ours, with MinAtar's examples/dqn.py settings:
- `minatar.Environment("breakout")`: all six actions, sticky actions 0.1,
  difficulty ramping; rewards clipped to their sign (Breakout's are 0 or 1);
- network Conv2d(4, 16, 3, 1), ReLU, Linear(1024, 128), ReLU, Linear(128, 6),
  PyTorch's default initialisation;
- replay of 100,000 transitions, uniform sampling with replacement (as
  CleanRL's buffer), batch 32;
- RMSprop(lr 2.5e-4, alpha 0.95, eps 0.01, centered), Huber loss (delta 1)
  on the taken action, gamma 0.99, one update per env step, target copy
  every 1,000 updates;
- epsilon 1.0 for the first 5,000 random steps, then linear to 0.1 over
  100,000 steps;
- torch.set_num_threads(1).

The first 5,000 steps (random actions, no updates) fill the buffer untimed;
then training runs for SECONDS (default 5) and the env steps per second
over that window are printed as {"minatar/breakout": {"train_steps_per_second": x}}.
"""
import json
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from minatar import Environment

torch.set_num_threads(1)

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
SEED = 0
BUFFER_SIZE = 100_000
BATCH_SIZE = 32
GAMMA = 0.99
LEARNING_RATE = 2.5e-4
TARGET_PERIOD = 1_000
LEARNING_STARTS = 5_000
START_E, END_E, DECAY_STEPS = 1.0, 0.1, 100_000


class QNetwork(nn.Module):
    def __init__(self, channels, actions):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 8 * 8, 128),
            nn.ReLU(),
            nn.Linear(128, actions),
        )

    def forward(self, x):
        return self.network(x)


class Replay:
    """Uniform replay with obs and next_obs stored side by side (as CleanRL's)."""

    def __init__(self, size, shape):
        self.obs = np.zeros((size, *shape), dtype=np.float32)
        self.next_obs = np.zeros((size, *shape), dtype=np.float32)
        self.actions = np.zeros(size, dtype=np.int64)
        self.rewards = np.zeros(size, dtype=np.float32)
        self.terminated = np.zeros(size, dtype=np.float32)
        self.size, self.pos, self.full = size, 0, False

    def add(self, obs, next_obs, action, reward, terminated):
        i = self.pos
        self.obs[i], self.next_obs[i] = obs, next_obs
        self.actions[i], self.rewards[i], self.terminated[i] = action, reward, terminated
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def sample(self, n):
        idx = np.random.randint(0, self.size if self.full else self.pos, size=n)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.actions[idx]),
                torch.from_numpy(self.rewards[idx]), torch.from_numpy(self.next_obs[idx]),
                torch.from_numpy(self.terminated[idx]))


def linear_schedule(start, end, duration, t):
    return max(end, start + (end - start) * t / duration)


def state(env):
    # MinAtar gives [10, 10, C] booleans; the network takes [C, 10, 10] floats.
    return np.ascontiguousarray(env.state().transpose(2, 0, 1), dtype=np.float32)


def main():
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    env = Environment("breakout")
    env.seed(SEED)
    env.reset()
    channels, actions = env.state_shape()[2], env.num_actions()
    q_network = QNetwork(channels, actions)
    optimizer = torch.optim.RMSprop(q_network.parameters(), lr=LEARNING_RATE, alpha=0.95,
                                    eps=0.01, centered=True)
    target_network = QNetwork(channels, actions)
    target_network.load_state_dict(q_network.state_dict())
    replay = Replay(BUFFER_SIZE, (channels, 10, 10))

    obs = state(env)
    updates, step = 0, 0
    began = None
    timed_from = LEARNING_STARTS
    while True:
        if step == timed_from:
            began = time.perf_counter()
        if began is not None and step % 64 == 0 and time.perf_counter() - began >= SECONDS:
            break
        if step < LEARNING_STARTS:
            action = random.randrange(actions)
        else:
            epsilon = linear_schedule(START_E, END_E, DECAY_STEPS, step - LEARNING_STARTS)
            if random.random() < epsilon:
                action = random.randrange(actions)
            else:
                with torch.no_grad():
                    action = int(q_network(torch.from_numpy(obs)[None]).argmax(dim=1)[0])
        reward, terminated = env.act(action)
        next_obs = state(env)
        replay.add(obs, next_obs, action, float(np.sign(reward)), float(terminated))
        obs = next_obs
        if terminated:
            env.reset()
            obs = state(env)
        step += 1

        if step > LEARNING_STARTS:
            s, a, r, s_next, done = replay.sample(BATCH_SIZE)
            with torch.no_grad():
                # y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
                target_max = target_network(s_next).max(dim=1).values
                td_target = r + GAMMA * target_max * (1 - done)
            old_val = q_network(s).gather(1, a[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(old_val, td_target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            if updates % TARGET_PERIOD == 0:
                target_network.load_state_dict(q_network.state_dict())

    rate = (step - timed_from) / (time.perf_counter() - began)
    print(json.dumps({
        "minatar/breakout": {"train_steps_per_second": rate},
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
    }))


if __name__ == "__main__":
    main()
