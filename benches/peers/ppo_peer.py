"""The PyTorch peer of `rl-lab bench ppo --json`: a CleanRL-style,
single-file PPO (after `cleanrl/ppo_atari.py`) on Python MinAtar Breakout,
timed the same way.

    python3 -m venv benches/peers/.venv
    benches/peers/.venv/bin/pip install -r benches/peers/requirements-dqn.txt
    benches/peers/.venv/bin/python benches/peers/ppo_peer.py [SECONDS]
    benches/peers/.venv/bin/python benches/peers/ppo_peer.py --learn STEPS

The same work as ours:
- 8 `minatar.Environment("breakout")` copies (all six actions, sticky
  actions 0.1, difficulty ramping) stepped one after another in this
  process; a copy whose episode ends is reset at once (MinAtar has no
  time limit, so no episode is truncated);
- network Conv2d(4, 16, 3, 1), ReLU, Linear(1024, 128), ReLU, then
  Linear(128, 6) for the logits and Linear(128, 1) for the value,
  orthogonal weights (gain sqrt 2, 0.01 for the policy, 1 for the value)
  and zero biases, as CleanRL's layer_init;
- 128-step rollouts per copy (1,024 transitions), GAE (gamma 0.99, lambda
  0.95), 4 epochs of 4 shuffled minibatches of 256, advantages normalised
  per minibatch, clipped surrogate (0.2) and clipped value loss, entropy
  0.01, value coefficient 0.5, global-norm clip 0.5, Adam (lr 2.5e-4,
  eps 1e-5), the learning rate held constant;
- torch.set_num_threads(1).

One rollout and its update run untimed; then training runs for SECONDS
(default 5) and the env steps per second over that window are printed as
{"minatar/breakout": {"train_steps_per_second": x}}. With --learn STEPS it
trains for STEPS env steps instead and prints the mean return of the last
100 episodes.
"""
import json
import sys
import time
from collections import deque

import numpy as np
import torch
import torch.nn as nn
from minatar import Environment

torch.set_num_threads(1)

SEED = 0
NUM_ENVS = 8
NUM_STEPS = 128
NUM_MINIBATCHES = 4
UPDATE_EPOCHS = 4
GAMMA, GAE_LAMBDA = 0.99, 0.95
CLIP_COEF, ENT_COEF, VF_COEF, MAX_GRAD_NORM = 0.2, 0.01, 0.5, 0.5
LEARNING_RATE = 2.5e-4


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, channels, actions):
        super().__init__()
        self.network = nn.Sequential(
            layer_init(nn.Conv2d(channels, 16, 3, 1)),
            nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(16 * 8 * 8, 128)),
            nn.ReLU(),
        )
        self.actor = layer_init(nn.Linear(128, actions), std=0.01)
        self.critic = layer_init(nn.Linear(128, 1), std=1)

    def get_value(self, x):
        return self.critic(self.network(x))

    def get_action_and_value(self, x, action=None):
        hidden = self.network(x)
        probs = torch.distributions.Categorical(logits=self.actor(hidden))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(hidden)


def frame(env):
    # MinAtar gives [10, 10, C] booleans; the network takes [C, 10, 10].
    return np.transpose(env.state(), (2, 0, 1)).astype(np.float32)


def main():
    learn = len(sys.argv) > 2 and sys.argv[1] == "--learn"
    seconds = 5.0 if learn or len(sys.argv) < 2 else float(sys.argv[1])
    total_steps = int(sys.argv[2]) if learn else None
    torch.manual_seed(SEED)
    envs = [Environment("breakout", sticky_action_prob=0.1, difficulty_ramping=True) for _ in range(NUM_ENVS)]
    for i, env in enumerate(envs):
        env.seed(SEED + i)
        env.reset()
    channels, actions = envs[0].state_shape()[2], envs[0].num_actions()
    agent = Agent(channels, actions)
    optimizer = torch.optim.Adam(agent.parameters(), lr=LEARNING_RATE, eps=1e-5)
    batch_size = NUM_ENVS * NUM_STEPS
    minibatch_size = batch_size // NUM_MINIBATCHES

    obs = torch.zeros((NUM_STEPS, NUM_ENVS, channels, 10, 10))
    acts = torch.zeros((NUM_STEPS, NUM_ENVS), dtype=torch.long)
    logprobs = torch.zeros((NUM_STEPS, NUM_ENVS))
    rewards = torch.zeros((NUM_STEPS, NUM_ENVS))
    dones = torch.zeros((NUM_STEPS, NUM_ENVS))
    values = torch.zeros((NUM_STEPS, NUM_ENVS))
    next_obs = torch.tensor(np.stack([frame(e) for e in envs]))
    next_done = torch.zeros(NUM_ENVS)
    episode_return = np.zeros(NUM_ENVS)
    recent = deque(maxlen=100)

    def iteration():
        nonlocal next_obs, next_done
        for step in range(NUM_STEPS):
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step] = value.flatten()
            acts[step] = action
            logprobs[step] = logprob
            step_rewards, step_dones, frames = np.zeros(NUM_ENVS), np.zeros(NUM_ENVS), []
            for i, env in enumerate(envs):
                reward, terminated = env.act(int(action[i]))
                episode_return[i] += reward
                step_rewards[i] = reward
                if terminated:
                    recent.append(episode_return[i])
                    episode_return[i] = 0.0
                    env.reset()
                    step_dones[i] = 1.0
                frames.append(frame(env))
            rewards[step] = torch.tensor(step_rewards, dtype=torch.float32)
            next_obs = torch.tensor(np.stack(frames))
            next_done = torch.tensor(step_dones, dtype=torch.float32)

        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(NUM_STEPS)):
                if t == NUM_STEPS - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + GAMMA * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + GAMMA * GAE_LAMBDA * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs = obs.reshape((-1, channels, 10, 10))
        b_logprobs, b_actions = logprobs.reshape(-1), acts.reshape(-1)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        b_inds = np.arange(batch_size)
        for _ in range(UPDATE_EPOCHS):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb = b_inds[start:start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - CLIP_COEF, 1 + CLIP_COEF)).mean()
                newvalue = newvalue.view(-1)
                v_unclipped = (newvalue - b_returns[mb]) ** 2
                v_clipped = b_values[mb] + torch.clamp(newvalue - b_values[mb], -CLIP_COEF, CLIP_COEF)
                v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb]) ** 2).mean()
                loss = pg_loss - ENT_COEF * entropy.mean() + VF_COEF * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), MAX_GRAD_NORM)
                optimizer.step()

    np.random.seed(SEED)
    iteration()  # untimed warm-up
    steps, began = 0, time.perf_counter()
    while (steps < total_steps) if learn else (time.perf_counter() - began < seconds):
        iteration()
        steps += batch_size
    elapsed = time.perf_counter() - began
    if learn:
        mean = float(np.mean(recent)) if recent else float("nan")
        print(json.dumps({"minatar/breakout": {"steps": steps + batch_size, "mean_return_last_100": mean,
                                               "seconds": elapsed}}))
    else:
        print(json.dumps({"minatar/breakout": {"train_steps_per_second": steps / elapsed}}))


if __name__ == "__main__":
    main()
