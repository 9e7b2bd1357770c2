//! A server's local worker processes: `rl-lab serve` executes runs in
//! children of its own (`rl-lab worker`, one slot each), never in the
//! process that answers the API. An abort, an out-of-memory kill or a
//! stack overflow inside a run then takes down one child and its one run;
//! the server takes that run back at once (queued again from its
//! checkpoint, or failed after its attempts) and starts a new child.
//!
//! Each child's stdin is a pipe from here: a byte on it says a run was
//! queued (a SQLite file cannot notify other processes), and its end says
//! the server is gone, so a server killed outright still leaves its runs
//! `interrupted` rather than running on unwatched. Its stdout says, once,
//! where it takes the WebSocket of the `external` runs it executes
//! ([`RELAY_LINE`]), on loopback: the server relays its env processes'
//! connections there (`api/relay.rs`), with a token of its own
//! ([`RELAY_TOKEN_VAR`]) that no client has.

use crate::store::{DeadWorker, Store};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a local worker process is started.
#[derive(Clone, Debug)]
pub struct LocalWorkerCommand {
    /// The program: this binary.
    pub program: PathBuf,
    /// Its arguments (`worker --serve-child --store … --data …`); each
    /// child's `--name` follows them.
    pub args: Vec<OsString>,
    /// How many children run at once.
    pub count: usize,
}

/// The environment variable that gives a local worker the token the
/// server's relayed connections carry.
pub const RELAY_TOKEN_VAR: &str = "RL_LAB_RELAY_TOKEN";

/// The start of the line on a local worker's stdout that gives the
/// address of its `external` runs' WebSocket: `external-runs ADDR`.
pub const RELAY_LINE: &str = "external-runs ";

/// How long a server starting on a SQLite file waits for the last
/// server's local workers to stop (a server killed outright leaves them
/// checkpointing for a few seconds).
const LAST_WORKERS_WAIT: Duration = Duration::from_secs(12);

/// The lock file beside a SQLite database that its server's local workers
/// hold shared while they run.
fn worker_lock_path(database: &Path) -> PathBuf {
    database.with_extension("workers.lock")
}

/// The lock file beside `database`, opened (made if missing).
fn open_worker_lock(database: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(worker_lock_path(database))
}

/// Held shared by a local worker on `database` for as long as it runs.
pub fn hold_worker_lock(database: &Path) -> std::io::Result<std::fs::File> {
    let file = open_worker_lock(database)?;
    file.lock_shared()?;
    Ok(file)
}

/// Waits (up to [`LAST_WORKERS_WAIT`]) until no local worker of an
/// earlier server holds `database`'s lock: their last checkpoints and
/// statuses are stored before this server marks what is still `running`
/// as `interrupted`, and none of them writes after it.
pub fn wait_for_last_workers(database: &Path) {
    let Ok(file) = open_worker_lock(database) else {
        return;
    };
    let began = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return,
            Err(std::fs::TryLockError::WouldBlock) if began.elapsed() < LAST_WORKERS_WAIT => {
                if !told {
                    tracing::info!("waiting for the last server's local workers to stop");
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::warn!(
                    "the last server's local workers still run after {} s; going on without them",
                    LAST_WORKERS_WAIT.as_secs()
                );
                return;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!("cannot lock the local workers' lock file: {e}");
                return;
            }
        }
    }
}

/// How often the supervisor looks for children that ended.
const WATCH_PERIOD: Duration = Duration::from_millis(100);

/// A child that lived at least this long is started again at once; one
/// that died sooner waits, longer each time it does it again (up to
/// [`MAX_BACKOFF`]), so that a child that cannot start (a store it cannot
/// open) is not restarted in a tight loop.
const STEADY: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

struct Slot {
    name: String,
    child: Option<Child>,
    /// Wake-ups for the thread that writes them to the child's stdin (a
    /// write may wait on a stopped child; the API must not). Dropped, it
    /// closes the pipe.
    stdin: Option<SyncSender<()>>,
    started: Instant,
    /// Quick deaths in a row.
    quick_deaths: u32,
    /// When to start the next child, when there is none.
    restart_at: Instant,
    /// Where the child takes its external runs' connections, once it said.
    relay: Arc<Mutex<Option<SocketAddr>>>,
    /// How the last child died, while its runs are not yet all taken
    /// back: no new child takes the name until they are (it would find
    /// them as its own and mark them `interrupted`).
    unreaped: Option<String>,
}

