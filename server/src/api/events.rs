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
use rl_runner::{Budget, RunSpec};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
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
        .routes(routes!(all_events))
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

/// The event id to resume after: `Last-Event-ID`, else `?after=`.
fn resume_after(headers: &HeaderMap, query_after: Option<i64>) -> ApiResult<Option<i64>> {
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
    Ok(header_after.or(query_after))
}

/// What the server-wide stream may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamKind {
    /// A stored event of this kind.
    Stored(EventKind),
    /// Each running run's progress, once a second.
    Progress,
}

impl StreamKind {
    const ALL: [StreamKind; 4] = [
        StreamKind::Stored(EventKind::Status),
        StreamKind::Progress,
        StreamKind::Stored(EventKind::Metric),
        StreamKind::Stored(EventKind::Log),
    ];

    fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stored(kind) => kind.as_str(),
            StreamKind::Progress => "progress",
        }
    }
}

/// Most runs one server-wide stream may follow by id.
const MAX_STREAM_RUNS: usize = 100;

/// How often the server-wide stream reports running runs' progress.
const PROGRESS_PERIOD: Duration = Duration::from_secs(1);

/// `GET /v1/events` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AllEventsQuery {
    /// Events after this id (as the `Last-Event-ID` header). Without
    /// either, the stream starts with what happens next.
    after: Option<i64>,
    /// Only these runs' events, comma-separated ids (at most 100; default
    /// every run's).
    #[param(pattern = "^[^,]+(,[^,]+){0,99}$")]
    runs: Option<String>,
    /// Which events, comma-separated: `status`, `progress`, `metric`, `log`
    /// (default `status,progress`).
    #[param(pattern = "^(status|progress|metric|log)(,(status|progress|metric|log))*$")]
    kinds: Option<String>,
    /// Keep following (default true). With `false` the stream sends the
    /// stored events after `after` (default 0) and one round of progress,
    /// then ends: a catch-up for clients that poll.
    follow: Option<bool>,
}

/// One server-sent event of the server-wide stream.
#[derive(ToSchema)]
#[allow(dead_code)] // Only documents the stream: events are written by axum's `Event`.
struct ServerEvent {
    /// The stored event's id (none on `progress`); resume after it with
    /// `Last-Event-ID`.
    id: Option<String>,
    /// `status`, `progress`, `metric` or `log`.
    #[schema(pattern = "^(status|progress|metric|log)$")]
    event: String,
    /// The event's JSON with its `run_id`: a StatusChange, a
    /// `metrics.jsonl` record or a LogLine; or, for `progress`,
    /// `{run_id, steps, episodes, steps_per_second, fraction,
    /// mean_return_100}`.
    data: String,
}

/// What the server-wide stream sends.
enum Outgoing {
    Stored(Arc<Event>),
    Progress(String),
}

/// A stored event's JSON with its run's id put first.
fn with_run_id(event: &Event) -> String {
    let run_id = serde_json::to_string(&event.run_id).unwrap_or_default();
    match event.data.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"run_id\":{run_id}}}"),
        Some(rest) => format!("{{\"run_id\":{run_id},{rest}"),
        None => event.data.clone(),
    }
}

/// Every run's events (or some runs'), of the kinds asked for: status
/// changes, metrics and logs as they are committed, and each running
/// run's progress once a second.
///
/// The dashboard's runs table follows `status` and `progress`; a page
/// comparing runs follows their `metric` and `status` events on one
/// connection. Stored events carry their id, so reconnecting with
/// `Last-Event-ID` resumes from the store; `progress` events have none.
#[utoipa::path(get, path = "/v1/events", tag = "runs",
    params(AllEventsQuery,
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "Events `status`, `progress`, `metric` and `log`, each with its run's `run_id`",
            body = ServerEvent, content_type = "text/event-stream"),
        (status = 400, description = "`bad_query` (an unknown kind, too many or empty run ids) or `bad_header` (Last-Event-ID is not an integer)", body = ErrorBody),
        Internal,
    ))]
