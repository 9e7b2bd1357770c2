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
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
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
        }))
    }

    /// Tells every child that a run may be waiting.
    pub fn wake(&self) {
        self.inner.wake();
    }

    /// The children's names, in slot order.
    pub fn names(&self) -> Vec<String> {
        lock(&self.inner.slots)
            .iter()
            .map(|slot| slot.name.clone())
            .collect()
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

    /// Whether `name` is one of these workers.
    pub fn is_local(&self, name: &str) -> bool {
        lock(&self.inner.slots).iter().any(|slot| slot.name == name)
    }

    /// The children's process ids (those alive), in slot order.
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.inner.slots)
            .iter()
            .filter_map(|slot| slot.child.as_ref().map(Child::id))
            .collect()
    }

    /// Closes the children's pipes, so that each checkpoints its run as
    /// `interrupted` and exits, and waits for them up to `timeout`; those
    /// still there then are killed.
    pub fn shutdown(&self, timeout: Duration) {
        self.inner.closing.store(true, Ordering::SeqCst);
        if let Some(supervisor) = self
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = supervisor.join();
        }
        let mut slots = lock(&self.inner.slots);
        for slot in slots.iter_mut() {
            slot.stdin = None;
        }
        let deadline = Instant::now() + timeout;
        for slot in slots.iter_mut() {
            let Some(child) = slot.child.as_mut() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        tracing::warn!(worker = %slot.name, "the local worker did not stop in time: killed");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            slot.child = None;
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
        *slot.relay.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
            let mut died = Vec::new();
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
                        *slot.relay.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
                        died.push(DeadWorker {
                            name: slot.name.clone(),
                            cause: status,
                        });
                    }
                }
            }
            let any_died = !died.is_empty();
            // Before a new child takes the name: its runs must be back in
            // the queue (or failed) first.
            for dead in died {
                if let Err(e) = self.store.reap_dead(dead, self.max_attempts) {
                    tracing::error!(
                        "taking back a dead local worker's runs: {e}; their leases lapse instead"
                    );
                }
            }
            let mut slots = lock(&self.slots);
            for slot in slots.iter_mut() {
                if slot.child.is_none() && Instant::now() >= slot.restart_at {
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
            if any_died {
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
