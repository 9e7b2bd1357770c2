"""An env that owns its loop, driving an rl-lab run: Gymnasium's CartPole-v1
stepped here, its actions asked of a DQN agent training in `rl-lab serve`.

Run with:

    rl-lab serve --addr 127.0.0.1:8080 &
    PYTHONPATH=python/rl-lab-env python python/rl-lab-env/examples/external_cartpole.py \\
        --url http://127.0.0.1:8080 --steps 20000

It submits an external run whose spaces are the env's own (so `hello`
matches), then plays until the run has its budget, printing each episode's
return. Add `--token` when the server has RL_LAB_TOKEN, or `--run ID` to
drive a run submitted elsewhere.
"""

import argparse
import json
import urllib.request

import gymnasium

from rl_lab_env.policy_client import PolicyClient, RunFinished, space_to_json


def submit(url, token, env, steps, seed):
    """POSTs an external DQN run on the env's spaces; returns its id."""
    spec = {
        "env": {"id": "external", "config": {
            "observation_space": space_to_json(env.observation_space),
            "action_space": space_to_json(env.action_space),
        }},
        "agent": {"id": "dqn"},
        "budget": {"steps": steps},
        "eval": {"episodes": 0},
        "seed": seed,
    }
    request = urllib.request.Request(
        f"{url}/v1/runs", data=json.dumps(spec).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request) as reply:
        return json.load(reply)["id"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--token")
    parser.add_argument("--run", help="drive this run instead of submitting one")
    parser.add_argument("--steps", type=int, default=20000, help="the run's budget, in env steps")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    env = gymnasium.make("CartPole-v1")
    run_id = args.run or submit(args.url, args.token, env, args.steps, args.seed)
    print(f"driving run {run_id}")
    with PolicyClient(args.url, run_id, token=args.token, env=env) as client:
        try:
            for index in range(10**9):
                episode = client.start_episode()
                obs, _ = env.reset(seed=args.seed + index)
                episode_return = 0.0
                while True:
                    action = client.get_action(episode, obs)
                    obs, reward, terminated, truncated, _ = env.step(action)
                    episode_return += reward
                    client.log_returns(episode, reward)
                    if terminated or truncated:
                        client.end_episode(episode, obs, terminated, truncated)
                        break
                print(f"episode {index + 1}: return {episode_return:.0f}")
        except RunFinished:
            # A budget in steps can end the run in the middle of an episode.
            pass
    print("the run has its budget")


if __name__ == "__main__":
    main()