struct Inner {
    command: LocalWorkerCommand,
    /// What relayed connections carry, so that only this server's reach
    /// its workers' loopback port.
    relay_token: String,
    store: Store,
    max_attempts: u32,
    slots: Mutex<Vec<Slot>>,
    closing: AtomicBool,
    /// Called after a dead child's runs were queued again, so that the
    /// other children claim them now.
    wake_all: Box<dyn Fn() + Send + Sync>,
}

/// The children and the thread that watches them.
pub struct LocalWorkers {
    inner: Arc<Inner>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// Env-process connections relayed by the server that wait, per run,
    /// for a worker to take the run.
    waiting: Arc<Mutex<HashMap<String, usize>>>,
}

/// One relayed connection waiting for its run's worker; counted until
/// dropped.
pub struct Waiting {
    run: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.run) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.run);
            }
        }
    }
}

fn lock(slots: &Mutex<Vec<Slot>>) -> MutexGuard<'_, Vec<Slot>> {
    slots.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalWorkers {
    /// Starts `command.count` children named `{server}.{i}` and the thread
    /// that restarts them. The children's runs are claimed and recorded in
    /// `store`, as any worker's.
    pub fn start(
        command: LocalWorkerCommand,
        server: &str,
        store: Store,
        max_attempts: u32,
    ) -> std::io::Result<Arc<LocalWorkers>> {
        let now = Instant::now();
        let slots = (1..=command.count)
            .map(|i| Slot {
                name: format!("{server}.{i}"),
                child: None,
                stdin: None,
                started: now,
                quick_deaths: 0,
                restart_at: now,
                relay: Arc::new(Mutex::new(None)),
                unreaped: None,
            })
            .collect();
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            Inner {
                command,
                relay_token: format!("{:032x}", rand::random::<u128>()),
                store,
                max_attempts,
                slots: Mutex::new(slots),
                closing: AtomicBool::new(false),
                wake_all: Box::new(move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.wake();
                    }
                }),
            }
        });
        {
            let mut slots = lock(&inner.slots);
            for slot in slots.iter_mut() {
                inner.spawn(slot)?;
            }
        }
        let watching = Arc::clone(&inner);
        let supervisor = std::thread::Builder::new()
            .name("local-workers".into())
            .spawn(move || watching.watch())?;
        Ok(Arc::new(LocalWorkers {
            inner,
            supervisor: Mutex::new(Some(supervisor)),
            waiting: Arc::new(Mutex::new(HashMap::new())),
        }))
    }

    /// Tells every child that a run may be waiting.
    pub fn wake(&self) {
        self.inner.wake();
    }

    /// Where local worker `name` takes the WebSocket of the external runs
    /// it executes, and the token to show it; `None` when `name` is not
    /// one of them or has not said yet.
    pub fn relay(&self, name: &str) -> Option<(SocketAddr, String)> {
        let slots = lock(&self.inner.slots);
        let slot = slots.iter().find(|slot| slot.name == name)?;
        let address = (*slot.relay.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some((address, self.inner.relay_token.clone()))
    }

    /// Counts a relayed connection that waits for run `run`'s worker,
    /// unless `most` (the run's copies: one env process each) already do.
    pub fn wait_for(&self, run: &str, most: usize) -> Option<Waiting> {
        let mut counts = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(run.to_string()).or_insert(0);
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(Waiting {
            run: run.to_string(),
            counts: Arc::clone(&self.waiting),
        })
    }

    /// Whether `name` is one of these workers.
    pub fn is_local(&self, name: &str) -> bool {
        lock(&self.inner.slots).iter().any(|slot| slot.name == name)
    }

    /// Closes the children's pipes, so that each checkpoints its run as
    /// `interrupted` and exits, and waits for them up to `timeout`; those
    /// still there then are killed.
    pub fn shutdown(&self, timeout: Duration) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        // The pipes close first, so that the children stop while the
        // supervisor finishes what it was doing; nothing waits holding the
        // slots, which wake-ups and relayed connections read.
        let mut children: Vec<(String, Child)> = {
            let mut slots = lock(&self.inner.slots);
            slots
                .iter_mut()
                .filter_map(|slot| {
                    slot.stdin = None;
                    slot.child.take().map(|child| (slot.name.clone(), child))
                })
                .collect()
        };
        if let Some(supervisor) = self
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = supervisor.join();
        }
        for (name, child) in &mut children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        tracing::warn!(worker = %name, "the local worker did not stop in time: killed");
                        let _ = child.kill();
                        let _ = child.wait();
                        self.inner.interrupt_held(name);
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Drop for LocalWorkers {
    fn drop(&mut self) {
        if !self.inner.closing.load(Ordering::SeqCst) {
            self.shutdown(Duration::from_secs(5));
        }
    }
}

