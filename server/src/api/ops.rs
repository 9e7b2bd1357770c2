//! Operations: liveness and Prometheus metrics.

use crate::error::ApiResult;
use crate::error::responses::Internal;
use crate::store::{StoreError, WorkerRow};
use crate::{Shared, blocking};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rl_runner::RunStatus;
use serde::Serialize;
use std::fmt::Write;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(prometheus))
        .routes(routes!(workers))
}

/// The processes that execute runs.
#[derive(Serialize, ToSchema)]
pub struct Workers {
    /// This server's own name in the list.
    pub server: String,
    /// Every process (server or `rl-lab worker`) that has executed runs
    /// from this store, newest heartbeat first, with the runs each holds.
    pub workers: Vec<WorkerRow>,
}

/// The processes that execute runs from this server's store (itself, other
/// servers, `rl-lab worker` processes), their last heartbeat and the runs
/// each holds.
#[utoipa::path(get, path = "/v1/workers", tag = "operations",
    responses((status = 200, description = "The workers", body = Workers), Internal))]
async fn workers(State(state): State<Shared>) -> ApiResult<Json<Workers>> {
    let server = state.runs.node_name().to_string();
    let workers = blocking(move || state.store.workers()).await??;
    Ok(Json(Workers { server, workers }))
}

/// The server is up.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Seconds since the server started.
    pub uptime_seconds: f64,
}

/// Liveness; never needs the token.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The server is up", body = Health)))]
async fn healthz(State(state): State<Shared>) -> Json<Health> {
    Json(Health {
        status: "ok",
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    })
}

/// Prometheus text format: runs by status, env steps per second, open env instances.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4"),
        Internal,
    ))]
async fn prometheus(State(state): State<Shared>) -> ApiResult<Response> {
    let open = state.envs.open_count();
    let (counts, progress) = blocking(move || {
        Ok::<_, StoreError>((state.store.status_counts()?, state.runs.all_progress()))
    })
    .await??;
    let mut text = String::new();
    text.push_str("# HELP rl_lab_runs Runs by status.\n# TYPE rl_lab_runs gauge\n");
    for status in RunStatus::ALL {
        let count = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(text, "rl_lab_runs{{status=\"{status}\"}} {count}");
    }
    let rate: f64 = progress.iter().map(|(_, p)| p.steps_per_second).sum();
    let _ = write!(
        text,
        "# HELP rl_lab_env_steps_per_second Env steps per second over running runs.\n# TYPE rl_lab_env_steps_per_second gauge\nrl_lab_env_steps_per_second {rate}\n"
    );
    let _ = write!(
        text,
        "# HELP rl_lab_open_env_instances Open environment instances.\n# TYPE rl_lab_open_env_instances gauge\nrl_lab_open_env_instances {open}\n"
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
