//! The embedded store: SQLite in WAL mode at `DATA/rl-lab.db`, holding runs,
//! their metrics, status history and log lines.
//!
//! One writer thread owns the write connection. Workers and handlers send it
//! [`Write`]s over a channel; it commits whatever has arrived in one
//! transaction at least every [`FLUSH_PERIOD`], then publishes the stored
//! events (with their ids) to live subscribers. Readers use their own
//! connections, which WAL lets run beside the writer.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// The longest a metric waits in memory before it is committed.
pub const FLUSH_PERIOD: Duration = Duration::from_millis(250);

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread has stopped (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// A stored JSON value does not parse.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The store's result.
pub type StoreResult<T> = Result<T, StoreError>;

/// The schema, one entry per version. A database of an older version is
/// brought up to date by running the entries past its `user_version`.
const MIGRATIONS: &[&str] = &[
    // 1: runs, events (metric, log and status, in one id sequence so that
    // server-sent events resume from one `Last-Event-ID`), and the metric
    // values by name for plotting.
    "CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        steps INTEGER NOT NULL DEFAULT 0,
        episodes INTEGER NOT NULL DEFAULT 0,
        summary TEXT,
        error TEXT
    );
    CREATE INDEX runs_status ON runs(status, seq);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        step INTEGER,
        data TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX events_run ON events(run_id, id);
    CREATE TABLE metrics (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        step INTEGER NOT NULL,
        value REAL NOT NULL,
        wall_seconds REAL NOT NULL,
        event_id INTEGER NOT NULL
    );
    CREATE INDEX metrics_run_name ON metrics(run_id, name, step);",
];

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
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Metric => "metric",
            EventKind::Log => "log",
            EventKind::Status => "status",
        }
    }
    fn parse(text: &str) -> EventKind {
        match text {
            "metric" => EventKind::Metric,
            "log" => EventKind::Log,
            _ => EventKind::Status,
        }
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
    /// The payload.
    pub data: Value,
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
    /// `queued`, `running`, `completed`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
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

/// A scalar to store under a name, e.g. `rollout/episode_return`.
#[derive(Clone, Debug)]
pub struct MetricValue {
    /// Namespaced name.
    pub name: String,
    /// Env step it belongs to.
    pub step: u64,
    /// The value.
    pub value: f64,
    /// Seconds since training began.
    pub wall_seconds: f64,
}

/// What the writer thread is asked to do.
pub enum Write {
    /// A new run, queued.
    InsertRun {
        /// The spec as JSON.
        spec: Value,
        /// Gets the new id.
        reply: Sender<StoreResult<String>>,
    },
    /// A status change (with its history event).
    Status {
        /// The run.
        run_id: String,
        /// The new status.
        status: String,
        /// The error, for `failed`.
        error: Option<String>,
        /// The summary, when the run ended.
        summary: Option<Value>,
        /// Told when it is committed.
        reply: Option<Sender<StoreResult<()>>>,
    },
    /// A metrics record and the scalars it holds.
    Metric {
        /// The run.
        run_id: String,
        /// The record, as in `metrics.jsonl`.
        record: Value,
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
        /// `{time, level, message, fields}`.
        line: Value,
    },
    /// Drops metric rows and events past `step`: a resumed run continues
    /// from its checkpoint, so what came after it is replayed.
    TruncateMetrics {
        /// The run.
        run_id: String,
        /// The checkpoint's step.
        step: u64,
        /// Told when it is committed.
        reply: Sender<StoreResult<()>>,
    },
    /// Removes a run and everything it has.
    DeleteRun {
        /// The run.
        run_id: String,
        /// Told when it is committed.
        reply: Sender<StoreResult<()>>,
    },
    /// Commits everything before it, then answers.
    Flush(Sender<()>),
}

/// The store handle: cheap to clone.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    writer: Sender<Write>,
    readers: Arc<Mutex<Vec<Connection>>>,
    events: broadcast::Sender<Arc<Event>>,
}

fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings the database up to the newest schema.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the database at `path`, migrates it, and starts
    /// the writer thread.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let mut conn = open(path)?;
        migrate(&mut conn)?;
        let (writer, queue) = mpsc::channel();
        let (events, _) = broadcast::channel(4096);
        let publish = events.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, queue, publish))
            .map_err(|e| StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(e.into())))?;
        Ok(Store {
            path: path.to_path_buf(),
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            events,
        })
    }

    /// Sends a write to the writer thread without waiting.
    pub fn send(&self, write: Write) {
        // A closed writer means the server is going down; the write is lost
        // with it, as it would be a moment later anyway.
        let _ = self.writer.send(write);
    }

    /// Subscribes to events as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Inserts a queued run and returns its id.
    pub fn insert_run(&self, spec: Value) -> StoreResult<String> {
        let (reply, answer) = mpsc::channel();
        self.writer
            .send(Write::InsertRun { spec, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Sets a run's status and waits until it is committed.
    pub fn set_status(
        &self,
        run_id: &str,
        status: &str,
        error: Option<String>,
        summary: Option<Value>,
    ) -> StoreResult<()> {
        let (reply, answer) = mpsc::channel();
        self.writer
            .send(Write::Status {
                run_id: run_id.into(),
                status: status.into(),
                error,
                summary,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Drops a run's metrics past `step`, waiting for the commit.
    pub fn truncate_metrics(&self, run_id: &str, step: u64) -> StoreResult<()> {
        let (reply, answer) = mpsc::channel();
        self.writer
            .send(Write::TruncateMetrics {
                run_id: run_id.into(),
                step,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Deletes a run's rows, waiting for the commit.
    pub fn delete_run(&self, run_id: &str) -> StoreResult<()> {
        let (reply, answer) = mpsc::channel();
        self.writer
            .send(Write::DeleteRun {
                run_id: run_id.into(),
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything sent so far is committed.
    pub fn flush(&self) {
        let (reply, answer) = mpsc::channel();
        if self.writer.send(Write::Flush(reply)).is_ok() {
            let _ = answer.recv();
        }
    }

    /// Runs `read` on a reader connection.
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => open(&self.path)?,
        };
        let result = read(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(conn);
        }
        result
    }

    /// One run.
    pub fn run(&self, run_id: &str) -> StoreResult<Option<RunRow>> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [run_id],
                run_row,
            )
            .optional()?
            .map(parse_run)
            .transpose()
        })
    }

    /// Runs newest first, optionally of one status, starting below `before`
    /// (a `seq` cursor).
    pub fn runs(
        &self,
        status: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RunRow>> {
        self.read(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR seq < ?2)
                 ORDER BY seq DESC LIMIT ?3"
            ))?;
            let rows = statement
                .query_map(params![status, before, limit as i64], run_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(parse_run).collect()
        })
    }

    /// Ids of runs in `status`, oldest first.
    pub fn runs_in_status(&self, status: &str) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare("SELECT id FROM runs WHERE status = ?1 ORDER BY seq")?;
            let ids = statement
                .query_map([status], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    /// How many runs are in each status.
    pub fn status_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare("SELECT status, count(*) FROM runs GROUP BY status")?;
            let counts = statement
                .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(counts)
        })
    }

    /// The newest value of each of a run's metrics: name → (step, value).
    pub fn latest_metrics(&self, run_id: &str) -> StoreResult<Vec<(String, u64, f64)>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT name, step, value FROM metrics WHERE rowid IN
                 (SELECT max(rowid) FROM metrics WHERE run_id = ?1 GROUP BY name)
                 ORDER BY name",
            )?;
            let rows = statement
                .query_map([run_id], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(1)? as u64, row.get(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// A run's values of metric `name` after `after_step`, in step order.
    pub fn metric_series(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<(u64, f64, f64)>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT step, value, wall_seconds FROM metrics
                 WHERE run_id = ?1 AND name = ?2 AND (?3 IS NULL OR step > ?3)
                 ORDER BY step, rowid LIMIT ?4",
            )?;
            let rows = statement
                .query_map(
                    params![run_id, name, after_step.map(|s| s as i64), limit as i64],
                    |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?, row.get(2)?)),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// The names of a run's metrics.
    pub fn metric_names(&self, run_id: &str) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare("SELECT DISTINCT name FROM metrics WHERE run_id = ?1 ORDER BY name")?;
            let names = statement
                .query_map([run_id], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
    }

    /// A run's events after `after` (an event id), optionally of one kind.
    pub fn events(
        &self,
        run_id: &str,
        after: i64,
        kind: Option<EventKind>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT id, kind, data FROM events
                 WHERE run_id = ?1 AND id > ?2 AND (?3 IS NULL OR kind = ?3)
                 ORDER BY id LIMIT ?4",
            )?;
            let rows = statement
                .query_map(
                    params![run_id, after, kind.map(EventKind::as_str), limit as i64],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, kind, data)| {
                    Ok(Event {
                        id,
                        run_id: run_id.to_string(),
                        kind: EventKind::parse(&kind),
                        data: serde_json::from_str(&data)?,
                    })
                })
                .collect()
        })
    }

    /// `PRAGMA integrity_check`'s answer (`ok` when sound).
    pub fn integrity_check(&self) -> StoreResult<String> {
        self.read(|conn| Ok(conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?))
    }
}

