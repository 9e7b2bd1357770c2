//! The writer thread: the store's one writer. It has the backend commit
//! whatever has arrived in one transaction at least every [`FLUSH_PERIOD`],
//! then publishes the stored events (with their ids) to live subscribers.
//!
//! Each write of a batch stands alone: every backend runs it in a savepoint
//! of the batch's transaction, so a write that fails is rolled back by itself and
//! only its caller is told which write failed and why ([`BatchFailure`]);
//! a run's status change is never lost because another run's metric could
//! not be stored. Only a transaction that cannot begin or commit fails the
//! whole batch, and then every caller hears it.
//!
//! A full disk is the exception to "tried once": a run's end that does not
//! fit even in the reserve's space (another process took it) is answered
//! as failed, and kept and tried again every second until it is stored, so
//! that the run does not stay `running` in the store once the disk has room.

use super::{Backend, Event, MetricValue, StatusChange, StoreFault, StoreResult};
use rl_runner::RunStatus;
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
        /// When set, the change applies only while this worker holds the
        /// running run: a worker that lost its lease (its run was queued
        /// again and taken by another) must not end it.
        holder: Option<String>,
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
        /// Env steps per second since the run (re)started, while it runs.
        steps_per_second: Option<f64>,
        /// The last 100 episodes' mean return, while it runs.
        recent_mean_return: Option<f64>,
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
    /// Takes the oldest queued run for `worker`: it becomes `running`,
    /// held by `worker` for `lease_seconds` (renewed by [`Write::RenewLeases`]).
    Claim {
        /// The claiming process's name.
        worker: String,
        /// How long the claim holds without renewal.
        lease_seconds: f64,
        /// Which runs it may take: runs of `external` envs only go to
        /// the server their env processes connect to, or its workers.
        scope: ClaimScope,
    },
    /// Renews `worker`'s leases of `runs`; answers those it still holds.
    RenewLeases {
        /// The holder.
        worker: String,
        /// Its runs.
        runs: Vec<String>,
        /// The new lease, from now.
        lease_seconds: f64,
    },
    /// Asks the holder of a running run to cancel it.
    RequestCancel {
        /// The run.
        run_id: String,
    },
    /// Cancels a run if it is still queued (no worker has claimed it).
    CancelQueued {
        /// The run.
        run_id: String,
    },
    /// Queues again the running runs whose lease has expired (their
    /// worker is gone), or fails those that have had `max_attempts`.
    Reap {
        /// Most claims a run may have.
        max_attempts: u32,
        /// A worker known dead (a server's local worker process that
        /// exited): its runs are taken back now, without waiting for their
        /// leases, and their history says how it died.
        dead: Option<DeadWorker>,
    },
    /// A worker's heartbeat, for the workers list.
    Heartbeat {
        /// Who it is.
        worker: WorkerInfo,
    },
    /// Commits everything before it.
    Flush,
}

/// Which queued runs a claim may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimScope {
    /// Any run.
    Any,
    /// Runs whose env is not `external`: a worker's, which no env process
    /// connects to (a server's local workers take them all: their server
    /// relays the connections).
    NotExternal,
}

impl ClaimScope {
    /// Whether runs of other envs, and runs of `external` envs, may be
    /// taken.
    pub(super) fn takes(self) -> (bool, bool) {
        match self {
            ClaimScope::Any => (true, true),
            ClaimScope::NotExternal => (true, false),
        }
    }
}

/// A worker process known to have died, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadWorker {
    /// Its name in the store.
    pub name: String,
    /// How it ended, said of it: `was killed by signal 6 (SIGABRT…)`.
    pub cause: String,
}

/// A process that executes runs, as the workers list shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Its name (`--name`, default `HOST-PID`).
    pub name: String,
    /// The machine's host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Runs it executes at once.
    pub slots: u32,
    /// When it started (Unix seconds).
    pub started_at: f64,
}

impl Write {
    /// What the write does, to complete "could not …".
    pub(crate) fn describe(&self) -> String {
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
            Write::Claim { worker, .. } => format!("claim a queued run for {worker}"),
            Write::RenewLeases { worker, runs, .. } => {
                format!("renew {worker}'s leases of {} runs", runs.len())
            }
            Write::RequestCancel { run_id } => format!("ask {run_id}'s worker to cancel it"),
            Write::CancelQueued { run_id } => format!("cancel {run_id} while queued"),
            Write::Reap { dead: None, .. } => "queue again the runs of lost workers".into(),
            Write::Reap {
                dead: Some(dead), ..
            } => format!("queue again the runs of {}, which died", dead.name),
            Write::Heartbeat { worker } => format!("record {}'s heartbeat", worker.name),
            Write::Flush => "flush".into(),
        }
    }
}

