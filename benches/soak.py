#!/usr/bin/env python3
"""Load and soak test of `rl-lab serve` (issue 17 §4).

Run with:

    cargo build --release --bin rl-lab
    python3 benches/soak.py --minutes 30 [--json]

It starts the server on loopback with a temporary data folder and, for
`--minutes N`, keeps it under three loads at once:

- 32 gym-http-api clients, each stepping its own `CartPole-v1` instance
  with random actions over one keep-alive connection (in a process of
  their own, so that the watchers' parsing does not inflate the step
  latencies they measure);
- 4 training runs: one DQN (`examples/cartpole-dqn.json` with a budget
  longer than any soak) and three tabular ones, the README's examples with
  larger budgets, each replaced by the next example when it finishes;
- 8 server-sent-event watchers, two per run slot, that follow a run's
  `/events`, drop the connection after a random (seeded) interval and
  reconnect with `Last-Event-ID`, until they have seen the run's final
  status; then they take the slot's current run.

What it checks, and how:

- errors: every non-2xx answer, exception and timeout of any client,
  every run that ends other than `completed`, and a server that does not
  exit cleanly on SIGTERM. Must be 0.
- step latency: p50 and p99 of `POST /v1/envs/{id}/step/` as the clients
  see it (after the warm-up).
- SSE events lost: when a watcher leaves a run, the ids and payloads it
  received are compared with the store (the SQLite file, read-only): every
  event of the run up to the last id the watcher received must have come
  exactly once, with the stored payload. Lost, duplicated, unknown or
  altered events all count. Must be 0.
- RSS (the server's and its local workers', where the runs train):
  sampled every 10 s once the soak's load has run for
  `--warmup-seconds` (30 by default), after a warm-up load of the same
  length, so from a minute of load in all to the end of the load. The mean
  of the last minute's samples must not exceed the mean of the first
  minute's by more than 10% (a third of the sampled span each, when that is
  shorter than a minute). Means, not single samples: jemalloc purges freed
  pages a second after a burst, so one sample may land on a burst's peak
  and the next after its purge; 10-s samples of a flat 30-minute soak
  spread over 34 to 42.5 MiB while every 5-minute mean sat within 37.7 to
  38.4 MiB. The minute is what the heap takes to reach its
  working size: SQLite's page caches fill, every kind of run, connection
  and stream has been opened, and the runs' metric bursts have met the
  store's largest batches. On 2026-12-06 a 5-minute run went from 32.0 MiB
  at 20 s of load to 36.2 MiB at 80 s, then held at 36.2 to 36.5 MiB
  until the end; over 30 minutes RSS still rose slowly
  (docs/server.md#load has the figures).
- open file descriptors (`/proc/PID/fd`): counted when the server is idle
  after the warm-up load and again when it is idle after the soak (every
  client closed, every run ended, the count steady for 3 s). Those outside
  the database must be as many at the end as at the start; the database's
  own (one writer connection and the pooled readers, whose number follows
  the largest burst of concurrent reads, not time) must be within the
  server's cap. Under load the count moves with connections and open run
  files, so those samples are reported, not judged.

A run is deleted (`DELETE /v1/runs/{id}`) once it has ended and every
watcher on it has checked it against the store, so the data folder stays
bounded however long the soak.

Exit status: 0 when every check passes, 1 when one fails, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import queue
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from array import array
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
FINAL_STATUSES = {"completed", "failed", "cancelled", "interrupted"}
# The README's tabular examples, with budgets large enough that each run
# trains for a while and records tens of thousands of episodes.
TABULAR_RUNS = [
    ("01-q-learning-cliff.json", {"episodes": 100_000}),
    ("02-sarsa-cliff.json", {"episodes": 100_000}),
    ("08-double-q-learning-frozen-lake.json", {"steps": 1_000_000}),
    ("09-n-step-sarsa-windy-king.json", {"episodes": 50_000}),
    ("10-q-learning-wrappers.json", {"episodes": 100_000}),
]
# Longer than any soak: at a few thousand steps per second DQN on CartPole
# takes hours to spend it.
DQN_RUN = ("cartpole-dqn.json", {"steps": 100_000_000})
# The store's connections: its writer and at most 8 pooled readers
# (MAX_READERS in server/src/store/reads.rs). How many readers the pool
# holds follows the largest burst of concurrent reads so far, not time, so
# the database's fds are judged against this bound.
STORE_CONNECTIONS_CAP = 1 + 8
# How many error messages of each kind the report keeps.
KEPT_ERRORS = 20


class Errors:
    """A thread-safe count of failures, keeping the first few messages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        with self.lock:
            self.count += 1
            if len(self.messages) < KEPT_ERRORS:
                self.messages.append(message)


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body=None
) -> tuple[int, bytes]:
    """One request on a keep-alive connection; the status and the body."""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def json_call(conn, method: str, path: str, body=None):
    """A request whose answer must be 2xx; its JSON body (or None if empty)."""
    try:
        status, payload = request(conn, method, path, body)
    except OSError as error:  # timeouts and broken connections, named by request
        raise RuntimeError(f"{method} {path}: {type(error).__name__}: {error}") from error
    if not 200 <= status < 300:
        raise RuntimeError(f"{method} {path}: {status} {payload[:200]!r}")
    return json.loads(payload) if payload else None


