"""Small envs served with `--make custom_envs:...` by the tests: every space
kind the wire carries, an env that raises, and one that records its close."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SpacesEnv(gym.Env):
    """Observations of every space kind, drawn from the env's own seeded
    generator, so an in-process copy with the same seed predicts them."""

    def __init__(self, frame_side: int = 32):
        self.observation_space = spaces.Dict(
            {
                "position": spaces.Tuple(
                    (spaces.Discrete(5, start=1), spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32))
                ),
                "switches": spaces.MultiBinary(3),
                "dials": spaces.MultiDiscrete([3, 2]),
                # 32 x 32 = 1,024 elements: the smallest frame sent as base64.
                "frame": spaces.Box(0, 255, shape=(frame_side, frame_side), dtype=np.uint8),
                "small_frame": spaces.Box(0, 255, shape=(2, 3), dtype=np.uint8),
            }
        )
        self.action_space = spaces.Tuple(
            (
                spaces.Discrete(3),
                spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
                spaces.MultiDiscrete([2, 4]),
                spaces.MultiBinary(2),
            )
        )

    def _observation(self) -> dict:
        return self.observation_space.sample()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self._steps = 0
        info = {
            "numpy_scalar": np.float32(0.1),
            "numpy_int": np.int64(7),
            "numpy_bool": np.bool_(True),
            "array": np.arange(3, dtype=np.int16),
            "non_finite": [float("inf"), -np.inf, float("nan")],
            "nested": {"tuple": (np.uint8(1), None, "text"), 3: "int key"},
            "other": {1, 2},
            "options": options,
        }
        return self._observation(), info

    def step(self, action):
        choice, push, dials, bits = action
        self._steps += 1
        # What the adapter handed over, so a test can check the conversion.
        info = {
            "types": [type(choice).__name__, type(push).__name__, type(dials).__name__, type(bits).__name__],
            "dtypes": [str(push.dtype), str(dials.dtype), str(bits.dtype)],
            "push": push,
        }
        return self._observation(), float(choice), choice == 2, self._steps >= 5, info


def make_spaces_env(**kwargs) -> SpacesEnv:
    return SpacesEnv(**kwargs)


class RaisingEnv(gym.Env):
    """Raises on action 1, as a buggy user env would; action 0 is fine."""

    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(2)

    def __init__(self, reward: float = 1.0):
        self.reward = reward

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        if action == 1:
            raise ZeroDivisionError("the user's env divided by zero")
        # An infinite reward, when asked for, cannot cross: the adapter says so.
        reward = float("inf") if self.reward == "inf" else self.reward
        return 1, reward, False, False, {}


class ClosingEnv(gym.Env):
    """Appends a line to `marker` when closed, so a test sees every close."""

    observation_space = spaces.Discrete(1)
    action_space = spaces.Discrete(1)

    def __init__(self, marker: str):
        self.marker = Path(marker)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 0.0, True, False, {}

    def close(self):
        with self.marker.open("a") as file:
            file.write("closed\n")
