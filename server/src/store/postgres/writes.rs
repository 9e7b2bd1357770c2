//! The writer thread's batches as PostgreSQL transactions.
//!
//! As in SQLite, each write stands alone in a savepoint of the batch's
//! transaction. Consecutive metric records (most of a batch) go together
//! in one savepoint and four statements: their events, their rows and
//! their rollups as arrays. Should that fail, each is tried again alone, so
//! that only the record at fault is lost.
//!
//! Every batch holds [`EVENTS_LOCK`] until it commits, so event ids are
//! handed out in commit order: a reader that tails the events by id (an
//! API node following runs that other machines record) never sees an id
//! before a smaller one that commits later.

use super::super::writer::{
    Applied, Committed, Queued, is_external, lost_worker_message, status_event,
};
use super::super::{
    BatchFailure, Event, EventKind, MetricValue, ROLLUP_SHIFTS, StoreFault, Write, now,
};
use deadpool_postgres::Transaction;
use rl_runner::RunStatus;
use serde_json::Value;
use std::collections::BTreeMap;

/// The advisory lock each batch's transaction holds: one writer at a time
/// hands out event ids, across every process that shares the database.
const EVENTS_LOCK: i64 = 0x726c_6c61_6202;

fn failed(write: String, e: &tokio_postgres::Error, lost: usize) -> BatchFailure {
    BatchFailure {
        write,
        cause: super::describe(e),
        batch: lost,
        fault: StoreFault::of_postgres(e),
    }
}

/// Applies `batch` in one transaction, each write (or run of metric
/// records) in a savepoint of its own.
pub(super) async fn commit(
    client: &mut deadpool_postgres::Client,
    batch: &mut [Queued],
) -> Result<Committed, BatchFailure> {
    let size = batch.len();
    let mut tx = client
        .transaction()
        .await
        .map_err(|e| failed("begin a transaction".into(), &e, size))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])
        .await
        .map_err(|e| failed("take the events lock".into(), &e, size))?;
    let time = now();
    let mut applied = Vec::with_capacity(size);
    let mut events = Vec::new();
    let mut start = 0;
    while start < batch.len() {
        let metrics = batch[start..]
            .iter()
            .take_while(|queued| matches!(queued.write, Write::Metric { .. }))
            .count();
        if metrics > 1 {
            let group = &mut batch[start..start + metrics];
            let savepoint = tx
                .savepoint("metrics")
                .await
                .map_err(|e| failed("begin a savepoint".into(), &e, size))?;
            match insert_metrics(&savepoint, group, time).await {
                Ok(mut produced) => {
                    savepoint
                        .commit()
                        .await
                        .map_err(|e| failed("release a savepoint".into(), &e, size))?;
                    take_payloads(group, &mut produced);
                    events.append(&mut produced);
                    applied.extend(group.iter().map(|_| Ok(Applied::Done)));
                    start += metrics;
                    continue;
                }
                Err(_) => savepoint
                    .rollback()
                    .await
                    .map_err(|e| failed("roll back a savepoint".into(), &e, size))?,
            }
        }
        // One write, or each record of a run that failed together.
        for queued in &mut batch[start..start + metrics.max(1)] {
            let savepoint = tx
                .savepoint("write")
                .await
                .map_err(|e| failed("begin a savepoint".into(), &e, size))?;
            let mut produced = Vec::new();
            match apply(&savepoint, queued, time, &mut produced).await {
                Ok(done) => {
                    savepoint
                        .commit()
                        .await
                        .map_err(|e| failed("release a savepoint".into(), &e, size))?;
                    events.append(&mut produced);
                    applied.push(Ok(done));
                }
                Err(e) => {
                    savepoint
                        .rollback()
                        .await
                        .map_err(|e| failed("roll back a savepoint".into(), &e, size))?;
                    applied.push(Err(failed(queued.write.describe(), &e, 1)));
                }
            }
        }
        start += metrics.max(1);
    }
    tx.commit()
        .await
        .map_err(|e| failed(format!("commit a batch of {size} writes"), &e, size))?;
    Ok((applied, events))
}

