//! The server end to end: the real binary on an ephemeral port, a real HTTP
//! client, real signals.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::{Server, agent, read_events, wait_status};

fn request(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let agent = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match method {
        "GET" => {
            let mut r = agent.get(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        "DELETE" => {
            let mut r = agent.delete(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        _ => {
            let mut r = agent.post(url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(body.unwrap_or(""))
        }
    };
    let mut response = response.expect("the request reaches the server");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    request("GET", &format!("{}{path}", server.base), None, None)
}

fn post(server: &Server, path: &str, body: &str) -> (u16, Value) {
    request("POST", &format!("{}{path}", server.base), None, Some(body))
}

fn submit(server: &Server, spec: &Value) -> String {
    let (status, reply) = post(server, "/v1/runs", &spec.to_string());
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "queued");
    reply["id"].as_str().unwrap().to_string()
}

fn metric_count(server: &Server, id: &str, name: &str) -> usize {
    let (code, reply) = get(
        server,
        &format!("/v1/runs/{id}/metrics?name={name}&limit=100000"),
    );
    assert_eq!(code, 200, "{reply}");
    reply["metrics"][name]["step"].as_array().unwrap().len()
}

/// A DQN run on CartPole long enough (several seconds) to be watched,
/// killed and resumed, checkpointing every 10 episodes.
fn slow_spec(steps: u64) -> Value {
    json!({
        "env": {"id": "CartPole-v1"},
        "agent": {"id": "dqn", "config": {"learning_starts": 500, "replay": {"capacity": 10000}}},
        "budget": {"steps": steps},
        "seed": 3,
        "checkpoint": {"every_episodes": 10},
        "eval": {"episodes": 2}
    })
}

fn spec_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_tabular_run_completes_and_its_metrics_and_events_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let id = submit(&server, &spec_file("01-q-learning-cliff.json"));
    let run = wait_status(&server, &id, &["completed"], Duration::from_secs(60));
    assert_eq!(run["progress"]["episodes"], 500);
    assert_eq!(run["summary"]["eval"]["mean_return"], -13.0);
    assert_eq!(metric_count(&server, &id, "rollout/episode_return"), 500);
    let history: Vec<&str> = run["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["queued", "running", "completed"]);

    // The event stream replays from the store, in id order, ending with the status.
    let events = read_events(
        &server,
        &format!("/v1/runs/{id}/events"),
        None,
        |kind, data| kind == "status" && data["status"] == "completed",
    );
    let metrics = events.iter().filter(|e| e.1 == "metric").count();
    assert_eq!(metrics, 500);
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(events.iter().any(|e| e.1 == "log"));
    // Reconnecting with Last-Event-ID gets only what came after it.
    let middle = events[events.len() / 2].0;
    let rest = read_events(
        &server,
        &format!("/v1/runs/{id}/events"),
        Some(middle),
        |kind, data| kind == "status" && data["status"] == "completed",
    );
    assert_eq!(rest.first().unwrap().0, events[events.len() / 2 + 1].0);
    assert_eq!(rest.len(), events.len() - events.len() / 2 - 1);

    // The run folder has the same layout as `rl-lab run`, plus TensorBoard.
    let folder = dir.path().join("runs").join(&id);
    for name in ["spec.json", "metrics.jsonl", "summary.json", "tables.json"] {
        assert!(folder.join(name).exists(), "{name} missing");
    }
    let lines = std::fs::read_to_string(folder.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 500);
    assert!(std::fs::read_dir(folder.join("tb")).unwrap().count() >= 1);

    // The run's own logs.
    let agent = agent();
    let mut response = agent
        .get(&format!("{}/v1/runs/{id}/logs", server.base))
        .call()
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    let logs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(logs.iter().any(|l| l["message"] == "run started"));
    assert!(logs.iter().any(|l| l["message"] == "run completed"));

    // Listing.
    let (_, list) = get(&server, "/v1/runs?status=completed");
    assert_eq!(list["runs"][0]["id"], id.as_str());
}

#[test]
fn metrics_are_readable_while_a_run_trains() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let id = submit(&server, &slow_spec(20_000));
    wait_status(&server, &id, &["running"], Duration::from_secs(30));
    let began = Instant::now();
    let mut seen_while_running = 0;
    while began.elapsed() < Duration::from_secs(60) {
        let count = metric_count(&server, &id, "rollout/episode_return");
        let (_, run) = get(&server, &format!("/v1/runs/{id}"));
        if run["status"] == "running" && count > 0 {
            seen_while_running = count;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen_while_running > 0,
        "no metric was visible while the run trained"
    );
    // Live events arrive while it runs.
    let events = read_events(
        &server,
        &format!("/v1/runs/{id}/events"),
        None,
        |kind, _| kind == "metric",
    );
    assert!(events.iter().any(|e| e.1 == "metric"));
    let (code, reply) = request(
        "DELETE",
        &format!("{}/v1/runs/{id}", server.base),
        None,
        None,
    );
    assert_eq!(code, 409, "deleting a running run: {reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("running")
    );
    let run = wait_status(&server, &id, &["completed"], Duration::from_secs(120));
    assert_eq!(run["progress"]["steps"], 20_000);
    let (code, _) = request(
        "DELETE",
        &format!("{}/v1/runs/{id}", server.base),
        None,
        None,
    );
    assert_eq!(code, 204);
    assert!(!dir.path().join("runs").join(&id).exists());
    assert_eq!(get(&server, &format!("/v1/runs/{id}")).0, 404);
}

#[test]
fn a_killed_server_leaves_an_interrupted_run_that_resumes_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), None, &[]);
    // Long enough to be killed mid-run: 15,000 steps sometimes finished
    // before the kill came.
    let id = submit(&server, &slow_spec(100_000));
    let checkpoint = dir.path().join("runs").join(&id).join("checkpoint.json");
    let began = Instant::now();
    while !checkpoint.exists() || metric_count(&server, &id, "rollout/episode_return") < 30 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no checkpoint came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait past one flush period, then count what is stored.
    std::thread::sleep(Duration::from_millis(1100));
    let stored = metric_count(&server, &id, "rollout/episode_return");
    server.signal("-KILL");
    server.wait_exit(Duration::from_secs(5));
    drop(server);

    let server = Server::start(dir.path(), None, &[]);
    let (_, run) = get(&server, &format!("/v1/runs/{id}"));
    assert_eq!(run["status"], "interrupted", "{run}");
    assert!(metric_count(&server, &id, "rollout/episode_return") >= stored);

    let (code, reply) = post(&server, &format!("/v1/runs/{id}/resume"), "");
    assert_eq!(code, 202, "{reply}");
    let run = wait_status(&server, &id, &["completed"], Duration::from_secs(120));
    assert_eq!(run["progress"]["steps"], 100_000);
    // Steps never go backwards: the resumed metrics continue the old ones.
    let (_, metrics) = get(
        &server,
        &format!("/v1/runs/{id}/metrics?name=rollout/episode_return&limit=100000"),
    );
    let steps: Vec<u64> = metrics["metrics"]["rollout/episode_return"]["step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps repeat or go back"
    );
    assert!(*steps.last().unwrap() <= 100_000);
    drop(server);

    let db = rusqlite::Connection::open(dir.path().join("rl-lab.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn sigterm_checkpoints_running_runs_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), None, &[]);
    let id = submit(&server, &slow_spec(1_000_000));
    wait_status(&server, &id, &["running"], Duration::from_secs(30));
    let began = Instant::now();
    while metric_count(&server, &id, "rollout/episode_return") < 5 {
        assert!(began.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    server.signal("-TERM");
    let took = server.wait_exit(Duration::from_secs(10));
    assert!(took < Duration::from_secs(10));
    drop(server);
    let checkpoint = dir.path().join("runs").join(&id).join("checkpoint.json");
    assert!(checkpoint.exists());

    let server = Server::start(dir.path(), None, &[]);
    let (_, run) = get(&server, &format!("/v1/runs/{id}"));
    assert_eq!(run["status"], "interrupted", "{run}");
    assert!(run["error"].is_null(), "a clean stop has no error: {run}");
    // Cancel is idempotent on an ended run, and a cancelled run can resume.
    let (code, reply) = post(&server, &format!("/v1/runs/{id}/cancel"), "");
    assert_eq!((code, reply["status"].as_str()), (202, Some("interrupted")));
}

#[test]
fn cancel_stops_a_running_run_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let id = submit(&server, &slow_spec(1_000_000));
    wait_status(&server, &id, &["running"], Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let began = Instant::now();
    let (code, _) = post(&server, &format!("/v1/runs/{id}/cancel"), "");
    assert_eq!(code, 202);
    wait_status(&server, &id, &["cancelled"], Duration::from_secs(2));
    assert!(began.elapsed() < Duration::from_secs(2));
    assert!(
        dir.path()
            .join("runs")
            .join(&id)
            .join("checkpoint.json")
            .exists()
    );
    let (code, _) = post(&server, &format!("/v1/runs/{id}/cancel"), "");
    assert_eq!(code, 202);
}

#[test]
fn bad_requests_get_the_documented_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &["--max-body-bytes", "4096"]);
    let good = spec_file("01-q-learning-cliff.json");

    let (code, reply) = post(&server, "/v1/runs", "{\"env\": ");
    assert_eq!(code, 400);
    assert_eq!(reply["error"]["code"], "malformed_json");

    let mut unknown_field = good.clone();
    unknown_field["agent"]["config"]["alpah"] = json!(0.1);
    let (code, reply) = post(&server, "/v1/runs", &unknown_field.to_string());
    assert_eq!(code, 422, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alpah")
    );
    assert_eq!(reply["error"]["field"], "agent.config.alpah");

    let mut unknown_env = good.clone();
    unknown_env["env"]["id"] = json!("gridworld/nowhere");
    let (code, reply) = post(&server, "/v1/runs", &unknown_env.to_string());
    assert_eq!(code, 422, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gridworld/nowhere")
    );

    let (code, reply) = get(&server, "/v1/runs/run-999");
    assert_eq!(code, 404);
    assert_eq!(reply["error"]["code"], "run_not_found");

    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(10_000));
    let (code, _) = post(&server, "/v1/runs", &big);
    assert_eq!(code, 413);

    // Nothing was stored by any of these.
    let (_, list) = get(&server, "/v1/runs");
    assert_eq!(list["runs"].as_array().unwrap().len(), 0);
}

#[test]
fn a_token_guards_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some("s3cret"), &[]);
    let url = format!("{}/v1/runs", server.base);
    let (code, reply) = request("GET", &url, None, None);
    assert_eq!(code, 401);
    assert_eq!(reply["error"]["field"], "Authorization");
    let (code, _) = request("GET", &url, Some("wrong"), None);
    assert_eq!(code, 401);
    let (code, _) = request(
        "POST",
        &url,
        Some("wrong"),
        Some(&spec_file("01-q-learning-cliff.json").to_string()),
    );
    assert_eq!(code, 401);
    assert_eq!(request("GET", &url, Some("s3cret"), None).0, 200);
    assert_eq!(
        request("GET", &format!("{}/metrics", server.base), None, None).0,
        401
    );
    assert_eq!(
        request("GET", &format!("{}/healthz", server.base), None, None).0,
        200
    );
    // Nothing was created by the refused POST.
    let (_, list) = request("GET", &url, Some("s3cret"), None);
    assert_eq!(list["runs"].as_array().unwrap().len(), 0);
}

