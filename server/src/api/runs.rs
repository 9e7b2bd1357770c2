//! Runs: launch, list, show, cancel, resume, delete, and their metrics.

use super::{Path, Query, RequestBody, parse_json};
use crate::error::responses::{Internal, UnknownRun};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::runs::EPISODE_RETURN;
use crate::store::{EventKind, StatusChange, StoreError};
use crate::{Shared, blocking};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use rl_runner::{Budget, RunSpec, RunStatus, Summary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(create_run, list_runs))
        .routes(routes!(get_run, delete_run))
        .routes(routes!(cancel_run))
        .routes(routes!(resume_run))
        .routes(routes!(run_metrics))
}

/// A run's id and where it stands.
#[derive(Serialize, ToSchema)]
pub struct RunStatusReply {
    /// The run.
    pub id: String,
    /// Its status now.
    pub status: RunStatus,
}

/// Launch a run.
///
/// Takes the same run spec as `rl-lab run`. The spec is checked completely
/// (environment and agent are built) before anything is stored.
#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    request_body(content = RunSpec, description = "A run spec, as `rl-lab run` takes (docs/run-spec.md)"),
    responses(
        (status = 201, description = "Queued; `Location` names the run", body = RunStatusReply,
            headers(("Location" = String, description = "`/v1/runs/{id}`"))),
        (status = 400, description = "`malformed_json`: the body is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_spec`: `field` is the JSON path of the bad value; `invalid_request`: the body is not a JSON object", body = ErrorBody),
        (status = 503, description = "`shutting_down`", body = ErrorBody),
        Internal,
    ))]
async fn create_run(
    State(state): State<Shared>,
    RequestBody(body): RequestBody,
) -> ApiResult<Response> {
    let value = parse_json(&body)?;
    super::check_config_shapes(&value)?;
    let submitted = blocking(move || {
        let spec = RunSpec::from_value(&value).map_err(spec_error)?;
        // Building the env and agent is the full validation, and it is
        // cheap; the worker builds them again when the run starts. A run
        // within the memory cap that the allocator refuses anyway is
        // accepted: its worker meets the refusal again and the run ends
        // `failed` with "out of memory", while the server goes on.
        match state.engine.prepare(spec.clone()) {
            Err(e) if !e.is_out_of_memory() => return Err(spec_error(e)),
            _ => {}
        }
        Ok::<_, ApiError>(state.runs.submit(&spec)?)
    })
    .await??;
    let location = format!("/v1/runs/{submitted}");
    let reply = RunStatusReply {
        id: submitted,
        status: RunStatus::Queued,
    };
    Ok(super::created(&location, reply))
}

pub(super) fn spec_error(e: rl_runner::Error) -> ApiError {
    match e {
        rl_runner::Error::Spec { field, message } => ApiError::InvalidSpec {
            message,
            field: Some(field),
        },
        // The agent cannot work with the env's spaces or model: the env
        // part of the spec is what to change (or the agent).
        rl_runner::Error::Incompatible(message) => ApiError::InvalidSpec {
            message,
            field: Some("env".into()),
        },
        // The run would not fit the server's per-run memory cap.
        rl_runner::Error::TooLarge { ref field, .. } => ApiError::InvalidSpec {
            field: Some(field.clone()),
            message: e.to_string(),
        },
        e => ApiError::internal("building the run from its spec", e),
    }
}

/// `GET /v1/runs` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only runs in this status.
    #[param(value_type = Option<RunStatus>)]
    status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>)]
    cursor: Option<String>,
    /// Also give each run's `returns`: its episode returns downsampled to
    /// at most 32 points, for a sparkline.
    sparklines: Option<bool>,
}

/// Points of a run list's sparklines.
const SPARKLINE_POINTS: usize = 32;

/// A page of runs.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunListItem>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// The newest event id when the page was read: `GET /v1/events` after it
    /// brings every status change since.
    pub last_event_id: i64,
}

