"""A second PyTorch peer of `rl-lab bench dqn --json`, built the way CleanRL's
single-file DQN scripts are built, with the libraries they use, on MinAtar
Breakout through its Gymnasium registration.

    python3 benches/peers/compare.py dqn-cleanrl [--seconds 10]

or by hand:

    benches/peers/.venv/bin/pip install -r benches/peers/requirements-dqn.txt
    benches/peers/.venv/bin/python benches/peers/dqn_cleanrl.py [SECONDS]

`dqn_peer.py` is the lean peer: the same algorithm written with a bare
numpy replay and direct `Environment.act` calls, the fastest PyTorch
version we know how to write. This one is what a CleanRL user runs:
- `gym.make("MinAtar/Breakout-v0")` (all six actions, sticky actions 0.1,
  difficulty ramping) in `RecordEpisodeStatistics`, inside a one-env
  `gym.vector.SyncVectorEnv`, which auto-resets;
- Stable-Baselines3's `ReplayBuffer` (100,000 transitions,
  `optimize_memory_usage=True`, `handle_timeout_termination=False`), which
  returns torch tensors;
- `q_network(torch.Tensor(obs))` to act, TensorBoard scalars
  (`losses/td_loss`, `losses/q_values`, `charts/SPS`) every 100 steps and
  episode returns as episodes end, through `SummaryWriter`.
The work is the same as ours and the lean peer's: network Conv2d(4, 16, 3),
ReLU, Linear(1024, 128), ReLU, Linear(128, 6); batch 32; RMSprop(lr 2.5e-4,
alpha 0.95, eps 0.01, centered); Huber loss on the taken action (rewards
clipped to their sign; Breakout's are 0 or 1); gamma 0.99; one update per
env step; target copy every 1,000 steps; epsilon 1.0 for 5,000 random steps,
then linear to 0.1 over 100,000; torch.set_num_threads(1).

The 5,000 random steps fill the buffer untimed; training then runs for
SECONDS (default 5) and prints
{"minatar/breakout": {"train_steps_per_second": x}}.
"""
import json
import random
import sys
import tempfile
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from minatar.gym import register_envs
from stable_baselines3.common.buffers import ReplayBuffer
from torch.utils.tensorboard import SummaryWriter

torch.set_num_threads(1)
register_envs()

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
SEED = 0
ENV_ID = "MinAtar/Breakout-v0"
BUFFER_SIZE = 100_000
BATCH_SIZE = 32
GAMMA = 0.99
LEARNING_RATE = 2.5e-4
TARGET_NETWORK_FREQUENCY = 1_000
LEARNING_STARTS = 5_000
START_E, END_E, EXPLORATION_STEPS = 1.0, 0.1, 100_000


def make_env(env_id, seed):
    def thunk():
        env = gym.make(env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env.action_space.seed(seed)
        return env

    return thunk


class QNetwork(nn.Module):
    def __init__(self, envs):
        super().__init__()
        channels = envs.single_observation_space.shape[2]
        self.network = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 8 * 8, 128),
            nn.ReLU(),
            nn.Linear(128, envs.single_action_space.n),
        )

    def forward(self, x):
        # MinAtar observations are [10, 10, C] booleans.
        return self.network(x.float().permute(0, 3, 1, 2))


def linear_schedule(start_e, end_e, duration, t):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def main():
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    envs = gym.vector.SyncVectorEnv([make_env(ENV_ID, SEED)])
    q_network = QNetwork(envs)
    optimizer = torch.optim.RMSprop(q_network.parameters(), lr=LEARNING_RATE, alpha=0.95,
                                    eps=0.01, centered=True)
    target_network = QNetwork(envs)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(
        BUFFER_SIZE,
        envs.single_observation_space,
        envs.single_action_space,
        "cpu",
        optimize_memory_usage=True,
        handle_timeout_termination=False,
    )
    writer = SummaryWriter(tempfile.mkdtemp(prefix="dqn_cleanrl_"))

    obs, _ = envs.reset(seed=SEED)
    autoreset = np.zeros(envs.num_envs, dtype=bool)
    began, timed_from = None, LEARNING_STARTS
    global_step = 0
    while True:
        if global_step == timed_from:
            began = time.perf_counter()
        if began is not None and global_step % 64 == 0 and time.perf_counter() - began >= SECONDS:
            break
        epsilon = linear_schedule(START_E, END_E, EXPLORATION_STEPS, max(0, global_step - LEARNING_STARTS))
        if global_step < LEARNING_STARTS or random.random() < epsilon:
            actions = np.array([envs.single_action_space.sample() for _ in range(envs.num_envs)])
        else:
            q_values = q_network(torch.Tensor(obs))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        if "episode" in infos:
            for i in np.flatnonzero(infos.get("_episode", [])):
                writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], global_step)

        # Gymnasium 1.x vector envs reset an ended episode on the next call
        # (NEXT_STEP): that call's action is ignored and its transition, from
        # a terminal frame to a first frame, is not one to learn from.
        if not autoreset[0]:
            rb.add(obs, next_obs.copy(), actions, np.sign(rewards), terminations, infos)
        autoreset = np.logical_or(terminations, truncations)
        obs = next_obs

        if global_step > LEARNING_STARTS:
            data = rb.sample(BATCH_SIZE)
            with torch.no_grad():
                # y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
                target_max, _ = target_network(data.next_observations).max(dim=1)
                td_target = data.rewards.flatten() + GAMMA * target_max * (1 - data.dones.flatten())
            old_val = q_network(data.observations).gather(1, data.actions).squeeze()
            loss = F.smooth_l1_loss(old_val, td_target)
            if global_step % 100 == 0:
                writer.add_scalar("losses/td_loss", loss, global_step)
                writer.add_scalar("losses/q_values", old_val.mean().item(), global_step)
                elapsed = time.perf_counter() - began
                writer.add_scalar("charts/SPS", int((global_step - timed_from) / max(elapsed, 1e-9)), global_step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            if global_step % TARGET_NETWORK_FREQUENCY == 0:
                target_network.load_state_dict(q_network.state_dict())
        global_step += 1

    rate = (global_step - timed_from) / (time.perf_counter() - began)
    writer.close()
    envs.close()
    import stable_baselines3
    print(json.dumps({
        "minatar/breakout": {"train_steps_per_second": rate},
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "gymnasium": gym.__version__, "stable_baselines3": stable_baselines3.__version__,
                     "python": sys.version.split()[0]},
    }))


if __name__ == "__main__":
    main()
