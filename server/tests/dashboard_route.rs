//! The dashboard's files and the server-wide event stream, through the
//! whole app (`rl_server::app`, no socket).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::StreamExt;
use rl_runner::RunStatus;
use rl_server::{AppState, ServeConfig, Shared};
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

fn state_with(token: Option<&str>) -> (tempfile::TempDir, Shared) {
    let data = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    config.token = token.map(str::to_string);
    // The store is the queue: runs these tests store directly would be
    // claimed and run. They only read streams, so nothing executes.
    config.max_concurrent_runs = 0;
    let state = AppState::open(config).unwrap();
    (data, state)
}

async fn get(state: &Shared, uri: &str, headers: &[(&str, &str)]) -> axum::response::Response {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    rl_server::app(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(response: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_types_and_validators() {
    let (_data, state) = state_with(None);
    let page = get(&state, "/", &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let html = text(page).await;
    assert!(html.contains("/assets/js/app.js"), "{html}");

    let script = get(&state, "/assets/js/app.js", &[]).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript");
    let etag = script.headers()[header::ETAG].to_str().unwrap().to_string();
    let again = get(&state, "/assets/js/app.js", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let chart = get(&state, "/assets/vendor/uPlot.iife.min.js", &[]).await;
    assert_eq!(chart.status(), StatusCode::OK);
    assert_eq!(
        get(&state, "/assets/js/nothing.js", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn with_a_token_the_page_loads_without_it_and_never_holds_it() {
    let token = "s3cret-token-for-the-page";
    let (_data, state) = state_with(Some(token));
    let page = get(&state, "/", &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!text(page).await.contains(token));
    for (name, _) in rl_server::dashboard::files() {
        let asset = get(&state, &format!("/assets/{name}"), &[]).await;
        assert_eq!(asset.status(), StatusCode::OK, "{name}");
        assert!(!text(asset).await.contains(token), "{name}");
    }
    // The API behind it still wants the token.
    assert_eq!(
        get(&state, "/v1/runs", &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&state, "/v1/events", &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get(&state, "/v1/runs", &[("authorization", &bearer)])
            .await
            .status(),
        StatusCode::OK
    );
}

/// The budget for a first page load, before compression.
const FIRST_LOAD_BYTES: usize = 300 * 1024;

#[test]
fn the_first_page_load_is_at_most_300_kb() {
    // The page loads its HTML, its styles, the chart library and every
    // module (app.js imports each page's): every .html, .css and .js file.
    let loaded: Vec<(String, usize)> = rl_server::dashboard::files()
        .into_iter()
        .filter(|(name, _)| {
            [".html", ".css", ".js"]
                .iter()
                .any(|ext| name.ends_with(ext))
        })
        .collect();
    let total: usize = loaded.iter().map(|(_, bytes)| bytes).sum();
    assert!(
        loaded.len() >= 8,
        "the page, its styles, the chart library and the modules: {loaded:?}"
    );
    assert!(
        total <= FIRST_LOAD_BYTES,
        "the first load is {total} bytes, over {FIRST_LOAD_BYTES}: {loaded:?}"
    );
}

/// Reads server-sent events from `body` until `done` holds of the events so
/// far, or 10 s pass.
async fn read_events(
    body: &mut (impl futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    done: impl Fn(&[(Option<String>, String, Value)]) -> bool,
) -> Vec<(Option<String>, String, Value)> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&events) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the events came within 10 s")
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() {
                events.push((id, kind, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_server_wide_stream_resumes_status_changes_with_their_run_ids() {
    let (_data, state) = state_with(None);
    let spec = json!({"env": {"id": "CartPole-v1"}, "agent": {"id": "dqn"}});
    let first = state.store.insert_run(spec.clone()).unwrap();
    let list = text(get(&state, "/v1/runs", &[]).await).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let snapshot = list["last_event_id"].as_i64().unwrap();
    assert!(snapshot > 0, "{list}");

    // After the snapshot: a new run and a failure, both of which a
    // client that listed the runs must hear about.
    let second = state.store.insert_run(spec).unwrap();
    state
        .store
        .set_status(&first, RunStatus::Failed, Some("gone".into()), None)
        .unwrap();
    state.store.flush();
    let response = get(&state, &format!("/v1/events?after={snapshot}"), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let events = read_events(&mut body, |events| events.len() >= 2).await;
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|(_, kind, data)| {
            assert_eq!(kind, "status");
            (
                data["run_id"].as_str().unwrap(),
                data["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(second.as_str(), "queued"), (first.as_str(), "failed")]
    );
    assert_eq!(events[1].2["error"], "gone");
    let ids: Vec<i64> = events
        .iter()
        .map(|(id, _, _)| id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert!(ids[0] > snapshot && ids[1] > ids[0], "{ids:?}");

    // Filtered to one run, the other's events are left out.
    let response = get(
        &state,
        &format!("/v1/events?after={snapshot}&runs={first}&kinds=status"),
        &[],
    )
    .await;
    let mut body = response.into_body().into_data_stream();
    let events = read_events(&mut body, |events| !events.is_empty()).await;
    assert_eq!(events[0].2["run_id"], first.as_str());
    assert_eq!(events[0].2["status"], "failed");

    // Without following, every stored status change from the start, then
    // the end of the stream.
    let response = get(&state, "/v1/events?follow=false", &[]).await;
    let body = tokio::time::timeout(Duration::from_secs(10), text(response))
        .await
        .expect("a stream that does not follow ends");
    let statuses: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    assert_eq!(statuses.len(), 3, "{body}");
    assert!(statuses[2].contains("\"failed\""), "{body}");
}

#[tokio::test]
async fn the_server_wide_stream_refuses_what_it_cannot_follow() {
    let (_data, state) = state_with(None);
    for (query, field) in [
        ("kinds=status,bogus", "kinds"),
        ("runs=a,,b", "runs"),
        ("after=x", "after"),
    ] {
        let response = get(&state, &format!("/v1/events?{query}"), &[]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = serde_json::from_str(&text(response).await).unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{query}: {body}"
        );
    }
    let many = (0..101)
        .map(|i| format!("r{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let response = get(&state, &format!("/v1/events?runs={many}"), &[]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = get(&state, "/v1/events", &[("last-event-id", "nope")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
