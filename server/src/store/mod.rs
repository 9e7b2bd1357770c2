//! The store: runs, their metrics, status history, log lines and sweeps,
//! in SQLite (the embedded default, `DATA/rl-lab.db`) or in PostgreSQL
//! (`--store postgres://…`), behind one [`Backend`] trait.
//!
//! One writer thread applies every write ([`writer`]). Run threads and
//! handlers send it [`Write`]s over a channel; it has the backend commit
//! whatever has arrived in one transaction at least every [`FLUSH_PERIOD`],
//! then publishes the stored events (with their ids) to live subscribers.
//! Reads go straight to the backend, on connections of their own. The
//! backends' tables and migrations are in [`sqlite`] and [`postgres`].

mod downsample;
pub mod postgres;
mod rows;
pub mod sqlite;
mod writer;

pub use downsample::{MetricPoint, downsample};
pub use writer::{BatchFailure, ClaimScope, DeadWorker, FLUSH_PERIOD, WorkerInfo, Write};

use rl_runner::RunStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use utoipa::ToSchema;
use writer::{Applied, Committed, Queued, Reply};

/// A write answered with something other than what it yields: a bug.
fn unexpected(what: &str, applied: Applied) -> StoreError {
    StoreError::Corrupt(format!("expected {what}, the writer answered {applied:?}"))
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed, or the connection to it.
    #[error("database: {}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had from the pool.
    #[error("database connection: {0}")]
    Pool(String),
    /// The store could not be opened at start: which one, and why.
    #[error("cannot open the store at {target}: {cause}")]
    Open {
        /// Where it is (no password).
        target: String,
        /// Why not.
        cause: String,
    },
    /// A batch of writes was rolled back; it says which write failed and why.
    #[error(transparent)]
    Batch(#[from] BatchFailure),
    /// The writer thread has stopped (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    Thread(std::io::Error),
    /// A stored JSON value does not parse.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored value is not one this server knows (a status, an event kind).
    #[error("stored value: {0}")]
    Corrupt(String),
    /// The database cannot be used as it is (deleted, read-only): checked
    /// before SQLite is asked, so that the caller learns why.
    #[error("{0}")]
    Unavailable(StoreFault),
}

/// Most writes waiting for the writer thread. The recording policy keeps a
/// run's metrics to tens of rows a second once past its first burst, so
/// the queue only fills when the disk stalls; a full queue then slows
/// training (senders wait) rather than grow memory or drop rows. It is
/// short enough that a status change queued behind it is committed within
/// a batch or two (tens of milliseconds), so cancel and shutdown are never
/// held up by a backlog.
pub const QUEUE_CAPACITY: usize = 4096;

impl StoreError {
    /// What about the store's files made this fail, if that is the cause.
    pub fn fault(&self) -> Option<StoreFault> {
        match self {
            StoreError::Sqlite(e) => StoreFault::of_sqlite(e),
            StoreError::Postgres(e) => StoreFault::of_postgres(e),
            StoreError::Pool(_) => Some(StoreFault::Unreachable),
            StoreError::Batch(failure) => failure.fault,
            StoreError::Unavailable(fault) => Some(*fault),
            _ => None,
        }
    }
}

/// Why the store's files cannot take a write, or a read: things outside
/// the server (an operator, the disk) did to them. Clients are told which,
/// without paths: it is the operator's to mend, not a server bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFault {
    /// The disk holding the data folder is full.
    DiskFull,
    /// The database file was made read-only (or its file system was):
    /// reads go on, writes are refused until it is writable again.
    ReadOnly,
    /// The database file was deleted or replaced while the server ran:
    /// what the server would write or read is no longer the file at its
    /// path, so nothing is, until it restarts.
    Gone,
    /// The database server (PostgreSQL) cannot be reached, or dropped the
    /// connection: nothing is read or stored until it is back.
    Unreachable,
}

impl StoreFault {
    /// The fault SQLite reported, if `e` is one.
    pub fn of_sqlite(e: &rusqlite::Error) -> Option<StoreFault> {
        match e.sqlite_error_code()? {
            rusqlite::ErrorCode::DiskFull => Some(StoreFault::DiskFull),
            rusqlite::ErrorCode::ReadOnly => Some(StoreFault::ReadOnly),
            _ => None,
        }
    }

