"""The adapter's speed, side by side (issue 16's two figures):

1. One CartPole-v1 step through `python -m rl_lab_env serve`, stepped by
   rl-lab's own remote-env client, against the adapter's floor: a `POST
   /v1/echo` of the same size on the same Python HTTP server, by the same
   client. Goal: a step costs at most 1.5x the echo.
2. 64 CartPole-v1 copies stepped through the adapter's vector instance (one
   HTTP call per step of all 64), against Gymnasium's in-process
   `SyncVectorEnv` of the same 64 envs with the same random actions. Goal:
   at least 50% of SyncVectorEnv's env steps per second.

    python3 benches/peers/adapter.py [--seconds 3] [--rounds 5]

Creates benches/peers/.venv with gymnasium and the adapter package, builds
the release binary, starts the adapter, and takes turns: ours, then the
in-process peer, --rounds times. Prints the README's rows: medians, and in
brackets the range of the per-round ratios.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time
import venv

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = HERE / ".venv"
NUM_ENVS = 64


def python():
    if not (VENV / "bin" / "python").exists():
        venv.create(VENV, with_pip=True)
    return str(VENV / "bin" / "python")


def sync_vector_env(seconds):
    """Gymnasium's SyncVectorEnv of 64 CartPole-v1, random actions drawn
    ahead of time (as our side does), env steps per second."""
    import gymnasium as gym
    import numpy as np

    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(NUM_ENVS)])
    envs.reset(seed=0)
    actions = np.random.default_rng(1).integers(0, 2, size=(256, NUM_ENVS))
    steps = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        for row in actions:
            envs.step(row)
        steps += 256
    elapsed = time.perf_counter() - began
    envs.close()
    return steps * NUM_ENVS / elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peer-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1 or not args.seconds > 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    if args.peer_only:
        print(json.dumps({"env_steps_per_second": sync_vector_env(args.seconds)}))
        return
    py = python()
    subprocess.run([py, "-m", "pip", "install", "-q", "-r", str(HERE / "requirements-tabular.txt")], check=True)
    # The adapter as it is in this checkout, not a copy installed earlier.
    subprocess.run([py, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps",
                    str(ROOT / "python" / "rl-lab-env")], check=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)

    adapter = subprocess.Popen([py, "-m", "rl_lab_env", "serve", "--env", "CartPole-v1", "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = adapter.stdout.readline().strip()
        if not line.startswith("listening on "):
            sys.exit(f"the adapter did not start: {line!r}")
        url = line.removeprefix("listening on ")
        rounds = []
        for _ in range(args.rounds):
            ours = json.loads(subprocess.run(
                [str(ROOT / "target/release/rl-lab"), "bench", "remote", "--url", url, "--env-id",
                 "CartPole-v1", "--num-envs", str(NUM_ENVS), "--json", "--seconds", str(args.seconds)],
                check=True, capture_output=True, text=True).stdout)
            peer = json.loads(subprocess.run(
                [py, __file__, "--peer-only", "--seconds", str(args.seconds)],
                check=True, capture_output=True, text=True).stdout)
            rounds.append((ours, peer))
    finally:
        adapter.terminate()
        adapter.wait()

    def row(label, values, unit, goal):
        a = statistics.median(v[0] for v in values)
        b = statistics.median(v[1] for v in values)
        ratios = [x / y for x, y in values]
        spread = f" ({min(ratios):.2f}–{max(ratios):.2f}, {len(ratios)} rounds)" if len(ratios) > 1 else ""
        print(f"| {label} | {a:,.4g} {unit} | {b:,.4g} {unit} | {statistics.median(ratios):.2f}{spread} | {goal} |")

    print("| workload | through the adapter | reference | ratio | goal |")
    print("|---|---|---|---|---|")
    row("one CartPole-v1 step (ours: rl-lab's remote client; reference: /v1/echo of the same size), µs",
        [(o["single"]["step_us"], o["single"]["echo_us"]) for o, _ in rounds], "µs", "≤ 1.5")
    row(f"{NUM_ENVS} CartPole-v1 copies, env steps/s (reference: Gymnasium SyncVectorEnv in process)",
        [(o["vector"]["env_steps_per_second"], p["env_steps_per_second"]) for o, p in rounds], "steps/s", "≥ 0.5")


if __name__ == "__main__":
    main()
