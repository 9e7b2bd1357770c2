//! The runs API under `/v1`, the catalogue, and operations routes.
//!
//! Errors are JSON: `{"error": {"code", "message", "field"}}`, where `field`
//! is the JSON path of a bad value in the request, when there is one.

use crate::runs::RunError;
use crate::store::{EventKind, StoreError};
use crate::{Shared, blocking};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use rl_runner::{Budget, RunSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// An error reply of the runs API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// An error with `status`, a stable `code` and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Names the JSON path of the bad value.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }

    fn not_found(id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "run_not_found",
            format!("run '{id}' not found"),
        )
        .field("id")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match &e {
            RunError::NotFound(id) => ApiError::not_found(id),
            RunError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            RunError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            RunError::Store(_) | RunError::Io { .. } => ApiError::internal(e),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A query string as `T`; unknown or malformed parameters are a 400 naming them.
fn parse_query<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<T> {
    query
        .map(|Query(query)| query)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(create_run, list_runs))
        .routes(routes!(get_run, delete_run))
        .routes(routes!(cancel_run))
        .routes(routes!(resume_run))
        .routes(routes!(run_metrics))
        .routes(routes!(run_events))
        .routes(routes!(run_logs))
        .routes(routes!(list_artifacts))
        .routes(routes!(get_artifact))
        .routes(routes!(evaluate_run))
        .routes(routes!(catalog_envs))
        .routes(routes!(catalog_agents))
        .routes(routes!(agent_schema))
        .routes(routes!(healthz))
        .routes(routes!(prometheus))
}

/// Reads a JSON body, naming the line and column of malformed JSON.
fn parse_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// Launch a run.
///
/// Takes the same run spec as `rl-lab run`. The spec is checked completely
/// (environment and agent are built) before anything is stored.
#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    request_body(content = Object, description = "A run spec, as `rl-lab run` takes (docs/run-spec.md)"),
    responses(
        (status = 201, description = "Queued: `{id, status}`; `Location` names the run"),
        (status = 400, description = "The body is not JSON"),
        (status = 422, description = "The spec is invalid; `field` is the JSON path of the bad value"),
    ))]
async fn create_run(State(state): State<Shared>, body: Bytes) -> ApiResult<Response> {
    let value = parse_body(&body)?;
    let submitted = blocking(move || {
        let spec = RunSpec::from_value(&value).map_err(spec_error)?;
        // Building the env and agent is the full validation, and it is
        // cheap; the worker builds them again when the run starts.
        state.engine.prepare(spec.clone()).map_err(spec_error)?;
        Ok::<_, ApiError>(state.runs.submit(&spec)?)
    })
    .await??;
    let mut response = (
        StatusCode::CREATED,
        Json(json!({"id": submitted, "status": "queued"})),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{submitted}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn spec_error(e: rl_runner::Error) -> ApiError {
    match e {
        rl_runner::Error::Spec { field, message } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_spec", message).field(field)
        }
        e if e.is_input() => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_spec",
            e.to_string(),
        ),
        e => ApiError::internal(e),
    }
}

/// The statuses a run can be in.
const STATUSES: [&str; 6] = [
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "interrupted",
];

/// `GET /v1/runs` parameters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only runs in this status.
    status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, description = "`{runs: [...], next_cursor}`"),
              (status = 400, description = "A bad filter or cursor")))]
async fn list_runs(
    State(state): State<Shared>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let query = parse_query(query)?;
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("unknown status '{status}'; one of {}", STATUSES.join(", ")),
        )
        .field("status"));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "limit must be 1 to 500",
        )
        .field("limit"));
    }
    let before = match &query.cursor {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("bad cursor '{cursor}'"),
            )
            .field("cursor")
        })?),
    };
    let rows = blocking(move || state.store.runs(query.status.as_deref(), before, limit)).await??;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    let runs: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            json!({
                "id": row.id, "status": row.status, "env": row.spec["env"]["id"],
                "agent": row.spec["agent"]["id"], "created_at": row.created_at,
                "started_at": row.started_at, "finished_at": row.finished_at,
                "steps": row.steps, "episodes": row.episodes,
            })
        })
        .collect();
    Ok(Json(json!({"runs": runs, "next_cursor": next_cursor})))
}

