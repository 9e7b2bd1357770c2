//! `env.id = "remote"` end to end, with real processes on loopback: a
//! second `rl-lab serve` (gym-http-api) and the Python adapter with real
//! Gymnasium (`RL_LAB_TEST_PYTHON`, set by ./scripts/test). Faults are real
//! too: the adapter is killed, stopped, made to answer garbage, or made to
//! lie about its space, and each failed run is resumed once a healthy
//! adapter is back on the same port.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Server, agent, wait_status};

/// The Python with gymnasium: the test fails, never skips, without it.
fn python() -> String {
    std::env::var("RL_LAB_TEST_PYTHON").expect(
        "RL_LAB_TEST_PYTHON must name a Python with gymnasium installed: run the suite with ./scripts/test",
    )
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `python -m rl_lab_env serve …` (or a fixture script), killed when dropped.
struct Adapter {
    child: Child,
    url: String,
    port: u16,
}

impl Adapter {
    /// Serves with the adapter's own arguments on `port` (0: any), retrying
    /// while a just-killed adapter's port is still being released.
    fn start(script: Option<&str>, port: u16, args: &[&str], env: &[(&str, &str)]) -> Adapter {
        let began = Instant::now();
        loop {
            let mut command = Command::new(python());
            match script {
                Some(script) => command.arg(repo().join("tests/fixtures").join(script)),
                None => command.args(["-m", "rl_lab_env"]),
            };
            command
                .args(["serve", "--port", &port.to_string()])
                .args(args)
                .env(
                    "PYTHONPATH",
                    format!(
                        "{}:{}",
                        repo().join("python/rl-lab-env").display(),
                        repo().join("tests/fixtures").display()
                    ),
                )
                .envs(env.iter().copied())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut child = command.spawn().expect("start the adapter");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("piped stdout"))
                .read_line(&mut line)
                .expect("read the adapter's first line");
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap();
                return Adapter {
                    child,
                    url: url.to_string(),
                    port,
                };
            }
            let _ = child.wait();
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "the adapter did not start on port {port}: {line:?} (is gymnasium installed in {}?)",
                python()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn gymnasium(env_id: &str) -> Adapter {
        Adapter::start(None, 0, &["--env", env_id], &[])
    }

    fn corridor(port: u16, kwargs: &Value) -> Adapter {
        Adapter::start(
            None,
            port,
            &[
                "--make",
                "remote_envs:make_corridor",
                "--kwargs",
                &kwargs.to_string(),
            ],
            &[],
        )
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The adapter's open instances.
    fn open_instances(&self) -> Value {
        call("GET", &format!("{}/v1/envs/", self.url), None).1["all_envs"].clone()
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let agent = agent();
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        (_, Some(body)) => agent.post(url).send_json(body),
        (_, None) => agent.post(url).send_empty(),
    };
    let mut response = response.expect("the request reaches the server");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `rl-lab run SPEC --json`: the summary, and the run folder.
fn run_cli(spec: &Value, folder: &Path) -> Value {
    std::fs::create_dir_all(folder).unwrap();
    let spec_path = folder.join("spec.in.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = folder.join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .arg("run")
        .arg(&spec_path)
        .arg("--json")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rl-lab run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn remote(url: &str, env_id: &str, extra: Value) -> Value {
    let mut config = json!({"url": url, "env_id": env_id});
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    json!({"id": "remote", "config": config})
}

fn cliff_spec(env: Value, seed: u64) -> Value {
    json!({"env": env,
        "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
        "budget": {"episodes": 500}, "seed": seed, "eval": {"episodes": 1}})
}

/// Q-learning on CliffWalking-v1 served by a second `rl-lab serve` over
/// gym-http-api learns the optimal path (return −13), whether the dialect
/// is found or forced; the summary says which.
#[test]
fn q_learning_on_cliff_walking_served_by_rl_lab_serve_reaches_minus_13() {
    let env_server = Server::start_in_temp(&[]);
    let folder = tempfile::tempdir().unwrap();
    for (seed, dialect) in [(0, "auto"), (1, "gym-http-api")] {
        let began = Instant::now();
        let env = remote(
            &env_server.base,
            "CliffWalking-v1",
            json!({"dialect": dialect}),
        );
        let summary = run_cli(&cliff_spec(env, seed), &folder.path().join(dialect));
        assert_eq!(summary["status"], "completed", "{summary}");
        assert_eq!(
            summary["eval"]["mean_return"], -13.0,
            "{dialect}: {summary}"
        );
        assert_eq!(
            summary["env_connection"],
            json!({"url": env_server.base, "env_id": "CliffWalking-v1",
                "dialect": "gym-http-api", "step_flags": "terminated/truncated"})
        );
        eprintln!(
            "{dialect}: {} steps in {:.1} s",
            summary["steps"],
            began.elapsed().as_secs_f64()
        );
        // Both instances (training and evaluation) were closed.
        let (_, open) = call("GET", &format!("{}/v1/envs/", env_server.base), None);
        assert_eq!(open["all_envs"], json!({}), "{dialect}");
    }
}

/// Value iteration reads the adapter's `P` and gets our FrozenLake's values.
#[test]
fn value_iteration_on_the_adapters_frozen_lake_equals_ours() {
    let adapter = Adapter::gymnasium("FrozenLake-v1");
    let folder = tempfile::tempdir().unwrap();
    let spec = |env: Value| {
        json!({"env": env, "agent": {"id": "value-iteration"},
            "budget": {"episodes": 1}, "seed": 1, "eval": {"episodes": 2}})
    };
    let theirs = run_cli(
        &spec(remote(&adapter.url, "FrozenLake-v1", json!({}))),
        &folder.path().join("remote"),
    );
    run_cli(
        &spec(json!({"id": "FrozenLake-v1"})),
        &folder.path().join("local"),
    );
    assert_eq!(theirs["env_connection"]["dialect"], "rl-lab");
    assert_eq!(theirs["env_connection"]["protocol_version"], "1.2");
    let values = |which: &str| -> Vec<f64> {
        let tables: Value = serde_json::from_slice(
            &std::fs::read(folder.path().join(which).join("run/tables.json")).unwrap(),
        )
        .unwrap();
        serde_json::from_value(tables["v"].clone()).unwrap()
    };
    let (theirs, ours) = (values("remote"), values("local"));
    assert_eq!(theirs.len(), 16);
    let largest = theirs
        .iter()
        .zip(&ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(largest <= 1e-9, "values differ by {largest}");
    assert_eq!(adapter.open_instances(), json!({}));
}

/// A user's own env class, served with `--make`, trains; Blackjack's Tuple
/// of Discretes is one Discrete a tabular agent can learn on.
#[test]
fn a_make_env_and_blackjack_train_through_the_adapter() {
    let folder = tempfile::tempdir().unwrap();
    let corridor = Adapter::corridor(0, &json!({}));
    let summary = run_cli(
        &json!({"env": remote(&corridor.url, "remote_envs:make_corridor", json!({})),
            "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
            "budget": {"episodes": 100}, "seed": 2, "eval": {"episodes": 1}}),
        &folder.path().join("corridor"),
    );
    assert_eq!(summary["eval"]["mean_return"], -5.0, "{summary}");

    let blackjack = Adapter::gymnasium("Blackjack-v1");
    let summary = run_cli(
        &json!({"env": remote(&blackjack.url, "Blackjack-v1", json!({})),
            "agent": {"id": "q-learning"}, "budget": {"episodes": 300}, "seed": 2,
            "eval": {"episodes": 5}}),
        &folder.path().join("blackjack"),
    );
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(summary["episodes"], 300);
    let tables: Value = serde_json::from_slice(
        &std::fs::read(folder.path().join("blackjack/run/tables.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tables["v"].as_array().unwrap().len(), 32 * 11 * 2);
}

/// `rl-lab serve` reaches loopback only unless told; what the agent cannot
/// use is refused at submit time with `field = env`.
#[test]
fn submit_time_checks_refuse_urls_and_spaces_with_422() {
    let corridor = Adapter::corridor(0, &json!({}));
    // 0.0.0.0 reaches this host, but is not a loopback address.
    let outside = format!("http://0.0.0.0:{}", corridor.port);
    let spec = json!({"env": remote(&outside, "remote_envs:make_corridor", json!({})),
        "agent": {"id": "q-learning"}, "budget": {"episodes": 3}, "seed": 1});
    let server = Server::start_in_temp(&[]);
    let (status, reply) = call("POST", &format!("{}/v1/runs", server.base), Some(&spec));
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "env.config.url");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("--allow-remote-env 0.0.0.0:{}", corridor.port)),
        "{message}"
    );

    let allow = format!("0.0.0.0:{}", corridor.port);
    let widened = Server::start_in_temp(&["--allow-remote-env", &allow]);
    let (status, reply) = call("POST", &format!("{}/v1/runs", widened.base), Some(&spec));
    assert_eq!(status, 201, "{reply}");
    let id = reply["id"].as_str().unwrap();
    wait_status(&widened, id, &["completed"], Duration::from_secs(20));

    // A server that is not there: the URL is at fault, before anything runs.
    let nowhere = json!({"env": remote("http://127.0.0.1:9", "X-v0", json!({})),
        "agent": {"id": "q-learning"}, "budget": {"episodes": 3}, "seed": 1});
    let (status, reply) = call("POST", &format!("{}/v1/runs", server.base), Some(&nowhere));
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "env.config.url");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /v1/version failed: connection refused"),
        "{reply}"
    );

    // DQN cannot act in Pendulum's continuous action space.
    let pendulum = Adapter::gymnasium("Pendulum-v1");
    let dqn = json!({"env": remote(&pendulum.url, "Pendulum-v1", json!({})),
        "agent": {"id": "dqn"}, "budget": {"steps": 100}, "seed": 1});
    let (status, reply) = call("POST", &format!("{}/v1/runs", server.base), Some(&dqn));
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "env", "{reply}");
    // Checking built (and closed) its instances.
    assert_eq!(pendulum.open_instances(), json!({}));
}

fn episode_returns(server: &Server, id: &str) -> Vec<f64> {
    episode_series(server, id, "value")
}

/// One column (`value`, `wall_seconds`) of the run's episode returns.
fn episode_series(server: &Server, id: &str, column: &str) -> Vec<f64> {
    let (_, reply) = call(
        "GET",
        &format!(
            "{}/v1/runs/{id}/metrics?name=rollout/episode_return&limit=100000",
            server.base
        ),
        None,
    );
    serde_json::from_value(reply["metrics"]["rollout/episode_return"][column].clone())
        .unwrap_or_default()
}

/// How the adapter goes wrong in a fault test.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Killed,
    Stopped,
    Garbage,
    OutsideSpace,
}

/// A run on a faulty adapter ends `failed` with a message naming the URL,
/// the call and `cause`, keeps its metrics, and once a healthy adapter is
/// back on the same port, resumes from its checkpoint and completes.
fn fails_then_resumes(fault: Fault, cause: &[&str]) {
    const BUDGET: u64 = 120;
    let slow = json!({"delay": 0.002});
    let adapter = match fault {
        Fault::Killed | Fault::Stopped => Adapter::corridor(0, &slow),
        Fault::Garbage => Adapter::start(
            Some("garbage_adapter.py"),
            0,
            &["--make", "remote_envs:make_corridor"],
            &[("GARBAGE_AFTER_STEPS", "150")],
        ),
        Fault::OutsideSpace => Adapter::corridor(0, &json!({"lie_after": 150})),
    };
    let server = Server::start_in_temp(&[]);
    let spec = json!({"env": remote(&adapter.url, "remote_envs:make_corridor", json!({"timeout_seconds": 1})),
        "agent": {"id": "q-learning", "config": {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}},
        "budget": {"episodes": BUDGET}, "seed": 4, "eval": {"episodes": 1},
        "checkpoint": {"every_episodes": 2}});
    let (status, reply) = call("POST", &format!("{}/v1/runs", server.base), Some(&spec));
    assert_eq!(status, 201, "{reply}");
    let id = reply["id"].as_str().unwrap().to_string();
    if matches!(fault, Fault::Killed | Fault::Stopped) {
        let began = Instant::now();
        while episode_returns(&server, &id).len() < 10 {
            assert!(began.elapsed() < Duration::from_secs(20), "no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        adapter.signal(if fault == Fault::Killed {
            "-KILL"
        } else {
            "-STOP"
        });
    }
    let began = Instant::now();
    let failed = wait_status(
        &server,
        &id,
        &["failed", "completed"],
        Duration::from_secs(30),
    );
    let error = failed["error"].as_str().unwrap_or_default();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        error.contains(&format!("remote env at {}: POST /v1/envs/", adapter.url)),
        "{error}"
    );
    assert!(cause.iter().any(|c| error.contains(c)), "{error}");
    if fault == Fault::Stopped {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
    }
    let before = episode_returns(&server, &id);
    let before_times = episode_series(&server, &id, "wall_seconds");
    assert!(
        before.len() >= 2,
        "metrics recorded before the failure are kept"
    );

    // The env server is back, healthy, where the run expects it.
    let port = adapter.port;
    drop(adapter);
    let _healthy = Adapter::corridor(port, &json!({}));
    let (status, reply) = call(
        "POST",
        &format!("{}/v1/runs/{id}/resume", server.base),
        None,
    );
    assert_eq!(status, 202, "{reply}");
    let done = wait_status(
        &server,
        &id,
        &["completed", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["summary"]["episodes"], BUDGET);
    assert_eq!(done["summary"]["env_connection"]["dialect"], "rl-lab");
    let after = episode_returns(&server, &id);
    assert_eq!(
        after.len() as u64,
        BUDGET,
        "one return per episode, none twice"
    );
    // It continued from the checkpoint: the episodes before it are the
    // very records written before the failure (a restart from scratch
    // would write the same returns again, but at other times).
    assert_eq!(after[..2], before[..2]);
    let after_times = episode_series(&server, &id, "wall_seconds");
    assert_eq!(after_times[..2], before_times[..2]);
}

#[test]
fn an_adapter_killed_mid_run_fails_the_run_and_resume_completes_it() {
    fails_then_resumes(
        Fault::Killed,
        &["connection refused", "the connection was closed"],
    );
}

#[test]
fn an_adapter_stopped_mid_step_times_out_and_resume_completes_it() {
    fails_then_resumes(Fault::Stopped, &["timeout after 1 s"]);
}

#[test]
fn an_adapter_answering_garbage_fails_the_run_and_resume_completes_it() {
    fails_then_resumes(Fault::Garbage, &["malformed body: expected JSON"]);
}

#[test]
fn an_observation_outside_the_space_fails_the_run_and_resume_completes_it() {
    fails_then_resumes(
        Fault::OutsideSpace,
        &["observation 11 is outside the observation space Discrete(6)"],
    );
}

/// A server shutting down drops its runs' envs, which closes their remote
/// instances.
#[test]
fn server_shutdown_closes_the_remote_instances() {
    let adapter = Adapter::corridor(0, &json!({"delay": 0.002}));
    let mut server = Server::start_in_temp(&[]);
    let spec = json!({"env": remote(&adapter.url, "remote_envs:make_corridor", json!({})),
        "agent": {"id": "q-learning"}, "budget": {"episodes": 100000}, "seed": 1});
    let (status, reply) = call("POST", &format!("{}/v1/runs", server.base), Some(&spec));
    assert_eq!(status, 201, "{reply}");
    let id = reply["id"].as_str().unwrap();
    wait_status(&server, id, &["running"], Duration::from_secs(20));
    // `running` says a worker holds the run; its envs open a moment later.
    let began = Instant::now();
    while adapter.open_instances().as_object().unwrap().len() < 2 {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the run's instances did not open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(adapter.open_instances().as_object().unwrap().len(), 2);
    server.signal("-TERM");
    server.wait_exit(Duration::from_secs(10));
    assert_eq!(adapter.open_instances(), json!({}));
}

/// `examples/cartpole-dqn.json` with its env replaced by `env` and its
/// seed and budget set.
fn cartpole_dqn_spec(env: Value, seed: u64, steps: u64) -> Value {
    let text = std::fs::read_to_string(repo().join("examples/cartpole-dqn.json")).unwrap();
    let mut spec: Value = serde_json::from_str(&text).unwrap();
    spec["env"] = env;
    spec["env"]["wrappers"] = json!(["episode_statistics"]);
    spec["seed"] = json!(seed);
    spec["budget"] = json!({"steps": steps});
    spec
}

/// Every line of a run's metrics.jsonl, less what depends on the clock.
fn metrics_without_times(folder: &Path) -> Vec<Value> {
    std::fs::read_to_string(folder.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            record.as_object_mut().unwrap().remove("wall_seconds");
            record
        })
        .filter(|record| record["name"] != "time/steps_per_second")
        .collect()
}

/// Seeds mean Gymnasium's seeds, so DQN on CartPole-v1 served by the
/// adapter (real Gymnasium in another process) learns exactly what it
/// learns on our in-process CartPole-v1: every episode, loss and
/// evaluation of the curve is the same number.
#[test]
fn dqn_on_the_adapters_cartpole_learns_the_same_curve_as_on_ours() {
    let adapter = Adapter::gymnasium("CartPole-v1");
    let dir = tempfile::tempdir().unwrap();
    let mut ours = cartpole_dqn_spec(json!({"id": "CartPole-v1"}), 3, 12_000);
    ours["eval"] = json!({"episodes": 3, "max_steps": 500, "every_steps": 4000});
    ours["agent"]["config"]["log_every"] = json!(500);
    let mut theirs = ours.clone();
    theirs["env"] = remote(&adapter.url, "CartPole-v1", json!({}));
    theirs["env"]["wrappers"] = json!(["episode_statistics"]);

    let ours_summary = run_cli(&ours, &dir.path().join("ours"));
    let theirs_summary = run_cli(&theirs, &dir.path().join("theirs"));
    let (ours_metrics, theirs_metrics) = (
        metrics_without_times(&dir.path().join("ours")),
        metrics_without_times(&dir.path().join("theirs")),
    );
    let episodes = ours_metrics
        .iter()
        .filter(|r| r["kind"] == "episode")
        .count();
    let losses = ours_metrics
        .iter()
        .filter(|r| r["name"] == "train/loss")
        .count();
    assert!(
        episodes > 100 && losses >= 20,
        "{episodes} episodes, {losses} losses"
    );
    assert_eq!(ours_metrics.len(), theirs_metrics.len());
    for (line, (a, b)) in ours_metrics.iter().zip(&theirs_metrics).enumerate() {
        assert_eq!(a, b, "metrics line {line} differs");
    }
    assert_eq!(ours_summary["eval"], theirs_summary["eval"]);
    assert_eq!(theirs_summary["env_connection"]["dialect"], "rl-lab");
}

/// `num_envs: 8` on the adapter steps one vector instance, one call per
/// batch, with the loop's own per-episode seeds and resets: PPO then
/// learns on the adapter's CartPole-v1 exactly what it learns on eight of
/// our in-process copies. A wrapper that changes calls (sticky actions)
/// falls back to an instance per copy.
#[test]
fn ppo_on_eight_copies_of_the_adapters_cartpole_steps_one_vector_and_learns_our_curve() {
    let adapter = Adapter::gymnasium("CartPole-v1");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("examples/cartpole-ppo.json")).unwrap();
    let mut ours: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ours["env"]["num_envs"], 8);
    ours["env"]["wrappers"] = json!(["episode_statistics", {"time_limit": 30}]);
    ours["budget"] = json!({"steps": 6_000});
    ours["seed"] = json!(5);
    ours["eval"] = json!({"episodes": 3, "max_steps": 500});
    let mut theirs = ours.clone();
    theirs["env"]["id"] = json!("remote");
    theirs["env"]["config"] = remote(&adapter.url, "CartPole-v1", json!({}))["config"].clone();

    let ours_summary = run_cli(&ours, &dir.path().join("ours"));
    let theirs_summary = run_cli(&theirs, &dir.path().join("theirs"));
    let (ours_metrics, theirs_metrics) = (
        metrics_without_times(&dir.path().join("ours")),
        metrics_without_times(&dir.path().join("theirs")),
    );
    let truncated = ours_metrics
        .iter()
        .filter(|r| r["kind"] == "episode" && r["truncated"] == true)
        .count();
    assert!(
        ours_metrics
            .iter()
            .filter(|r| r["kind"] == "episode")
            .count()
            > 100
            && truncated > 0,
        "{} records, {truncated} episodes cut by the loop's time limit",
        ours_metrics.len()
    );
    assert_eq!(ours_metrics.len(), theirs_metrics.len());
    for (line, (a, b)) in ours_metrics.iter().zip(&theirs_metrics).enumerate() {
        assert_eq!(a, b, "metrics line {line} differs");
    }
    assert_eq!(ours_summary["eval"], theirs_summary["eval"]);
    let connection = &theirs_summary["env_connection"];
    assert_eq!(connection["stepping"], "vector", "{connection}");
    assert_eq!(connection["num_envs"], 8);
    assert_eq!(connection["protocol_version"], "1.2");
    // The run closed its vector instance; none was left behind.
    assert_eq!(adapter.open_instances(), json!({}));

    let mut sticky = theirs.clone();
    sticky["env"]["wrappers"] = json!(["episode_statistics", {"sticky_actions": 0.25}]);
    sticky["budget"] = json!({"steps": 600});
    let summary = run_cli(&sticky, &dir.path().join("sticky"));
    assert_eq!(summary["env_connection"]["dialect"], "rl-lab");
    assert!(
        summary["env_connection"].get("stepping").is_none(),
        "{}",
        summary["env_connection"]
    );
}

