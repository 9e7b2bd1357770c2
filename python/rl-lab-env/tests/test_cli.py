"""The command line: bad input exits 2 with a message, signals stop it
cleanly and close every env."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from conftest import PACKAGE_ROOT, TESTS_DIR


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), str(TESTS_DIR)]))
    return subprocess.run(
        [sys.executable, "-m", "rl_lab_env", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["serve"], ["give --env ID"]),
        (["serve", "--env", "NoSuchEnv-v9"], ["--env NoSuchEnv-v9", "NoSuchEnv"]),
        (["serve", "--env", "Taxi-v4", "--kwargs", "{oops"], ["--kwargs is not JSON"]),
        (["serve", "--env", "Taxi-v4", "--kwargs", "[1]"], ["--kwargs must be a JSON object"]),
        (["serve", "--env", "Taxi-v4", "--kwargs", '{"wobble": 1}'], ["cannot make Taxi-v4", "wobble"]),
        (["serve", "--make", "no_such_module:make"], ["cannot import no_such_module"]),
        (["serve", "--make", "custom_envs:nothing_here"], ["custom_envs has no nothing_here"]),
        (["serve", "--make", "custom_envs"], ["expected MODULE:CALLABLE"]),
        (["serve", "--env", "Taxi-v4", "--port", "70000"], ["--port 70000"]),
        (["serve", "--env", "Taxi-v4", "--max-instances", "0"], ["--max-instances 0"]),
        (["serve", "--env", "Taxi-v4", "--idle-timeout", "-1"], ["--idle-timeout -1"]),
        (["serve", "--env", "Taxi-v4", "--port", "eighty"], ["invalid int value"]),
    ],
)
def test_bad_input_exits_2_with_a_message(args, words):
    result = run(*args)
    assert result.returncode == 2, result
    assert result.stdout == ""
    for word in words:
        assert word in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly_and_close_every_env(start_adapter, tmp_path, sig):
    marker = tmp_path / "closes"
    adapter = start_adapter("--make", "custom_envs:ClosingEnv", "--kwargs", f'{{"marker": "{marker}"}}')
    assert marker.read_text() == "closed\n"  # the env made to check the command line
    adapter.open("custom_envs:ClosingEnv")
    adapter.ok("POST", "/v1/vector-envs", {"env_id": "custom_envs:ClosingEnv", "num_envs": 2})
    assert adapter.stop(sig) == 0
    assert marker.read_text() == "closed\n" * 4
