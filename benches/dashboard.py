"""The dashboard's speed in a real browser (issue 18, "Speed"), measured:

    cargo build --release --bin rl-lab
    target/test-venv/bin/python benches/dashboard.py [--binary PATH] [--json]

(`./scripts/test` makes `target/test-venv` with Playwright, and installs
Debian's Chromium, which this drives; no browser is downloaded.)

1. **The runs table with 200 runs.** Submits 200 short Q-learning runs,
   waits for them to finish, then opens `/#/runs` `--loads` times and reads
   the page's own mark of when the table's rows were first drawn
   (`performance.now()`, from navigation start: page, scripts, the list
   request with its sparklines, and the rows). The goal is under 1 s.
2. **Five live runs.** Starts five Q-learning runs at full speed, opens
   the runs table and a Compare page of the five (which follows their
   metric events), and for `--seconds` samples how far the page's drawn
   events are behind the store's newest (`last_event_id` of `GET
   /v1/runs`), the frames the page draws per second, and the time the
   main thread spends in long tasks (over 50 ms). A page that keeps up
   stays within a second of the store and near 60 frames a second.
3. **A live run's page**, opened `--loads` times while the five train:
   the page's own mark of when every series' chart is first drawn, from
   navigation start. The runs have millions of episodes by then, stored
   as the recording policy's windows.
4. **Downsampled metric reads** of 1M stored points are measured by
   `cargo bench --bench server -- metrics` (within 50 ms); not repeated
   here.

Prints the figures, and with `--json` one JSON object.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def spec(seed, budget):
    return {"env": {"id": "gridworld/cliff-walking"},
            "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
            "budget": budget, "seed": seed, "eval": {"episodes": 0}}


def call(base, path, body=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method or ("POST" if body is not None else "GET"),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


def wait_all(base, ids, statuses, seconds=300):
    deadline = time.monotonic() + seconds
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            if call(base, f"/v1/runs/{run_id}")["status"] in statuses:
                pending.discard(run_id)
        time.sleep(0.2)
    if pending:
        raise SystemExit(f"{len(pending)} runs did not finish")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "rl-lab"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="rl-lab-dashboard-bench-")
    # Five runs train at once, whatever the core count.
    server = subprocess.Popen([args.binary, "serve", "--addr", "127.0.0.1:0", "--data", data,
                               "--max-concurrent-runs", "5"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = server.stdout.readline().split("listening on ", 1)[1].strip()
    report = {"runs": args.runs}
    try:
        ids = [call(base, "/v1/runs", spec(seed, {"episodes": 200}))["id"] for seed in range(args.runs)]
        wait_all(base, ids, {"completed"})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            times = []
            for _ in range(args.loads):
                page.goto(base + "/#/runs")
                page.wait_for_function("() => window.__rlLab && window.__rlLab.runsTableRendered")
                rows = page.evaluate("() => window.__rlLab.runsTableRows")
                assert rows == args.runs, rows
                times.append(page.evaluate("() => window.__rlLab.runsTableRendered"))
                page.goto("about:blank")
            report["runs_table_first_render_ms"] = {"median": statistics.median(times), "max": max(times),
                                                    "all": [round(t, 1) for t in times]}

            live = [call(base, "/v1/runs", spec(1000 + i, {"steps": 10**11}))["id"] for i in range(5)]
            wait_all(base, live, {"running"}, 30)
            runs_page = browser.new_page(viewport={"width": 1400, "height": 900})
            runs_page.goto(base + "/#/runs")
            page.goto(base + f"/#/compare?ids={','.join(live)}")
            page.wait_for_function("() => window.__rlLab.charts.compare && window.__rlLab.charts.compare.points() > 0")
            watch = """() => {
                const s = window.__rlLab;
                s.frames = 0; s.longTaskMs = 0;
                const tick = () => { s.frames += 1; requestAnimationFrame(tick); };
                requestAnimationFrame(tick);
                new PerformanceObserver((list) => { for (const e of list.getEntries()) s.longTaskMs += e.duration; })
                    .observe({ type: 'longtask', buffered: false });
            }"""
            page.evaluate(watch)
            runs_page.evaluate(watch)
            lags = []
            started = time.monotonic()
            first_newest = call(base, "/v1/runs?limit=1")["last_event_id"]
            while time.monotonic() - started < args.seconds:
                newest = call(base, "/v1/runs?limit=1")["last_event_id"]
                drawn = page.evaluate("() => window.__rlLab.appliedEventId || 0")
                lags.append(newest - drawn)
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            # Events the store took per second, to read the lag as time.
            rate = (call(base, "/v1/runs?limit=1")["last_event_id"] - first_newest) / elapsed
            compare = page.evaluate("() => ({frames: window.__rlLab.frames, longTaskMs: window.__rlLab.longTaskMs, batches: window.__rlLab.batches})")
            table = runs_page.evaluate("() => ({frames: window.__rlLab.frames, longTaskMs: window.__rlLab.longTaskMs})")
            report["five_live_runs"] = {
                "seconds": round(elapsed, 1),
                "compare_frames_per_second": round(compare["frames"] / elapsed, 1),
                "compare_long_task_ms_per_second": round(compare["longTaskMs"] / elapsed, 1),
                "compare_event_lag": {"median": statistics.median(lags), "max": max(lags)},
                "store_events_per_second": round(rate, 1),
                "compare_event_lag_seconds": {"median": round(statistics.median(lags) / rate, 3) if rate else None,
                                              "max": round(max(lags) / rate, 3) if rate else None},
                "runs_table_frames_per_second": round(table["frames"] / elapsed, 1),
                "runs_table_long_task_ms_per_second": round(table["longTaskMs"] / elapsed, 1),
            }
            # A live run's page: every series read downsampled and drawn.
            loads = []
            for _ in range(args.loads):
                page.goto("about:blank")
                page.goto(base + f"/#/runs/{live[0]}")
                page.wait_for_function("() => window.__rlLab && window.__rlLab.runChartsRendered")
                loads.append(page.evaluate("() => window.__rlLab.runChartsRendered"))
            episodes = call(base, f"/v1/runs/{live[0]}")["progress"]["episodes"]
            stored = call(base, f"/v1/runs/{live[0]}/metrics?name=rollout/episode_return&limit=100000")
            report["live_run_page_first_render_ms"] = {
                "median": statistics.median(loads), "max": max(loads),
                "episodes": episodes, "stored_return_rows": len(stored["metrics"]["rollout/episode_return"]["step"]),
            }
            for run_id in live:
                call(base, f"/v1/runs/{run_id}/cancel", {})
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        t = report["runs_table_first_render_ms"]
        print(f"runs table, {args.runs} runs: first render {t['median']:.0f} ms median, {t['max']:.0f} ms max over {args.loads} loads")
        f = report["five_live_runs"]
        print(f"five live runs, {f['seconds']} s: Compare draws {f['compare_frames_per_second']} frames/s "
              f"with {f['compare_long_task_ms_per_second']} ms/s of long tasks; its drawn events trail the store by "
              f"{f['compare_event_lag']['median']} (median) and {f['compare_event_lag']['max']} (max) events, "
              f"of {f['store_events_per_second']} a second ({f['compare_event_lag_seconds']['median']} s and "
              f"{f['compare_event_lag_seconds']['max']} s); the runs table draws {f['runs_table_frames_per_second']} frames/s "
              f"with {f['runs_table_long_task_ms_per_second']} ms/s of long tasks")
        r = report["live_run_page_first_render_ms"]
        print(f"a live run's page ({r['episodes']} episodes, {r['stored_return_rows']} stored return rows): "
              f"charts drawn {r['median']:.0f} ms median, {r['max']:.0f} ms max")
    return 0


if __name__ == "__main__":
    sys.exit(main())
