//! Past one machine: what the shared PostgreSQL store costs, against the
//! goals of docs/scale.md. Run with `cargo bench --bench scale`
//! (`cargo bench --bench scale -- quick` for a shorter run; `-- claims`,
//! `-- ingest` or `-- dqn` for one part). Each part starts its own
//! PostgreSQL (initdb into a temporary folder, as the tests do) and the
//! real `rl-lab` binary.
//!
//! - **claims**: `rl-lab serve --slots 0` and three `rl-lab worker`
//!   processes (two slots each) complete tiny gridworld runs; the rate is
//!   runs completed per second from the first submission to the last
//!   completion, the submissions included. Goal: at least 20 a second.
//! - **ingest**: metric records through the store's writer, as a run's
//!   sink sends them (an episode record: return, length and epsilon, three
//!   points), into PostgreSQL and, beside it, SQLite; points per second
//!   from the first send to the commit of the last. Goal: at least 50,000
//!   a second into PostgreSQL from one process.
//! - **dqn**: one DQN run on CartPole trained by a worker on PostgreSQL and
//!   by `rl-lab serve` on SQLite (in its local worker process, as every
//!   run there), alternating, its env steps per second
//!   (the summary's steps over its train seconds). Goal: the worker within
//!   5% of the server, since storage is off the training thread.

#[allow(dead_code)]
#[path = "../server/tests/support/postgres.rs"]
mod postgres;
#[path = "../tests/support/mod.rs"]
mod support;

use rl_server::store::postgres::{Password, Target};
use rl_server::store::{MetricValue, Store, StoreLocation, Write};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Server, Worker, get_json, post_json};

const PASSWORD: &str = "bench";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "quick");
    let only = |part: &str| {
        let parts = ["claims", "ingest", "dqn"];
        !args.iter().any(|a| parts.contains(&a.as_str())) || args.iter().any(|a| a == part)
    };
    let cluster = postgres::Postgres::start(PASSWORD);
    if only("claims") {
        claims(&cluster, if quick { 100 } else { 400 });
    }
    if only("ingest") {
        ingest(&cluster, if quick { 20_000 } else { 100_000 });
    }
    if only("dqn") {
        dqn(&cluster, if quick { 1 } else { 3 });
    }
}

fn worker(
    cluster: &postgres::Postgres,
    db: &str,
    data: &std::path::Path,
    name: &str,
    slots: u32,
) -> Worker {
    let slots = slots.to_string();
    Worker::start(
        &cluster.url(db),
        data,
        name,
        &["--slots", &slots],
        &[("PGPASSWORD", PASSWORD)],
    )
}

fn api_node(cluster: &postgres::Postgres, db: &str, data: &std::path::Path, slots: &str) -> Server {
    Server::start_with(
        data,
        &["--store", &cluster.url(db), "--slots", slots],
        &[("PGPASSWORD", PASSWORD)],
        None,
        &[],
    )
}

fn completed(server: &Server) -> usize {
    let (_, list) = get_json(server, "/v1/runs?status=completed&limit=500");
    list["runs"].as_array().map_or(0, Vec::len)
}

fn claims(cluster: &postgres::Postgres, runs: usize) {
    cluster.create_database("claims");
    let data = tempfile::tempdir().unwrap();
    let server = api_node(cluster, "claims", data.path(), "0");
    let _workers: Vec<Worker> = (0..3)
        .map(|i| worker(cluster, "claims", data.path(), &format!("w{i}"), 2))
        .collect();
    let spec = |seed: usize| {
        json!({"env": {"id": "gridworld/cliff-walking"},
               "agent": {"id": "q-learning"}, "budget": {"episodes": 5}, "seed": seed})
    };
    let began = Instant::now();
    for seed in 0..runs {
        let (code, reply) = post_json(&server, "/v1/runs", &spec(seed));
        assert_eq!(code, 201, "{reply}");
    }
    let submitted = began.elapsed();
    while completed(&server) < runs {
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "the runs did not complete"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = began.elapsed();
    let (_, list) = get_json(&server, "/v1/runs?limit=500");
    let mut per_worker = std::collections::BTreeMap::<String, usize>::new();
    for run in list["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "completed");
        *per_worker
            .entry(run_worker(&server, run["id"].as_str().unwrap()))
            .or_default() += 1;
    }
    println!(
        "claims: {runs} tiny runs by 3 workers x 2 slots in {:.2} s (submitted in {:.2} s): {:.1} runs/s (goal >= 20); per worker {per_worker:?}",
        took.as_secs_f64(),
        submitted.as_secs_f64(),
        runs as f64 / took.as_secs_f64()
    );
}

fn run_worker(server: &Server, id: &str) -> String {
    let (_, run) = get_json(server, &format!("/v1/runs/{id}"));
    run["worker"].as_str().unwrap_or("?").to_string()
}

/// Sends `records` episode records of one run through `store`'s writer
/// and waits for their commit: points per second.
fn ingest_into(store: &Store, records: u64) -> f64 {
    let id = store
        .insert_run(json!({"env": {"id": "CartPole-v1"}}))
        .unwrap();
    let began = Instant::now();
    for episode in 1..=records {
        let step = episode * 37;
        let wall = step as f64 / 5000.0;
        let point = |name: &'static str, value: f64| MetricValue {
            name: name.into(),
            step,
            value,
            wall_seconds: wall,
            window: None,
        };
        let value = (episode as f64 * 0.01).sin() * 100.0;
        store.send(Write::Metric {
            run_id: id.clone(),
            record: format!(
                r#"{{"kind":"episode","episode":{episode},"step":{step},"episode_return":{value},"length":37,"epsilon":0.05,"wall_seconds":{wall}}}"#
            ),
            step,
            values: vec![
                point("rollout/episode_return", value),
                point("rollout/episode_length", 37.0),
                point("rollout/epsilon", 0.05),
            ],
        });
    }
    store.flush();
    (records * 3) as f64 / began.elapsed().as_secs_f64()
}

