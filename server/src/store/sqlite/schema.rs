//! The database schema, its migrations, and how connections are opened.

use super::super::ROLLUP_SHIFTS;
use super::StoreResult;
use rusqlite::Connection;
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

/// The schema's first versions, one entry per version; the next is
/// [`rollups_migration`]. A database of an older version is brought up to
/// date by running the migrations past its `user_version`.
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

/// 4: sweeps, each with its configurations' varied values, and which
/// configuration each of its runs belongs to. A run's row is its own: a
/// deleted run leaves its sweep.
const SWEEPS_MIGRATION: &str = "CREATE TABLE sweeps (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        configurations TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE sweep_runs (
        sweep_id TEXT NOT NULL,
        configuration INTEGER NOT NULL,
        run_id TEXT NOT NULL UNIQUE,
        PRIMARY KEY (sweep_id, configuration, run_id)
    );";

/// 5: the queue that workers claim from (docs/scale.md). A running run
/// is held by one `worker` until `lease_until` (Unix seconds), renewed by
/// its heartbeats; `attempts` counts its claims; `cancel_requested` asks
/// its worker to stop it; `external` marks runs whose env processes
/// connect to the server that executes them; `steps_per_second` and
/// `recent_mean_return` are a running run's live figures, for API nodes
/// that do not execute it. `workers` lists the processes
/// that execute runs, with their last heartbeat.
const QUEUE_MIGRATION: &str = "ALTER TABLE runs ADD COLUMN worker TEXT;
    ALTER TABLE runs ADD COLUMN lease_until REAL;
    ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN external INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN steps_per_second REAL;
    ALTER TABLE runs ADD COLUMN recent_mean_return REAL;
    UPDATE runs SET external = 1 WHERE json_extract(spec, '$.env.id') = 'external';
    CREATE INDEX runs_worker ON runs(worker, status);
    CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        slots INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );";