async fn all_events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<AllEventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let follow = query.follow.unwrap_or(true);
    let after = match resume_after(&headers, query.after)? {
        None if !follow => Some(0),
        after => after,
    };
    let runs = match &query.runs {
        None => None,
        Some(list) => {
            let ids: Vec<String> = list.split(',').map(str::to_string).collect();
            if ids.iter().any(String::is_empty) {
                return Err(ApiError::bad_query(
                    "runs",
                    "runs must be comma-separated run ids",
                ));
            }
            if ids.len() > MAX_STREAM_RUNS {
                return Err(ApiError::bad_query(
                    "runs",
                    format!("at most {MAX_STREAM_RUNS} runs per stream"),
                ));
            }
            Some(ids)
        }
    };
    let kinds = match &query.kinds {
        None => vec![StreamKind::Stored(EventKind::Status), StreamKind::Progress],
        Some(list) => list
            .split(',')
            .map(|name| {
                StreamKind::ALL
                    .into_iter()
                    .find(|kind| kind.as_str() == name)
                    .ok_or_else(|| {
                        ApiError::bad_query(
                            "kinds",
                            format!(
                                "unknown kind '{name}': kinds are status, progress, metric, log"
                            ),
                        )
                    })
            })
            .collect::<ApiResult<_>>()?,
    };
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow_all(state, after, runs, kinds, follow, sender));
    let stream = tokio_stream::StreamExt::map(ReceiverStream::new(receiver), |out| {
        Ok(match out {
            Outgoing::Stored(event) => SseEvent::default()
                .id(event.id.to_string())
                .event(event.kind.as_str())
                .data(with_run_id(&event)),
            Outgoing::Progress(data) => SseEvent::default().event("progress").data(data),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Sends the server-wide stream into `out` until the subscriber leaves:
/// after `after`, first from the store; then, with `follow`, live, with the
/// progress of running runs every [`PROGRESS_PERIOD`], and after a lag from
/// the store again; without, one round of progress and the end.
async fn follow_all(
    state: Shared,
    after: Option<i64>,
    runs: Option<Vec<String>>,
    kinds: Vec<StreamKind>,
    follow: bool,
    out: mpsc::Sender<Outgoing>,
) {
    let stored: Vec<EventKind> = kinds
        .iter()
        .filter_map(|kind| match kind {
            StreamKind::Stored(kind) => Some(*kind),
            StreamKind::Progress => None,
        })
        .collect();
    let wanted = |event: &Event| {
        stored.contains(&event.kind) && runs.as_ref().is_none_or(|ids| ids.contains(&event.run_id))
    };
    let mut live = state.store.subscribe();
    let mut ticker = tokio::time::interval(PROGRESS_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each run's budget, read once, for the progress fraction.
    let mut budgets: HashMap<String, Option<Budget>> = HashMap::new();
    let mut after = after;
    loop {
        if let (Some(start), false) = (after, stored.is_empty()) {
            let mut from = start;
            loop {
                let page = {
                    let state = state.clone();
                    let runs = runs.clone();
                    let stored = stored.clone();
                    blocking(move || {
                        state
                            .store
                            .events_since(from, runs.as_deref(), &stored, 1000)
                    })
                    .await
                };
                let page = match page {
                    Ok(Ok(page)) => page,
                    Ok(Err(e)) => {
                        tracing::error!("reading events for the server-wide stream: {e}");
                        return;
                    }
                    Err(e) => {
                        tracing::error!("reading events for the server-wide stream: {e}");
                        return;
                    }
                };
                let full = page.len() == 1000;
                for event in page {
                    from = event.id;
                    if out.send(Outgoing::Stored(Arc::new(event))).await.is_err() {
                        return;
                    }
                }
                if !full {
                    break;
                }
            }
            after = Some(from);
        }
        if !follow {
            if kinds.contains(&StreamKind::Progress) {
                for data in progress_events(&state, runs.as_deref(), &mut budgets).await {
                    if out.send(Outgoing::Progress(data)).await.is_err() {
                        return;
                    }
                }
            }
            return;
        }
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                _ = ticker.tick(), if kinds.contains(&StreamKind::Progress) => {
                    for data in progress_events(&state, runs.as_deref(), &mut budgets).await {
                        if out.send(Outgoing::Progress(data)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                () = out.closed() => return,
            };
            match received {
                Ok(event) => {
                    if after.is_some_and(|a| event.id <= a) {
                        continue;
                    }
                    after = Some(event.id);
                    if wanted(&event) && out.send(Outgoing::Stored(event)).await.is_err() {
                        return;
                    }
                }
                // Fell behind: catch up from the store, after the last
                // event passed on (or, if none was, from the newest).
                Err(RecvError::Lagged(_)) => {
                    if after.is_none() {
                        let store = state.store.clone();
                        match blocking(move || store.last_event_id()).await {
                            Ok(Ok(id)) => after = Some(id),
                            _ => return,
                        }
                    }
                    break;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// One `progress` event's JSON per running run (of `runs`, if given).
async fn progress_events(
    state: &Shared,
    runs: Option<&[String]>,
    budgets: &mut HashMap<String, Option<Budget>>,
) -> Vec<String> {
    let mut running = state.runs.all_progress();
    if let Some(ids) = runs {
        running.retain(|(id, _)| ids.contains(id));
    }
    // Budgets of runs that stopped are not needed again (a resumed run's
    // is read again), so a stream open for days keeps only the running.
    budgets.retain(|id, _| running.iter().any(|(r, _)| r == id));
    running.sort_by(|a, b| a.0.cmp(&b.0));
    let unknown: Vec<String> = running
        .iter()
        .filter(|(id, _)| !budgets.contains_key(id))
        .map(|(id, _)| id.clone())
        .collect();
    if !unknown.is_empty() {
        let store = state.store.clone();
        if let Ok(found) = blocking(move || {
            unknown
                .into_iter()
                .map(|id| {
                    let budget = store
                        .run(&id)
                        .ok()
                        .flatten()
                        .and_then(|row| RunSpec::from_value(&row.spec).ok())
                        .map(|spec| spec.budget);
                    (id, budget)
                })
                .collect::<Vec<_>>()
        })
        .await
        {
            budgets.extend(found);
        }
    }
    running
        .into_iter()
        .map(|(id, p)| {
            let budget = budgets.get(&id).copied().flatten();
            json!({
                "run_id": id,
                "steps": p.steps,
                "episodes": p.episodes,
                "steps_per_second": p.steps_per_second,
                "fraction": super::runs::budget_fraction(budget, p.steps, p.episodes),
                "mean_return_100": p.recent_mean_return,
            })
            .to_string()
        })
        .collect()
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
    let after = resume_after(&headers, query.after)?.unwrap_or(0);
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
