//! The OpenAPI document against the code. The next issues fuzz the server
//! from `/openapi.json`, so it must be exact:
//!
//! - every operation's JSON bodies, request and response, have a schema
//!   that says something (never `{}`);
//! - every status a route answers is listed on that route: each route is
//!   driven through its success and error cases through `app(state)`, no
//!   socket needed, and each status it answers is looked up in the
//!   document;
//! - an internal error sends a generic message and a request id, never a
//!   SQLite message or a file path, while the log line has the detail and
//!   the same id.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use rl_runner::RunStatus;
use rl_server::{AppState, ServeConfig, Shared};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The app of a fresh server, driven in process.
struct Harness {
    app: Router,
    state: Shared,
    doc: Value,
    data: tempfile::TempDir,
    /// (method, route, status) answered so far.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

/// What a request got back.
struct Answer {
    status: u16,
    request_id: Option<String>,
    body: Value,
    text: String,
}

impl Harness {
    async fn new(configure: impl FnOnce(&mut ServeConfig)) -> Harness {
        let data = tempfile::tempdir().unwrap();
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), data.path().into());
        config.max_concurrent_runs = 2;
        configure(&mut config);
        let state = AppState::open(config).unwrap();
        let app = rl_server::app(state.clone());
        let mut harness = Harness {
            app,
            state,
            doc: Value::Null,
            data,
            seen: Mutex::default(),
        };
        let served = harness.call("GET", "/openapi.json", None).await;
        assert_eq!(served.status, 200);
        harness.doc = served.body;
        harness
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string());
        // Streams (events, follow) are not read: their status is what counts.
        let is_stream = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
        let bytes = if is_stream {
            Bytes::new()
        } else {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            request_id,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// A request as gym-http-api's clients send them: always with
    /// `Content-Type: application/json`, and the body's length declared.
    async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> Answer {
        let body = body.unwrap_or("").to_string();
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// Sends `method uri`, checks the answer's status is `want`, and that
    /// `want` is documented on `route`.
    async fn expect(
        &self,
        method: &str,
        route: &str,
        uri: &str,
        body: Option<&str>,
        want: u16,
    ) -> Value {
        let answer = self.call(method, uri, body).await;
        self.check(method, route, uri, &answer, want);
        answer.body
    }

    fn check(&self, method: &str, route: &str, uri: &str, answer: &Answer, want: u16) {
        assert_eq!(answer.status, want, "{method} {uri}: {}", answer.text);
        let documented = documented(&self.doc, method, route);
        assert!(
            documented.contains(&want.to_string()),
            "{method} {route} answered {want} ({uri}: {}), but documents only {documented:?}",
            answer.text
        );
        if want >= 400 {
            // Every error body is JSON in one of the two documented shapes,
            // quoting the request id of its response.
            let request_id = answer.request_id.as_deref().expect("an x-request-id");
            let quoted = answer.body["error"]["request_id"]
                .as_str()
                .or(answer.body["request_id"].as_str());
            assert_eq!(quoted, Some(request_id), "{method} {uri}: {}", answer.text);
        }
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_string(), route.to_string(), want));
    }

    /// [`expect`](Self::expect) for each (method, route, uri, body, status).
    async fn expect_all(&self, cases: &[(String, String, String, &str, u16)]) {
        for (method, route, uri, body, want) in cases {
            self.expect(method, route, uri, Some(body), *want).await;
        }
    }

    /// Polls a run until it is in `status`.
    async fn wait_for(&self, id: &str, status: RunStatus) {
        let began = Instant::now();
        loop {
            let run = self.call("GET", &format!("/v1/runs/{id}"), None).await;
            if run.body["status"] == status.as_str() {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "{id} is still {}",
                run.body["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Statuses documented but never answered here, for the record.
    fn untested(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let mut missing = Vec::new();
        for (route, item) in self.doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for status in operation["responses"].as_object().unwrap().keys() {
                    let key = (
                        method.to_uppercase(),
                        route.clone(),
                        status.parse().unwrap(),
                    );
                    if !seen.contains(&key) {
                        missing.push(format!("{} {route} {status}", key.0));
                    }
                }
            }
        }
        missing
    }
}

/// The statuses the document lists for `method route`.
fn documented(doc: &Value, method: &str, route: &str) -> Vec<String> {
    let operation = &doc["paths"][route][method.to_lowercase()];
    assert!(operation.is_object(), "{method} {route} is not documented");
    operation["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// A spec that trains `episodes` episodes of Q-learning on the cliff.
fn spec(episodes: u64) -> String {
    json!({
        "env": {"id": "gridworld/cliff-walking"},
        "agent": {"id": "q-learning"},
        "budget": {"episodes": episodes},
        "seed": 1,
        "eval": {"episodes": 1}
    })
    .to_string()
}

/// Every `$ref` in `value`.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Whether a schema says nothing: `{}`, or only a description.
fn says_nothing(schema: &Value) -> bool {
    schema
        .as_object()
        .is_none_or(|s| s.keys().all(|k| k == "description"))
}

#[tokio::test]
async fn every_json_body_has_a_schema() {
    let harness = Harness::new(|_| {}).await;
    let doc = &harness.doc;
    let mut operations = 0;
    for (route, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let name = format!("{method} {route}");
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                for (media, body) in content {
                    assert!(!says_nothing(&body["schema"]), "{name}: {media} request");
                }
            }
            let responses = operation["responses"].as_object().unwrap();
            // gym's upload never succeeds: the scoreboard it uploaded to is gone.
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101")
                    || route == "/v1/upload/",
                "{name} documents no success"
            );
            for (status, response) in responses {
                let content = response["content"].as_object();
                if matches!(status.as_str(), "101" | "204") {
                    assert!(content.is_none(), "{name} {status} has a body");
                    continue;
                }
                let content = content.unwrap_or_else(|| panic!("{name} {status}: no body"));
                for (media, body) in content {
                    assert!(
                        !says_nothing(&body["schema"]),
                        "{name} {status}: {media} has no schema"
                    );
                    if status.starts_with(['4', '5']) {
                        assert_eq!(media, "application/json", "{name} {status}");
                    }
                }
            }
            // Every route may meet the body limit; `/v1` and `/metrics`
            // the token.
            assert!(responses.contains_key("413"), "{name}");
            let guarded = route.starts_with("/v1") || route == "/metrics";
            assert_eq!(responses.contains_key("401"), guarded, "{name}");
        }
    }
    assert!(operations >= 37, "{operations} operations");
    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(refs.len() > 100, "{} references", refs.len());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{reference} is not in the document"
        );
    }
    // Query parameters are documented as such, and optional.
    let list = &doc["paths"]["/v1/runs"]["get"]["parameters"];
    let status = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap();
    assert_eq!(status["in"], "query");
    assert_eq!(status["required"], false);
    let statuses = &doc["components"]["schemas"]["RunStatus"]["enum"];
    assert_eq!(statuses, &json!(RunStatus::ALL.map(RunStatus::as_str)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_a_route_answers_is_in_the_openapi_document() {
    let h = Harness::new(|c| {
        c.max_instances = 3;
        c.max_body_bytes = 4096;
    })
    .await;

    // Runs.
    let runs = "/v1/runs";
    h.expect("POST", runs, runs, Some("{\"env\": "), 400).await;
    let unknown_env = json!({"env": {"id": "nowhere"}, "agent": {"id": "q-learning"}});
    h.expect("POST", runs, runs, Some(&unknown_env.to_string()), 422)
        .await;
    let done = h.expect("POST", runs, runs, Some(&spec(5)), 201).await;
    let done = done["id"].as_str().unwrap().to_string();
    let long = h
        .expect("POST", runs, runs, Some(&spec(100_000_000)), 201)
        .await;
    let long = long["id"].as_str().unwrap().to_string();
    h.wait_for(&done, RunStatus::Completed).await;
    h.wait_for(&long, RunStatus::Running).await;

    // (method, route, the request's path after `/v1/runs`, body, status)
    let run_cases = |phase: &[(&str, &'static str, String, &'static str, u16)]| {
        phase
            .iter()
            .map(|(method, route, tail, body, want)| {
                let route = format!("/v1/runs{route}");
                (
                    method.to_string(),
                    route,
                    format!("/v1/runs{tail}"),
                    *body,
                    *want,
                )
            })
            .collect::<Vec<_>>()
    };
    let running = run_cases(&[
        ("GET", "", String::new(), "", 200),
        ("GET", "", "?status=done".into(), "", 400),
        ("GET", "", "?limit=0".into(), "", 400),
        ("GET", "", "?cursor=x".into(), "", 400),
        ("GET", "", "?bogus=1".into(), "", 400),
        ("GET", "/{id}", format!("/{done}"), "", 200),
        ("GET", "/{id}", "/run-999".into(), "", 404),
        ("GET", "/{id}", "/%FF".into(), "", 400),
        ("DELETE", "/{id}", format!("/{long}"), "", 409),
        ("DELETE", "/{id}", "/run-999".into(), "", 404),
        ("POST", "/{id}/cancel", format!("/{long}/cancel"), "", 202),
        ("POST", "/{id}/cancel", "/run-999/cancel".into(), "", 404),
    ]);
    h.expect_all(&running).await;
    h.wait_for(&long, RunStatus::Cancelled).await;
    let ended = run_cases(&[
        ("POST", "/{id}/resume", format!("/{done}/resume"), "", 409),
        ("POST", "/{id}/resume", "/run-999/resume".into(), "", 404),
        ("POST", "/{id}/resume", format!("/{long}/resume"), "", 202),
        ("POST", "/{id}/cancel", format!("/{long}/cancel"), "", 202),
        ("GET", "/{id}/metrics", format!("/{done}/metrics"), "", 200),
        (
            "GET",
            "/{id}/metrics",
            format!("/{done}/metrics?limit=0"),
            "",
            400,
        ),
        ("GET", "/{id}/metrics", "/run-999/metrics".into(), "", 404),
        ("GET", "/{id}/events", format!("/{done}/events"), "", 200),
        (
            "GET",
            "/{id}/events",
            format!("/{done}/events?after=x"),
            "",
            400,
        ),
        ("GET", "/{id}/events", "/run-999/events".into(), "", 404),
        ("GET", "/{id}/logs", format!("/{done}/logs"), "", 200),
        (
            "GET",
            "/{id}/logs",
            format!("/{done}/logs?follow=maybe"),
            "",
            400,
        ),
        ("GET", "/{id}/logs", "/run-999/logs".into(), "", 404),
        (
            "GET",
            "/{id}/artifacts",
            format!("/{done}/artifacts"),
            "",
            200,
        ),
        (
            "GET",
            "/{id}/artifacts",
            "/run-999/artifacts".into(),
            "",
            404,
        ),
        (
            "GET",
            "/{id}/artifacts/{name}",
            format!("/{done}/artifacts/metrics.jsonl"),
            "",
            200,
        ),
        (
            "GET",
            "/{id}/artifacts/{name}",
            format!("/{done}/artifacts/nothing.json"),
            "",
            404,
        ),
        (
            "GET",
            "/{id}/artifacts/{name}",
            format!("/{done}/artifacts/metrics.jsonl%2Fx"),
            "",
            404,
        ),
        (
            "GET",
            "/{id}/artifacts/{name}",
            format!("/{done}/artifacts/..%2Frl-lab.db"),
            "",
            400,
        ),
        (
            "GET",
            "/{id}/artifacts/{name}",
            format!("/{done}/artifacts/%FF"),
            "",
            400,
        ),
        (
            "POST",
            "/{id}/evaluate",
            format!("/{done}/evaluate"),
            r#"{"episodes": 1}"#,
            200,
        ),
        (
            "POST",
            "/{id}/evaluate",
            format!("/{done}/evaluate"),
            "",
            200,
        ),
        (
            "POST",
            "/{id}/evaluate",
            format!("/{done}/evaluate"),
            "{",
            400,
        ),
        (
            "POST",
            "/{id}/evaluate",
            format!("/{done}/evaluate"),
            r#"{"episods": 1}"#,
            422,
        ),
        (
            "POST",
            "/{id}/evaluate",
            format!("/{done}/evaluate"),
            r#"{"episodes": 0}"#,
            422,
        ),
        (
            "POST",
            "/{id}/evaluate",
            "/run-999/evaluate".into(),
            "",
            404,
        ),
    ]);
    h.expect_all(&ended).await;
    let events = "/v1/runs/{id}/events";
    let bad_header = Request::get(format!("/v1/runs/{done}/events"))
        .header("last-event-id", "x")
        .body(Body::empty())
        .unwrap();
    let answer = h.send(bad_header).await;
    h.check("GET", events, "Last-Event-ID: x", &answer, 400);
    assert_eq!(answer.body["error"]["field"], "Last-Event-ID");

    // A run that never ran (stored, not queued) has no policy yet.
    let idle_spec: Value = serde_json::from_str(&spec(1)).unwrap();
    let state = h.state.clone();
    let never_ran = tokio::task::spawn_blocking(move || state.store.insert_run(idle_spec))
        .await
        .unwrap()
        .unwrap();
    let uri = format!("/v1/runs/{never_ran}/evaluate");
    h.expect("POST", "/v1/runs/{id}/evaluate", &uri, None, 409)
        .await;
    let uri = format!("/v1/runs/{never_ran}");
    h.expect("DELETE", "/v1/runs/{id}", &uri, None, 204).await;

    // Over the body limit, declared or streamed, on any route.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(5000));
    h.expect("POST", runs, runs, Some(&big), 413).await;
    let chunks = futures_util::stream::iter(
        (0..5).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1000]))),
    );
    let streamed = Request::post(runs).body(Body::from_stream(chunks)).unwrap();
    let answer = h.send(streamed).await;
    h.check("POST", runs, "a streamed body", &answer, 413);
    assert_eq!(answer.body["error"]["code"], "body_too_large");
    h.expect("GET", "/healthz", "/healthz", Some(&big), 413)
        .await;

    // Catalogue and operations.
    h.expect("GET", "/v1/catalog/envs", "/v1/catalog/envs", None, 200)
        .await;
    h.expect("GET", "/v1/catalog/agents", "/v1/catalog/agents", None, 200)
        .await;
    let schema = "/v1/catalog/agents/{id}/schema";
    h.expect("GET", schema, "/v1/catalog/agents/dqn/schema", None, 200)
        .await;
    h.expect("GET", schema, "/v1/catalog/agents/nope/schema", None, 404)
        .await;
    h.expect("GET", "/healthz", "/healthz", None, 200).await;
    h.expect("GET", "/metrics", "/metrics", None, 200).await;

    // Environments over HTTP.
    let envs = "/v1/envs/";
    let created = h
        .expect(
            "POST",
            envs,
            envs,
            Some(r#"{"env_id": "CartPole-v1", "seed": 1}"#),
            200,
        )
        .await;
    let a = created["instance_id"].as_str().unwrap().to_string();
    h.expect("POST", envs, envs, Some("{}"), 400).await;
    h.expect("GET", envs, envs, None, 200).await;
    let single = |route: &str| route.replace("{instance_id}", &a);
    let unknown = |route: &str| route.replace("{instance_id}", "0000beef");
    for (method, route, body, want) in [
        ("POST", "/v1/envs/{instance_id}/reset/", "null", 200),
        ("POST", "/v1/envs/{instance_id}/step/", "{}", 400),
        (
            "POST",
            "/v1/envs/{instance_id}/step/",
            r#"{"action": 0}"#,
            200,
        ),
        ("GET", "/v1/envs/{instance_id}/action_space/", "", 200),
        ("GET", "/v1/envs/{instance_id}/observation_space/", "", 200),
        ("GET", "/v1/envs/{instance_id}/action_space/sample", "", 200),
        (
            "POST",
            "/v1/envs/{instance_id}/observation_space/contains",
            r#"{"name": "Box"}"#,
            200,
        ),
        (
            "POST",
            "/v1/envs/{instance_id}/observation_space/contains",
            "[1]",
            400,
        ),
        (
            "POST",
            "/v1/envs/{instance_id}/monitor/start/",
            r#"{"directory": "tmp", "video_callable": false}"#,
            204,
        ),
        ("POST", "/v1/envs/{instance_id}/monitor/close/", "", 204),
        ("GET", "/v1/envs/{instance_id}/ws", "", 400),
    ] {
        h.expect(method, route, &single(route), Some(body), want)
            .await;
        h.expect(method, route, &unknown(route), Some(body), 400)
            .await;
    }
    let contains = "/v1/envs/{instance_id}/action_space/contains/{x}";
    let uri = format!("/v1/envs/{a}/action_space/contains/1");
    h.expect("GET", contains, &uri, None, 200).await;
    let uri = format!("/v1/envs/{a}/action_space/contains/one");
    h.expect("GET", contains, &uri, None, 400).await;
    let huge = format!("{{\"action\": [{}]}}", "0,".repeat(5000) + "0");
    let step = "/v1/envs/{instance_id}/step/";
    h.expect("POST", step, &single(step), Some(&huge), 413)
        .await;
    // A monitor folder that cannot be made is the server's failure.
    let monitor = h.data.path().join("monitor");
    std::fs::remove_dir_all(&monitor).unwrap();
    std::fs::write(&monitor, "not a folder").unwrap();
    let start = "/v1/envs/{instance_id}/monitor/start/";
    h.expect(
        "POST",
        start,
        &single(start),
        Some(r#"{"directory": "tmp"}"#),
        500,
    )
    .await;

    let upload = "/v1/upload/";
    h.expect("POST", upload, upload, Some("{}"), 400).await;
    h.expect(
        "POST",
        upload,
        upload,
        Some(r#"{"training_dir": "tmp", "api_key": "k"}"#),
        410,
    )
    .await;

    let vectors = "/v1/vector-envs";
    let bad = r#"{"env_id": "CartPole-v1", "num_envs": 0}"#;
    h.expect("POST", vectors, vectors, Some(bad), 400).await;
    let good = r#"{"env_id": "CartPole-v1", "num_envs": 2, "seed": 3}"#;
    let created = h.expect("POST", vectors, vectors, Some(good), 200).await;
    let v = created["instance_id"].as_str().unwrap().to_string();
    let vector = |route: &str| route.replace("{instance_id}", &v);
    for (method, route, body, want) in [
        ("GET", "/v1/vector-envs/{instance_id}", "", 200),
        ("POST", "/v1/vector-envs/{instance_id}/reset", "", 200),
        ("POST", "/v1/vector-envs/{instance_id}/step", "{}", 400),
        (
            "POST",
            "/v1/vector-envs/{instance_id}/step",
            r#"{"actions": [0, 1]}"#,
            200,
        ),
    ] {
        h.expect(method, route, &vector(route), Some(body), want)
            .await;
        h.expect(method, route, &unknown(route), Some(body), 400)
            .await;
    }
    // The cap: `a`, `v` and one more are open.
    h.expect("POST", envs, envs, Some(r#"{"env_id": "Acrobot-v1"}"#), 200)
        .await;
    h.expect("POST", envs, envs, Some(r#"{"env_id": "Acrobot-v1"}"#), 429)
        .await;
    h.expect("POST", vectors, vectors, Some(good), 429).await;
    for route in [
        "/v1/envs/{instance_id}/close/",
        "/v1/vector-envs/{instance_id}/close",
    ] {
        let id = if route.starts_with("/v1/envs") {
            &a
        } else {
            &v
        };
        h.expect(
            "POST",
            route,
            &route.replace("{instance_id}", id),
            None,
            204,
        )
        .await;
        h.expect("POST", route, &unknown(route), None, 400).await;
    }
    h.expect("POST", "/v1/shutdown/", "/v1/shutdown/", None, 200)
        .await;

    // Not yet driven here: 401 (below), 500 of a broken instance (an
    // environment has to panic), 503 (below), 101 (a real socket; see
    // tests/gym.rs).
    eprintln!("documented, not driven here: {:#?}", h.untested());
}

#[tokio::test]
async fn the_token_refusals_are_documented() {
    let h = Harness::new(|c| c.token = Some("s3cret".into())).await;
    for (method, route) in [
        ("GET", "/v1/runs"),
        ("POST", "/v1/runs"),
        ("GET", "/metrics"),
        ("GET", "/v1/envs/"),
        ("POST", "/v1/vector-envs"),
    ] {
        let answer = h.expect(method, route, route, None, 401).await;
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    h.expect("GET", "/healthz", "/healthz", None, 200).await;
}

#[tokio::test]
async fn a_server_going_down_refuses_new_work_with_503() {
    let h = Harness::new(|_| {}).await;
    let state = h.state.clone();
    let cancelled = tokio::task::spawn_blocking(move || {
        let spec: Value = serde_json::from_str(&spec(1)).unwrap();
        let id = state.store.insert_run(spec).unwrap();
        state
            .store
            .set_status(&id, RunStatus::Cancelled, None, None)
            .unwrap();
        state.runs.shutdown(Duration::ZERO);
        id
    })
    .await
    .unwrap();
    let answer = h
        .expect("POST", "/v1/runs", "/v1/runs", Some(&spec(1)), 503)
        .await;
    assert_eq!(answer["error"]["code"], "shutting_down");
    let uri = format!("/v1/runs/{cancelled}/resume");
    h.expect("POST", "/v1/runs/{id}/resume", &uri, None, 503)
        .await;
}

/// Log lines, as the server's stderr would show them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Checks a `500`: generic body with the request id, nothing of `secrets`;
/// the log has the id and every one of `details`.
fn assert_internal(answer: &Answer, log: &str, secrets: &[&str], details: &[&str]) {
    assert_eq!(answer.status, 500, "{}", answer.text);
    let error = &answer.body["error"];
    assert_eq!(error["code"], "internal");
    assert_eq!(error["message"], rl_server::error::INTERNAL_MESSAGE);
    let id = error["request_id"].as_str().expect("a request id");
    assert_eq!(answer.request_id.as_deref(), Some(id));
    for secret in secrets {
        assert!(
            !answer.text.contains(secret),
            "the body leaks {secret}: {}",
            answer.text
        );
    }
    let line = log
        .lines()
        .find(|line| line.contains("internal error") && line.contains(id))
        .unwrap_or_else(|| panic!("no log line with request id {id} in:\n{log}"));
    for detail in details {
        assert!(line.contains(detail), "the log line lacks {detail}: {line}");
    }
}

#[tokio::test]
async fn an_internal_error_sends_a_request_id_and_logs_the_detail() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // This runtime has one thread, so every handler logs through this
    // subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = Harness::new(|_| {}).await;
    let folder = h.data.path().display().to_string();
    let state = h.state.clone();
    let id = tokio::task::spawn_blocking(move || {
        let spec: Value = serde_json::from_str(&spec(1)).unwrap();
        state.store.insert_run(spec).unwrap()
    })
    .await
    .unwrap();

    // An unreadable run folder (a file where the folder should be).
    std::fs::write(h.data.path().join("runs").join(&id), "not a folder").unwrap();
    let answer = h
        .call("GET", &format!("/v1/runs/{id}/artifacts"), None)
        .await;
    h.check(
        "GET",
        "/v1/runs/{id}/artifacts",
        "an unreadable run folder",
        &answer,
        500,
    );
    assert_internal(
        &answer,
        &captured.text(),
        &[&folder, "Not a directory", "os error"],
        &[&folder, "Not a directory"],
    );

    // A store failure: SQLite's message stays in the log.
    rusqlite::Connection::open(h.data.path().join("rl-lab.db"))
        .unwrap()
        .execute_batch("DROP TABLE events;")
        .unwrap();
    let answer = h.call("GET", &format!("/v1/runs/{id}"), None).await;
    h.check("GET", "/v1/runs/{id}", "a broken store", &answer, 500);
    assert_internal(
        &answer,
        &captured.text(),
        &["no such table", "SQLite", "database", &folder],
        &["no such table: events"],
    );

    // A client's own request id is kept and quoted.
    let request = Request::get("/v1/runs/run-999")
        .header("x-request-id", "client-chosen-1")
        .body(Body::empty())
        .unwrap();
    let answer = h.send(request).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND.as_u16());
    assert_eq!(answer.request_id.as_deref(), Some("client-chosen-1"));
    assert_eq!(answer.body["error"]["request_id"], "client-chosen-1");
}

/// The served document says what each agent and env id takes, states
/// unsigned ranges exactly, and links created runs and instances to the
/// routes that use them, so that a fuzzer's stateful phase can follow them.
#[tokio::test]
async fn run_specs_are_typed_per_id_and_created_resources_are_linked() {
    let harness = Harness::new(|_| {}).await;
    let doc = &harness.doc;
    let schemas = &doc["components"]["schemas"];
    let agents = schemas["AgentSpec"]["oneOf"].as_array().unwrap();
    let dqn = agents
        .iter()
        .find(|a| a["properties"]["id"]["const"] == "dqn")
        .expect("a dqn variant");
    let config = dqn["properties"]["config"]["anyOf"][0]["$ref"]
        .as_str()
        .unwrap();
    let name = config.strip_prefix("#/components/schemas/").unwrap();
    assert!(schemas[name]["properties"].is_object(), "{name}");
    let envs = schemas["EnvSpec"]["oneOf"].as_array().unwrap();
    assert!(
        envs.iter()
            .any(|e| e["properties"]["id"]["const"] == "CartPole-v1")
    );
    // Runs may name a remote env; env instances may not.
    let instance_ids: Vec<&Value> = schemas["CreateEnv"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["properties"]["env_id"]["const"])
        .collect();
    assert!(instance_ids.contains(&&json!("CartPole-v1")));
    assert!(!instance_ids.contains(&&json!("remote")));
    assert_eq!(
        schemas["RunSpec"]["properties"]["seed"]["maximum"],
        json!(u64::MAX)
    );
    for (creator, status, child) in [
        (
            "/v1/runs",
            "201",
            "#/paths/~1v1~1runs~1%7Bid%7D~1cancel/post",
        ),
        (
            "/v1/envs/",
            "200",
            "#/paths/~1v1~1envs~1%7Binstance_id%7D~1step~1/post",
        ),
        (
            "/v1/vector-envs",
            "200",
            "#/paths/~1v1~1vector-envs~1%7Binstance_id%7D~1step/post",
        ),
    ] {
        let links = doc["paths"][creator]["post"]["responses"][status]["links"]
            .as_object()
            .unwrap();
        assert!(
            links.values().any(|l| l["operationRef"] == child),
            "{creator} links no {child}"
        );
    }
}