def percentile(sorted_values, fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(round(fraction * len(sorted_values))) - 1))
    return sorted_values[rank]


# ---------------------------------------------------------------------------
# gym-http-api clients (in their own process)


def step_client(port, index, seed, stop, measure_from, latencies, errors, counts):
    """One client: make an instance, reset, step at random, reset at episode end."""
    rng = random.Random(seed * 1_000 + index)
    conn = None
    instance = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
            if instance is None:
                instance = json_call(
                    conn, "POST", "/v1/envs/", {"env_id": "CartPole-v1", "seed": seed * 1_000 + index}
                )["instance_id"]
                json_call(conn, "POST", f"/v1/envs/{instance}/reset/")
            started = time.monotonic()
            status, payload = request(
                conn, "POST", f"/v1/envs/{instance}/step/", {"action": rng.randrange(2)}
            )
            finished = time.monotonic()
            if status != 200:
                raise RuntimeError(f"step: {status} {payload[:200]!r}")
            counts[0] += 1
            if started >= measure_from:
                latencies.append(finished - started)
            if json.loads(payload)["done"]:
                counts[1] += 1
                json_call(conn, "POST", f"/v1/envs/{instance}/reset/")
        except Exception as error:  # every failure is counted, then the client goes on
            errors.add(f"client {index}: {type(error).__name__}: {error}")
            if conn is not None:
                conn.close()
            conn = None
            instance = None
            time.sleep(0.1)
    try:
        if conn is None:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
        if instance is not None:
            json_call(conn, "POST", f"/v1/envs/{instance}/close/")
        conn.close()
    except Exception as error:
        errors.add(f"client {index} closing: {type(error).__name__}: {error}")


