"""The adapter's two speed figures (issue 16), with a Python client:

1. one CartPole-v1 step against the adapter's floor, a ``POST /v1/echo`` whose
   body is a step reply (so the echo's reply has a step reply's size too), on
   the same server over the same keep-alive connection;
2. 64 CartPole-v1 copies stepped by one call each, in env steps per second,
   against Gymnasium's ``SyncVectorEnv`` of the same 64 envs in this process.

    python python/rl-lab-env/bench/speed.py [--seconds 2] [--rounds 5] [--source DIR ...]

Each ``--source`` is a checkout of this package (the folder holding
``rl_lab_env``; default: this one) served by its own adapter, so a before and
an after can be measured in one run. The workloads take turns within each
round, and the rounds repeat, so a load that comes and goes on a shared
machine falls on every side alike. Prints per-round figures, then medians
and [min-max] ranges, in wall time and in CPU time (this process's and the
adapter's, so on a loaded machine the code's cost still shows).

The official figures come from ``benches/peers/adapter.py`` with rl-lab's own
client; this script is for profiling and before/after checks in Python alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import gymnasium as gym
import numpy as np

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
NUM_ENVS = 64
#: Pre-drawn action rows per workload; the loops cycle through them.
ACTION_ROWS = 256


class Adapter:
    """`python -m rl_lab_env serve --env CartPole-v1` from one source folder,
    and one keep-alive connection to it."""

    def __init__(self, source: Path):
        self.source = source
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rl_lab_env", "serve", "--env", "CartPole-v1", "--port", "0"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening on http://"):
            self.process.kill()
            sys.exit(f"the adapter from {source} did not start: {line!r}")
        parsed = urllib.parse.urlparse(line.split()[-1])
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        self.headers = {"Content-Type": "application/json"}

    def call(self, method: str, path: str, payload: bytes = b"") -> object:
        """The parsed reply; any status but 200 stops the run."""
        return json.loads(self.raw(method, path, payload))

    def raw(self, method: str, path: str, payload: bytes = b"") -> bytes:
        """The reply's bytes as the adapter wrote them."""
        self.connection.request(method, path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            sys.exit(f"{method} {path} answered {response.status}: {data!r}")
        return data

    def stop(self) -> None:
        self.connection.close()
        self.process.terminate()
        self.process.wait(timeout=10)


class Spent:
    """Wall time, and CPU time of this process and of the adapter's, since
    it was made: on a shared machine another job's load stretches the wall
    time of a call but hardly the CPU time it takes, so the CPU figures
    tell what the code costs when the wall figures are noisy."""

    def __init__(self, adapter: Adapter | None):
        self.adapter = adapter
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    def _cpu(self) -> float:
        own = time.process_time()
        if self.adapter is None:
            return own
        # utime and stime of every thread of the adapter, in clock ticks.
        fields = Path(f"/proc/{self.adapter.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return own + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def elapsed(self) -> float:
        return time.perf_counter() - self.wall

    def per_call_us(self, calls: int) -> tuple[float, float]:
        """(wall, CPU of both processes) per call, in microseconds."""
        return self.elapsed() / calls * 1e6, (self._cpu() - self.cpu) / calls * 1e6


def single_step_us(adapter: Adapter, instance_id: str, actions: np.ndarray, seconds: float) -> tuple[float, float]:
    """(wall, CPU) microseconds of a step call. The resets between episodes
    are left out of the wall time; the CPU time counts each as a call."""
    path = f"/v1/envs/{instance_id}/step/"
    bodies = [json.dumps({"action": int(action)}).encode() for action in actions]
    reset_path, reset_body = f"/v1/envs/{instance_id}/reset/", b"{}"
    adapter.call("POST", reset_path, reset_body)
    calls, resets, timed, spent = 0, 0, 0.0, Spent(adapter)
    while spent.elapsed() < seconds:
        for body in bodies:
            start = time.perf_counter()
            reply = adapter.call("POST", path, body)
            timed += time.perf_counter() - start
            calls += 1
            if reply["done"]:
                adapter.call("POST", reset_path, reset_body)
                resets += 1
    return timed / calls * 1e6, spent.per_call_us(calls + resets)[1]


def echo_us(adapter: Adapter, step_reply: bytes, seconds: float) -> tuple[float, float]:
    """(wall, CPU) microseconds of an echo of a step reply, the adapter's floor."""
    calls, spent = 0, Spent(adapter)
    while spent.elapsed() < seconds:
        for _ in range(ACTION_ROWS):
            adapter.call("POST", "/v1/echo", step_reply)
        calls += ACTION_ROWS
    return spent.per_call_us(calls)


def vector_steps_per_second(adapter: Adapter, instance_id: str, actions: np.ndarray, seconds: float) -> tuple:
    """Env steps per second of wall and of CPU time, one call per step of
    all copies (the reply parsed, as a client must)."""
    path = f"/v1/vector-envs/{instance_id}/step"
    bodies = [json.dumps({"actions": row.tolist()}).encode() for row in actions]
    calls, spent = 0, Spent(adapter)
    while spent.elapsed() < seconds:
        for body in bodies:
            adapter.call("POST", path, body)
        calls += len(bodies)
    return tuple(NUM_ENVS * 1e6 / per_call for per_call in spent.per_call_us(calls))


def sync_vector_steps_per_second(envs: gym.vector.SyncVectorEnv, actions: np.ndarray, seconds: float) -> tuple:
    """The in-process reference: Gymnasium's SyncVectorEnv on the same work."""
    calls, spent = 0, Spent(None)
    while spent.elapsed() < seconds:
        for row in actions:
            envs.step(row)
        calls += len(actions)
    return tuple(NUM_ENVS * 1e6 / per_call for per_call in spent.per_call_us(calls))


def summary(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per workload per round (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--source", type=Path, action="append", help="a folder holding rl_lab_env (repeatable)")
    args = parser.parse_args()
    if args.rounds < 1 or not args.seconds > 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    sources = args.source or [PACKAGE_ROOT]

    rng = np.random.default_rng(1)
    single_actions = rng.integers(0, 2, size=ACTION_ROWS)
    vector_actions = rng.integers(0, 2, size=(ACTION_ROWS, NUM_ENVS))
    local = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(NUM_ENVS)])
    local.reset(seed=0)

    adapters, setups = [], []
    try:
        for source in sources:
            adapter = Adapter(source.resolve())
            adapters.append(adapter)
            single = adapter.call("POST", "/v1/envs/", json.dumps({"env_id": "CartPole-v1", "seed": 0}).encode())
            single_id = single["instance_id"]
            adapter.call("POST", f"/v1/envs/{single_id}/reset/", b"{}")
            step_reply = adapter.raw("POST", f"/v1/envs/{single_id}/step/", b'{"action": 0}')
            vector = adapter.call(
                "POST", "/v1/vector-envs", json.dumps({"env_id": "CartPole-v1", "num_envs": NUM_ENVS}).encode()
            )
            adapter.call("POST", f"/v1/vector-envs/{vector['instance_id']}/reset", b'{"seed": 0}')
            setups.append((single_id, step_reply, vector["instance_id"]))
            print(f"source {len(adapters)}: {source} (echo body {len(step_reply)} bytes)")

        names = ("echo_us", "step_us", "step/echo", "vector", "sync", "vector/sync")
        figures = [{(name, clock): [] for name in names for clock in ("wall", "cpu")} for _ in sources]
        for round_index in range(args.rounds):
            for index, (adapter, (single_id, step_reply, vector_id)) in enumerate(zip(adapters, setups)):
                echo = echo_us(adapter, step_reply, args.seconds)
                step = single_step_us(adapter, single_id, single_actions, args.seconds)
                vector = vector_steps_per_second(adapter, vector_id, vector_actions, args.seconds)
                sync = sync_vector_steps_per_second(local, vector_actions, args.seconds)
                for clock, at in (("wall", 0), ("cpu", 1)):
                    values = (echo[at], step[at], step[at] / echo[at], vector[at], sync[at], vector[at] / sync[at])
                    for name, value in zip(names, values):
                        figures[index][name, clock].append(value)
                    print(
                        f"round {round_index + 1} source {index + 1} {clock}: echo {echo[at]:.0f} us, "
                        f"step {step[at]:.0f} us ({step[at] / echo[at]:.2f}x); vector {vector[at]:,.0f} env steps/s, "
                        f"SyncVectorEnv {sync[at]:,.0f} ({vector[at] / sync[at]:.0%})",
                        flush=True,
                    )
    finally:
        for adapter in adapters:
            adapter.stop()
        local.close()

    print(f"\nmedians [min-max] over {args.rounds} rounds; wall time, then CPU time of client and adapter")
    for index, source in enumerate(sources):
        print(f"source {index + 1} ({source}):")
        for clock in ("wall", "cpu"):
            row = {name: figures[index][name, clock] for name in names}
            print(
                f"  {clock:4}: echo {summary(row['echo_us'], 0)} us, step {summary(row['step_us'], 0)} us, "
                f"step/echo {summary(row['step/echo'], 2)} (goal <= 1.5)\n"
                f"        vector {summary(row['vector'], 0)} env steps/s, SyncVectorEnv {summary(row['sync'], 0)}, "
                f"vector/sync {summary(row['vector/sync'], 2)} (goal >= 0.5)"
            )

if __name__ == "__main__":
    main()