const RUN_COLUMNS: &str =
    "id, seq, spec, status, created_at, started_at, finished_at, steps, episodes, summary, error";

type RawRun = (
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
);

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn parse_run(raw: RawRun) -> StoreResult<RunRow> {
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
    ) = raw;
    Ok(RunRow {
        id,
        seq,
        spec: serde_json::from_str(&spec)?,
        status,
        created_at,
        started_at,
        finished_at,
        steps: steps as u64,
        episodes: episodes as u64,
        summary: summary.map(|s| serde_json::from_str(&s)).transpose()?,
        error,
    })
}

/// Replies waiting for their transaction to commit.
enum Reply {
    Id(Sender<StoreResult<String>>, StoreResult<String>),
    Done(Sender<StoreResult<()>>, StoreResult<()>),
    Flushed(Sender<()>),
}

fn writer_loop(
    mut conn: Connection,
    queue: Receiver<Write>,
    publish: broadcast::Sender<Arc<Event>>,
) {
    let mut batch = Vec::new();
    loop {
        // Wait for the first write, then gather what arrives within the
        // flush period into one transaction.
        match queue.recv() {
            Ok(write) => batch.push(write),
            Err(_) => return,
        }
        let deadline = Instant::now() + FLUSH_PERIOD;
        let mut closed = false;
        while batch.len() < 10_000 {
            if matches!(batch.last(), Some(Write::Flush(_))) {
                break;
            }
            match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(write) => batch.push(write),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let (replies, events) = match commit(&mut conn, batch.drain(..)) {
            Ok(done) => done,
            Err((e, replies)) => {
                tracing::error!("store: a batch of writes failed: {e}");
                (replies, Vec::new())
            }
        };
        for event in events {
            let _ = publish.send(Arc::new(event));
        }
        for reply in replies {
            match reply {
                Reply::Id(to, result) => drop(to.send(result)),
                Reply::Done(to, result) => drop(to.send(result)),
                Reply::Flushed(to) => drop(to.send(())),
            }
        }
        if closed {
            return;
        }
    }
}

type Committed = (Vec<Reply>, Vec<Event>);

/// Applies `writes` in one transaction. On failure every waiting caller is
/// told, and nothing of the batch is kept.
fn commit(
    conn: &mut Connection,
    writes: impl Iterator<Item = Write>,
) -> Result<Committed, (StoreError, Vec<Reply>)> {
    let mut replies = Vec::new();
    let mut events = Vec::new();
    let mut failure = None;
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            for write in writes {
                replies.extend(failed_reply(write));
            }
            return Err((e, replies));
        }
    };
    let time = now();
    for write in writes {
        if failure.is_some() {
            replies.extend(failed_reply(write));
            continue;
        }
        if let Err(e) = apply(&tx, write, time, &mut events, &mut replies) {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        drop(tx);
        let replies = replies
            .into_iter()
            .map(|reply| match reply {
                Reply::Id(to, _) => Reply::Id(to, Err(StoreError::Closed)),
                Reply::Done(to, _) => Reply::Done(to, Err(StoreError::Closed)),
                flushed => flushed,
            })
            .collect();
        return Err((e, replies));
    }
    match tx.commit() {
        Ok(()) => Ok((replies, events)),
        Err(e) => Err((e.into(), replies)),
    }
}

