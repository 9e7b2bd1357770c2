"""The instance cap (429) and idle reaping."""

from __future__ import annotations

import time

IDLE_TIMEOUT = 0.5


def test_past_max_instances_is_429_until_one_closes(start_adapter):
    adapter = start_adapter("--env", "FrozenLake-v1", "--max-instances", "2")
    first = adapter.open("FrozenLake-v1")
    vector = adapter.ok("POST", "/v1/vector-envs", {"env_id": "FrozenLake-v1", "num_envs": 4})["instance_id"]
    for path, body in [
        ("/v1/envs/", {"env_id": "FrozenLake-v1"}),
        ("/v1/vector-envs", {"env_id": "FrozenLake-v1", "num_envs": 2}),
    ]:
        status, reply = adapter.call("POST", path, body)
        assert status == 429
        assert reply["message"].startswith("too many open environment instances: 2 are open")
    adapter.call("DELETE", f"/v1/vector-envs/{vector}")
    second = adapter.open("FrozenLake-v1")
    assert set(adapter.ok("GET", "/v1/envs/")["all_envs"]) == {first, second}


def test_idle_instances_are_reaped_and_used_ones_kept(start_adapter):
    adapter = start_adapter("--env", "FrozenLake-v1", "--idle-timeout", str(IDLE_TIMEOUT))
    idle = adapter.open("FrozenLake-v1")
    used = adapter.open("FrozenLake-v1")
    deadline = time.monotonic() + 4 * IDLE_TIMEOUT
    while time.monotonic() < deadline:
        adapter.ok("GET", f"/v1/envs/{used}/")
        time.sleep(IDLE_TIMEOUT / 5)
    # The reaper closed the idle one without anyone asking for it...
    assert adapter.ok("GET", "/v1/envs/")["all_envs"] == {used: "FrozenLake-v1"}
    assert adapter.call("POST", f"/v1/envs/{idle}/reset/") == (400, {"message": f"Instance_id {idle} unknown"})
    # ...and an instance idle past the timeout is refused on access even
    # before the reaper comes round.
    time.sleep(IDLE_TIMEOUT * 1.1)
    assert adapter.call("GET", f"/v1/envs/{used}/")[0] == 400


def test_a_body_over_the_limit_is_refused_unread(cartpole):
    import socket
    import urllib.parse

    parsed = urllib.parse.urlparse(cartpole.url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999999\r\n\r\n"
        )
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "limit" in reply
