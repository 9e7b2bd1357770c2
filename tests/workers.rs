//! Runs queued in PostgreSQL and executed by `rl-lab worker` processes:
//! each run claimed exactly once, a worker killed mid-run replaced by
//! another that resumes from the checkpoint, a cancel that reaches a
//! worker's run. The cluster is the test's own (initdb into a temporary
//! folder); the server and the workers are the real binary.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod support;
use support::{Server, Worker, get_json, post_json, run_locally, statuses, wait_status};

#[allow(dead_code)] // the helpers other test files use
#[path = "../server/tests/support/postgres.rs"]
mod postgres;

const PASSWORD: &str = "workers";

/// A worker on the cluster's database `db`.
fn worker(
    cluster: &postgres::Postgres,
    db: &str,
    data: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> Worker {
    Worker::start(
        &cluster.url(db),
        data,
        name,
        extra,
        &[("PGPASSWORD", PASSWORD)],
    )
}

/// `rl-lab serve --slots 0`: it answers and queues, and executes nothing.
fn api_node(cluster: &postgres::Postgres, db: &str, data: &std::path::Path) -> Server {
    Server::start_with(
        data,
        &["--store", &cluster.url(db), "--slots", "0"],
        &[("PGPASSWORD", PASSWORD)],
        None,
        &[],
    )
}

#[test]
fn three_workers_claim_each_of_fifty_runs_exactly_once() {
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("queue");
    let data = tempfile::tempdir().unwrap();
    let server = api_node(&cluster, "queue", data.path());
    let workers: Vec<Worker> = (0..3)
        .map(|i| {
            worker(
                &cluster,
                "queue",
                data.path(),
                &format!("w{i}"),
                &["--slots", "2"],
            )
        })
        .collect();
    let spec = |seed: u64| {
        json!({"env": {"id": "gridworld/cliff-walking"},
               "agent": {"id": "q-learning", "config": {"epsilon": 0.1}},
               "budget": {"episodes": 60}, "seed": seed})
    };
    let ids: Vec<String> = (0..50)
        .map(|seed| {
            let (code, created) = post_json(&server, "/v1/runs", &spec(seed));
            assert_eq!(code, 201, "{created}");
            created["id"].as_str().unwrap().to_string()
        })
        .collect();
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for (seed, id) in ids.iter().enumerate() {
        let run = wait_status(&server, id, &["completed"], Duration::from_secs(120));
        // Claimed once: one claim counted, one `running` in its history.
        assert_eq!(run["attempts"], 1, "{run}");
        assert_eq!(statuses(&run), ["queued", "running", "completed"], "{run}");
        let worker = run["worker"].as_str().unwrap().to_string();
        assert!(["w0", "w1", "w2"].contains(&worker.as_str()), "{run}");
        *by_worker.entry(worker).or_default() += 1;
        let local = run_locally(&spec(seed as u64));
        let key = "train_mean_return_last_100";
        assert_eq!(run["summary"][key], local[key], "seed {seed}");
        assert_eq!(run["summary"]["steps"], local["steps"], "seed {seed}");
    }
    eprintln!("runs per worker: {by_worker:?}");
    // The workers list names each of them with a heartbeat, holding none.
    let (code, list) = get_json(&server, "/v1/workers");
    assert_eq!(code, 200, "{list}");
    let names: Vec<&str> = list["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    for name in ["w0", "w1", "w2"] {
        assert!(names.contains(&name), "{list}");
    }
    assert!(
        list["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["runs"].as_array().unwrap().is_empty())
    );
    drop(workers);
}

fn dqn_spec() -> Value {
    support::dqn_checkpointing_spec(5)
}

fn episode_steps(server: &Server, id: &str) -> Vec<u64> {
    let (code, metrics) = get_json(
        server,
        &format!("/v1/runs/{id}/metrics?name=rollout/episode_return&limit=100000"),
    );
    assert_eq!(code, 200, "{metrics}");
    metrics["metrics"]["rollout/episode_return"]["step"]
        .as_array()
        .map(|steps| steps.iter().map(|s| s.as_u64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn a_worker_killed_mid_run_loses_its_lease_and_another_resumes_the_run() {
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("lost");
    let data = tempfile::tempdir().unwrap();
    let server = api_node(&cluster, "lost", data.path());
    let quick = ["--slots", "1", "--lease", "3", "--heartbeat", "1"];
    let mut first = worker(&cluster, "lost", data.path(), "first", &quick);
    let (code, created) = post_json(&server, "/v1/runs", &dqn_spec());
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let checkpoint = data.path().join("runs").join(&id).join("checkpoint.json");
    let began = Instant::now();
    while !checkpoint.exists() || episode_steps(&server, &id).len() < 30 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no checkpoint came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill();
    let killed = Instant::now();
    // Nobody renews the lease: after it lapses a heartbeat (the API node's)
    // queues the run again, and the next worker to come takes it.
    let queued = wait_status(&server, &id, &["queued"], Duration::from_secs(20));
    let lapsed = killed.elapsed();
    assert!(
        lapsed >= Duration::from_secs(2),
        "queued again after {lapsed:?}"
    );
    let requeue = queued["status_history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let why = requeue["error"].as_str().unwrap();
    assert!(why.contains("first stopped renewing its lease"), "{why}");
    let _second = worker(&cluster, "lost", data.path(), "second", &quick);
    let run = wait_status(&server, &id, &["completed"], Duration::from_secs(180));
    assert_eq!(run["worker"], "second", "{run}");
    assert_eq!(run["attempts"], 2, "{run}");
    assert_eq!(
        statuses(&run),
        ["queued", "running", "queued", "running", "completed"],
        "{run}"
    );
    // Its stored episodes: strictly increasing steps, none repeated
    // beyond the checkpoint, up to the budget.
    let steps = episode_steps(&server, &id);
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps repeat or go back"
    );
    assert!(*steps.last().unwrap() <= 60_000);
    // Resumed from an episode-boundary checkpoint, it is the run that
    // nothing interrupted.
    let local = run_locally(&dqn_spec());
    for key in ["train_mean_return_last_100", "episodes"] {
        assert_eq!(run["summary"][key], local[key], "{key}");
    }
    let metrics_file = data.path().join("runs").join(&id).join("metrics.jsonl");
    let text = std::fs::read_to_string(metrics_file).unwrap();
    let file_steps: Vec<u64> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["kind"] == "episode")
        .map(|record| record["step"].as_u64().unwrap())
        .collect();
    assert!(file_steps.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(file_steps.len() as u64, local["episodes"].as_u64().unwrap());
}

#[test]
fn a_cancel_reaches_a_workers_run_within_two_seconds() {
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("cancel");
    let data = tempfile::tempdir().unwrap();
    let server = api_node(&cluster, "cancel", data.path());
    let _worker = worker(&cluster, "cancel", data.path(), "busy", &["--slots", "1"]);
    let mut spec = dqn_spec();
    spec["budget"]["steps"] = json!(5_000_000);
    let (_, created) = post_json(&server, "/v1/runs", &spec);
    let id = created["id"].as_str().unwrap().to_string();
    wait_status(&server, &id, &["running"], Duration::from_secs(30));
    let began = Instant::now();
    while episode_steps(&server, &id).len() < 5 {
        assert!(began.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The API node shows the worker's live figures, as the worker stores
    // them.
    let began = Instant::now();
    loop {
        let (_, run) = get_json(&server, &format!("/v1/runs/{id}"));
        let (_, list) = get_json(&server, "/v1/runs");
        let listed = &list["runs"][0];
        if run["progress"]["steps_per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
            && listed["steps_per_second"].as_f64().is_some_and(|r| r > 0.0)
        {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "no live rate: {run}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = Instant::now();
    let (code, reply) = post_json(&server, &format!("/v1/runs/{id}/cancel"), &json!({}));
    assert_eq!(code, 202, "{reply}");
    let run = wait_status(&server, &id, &["cancelled"], Duration::from_secs(10));
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "the cancel took {took:?}");
    assert_eq!(run["worker"], "busy");
    // A queued run is cancelled where it waits, before any worker takes it:
    // the only worker is busy with another long run.
    let (_, long) = post_json(&server, "/v1/runs", &spec);
    let long = long["id"].as_str().unwrap().to_string();
    wait_status(&server, &long, &["running"], Duration::from_secs(30));
    let (_, waiting) = post_json(&server, "/v1/runs", &spec);
    let waiting = waiting["id"].as_str().unwrap().to_string();
    let (code, reply) = post_json(&server, &format!("/v1/runs/{waiting}/cancel"), &json!({}));
    assert_eq!(
        (code, reply["status"].as_str()),
        (202, Some("cancelled")),
        "{reply}"
    );
    let (_, view) = get_json(&server, &format!("/v1/runs/{waiting}"));
    assert_eq!(statuses(&view), ["queued", "cancelled"]);
    assert_eq!(view["attempts"], 0);
    let (code, _) = post_json(&server, &format!("/v1/runs/{long}/cancel"), &json!({}));
    assert_eq!(code, 202);
}

#[test]
fn an_api_node_restart_loses_nothing_and_its_streams_resume() {
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("restart");
    let data = tempfile::tempdir().unwrap();
    let server = api_node(&cluster, "restart", data.path());
    let _worker = worker(
        &cluster,
        "restart",
        data.path(),
        "steady",
        &["--slots", "1"],
    );
    let mut spec = dqn_spec();
    spec["budget"]["steps"] = json!(30_000);
    let (_, created) = post_json(&server, "/v1/runs", &spec);
    let id = created["id"].as_str().unwrap().to_string();
    wait_status(&server, &id, &["running"], Duration::from_secs(30));
    // A client follows the run's events through the first node, then the
    // node goes away mid-run.
    let seen = support::read_events(&server, &format!("/v1/runs/{id}/events"), None, {
        let mut metrics = 0;
        move |kind, _| {
            metrics += usize::from(kind == "metric");
            metrics >= 20
        }
    });
    let last_seen = seen.last().unwrap().0;
    drop(server);
    // The worker goes on without it; a new node on the same database
    // serves the stream from where the client left it, across the gap.
    std::thread::sleep(Duration::from_millis(500));
    let server = api_node(&cluster, "restart", data.path());
    let rest = support::read_events(
        &server,
        &format!("/v1/runs/{id}/events"),
        Some(last_seen),
        |kind, data| kind == "status" && data["status"] == "completed",
    );
    assert!(rest.first().unwrap().0 > last_seen);
    let ids: Vec<i64> = seen.iter().chain(&rest).map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids repeat or go back");
    // Every event stored is one the client got, once: nothing lost.
    let run = wait_status(&server, &id, &["completed"], Duration::from_secs(60));
    let stored = support::read_events(
        &server,
        &format!("/v1/runs/{id}/events"),
        None,
        |kind, data| kind == "status" && data["status"] == "completed",
    );
    let stored_ids: Vec<i64> = stored.iter().map(|e| e.0).collect();
    assert_eq!(stored_ids, ids);
    assert_eq!(run["worker"], "steady");
    assert_eq!(run["attempts"], 1);
}

#[test]
fn a_sweep_runs_on_workers_and_a_drained_worker_exits_when_idle() {
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("sweep");
    let data = tempfile::tempdir().unwrap();
    let server = api_node(&cluster, "sweep", data.path());
    let base = json!({"env": {"id": "gridworld/cliff-walking"},
                      "agent": {"id": "q-learning", "config": {"epsilon": 0.1}},
                      "budget": {"episodes": 100}, "seed": 0});
    let sweep = json!({"name": "on-workers", "base": base,
                       "grid": {"agent.config.alpha": [0.1, 0.3, 0.5]}, "seeds": [0, 1]});
    let (code, created) = post_json(&server, "/v1/sweeps", &sweep);
    assert_eq!(code, 201, "{created}");
    // Queued before any worker exists; the one that comes drains the
    // queue and, idle for a second, stops by itself.
    let began = Instant::now();
    let mut drainer = std::process::Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args([
            "worker",
            "--store",
            &cluster.url("sweep"),
            "--name",
            "drainer",
        ])
        .args(["--slots", "2", "--exit-when-idle", "1", "--data"])
        .arg(data.path())
        .env("PGPASSWORD", PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = drainer.try_wait().unwrap() {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "the worker did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let id = created["id"].as_str().unwrap();
    let (code, view) = get_json(&server, &format!("/v1/sweeps/{id}"));
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["statuses"], json!({"completed": 6}));
    for configuration in view["configurations"].as_array().unwrap() {
        assert_eq!(configuration["completed"], 2);
        assert!(configuration["final_mean"].is_number(), "{configuration}");
        for run in configuration["runs"].as_array().unwrap() {
            let (_, run) = get_json(
                &server,
                &format!("/v1/runs/{}", run["id"].as_str().unwrap()),
            );
            assert_eq!(run["worker"], "drainer");
        }
    }
}

#[test]
fn a_run_that_kills_every_worker_ends_failed_after_its_attempts_and_costs_nothing_else() {
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("abort");
    let data = tempfile::tempdir().unwrap();
    let quick = ["--lease", "2", "--heartbeat", "0.5", "--max-attempts", "2"];
    let mut api_flags = vec![
        "--store".to_string(),
        cluster.url("abort"),
        "--slots".into(),
        "0".into(),
    ];
    api_flags.extend(quick.iter().map(|s| s.to_string()));
    let api_flags: Vec<&str> = api_flags.iter().map(String::as_str).collect();
    let env = [("PGPASSWORD", PASSWORD), ("RL_LAB_TEST_AGENTS", "1")];
    let server = Server::start_with(data.path(), &api_flags, &env, None, &[]);
    let doomed = json!({"env": {"id": "CartPole-v1"},
                        "agent": {"id": "test/panic", "config": {"abort_at_step": 50}},
                        "budget": {"steps": 1000}, "seed": 0});
    let (code, created) = post_json(&server, "/v1/runs", &doomed);
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let mut flags = vec!["--slots", "1"];
    flags.extend(quick);
    // Each worker that takes the run dies with it; the API goes on
    // answering, and the lapsed lease puts the run back in the queue.
    for (attempt, name) in [(1, "first"), (2, "second")] {
        let mut victim = Worker::start(&cluster.url("abort"), data.path(), name, &flags, &env);
        let began = Instant::now();
        while victim.is_running() {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "{name} did not die"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (code, run) = get_json(&server, &format!("/v1/runs/{id}"));
        assert_eq!(code, 200, "the API answers while workers die: {run}");
        assert_eq!(run["attempts"], attempt, "{run}");
    }
    // Two workers lost on its two attempts: it is not tried a third time.
    let run = wait_status(&server, &id, &["failed"], Duration::from_secs(20));
    assert_eq!(
        statuses(&run),
        ["queued", "running", "queued", "running", "failed"]
    );
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("lost on each of its 2 attempts"), "{error}");
    assert!(error.contains("second"), "{error}");
    // A healthy worker finds nothing of it, and runs the next run.
    let _healthy = Worker::start(&cluster.url("abort"), data.path(), "healthy", &flags, &env);
    let fine = json!({"env": {"id": "gridworld/cliff-walking"}, "agent": {"id": "q-learning"},
                      "budget": {"episodes": 50}, "seed": 0});
    let (_, created) = post_json(&server, "/v1/runs", &fine);
    let fine_id = created["id"].as_str().unwrap();
    let done = wait_status(&server, fine_id, &["completed"], Duration::from_secs(30));
    assert_eq!(done["worker"], "healthy");
    let (_, still) = get_json(&server, &format!("/v1/runs/{id}"));
    assert_eq!(still["status"], "failed");
}