/// A run, as lists show it.
#[derive(Serialize, ToSchema)]
pub struct RunListItem {
    /// The run.
    pub id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// Environment id.
    pub env: String,
    /// Agent id.
    pub agent: String,
    /// When it was submitted (Unix seconds).
    pub created_at: f64,
    /// When it last started running.
    pub started_at: Option<f64>,
    /// When it last stopped.
    pub finished_at: Option<f64>,
    /// Environment steps so far.
    pub steps: u64,
    /// Episodes so far.
    pub episodes: u64,
    /// How much of the budget is spent, 0 to 1.
    pub fraction: Option<f64>,
    /// Env steps per second, while it runs.
    pub steps_per_second: Option<f64>,
    /// Mean return of the last 100 training episodes: live while it runs,
    /// else the summary's.
    pub mean_return_100: Option<f64>,
    /// With `sparklines=true`: the episode returns, downsampled to at most
    /// 32 points (each a bucket's mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returns: Option<Vec<f64>>,
}

/// How much of `spec`'s budget `steps` and `episodes` spend, 0 to 1.
pub(super) fn budget_fraction(budget: Option<Budget>, steps: u64, episodes: u64) -> Option<f64> {
    budget.map(|b| {
        let spent = match b {
            Budget::Steps(n) => steps as f64 / n.max(1) as f64,
            Budget::Episodes(n) => episodes as f64 / n.max(1) as f64,
        };
        spent.min(1.0)
    })
}

/// List runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunList),
        (status = 400, description = "`bad_query`: a bad filter, limit or cursor", body = ErrorBody),
        Internal,
    ))]
async fn list_runs(
    State(state): State<Shared>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<RunList>> {
    let status = match &query.status {
        None => None,
        Some(status) => Some(
            status
                .parse::<RunStatus>()
                .map_err(|e| ApiError::bad_query("status", e.to_string()))?,
        ),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_query("limit", "limit must be 1 to 500"));
    }
    let before = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            cursor
                .parse::<i64>()
                .map_err(|_| ApiError::bad_query("cursor", format!("bad cursor '{cursor}'")))?,
        ),
    };
    let sparklines = query.sparklines.unwrap_or(false);
    let list = blocking(move || {
        let last_event_id = state.store.last_event_id()?;
        let rows = state.store.runs(status, before, limit)?;
        let next_cursor = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.seq.to_string()))
            .flatten();
        let id_of = |part: &Value| part["id"].as_str().unwrap_or_default().to_string();
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows {
            let live = state.runs.live(&row);
            let (steps, episodes) =
                live.map_or((row.steps, row.episodes), |p| (p.steps, p.episodes));
            let budget = RunSpec::from_value(&row.spec).ok().map(|s| s.budget);
            let summary_mean = || row.summary.as_ref()?["train_mean_return_last_100"].as_f64();
            let returns = if sparklines {
                let points = state.store.metric_series_downsampled(
                    &row.id,
                    EPISODE_RETURN,
                    None,
                    SPARKLINE_POINTS,
                )?;
                Some(points.into_iter().map(|p| p.value).collect())
            } else {
                None
            };
            runs.push(RunListItem {
                env: id_of(&row.spec["env"]),
                agent: id_of(&row.spec["agent"]),
                // A completed run is done, budget spent or (a planner)
                // converged without spending it.
                fraction: if row.status == RunStatus::Completed {
                    Some(1.0)
                } else {
                    budget_fraction(budget, steps, episodes)
                },
                steps_per_second: live.map(|p| p.steps_per_second),
                mean_return_100: live
                    .and_then(|p| p.recent_mean_return)
                    .or_else(summary_mean),
                returns,
                id: row.id,
                status: row.status,
                created_at: row.created_at,
                started_at: row.started_at,
                finished_at: row.finished_at,
                steps,
                episodes,
            });
        }
        Ok::<_, StoreError>(RunList {
            runs,
            next_cursor,
            last_event_id,
        })
    })
    .await??;
    Ok(Json(list))
}

/// One run, in full.
#[derive(Serialize, ToSchema)]
pub struct RunView {
    /// The run.
    pub id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// The spec as submitted.
    #[schema(value_type = RunSpec)]
    pub spec: Value,
    /// When it was submitted (Unix seconds).
    pub created_at: f64,
    /// When it last started running.
    pub started_at: Option<f64>,
    /// When it last stopped.
    pub finished_at: Option<f64>,
    /// Every status it has been in, oldest first.
    pub status_history: Vec<StatusChange>,
    /// How far it has got.
    pub progress: RunProgress,
    /// The latest value of each of its metrics, by name.
    pub metrics: BTreeMap<String, LatestMetric>,
    /// The summary, once it has ended.
    #[schema(value_type = Option<Summary>)]
    pub summary: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The process that holds it while it runs, or last held it
    /// (`GET /v1/workers`).
    pub worker: Option<String>,
    /// How many times a process has claimed it: more than one when a
    /// worker was lost and another resumed it.
    pub attempts: u64,
}

