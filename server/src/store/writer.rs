//! The writer thread: the one connection that writes. It commits whatever
//! has arrived in one transaction at least every [`FLUSH_PERIOD`], then
//! publishes the stored events (with their ids) to live subscribers.
//!
//! Each write of a batch stands alone: it runs in a savepoint of the
//! batch's transaction, so a write that fails is rolled back by itself and
//! only its caller is told which write failed and why ([`BatchFailure`]);
//! a run's status change is never lost because another run's metric could
//! not be stored. Only a transaction that cannot begin or commit fails the
//! whole batch, and then every caller hears it.
//!
//! A full disk is the exception to "tried once": a run's end that does not
//! fit even in the reserve's space (another process took it) is answered
//! as failed, and kept and tried again every second until it is stored, so
//! that the run does not stay `running` in the store once the disk has room.

use super::{DbFile, Event, EventKind, MetricValue, StatusChange, StoreFault, StoreResult, now};
use rl_runner::RunStatus;
use rusqlite::{Connection, params};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The longest a metric waits in memory before it is committed.
pub const FLUSH_PERIOD: Duration = Duration::from_millis(250);

/// Most writes in one transaction. A batch and its events are the store's
/// largest transient memory (about 1 kB a write, with a full queue behind
/// it); a thousand still spreads a commit's cost over many rows. With
/// 10,000, a 5-minute `benches/soak.py` ended with 6 MiB more RSS, still
/// rising.
const MAX_BATCH: usize = 1_000;

/// What the writer thread is asked to do.
#[derive(Debug)]
pub enum Write {
    /// A new run, queued.
    InsertRun {
        /// The spec as JSON.
        spec: Value,
    },
    /// A sweep and its runs, queued, all or none.
    InsertSweep {
        /// Its name.
        name: String,
        /// The sweep as submitted.
        spec: Value,
        /// Each configuration's varied values, in order.
        configurations: Value,
        /// Each run's configuration and spec.
        runs: Vec<(usize, Value)>,
    },
    /// A status change (with its history event).
    Status {
        /// The run.
        run_id: String,
        /// The new status.
        status: RunStatus,
        /// The error, for `failed`.
        error: Option<String>,
        /// The summary, when the run ended.
        summary: Option<Value>,
    },
    /// A metrics record and the scalars it holds.
    Metric {
        /// The run.
        run_id: String,
        /// The record as JSON text, as in `metrics.jsonl`.
        record: String,
        /// Its step.
        step: u64,
        /// Its scalars.
        values: Vec<MetricValue>,
    },
    /// Where a run stands.
    Progress {
        /// The run.
        run_id: String,
        /// Steps so far.
        steps: u64,
        /// Episodes so far.
        episodes: u64,
    },
    /// A log line.
    Log {
        /// The run.
        run_id: String,
        /// `{time, level, target, message, fields}`.
        line: Value,
    },
    /// Drops metric rows and events past `step`: a resumed run continues
    /// from its checkpoint, so what came after it is replayed.
    TruncateMetrics {
        /// The run.
        run_id: String,
        /// The checkpoint's step.
        step: u64,
    },
    /// Removes a run and everything it has.
    DeleteRun {
        /// The run.
        run_id: String,
    },
    /// Commits everything before it.
    Flush,
}

impl Write {
    /// What the write does, to complete "could not …".
    fn describe(&self) -> String {
        match self {
            Write::InsertRun { .. } => "insert a new run".into(),
            Write::InsertSweep { runs, .. } => format!("insert a sweep of {} runs", runs.len()),
            Write::Status { run_id, status, .. } => format!("set {run_id}'s status to {status}"),
            Write::Metric { run_id, step, .. } => {
                format!("record a metric of {run_id} at step {step}")
            }
            Write::Progress { run_id, .. } => format!("record {run_id}'s progress"),
            Write::Log { run_id, .. } => format!("store a log line of {run_id}"),
            Write::TruncateMetrics { run_id, step } => {
                format!("drop {run_id}'s metrics after step {step}")
            }
            Write::DeleteRun { run_id } => format!("delete {run_id}"),
            Write::Flush => "flush".into(),
        }
    }
}

