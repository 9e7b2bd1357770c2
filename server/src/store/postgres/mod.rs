//! The PostgreSQL backend, for a store that several machines share
//! (`rl-lab serve --store postgres://USER@HOST:PORT/DB`).
//!
//! Connections come from a `deadpool-postgres` pool driven by a small
//! runtime of the backend's own, so that the store keeps the synchronous
//! interface the run threads and the SQLite backend have. The tables are
//! SQLite's, in PostgreSQL's types ([`schema`]). The rollups that SQLite's
//! triggers keep are kept here by the writer: a batch's metric rows are
//! summed per bucket in memory and upserted once per bucket, so a batch of
//! a thousand records costs a handful of statements, not thousands.

mod schema;
mod writes;

use super::downsample::{SeriesRead, Span, step_in_sql};
use super::rows::{
    POINT_COLUMNS, RUN_COLUMNS, RawRun, RawSweep, SWEEP_COLUMNS, parse_run, parse_status,
    parse_sweep,
};
use super::{
    Backend, BatchFailure, Committed, Event, EventKind, MetricPoint, Queued, RunRow, StoreError,
    StoreResult, SweepRow, SweepWithRuns, WorkerInfo, WorkerRow,
};
use crate::own_runtime::OwnRuntime;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rl_runner::RunStatus;
use std::fmt;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::Row;

/// The environment variable naming a file that holds the password: how
/// Kubernetes and Slurm hand out secrets.
pub const PASSWORD_FILE_VAR: &str = "RL_LAB_STORE_PASSWORD_FILE";

/// The environment variable that holds the password, as for `psql`.
pub const PASSWORD_VAR: &str = "PGPASSWORD";

/// The channel a queued run is announced on (its id as the payload):
/// idle workers `LISTEN` on it rather than poll.
pub const QUEUE_CHANNEL: &str = "rl_lab_queue";

/// The channel a cancel is announced on (the run's id as the payload), so
/// that its worker hears of it at once.
pub const CANCEL_CHANNEL: &str = "rl_lab_cancel";

/// Most connections one process holds: the writer's, the API's reads and
/// the run threads' own reads (besides the one that listens).
pub const POOL_SIZE: usize = 16;

/// Most connections a worker with `slots` run threads holds (besides the
/// one that listens): its writer, its heartbeat, and one read per run.
pub fn worker_pool_size(slots: usize) -> usize {
    (2 + slots).min(POOL_SIZE)
}

/// How long a connection may take to open, and a caller to wait for a free
/// one, before the store reports the database unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a PostgreSQL store is, and who logs in: `postgres://USER@HOST[:PORT]/DB`.
/// It holds no password, so it can be logged and shown as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The role to log in as.
    pub user: String,
    /// The server's host name or address.
    pub host: String,
    /// Its port (5432 unless given).
    pub port: u16,
    /// The database.
    pub dbname: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// Parses a store URL. A password in it is refused, without being
    /// repeated: a command line shows in process listings and logs.
    fn from_str(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| "expected postgres://USER@HOST[:PORT]/DB".to_string())?;
        let (authority, dbname) = rest
            .split_once('/')
            .ok_or_else(|| "expected postgres://USER@HOST[:PORT]/DB: no database".to_string())?;
        let (user, address) = authority
            .rsplit_once('@')
            .ok_or_else(|| "expected postgres://USER@HOST[:PORT]/DB: no user".to_string())?;
        if user.contains(':') {
            return Err(format!(
                "the URL holds a password, which would show in process listings and logs; \
                 give it in {PASSWORD_VAR} or in a file named by {PASSWORD_FILE_VAR}"
            ));
        }
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || address.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("port '{port}' is not a number from 1 to 65535"))?;
                (host, port)
            }
            _ => (address, 5432),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if user.is_empty() || host.is_empty() || dbname.is_empty() || port == 0 {
            return Err("expected postgres://USER@HOST[:PORT]/DB, each part non-empty".into());
        }
        if dbname.contains(['/', '?', '#']) {
            // Not repeated: options may hold a password.
            return Err(
                "the database name is followed by '/', '?' or '#': connection options are not taken from the URL"
                    .into(),
            );
        }
        Ok(Target {
            user: user.into(),
            host: host.into(),
            port,
            dbname: dbname.into(),
        })
    }
}

