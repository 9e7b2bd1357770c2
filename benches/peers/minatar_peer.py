"""Python MinAtar's single-thread steps per second: the peer of
`cargo bench -p rl-minatar --bench games` and `rl-lab bench envs`.

Run with:
    python3 -m venv benches/peers/.venv
    benches/peers/.venv/bin/pip install minatar==1.0.15 numpy
    benches/peers/.venv/bin/python benches/peers/minatar_peer.py [SECONDS]

Same work as `rl_minatar::bench`: default `Environment` (sticky actions 0.1,
difficulty ramping), seed 0, uniformly random actions from all six,
`act` then `state()` every step as an agent would, reset when an episode
ends; the median rate of five slices of the time. Prints one JSON object
{game: steps_per_second}.
"""
import json
import sys
import time

import numpy as np
from minatar import Environment

GAMES = ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]


SLICES = 5


def steps_per_second(game, seconds):
    """Median over SLICES slices of `seconds`, as `rl-lab bench envs`."""
    env = Environment(game)
    env.seed(0)
    env.reset()
    actions = np.random.RandomState(1).randint(6, size=4096).tolist()
    rates = []
    for _ in range(SLICES):
        steps = 0
        start = time.perf_counter()
        deadline = start + seconds / SLICES
        while True:
            for a in actions:
                _, terminal = env.act(a)
                env.state()
                if terminal:
                    env.reset()
            steps += len(actions)
            if time.perf_counter() >= deadline:
                break
        rates.append(steps / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    print(json.dumps({g: round(steps_per_second(g, seconds)) for g in GAMES}))


if __name__ == "__main__":
    main()