/// Where a caller waits for its write to be committed.
pub(super) enum Reply {
    /// Gets the new run's id.
    Id(Sender<StoreResult<String>>),
    /// Told when it is committed.
    Done(Sender<StoreResult<()>>),
    /// Told when everything before it is committed, or was refused.
    Flushed(Sender<()>),
    /// Gets the new sweep's id and its runs' ids.
    Sweep(Sender<StoreResult<(String, Vec<String>)>>),
}

/// A write, and who waits for it.
pub(super) struct Queued {
    pub write: Write,
    pub reply: Option<Reply>,
}

/// Why a write was not stored: which write failed, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchFailure {
    /// What failed, e.g. `set run-3's status to running`, or `commit a
    /// batch of 12 writes`.
    pub write: String,
    /// SQLite's reason.
    pub cause: String,
    /// How many writes were lost with it: 1 when the write failed alone,
    /// the whole batch when its transaction could not begin or commit.
    pub batch: usize,
    /// The store's files' fault behind it (a full disk, a read-only or
    /// deleted database), which clients may be told.
    pub fault: Option<StoreFault>,
}

impl fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not {}: {}", self.write, self.cause)?;
        match self.batch {
            0 | 1 => Ok(()),
            2 => write!(f, " (the other write of its batch was not stored either)"),
            n => write!(
                f,
                " (the {} other writes of its batch were not stored either)",
                n - 1
            ),
        }
    }
}

impl std::error::Error for BatchFailure {}

/// What one write produced.
#[derive(Debug)]
pub(super) enum Applied {
    /// The id of an inserted run.
    Id(String),
    /// The ids of an inserted sweep and of its runs.
    Sweep(String, Vec<String>),
    /// Anything else.
    Done,
}

/// The writer thread's body: batches writes until every sender is gone.
pub(super) fn writer_loop(
    mut conn: Connection,
    file: &DbFile,
    queue: Receiver<Queued>,
    publish: broadcast::Sender<Arc<Event>>,
) {
    let mut batch = Vec::new();
    let mut last_room_check = Instant::now();
    // Runs' ends that a full disk refused, oldest first: tried again before
    // every batch, and at least every `FULL_DISK_PAUSE`, until stored.
    let mut deferred: Vec<Queued> = Vec::new();
    loop {
        // Wait for the first write, then gather what arrives within the
        // flush period into one transaction.
        let mut closed = false;
        if deferred.is_empty() {
            match queue.recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => return,
            }
        } else {
            match queue.recv_timeout(FULL_DISK_PAUSE) {
                Ok(queued) => batch.push(queued),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => closed = true,
            }
        }
        let deadline = Instant::now() + FLUSH_PERIOD;
        while !closed && batch.len() < MAX_BATCH {
            if matches!(
                batch.last(),
                Some(Queued {
                    write: Write::Flush,
                    ..
                })
            ) {
                break;
            }
            match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(queued) => batch.push(queued),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        // While the disk is full, only what must be recorded (status
        // changes, new runs, deletions) is tried: a backlog of metrics
        // would take the space the reserve gave back.
        if file.is_full() && last_room_check.elapsed() >= FULL_DISK_PAUSE {
            last_room_check = Instant::now();
            file.keep_reserve();
        }
        if file.is_full() {
            let before = batch.len();
            let shed = BatchFailure {
                write: "record metrics, progress or log lines".into(),
                cause: StoreFault::DiskFull.to_string(),
                batch: 1,
                fault: Some(StoreFault::DiskFull),
            };
            batch.retain_mut(|queued| {
                let keep = !queued.write.is_bulk();
                if !keep {
                    answer(queued.reply.take(), Err(shed.clone()));
                }
                keep
            });
            if before > batch.len() {
                tracing::warn!(
                    dropped = before - batch.len(),
                    "store: the disk is full; metrics and log lines were not stored"
                );
            }
        }
        // The deferred ends go first, as they came first; a newer status
        // of the same run (or its deletion) replaces its deferred end.
        deferred.retain(|end| {
            !batch
                .iter()
                .any(|queued| queued.write.supersedes(&end.write))
        });
        batch.splice(0..0, deferred.drain(..));
        if batch.is_empty() {
            continue;
        }
        if settle(&mut conn, file, &mut batch, &publish, true) {
            // Once more, what must be recorded, in the reserve's space.
            last_room_check = Instant::now();
            file.release_reserve();
            settle(&mut conn, file, &mut batch, &publish, false);
            // Runs' ends that still did not fit wait for room.
            deferred.append(&mut batch);
        }
        if closed {
            for end in &deferred {
                tracing::error!(
                    write = %end.write.describe(),
                    "store: shutting down with a run's end unstored for a full disk; \
                     the next start marks the run interrupted"
                );
            }
            return;
        }
    }
}

