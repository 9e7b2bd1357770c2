//! The embedded store: SQLite in WAL mode at `DATA/rl-lab.db`, holding runs,
//! their metrics, status history and log lines.
//!
//! One writer thread owns the write connection ([`writer`]). Workers and
//! handlers send it [`Write`]s over a channel; it commits whatever has
//! arrived in one transaction at least every [`FLUSH_PERIOD`], then
//! publishes the stored events (with their ids) to live subscribers.
//! Readers use their own connections ([`reads`]), which WAL lets run beside
//! the writer. The tables are in [`schema`].

mod reads;
mod schema;
mod writer;

pub use reads::MetricPoint;
pub use writer::{BatchFailure, FLUSH_PERIOD, Write};

use rl_runner::RunStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender, SyncSender};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use utoipa::ToSchema;
use writer::{Queued, Reply};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
        }
    }
}

impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The database file the store opened, to tell when it is deleted,
/// replaced or made read-only under the server: SQLite keeps writing to
/// the file it has open (an unlinked one, or one whose mode no longer
/// allows writing), so it would never say.
#[derive(Debug)]
pub(crate) struct DbFile {
    path: PathBuf,
    /// Device and inode at open.
    identity: (u64, u64),
    /// Set when the reserve was given back for a full disk, until it can
    /// be made again: meanwhile runs stop recording and the writer tries
    /// only what must be recorded, so the space goes to runs' ends.
    full: std::sync::atomic::AtomicBool,
}

impl DbFile {
    fn open(path: &Path) -> StoreResult<DbFile> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        Ok(DbFile {
            path: path.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
            full: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether the file at the path is still the one opened (and, for a
    /// write, writable); one `stat`.
    pub(crate) fn check(&self, write: bool) -> Result<(), StoreFault> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(&self.path).map_err(|_| StoreFault::Gone)?;
        if (metadata.dev(), metadata.ino()) != self.identity {
            return Err(StoreFault::Gone);
        }
        if write && metadata.permissions().readonly() {
            return Err(StoreFault::ReadOnly);
        }
        Ok(())
    }

    fn reserve_path(&self) -> PathBuf {
        self.path.with_extension("reserve")
    }

    /// Whether the disk was found full and has not had room since.
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes the reserve if missing; true when it is there (the disk has
    /// room again, if it was full).
    pub(crate) fn keep_reserve(&self) -> bool {
        let path = self.reserve_path();
        // Written, not sized: a sparse file would hold no space back.
        let kept = path.exists() || std::fs::write(&path, vec![0u8; RESERVE_BYTES]).is_ok();
        if kept {
            self.full.store(false, std::sync::atomic::Ordering::Relaxed);
        } else {
            let _ = std::fs::remove_file(&path);
        }
        kept
    }

    pub(crate) fn release_reserve(&self) {
        self.full.store(true, std::sync::atomic::Ordering::Relaxed);
        if std::fs::remove_file(self.reserve_path()).is_ok() {
            tracing::warn!(
                bytes = RESERVE_BYTES,
                "the disk is full: released the store's reserve so that runs can record their end"
            );
        }
    }
}

/// Space kept back beside the database, given up when the disk fills so
/// that runs can still record how they ended (a status change needs a few
/// pages of WAL). Made again at the next start, or when a run starts and
/// there is room. More than the WAL a full batch of metrics takes (about
/// 0.16 MB for its 1,000 episode records), since one may be committing
/// when the reserve is given back.
const RESERVE_BYTES: usize = 4 << 20;

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

/// The store handle: cheap to clone.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    file: Arc<DbFile>,
    writer: SyncSender<Queued>,
    readers: Arc<reads::ReaderPool>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    /// Opens (or creates) the database at `path`, migrates it, and starts
    /// the writer thread.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let mut conn = schema::open(path)?;
        let file = Arc::new(DbFile::open(path)?);
        file.check(true).map_err(StoreError::Unavailable)?;
        schema::migrate(&mut conn)?;
        let (writer, queue) = mpsc::sync_channel(QUEUE_CAPACITY);
        let (events, _) = broadcast::channel(4096);
        let publish = events.clone();
        let checked = Arc::clone(&file);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::writer_loop(conn, &checked, queue, publish))
            .map_err(StoreError::Thread)?;
        let store = Store {
            path: path.to_path_buf(),
            file,
            writer,
            readers: Arc::new(reads::ReaderPool::default()),
            events,
        };
        store.keep_reserve();
        Ok(store)
    }