    /// The fault PostgreSQL reported, if `e` is one.
    pub fn of_postgres(e: &tokio_postgres::Error) -> Option<StoreFault> {
        use tokio_postgres::error::SqlState;
        let Some(code) = e.code() else {
            // No SQL state: the connection failed or was closed.
            let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
            return (e.is_closed() || io).then_some(StoreFault::Unreachable);
        };
        if *code == SqlState::DISK_FULL {
            Some(StoreFault::DiskFull)
        } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            Some(StoreFault::ReadOnly)
        } else {
            None
        }
    }

    /// What clients are told: no path, no SQLite text.
    pub fn message(self) -> &'static str {
        match self {
            StoreFault::DiskFull => {
                "no space left on the server's disk: the database cannot store changes"
            }
            StoreFault::ReadOnly => {
                "the database is read-only: the server cannot store changes until it is writable again"
            }
            StoreFault::Gone => {
                "the database file was deleted or replaced while the server ran: restart the server"
            }
            StoreFault::Unreachable => {
                "the database server cannot be reached: nothing can be read or stored until it is back"
            }
        }
    }
}

impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The store's result.
pub type StoreResult<T> = Result<T, StoreError>;

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What kind of event a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A metrics record (an episode or a scalar).
    Metric,
    /// A log line from the run.
    Log,
    /// A status change.
    Status,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 3] = [EventKind::Metric, EventKind::Log, EventKind::Status];

    /// The kind's one spelling: in SQL, and as the server-sent event's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Metric => "metric",
            EventKind::Log => "log",
            EventKind::Status => "status",
        }
    }

    fn parse(text: &str) -> StoreResult<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind '{text}'")))
    }
}

/// One stored event, as subscribers receive it.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Increasing over the whole store.
    pub id: i64,
    /// The run it belongs to.
    pub run_id: String,
    /// Metric, log or status.
    pub kind: EventKind,
    /// The payload as JSON text: a metrics record, a log line or a
    /// [`StatusChange`]. Text rather than a `Value` tree: it is stored,
    /// streamed and kept in the live channel as text, in one allocation.
    pub data: String,
}

/// A status event's payload, and an entry of a run's status history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusChange {
    /// The new status.
    pub status: RunStatus,
    /// When (Unix seconds).
    pub at: f64,
    /// Why the run failed, or was interrupted by a server that died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A run's row.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// The id.
    pub id: String,
    /// Submission order.
    #[serde(skip)]
    pub seq: i64,
    /// The run spec as submitted.
    pub spec: Value,
    /// Where it stands.
    pub status: RunStatus,
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
    /// The run summary, once it has ended.
    pub summary: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The worker that holds it while it runs, or last held it.
    pub worker: Option<String>,
    /// How many times a worker has claimed it.
    pub attempts: u64,
    /// While it runs: env steps per second, as its worker last reported.
    pub steps_per_second: Option<f64>,
    /// While it runs: its last 100 episodes' mean return, likewise.
    pub recent_mean_return: Option<f64>,
}

/// A worker as the workers list shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WorkerRow {
    /// Who it is.
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// Its last heartbeat (Unix seconds, the database's clock).
    pub heartbeat_at: f64,
    /// The runs it holds now.
    pub runs: Vec<String>,
}

/// How often the tail of a shared store's events is read: what a live
/// client waits for an event another process stored, besides the writer's
/// own flush period.
const TAIL_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

/// Publishes the events every process stores in a shared database, in id
/// order (which is commit order: each batch holds the events lock), from
/// after `after`, until the backend is dropped. While no one listens, it
/// only keeps its place; a full read is followed by the next at once, so
/// it keeps up with any ingest rate.
fn tail_events(
    backend: &std::sync::Weak<dyn Backend>,
    mut after: i64,
    publish: &broadcast::Sender<Arc<Event>>,
) {
    const READ: usize = 5000;
    let mut behind = false;
    loop {
        if !behind {
            std::thread::sleep(TAIL_PERIOD);
        }
        let Some(backend) = backend.upgrade() else {
            return;
        };
        behind = false;
        if publish.receiver_count() == 0 {
            // The place is read before the check: a subscriber that came
            // meanwhile may have read its catch-up before events up to
            // `last` were committed, so the place stays, and the next
            // round publishes them (it skips those it already has).
            match backend.last_event_id() {
                Ok(last) if publish.receiver_count() == 0 => after = last,
                Ok(_) => {}
                Err(e) => tracing::warn!("reading the store's newest event: {e}"),
            }
            continue;
        }
        match backend.events_since(after, None, &EventKind::ALL, READ) {
            Ok(events) => {
                behind = events.len() == READ;
                for event in events {
                    after = event.id;
                    let _ = publish.send(Arc::new(event));
                }
            }
            Err(e) => tracing::warn!("reading the store's new events: {e}"),
        }
    }
}

