"""The HTTP server: the routes of docs/env-protocol.md §1 over the standard
library's threaded server, so the package drops into any venv.

HTTP/1.1 keep-alive matters: the lab's client reuses one connection for a
whole run, and a new TCP connection per step would cost more than the step.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from rl_lab_env import PROTOCOL, PROTOCOL_VERSION, __version__
from rl_lab_env import spaces as wire
from rl_lab_env.errors import BadRequest, BodyTooLarge, MethodNotAllowed, NotFound, ProtocolError
from rl_lab_env.instances import Instance, Registry, VectorInstance

#: Largest request body read: a 4,096-copy vector step of large actions fits
#: well within it, and a client cannot make the adapter buffer gigabytes.
MAX_BODY_BYTES = 64 << 20

#: What a handler returns: a JSON-able body, or NO_CONTENT for a 204.
NO_CONTENT = object()

#: One encoder for every reply: `json.dumps` with options builds a new one
#: per call.
_REPLY_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))

Handler = Callable[["Request"], Any]


class Request:
    """One call: its path parameters and its JSON body (None when empty)."""

    def __init__(self, registry: Registry, params: dict[str, str], body: Any):
        self.registry = registry
        self.params = params
        self.body = body

    def field(self, name: str) -> Any:
        """An optional body field; a null or empty body has none."""
        if self.body is None:
            return None
        if not isinstance(self.body, dict):
            raise BadRequest(f"the request body must be a JSON object, not {type(self.body).__name__}")
        return self.body.get(name)

    def required(self, name: str) -> Any:
        value = self.field(name)
        # gym-http-api's rule: null, "" and [] count as missing.
        if value is None or value == "" or value == []:
            raise BadRequest(f"A required request parameter '{name}' was not provided")
        return value


# ------------------------------------------------------------------ routes


def version(_: Request) -> dict:
    return {
        "protocol": PROTOCOL,
        "version": PROTOCOL_VERSION,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "package": __version__,
    }


def echo(request: Request) -> Any:
    return request.body


def create_env(request: Request) -> dict:
    instance = request.registry.open_env(request.field("env_id"), request.field("seed"), request.field("kwargs"))
    return {"instance_id": instance.instance_id}


def list_envs(request: Request) -> dict:
    return {"all_envs": request.registry.list_envs()}


def _on(kind: type, call: Callable[[Any, Request], Any]) -> Handler:
    """A handler that runs `call` on the open instance of `kind` the path names."""

    def handle(request: Request) -> Any:
        return request.registry.run(request.params["id"], kind, lambda instance: call(instance, request))

    return handle


def _on_env(call: Callable[[Instance, Request], Any]) -> Handler:
    return _on(Instance, call)


def _on_vector(call: Callable[[VectorInstance, Request], Any]) -> Handler:
    return _on(VectorInstance, call)


def _close(kind: type) -> Handler:
    def handle(request: Request) -> Any:
        request.registry.close(request.params["id"], kind)
        return NO_CONTENT

    return handle


def _observation_space_contains(instance: Instance, request: Request) -> dict:
    # gym-http-api's semantics: the body's fields all equal the space's.
    if not isinstance(request.body, dict):
        raise BadRequest("the body must be an object of space fields, e.g. {\"name\": \"Box\"}")
    described = wire.describe(instance.env.observation_space)
    return {"member": all(described.get(key) == value for key, value in request.body.items())}


def _action_space_contains(instance: Instance, request: Request) -> dict:
    try:
        action = json.loads(request.params["value"])
    except ValueError:
        raise BadRequest(f"{request.params['value']!r} is not a JSON value") from None
    return {"member": instance.contains_action(action)}


def _not_served(what: str) -> Handler:
    def handle(_: Request) -> Any:
        raise NotFound(f"{what} is a gym-http-api route this adapter does not serve")

    return handle


def create_vector(request: Request) -> dict:
    instance = request.registry.open_vector(
        request.field("env_id"),
        request.field("num_envs"),
        request.field("seed"),
        request.field("kwargs"),
        request.field("batched"),
        request.field("autoreset"),
    )
    return instance.describe()


_ID = r"(?P<id>[^/]+)"

#: (method, path pattern, handler). Trailing slashes are optional everywhere:
#: gym-http-api writes most routes with one and a few without.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", r"/v1/version", version),
    ("POST", r"/v1/echo", echo),
    ("POST", r"/v1/envs", create_env),
    ("GET", r"/v1/envs", list_envs),
    ("GET", rf"/v1/envs/{_ID}", _on_env(lambda env, _: env.describe())),
    ("DELETE", rf"/v1/envs/{_ID}", _close(Instance)),
    ("POST", rf"/v1/envs/{_ID}/reset", _on_env(lambda env, r: env.reset(r.field("seed"), r.field("options")))),
    ("POST", rf"/v1/envs/{_ID}/step", _on_env(lambda env, r: env.step(r.required("action")))),
    ("GET", rf"/v1/envs/{_ID}/action_space", _on_env(lambda env, _: {"info": wire.describe(env.env.action_space)})),
    ("GET", rf"/v1/envs/{_ID}/action_space/sample", _on_env(lambda env, _: {"action": env.sample_action()})),
    ("GET", rf"/v1/envs/{_ID}/action_space/contains/(?P<value>[^/]+)", _on_env(_action_space_contains)),
    ("GET", rf"/v1/envs/{_ID}/observation_space",
     _on_env(lambda env, _: {"info": wire.describe(env.env.observation_space)})),
    ("POST", rf"/v1/envs/{_ID}/observation_space/contains", _on_env(_observation_space_contains)),
    ("GET", rf"/v1/envs/{_ID}/model", _on_env(lambda env, _: env.model())),
    ("POST", rf"/v1/envs/{_ID}/close", _close(Instance)),
    ("POST", rf"/v1/envs/{_ID}/monitor/start", _not_served("monitor/start (recording)")),
    ("POST", rf"/v1/envs/{_ID}/monitor/close", _not_served("monitor/close (recording)")),
    ("POST", r"/v1/upload", _not_served("upload")),
    ("POST", r"/v1/shutdown", _not_served("shutdown (stop the adapter with SIGTERM)")),
    ("POST", r"/v1/vector-envs", create_vector),
    ("GET", rf"/v1/vector-envs/{_ID}", _on_vector(lambda vector, _: vector.describe())),
    ("DELETE", rf"/v1/vector-envs/{_ID}", _close(VectorInstance)),
    ("POST", rf"/v1/vector-envs/{_ID}/reset",
     _on_vector(lambda vector, r: vector.reset(r.field("seed"), r.field("options"), r.field("seeds")))),
    ("POST", rf"/v1/vector-envs/{_ID}/step",
     _on_vector(lambda vector, r: vector.step(r.required("actions"), r.field("resets"), r.field("seeds")))),
    ("GET", rf"/v1/vector-envs/{_ID}/model", _on_vector(lambda vector, _: vector.model())),
    ("POST", rf"/v1/vector-envs/{_ID}/close", _close(VectorInstance)),
]

_COMPILED = [(method, re.compile(pattern + "/?"), handler) for method, pattern, handler in ROUTES]

#: (method, path) -> what `route` found for it. A client steps the same few
#: paths all run long, so after its first call a path costs one dict lookup
#: instead of a scan of the patterns. Only found routes are kept, and the
#: cache is emptied when full, so it stays small whatever clients send
#: (entries of closed instances are harmless: their handler answers 400).
_ROUTED: dict[tuple[str, str], tuple[Handler, dict[str, str]]] = {}
_ROUTED_MAX = 4096


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler for a call and its path parameters."""
    key = (method, path)
    found = _ROUTED.get(key)
    if found is None:
        found = _scan_routes(method, path)
        if len(_ROUTED) >= _ROUTED_MAX:
            _ROUTED.clear()
        _ROUTED[key] = found
    return found