/// The levels as a table of one `shift` column, for SQL.
fn rollup_levels_sql() -> String {
    ROLLUP_SHIFTS
        .iter()
        .map(|shift| format!("SELECT {shift} AS shift"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// 3: rollups of each metric series, so that a downsampled read
/// (`max_points`) reads a few thousand rows rather than every stored one
/// (docs/server.md). Level `shift` sums the rows whose steps fall in its
/// bucket: `count` points, their `sum` (for the mean), `min`, `max`, and
/// the wall time at their `last_step`. A window row counts as its `count`
/// points, its own `min` and `max`. Triggers keep them: each inserted row is
/// added to its bucket at every level. Rows are only ever deleted as a
/// suffix of a series (a resume drops steps past its checkpoint, a deleted
/// run drops all), so the first deleted row of a series drops every bucket
/// from its step on and rebuilds the buckets holding it from what is below
/// its step, level by level (the finest from the rows, each next one from
/// the 16 below); later deleted rows find nothing left to drop. Rows stored
/// before this migration are re-inserted in their order, so the trigger
/// rolls them up.
fn rollups_migration() -> String {
    let finest = ROLLUP_SHIFTS[0];
    let mut rebuild = format!(
        "INSERT INTO metric_rollups
        SELECT old.run_id, old.name, {finest}, old.step >> {finest}, sum(coalesce(count, 1)),
            sum(value * coalesce(count, 1)), min(coalesce(min, value)),
            max(coalesce(max, value)), max(step),
            (SELECT wall_seconds FROM metrics WHERE run_id = old.run_id AND name = old.name
                AND step >= (old.step >> {finest}) << {finest} AND step < old.step
                ORDER BY step DESC, rowid DESC LIMIT 1)
        FROM metrics WHERE run_id = old.run_id AND name = old.name
            AND step >= (old.step >> {finest}) << {finest} AND step < old.step
        HAVING count(*) > 0;"
    );
    for pair in ROLLUP_SHIFTS.windows(2) {
        let (below, shift) = (pair[0], pair[1]);
        let ratio = shift - below;
        rebuild += &format!(
            "DELETE FROM metric_rollups WHERE run_id = old.run_id AND name = old.name
            AND shift = {shift} AND bucket >= old.step >> {shift};
        INSERT INTO metric_rollups
        SELECT old.run_id, old.name, {shift}, old.step >> {shift}, sum(count), sum(sum),
            min(min), max(max), max(last_step),
            (SELECT last_wall_seconds FROM metric_rollups WHERE run_id = old.run_id
                AND name = old.name AND shift = {below}
                AND bucket >= (old.step >> {shift}) << {ratio}
                ORDER BY bucket DESC LIMIT 1)
        FROM metric_rollups WHERE run_id = old.run_id AND name = old.name AND shift = {below}
            AND bucket >= (old.step >> {shift}) << {ratio}
        HAVING count(*) > 0;"
        );
    }
    let levels = rollup_levels_sql();
    format!(
        "CREATE TABLE metric_rollups (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        shift INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        count INTEGER NOT NULL,
        sum REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        last_step INTEGER NOT NULL,
        last_wall_seconds REAL NOT NULL,
        PRIMARY KEY (run_id, name, shift, bucket)
    ) WITHOUT ROWID;
    CREATE TRIGGER metric_rollups_on_insert AFTER INSERT ON metrics
    BEGIN
        INSERT INTO metric_rollups
        SELECT new.run_id, new.name, level.shift, new.step >> level.shift,
            coalesce(new.count, 1), new.value * coalesce(new.count, 1),
            coalesce(new.min, new.value), coalesce(new.max, new.value), new.step,
            new.wall_seconds
        FROM ({levels}) AS level
        WHERE true
        ON CONFLICT DO UPDATE SET count = count + excluded.count, sum = sum + excluded.sum,
            min = min(min, excluded.min), max = max(max, excluded.max),
            last_wall_seconds = CASE WHEN excluded.last_step >= last_step
                THEN excluded.last_wall_seconds ELSE last_wall_seconds END,
            last_step = max(last_step, excluded.last_step);
    END;
    CREATE TEMP TABLE metrics_before_rollups AS SELECT rowid AS id, * FROM metrics;
    DELETE FROM metrics;
    INSERT INTO metrics (rowid, run_id, name, step, value, wall_seconds, event_id, count, min,
        max, last)
    SELECT id, run_id, name, step, value, wall_seconds, event_id, count, min, max, last
    FROM metrics_before_rollups ORDER BY id;
    DROP TABLE metrics_before_rollups;
    CREATE TRIGGER metric_rollups_on_delete AFTER DELETE ON metrics
    WHEN EXISTS (SELECT 1 FROM metric_rollups
        WHERE run_id = old.run_id AND name = old.name AND shift = {finest}
        AND bucket >= old.step >> {finest} AND last_step >= old.step)
    BEGIN
        DELETE FROM metric_rollups WHERE run_id = old.run_id AND name = old.name
            AND shift = {finest} AND bucket >= old.step >> {finest};
        {rebuild}
    END;"
    )
}

/// What the write-ahead log is cut back to after a checkpoint: SQLite
/// otherwise keeps the file at its largest size ever (a fast run's first
/// burst left 7.7 MB of it), which counts against a run's data on disk
/// (docs/server.md, "Recording policy"). The default automatic checkpoint
/// runs at 1,000 pages, about this size.
const WAL_BYTES_KEPT: i64 = 4 << 20;

/// How much heap SQLite may keep in this process, all connections
/// together, before it recycles cached pages rather than allocating new
/// ones (`PRAGMA soft_heap_limit`). Each connection's page cache fills as
/// it touches pages, for minutes under load, and the writer's and the
/// readers' caches (2 MB and 512 KiB each by their own settings) would
/// together let RSS creep by several MiB after the server has reached its
/// working size. Pages not cached come from the OS's file cache.
const SQLITE_HEAP_BYTES: i64 = 2 << 20;

/// Opens a connection in WAL mode, waiting up to 10 s on a busy database.
pub(crate) fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    // Process-wide: setting it again from each connection changes nothing.
    conn.pragma_update(None, "soft_heap_limit", SQLITE_HEAP_BYTES)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_BYTES_KEPT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings the database up to the newest schema.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let migrations = MIGRATIONS.iter().map(|&sql| Cow::Borrowed(sql)).chain([
        Cow::Owned(rollups_migration()),
        Cow::Borrowed(SWEEPS_MIGRATION),
        Cow::Borrowed(QUEUE_MIGRATION),
    ]);
    for (index, migration) in migrations.enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(&migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rusqlite::params;

    /// One stored row: (step, value, window of (count, min, max) or none).
    pub(in crate::store) type Row = (u64, f64, Option<(u64, f64, f64)>);

    /// Stores `rows` of run `run_id`'s metric `name` as the writer would.
    pub(in crate::store) fn insert(conn: &Connection, run_id: &str, name: &str, rows: &[Row]) {
        let tx = conn.unchecked_transaction().unwrap();
        let mut insert = tx
            .prepare(
                "INSERT INTO metrics (run_id, name, step, value, wall_seconds, event_id, count,
                 min, max, last) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?4)",
            )
            .unwrap();
        for &(step, value, window) in rows {
            insert
                .execute(params![
                    run_id,
                    name,
                    step as i64,
                    value,
                    step as f64 / 1000.0,
                    window.map(|w| w.0 as i64),
                    window.map(|w| w.1),
                    window.map(|w| w.2),
                ])
                .unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }

    type Rollup = (String, String, i64, i64, i64, f64, f64, f64, i64, f64);

    fn rollup_rows(conn: &Connection, sql: &str) -> Vec<Rollup> {
        let mut statement = conn.prepare(sql).unwrap();
        statement
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Asserts that the rollups the triggers kept are those of the rows
    /// stored now, counted afresh.
    pub(in crate::store) fn assert_rollups_match_the_rows(conn: &Connection) {
        let kept = rollup_rows(
            conn,
            "SELECT run_id, name, shift, bucket, count, sum, min, max, last_step,
             last_wall_seconds FROM metric_rollups ORDER BY run_id, name, shift, bucket",
        );
        let levels = rollup_levels_sql();
        // The wall time at the last step is the test's own: step / 1000.
        let afresh = rollup_rows(
            conn,
            &format!(
                "SELECT run_id, name, level.shift, step >> level.shift AS bucket,
                 sum(coalesce(count, 1)), sum(value * coalesce(count, 1)),
                 min(coalesce(min, value)), max(coalesce(max, value)), max(step),
                 max(step) / 1000.0
                 FROM metrics, ({levels}) AS level
                 GROUP BY run_id, name, level.shift, bucket
                 ORDER BY run_id, name, level.shift, bucket"
            ),
        );
        assert_eq!(kept.len(), afresh.len(), "how many rollups");
        for (kept, afresh) in kept.iter().zip(&afresh) {
            let close = (kept.5 - afresh.5).abs() <= 1e-9 * afresh.5.abs().max(1.0);
            let same = (
                &kept.0, &kept.1, kept.2, kept.3, kept.4, kept.6, kept.7, kept.8, kept.9,
            ) == (
                &afresh.0, &afresh.1, afresh.2, afresh.3, afresh.4, afresh.6, afresh.7, afresh.8,
                afresh.9,
            );
            assert!(same && close, "kept {kept:?}, counted afresh {afresh:?}");
        }
    }

    /// A series with windows, repeated steps and spikes, `spacing` steps
    /// apart from `start`.
    pub(in crate::store) fn rows(n: u64, start: u64, spacing: u64) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let step = start + i * spacing + i % 3 / 2;
                let value = (i as f64 * 0.37).sin() * 10.0;
                let window = (i % 5 == 0).then(|| (3 + i % 4, value - 40.0, value + 90.0));
                (step, value, window)
            })
            .collect()
    }

    #[test]
    fn migration_3_rolls_up_the_rows_stored_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("rl-lab.db")).unwrap();
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            conn.execute_batch(migration).unwrap();
            conn.pragma_update(None, "user_version", index as i64 + 1)
                .unwrap();
        }
        insert(&conn, "run-1", "rollout/episode_return", &rows(3000, 5, 23));
        insert(&conn, "run-2", "train/loss", &rows(500, 0, 1));
        migrate(&mut conn).unwrap();
        let rolled: i64 = conn
            .query_row(
                "SELECT count(*) FROM metric_rollups WHERE shift = 4",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(rolled > 3000, "{rolled}");
        assert_rollups_match_the_rows(&conn);
    }
}
