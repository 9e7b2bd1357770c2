//! The store's test suite, run against both backends: SQLite in a
//! temporary folder, and a real PostgreSQL started by the test (a database
//! of its own per case). Each case uses the store's public interface only,
//! so what it asserts holds for whichever backend a server is given.

mod support;

use rl_runner::RunStatus;
use rl_server::store::postgres::{Password, Target};
use rl_server::store::{
    EventKind, MetricPoint, MetricValue, StatusChange, Store, StoreLocation, WindowColumns, Write,
    downsample,
};
use serde_json::json;
use support::postgres::Postgres;

/// Runs SQL on a store's database behind its back (to break it).
type Sabotage = Box<dyn Fn(&str)>;

/// A way to make a fresh, empty store, with its [`Sabotage`].
trait Backend {
    fn fresh(&self, case: &str) -> (Store, Sabotage);
}

/// A case of the suite.
type Case = fn(&dyn Backend);

struct Sqlite {
    folder: tempfile::TempDir,
}

impl Backend for Sqlite {
    fn fresh(&self, case: &str) -> (Store, Sabotage) {
        let path = self.folder.path().join(format!("{case}.db"));
        let store = Store::open_at(&StoreLocation::Sqlite(path.clone())).unwrap();
        let sabotage = move |sql: &str| {
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(sql)
                .unwrap()
        };
        (store, Box::new(sabotage))
    }
}

const PASSWORD: &str = "store suite";

struct Pg {
    cluster: Postgres,
}

impl Pg {
    fn psql(&self, database: &str, sql: &str) {
        let config = format!(
            "host=127.0.0.1 port={} user={} password='{PASSWORD}' dbname={database}",
            self.cluster.port,
            support::postgres::USER
        );
        let mut client = postgres_client(&config);
        client(sql);
    }
}

/// A blocking SQL runner over tokio-postgres, for the suite's own setup.
fn postgres_client(config: &str) -> impl FnMut(&str) + use<> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, connection) = runtime
        .block_on(tokio_postgres::connect(config, tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(connection);
    move |sql: &str| runtime.block_on(client.batch_execute(sql)).unwrap()
}

impl Backend for Pg {
    fn fresh(&self, case: &str) -> (Store, Sabotage) {
        self.psql("postgres", &format!("CREATE DATABASE {case}"));
        let target: Target = self.cluster.url(case).parse().unwrap();
        let location = StoreLocation::Postgres {
            target,
            password: Some(Password(PASSWORD.into())),
        };
        let store = Store::open_at(&location).unwrap();
        let config = format!(
            "host=127.0.0.1 port={} user={} password='{PASSWORD}' dbname={case}",
            self.cluster.port,
            support::postgres::USER
        );
        let client = std::sync::Mutex::new(postgres_client(&config));
        let sabotage = move |sql: &str| (client.lock().unwrap())(sql);
        (store, Box::new(sabotage))
    }
}

fn spec() -> serde_json::Value {
    json!({"env": {"id": "CartPole-v1"}, "agent": {"id": "dqn"}})
}

/// One stored row: (step, value, window of (count, min, max) or none).
type Row = (u64, f64, Option<(u64, f64, f64)>);

/// A series with windows, repeated steps and spikes, `spacing` steps
/// apart from `start`.
fn rows(n: u64, start: u64, spacing: u64) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let step = start + i * spacing + i % 3 / 2;
            let value = (i as f64 * 0.37).sin() * 10.0;
            let window = (i % 5 == 0).then(|| (3 + i % 4, value - 40.0, value + 90.0));
            (step, value, window)
        })
        .collect()
}

/// Records `rows` of run `run_id`'s metric `name` as a run would, one
/// record per row, and waits for the commit.
fn record(store: &Store, run_id: &str, name: &'static str, rows: &[Row]) {
    for &(step, value, window) in rows {
        store.send(Write::Metric {
            run_id: run_id.into(),
            record: json!({"kind": "scalar", "name": name, "step": step, "value": value})
                .to_string(),
            step,
            values: vec![MetricValue {
                name: name.into(),
                step,
                value,
                wall_seconds: step as f64 / 1000.0,
                window: window.map(|(count, min, max)| WindowColumns {
                    count,
                    min,
                    max,
                    last: value,
                }),
            }],
        });
    }
    store.flush();
}