/// Moves each record's JSON text into its event, now that it is stored.
fn take_payloads(group: &mut [Queued], events: &mut [Event]) {
    for (queued, event) in group.iter_mut().zip(events) {
        if let Write::Metric { record, .. } = &mut queued.write {
            event.data = std::mem::take(record);
        }
    }
}

async fn insert_event(
    tx: &Transaction<'_>,
    run_id: &str,
    kind: EventKind,
    step: Option<u64>,
    data: String,
    time: f64,
) -> Result<Event, tokio_postgres::Error> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO events (run_id, kind, step, data, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .await?;
    let step = step.map(|s| s as i64);
    let row = tx
        .query_one(&statement, &[&run_id, &kind.as_str(), &step, &data, &time])
        .await?;
    Ok(Event {
        id: row.get(0),
        run_id: run_id.to_string(),
        kind,
        data,
    })
}

/// A run's status change as its history event.
async fn insert_status_event(
    tx: &Transaction<'_>,
    run_id: &str,
    status: RunStatus,
    error: Option<String>,
    time: f64,
) -> Result<Event, tokio_postgres::Error> {
    let data = status_event(status, time, error);
    insert_event(tx, run_id, EventKind::Status, None, data, time).await
}

/// Inserts a queued run, with its first status event; its id.
async fn insert_run(
    tx: &Transaction<'_>,
    spec: &Value,
    time: f64,
    events: &mut Vec<Event>,
) -> Result<String, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "INSERT INTO runs (seq, id, spec, status, created_at, external)
             SELECT seq, 'run-' || seq, $1, $2, $3, $4
             FROM (SELECT nextval(pg_get_serial_sequence('runs', 'seq')) AS seq) AS next
             RETURNING id",
            &[
                &spec.to_string(),
                &RunStatus::Queued.as_str(),
                &time,
                &is_external(spec),
            ],
        )
        .await?;
    let id: String = row.get(0);
    events.push(insert_status_event(tx, &id, RunStatus::Queued, None, time).await?);
    // Idle workers wait on this channel (delivered at commit).
    tx.execute("SELECT pg_notify($1, $2)", &[&super::QUEUE_CHANNEL, &id])
        .await?;
    Ok(id)
}