/// A database password. Its `Debug` does not show it, so it cannot reach
/// a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// The password from the file named by [`PASSWORD_FILE_VAR`] (its first
    /// line), else from [`PASSWORD_VAR`]; none when neither is set (a server
    /// that trusts the connection). The error names the variable.
    pub fn from_env() -> Result<Option<Password>, String> {
        if let Some(path) = std::env::var_os(PASSWORD_FILE_VAR).filter(|p| !p.is_empty()) {
            let path = std::path::PathBuf::from(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{PASSWORD_FILE_VAR}: cannot read {}: {e}", path.display()))?;
            let line = text.lines().next().unwrap_or_default();
            return Ok(Some(Password(line.to_string())));
        }
        Ok(std::env::var(PASSWORD_VAR)
            .ok()
            .filter(|p| !p.is_empty())
            .map(Password))
    }
}

/// What a PostgreSQL error says: the server's message for a database
/// error (without tokio-postgres's bare `db error`), else the error and its
/// cause.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => db.message().to_string(),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => e.to_string(),
    }
}

/// A pool's failure as the store's: PostgreSQL's own error when it has one.
fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
        deadpool_postgres::PoolError::Timeout(_) => StoreError::Pool(format!(
            "no connection within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
        other => StoreError::Pool(other.to_string()),
    }
}

/// The PostgreSQL backend.
pub struct Postgres {
    pool: Pool,
    /// For the connection that listens for queued runs (a pool's
    /// connections are lent out and back, so none can hold a `LISTEN`).
    config: tokio_postgres::Config,
    runtime: OwnRuntime,
}

impl Postgres {
    /// Connects to `target`, holding at most `pool_size` connections (and
    /// one that listens), and brings its schema up to date.
    pub fn connect(
        target: &Target,
        password: Option<&Password>,
        pool_size: usize,
    ) -> StoreResult<Postgres> {
        let runtime = OwnRuntime::new("store-postgres").map_err(StoreError::Thread)?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(&target.user)
            .host(&target.host)
            .port(target.port)
            .dbname(&target.dbname)
            .application_name("rl-lab")
            .connect_timeout(CONNECT_TIMEOUT)
            // A process frozen or cut off mid-batch must not hold the
            // events lock (every process's writes wait on it) for longer
            // than this: the server ends its session, and its batch.
            .options("-c idle_in_transaction_session_timeout=30s")
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(password) = password {
            config.password(&password.0);
        }
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let backend = Postgres {
            pool,
            config,
            runtime,
        };
        backend
            .block(|| async {
                let mut client = backend.client().await?;
                schema::migrate(&mut client).await
            })
            .map_err(|e| {
                let cause = match e {
                    StoreError::Postgres(e) => describe(&e),
                    other => other.to_string(),
                };
                StoreError::Open {
                    target: target.to_string(),
                    cause,
                }
            })?;
        Ok(backend)
    }

    /// Runs the future `work` makes on the backend's runtime and waits
    /// for it.
    fn block<F: Future>(&self, work: impl FnOnce() -> F + Send) -> F::Output
    where
        F::Output: Send,
    {
        self.runtime.block(work)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `read` with a pooled connection.
    fn read<T: Send>(
        &self,
        read: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> StoreResult<T> + Send,
    ) -> StoreResult<T> {
        self.block(|| async {
            let mut client = self.client().await?;
            read(&mut client).await
        })
    }
}

/// A read-only transaction that sees one snapshot, for reads made of
/// several queries, whatever the writers commit meanwhile.
async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

fn run_row(row: &Row) -> RawRun {
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get(7),
        row.get(8),
        row.get(9),
        row.get(10),
        row.get(11),
        row.get(12),
        row.get(13),
        row.get(14),
    )
}