/// How often a full disk is checked for room again (by making the reserve
/// anew); until there is, metrics, progress and log lines are not tried.
const FULL_DISK_PAUSE: Duration = Duration::from_secs(1);

impl Write {
    /// Metrics, progress and log lines: many, and lost without harm to
    /// the runs' states when the disk is full.
    fn is_bulk(&self) -> bool {
        matches!(
            self,
            Write::Metric { .. } | Write::Progress { .. } | Write::Log { .. }
        )
    }

    /// A run's end: kept until stored when a full disk refuses it, since
    /// the run is over whether or not the store has room to say so.
    fn is_run_end(&self) -> bool {
        matches!(self, Write::Status { status, .. } if status.is_final())
    }

    /// Whether this write makes the earlier `deferred` end moot: a newer
    /// status of the same run, or its deletion.
    fn supersedes(&self, deferred: &Write) -> bool {
        match (self, deferred) {
            (
                Write::Status { run_id, .. } | Write::DeleteRun { run_id },
                Write::Status { run_id: ended, .. },
            ) => run_id == ended,
            _ => false,
        }
    }
}

/// Commits `batch` and answers its callers, publishing what was stored.
/// Returns whether the disk was full; then, if `retry`, the writes that
/// must be recorded and failed for it are left in `batch`, unanswered, for
/// one more try (their payloads are intact: only bulk writes give theirs
/// up), and the rest are answered. Without `retry`, every write is
/// answered, and the runs' ends that failed for a full disk are left in
/// `batch`, to be deferred until there is room.
fn settle(
    conn: &mut Connection,
    file: &DbFile,
    batch: &mut Vec<Queued>,
    publish: &broadcast::Sender<Arc<Event>>,
    retry: bool,
) -> bool {
    // SQLite would write on into a deleted or read-only file it has
    // open; the batch fails as a whole instead, saying why.
    let committed = match file.check(true) {
        Ok(()) => commit(conn, batch),
        Err(fault) => Err(BatchFailure {
            write: format!("commit a batch of {} writes", batch.len()),
            cause: fault.to_string(),
            batch: batch.len(),
            fault: Some(fault),
        }),
    };
    let outcomes: Vec<Result<Applied, BatchFailure>> = match committed {
        Ok((applied, events)) => {
            for event in events {
                let _ = publish.send(Arc::new(event));
            }
            applied
        }
        Err(failure) => {
            tracing::error!(
                write = %failure.write,
                cause = %failure.cause,
                batch = failure.batch,
                "store: a batch of writes was rolled back"
            );
            (0..batch.len()).map(|_| Err(failure.clone())).collect()
        }
    };
    let mut full = false;
    let mut again = Vec::new();
    for (mut queued, outcome) in batch.drain(..).zip(outcomes) {
        if let Err(failure) = &outcome {
            if failure.batch == 1 {
                tracing::error!(
                    write = %failure.write,
                    cause = %failure.cause,
                    "store: a write was rolled back"
                );
            }
            if failure.fault == Some(StoreFault::DiskFull) {
                full = true;
                if retry && !queued.write.is_bulk() {
                    again.push(queued);
                    continue;
                }
                if queued.write.is_run_end() {
                    // Its caller hears of the failure now; the write waits
                    // for room (its reply taken, so it is answered once).
                    answer(queued.reply.take(), outcome);
                    again.push(queued);
                    continue;
                }
            }
        }
        answer(queued.reply.take(), outcome);
    }
    *batch = again;
    full
}

