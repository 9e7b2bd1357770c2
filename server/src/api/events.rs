//! A run's live events (server-sent events) and its log lines (JSON lines):
//! first from the store, then as they are committed.

use super::{Path, Query, run_exists};
use crate::error::responses::{Internal, UnknownRun};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::logs::LogLine;
use crate::store::{Event, EventKind, StatusChange};
use crate::{Shared, blocking};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(run_events))
        .routes(routes!(run_logs))
}

/// Whether `event` is a status change that ends the run's activity (until
/// a resume).
fn ends_run(event: &Event) -> bool {
    event.kind == EventKind::Status
        && serde_json::from_str::<StatusChange>(&event.data)
            .is_ok_and(|change| change.status.is_final())
}

/// Passes `event` on if it is of `kind`; false when the stream should end
/// (the subscriber left, or, with `until_final`, the run ended).
async fn forward(
    event: Arc<Event>,
    kind: Option<EventKind>,
    until_final: bool,
    out: &mpsc::Sender<Arc<Event>>,
) -> bool {
    let ends = until_final && ends_run(&event);
    if kind.is_none_or(|k| k == event.kind) && out.send(event).await.is_err() {
        return false;
    }
    !ends
}

/// Sends `run_id`'s events after `after` (of `kind`, if given) into `out`:
/// first from the store, then live; after a lag, from the store again.
/// With `until_final`, stops after a final status event.
async fn follow_events(
    state: Shared,
    run_id: String,
    mut after: i64,
    kind: Option<EventKind>,
    until_final: bool,
    out: mpsc::Sender<Arc<Event>>,
) {
    let mut live = state.store.subscribe();
    loop {
        // Catch up from the store.
        loop {
            let page = {
                let state = state.clone();
                let run_id = run_id.clone();
                blocking(move || state.store.events(&run_id, after, None, 1000)).await
            };
            let page = match page {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    tracing::error!(run_id = %run_id, "reading the run's events for a stream: {e}");
                    return;
                }
                Err(e) => {
                    tracing::error!(run_id = %run_id, "reading the run's events for a stream: {e}");
                    return;
                }
            };
            let full = page.len() == 1000;
            for event in page {
                after = event.id;
                if !forward(Arc::new(event), kind, until_final, &out).await {
                    return;
                }
            }
            if !full {
                break;
            }
        }
        if until_final {
            // A run already ended before we subscribed has no live events
            // coming: stop once the store shows it ended.
            let store = state.store.clone();
            let id = run_id.clone();
            if let Ok(Ok(Some(row))) = blocking(move || store.run(&id)).await
                && row.status.is_final()
                && state.runs.progress(&run_id).is_none()
            {
                return;
            }
        }
        // Then live, until the subscriber leaves: a stream of a run that
        // has ended, or of another run's events only, sends nothing that
        // would find out, so its task would otherwise outlive it.
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                () = out.closed() => return,
            };
            match received {
                Ok(event) => {
                    if event.run_id != run_id || event.id <= after {
                        continue;
                    }
                    after = event.id;
                    if !forward(event, kind, until_final, &out).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// `GET /v1/runs/{id}/events` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Events after this id (as the `Last-Event-ID` header).
    after: Option<i64>,
}

/// One server-sent event of a run, as its fields arrive.
#[derive(ToSchema)]
#[allow(dead_code)] // Only documents the stream: events are written by axum's `Event`.
struct RunEvent {
    /// The event id, increasing; resume after it with `Last-Event-ID`.
    id: String,
    /// `metric`, `log` or `status`.
    #[schema(pattern = "^(metric|log|status)$")]
    event: String,
    /// The event's JSON.
    data: String,
}

/// Server-sent events of a run: `metric`, `log` and `status`.
///
/// Each event's `id` increases; reconnecting with `Last-Event-ID` resumes
/// after it, from the store. Keep-alive comments are sent every 15 s.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "Run id"), EventsQuery,
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "Events `metric` (a `metrics.jsonl` record), `log` (a LogLine) and `status` (a StatusChange), each with its `id`",
            body = RunEvent, content_type = "text/event-stream"),
        (status = 400, description = "`bad_query`, `bad_header` (Last-Event-ID is not an integer) or `bad_path`", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn run_events(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let header_after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or(ApiError::BadHeader {
                    header: "Last-Event-ID",
                    message: "Last-Event-ID must be an event id (an integer)",
                })?,
        ),
    };
    let after = header_after.or(query.after).unwrap_or(0);
    run_exists(&state, &id).await?;
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow_events(state, id, after, None, false, sender));
    let stream = tokio_stream::StreamExt::map(ReceiverStream::new(receiver), |event| {
        Ok(SseEvent::default()
            .id(event.id.to_string())
            .event(event.kind.as_str())
            .data(&event.data))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /v1/runs/{id}/logs` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    /// Lines after this event id.
    after: Option<i64>,
    /// Keep the stream open until the run ends.
    follow: Option<bool>,
}

/// A run's own log lines, as JSON lines.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs",
    params(("id" = String, Path, description = "Run id"), LogsQuery),
    responses(
        (status = 200, description = "One LogLine per line", body = LogLine, content_type = "application/x-ndjson"),
        (status = 400, description = "`bad_query` or `bad_path`", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn run_logs(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Response> {
    run_exists(&state, &id).await?;
    let after = query.after.unwrap_or(0);
    let (sender, receiver) = mpsc::channel(256);
    if query.follow.unwrap_or(false) {
        tokio::spawn(follow_events(
            state,
            id,
            after,
            Some(EventKind::Log),
            true,
            sender,
        ));
    } else {
        let events = blocking(move || {
            state
                .store
                .events(&id, after, Some(EventKind::Log), 100_000)
        })
        .await??;
        tokio::spawn(async move {
            for event in events {
                if sender.send(Arc::new(event)).await.is_err() {
                    return;
                }
            }
        });
    }
    let lines = tokio_stream::StreamExt::map(ReceiverStream::new(receiver), |event| {
        let mut line: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        line["id"] = json!(event.id);
        Ok::<_, Infallible>(Bytes::from(format!("{line}\n")))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
