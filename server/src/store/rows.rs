//! What both backends read back, in the same columns: runs, sweeps and
//! metric points, from the same SQL column lists into the same types.

use super::{RunRow, StoreError, StoreResult, SweepRow};
use rl_runner::RunStatus;

/// A stored row as a [`MetricPoint`]: a single point is its own window of
/// one.
pub(super) const POINT_COLUMNS: &str =
    "step, value, wall_seconds, coalesce(count, 1), coalesce(min, value), coalesce(max, value)";

pub(super) const SWEEP_COLUMNS: &str = "id, name, spec, configurations, created_at";

pub(super) type RawSweep = (String, String, String, String, f64);

pub(super) fn parse_sweep(raw: RawSweep) -> StoreResult<SweepRow> {
    let (id, name, spec, configurations, created_at) = raw;
    let json = |text: &str, what: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| StoreError::Corrupt(format!("sweep {id}'s {what} is not JSON: {e}")))
    };
    let spec = json(&spec, "spec")?;
    let configurations = match json(&configurations, "configurations")? {
        serde_json::Value::Array(list) => list,
        other => {
            return Err(StoreError::Corrupt(format!(
                "sweep {id}'s configurations are {other}, not a list"
            )));
        }
    };
    Ok(SweepRow {
        id,
        name,
        spec,
        configurations,
        created_at,
    })
}

pub(super) const RUN_COLUMNS: &str = "id, seq, spec, status, created_at, started_at, finished_at, \
     steps, episodes, summary, error, worker, attempts, steps_per_second, recent_mean_return";

pub(super) type RawRun = (
    String,
    i64,
    String,
    String,
    f64,
    Option<f64>,
    Option<f64>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<f64>,
    Option<f64>,
);

pub(super) fn parse_status(text: &str) -> StoreResult<RunStatus> {
    text.parse()
        .map_err(|e: rl_runner::UnknownStatus| StoreError::Corrupt(e.to_string()))
}

pub(super) fn parse_run(raw: RawRun) -> StoreResult<RunRow> {
    let (
        id,
        seq,
        spec,
        status,
        created_at,
        started_at,
        finished_at,
        steps,
        episodes,
        summary,
        error,
        worker,
        attempts,
        steps_per_second,
        recent_mean_return,
    ) = raw;
    Ok(RunRow {
        id,
        seq,
        spec: serde_json::from_str(&spec)?,
        status: parse_status(&status)?,
        created_at,
        started_at,
        finished_at,
        steps: steps as u64,
        episodes: episodes as u64,
        summary: summary.map(|s| serde_json::from_str(&s)).transpose()?,
        error,
        worker,
        attempts: attempts as u64,
        steps_per_second,
        recent_mean_return,
    })
}