def step_clients_process(port, clients, seed, stop, measure_from, results):
    """Runs the clients on threads until `stop`; puts their figures in `results`."""
    errors = Errors()
    latencies = [array("d") for _ in range(clients)]
    counts = [[0, 0] for _ in range(clients)]
    threads = [
        threading.Thread(
            target=step_client,
            args=(port, i, seed, stop, measure_from, latencies[i], errors, counts[i]),
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = sorted(x for series in latencies for x in series)
    results.put(
        {
            "steps": sum(c[0] for c in counts),
            "episodes": sum(c[1] for c in counts),
            "measured_steps": len(merged),
            "p50_us": None if not merged else percentile(merged, 0.50) * 1e6,
            "p99_us": None if not merged else percentile(merged, 0.99) * 1e6,
            "max_us": None if not merged else merged[-1] * 1e6,
            "errors": errors.count,
            "error_messages": errors.messages,
        }
    )


# ---------------------------------------------------------------------------
# Training runs and who watches them


class Board:
    """The run slots, which watcher is on which run, and runs to delete."""

    def __init__(self, slots: int) -> None:
        self.lock = threading.Lock()
        self.current: list[str | None] = [None] * slots
        self.watching: dict[str, set[int]] = {}
        self.retired: set[str] = set()

    def take(self, slot: int, watcher: int) -> str | None:
        with self.lock:
            run = self.current[slot]
            if run is not None:
                self.watching.setdefault(run, set()).add(watcher)
            return run

    def leave(self, run: str, watcher: int) -> None:
        with self.lock:
            self.watching.get(run, set()).discard(watcher)

    def replace(self, slot: int, run: str) -> None:
        with self.lock:
            old = self.current[slot]
            if old is not None:
                self.retired.add(old)
            self.current[slot] = run

    def deletable(self) -> list[str]:
        """Retired runs no watcher is on; they leave the board."""
        with self.lock:
            done = [run for run in self.retired if not self.watching.get(run)]
            for run in done:
                self.retired.discard(run)
                self.watching.pop(run, None)
            return done


def load_spec(name: str, budget: dict, seed: int) -> dict:
    spec = json.loads((REPO / "examples" / name).read_text())
    spec["budget"] = budget
    spec["seed"] = seed
    return spec


def run_manager(port, board, stop, errors, stats, seed):
    """Keeps four runs going: slot 0 DQN, the others tabular in turn."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    rng = random.Random(seed)
    next_tabular = 0
    slots = len(board.current)

    def submit(slot: int) -> None:
        nonlocal next_tabular
        if slot == 0:
            name, budget = DQN_RUN
        else:
            name, budget = TABULAR_RUNS[next_tabular % len(TABULAR_RUNS)]
            next_tabular += 1
        run = json_call(conn, "POST", "/v1/runs", load_spec(name, budget, rng.randrange(1 << 31)))
        board.replace(slot, run["id"])
        stats["submitted"] += 1

    while not stop.is_set():
        try:
            for slot in range(slots):
                if board.current[slot] is None:
                    submit(slot)
                    continue
                run = json_call(conn, "GET", f"/v1/runs/{board.current[slot]}")
                if run["status"] in FINAL_STATUSES:
                    if run["status"] != "completed":
                        errors.add(f"run {run['id']} ended {run['status']}: {run.get('error')}")
                    stats["finished"] += 1
                    submit(slot)
            for run in board.deletable():
                json_call(conn, "DELETE", f"/v1/runs/{run}")
                stats["deleted"] += 1
        except Exception as error:
            errors.add(f"runs: {type(error).__name__}: {error}")
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
        stop.wait(0.5)
    conn.close()


class SseConnection:
    """A raw HTTP/1.1 connection to an event stream, decoding chunks and events.

    Raw sockets rather than http.client, so that a read can time out (to
    honour the reconnect deadline) without losing buffered bytes.
    """

    def __init__(self, port: int, path: str, last_event_id: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=30)
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept: text/event-stream"]
        if last_event_id:
            lines.append(f"Last-Event-ID: {last_event_id}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        self.body = b""
        head = self._until(b"\r\n\r\n")
        status_line, _, header_text = head.partition(b"\r\n")
        self.status = int(status_line.split()[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(b":") for line in header_text.split(b"\r\n"))
        }
        self.chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
        if self.status != 200:
            self.sock.settimeout(2)
            try:
                self.raw += self.sock.recv(4096)
            except OSError:
                pass

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.raw:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the stream")
            self.raw += data
        head, _, self.raw = self.raw.partition(marker)
        return head

    def _dechunk(self) -> None:
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return
        while True:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if size == 0:
                raise ConnectionError("the server ended the stream")
            if len(self.raw) < line_end + 2 + size + 2:
                return
            start = line_end + 2
            self.body += self.raw[start : start + size]
            self.raw = self.raw[start + size + 2 :]

    def events(self, timeout: float):
        """Complete events received within `timeout` s: (id, kind, data bytes)."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(262144)
        except TimeoutError:
            return []
        if not data:
            raise ConnectionError("the server closed the stream")
        self.raw += data
        self._dechunk()
        out = []
        while True:
            end = self.body.find(b"\n\n")
            if end < 0:
                return out
            block, self.body = self.body[:end], self.body[end + 2 :]
            event_id, kind, data_lines = None, b"message", []
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    continue
                field, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if field == b"id":
                    event_id = int(value)
                elif field == b"event":
                    kind = value
                elif field == b"data":
                    data_lines.append(value)
            if event_id is not None:
                out.append((event_id, kind, b"\n".join(data_lines)))

    def close(self) -> None:
        self.sock.close()


def fingerprint(kind: bytes, data: bytes) -> int:
    return zlib.crc32(kind + b"\n" + data)


class Ledger:
    """SSE figures of all watchers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_runs = 0
        self.complete_runs = 0
        self.events_received = 0
        self.lost = 0
        self.duplicates = 0
        self.unknown = 0
        self.altered = 0
        self.connections = 0
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        if len(self.problems) < KEPT_ERRORS:
            self.problems.append(message)


def check_against_store(db_path, run, ids, prints, duplicates, complete, ledger):
    """Compares what one watcher received of `run` with the store."""
    if not ids:
        return
    last = ids[-1]
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        stored = db.execute(
            "SELECT id, kind, data FROM events WHERE run_id = ? AND id <= ? ORDER BY id",
            (run, last),
        ).fetchall()
    finally:
        db.close()
    received = dict(zip(ids, prints))
    lost = unknown = altered = 0
    for event_id, kind, data in stored:
        expected = fingerprint(kind.encode(), data.encode())
        got = received.pop(event_id, None)
        if got is None:
            lost += 1
        elif got != expected:
            altered += 1
    unknown = len(received)
    with ledger.lock:
        ledger.checked_runs += 1
        ledger.complete_runs += complete
        ledger.events_received += len(ids) + duplicates
        ledger.lost += lost
        ledger.duplicates += duplicates
        ledger.unknown += unknown
        ledger.altered += altered
        if lost or duplicates or unknown or altered:
            ledger.problem(
                f"{run} up to id {last}: {lost} lost, {duplicates} duplicated, "
                f"{unknown} unknown, {altered} altered"
            )


def watcher(port, index, slot, board, stop, errors, ledger, db_path, seed, reconnect):
    """Follows the slot's runs, reconnecting at random with Last-Event-ID."""
    rng = random.Random(seed * 7_919 + index)
    while not stop.is_set():
        run = board.take(slot, index)
        if run is None:
            stop.wait(0.2)
            continue
        ids, prints, duplicates, complete = array("q"), array("L"), 0, False
        try:
            while not stop.is_set() and not complete:
                last = ids[-1] if ids else 0
                deadline = time.monotonic() + rng.uniform(*reconnect)
                try:
                    stream = SseConnection(port, f"/v1/runs/{run}/events", last)
                except Exception as error:
                    errors.add(f"watcher {index} connecting to {run}: {type(error).__name__}: {error}")
                    stop.wait(0.2)
                    continue
                with ledger.lock:
                    ledger.connections += 1
                try:
                    if stream.status != 200:
                        errors.add(f"watcher {index}: /v1/runs/{run}/events answered {stream.status}")
                        stop.wait(0.2)
                        continue
                    while not stop.is_set() and not complete:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        for event_id, kind, data in stream.events(min(left, 0.5)):
                            if ids and event_id <= ids[-1]:
                                duplicates += 1
                                continue
                            ids.append(event_id)
                            prints.append(fingerprint(kind, data))
                            if kind == b"status" and json.loads(data)["status"] in FINAL_STATUSES:
                                complete = True
                except Exception as error:
                    errors.add(f"watcher {index} on {run}: {type(error).__name__}: {error}")
                finally:
                    stream.close()
        finally:
            check_against_store(db_path, run, ids, prints, duplicates, complete, ledger)
            board.leave(run, index)


# ---------------------------------------------------------------------------
# The server


def own_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def children(pid: int) -> list[int]:
    """The processes `pid`'s threads started: the server's local workers."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended since the listing
            continue
    return found


def rss_bytes(pid: int) -> int:
    """The server's resident memory and its local workers' (where runs train)."""
    total = own_rss_bytes(pid)
    for child in children(pid):
        try:
            total += own_rss_bytes(child)
        except OSError:  # it ended since the listing
            continue
    return total


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int) -> Counter:
    """What the open fds point at: `socket`, `pipe`, `anon_inode:…` or a path."""
    kinds: Counter = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        kinds[target.split(":[")[0]] += 1
    return kinds


def outside_store(kinds: Counter, db_path: Path) -> int:
    """Open fds other than the database's (its file, WAL and shared memory)."""
    store = {str(db_path), f"{db_path}-wal", f"{db_path}-shm"}
    return sum(count for kind, count in kinds.items() if kind not in store)


def settled_fds(pid: int, seconds: float) -> Counter:
    """The open fds once their count has held for 3 s (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    count = open_fds(pid)
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = open_fds(pid)
        if now != count:
            count, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= 3:
            break
    return fd_kinds(pid)


def start_server(binary: Path, data: Path, runs: int, log) -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen(
        [str(binary), "serve", "--addr", f"{HOST}:0", "--data", str(data),
         "--max-concurrent-runs", str(runs)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line = server.stdout.readline()
    if not line.startswith("listening on http://"):
        server.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    port = int(line.rsplit(":", 1)[1])
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=server.stdout.read, daemon=True).start()
    return server, port


def end_runs(port: int, runs: list[str], errors: Errors) -> int:
    """Cancels `runs`, waits for each to end, deletes them; how many were deleted.

    A run not ended 30 s after its cancel is an error (the server promises
    2 s); the wait goes on for a few minutes more, so that the next phase
    starts with free workers.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    deleted = 0
    try:
        for run in runs:
            json_call(conn, "POST", f"/v1/runs/{run}/cancel")
        cancelled = time.monotonic()
        pending = list(runs)
        late = False
        while pending and time.monotonic() - cancelled < 300:
            pending = [
                run for run in pending
                if json_call(conn, "GET", f"/v1/runs/{run}")["status"] not in FINAL_STATUSES
            ]
            if pending and not late and time.monotonic() - cancelled > 30:
                late = True
                errors.add(f"{', '.join(pending)} not ended 30 s after cancel")
            time.sleep(0.2)
        for run in runs:
            if run not in pending:
                json_call(conn, "DELETE", f"/v1/runs/{run}")
                deleted += 1
    except Exception as error:
        errors.add(f"ending runs: {type(error).__name__}: {error}")
    finally:
        conn.close()
    return deleted


def load_phase(args, port: int, db_path: Path, seconds: float, seed: int, on_tick) -> dict:
    """Runs the whole load for `seconds`, then stops it and ends its runs.

    `on_tick(elapsed)` is called every second of the load. Step latencies
    are measured after the first `args.warmup_seconds`.
    """
    errors = Errors()
    # The clients' process is forked before this phase starts any thread.
    context = multiprocessing.get_context("fork")
    stop_clients = context.Event()
    client_results = context.Queue()
    started = time.monotonic()
    clients = context.Process(
        target=step_clients_process,
        args=(port, args.clients, seed, stop_clients, started + args.warmup_seconds, client_results),
    )
    clients.start()
    stop = threading.Event()
    board = Board(args.runs)
    ledger = Ledger()
    run_stats = {"submitted": 0, "finished": 0, "deleted": 0}
    threads = [threading.Thread(target=run_manager, args=(port, board, stop, errors, run_stats, seed))]
    threads += [
        threading.Thread(
            target=watcher,
            args=(port, i, i % args.runs, board, stop, errors, ledger, db_path, seed,
                  (args.reconnect_min, args.reconnect_max)),
        )
        for i in range(args.watchers)
    ]
    for thread in threads:
        thread.start()
    ends = started + seconds
    while time.monotonic() < ends:
        time.sleep(min(1.0, max(0.0, ends - time.monotonic())))
        on_tick(time.monotonic() - started)
    stop_clients.set()
    stop.set()
    for thread in threads:
        thread.join()
    try:
        steppers = client_results.get(timeout=120)
    except queue.Empty:
        steppers = {"errors": 1, "error_messages": ["the clients' process gave no result"]}
    clients.join(timeout=30)
    remaining = [run for run in board.current if run is not None]
    remaining += sorted(board.retired)
    deleted_at_end = end_runs(port, remaining, errors)
    lost = ledger.lost + ledger.duplicates + ledger.unknown + ledger.altered
    return {
        "errors": errors.count + steppers["errors"],
        "error_messages": (steppers["error_messages"] + errors.messages)[:KEPT_ERRORS],
        "steps": steppers.get("steps"),
        "episodes": steppers.get("episodes"),
        "measured_steps": steppers.get("measured_steps"),
        "step_p50_us": steppers.get("p50_us"),
        "step_p99_us": steppers.get("p99_us"),
        "step_max_us": steppers.get("max_us"),
        "runs_submitted": run_stats["submitted"],
        "runs_completed": run_stats["finished"],
        "runs_deleted": run_stats["deleted"] + deleted_at_end,
        "sse": {
            "connections": ledger.connections,
            "events_received": ledger.events_received,
            "watched_runs_checked": ledger.checked_runs,
            "watched_to_final_status": ledger.complete_runs,
            "lost": ledger.lost,
            "duplicates": ledger.duplicates,
            "unknown": ledger.unknown,
            "altered": ledger.altered,
            "problems": ledger.problems,
        },
        "sse_events_lost": lost,
    }


def rss_window_means(samples: list[tuple[float, int, int]]) -> tuple[float, float]:
    """Mean RSS over the first and over the last window of the samples.

    A window is a minute, or a third of the sampled span when that is shorter,
    so the two never overlap.
    """
    first_at, last_at = samples[0][0], samples[-1][0]
    window = min(60.0, (last_at - first_at) / 3)
    first = [rss for at, rss, _ in samples if at <= first_at + window]
    last = [rss for at, rss, _ in samples if at >= last_at - window]
    return sum(first) / len(first), sum(last) / len(last)


def soak(args) -> dict:
    """Warm-up load, idle fd count, the soak itself, idle fd count, SIGTERM."""
    binary = Path(args.binary)
    if not binary.is_file():
        raise SystemExit(f"no binary at {binary}: build it with `cargo build --release --bin rl-lab`")
    workdir = Path(tempfile.mkdtemp(prefix="rl-lab-soak-"))
    data = workdir / "data"
    log = open(workdir / "server.log", "w")
    server, port = start_server(binary, data, args.runs, log)
    db_path = data / "rl-lab.db"
    say = (lambda text: None) if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    try:
        say(f"warm-up: {args.warmup_seconds:.0f} s of the full load")
        warmup = load_phase(args, port, db_path, args.warmup_seconds, args.seed + 1, lambda _: None)
        fds_idle_start = settled_fds(server.pid, args.fd_settle_seconds)
        say(f"idle after warm-up: {sum(fds_idle_start.values())} open fds; soak: {args.minutes} min")

        samples: list[tuple[float, int, int]] = []

        def sample(elapsed: float) -> None:
            # One sample at the end of the warm-up, then every 10 s and at the end.
            due = not samples and elapsed >= args.warmup_seconds
            due = due or (samples and elapsed - samples[-1][0] >= 10)
            due = due or elapsed >= args.minutes * 60 - 0.5
            if due:
                samples.append((round(elapsed, 1), rss_bytes(server.pid), open_fds(server.pid)))
                say(f"  {elapsed:7.1f} s  RSS {samples[-1][1] / 2**20:7.1f} MiB  fds {samples[-1][2]}")

        main = load_phase(args, port, db_path, args.minutes * 60, args.seed, sample)
        fds_idle_end = settled_fds(server.pid, args.fd_settle_seconds)
        say(f"idle after the soak: {sum(fds_idle_end.values())} open fds")

        shutdown_errors = []
        server.send_signal(signal.SIGTERM)
        shutdown_started = time.monotonic()
        try:
            code = server.wait(timeout=15)
            if code != 0:
                shutdown_errors.append(f"the server exited with {code} on SIGTERM")
        except subprocess.TimeoutExpired:
            shutdown_errors.append("the server did not exit within 15 s of SIGTERM")
        shutdown_seconds = time.monotonic() - shutdown_started

        rss_start, rss_end = rss_window_means(samples)
        errors = warmup["errors"] + main["errors"] + len(shutdown_errors)
        lost = warmup["sse_events_lost"] + main["sse_events_lost"]
        report = {
            "minutes": args.minutes,
            "seed": args.seed,
            "binary": str(binary),
            "clients": args.clients,
            "runs": args.runs,
            "watchers": args.watchers,
            "warmup_seconds": args.warmup_seconds,
            "errors": errors,
            "error_messages": (warmup["error_messages"] + main["error_messages"] + shutdown_errors)[:KEPT_ERRORS],
            "step_p50_us": main["step_p50_us"],
            "step_p99_us": main["step_p99_us"],
            "sse_events_lost": lost,
            "rss_first_window_bytes": rss_start,
            "rss_last_window_bytes": rss_end,
            "rss_growth": rss_end / rss_start - 1,
            "fds_idle_start": sum(fds_idle_start.values()),
            "fds_idle_end": sum(fds_idle_end.values()),
            "fds_idle_outside_store_start": outside_store(fds_idle_start, db_path),
            "fds_idle_outside_store_end": outside_store(fds_idle_end, db_path),
            "store_connections_idle_start": fds_idle_start[str(db_path)],
            "store_connections_idle_end": fds_idle_end[str(db_path)],
            # What the idle fds that appeared or went point at (+n / -n).
            "fds_idle_change": {
                kind: fds_idle_end[kind] - fds_idle_start[kind]
                for kind in sorted(set(fds_idle_start) | set(fds_idle_end))
                if fds_idle_end[kind] != fds_idle_start[kind]
            },
            "fds_under_load_start": samples[0][2],
            "fds_under_load_end": samples[-1][2],
            "shutdown_seconds": shutdown_seconds,
            "samples": samples,
            "warmup": warmup,
            "soak": main,
        }
        report["checks"] = {
            "errors": errors == 0,
            "sse_events_lost": lost == 0 and main["sse"]["watched_runs_checked"] > 0,
            "rss_flat": rss_end <= rss_start * 1.10,
            "fds_flat": outside_store(fds_idle_end, db_path) == outside_store(fds_idle_start, db_path)
            and fds_idle_end[str(db_path)] <= STORE_CONNECTIONS_CAP,
        }
        return report
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
        if args.keep_data:
            print(f"data and server log kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def print_report(report: dict) -> None:
    mib = 2**20
    checks = report["checks"]
    mark = {True: "ok", False: "FAILED"}
    soak_phase = report["soak"]
    sse = soak_phase["sse"]
    print(f"soak: {report['minutes']} min, {report['clients']} CartPole clients, "
          f"{report['runs']} runs at once, {report['watchers']} SSE watchers, seed {report['seed']}")
    print(f"errors                {report['errors']:>12}   {mark[checks['errors']]}")
    for message in report["error_messages"]:
        print(f"    {message}")
    p50, p99 = report["step_p50_us"], report["step_p99_us"]
    print(f"step latency p50/p99  {'-' if p50 is None else f'{p50:.0f}':>5} / "
          f"{'-' if p99 is None else f'{p99:.0f}'} µs over {soak_phase['measured_steps']} steps "
          f"({soak_phase['steps']} steps, {soak_phase['episodes']} episodes in all)")
    print(f"runs                  {soak_phase['runs_submitted']} submitted, "
          f"{soak_phase['runs_completed']} completed, {soak_phase['runs_deleted']} deleted")
    print(f"SSE events lost       {report['sse_events_lost']:>12}   {mark[checks['sse_events_lost']]}"
          f"   ({sse['events_received']} received over {sse['connections']} connections; "
          f"{sse['watched_runs_checked']} watched runs checked, {sse['watched_to_final_status']} to their end; "
          f"{sse['lost']} lost, {sse['duplicates']} duplicated, {sse['unknown']} unknown, {sse['altered']} altered)")
    for problem in sse["problems"]:
        print(f"    {problem}")
    print(f"RSS first/last window {report['rss_first_window_bytes'] / mib:.1f} / {report['rss_last_window_bytes'] / mib:.1f} MiB "
          f"({report['rss_growth'] * 100:+.1f}%)   {mark[checks['rss_flat']]}")
    print(f"open fds idle         {report['fds_idle_start']} / {report['fds_idle_end']}   "
          f"{mark[checks['fds_flat']]}   ({report['fds_idle_outside_store_start']} / "
          f"{report['fds_idle_outside_store_end']} outside the store, whose connections were "
          f"{report['store_connections_idle_start']} / {report['store_connections_idle_end']} "
          f"(at most {STORE_CONNECTIONS_CAP}); under load {report['fds_under_load_start']} / "
          f"{report['fds_under_load_end']})")
    for kind, change in report["fds_idle_change"].items():
        print(f"    {change:+d} {kind}")
    print(f"SIGTERM to exit       {report['shutdown_seconds']:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "rl-lab"),
                        help="the rl-lab binary (default: target/release/rl-lab)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--runs", type=int, default=4, help="training runs at once, one of them DQN")
    parser.add_argument("--watchers", type=int, default=8)
    parser.add_argument("--warmup-seconds", type=float, default=30.0,
                        help="warm-up load before the idle fd count, and again into the soak before RSS "
                             "and latency start counting (default 30)")
    parser.add_argument("--reconnect-min", type=float, default=0.2,
                        help="shortest SSE connection before a reconnect, s")
    parser.add_argument("--reconnect-max", type=float, default=3.0,
                        help="longest SSE connection before a reconnect, s")
    parser.add_argument("--fd-settle-seconds", type=float, default=30.0,
                        help="how long to wait for the idle fd count to settle")
    parser.add_argument("--keep-data", action="store_true", help="keep the data folder and server log")
    args = parser.parse_args()
    if args.minutes * 60 <= args.warmup_seconds or args.runs < 1 or args.clients < 0 or args.watchers < 0:
        parser.error("--minutes must last longer than the warm-up; --runs at least 1")
    if not 0 < args.reconnect_min <= args.reconnect_max:
        parser.error("need 0 < --reconnect-min <= --reconnect-max")
    report = soak(args)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
