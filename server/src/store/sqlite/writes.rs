//! The writer thread's batches as SQLite transactions.

use super::super::writer::{
    Applied, Committed, Queued, is_external, lost_worker_message, status_event,
};
use super::super::{BatchFailure, Event, EventKind, StoreFault, Write, now};
use rl_runner::RunStatus;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// Applies `batch` in one transaction, each write in a savepoint of its
/// own: what each write produced (or why it alone was rolled back) and the
/// events to publish; or, when the transaction itself fails, that failure,
/// with nothing kept.
pub(super) fn commit(
    conn: &mut Connection,
    batch: &mut [Queued],
) -> Result<Committed, BatchFailure> {
    let size = batch.len();
    let failed = |write: String, cause: rusqlite::Error, lost: usize| BatchFailure {
        write,
        cause: cause.to_string(),
        batch: lost,
        fault: StoreFault::of_sqlite(&cause),
    };
    let mut tx = conn
        // Immediate: the write lock is taken at the start, so that another
        // process's commit (local workers share the file) makes this one
        // wait its turn instead of failing as a stale snapshot.
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| failed("begin a transaction".into(), e, size))?;
    let time = now();
    let mut applied = Vec::with_capacity(size);
    let mut events = Vec::new();
    for queued in batch.iter_mut() {
        let savepoint = tx
            .savepoint()
            .map_err(|e| failed("begin a savepoint".into(), e, size))?;
        let mut produced = Vec::new();
        match apply(&savepoint, &mut queued.write, time, &mut produced) {
            Ok(done) => {
                savepoint
                    .commit()
                    .map_err(|e| failed("release a savepoint".into(), e, size))?;
                events.append(&mut produced);
                applied.push(Ok(done));
            }
            Err(e) => {
                // Dropping the savepoint rolls this write back, and only
                // it; unless SQLite already rolled back the whole
                // transaction, as it may for a full disk or an I/O error:
                // then every write of the batch is lost with it.
                drop(savepoint);
                if tx.is_autocommit() {
                    return Err(failed(queued.write.describe(), e, size));
                }
                applied.push(Err(failed(queued.write.describe(), e, 1)))
            }
        }
    }
    tx.commit()
        .map_err(|e| failed(format!("commit a batch of {size} writes"), e, size))?;
    Ok((applied, events))
}

fn insert_event(
    tx: &Connection,
    run_id: &str,
    kind: EventKind,
    step: Option<u64>,
    data: String,
    time: f64,
) -> rusqlite::Result<Event> {
    tx.prepare_cached(
        "INSERT INTO events (run_id, kind, step, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        run_id,
        kind.as_str(),
        step.map(|s| s as i64),
        data,
        time
    ])?;
    Ok(Event {
        id: tx.last_insert_rowid(),
        run_id: run_id.to_string(),
        kind,
        data,
    })
}

/// A run's status change as its history event.
fn insert_status_event(
    tx: &Connection,
    run_id: &str,
    status: RunStatus,
    error: Option<String>,
    time: f64,
) -> rusqlite::Result<Event> {
    let data = status_event(status, time, error);
    insert_event(tx, run_id, EventKind::Status, None, data, time)
}

/// Inserts a queued run, with its first status event; its id.
fn insert_run(
    tx: &Connection,
    spec: &Value,
    time: f64,
    events: &mut Vec<Event>,
) -> rusqlite::Result<String> {
    tx.execute(
        "INSERT INTO runs (id, spec, status, created_at, external) VALUES ('', ?1, ?2, ?3, ?4)",
        params![
            spec.to_string(),
            RunStatus::Queued.as_str(),
            time,
            is_external(spec)
        ],
    )?;
    let seq = tx.last_insert_rowid();
    let id = format!("run-{seq}");
    tx.execute("UPDATE runs SET id = ?1 WHERE seq = ?2", params![id, seq])?;
    events.push(insert_status_event(tx, &id, RunStatus::Queued, None, time)?);
    Ok(id)
}

