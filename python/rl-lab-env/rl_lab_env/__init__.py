"""Serve any Gymnasium environment to rl-lab over HTTP.

``python -m rl_lab_env serve --env Taxi-v4`` speaks the adapter protocol
(``rl-lab-env/1``, docs/env-protocol.md section 1), a superset of
gym-http-api's routes, so the lab's ``"env": {"id": "remote"}`` client can
train on any env Gymnasium can make.
"""

__version__ = "0.1.0"

#: The wire protocol's name and version; a client refuses another major.
PROTOCOL = "rl-lab-env"
PROTOCOL_VERSION = "1.1"