fn statuses_round_trip(backend: &dyn Backend) {
    let (store, _) = backend.fresh("statuses");
    let id = store.insert_run(spec()).unwrap();
    assert_eq!(store.run(&id).unwrap().unwrap().spec, spec());
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
        .iter()
        .map(|e| {
            serde_json::from_str::<StatusChange>(&e.data)
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(statuses[0], RunStatus::Queued);
    assert_eq!(statuses[1..], RunStatus::ALL);
    // An end keeps its error and summary; running again clears them.
    store
        .set_status(
            &id,
            RunStatus::Failed,
            Some("diverged".into()),
            Some(json!({"steps": 5})),
        )
        .unwrap();
    let row = store.run(&id).unwrap().unwrap();
    assert_eq!(row.error.as_deref(), Some("diverged"));
    assert_eq!(row.summary, Some(json!({"steps": 5})));
    assert!(row.finished_at.is_some());
    store
        .set_status(&id, RunStatus::Running, None, None)
        .unwrap();
    let row = store.run(&id).unwrap().unwrap();
    assert_eq!(
        (row.error, row.summary, row.finished_at),
        (None, None, None)
    );
    assert!(row.started_at.is_some());
    assert!(store.run("run-999").unwrap().is_none());
}

fn runs_page_newest_first(backend: &dyn Backend) {
    let (store, _) = backend.fresh("pages");
    let ids: Vec<String> = (0..5)
        .map(|seed| store.insert_run(json!({"seed": seed})).unwrap())
        .collect();
    assert_eq!(ids, ["run-1", "run-2", "run-3", "run-4", "run-5"]);
    store
        .set_status(&ids[1], RunStatus::Completed, None, None)
        .unwrap();
    store
        .set_status(&ids[2], RunStatus::Running, None, None)
        .unwrap();
    store.send(Write::Progress {
        run_id: ids[2].clone(),
        steps: 1234,
        episodes: 7,
        steps_per_second: Some(5000.5),
        recent_mean_return: Some(-13.25),
    });
    store.flush();
    let page: Vec<String> = store
        .runs(None, None, 2)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page, ["run-5", "run-4"]);
    let cursor = store.runs(None, None, 2).unwrap()[1].seq;
    let next: Vec<String> = store
        .runs(None, Some(cursor), 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(next, ["run-3", "run-2", "run-1"]);
    let done = store.runs(Some(RunStatus::Completed), None, 10).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, "run-2");
    let progressed = store.run("run-3").unwrap().unwrap();
    assert_eq!((progressed.steps, progressed.episodes), (1234, 7));
    assert_eq!(
        (progressed.steps_per_second, progressed.recent_mean_return),
        (Some(5000.5), Some(-13.25))
    );
    // An ended run has no live figures left.
    store
        .set_status("run-3", RunStatus::Cancelled, None, None)
        .unwrap();
    let ended = store.run("run-3").unwrap().unwrap();
    assert_eq!(
        (ended.steps_per_second, ended.recent_mean_return),
        (None, None)
    );
    assert_eq!(ended.steps, 1234);
    let mut counts = store.status_counts().unwrap();
    counts.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        counts,
        [
            (RunStatus::Cancelled, 1),
            (RunStatus::Completed, 1),
            (RunStatus::Queued, 3)
        ]
    );
    assert_eq!(
        store.runs_in_status(RunStatus::Queued).unwrap(),
        ["run-1", "run-4", "run-5"]
    );
}

fn sweeps_store_their_runs_together(backend: &dyn Backend) {
    let (store, _) = backend.fresh("sweeps");
    let lone = store.insert_run(spec()).unwrap();
    let configurations = json!([{"agent.config.alpha": 0.1}, {"agent.config.alpha": 0.3}]);
    let runs = vec![
        (0, json!({"seed": 0})),
        (0, json!({"seed": 1})),
        (1, json!({"seed": 0})),
    ];
    let (sweep, ids) = store
        .insert_sweep(
            "alpha".into(),
            json!({"name": "alpha"}),
            configurations,
            runs,
        )
        .unwrap();
    assert_eq!(sweep, "sweep-1");
    assert_eq!(ids, ["run-2", "run-3", "run-4"]);
    let (row, members) = store.sweep(&sweep).unwrap().unwrap();
    assert_eq!(row.name, "alpha");
    assert_eq!(row.configurations.len(), 2);
    let members: Vec<(usize, String)> = members.into_iter().map(|(c, r)| (c, r.id)).collect();
    assert_eq!(
        members,
        [
            (0, "run-2".into()),
            (0, "run-3".into()),
            (1, "run-4".into())
        ]
    );
    assert_eq!(store.sweeps(10).unwrap().len(), 1);
    assert!(store.sweep("sweep-2").unwrap().is_none());
    // A deleted run leaves its sweep.
    store.delete_run("run-3").unwrap();
    let (_, members) = store.sweep(&sweep).unwrap().unwrap();
    assert_eq!(members.len(), 2);
    assert!(store.run(&lone).unwrap().is_some());
}

