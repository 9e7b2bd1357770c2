//! The database schema, its migrations, and how connections are opened.

use super::StoreResult;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

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
    // 2: a row may stand for a window of points rather than one (the
    // recording policy of docs/server.md): `value` is then the window's
    // mean, at the window's last step, and `count`, `min`, `max` and `last`
    // describe the window. All four are NULL for a single point, so a
    // reader that only knows `value` still plots the right curve.
    "ALTER TABLE metrics ADD COLUMN count INTEGER;
    ALTER TABLE metrics ADD COLUMN min REAL;
    ALTER TABLE metrics ADD COLUMN max REAL;
    ALTER TABLE metrics ADD COLUMN last REAL;",
];

/// Opens a connection in WAL mode, waiting up to 10 s on a busy database.
pub(super) fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings the database up to the newest schema.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