/// One run: spec, status and its history, progress, latest metrics, summary.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run"), (status = 404, description = "Unknown run")))]
async fn get_run(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let view = blocking(move || {
        let row = state
            .store
            .run(&id)?
            .ok_or_else(|| ApiError::not_found(&id))?;
        let live = state.runs.progress(&id);
        let (steps, episodes, rate) = match live {
            Some(p) => (p.steps, p.episodes, Some(p.steps_per_second)),
            None => (row.steps, row.episodes, None),
        };
        let budget = RunSpec::from_value(&row.spec).ok().map(|s| s.budget);
        let fraction = budget.map(|b| match b {
            Budget::Steps(n) => steps as f64 / n.max(1) as f64,
            Budget::Episodes(n) => episodes as f64 / n.max(1) as f64,
        });
        let latest: Map<String, Value> = state
            .store
            .latest_metrics(&id)?
            .into_iter()
            .map(|(name, step, value)| (name, json!({"step": step, "value": value})))
            .collect();
        let history: Vec<Value> = state
            .store
            .events(&id, 0, Some(EventKind::Status), 1000)?
            .into_iter()
            .map(|e| e.data)
            .collect();
        Ok::<_, ApiError>(json!({
            "id": row.id,
            "status": row.status,
            "spec": row.spec,
            "created_at": row.created_at,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "status_history": history,
            "progress": {
                "steps": steps, "episodes": episodes,
                "budget": budget, "fraction": fraction.map(|f| f.min(1.0)),
                "steps_per_second": rate,
            },
            "metrics": latest,
            "summary": row.summary,
            "error": row.error,
        }))
    })
    .await??;
    Ok(Json(view))
}

/// Cancel a run (idempotent). A running run checkpoints and stops.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 202, description = "`{id, status}`: the status now"),
              (status = 404, description = "Unknown run")))]
async fn cancel_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let status = blocking({
        let id = id.clone();
        move || state.runs.cancel(&id)
    })
    .await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": status})),
    ))
}

/// Resume an interrupted or cancelled run from its last checkpoint.
#[utoipa::path(post, path = "/v1/runs/{id}/resume", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 202, description = "Queued again under the same id"),
              (status = 404, description = "Unknown run"),
              (status = 409, description = "The run is not interrupted or cancelled")))]
async fn resume_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    blocking({
        let id = id.clone();
        move || state.runs.resume(&id)
    })
    .await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "queued"})),
    ))
}

/// Delete a run: its rows and its folder. Not while it runs.
#[utoipa::path(delete, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "Unknown run"),
              (status = 409, description = "The run is running")))]
