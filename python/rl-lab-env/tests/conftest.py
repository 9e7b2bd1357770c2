"""Fixtures that start the real adapter as a subprocess on port 0 and talk
to it over one keep-alive connection, as the lab's client does."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent


class Adapter:
    """A running `python -m rl_lab_env serve` and a client for it."""

    def __init__(self, args: list[str]):
        env = dict(os.environ)
        # The source layout is importable as is (the Rust tests rely on that);
        # the tests folder holds the `--make` envs.
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), str(TESTS_DIR), env.get("PYTHONPATH", "")])
        # A file, not a pipe: tracebacks of the raising env must not fill a
        # pipe nobody reads and stall the adapter.
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rl_lab_env", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith("listening on http://"):
            self.process.wait()
            raise RuntimeError(f"adapter did not start: {line!r} {self.stderr_text()}")
        self.url = line.split()[-1]
        parsed = urllib.parse.urlparse(self.url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        if data:
            assert response.getheader("Content-Type") == "application/json", data
            return response.status, json.loads(data)
        return response.status, None

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, reply = self.call(method, path, body)
        assert status in (200, 204), (status, reply)
        return reply

    def open(self, env_id: str, **fields: Any) -> str:
        return self.ok("POST", "/v1/envs/", {"env_id": env_id, **fields})["instance_id"]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.connection.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=10)
        finally:
            self.process.stdout.close()
            self.stderr.close()


@pytest.fixture(scope="module")
def start_adapter() -> Iterator:
    """Starts adapters for one test module and stops them all after it."""
    started: list[Adapter] = []

    def start(*args: str) -> Adapter:
        adapter = Adapter(list(args))
        started.append(adapter)
        return adapter

    yield start
    for adapter in started:
        if adapter.process.poll() is None:
            assert adapter.stop() == 0


@pytest.fixture(scope="module")
def cartpole(start_adapter) -> Adapter:
    return start_adapter("--env", "CartPole-v1")
