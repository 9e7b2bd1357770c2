//! Run folders in object storage (`--artifacts s3://…`): an S3-compatible
//! server on loopback (moto, from the test venv, started by the test), a
//! worker killed mid-run, and another worker on another data folder (no
//! shared file system) that resumes the run from the checkpoint it reads
//! from the bucket; then an evaluation's GIF lands there too, and the API
//! node, which ran nothing, serves every file from it.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{Server, Worker, get_json, post_json, run_locally, statuses, wait_status};

#[allow(dead_code)] // the helpers other test files use
#[path = "../server/tests/support/postgres.rs"]
mod postgres;

const PASSWORD: &str = "artifacts";
const BUCKET: &str = "rl-lab";

/// moto's S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let python = std::env::var("RL_LAB_TEST_PYTHON").expect(
            "RL_LAB_TEST_PYTHON must name the test venv's Python (with moto): run the suite with ./scripts/test",
        );
        let server = PathBuf::from(python)
            .parent()
            .expect("the venv's bin folder")
            .join("moto_server");
        assert!(
            server.is_file(),
            "no moto_server beside RL_LAB_TEST_PYTHON: tests/requirements.txt pins moto[server]"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let began = Instant::now();
        while ureq::get(&endpoint).call().is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint }
    }

    /// The keys under `prefix` in the bucket, read straight from the
    /// S3 API (ListObjectsV2's XML).
    fn keys(&self, prefix: &str) -> Vec<String> {
        let mut response = support::agent()
            .get(&format!(
                "{}/{BUCKET}?list-type=2&prefix={prefix}",
                self.endpoint
            ))
            .call()
            .unwrap();
        let xml = response.body_mut().read_to_string().unwrap();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect()
    }

    /// What processes need to reach it, as AWS's usual variables.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("PGPASSWORD", PASSWORD.into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dqn_spec() -> Value {
    support::dqn_checkpointing_spec(9)
}

#[test]
fn a_run_resumes_from_the_checkpoint_in_the_bucket_on_a_worker_with_its_own_folder() {
    let moto = Moto::start();
    let created = support::agent()
        .put(&format!("{}/{BUCKET}", moto.endpoint))
        .send_empty()
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("objects");
    let url = cluster.url("objects");
    let artifacts = format!("s3://{BUCKET}/lab");
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Three processes, three folders of their own: nothing shared but the
    // database and the bucket.
    let (api_data, first_data, second_data) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let server = Server::start_with(
        api_data.path(),
        &["--store", &url, "--slots", "0", "--artifacts", &artifacts],
        &env,
        None,
        &[],
    );
    let worker_flags = [
        "--slots",
        "1",
        "--lease",
        "3",
        "--heartbeat",
        "1",
        "--artifacts",
        &artifacts,
    ];
    let mut first = Worker::start(&url, first_data.path(), "first", &worker_flags, &env);
    let (code, created) = post_json(&server, "/v1/runs", &dqn_spec());
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let prefix = format!("lab/{id}/");
    let began = Instant::now();
    while !moto
        .keys(&prefix)
        .contains(&format!("{prefix}checkpoint.json"))
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no checkpoint reached the bucket"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill();
    let _second = Worker::start(&url, second_data.path(), "second", &worker_flags, &env);
    let run = wait_status(&server, &id, &["completed"], Duration::from_secs(180));
    assert_eq!(run["worker"], "second", "{run}");
    assert_eq!(run["attempts"], 2, "{run}");
    assert_eq!(
        statuses(&run),
        ["queued", "running", "queued", "running", "completed"]
    );
    // Resumed from the bucket's episode-boundary checkpoint, it is the run
    // nothing interrupted.
    let local = run_locally(&dqn_spec());
    for key in ["train_mean_return_last_100", "episodes"] {
        assert_eq!(run["summary"][key], local[key], "{key}");
    }
    // The second worker fetched the folder it had never seen: its
    // metrics file goes from the first episode to the last.
    let metrics = std::fs::read_to_string(
        second_data
            .path()
            .join("runs")
            .join(&id)
            .join("metrics.jsonl"),
    )
    .unwrap();
    let episodes = metrics
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["kind"] == "episode")
        .count() as u64;
    assert_eq!(episodes, local["episodes"].as_u64().unwrap());

    // An evaluation on the API node (which ran nothing) reads the policy
    // from the bucket and records its GIF there.
    let (code, evaluated) = post_json(
        &server,
        &format!("/v1/runs/{id}/evaluate"),
        &json!({"episodes": 1, "record": true}),
    );
    assert_eq!(code, 200, "{evaluated}");
    let gif = evaluated["gif"].as_str().unwrap().to_string();
    let keys = moto.keys(&prefix);
    for name in [
        "checkpoint.json",
        "summary.json",
        "metrics.jsonl",
        "agent.json",
        gif.as_str(),
    ] {
        assert!(
            keys.contains(&format!("{prefix}{name}")),
            "{name} not in {keys:?}"
        );
    }
    assert!(
        keys.iter().any(|k| k.starts_with(&format!("{prefix}tb/"))),
        "{keys:?}"
    );
    let (code, listed) = get_json(&server, &format!("/v1/runs/{id}/artifacts"));
    assert_eq!(code, 200, "{listed}");
    let names: Vec<&str> = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), keys.len(), "{names:?} vs {keys:?}");
    let mut response = support::agent()
        .get(&format!("{}/v1/runs/{id}/artifacts/{gif}", server.base))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.body_mut().read_to_vec().unwrap();
    assert!(bytes.starts_with(b"GIF89a"), "not a GIF");
    // Deleting the run removes its files from the bucket too.
    let deleted = support::agent()
        .delete(&format!("{}/v1/runs/{id}", server.base))
        .call()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert!(moto.keys(&prefix).is_empty());
}

#[test]
fn a_bad_artifacts_url_is_refused_with_exit_code_2() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--artifacts",
            "ftp://host/runs",
            "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--artifacts") && stderr.contains("s3://bucket/prefix"),
        "{stderr}"
    );
}
