"""Environment speed side by side: `rl-lab bench envs` against the Python
peers on the same work, in the same run.

    python3 benches/peers/run_env_peers.py [--seconds 2] [--json]

Creates benches/peers/.venv (if missing) with gymnasium and minatar 1.0.15,
builds the release binary, then runs:
- `rl-lab bench envs --json`: single-threaded and vectorised steps/s;
- `minatar_peer.py`: Python MinAtar, `act` + `state()` every step;
- `gym_cartpole.py`: Gymnasium CartPole-v1 through `gymnasium.make`.
All use uniformly random actions and reset when an episode ends. Prints a
table with the ratio ours / peer (single-threaded, and vectorised on all
cores against the single-threaded peer), and with --json one object.
Goals (issue 4): ≥ 100× on every MinAtar game, ≥ 50× on CartPole.
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
PACKAGES = ["gymnasium", "minatar==1.0.15", "numpy"]
# Our id -> (peer script, the peer's key)
PEERS = {
    "minatar/asterix": ("minatar_peer.py", "asterix"),
    "minatar/breakout": ("minatar_peer.py", "breakout"),
    "minatar/freeway": ("minatar_peer.py", "freeway"),
    "minatar/seaquest": ("minatar_peer.py", "seaquest"),
    "minatar/space_invaders": ("minatar_peer.py", "space_invaders"),
    "CartPole-v1": ("gym_cartpole.py", "CartPole-v1"),
}
GOALS = {"CartPole-v1": 50}


def python():
    exe = VENV / "bin" / "python"
    if not exe.exists():
        venv.create(VENV, with_pip=True)
    missing = subprocess.run(
        [str(exe), "-c", "import gymnasium, minatar"], capture_output=True
    ).returncode
    if missing:
        subprocess.run([str(exe), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    return str(exe)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    py = python()
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "rl-lab"], cwd=ROOT, check=True,
        stdout=sys.stderr,
    )
    target = pathlib.Path(
        json.loads(
            subprocess.run(
                ["cargo", "metadata", "--format-version", "1", "--no-deps"],
                cwd=ROOT, check=True, capture_output=True, text=True,
            ).stdout
        )["target_directory"]
    )
    ours = json.loads(
        subprocess.run(
            [str(target / "release" / "rl-lab"), "bench", "envs", "--json", "--seconds", str(args.seconds)],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    peer_runs = {}
    for script in sorted({s for s, _ in PEERS.values()}):
        peer_runs[script] = json.loads(
            subprocess.run(
                [py, str(HERE / script), str(args.seconds)],
                check=True, capture_output=True, text=True,
            ).stdout
        )

    rows = []
    for our_id, (script, key) in PEERS.items():
        single = ours["single_thread"].get(our_id)
        vector = ours["vectorized"].get(our_id)
        peer = peer_runs[script].get(key)
        rows.append(
            {
                "env": our_id,
                "ours_single_thread": single,
                "ours_vectorized": vector,
                "peer": peer,
                "ratio_single_thread": single / peer if single and peer else None,
                "ratio_vectorized": vector / peer if vector and peer else None,
                "goal": GOALS.get(our_id, 100),
            }
        )
    if args.json:
        print(json.dumps({"threads": ours.get("threads"), "rows": rows}))
        return
    print(f"| env | rl-lab 1 thread | rl-lab {ours.get('threads')} threads | Python peer | ratio (1 thread) | ratio (vectorised) | goal |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    fmt = lambda x: "–" if x is None else f"{x:,.0f}"
    ratio = lambda x: "–" if x is None else f"{x:,.0f}×"
    for r in rows:
        print(
            f"| {r['env']} | {fmt(r['ours_single_thread'])} | {fmt(r['ours_vectorized'])} | "
            f"{fmt(r['peer'])} | {ratio(r['ratio_single_thread'])} | {ratio(r['ratio_vectorized'])} | ≥{r['goal']}× |"
        )


if __name__ == "__main__":
    main()
