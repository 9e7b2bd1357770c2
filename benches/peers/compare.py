"""Side-by-side speed: rl-lab against its Python peer on the same work, in
the same run. Creates benches/peers/.venv with the peer's packages, builds
the release binary, runs both, and prints the README's table.

    python3 benches/peers/compare.py tabular [--seconds 2]
    python3 benches/peers/compare.py dqn [--seconds 10]
    python3 benches/peers/compare.py dqn-cleanrl [--seconds 10]
    python3 benches/peers/compare.py ppo [--seconds 10]
    python3 benches/peers/compare.py nets [--seconds 3] [--rounds 8]

With --rounds N, ours and the peer take turns N times; the table gives the
medians and, in brackets, the range of the per-round ratios. On a shared or
virtual machine single runs move by 15% or more, so one pair says little.
"""
import statistics
import argparse
import json
import pathlib
import subprocess
import sys
import venv

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = HERE / ".venv"

SUITES = {
    # name: (peer script, requirements, rows: (label, json path, unit, higher is better))
    "tabular": (
        "tabular_peer.py",
        "requirements-tabular.txt",
        [
            ("Q-learning on CliffWalking (α 0.5, ε 0.1, γ 1)", ("q_learning_cliff_walking", "steps_per_second"), "steps/s", True),
            ("Value iteration on FrozenLake 8x8 (γ 0.99, θ 1e-10)", ("value_iteration_frozen_lake_8x8", "seconds"), "s", False),
            ("Gridworld random steps, FrozenLake 8x8", ("gridworld_steps_per_second",), "steps/s", True),
        ],
    ),
    "dqn": (
        "dqn_peer.py",
        "requirements-dqn.txt",
        [
            ("DQN on MinAtar Breakout while training (batch 32, centered RMSProp, 1 update/step)",
             ("minatar/breakout", "train_steps_per_second"), "steps/s", True),
        ],
    ),
}
SUITES["nets"] = (
    "torch_nets.py",
    "requirements-nets.txt",
    [
        ("MinAtar net, DQN update at batch 32", ("minatar", "updates_per_second"), "updates/s", True),
        ("MinAtar net, one-observation inference", ("minatar", "infer_b1_us"), "µs", False),
        ("Nature net, DQN update at batch 32", ("nature", "updates_per_second"), "updates/s", True),
        ("Nature net, one-observation inference", ("nature", "infer_b1_us"), "µs", False),
    ],
)
# The same workload against the CleanRL-style peer (Gymnasium vector env,
# Stable-Baselines3's replay buffer, TensorBoard logging).
SUITES["dqn-cleanrl"] = ("dqn_cleanrl.py", *SUITES["dqn"][1:])
SUITES["ppo"] = (
    "ppo_peer.py",
    "requirements-dqn.txt",
    [
        ("PPO on MinAtar Breakout while training (8 envs, 128-step rollouts, 4 epochs × 4 minibatches)",
         ("minatar/breakout", "train_steps_per_second"), "steps/s", True),
    ],
)
# Which `rl-lab bench` command gives our side of each suite.
OURS = {"tabular": "tabular", "dqn": "dqn", "dqn-cleanrl": "dqn", "nets": "nets", "ppo": "ppo"}


def python():
    if not (VENV / "bin" / "python").exists():
        venv.create(VENV, with_pip=True)
    return str(VENV / "bin" / "python")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    script, requirements, rows = SUITES[args.suite]
    py = python()
    subprocess.run([py, "-m", "pip", "install", "-q", "-r", str(HERE / requirements)], check=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)

    def get(report, path):
        for key in path:
            report = report[key]
        return float(report)

    # rounds[i] = (ours, peer) reports of round i, taken in turn
    rounds = []
    for _ in range(args.rounds):
        ours = json.loads(subprocess.run(
            [str(ROOT / "target/release/rl-lab"), "bench", OURS[args.suite], "--json", "--seconds", str(args.seconds)],
            check=True, capture_output=True, text=True).stdout)
        peer = json.loads(subprocess.run(
            [py, str(HERE / script), str(args.seconds)], check=True, capture_output=True, text=True).stdout)
        rounds.append((ours, peer))

    print(f"| workload | rl-lab | Python peer | ratio |")
    print(f"|---|---|---|---|")
    for label, path, unit, higher in rows:
        ours_values = [get(o, path) for o, _ in rounds]
        peer_values = [get(p, path) for _, p in rounds]
        ratios = [(a / b if higher else b / a) for a, b in zip(ours_values, peer_values)]
        a, b, ratio = (statistics.median(v) for v in (ours_values, peer_values, ratios))
        times = lambda r: f"{r:,.{0 if r >= 10 else 2}f}×"
        spread = f" ({times(min(ratios))}–{times(max(ratios))}, {len(ratios)} rounds)" if len(ratios) > 1 else ""
        print(f"| {label} | {a:,.4g} {unit} | {b:,.4g} {unit} | {times(ratio)}{spread} |")
    peer = rounds[-1][1]
    print(f"\npeer: {json.dumps(peer.get('versions', {}))}", file=sys.stderr)


if __name__ == "__main__":
    main()
