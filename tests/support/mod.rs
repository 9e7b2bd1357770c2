//! The real `rl-lab serve` binary on an ephemeral port, for end-to-end tests.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server, killed when dropped, with its local worker
/// processes (it leads a process group of its own).
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// Serves `data`, with `RL_LAB_TOKEN` set to `token` if given.
    pub fn start(data: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        let token: Vec<(&str, &str)> = token.map(|t| ("RL_LAB_TOKEN", t)).into_iter().collect();
        Server::start_with(data, extra, &token, None, &[])
    }

    /// Serves a fresh temporary folder from a process whose address space
    /// is limited to `kib` KiB (`ulimit -v`, RLIMIT_AS), so that a large
    /// allocation fails in it without touching the machine's memory.
    pub fn start_in_temp_limited(kib: u64, extra: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let script = format!("ulimit -v {kib} && exec \"$0\" \"$@\"");
        let mut server = Server::start_with(data.path(), extra, &[], None, &["sh", "-c", &script]);
        server._data = Some(data);
        server
    }

    /// Serves `data` with `env` set (no `RL_LAB_TOKEN` unless there), its
    /// log (stderr) appended to `log` if given, started through `launcher`
    /// (a program and its arguments that end by running the rest, e.g.
    /// `unshare … sh -c '…; exec "$@"'`) if not empty.
    pub fn start_with(
        data: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        log: Option<&Path>,
        launcher: &[&str],
    ) -> Server {
        let binary = env!("CARGO_BIN_EXE_rl-lab");
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env_remove("RL_LAB_TOKEN")
            .envs(env.iter().copied())
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(log) = log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open the server's log file");
            command.stderr(file);
        }
        let mut child = command.spawn().expect("start the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server {
            child,
            base,
            _data: None,
        }
    }

    /// Serves a fresh temporary folder, removed with the server.
    pub fn start_in_temp(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut server = Server::start(data.path(), None, extra);
        server._data = Some(data);
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `-TERM`) to the server's process alone.
    pub fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends `signal` to the server and its local worker processes.
    pub fn signal_group(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The process ids of the server's local workers (its children, of
    /// whichever of its threads started them).
    pub fn worker_pids(&self) -> Vec<u32> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut pids: Vec<u32> = std::fs::read_dir(tasks)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|task| {
                std::fs::read_to_string(task.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Waits for the process to exit; returns how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Duration {
        let began = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < limit,
                "the server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive client that reports every status instead of failing.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET path` on `server`: the status and the body as JSON (`null` when not JSON).
pub fn get_json(server: &Server, path: &str) -> (u16, serde_json::Value) {
    json_reply(
        agent()
            .get(&format!("{}{path}", server.base))
            .call()
            .expect("the request reaches the server"),
    )
}

/// `POST path` on `server` with a JSON body: the status and the reply as
/// JSON (`null` when not JSON).
pub fn post_json(
    server: &Server,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    json_reply(
        agent()
            .post(&format!("{}{path}", server.base))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("the request reaches the server"),
    )
}

fn json_reply(mut response: ureq::http::Response<ureq::Body>) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls run `id` until its status is one of `wanted`; its view then.
pub fn wait_status(
    server: &Server,
    id: &str,
    wanted: &[&str],
    limit: Duration,
) -> serde_json::Value {
    let began = Instant::now();
    loop {
        let (code, run) = get_json(server, &format!("/v1/runs/{id}"));
        assert_eq!(code, 200, "{run}");
        if wanted.contains(&run["status"].as_str().unwrap_or("")) {
            return run;
        }
        assert!(
            began.elapsed() < limit,
            "run {id} still {} after {limit:?}: {run}",
            run["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads server-sent events until `stop` says so; returns (id, event, data).
pub fn read_events(
    server: &Server,
    path: &str,
    last_event_id: Option<i64>,
    mut stop: impl FnMut(&str, &serde_json::Value) -> bool,
) -> Vec<(i64, String, serde_json::Value)> {
    let mut request = agent().get(&format!("{}{path}", server.base));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", &id.to_string());
    }
    let response = request.call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let reader = std::io::BufReader::new(response.into_body().into_reader());
    let mut events = Vec::new();
    let (mut id, mut kind, mut data) = (0, String::new(), String::new());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("id:") {
            id = rest.trim().parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("event:") {
            kind = rest.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("data:") {
            data = rest.trim().to_string();
        } else if line.is_empty() && !data.is_empty() {
            let value: serde_json::Value = serde_json::from_str(&data).unwrap();
            let done = stop(&kind, &value);
            events.push((id, kind.clone(), value));
            data.clear();
            if done {
                break;
            }
        }
    }
    events
}

/// An `rl-lab worker` process on the store at `url`, killed when dropped.
pub struct Worker {
    child: Child,
}

impl Worker {
    /// Starts a worker named `name` on `url`, its run folders in `data`,
    /// with `env` set (the database password among it), and waits until
    /// it is ready.
    pub fn start(
        url: &str,
        data: &Path,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
            .args(["worker", "--store", url, "--name", name, "--data"])
            .arg(data)
            .args(extra)
            .env_remove("RL_LAB_STORE_PASSWORD_FILE")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a worker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), format!("worker {name} ready"));
        Worker { child }
    }

    /// Whether the process is still there.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL, and waits for the process to go.
    pub fn kill(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same spec under `rl-lab run`: its summary.
pub fn run_locally(spec: &serde_json::Value) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spec.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rl-lab"))
        .args(["run", "--json", "--out"])
        .arg(dir.path().join("out"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A run view's status history, as the statuses alone.
pub fn statuses(run: &serde_json::Value) -> Vec<String> {
    run["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["status"].as_str().unwrap().to_string())
        .collect()
}

/// A DQN run on CartPole of 60,000 steps (a few seconds), long enough to
/// be killed mid-run, checkpointing every 10 episodes: at episode
/// boundaries, so a resume continues it exactly.
pub fn dqn_checkpointing_spec(seed: u64) -> serde_json::Value {
    serde_json::json!({
        "env": {"id": "CartPole-v1"},
        "agent": {"id": "dqn", "config": {"learning_starts": 500, "replay": {"capacity": 10000}}},
        "budget": {"steps": 60_000},
        "seed": seed,
        "checkpoint": {"every_episodes": 10},
        "eval": {"episodes": 2}
    })
}
