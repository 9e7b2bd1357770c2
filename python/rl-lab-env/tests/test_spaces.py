"""Each space kind on the wire: descriptions, values (including base64
frames and bit-exact float32), action conversion and plain-JSON info."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from custom_envs import SpacesEnv
from gymnasium import spaces

from rl_lab_env import spaces as wire
from rl_lab_env.errors import ActionError, EnvError

SERVED = "custom_envs:make_spaces_env"


@pytest.fixture(scope="module")
def custom(start_adapter):
    return start_adapter("--make", SERVED)


def test_make_serves_the_callable_under_its_own_string(custom):
    instance_id = custom.open(SERVED)
    described = custom.ok("GET", f"/v1/envs/{instance_id}/")
    assert described["env_id"] == SERVED
    assert described["max_episode_steps"] is None and described["has_model"] is False
    assert described["observation_space"] == {
        "name": "Dict",
        "spaces": {
            "position": {
                "name": "Tuple",
                "spaces": [
                    {"name": "Discrete", "n": 5, "start": 1, "dtype": "int64"},
                    {"name": "Box", "shape": [2], "low": [-1e100] * 2, "high": [1e100] * 2, "dtype": "float32"},
                ],
            },
            "switches": {"name": "MultiBinary", "n": 3, "shape": [3], "dtype": "int8"},
            "dials": {"name": "MultiDiscrete", "nvec": [3, 2], "start": [0, 0], "shape": [2], "dtype": "int64"},
            "frame": {"name": "Box", "shape": [32, 32], "low": [0] * 1024, "high": [255] * 1024, "dtype": "uint8"},
            "small_frame": {"name": "Box", "shape": [2, 3], "low": [0] * 6, "high": [255] * 6, "dtype": "uint8"},
        },
    }
    assert described["action_space"]["name"] == "Tuple"
    assert [member["name"] for member in described["action_space"]["spaces"]] == [
        "Discrete",
        "Box",
        "MultiDiscrete",
        "MultiBinary",
    ]
    custom.call("DELETE", f"/v1/envs/{instance_id}/")


def test_make_with_env_serves_under_that_name(start_adapter):
    named = start_adapter("--make", SERVED, "--env", "Spaces-v0", "--kwargs", '{"frame_side": 4}')
    instance_id = named.open("Spaces-v0")
    described = named.ok("GET", f"/v1/envs/{instance_id}/")
    assert described["env_id"] == "Spaces-v0"
    assert described["observation_space"]["spaces"]["frame"]["shape"] == [4, 4]
    # The request's kwargs are merged over the adapter's.
    wider = named.open("Spaces-v0", kwargs={"frame_side": 40})
    assert named.ok("GET", f"/v1/envs/{wider}/")["observation_space"]["spaces"]["frame"]["shape"] == [40, 40]
    status, reply = named.call("POST", "/v1/envs/", {"env_id": SERVED})
    assert status == 400 and "'Spaces-v0'" in reply["message"]


def test_values_of_every_kind_match_the_in_process_env(custom):
    instance_id = custom.open(SERVED)
    local = SpacesEnv()
    remote = custom.ok("POST", f"/v1/envs/{instance_id}/reset/", {"seed": 3, "options": {"level": 2}})
    observation, _ = local.reset(seed=3, options={"level": 2})
    assert_observation(remote["observation"], observation)
    assert remote["info"] == {
        "numpy_scalar": float(np.float32(0.1)),
        "numpy_int": 7,
        "numpy_bool": True,
        "array": [0, 1, 2],
        "non_finite": ["inf", "-inf", "nan"],
        "nested": {"tuple": [1, None, "text"], "3": "int key"},
        "other": "{1, 2}",
        "options": {"level": 2},
    }
    actions = [
        [0, [0.25, -1.0], [1, 3], [0, 1]],
        [1.0, [0.1, 0.7], [0, 0], [1, 1]],  # 1.0 is the integer 1
        [2, [1, 1], [1, 2], [1, 0]],  # ints for a float32 Box
    ]
    for action in actions:
        remote = custom.ok("POST", f"/v1/envs/{instance_id}/step/", {"action": action})
        expected = local.step(
            (int(action[0]),)
            + tuple(np.asarray(part, dtype=space.dtype) for part, space in zip(action[1:], local.action_space[1:]))
        )
        assert_observation(remote["observation"], expected[0])
        assert (remote["reward"], remote["terminated"], remote["truncated"]) == tuple(expected[1:4])
        assert remote["info"]["types"] == ["int", "ndarray", "ndarray", "ndarray"]
        assert remote["info"]["dtypes"] == ["float32", "int64", "int8"]
        assert remote["info"]["push"] == [float(np.float32(value)) for value in action[1]]
    assert remote["terminated"] is True
    custom.call("DELETE", f"/v1/envs/{instance_id}/")


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ([3, [0, 0], [0, 0], [0, 0]], ["3 is not in [0, 3)"]),
        ([0, [0, 2], [0, 0], [0, 0]], ["outside the bounds"]),
        ([0, [0], [0, 0], [0, 0]], ["shape [1]", "[2]"]),
        ([0, [0, 0], [0, 4], [0, 0]], ["outside the bounds"]),
        ([0, [0, 0], [0.5, 1], [0, 0]], ["not all integers"]),
        ([0, [0, 0], [0, 0], [0, 2]], ["outside the bounds"]),
        ([0, [0, 0], [0, 0]], ["list of 4 members"]),
        ({"a": 1}, ["list of 4 members"]),
        ([0, ["x", "y"], [0, 0], [0, 0]], ["not an array of numbers"]),
    ],
)
def test_actions_outside_the_space_are_400_naming_both(custom, action, words):
    instance_id = custom.open(SERVED)
    custom.ok("POST", f"/v1/envs/{instance_id}/reset/", {"seed": 1})
    status, reply = custom.call("POST", f"/v1/envs/{instance_id}/step/", {"action": action})
    assert status == 400
    assert reply["message"].startswith(f"action {json.dumps(action)} is outside the action space Tuple(")
    for word in words:
        assert word in reply["message"]
    custom.call("DELETE", f"/v1/envs/{instance_id}/")


def test_an_env_that_raises_gives_500_and_the_adapter_keeps_serving(start_adapter):
    raising = start_adapter("--make", "custom_envs:RaisingEnv")
    instance_id = raising.open("custom_envs:RaisingEnv")
    raising.ok("POST", f"/v1/envs/{instance_id}/reset/")
    status, reply = raising.call("POST", f"/v1/envs/{instance_id}/step/", {"action": 1})
    assert (status, reply) == (500, {"message": "ZeroDivisionError: the user's env divided by zero"})
    assert raising.ok("POST", f"/v1/envs/{instance_id}/step/", {"action": 0})["reward"] == 1.0
    assert "ZeroDivisionError" in raising.stderr_text()

    infinite = raising.open("custom_envs:RaisingEnv", kwargs={"reward": "inf"})
    raising.ok("POST", f"/v1/envs/{infinite}/reset/")
    status, reply = raising.call("POST", f"/v1/envs/{infinite}/step/", {"action": 0})
    assert status == 500 and "non-finite reward" in reply["message"]


# ------------------------------------------------------------ in-process units


def test_float32_values_cross_bit_for_bit():
    rng = np.random.default_rng(0)
    special = np.array(
        [0.1, -0.0, 1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 16777217.0, 0.3, 2.0 / 3.0],
        dtype=np.float32,
    )
    values = np.concatenate([special, rng.standard_normal(5000).astype(np.float32) * 1e3,
                             rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    values = values[np.isfinite(values)]
    text = json.dumps(wire.encode_array(values))
    back = np.asarray(json.loads(text), dtype=np.float64)
    # Read as float64 it is the float32's value exactly, not merely near it.
    assert np.array_equal(back, values.astype(np.float64))
    assert np.array_equal(back.astype(np.float32).view(np.uint32), values.view(np.uint32))
    # And each is the shortest decimal of the float64 it widens to.
    assert json.dumps(float(np.float32(0.1))) == "0.10000000149011612"


def test_uint8_arrays_switch_to_base64_at_1024_elements():
    small = np.arange(1023, dtype=np.uint8)
    assert wire.encode_array(small) == small.tolist()
    frame = (np.arange(2048) % 256).astype(np.uint8).reshape(2, 32, 32)
    encoded = wire.encode_array(frame)
    assert encoded["dtype"] == "uint8" and encoded["shape"] == [2, 32, 32]
    assert base64.b64decode(encoded["base64"]) == frame.tobytes()
    assert np.array_equal(wire.decode_array(encoded), frame)
    # Other dtypes stay lists, however large.
    assert isinstance(wire.encode_array(np.zeros(2048, dtype=np.int8)), list)


def test_infinite_observations_are_1e100_and_nan_is_refused():
    assert wire.encode_array(np.array([np.inf, -np.inf, 1.5], dtype=np.float32)) == [1e100, -1e100, 1.5]
    with pytest.raises(EnvError, match="NaN"):
        wire.encode_array(np.array([np.nan], dtype=np.float32))


def test_plain_json_covers_numpy_and_strangers():
    value = {
        "f": np.float64(2.5),
        "h": np.float16(0.5),
        "i": np.uint64(2**63),
        "a": np.array([[1.0, np.nan]]),
        "t": (1, [np.inf]),
        "b": b"x",
        "none": None,
    }
    assert wire.plain_json(value) == {
        "f": 2.5,
        "h": 0.5,
        "i": 2**63,
        "a": [[1.0, "nan"]],
        "t": [1, ["inf"]],
        "b": "b'x'",
        "none": None,
    }
    json.dumps(wire.plain_json(value), allow_nan=False)


def test_describe_writes_multi_dimensional_spaces_row_major():
    box = spaces.Box(low=np.array([[0, -np.inf], [2, 3]], dtype=np.float64), high=5.0, dtype=np.float64)
    assert wire.describe(box)["low"] == [0.0, -1e100, 2.0, 3.0]
    assert wire.describe(spaces.MultiBinary([2, 3])) == {"name": "MultiBinary", "n": 6, "shape": [2, 3], "dtype": "int8"}
    nested = spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]))
    assert wire.describe(nested)["nvec"] == [2, 3, 4, 5] and wire.describe(nested)["shape"] == [2, 2]
    assert wire.describe(spaces.Text(5)) == {"name": "Text"}


def test_decoded_actions_are_what_the_space_contains():
    for space in [
        spaces.Discrete(4, start=-1),
        spaces.Box(-2, 2, shape=(2, 2), dtype=np.float32),
        spaces.Box(0, 9, shape=(3,), dtype=np.int32),
        spaces.MultiBinary(4),
        spaces.MultiDiscrete([5, 2]),
        spaces.Dict({"move": spaces.Discrete(2), "aim": spaces.Tuple((spaces.Box(0, 1), spaces.Discrete(3)))}),
    ]:
        space.seed(1)
        decode, encode = wire.action_decoder(space), wire.value_encoder(space)
        for _ in range(20):
            sample = space.sample()
            decoded = decode(json.loads(json.dumps(encode(sample))))
            assert space.contains(decoded)
    with pytest.raises(ActionError, match=r"action -2 is outside the action space Discrete\(4, start=-1\)"):
        wire.action_decoder(spaces.Discrete(4, start=-1))(-2)
    with pytest.raises(ActionError, match="keys"):
        wire.action_decoder(spaces.Dict({"move": spaces.Discrete(2)}))({"jump": 1})


def assert_observation(remote, expected):
    """A Dict observation off the wire equals the env's, exactly."""
    discrete, continuous = remote["position"]
    assert discrete == int(expected["position"][0])
    received = np.asarray(continuous, dtype=np.float32)
    assert np.array_equal(received.view(np.uint32), expected["position"][1].view(np.uint32))
    assert remote["switches"] == expected["switches"].tolist()
    assert remote["dials"] == expected["dials"].tolist()
    assert remote["frame"]["shape"] == [32, 32]
    assert np.array_equal(wire.decode_array(remote["frame"]), expected["frame"])
    assert remote["small_frame"] == expected["small_frame"].tolist()