def _scan_routes(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    allowed = []
    for route_method, pattern, handler in _COMPILED:
        match = pattern.fullmatch(path)
        if match:
            if route_method == method:
                return handler, match.groupdict()
            allowed.append(route_method)
    if allowed:
        raise MethodNotAllowed(f"{method} {path} is not served; use {' or '.join(allowed)}")
    raise NotFound(f"no route {method} {path}; the routes are in docs/env-protocol.md, section 1")


# ------------------------------------------------------------------ server


class AdapterHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"rl-lab-env/{__version__}"
    # Headers and body leave in one send, and without Nagle's delay: with
    # keep-alive, a split reply would wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server: AdapterServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        try:
            # The body is read first, whatever happens next, so the next
            # request on this connection starts where it should.
            body = self._read_body()
            handler, params = route(method, self.path.split("?", 1)[0])
            result = handler(Request(self.server.registry, params, body))
        except ProtocolError as error:
            self._reply(error.status, {"message": error.message})
        except gym.error.ResetNeeded as error:
            self._reply(400, {"message": f"{error} (reset the env first)"})
        except Exception as error:  # noqa: BLE001 - a bug in the served env must not stop the adapter
            print(f"rl_lab_env: {method} {self.path} failed:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            self._reply(500, {"message": f"{type(error).__name__}: {error}"})
        else:
            if result is NO_CONTENT:
                self._reply(204, None)
            else:
                self._reply(200, result)

    def _read_body(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ProtocolError("chunked request bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise BadRequest("Content-Length is not a number") from None
        if length > MAX_BODY_BYTES:
            # Unread, so the connection cannot be reused.
            self.close_connection = True
            raise BodyTooLarge(f"a request body of {length} bytes is over the adapter's limit of {MAX_BODY_BYTES}")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise BadRequest(f"the request body is not JSON: {error}") from None

    def _reply(self, status: int, body: Any) -> None:
        if body is None:
            payload = b""
        else:
            try:
                payload = _REPLY_ENCODER.encode(body).encode()
            except ValueError as error:  # a NaN or infinity that slipped through
                status, payload = 500, json.dumps({"message": f"the reply is not JSON: {error}"}).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # One line per request on stderr would cost more than a fast step.
        pass


class AdapterServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: Registry):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, AdapterHandler)
        self.registry = registry

    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
