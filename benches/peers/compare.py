"""Side-by-side speed: rl-lab against its Python peer on the same work, in
the same run. Creates benches/peers/.venv with the peer's packages, builds
the release binary, runs both, and prints the README's table.

    python3 benches/peers/compare.py tabular [--seconds 2]
    python3 benches/peers/compare.py dqn [--seconds 10]
    python3 benches/peers/compare.py dqn-cleanrl [--seconds 10]
"""
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
# The same workload against the CleanRL-style peer (Gymnasium vector env,
# Stable-Baselines3's replay buffer, TensorBoard logging).
SUITES["dqn-cleanrl"] = ("dqn_cleanrl.py", *SUITES["dqn"][1:])
# Which `rl-lab bench` command gives our side of each suite.
OURS = {"tabular": "tabular", "dqn": "dqn", "dqn-cleanrl": "dqn"}


def python():
    if not (VENV / "bin" / "python").exists():
        venv.create(VENV, with_pip=True)
    return str(VENV / "bin" / "python")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    script, requirements, rows = SUITES[args.suite]
    py = python()
    subprocess.run([py, "-m", "pip", "install", "-q", "-r", str(HERE / requirements)], check=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    ours = json.loads(subprocess.run(
        [str(ROOT / "target/release/rl-lab"), "bench", OURS[args.suite], "--json", "--seconds", str(args.seconds)],
        check=True, capture_output=True, text=True).stdout)
    peer = json.loads(subprocess.run(
        [py, str(HERE / script), str(args.seconds)], check=True, capture_output=True, text=True).stdout)

    def get(report, path):
        for key in path:
            report = report[key]
        return float(report)

    print(f"| workload | rl-lab | Python peer | ratio |")
    print(f"|---|---|---|---|")
    for label, path, unit, higher in rows:
        a, b = get(ours, path), get(peer, path)
        ratio = a / b if higher else b / a
        print(f"| {label} | {a:,.4g} {unit} | {b:,.4g} {unit} | {ratio:,.{0 if ratio >= 10 else 1}f}× |")
    print(f"\npeer: {json.dumps(peer.get('versions', {}))}", file=sys.stderr)


if __name__ == "__main__":
    main()
