"""``python -m rl_lab_env.ray_workers``: run ``rl-lab worker`` processes on a
Ray cluster, one per Ray actor.

Why actors around a subprocess: the worker is the Rust binary and does the
work; the actor declares its resources to Ray, so that Ray places workers
on nodes like any other job, and supervises the one worker it started. When
that worker exits without being asked to, the actor's process exits hard,
Ray restarts the actor (``max_restarts=-1``), and the new actor starts a
fresh worker under the same name (``ray-<i>``). The runs the dead worker
held are the store's business, not the actor's: their leases lapse and the
next worker to claim them resumes them from their checkpoints.

The launcher stays in the foreground, prints ``ray-<i> ready (pid P)`` each
time an actor's worker is ready (again after a restart), and on SIGINT or
SIGTERM stops every worker gracefully (it hands its runs back) and exits.
Ray is an optional dependency: ``pip install 'rl-lab-env[ray]'``.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Sequence
from urllib.parse import urlsplit

#: The Ray namespace the actors are named in: `ray-0` of the lab clashes
#: with no other application's actors, and a second launcher on the same
#: cluster is refused instead of starting workers under taken names.
NAMESPACE = "rl-lab"

#: Where the worker finds the database password; forwarded from the
#: launcher's environment to each actor's, never put on a command line.
PASSWORD_VARIABLES = ("PGPASSWORD", "RL_LAB_STORE_PASSWORD_FILE")

#: Seconds a stopping worker is given to checkpoint and hand its runs back
#: (it needs under 10) before it is killed.
STOP_SECONDS = 15.0

#: Seconds between the launcher's looks at each actor's worker.
POLL_SECONDS = 1.0

_PR_SET_PDEATHSIG = 1


def _import_ray() -> Any:
    """Ray, imported only when the launcher runs: the adapter itself must
    not need it."""
    try:
        import ray
    except ImportError:
        sys.exit("rl_lab_env.ray_workers needs Ray: pip install 'rl-lab-env[ray]'")
    return ray


def _kill_with_parent() -> Any:
    """A pre-exec hook that makes the kernel send the worker SIGTERM when
    the actor's process dies. Ray kills an actor's children itself when it
    kills the actor; this covers the deaths it does not see coming (``ray
    stop --force``, the OOM killer, a SIGKILL): a worker never outlives its
    actor, which Ray may already have restarted elsewhere, and SIGTERM
    makes it hand its runs back. Linux only (prctl); elsewhere, no hook.

    The hook runs in the forked child before exec, so it does as little as
    possible: prctl is looked up here, beforehand."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the actor died before prctl took effect
            os._exit(1)

    return hook


class WorkerActor:
    """One ``rl-lab worker`` process, started when the actor starts and
    watched while it runs.

    The constructor returns only once the worker printed ``worker NAME
    ready``, so that any call on the actor answers about a ready worker. A
    worker that cannot start (a wrong URL or password, the database down)
    fails the constructor: Ray then marks the actor dead instead of
    restarting it for ever, and the launcher reports why and exits.
    """

    def __init__(self, name: str, command: Sequence[str]):
        self._name = name
        self._stopping = False
        # The worker's last lines, for the error of a worker that did not start.
        self._recent: collections.deque[str] = collections.deque(maxlen=20)
        try:
            # The environment is the actor's own: Ray's, plus the password
            # variables the launcher forwarded (runtime_env).
            self._process = subprocess.Popen(
                list(command),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=_kill_with_parent(),
            )
        except OSError as error:
            raise RuntimeError(f"{name}: cannot start {command[0]}: {error}") from None
        stderr = self._forward(self._process.stderr)
        first = self._process.stdout.readline().strip()
        if first != f"worker {name} ready":
            try:
                code = self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                code = self._process.wait()
            stderr.join(timeout=2)
            said = " | ".join([first, *self._recent] if first else self._recent)
            raise RuntimeError(f"{name}: the worker exited with status {code} before it was ready: {said}")
        self._forward(self._process.stdout)
        threading.Thread(target=self._watch, name="watch", daemon=True).start()

    def __repr__(self) -> str:
        # Ray prefixes the actor's log lines (the worker's, forwarded) with this.
        return self._name

    def _forward(self, stream: Any) -> threading.Thread:
        """Copies the worker's `stream` to the actor's stderr, which Ray
        shows in the launcher's; a pipe nobody read would stall the worker."""

        def copy() -> None:
            for line in stream:
                self._recent.append(line.rstrip("\n"))
                sys.stderr.write(line)
                sys.stderr.flush()

        thread = threading.Thread(target=copy, daemon=True)
        thread.start()
        return thread

    def _watch(self) -> None:
        """Exits the actor's process when the worker exits unasked.

        ``os._exit`` on purpose: Ray restarts an actor whose process died,
        whereas an exception raised in a method leaves the actor alive, and
        ``ray.actor.exit_actor()`` is an intended exit that is never
        restarted."""
        code = self._process.wait()
        if self._stopping:
            return
        print(
            f"{self._name}: the worker (pid {self._process.pid}) exited with status {code}; "
            "exiting so that Ray restarts this actor and with it the worker",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)

    def pid(self) -> int:
        """The worker's process id (a new one after a restart)."""
        return self._process.pid

    def stop(self) -> int:
        """SIGTERM to the worker, which checkpoints its runs and hands them
        back to the queue; killed if it takes over STOP_SECONDS. Its exit
        status."""
        self._stopping = True
        if self._process.poll() is None:
            self._process.terminate()
            try:
                return self._process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
        return self._process.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rl_lab_env.ray_workers",
        description="Run N `rl-lab worker` processes as Ray actors, each restarted by Ray when its worker dies. "
        "The database password comes from PGPASSWORD or RL_LAB_STORE_PASSWORD_FILE, forwarded to the actors.",
    )
    parser.add_argument("--workers", type=int, required=True, help="how many workers (Ray actors) to run")
    parser.add_argument("--store", required=True, metavar="URL", help="postgres://USER@HOST[:PORT]/DB, no password")
    parser.add_argument(
        "--data",
        default="rl-lab-data",
        help="the run folders, shared by every node (default ./rl-lab-data, made absolute)",
    )
    parser.add_argument("--slots", type=int, default=1, help="runs each worker executes at once (default 1)")
    parser.add_argument("--num-cpus", type=float, help="CPUs each actor declares to Ray (default: --slots)")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs each actor declares to Ray (default 0)")
    parser.add_argument(
        "--rl-lab",
        default="rl-lab",
        metavar="PATH",
        help="the rl-lab binary on every node (default: rl-lab on the PATH)",
    )
    parser.add_argument("--address", default="auto", help="the Ray cluster to join (default auto)")
    parser.add_argument("--lease", type=float, metavar="SECONDS", help="the workers' --lease")
    parser.add_argument("--heartbeat", type=float, metavar="SECONDS", help="the workers' --heartbeat")
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers: must be at least 1")
    if args.slots < 1:
        parser.error("--slots: must be at least 1")
    try:
        has_password = urlsplit(args.store).password is not None
    except ValueError:
        has_password = False  # the worker refuses a malformed URL itself
    if has_password:
        # Not repeated: it would put the password in a log. Refused here,
        # before it reaches the actors' arguments in Ray's records.
        parser.error("--store: the URL holds a password; set PGPASSWORD or RL_LAB_STORE_PASSWORD_FILE instead")
    return args