impl Inner {
    fn spawn(&self, slot: &mut Slot) -> std::io::Result<()> {
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .arg("--name")
            .arg(&slot.name)
            .env(RELAY_TOKEN_VAR, &self.relay_token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        // A new cell: the last child's reader may still be draining.
        slot.relay = Arc::new(Mutex::new(None));
        if let Some(stdout) = child.stdout.take() {
            let relay = Arc::clone(&slot.relay);
            std::thread::Builder::new()
                .name("local-worker-out".into())
                .spawn(move || read_relay_address(stdout, &relay))?;
        }
        let stdin = child.stdin.take().and_then(|pipe| {
            let (wakes, woken) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name("local-worker-pipe".into())
                .spawn(move || pass_wakes(pipe, &woken))
                .ok()
                .map(|_| wakes)
        });
        tracing::info!(worker = %slot.name, pid = child.id(), "local worker started");
        slot.child = Some(child);
        slot.stdin = stdin;
        slot.started = Instant::now();
        Ok(())
    }

    /// Marks `interrupted` the runs a worker killed at shutdown still held,
    /// as its own stop would have.
    fn interrupt_held(&self, name: &str) {
        let held = match self
            .store
            .runs(Some(rl_runner::RunStatus::Running), None, usize::MAX)
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(worker = %name, "reading the runs of a killed local worker: {e}");
                return;
            }
        };
        for row in held
            .iter()
            .filter(|row| row.worker.as_deref() == Some(name))
        {
            let why = "the server stopped and the run's local worker did not stop in time; resume it from its last checkpoint";
            if let Err(e) = self.store.set_status_held(
                &row.id,
                Some(name),
                rl_runner::RunStatus::Interrupted,
                Some(why.into()),
                None,
            ) {
                tracing::warn!(run_id = %row.id, "marking a killed worker's run interrupted: {e}");
            }
        }
    }

    /// Queues again (or fails) the runs `dead` held, and checks that none
    /// is left in its name.
    fn take_back(&self, dead: &DeadWorker) -> Result<(), String> {
        self.store
            .reap_dead(dead.clone(), self.max_attempts)
            .map_err(|e| e.to_string())?;
        let held = self
            .store
            .runs(Some(rl_runner::RunStatus::Running), None, usize::MAX)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|row| row.worker.as_deref() == Some(dead.name.as_str()))
            .count();
        match held {
            0 => Ok(()),
            n => Err(format!("{n} of its runs are still held in its name")),
        }
    }

    fn wake(&self) {
        for slot in lock(&self.slots).iter_mut() {
            if let Some(stdin) = &slot.stdin {
                // One wake-up waiting to be passed on is as good as many.
                let _ = stdin.try_send(());
            }
        }
    }

    /// Until shutdown: takes back the runs of children that died and
    /// starts new ones.
    fn watch(&self) {
        while !self.closing.load(Ordering::SeqCst) {
            std::thread::sleep(WATCH_PERIOD);
            {
                let mut slots = lock(&self.slots);
                for slot in slots.iter_mut() {
                    if self.closing.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some(child) = slot.child.as_mut() {
                        let status = match child.try_wait() {
                            Ok(None) => continue,
                            Ok(Some(status)) => describe_exit(status),
                            Err(e) => format!("waiting for it failed: {e}"),
                        };
                        let lived = slot.started.elapsed();
                        slot.child = None;
                        slot.stdin = None;
                        slot.relay = Arc::new(Mutex::new(None));
                        slot.unreaped = Some(status.clone());
                        if lived < STEADY {
                            slot.quick_deaths += 1;
                        } else {
                            slot.quick_deaths = 0;
                        }
                        let backoff = match slot.quick_deaths {
                            0 | 1 => Duration::ZERO,
                            n => (Duration::from_millis(250) * 2u32.saturating_pow(n - 2))
                                .min(MAX_BACKOFF),
                        };
                        slot.restart_at = Instant::now() + backoff;
                        tracing::error!(
                            worker = %slot.name,
                            "local worker {status} after {:.1} s; its run is taken back{}",
                            lived.as_secs_f64(),
                            if backoff.is_zero() {
                                String::new()
                            } else {
                                format!(", and a new worker starts in {:.1} s", backoff.as_secs_f64())
                            }
                        );
                    }
                }
            }
            // Before a new child takes the name, its runs must be back in
            // the queue (or failed): tried again each tick until they are.
            let unreaped: Vec<DeadWorker> = {
                let slots = lock(&self.slots);
                slots
                    .iter()
                    .filter_map(|slot| {
                        Some(DeadWorker {
                            name: slot.name.clone(),
                            cause: slot.unreaped.clone()?,
                        })
                    })
                    .collect()
            };
            let mut reaped = Vec::new();
            for dead in unreaped {
                match self.take_back(&dead) {
                    Ok(()) => reaped.push(dead.name),
                    Err(e) => tracing::error!(
                        worker = %dead.name,
                        "taking back a dead local worker's runs: {e}; tried again shortly"
                    ),
                }
            }
            if !reaped.is_empty() {
                for slot in lock(&self.slots).iter_mut() {
                    if reaped.contains(&slot.name) {
                        slot.unreaped = None;
                    }
                }
            }
            let mut slots = lock(&self.slots);
            for slot in slots.iter_mut() {
                if slot.child.is_none()
                    && slot.unreaped.is_none()
                    && Instant::now() >= slot.restart_at
                {
                    if self.closing.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(e) = self.spawn(slot) {
                        tracing::error!(worker = %slot.name, "starting a local worker: {e}");
                        slot.quick_deaths += 1;
                        slot.restart_at = Instant::now() + MAX_BACKOFF;
                    }
                }
            }
            drop(slots);
            // Their runs are queued again: the other workers take them now.
            if !reaped.is_empty() {
                (self.wake_all)();
            }
        }
    }
}