fn sweep_row(row: &Row) -> RawSweep {
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

fn point_row(row: &Row) -> MetricPoint {
    MetricPoint {
        step: row.get::<_, i64>(0) as u64,
        value: row.get(1),
        wall_seconds: row.get(2),
        count: row.get::<_, i64>(3) as u64,
        min: row.get(4),
        max: row.get(5),
    }
}

/// The rows of a run's metric `name` with `after < step <= through`, in
/// step order, at most `limit`.
async fn metric_rows(
    client: &impl tokio_postgres::GenericClient,
    run_id: &str,
    name: &str,
    (after, through): (i64, i64),
    limit: usize,
) -> StoreResult<Vec<MetricPoint>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &format!(
                "SELECT {POINT_COLUMNS} FROM metrics
                 WHERE run_id = $1 AND name = $2 AND step > $3 AND step <= $4
                 ORDER BY step, id LIMIT $5"
            ),
            &[&run_id, &name, &after, &through, &limit],
        )
        .await?;
    Ok(rows.iter().map(point_row).collect())
}

impl Backend for Postgres {
    fn shared(&self) -> bool {
        true
    }

    fn on_queued(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let wake: std::sync::Arc<dyn Fn() + Send + Sync> = wake.into();
        let config = self.config.clone();
        // Until the backend is dropped (its runtime with it): a lost
        // connection is made again, and wakes the workers once, since a
        // notice may have been missed meanwhile.
        self.runtime.spawn(async move {
            loop {
                if let Ok((client, mut connection)) = config.connect(tokio_postgres::NoTls).await {
                    let heard = std::sync::Arc::clone(&wake);
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let driver = tokio::spawn(async move {
                        use futures_util::StreamExt;
                        while let Some(Ok(message)) = messages.next().await {
                            if let tokio_postgres::AsyncMessage::Notification(_) = message {
                                heard();
                            }
                        }
                    });
                    if client
                        .batch_execute(&format!("LISTEN {QUEUE_CHANNEL}"))
                        .await
                        .is_ok()
                    {
                        wake();
                        let _ = driver.await;
                    } else {
                        driver.abort();
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    fn commit(&self, batch: &mut [Queued]) -> Result<Committed, BatchFailure> {
        let size = batch.len();
        self.block(|| async {
            let mut client = self.client().await.map_err(|e| BatchFailure {
                write: format!("commit a batch of {size} writes"),
                cause: e.to_string(),
                batch: size,
                fault: None,
            })?;
            writes::commit(&mut client, batch).await
        })
    }

    fn run(&self, run_id: &str) -> StoreResult<Option<RunRow>> {
        self.read(async |client| {
            let row = client
                .query_opt(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
                    &[&run_id],
                )
                .await?;
            row.map(|row| parse_run(run_row(&row))).transpose()
        })
    }

    fn runs(
        &self,
        status: Option<RunStatus>,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RunRow>> {
        let status = status.map(RunStatus::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(async |client| {
            let rows = client
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs
                         WHERE ($1::text IS NULL OR status = $1)
                           AND ($2::bigint IS NULL OR seq < $2)
                         ORDER BY seq DESC LIMIT $3"
                    ),
                    &[&status, &before, &limit],
                )
                .await?;
            rows.iter().map(|row| parse_run(run_row(row))).collect()
        })
    }

    fn sweeps(&self, limit: usize) -> StoreResult<Vec<SweepRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(async |client| {
            let rows = client
                .query(
                    &format!("SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY seq DESC LIMIT $1"),
                    &[&limit],
                )
                .await?;
            rows.iter().map(|row| parse_sweep(sweep_row(row))).collect()
        })
    }

    fn sweep(&self, sweep_id: &str) -> StoreResult<Option<SweepWithRuns>> {
        self.read(async |client| {
            let tx = snapshot(client).await?;
            let Some(sweep) = tx
                .query_opt(
                    &format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = $1"),
                    &[&sweep_id],
                )
                .await?
            else {
                return Ok(None);
            };
            let columns = RUN_COLUMNS
                .split(", ")
                .map(|c| format!("runs.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = tx
                .query(
                    &format!(
                        "SELECT {columns}, sweep_runs.configuration FROM sweep_runs
                         JOIN runs ON runs.id = sweep_runs.run_id
                         WHERE sweep_runs.sweep_id = $1 ORDER BY runs.seq"
                    ),
                    &[&sweep_id],
                )
                .await?;
            let runs = rows
                .iter()
                .map(|row| {
                    let configuration: i64 = row.get(15);
                    Ok((configuration as usize, parse_run(run_row(row))?))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some((parse_sweep(sweep_row(&sweep))?, runs)))
        })
    }

    fn runs_in_status(&self, status: RunStatus) -> StoreResult<Vec<String>> {
        self.read(async |client| {
            let rows = client
                .query(
                    "SELECT id FROM runs WHERE status = $1 ORDER BY seq",
                    &[&status.as_str()],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn status_counts(&self) -> StoreResult<Vec<(RunStatus, u64)>> {
        self.read(async |client| {
            let rows = client
                .query("SELECT status, count(*) FROM runs GROUP BY status", &[])
                .await?;
            rows.iter()
                .map(|row| {
                    let count: i64 = row.get(1);
                    Ok((parse_status(row.get(0))?, count as u64))
                })
                .collect()
        })
    }

    fn latest_metrics(&self, run_id: &str) -> StoreResult<Vec<(String, u64, f64)>> {
        self.read(async |client| {
            let rows = client
                .query(
                    "SELECT DISTINCT ON (name) name, step, value FROM metrics
                     WHERE run_id = $1 ORDER BY name, id DESC",
                    &[&run_id],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| (row.get(0), row.get::<_, i64>(1) as u64, row.get(2)))
                .collect())
        })
    }

    fn metric_series(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<MetricPoint>> {
        let after = after_step.map_or(-1, step_in_sql);
        self.read(async |client| {
            metric_rows(&***client, run_id, name, (after, i64::MAX), limit).await
        })
    }

    fn metric_series_downsampled(
        &self,
        run_id: &str,
        name: &str,
        after_step: Option<u64>,
        max_points: usize,
    ) -> StoreResult<Vec<MetricPoint>> {
        let after = after_step.map_or(-1, step_in_sql);
        self.read(async |client| {
            let tx = snapshot(client).await?;
            let rows = metric_rows(&*tx, run_id, name, (after, i64::MAX), max_points + 1).await?;
            if rows.len() <= max_points {
                return Ok(rows);
            }
            let last = tx
                .query_one(
                    &format!(
                        "SELECT {POINT_COLUMNS} FROM metrics
                         WHERE run_id = $1 AND name = $2 AND step > $3
                         ORDER BY step DESC, id DESC LIMIT 1"
                    ),
                    &[&run_id, &name, &after],
                )
                .await?;
            let (mut read, spans) = SeriesRead::plan(rows[0], point_row(&last), max_points);
            for span in spans {
                let points = match span {
                    Span::Rows { after, through } => {
                        metric_rows(&*tx, run_id, name, (after, through), usize::MAX).await?
                    }
                    Span::Rollups {
                        shift,
                        after,
                        before,
                    } => tx
                        .query(
                            "SELECT last_step, sum / count, last_wall_seconds, count, min, max
                             FROM metric_rollups
                             WHERE run_id = $1 AND name = $2 AND shift = $3
                               AND bucket > $4 AND bucket < $5
                             ORDER BY bucket",
                            &[&run_id, &name, &(shift as i32), &after, &before],
                        )
                        .await?
                        .iter()
                        .map(point_row)
                        .collect(),
                };
                for point in points {
                    read.push(point);
                }
            }
            Ok(read.finish())
        })
    }

    fn metric_names(&self, run_id: &str) -> StoreResult<Vec<String>> {
        self.read(async |client| {
            let rows = client
                .query(
                    "SELECT DISTINCT name FROM metrics WHERE run_id = $1 ORDER BY name",
                    &[&run_id],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn cancel_requests(&self, worker: &str) -> StoreResult<Vec<String>> {
        self.read(async |client| {
            let rows = client
                .query(
                    "SELECT id FROM runs
                     WHERE worker = $1 AND status = 'running' AND cancel_requested",
                    &[&worker],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn workers(&self) -> StoreResult<Vec<WorkerRow>> {
        self.read(async |client| {
            let rows = client
                .query(
                    "SELECT name, host, pid, slots, started_at, heartbeat_at FROM workers
                     ORDER BY heartbeat_at DESC",
                    &[],
                )
                .await?;
            let mut workers: Vec<WorkerRow> = rows
                .iter()
                .map(|row| WorkerRow {
                    info: WorkerInfo {
                        name: row.get(0),
                        host: row.get(1),
                        pid: row.get::<_, i64>(2) as u32,
                        slots: row.get::<_, i64>(3) as u32,
                        started_at: row.get(4),
                    },
                    heartbeat_at: row.get(5),
                    runs: Vec::new(),
                })
                .collect();
            let held = client
                .query(
                    "SELECT worker, id FROM runs WHERE status = 'running' AND worker IS NOT NULL
                     ORDER BY seq",
                    &[],
                )
                .await?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            Ok(super::attach_runs(&mut workers, held))
        })
    }

    fn last_event_id(&self) -> StoreResult<i64> {
        self.read(async |client| {
            let row = client
                .query_one("SELECT coalesce(max(id), 0) FROM events", &[])
                .await?;
            Ok(row.get(0))
        })
    }

    fn events_since(
        &self,
        after: i64,
        run_ids: Option<&[String]>,
        kinds: &[EventKind],
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(async |client| {
            let rows = client
                .query(
                    "SELECT id, run_id, kind, data FROM events
                     WHERE id > $1 AND kind = ANY($2)
                       AND ($3::text[] IS NULL OR run_id = ANY($3))
                     ORDER BY id LIMIT $4",
                    &[&after, &kinds, &run_ids, &limit],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Event {
                        id: row.get(0),
                        run_id: row.get(1),
                        kind: EventKind::parse(row.get(2))?,
                        data: row.get(3),
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_url_names_user_host_port_and_database_and_never_a_password() {
        let target: Target = "postgres://lab@db.example.org:6543/rl".parse().unwrap();
        assert_eq!(
            target,
            Target {
                user: "lab".into(),
                host: "db.example.org".into(),
                port: 6543,
                dbname: "rl".into()
            }
        );
        assert_eq!(target.to_string(), "postgres://lab@db.example.org:6543/rl");
        let default_port: Target = "postgresql://lab@10.0.0.5/rl".parse().unwrap();
        assert_eq!(default_port.port, 5432);
        let v6: Target = "postgres://lab@[::1]:5433/rl".parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5433));
        let refused = "postgres://lab:hunter2@db/rl"
            .parse::<Target>()
            .unwrap_err();
        assert!(refused.contains("password"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
        for bad in [
            "mysql://lab@db/rl",
            "postgres://db/rl",
            "postgres://lab@db",
            "postgres://lab@db:99999/rl",
            "postgres://lab@db/rl?sslmode=disable",
            "postgres://lab@db/rl?password=hunter2",
            "postgres://@db/rl",
        ] {
            let refused = bad.parse::<Target>().unwrap_err();
            assert!(!refused.contains("hunter2"), "{refused}");
        }
    }
}
