"""Records reference traces of the Python `minatar` package (1.0.15) for
`rl_minatar::trace::replay`, which `tests/fidelity.rs` runs on every
committed trace.

Run with:
    python3 -m venv envs/minatar/tests/reference/.venv
    envs/minatar/tests/reference/.venv/bin/pip install minatar==1.0.15 numpy
    envs/minatar/tests/reference/.venv/bin/python \
        envs/minatar/tests/reference/make_traces.py            # the committed set
    ... make_traces.py --seeds 0-9 --out /tmp/minatar-traces  # the full acceptance
    cargo run -p rl-minatar --release --example replay_traces -- /tmp/minatar-traces

For each game and seed: `Environment(game, sticky_action_prob,
difficulty_ramping)`, `seed(seed)`, `reset()`; then `steps` steps with
actions `np.random.RandomState(seed + ACTION_SEED_OFFSET).randint(6)`
(all six actions), resetting after every terminal step. Stored per step:
the CRC-32 of the frame (MinAtar's `state()` transposed to channel-first
`[C, 10, 10]`, one byte per cell), the rewards and the terminal flags;
and the CRC-32 of every reset frame.
"""
import argparse
import json
import os
import zlib
from importlib.metadata import version

import numpy as np
from minatar import Environment

GAMES = ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]
ACTION_SEED_OFFSET = 1_000_003
HERE = os.path.dirname(os.path.abspath(__file__))


def frame_crc(env):
    planes = np.ascontiguousarray(env.state().transpose(2, 0, 1), dtype=np.uint8)
    return "%08x" % (zlib.crc32(planes.tobytes()) & 0xFFFFFFFF)


def scripted(game, env, rng):
    """A crude game-aware policy (30% random) that reaches states uniform
    play rarely does: Freeway crossings, Seaquest surfacing with 6 divers,
    Breakout refills, Space Invaders waves. It reads MinAtar's internals."""
    if rng.rand() < 0.3:
        return int(rng.randint(6))
    g = env.env
    n, l, u, r, d, f = range(6)
    if game == "breakout":
        return l if g.ball_x < g.pos else r if g.ball_x > g.pos else n
    if game == "freeway":
        return u
    if game == "space_invaders":
        if g.shot_timer == 0:
            return f
        cols = [x for x in range(10) if g.alien_map[:, x].any()]
        target = min(cols, key=lambda x: abs(x - g.pos)) if cols else g.pos
        return l if target < g.pos else r if target > g.pos else n
    if game == "seaquest":
        if g.oxygen < 40 or g.diver_count >= 6:
            return u
        if g.divers:
            dv = min(g.divers, key=lambda v: abs(v[0] - g.sub_x) + abs(v[1] - g.sub_y))
            if dv[1] < g.sub_y:
                return u
            if dv[1] > g.sub_y:
                return d
            return f if rng.rand() < 0.3 else (l if dv[0] < g.sub_x else r)
        return f if g.sub_y > 0 else d
    if game == "asterix":
        gold = [e for e in g.entities if e is not None and e[3]]
        if gold:
            e = gold[0]
            return u if e[1] < g.player_y else d if e[1] > g.player_y else n
        return int(rng.randint(6))
    return int(rng.randint(6))


def record(game, seed, steps, sticky, ramping, policy="uniform"):
    env = Environment(game, sticky_action_prob=sticky, difficulty_ramping=ramping)
    env.seed(seed)
    env.reset()
    action_seed = seed + ACTION_SEED_OFFSET
    actions_rng = np.random.RandomState(action_seed)
    actions, frames, rewards, terminals = [], [], [], []
    resets = [frame_crc(env)]
    for step in range(1, steps + 1):
        if policy == "uniform":
            a = int(actions_rng.randint(6))
        else:
            a = scripted(game, env, actions_rng)
        r, terminal = env.act(a)
        actions.append(str(a))
        frames.append(frame_crc(env))
        if r:
            rewards.append([step, int(r)])
        if terminal:
            terminals.append(step)
            env.reset()
            resets.append(frame_crc(env))
    return {
        "minatar_version": version("minatar"),
        "game": game,
        "seed": seed,
        "action_seed": action_seed,
        "sticky_action_prob": sticky,
        "difficulty_ramping": ramping,
        "policy": policy,
        "steps": steps,
        "actions": "".join(actions),
        "frames": "".join(frames),
        "resets": "".join(resets),
        "rewards": rewards,
        "terminals": terminals,
    }


def seed_list(text):
    seeds = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--games", default=",".join(GAMES))
    p.add_argument("--seeds", default="0,1", help="e.g. 0,1 or 0-9")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--sticky", type=float, default=0.1)
    p.add_argument("--no-ramping", action="store_true")
    p.add_argument("--policy", choices=["uniform", "scripted"], default="uniform",
                   help="uniform: randint(6) each step (the acceptance test); "
                        "scripted: a crude game-aware policy for deeper states")
    p.add_argument("--out", default=os.path.join(HERE, "traces"))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ramping = not args.no_ramping
    for game in args.games.split(","):
        for seed in seed_list(args.seeds):
            trace = record(game, seed, args.steps, args.sticky, ramping, args.policy)
            suffix = "" if (args.sticky, ramping) == (0.1, True) else \
                "-sticky%g%s" % (args.sticky, "" if ramping else "-noramp")
            if args.policy != "uniform":
                suffix += "-" + args.policy
            path = os.path.join(args.out, "%s-seed%d%s.json" % (game, seed, suffix))
            with open(path, "w") as f:
                json.dump(trace, f, separators=(",", ":"))
                f.write("\n")
            print("%s: %d episodes, return %d" % (
                path, len(trace["terminals"]), sum(r for _, r in trace["rewards"])))


if __name__ == "__main__":
    main()