/// How far a run has got.
#[derive(Serialize, ToSchema)]
pub struct RunProgress {
    /// Environment steps so far.
    pub steps: u64,
    /// Episodes so far.
    pub episodes: u64,
    /// Its budget.
    pub budget: Option<Budget>,
    /// The share of the budget done, 0 to 1.
    pub fraction: Option<f64>,
    /// Environment steps per second, while it runs.
    pub steps_per_second: Option<f64>,
}

/// A metric's latest value.
#[derive(Serialize, ToSchema)]
pub struct LatestMetric {
    /// The env step it belongs to.
    pub step: u64,
    /// The value.
    pub value: f64,
}

/// One run: spec, status and its history, progress, latest metrics, summary.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn get_run(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<RunView>> {
    let view = blocking(move || {
        let row = state
            .store
            .run(&id)?
            .ok_or_else(|| ApiError::RunNotFound(id.clone()))?;
        let live = state.runs.live(&row);
        let (steps, episodes, rate) = match live {
            Some(p) => (p.steps, p.episodes, Some(p.steps_per_second)),
            None => (row.steps, row.episodes, None),
        };
        let budget = RunSpec::from_value(&row.spec).ok().map(|s| s.budget);
        let metrics = state
            .store
            .latest_metrics(&id)?
            .into_iter()
            .map(|(name, step, value)| (name, LatestMetric { step, value }))
            .collect();
        let status_history = state
            .store
            .events(&id, 0, Some(EventKind::Status), 1000)?
            .into_iter()
            .map(|e| serde_json::from_str(&e.data))
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::internal(format!("reading {id}'s status history"), e))?;
        Ok::<_, ApiError>(RunView {
            id: row.id,
            status: row.status,
            spec: row.spec,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            status_history,
            progress: RunProgress {
                steps,
                episodes,
                budget,
                fraction: budget_fraction(budget, steps, episodes),
                steps_per_second: rate,
            },
            metrics,
            summary: row.summary,
            error: row.error,
            worker: row.worker,
            attempts: row.attempts,
        })
    })
    .await??;
    Ok(Json(view))
}

/// Cancel a run (idempotent). A running run checkpoints and stops.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 202, description = "The status after the request: a running run is waited for up to 1.5 s while it checkpoints and stops, and answers `cancelled` (or `running` if it has not stopped by then; it then stops shortly after); a queued run is `cancelled` at once; an ended run keeps its status", body = RunStatusReply),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn cancel_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunStatusReply>)> {
    let status = blocking({
        let id = id.clone();
        move || state.runs.cancel(&id)
    })
    .await??;
    Ok((StatusCode::ACCEPTED, Json(RunStatusReply { id, status })))
}

/// Resume an interrupted or cancelled run, or a failed run that has a
/// checkpoint (e.g. once its remote env server is back), from its last
/// checkpoint.
#[utoipa::path(post, path = "/v1/runs/{id}/resume", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 202, description = "Queued again under the same id", body = RunStatusReply),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 409, description = "`conflict`: the run is not interrupted or cancelled, nor failed with a checkpoint", body = ErrorBody),
        (status = 503, description = "`shutting_down`", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn resume_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunStatusReply>)> {
    blocking({
        let id = id.clone();
        move || state.runs.resume(&id)
    })
    .await??;
    let reply = RunStatusReply {
        id,
        status: RunStatus::Queued,
    };
    Ok((StatusCode::ACCEPTED, Json(reply)))
}

/// Delete a run: its rows and its folder. Not while it runs.
#[utoipa::path(delete, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 409, description = "`conflict`: the run is running", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn delete_run(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || state.runs.delete(&id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/runs/{id}/metrics` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MetricsQuery {
    /// Metric names, comma-separated (default: all of the run's).
    name: Option<String>,
    /// Only values after this step.
    after_step: Option<u64>,
    /// Most stored rows per metric, 1 to 100,000 (default 10,000), from the
    /// first after `after_step`. Not with `max_points`.
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<usize>,
    /// Downsample for plotting: at most this many points per metric, 3 to
    /// 100,000, covering every stored row after `after_step`. A series with
    /// no more rows comes whole. Otherwise its first and last rows come as
    /// they are, and the rows between are summed in equal step ranges, one
    /// point each (its last step, the mean, and the `min`, `max` and `count`
    /// of the points in it, so spikes stay visible); the ranges are aligned
    /// to the store's rollups, so a long series gets between half and all of
    /// `max_points`. Without it, every stored row up to `limit`.
    #[param(minimum = 3, maximum = 100_000)]
    max_points: Option<usize>,
}