#[test]
fn the_catalogue_openapi_and_prometheus_describe_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let (_, agents) = get(&server, "/v1/catalog/agents");
    let q = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "q-learning")
        .unwrap();
    let alpha = q["hyperparameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "alpha")
        .unwrap();
    assert!(alpha["doc"].as_str().unwrap().len() > 5);
    assert_eq!(q["config_schema"]["additionalProperties"], false);
    let (code, schema) = get(&server, "/v1/catalog/agents/dqn/schema");
    assert_eq!(code, 200);
    assert!(schema["properties"]["gamma"].is_object());
    let (_, envs) = get(&server, "/v1/catalog/envs");
    assert!(
        envs["envs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "CartPole-v1")
    );

    let (_, openapi) = get(&server, "/openapi.json");
    let paths = openapi["paths"].as_object().unwrap();
    for path in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/resume",
        "/v1/runs/{id}/metrics",
        "/v1/runs/{id}/events",
        "/v1/runs/{id}/logs",
        "/v1/catalog/envs",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }

    let mut response = agent()
        .get(&format!("{}/metrics", server.base))
        .call()
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.contains("rl_lab_runs{status=\"completed\"} 0"));
    assert!(text.contains("rl_lab_open_env_instances"));
}

#[test]
fn client_commands_submit_and_list_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/01-q-learning-cliff.json");
    let output = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .arg("submit")
        .arg(&spec)
        .env("RL_LAB_SERVER", &server.base)
        .env_remove("RL_LAB_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success());
    let id = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(id.starts_with("run-"));
    let watch = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args(["watch", &id, "--server", &server.base])
        .env_remove("RL_LAB_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        watch.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    let runs = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args(["runs", "--json", "--server", &server.base])
        .env_remove("RL_LAB_TOKEN")
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "completed");
    let missing = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args(["watch", "run-404", "--server", &server.base])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn tensorboard_reads_our_event_files() {
    let python = std::env::var("RL_LAB_TEST_PYTHON").expect(
        "RL_LAB_TEST_PYTHON must name a Python with tensorboard installed: run the suite with ./scripts/test",
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let id = submit(&server, &spec_file("01-q-learning-cliff.json"));
    wait_status(&server, &id, &["completed"], Duration::from_secs(60));
    let tb = dir.path().join("runs").join(&id).join("tb");
    let script = r#"
import sys, json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
events = acc.Scalars("rollout/episode_return")
print(json.dumps({"tags": acc.Tags()["scalars"], "count": len(events),
                  "first": [events[0].step, events[0].value], "last": [events[-1].step, events[-1].value]}))
"#;
    let output = Command::new(python)
        .args(["-c", script])
        .arg(&tb)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(read["count"], 500);
    let (_, metrics) = get(
        &server,
        &format!("/v1/runs/{id}/metrics?name=rollout/episode_return&limit=100000"),
    );
    let series = &metrics["metrics"]["rollout/episode_return"];
    assert_eq!(read["first"][0], series["step"][0]);
    assert_eq!(read["first"][1], series["value"][0]);
    assert_eq!(read["last"][0], series["step"][499]);
    assert!(
        read["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "rollout/episode_length")
    );
}

#[test]
fn artefacts_are_listed_served_and_guarded_and_evaluation_records_a_gif_or_frames() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let id = submit(&server, &spec_file("01-q-learning-cliff.json"));
    wait_status(&server, &id, &["completed"], Duration::from_secs(60));
    let (code, listing) = get(&server, &format!("/v1/runs/{id}/artifacts"));
    assert_eq!(code, 200);
    let names: Vec<&str> = listing["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in [
        "metrics.jsonl",
        "spec.json",
        "summary.json",
        "tables.json",
        "agent.json",
    ] {
        assert!(names.contains(&name), "{name} not listed: {names:?}");
    }
    let tb = names
        .iter()
        .find(|n| n.starts_with("tb/"))
        .expect("a TensorBoard file");

    let fetch = |name: &str| {
        let mut response = agent()
            .get(&format!("{}/v1/runs/{id}/artifacts/{name}", server.base))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.body_mut().read_to_vec().unwrap();
        (status, kind, bytes)
    };
    let (status, kind, bytes) = fetch("metrics.jsonl");
    assert_eq!((status, kind.as_str()), (200, "application/x-ndjson"));
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 500);
    assert_eq!(fetch("summary.json").1, "application/json");
    assert_eq!(fetch(&tb.replace('/', "%2F")).0, 200);
    // Traversal in every spelling: never served.
    for name in [
        "..%2F..%2Frl-lab.db",
        "%2E%2E%2Frl-lab.db",
        "%2Fetc%2Fpasswd",
        "..",
        "tb%2F..%2F..%2Frl-lab.db",
        "%5C..%5Crl-lab.db",
    ] {
        let (status, _, bytes) = fetch(name);
        assert!(status == 400 || status == 404, "{name}: {status}");
        assert!(!bytes.starts_with(b"SQLite"), "{name} leaked the database");
    }
    assert_eq!(fetch("nothing.json").0, 404);

    let (code, report) = post(
        &server,
        &format!("/v1/runs/{id}/evaluate"),
        r#"{"episodes": 3, "seed": 7, "record": true}"#,
    );
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["returns"], json!([-13.0, -13.0, -13.0]));
    assert_eq!(report["lengths"], json!([13, 13, 13]));
    let gif = report["gif"].as_str().unwrap();
    let (status, kind, bytes) = fetch(gif);
    assert_eq!((status, kind.as_str()), (200, "image/gif"));
    assert!(bytes.starts_with(b"GIF89a"));
    let (code, reply) = post(
        &server,
        &format!("/v1/runs/{id}/evaluate"),
        r#"{"episods": 3}"#,
    );
    assert_eq!(code, 422);
    assert_eq!(reply["error"]["field"], "episods");

    // Frames for a replay: the reset's picture and one per step, each a
    // PNG with the action and reward that led to it, Q(s, ·) in every
    // state acted in, and the grid's learned values and arrows.
    let (code, report) = post(
        &server,
        &format!("/v1/runs/{id}/evaluate"),
        r#"{"episodes": 1, "seed": 7, "record": "frames"}"#,
    );
    assert_eq!(code, 200, "{report}");
    let replay = &report["replay"];
    let frames = replay["frames"].as_array().unwrap();
    assert_eq!((replay["length"].as_u64(), frames.len()), (Some(13), 14));
    assert_eq!(replay["episode_return"], -13.0);
    assert_eq!(replay["cut"], false);
    assert!(frames[0]["action"].is_null() && frames[0]["reward"].is_null());
    for (k, frame) in frames.iter().enumerate() {
        let png = frame["png"].as_str().unwrap();
        assert!(png.starts_with("iVBORw0KGgo"), "frame {k} is a PNG");
        if k > 0 {
            assert_eq!(frame["reward"], -1.0, "frame {k}");
        }
        let values = frame["action_values"].as_array();
        assert_eq!(values.map(Vec::len), (k < 13).then_some(4), "frame {k}");
    }
    let grid = &replay["grid"];
    assert_eq!(
        (grid["rows"].as_u64(), grid["cols"].as_u64()),
        (Some(4), Some(12))
    );
    assert_eq!(grid["values"].as_array().unwrap().len(), 4);
    assert_eq!(grid["policy"][3].as_str().unwrap().chars().count(), 12);
    assert!(report.get("gif").is_none());
    let (code, reply) = post(
        &server,
        &format!("/v1/runs/{id}/evaluate"),
        r#"{"record": "video"}"#,
    );
    assert_eq!(code, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "record");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains(r#""frames""#),
        "{reply}"
    );
}

