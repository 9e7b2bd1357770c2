"""The adapter's errors, each with the HTTP status the protocol gives it.

The server turns a :class:`ProtocolError` into ``{"message"}`` with its
status; any other exception is a bug in the served env and becomes a 500
naming the exception, so a client never sees an HTML page or a traceback.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """An error the client is told about, with its status."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ProtocolError):
    """A missing or malformed request field: the client's fault."""


class ActionError(BadRequest):
    """An action the env's action space does not contain."""


class UnknownInstance(BadRequest):
    """No open instance has that id (never opened, closed or reaped).

    400, worded as gym-http-api words it, so its clients recognise it.
    """

    def __init__(self, instance_id: str):
        super().__init__(f"Instance_id {instance_id} unknown")


class NotFound(ProtocolError):
    """No such route, or no model for this env."""

    status = 404


class MethodNotAllowed(ProtocolError):
    status = 405


class BodyTooLarge(ProtocolError):
    """A request body over the adapter's limit: refused unread."""

    status = 413


class TooManyInstances(ProtocolError):
    """The `--max-instances` cap: close an instance before opening another."""

    status = 429


class EnvError(ProtocolError):
    """The served env broke the protocol's promises (a NaN, a non-finite reward)."""

    status = 500