/// DQN on CartPole-v1 served by the adapter reaches a greedy mean return of
/// 475 within 100k steps on at least 2 of 3 seeds. The three runs go
/// through `rl-lab serve`, two at a time; each is cancelled once an
/// evaluation reaches 475, since the rest of its budget proves nothing more.
#[test]
fn dqn_on_the_adapters_cartpole_reaches_475_on_2_of_3_seeds() {
    let adapter = Adapter::gymnasium("CartPole-v1");
    let server = Server::start_in_temp(&["--max-concurrent-runs", "2"]);
    let mut pending: Vec<(u64, String)> = (0..3)
        .map(|seed| {
            let mut spec = cartpole_dqn_spec(
                remote(&adapter.url, "CartPole-v1", json!({})),
                seed,
                100_000,
            );
            spec["eval"] = json!({"episodes": 5, "max_steps": 500, "every_steps": 5000});
            let (status, reply) = call("POST", &format!("{}/v1/runs", server.base), Some(&spec));
            assert_eq!(status, 201, "{reply}");
            (seed, reply["id"].as_str().unwrap().to_string())
        })
        .collect();
    let mut reached = Vec::new();
    let mut missed = Vec::new();
    let began = Instant::now();
    while !pending.is_empty() && reached.len() < 2 {
        assert!(
            began.elapsed() < Duration::from_secs(900),
            "runs still going after 15 min: reached {reached:?}, missed {missed:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
        pending.retain(|(seed, id)| {
            let (_, reply) = call(
                "GET",
                &format!("{}/v1/runs/{id}/metrics?name=eval/mean_return", server.base),
                None,
            );
            let curve = &reply["metrics"]["eval/mean_return"];
            let best = curve["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .fold(f64::NEG_INFINITY, f64::max);
            if best >= 475.0 {
                let at = curve["step"].as_array().and_then(|steps| {
                    let values = curve["value"].as_array()?;
                    steps
                        .iter()
                        .zip(values)
                        .find(|(_, v)| v.as_f64() >= Some(475.0))
                        .map(|(s, _)| s.clone())
                });
                reached.push((*seed, at));
                call(
                    "POST",
                    &format!("{}/v1/runs/{id}/cancel", server.base),
                    None,
                );
                return false;
            }
            let (_, run) = call("GET", &format!("{}/v1/runs/{id}", server.base), None);
            match run["status"].as_str() {
                Some("queued" | "running") => true,
                other => {
                    missed.push((*seed, other.map(str::to_string), best));
                    false
                }
            }
        });
    }
    eprintln!("reached 475 (seed, step): {reached:?}; missed: {missed:?}");
    assert!(reached.len() >= 2, "reached {reached:?}, missed {missed:?}");
    for (_, id) in &pending {
        call(
            "POST",
            &format!("{}/v1/runs/{id}/cancel", server.base),
            None,
        );
    }
}

/// The env routes never make a `remote` or `external` env: either would
/// block the server's async runtime (on another server's calls, or on a
/// process that never comes), single instances and vector ones alike.
#[test]
fn the_env_routes_refuse_remote_and_external_ids() {
    let server = Server::start_in_temp(&[]);
    let remote_config = json!({"url": "http://127.0.0.1:9", "env_id": "CartPole-v1"});
    for (path, body) in [
        (
            "/v1/envs/",
            json!({"env_id": "remote", "config": remote_config}),
        ),
        (
            "/v1/vector-envs",
            json!({"env_id": "remote", "num_envs": 2, "config": remote_config}),
        ),
        ("/v1/envs/", json!({"env_id": "external"})),
        (
            "/v1/vector-envs",
            json!({"env_id": "external", "num_envs": 2}),
        ),
    ] {
        let (status, reply) = call("POST", &format!("{}{path}", server.base), Some(&body));
        assert_eq!(status, 400, "{path} {body}: {reply}");
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(message.contains("run"), "{path} {body}: {message}");
    }
}

/// An instance the adapter reaped while it sat idle (as a run's evaluation
/// env does through all of training) is replaced at the next reset: the
/// episode a seed gives is the same, and the old id is gone.
#[test]
fn a_reaped_instance_is_reopened_at_the_next_reset() {
    use rl_env::{Action, Env};
    let adapter = Adapter::start(
        None,
        0,
        &["--env", "CartPole-v1", "--idle-timeout", "0.5"],
        &[],
    );
    let config = json!({"url": adapter.url, "env_id": "CartPole-v1"});
    let mut env = rl_remote::RemoteEnv::connect(serde_json::from_value(config).unwrap()).unwrap();
    let (first, _) = env.reset(Some(8)).unwrap();
    env.step(&Action::Discrete(1)).unwrap();
    let reaped = env.instance_id().to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let (again, _) = env.reset(Some(8)).unwrap();
    assert_eq!(first, again);
    assert_ne!(env.instance_id(), reaped);
    env.step(&Action::Discrete(1)).unwrap();
    assert_eq!(
        adapter.open_instances().as_object().map(|o| o.len()),
        Some(1)
    );
}
