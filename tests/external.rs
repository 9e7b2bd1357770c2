//! External envs end to end: the real `rl-lab serve` on an ephemeral port,
//! and real Python env processes (`tests/external/env_process.py`, which
//! drives Gymnasium's FrozenLake-v1 in its own loop with
//! `rl_lab_env.PolicyClient`) connecting to a run over its WebSocket.
//!
//! Needs `RL_LAB_TEST_PYTHON`: a Python with gymnasium and numpy
//! (`./scripts/test` makes one). Without it these tests fail, not skip.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{Server, agent};

const TOKEN: &str = "external-test-token";

fn python() -> String {
    std::env::var("RL_LAB_TEST_PYTHON").expect(
        "RL_LAB_TEST_PYTHON must name a Python with gymnasium and numpy: run the suite with ./scripts/test",
    )
}

/// `env_process.py MODE URL RUN [TOKEN]`, with the package on the path.
fn env_process(server: &Server, mode: &str, run: &str, token: Option<&str>) -> Child {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(python());
    command
        .arg(root.join("tests/external/env_process.py"))
        .args([mode, &server.base, run])
        .args(token)
        .env("PYTHONPATH", root.join("python/rl-lab-env"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command.spawn().expect("start the Python env process")
}

/// The JSON lines a finished env process printed.
fn output(child: Child) -> Vec<Value> {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the env process failed: {:?}",
        out.status
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn call(server: &Server, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!("{}{path}", server.base);
    let auth = format!("Bearer {TOKEN}");
    let response = match body {
        Some(body) => agent()
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
        None if method == "POST" => agent().post(&url).header("Authorization", &auth).send(""),
        None => agent().get(&url).header("Authorization", &auth).call(),
    };
    let mut response = response.expect("the request reaches the server");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Q-learning on FrozenLake's spaces, with the external env.
fn spec(episodes: u64) -> Value {
    json!({
        "env": {"id": "external", "config": {
            "observation_space": {"type": "Discrete", "n": 16},
            "action_space": {"type": "Discrete", "n": 4},
            "step_timeout_seconds": 5
        }},
        "agent": {"id": "q-learning", "config": {"epsilon": 0.3}},
        "budget": {"episodes": episodes},
        "eval": {"episodes": 0},
        "seed": 4
    })
}

/// A server on a fresh data folder (removed after the server), with `token`.
fn serve(token: Option<&str>) -> (tempfile::TempDir, Server) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), token, &[]);
    (data, server)
}

fn submit(server: &Server, spec: &Value) -> String {
    let (status, reply) = call(server, "POST", "/v1/runs", Some(spec));
    assert_eq!(status, 201, "{reply}");
    reply["id"].as_str().unwrap().to_string()
}

fn wait_status(server: &Server, id: &str, wanted: &str, limit: Duration) -> Value {
    let began = Instant::now();
    loop {
        let (code, run) = call(server, "GET", &format!("/v1/runs/{id}"), None);
        assert_eq!(code, 200, "{run}");
        if run["status"] == wanted {
            return run;
        }
        assert!(
            began.elapsed() < limit,
            "run {id} is not {wanted} after {limit:?}: {run}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Each training episode of the run as `[return, length, truncated]`,
/// from its `metrics.jsonl`.
fn recorded_episodes(server: &Server, id: &str) -> Vec<Value> {
    let url = format!("{}/v1/runs/{id}/artifacts/metrics.jsonl", server.base);
    let mut response = agent()
        .get(&url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.body_mut().read_to_string().unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record.get("episode").is_some())
        .map(|e| json!([e["return"], e["length"], e["truncated"]]))
        .collect()
}

/// Plain floats and ints, so that `0.0` and `0` compare equal.
fn normal(episodes: &[Value]) -> Vec<(f64, u64, bool)> {
    episodes
        .iter()
        .map(|e| {
            (
                e[0].as_f64().unwrap(),
                e[1].as_u64().unwrap(),
                e[2].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_process_drives_a_run_to_completion_and_the_metrics_are_its_episodes() {
    let (_data, server) = serve(Some(TOKEN));
    let id = submit(&server, &spec(40));
    let played = output(env_process(&server, "drive", &id, Some(TOKEN)));
    let played = played[0]["episodes"].as_array().unwrap().clone();
    assert_eq!(played.len(), 40, "the process plays exactly the budget");
    let run = wait_status(&server, &id, "completed", Duration::from_secs(10));
    assert_eq!(run["summary"]["episodes"], 40);
    assert_eq!(
        run["summary"]["eval"]["episodes"], 0,
        "external runs do not evaluate"
    );
    // It trained in one of the server's local worker processes, to which
    // the server relayed the env process's WebSocket.
    let (_, workers) = call(&server, "GET", "/v1/workers", None);
    let me = workers["server"].as_str().unwrap();
    let holder = run["worker"].as_str().unwrap();
    assert!(
        holder.starts_with(&format!("{me}.")),
        "{holder} ran it, not {me}'s worker"
    );
    let steps: u64 = normal(&played).iter().map(|e| e.1).sum();
    assert_eq!(run["summary"]["steps"], steps);
    assert_eq!(normal(&recorded_episodes(&server, &id)), normal(&played));
    // The agent learned from them: the Q table is not all zeros.
    let (status, agent_file) = call(
        &server,
        "GET",
        &format!("/v1/runs/{id}/artifacts/agent.json"),
        None,
    );
    assert_eq!(status, 200);
    assert!(agent_file.to_string().contains("\"q\""), "{agent_file}");
    // Only the process can start an episode: the lab cannot evaluate on it.
    let (status, reply) = call(&server, "POST", &format!("/v1/runs/{id}/evaluate"), None);
    assert_eq!(status, 409, "{reply}");

    // Without the token the WebSocket upgrade is refused like any /v1 route.
    let mut process = Command::new(python())
        .args(["-c", &format!(
            "from rl_lab_env.policy_client import PolicyClient\n\
             from rl_lab_env._websocket import HandshakeError\n\
             try:\n    PolicyClient('{}', '{id}', observation_space={{'type': 'Discrete', 'n': 16}}, action_space={{'type': 'Discrete', 'n': 4}})\n\
             except HandshakeError as e:\n    print(e.status)",
            server.base
        )])
        .env("PYTHONPATH", PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/rl-lab-env"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(process.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "401");
    process.wait().unwrap();
}

/// `env.num_envs: 3` takes three processes, one per copy, and refuses a
/// fourth; the loop steps the three together, each episode is recorded
/// once with an id unique across the processes, and the agent learns from
/// them all.
#[test]
fn three_processes_drive_the_three_copies_of_one_run() {
    let (_data, server) = serve(Some(TOKEN));
    let mut three = spec(60);
    three["env"]["num_envs"] = json!(3);
    let id = submit(&server, &three);
    let crowd = output(env_process(&server, "crowd3", &id, Some(TOKEN)));
    let reason = crowd[0]["refused"]
        .as_str()
        .expect("a fourth process is refused");
    assert!(
        reason.contains("this run takes 3 env processes (env.num_envs) and all are connected")
            && reason.contains("'lane 2'"),
        "{reason}"
    );
    let lanes: Vec<Child> = (1..=3)
        .map(|k| env_process(&server, &format!("lane{k}"), &id, Some(TOKEN)))
        .collect();
    let lanes: Vec<Value> = lanes
        .into_iter()
        .map(|child| output(child).remove(0))
        .collect();
    let run = wait_status(&server, &id, "completed", Duration::from_secs(20));
    let mut played = Vec::new();
    let mut ids = Vec::new();
    for lane in &lanes {
        let episodes = lane["episodes"].as_array().unwrap();
        assert!(!episodes.is_empty(), "every process plays: {lanes:?}");
        played.extend(episodes.iter().cloned());
        ids.extend(
            lane["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string()),
        );
    }
    let episodes = run["summary"]["episodes"].as_u64().unwrap();
    assert!((60..=62).contains(&episodes), "{episodes}");
    let sorted = |mut list: Vec<(f64, u64, bool)>| {
        list.sort_by(|a, b| a.partial_cmp(b).unwrap());
        list
    };
    assert_eq!(
        sorted(normal(&recorded_episodes(&server, &id))),
        sorted(normal(&played)),
        "the recorded episodes are the ones the processes finished"
    );
    // Steps of episodes the run's end cut short count too, up to the
    // last one the lab took before it finished.
    let finished_steps: u64 = normal(&played).iter().map(|e| e.1).sum();
    let unfinished_steps: u64 = lanes
        .iter()
        .map(|l| l["unfinished_steps"].as_u64().unwrap())
        .sum();
    let steps = run["summary"]["steps"].as_u64().unwrap();
    assert!(
        (finished_steps..=finished_steps + unfinished_steps).contains(&steps),
        "{steps} steps; the processes finished episodes of {finished_steps} and left {unfinished_steps}"
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "episode ids repeat across processes: {ids:?}"
    );
}

#[test]
fn a_second_process_is_refused_while_the_first_is_connected() {
    let (_data, server) = serve(Some(TOKEN));
    let id = submit(&server, &spec(5));
    let lines = output(env_process(&server, "twice", &id, Some(TOKEN)));
    let reason = lines[0]["refused"]
        .as_str()
        .expect("the second process is refused");
    assert!(
        reason.contains("one env process drives a run at a time")
            && reason.contains("'first env process'"),
        "{reason}"
    );
    call(&server, "POST", &format!("/v1/runs/{id}/cancel"), None);
}

#[test]
fn a_killed_process_truncates_its_episode_and_a_new_one_finishes_the_run() {
    let (_data, server) = serve(Some(TOKEN));
    let id = submit(&server, &spec(12));
    let mut hanging = env_process(&server, "hang", &id, Some(TOKEN));
    let mut line = String::new();
    BufReader::new(hanging.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let first: Value = serde_json::from_str(&line).unwrap();
    hanging.kill().unwrap(); // SIGKILL, mid-episode
    hanging.wait().unwrap();
    let second = output(env_process(&server, "drive", &id, Some(TOKEN)));
    wait_status(&server, &id, "completed", Duration::from_secs(10));

    let mut played = first["episodes"].as_array().unwrap().clone();
    assert_eq!(played.len(), 4);
    assert_eq!(
        played[3][1], 1,
        "the fourth episode was left after 1 action"
    );
    played.extend(second[0]["episodes"].as_array().unwrap().iter().cloned());
    assert_eq!(played.len(), 12);
    let recorded = normal(&recorded_episodes(&server, &id));
    assert_eq!(recorded, normal(&played));
    assert!(
        recorded[3].2,
        "the dropped episode is recorded as truncated"
    );
}

#[test]
fn cancel_while_waiting_for_a_process_ends_the_run_cancelled() {
    let (_data, server) = serve(Some(TOKEN));
    let id = submit(&server, &spec(5));
    wait_status(&server, &id, "running", Duration::from_secs(5));
    let began = Instant::now();
    let (status, _) = call(&server, "POST", &format!("/v1/runs/{id}/cancel"), None);
    assert_eq!(status, 202);
    wait_status(&server, &id, "cancelled", Duration::from_secs(2));
    assert!(began.elapsed() < Duration::from_secs(2));
    // A cancelled run takes no processes.
    let (status, reply) = call(&server, "GET", &format!("/v1/runs/{id}/connect"), None);
    assert_eq!(status, 409, "{reply}");
}

#[test]
fn bad_messages_get_errors_naming_the_field() {
    let (_data, server) = serve(None);
    let id = submit(&server, &spec(5));
    let replies: Vec<Value> = output(env_process(&server, "bad", &id, None));
    let reply = |name: &str| {
        replies
            .iter()
            .find_map(|r| r.get(name))
            .unwrap_or_else(|| panic!("no {name} in {replies:?}"))
            .clone()
    };
    assert_eq!(reply("unknown_run"), 404);
    let refused = reply("wrong_version");
    assert_eq!(refused["type"], "refused");
    assert!(
        refused["reason"].as_str().unwrap().starts_with("version:"),
        "{refused}"
    );
    for (name, field) in [
        ("not_json", "message"),
        ("unknown_type", "type"),
        ("no_episode", "episode_id"),
        ("missing_field", "observation"),
        ("wrong_episode", "episode_id"),
        ("outside_space", "observation"),
        ("second_start", "type"),
    ] {
        let error = reply(name);
        assert_eq!(error["type"], "error", "{name}: {error}");
        assert_eq!(error["field"], field, "{name}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{name}: {message}"
        );
    }
    assert_eq!(reply("early_reward_field"), "type");
    // A run that is not external takes no processes.
    let local = json!({"env": {"id": "FrozenLake-v1"}, "agent": {"id": "q-learning"}, "budget": {"episodes": 1}});
    let local = submit(&server, &local);
    let (status, reply) = call(&server, "GET", &format!("/v1/runs/{local}/connect"), None);
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("external"),
        "{reply}"
    );
    call(&server, "POST", &format!("/v1/runs/{id}/cancel"), None);
}

#[test]
fn external_specs_are_checked_and_refused_by_rl_lab_run() {
    let (data, server) = serve(None);
    let mut evaluating = spec(5);
    evaluating["eval"] = json!({"episodes": 3});
    let (status, reply) = call(&server, "POST", "/v1/runs", Some(&evaluating));
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "eval.episodes");
    let mut bad_space = spec(5);
    bad_space["env"]["config"]["action_space"] = json!({"type": "Discrete", "n": 0});
    let (status, reply) = call(&server, "POST", "/v1/runs", Some(&bad_space));
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "env.config.action_space.n");

    let file = data.path().join("external.json");
    std::fs::write(&file, spec(5).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .arg("run")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rl-lab serve"), "{stderr}");
}

#[test]
fn a_server_shutdown_interrupts_a_run_waiting_for_its_process() {
    let (data, mut server) = serve(Some(TOKEN));
    let id = submit(&server, &spec(5));
    wait_status(&server, &id, "running", Duration::from_secs(5));
    server.signal("-TERM");
    let took = server.wait_exit(Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(3),
        "the server took {took:?} to stop"
    );
    let server = Server::start(data.path(), Some(TOKEN), &[]);
    let run = wait_status(&server, &id, "interrupted", Duration::from_secs(2));
    assert!(run["error"].is_null(), "{run}");
}
