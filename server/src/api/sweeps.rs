//! Sweeps: many runs from one request (a base spec over a grid, random
//! draws and seeds), and their results grouped by configuration.

use super::{Path, RequestBody, parse_json};
use crate::error::responses::Internal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::{Shared, blocking};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rl_runner::RunStatus;
use rl_runner::sweep::{SweepSpec, check_runs};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(create_sweep, list_sweeps))
        .routes(routes!(get_sweep))
}

/// The summary field a sweep's runs are compared on.
const FINAL_METRIC: &str = "train_mean_return_last_100";

/// A queued sweep.
#[derive(Serialize, ToSchema)]
pub struct SweepCreated {
    /// The sweep.
    pub id: String,
    /// How many configurations it expanded to.
    pub configurations: usize,
    /// Its runs' ids, configuration by configuration, seed by seed.
    pub runs: Vec<String>,
}

/// Launch a sweep.
///
/// `{"name", "base": run spec, "grid": {path: [values]}, "random": {path:
/// {"uniform" | "log_uniform": [low, high]} | {"choice": [values]}, "count":
/// N}, "seeds": [...], "random_seed": 0}`. Paths are dotted spec keys
/// (`agent.config.alpha`). Every run is checked as `POST /v1/runs` checks
/// one before any is stored; one bad run refuses the whole sweep.
#[utoipa::path(post, path = "/v1/sweeps", tag = "sweeps",
    request_body(content = SweepSpec, description = "A sweep (docs/server.md, \"Sweeps\")"),
    responses(
        (status = 201, description = "Queued; `Location` names the sweep", body = SweepCreated,
            headers(("Location" = String, description = "`/v1/sweeps/{id}`"))),
        (status = 400, description = "`malformed_json`: the body is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_spec`: `field` is the sweep's field or the run spec's path at fault; `invalid_request`: the body is not a JSON object", body = ErrorBody),
        (status = 503, description = "`shutting_down`", body = ErrorBody),
        Internal,
    ))]
async fn create_sweep(
    State(state): State<Shared>,
    RequestBody(body): RequestBody,
) -> ApiResult<Response> {
    let value = parse_json(&body)?;
    let created = blocking(move || {
        let sweep = SweepSpec::from_value(&value).map_err(super::runs::spec_error)?;
        let configurations = sweep.expand().map_err(super::runs::spec_error)?;
        // A configuration's runs differ in their seed alone: one of each
        // shows its configs' shapes.
        for run in configurations.iter().filter_map(|c| c.runs.first()) {
            let run = serde_json::to_value(run)
                .map_err(|e| ApiError::internal("writing a run spec", e))?;
            super::check_config_shapes(&run)?;
        }
        check_runs(&state.engine, &configurations).map_err(super::runs::spec_error)?;
        let params = Value::from(
            configurations
                .iter()
                .map(|c| Value::Object(c.params.clone().into_iter().collect()))
                .collect::<Vec<_>>(),
        );
        let runs: Vec<_> = configurations
            .iter()
            .flat_map(|c| c.runs.iter().map(move |run| (c.index, run.clone())))
            .collect();
        let (id, runs) = state
            .runs
            .submit_sweep(sweep.name.clone(), value, params, &runs)?;
        Ok::<_, ApiError>(SweepCreated {
            id,
            configurations: configurations.len(),
            runs,
        })
    })
    .await??;
    let location = format!("/v1/sweeps/{}", created.id);
    Ok(super::created(&location, created))
}

/// A sweep, as lists show it.
#[derive(Serialize, ToSchema)]
pub struct SweepListItem {
    /// The sweep.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was submitted (Unix seconds).
    pub created_at: f64,
    /// How many configurations it has.
    pub configurations: usize,
}

/// The newest sweeps.
#[derive(Serialize, ToSchema)]
pub struct SweepList {
    /// Newest first, at most 500.
    pub sweeps: Vec<SweepListItem>,
}

/// List sweeps, newest first.
#[utoipa::path(get, path = "/v1/sweeps", tag = "sweeps",
    responses((status = 200, description = "The newest 500 sweeps", body = SweepList), Internal))]
async fn list_sweeps(State(state): State<Shared>) -> ApiResult<Json<SweepList>> {
    let sweeps = blocking(move || state.store.sweeps(500)).await??;
    Ok(Json(SweepList {
        sweeps: sweeps
            .into_iter()
            .map(|s| SweepListItem {
                id: s.id,
                name: s.name,
                created_at: s.created_at,
                configurations: s.configurations.len(),
            })
            .collect(),
    }))
}

