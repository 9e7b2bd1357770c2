//! The embedded backend: SQLite in WAL mode at `DATA/rl-lab.db`.
//!
//! The writer thread's batches go through one write connection
//! ([`writes`]); reads use pooled connections of their own ([`reads`]),
//! which WAL lets run beside it. The tables are in [`schema`].

mod reads;
mod schema;
mod writes;

use super::{StoreError, StoreFault, StoreResult};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The SQLite backend.
pub struct Sqlite {
    path: PathBuf,
    file: DbFile,
    /// The one connection that writes; only the writer thread locks it.
    writer: Mutex<Connection>,
    readers: reads::ReaderPool,
    /// Whether other processes write to the file too (a server's local
    /// workers): then events are tailed, and runs may be theirs.
    shared: bool,
}

impl Sqlite {
    /// Opens (or creates) the database at `path` and migrates it; `shared`
    /// when other processes on this machine write to it too.
    pub fn open(path: &Path, shared: bool) -> StoreResult<Sqlite> {
        let mut conn = schema::open(path)?;
        let file = DbFile::open(path, shared)?;
        file.check(true).map_err(StoreError::Unavailable)?;
        schema::migrate(&mut conn)?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            file,
            writer: Mutex::new(conn),
            readers: reads::ReaderPool::default(),
            shared,
        })
    }
}

/// The database file the store opened, to tell when it is deleted,
/// replaced or made read-only under the server: SQLite keeps writing to
/// the file it has open (an unlinked one, or one whose mode no longer
/// allows writing), so it would never say.
#[derive(Debug)]
pub(super) struct DbFile {
    path: PathBuf,
    /// Device and inode at open.
    identity: (u64, u64),
    /// Set when the reserve was given back for a full disk, until it can
    /// be made again: meanwhile runs stop recording and the writer tries
    /// only what must be recorded, so the space goes to runs' ends.
    full: std::sync::atomic::AtomicBool,
    /// Whether other processes (a server's local workers) write to the
    /// file: any of them may give the reserve back, and all must then
    /// hold back.
    shared: bool,
    /// When the reserve was last looked for, and since when it has been
    /// seen missing (given back by another process).
    look: Mutex<ReserveLook>,
}

/// What [`DbFile::is_full`] last saw of a reserve shared with other
/// processes.
#[derive(Debug)]
struct ReserveLook {
    at: std::time::Instant,
    /// Whether this process has seen the reserve (made it, or found it):
    /// only a reserve that was there and went was given back.
    seen: bool,
    missing_since: Option<std::time::Instant>,
}