    /// Makes the reserve of [`RESERVE_BYTES`] if it is missing and the disk
    /// has room; a disk without room is left alone (it is no fault yet).
    pub fn keep_reserve(&self) {
        self.file.keep_reserve();
    }

    /// Whether the disk is full (a write failed for it, and there has not
    /// been room for the reserve since): runs stop recording then.
    pub fn disk_full(&self) -> bool {
        self.file.is_full()
    }

    /// Gives the reserve back to the disk, so that what must be recorded
    /// (a run's end) fits on a full disk.
    pub fn release_reserve(&self) {
        self.file.release_reserve();
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

    /// Sends a write and waits for its commit; `reply` wraps the channel
    /// the writer answers on.
    fn send_and_wait<T>(
        &self,
        write: Write,
        reply: impl FnOnce(Sender<StoreResult<T>>) -> Reply,
    ) -> StoreResult<T> {
        let (to, answer) = mpsc::channel();
        self.writer
            .send(Queued {
                write,
                reply: Some(reply(to)),
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
        self.send_and_wait(Write::InsertRun { spec }, Reply::Id)
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
        self.send_and_wait(write, Reply::Sweep)
    }

    /// Sets a run's status and waits until it is committed.
    pub fn set_status(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<String>,
        summary: Option<Value>,
    ) -> StoreResult<()> {
        let write = Write::Status {
            run_id: run_id.into(),
            status,
            error,
            summary,
        };
        self.send_and_wait(write, Reply::Done)
    }

    /// Drops a run's metrics past `step`, waiting for the commit.
    pub fn truncate_metrics(&self, run_id: &str, step: u64) -> StoreResult<()> {
        let write = Write::TruncateMetrics {
            run_id: run_id.into(),
            step,
        };
        self.send_and_wait(write, Reply::Done)
    }

    /// Deletes a run's rows, waiting for the commit.
    pub fn delete_run(&self, run_id: &str) -> StoreResult<()> {
        let write = Write::DeleteRun {
            run_id: run_id.into(),
        };
        self.send_and_wait(write, Reply::Done)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use std::time::Duration;

    fn spec() -> Value {
        serde_json::json!({"env": {"id": "CartPole-v1"}, "agent": {"id": "dqn"}})
    }

    /// A second connection to the store's database, to break it.
    fn sabotage(dir: &Path, sql: &str) {
        Connection::open(dir.join("rl-lab.db"))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    #[test]
    fn statuses_round_trip_through_sql() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("rl-lab.db")).unwrap();
        let id = store.insert_run(spec()).unwrap();
        for status in RunStatus::ALL {
            store.set_status(&id, status, None, None).unwrap();
            assert_eq!(store.run(&id).unwrap().unwrap().status, status);
            assert_eq!(
                store.runs_in_status(status).unwrap(),
                std::slice::from_ref(&id)
            );
            assert_eq!(store.status_counts().unwrap(), [(status, 1)]);
        }
        let history = store.events(&id, 0, Some(EventKind::Status), 100).unwrap();
        let statuses: Vec<RunStatus> = history
            .into_iter()
            .map(|e| {
                serde_json::from_str::<StatusChange>(&e.data)
                    .unwrap()
                    .status
            })
            .collect();
        assert_eq!(statuses[0], RunStatus::Queued);
        assert_eq!(statuses[1..], RunStatus::ALL);
    }

    #[test]
    fn a_read_only_or_deleted_database_is_named_as_such() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rl-lab.db");
        let store = Store::open(&path).unwrap();
        let id = store.insert_run(spec()).unwrap();
        let writable = std::fs::metadata(&path).unwrap().permissions();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let e = store.insert_run(spec()).unwrap_err();
        assert_eq!(e.fault(), Some(StoreFault::ReadOnly), "{e:?}");
        // Reads go on.
        assert!(store.run(&id).unwrap().is_some());
        std::fs::set_permissions(&path, writable).unwrap();
        store.insert_run(spec()).unwrap();

        std::fs::remove_file(&path).unwrap();
        let e = store.run(&id).unwrap_err();
        assert_eq!(e.fault(), Some(StoreFault::Gone), "{e:?}");
        let e = store.insert_run(spec()).unwrap_err();
        assert_eq!(e.fault(), Some(StoreFault::Gone), "{e:?}");
        assert!(e.to_string().contains("deleted"), "{e}");
        // Nothing was created at the path in its place.
        assert!(!path.exists());
    }

    #[test]
    fn a_failed_write_says_what_failed_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("rl-lab.db")).unwrap();
        sabotage(dir.path(), "DROP TABLE events;");
        let e = store.insert_run(spec()).unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, StoreError::Batch(_)), "{e:?}");
        assert!(
            message.starts_with("could not insert a new run: no such table: events"),
            "{message}"
        );
        assert!(!message.contains("closed"), "{message}");
    }

    #[test]
    fn a_failed_write_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("rl-lab.db")).unwrap();
        let id = store.insert_run(spec()).unwrap();
        sabotage(dir.path(), "DROP TABLE metrics;");
        // One batch, as the writer would gather it: another run's metric
        // that cannot be stored, then this run's status change.
        let metric = Write::Metric {
            run_id: id.clone(),
            record: r#"{"kind": "scalar"}"#.into(),
            step: 5,
            values: vec![MetricValue {
                name: "train/loss".into(),
                step: 5,
                value: 0.5,
                wall_seconds: 1.0,
                window: None,
            }],
        };
        let status = Write::Status {
            run_id: id.clone(),
            status: RunStatus::Running,
            error: None,
            summary: None,
        };
        let mut batch: Vec<writer::Queued> = [metric, status]
            .into_iter()
            .map(|write| writer::Queued { write, reply: None })
            .collect();
        let mut conn = Connection::open(dir.path().join("rl-lab.db")).unwrap();
        let (applied, events) = writer::commit(&mut conn, &mut batch).unwrap();
        let failure = applied[0].as_ref().expect_err("the metric fails");
        assert_eq!(failure.write, format!("record a metric of {id} at step 5"));
        assert_eq!(failure.cause, "no such table: metrics");
        assert_eq!(failure.batch, 1);
        assert_eq!(
            failure.to_string(),
            format!("could not record a metric of {id} at step 5: no such table: metrics")
        );
        // The status change beside it was stored, with its event.
        assert!(applied[1].is_ok());
        assert_eq!(events.len(), 1);
        assert_eq!(store.run(&id).unwrap().unwrap().status, RunStatus::Running);
    }

    #[test]
    fn a_run_end_the_full_disk_refused_is_stored_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rl-lab.db");
        let store = Store::open(&path).unwrap();
        let id = store.insert_run(spec()).unwrap();
        // A database that cannot grow (SQLite's own "disk is full"), with
        // ballast whose deletion frees pages.
        sabotage(
            dir.path(),
            "CREATE TABLE ballast (data BLOB);
             INSERT INTO ballast SELECT zeroblob(100000) FROM (SELECT 1 UNION ALL SELECT 2);",
        );
        let conn = schema::open(&path).unwrap();
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages).unwrap();
        let file = DbFile::open(&path).unwrap();
        let (queue, writes) = mpsc::sync_channel(16);
        let (publish, _) = broadcast::channel(16);
        std::thread::scope(|scope| {
            scope.spawn(|| writer::writer_loop(conn, &file, writes, publish));
            // An end with more to say than the pages left can hold.
            let end = |status| Write::Status {
                run_id: id.clone(),
                status,
                error: Some("e".repeat(20_000)),
                summary: None,
            };
            let (to, answer) = mpsc::channel();
            let reply = Some(writer::Reply::Done(to));
            queue
                .send(writer::Queued {
                    write: end(RunStatus::Failed),
                    reply,
                })
                .unwrap();
            let refused = answer.recv().unwrap().unwrap_err();
            assert_eq!(refused.fault(), Some(StoreFault::DiskFull), "{refused}");
            assert_eq!(store.run(&id).unwrap().unwrap().status, RunStatus::Queued);
            // Room again: the writer stores the end by itself.
            sabotage(dir.path(), "DELETE FROM ballast;");
            let began = std::time::Instant::now();
            while store.run(&id).unwrap().unwrap().status != RunStatus::Failed {
                assert!(
                    began.elapsed() < Duration::from_secs(10),
                    "the end was not stored"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(queue);
        });
        let history = store.events(&id, 0, Some(EventKind::Status), 100).unwrap();
        assert_eq!(history.len(), 2, "queued, then failed once");
    }
}