/// Gives each worker the runs it holds, from (worker, run) pairs.
fn attach_runs(workers: &mut Vec<WorkerRow>, held: Vec<(String, String)>) -> Vec<WorkerRow> {
    for (worker, run) in held {
        if let Some(row) = workers.iter_mut().find(|w| w.info.name == worker) {
            row.runs.push(run);
        }
    }
    std::mem::take(workers)
}

/// A stored sweep (`POST /v1/sweeps`).
#[derive(Clone, Debug)]
pub struct SweepRow {
    /// The id, `sweep-N`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The sweep as submitted.
    pub spec: Value,
    /// Each configuration's varied values (path → value), in order.
    pub configurations: Vec<Value>,
    /// When it was submitted (Unix seconds).
    pub created_at: f64,
}

/// A scalar to store under a name, e.g. `rollout/episode_return`.
#[derive(Clone, Debug)]
pub struct MetricValue {
    /// Namespaced name: borrowed for the episode series, whose names are
    /// constants, so that a queued write of an episode allocates none.
    pub name: Cow<'static, str>,
    /// Env step it belongs to.
    pub step: u64,
    /// The value.
    pub value: f64,
    /// Seconds since training began.
    pub wall_seconds: f64,
    /// Set when the row stands for a window of points merged by the
    /// recording policy; `value` is then their mean.
    pub window: Option<WindowColumns>,
}

/// What a metric row that stands for a window of points stores besides
/// its mean (migration 2's columns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowColumns {
    /// Points merged.
    pub count: u64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The window's last point.
    pub last: f64,
}

/// The rollup levels, as shifts: level `shift` sums the steps
/// `[b << shift, (b + 1) << shift)`. Each level's buckets are 16 of the one
/// below, so a read at the coarsest level that still fits reads at most 16
/// rollups per output point. Fixed once shipped: other levels would need a
/// migration of their own, in each backend.
pub(crate) const ROLLUP_SHIFTS: [u32; 8] = [4, 8, 12, 16, 20, 24, 28, 32];

/// A sweep and each of its runs with its configuration's index.
pub type SweepWithRuns = (SweepRow, Vec<(usize, RunRow)>);

/// A database the store keeps its tables in. Writes come only from the
/// store's writer thread, as batches ([`Backend::commit`]); reads come
/// from any thread, each on a connection of its own. Both backends pass the
/// same store test suite (`server/tests/store.rs`).
pub(crate) trait Backend: Send + Sync {
    /// Applies `batch` in one transaction, each write in a savepoint of its
    /// own: what each write produced (or why it alone was rolled back) and
    /// the events to publish; or, when the transaction itself fails, that
    /// failure, with nothing kept.
    fn commit(&self, batch: &mut [Queued]) -> Result<Committed, BatchFailure>;

    /// Whether other processes may share the database (and its queue).
    fn shared(&self) -> bool {
        false
    }

    /// Calls `wake` whenever a run is queued by any process sharing the
    /// database; a backend that cannot hear of it does nothing (its workers
    /// look on their own, every few seconds).
    fn on_queued(&self, wake: Box<dyn Fn() + Send + Sync>) {
        drop(wake);
    }

    /// Whether the disk was found full and has not had room since.
    fn disk_full(&self) -> bool {
        false
    }

    /// Makes the space kept back for runs' ends if it is missing; true when
    /// it is there.
    fn keep_reserve(&self) -> bool {
        true
    }