/// Applies one write inside the batch's transaction.
async fn apply(
    tx: &Transaction<'_>,
    queued: &mut Queued,
    time: f64,
    events: &mut Vec<Event>,
) -> Result<Applied, tokio_postgres::Error> {
    match &mut queued.write {
        Write::InsertRun { spec } => {
            return Ok(Applied::Id(insert_run(tx, spec, time, events).await?));
        }
        Write::InsertSweep {
            name,
            spec,
            configurations,
            runs,
        } => {
            let row = tx
                .query_one(
                    "INSERT INTO sweeps (seq, id, name, spec, configurations, created_at)
                     SELECT seq, 'sweep-' || seq, $1, $2, $3, $4
                     FROM (SELECT nextval(pg_get_serial_sequence('sweeps', 'seq')) AS seq) AS next
                     RETURNING id",
                    &[
                        &*name,
                        &spec.to_string(),
                        &configurations.to_string(),
                        &time,
                    ],
                )
                .await?;
            let id: String = row.get(0);
            let mut run_ids = Vec::with_capacity(runs.len());
            for (configuration, spec) in runs.iter() {
                let run_id = insert_run(tx, spec, time, events).await?;
                tx.execute(
                    "INSERT INTO sweep_runs (sweep_id, configuration, run_id) VALUES ($1, $2, $3)",
                    &[&id, &(*configuration as i64), &run_id],
                )
                .await?;
                run_ids.push(run_id);
            }
            return Ok(Applied::Sweep(id, run_ids));
        }
        Write::Status {
            run_id,
            holder,
            status,
            error,
            summary,
        } => {
            let status = *status;
            // As in SQLite's: no end while (re)started or queued; the
            // summary kept unless a new one comes; no lease unless running;
            // fresh attempts when queued by a user; only its holder ends a
            // held run.
            let started = (status == RunStatus::Running).then_some(time);
            let finished = status.is_final().then_some(time);
            let changed = tx
                .execute(
                    "UPDATE runs SET status = $2,
                        started_at = coalesce($3, started_at),
                        finished_at = $4,
                        error = $5,
                        summary = coalesce($6, CASE WHEN $7 THEN summary ELSE NULL END),
                        lease_until = CASE WHEN $2 = 'running' THEN lease_until END,
                        cancel_requested = $2 = 'running' AND cancel_requested,
                        steps_per_second = CASE WHEN $2 = 'running' THEN steps_per_second END,
                        recent_mean_return = CASE WHEN $2 = 'running' THEN recent_mean_return END,
                        attempts = CASE WHEN $2 = 'queued' THEN 0 ELSE attempts END
                     WHERE id = $1 AND ($8::text IS NULL OR (worker = $8 AND status = 'running'))",
                    &[
                        &*run_id,
                        &status.as_str(),
                        &started,
                        &finished,
                        &*error,
                        &summary.as_ref().map(Value::to_string),
                        &status.is_final(),
                        &*holder,
                    ],
                )
                .await?;
            if changed == 0 && holder.is_some() {
                // Its lease was lost: the run is another worker's now.
                return Ok(Applied::Done);
            }
            if status == RunStatus::Queued {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&super::QUEUE_CHANNEL, &*run_id],
                )
                .await?;
            }
            events.push(insert_status_event(tx, run_id, status, error.clone(), time).await?);
        }
        Write::Metric { .. } => {
            let group = std::slice::from_mut(queued);
            let mut produced = insert_metrics(tx, group, time).await?;
            take_payloads(group, &mut produced);
            events.append(&mut produced);
        }
        Write::Progress {
            run_id,
            steps,
            episodes,
            steps_per_second,
            recent_mean_return,
        } => {
            let statement = tx
                .prepare_cached(
                    "UPDATE runs SET steps = $2, episodes = $3, steps_per_second = $4,
                        recent_mean_return = $5 WHERE id = $1",
                )
                .await?;
            tx.execute(
                &statement,
                &[
                    &*run_id,
                    &(*steps as i64),
                    &(*episodes as i64),
                    &*steps_per_second,
                    &*recent_mean_return,
                ],
            )
            .await?;
        }
        Write::Log { run_id, line } => {
            let data = std::mem::take(line).to_string();
            events.push(insert_event(tx, run_id, EventKind::Log, None, data, time).await?);
        }
        Write::TruncateMetrics { run_id, step } => {
            let step = *step as i64;
            tx.execute(
                "DELETE FROM metrics WHERE run_id = $1 AND step > $2",
                &[&*run_id, &step],
            )
            .await?;
            tx.execute(
                "DELETE FROM events WHERE run_id = $1 AND kind = $2 AND step > $3",
                &[&*run_id, &EventKind::Metric.as_str(), &step],
            )
            .await?;
            // Each level's bucket holding `step` is summed again from the
            // rows left in it; the buckets after it are gone.
            let shifts: Vec<i32> = ROLLUP_SHIFTS.iter().map(|&s| s as i32).collect();
            tx.execute(
                "DELETE FROM metric_rollups USING unnest($2::integer[]) AS level (shift)
                 WHERE run_id = $1 AND metric_rollups.shift = level.shift
                   AND bucket >= $3::bigint >> level.shift",
                &[&*run_id, &shifts, &step],
            )
            .await?;
            tx.execute(
                "INSERT INTO metric_rollups
                 SELECT run_id, name, level.shift, step >> level.shift,
                     sum(coalesce(count, 1)), sum(value * coalesce(count, 1)),
                     min(coalesce(min, value)), max(coalesce(max, value)), max(step),
                     (array_agg(wall_seconds ORDER BY step DESC, id DESC))[1]
                 FROM metrics, unnest($2::integer[]) AS level (shift)
                 WHERE run_id = $1 AND step >= ($3::bigint >> level.shift) << level.shift
                 GROUP BY run_id, name, level.shift, step >> level.shift",
                &[&*run_id, &shifts, &step],
            )
            .await?;
        }
        Write::DeleteRun { run_id } => {
            for table in ["sweep_runs", "metrics", "metric_rollups", "events"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE run_id = $1"),
                    &[&*run_id],
                )
                .await?;
            }
            tx.execute("DELETE FROM runs WHERE id = $1", &[&*run_id])
                .await?;
        }
        Write::Claim {
            worker,
            lease_seconds,
            scope,
        } => {
            let (plain, external) = scope.takes();
            // SKIP LOCKED: claimers on other connections pass over the row
            // this one is taking instead of waiting for it.
            let claimed = tx
                .query_opt(
                    "UPDATE runs SET status = 'running', worker = $1,
                        lease_until = extract(epoch FROM clock_timestamp())::float8 + $2,
                        attempts = attempts + 1, cancel_requested = false, started_at = $3,
                        finished_at = NULL, error = NULL, summary = NULL
                     WHERE seq = (SELECT seq FROM runs WHERE status = 'queued'
                         AND (($4 AND NOT external) OR ($5 AND external))
                         ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING id",
                    &[&*worker, &*lease_seconds, &time, &plain, &external],
                )
                .await?
                .map(|row| row.get::<_, String>(0));
            if let Some(id) = &claimed {
                events.push(insert_status_event(tx, id, RunStatus::Running, None, time).await?);
            }
            return Ok(Applied::Claimed(claimed));
        }
        Write::RenewLeases {
            worker,
            runs,
            lease_seconds,
        } => {
            let held = tx
                .query(
                    "UPDATE runs SET lease_until = extract(epoch FROM clock_timestamp())::float8 + $3
                     WHERE id = ANY($1) AND worker = $2 AND status = 'running'
                     RETURNING id",
                    &[&*runs, &*worker, &*lease_seconds],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            return Ok(Applied::Held(held));
        }
        Write::RequestCancel { run_id } => {
            tx.execute(
                "UPDATE runs SET cancel_requested = true WHERE id = $1 AND status = 'running'",
                &[&*run_id],
            )
            .await?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&super::CANCEL_CHANNEL, &*run_id],
            )
            .await?;
        }
        Write::CancelQueued { run_id } => {
            let changed = tx
                .execute(
                    "UPDATE runs SET status = 'cancelled', finished_at = $2, error = NULL
                     WHERE id = $1 AND status = 'queued'",
                    &[&*run_id, &time],
                )
                .await?;
            if changed == 1 {
                events
                    .push(insert_status_event(tx, run_id, RunStatus::Cancelled, None, time).await?);
            }
            return Ok(Applied::Cancelled(changed == 1));
        }
        Write::Reap { max_attempts, dead } => {
            let dead_name = dead.as_ref().map(|dead| dead.name.as_str());
            let lost = tx
                .query(
                    "SELECT id, worker, attempts, cancel_requested FROM runs
                     WHERE status = 'running'
                       AND (lease_until < extract(epoch FROM clock_timestamp())::float8
                            OR worker = $1::text)
                     ORDER BY seq FOR UPDATE SKIP LOCKED",
                    &[&dead_name],
                )
                .await?;
            for row in lost {
                let run_id: String = row.get(0);
                let worker: Option<String> = row.get(1);
                let (status, error) = lost_worker_message(
                    worker.as_deref(),
                    row.get(2),
                    *max_attempts,
                    row.get(3),
                    dead.as_ref(),
                );
                let finished = status.is_final().then_some(time);
                tx.execute(
                    "UPDATE runs SET status = $2, lease_until = NULL, cancel_requested = false,
                        finished_at = $3, error = $4
                     WHERE id = $1",
                    &[&run_id, &status.as_str(), &finished, &error],
                )
                .await?;
                if status == RunStatus::Queued {
                    tx.execute(
                        "SELECT pg_notify($1, $2)",
                        &[&super::QUEUE_CHANNEL, &run_id],
                    )
                    .await?;
                }
                events.push(insert_status_event(tx, &run_id, status, Some(error), time).await?);
            }
        }
        Write::Heartbeat { worker } => {
            tx.execute(
                "INSERT INTO workers (name, host, pid, slots, started_at, heartbeat_at)
                 VALUES ($1, $2, $3, $4, $5, extract(epoch FROM clock_timestamp())::float8)
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                     slots = excluded.slots, started_at = excluded.started_at,
                     heartbeat_at = excluded.heartbeat_at",
                &[
                    &worker.name,
                    &worker.host,
                    &i64::from(worker.pid),
                    &i64::from(worker.slots),
                    &worker.started_at,
                ],
            )
            .await?;
        }
        Write::Flush => {}
    }
    Ok(Applied::Done)
}

