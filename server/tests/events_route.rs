//! `GET /v1/runs/{id}/events` and `/logs` through the whole app
//! (`rl_server::app`, no socket): a stream whose client leaves lets go of
//! its subscription, even when its run sends nothing more. A soak's
//! reconnecting watchers otherwise left one task per connection, each
//! receiving every event of every run (issue 17 §4: RSS grew 0.2 MiB/s).

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use rl_runner::RunStatus;
use rl_server::{AppState, ServeConfig};
use serde_json::json;
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[tokio::test]
async fn a_stream_of_an_ended_run_ends_with_its_client() {
    let data = tempfile::tempdir().unwrap();
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    let state = AppState::open(config).unwrap();
    let id = state
        .store
        .insert_run(json!({"env": {"id": "CartPole-v1"}, "agent": {"id": "dqn"}}))
        .unwrap();
    state
        .store
        .set_status(&id, RunStatus::Failed, Some("ended".into()), None)
        .unwrap();
    let before = state.store.subscribers();
    for path in ["events", "logs?follow=true"] {
        for _ in 0..20 {
            let request = Request::builder()
                .uri(format!("/v1/runs/{id}/{path}"))
                .body(Body::empty())
                .unwrap();
            let response = rl_server::app(state.clone())
                .oneshot(request)
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let mut body = response.into_body().into_data_stream();
            if path == "events" {
                // The stored history comes first: the queued and failed
                // statuses. Then the client leaves.
                let chunk = body.next().await.unwrap().unwrap();
                let text = String::from_utf8_lossy(&chunk).to_string();
                assert!(text.contains("event: status"), "{text}");
            }
            drop(body);
        }
    }
    let began = Instant::now();
    while state.store.subscribers() > before {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{} streams still subscribed after their clients left",
            state.store.subscribers() - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