/// Tells a waiting caller how its write went. A caller that stopped
/// waiting is not an error.
fn answer(reply: Option<Reply>, result: Result<Applied, BatchFailure>) {
    match (reply, result) {
        (None, _) => {}
        (Some(Reply::Id(to)), Ok(Applied::Id(id))) => drop(to.send(Ok(id))),
        (Some(Reply::Id(to)), Ok(_)) => {
            // Only an insert replies with an id, and an insert yields one.
            drop(to.send(Err(super::StoreError::Corrupt(
                "a run was inserted without an id".into(),
            ))))
        }
        (Some(Reply::Sweep(to)), Ok(Applied::Sweep(id, runs))) => drop(to.send(Ok((id, runs)))),
        (Some(Reply::Sweep(to)), Ok(_)) => drop(to.send(Err(super::StoreError::Corrupt(
            "a sweep was inserted without ids".into(),
        )))),
        (Some(Reply::Sweep(to)), Err(failure)) => drop(to.send(Err(failure.into()))),
        (Some(Reply::Id(to)), Err(failure)) => drop(to.send(Err(failure.into()))),
        (Some(Reply::Done(to)), result) => drop(to.send(result.map(drop).map_err(Into::into))),
        (Some(Reply::Flushed(to)), _) => drop(to.send(())),
    }
}

pub(super) type Committed = (Vec<Result<Applied, BatchFailure>>, Vec<Event>);

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
        .transaction()
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

/// A status change as its history event stores it.
fn status_event(status: RunStatus, at: f64, error: Option<String>) -> String {
    serde_json::to_string(&StatusChange { status, at, error }).expect("a status change serialises")
}

/// Inserts a queued run, with its first status event; its id.
fn insert_run(
    tx: &Connection,
    spec: &Value,
    time: f64,
    events: &mut Vec<Event>,
) -> rusqlite::Result<String> {
    tx.execute(
        "INSERT INTO runs (id, spec, status, created_at) VALUES ('', ?1, ?2, ?3)",
        params![spec.to_string(), RunStatus::Queued.as_str(), time],
    )?;
    let seq = tx.last_insert_rowid();
    let id = format!("run-{seq}");
    tx.execute("UPDATE runs SET id = ?1 WHERE seq = ?2", params![id, seq])?;
    let data = status_event(RunStatus::Queued, time, None);
    events.push(insert_event(tx, &id, EventKind::Status, None, data, time)?);
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
            status,
            error,
            summary,
        } => {
            let status = *status;
            // A run that (re)starts or is queued again has no end yet; one
            // that ends keeps its summary unless it brings a new one.
            let started = (status == RunStatus::Running).then_some(time);
            let finished = status.is_final().then_some(time);
            tx.execute(
                "UPDATE runs SET status = ?2,
                    started_at = coalesce(?3, started_at),
                    finished_at = ?4,
                    error = ?5,
                    summary = coalesce(?6, CASE WHEN ?7 THEN summary ELSE NULL END)
                 WHERE id = ?1",
                params![
                    run_id,
                    status.as_str(),
                    started,
                    finished,
                    error,
                    summary.as_ref().map(Value::to_string),
                    status.is_final(),
                ],
            )?;
            let data = status_event(status, time, error.clone());
            events.push(insert_event(
                tx,
                run_id,
                EventKind::Status,
                None,
                data,
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
        } => {
            tx.prepare_cached("UPDATE runs SET steps = ?2, episodes = ?3 WHERE id = ?1")?
                .execute(params![run_id, *steps as i64, *episodes as i64])?;
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
        Write::Flush => {}
    }
    Ok(Applied::Done)
}
