"""An env process for tests/external.rs: FrozenLake-v1 (not slippery) in its
own loop, driving an external run through rl_lab_env.PolicyClient.

    python env_process.py MODE URL RUN_ID [TOKEN]

MODE is one of
- drive: plays episodes until the run is finished; prints
  {"episodes": [[return, length, truncated], ...]};
- laneK: as drive, with episodes seeded from 100·K, and also prints the
  episode ids it was given (one of several processes of one run);
- hang: plays 3 whole episodes, then 1 action of a fourth (from the start
  cell no step falls in a hole), prints what it
  played (the fourth as truncated), then sleeps until killed;
- twice: connects, then a second client connects; prints the refusal;
- crowdN: N clients connect, then one more; prints its refusal;
- bad: sends malformed and out-of-order messages; prints each reply.
Every line on stdout is one JSON object.
"""

import json
import sys
import time

import gymnasium

from rl_lab_env import _websocket
from rl_lab_env.policy_client import PolicyClient, Refused, RequestError, RunFinished


def say(value):
    print(json.dumps(value), flush=True)


def play(client, env, episodes, seed, stop_after_actions=None, ids=None, unfinished=None):
    """Plays up to `episodes` episodes; with `stop_after_actions`, the last
    one is left after that many actions. Returns [[return, length, truncated]]
    of the episodes played to their end (a run that finishes while this
    process is mid-episode, because another process ended the budget's last
    episode, leaves that one out: `unfinished`, if given, gets its steps).
    `ids` collects the episode ids."""
    played = []
    for index in range(episodes):
        progress = [0]
        try:
            episode = client.start_episode()
            if ids is not None:
                ids.append(episode)
            finished = play_episode(
                client, env, episode, seed + index, index == episodes - 1, stop_after_actions, progress
            )
        except RunFinished:
            if unfinished is not None:
                unfinished.append(progress[0])
            break
        played.append(finished)
    return played


def play_episode(client, env, episode, seed, last, stop_after_actions, progress):
    """One episode; the last one is left after `stop_after_actions` actions.
    `progress[0]` follows its length."""
    obs, _ = env.reset(seed=seed)
    total, length = 0.0, 0
    while True:
        action = client.get_action(episode, obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        length += 1
        progress[0] = length
        total += float(reward)
        client.log_returns(episode, reward)
        if stop_after_actions is not None and last and length == stop_after_actions:
            return [total, length, True]
        if terminated or truncated:
            client.end_episode(episode, obs, terminated, truncated)
            return [total, length, bool(truncated and not terminated)]


def connect_retrying(url, run_id, token, env):
    """A process restarted right after a crash may be refused until the lab
    has seen the old connection close: it retries for a few seconds."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return PolicyClient(url, run_id, token=token, env=env, timeout=10)
        except Refused:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    mode, url, run_id = sys.argv[1:4]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    env = gymnasium.make("FrozenLake-v1", is_slippery=False)
    if mode == "drive":
        with connect_retrying(url, run_id, token, env) as client:
            say({"episodes": play(client, env, 10**9, seed=100)})
    elif mode.startswith("lane"):
        # One of several processes of a run with num_envs > 1: "lane3"
        # seeds its episodes from 300, so the lanes play different ones.
        ids, unfinished = [], []
        with connect_retrying(url, run_id, token, env) as client:
            played = play(client, env, 10**9, seed=100 * int(mode[4:]), ids=ids, unfinished=unfinished)
        say({"episodes": played, "ids": ids, "unfinished_steps": sum(unfinished)})
    elif mode == "hang":
        client = PolicyClient(url, run_id, token=token, env=env, timeout=10)
        say({"episodes": play(client, env, 4, seed=0, stop_after_actions=1)})
        time.sleep(3600)
    elif mode.startswith("crowd"):
        # "crowd3": three processes' worth of clients connect, then a fourth,
        # whose refusal is printed; all close again.
        lanes = int(mode[5:])
        clients = [PolicyClient(url, run_id, token=token, env=env, name=f"lane {k}") for k in range(lanes)]
        try:
            PolicyClient(url, run_id, token=token, env=env, name="one too many")
            say({"refused": None})
        except Refused as refusal:
            say({"refused": str(refusal)})
        for client in clients:
            client.close()
    elif mode == "twice":
        first = PolicyClient(url, run_id, token=token, env=env, name="first env process")
        try:
            PolicyClient(url, run_id, token=token, env=env, name="second")
            say({"refused": None})
        except Refused as refusal:
            say({"refused": str(refusal)})
        first.close()
    elif mode == "bad":
        bad_messages(url, run_id, env)
    else:
        raise SystemExit(f"unknown mode {mode}")


def bad_messages(url, run_id, env):
    # An unknown run: the handshake is answered 404.
    try:
        PolicyClient(url, "no-such-run", env=env)
    except _websocket.HandshakeError as e:
        say({"unknown_run": e.status})
    # A refused hello: another major version.
    socket = _websocket.WebSocket(url.replace("http", "ws") + f"/v1/runs/{run_id}/connect")
    spaces = {"observation_space": {"type": "Discrete", "n": 16},
              "action_space": {"type": "Discrete", "n": 4}}
    socket.send_text(json.dumps({"type": "hello", "protocol": "rl-lab-external", "version": "2.0", **spaces}))
    say({"wrong_version": json.loads(socket.recv_text())})
    socket.close()

    client = PolicyClient(url, run_id, env=env)
    def send(name, message):
        client._socket.send_text(message if isinstance(message, str) else json.dumps(message))
        say({name: json.loads(client._socket.recv_text())})
    send("not_json", "{")
    send("unknown_type", {"type": "jump"})
    send("no_episode", {"type": "get_action", "episode_id": "1", "observation": 0})
    episode = client.start_episode()
    send("missing_field", {"type": "get_action", "episode_id": episode})
    send("wrong_episode", {"type": "get_action", "episode_id": "999", "observation": 0})
    send("outside_space", {"type": "get_action", "episode_id": episode, "observation": 16})
    send("second_start", {"type": "start_episode"})
    try:
        client.log_returns(episode, 1.0)
    except RequestError as e:
        say({"early_reward_field": e.field})
    client.close()


if __name__ == "__main__":
    main()