/// How often a shared reserve is looked for: `is_full` is asked for each
/// metric record.
const RESERVE_LOOK_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a reserve another process gave back stays given back before
/// this one makes it again: time for that process to record the run ends
/// it freed the space for.
const RESERVE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl DbFile {
    fn open(path: &Path, shared: bool) -> StoreResult<DbFile> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        let now = std::time::Instant::now();
        Ok(DbFile {
            path: path.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
            full: std::sync::atomic::AtomicBool::new(false),
            shared,
            look: Mutex::new(ReserveLook {
                at: now.checked_sub(RESERVE_LOOK_PERIOD).unwrap_or(now),
                seen: false,
                missing_since: None,
            }),
        })
    }

    /// Since when the reserve has been missing after it was there (another
    /// process gave it back), looked at once per [`RESERVE_LOOK_PERIOD`];
    /// `None` when it is there, or when this process alone writes to the
    /// file (it knows what it gave back).
    fn reserve_missing_since(&self) -> Option<std::time::Instant> {
        if !self.shared {
            return None;
        }
        let mut look = self.look.lock().unwrap_or_else(|p| p.into_inner());
        if look.at.elapsed() >= RESERVE_LOOK_PERIOD {
            look.at = std::time::Instant::now();
            if self.reserve_path().exists() {
                look.seen = true;
                look.missing_since = None;
            } else if look.seen && look.missing_since.is_none() {
                look.missing_since = Some(look.at);
            }
        }
        look.missing_since
    }

    /// Whether the file at the path is still the one opened (and, for a
    /// write, writable); one `stat`.
    pub(super) fn check(&self, write: bool) -> Result<(), StoreFault> {
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
    pub(super) fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::Relaxed)
            || self.reserve_missing_since().is_some()
    }

    /// As [`DbFile::keep_reserve`], but not within [`RESERVE_GRACE`] of
    /// seeing another process give the reserve back (the writer's retries
    /// while the disk is full; a run that starts takes it back at once).
    pub(super) fn retake_reserve(&self) -> bool {
        let given_back = self
            .look
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .missing_since;
        if given_back.is_some_and(|since| since.elapsed() < RESERVE_GRACE) {
            return false;
        }
        self.keep_reserve()
    }

    /// Makes the reserve if missing; true when it is there (the disk has
    /// room again, if it was full).
    pub(super) fn keep_reserve(&self) -> bool {
        let path = self.reserve_path();
        // Written, not sized: a sparse file would hold no space back.
        let kept = path.exists() || std::fs::write(&path, vec![0u8; RESERVE_BYTES]).is_ok();
        if kept {
            self.full.store(false, std::sync::atomic::Ordering::Relaxed);
            let mut look = self.look.lock().unwrap_or_else(|p| p.into_inner());
            look.seen = true;
            look.missing_since = None;
        } else {
            let _ = std::fs::remove_file(&path);
        }
        kept
    }

    pub(super) fn release_reserve(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::{self, Queued, Reply};
    use crate::store::{EventKind, MetricValue, Store, Write};
    use rl_runner::RunStatus;
    use serde_json::Value;
    use std::sync::mpsc;
    use std::time::Duration;
    use tokio::sync::broadcast;

    fn spec() -> Value {
        serde_json::json!({"env": {"id": "CartPole-v1"}, "agent": {"id": "dqn"}})
    }

    #[test]
    fn a_reserve_another_process_gave_back_holds_this_one_back_too() {
        use crate::store::Backend;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rl-lab.db");
        // The server and one of its local workers, on one file.
        let server = Sqlite::open(&path, true).unwrap();
        let worker = Sqlite::open(&path, true).unwrap();
        assert!(server.keep_reserve() && worker.keep_reserve());
        assert!(!server.disk_full());
        worker.release_reserve();
        assert!(worker.disk_full());
        std::thread::sleep(RESERVE_LOOK_PERIOD + Duration::from_millis(50));
        assert!(server.disk_full(), "the server goes on writing metrics");
        assert!(
            !server.retake_reserve(),
            "the server's writer takes the space back before the worker recorded its run's end"
        );
        std::thread::sleep(RESERVE_GRACE);
        assert!(server.retake_reserve());
        assert!(!server.disk_full());
        std::thread::sleep(RESERVE_LOOK_PERIOD + Duration::from_millis(50));
        assert!(worker.keep_reserve() && !worker.disk_full());
        // A store of one process's own knows what it gave back itself.
        let alone = Sqlite::open(&dir.path().join("alone.db"), false).unwrap();
        assert!(alone.keep_reserve());
        std::fs::remove_file(dir.path().join("alone.reserve")).unwrap();
        std::thread::sleep(RESERVE_LOOK_PERIOD + Duration::from_millis(50));
        assert!(!alone.disk_full());
    }

    /// A second connection to the store's database, to break it.
    fn sabotage(dir: &Path, sql: &str) {
        Connection::open(dir.join("rl-lab.db"))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
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
            holder: None,
            status: RunStatus::Running,
            error: None,
            summary: None,
        };
        let mut batch: Vec<Queued> = [metric, status]
            .into_iter()
            .map(|write| Queued { write, reply: None })
            .collect();
        let mut conn = Connection::open(dir.path().join("rl-lab.db")).unwrap();
        let (applied, events) = writes::commit(&mut conn, &mut batch).unwrap();
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
        let backend = Sqlite {
            path: path.clone(),
            file: DbFile::open(&path, false).unwrap(),
            writer: Mutex::new(conn),
            readers: reads::ReaderPool::default(),
            shared: false,
        };
        let (queue, writes) = mpsc::sync_channel(16);
        let (publish, _) = broadcast::channel(16);
        std::thread::scope(|scope| {
            scope.spawn(|| writer::writer_loop(&backend, writes, Some(publish)));
            // An end with more to say than the pages left can hold.
            let end = |status| Write::Status {
                run_id: id.clone(),
                holder: None,
                status,
                error: Some("e".repeat(20_000)),
                summary: None,
            };
            let (to, answer) = mpsc::channel();
            let reply = Some(Reply::Applied(to));
            queue
                .send(Queued {
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
