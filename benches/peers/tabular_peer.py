"""The Python peer of `rl-lab bench tabular`: the same three workloads on
Gymnasium with numpy, timed the same way. Prints one JSON object shaped like
`rl-lab bench tabular --json`.

Run through benches/peers/compare.sh, which creates the virtual environment.
"""
import json
import sys
import time

import gymnasium as gym
import numpy as np

BUDGET = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0


def q_learning_cliff_walking(steps):
    """Q-learning, alpha 0.5, epsilon 0.1, gamma 1, on CliffWalking-v1."""
    env = gym.make("CliffWalking-v1")
    rng = np.random.default_rng(0)
    q = np.zeros((env.observation_space.n, env.action_space.n))
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        if rng.random() < 0.1:
            action = int(rng.integers(4))
        else:
            row = q[obs]
            action = int(rng.choice(np.flatnonzero(row == row.max())))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        target = reward + (0.0 if terminated else q[next_obs].max())
        q[obs, action] += 0.5 * (target - q[obs, action])
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()


def value_iteration_frozen_lake(gamma=0.99, theta=1e-10):
    """In-place value iteration over FrozenLake8x8's P, as textbooks write it."""
    env = gym.make("FrozenLake8x8-v1")
    P = env.unwrapped.P
    n_states, n_actions = env.observation_space.n, env.action_space.n
    v = np.zeros(n_states)
    sweeps = 0
    while True:
        delta = 0.0
        for s in range(n_states):
            best = max(
                sum(p * (r + (0.0 if done else gamma * v[s2])) for p, s2, r, done in P[s][a])
                for a in range(n_actions)
            )
            delta = max(delta, abs(best - v[s]))
            v[s] = best
        sweeps += 1
        if delta < theta:
            return sweeps


def gridworld_steps(steps):
    env = gym.make("FrozenLake8x8-v1")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
        if terminated or truncated:
            env.reset()


def rate(work):
    """Steps per second of `work(steps)`, calibrated to about BUDGET seconds."""
    steps = 2000
    while True:
        began = time.perf_counter()
        work(steps)
        elapsed = time.perf_counter() - began
        if elapsed >= BUDGET / 2:
            return steps / elapsed
        steps = int(steps * min(100.0, max(2.0, BUDGET / max(elapsed, 1e-6))))


def main():
    q_rate = rate(q_learning_cliff_walking)
    best, sweeps, began = float("inf"), 0, time.perf_counter()
    while time.perf_counter() - began < BUDGET or best == float("inf"):
        t = time.perf_counter()
        sweeps = value_iteration_frozen_lake()
        best = min(best, time.perf_counter() - t)
    print(json.dumps({
        "q_learning_cliff_walking": {"steps_per_second": q_rate},
        "value_iteration_frozen_lake_8x8": {"seconds": best, "sweeps": sweeps},
        "gridworld_steps_per_second": rate(gridworld_steps),
        "versions": {"gymnasium": gym.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
    }))


if __name__ == "__main__":
    main()