/// The reply a write gets when its batch could not be committed.
fn failed_reply(write: Write) -> Option<Reply> {
    match write {
        Write::InsertRun { reply, .. } => Some(Reply::Id(reply, Err(StoreError::Closed))),
        Write::Status {
            reply: Some(reply), ..
        }
        | Write::TruncateMetrics { reply, .. }
        | Write::DeleteRun { reply, .. } => Some(Reply::Done(reply, Err(StoreError::Closed))),
        Write::Flush(reply) => Some(Reply::Flushed(reply)),
        _ => None,
    }
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    kind: EventKind,
    step: Option<u64>,
    data: Value,
    time: f64,
) -> rusqlite::Result<Event> {
    tx.prepare_cached(
        "INSERT INTO events (run_id, kind, step, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        run_id,
        kind.as_str(),
        step.map(|s| s as i64),
        data.to_string(),
        time
    ])?;
    Ok(Event {
        id: tx.last_insert_rowid(),
        run_id: run_id.to_string(),
        kind,
        data,
    })
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    write: Write,
    time: f64,
    events: &mut Vec<Event>,
    replies: &mut Vec<Reply>,
) -> Result<(), StoreError> {
    match write {
        Write::InsertRun { spec, reply } => {
            let inserted = (|| {
                tx.execute(
                    "INSERT INTO runs (id, spec, status, created_at) VALUES ('', ?1, 'queued', ?2)",
                    params![spec.to_string(), time],
                )?;
                let seq = tx.last_insert_rowid();
                let id = format!("run-{seq}");
                tx.execute("UPDATE runs SET id = ?1 WHERE seq = ?2", params![id, seq])?;
                let status = serde_json::json!({"status": "queued", "at": time});
                events.push(insert_event(
                    tx,
                    &id,
                    EventKind::Status,
                    None,
                    status,
                    time,
                )?);
                Ok::<_, rusqlite::Error>(id)
            })();
            match inserted {
                Ok(id) => replies.push(Reply::Id(reply, Ok(id))),
                Err(e) => {
                    replies.push(Reply::Id(reply, Err(StoreError::Closed)));
                    return Err(e.into());
                }
            }
        }
        Write::Status {
            run_id,
            status,
            error,
            summary,
            reply,
        } => {
            let updated = (|| {
                let (started, finished) = match status.as_str() {
                    "running" => (Some(time), None),
                    "queued" => (None, None),
                    _ => (None, Some(time)),
                };
                tx.execute(
                    "UPDATE runs SET status = ?2,
                        started_at = coalesce(?3, started_at),
                        finished_at = CASE WHEN ?2 IN ('running', 'queued') THEN NULL ELSE ?4 END,
                        error = ?5,
                        summary = coalesce(?6, CASE WHEN ?2 IN ('running', 'queued') THEN NULL ELSE summary END)
                     WHERE id = ?1",
                    params![
                        run_id,
                        status,
                        started,
                        finished,
                        error,
                        summary.as_ref().map(Value::to_string)
                    ],
                )?;
                let mut data = serde_json::json!({"status": status, "at": time});
                if let Some(error) = &error {
                    data["error"] = Value::String(error.clone());
                }
                events.push(insert_event(
                    tx,
                    &run_id,
                    EventKind::Status,
                    None,
                    data,
                    time,
                )?);
                Ok::<_, rusqlite::Error>(())
            })();
            match updated {
                Ok(()) => replies.extend(reply.map(|r| Reply::Done(r, Ok(())))),
                Err(e) => {
                    replies.extend(reply.map(|r| Reply::Done(r, Err(StoreError::Closed))));
                    return Err(e.into());
                }
            }
        }
        Write::Metric {
            run_id,
            record,
            step,
            values,
        } => {
            let stored = (|| {
                let event = insert_event(tx, &run_id, EventKind::Metric, Some(step), record, time)?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO metrics (run_id, name, step, value, wall_seconds, event_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for value in &values {
                    insert.execute(params![
                        run_id,
                        value.name,
                        value.step as i64,
                        value.value,
                        value.wall_seconds,
                        event.id
                    ])?;
                }
                events.push(event);
                Ok::<_, rusqlite::Error>(())
            })();
            stored?;
        }
        Write::Progress {
            run_id,
            steps,
            episodes,
        } => {
            tx.prepare_cached("UPDATE runs SET steps = ?2, episodes = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![run_id, steps as i64, episodes as i64]))?;
        }
        Write::Log { run_id, line } => {
            let event = insert_event(tx, &run_id, EventKind::Log, None, line, time)?;
            events.push(event);
        }
        Write::TruncateMetrics {
            run_id,
            step,
            reply,
        } => {
            let done = tx
                .execute(
                    "DELETE FROM metrics WHERE run_id = ?1 AND step > ?2",
                    params![run_id, step as i64],
                )
                .and_then(|_| {
                    tx.execute(
                        "DELETE FROM events WHERE run_id = ?1 AND kind = 'metric' AND step > ?2",
                        params![run_id, step as i64],
                    )
                });
            match done {
                Ok(_) => replies.push(Reply::Done(reply, Ok(()))),
                Err(e) => {
                    {
                        replies.push(Reply::Done(reply, Err(StoreError::Closed)));
                        return Err(e.into());
                    };
                }
            }
        }
        Write::DeleteRun { run_id, reply } => {
            let done = ["metrics", "events", "runs"].iter().try_for_each(|table| {
                let column = if *table == "runs" { "id" } else { "run_id" };
                tx.execute(
                    &format!("DELETE FROM {table} WHERE {column} = ?1"),
                    [&run_id],
                )
                .map(drop)
            });
            match done {
                Ok(()) => replies.push(Reply::Done(reply, Ok(()))),
                Err(e) => {
                    {
                        replies.push(Reply::Done(reply, Err(StoreError::Closed)));
                        return Err(e.into());
                    };
                }
            }
        }
        Write::Flush(reply) => replies.push(Reply::Flushed(reply)),
    }
    Ok(())
}
