"""The env-process side of rl-lab's external-env protocol (``rl-lab-external/1``).

An env that owns its loop (a game engine, a robot, a simulator) drives a run
of ``rl-lab serve`` whose spec says ``"env": {"id": "external", ...}``: it
starts episodes, sends observations and is answered with the agent's
actions, logs rewards, and ends episodes. The lab trains on these
transitions through its one training loop, exactly as on a local env.

Example (``python/rl-lab-env/examples/external_cartpole.py`` is a whole one)::

    env = gymnasium.make("FrozenLake-v1", is_slippery=False)
    with PolicyClient("http://127.0.0.1:8080", run_id, env=env) as client:
        try:
            while True:
                episode = client.start_episode()
                obs, _ = env.reset()
                while True:
                    action = client.get_action(episode, obs)
                    obs, reward, terminated, truncated, _ = env.step(action)
                    client.log_returns(episode, reward)
                    if terminated or truncated:
                        client.end_episode(episode, obs, terminated, truncated)
                        break
        except RunFinished:  # any call, once the run has its budget
            pass

Every call but ``start_episode`` waits at most ``timeout`` seconds for the lab's answer and raises
:class:`TimeoutError` past it (the connection is then closed: its state is
unknown). The lab, for its part, waits at most the run's
``step_timeout_seconds`` for the process's next message mid-episode.
"""

from __future__ import annotations

import json
import math
import os
import socket
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from . import _websocket

PROTOCOL = "rl-lab-external"
VERSION = "1.0"

__all__ = [
    "PolicyClient",
    "Refused",
    "RunFinished",
    "RequestError",
    "space_to_json",
]


class Refused(ConnectionError):
    """The lab refused the connection at ``hello``: another process drives
    the run, the spaces or protocol versions differ, or the run has ended."""


class RunFinished(Exception):
    """The run has trained through its budget: it starts no more episodes."""


class RequestError(ValueError):
    """The lab refused one request (nothing changed on its side);
    ``field`` names the field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _bound(x: float) -> Any:
    # JSON has no infinity: the run spec's space form writes "inf"/"-inf".
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def space_to_json(space: Any) -> dict:
    """A space in the run spec's form: a dict already in that form is kept,
    a Gymnasium ``Discrete``, ``Box`` or ``MultiBinary`` is converted."""
    if isinstance(space, dict):
        return space
    kind = type(space).__name__
    if kind == "Discrete":
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if kind == "Box":
        dtype = str(space.dtype)
        if dtype not in ("uint8", "float32", "float64"):
            raise ValueError(f"a Box of dtype {dtype} has no rl-lab form (uint8, float32, float64)")
        return {
            "type": "Box",
            "low": [_bound(x) for x in space.low.reshape(-1).tolist()],
            "high": [_bound(x) for x in space.high.reshape(-1).tolist()],
            "shape": [int(n) for n in space.shape],
            "dtype": dtype,
        }
    if kind == "MultiBinary":
        return {"type": "MultiBinary", "n": [int(n) for n in space.shape]}
    raise ValueError(f"{space!r}: rl-lab's external envs take Discrete, Box and MultiBinary spaces")


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as plain JSON values (nested lists, numbers)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _connect_url(url: str, run_id: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + f"/v1/runs/{quote(run_id, safe='')}/connect"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class PolicyClient:
    """A connection of one env process to one run.

    ``url`` is the server's base URL (``http://127.0.0.1:8080``); ``token``
    its bearer token, when it has one. The spaces sent in ``hello`` are
    ``observation_space`` and ``action_space`` (dicts in the run spec's form
    or Gymnasium spaces), or ``env``'s. ``name`` identifies the process in
    the refusal a process gets when every copy of the run is taken; by
    default host and pid. A run with ``env.num_envs: N`` takes N processes,
    one per copy, each with a client of its own.
    """

    def __init__(
        self,
        url: str,
        run_id: str,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        env: Any = None,
        observation_space: Any = None,
        action_space: Any = None,
        name: str | None = None,
    ):
        if env is not None:
            observation_space = observation_space or env.observation_space
            action_space = action_space or env.action_space
        if observation_space is None or action_space is None:
            raise ValueError("give observation_space and action_space, or env")
        self.observation_space = space_to_json(observation_space)
        self.action_space = space_to_json(action_space)
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._socket = _websocket.WebSocket(_connect_url(url, run_id), headers, timeout)
        reply = self._request(
            {
                "type": "hello",
                "protocol": PROTOCOL,
                "version": VERSION,
                "observation_space": self.observation_space,
                "action_space": self.action_space,
                "name": name or f"{socket.gethostname()} pid {os.getpid()}",
            }
        )
        if reply["type"] == "refused":
            self._socket.close()
            raise Refused(reply["reason"])
        self.run_id = reply["run_id"]

    def _request(self, message: dict, timeout: Any = ...) -> dict:
        try:
            self._socket.send_text(json.dumps(message, allow_nan=False))
            reply = json.loads(self._socket.recv_text(timeout))
        except TimeoutError as e:
            self._socket.close(1001, "timed out")
            raise TimeoutError(f"{message['type']}: no answer from the lab within {self.timeout} s") from e
        if reply["type"] == "finished":
            self._socket.close()
            raise RunFinished("the run has trained through its budget")
        if reply["type"] == "error":
            raise RequestError(reply.get("field", ""), reply["message"])
        return reply

    def start_episode(self) -> str:
        """A new episode's id. Raises :class:`RunFinished` once the run has its budget.

        It waits as long as the run takes to start (a queued run answers once
        a worker takes it up), without ``timeout``: that deadline is for the
        agent's answers, which come at once once the run runs."""
        return self._request({"type": "start_episode"}, timeout=None)["episode_id"]

    def get_action(self, episode_id: str, observation: Any) -> Any:
        """The agent's action for ``observation``: an int for a Discrete
        action space, a numpy array for a Box."""
        reply = self._request(
            {"type": "get_action", "episode_id": episode_id, "observation": _plain(observation)}
        )
        action = reply["action"]
        if self.action_space["type"] == "Box":
            import numpy as np

            shape = tuple(self.action_space["shape"])
            return np.asarray(action, dtype=self.action_space["dtype"]).reshape(shape)
        return action

    def log_returns(self, episode_id: str, reward: float) -> None:
        """Adds ``reward`` to the current step's reward."""
        self._request({"type": "log_returns", "episode_id": episode_id, "reward": float(reward)})

    def end_episode(self, episode_id: str, observation: Any, terminated: bool, truncated: bool) -> None:
        """Ends the episode at ``observation``; at least one of the flags is true."""
        self._request(
            {
                "type": "end_episode",
                "episode_id": episode_id,
                "observation": _plain(observation),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            }
        )

    def close(self) -> None:
        """Closes the connection; an episode in progress ends truncated."""
        self._socket.close()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
