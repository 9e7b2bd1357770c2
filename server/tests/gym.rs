//! The gym-http-api routes, in process: the whole app served on an
//! ephemeral port, driven by a real HTTP client (ureq) the way
//! gym-http-api's clients drive it. The 32-client load test and the
//! documented 4xx cases against the real binary are in the root
//! package's `tests/gym.rs`.

use rl_env::{Action, Env, VectorEnv};
use rl_server::{AppState, ServeConfig, Shared};
use serde_json::{Value, json};
use std::time::Duration;

struct TestServer {
    base: String,
    state: Shared,
    data: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl TestServer {
    fn start(configure: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), data.path().into());
        configure(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let state = AppState::open(config).unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = rl_server::app(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        TestServer {
            base,
            state,
            data,
            runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request as gym-http-api's clients send it: always with
    /// `Content-Type: application/json`, even on GET with no body.
    fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, body);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn call_text(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = self.url(path);
        let response = if method == "GET" {
            agent
                .get(&url)
                .header("Content-Type", "application/json")
                .call()
        } else {
            agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body)
        };
        let mut response = response.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    fn create(&self, env_id: &str, seed: Option<u64>) -> String {
        let body = match seed {
            Some(seed) => json!({"env_id": env_id, "seed": seed}),
            None => json!({"env_id": env_id}),
        };
        let (status, reply) = self.call("POST", "/v1/envs/", &body.to_string());
        assert_eq!(status, 200, "{reply}");
        reply["instance_id"].as_str().unwrap().to_string()
    }
}

fn message(reply: &Value) -> &str {
    reply["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"))
}

#[test]
fn a_gym_http_api_client_session_on_cartpole_v0() {
    let server = TestServer::start(|_| {});
    let id = server.create("CartPole-v0", Some(3));
    assert_eq!(id.len(), 8);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let (status, all) = server.call("GET", "/v1/envs/", "");
    assert_eq!(status, 200);
    assert_eq!(all["all_envs"][&id], "CartPole-v0");

    let (_, space) = server.call("GET", &format!("/v1/envs/{id}/action_space/"), "");
    assert_eq!(
        space["info"],
        json!({"name": "Discrete", "n": 2, "start": 0, "dtype": "int64"})
    );
    let (_, space) = server.call("GET", &format!("/v1/envs/{id}/observation_space/"), "");
    let info = &space["info"];
    assert_eq!(info["name"], "Box");
    assert_eq!(info["shape"], json!([4]));
    // Gymnasium's space: float32, bounds rounded to float32.
    assert_eq!(info["dtype"], "float32");
    // CartPole's velocities are unbounded: ±inf travels as ±1e100.
    assert_eq!(info["high"][1], json!(1e100));
    assert_eq!(info["low"][3], json!(-1e100));
    assert_eq!(info["high"][0], json!(f64::from(4.8f32)));

    let (_, sample) = server.call("GET", &format!("/v1/envs/{id}/action_space/sample"), "");
    assert!(matches!(sample["action"].as_i64(), Some(0 | 1)), "{sample}");
    for (x, member) in [("0", true), ("1", true), ("2", false), ("-1", false)] {
        let (_, reply) = server.call(
            "GET",
            &format!("/v1/envs/{id}/action_space/contains/{x}"),
            "",
        );
        assert_eq!(reply["member"], member, "{x}");
    }
    let path = format!("/v1/envs/{id}/observation_space/contains");
    let (_, reply) = server.call("POST", &path, r#"{"name": "Box", "shape": [4]}"#);
    assert_eq!(reply["member"], true);
    let (_, reply) = server.call("POST", &path, r#"{"name": "Discrete"}"#);
    assert_eq!(reply["member"], false);
    let (_, reply) = server.call("POST", &path, r#"{"observation": [0.0, 1e9, 0.1, -3]}"#);
    assert_eq!(reply["member"], true);
    let (_, reply) = server.call("POST", &path, r#"{"observation": [5.0, 0, 0, 0]}"#);
    assert_eq!(reply["member"], false);

    // The Python client resets with a `null` body.
    let (status, reset) = server.call("POST", &format!("/v1/envs/{id}/reset/"), "null");
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["observation"].as_array().unwrap().len(), 4);

    // Stepping always right ends the episode quickly; rewards are floats.
    let mut steps = 0;
    loop {
        let (status, text) = server.call_text(
            "POST",
            &format!("/v1/envs/{id}/step/"),
            r#"{"action": 1, "render": false}"#,
        );
        assert_eq!(status, 200, "{text}");
        assert!(text.contains(r#""reward":1.0"#), "{text}");
        let step: Value = serde_json::from_str(&text).unwrap();
        steps += 1;
        assert_eq!(
            step["done"].as_bool().unwrap(),
            step["terminated"].as_bool().unwrap() || step["truncated"].as_bool().unwrap()
        );
        if step["done"] == true {
            assert_eq!(step["terminated"], true);
            break;
        }
        assert!(steps < 200);
    }

    let (status, text) = server.call_text("POST", &format!("/v1/envs/{id}/close/"), "null");
    assert_eq!((status, text.as_str()), (204, ""));
    let (status, reply) = server.call("POST", &format!("/v1/envs/{id}/reset/"), "");
    assert_eq!(status, 400);
    assert_eq!(message(&reply), format!("Instance_id {id} unknown"));
    assert_eq!(server.state.envs.open_count(), 0);
}

/// The same seed gives the same episode over HTTP as in process, and
/// `reset {seed}` replays it.
#[test]
fn seeded_instances_replay_the_in_process_trajectory() {
    let server = TestServer::start(|_| {});
    let mut local = server
        .state
        .engine
        .envs
        .make("CartPole-v1", &Value::Null)
        .unwrap();
    let (first, _) = local.reset(Some(11)).unwrap();
    let actions = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1];
    let mut expected = vec![serde_json::to_value(&first).unwrap()];
    for &a in &actions {
        let step = local.step(&Action::Discrete(a)).unwrap();
        expected.push(serde_json::to_value(&step.obs).unwrap());
    }

    let id = server.create("CartPole-v1", Some(11));
    for round in 0..2 {
        // The creation seed applies to the first reset; then reset {seed}.
        let body = if round == 0 {
            ""
        } else {
            r#"{"seed": 11, "options": {}}"#
        };
        let (_, reset) = server.call("POST", &format!("/v1/envs/{id}/reset/"), body);
        let mut got = vec![reset["observation"].clone()];
        for &a in &actions {
            let (_, step) = server.call(
                "POST",
                &format!("/v1/envs/{id}/step/"),
                &json!({"action": a}).to_string(),
            );
            got.push(step["observation"].clone());
        }
        assert_eq!(got, expected, "round {round}");
    }
    let (status, reply) = server.call(
        "POST",
        &format!("/v1/envs/{id}/reset/"),
        r#"{"options": {"low": -0.1}}"#,
    );
    assert_eq!(status, 400);
    assert!(message(&reply).contains("'low'"), "{reply}");
}

#[test]
fn old_gym_ids_resolve_and_errors_use_gym_http_api_texts() {
    let server = TestServer::start(|_| {});
    let lake = server.create("FrozenLake-v0", Some(0));
    let (_, space) = server.call("GET", &format!("/v1/envs/{lake}/observation_space/"), "");
    assert_eq!(space["info"]["n"], 16);
    let (_, reset) = server.call("POST", &format!("/v1/envs/{lake}/reset/"), "null");
    assert_eq!(reset["observation"], 0);
    let (status, step) = server.call(
        "POST",
        &format!("/v1/envs/{lake}/step/"),
        r#"{"action": 2.0}"#,
    );
    assert_eq!(status, 200, "{step}");
    assert!(step["reward"].is_f64(), "{step}");
    assert!(step["info"]["prob"].is_f64(), "{step}");

    let (status, reply) = server.call("POST", "/v1/envs/", r#"{"env_id": "CartPole-v9"}"#);
    assert_eq!(status, 400);
    assert_eq!(
        message(&reply),
        "Attempted to look up malformed environment ID 'CartPole-v9'"
    );
    assert_eq!(reply["suggestion"], "CartPole-v0");
    let (status, reply) = server.call("POST", "/v1/envs/", "null");
    assert_eq!(status, 400);
    assert_eq!(
        message(&reply),
        "A required request parameter 'env_id' was not provided"
    );
    let (status, reply) = server.call(
        "POST",
        &format!("/v1/envs/{lake}/step/"),
        r#"{"render": false}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(
        message(&reply),
        "A required request parameter 'action' was not provided"
    );
    let (status, reply) = server.call(
        "POST",
        &format!("/v1/envs/{lake}/step/"),
        r#"{"action": 4}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(
        message(&reply),
        "action 4 is not in the action space Discrete(4)"
    );
    let (status, reply) = server.call("POST", &format!("/v1/envs/{lake}/step/"), r#"{"action": 1"#);
    assert_eq!(status, 400);
    assert!(
        message(&reply).starts_with("malformed JSON body"),
        "{reply}"
    );
    let (status, reply) = server.call(
        "POST",
        &format!("/v1/envs/{lake}/step/"),
        r#"{"action": 1, "speed": 2}"#,
    );
    assert_eq!(status, 400);
    assert!(message(&reply).contains("unknown field `speed`"), "{reply}");
    let (status, reply) = server.call("GET", "/v1/envs/00000000/action_space/", "");
    assert_eq!(status, 400);
    assert_eq!(message(&reply), "Instance_id 00000000 unknown");
    let (status, reply) = server.call(
        "GET",
        &format!("/v1/envs/{lake}/action_space/contains/left"),
        "",
    );
    assert_eq!(status, 400, "{reply}");

    // A step before any reset is refused, not a panic.
    let fresh = server.create("MinAtar/Breakout-v1", None);
    let (status, reply) = server.call(
        "POST",
        &format!("/v1/envs/{fresh}/step/"),
        r#"{"action": 0}"#,
    );
    assert_eq!(status, 400);
    assert!(message(&reply).contains("call reset"), "{reply}");

    let (status, reply) = server.call("POST", "/v1/upload/", r#"{"training_dir": "/tmp/x"}"#);
    assert_eq!(status, 400);
    assert!(message(&reply).contains("'api_key'"), "{reply}");
    let (status, _) = server.call(
        "POST",
        "/v1/upload/",
        r#"{"training_dir": "/tmp/x", "api_key": "k"}"#,
    );
    assert_eq!(status, 410);
}

#[test]
fn the_instance_cap_gives_429_and_idle_instances_are_closed() {
    let server = TestServer::start(|c| {
        c.max_instances = 2;
        c.instance_idle_timeout = Duration::from_millis(300);
    });
    let a = server.create("CartPole-v1", None);
    server.create("CartPole-v1", None);
    let (status, reply) = server.call("POST", "/v1/envs/", r#"{"env_id": "CartPole-v1"}"#);
    assert_eq!(status, 429);
    assert!(message(&reply).contains("limit is 2"), "{reply}");
    let (status, _) = server.call(
        "POST",
        "/v1/vector-envs",
        r#"{"env_id": "CartPole-v1", "num_envs": 2}"#,
    );
    assert_eq!(status, 429);
    assert_eq!(server.state.envs.open_count(), 2);

    // Keep `a` busy past the timeout; the other goes idle and is reaped.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(100));
        let (status, _) = server.call("GET", &format!("/v1/envs/{a}/action_space/"), "");
        assert_eq!(status, 200);
    }
    let began = std::time::Instant::now();
    while server.state.envs.open_count() > 1 {
        assert!(began.elapsed() < Duration::from_secs(5), "not reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(450));
    let (status, reply) = server.call("POST", &format!("/v1/envs/{a}/reset/"), "");
    assert_eq!(status, 400);
    assert_eq!(message(&reply), format!("Instance_id {a} unknown"));
    assert_eq!(server.state.envs.open_count(), 0);
}

#[test]
fn monitor_records_gifs_under_the_data_folder_only() {
    let server = TestServer::start(|_| {});
    let elsewhere = tempfile::tempdir().unwrap();
    let id = server.create("CartPole-v1", Some(1));
    let (status, _) = server.call(
        "POST",
        &format!("/v1/envs/{id}/monitor/start/"),
        &json!({"directory": elsewhere.path(), "force": true, "resume": false, "video_callable": true})
            .to_string(),
    );
    assert_eq!(status, 204);
    for _ in 0..2 {
        server.call("POST", &format!("/v1/envs/{id}/reset/"), "null");
        loop {
            let (_, step) =
                server.call("POST", &format!("/v1/envs/{id}/step/"), r#"{"action": 0}"#);
            if step["done"] == true {
                break;
            }
        }
    }
    // An episode in progress is written at monitor/close.
    server.call("POST", &format!("/v1/envs/{id}/reset/"), "null");
    server.call("POST", &format!("/v1/envs/{id}/step/"), r#"{"action": 0}"#);
    let (status, _) = server.call("POST", &format!("/v1/envs/{id}/monitor/close/"), "");
    assert_eq!(status, 204);

    let dir = server.data.path().join("monitor").join(&id);
    let began = std::time::Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(dir.join("episodes.jsonl")).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() == 3 && dir.join("episode-000002.gif").exists() {
            break lines;
        }
        assert!(began.elapsed() < Duration::from_secs(20), "{lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines[0]["gif"], "episode-000000.gif");
    assert_eq!(lines[0]["terminated"], true);
    assert_eq!(lines[2]["length"], 1);
    let gif = std::fs::read(dir.join("episode-000000.gif")).unwrap();
    assert_eq!(&gif[..6], b"GIF89a");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn vector_instances_match_the_in_process_vector_env() {
    let server = TestServer::start(|_| {});
    let (status, created) = server.call(
        "POST",
        "/v1/vector-envs",
        r#"{"env_id": "CartPole-v1", "num_envs": 4, "seed": 5}"#,
    );
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["action_space"]["n"], 2);
    let id = created["instance_id"].as_str().unwrap();
    let registry = &server.state.engine.envs;
    let mut local = VectorEnv::new(4, |_| registry.make("CartPole-v1", &Value::Null)).unwrap();

    let (status, reply) = server.call(
        "POST",
        &format!("/v1/vector-envs/{id}/step"),
        r#"{"actions": [0, 0, 0, 0]}"#,
    );
    assert_eq!(status, 400, "a step before reset: {reply}");
    let (_, reset) = server.call("POST", &format!("/v1/vector-envs/{id}/reset"), "null");
    let batch = local.reset(Some(5)).unwrap();
    assert_eq!(
        reset["observations"],
        serde_json::to_value(batch.observations.to_vec()).unwrap()
    );
    let mut autoresets = 0;
    for t in 0..40 {
        let actions: Vec<i64> = (0..4).map(|i| (t + i) % 2).collect();
        let (status, step) = server.call(
            "POST",
            &format!("/v1/vector-envs/{id}/step"),
            &json!({ "actions": actions }).to_string(),
        );
        assert_eq!(status, 200, "{step}");
        let actions: Vec<Action> = actions.into_iter().map(Action::Discrete).collect();
        let batch = local.step(&actions).unwrap();
        assert_eq!(
            step["observations"],
            serde_json::to_value(batch.observations.to_vec()).unwrap()
        );
        assert_eq!(step["rewards"], json!(batch.rewards.to_vec()));
        assert_eq!(step["terminated"], json!(batch.terminated.to_vec()));
        assert_eq!(step["autoreset"], json!(batch.autoreset.to_vec()));
        autoresets += batch.autoreset.iter().filter(|&&a| a).count();
    }
    assert!(
        autoresets > 0,
        "40 steps of alternating pushes end some episodes"
    );

    let (status, reply) = server.call(
        "POST",
        &format!("/v1/vector-envs/{id}/step"),
        r#"{"actions": [0, 1]}"#,
    );
    assert_eq!(status, 400);
    assert!(message(&reply).contains("batch of 2"), "{reply}");
    let (status, reply) = server.call("POST", &format!("/v1/envs/{id}/step/"), r#"{"action": 0}"#);
    assert_eq!(status, 400);
    assert!(message(&reply).contains("vector"), "{reply}");
    let (status, _) = server.call("POST", &format!("/v1/vector-envs/{id}/close"), "");
    assert_eq!(status, 204);
    assert_eq!(server.state.envs.open_count(), 0);
    let (status, _) = server.call(
        "POST",
        "/v1/vector-envs",
        r#"{"env_id": "CartPole-v1", "num_envs": 0}"#,
    );
    assert_eq!(status, 400);
}

#[test]
fn the_websocket_steps_like_http() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start(|_| {});
    let http = server.create("CartPole-v1", Some(8));
    let ws = server.create("CartPole-v1", Some(8));
    let mut expected = Vec::new();
    let (_, reset) = server.call("POST", &format!("/v1/envs/{http}/reset/"), "");
    expected.push(reset["observation"].clone());
    for a in [1, 0, 1, 1, 0] {
        let (_, step) = server.call(
            "POST",
            &format!("/v1/envs/{http}/step/"),
            &json!({"action": a}).to_string(),
        );
        expected.push(step["observation"].clone());
    }

    let url = format!(
        "{}/v1/envs/{ws}/ws",
        server.base.replace("http://", "ws://")
    );
    let got = server.runtime.block_on(async move {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut ask = async |request: Value| {
            socket
                .send(Message::text(request.to_string()))
                .await
                .unwrap();
            match socket.next().await.unwrap().unwrap() {
                Message::Text(text) => serde_json::from_str::<Value>(&text).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        let mut got = vec![ask(json!({"op": "reset"})).await["observation"].clone()];
        for a in [1, 0, 1, 1, 0] {
            let step = ask(json!({"op": "step", "action": a})).await;
            assert!(step["reward"].is_f64());
            got.push(step["observation"].clone());
        }
        let error = ask(json!({"op": "step", "action": 7})).await;
        assert_eq!(error["status"], 400);
        assert!(error["message"].as_str().unwrap().contains("action 7"));
        let error = ask(json!({"op": "jump"})).await;
        assert_eq!(error["status"], 400);
        got
    });
    assert_eq!(got, expected);
    let (status, _) = server.call("GET", "/v1/envs/ffffffff/ws", "");
    assert_eq!(status, 400);
}

#[test]
fn every_env_route_is_in_the_openapi_document() {
    let (_, openapi) = rl_server::routes();
    let paths: Vec<&String> = openapi.paths.paths.keys().collect();
    for path in [
        "/v1/envs/",
        "/v1/envs/{instance_id}/reset/",
        "/v1/envs/{instance_id}/step/",
        "/v1/envs/{instance_id}/action_space/",
        "/v1/envs/{instance_id}/observation_space/",
        "/v1/envs/{instance_id}/action_space/sample",
        "/v1/envs/{instance_id}/action_space/contains/{x}",
        "/v1/envs/{instance_id}/observation_space/contains",
        "/v1/envs/{instance_id}/monitor/start/",
        "/v1/envs/{instance_id}/monitor/close/",
        "/v1/envs/{instance_id}/close/",
        "/v1/envs/{instance_id}/ws",
        "/v1/upload/",
        "/v1/shutdown/",
        "/v1/vector-envs",
        "/v1/vector-envs/{instance_id}",
        "/v1/vector-envs/{instance_id}/reset",
        "/v1/vector-envs/{instance_id}/step",
        "/v1/vector-envs/{instance_id}/close",
    ] {
        assert!(
            paths.iter().any(|p| *p == path),
            "{path} missing from {paths:?}"
        );
    }
}

#[test]
fn shutdown_closes_every_instance_and_signals_the_server() {
    let server = TestServer::start(|_| {});
    server.create("CartPole-v1", None);
    server.create("Acrobot-v1", None);
    let state = server.state.clone();
    let waiter = server
        .runtime
        .spawn(async move { state.envs.shutdown_requested().await });
    let (status, text) = server.call_text("POST", "/v1/shutdown/", "");
    assert_eq!((status, text.as_str()), (200, "Server shutting down"));
    assert_eq!(server.state.envs.open_count(), 0);
    server
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), waiter).await })
        .expect("the shutdown signal fires")
        .unwrap();
}

/// gym-http-api's parameter rules, route by route, as its server
/// (`gym_http_server.py`) applies them: a required parameter that is
/// absent, `null`, `""` or `[]` is "not provided" (400, naming it);
/// `monitor/start` requires `directory` and checks it before the instance;
/// `upload` requires `training_dir`, then `api_key`; an optional parameter
/// given as `null`, `""` or `[]` takes its default.
#[test]
fn gym_http_api_parameter_rules() {
    let server = TestServer::start(|_| {});
    let missing = |path: &str, body: &str, name: &str| {
        let (status, reply) = server.call("POST", path, body);
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert_eq!(
            message(&reply),
            format!("A required request parameter '{name}' was not provided"),
            "{path} {body}"
        );
    };
    for empty in ["", "null", r#""""#, "[]"] {
        let field = |name: &str| format!("{{\"{name}\": {empty}}}").replace(": }", ": null}");
        missing("/v1/envs/", &field("env_id"), "env_id");
        let id = server.create("CartPole-v1", Some(1));
        server.call("POST", &format!("/v1/envs/{id}/reset/"), "null");
        missing(&format!("/v1/envs/{id}/step/"), &field("action"), "action");
        missing(
            &format!("/v1/envs/{id}/monitor/start/"),
            &field("directory"),
            "directory",
        );
        missing("/v1/upload/", &field("training_dir"), "training_dir");
        missing(
            "/v1/upload/",
            &format!("{{\"training_dir\": \"tmp\", \"api_key\": {empty}}}")
                .replace(": }", ": null}"),
            "api_key",
        );
        // Optional parameters given empty take their defaults.
        let (status, reply) = server.call(
            "POST",
            &format!("/v1/envs/{id}/step/"),
            &format!("{{\"action\": 0, \"render\": {empty}}}").replace(": }", ": null}"),
        );
        assert_eq!(status, 200, "render {empty}: {reply}");
        let (status, reply) = server.call(
            "POST",
            &format!("/v1/envs/{id}/monitor/start/"),
            &format!(
                "{{\"directory\": \"tmp\", \"force\": {empty}, \"resume\": {empty}, \"video_callable\": false}}"
            )
            .replace(": ,", ": null,"),
        );
        assert_eq!(status, 204, "force/resume {empty}: {reply}");
        server.call("POST", &format!("/v1/envs/{id}/monitor/close/"), "");
    }
    // An empty body has no parameter at all.
    missing("/v1/envs/", "", "env_id");
    missing("/v1/upload/", "{}", "training_dir");
    // The parameter is checked before the instance, as the original does;
    // with it, an unknown instance is the error.
    missing("/v1/envs/nope0000/monitor/start/", "{}", "directory");
    let (status, reply) = server.call(
        "POST",
        "/v1/envs/nope0000/monitor/start/",
        r#"{"directory": "tmp"}"#,
    );
    assert_eq!(status, 400);
    assert!(message(&reply).contains("Instance_id nope0000"), "{reply}");
    // A well-formed upload: nothing to upload to any more.
    let (status, _) = server.call(
        "POST",
        "/v1/upload/",
        r#"{"training_dir": "tmp", "api_key": "k", "algorithm_id": ""}"#,
    );
    assert_eq!(status, 410);
}
