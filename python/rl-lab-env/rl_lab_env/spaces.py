"""Spaces and values on the wire: the JSON forms of docs/env-protocol.md §1.

Encoders and decoders are built once per space (a tree of small functions),
so a step pays for one function call per sub-space, not for a walk through
``isinstance`` checks.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
from gymnasium import spaces

from rl_lab_env.errors import ActionError, EnvError

#: gym-http-api writes infinite bounds as this, and JSON has no infinity.
INFINITY_ON_WIRE = 1e100

#: From this many elements on, a uint8 array (a frame) travels as base64
#: bytes: a quarter of the size of a JSON list, and far cheaper to parse.
BASE64_MIN_ELEMENTS = 1024

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def describe(space: spaces.Space) -> dict:
    """The JSON form of a space, gym-http-api's with dtype and bounds."""
    if isinstance(space, spaces.Discrete):
        return {"name": "Discrete", "n": int(space.n), "start": int(space.start), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Box):
        return {
            "name": "Box",
            "shape": list(space.shape),
            "low": _bounds_on_wire(space.low),
            "high": _bounds_on_wire(space.high),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiBinary):
        # Gymnasium's `n` may be a shape; on the wire `n` is the element count
        # and `shape` the shape, so a reader needs no case for either.
        return {"name": "MultiBinary", "n": int(np.prod(space.shape)), "shape": list(space.shape), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "name": "MultiDiscrete",
            "nvec": space.nvec.ravel().tolist(),
            "start": space.start.ravel().tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.Tuple):
        return {"name": "Tuple", "spaces": [describe(member) for member in space.spaces]}
    if isinstance(space, spaces.Dict):
        return {"name": "Dict", "spaces": {key: describe(member) for key, member in space.spaces.items()}}
    # gym-http-api's form for the spaces it does not know: the name alone.
    return {"name": type(space).__name__}


def _bounds_on_wire(bounds: np.ndarray) -> list:
    flat = bounds.ravel()
    if flat.dtype.kind == "f":
        flat = np.clip(flat.astype(np.float64), -INFINITY_ON_WIRE, INFINITY_ON_WIRE)
    return flat.tolist()


# ---------------------------------------------------------------- values out


def value_encoder(space: spaces.Space) -> Encoder:
    """A function that writes one value of `space` as plain JSON."""
    if isinstance(space, spaces.Discrete):
        return int
    if isinstance(space, spaces.Box) and space.dtype.kind == "f" and len(space.shape) == 1:
        return encode_flat_floats
    if isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)):
        return encode_array
    if isinstance(space, spaces.Tuple):
        members = [value_encoder(member) for member in space.spaces]
        return lambda value: [encode(part) for encode, part in zip(members, value)]
    if isinstance(space, spaces.Dict):
        keyed = [(key, value_encoder(member)) for key, member in space.spaces.items()]
        return lambda value: {key: encode(value[key]) for key, encode in keyed}
    return plain_json


def batch_encoder(space: spaces.Space) -> Callable[[list], list]:
    """A function that writes N values of `space` (a vector env's copies).

    Array values are stacked and written by one numpy call instead of N; the
    JSON is the same list of per-copy values either way.
    """
    if isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)) and not (
        space.dtype == np.uint8 and math.prod(space.shape) >= BASE64_MIN_ELEMENTS
    ):
        # np.array stacks equal-shaped arrays in one C call (np.stack works
        # through Python per copy).
        return lambda values: encode_array(np.array(values))
    encode = value_encoder(space)
    return lambda values: [encode(value) for value in values]


def batched_encoder(space: spaces.Space) -> Callable[[list], Any]:
    """A function that writes N array values of `space` as one array of raw
    bytes, ``{"dtype", "shape": [N, ...], "base64"}``, little-endian, for
    vector instances opened with ``batched: true``.

    Writing float32s as decimals costs the adapter most of a 64-copy
    CartPole step's overhead, and parsing them most of the client's; raw
    bytes cost neither, and carry every value (infinities included) exactly.
    Spaces that are not arrays keep the per-copy list.
    """
    if not isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)):
        return batch_encoder(space)
    dtype = np.dtype(space.dtype).newbyteorder("<")

    def encode(values: list) -> dict:
        array = np.asarray(values, dtype=dtype)
        if array.dtype.kind == "f" and np.isnan(array).any():
            raise EnvError(f"the env returned an observation holding NaN: {array!r}")
        return {
            "dtype": array.dtype.name,
            "shape": list(array.shape),
            "base64": base64.b64encode(array.tobytes()).decode("ascii"),
        }

    return encode


def encode_flat_floats(value: Any) -> Any:
    """A 1-D float array (CartPole's kind of observation) as a list, the same
    one :func:`encode_array` writes.

    A step's observation is small, so numpy's fixed cost per call outweighs
    the work: ``tolist`` and a check of the Python floats for finiteness cost
    a fraction of ``np.isfinite(array).all()``. Anything else -- a non-finite
    element, another shape or dtype -- takes the general path.
    """
    if type(value) is np.ndarray and value.ndim == 1 and value.dtype.kind == "f":
        values = value.tolist()
        if all(map(math.isfinite, values)):
            return values
    return encode_array(value)


def encode_array(value: Any) -> Any:
    """Nested lists, row-major; a large uint8 array as base64 bytes.

    ``tolist`` turns float32 elements into the float64 of the same value, and
    Python writes a float64 as the shortest decimal that reads back as it, so
    float32 values cross bit for bit.
    """
    array = np.asarray(value)
    if array.dtype == np.uint8 and array.size >= BASE64_MIN_ELEMENTS:
        return {
            "dtype": "uint8",
            "shape": list(array.shape),
            "base64": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii"),
        }
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        if np.isnan(array).any():
            raise EnvError(f"the env returned an observation holding NaN: {array!r}")
        array = np.clip(array.astype(np.float64), -INFINITY_ON_WIRE, INFINITY_ON_WIRE)
    return array.tolist()


