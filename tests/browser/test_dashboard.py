"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

`tests/dashboard.rs` runs this file with the test build's `rl-lab` in
`RL_LAB_BINARY` and a folder for screenshots in `RL_LAB_SCREENSHOTS`.
Each test works through the page as a user would: real inputs, real
clicks, and the charts' own data read back from the page.
"""

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# What Chromium needs on these machines: no sandbox (root in a container),
# and no background connections, which otherwise get refused in bursts.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server():
    binary = os.environ.get("RL_LAB_BINARY")
    assert binary and Path(binary).is_file(), "RL_LAB_BINARY must name an rl-lab binary"
    data = tempfile.mkdtemp(prefix="rl-lab-dashboard-")
    process = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--data", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()
    assert line.startswith("listening on http://"), f"the server said {line!r}"
    url = line.split("listening on ", 1)[1].strip()
    yield url
    process.terminate()
    process.wait(timeout=15)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM}: ./scripts/test installs Debian's chromium"
    # Playwright gives the browser a fresh profile of its own.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh page that records every console error and uncaught exception."""
    context = browser.new_context(base_url=server, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.errors = []
    # Chromium logs every refused request as a console error; a test that
    # expects one (a 422 for a bad value) lists it here.
    page.expected_errors = []
    page.on("console", lambda m: page.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(f"exception: {e}"))
    yield page
    errors = [e for e in page.errors if e not in page.expected_errors]
    context.close()
    assert errors == [], f"the browser console recorded errors: {errors}"


def screenshot(page, name):
    folder = Path(os.environ.get("RL_LAB_SCREENSHOTS", "target/dashboard-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def post(server, path, body):
    request = urllib.request.Request(
        server + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def get(server, path):
    with urllib.request.urlopen(server + path) as response:
        return json.loads(response.read())


def wait_for_status(server, run_id, statuses, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = get(server, f"/v1/runs/{run_id}")["status"]
        if status in statuses:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{run_id} did not reach {statuses} within {seconds} s")


def choose(page, env="gridworld/cliff-walking", agent="q-learning"):
    page.goto("/#/launch")
    page.select_option("#env-id", env)
    page.select_option("#agent-id", agent)
    expect(page.locator("#field-agent-config-epsilon")).to_be_visible()


def chart_points(page, name):
    return page.evaluate(
        "(name) => { const c = window.__rlLab.charts[name]; return c ? c.points() : -1; }", name
    )


def test_launch_watch_live_and_cancel(page, server):
    """Launch from the form, see the run in the table, its curve grow, then cancel it."""
    choose(page)
    page.fill("#field-agent-config-alpha", "0.5")
    page.select_option("#budget-kind", "steps")
    # Long enough to still be running when cancelled.
    page.fill("#budget", "100000000000")
    page.fill("#seed", "7")
    page.fill("#eval-episodes", "0")
    screenshot(page, "launch")
    page.click("#launch")
    page.wait_for_url("**/#/runs/run-*")
    run_id = page.url.rsplit("/", 1)[1]
    spec = get(server, f"/v1/runs/{run_id}")["spec"]
    assert spec["agent"] == {"id": "q-learning", "config": {"alpha": 0.5}}
    assert spec["seed"] == 7 and spec["budget"] == {"steps": 100000000000}

    # The table lists it, running, with its progress.
    page.goto("/#/runs")
    row = page.locator(f'tr[data-run="{run_id}"]')
    expect(row.locator(".status")).to_have_text("running", timeout=10_000)
    expect(row).to_contain_text("q-learning")
    # Progress arrives on the live stream, about once a second.
    expect(row.locator("td").nth(5)).not_to_contain_text(" 0 steps", timeout=5_000)
    expect(row.locator("td").nth(6)).not_to_have_text("–", timeout=5_000)
    screenshot(page, "runs")

    # The curve gains points while the page watches.
    page.click(f'a[href="#/runs/{run_id}"]')
    page.wait_for_function("() => window.__rlLab && window.__rlLab.charts['rollout/episode_return'] && window.__rlLab.charts['rollout/episode_return'].points() > 0")
    first = chart_points(page, "rollout/episode_return")
    page.wait_for_function(
        "(n) => window.__rlLab.charts['rollout/episode_return'].points() > n", arg=first, timeout=10_000
    )
    assert chart_points(page, "rollout/episode_return") > first
    data = page.evaluate("() => window.__rlLab.charts['rollout/episode_return'].data()[0]")
    assert all(a < b for a, b in zip(data["x"], data["x"][1:])), "the x values increase"
    assert min(data["y"]) >= -100_000 and max(data["y"]) <= 0, "cliff returns are negative"
    screenshot(page, "run")

    # Cancel: the badge says so within 2 s.
    started = time.monotonic()
    page.click("#cancel")
    expect(page.locator("#run-header .status")).to_have_text("cancelled", timeout=2_000)
    assert time.monotonic() - started < 2.0
    assert get(server, f"/v1/runs/{run_id}")["status"] == "cancelled"


def test_a_bad_value_is_shown_on_its_field(page, server):
    choose(page)
    before = len(get(server, "/v1/runs?limit=500")["runs"])
    page.expected_errors = [
        "console: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    page.fill("#field-agent-config-epsilon", "2")
    page.click("#launch")
    # The server's message, on the field it names (agent.config.epsilon).
    error = page.locator("#field-agent-config-epsilon-error")
    expect(error).to_contain_text("2 is not a probability in [0, 1]", timeout=5_000)
    expect(page.locator("#field-agent-config-epsilon")).to_have_attribute("aria-invalid", "true")
    assert page.url.endswith("#/launch"), "a refused spec stays on the form"
    assert len(get(server, "/v1/runs?limit=500")["runs"]) == before, "nothing was stored"
    screenshot(page, "launch-error")


def test_compare_three_seeds_as_one_mean_with_a_band(page, server):
    choose(page)
    page.fill("#budget", "200")
    page.fill("#seed-count", "3")
    page.click("#launch-seeds")
    page.wait_for_url("**/#/compare?ids=*")
    ids = page.url.split("ids=", 1)[1].split(",")
    assert len(ids) == 3
    seeds = sorted(get(server, f"/v1/runs/{i}")["spec"]["seed"] for i in ids)
    assert seeds == [0, 1, 2]
    for run_id in ids:
        wait_for_status(server, run_id, {"completed"})
    # Reload so every run's full series is read.
    page.reload()
    page.wait_for_function("() => window.__rlLab.charts.compare && window.__rlLab.charts.compare.points() > 0")
    lines = page.evaluate("() => window.__rlLab.charts.compare.data()")
    assert len(lines) == 1, f"three seeds of one setting make one line, got {[l['label'] for l in lines]}"
    line = lines[0]
    assert "3 seeds" in line["label"]
    assert line["lo"] is not None and line["hi"] is not None
    assert all(lo <= y <= hi for lo, y, hi in zip(line["lo"], line["y"], line["hi"]))
    assert any(hi - lo > 0 for lo, hi in zip(line["lo"], line["hi"])), "the seeds differ somewhere"
    expect(page.locator("#compare-diff")).to_contain_text("seed")
    screenshot(page, "compare")


def test_compare_groups_a_sweep_by_its_configurations(page, server):
    base = {"env": {"id": "gridworld/cliff-walking"}, "agent": {"id": "q-learning"},
            "budget": {"episodes": 150}, "seed": 0}
    sweep = post(server, "/v1/sweeps", {"name": "browser-alpha", "base": base,
                                         "grid": {"agent.config.alpha": [0.1, 0.5]}, "seeds": [0, 1]})
    for run_id in sweep["runs"]:
        wait_for_status(server, run_id, {"completed"})
    # Picked from the list of sweeps on the bare Compare page.
    page.goto("/#/compare")
    page.click(f"#compare-sweeps a[href='#/compare?sweep={sweep['id']}']")
    page.wait_for_function("() => window.__rlLab.charts.compare && window.__rlLab.charts.compare.points() > 0")
    lines = page.evaluate("() => window.__rlLab.charts.compare.data()")
    labels = sorted(line["label"] for line in lines)
    assert labels == ["agent.config.alpha=0.1 (2 seeds)", "agent.config.alpha=0.5 (2 seeds)"], labels
    groups = page.locator("#compare-groups li")
    expect(groups).to_have_count(2)
    members = sorted(groups.nth(i).get_attribute("data-members") for i in range(2))
    by_configuration = sorted(",".join(r["id"] for r in c["runs"]) for c in get(server, f"/v1/sweeps/{sweep['id']}")["configurations"])
    assert members == by_configuration
    expect(page.locator("h1")).to_contain_text("browser-alpha")
    screenshot(page, "compare-sweep")


def test_workers_page_shows_who_runs_what_and_their_heartbeats(page, server):
    me = get(server, "/v1/workers")["server"]
    run = post(server, "/v1/runs", {"env": {"id": "CartPole-v1"}, "agent": {"id": "dqn"},
                                    "budget": {"steps": 5_000_000}, "seed": 1})
    wait_for_status(server, run["id"], {"running"})
    # One of the server's local worker processes holds it, never the
    # server itself.
    holder = get(server, f"/v1/runs/{run['id']}")["worker"]
    assert holder.startswith(f"{me}."), (holder, me)
    page.goto("/#/workers")
    expect(page.locator(f"#workers-table tr[data-worker='{me}']")).to_contain_text("(this server)")
    row = page.locator(f"#workers-table tr[data-worker='{holder}']")
    expect(row).to_contain_text("(this server's local worker)")
    expect(row.locator(f"a[href='#/runs/{run['id']}']")).to_be_visible()
    expect(row.locator("td.heartbeat")).to_contain_text("ago")
    screenshot(page, "workers")
    # The run's page names its worker.
    page.goto(f"/#/runs/{run['id']}")
    expect(page.locator("#run-worker")).to_contain_text(holder)
    post(server, f"/v1/runs/{run['id']}/cancel", {})
    wait_for_status(server, run["id"], {"cancelled"})
    # Once the run stops, the next refresh shows its worker idle.
    page.goto("/#/workers")
    expect(row).to_contain_text("idle", timeout=10_000)


def test_smoothing_and_seed_bands_compute_what_they_claim(page):
    """The chart maths, run in the browser from the served modules."""
    page.goto("/#/runs")
    result = page.evaluate(
        """async () => {
            const { smooth } = await import('/assets/js/chart.js');
            const { aggregate } = await import('/assets/js/compare.js');
            const { pointsOf, interpolate } = await import('/assets/js/metrics.js');
            const a = { x: [0, 10], y: [0, 10] };
            const b = { x: [0, 10], y: [2, 12] };
            const std = aggregate([a, b], 'std');
            const minmax = aggregate([a, b], 'minmax');
            return {
                flat: smooth([2, 2, 2], 0.6),
                step: smooth([0, 10], 0.5),
                gap: smooth([1, NaN, 3], 0.5),
                none: smooth([1, 5], 0),
                std, minmax,
                window: pointsOf({ kind: 'episodes', step: 9, wall_seconds: 1.5, count: 4,
                    return: { mean: -3, min: -9, max: -1, last: -2 }, length: { mean: 5, min: 1, max: 9, last: 4 }, epsilon: null }),
                scalar: pointsOf({ kind: 'scalar', name: 'train/loss', step: 3, value: 0.25, wall_seconds: 0.1 }),
                between: interpolate([0, 10, 20], [0, 100, 0], 15),
            };
        }"""
    )
    assert result["flat"] == [2, 2, 2]
    assert result["step"][0] == 0 and abs(result["step"][1] - 20 / 3) < 1e-12
    assert result["gap"][0] == 1 and math.isnan(result["gap"][1]) and abs(result["gap"][2] - (0.5 * 0.5 + 1.5) / 0.75) < 1e-12
    assert result["none"] == [1, 5]
    # Two seeds, y = x and y = x + 2: the mean is x + 1, one standard
    # deviation either side is x and x + 2, and so are min and max.
    std, minmax = result["std"], result["minmax"]
    assert len(std["x"]) == 300 and std["x"][0] == 0 and std["x"][-1] == 10
    for i, x in enumerate(std["x"]):
        assert abs(std["y"][i] - (x + 1)) < 1e-9
        assert abs(std["lo"][i] - x) < 1e-9 and abs(std["hi"][i] - (x + 2)) < 1e-9
        assert abs(minmax["lo"][i] - x) < 1e-9 and abs(minmax["hi"][i] - (x + 2)) < 1e-9
    ret = result["window"]["rollout/episode_return"]
    assert ret == {"step": 9, "wall_seconds": 1.5, "value": -3, "min": -9, "max": -1, "count": 4}
    assert "rollout/epsilon" not in result["window"]
    assert result["scalar"]["train/loss"]["value"] == 0.25
    assert result["between"] == 50


def test_replay_steps_a_learned_cliff_policy_to_the_goal(page, server):
    """Q-learning learns the cliff's optimal path (-13); its replay walks it."""
    run_id = post(server, "/v1/runs", {
        "env": {"id": "gridworld/cliff-walking"},
        "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
        "budget": {"episodes": 500}, "seed": 1, "eval": {"episodes": 1},
    })["id"]
    wait_for_status(server, run_id, {"completed"})
    page.goto(f"/#/runs/{run_id}")
    page.click("#replay")
    page.wait_for_url(f"**/#/runs/{run_id}/replay")
    expect(page.locator("#replay-position")).to_have_text("step 0 of 13")
    expect(page.locator("#replay-action")).to_contain_text("reset")
    # The tabular agent's values and arrows are offered over the grid.
    expect(page.locator("#replay-overlay-label")).to_be_visible()
    expect(page.locator("#replay-values")).to_contain_text("(greedy)")
    for step in range(1, 14):
        page.click("#replay-next")
        expect(page.locator("#replay-position")).to_contain_text(f"step {step} of 13")
        expect(page.locator("#replay-reward")).to_have_text("reward: -1")
    expect(page.locator("#replay-position")).to_have_text("step 13 of 13 (episode over)")
    expect(page.locator("#replay-return")).to_have_text("return so far: -13")
    expect(page.locator("#replay-values")).to_contain_text("the episode ends here")
    # The canvas holds the env's own picture, scaled: 4 x 12 cells of 24 px.
    size = page.evaluate("() => { const c = document.getElementById('replay-canvas'); return [c.width, c.height]; }")
    assert size[0] * 4 == size[1] * 12 and size[0] >= 288, size
    # The keyboard steps back.
    page.locator("#replay-scrubber").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#replay-position")).to_have_text("step 12 of 13")
    screenshot(page, "replay")


def test_envs_catalogue_renders_frames_and_plays_by_keyboard(page, server):
    page.goto("/#/envs")
    expect(page.locator("#envs-table")).to_contain_text("MinAtar/Breakout-v1")
    page.click('a[href="#/envs/gridworld%2Fcliff-walking"]')
    frame = page.locator("#env-frame")
    page.wait_for_function("() => { const i = document.getElementById('env-frame'); return i && i.complete && i.naturalWidth > 0; }")
    assert frame.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [288, 96]
    expect(page.locator("#play-keys")).to_contain_text("ArrowUp")
    before = frame.get_attribute("src")
    # From S (bottom left), up: one step of -1, and a new picture.
    page.locator("main").press("ArrowUp")
    expect(page.locator("#play-status")).to_have_text("move ↑: reward -1, return -1")
    page.wait_for_function("(old) => document.getElementById('env-frame').src !== old", arg=before)
    # Right from there, along the row above the cliff, then down into it.
    page.locator("main").press("ArrowRight")
    page.locator("main").press("ArrowDown")
    expect(page.locator("#play-status")).to_contain_text("return -102")
    screenshot(page, "env-play")
    # Classic control plays too: CartPole pushes right.
    page.goto("/#/envs/CartPole-v1")
    page.wait_for_function("() => { const i = document.getElementById('env-frame'); return i && i.complete && i.naturalWidth === 600; }")
    page.locator("main").press("ArrowRight")
    expect(page.locator("#play-status")).to_have_text("push right: reward 1, return 1")
    # Leaving the page closes its instance.
    page.goto("/#/runs")
    deadline = time.monotonic() + 5
    while get(server, "/v1/envs/")["all_envs"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get(server, "/v1/envs/")["all_envs"] == {}


def test_replay_draws_dqn_on_classic_control_and_minatar_with_q_values(page, server):
    """DQN's replays: CartPole's 600x400 picture and Breakout's 10x10 colour
    planes, each frame with the two or three Q-values of its state."""
    cases = [("CartPole-v1", 600, 400, 2), ("MinAtar/Breakout-v1", 10, 10, 3)]
    ids = []
    for env, *_ in cases:
        ids.append(post(server, "/v1/runs", {
            "env": {"id": env}, "agent": {"id": "dqn", "config": {"learning_starts": 100, "replay": {"capacity": 1000}}},
            "budget": {"steps": 300}, "seed": 2, "eval": {"episodes": 1, "max_steps": 200},
        })["id"])
    for run_id, (env, width, height, actions) in zip(ids, cases):
        wait_for_status(server, run_id, {"completed"}, seconds=120)
        page.goto(f"/#/runs/{run_id}/replay")
        expect(page.locator("#replay-position")).to_contain_text("step 0 of", timeout=30_000)
        values = page.locator("#replay-values tbody tr")
        expect(values).to_have_count(actions)
        expect(page.locator("#replay-values")).to_contain_text("(greedy)")
        page.wait_for_function(
            "([w, h]) => { const c = document.getElementById('replay-canvas'); return c.width % w === 0 && c.width / w === c.height / h && c.width >= w; }",
            arg=[width, height])
        page.click("#replay-next")
        expect(page.locator("#replay-position")).to_contain_text("step 1 of")
        expect(page.locator("#replay-action")).not_to_contain_text("reset")
        # No overlay outside grids.
        expect(page.locator("#replay-overlay-label")).to_be_hidden()
        screenshot(page, f"replay-{env.split('/')[-1].lower()}")