async fn delete_run(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || state.runs.delete(&id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/runs/{id}/metrics` parameters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct MetricsQuery {
    /// Metric names, comma-separated (default: all of the run's).
    name: Option<String>,
    /// Only values after this step.
    after_step: Option<u64>,
    /// Most values per metric, 1 to 100,000 (default 10,000).
    limit: Option<usize>,
}

/// A run's metrics as columnar arrays, ready to plot.
#[utoipa::path(get, path = "/v1/runs/{id}/metrics", tag = "runs",
    params(("id" = String, Path, description = "Run id"), MetricsQuery),
    responses((status = 200, description = "`{metrics: {name: {step: [], value: [], wall_seconds: []}}}`"),
              (status = 404, description = "Unknown run")))]
async fn run_metrics(
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<MetricsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let query = parse_query(query)?;
    let limit = query.limit.unwrap_or(10_000);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "limit must be 1 to 100000",
        )
        .field("limit"));
    }
    let metrics = blocking(move || {
        state
            .store
            .run(&id)?
            .ok_or_else(|| ApiError::not_found(&id))?;
        let names: Vec<String> = match &query.name {
            Some(names) => names.split(',').map(str::to_string).collect(),
            None => state.store.metric_names(&id)?,
        };
        let mut metrics = Map::new();
        for name in names {
            let series = state
                .store
                .metric_series(&id, &name, query.after_step, limit)?;
            let column = |pick: fn(&(u64, f64, f64)) -> Value| -> Vec<Value> {
                series.iter().map(pick).collect()
            };
            metrics.insert(
                name,
                json!({
                    "step": column(|r| json!(r.0)),
                    "value": column(|r| json!(r.1)),
                    "wall_seconds": column(|r| json!(r.2)),
                }),
            );
        }
        Ok::<_, ApiError>(metrics)
    })
    .await??;
    Ok(Json(json!({"metrics": metrics})))
}

/// A 404 unless run `id` exists.
async fn run_exists(state: &Shared, id: &str) -> ApiResult<()> {
    let state = state.clone();
    let id = id.to_string();
    blocking(move || match state.store.run(&id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found(&id)),
        Err(e) => Err(e.into()),
    })
    .await?
}

/// Whether a status ends a run's activity (until a resume).
fn is_final(status: &Value) -> bool {
    matches!(
        status.as_str(),
        Some("completed" | "failed" | "cancelled" | "interrupted")
    )
}

/// Passes `event` on if it is of `kind`; false when the stream should end
/// (the subscriber left, or, with `until_final`, the run ended).
async fn forward(
    event: crate::store::Event,
    kind: Option<EventKind>,
    until_final: bool,
    out: &mpsc::Sender<crate::store::Event>,
) -> bool {
    let ends = until_final && event.kind == EventKind::Status && is_final(&event.data["status"]);
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
    out: mpsc::Sender<crate::store::Event>,
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
            let Ok(Ok(page)) = page else { return };
            let full = page.len() == 1000;
            for event in page {
                after = event.id;
                if !forward(event, kind, until_final, &out).await {
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
            let state2 = state.clone();
            let id = run_id.clone();
            if let Ok(Ok(Some(row))) = blocking(move || state2.store.run(&id)).await
                && is_final(&json!(row.status))
                && state.runs.progress(&run_id).is_none()
            {
                return;
            }
        }
        // Then live.
        loop {
            match live.recv().await {
                Ok(event) => {
                    if event.run_id != run_id || event.id <= after {
                        continue;
                    }
                    after = event.id;
                    if !forward((*event).clone(), kind, until_final, &out).await {
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
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Events after this id (as the `Last-Event-ID` header).
    after: Option<i64>,
}

/// Server-sent events of a run: `metric`, `log` and `status`.
///
/// Each event's `id` increases; reconnecting with `Last-Event-ID` resumes
/// after it, from the store. Keep-alive comments are sent every 15 s.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "Run id"), EventsQuery,
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream"), (status = 404, description = "Unknown run")))]
async fn run_events(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let query = parse_query(query)?;
    let header_after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_header",
                        "Last-Event-ID must be an event id (an integer)",
                    )
                    .field("Last-Event-ID")
                })?,
        ),
    };
    let after = header_after.or(query.after).unwrap_or(0);
    run_exists(&state, &id).await?;
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow_events(state, id, after, None, false, sender));
    let stream = tokio_stream::StreamExt::map(ReceiverStream::new(receiver), |event| {
        let kind = match event.kind {
            EventKind::Metric => "metric",
            EventKind::Log => "log",
            EventKind::Status => "status",
        };
        Ok(SseEvent::default()
            .id(event.id.to_string())
            .event(kind)
            .data(event.data.to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /v1/runs/{id}/logs` parameters.
#[derive(Deserialize, IntoParams)]
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
    responses((status = 200, description = "application/x-ndjson: `{id, time, level, target, message, fields}` per line"),
              (status = 404, description = "Unknown run")))]
async fn run_logs(
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let query = parse_query(query)?;
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
                if sender.send(event).await.is_err() {
                    return;
                }
            }
        });
    }
    let lines = tokio_stream::StreamExt::map(ReceiverStream::new(receiver), |event| {
        let mut line = event.data;
        line["id"] = json!(event.id);
        Ok::<_, Infallible>(Bytes::from(format!("{line}\n")))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Checks an artefact name and resolves it inside `folder`. Names are
/// relative paths of plain components: no `..`, no absolute paths, no
/// backslashes or NULs (percent-encoded forms arrive decoded and are
/// caught the same way).
fn artifact_path(folder: &std::path::Path, name: &str) -> ApiResult<std::path::PathBuf> {
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_artifact_name",
            format!("'{name}' is not an artefact name"),
        )
        .field("name")
    };
    if name.is_empty() || name.starts_with('/') || name.contains(['\\', '\0', ':']) {
        return Err(bad());
    }
    let mut path = folder.to_path_buf();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.starts_with('.') {
            return Err(bad());
        }
        path.push(part);
    }
    Ok(path)
}

