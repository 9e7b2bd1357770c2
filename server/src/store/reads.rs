//! Reads, on pooled connections of their own: WAL lets them run beside the
//! writer thread.

use super::schema;
use super::{Event, EventKind, RunRow, Store, StoreError, StoreResult};
use rl_runner::RunStatus;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Most reader connections open at once. The pool used to keep every
/// connection it ever opened, so it grew to the largest burst of
/// concurrent reads it met (two file descriptors and a page cache each)
/// and stayed there. Closing the extra ones is no cure: SQLite cannot
/// close a database file descriptor while the process holds a lock on
/// that file (the writer's connection always does), so it parks the
/// descriptor until the process's locks drop, which under steady load is
/// never; the soak (`benches/soak.py`) saw those pile up. So the pool
/// opens at most this many and a read waits for a free one: eight let the
/// SSE catch-ups of several watchers and the API's reads go on together.
const MAX_READERS: usize = 8;

/// Reader connections, at most [`MAX_READERS`], reused and never closed.
#[derive(Default)]
pub(super) struct ReaderPool {
    slots: Mutex<ReaderSlots>,
    freed: Condvar,
}

#[derive(Default)]
struct ReaderSlots {
    idle: Vec<Connection>,
    /// Connections opened so far: idle or lent out.
    open: usize,
}

/// A lent connection; it goes back to the pool when dropped, even when
/// the read panics, so a panic cannot shrink the pool.
struct Lease<'a> {
    pool: &'a ReaderPool,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().idle.push(conn);
            self.pool.freed.notify_one();
        }
    }
}

impl ReaderPool {
    /// The slots; a panic elsewhere while they were locked leaves them
    /// consistent (every change is one push, pop or count), so a poisoned
    /// lock is taken as is.
    fn lock(&self) -> MutexGuard<'_, ReaderSlots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one while fewer than [`MAX_READERS`] are
    /// open, or else the next one returned.
    fn lease(&self, path: &Path) -> StoreResult<Lease<'_>> {
        let mut slots = self.lock();
        loop {
            if let Some(conn) = slots.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if slots.open < MAX_READERS {
                slots.open += 1;
                drop(slots);
                return match schema::open(path) {
                    Ok(conn) => Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            slots = self
                .freed
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Store {
    /// Runs `read` on a reader connection.
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let lease = self.readers.lease(&self.path)?;
        read(
            lease
                .conn
                .as_ref()
                .expect("a lease holds its connection until dropped"),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn a_burst_of_reads_never_holds_more_than_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("rl-lab.db")).unwrap();
        let inside = AtomicUsize::new(0);
        let most_inside = AtomicUsize::new(0);
        // Three times the cap at once, each holding its connection a while:
        // an unbounded pool would have them all inside together.
        std::thread::scope(|scope| {
            for _ in 0..3 * MAX_READERS {
                scope.spawn(|| {
                    let one: i64 = store
                        .read(|conn| {
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most_inside.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(30));
                            inside.fetch_sub(1, Ordering::SeqCst);
                            Ok(conn.query_row("SELECT 1", [], |row| row.get(0))?)
                        })
                        .unwrap();
                    assert_eq!(one, 1);
                });
            }
        });
        assert!(most_inside.load(Ordering::SeqCst) <= MAX_READERS);
        let slots = store.readers.lock();
        assert!(slots.open <= MAX_READERS);
        assert_eq!(slots.idle.len(), slots.open, "every connection came back");
    }

    #[test]
    fn a_panicking_read_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("rl-lab.db")).unwrap();
        for _ in 0..2 * MAX_READERS {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.read::<()>(|_| panic!("a read that panics"))
            }));
            assert!(caught.is_err());
        }
        // Had the panics kept their connections, this read would wait forever.
        assert!(store.runs_in_status(RunStatus::Running).unwrap().is_empty());
        assert_eq!(store.readers.lock().idle.len(), 1);
    }
}