/// Applies one write inside the batch's transaction. Payloads are taken
/// out of the write (left empty); what identifies it stays, for
/// [`Write::describe`].
fn apply(
    tx: &Connection,
    write: &mut Write,
    time: f64,
    events: &mut Vec<Event>,
) -> rusqlite::Result<Applied> {
    let payload = match write {
        Write::Metric { record, .. } => std::mem::take(record),
        Write::Log { line, .. } => std::mem::take(line).to_string(),
        _ => String::new(),
    };
    match &*write {
        Write::InsertRun { spec } => {
            return Ok(Applied::Id(insert_run(tx, spec, time, events)?));
        }
        Write::InsertSweep {
            name,
            spec,
            configurations,
            runs,
        } => {
            tx.execute(
                "INSERT INTO sweeps (id, name, spec, configurations, created_at)
                 VALUES ('', ?1, ?2, ?3, ?4)",
                params![name, spec.to_string(), configurations.to_string(), time],
            )?;
            let seq = tx.last_insert_rowid();
            let id = format!("sweep-{seq}");
            tx.execute("UPDATE sweeps SET id = ?1 WHERE seq = ?2", params![id, seq])?;
            let mut run_ids = Vec::with_capacity(runs.len());
            for (configuration, spec) in runs {
                let run_id = insert_run(tx, spec, time, events)?;
                tx.execute(
                    "INSERT INTO sweep_runs (sweep_id, configuration, run_id) VALUES (?1, ?2, ?3)",
                    params![id, *configuration as i64, run_id],
                )?;
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
            // A run that (re)starts or is queued again has no end yet; one
            // that ends keeps its summary unless it brings a new one. One
            // that ends or is queued holds no lease; one queued by a user
            // gets its attempts afresh.
            let started = (status == RunStatus::Running).then_some(time);
            let finished = status.is_final().then_some(time);
            let changed = tx.execute(
                "UPDATE runs SET status = ?2,
                    started_at = coalesce(?3, started_at),
                    finished_at = ?4,
                    error = ?5,
                    summary = coalesce(?6, CASE WHEN ?7 THEN summary ELSE NULL END),
                    lease_until = CASE WHEN ?2 = 'running' THEN lease_until ELSE NULL END,
                    cancel_requested = CASE WHEN ?2 = 'running' THEN cancel_requested ELSE 0 END,
                    steps_per_second = CASE WHEN ?2 = 'running' THEN steps_per_second END,
                    recent_mean_return = CASE WHEN ?2 = 'running' THEN recent_mean_return END,
                    attempts = CASE WHEN ?2 = 'queued' THEN 0 ELSE attempts END
                 WHERE id = ?1 AND (?8 IS NULL OR (worker = ?8 AND status = 'running'))",
                params![
                    run_id,
                    status.as_str(),
                    started,
                    finished,
                    error,
                    summary.as_ref().map(Value::to_string),
                    status.is_final(),
                    holder,
                ],
            )?;
            if changed == 0 && holder.is_some() {
                // Its lease was lost: the run is another worker's now.
                return Ok(Applied::Done);
            }
            events.push(insert_status_event(
                tx,
                run_id,
                status,
                error.clone(),
                time,
            )?);
        }
        Write::Metric {
            run_id,
            step,
            values,
            ..
        } => {
            let event = insert_event(tx, run_id, EventKind::Metric, Some(*step), payload, time)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO metrics
                    (run_id, name, step, value, wall_seconds, event_id, count, min, max, last)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for value in values.iter() {
                let window = value.window.as_ref();
                insert.execute(params![
                    run_id,
                    value.name,
                    value.step as i64,
                    value.value,
                    value.wall_seconds,
                    event.id,
                    window.map(|w| w.count as i64),
                    window.map(|w| w.min),
                    window.map(|w| w.max),
                    window.map(|w| w.last),
                ])?;
            }
            events.push(event);
        }
        Write::Progress {
            run_id,
            steps,
            episodes,
            steps_per_second,
            recent_mean_return,
        } => {
            tx.prepare_cached(
                "UPDATE runs SET steps = ?2, episodes = ?3, steps_per_second = ?4,
                    recent_mean_return = ?5 WHERE id = ?1",
            )?
            .execute(params![
                run_id,
                *steps as i64,
                *episodes as i64,
                steps_per_second,
                recent_mean_return
            ])?;
        }
        Write::Log { run_id, .. } => {
            events.push(insert_event(
                tx,
                run_id,
                EventKind::Log,
                None,
                payload,
                time,
            )?);
        }
        Write::TruncateMetrics { run_id, step } => {
            tx.execute(
                "DELETE FROM metrics WHERE run_id = ?1 AND step > ?2",
                params![run_id, *step as i64],
            )?;
            tx.execute(
                "DELETE FROM events WHERE run_id = ?1 AND kind = ?2 AND step > ?3",
                params![run_id, EventKind::Metric.as_str(), *step as i64],
            )?;
        }
        Write::DeleteRun { run_id } => {
            tx.execute("DELETE FROM sweep_runs WHERE run_id = ?1", [run_id])?;
            tx.execute("DELETE FROM metrics WHERE run_id = ?1", [run_id])?;
            tx.execute("DELETE FROM events WHERE run_id = ?1", [run_id])?;
            tx.execute("DELETE FROM runs WHERE id = ?1", [run_id])?;
        }
        Write::Claim {
            worker,
            lease_seconds,
            scope,
        } => {
            let (plain, external) = scope.takes();
            let claimed: Option<String> = tx
                .query_row(
                    "UPDATE runs SET status = 'running', worker = ?1, lease_until = ?2 + ?3,
                        attempts = attempts + 1, cancel_requested = 0, started_at = ?2,
                        finished_at = NULL, error = NULL, summary = NULL
                     WHERE seq = (SELECT seq FROM runs WHERE status = 'queued'
                         AND ((?4 AND external = 0) OR (?5 AND external = 1))
                         ORDER BY seq LIMIT 1)
                     RETURNING id",
                    params![worker, time, lease_seconds, plain, external],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = &claimed {
                events.push(insert_status_event(tx, id, RunStatus::Running, None, time)?);
            }
            return Ok(Applied::Claimed(claimed));
        }
        Write::RenewLeases {
            worker,
            runs,
            lease_seconds,
        } => {
            let mut renew = tx.prepare_cached(
                "UPDATE runs SET lease_until = ?3 + ?4
                 WHERE id = ?1 AND worker = ?2 AND status = 'running'",
            )?;
            let mut held = Vec::with_capacity(runs.len());
            for run_id in runs.iter() {
                if renew.execute(params![run_id, worker, time, lease_seconds])? == 1 {
                    held.push(run_id.clone());
                }
            }
            return Ok(Applied::Held(held));
        }
        Write::RequestCancel { run_id } => {
            tx.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE id = ?1 AND status = 'running'",
                [run_id],
            )?;
        }
        Write::CancelQueued { run_id } => {
            let changed = tx.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = ?2, error = NULL
                 WHERE id = ?1 AND status = 'queued'",
                params![run_id, time],
            )?;
            if changed == 1 {
                events.push(insert_status_event(
                    tx,
                    run_id,
                    RunStatus::Cancelled,
                    None,
                    time,
                )?);
            }
            return Ok(Applied::Cancelled(changed == 1));
        }
        Write::Reap { max_attempts, dead } => {
            let dead_name = dead.as_ref().map(|dead| dead.name.as_str());
            let lost: Vec<(String, Option<String>, i64, bool)> = tx
                .prepare(
                    "SELECT id, worker, attempts, cancel_requested FROM runs
                     WHERE status = 'running' AND (lease_until < ?1 OR worker = ?2)
                     ORDER BY seq",
                )?
                .query_map(params![time, dead_name], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
            for (run_id, worker, attempts, cancel_requested) in lost {
                let (status, error) = lost_worker_message(
                    worker.as_deref(),
                    attempts,
                    *max_attempts,
                    cancel_requested,
                    dead.as_ref(),
                );
                let finished = status.is_final().then_some(time);
                tx.execute(
                    "UPDATE runs SET status = ?2, lease_until = NULL, cancel_requested = 0,
                        finished_at = ?3, error = ?4
                     WHERE id = ?1",
                    params![run_id, status.as_str(), finished, error],
                )?;
                events.push(insert_status_event(tx, &run_id, status, Some(error), time)?);
            }
        }
        Write::Heartbeat { worker } => {
            tx.execute(
                "INSERT INTO workers (name, host, pid, slots, started_at, heartbeat_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                     slots = excluded.slots, started_at = excluded.started_at,
                     heartbeat_at = excluded.heartbeat_at",
                params![
                    worker.name,
                    worker.host,
                    worker.pid,
                    worker.slots,
                    worker.started_at,
                    time
                ],
            )?;
        }
        Write::Flush => {}
    }
    Ok(Applied::Done)
}