    /// What the writer tries while the disk is full: as `keep_reserve`,
    /// but never within a moment of another process sharing the file
    /// giving the reserve back, whose runs' ends need that space first.
    fn retake_reserve(&self) -> bool {
        self.keep_reserve()
    }

    /// Gives the space kept back to the disk.
    fn release_reserve(&self) {}

    /// One run.
    fn run(&self, run_id: &str) -> StoreResult<Option<RunRow>>;

    /// Runs newest first, optionally of one status, below a `seq` cursor.
    fn runs(
        &self,
        status: Option<RunStatus>,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RunRow>>;

    /// Sweeps, newest first.
    fn sweeps(&self, limit: usize) -> StoreResult<Vec<SweepRow>>;

    /// One sweep with its runs, in submission order.
    fn sweep(&self, sweep_id: &str) -> StoreResult<Option<SweepWithRuns>>;

    /// Ids of runs in `status`, oldest first.
    fn runs_in_status(&self, status: RunStatus) -> StoreResult<Vec<String>>;

    /// How many runs are in each status that has any.
    fn status_counts(&self) -> StoreResult<Vec<(RunStatus, u64)>>;

    /// The newest row of each of a run's metrics: (name, step, value).
    fn latest_metrics(&self, run_id: &str) -> StoreResult<Vec<(String, u64, f64)>>;

    /// A run's rows of metric `name` after `after_step`, in step order.
    fn metric_series(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<MetricPoint>>;

    /// The same series in at most `max_points` points, read through
    /// [`downsample::SeriesRead`] from one snapshot.
    fn metric_series_downsampled(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        max_points: usize,
    ) -> StoreResult<Vec<MetricPoint>>;

    /// The names of a run's metrics, sorted.
    fn metric_names(&self, run_id: &str) -> StoreResult<Vec<String>>;

    /// The newest event's id (0 when there is none).
    fn last_event_id(&self) -> StoreResult<i64>;

    /// The running runs `worker` holds whose cancel was asked for.
    fn cancel_requests(&self, worker: &str) -> StoreResult<Vec<String>>;

    /// Every worker with a heartbeat, newest heartbeat first.
    fn workers(&self) -> StoreResult<Vec<WorkerRow>>;

    /// Events after `after`, of every run or of `run_ids`, of `kinds`,
    /// oldest first.
    fn events_since(
        &self,
        after: i64,
        run_ids: Option<&[String]>,
        kinds: &[EventKind],
        limit: usize,
    ) -> StoreResult<Vec<Event>>;
}

/// The store handle: cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: SyncSender<Queued>,
    backend: Arc<dyn Backend>,
    events: broadcast::Sender<Arc<Event>>,
}

/// Where the store keeps its tables: `rl-lab serve --store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// SQLite at this path.
    Sqlite(std::path::PathBuf),
    /// PostgreSQL.
    Postgres {
        /// Its address and role.
        target: postgres::Target,
        /// The role's password, when the server asks for one.
        password: Option<postgres::Password>,
    },
}

