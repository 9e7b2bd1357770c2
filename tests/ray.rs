//! The adapter's Ray launcher (`python -m rl_lab_env.ray_workers`) end to
//! end, with nothing mocked: a PostgreSQL of the test's own, an API node
//! that executes nothing, a local Ray head on loopback started with the
//! `ray` CLI of the test venv (`RL_LAB_TEST_PYTHON`, set by ./scripts/test),
//! and the launcher, whose Ray actors each run one real `rl-lab worker`. A
//! worker killed mid-run comes back under its name (Ray restarts its
//! actor), and the run it held completes from its checkpoint.

mod support;

use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{Server, get_json, post_json, wait_status};

#[allow(dead_code)] // the helpers other test files use
#[path = "../server/tests/support/postgres.rs"]
mod postgres;

const PASSWORD: &str = "ray-workers";

/// The venv's Python: the test fails, never skips, without it.
fn python() -> PathBuf {
    PathBuf::from(std::env::var("RL_LAB_TEST_PYTHON").expect(
        "RL_LAB_TEST_PYTHON must name a Python with the test requirements (ray among them): run the suite with ./scripts/test",
    ))
}

/// The `ray` CLI installed next to that Python.
fn ray_cli() -> PathBuf {
    let ray = python().with_file_name("ray");
    assert!(
        ray.is_file(),
        "{} is missing: the test venv lacks ray (tests/requirements.txt pins it; ./scripts/test installs it)",
        ray.display()
    );
    ray
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What both the head and the launcher need: Ray on loopback (without
/// this, Ray swaps 127.0.0.1 for the machine's outward address), the
/// adapter's current source importable in the actors (they inherit the
/// head's environment, not the launcher's), no usage report, and no
/// other Ray cluster or password from the caller's environment.
fn ray_environment(command: &mut Command) -> &mut Command {
    command
        .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .env("PYTHONPATH", repo().join("python/rl-lab-env"))
        .env_remove("RAY_ADDRESS")
        .env_remove("PGPASSWORD")
        .env_remove("RL_LAB_STORE_PASSWORD_FILE")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A local Ray head; `ray stop --force` when dropped, whatever happened.
struct RayHead {
    address: String,
    /// Its sessions and logs; removed after the head has stopped.
    dir: tempfile::TempDir,
}

impl RayHead {
    fn start() -> RayHead {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        // The guard first: a head that half started is stopped too.
        let head = RayHead { address, dir };
        let log = head.dir.path().join("ray-start.log");
        // A file, not a pipe: the daemons Ray starts inherit it and would
        // keep a pipe open after `ray start` returns.
        let out = File::create(&log).unwrap();
        let status = ray_environment(&mut Command::new(ray_cli()))
            .args(["start", "--head", "--node-ip-address=127.0.0.1"])
            .arg(format!(
                "--port={}",
                head.address.rsplit(':').next().unwrap()
            ))
            .args(["--num-cpus=2", "--num-gpus=0", "--include-dashboard=false"])
            .arg("--disable-usage-stats")
            .arg(format!(
                "--temp-dir={}",
                head.dir.path().join("ray").display()
            ))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .expect("run ray start");
        assert!(
            status.success(),
            "ray start failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        head
    }
}

impl Drop for RayHead {
    /// Stops every Ray process of the machine: `ray stop` has no way to
    /// name one cluster. The actors die with it, and their workers get
    /// SIGTERM from the kernel (the launcher sets PR_SET_PDEATHSIG).
    fn drop(&mut self) {
        let _ = Command::new(ray_cli())
            .args(["stop", "--force"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `python -m rl_lab_env.ray_workers`, its stdout lines collected; killed
/// when dropped.
struct Launcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
}

impl Launcher {
    fn start(head: &RayHead, store: &str, data: &Path, log: PathBuf) -> Launcher {
        let mut child = ray_environment(&mut Command::new(python()))
            .args([
                "-m",
                "rl_lab_env.ray_workers",
                "--workers",
                "2",
                "--slots",
                "1",
            ])
            .args(["--store", store, "--data"])
            .arg(data)
            .arg("--rl-lab")
            .arg(env!("CARGO_BIN_EXE_rl-lab"))
            .args([
                "--lease",
                "3",
                "--heartbeat",
                "1",
                "--address",
                &head.address,
            ])
            .env("PGPASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start the launcher");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        Launcher { child, lines, log }
    }

    fn printed(&self, line: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l == line)
    }

    /// Its log (stderr: Ray's messages and the workers' logs), for a failure.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /v1/workers`: each worker's entry by name.
fn workers(server: &Server) -> Vec<Value> {
    let (code, list) = get_json(server, "/v1/workers");
    assert_eq!(code, 200, "{list}");
    list["workers"].as_array().unwrap().clone()
}

fn worker<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|w| w["name"] == name)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Polls `ready` every 100 ms until it gives a value; fails with
/// `what` and the launcher's log after `limit`.
fn wait_for<T>(
    launcher: &Launcher,
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let began = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            began.elapsed() < limit,
            "{what} after {limit:?}; the launcher's log:\n{}",
            launcher.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether process `pid` is gone (a zombie counts as gone: it runs nothing).
fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The command line of `pid`'s parent.
fn parent_command(pid: u64) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let parent = status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_string();
    let command = std::fs::read(format!("/proc/{parent}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&command).replace('\0', " ")
}

fn dqn_spec() -> Value {
    support::dqn_checkpointing_spec(5)
}

#[test]
fn ray_restarts_a_killed_worker_and_its_run_completes() {
    let began = Instant::now();
    let cluster = postgres::Postgres::start(PASSWORD);
    cluster.create_database("ray");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &["--store", &cluster.url("ray"), "--slots", "0"],
        &[("PGPASSWORD", PASSWORD)],
        None,
        &[],
    );
    let head = RayHead::start();
    eprintln!("ray head up after {:?}", began.elapsed());
    let log = head.dir.path().join("launcher.log");
    let mut launcher = Launcher::start(&head, &cluster.url("ray"), data.path(), log);

    // Both workers register, each announced by the launcher with its pid,
    // each the child of a Ray actor's process, not of the launcher.
    let names = ["ray-0", "ray-1"];
    let first: Vec<u64> = wait_for(
        &launcher,
        Duration::from_secs(90),
        "ray-0 and ray-1 are not both ready",
        || {
            let list = workers(&server);
            names
                .iter()
                .map(|name| {
                    let pid = worker(&list, name)?["pid"].as_u64()?;
                    launcher
                        .printed(&format!("{name} ready (pid {pid})"))
                        .then_some(pid)
                })
                .collect()
        },
    );
    eprintln!("workers ready after {:?}: {first:?}", began.elapsed());
    for pid in &first {
        let parent = parent_command(*pid);
        assert!(
            parent.starts_with("ray::"),
            "worker {pid}'s parent: {parent}"
        );
    }

    // A run, held by one of them, with a checkpoint on disk.
    let (code, created) = post_json(&server, "/v1/runs", &dqn_spec());
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let checkpoint = data.path().join("runs").join(&id).join("checkpoint.json");
    let holder = wait_for(
        &launcher,
        Duration::from_secs(60),
        "no checkpoint of a running run",
        || {
            let (_, run) = get_json(&server, &format!("/v1/runs/{id}"));
            let running = run["status"] == "running" && checkpoint.exists();
            running.then(|| run["worker"].as_str().unwrap().to_string())
        },
    );
    let index = names.iter().position(|n| *n == holder).expect("a ray-i");
    let old = first[index];

    // SIGKILL to the worker process itself: no hand-back, only Ray.
    let killed_at = now();
    let status = Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eprintln!("killed {holder} (pid {old}) after {:?}", began.elapsed());

    // Ray restarts the actor, which starts a new worker under the same
    // name: a new pid, a heartbeat since the kill.
    let new = wait_for(
        &launcher,
        Duration::from_secs(60),
        &format!("{holder} did not come back"),
        || {
            let list = workers(&server);
            let entry = worker(&list, &holder)?;
            let pid = entry["pid"].as_u64()?;
            let fresh = entry["heartbeat_at"].as_f64()? > killed_at
                && entry["started_at"].as_f64()? > killed_at;
            (pid != old && fresh && !gone(pid)).then_some(pid)
        },
    );
    eprintln!("{holder} back as pid {new} after {:?}", began.elapsed());
    assert!(gone(old), "the killed worker {old} still runs");
    wait_for(
        &launcher,
        Duration::from_secs(10),
        "the launcher did not announce the restarted worker",
        || {
            launcher
                .printed(&format!("{holder} ready (pid {new})"))
                .then_some(())
        },
    );

    // The run's lease lapsed, and a worker resumed it to the end.
    let run = wait_status(&server, &id, &["completed"], Duration::from_secs(120));
    assert!(run["attempts"].as_u64().unwrap() >= 2, "{run}");
    let history: Vec<&str> = run["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history[..3],
        ["queued", "running", "queued"],
        "{run}\nthe launcher's log:\n{}",
        launcher.log()
    );
    assert!(names.contains(&run["worker"].as_str().unwrap()), "{run}");
    eprintln!("run completed after {:?}", began.elapsed());

    // SIGTERM to the launcher: it stops every worker and exits 0, leaving
    // no worker behind.
    let mut pids = first.clone();
    pids.push(new);
    let status = Command::new("kill")
        .args(["-TERM", &launcher.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let asked = Instant::now();
    let exited = loop {
        if let Some(status) = launcher.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(40),
            "the launcher did not exit on SIGTERM; its log:\n{}",
            launcher.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exited.success(), "{exited}; log:\n{}", launcher.log());
    for pid in pids {
        assert!(gone(pid), "worker {pid} outlived the launcher");
    }
    drop(launcher);
    drop(head);
    eprintln!("done after {:?}", began.elapsed());
}