def worker_command(args: argparse.Namespace, name: str) -> list[str]:
    """The worker's command line: paths made absolute here, since actors run
    in folders of Ray's."""
    binary = args.rl_lab if os.sep not in args.rl_lab else os.path.abspath(args.rl_lab)
    command = [binary, "worker", "--store", args.store, "--data", os.path.abspath(args.data)]
    command += ["--slots", str(args.slots), "--name", name]
    for flag, value in (("--lease", args.lease), ("--heartbeat", args.heartbeat)):
        if value is not None:
            command += [flag, f"{value:g}"]
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Starts the actors, reports each worker as it comes up, and stops
    them all on SIGINT or SIGTERM. 0 after a requested stop; 1 when a
    worker could not start."""
    args = _parse(argv)
    ray = _import_ray()
    ray.init(address=args.address, namespace=NAMESPACE)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # After ray.init, which installs handlers of its own.
        signal.signal(signum, lambda *_: stop.set())
    forwarded = {key: os.environ[key] for key in PASSWORD_VARIABLES if key in os.environ}
    actor_class = ray.remote(WorkerActor)
    names = [f"ray-{i}" for i in range(args.workers)]
    actors = [
        actor_class.options(
            name=name,
            num_cpus=args.slots if args.num_cpus is None else args.num_cpus,
            num_gpus=args.num_gpus,
            max_restarts=-1,
            runtime_env={"env_vars": forwarded} if forwarded else None,
        ).remote(name, worker_command(args, name))
        for name in names
    ]
    code = _supervise(ray, names, actors, stop)
    _stop_all(ray, actors)
    return code


def _supervise(ray: Any, names: list[str], actors: list[Any], stop: threading.Event) -> int:
    """Asks each actor for its worker's pid, one call at a time, until
    `stop` is set: a new pid is a worker that (re)started. A call made while
    Ray restarts an actor waits for the restarted one."""
    pids: list[int | None] = [None] * len(actors)
    lost = [False] * len(actors)
    due: list[float | None] = [0.0] * len(actors)
    pending: dict[Any, int] = {}
    while not stop.is_set():
        now = time.monotonic()
        for i, actor in enumerate(actors):
            if due[i] is not None and due[i] <= now:
                pending[actor.pid.remote()] = i
                due[i] = None
        if not pending:
            time.sleep(0.2)
            continue
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.2)
        for ref in done:
            i = pending.pop(ref)
            due[i] = time.monotonic() + POLL_SECONDS
            try:
                pid = ray.get(ref)
            except ray.exceptions.RayActorError as error:
                if error.actor_init_failed:
                    print(f"{names[i]} failed: {error}", file=sys.stderr, flush=True)
                    return 1
                if not lost[i]:
                    print(f"{names[i]} lost its worker; Ray restarts it", file=sys.stderr, flush=True)
                lost[i] = True
                continue
            lost[i] = False
            if pid != pids[i]:
                pids[i] = pid
                print(f"{names[i]} ready (pid {pid})", flush=True)
    return 0


def _stop_all(ray: Any, actors: list[Any]) -> None:
    """Stops every worker gracefully, then the actors, for good."""
    stopping = [actor.stop.remote() for actor in actors]
    ray.wait(stopping, num_returns=len(stopping), timeout=STOP_SECONDS + 5)
    for actor in actors:
        ray.kill(actor, no_restart=True)


if __name__ == "__main__":
    # Runs the importable module's main, not this __main__ copy's: Ray
    # pickles the actor class by reference to rl_lab_env.ray_workers, which
    # every node imports.
    from rl_lab_env import ray_workers

    sys.exit(ray_workers.main())