/// The files of a run folder, as artefact names (`tb/…` for TensorBoard).
fn artifact_names(folder: &std::path::Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut names = Vec::new();
    let mut pending = vec![(folder.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // files being written
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push((entry.path(), format!("{prefix}{name}/")));
            } else if kind.is_file() {
                names.push((format!("{prefix}{name}"), entry.metadata()?.len()));
            }
        }
    }
    names.sort();
    Ok(names)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("json") => "application/json",
        Some("jsonl") => "application/x-ndjson",
        Some("gif") => "image/gif",
        Some("png") => "image/png",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A run's artefacts: spec, metrics, checkpoints, tables, GIFs, TensorBoard files.
#[utoipa::path(get, path = "/v1/runs/{id}/artifacts", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "`{artifacts: [{name, bytes, content_type}]}`"),
              (status = 404, description = "Unknown run")))]
async fn list_artifacts(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run_exists(&state, &id).await?;
    let folder = state.runs.folder(&id);
    let names = blocking(move || artifact_names(&folder))
        .await?
        .map_err(ApiError::internal)?;
    let artifacts: Vec<Value> = names
        .into_iter()
        .map(|(name, bytes)| json!({"content_type": content_type(&name), "name": name, "bytes": bytes}))
        .collect();
    Ok(Json(json!({"artifacts": artifacts})))
}

/// One artefact, with its content type.
#[utoipa::path(get, path = "/v1/runs/{id}/artifacts/{name}", tag = "runs",
    params(("id" = String, Path, description = "Run id"),
           ("name" = String, Path, description = "Artefact name, e.g. `metrics.jsonl` or `tb/events.out.tfevents…`")),
    responses((status = 200, description = "The file"),
              (status = 400, description = "Not an artefact name"),
              (status = 404, description = "Unknown run or artefact")))]
async fn get_artifact(
    State(state): State<Shared>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    run_exists(&state, &id).await?;
    let path = artifact_path(&state.runs.folder(&id), &name)?;
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
            ) =>
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "artifact_not_found",
                format!("run '{id}' has no artefact '{name}'"),
            )
            .field("name"));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok(([(header::CONTENT_TYPE, content_type(&name))], bytes).into_response())
}

/// `POST /v1/runs/{id}/evaluate` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    /// Episodes to play (1 to 10,000; default the spec's `eval.episodes`).
    episodes: Option<u64>,
    /// Seed of the evaluation episodes (default the run seed).
    seed: Option<u64>,
    /// Record the first episode as a GIF artefact.
    #[serde(default)]
    record: bool,
}

/// Play the policy of the latest checkpoint; returns returns and lengths,
/// and with `record` the name of a GIF artefact of the first episode.
#[utoipa::path(post, path = "/v1/runs/{id}/evaluate", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body = EvaluateRequest,
    responses((status = 200, description = "`{episodes, returns, lengths, mean_return, mean_length, policy, trained_steps, gif?}`"),
              (status = 404, description = "Unknown run"),
              (status = 409, description = "The run has saved no policy yet"),
              (status = 422, description = "A bad request field")))]