/// One rollup bucket's sums over the rows of a batch.
#[derive(Clone, Copy)]
struct Rollup {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    last_step: i64,
    last_wall_seconds: f64,
}

/// Stores metric records (every write of `group` is a [`Write::Metric`]):
/// their events, with ids in the group's order, their rows, and their rows
/// added to the rollups. The events come back with empty payloads, to be
/// filled by [`take_payloads`] once the records are stored.
async fn insert_metrics(
    tx: &Transaction<'_>,
    group: &[Queued],
    time: f64,
) -> Result<Vec<Event>, tokio_postgres::Error> {
    let records: Vec<(&String, &str, u64, &[MetricValue])> = group
        .iter()
        .filter_map(|queued| match &queued.write {
            Write::Metric {
                run_id,
                record,
                step,
                values,
            } => Some((run_id, record.as_str(), *step, values.as_slice())),
            _ => None,
        })
        .collect();
    let ids_statement = tx
        .prepare_cached(
            "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, $1::bigint)",
        )
        .await?;
    let mut ids: Vec<i64> = tx
        .query(&ids_statement, &[&(records.len() as i64)])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    ids.sort_unstable();
    let run_ids: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
    let data: Vec<&str> = records.iter().map(|r| r.1).collect();
    let steps: Vec<i64> = records.iter().map(|r| r.2 as i64).collect();
    let events_statement = tx
        .prepare_cached(
            "INSERT INTO events (id, run_id, kind, step, data, created_at)
             SELECT id, run_id, 'metric', step, data, $5::float8
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[])
                 AS record (id, run_id, step, data)",
        )
        .await?;
    tx.execute(&events_statement, &[&ids, &run_ids, &steps, &data, &time])
        .await?;

    let mut rows = MetricRows::default();
    let mut rollups: BTreeMap<(&str, &str, u32, i64), Rollup> = BTreeMap::new();
    for ((run_id, _, _, values), &event_id) in records.iter().zip(&ids) {
        for value in *values {
            rows.push(run_id, value, event_id);
            let window = value.window.as_ref();
            let count = window.map_or(1, |w| w.count as i64);
            let step = value.step as i64;
            let point = Rollup {
                count,
                sum: value.value * count as f64,
                min: window.map_or(value.value, |w| w.min),
                max: window.map_or(value.value, |w| w.max),
                last_step: step,
                last_wall_seconds: value.wall_seconds,
            };
            for shift in ROLLUP_SHIFTS {
                let key = (run_id.as_str(), &*value.name, shift, step >> shift);
                match rollups.get_mut(&key) {
                    None => {
                        rollups.insert(key, point);
                    }
                    Some(sums) => {
                        sums.count += point.count;
                        sums.sum += point.sum;
                        sums.min = sums.min.min(point.min);
                        sums.max = sums.max.max(point.max);
                        // A later row of the same step is the newer one.
                        if step >= sums.last_step {
                            sums.last_step = step;
                            sums.last_wall_seconds = point.last_wall_seconds;
                        }
                    }
                }
            }
        }
    }
    let rows_statement = tx
        .prepare_cached(
            "INSERT INTO metrics
                 (run_id, name, step, value, wall_seconds, event_id, count, min, max, last)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[],
                 $5::float8[], $6::bigint[], $7::bigint[], $8::float8[], $9::float8[],
                 $10::float8[])",
        )
        .await?;
    tx.execute(
        &rows_statement,
        &[
            &rows.run_id,
            &rows.name,
            &rows.step,
            &rows.value,
            &rows.wall_seconds,
            &rows.event_id,
            &rows.count,
            &rows.min,
            &rows.max,
            &rows.last,
        ],
    )
    .await?;
    upsert_rollups(tx, &rollups).await?;
    Ok(records
        .iter()
        .zip(ids)
        .map(|((run_id, ..), id)| Event {
            id,
            run_id: run_id.to_string(),
            kind: EventKind::Metric,
            data: String::new(),
        })
        .collect())
}