fn ingest(cluster: &postgres::Postgres, records: u64) {
    cluster.create_database("ingest");
    let target: Target = cluster.url("ingest").parse().unwrap();
    let postgres = Store::open_at(&StoreLocation::Postgres {
        target,
        password: Some(Password(PASSWORD.into())),
    })
    .unwrap();
    let folder = tempfile::tempdir().unwrap();
    let sqlite = Store::open_at(&StoreLocation::Sqlite(folder.path().join("rl-lab.db"))).unwrap();
    // Alternating, twice each, so that other load weighs on both alike.
    let mut rates = (Vec::new(), Vec::new());
    for _ in 0..2 {
        rates.0.push(ingest_into(&postgres, records));
        rates.1.push(ingest_into(&sqlite, records));
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "ingest: {records} episode records (3 points each) per round: PostgreSQL {:.0} points/s (rounds {:?}; goal >= 50,000), SQLite {:.0} points/s (rounds {:?}); PostgreSQL / SQLite = {:.2}",
        best(&rates.0),
        rates.0.iter().map(|r| r.round()).collect::<Vec<_>>(),
        best(&rates.1),
        rates.1.iter().map(|r| r.round()).collect::<Vec<_>>(),
        best(&rates.0) / best(&rates.1)
    );
}

fn dqn_spec() -> Value {
    json!({
        "env": {"id": "CartPole-v1"},
        "agent": {"id": "dqn", "config": {"learning_starts": 1000}},
        "budget": {"steps": 50_000},
        "seed": 0
    })
}

/// Runs the DQN spec on `server` (its own slots or a worker's): env steps
/// per second of training.
fn dqn_rate(server: &Server) -> f64 {
    let (code, created) = post_json(server, "/v1/runs", &dqn_spec());
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let run = support::wait_status(server, id, &["completed"], Duration::from_secs(600));
    let summary = &run["summary"];
    summary["steps"].as_f64().unwrap() / summary["train_seconds"].as_f64().unwrap()
}

fn dqn(cluster: &postgres::Postgres, rounds: usize) {
    cluster.create_database("dqn");
    let worker_data = tempfile::tempdir().unwrap();
    let api = api_node(cluster, "dqn", worker_data.path(), "0");
    let _worker = worker(cluster, "dqn", worker_data.path(), "dqn-worker", 1);
    let sqlite_data = tempfile::tempdir().unwrap();
    let serve = Server::start(sqlite_data.path(), None, &["--slots", "1"]);
    let (mut on_worker, mut on_serve) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        on_worker.push(dqn_rate(&api));
        on_serve.push(dqn_rate(&serve));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (worker, server) = (median(&mut on_worker), median(&mut on_serve));
    println!(
        "dqn: CartPole 50,000 steps, median of {rounds}: worker on PostgreSQL {worker:.0} steps/s (rounds {:?}), serve on SQLite {server:.0} steps/s (rounds {:?}); worker / serve = {:.3} (goal >= 0.95)",
        on_worker.iter().map(|r| r.round()).collect::<Vec<_>>(),
        on_serve.iter().map(|r| r.round()).collect::<Vec<_>>(),
        worker / server
    );
}
