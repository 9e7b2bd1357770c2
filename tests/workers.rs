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

/// A DQN run on CartPole long enough to be killed mid-run, checkpointing
/// every 10 episodes (at episode boundaries, so a resume continues it
/// exactly).
fn dqn_spec() -> Value {
    json!({
        "env": {"id": "CartPole-v1"},
        "agent": {"id": "dqn", "config": {"learning_starts": 500, "replay": {"capacity": 10000}}},
        "budget": {"steps": 60_000},
        "seed": 5,
        "checkpoint": {"every_episodes": 10},
        "eval": {"episodes": 2}
    })
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
