//! Environments over HTTP: what a step costs through the server, against
//! what HTTP itself costs. Run with `cargo bench --bench server`
//! (`cargo bench --bench server -- quick` for a shorter run).
//!
//! `cargo bench --bench server -- metrics` measures instead what a
//! downsampled metrics read costs (`GET /v1/runs/{id}/metrics?max_points=`)
//! on a series of 1M stored points, against the goal of 50 ms, and what the
//! rollups that make it fast cost the writes: see [`metrics`].
//!
//! The server (the whole app, `rl_server::app`) and a minimal axum echo
//! handler run in this process, each on its own loopback port, on the
//! same tokio runtime; the clients are Rust (ureq over one keep-alive
//! connection, tokio-tungstenite for the WebSocket), one request in
//! flight at a time. Each transport is measured twice, the same way and
//! interleaved call by call (so that other load on the machine weighs on
//! both alike): once stepping CartPole-v1, once echoing the same request
//! body. The echo is the floor HTTP itself costs; the goal is a step
//! within 2× of it. A step's time includes the reset when its episode
//! ended (one call in about 25). The in-process rate is `step_into` on
//! the same environment, on the same thread.

use futures_util::{SinkExt, StreamExt};
use rl_env::{Action, Env};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Latencies of `n` calls, after `n / 10` unmeasured ones.
struct Timings {
    latencies: Vec<Duration>,
    total: Duration,
}

impl Timings {
    fn new(mut latencies: Vec<Duration>) -> Timings {
        let total = latencies.iter().sum();
        latencies.sort();
        Timings { latencies, total }
    }

    /// `n` calls of `step` and `n` of `echo`, interleaved so that other
    /// load on the machine weighs on both alike, after `n / 10` of each
    /// unmeasured.
    fn pair(
        n: usize,
        mut step: impl FnMut(usize),
        mut echo: impl FnMut(usize),
    ) -> (Timings, Timings) {
        let (mut steps, mut echoes) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + n / 10 {
            let t = Instant::now();
            step(i);
            let s = t.elapsed();
            let t = Instant::now();
            echo(i);
            let e = t.elapsed();
            if i >= n / 10 {
                steps.push(s);
                echoes.push(e);
            }
        }
        (Timings::new(steps), Timings::new(echoes))
    }

    fn quantile(&self, q: f64) -> Duration {
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }

    /// Env steps per second of time spent in these calls.
    fn per_second(&self, items_per_call: usize) -> f64 {
        (self.latencies.len() * items_per_call) as f64 / self.total.as_secs_f64()
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One row of the report: a transport measured on env steps and on echo.
fn row(name: &str, batch: usize, steps: &Timings, echo: &Timings) -> Value {
    let (p50, p99) = (steps.quantile(0.5), steps.quantile(0.99));
    let (e50, e99) = (echo.quantile(0.5), echo.quantile(0.99));
    println!(
        "| {name} | {batch} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}× | {:.0} |",
        us(p50),
        us(p99),
        us(e50),
        us(e99),
        us(p50) / us(e50),
        steps.per_second(batch),
    );
    json!({
        "transport": name, "batch": batch,
        "p50_us": us(p50), "p99_us": us(p99),
        "echo_p50_us": us(e50), "echo_p99_us": us(e99),
        "p50_over_echo": us(p50) / us(e50),
        "env_steps_per_second": steps.per_second(batch),
    })
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Vec<u8> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .expect("the server answers");
    assert_eq!(response.status(), 200, "{url}");
    response.body_mut().read_to_vec().expect("a body")
}

fn post_json(agent: &ureq::Agent, url: &str, body: &str) -> Value {
    serde_json::from_slice(&post(agent, url, body)).expect("JSON")
}

/// Stored points of each series [`metrics`] fills.
const SERIES_POINTS: u64 = 1_000_000;

/// Stores `SERIES_POINTS` points of metric `name`, `spacing` steps apart,
/// as the writer stores them (spikes every 100,003 points), and returns the
/// points stored per second.
fn fill(conn: &mut rusqlite::Connection, run_id: &str, name: &str, spacing: u64) -> f64 {
    let began = Instant::now();
    let tx = conn.transaction().expect("a transaction");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO metrics (run_id, name, step, value, wall_seconds, event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            )
            .expect("the insert");
        for i in 0..SERIES_POINTS {
            let value = if i % 100_003 == 0 {
                1e4
            } else {
                (i as f64 * 1e-3).sin()
            };
            insert
                .execute(rusqlite::params![
                    run_id,
                    name,
                    (i * spacing) as i64,
                    value,
                    i as f64 * 1e-4
                ])
                .expect("a row");
        }
    }
    tx.commit().expect("the commit");
    SERIES_POINTS as f64 / began.elapsed().as_secs_f64()
}

/// The database file's size once its log is folded in, in MB.
fn database_megabytes(conn: &rusqlite::Connection, path: &std::path::Path) -> f64 {
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("a checkpoint");
    std::fs::metadata(path).expect("the database").len() as f64 / 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Downsampled metric reads: two series of 1M stored points, episodes 37
/// steps apart (a fast run) and one point a step (a scalar logged every
/// step), each read in 1,500 points through the server over HTTP
/// keep-alive, 100 times after 10 unmeasured. The same database without the
/// rollup triggers gives what they cost the writes and the file.
fn metrics(state: &rl_server::Shared, server: &str, data: &std::path::Path) {
    let run_id = state
        .store
        .insert_run(json!({"env": {"id": "CartPole-v1"}, "agent": {"id": "q_learning"}}))
        .expect("a run");
    let path = data.join("rl-lab.db");
    let mut conn = rusqlite::Connection::open(&path).expect("the database");
    let series = [("rollout/episode_return", 37), ("train/loss", 1)];
    let filled: Vec<f64> = series
        .iter()
        .map(|(name, spacing)| fill(&mut conn, &run_id, name, *spacing))
        .collect();
    let with_rollups = database_megabytes(&conn, &path);
    let bare_path = data.join("bare.db");
    let bare_store = rl_server::store::Store::open(&bare_path).expect("a second store");
    drop(bare_store);
    let mut bare = rusqlite::Connection::open(&bare_path).expect("the second database");
    bare.execute_batch("DROP TRIGGER metric_rollups_on_insert")
        .expect("no rollups");
    let bare_filled: Vec<f64> = series
        .iter()
        .map(|(name, spacing)| fill(&mut bare, &run_id, name, *spacing))
        .collect();
    let without_rollups = database_megabytes(&bare, &bare_path);

    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let get = |url: &str| -> Value {
        let mut response = agent.get(url).call().expect("the server answers");
        assert_eq!(response.status(), 200, "{url}");
        serde_json::from_slice(&response.body_mut().read_to_vec().expect("a body")).expect("JSON")
    };
    println!(
        "| series | points stored | points/s stored, with rollups | without | read p50 ms | p99 ms | max ms | points read |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (k, (name, spacing)) in series.iter().enumerate() {
        let url = format!("{server}/v1/runs/{run_id}/metrics?name={name}&max_points=1500");
        let n = 100;
        let mut latencies = Vec::with_capacity(n);
        let mut points = 0;
        for i in 0..n + n / 10 {
            let t = Instant::now();
            let reply = get(&url);
            let elapsed = t.elapsed();
            let counts = reply["metrics"][name]["count"]
                .as_array()
                .expect("a count column");
            points = counts.len();
            let total: u64 = counts.iter().filter_map(Value::as_u64).sum();
            assert_eq!(total, SERIES_POINTS, "every point in a bucket");
            if i >= n / 10 {
                latencies.push(elapsed);
            }
        }
        let timings = Timings::new(latencies);
        let (p50, p99) = (timings.quantile(0.5), timings.quantile(0.99));
        let worst = timings.quantile(1.0);
        println!(
            "| {name} ({spacing} steps apart) | {SERIES_POINTS} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {points} |",
            filled[k],
            bare_filled[k],
            ms(p50),
            ms(p99),
            ms(worst)
        );
        rows.push(json!({
            "series": name,
            "spacing": spacing,
            "points_stored": SERIES_POINTS,
            "stored_per_second_with_rollups": filled[k],
            "stored_per_second_without": bare_filled[k],
            "read_p50_ms": ms(p50),
            "read_p99_ms": ms(p99),
            "read_max_ms": ms(worst),
            "points_read": points,
        }));
    }
    println!("database: {with_rollups:.0} MB with rollups, {without_rollups:.0} MB without");
    let report = json!({
        "rows": rows,
        "database_mb_with_rollups": with_rollups,
        "database_mb_without": without_rollups,
    });
    println!(
        "{}",
        serde_json::to_string(&report).expect("the report serialises")
    );
}

/// The floor: axum returning the request body, over HTTP and WebSocket.
fn echo_router() -> axum::Router {
    use axum::extract::ws::{WebSocket, WebSocketUpgrade};
    async fn echo_socket(mut socket: WebSocket) {
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
    }
    axum::Router::new()
        .route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }),
        )
        .route(
            "/ws",
            axum::routing::get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(echo_socket)
            }),
        )
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let scale = if quick { 10 } else { 1 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let data = tempfile::tempdir().expect("a temporary folder");
    let serve = |router: axum::Router| {
        use axum::serve::ListenerExt;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        // Replies are small single writes: send them without Nagle's delay.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        runtime.spawn(async move { axum::serve(listener, router).await });
        base
    };
    let state = {
        let _entered = runtime.enter();
        let config = rl_server::ServeConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
            data.path().into(),
        );
        rl_server::AppState::open(config).expect("the server state")
    };
    let server = serve(rl_server::app(state.clone()));
    if std::env::args().any(|a| a == "metrics") {
        metrics(&state, &server, data.path());
        return;
    }
    let echo = serve(echo_router());

    // In process: the same environment, no transport.
    let mut env = state
        .engine
        .envs
        .make("CartPole-v1", &Value::Null)
        .expect("CartPole-v1 is registered");
    let mut obs = env.observation_space().zeros();
    env.reset_into(Some(0), &mut obs).expect("reset");
    let n = 2_000_000 / scale;
    let began = Instant::now();
    for t in 0..n {
        let out = env
            .step_into(&Action::Discrete((t % 2) as i64), &mut obs)
            .expect("step");
        if out.terminated || out.truncated {
            env.reset_into(None, &mut obs).expect("reset");
        }
    }
    let in_process = n as f64 / began.elapsed().as_secs_f64();

    println!(
        "| transport | env steps per call | step p50 µs | step p99 µs | echo p50 µs | echo p99 µs | p50 / echo | env steps/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();

    // One instance over HTTP keep-alive.
    let created = post_json(
        &agent,
        &format!("{server}/v1/envs/"),
        r#"{"env_id": "CartPole-v1", "seed": 0}"#,
    );
    let id = created["instance_id"].as_str().expect("an id").to_string();
    let reset = format!("{server}/v1/envs/{id}/reset/");
    let step = format!("{server}/v1/envs/{id}/step/");
    post(&agent, &reset, "null");
    let bodies = [r#"{"action": 0}"#, r#"{"action": 1}"#];
    let n = 20_000 / scale;
    let echo_url = format!("{echo}/echo");
    let echo_agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let (steps, echoes) = Timings::pair(
        n,
        |t| {
            let reply = post_json(&agent, &step, bodies[t % 2]);
            if reply["done"] == true {
                post(&agent, &reset, "null");
            }
        },
        |t| {
            let reply = post_json(&echo_agent, &echo_url, bodies[t % 2]);
            assert!(reply.is_object());
        },
    );
    rows.push(row("HTTP, one instance", 1, &steps, &echoes));

    // A vector instance of 64 copies: one request steps them all.
    let created = post_json(
        &agent,
        &format!("{server}/v1/vector-envs"),
        r#"{"env_id": "CartPole-v1", "num_envs": 64, "seed": 0}"#,
    );
    let vid = created["instance_id"].as_str().expect("an id").to_string();
    post(
        &agent,
        &format!("{server}/v1/vector-envs/{vid}/reset"),
        "null",
    );
    let vstep = format!("{server}/v1/vector-envs/{vid}/step");
    let batches: Vec<String> = (0..2)
        .map(|k| json!({"actions": (0..64).map(|i| (i + k) % 2).collect::<Vec<_>>()}).to_string())
        .collect();
    let n = 4_000 / scale;
    let (steps, echoes) = Timings::pair(
        n,
        |t| {
            let reply = post_json(&agent, &vstep, &batches[t % 2]);
            assert_eq!(reply["rewards"].as_array().map(Vec::len), Some(64));
        },
        |t| {
            let reply = post_json(&echo_agent, &echo_url, &batches[t % 2]);
            assert!(reply.is_object());
        },
    );
    rows.push(row("HTTP, vector instance", 64, &steps, &echoes));

    // The WebSocket: one instance, one message per step.
    let (steps, echoes) = runtime.block_on(async {
        let ws = |base: &str, path: &str| format!("{}{path}", base.replace("http://", "ws://"));
        let open = |url: String| async move {
            let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
                .await
                .expect("the socket opens");
            socket
        };
        let mut env_socket = open(ws(&server, &format!("/v1/envs/{id}/ws"))).await;
        let mut echo_socket = open(ws(&echo, "/ws")).await;
        let requests = [
            r#"{"op": "step", "action": 0}"#,
            r#"{"op": "step", "action": 1}"#,
        ];
        let n = 20_000 / scale;
        let (mut steps, mut echoes) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + n / 10 {
            let mut times = [Duration::ZERO; 2];
            for (k, socket) in [&mut env_socket, &mut echo_socket].into_iter().enumerate() {
                let t = Instant::now();
                socket
                    .send(Message::text(requests[i % 2]))
                    .await
                    .expect("sent");
                let reply = match socket.next().await.expect("a reply").expect("a frame") {
                    Message::Text(text) => serde_json::from_str::<Value>(&text).expect("JSON"),
                    other => panic!("unexpected {other:?}"),
                };
                if k == 0 && reply["done"] == true {
                    socket
                        .send(Message::text(r#"{"op": "reset"}"#))
                        .await
                        .expect("sent");
                    socket.next().await.expect("a reply").expect("a frame");
                }
                times[k] = t.elapsed();
            }
            if i >= n / 10 {
                steps.push(times[0]);
                echoes.push(times[1]);
            }
        }
        (Timings::new(steps), Timings::new(echoes))
    });
    rows.push(row("WebSocket, one instance", 1, &steps, &echoes));

    println!(
        "| in process (`step_into`) | 1 | {:.3} | | | | | {:.0} |",
        1e6 / in_process,
        in_process
    );
    let report = json!({"rows": rows, "in_process_steps_per_second": in_process});
    println!(
        "{}",
        serde_json::to_string(&report).expect("the report serialises")
    );
}
