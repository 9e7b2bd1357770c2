//! Reads, on pooled connections of their own: WAL lets them run beside the
//! writer thread.

use super::super::downsample::{SeriesRead, Span, step_in_sql};
use super::super::rows::{
    POINT_COLUMNS, RUN_COLUMNS, RawRun, RawSweep, SWEEP_COLUMNS, parse_run, parse_status,
    parse_sweep,
};
use super::super::{
    Backend, Committed, Event, EventKind, MetricPoint, Queued, RunRow, StoreError, StoreResult,
    SweepRow, SweepWithRuns, WorkerInfo, WorkerRow,
};
use super::{Sqlite, schema};
use crate::store::BatchFailure;
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

/// The page cache of each reader connection, in KiB (SQLite's default is
/// 2,000). The pool opens connections as bursts of concurrent reads come,
/// and each one's cache fills as it is used: at the default, a soak's RSS
/// rose by 11 MiB over five minutes as four more readers filled theirs.
/// Pages missing from it come from the OS's file cache, a `pread` each;
/// reads touch a few hundred pages at most (a downsampled series reads its
/// rollups, not its rows).
const READER_CACHE_KIB: i64 = 512;

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
                let opened = schema::open(path).and_then(|conn| {
                    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
                    Ok(conn)
                });
                return match opened {
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

impl Sqlite {
    /// Runs `read` on a reader connection.
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        // A deleted database still reads (SQLite has it open), but as a
        // file no restart will find; and a new connection would create an
        // empty one at the path. Neither is an answer.
        self.file.check(false).map_err(StoreError::Unavailable)?;
        let lease = self.readers.lease(&self.path)?;
        read(
            lease
                .conn
                .as_ref()
                .expect("a lease holds its connection until dropped"),
        )
    }
}

impl Backend for Sqlite {
    fn commit(&self, batch: &mut [Queued]) -> Result<Committed, BatchFailure> {
        // SQLite would write on into a deleted or read-only file it has
        // open; the batch fails as a whole instead, saying why.
        if let Err(fault) = self.file.check(true) {
            return Err(BatchFailure {
                write: format!("commit a batch of {} writes", batch.len()),
                cause: fault.to_string(),
                batch: batch.len(),
                fault: Some(fault),
            });
        }
        let mut conn = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        super::writes::commit(&mut conn, batch)
    }

    fn shared(&self) -> bool {
        self.shared
    }

    fn disk_full(&self) -> bool {
        self.file.is_full()
    }

    fn keep_reserve(&self) -> bool {
        self.file.keep_reserve()
    }

    fn retake_reserve(&self) -> bool {
        self.file.retake_reserve()
    }

    fn release_reserve(&self) {
        self.file.release_reserve();
    }

    /// One run.
    fn run(&self, run_id: &str) -> StoreResult<Option<RunRow>> {
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
    fn runs(
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

    /// Sweeps, newest first, at most `limit`.
    fn sweeps(&self, limit: usize) -> StoreResult<Vec<SweepRow>> {
        self.read(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY seq DESC LIMIT ?1"
            ))?;
            let rows = statement
                .query_map([limit as i64], sweep_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(parse_sweep).collect()
        })
    }

    /// One sweep, with each of its runs and the configuration it belongs
    /// to, in submission order.
    fn sweep(&self, sweep_id: &str) -> StoreResult<Option<SweepWithRuns>> {
        self.read(|conn| {
            let Some(raw) = conn
                .query_row(
                    &format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = ?1"),
                    [sweep_id],
                    sweep_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let columns = RUN_COLUMNS
                .split(", ")
                .map(|c| format!("runs.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut statement = conn.prepare(&format!(
                "SELECT {columns}, sweep_runs.configuration FROM sweep_runs
                 JOIN runs ON runs.id = sweep_runs.run_id
                 WHERE sweep_runs.sweep_id = ?1 ORDER BY runs.seq"
            ))?;
            let runs = statement
                .query_map([sweep_id], |row| {
                    Ok((row.get::<_, i64>(15)?, run_row(row)?))
                })?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(|(configuration, raw)| Ok((configuration as usize, parse_run(raw)?)))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some((parse_sweep(raw)?, runs)))
        })
    }