#[test]
fn runs_beyond_the_limit_queue_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &["--max-concurrent-runs", "1"]);
    let first = submit(&server, &slow_spec(3_000));
    let second = submit(&server, &spec_file("01-q-learning-cliff.json"));
    let third = submit(&server, &spec_file("02-sarsa-cliff.json"));
    let (_, run) = get(&server, &format!("/v1/runs/{third}"));
    assert_eq!(run["status"], "queued");
    let runs: Vec<Value> = [&first, &second, &third]
        .iter()
        .map(|id| wait_status(&server, id, &["completed"], Duration::from_secs(120)))
        .collect();
    // One at a time: each started after the one before it finished.
    for pair in runs.windows(2) {
        let finished = pair[0]["finished_at"].as_f64().unwrap();
        let started = pair[1]["started_at"].as_f64().unwrap();
        assert!(
            started >= finished,
            "{} started before {} ended",
            pair[1]["id"],
            pair[0]["id"]
        );
    }
    let (_, page) = get(&server, "/v1/runs?limit=2");
    assert_eq!(page["runs"][0]["id"], third.as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = get(&server, &format!("/v1/runs?limit=2&cursor={cursor}"));
    assert_eq!(rest["runs"][0]["id"], first.as_str());
    assert!(rest["next_cursor"].is_null());
}

#[test]
fn the_gym_shutdown_route_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), None, &[]);
    let (code, _) = post(&server, "/v1/shutdown/", "");
    assert!(code < 300, "shutdown answered {code}");
    server.wait_exit(Duration::from_secs(10));
}