async fn evaluate_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(&body)?
    };
    let request: EvaluateRequest = rl_env::parse_config(&value).map_err(|e| match e {
        rl_env::Error::Config { field, message } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message).field(field)
        }
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            other.to_string(),
        ),
    })?;
    if request.episodes.is_some_and(|n| !(1..=10_000).contains(&n)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "episodes must be 1 to 10000",
        )
        .field("episodes"));
    }
    let row = {
        let state = state.clone();
        let id = id.clone();
        blocking(move || state.store.run(&id)).await??
    }
    .ok_or_else(|| ApiError::not_found(&id))?;
    let spec = RunSpec::from_value(&row.spec).map_err(ApiError::internal)?;
    let episodes = request.episodes.unwrap_or(spec.eval.episodes.max(1));
    let seed = request.seed.unwrap_or(spec.seed);
    let report = blocking(move || {
        let folder =
            rl_runner::RunFolder::open(state.runs.folder(&id)).map_err(ApiError::internal)?;
        if !folder.path().join("agent.json").exists()
            && !folder.path().join("checkpoint.json").exists()
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_checkpoint",
                format!("run '{id}' has saved no policy yet (no checkpoint)"),
            ));
        }
        let gif_name = request.record.then(|| {
            format!(
                "eval-{}-seed{seed}.gif",
                (crate::store::now() * 1000.0) as u64
            )
        });
        let gif_path = gif_name.as_ref().map(|n| folder.path().join(n));
        let report = rl_runner::saved::evaluate_saved(
            &state.engine,
            &folder,
            episodes,
            seed,
            gif_path.as_deref(),
        )
        .map_err(ApiError::internal)?;
        let mut value = serde_json::to_value(&report).map_err(ApiError::internal)?;
        if let Some(name) = gif_name {
            value["gif"] = json!(name);
        }
        Ok(value)
    })
    .await??;
    Ok(Json(report))
}

/// Every environment: id, spaces, config defaults.
#[utoipa::path(get, path = "/v1/catalog/envs", tag = "catalog",
    responses((status = 200, description = "`{envs: [...]}`")))]
async fn catalog_envs(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let envs = blocking(move || rl_runner::catalog::envs(&state.engine)).await?;
    Ok(Json(json!({"envs": envs})))
}

/// Every agent: each hyperparameter with its type, default and doc, and a
/// JSON Schema of its config.
#[utoipa::path(get, path = "/v1/catalog/agents", tag = "catalog",
    responses((status = 200, description = "`{agents: [...]}`")))]
async fn catalog_agents(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let agents = blocking(move || rl_runner::catalog::agents(&state.engine)).await?;
    Ok(Json(json!({"agents": agents})))
}

/// The JSON Schema of one agent's config.
#[utoipa::path(get, path = "/v1/catalog/agents/{id}/schema", tag = "catalog",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, description = "A JSON Schema"), (status = 404, description = "Unknown agent")))]
async fn agent_schema(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let agents = blocking(move || rl_runner::catalog::agents(&state.engine)).await?;
    agents
        .into_iter()
        .find(|a| a.id == id)
        .map(|a| Json(a.config_schema))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "agent_not_found",
                format!("unknown agent '{id}'"),
            )
            .field("id")
        })
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`{status: \"ok\"}`")))]
async fn healthz(State(state): State<Shared>) -> Json<Value> {
    Json(json!({"status": "ok", "uptime_seconds": state.started.elapsed().as_secs_f64()}))
}

/// Prometheus text format: runs by status, env steps per second, open env instances.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "text/plain; version=0.0.4")))]
async fn prometheus(State(state): State<Shared>) -> ApiResult<Response> {
    let open = state.envs.open_count();
    let (counts, progress) = blocking(move || {
        Ok::<_, StoreError>((state.store.status_counts()?, state.runs.all_progress()))
    })
    .await??;
    let mut text = String::new();
    text.push_str("# HELP rl_lab_runs Runs by status.\n# TYPE rl_lab_runs gauge\n");
    for status in STATUSES {
        let count = counts
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        text.push_str(&format!("rl_lab_runs{{status=\"{status}\"}} {count}\n"));
    }
    let rate: f64 = progress.iter().map(|p| p.steps_per_second).sum();
    text.push_str(&format!(
        "# HELP rl_lab_env_steps_per_second Env steps per second over running runs.\n# TYPE rl_lab_env_steps_per_second gauge\nrl_lab_env_steps_per_second {rate}\n"
    ));
    text.push_str(&format!(
        "# HELP rl_lab_open_env_instances Open environment instances.\n# TYPE rl_lab_open_env_instances gauge\nrl_lab_open_env_instances {open}\n"
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