    /// Ids of runs in `status`, oldest first.
    fn runs_in_status(&self, status: RunStatus) -> StoreResult<Vec<String>> {
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
    fn status_counts(&self) -> StoreResult<Vec<(RunStatus, u64)>> {
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
    fn latest_metrics(&self, run_id: &str) -> StoreResult<Vec<(String, u64, f64)>> {
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

    /// A run's stored rows of metric `name` after `after_step`, in step
    /// order, at most `limit` of them.
    fn metric_series(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<MetricPoint>> {
        self.read(|conn| {
            let mut rows = Vec::new();
            let after = after_step.map_or(-1, step_in_sql);
            metric_rows(conn, run_id, name, (after, i64::MAX), limit, |row| {
                rows.push(row)
            })?;
            Ok(rows)
        })
    }

    /// A run's metric `name` after `after_step` in at most `max_points`
    /// points (at least 3): the stored rows themselves when there are no
    /// more, else the first and the last row with the rows between summed
    /// in equal step ranges ([`downsample`]). The sums come from the
    /// rollups of migration 3 wherever a whole rollup bucket lies between
    /// the first and the last row, so a long series costs a few thousand
    /// rows to read, not all of them.
    fn metric_series_downsampled(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        max_points: usize,
    ) -> StoreResult<Vec<MetricPoint>> {
        self.read(|conn| {
            // One snapshot for the several reads below, whatever the writer
            // commits meanwhile.
            let snapshot = conn.unchecked_transaction()?;
            let after = after_step.map_or(-1, step_in_sql);
            let mut rows = Vec::with_capacity(max_points + 1);
            let whole = (after, i64::MAX);
            metric_rows(&snapshot, run_id, name, whole, max_points + 1, |row| {
                rows.push(row)
            })?;
            if rows.len() <= max_points {
                return Ok(rows);
            }
            let first = rows[0];
            let last = snapshot.query_row(
                &format!(
                    "SELECT {POINT_COLUMNS} FROM metrics
                     WHERE run_id = ?1 AND name = ?2 AND step > ?3
                     ORDER BY step DESC, rowid DESC LIMIT 1"
                ),
                params![run_id, name, after],
                point_row,
            )?;
            let (mut read, spans) = SeriesRead::plan(first, last, max_points);
            for span in spans {
                match span {
                    Span::Rows { after, through } => {
                        let range = (after, through);
                        metric_rows(&snapshot, run_id, name, range, usize::MAX, |point| {
                            read.push(point)
                        })?;
                    }
                    Span::Rollups {
                        shift,
                        after,
                        before,
                    } => {
                        let buckets = (after, before);
                        rollups(&snapshot, run_id, name, shift, buckets, |point| {
                            read.push(point)
                        })?;
                    }
                }
            }
            Ok(read.finish())
        })
    }

    /// The names of a run's metrics.
    fn metric_names(&self, run_id: &str) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare("SELECT DISTINCT name FROM metrics WHERE run_id = ?1 ORDER BY name")?;
            let names = statement
                .query_map([run_id], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
    }

    fn cancel_requests(&self, worker: &str) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id FROM runs
                 WHERE worker = ?1 AND status = 'running' AND cancel_requested = 1",
            )?;
            let ids = statement
                .query_map([worker], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    fn workers(&self) -> StoreResult<Vec<WorkerRow>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT name, host, pid, slots, started_at, heartbeat_at FROM workers
                 ORDER BY heartbeat_at DESC",
            )?;
            let mut workers = statement
                .query_map([], |row| {
                    Ok(WorkerRow {
                        info: WorkerInfo {
                            name: row.get(0)?,
                            host: row.get(1)?,
                            pid: row.get(2)?,
                            slots: row.get(3)?,
                            started_at: row.get(4)?,
                        },
                        heartbeat_at: row.get(5)?,
                        runs: Vec::new(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut held = conn.prepare(
                "SELECT worker, id FROM runs WHERE status = 'running' AND worker IS NOT NULL
                 ORDER BY seq",
            )?;
            let held = held
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(super::super::attach_runs(&mut workers, held))
        })
    }

    /// The newest event's id over the whole store (0 when there is none). A
    /// client that reads a snapshot (runs, metrics) after taking it and then
    /// follows events after it misses nothing between the two.
    fn last_event_id(&self) -> StoreResult<i64> {
        self.read(|conn| {
            Ok(
                conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |row| {
                    row.get(0)
                })?,
            )
        })
    }

    /// Events of every run, or of `run_ids`, after `after`, of `kinds`,
    /// oldest first: a server-wide stream's catch-up.
    fn events_since(
        &self,
        after: i64,
        run_ids: Option<&[String]>,
        kinds: &[EventKind],
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        self.read(|conn| {
            // Kinds are this enum's own spellings, never input, so they go
            // into the text; run ids are bound.
            let kinds_sql = kinds
                .iter()
                .map(|k| format!("'{}'", k.as_str()))
                .collect::<Vec<_>>()
                .join(",");
            let runs_sql = match run_ids {
                None => String::new(),
                Some(ids) => format!("AND run_id IN ({})", vec!["?"; ids.len()].join(",")),
            };
            let mut statement = conn.prepare(&format!(
                "SELECT id, run_id, kind, data FROM events
                 WHERE id > ? AND kind IN ({kinds_sql}) {runs_sql}
                 ORDER BY id LIMIT ?"
            ))?;
            let mut values: Vec<rusqlite::types::Value> = vec![after.into()];
            values.extend(
                run_ids
                    .unwrap_or_default()
                    .iter()
                    .map(|id| id.clone().into()),
            );
            values.push((limit as i64).into());
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, run_id, kind, data)| {
                    Ok(Event {
                        id,
                        run_id,
                        kind: EventKind::parse(&kind)?,
                        data,
                    })
                })
                .collect()
        })
    }
}

fn point_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MetricPoint> {
    Ok(MetricPoint {
        step: row.get::<_, i64>(0)? as u64,
        value: row.get(1)?,
        wall_seconds: row.get(2)?,
        count: row.get::<_, i64>(3)? as u64,
        min: row.get(4)?,
        max: row.get(5)?,
    })
}

/// Hands `each` the rows of a run's metric `name` with `after < step <=
/// through`, in step order, at most `limit` of them.
fn metric_rows(
    conn: &Connection,
    run_id: &str,
    name: &str,
    (after, through): (i64, i64),
    limit: usize,
    mut each: impl FnMut(MetricPoint),
) -> StoreResult<()> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {POINT_COLUMNS} FROM metrics
         WHERE run_id = ?1 AND name = ?2 AND step > ?3 AND step <= ?4
         ORDER BY step, rowid LIMIT ?5"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = statement.query(params![run_id, name, after, through, limit])?;
    while let Some(row) = rows.next()? {
        each(point_row(row)?);
    }
    Ok(())
}

/// Hands `each` the rollups of level `shift` of a run's metric `name`
/// strictly between `buckets`, in step order.
fn rollups(
    conn: &Connection,
    run_id: &str,
    name: &str,
    shift: u32,
    (after, before): (i64, i64),
    mut each: impl FnMut(MetricPoint),
) -> StoreResult<()> {
    let mut statement = conn.prepare_cached(
        "SELECT last_step, sum / count, last_wall_seconds, count, min, max FROM metric_rollups
         WHERE run_id = ?1 AND name = ?2 AND shift = ?3 AND bucket > ?4 AND bucket < ?5
         ORDER BY bucket",
    )?;
    let mut rows = statement.query(params![run_id, name, shift, after, before])?;
    while let Some(row) = rows.next()? {
        each(point_row(row)?);
    }
    Ok(())
}

fn sweep_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawSweep> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

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
        row.get(11)?,
        row.get(12)?,
        row.get(13)?,
        row.get(14)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::schema::tests::{assert_rollups_match_the_rows, insert, rows};
    use super::*;
    use crate::store::Store;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn store(dir: &Path) -> (Store, Connection, String) {
        let store = Store::open(&dir.join("rl-lab.db")).unwrap();
        let id = store
            .insert_run(serde_json::json!({"env": {"id": "CartPole-v1"}}))
            .unwrap();
        let conn = schema::open(&dir.join("rl-lab.db")).unwrap();
        (store, conn, id)
    }