/// The columns of metric rows to insert, as arrays.
#[derive(Default)]
struct MetricRows<'a> {
    run_id: Vec<&'a str>,
    name: Vec<&'a str>,
    step: Vec<i64>,
    value: Vec<f64>,
    wall_seconds: Vec<f64>,
    event_id: Vec<i64>,
    count: Vec<Option<i64>>,
    min: Vec<Option<f64>>,
    max: Vec<Option<f64>>,
    last: Vec<Option<f64>>,
}

impl<'a> MetricRows<'a> {
    fn push(&mut self, run_id: &'a str, value: &'a MetricValue, event_id: i64) {
        let window = value.window.as_ref();
        self.run_id.push(run_id);
        self.name.push(&value.name);
        self.step.push(value.step as i64);
        self.value.push(value.value);
        self.wall_seconds.push(value.wall_seconds);
        self.event_id.push(event_id);
        self.count.push(window.map(|w| w.count as i64));
        self.min.push(window.map(|w| w.min));
        self.max.push(window.map(|w| w.max));
        self.last.push(window.map(|w| w.last));
    }
}

/// Adds a batch's sums to the stored rollups, one row per bucket.
async fn upsert_rollups(
    tx: &Transaction<'_>,
    rollups: &BTreeMap<(&str, &str, u32, i64), Rollup>,
) -> Result<(), tokio_postgres::Error> {
    let run_id: Vec<&str> = rollups.keys().map(|k| k.0).collect();
    let name: Vec<&str> = rollups.keys().map(|k| k.1).collect();
    let shift: Vec<i32> = rollups.keys().map(|k| k.2 as i32).collect();
    let bucket: Vec<i64> = rollups.keys().map(|k| k.3).collect();
    let count: Vec<i64> = rollups.values().map(|r| r.count).collect();
    let sum: Vec<f64> = rollups.values().map(|r| r.sum).collect();
    let min: Vec<f64> = rollups.values().map(|r| r.min).collect();
    let max: Vec<f64> = rollups.values().map(|r| r.max).collect();
    let last_step: Vec<i64> = rollups.values().map(|r| r.last_step).collect();
    let last_wall: Vec<f64> = rollups.values().map(|r| r.last_wall_seconds).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO metric_rollups AS r
             SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[],
                 $5::bigint[], $6::float8[], $7::float8[], $8::float8[], $9::bigint[],
                 $10::float8[])
             ON CONFLICT (run_id, name, shift, bucket) DO UPDATE SET
                 count = r.count + excluded.count,
                 sum = r.sum + excluded.sum,
                 min = least(r.min, excluded.min),
                 max = greatest(r.max, excluded.max),
                 last_wall_seconds = CASE WHEN excluded.last_step >= r.last_step
                     THEN excluded.last_wall_seconds ELSE r.last_wall_seconds END,
                 last_step = greatest(r.last_step, excluded.last_step)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &run_id, &name, &shift, &bucket, &count, &sum, &min, &max, &last_step, &last_wall,
        ],
    )
    .await?;
    Ok(())
}
