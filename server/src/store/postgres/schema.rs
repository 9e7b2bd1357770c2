//! The PostgreSQL schema and its migrations.
//!
//! The tables are SQLite's (`../sqlite/schema.rs`) as they stand after its
//! migrations, in PostgreSQL's types; JSON stays text, so that a spec or a
//! record reads back byte for byte as it was stored. `metrics` has an `id`
//! where SQLite has its `rowid`: the insertion order that breaks ties
//! between rows of one step. The rollups have no triggers: the writer keeps
//! them (`writes.rs`).

use tokio_postgres::Client;

/// The migrations, one per schema version; a database at version `v` runs
/// those past `v`, each in the one transaction that records it.
const MIGRATIONS: &[&str] = &[
    // 1: runs, events (metric, log and status in one id sequence, so that
    // server-sent events resume from one `Last-Event-ID`), metric rows and
    // their rollups (see `ROLLUP_SHIFTS`), sweeps.
    "CREATE TABLE runs (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        steps BIGINT NOT NULL DEFAULT 0,
        episodes BIGINT NOT NULL DEFAULT 0,
        summary TEXT,
        error TEXT
    );
    CREATE INDEX runs_status ON runs (status, seq);
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        step BIGINT,
        data TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX events_run ON events (run_id, id);
    CREATE TABLE metrics (
        id BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        step BIGINT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        wall_seconds DOUBLE PRECISION NOT NULL,
        event_id BIGINT NOT NULL,
        count BIGINT,
        min DOUBLE PRECISION,
        max DOUBLE PRECISION,
        last DOUBLE PRECISION
    );
    CREATE INDEX metrics_run_name ON metrics (run_id, name, step, id);
    CREATE TABLE metric_rollups (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        shift INTEGER NOT NULL,
        bucket BIGINT NOT NULL,
        count BIGINT NOT NULL,
        sum DOUBLE PRECISION NOT NULL,
        min DOUBLE PRECISION NOT NULL,
        max DOUBLE PRECISION NOT NULL,
        last_step BIGINT NOT NULL,
        last_wall_seconds DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, name, shift, bucket)
    );
    CREATE TABLE sweeps (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        configurations TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE sweep_runs (
        sweep_id TEXT NOT NULL,
        configuration BIGINT NOT NULL,
        run_id TEXT NOT NULL UNIQUE,
        PRIMARY KEY (sweep_id, configuration, run_id)
    );",
    // 2: the queue that workers claim from, as SQLite's migration 5: the
    // holding worker and its lease (Unix seconds, the database's clock),
    // claims so far, a cancel asked of the worker, whether the env is
    // `external`, a running run's live figures; and the workers with their
    // last heartbeat.
    "ALTER TABLE runs ADD COLUMN worker TEXT;
    ALTER TABLE runs ADD COLUMN lease_until DOUBLE PRECISION;
    ALTER TABLE runs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE runs ADD COLUMN external BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE runs ADD COLUMN steps_per_second DOUBLE PRECISION;
    ALTER TABLE runs ADD COLUMN recent_mean_return DOUBLE PRECISION;
    UPDATE runs SET external = true WHERE spec::jsonb #>> '{env,id}' = 'external';
    CREATE INDEX runs_worker ON runs (worker, status);
    CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        slots BIGINT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        heartbeat_at DOUBLE PRECISION NOT NULL
    );",
];

/// The advisory lock that migrations hold, so that several servers (or
/// workers) starting on one new database migrate it once.
const MIGRATION_LOCK: i64 = 0x726c_6c61_6201;

/// The schema version this build writes.
pub(super) const VERSION: usize = MIGRATIONS.len();

/// Brings the database up to the newest schema, in one transaction.
pub(super) async fn migrate(client: &mut Client) -> Result<(), super::StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS rl_lab_schema (version INTEGER NOT NULL);
         INSERT INTO rl_lab_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM rl_lab_schema);",
    )
    .await?;
    let version: i32 = tx
        .query_one("SELECT version FROM rl_lab_schema", &[])
        .await?
        .get(0);
    let version = usize::try_from(version).unwrap_or(0);
    if version > VERSION {
        return Err(super::StoreError::Corrupt(format!(
            "the database's schema is version {version}, newer than this rl-lab's {VERSION}: \
             upgrade rl-lab"
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(migration).await?;
        tx.execute(
            "UPDATE rl_lab_schema SET version = $1",
            &[&(index as i32 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