/// One run of a sweep.
#[derive(Serialize, ToSchema)]
pub struct SweepRun {
    /// The run.
    pub id: String,
    /// Its seed.
    pub seed: u64,
    /// Where it stands.
    pub status: RunStatus,
    /// Its summary's final 100-episode mean return, once it completed.
    #[serde(rename = "final")]
    pub final_value: Option<f64>,
}

/// One configuration of a sweep, with its runs and their aggregate.
#[derive(Serialize, ToSchema)]
pub struct SweepConfiguration {
    /// Its place in the sweep, from 0.
    pub index: usize,
    /// The value of each path the sweep varies.
    #[schema(value_type = Object)]
    pub params: Value,
    /// One per seed (a deleted run is left out).
    pub runs: Vec<SweepRun>,
    /// How many runs completed.
    pub completed: usize,
    /// Mean of the completed runs' final values; `null` before any.
    pub final_mean: Option<f64>,
    /// Their standard deviation across seeds (n − 1 in the denominator);
    /// `null` below two.
    pub final_std: Option<f64>,
}

/// A sweep and its results.
#[derive(Serialize, ToSchema)]
pub struct SweepView {
    /// The sweep.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was submitted (Unix seconds).
    pub created_at: f64,
    /// The sweep as submitted.
    #[schema(value_type = Object)]
    pub spec: Value,
    /// The summary field compared: `train_mean_return_last_100`.
    pub metric: &'static str,
    /// How many of its runs are in each status.
    pub statuses: BTreeMap<String, usize>,
    /// In order.
    pub configurations: Vec<SweepConfiguration>,
}

/// One sweep: each configuration's runs, their statuses, and the final
/// metric's mean and standard deviation across seeds.
#[utoipa::path(get, path = "/v1/sweeps/{id}", tag = "sweeps",
    params(("id" = String, Path, description = "Sweep id")),
    responses(
        (status = 200, description = "The sweep", body = SweepView),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 404, description = "`sweep_not_found`", body = ErrorBody),
        Internal,
    ))]
async fn get_sweep(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<SweepView>> {
    let (sweep, runs) =
        blocking(move || state.store.sweep(&id)?.ok_or(ApiError::SweepNotFound(id))).await??;
    let mut statuses = BTreeMap::new();
    let mut configurations: Vec<SweepConfiguration> = sweep
        .configurations
        .iter()
        .enumerate()
        .map(|(index, params)| SweepConfiguration {
            index,
            params: params.clone(),
            runs: Vec::new(),
            completed: 0,
            final_mean: None,
            final_std: None,
        })
        .collect();
    for (index, run) in runs {
        *statuses.entry(run.status.to_string()).or_insert(0) += 1;
        let Some(configuration) = configurations.get_mut(index) else {
            continue;
        };
        let final_value = match run.status {
            RunStatus::Completed => run
                .summary
                .as_ref()
                .and_then(|s| s.get(FINAL_METRIC))
                .and_then(Value::as_f64),
            _ => None,
        };
        configuration.completed += usize::from(run.status == RunStatus::Completed);
        configuration.runs.push(SweepRun {
            seed: run.spec.get("seed").and_then(Value::as_u64).unwrap_or(0),
            id: run.id,
            status: run.status,
            final_value,
        });
    }
    for configuration in &mut configurations {
        let values: Vec<f64> = configuration
            .runs
            .iter()
            .filter_map(|r| r.final_value)
            .collect();
        let (mean, std) = mean_and_std(&values);
        configuration.final_mean = mean;
        configuration.final_std = std;
    }
    Ok(Json(SweepView {
        id: sweep.id,
        name: sweep.name,
        created_at: sweep.created_at,
        spec: sweep.spec,
        metric: FINAL_METRIC,
        statuses,
        configurations,
    }))
}

/// The mean of `values` (none if empty) and their sample standard
/// deviation (none below two).
fn mean_and_std(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() >= 2)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), std)
}

#[cfg(test)]
mod tests {
    use super::mean_and_std;

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean_and_std(&[]), (None, None));
        assert_eq!(mean_and_std(&[3.0]), (Some(3.0), None));
        let (mean, std) = mean_and_std(&[2.0, 4.0, 6.0]);
        assert_eq!(mean, Some(4.0));
        assert!((std.unwrap() - 2.0).abs() < 1e-12);
    }
}