/// Where a caller waits for its write to be committed.
pub(crate) enum Reply {
    /// Gets what the write produced, or why it failed.
    Applied(Sender<StoreResult<Applied>>),
    /// Told when everything before it is committed, or was refused.
    Flushed(Sender<()>),
}

/// A write, and who waits for it.
pub(crate) struct Queued {
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
pub(crate) enum Applied {
    /// The id of an inserted run.
    Id(String),
    /// The ids of an inserted sweep and of its runs.
    Sweep(String, Vec<String>),
    /// The run a claim took, if any was queued.
    Claimed(Option<String>),
    /// The runs whose leases were renewed: those still held.
    Held(Vec<String>),
    /// Whether a queued run was cancelled (it was still queued).
    Cancelled(bool),
    /// Anything else.
    Done,
}

/// The writer thread's body: batches writes until every sender is gone.
pub(super) fn writer_loop(
    backend: &dyn Backend,
    queue: Receiver<Queued>,
    publish: Option<broadcast::Sender<Arc<Event>>>,
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
            // Someone waits on the last write (a flush, a new run, a
            // status change, a claim): commit now, with what came before.
            if batch.last().is_some_and(|queued| queued.reply.is_some()) {
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
        if backend.disk_full() && last_room_check.elapsed() >= FULL_DISK_PAUSE {
            last_room_check = Instant::now();
            backend.retake_reserve();
        }
        if backend.disk_full() {
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
        if settle(backend, &mut batch, publish.as_ref(), true) {
            // Once more, what must be recorded, in the reserve's space.
            last_room_check = Instant::now();
            backend.release_reserve();
            settle(backend, &mut batch, publish.as_ref(), false);
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
    backend: &dyn Backend,
    batch: &mut Vec<Queued>,
    publish: Option<&broadcast::Sender<Arc<Event>>>,
    retry: bool,
) -> bool {
    let committed = backend.commit(batch);
    let outcomes: Vec<Result<Applied, BatchFailure>> = match committed {
        Ok((applied, events)) => {
            if let Some(to) = publish {
                for event in events {
                    let _ = to.send(Arc::new(event));
                }
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
    match reply {
        None => {}
        Some(Reply::Applied(to)) => drop(to.send(result.map_err(Into::into))),
        Some(Reply::Flushed(to)) => drop(to.send(())),
    }
}

pub(crate) type Committed = (Vec<Result<Applied, BatchFailure>>, Vec<Event>);

/// A status change as its history event stores it.
pub(super) fn status_event(status: RunStatus, at: f64, error: Option<String>) -> String {
    serde_json::to_string(&StatusChange { status, at, error }).expect("a status change serialises")
}

/// Whether a run spec's env is `external`: its env processes connect to
/// the server that executes it, so only API nodes claim it.
pub(super) fn is_external(spec: &Value) -> bool {
    spec.pointer("/env/id").and_then(Value::as_str) == Some(rl_external::ENV_ID)
}

/// What becomes of a running run whose worker stopped renewing its lease,
/// and why: queued again while it has attempts left, else failed (or
/// cancelled, if that was asked for).
pub(super) fn lost_worker_message(
    worker: Option<&str>,
    attempts: i64,
    max_attempts: u32,
    cancel_requested: bool,
    dead: Option<&DeadWorker>,
) -> (RunStatus, String) {
    let worker = worker.unwrap_or("its worker");
    let lost = match dead.filter(|dead| dead.name == worker) {
        Some(dead) => format!("{worker} {}", dead.cause),
        None => format!("{worker} stopped renewing its lease"),
    };
    if cancel_requested {
        return (
            RunStatus::Cancelled,
            format!("{lost} after the run was cancelled"),
        );
    }
    if attempts < i64::from(max_attempts) {
        (
            RunStatus::Queued,
            format!(
                "{lost} (attempt {attempts} of {max_attempts}); the run is queued again and \
                 resumes from its last checkpoint"
            ),
        )
    } else {
        (
            RunStatus::Failed,
            format!(
                "the run's worker was lost on each of its {attempts} attempts (the last time: \
                 {lost}); it is not tried again: a run that takes down its worker (memory, \
                 a crash) needs mending first"
            ),
        )
    }
}
