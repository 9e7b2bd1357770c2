"""The Ray launcher's command line, without a Ray cluster: what each worker
is started with, and what is refused before anything reaches Ray. Its run
on a real Ray head is tests/ray.rs in the rl-lab repository."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import PACKAGE_ROOT

from rl_lab_env import ray_workers


def launch(*args: str, code: str = "") -> subprocess.CompletedProcess:
    """`python -m rl_lab_env.ray_workers ARGS`, after `code` (run first)."""
    program = f"{code}\nimport runpy, sys\nsys.argv[0] = 'ray_workers'\nrunpy.run_module('rl_lab_env.ray_workers', run_name='__main__')"
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT))
    return subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_worker_gets_its_name_absolute_paths_and_no_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ray_workers._parse(
        ["--workers", "2", "--store", "postgres://lab@db:5432/rl", "--rl-lab", "./bin/rl-lab", "--lease", "3"]
    )
    assert ray_workers.worker_command(args, "ray-1") == [
        str(tmp_path / "bin" / "rl-lab"),
        "worker",
        "--store",
        "postgres://lab@db:5432/rl",
        "--data",
        str(tmp_path / "rl-lab-data"),
        "--slots",
        "1",
        "--name",
        "ray-1",
        "--lease",
        "3",
    ]
    # A bare name is looked up on each node's PATH.
    args = ray_workers._parse(["--workers", "1", "--store", "postgres://lab@db/rl", "--heartbeat", "0.5"])
    command = ray_workers.worker_command(args, "ray-0")
    assert command[0] == "rl-lab"
    assert command[-2:] == ["--heartbeat", "0.5"]


def test_a_password_in_the_url_is_refused_without_repeating_it():
    result = launch("--workers", "1", "--store", "postgres://lab:hunter2@db/rl")
    assert result.returncode == 2
    assert "PGPASSWORD" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_without_ray_it_says_how_to_install_it():
    # An import of ray fails as it does where ray is not installed.
    result = launch("--workers", "1", "--store", "postgres://lab@db/rl", code="import sys; sys.modules['ray'] = None")
    assert result.returncode == 1
    assert "pip install 'rl-lab-env[ray]'" in result.stderr
