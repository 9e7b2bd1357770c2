#!/usr/bin/env python3
"""Reference traces for rl-classic, made with Gymnasium itself.

Run with:
    python3 -m venv envs/classic/tests/reference/.venv
    envs/classic/tests/reference/.venv/bin/pip install gymnasium numpy
    envs/classic/tests/reference/.venv/bin/python envs/classic/tests/reference/make_traces.py

For each of CartPole-v1, CartPole-v0, MountainCar-v0 and Acrobot-v1 it plays
1,000 steps through `gymnasium.make(id)` (so Gymnasium's own TimeLimit
truncates), resetting whenever an episode ends. Actions mix uniform random
choices with a simple controller, so that the traces contain terminations,
truncations and the far corners of the state space (MountainCar's left
wall, Acrobot's velocity clips). Each episode records Gymnasium's float64
start state (`env.unwrapped.state` after `reset`), the actions, the float64
state after every step, the rewards and how the episode ended. For Acrobot
it also records the float32 observations.

Output: one JSON file per id next to this script, `<id>.json`.
`tests/traces.rs` sets our env to each start state and compares.
"""

import json
import pathlib

import gymnasium as gym
import numpy as np

STEPS = 1000
HERE = pathlib.Path(__file__).resolve().parent


def controller(env_id, state):
    """A policy that makes progress, so episodes end in every possible way."""
    if env_id.startswith("CartPole"):
        _, _, theta, theta_dot = state
        return 1 if theta + 0.5 * theta_dot > 0 else 0
    if env_id.startswith("MountainCar"):
        # Pump energy: push the way the car is already moving.
        return 2 if state[1] >= 0 else 0
    # Acrobot: torque along the second joint's swing.
    return 2 if state[3] >= 0 else 0


def trace(env_id, seed):
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    episodes = []
    taken = 0
    episode = 0
    while taken < STEPS:
        env.reset(seed=seed * 1000 + episode)
        # Alternate purely random episodes with mostly-controlled ones.
        epsilon = 1.0 if episode % 2 == 0 else 0.05
        start = [float(v) for v in np.asarray(env.unwrapped.state, dtype=np.float64)]
        record = {
            "epsilon": epsilon,
            "start": start,
            "actions": [],
            "states": [],
            "rewards": [],
            "end": "cut",
        }
        if env_id.startswith("Acrobot"):
            record["observations"] = []
        while taken < STEPS:
            state = np.asarray(env.unwrapped.state, dtype=np.float64)
            if rng.random() < epsilon:
                action = int(rng.integers(env.action_space.n))
            else:
                action = controller(env_id, state)
            obs, reward, terminated, truncated, _ = env.step(action)
            taken += 1
            record["actions"].append(action)
            record["states"].append(
                [float(v) for v in np.asarray(env.unwrapped.state, dtype=np.float64)]
            )
            record["rewards"].append(float(reward))
            if "observations" in record:
                record["observations"].append([float(v) for v in obs])
            if terminated or truncated:
                # Gymnasium's TimeLimit sets both when the last allowed step
                # also terminates; keep the pair.
                record["end"] = {
                    (True, False): "terminated",
                    (False, True): "truncated",
                    (True, True): "both",
                }[(bool(terminated), bool(truncated))]
                break
        episodes.append(record)
        episode += 1
    env.close()
    return episodes


# Hand-picked states at the edges: thresholds, walls, wraps and clips.
EDGES = {
    "CartPole": [
        ([2.39, 0.5, 0.0, 0.0], 1),
        ([-2.39, -0.6, 0.01, -0.2], 0),
        ([0.0, 0.0, 0.2, 1.0], 0),
        ([0.1, -0.3, -0.2, -1.0], 1),
        ([1.0, 3.0, 0.0, 4.0], 1),
    ],
    "MountainCar": [
        ([-1.19, -0.07], 0),
        ([-1.2, 0.0], 0),
        ([0.49, 0.07], 2),
        ([0.0, 0.069], 2),
        ([-0.5, -0.0699], 0),
        ([0.5, -0.001], 1),
    ],
    "Acrobot": [
        ([3.1, -3.1, 12.5, 28.0], 2),
        ([-3.14, 3.14, -12.5, -28.2], 0),
        ([3.0, 0.0, 0.0, 0.0], 1),
        ([0.0, 0.0, 12.566, 28.27], 2),
        ([1.5, 1.5, -6.0, 14.0], 0),
    ],
}
# Uniform probe ranges, wider than an episode usually goes.
RANGES = {
    "CartPole": [(-2.4, 2.4), (-3.0, 3.0), (-0.21, 0.21), (-3.5, 3.5)],
    "MountainCar": [(-1.2, 0.6), (-0.07, 0.07)],
    "Acrobot": [(-np.pi, np.pi), (-np.pi, np.pi), (-4 * np.pi, 4 * np.pi), (-9 * np.pi, 9 * np.pi)],
}


def probes(env_id, seed, count=200):
    """One step from each of many states: the edges, then random ones."""
    family = env_id.split("-")[0]
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(seed)
    cases = list(EDGES[family])
    for _ in range(count):
        state = [float(rng.uniform(lo, hi)) for lo, hi in RANGES[family]]
        cases.append((state, int(rng.integers(env.action_space.n))))
    out = []
    for state, action in cases:
        env.reset(seed=0)
        env.state = np.array(state, dtype=np.float64)
        _, reward, terminated, _, _ = env.step(action)
        out.append(
            {
                "state": state,
                "action": action,
                "next": [float(v) for v in np.asarray(env.state, dtype=np.float64)],
                "reward": float(reward),
                "terminated": bool(terminated),
            }
        )
    env.close()
    return out


def main():
    for index, env_id in enumerate(
        ["CartPole-v1", "CartPole-v0", "MountainCar-v0", "Acrobot-v1"]
    ):
        episodes = trace(env_id, seed=index + 1)
        ends = {}
        for e in episodes:
            ends[e["end"]] = ends.get(e["end"], 0) + 1
        out = {
            "id": env_id,
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
            "steps": STEPS,
            "episodes": episodes,
            "probes": probes(env_id, seed=100 + index),
        }
        path = HERE / f"{env_id}.json"
        path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
        print(f"{env_id}: {len(episodes)} episodes {ends} -> {path.name}")


if __name__ == "__main__":
    main()
