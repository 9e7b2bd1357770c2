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

Seeded episodes (`python make_traces.py seeded`, or no argument for
everything): for every id we register under a Gymnasium id -- the four
above, FrozenLake-v1, FrozenLake8x8-v1 and CliffWalking-v1 (plain and with
`is_slippery=True`) -- and for seeds 0, 8 and 2**31 + 5, four episodes
through `gymnasium.make(id)`: `reset(seed=s)`, `reset(seed=None)`,
`reset(seed=s + 1000)`, `reset(seed=None)`. Actions come from their own
seeded numpy generator (random, or the controller above with a little
randomness; CartPole's are all random, and so are MountainCar's in the
second episode, which the time limit truncates). Each episode records the reset seed, the reset observation,
the actions, and per step the observation, reward, terminated and
truncated; toy-text envs also record `info["prob"]`. Float observations
are written as the float32 bit patterns (`uint32` integers) so that
nothing is lost in decimal. Episodes are cut after `SEEDED_CAP[id]` steps
to keep the files small. Acrobot also records the reset observation of
seeds 0..99 and of every seed below 20,000 whose first observation numpy's
float32 cos/sin computes differently from the correctly rounded value.
Classic control goes to `seeded-<id>.json` here; the gridworlds to
`envs/gridworld/tests/reference/seeded-<id>.json`. `tests/seeded.rs` in
each crate replays them and asserts bit-for-bit equality.
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


SEEDS = [0, 8, 2**31 + 5]
# Steps recorded per episode at most; a longer episode is cut (not ended).
SEEDED_CAP = {
    "CartPole-v1": 200,
    "CartPole-v0": 200,
    "MountainCar-v0": 200,
    "Acrobot-v1": 60,
    "FrozenLake-v1": 100,
    "FrozenLake8x8-v1": 200,
    "CliffWalking-v1": 60,
}
GRIDWORLD_REFERENCE = HERE.parents[2] / "gridworld" / "tests" / "reference"


def float32_bits(obs):
    return np.asarray(obs, dtype=np.float32).reshape(-1).view(np.uint32).tolist()


def cliff_controller(state):
    """Up from the start, right along row 2, down into the goal."""
    row, col = divmod(int(state), 12)
    if row == 3 and col == 0:
        return 0
    if col == 11:
        return 2
    return 1 if row <= 2 else 0


def seeded_action(env_id, obs, rng, action_count, episode):
    if env_id.startswith(("FrozenLake",)):
        return int(rng.integers(action_count))
    if env_id.startswith("CliffWalking"):
        if rng.random() < 0.2:
            return int(rng.integers(action_count))
        return cliff_controller(obs)
    # CartPole: random pushes, so that episodes end early and often;
    # MountainCar's second episode: random, so that it is truncated.
    all_random = env_id.startswith("CartPole") or (env_id.startswith("Mountain") and episode == 1)
    if all_random or rng.random() < 0.1:
        return int(rng.integers(action_count))
    return controller(env_id, np.asarray(obs, dtype=np.float64) if not env_id.startswith("Acrobot") else
                      np.array([0.0, 0.0, 0.0, obs[5]]))


def acrobot_rounding_seeds(below=20000):
    """Seeds whose Acrobot start state hits numpy's float32 cos/sin where it
    differs from the correctly rounded value (about 1 seed in 500)."""
    seeds = []
    for seed in range(100, below):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        angles = rng.uniform(-0.1, 0.1, size=4).astype(np.float32)[:2]
        single = np.concatenate([np.cos(angles), np.sin(angles)])
        double = np.concatenate([np.cos(angles.astype(np.float64)), np.sin(angles.astype(np.float64))])
        if (single != double.astype(np.float32)).any():
            seeds.append(seed)
    return seeds


def seeded(env_id, kwargs, cap):
    env = gym.make(env_id, **kwargs)
    toy_text = isinstance(env.observation_space, gym.spaces.Discrete)
    runs = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed % 2**32 + 77)
        episodes = []
        for episode, reset_seed in enumerate([seed, None, seed + 1000, None]):
            obs, info = env.reset(seed=reset_seed)
            record = {
                "reset_seed": reset_seed,
                "reset": int(obs) if toy_text else float32_bits(obs),
                "actions": [],
                "observations": [],
                "rewards": [],
                "terminated": [],
                "truncated": [],
            }
            if toy_text:
                record["probs"] = []
            for _ in range(cap):
                action = seeded_action(env_id, obs, rng, env.action_space.n, episode)
                obs, reward, terminated, truncated, info = env.step(action)
                record["actions"].append(action)
                record["observations"].append(int(obs) if toy_text else float32_bits(obs))
                record["rewards"].append(float(reward))
                record["terminated"].append(bool(terminated))
                record["truncated"].append(bool(truncated))
                if toy_text:
                    record["probs"].append(float(info["prob"]))
                if terminated or truncated:
                    break
            episodes.append(record)
        runs.append({"seed": seed, "episodes": episodes})
    out = {
        "id": env_id,
        "kwargs": kwargs,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "runs": runs,
    }
    if env_id.startswith("Acrobot"):
        seeds = list(range(100)) + acrobot_rounding_seeds()
        out["resets"] = [
            {"seed": s, "observation": float32_bits(env.reset(seed=s)[0])} for s in seeds
        ]
    env.close()
    return out


def main_seeded():
    cases = [
        ("CartPole-v1", {}, "CartPole-v1"),
        ("CartPole-v0", {}, "CartPole-v0"),
        ("MountainCar-v0", {}, "MountainCar-v0"),
        ("Acrobot-v1", {}, "Acrobot-v1"),
        ("FrozenLake-v1", {}, "FrozenLake-v1"),
        ("FrozenLake8x8-v1", {}, "FrozenLake8x8-v1"),
        ("CliffWalking-v1", {}, "CliffWalking-v1"),
        ("CliffWalking-v1", {"is_slippery": True}, "CliffWalking-v1-slippery"),
    ]
    for env_id, kwargs, name in cases:
        out = seeded(env_id, kwargs, SEEDED_CAP[env_id])
        folder = HERE if name[0] in "CMA" and not name.startswith("Cliff") else GRIDWORLD_REFERENCE
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"seeded-{name}.json"
        path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
        steps = sum(len(e["actions"]) for r in out["runs"] for e in r["episodes"])
        print(f"{name}: {steps} steps -> {path.relative_to(HERE.parents[2])}")


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
    import sys

    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    if part in ("all", "traces"):
        main()
    if part in ("all", "seeded"):
        main_seeded()