def test_fast_paths_write_and_read_what_the_general_paths_do():
    box = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
    encode = wire.value_encoder(box)
    for value in [
        np.array([0.1, -2.5, 3e38], dtype=np.float32),
        np.array([np.inf, -np.inf, 1.5], dtype=np.float32),  # clipped to ±1e100 by the general path
        np.array([1.0, 2.0, 3.0]),  # float64, as an env may return
        np.array([1, 2, 3], dtype=np.int32),
        np.zeros((1, 3), dtype=np.float32),  # the wrong shape is written as it is
        [0.5, 1.5, 2.5],
    ]:
        assert encode(value) == wire.encode_array(value)
    with pytest.raises(EnvError, match="NaN"):
        encode(np.array([0.0, np.nan, 1.0], dtype=np.float32))

    decode = wire.actions_decoder(spaces.Discrete(4, start=-1))
    assert decode([-1, 0, 2]) == [-1, 0, 2]
    assert decode([2.0, 0]) == [2, 0]  # 1.0 is the integer 1 here as in one action
    for actions, words in [([0, 3], "actions[1]: action 3 is outside"), ([0, True], "actions[1]: action true"),
                           (["1"], "actions[0]: action \"1\""), ([-2], "actions[0]: action -2")]:
        with pytest.raises(ActionError, match=words.replace("[", r"\[").replace("]", r"\]")):
            decode(actions)
    # Other spaces decode copy by copy.
    assert [action.tolist() for action in wire.actions_decoder(spaces.MultiBinary(2))([[0, 1], [1, 1]])] == [
        [0, 1],
        [1, 1],
    ]