/// Takes the relay address from a child's stdout, and reads the rest
/// until it closes (a full pipe would stop the child).
fn read_relay_address(stdout: std::process::ChildStdout, relay: &Mutex<Option<SocketAddr>>) {
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else {
            return;
        };
        if let Some(address) = line
            .strip_prefix(RELAY_LINE)
            .and_then(|address| address.trim().parse().ok())
        {
            *relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(address);
        }
    }
}

/// Writes a byte to the child's stdin for each wake-up, until the
/// sender is dropped (the pipe then closes: the child stops) or the child
/// is gone.
fn pass_wakes(mut pipe: ChildStdin, woken: &std::sync::mpsc::Receiver<()>) {
    while woken.recv().is_ok() {
        if pipe.write_all(b"w").and_then(|()| pipe.flush()).is_err() {
            return;
        }
    }
}

/// How a child ended, for its run's history: `was killed by signal 6
/// (SIGABRT…)`, `exited with code 1`. (Signal numbers are Linux's.)
fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        let name = match signal {
            6 => " (SIGABRT: the process aborted)",
            9 => " (SIGKILL: killed from outside, or by the kernel for want of memory)",
            11 => " (SIGSEGV: an invalid memory access)",
            7 => " (SIGBUS)",
            4 => " (SIGILL)",
            8 => " (SIGFPE)",
            15 => " (SIGTERM)",
            2 => " (SIGINT)",
            _ => "",
        };
        format!("was killed by signal {signal}{name}")
    } else {
        match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => "ended".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn an_exit_is_described_by_its_signal_or_code() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(6)),
            "was killed by signal 6 (SIGABRT: the process aborted)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with code 3"
        );
    }
}
