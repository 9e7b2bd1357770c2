"""Every single-instance route of docs/env-protocol.md §1 on a real adapter
serving CartPole-v1, and the error bodies the protocol promises."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest


def test_version_names_protocol_and_versions(cartpole):
    reply = cartpole.ok("GET", "/v1/version")
    assert reply["protocol"] == "rl-lab-env"
    assert reply["version"] == "1.2"
    assert reply["gymnasium"] == gym.__version__
    assert reply["numpy"] == np.__version__
    assert reply["package"] == "0.1.0"


def test_echo_returns_the_body(cartpole):
    body = {"nested": [1, 2.5, None, {"a": "b"}], "flag": True}
    assert cartpole.ok("POST", "/v1/echo", body) == body


def test_open_list_describe_close_and_delete(cartpole):
    first = cartpole.open("CartPole-v1")
    second = cartpole.open("CartPole-v1")
    assert len(first) == 8 and int(first, 16) >= 0
    assert cartpole.ok("GET", "/v1/envs/")["all_envs"] == {first: "CartPole-v1", second: "CartPole-v1"}

    described = cartpole.ok("GET", f"/v1/envs/{first}/")
    assert described == {
        "instance_id": first,
        "env_id": "CartPole-v1",
        "observation_space": {
            "name": "Box",
            "shape": [4],
            "low": [float(np.float32(-4.8)), -1e100, float(np.float32(-0.41887903)), -1e100],
            "high": [float(np.float32(4.8)), 1e100, float(np.float32(0.41887903)), 1e100],
            "dtype": "float32",
        },
        "action_space": {"name": "Discrete", "n": 2, "start": 0, "dtype": "int64"},
        "max_episode_steps": 500,
        "has_model": False,
    }
    assert cartpole.ok("GET", f"/v1/envs/{first}/action_space/") == {"info": described["action_space"]}
    assert cartpole.ok("GET", f"/v1/envs/{first}/observation_space/") == {"info": described["observation_space"]}

    assert cartpole.call("POST", f"/v1/envs/{first}/close/", None) == (204, None)
    assert cartpole.call("DELETE", f"/v1/envs/{second}/") == (204, None)
    assert cartpole.ok("GET", "/v1/envs/")["all_envs"] == {}
    for instance_id in (first, second):
        assert cartpole.call("POST", f"/v1/envs/{instance_id}/reset/") == (
            400,
            {"message": f"Instance_id {instance_id} unknown"},
        )
    assert cartpole.call("DELETE", f"/v1/envs/{first}/")[0] == 400


def test_keep_alive_reuses_one_connection(cartpole):
    cartpole.ok("GET", "/v1/version")
    socket = cartpole.connection.sock
    instance_id = cartpole.open("CartPole-v1")
    cartpole.ok("POST", f"/v1/envs/{instance_id}/reset/", {"seed": 1})
    cartpole.call("POST", f"/v1/envs/{instance_id}/step/", {"action": 9})  # an error reply keeps it too
    cartpole.ok("POST", f"/v1/envs/{instance_id}/step/", {"action": 0})
    cartpole.call("DELETE", f"/v1/envs/{instance_id}/")
    assert cartpole.connection.sock is socket


@pytest.mark.parametrize("seed", [0, 8, 12345])
def test_reset_and_steps_match_in_process_gymnasium_bit_for_bit(cartpole, seed):
    instance_id = cartpole.open("CartPole-v1")
    local = gym.make("CartPole-v1")
    remote = cartpole.ok("POST", f"/v1/envs/{instance_id}/reset/", {"seed": seed, "options": None})
    observation, info = local.reset(seed=seed)
    assert_same_float32(remote["observation"], observation)
    assert remote["info"] == info
    actions = np.random.default_rng(seed).integers(0, 2, size=40)
    for action in actions:
        remote = cartpole.ok("POST", f"/v1/envs/{instance_id}/step/", {"action": int(action)})
        observation, reward, terminated, truncated, _ = local.step(int(action))
        assert_same_float32(remote["observation"], observation)
        assert (remote["reward"], remote["terminated"], remote["truncated"]) == (reward, terminated, truncated)
        assert remote["done"] == (terminated or truncated)
        if remote["done"]:
            break
    cartpole.call("DELETE", f"/v1/envs/{instance_id}/")


def test_seed_given_at_open_seeds_the_first_reset(cartpole):
    instance_id = cartpole.open("CartPole-v1", seed=5)
    remote = cartpole.ok("POST", f"/v1/envs/{instance_id}/reset/", None)
    assert_same_float32(remote["observation"], gym.make("CartPole-v1").reset(seed=5)[0])
    cartpole.call("DELETE", f"/v1/envs/{instance_id}/")


def test_integral_float_action_is_the_integer(cartpole):
    instance_id = cartpole.open("CartPole-v1")
    cartpole.ok("POST", f"/v1/envs/{instance_id}/reset/", {"seed": 1})
    assert cartpole.ok("POST", f"/v1/envs/{instance_id}/step/", {"action": 1.0})["reward"] == 1.0
    cartpole.call("DELETE", f"/v1/envs/{instance_id}/")


def test_gym_http_api_extras(cartpole):
    instance_id = cartpole.open("CartPole-v1")
    assert cartpole.ok("GET", f"/v1/envs/{instance_id}/action_space/sample")["action"] in (0, 1)
    assert cartpole.ok("GET", f"/v1/envs/{instance_id}/action_space/contains/1") == {"member": True}
    assert cartpole.ok("GET", f"/v1/envs/{instance_id}/action_space/contains/2") == {"member": False}
    contains = f"/v1/envs/{instance_id}/observation_space/contains"
    assert cartpole.ok("POST", contains, {"name": "Box", "shape": [4]}) == {"member": True}
    assert cartpole.ok("POST", contains, {"name": "Discrete"}) == {"member": False}
    status, reply = cartpole.call("POST", f"/v1/envs/{instance_id}/monitor/start/", {"directory": "/tmp/x"})
    assert status == 404 and "monitor/start" in reply["message"]
    status, reply = cartpole.call("GET", f"/v1/envs/{instance_id}/model/")
    assert status == 404 and "has no model" in reply["message"]
    cartpole.call("DELETE", f"/v1/envs/{instance_id}/")


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "words"),
    [
        ("POST", "/v1/envs/", b'{"env_id": "Taxi-v4"}', 400, ["'Taxi-v4'", "'CartPole-v1'"]),
        ("POST", "/v1/envs/", b"{}", 400, ["'env_id' was not provided"]),
        ("POST", "/v1/envs/", b'{"env_id": "CartPole-v1", "seed": -1}', 400, ["seed"]),
        ("POST", "/v1/envs/", b'{"env_id": "CartPole-v1", "kwargs": [1]}', 400, ["kwargs"]),
        ("POST", "/v1/envs/", b'{"env_id": "CartPole-v1", "kwargs": {"wobble": 1}}', 400, ["wobble"]),
        ("POST", "/v1/envs/", b"{not json", 400, ["not JSON"]),
        ("POST", "/v1/envs/", b"[1, 2]", 400, ["JSON object"]),
        ("GET", "/v1/nowhere", b"", 404, ["no route GET /v1/nowhere"]),
        ("DELETE", "/v1/version", b"", 405, ["use GET"]),
        ("POST", "/v1/envs/0badbeef/step/", b'{"action": 0}', 400, ["Instance_id 0badbeef unknown"]),
    ],
)
def test_errors_are_json_messages_naming_the_fault(cartpole, method, path, raw, status, words):
    got_status, reply = cartpole.call(method, path, raw=raw)
    assert got_status == status
    assert set(reply) == {"message"}
    for word in words:
        assert word in reply["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"action": 2}, ["action 2", "Discrete(2)"]),
        ({"action": "left"}, ['action "left"', "Discrete(2)", "not an integer"]),
        ({"action": 0.5}, ["action 0.5", "not an integer"]),
        ({"action": True}, ["action true"]),
        ({"action": None}, ["'action' was not provided"]),
        ({}, ["'action' was not provided"]),
    ],
)
def test_bad_actions_are_400_naming_action_and_space(cartpole, body, words):
    instance_id = cartpole.open("CartPole-v1")
    cartpole.ok("POST", f"/v1/envs/{instance_id}/reset/", {"seed": 1})
    status, reply = cartpole.call("POST", f"/v1/envs/{instance_id}/step/", body)
    assert status == 400
    for word in words:
        assert word in reply["message"]
    cartpole.call("DELETE", f"/v1/envs/{instance_id}/")


def test_step_before_reset_is_a_client_error(cartpole):
    instance_id = cartpole.open("CartPole-v1")
    status, reply = cartpole.call("POST", f"/v1/envs/{instance_id}/step/", {"action": 0})
    assert status == 400 and "reset" in reply["message"]
    cartpole.call("DELETE", f"/v1/envs/{instance_id}/")


def assert_same_float32(wire_values, expected):
    """The wire's numbers read back as exactly the env's float32 values."""
    received = np.asarray(wire_values, dtype=np.float64)
    expected = np.asarray(expected)
    assert expected.dtype == np.float32
    # Each number is a float32 value, written exactly: no rounding on the way.
    assert np.array_equal(received.astype(np.float32).astype(np.float64), received)
    assert np.array_equal(received.astype(np.float32).view(np.uint32), expected.view(np.uint32))