/// The bounds of `max_points`: the first row, the last, and at least one
/// bucket between; at most as many points as `limit` allows rows.
const MAX_POINTS: std::ops::RangeInclusive<usize> = 3..=100_000;

/// A run's metrics, by name.
#[derive(Serialize, ToSchema)]
pub struct MetricsReply {
    /// Each metric asked for (a name the run lacks has empty columns).
    pub metrics: BTreeMap<String, MetricSeries>,
    /// The newest event id, taken before the metrics were read: the run's
    /// events after it bring every point since (and perhaps a few already
    /// here, at the same steps).
    pub last_event_id: i64,
}

/// One metric as columns, ready to plot: entry `i` of each is one point.
/// A point may stand for several recorded values (a window the recording
/// policy stored as one row, or a bucket of a downsampled read): `value` is
/// then their mean at the last one's step, and `min`, `max` and `count`
/// describe them. For a single value, `min = max = value` and `count = 1`.
#[derive(Serialize, ToSchema, Default)]
pub struct MetricSeries {
    /// The env step of each point (its last value's).
    pub step: Vec<u64>,
    /// The values (the mean, for a point of several).
    pub value: Vec<f64>,
    /// Seconds since training began, at each point's last value.
    pub wall_seconds: Vec<f64>,
    /// The smallest value each point stands for.
    pub min: Vec<f64>,
    /// The largest value each point stands for.
    pub max: Vec<f64>,
    /// How many recorded values each point stands for.
    pub count: Vec<u64>,
}

/// A run's metrics as columnar arrays, ready to plot; `max_points`
/// downsamples them.
#[utoipa::path(get, path = "/v1/runs/{id}/metrics", tag = "runs",
    params(("id" = String, Path, description = "Run id"), MetricsQuery),
    responses(
        (status = 200, description = "The metrics", body = MetricsReply),
        (status = 400, description = "`bad_query` (`field` names the parameter: `limit` or `max_points` out of range, or both given) or `bad_path`", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn run_metrics(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<MetricsQuery>,
) -> ApiResult<Json<MetricsReply>> {
    let limit = query.limit.unwrap_or(10_000);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::bad_query("limit", "limit must be 1 to 100000"));
    }
    if let Some(max_points) = query.max_points {
        if !MAX_POINTS.contains(&max_points) {
            return Err(ApiError::bad_query(
                "max_points",
                "max_points must be 3 to 100000",
            ));
        }
        if query.limit.is_some() {
            return Err(ApiError::bad_query(
                "limit",
                "limit pages through stored rows, max_points summarises them all: give one",
            ));
        }
    }
    let (metrics, last_event_id) = blocking(move || {
        if state.store.run(&id)?.is_none() {
            return Err(ApiError::RunNotFound(id));
        }
        let last_event_id = state.store.last_event_id()?;
        let names: Vec<String> = match &query.name {
            Some(names) => names.split(',').map(str::to_string).collect(),
            None => state.store.metric_names(&id)?,
        };
        let mut metrics = BTreeMap::new();
        for name in names {
            let points = match query.max_points {
                Some(max_points) => state.store.metric_series_downsampled(
                    &id,
                    &name,
                    query.after_step,
                    max_points,
                )?,
                None => state
                    .store
                    .metric_series(&id, &name, query.after_step, limit)?,
            };
            let mut series = MetricSeries::default();
            for point in points {
                series.step.push(point.step);
                series.value.push(point.value);
                series.wall_seconds.push(point.wall_seconds);
                series.min.push(point.min);
                series.max.push(point.max);
                series.count.push(point.count);
            }
            metrics.insert(name, series);
        }
        Ok((metrics, last_event_id))
    })
    .await??;
    Ok(Json(MetricsReply {
        metrics,
        last_event_id,
    }))
}
