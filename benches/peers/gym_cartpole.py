"""Gymnasium CartPole-v1's single-thread steps per second: the peer of
`rl-lab bench envs` (its "CartPole-v1" entry).

Run with:
    python3 -m venv benches/peers/.venv
    benches/peers/.venv/bin/pip install gymnasium numpy
    benches/peers/.venv/bin/python benches/peers/gym_cartpole.py [SECONDS]

Same work as rl-lab's: `gymnasium.make("CartPole-v1")` with its default
wrappers (TimeLimit 500, OrderEnforcing, PassiveEnvChecker), reset with
seed 0, uniformly random actions, reset whenever an episode terminates or
is truncated; the median rate of five slices of the time. Prints one JSON
object {"CartPole-v1": steps_per_second}.
"""
import json
import sys
import time

import gymnasium as gym
import numpy as np


SLICES = 5


def steps_per_second(seconds):
    """Median over SLICES slices of `seconds`, as `rl-lab bench envs`."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    # Drawn up front, so the figure is the env's, not numpy's per-call cost.
    actions = np.random.default_rng(1).integers(2, size=4096).tolist()
    rates = []
    for _ in range(SLICES):
        steps = 0
        start = time.perf_counter()
        deadline = start + seconds / SLICES
        while True:
            for a in actions:
                _, _, terminated, truncated, _ = env.step(a)
                if terminated or truncated:
                    env.reset()
            steps += len(actions)
            if time.perf_counter() >= deadline:
                break
        rates.append(steps / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    print(json.dumps({"CartPole-v1": round(steps_per_second(seconds))}))


if __name__ == "__main__":
    main()