    #[test]
    fn the_rollups_follow_inserts_a_resumes_truncation_and_a_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let (store, conn, id) = store(dir.path());
        let other = store.insert_run(serde_json::json!({})).unwrap();
        insert(&conn, &id, "rollout/episode_return", &rows(20_000, 3, 37));
        insert(&conn, &id, "train/loss", &rows(5_000, 0, 1));
        insert(&conn, &other, "train/loss", &rows(3_000, 0, 2));
        assert_rollups_match_the_rows(&conn);
        // A resume drops what came after its checkpoint, mid-bucket at
        // every level, then records again from there.
        store.truncate_metrics(&id, 300_001).unwrap();
        assert_rollups_match_the_rows(&conn);
        insert(
            &conn,
            &id,
            "rollout/episode_return",
            &rows(4_000, 300_002, 41),
        );
        assert_rollups_match_the_rows(&conn);
        store.delete_run(&id).unwrap();
        assert_rollups_match_the_rows(&conn);
        let left: Vec<String> = conn
            .prepare("SELECT DISTINCT run_id FROM metric_rollups")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, [other]);
    }

    #[test]
    fn a_burst_of_reads_never_holds_more_than_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("rl-lab.db"), false).unwrap();
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
        let store = Sqlite::open(&dir.path().join("rl-lab.db"), false).unwrap();
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
