"""Serve any Gymnasium environment to rl-lab over HTTP.

``python -m rl_lab_env serve --env Taxi-v4`` speaks the adapter protocol
(``rl-lab-env/1``, docs/env-protocol.md section 1), a superset of
gym-http-api's routes, so the lab's ``"env": {"id": "remote"}`` client can
train on any env Gymnasium can make.

:class:`PolicyClient` goes the other way, for an env that owns its loop: it
asks a run on ``rl-lab serve`` for actions over a WebSocket
(``rl-lab-external/1``, section 3).
"""

__version__ = "0.1.0"

#: The wire protocol's name and version; a client refuses another major.
PROTOCOL = "rl-lab-env"
PROTOCOL_VERSION = "1.2"

from rl_lab_env.policy_client import PolicyClient, Refused, RequestError, RunFinished  # noqa: E402

__all__ = ["PolicyClient", "Refused", "RequestError", "RunFinished", "PROTOCOL", "PROTOCOL_VERSION"]
