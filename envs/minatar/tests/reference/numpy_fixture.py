"""Writes tests/fixtures/numpy_random_state.json: numpy's own legacy RandomState
outputs, which `rl_minatar::numpy_rng::RandomState` must reproduce exactly.

Run with:
    python3 -m venv envs/minatar/tests/reference/.venv
    envs/minatar/tests/reference/.venv/bin/pip install minatar==1.0.15 numpy
    envs/minatar/tests/reference/.venv/bin/python envs/minatar/tests/reference/numpy_fixture.py

For each seed (0, 1, 2**32 - 1), from a freshly seeded RandomState:
- `rand`: the first 1,000 `rand()` values, each stored as the integer
  `value * 2**53` (exact, since numpy builds them from 53 random bits);
- `randint`: 1,000 scalar `randint(low, high)` draws, cycling through `BOUNDS`;
- `randint_array`: 125 calls of `randint(1, 6, 8)` (Freeway's car speeds),
  flattened, then 1,000 `randint(0, 7, 1000)`;
- `mixed`: MinAtar-like interleaving of `rand()` and `randint` from one stream.
"""
import json
import os

import numpy as np

SEEDS = [0, 1, 2**32 - 1]
# (low, high), high exclusive. (0, 1) and (5, 6) draw nothing; (0, 2**32)
# takes a raw 32-bit word; the last two exercise the 64-bit path.
BOUNDS = [(0, 2), (0, 1), (1, 9), (0, 8), (0, 3), (5, 6), (1, 6), (-3, 4),
          (0, 1000), (0, 2**31), (0, 2**32 - 1), (0, 2**32), (0, 2**40),
          (-5, 2**33)]
SCALE = 2.0**53


def main():
    out = {"bounds": BOUNDS, "seeds": []}
    for seed in SEEDS:
        rs = np.random.RandomState(seed)
        rand = [int(rs.rand() * SCALE) for _ in range(1000)]
        rs = np.random.RandomState(seed)
        randint = [int(rs.randint(*BOUNDS[i % len(BOUNDS)])) for i in range(1000)]
        rs = np.random.RandomState(seed)
        arr = [int(v) for _ in range(125) for v in rs.randint(1, 6, 8)]
        arr += [int(v) for v in rs.randint(0, 7, 1000)]
        rs = np.random.RandomState(seed)
        mixed = []
        for i in range(1000):
            if i % 3 == 2:
                mixed.append(int(rs.randint(1, 9)))
            else:
                mixed.append(int(rs.rand() * SCALE))
        out["seeds"].append({"seed": seed, "rand": rand, "randint": randint,
                             "randint_array": arr, "mixed": mixed})
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "fixtures", "numpy_random_state.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(path), "numpy", np.__version__)


if __name__ == "__main__":
    main()
