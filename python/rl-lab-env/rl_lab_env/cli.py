"""``python -m rl_lab_env serve``: parse the command line, check it by making
one env, then serve until SIGTERM or SIGINT.

Bad input exits 2 (argparse's convention) before anything listens, so a
script that waits for the ``listening on`` line fails fast instead.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import signal
import sys
import threading
from typing import Callable, Sequence

import gymnasium as gym

from rl_lab_env.instances import EnvFactory, Registry
from rl_lab_env.server import AdapterServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rl_lab_env", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve one Gymnasium env over HTTP (the rl-lab-env/1 protocol)",
        description="Serve one Gymnasium env over HTTP. The first line on stdout is 'listening on http://HOST:PORT'.",
    )
    serve.add_argument("--env", help="the Gymnasium id to serve, e.g. Taxi-v4; with --make, the name it is served by")
    serve.add_argument("--kwargs", default="{}", help="a JSON object of keyword arguments for every env made")
    serve.add_argument(
        "--make",
        metavar="MODULE:CALLABLE",
        help="a callable returning a gymnasium.Env (your own env class); served as --env if given, else as this string",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default 0)")
    serve.add_argument("--max-instances", type=int, default=64, help="open instances allowed at once (default 64)")
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="seconds after which an untouched instance is closed (default 600)",
    )
    return parser


def _factory(parser: argparse.ArgumentParser, args: argparse.Namespace) -> EnvFactory:
    try:
        kwargs = json.loads(args.kwargs)
    except ValueError as error:
        parser.error(f"--kwargs is not JSON: {error}")
    if not isinstance(kwargs, dict):
        parser.error(f"--kwargs must be a JSON object, not {args.kwargs}")
    if args.make:
        make = _import_callable(parser, args.make)
        env_id = args.env or args.make
    elif args.env:
        try:
            gym.spec(args.env)
        except gym.error.Error as error:
            parser.error(f"--env {args.env}: {error}")
        make = functools.partial(gym.make, args.env)
        env_id = args.env
    else:
        parser.error("give --env ID (a Gymnasium id) or --make MODULE:CALLABLE")
    factory = EnvFactory(env_id, make, kwargs)
    # One env made now turns a wrong id, kwarg or callable into exit 2 here,
    # not into a 500 on the client's first call.
    try:
        factory.make().close()
    except Exception as error:  # noqa: BLE001 - whatever the env raises, the message says it
        parser.error(f"cannot make {env_id} with kwargs {kwargs}: {type(error).__name__}: {error}")
    return factory


def _import_callable(parser: argparse.ArgumentParser, spec: str) -> Callable[..., gym.Env]:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        parser.error(f"--make {spec}: expected MODULE:CALLABLE, e.g. my_package.envs:make_env")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        parser.error(f"--make {spec}: cannot import {module_name}: {error}")
    for part in attribute.split("."):
        if not hasattr(target, part):
            parser.error(f"--make {spec}: {module_name} has no {attribute}")
        target = getattr(target, part)
    if not callable(target):
        parser.error(f"--make {spec}: {attribute} is not callable")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: must be 0 to 65535")
    if args.max_instances < 1:
        parser.error(f"--max-instances {args.max_instances}: must be at least 1")
    if not args.idle_timeout > 0:
        parser.error(f"--idle-timeout {args.idle_timeout}: must be a positive number of seconds")
    registry = Registry(_factory(parser, args), args.max_instances, args.idle_timeout)
    try:
        server = AdapterServer((args.host, args.port), registry)
    except OSError as error:
        print(f"rl_lab_env: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1

    def stop(signum: int, _frame: object) -> None:
        # serve_forever runs on this (the main) thread, and shutdown() waits
        # for it to return, so it must be asked from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stop_reaper = threading.Event()
    registry.start_reaper(stop_reaper)
    print(f"listening on {server.url()}", flush=True)
    try:
        server.serve_forever()
    finally:
        stop_reaper.set()
        server.server_close()
        registry.close_all()
    return 0