def plain_json(value: Any) -> Any:
    """`info` made plain JSON: numpy scalars become numbers, arrays lists,
    non-finite floats the strings "inf", "-inf" and "nan", anything else its
    ``repr`` -- so an env's info never turns a step into a 500."""
    # Plain dicts first: every info is one, and most are empty.
    if type(value) is dict:
        return {str(key): plain_json(member) for key, member in value.items()} if value else {}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # also numpy.float64, a float subclass
        return float(value) if math.isfinite(value) else _non_finite_name(value)
    if isinstance(value, np.generic):
        return plain_json(value.item())
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): plain_json(member) for key, member in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(member) for member in value]
    return repr(value)


def _non_finite_name(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


# ---------------------------------------------------------------- actions in


def action_decoder(space: spaces.Space) -> Decoder:
    """A function that turns a JSON action into what the env's space takes.

    It raises :class:`ActionError` naming the action and the space when the
    action has the wrong form or lies outside the space, so an env never sees
    an action its space does not contain.
    """
    decode_member = _member_decoder(space)

    def decode(action: Any) -> Any:
        try:
            return decode_member(action)
        except _NotInSpace as reason:
            raise ActionError(f"action {_short_json(action)} is outside the action space {space}: {reason}") from None

    return decode


def actions_decoder(space: spaces.Space) -> Callable[[list], list]:
    """A function that decodes a vector env's actions, one per copy, each as
    :func:`action_decoder` would; an error names the copy (``actions[i]``).

    The caller has checked that it holds a list of the right length.
    """
    decode = action_decoder(space)

    def decode_each(actions: list) -> list:
        decoded = []
        for index, action in enumerate(actions):
            try:
                decoded.append(decode(action))
            except ActionError as error:
                raise ActionError(f"actions[{index}]: {error.message}") from None
        return decoded

    if not isinstance(space, spaces.Discrete):
        return decode_each
    low = int(space.start)
    high = low + int(space.n)

    def decode_discrete(actions: list) -> list:
        # Plain ints in range decode to themselves: three passes in C over
        # the list replace two Python calls per copy. Floats, bools and
        # strays take the copy-by-copy path, which converts or names them.
        if set(map(type, actions)) == {int} and low <= min(actions) and max(actions) < high:
            return actions
        return decode_each(actions)

    return decode_discrete


class _NotInSpace(ValueError):
    """Why part of an action is not in its (sub-)space."""


def _member_decoder(space: spaces.Space) -> Decoder:
    if isinstance(space, spaces.Discrete):
        return _discrete_decoder(space)
    if isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)):
        return _array_decoder(space)
    if isinstance(space, spaces.Tuple):
        members = [_member_decoder(member) for member in space.spaces]

        def decode_tuple(value: Any) -> tuple:
            if not isinstance(value, list) or len(value) != len(members):
                raise _NotInSpace(f"a Tuple value is a list of {len(members)} members, not {_short_json(value)}")
            return tuple(decode(part) for decode, part in zip(members, value))

        return decode_tuple
    if isinstance(space, spaces.Dict):
        keyed = {key: _member_decoder(member) for key, member in space.spaces.items()}

        def decode_dict(value: Any) -> dict:
            if not isinstance(value, dict) or value.keys() != keyed.keys():
                raise _NotInSpace(f"a Dict value is an object with the keys {sorted(keyed)}")
            return {key: decode(value[key]) for key, decode in keyed.items()}

        return decode_dict

    def decode_other(value: Any) -> Any:
        if not space.contains(value):
            raise _NotInSpace(f"{_short_json(value)} is not in {space}")
        return value

    return decode_other


def _discrete_decoder(space: spaces.Discrete) -> Decoder:
    low = int(space.start)
    high = low + int(space.n)

    def decode(value: Any) -> int:
        # JSON has one number type: 1.0 is the integer 1; a bool is not a number.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _NotInSpace(f"{_short_json(value)} is not an integer")
        if not low <= value < high:
            raise _NotInSpace(f"{value} is not in [{low}, {high})")
        return value

    return decode


def _array_decoder(space: spaces.Space) -> Decoder:
    dtype = space.dtype
    integral = dtype.kind in "iub"

    def decode(value: Any) -> np.ndarray:
        raw = decode_array(value)
        if raw.dtype.kind not in "biuf":
            raise _NotInSpace(f"{_short_json(value)} is not an array of numbers")
        if raw.shape != space.shape:
            raise _NotInSpace(f"it has shape {list(raw.shape)}, the space's is {list(space.shape)}")
        if integral and raw.dtype.kind == "f" and not np.all(np.floor(raw) == raw):
            raise _NotInSpace(f"{_short_json(value)} is not all integers")
        array = raw.astype(dtype)
        if not space.contains(array):
            raise _NotInSpace("an element lies outside the bounds")
        return array

    return decode


def decode_array(value: Any) -> np.ndarray:
    """An array from its wire form: nested lists, or base64 uint8 bytes."""
    if isinstance(value, dict) and "base64" in value:
        try:
            shape = tuple(int(size) for size in value["shape"])
            data = base64.b64decode(value["base64"], validate=True)
            return np.frombuffer(data, dtype=np.dtype(value.get("dtype", "uint8"))).reshape(shape)
        except (KeyError, TypeError, ValueError) as error:
            raise _NotInSpace(f"a base64 array needs dtype, shape and base64 that agree ({error})") from None
    try:
        return np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise _NotInSpace(f"{_short_json(value)} is not a rectangular array ({error})") from None


def _short_json(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
