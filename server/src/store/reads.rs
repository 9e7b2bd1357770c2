//! Reads, on pooled connections of their own: WAL lets them run beside the
//! writer thread.

use super::schema;
use super::{Event, EventKind, RunRow, Store, StoreError, StoreResult};
use rl_runner::RunStatus;
use rusqlite::{Connection, OptionalExtension, params};

impl Store {
    /// Runs `read` on a reader connection.
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        // A deleted database still reads (SQLite has it open), but as a
        // file no restart will find; and a new connection would create an
        // empty one at the path. Neither is an answer.
        self.file.check(false).map_err(StoreError::Unavailable)?;
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open(&self.path)?,
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
        status: Option<RunStatus>,
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
                .query_map(
                    params![status.map(RunStatus::as_str), before, limit as i64],
                    run_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(parse_run).collect()
        })
    }

    /// Ids of runs in `status`, oldest first.
    pub fn runs_in_status(&self, status: RunStatus) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare("SELECT id FROM runs WHERE status = ?1 ORDER BY seq")?;
            let ids = statement
                .query_map([status.as_str()], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    /// How many runs are in each status that has any.
    pub fn status_counts(&self) -> StoreResult<Vec<(RunStatus, u64)>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare("SELECT status, count(*) FROM runs GROUP BY status")?;
            let counts = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            counts
                .into_iter()
                .map(|(status, count)| Ok((parse_status(&status)?, count)))
                .collect()
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

    /// A run's values of metric `name` after `after_step`, in step order:
    /// (step, value, wall seconds).
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
                        kind: EventKind::parse(&kind)?,
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

fn parse_status(text: &str) -> StoreResult<RunStatus> {
    text.parse()
        .map_err(|e: rl_runner::UnknownStatus| StoreError::Corrupt(e.to_string()))
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
        status: parse_status(&status)?,
        created_at,
        started_at,
        finished_at,
        steps: steps as u64,
        episodes: episodes as u64,
        summary: summary.map(|s| serde_json::from_str(&s)).transpose()?,
        error,
    })
}
