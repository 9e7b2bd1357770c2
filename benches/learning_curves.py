"""Learning curves and the summary table of runs on MinAtar, from their
run folders (`metrics.jsonl`, `spec.json`), against the paper's curves:
DQN runs against the paper's DQN, every other agent (PPO, AC(λ), …)
against the paper's AC(λ).

    benches/peers/.venv/bin/pip install matplotlib
    benches/peers/.venv/bin/python benches/learning_curves.py runs/breakout runs/asterix ... \
        --out docs/results

For each run: the return of every training episode (the true game score:
`episode_statistics` sits inside `clip_reward`), its 100-episode running
mean against env steps, and the periodic greedy evaluations
(`eval/mean_return`) if any. Writes `<env>.png` per DQN run and
`<env>-<agent>.png` per other run, and `summary.md` (DQN) or
`summary-<agent>.md`: the final 100-episode mean return, the paper's value
at 5M frames as read off its curves (Young & Tian 2019, Figure 2), and
whether the run reaches 75% of it and passes it.
"""
import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The paper's curves at 5M frames, read off Young & Tian (2019), Figure 2.
PAPER = {
    "DQN": {
        "minatar/breakout": 10.0,
        "minatar/asterix": 17.0,
        "minatar/freeway": 50.0,
        "minatar/seaquest": 20.0,
        "minatar/space_invaders": 43.0,
    },
    "AC(λ)": {
        "minatar/breakout": 17.5,
        "minatar/asterix": 19.0,
        "minatar/freeway": 47.5,
        "minatar/seaquest": 15.5,
        "minatar/space_invaders": 185.0,
    },
}
AGENT_NAMES = {"dqn": "DQN", "ppo": "PPO", "ac-lambda": "AC(λ)", "a2c": "A2C", "reinforce": "REINFORCE"}


def read(folder):
    """The episodes' steps and returns, the periodic evaluations, and whether
    the recording policy merged some episodes (docs/server.md, "Recording
    policy"): a merged window is one point at its mean. DQN runs are slow
    enough that every episode is kept."""
    spec = json.loads((folder / "spec.json").read_text())
    steps, returns, evals, merged = [], [], [], False
    with open(folder / "metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "episode":
                steps.append(r["step"])
                returns.append(r["return"])
            elif r["kind"] == "episodes":
                steps.append(r["step"])
                returns.append(r["return"]["mean"])
                merged = True
            elif r.get("name") == "eval/mean_return":
                evals.append((r["step"], r.get("value", r.get("mean"))))
    return spec, steps, returns, evals, merged


def final_mean(folder, mean, merged):
    """The final 100-episode mean: the loop's own exact figure in
    summary.json when the run wrote one, else (a run still going) the
    running mean of the episode lines, which is exact only when no window
    merged episodes."""
    summary = folder / "summary.json"
    if summary.exists():
        return json.loads(summary.read_text())["train_mean_return_last_100"]
    if merged:
        return float("nan")
    return mean[-1] if mean else float("nan")


def running_mean(values, window=100):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, agents = [], set()
    for folder in args.runs:
        spec, steps, returns, evals, merged = read(folder)
        env, agent = spec["env"]["id"], spec["agent"]["id"]
        agents.add(agent)
        name_of = AGENT_NAMES.get(agent, agent)
        reference = "DQN" if agent == "dqn" else "AC(λ)"
        paper = PAPER[reference].get(env)
        mean = running_mean(returns)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, returns, color="0.8", linewidth=0.5, label="episode return")
        ax.plot(steps, mean, color="C0", label="mean of last 100 episodes")
        if evals:
            ax.plot(*zip(*evals), "o-", color="C1", markersize=3, label="greedy evaluation")
        if paper is not None:
            ax.axhline(paper, color="C3", linestyle="--", linewidth=1, label=f"paper's {reference} at 5M")
            ax.axhline(0.75 * paper, color="C3", linestyle=":", linewidth=1, label="75% of it")
        ax.set_xlabel("env steps")
        ax.set_ylabel("return")
        ax.set_title(f"{name_of} on {env}, seed {spec.get('seed', 0)}")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        suffix = "" if agent == "dqn" else f"-{agent}"
        name = env.replace("/", "-") + suffix + ".png"
        fig.savefig(args.out / name, dpi=120)
        plt.close(fig)
        final = final_mean(folder, mean, merged)
        reached = "yes" if paper is not None and final >= 0.75 * paper else ("no" if paper else "–")
        above = "yes" if paper is not None and final > paper else ("no" if paper else "–")
        rows.append((env, name_of, reference, steps[-1] if steps else 0, final, paper, reached, above, name))
    lines = [
        "| env | agent | env steps | final 100-episode mean return | paper's value at 5M | ≥ 75% of it | above it | curve |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for env, name_of, reference, last, final, paper, reached, above, name in rows:
        paper_text = f"{paper:g} ({reference})" if paper is not None else "–"
        lines.append(
            f"| {env} | {name_of} | {last:,} | {final:.2f} | {paper_text} | {reached} | {above} | [{name}]({name}) |"
        )
    summary = "summary.md" if agents == {"dqn"} else "summary-" + "-".join(sorted(agents)) + ".md"
    (args.out / summary).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
