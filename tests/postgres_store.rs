//! `rl-lab serve --store postgres://…` end to end, on a PostgreSQL the
//! test starts itself: runs, metrics and events go to the database, a
//! restarted server finds them there, and the password never travels on
//! the command line.

use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

mod support;
use support::{Server, get_json, post_json, read_events, run_locally, wait_status};

#[allow(dead_code)] // the helpers other test files use
#[path = "../server/tests/support/postgres.rs"]
mod postgres;

const PASSWORD: &str = "lab secret";

fn spec() -> Value {
    json!({"env": {"id": "gridworld/cliff-walking"},
           "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1}},
           "budget": {"episodes": 200}, "seed": 3})
}

/// `rl-lab serve` on the cluster's database `db`, its run folders in `data`.
fn serve(cluster: &postgres::Postgres, db: &str, data: &std::path::Path) -> Server {
    let url = cluster.url(db);
    Server::start_with(
        data,
        &["--store", &url],
        &[("PGPASSWORD", PASSWORD)],
        None,
        &[],
    )
}

#[test]
fn a_server_on_postgres_runs_streams_and_finds_its_runs_again_after_a_restart() {
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("lab");
    let data = tempfile::tempdir().unwrap();
    let server = serve(&cluster, "lab", data.path());
    let (code, created) = post_json(&server, "/v1/runs", &spec());
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let finished = wait_status(&server, &id, &["completed"], Duration::from_secs(60));
    // The run is the one `rl-lab run` plays from the same spec.
    let local = run_locally(&spec());
    let key = "train_mean_return_last_100";
    assert_eq!(finished["summary"][key], local[key], "{finished}");
    assert_eq!(finished["summary"]["steps"], local["steps"]);
    // Its events, from the database: statuses, 200 episodes, in id order.
    let events = read_events(
        &server,
        &format!("/v1/runs/{id}/events"),
        None,
        |kind, data| kind == "status" && data["status"] == "completed",
    );
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0));
    let episodes = events.iter().filter(|e| e.1 == "metric").count();
    assert!(episodes > 0, "{events:?}");
    let (code, metrics) = get_json(
        &server,
        &format!("/v1/runs/{id}/metrics?name=rollout/episode_return&max_points=50"),
    );
    assert_eq!(code, 200, "{metrics}");
    drop(server);

    // A new server on the same database finds the run as it was, and
    // Last-Event-ID resumes the stream where a client left it.
    let server = serve(&cluster, "lab", data.path());
    let (code, again) = get_json(&server, &format!("/v1/runs/{id}"));
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["status"], "completed");
    assert_eq!(again["summary"][key], local[key]);
    let (_, metrics_again) = get_json(
        &server,
        &format!("/v1/runs/{id}/metrics?name=rollout/episode_return&max_points=50"),
    );
    assert_eq!(metrics_again, metrics);
    let middle = events[events.len() / 2].0;
    let rest = read_events(
        &server,
        &format!("/v1/runs/{id}/events"),
        Some(middle),
        |kind, data| kind == "status" && data["status"] == "completed",
    );
    assert_eq!(rest.first().unwrap().0, events[events.len() / 2 + 1].0);
    assert_eq!(rest.len(), events.len() - events.len() / 2 - 1);
    // A second run on the restarted server takes the next id.
    let (code, second) = post_json(&server, "/v1/runs", &spec());
    assert_eq!(code, 201, "{second}");
    assert_ne!(second["id"], id);
    wait_status(
        &server,
        second["id"].as_str().unwrap(),
        &["completed"],
        Duration::from_secs(60),
    );
}

#[test]
fn the_password_never_rides_on_the_command_line_and_a_wrong_one_is_named() {
    let serve = |url: &str, password: Option<&str>| {
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rl-lab"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--store", url, "--data"])
            .arg(data.path())
            .env_remove("PGPASSWORD")
            .env_remove("RL_LAB_STORE_PASSWORD_FILE");
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        command.output().unwrap()
    };
    let out = serve("postgres://lab:hunter2@127.0.0.1:5432/lab", None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--store"), "{stderr}");
    assert!(stderr.contains("PGPASSWORD"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let cluster = postgres::Postgres::start(PASSWORD);
    let out = serve(&cluster.url("postgres"), Some("not the password"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("not the password"), "{stderr}");

    // RL_LAB_STORE stands for --store; the password file for PGPASSWORD.
    let folder = tempfile::tempdir().unwrap();
    let secret = folder.path().join("password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    cluster.create_database("from_env");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[],
        &[
            ("RL_LAB_STORE", &cluster.url("from_env")),
            ("RL_LAB_STORE_PASSWORD_FILE", secret.to_str().unwrap()),
        ],
        None,
        &[],
    );
    let (code, created) = post_json(&server, "/v1/runs", &spec());
    assert_eq!(code, 201, "{created}");
    // The run is in PostgreSQL, not in a SQLite file in the data folder.
    assert!(!data.path().join("rl-lab.db").exists());
}