fn metrics_and_events_read_back(backend: &dyn Backend) {
    let (store, _) = backend.fresh("metrics");
    let live = store.subscribe();
    let a = store.insert_run(spec()).unwrap();
    let b = store.insert_run(spec()).unwrap();
    record(&store, &a, "train/loss", &rows(50, 0, 10));
    record(&store, &b, "rollout/episode_return", &rows(30, 5, 3));
    record(&store, &a, "rollout/episode_return", &rows(20, 1, 7));
    store.send(Write::Log {
        run_id: a.clone(),
        line: json!({"message": "hello"}),
    });
    store.flush();
    assert_eq!(
        store.metric_names(&a).unwrap(),
        ["rollout/episode_return", "train/loss"]
    );
    let latest = store.latest_metrics(&a).unwrap();
    let expected_loss = rows(50, 0, 10)[49];
    let expected_return = rows(20, 1, 7)[19];
    assert_eq!(
        latest,
        [
            (
                "rollout/episode_return".to_string(),
                expected_return.0,
                expected_return.1
            ),
            ("train/loss".to_string(), expected_loss.0, expected_loss.1),
        ]
    );
    let series = store.metric_series(&a, "train/loss", None, 1000).unwrap();
    assert_eq!(series.len(), 50);
    assert!(series.windows(2).all(|w| w[0].step <= w[1].step));
    let windowed = series[5];
    assert_eq!(
        (windowed.count, windowed.min),
        (3 + 5 % 4, windowed.value - 40.0)
    );
    let after = store
        .metric_series(&a, "train/loss", Some(250), 10)
        .unwrap();
    assert_eq!(after.len(), 10);
    assert!(after[0].step > 250);
    // Events: one id sequence over the store, in commit order; each
    // metric event carries its record as stored.
    let all = store
        .events_since(0, None, &EventKind::ALL, 10_000)
        .unwrap();
    assert_eq!(all.len(), 2 + 50 + 30 + 20 + 1);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(store.last_event_id().unwrap(), all.last().unwrap().id);
    let of_b = store
        .events_since(
            0,
            Some(std::slice::from_ref(&b)),
            &[EventKind::Metric],
            10_000,
        )
        .unwrap();
    assert_eq!(of_b.len(), 30);
    let first: serde_json::Value = serde_json::from_str(&of_b[0].data).unwrap();
    assert_eq!(first["name"], "rollout/episode_return");
    assert_eq!(first["step"], 5);
    let logs = store.events(&a, 0, Some(EventKind::Log), 10).unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&logs[0].data).unwrap(),
        json!({"message": "hello"})
    );
    let later = store.events(&a, all[60].id, None, 5).unwrap();
    assert!(later.iter().all(|e| e.id > all[60].id && e.run_id == a));
    // Subscribers get every stored event, with its id, in order (from a
    // shared database's tail, within moments).
    let mut live = live;
    let mut heard = Vec::new();
    let began = std::time::Instant::now();
    while heard.len() < all.len() && began.elapsed() < std::time::Duration::from_secs(10) {
        match live.try_recv() {
            Ok(event) => heard.push(event.id),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    assert_eq!(heard, all.iter().map(|e| e.id).collect::<Vec<_>>());
}

/// Asserts the store's downsampled read is the reference downsampling
/// of the stored rows.
fn assert_reads_as_reference(store: &Store, id: &str, name: &str, after: Option<u64>) {
    let stored = store.metric_series(id, name, after, usize::MAX).unwrap();
    for max_points in [3, 4, 100, 1500, 5_000] {
        let read = store
            .metric_series_downsampled(id, name, after, max_points)
            .unwrap();
        let reference = downsample(&stored, max_points);
        assert!(read.len() <= max_points);
        assert_eq!(read.len(), reference.len(), "{name} after {after:?}");
        for (read, reference) in read.iter().zip(&reference) {
            let close =
                (read.value - reference.value).abs() <= 1e-9 * reference.value.abs().max(1.0);
            let exact = |p: &MetricPoint| (p.step, p.wall_seconds, p.count, p.min, p.max);
            assert!(
                close && exact(read) == exact(reference),
                "{name} after {after:?} in {max_points}: read {read:?}, reference {reference:?}"
            );
        }
    }
}

fn downsampled_reads_follow_the_rows_through_truncation(backend: &dyn Backend) {
    let (store, _) = backend.fresh("downsampled");
    let id = store.insert_run(spec()).unwrap();
    let other = store.insert_run(spec()).unwrap();
    let mut spiky: Vec<Row> = rows(20_000, 7, 37);
    spiky[11_337].1 = 1e9;
    spiky[11_338].2 = Some((4, -1e9, 0.0));
    record(&store, &id, "sparse", &spiky);
    record(&store, &id, "dense", &rows(12_000, 0, 1));
    record(&store, &id, "few", &rows(40, 100, 1_000_000));
    // In 3 points, first and last in one 4,096-step bucket: read from the
    // 256-step level.
    record(&store, &id, "aligned", &rows(4_096, 0, 1));
    record(&store, &other, "dense", &rows(3_000, 0, 2));
    let names = ["sparse", "dense", "few", "aligned"];
    for name in names {
        for after in [None, Some(0), Some(12_345), Some(1_000_003)] {
            assert_reads_as_reference(&store, &id, name, after);
        }
    }
    let read = store
        .metric_series_downsampled(&id, "sparse", None, 1500)
        .unwrap();
    let top = read.iter().map(|p| p.max).fold(f64::MIN, f64::max);
    let bottom = read.iter().map(|p| p.min).fold(f64::MAX, f64::min);
    assert_eq!((top, bottom), (1e9, -1e9));
    // A resume drops what came after its checkpoint, mid-bucket at every
    // level, and records again from there: the rollups follow.
    store.truncate_metrics(&id, 300_001).unwrap();
    let kept = store
        .metric_series(&id, "sparse", None, usize::MAX)
        .unwrap();
    assert!(kept.iter().all(|p| p.step <= 300_001));
    assert!(
        store
            .events(&id, 0, Some(EventKind::Metric), 100_000)
            .unwrap()
            .iter()
            .all(
                |e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["step"]
                    .as_u64()
                    .unwrap()
                    <= 300_001
            )
    );
    record(&store, &id, "sparse", &rows(4_000, 300_002, 41));
    for name in names {
        for after in [None, Some(299_999)] {
            assert_reads_as_reference(&store, &id, name, after);
        }
    }
    assert_reads_as_reference(&store, &other, "dense", None);
    store.delete_run(&id).unwrap();
    assert!(store.run(&id).unwrap().is_none());
    assert!(store.metric_names(&id).unwrap().is_empty());
    assert!(store.events(&id, 0, None, 10).unwrap().is_empty());
    assert_eq!(
        store
            .metric_series_downsampled(&id, "sparse", None, 10)
            .unwrap(),
        []
    );
    assert_reads_as_reference(&store, &other, "dense", None);
}

fn a_failed_write_fails_alone(backend: &dyn Backend) {
    let (store, sabotage) = backend.fresh("failures");
    let id = store.insert_run(spec()).unwrap();
    sabotage("DROP TABLE metrics");
    // Metric records that cannot be stored, beside a status change that
    // can: the change is stored, with its event, and the records' events
    // are not (each record is rolled back whole).
    record(&store, &id, "train/loss", &rows(5, 0, 1));
    store
        .set_status(&id, RunStatus::Running, None, None)
        .unwrap();
    record(&store, &id, "train/loss", &rows(5, 10, 1));
    assert_eq!(store.run(&id).unwrap().unwrap().status, RunStatus::Running);
    let kinds: Vec<EventKind> = store
        .events(&id, 0, None, 100)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Status, EventKind::Status]);
    // A write that is waited for hears why it failed.
    sabotage("DROP TABLE events");
    let error = store.insert_run(spec()).unwrap_err().to_string();
    assert!(error.starts_with("could not insert a new run: "), "{error}");
    assert!(error.contains("events"), "{error}");
}

const CASES: &[(&str, Case)] = &[
    ("statuses round trip", statuses_round_trip),
    ("runs page newest first", runs_page_newest_first),
    (
        "sweeps store their runs together",
        sweeps_store_their_runs_together,
    ),
    ("metrics and events read back", metrics_and_events_read_back),
    (
        "downsampled reads follow the rows through truncation",
        downsampled_reads_follow_the_rows_through_truncation,
    ),
    ("a failed write fails alone", a_failed_write_fails_alone),
];

fn run_suite(backend: &dyn Backend, name: &str) {
    // The writer logs the writes it could not store: shown when a case fails.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    for (case, test) in CASES {
        eprintln!("{name}: {case}");
        test(backend);
    }
}

#[test]
fn the_store_suite_on_sqlite() {
    let backend = Sqlite {
        folder: tempfile::tempdir().unwrap(),
    };
    run_suite(&backend, "sqlite");
}

#[test]
fn the_store_suite_on_postgres() {
    let backend = Pg {
        cluster: Postgres::start(PASSWORD),
    };
    run_suite(&backend, "postgres");
}
