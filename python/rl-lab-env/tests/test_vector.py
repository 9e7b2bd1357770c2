"""Vector instances: one call steps N copies, exactly as Gymnasium's
SyncVectorEnv does with its default NEXT_STEP autoreset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

COPIES = 64


def test_64_cartpoles_match_sync_vector_env(cartpole):
    described = cartpole.ok("POST", "/v1/vector-envs", {"env_id": "CartPole-v1", "num_envs": COPIES})
    instance_id = described["instance_id"]
    assert described["num_envs"] == COPIES and described["env_id"] == "CartPole-v1"
    assert described["action_space"] == {"name": "Discrete", "n": 2, "start": 0, "dtype": "int64"}
    assert described["observation_space"]["shape"] == [4]

    local = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(COPIES)])
    remote = cartpole.ok("POST", f"/v1/vector-envs/{instance_id}/reset", {"seed": 42})
    observations, _ = local.reset(seed=42)
    assert_same(remote["observations"], observations)
    assert remote["infos"] == [{}] * COPIES

    rng = np.random.default_rng(7)
    previous_dones = np.zeros(COPIES, dtype=bool)
    episodes_ended = 0
    for _ in range(300):
        actions = rng.integers(0, 2, size=COPIES)
        remote = cartpole.ok("POST", f"/v1/vector-envs/{instance_id}/step", {"actions": actions.tolist()})
        observations, rewards, terminated, truncated, _ = local.step(actions)
        assert_same(remote["observations"], observations)
        assert remote["rewards"] == rewards.tolist()
        assert remote["terminated"] == terminated.tolist()
        assert remote["truncated"] == truncated.tolist()
        assert remote["dones"] == (terminated | truncated).tolist()
        # A copy that ended last step was reset this step, with reward 0.
        assert remote["autoreset"] == previous_dones.tolist()
        assert all(remote["rewards"][index] == 0.0 for index in np.flatnonzero(previous_dones))
        previous_dones = terminated | truncated
        episodes_ended += int(previous_dones.sum())
    assert episodes_ended > COPIES  # every copy went through autoreset, most several times
    assert cartpole.call("POST", f"/v1/vector-envs/{instance_id}/close") == (204, None)
    assert cartpole.call("POST", f"/v1/vector-envs/{instance_id}/step", {"actions": [0] * COPIES})[0] == 400


def test_vector_errors_name_the_fault(cartpole):
    status, reply = cartpole.call("POST", "/v1/vector-envs", {"env_id": "CartPole-v1", "num_envs": 0})
    assert status == 400 and "num_envs" in reply["message"]
    instance_id = cartpole.ok("POST", "/v1/vector-envs", {"env_id": "CartPole-v1", "num_envs": 3, "seed": 1})[
        "instance_id"
    ]
    assert cartpole.ok("GET", f"/v1/vector-envs/{instance_id}")["num_envs"] == 3
    # A seed given at open seeds the first reset, copy i with seed + i.
    remote = cartpole.ok("POST", f"/v1/vector-envs/{instance_id}/reset", None)
    expected = [gym.make("CartPole-v1").reset(seed=1 + index)[0] for index in range(3)]
    assert_same(remote["observations"], np.stack(expected))
    status, reply = cartpole.call("POST", f"/v1/vector-envs/{instance_id}/step", {"actions": [0, 1]})
    assert status == 400 and "list of 3 actions" in reply["message"]
    status, reply = cartpole.call("POST", f"/v1/vector-envs/{instance_id}/step", {"actions": [0, 1, 5]})
    assert status == 400 and reply["message"].startswith("actions[2]: action 5 is outside the action space")
    # A vector id is not a single env's, nor the other way round.
    assert cartpole.call("POST", f"/v1/envs/{instance_id}/step/", {"action": 0})[0] == 400
    assert instance_id not in cartpole.ok("GET", "/v1/envs/")["all_envs"]
    assert cartpole.call("DELETE", f"/v1/vector-envs/{instance_id}") == (204, None)


def assert_same(wire_values, expected):
    received = np.asarray(wire_values, dtype=np.float64)
    assert np.array_equal(received, np.asarray(expected, dtype=np.float32).astype(np.float64))


def test_vector_infos_rewards_and_actions_of_a_custom_env(start_adapter):
    from custom_envs import SpacesEnv

    custom = start_adapter("--make", "custom_envs:make_spaces_env", "--kwargs", '{"frame_side": 4}')
    instance_id = custom.ok(
        "POST", "/v1/vector-envs", {"env_id": "custom_envs:make_spaces_env", "num_envs": 2, "seed": 5}
    )["instance_id"]
    local = [SpacesEnv(frame_side=4) for _ in range(2)]
    remote = custom.ok("POST", f"/v1/vector-envs/{instance_id}/reset", None)
    assert [info["numpy_int"] for info in remote["infos"]] == [7, 7]
    for index, env in enumerate(local):
        env.reset(seed=5 + index)
    actions = [[0, [0.25, -1.0], [1, 3], [0, 1]], [1.0, [0.1, 0.7], [0, 0], [1, 1]]]
    remote = custom.ok("POST", f"/v1/vector-envs/{instance_id}/step", {"actions": actions})
    for index, (env, action) in enumerate(zip(local, actions)):
        expected = env.step(
            (int(action[0]),)
            + tuple(np.asarray(part, dtype=space.dtype) for part, space in zip(action[1:], env.action_space[1:]))
        )
        assert remote["rewards"][index] == expected[1]
        assert remote["infos"][index]["types"] == ["int", "ndarray", "ndarray", "ndarray"]
        assert remote["infos"][index]["push"] == [float(np.float32(value)) for value in action[1]]
        assert remote["observations"][index]["switches"] == expected[0]["switches"].tolist()


def test_vector_non_finite_reward_and_raising_env_give_500(start_adapter):
    raising = start_adapter("--make", "custom_envs:RaisingEnv")
    infinite = raising.ok(
        "POST", "/v1/vector-envs", {"env_id": "custom_envs:RaisingEnv", "num_envs": 3, "kwargs": {"reward": "inf"}}
    )["instance_id"]
    raising.ok("POST", f"/v1/vector-envs/{infinite}/reset", None)
    status, reply = raising.call("POST", f"/v1/vector-envs/{infinite}/step", {"actions": [0, 0, 0]})
    assert status == 500 and "non-finite reward (inf)" in reply["message"]
    plain = raising.ok("POST", "/v1/vector-envs", {"env_id": "custom_envs:RaisingEnv", "num_envs": 2})["instance_id"]
    raising.ok("POST", f"/v1/vector-envs/{plain}/reset", None)
    status, reply = raising.call("POST", f"/v1/vector-envs/{plain}/step", {"actions": [0, 1]})
    assert (status, reply) == (500, {"message": "ZeroDivisionError: the user's env divided by zero"})
    assert raising.ok("POST", f"/v1/vector-envs/{plain}/step", {"actions": [0, 0]})["rewards"] == [1.0, 1.0]


def test_batched_observations_are_the_same_values_as_raw_bytes(cartpole):
    """`batched: true` sends every copy's observation as one little-endian
    float32 array; it holds exactly what SyncVectorEnv returns."""
    import base64

    described = cartpole.ok(
        "POST", "/v1/vector-envs", {"env_id": "CartPole-v1", "num_envs": 8, "batched": True}
    )
    assert described["batched"] is True
    instance_id = described["instance_id"]

    def decode(wire):
        assert wire["dtype"] == "float32" and wire["shape"] == [8, 4]
        return np.frombuffer(base64.b64decode(wire["base64"]), dtype="<f4").reshape(wire["shape"])

    local = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(8)])
    remote = cartpole.ok("POST", f"/v1/vector-envs/{instance_id}/reset", {"seed": 5})
    observations, _ = local.reset(seed=5)
    assert decode(remote["observations"]).tobytes() == observations.tobytes()
    rng = np.random.default_rng(3)
    for _ in range(60):
        actions = rng.integers(0, 2, size=8)
        remote = cartpole.ok("POST", f"/v1/vector-envs/{instance_id}/step", {"actions": actions.tolist()})
        observations, rewards, terminated, truncated, _ = local.step(actions)
        assert decode(remote["observations"]).tobytes() == observations.tobytes()
        assert remote["rewards"] == rewards.tolist()
        assert remote["terminated"] == terminated.tolist()
    status, error = cartpole.call("POST", "/v1/vector-envs", {"env_id": "CartPole-v1", "num_envs": 2, "batched": "yes"})
    assert status == 400 and "batched" in error["message"]


def test_a_vector_without_autoreset_resets_the_copies_the_client_names(cartpole):
    """`autoreset: false` (protocol 1.2): a copy resets exactly when the
    client says, with the seed it gives, as a training loop with per-episode
    seeds and time limits of its own needs."""
    described = cartpole.ok(
        "POST", "/v1/vector-envs", {"env_id": "CartPole-v1", "num_envs": 3, "autoreset": False}
    )
    assert described["autoreset"] is False and described["has_model"] is False
    instance_id = described["instance_id"]
    step = f"/v1/vector-envs/{instance_id}/step"
    remote = cartpole.ok("POST", f"/v1/vector-envs/{instance_id}/reset", {"seeds": [10, None, 30]})
    local = [gym.make("CartPole-v1") for _ in range(3)]
    assert_same(remote["observations"][0], local[0].reset(seed=10)[0])
    assert_same(remote["observations"][2], local[2].reset(seed=30)[0])
    local[1].reset(seed=99)
    # Copy 0 always pushes right, so its episode ends first; the others
    # alternate, which keeps their poles up longer.
    ended = False
    for count in range(200):
        remote = cartpole.ok("POST", step, {"actions": [1, count % 2, count % 2]})
        expected = local[0].step(1)
        assert_same(remote["observations"][0], expected[0])
        if remote["terminated"][0]:
            ended = True
            break
    assert ended and remote["autoreset"] == [False, False, False]
    status, reply = cartpole.call("POST", step, {"actions": [1, 0, 1]})
    assert not any(remote["dones"][1:])
    assert status == 400 and reply["message"].startswith("resets[0]: copy 0's episode has ended")
    # Copy 0 resets with seed 7 and ignores its null action; copy 1 resets too
    # though its episode goes on; copy 2 steps.
    remote = cartpole.ok(
        "POST", step, {"actions": [None, None, 1], "resets": [True, True, False], "seeds": [7, 8, 123]}
    )
    assert remote["autoreset"] == [True, True, False] and remote["rewards"][:2] == [0.0, 0.0]
    assert_same(remote["observations"][0], local[0].reset(seed=7)[0])
    assert_same(remote["observations"][1], local[1].reset(seed=8)[0])
    assert remote["rewards"][2] == 1.0
    for body, field in [
        ({"actions": [0, 0, 0], "resets": [True]}, "resets must be a list of 3 booleans"),
        ({"actions": [0, 0, 0], "seeds": [1, -2, 3]}, "seeds[1] must be a non-negative integer"),
        ({"actions": [0, None, 0]}, "actions[1]"),
    ]:
        status, reply = cartpole.call("POST", step, body)
        assert status == 400 and field in reply["message"], (body, reply)
    status, reply = cartpole.call("POST", f"/v1/vector-envs/{instance_id}/reset", {"seed": 1, "seeds": [1, 2, 3]})
    assert status == 400 and "seed or seeds" in reply["message"]
    status, reply = cartpole.call("GET", f"/v1/vector-envs/{instance_id}/model")
    assert status == 404 and "no model" in reply["message"]


def test_an_autoreset_vector_takes_seeds_for_the_copies_that_reset(cartpole):
    instance_id = cartpole.ok("POST", "/v1/vector-envs", {"env_id": "CartPole-v1", "num_envs": 2})["instance_id"]
    step = f"/v1/vector-envs/{instance_id}/step"
    cartpole.ok("POST", f"/v1/vector-envs/{instance_id}/reset", {"seed": 0})
    while not cartpole.ok("POST", step, {"actions": [1, 1]})["dones"][0]:
        pass
    remote = cartpole.ok("POST", step, {"actions": [None, 1], "seeds": [41, 42]})
    assert remote["autoreset"][0] is True
    assert_same(remote["observations"][0], gym.make("CartPole-v1").reset(seed=41)[0])


def test_a_vectors_model_is_its_copies(start_adapter):
    lake = start_adapter("--env", "FrozenLake-v1")
    described = lake.ok("POST", "/v1/vector-envs", {"env_id": "FrozenLake-v1", "num_envs": 2})
    assert described["has_model"] is True
    single = lake.open("FrozenLake-v1")
    model = lake.ok("GET", f"/v1/vector-envs/{described['instance_id']}/model")
    assert model == lake.ok("GET", f"/v1/envs/{single}/model/")
    assert model["n_states"] == 16 and model["transitions"][0][0][0][1:] == [0, 0.0, False]
