"""The model route serves Gymnasium's `env.unwrapped.P` exactly."""

from __future__ import annotations

import gymnasium as gym
import pytest


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("FrozenLake-v1", {}), ("FrozenLake-v1", {"map_name": "8x8"}), ("Taxi-v4", {}), ("CliffWalking-v1", {})],
)
def test_model_equals_gymnasium_p(start_adapter, env_id, kwargs):
    adapter = start_adapter("--env", env_id)
    instance_id = adapter.open(env_id, kwargs=kwargs)
    assert adapter.ok("GET", f"/v1/envs/{instance_id}/")["has_model"] is True
    model = adapter.ok("GET", f"/v1/envs/{instance_id}/model/")
    transitions = gym.make(env_id, **kwargs).unwrapped.P
    assert model["n_states"] == len(transitions)
    assert model["n_actions"] == len(transitions[0])
    expected = [
        [[[p, int(next_state), float(reward), terminated] for p, next_state, reward, terminated in outcomes]
         for outcomes in (transitions[state][action] for action in range(len(transitions[state])))]
        for state in range(len(transitions))
    ]
    assert model["transitions"] == expected
    assert adapter.stop() == 0