impl Store {
    /// Opens (or creates) the SQLite database at `path`, migrates it, and
    /// starts the writer thread.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let backend = sqlite::Sqlite::open(path, false)?;
        Store::start(Arc::new(backend))
    }

    /// Opens the store at `location`, migrating its schema.
    pub fn open_at(location: &StoreLocation) -> StoreResult<Store> {
        Store::open_location(location, false, postgres::POOL_SIZE)
    }

    /// Opens the store at `location` to share it with other processes: a
    /// SQLite file that a server's local worker processes write to as well
    /// (WAL serialises their commits), or PostgreSQL, shared anyway.
    pub fn open_shared(location: &StoreLocation) -> StoreResult<Store> {
        Store::open_location(location, true, postgres::POOL_SIZE)
    }

    /// Opens the store at `location` for a worker process with `slots`
    /// run threads: shared, and on PostgreSQL with a pool of its size, so
    /// that a server's one-slot local workers hold few connections each.
    pub fn open_for_worker(location: &StoreLocation, slots: usize) -> StoreResult<Store> {
        Store::open_location(location, true, postgres::worker_pool_size(slots))
    }

    fn open_location(
        location: &StoreLocation,
        shared: bool,
        pool_size: usize,
    ) -> StoreResult<Store> {
        match location {
            StoreLocation::Sqlite(path) => {
                let backend = sqlite::Sqlite::open(path, shared)?;
                Store::start(Arc::new(backend))
            }
            StoreLocation::Postgres { target, password } => {
                let backend = postgres::Postgres::connect(target, password.as_ref(), pool_size)?;
                Store::start(Arc::new(backend))
            }
        }
    }

    /// Starts the writer thread over `backend`.
    fn start(backend: Arc<dyn Backend>) -> StoreResult<Store> {
        let (writer, queue) = mpsc::sync_channel(QUEUE_CAPACITY);
        let (events, _) = broadcast::channel(4096);
        // A database of this process's own: its writer's commits are all
        // the events there are. A shared one: other processes' too, so a
        // tail of the table publishes them all, in id order.
        let publish = if backend.shared() {
            let after = backend.last_event_id()?;
            let tailed = Arc::downgrade(&backend);
            let publish = events.clone();
            std::thread::Builder::new()
                .name("store-tail".into())
                .spawn(move || tail_events(&tailed, after, &publish))
                .map_err(StoreError::Thread)?;
            None
        } else {
            Some(events.clone())
        };
        let writing = Arc::clone(&backend);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::writer_loop(&*writing, queue, publish))
            .map_err(StoreError::Thread)?;
        let store = Store {
            writer,
            backend,
            events,
        };
        store.keep_reserve();
        Ok(store)
    }

    /// Makes the reserve of space for runs' ends if it is missing and the
    /// disk has room (SQLite; PostgreSQL keeps its own disk); a disk without
    /// room is left alone (it is no fault yet).
    pub fn keep_reserve(&self) {
        self.backend.keep_reserve();
    }

    /// Whether the disk is full (a write failed for it, and there has not
    /// been room for the reserve since): runs stop recording then.
    pub fn disk_full(&self) -> bool {
        self.backend.disk_full()
    }

    /// Gives the reserve back to the disk, so that what must be recorded
    /// (a run's end) fits on a full disk.
    pub fn release_reserve(&self) {
        self.backend.release_reserve();
    }

    /// Whether other processes may share the database and its queue
    /// (PostgreSQL): then a run `running` in it may be another's.
    pub fn shared(&self) -> bool {
        self.backend.shared()
    }

    /// Calls `wake` when any process sharing the database queues a run.
    pub fn on_queued(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.backend.on_queued(wake);
    }

    /// One run.
    pub fn run(&self, run_id: &str) -> StoreResult<Option<RunRow>> {
        self.backend.run(run_id)
    }

    /// Runs newest first, optionally of one status, starting below `before`
    /// (a `seq` cursor).
    pub fn runs(
        &self,
        status: Option<RunStatus>,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RunRow>> {
        self.backend.runs(status, before, limit)
    }

    /// Sweeps, newest first, at most `limit`.
    pub fn sweeps(&self, limit: usize) -> StoreResult<Vec<SweepRow>> {
        self.backend.sweeps(limit)
    }

    /// One sweep, with each of its runs and the configuration it belongs
    /// to, in submission order.
    pub fn sweep(&self, sweep_id: &str) -> StoreResult<Option<SweepWithRuns>> {
        self.backend.sweep(sweep_id)
    }

    /// Ids of runs in `status`, oldest first.
    pub fn runs_in_status(&self, status: RunStatus) -> StoreResult<Vec<String>> {
        self.backend.runs_in_status(status)
    }

    /// How many runs are in each status that has any.
    pub fn status_counts(&self) -> StoreResult<Vec<(RunStatus, u64)>> {
        self.backend.status_counts()
    }

    /// The newest value of each of a run's metrics: name → (step, value).
    pub fn latest_metrics(&self, run_id: &str) -> StoreResult<Vec<(String, u64, f64)>> {
        self.backend.latest_metrics(run_id)
    }

    /// A run's stored rows of metric `name` after `after_step`, in step
    /// order, at most `limit` of them.
    pub fn metric_series(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<MetricPoint>> {
        self.backend.metric_series(run_id, name, after_step, limit)
    }

    /// A run's metric `name` after `after_step` in at most `max_points`
    /// points (at least 3): the stored rows themselves when there are no
    /// more, else the first and the last row with the rows between summed
    /// in equal step ranges ([`downsample`]). The sums come from the
    /// rollups wherever a whole rollup bucket lies between the first and the
    /// last row, so a long series costs a few thousand rows to read, not all
    /// of them.
    pub fn metric_series_downsampled(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        max_points: usize,
    ) -> StoreResult<Vec<MetricPoint>> {
        self.backend
            .metric_series_downsampled(run_id, name, after_step, max_points.max(3))
    }

    /// The names of a run's metrics.
    pub fn metric_names(&self, run_id: &str) -> StoreResult<Vec<String>> {
        self.backend.metric_names(run_id)
    }

    /// A run's events after `after` (an event id), optionally of one kind.
    pub fn events(
        &self,
        run_id: &str,
        after: i64,
        kind: Option<EventKind>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let kinds = kind.map_or(EventKind::ALL.to_vec(), |kind| vec![kind]);
        self.events_since(after, Some(&[run_id.to_string()]), &kinds, limit)
    }

    /// The newest event's id over the whole store (0 when there is none). A
    /// client that reads a snapshot (runs, metrics) after taking it and then
    /// follows events after it misses nothing between the two.
    pub fn last_event_id(&self) -> StoreResult<i64> {
        self.backend.last_event_id()
    }

    /// Events of every run, or of `run_ids`, after `after`, of `kinds`,
    /// oldest first: a server-wide stream's catch-up.
    pub fn events_since(
        &self,
        after: i64,
        run_ids: Option<&[String]>,
        kinds: &[EventKind],
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        self.backend.events_since(after, run_ids, kinds, limit)
    }

    /// Sends a write to the writer thread without waiting for its commit.
    /// When [`QUEUE_CAPACITY`] writes are already waiting, it waits for
    /// room: a run whose metrics outpace the disk is slowed, never
    /// buffered without limit.
    pub fn send(&self, write: Write) {
        // A closed writer means the server is going down; the write is lost
        // with it, as it would be a moment later anyway.
        let _ = self.writer.send(Queued { write, reply: None });
    }

    /// Sends a write and waits for its commit: what it produced.
    fn send_and_wait(&self, write: Write) -> StoreResult<Applied> {
        let (to, answer) = mpsc::channel();
        self.writer
            .send(Queued {
                write,
                reply: Some(Reply::Applied(to)),
            })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// How many subscribers follow the committed events now: one per live
    /// stream (`/events`, `/logs`), so it falls back when clients leave.
    pub fn subscribers(&self) -> usize {
        self.events.receiver_count()
    }

    /// Subscribes to events as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Inserts a queued run and returns its id.
    pub fn insert_run(&self, spec: Value) -> StoreResult<String> {
        match self.send_and_wait(Write::InsertRun { spec })? {
            Applied::Id(id) => Ok(id),
            other => Err(unexpected("an inserted run", other)),
        }
    }

    /// Inserts a sweep and its queued runs in one transaction, so that
    /// either all are stored or none; the sweep's id and the runs' ids, in
    /// the order of `runs` (each a configuration's index and its spec).
    pub fn insert_sweep(
        &self,
        name: String,
        spec: Value,
        configurations: Value,
        runs: Vec<(usize, Value)>,
    ) -> StoreResult<(String, Vec<String>)> {
        let write = Write::InsertSweep {
            name,
            spec,
            configurations,
            runs,
        };
        match self.send_and_wait(write)? {
            Applied::Sweep(id, runs) => Ok((id, runs)),
            other => Err(unexpected("an inserted sweep", other)),
        }
    }

    /// Sets a run's status and waits until it is committed.
    pub fn set_status(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<String>,
        summary: Option<Value>,
    ) -> StoreResult<()> {
        self.set_status_held(run_id, None, status, error, summary)
    }

    /// Sets a run's status as [`Store::set_status`] does, but only while
    /// `holder` (when given) holds the running run.
    pub fn set_status_held(
        &self,
        run_id: &str,
        holder: Option<&str>,
        status: RunStatus,
        error: Option<String>,
        summary: Option<Value>,
    ) -> StoreResult<()> {
        let write = Write::Status {
            run_id: run_id.into(),
            holder: holder.map(str::to_string),
            status,
            error,
            summary,
        };
        self.send_and_wait(write).map(drop)
    }

    /// Drops a run's metrics past `step`, waiting for the commit.
    pub fn truncate_metrics(&self, run_id: &str, step: u64) -> StoreResult<()> {
        let write = Write::TruncateMetrics {
            run_id: run_id.into(),
            step,
        };
        self.send_and_wait(write).map(drop)
    }

    /// Deletes a run's rows, waiting for the commit.
    pub fn delete_run(&self, run_id: &str) -> StoreResult<()> {
        let write = Write::DeleteRun {
            run_id: run_id.into(),
        };
        self.send_and_wait(write).map(drop)
    }

    /// Takes the oldest queued run in `scope` for `worker`, which then
    /// holds it for `lease`. Each queued run is taken by exactly one claim,
    /// across every process sharing the database.
    pub fn claim(
        &self,
        worker: &str,
        lease: std::time::Duration,
        scope: ClaimScope,
    ) -> StoreResult<Option<String>> {
        let write = Write::Claim {
            worker: worker.into(),
            lease_seconds: lease.as_secs_f64(),
            scope,
        };
        match self.send_and_wait(write)? {
            Applied::Claimed(id) => Ok(id),
            other => Err(unexpected("a claim", other)),
        }
    }

    /// Renews `worker`'s leases of `runs`; the runs it still holds.
    pub fn renew_leases(
        &self,
        worker: &str,
        runs: Vec<String>,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<String>> {
        let write = Write::RenewLeases {
            worker: worker.into(),
            runs,
            lease_seconds: lease.as_secs_f64(),
        };
        match self.send_and_wait(write)? {
            Applied::Held(runs) => Ok(runs),
            other => Err(unexpected("renewed leases", other)),
        }
    }

    /// Asks the worker holding a running run to cancel it.
    pub fn request_cancel(&self, run_id: &str) -> StoreResult<()> {
        let write = Write::RequestCancel {
            run_id: run_id.into(),
        };
        self.send_and_wait(write).map(drop)
    }

    /// Cancels a run that is still queued; false when it was not (a worker
    /// took it first, or it had ended).
    pub fn cancel_queued(&self, run_id: &str) -> StoreResult<bool> {
        let write = Write::CancelQueued {
            run_id: run_id.into(),
        };
        match self.send_and_wait(write)? {
            Applied::Cancelled(done) => Ok(done),
            other => Err(unexpected("a cancel", other)),
        }
    }

    /// Queues again the running runs whose worker stopped renewing their
    /// leases, or fails those that have been claimed `max_attempts` times.
    pub fn reap(&self, max_attempts: u32) -> StoreResult<()> {
        let write = Write::Reap {
            max_attempts,
            dead: None,
        };
        self.send_and_wait(write).map(drop)
    }

    /// Takes back at once the runs of a worker known to have died (a
    /// server's local worker process that exited), as a lapsed lease
    /// would: queued again, or failed after `max_attempts`.
    pub fn reap_dead(&self, dead: DeadWorker, max_attempts: u32) -> StoreResult<()> {
        let write = Write::Reap {
            max_attempts,
            dead: Some(dead),
        };
        self.send_and_wait(write).map(drop)
    }

    /// Records a worker's heartbeat, for the workers list.
    pub fn heartbeat(&self, worker: &WorkerInfo) -> StoreResult<()> {
        let write = Write::Heartbeat {
            worker: worker.clone(),
        };
        self.send_and_wait(write).map(drop)
    }

    /// The running runs held by `worker` whose cancel was asked for.
    pub fn cancel_requests(&self, worker: &str) -> StoreResult<Vec<String>> {
        self.backend.cancel_requests(worker)
    }

    /// The workers that have sent a heartbeat, newest first, with the runs
    /// each holds.
    pub fn workers(&self) -> StoreResult<Vec<WorkerRow>> {
        self.backend.workers()
    }

    /// Waits until everything sent so far is committed (or refused).
    pub fn flush(&self) {
        let (to, answer) = mpsc::channel();
        let flush = Queued {
            write: Write::Flush,
            reply: Some(Reply::Flushed(to)),
        };
        if self.writer.send(flush).is_ok() {
            let _ = answer.recv();
        }
    }
}
