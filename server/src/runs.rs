//! Runs on dedicated worker threads: a queue in submission order, a
//! concurrency limit, cancellation, resume from checkpoints, and a clean
//! `interrupted` state at shutdown.
//!
//! Metrics flow from a worker into the run folder's `metrics.jsonl`, the
//! TensorBoard event file and the store's channel; the store commits them
//! and publishes them to live subscribers. Nothing a subscriber does can
//! block a worker.

use crate::store::{ClaimScope, MetricValue, Store, StoreError, StoreFault, WindowColumns, Write};
use crate::tensorboard::EventWriter;
use rl_agent::{Agent, Aggregate, Record, Sink};
use rl_external::{Ending, EnvEnd, ExternalConfig, Link};
use rl_runner::train::{CarriedState, Counters, Hooks, Progress};
use rl_runner::{CancelFlag, Engine, RunFolder, RunSpec, RunStatus};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a running run checkpoints besides its spec's own period, so a
/// crash loses at most this much training.
pub const CHECKPOINT_PERIOD: Duration = Duration::from_secs(30);

/// How long `POST /cancel` waits for a running run to stop, so that it can
/// answer `cancelled` (the worker stops within 64 steps, then checkpoints);
/// under the 2 s a client is promised, with room for the request itself.
pub const CANCEL_WAIT: Duration = Duration::from_millis(1500);

/// Why an env process is refused a run another server executes.
pub(crate) const EXECUTES_ELSEWHERE: &str =
    "the run executes on another server (its `worker`); its env processes connect there";

/// Why an env process is refused a run that is neither queued nor running.
pub(crate) const NOT_QUEUED_OR_RUNNING: &str =
    "env processes connect to a queued or running run only";

/// What an external run's connections are told when the server stops.
const SHUTTING_DOWN: &str =
    "the server is shutting down; the run was interrupted and can be resumed";

/// Why a worker was asked to stop a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// `POST /cancel`.
    Cancelled,
    /// The server is shutting down.
    Interrupted,
    /// A worker process is shutting down: the run goes back to the queue,
    /// for another worker to resume from its checkpoint.
    HandedBack,
    /// Its lease was lost (this process stalled or was cut off, and the
    /// run was queued again): it is another worker's now, and this one
    /// records nothing more of it.
    LeaseLost,
}

/// How this process takes part in the queue that every server and worker
/// sharing the store claims runs from (docs/scale.md).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Its name in the store: who holds which run.
    pub name: String,
    /// How long a claim holds without renewal: a process that stops
    /// renewing (killed, cut off) loses its runs after this.
    pub lease: Duration,
    /// How often leases are renewed.
    pub heartbeat: Duration,
    /// Most claims of one run: a run whose worker is lost this many times
    /// ends `failed`.
    pub max_attempts: u32,
    /// Which runs it claims: only a server (or its local workers, to which
    /// it relays the connections) takes runs of `external` envs, since
    /// their env processes connect to the server.
    pub claims: ClaimScope,
    /// Whether a shutdown hands its runs back to the queue (a worker) or
    /// marks them `interrupted` (a server and its local workers, whose user
    /// resumes them).
    pub hands_back: bool,
    /// Whether the store is this server's alone (SQLite, shared with its
    /// own local workers at most): runs found `running` when it starts died
    /// with the last server, and become `interrupted`.
    pub owns_store: bool,
}

impl NodeConfig {
    /// A server's: named `HOST-PID`, 15 s leases renewed every 5 s, three
    /// attempts.
    pub fn server() -> NodeConfig {
        NodeConfig {
            name: default_node_name(),
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
            max_attempts: 3,
            claims: ClaimScope::Any,
            hands_back: false,
            owns_store: false,
        }
    }
}

/// `HOST-PID`: unique among the processes sharing a store.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// How long an idle worker thread waits for a wake-up before it looks for
/// queued runs again: a fallback, since runs submitted here and (with
/// PostgreSQL) anywhere wake it at once.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// How often a process looks for cancels asked of its runs through the
/// store (by another server), and for queued runs when nothing wakes it:
/// under the 2 s a cancel is promised within.
const POLL_PERIOD: Duration = Duration::from_millis(500);

/// Where a running run stands, for `GET /runs/{id}` and `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveProgress {
    /// Env steps so far.
    pub steps: u64,
    /// Episodes so far.
    pub episodes: u64,
    /// Env steps per second since (re)start.
    pub steps_per_second: f64,
    /// Mean return of the last 100 episodes (since the last start).
    pub recent_mean_return: Option<f64>,
}

struct Active {
    cancel: CancelFlag,
    stop: Option<StopReason>,
    progress: Arc<Mutex<LiveProgress>>,
    /// Its training is over and its end is being recorded: its lease is
    /// not renewed (the status it ends with releases it).
    ending: bool,
}

/// An external run's link, from the first connection (or the start of
/// the run) until the run leaves `queued`/`running`.
struct ExternalSlot {
    link: Arc<Link>,
    /// One per copy (`env.num_envs`); taken by the worker that runs it.
    env_ends: Option<Vec<EnvEnd>>,
}

#[derive(Default)]
struct Queue {
    /// Counts wake-ups (a run submitted or queued again here, a notice
    /// from the store): a worker thread that found nothing to claim waits
    /// only if none came since it looked.
    wakes: u64,
    active: HashMap<String, Active>,
    external: HashMap<String, ExternalSlot>,
    closing: bool,
}

impl Queue {
    /// Run `id`'s link, with a lane per copy, made on first use.
    fn external_slot(
        &mut self,
        id: &str,
        config: &ExternalConfig,
        num_envs: usize,
    ) -> &mut ExternalSlot {
        self.external.entry(id.to_string()).or_insert_with(|| {
            let (link, env_ends) = rl_external::link(id, config, num_envs);
            ExternalSlot {
                link,
                env_ends: Some(env_ends),
            }
        })
    }

    /// Tells run `id`'s connections (if any) that it ended.
    fn end_external(&mut self, id: &str, ending: Ending) {
        if let Some(slot) = self.external.remove(id) {
            slot.link.end(ending);
        }
    }
}

/// Errors of run control.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No run has this id.
    #[error("run '{0}' not found")]
    NotFound(String),
    /// The operation does not apply in the run's status.
    #[error("run '{id}' is {status}: {why}")]
    Conflict {
        /// The run.
        id: String,
        /// Its status.
        status: RunStatus,
        /// What would have to hold.
        why: &'static str,
    },
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run folder could not be removed.
    #[error("removing {path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Why a run failed. Its [`RunFailure::client_message`] is the failed
/// run's `error`; the full message goes to the server's log only.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's row was deleted under the worker.
    #[error("run '{0}' vanished from the store")]
    Vanished(String),
    /// Building, restoring or training the run failed, or its folder.
    #[error(transparent)]
    Runner(#[from] rl_runner::Error),
    /// The run folder could not be fetched from the mirror.
    #[error("fetching the run folder: {0}")]
    Artifacts(String),
    /// The TensorBoard event file could not be created.
    #[error("TensorBoard event file in {path}: {source}")]
    TensorBoard {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl RunFailure {
    /// What the run's `error` tells clients. The run's own failures (a
    /// diverged loss, an environment that refused a step, a spec that no
    /// longer builds) are told whole: they are the user's to fix. The
    /// server's own (its store, its files) say only what part failed: their
    /// detail names SQLite and paths, and is in the server's log, under the
    /// run's id.
    pub fn client_message(&self) -> String {
        const SEE_LOG: &str = "the server's log has the details under this run's id";
        if self.is_disk_full() {
            // The operator's to mend, and the user's to know: said plainly,
            // still without the paths.
            return format!(
                "no space left on the server's disk: the run's records could not be written; {SEE_LOG}"
            );
        }
        match self {
            RunFailure::Store(_) => format!("the server's store failed during the run; {SEE_LOG}"),
            RunFailure::TensorBoard { .. } => {
                format!("the server could not create the run's TensorBoard files; {SEE_LOG}")
            }
            RunFailure::Runner(rl_runner::Error::Io { .. }) => {
                format!("the server could not read or write the run's files; {SEE_LOG}")
            }
            RunFailure::Artifacts(_) => format!(
                "the run's folder could not be fetched from the object storage (--artifacts); {SEE_LOG}"
            ),
            RunFailure::Vanished(_) | RunFailure::Runner(_) => self.to_string(),
        }
    }

    /// Whether the disk ran out of space: a file write said `ENOSPC`
    /// (or over quota), or SQLite said its disk is full.
    pub fn is_disk_full(&self) -> bool {
        let full = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        };
        match self {
            RunFailure::Store(e) => e.fault() == Some(StoreFault::DiskFull),
            RunFailure::TensorBoard { source, .. }
            | RunFailure::Runner(rl_runner::Error::Io { source, .. })
            | RunFailure::Runner(rl_runner::Error::Agent(rl_agent::Error::Sink(source))) => {
                full(source)
            }
            RunFailure::Vanished(_) | RunFailure::Runner(_) | RunFailure::Artifacts(_) => false,
        }
    }
}

/// Runs' queue and workers.
pub struct RunManager {
    store: Store,
    engine: Arc<Engine>,
    data: PathBuf,
    node: NodeConfig,
    slots: usize,
    /// Where run folders are mirrored (`--artifacts`), when they are.
    objects: Option<Arc<crate::objects::Objects>>,
    queue: Arc<(Mutex<Queue>, Condvar)>,
    /// Told (with the queue's mutex) each time a worker lets go of a run.
    ended: Condvar,
    /// Wakes the heartbeat thread early, at shutdown (worker threads wait
    /// on the queue's own condvar, so a wake-up for them is never taken by
    /// the heartbeat).
    tick: Condvar,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Also told when a run is queued here: a server's local worker
    /// processes, which a SQLite file cannot notify.
    also_wake: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // A worker that panicked while holding the lock left the queue itself
    // consistent (every update is a single insert or remove).
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RunManager {
    /// Starts `slots` threads that claim queued runs from the store and
    /// execute them (none: a server that only answers), and the heartbeat
    /// thread. On a store of its own (SQLite), runs found `running` died
    /// with the last server and become `interrupted`; on one shared with
    /// other servers (PostgreSQL), only those this server's name held do, and other
    /// processes' runs are left to their leases. A worker (`hands_back`)
    /// leaves even its own name's runs to their leases, which requeue
    /// them: a worker restarted under its name (by Ray, a supervisor)
    /// must not end runs its predecessor held, and a second process given
    /// a live worker's name by mistake must not end that worker's runs.
    pub fn start(
        store: Store,
        engine: Arc<Engine>,
        data: &Path,
        slots: usize,
        node: NodeConfig,
        objects: Option<Arc<crate::objects::Objects>>,
    ) -> Result<Arc<RunManager>, RunError> {
        let shared = store.shared();
        for row in store.runs(Some(RunStatus::Running), None, usize::MAX)? {
            let own = row.worker.as_deref() == Some(node.name.as_str());
            if !shared || node.owns_store || (own && !node.hands_back) {
                store.set_status(
                    &row.id,
                    RunStatus::Interrupted,
                    Some("the server stopped while the run was running".into()),
                    None,
                )?;
            }
        }
        let manager = Arc::new(RunManager {
            store: store.clone(),
            engine,
            data: data.to_path_buf(),
            node,
            slots,
            objects,
            queue: Arc::new((Mutex::new(Queue::default()), Condvar::new())),
            ended: Condvar::new(),
            tick: Condvar::new(),
            workers: Mutex::new(Vec::new()),
            also_wake: Mutex::new(None),
        });
        // A run queued by another process wakes the idle threads at once.
        let queue = Arc::downgrade(&manager.queue);
        store.on_queued(Box::new(move || {
            if let Some(queue) = queue.upgrade() {
                lock(&queue.0).wakes += 1;
                queue.1.notify_all();
            }
        }));
        let spawn = |name: String, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(body)
                .map_err(|e| RunError::Io {
                    path: "worker thread".into(),
                    source: e,
                })
        };
        let mut handles = Vec::new();
        for index in 0..slots {
            let worker = Arc::clone(&manager);
            handles.push(spawn(
                format!("run-worker-{index}"),
                Box::new(move || worker.work()),
            )?);
        }
        let beating = Arc::clone(&manager);
        handles.push(spawn(
            "run-heartbeat".into(),
            Box::new(move || beating.heartbeat()),
        )?);
        *manager.workers.lock().unwrap_or_else(|p| p.into_inner()) = handles;
        Ok(manager)
    }

    /// This process's name in the store.
    pub fn node_name(&self) -> &str {
        &self.node.name
    }

    /// Tells idle worker threads, here and in the processes given to
    /// [`RunManager::also_wake`], that a run may be waiting.
    pub fn wake(&self) {
        let (mutex, ready) = &*self.queue;
        lock(mutex).wakes += 1;
        ready.notify_all();
        self.wake_others();
    }

    /// Has `wake` called too whenever a run is queued here.
    pub fn also_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        *self.also_wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
    }

    fn wake_others(&self) {
        if let Some(wake) = &*self.also_wake.lock().unwrap_or_else(|p| p.into_inner()) {
            wake();
        }
    }

    /// Whether this process executes nothing and has no run left: a
    /// worker with `--exit-when-idle` may stop then.
    pub fn is_idle(&self) -> bool {
        lock(&self.queue.0).active.is_empty()
    }

    /// The heartbeat: every [`POLL_PERIOD`] it passes on cancels asked of
    /// this process's runs through the store; every `heartbeat` it renews
    /// their leases (a run whose lease was lost is stopped here without a
    /// word more to the store), records this process in the workers list,
    /// and queues again the runs of processes that stopped renewing theirs.
    fn heartbeat(&self) {
        let info = crate::store::WorkerInfo {
            name: self.node.name.clone(),
            host: default_node_name()
                .rsplit_once('-')
                .map_or_else(String::new, |(host, _)| host.to_string()),
            pid: std::process::id(),
            slots: u32::try_from(self.slots).unwrap_or(u32::MAX),
            started_at: crate::store::now(),
        };
        let mut last_beat: Option<Instant> = None;
        loop {
            {
                let queue = lock(&self.queue.0);
                if queue.closing {
                    return;
                }
                let ids: Vec<String> = queue
                    .active
                    .iter()
                    .filter(|(_, active)| !active.ending)
                    .map(|(id, _)| id.clone())
                    .collect();
                drop(queue);
                if !ids.is_empty() {
                    match self.store.cancel_requests(&self.node.name) {
                        Ok(asked) => {
                            for id in asked {
                                self.stop_local(&id, StopReason::Cancelled);
                            }
                        }
                        Err(e) => tracing::warn!("reading cancel requests: {e}"),
                    }
                }
                if last_beat.is_none_or(|at| at.elapsed() >= self.node.heartbeat) {
                    last_beat = Some(Instant::now());
                    self.beat(&info, ids);
                }
            }
            let queue = lock(&self.queue.0);
            if queue.closing {
                return;
            }
            let _ = self
                .tick
                .wait_timeout(queue, POLL_PERIOD)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// One heartbeat: leases renewed, this process listed, lost runs of
    /// others queued again.
    fn beat(&self, info: &crate::store::WorkerInfo, ids: Vec<String>) {
        if !ids.is_empty() {
            match self
                .store
                .renew_leases(&self.node.name, ids.clone(), self.node.lease)
            {
                Ok(held) => {
                    for id in ids.iter().filter(|id| !held.contains(id)) {
                        tracing::error!(
                            run_id = %id,
                            "lost the run's lease (this process did not renew it in time); \
                             it is another worker's now and stops here"
                        );
                        self.stop_local(id, StopReason::LeaseLost);
                    }
                }
                Err(e) => tracing::warn!("renewing leases: {e}"),
            }
        }
        if let Err(e) = self.store.heartbeat(info) {
            tracing::warn!("recording the heartbeat: {e}");
        }
        match self.store.reap(self.node.max_attempts) {
            Ok(()) => self.wake(),
            Err(e) => tracing::warn!("queueing the runs of lost workers again: {e}"),
        }
    }

    /// Whether this process still holds run `id`'s lease (renewing it):
    /// asked before each checkpoint, which must not overwrite a newer one
    /// of another holder. An unanswered store counts as held: the
    /// heartbeat decides then.
    fn still_holds(&self, id: &str) -> bool {
        match self
            .store
            .renew_leases(&self.node.name, vec![id.to_string()], self.node.lease)
        {
            Ok(held) => !held.is_empty(),
            Err(e) => {
                tracing::warn!(run_id = %id, "renewing the lease before a checkpoint: {e}");
                true
            }
        }
    }

    /// Asks a run executing here to stop, for `reason`.
    fn stop_local(&self, id: &str, reason: StopReason) {
        let mut queue = lock(&self.queue.0);
        if let Some(active) = queue.active.get_mut(id) {
            active.stop.get_or_insert(reason);
            active.cancel.cancel();
            if let Some(slot) = queue.external.get(id) {
                slot.link.stop();
            }
        }
    }

    /// The folder of run `id`.
    pub fn folder(&self, id: &str) -> PathBuf {
        self.data.join("runs").join(id)
    }

    /// Where run folders are mirrored, when they are (`--artifacts`).
    pub fn objects(&self) -> Option<&Arc<crate::objects::Objects>> {
        self.objects.as_ref()
    }

    /// Run `id`'s folder here, with what the mirror holds of it: the
    /// mirror's copy is the newest (each checkpoint goes there as it is
    /// written, by whichever process held the run), so a folder left here
    /// by an earlier attempt never wins over it.
    pub fn fetch_folder(&self, id: &str) -> Result<PathBuf, crate::objects::ObjectsError> {
        let folder = self.folder(id);
        if let Some(objects) = &self.objects {
            let fetched = objects.download_all(id, &folder)?;
            if fetched > 0 {
                tracing::info!(run_id = %id, files = fetched, "run folder fetched from {}", objects.url());
            }
        }
        Ok(folder)
    }

    /// Copies files of run `id`'s folder to the mirror, if there is one;
    /// all of them when `names` is empty. A failure is logged: the files
    /// are still in this process's folder.
    pub fn mirror(&self, id: &str, names: &[&str]) {
        let Some(objects) = &self.objects else {
            return;
        };
        let folder = self.folder(id);
        let sent = if names.is_empty() {
            objects.upload_all(id, &folder)
        } else {
            objects.upload(id, &folder, names)
        };
        if let Err(e) = sent {
            tracing::error!(run_id = %id, "mirroring the run folder: {e}");
        }
    }

    /// Stores a validated spec as a queued run and queues it.
    pub fn submit(&self, spec: &RunSpec) -> Result<String, RunError> {
        let value = serde_json::to_value(spec).map_err(StoreError::from)?;
        let (mutex, ready) = &*self.queue;
        if lock(mutex).closing {
            return Err(RunError::ShuttingDown);
        }
        let id = self.store.insert_run(value)?;
        lock(mutex).wakes += 1;
        ready.notify_one();
        self.wake_others();
        Ok(id)
    }

    /// Queues every run of a sweep, stored in one transaction: all or
    /// none. `runs` holds each run's configuration index and spec; the
    /// sweep's id and the runs' ids come back.
    pub fn submit_sweep(
        &self,
        name: String,
        spec: Value,
        configurations: Value,
        runs: &[(usize, RunSpec)],
    ) -> Result<(String, Vec<String>), RunError> {
        let runs = runs
            .iter()
            .map(|(configuration, spec)| {
                serde_json::to_value(spec).map(|value| (*configuration, value))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from)?;
        let (mutex, ready) = &*self.queue;
        if lock(mutex).closing {
            return Err(RunError::ShuttingDown);
        }
        let (sweep, ids) = self.store.insert_sweep(name, spec, configurations, runs)?;
        lock(mutex).wakes += 1;
        ready.notify_all();
        self.wake_others();
        Ok((sweep, ids))
    }

    /// Live progress of a running run.
    pub fn progress(&self, id: &str) -> Option<LiveProgress> {
        let queue = lock(&self.queue.0);
        let active = queue.active.get(id)?;
        let progress = *active.progress.lock().unwrap_or_else(|p| p.into_inner());
        Some(progress)
    }

    /// Every running run's progress, by run id: this process's own, and
    /// with a shared store the others' as their workers last stored it.
    pub fn all_progress(&self) -> Vec<(String, LiveProgress)> {
        let mut all: Vec<(String, LiveProgress)> = {
            let queue = lock(&self.queue.0);
            queue
                .active
                .iter()
                .map(|(id, a)| {
                    let progress = *a.progress.lock().unwrap_or_else(|p| p.into_inner());
                    (id.clone(), progress)
                })
                .collect()
        };
        if self.store.shared() {
            match self.store.runs(Some(RunStatus::Running), None, 10_000) {
                Ok(rows) => {
                    for row in rows {
                        if let Some(live) = self.live(&row)
                            && !all.iter().any(|(id, _)| *id == row.id)
                        {
                            all.push((row.id, live));
                        }
                    }
                }
                Err(e) => tracing::warn!("reading running runs' progress: {e}"),
            }
        }
        all
    }

    /// Where run `row` stands while it runs: live when it runs here, else
    /// as its worker last stored it (a shared store).
    pub fn live(&self, row: &crate::store::RunRow) -> Option<LiveProgress> {
        if let Some(progress) = self.progress(&row.id) {
            return Some(progress);
        }
        (row.status == RunStatus::Running).then_some(())?;
        Some(LiveProgress {
            steps: row.steps,
            episodes: row.episodes,
            steps_per_second: row.steps_per_second?,
            recent_mean_return: row.recent_mean_return,
        })
    }

    /// Cancels a queued or running run. Idempotent: an ended run is left
    /// as it is. Returns the status after the call: a running run is waited
    /// for up to [`CANCEL_WAIT`] while its worker checkpoints and stops, and
    /// reports `running` only if it has not stopped by then.
    pub fn cancel(&self, id: &str) -> Result<RunStatus, RunError> {
        let row = self
            .store
            .run(id)?
            .ok_or_else(|| RunError::NotFound(id.into()))?;
        let mut queue = lock(&self.queue.0);
        if let Some(active) = queue.active.get_mut(id) {
            active.stop.get_or_insert(StopReason::Cancelled);
            active.cancel.cancel();
            if let Some(slot) = queue.external.get(id) {
                slot.link.stop();
            }
            // The worker stores the final status before it lets go of the
            // run, so once the run is no longer active its row is the truth.
            let deadline = Instant::now() + CANCEL_WAIT;
            while queue.active.contains_key(id) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(RunStatus::Running);
                }
                queue = self
                    .ended
                    .wait_timeout(queue, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            drop(queue);
            let row = self
                .store
                .run(id)?
                .ok_or_else(|| RunError::NotFound(id.into()))?;
            return Ok(row.status);
        }
        drop(queue);
        // A queued run is cancelled where it waits, unless a worker took it
        // meanwhile: then it is cancelled there, below.
        if row.status == RunStatus::Queued && self.store.cancel_queued(id)? {
            lock(&self.queue.0).end_external(id, Ending::Stopped("the run was cancelled".into()));
            return Ok(RunStatus::Cancelled);
        }
        let row = self
            .store
            .run(id)?
            .ok_or_else(|| RunError::NotFound(id.into()))?;
        if row.status != RunStatus::Running {
            return Ok(row.status);
        }
        // Held by another process (or taken here since): its heartbeat
        // hears of the cancel within a poll period, and the run stops
        // within 64 steps, then checkpoints.
        self.store.request_cancel(id)?;
        self.stop_local(id, StopReason::Cancelled);
        let deadline = Instant::now() + CANCEL_WAIT;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let row = self
                .store
                .run(id)?
                .ok_or_else(|| RunError::NotFound(id.into()))?;
            if row.status != RunStatus::Running || Instant::now() >= deadline {
                return Ok(row.status);
            }
        }
    }

    /// Queues an `interrupted` or `cancelled` run, or a `failed` one that
    /// has a checkpoint, again; it continues from its last checkpoint under
    /// the same id.
    pub fn resume(&self, id: &str) -> Result<(), RunError> {
        let row = self
            .store
            .run(id)?
            .ok_or_else(|| RunError::NotFound(id.into()))?;
        let (mutex, ready) = &*self.queue;
        let mut queue = lock(mutex);
        if queue.closing {
            return Err(RunError::ShuttingDown);
        }
        // A failed run resumes from its last checkpoint once its cause is
        // mended (a remote env server back up); without one there is
        // nothing to resume from.
        let has_checkpoint = self.folder(id).join("checkpoint.json").is_file()
            || self.objects.as_ref().is_some_and(|objects| {
                objects
                    .list(id)
                    .is_ok_and(|files| files.iter().any(|(name, _)| name == "checkpoint.json"))
            });
        let failed_with_checkpoint = row.status == RunStatus::Failed && has_checkpoint;
        if queue.active.contains_key(id) || !(row.status.is_resumable() || failed_with_checkpoint) {
            return Err(RunError::Conflict {
                id: id.into(),
                status: row.status,
                why: "only interrupted or cancelled runs, and failed runs with a checkpoint, can be resumed",
            });
        }
        self.store.set_status(id, RunStatus::Queued, None, None)?;
        queue.wakes += 1;
        ready.notify_one();
        drop(queue);
        self.wake_others();
        Ok(())
    }

    /// Run `id`'s link, for an env process that connects to it: only while
    /// the run is queued or running (`status` is the stored one, for the
    /// refusal).
    pub fn external_link(
        &self,
        id: &str,
        status: RunStatus,
        worker: Option<&str>,
        config: &ExternalConfig,
        num_envs: usize,
    ) -> Result<Arc<Link>, RunError> {
        let mut queue = lock(&self.queue.0);
        // Claimed here a moment ago, its thread not yet started: the link
        // made now is the one that thread takes.
        let claimed_here = status == RunStatus::Running && worker == Some(self.node.name.as_str());
        if !queue.active.contains_key(id) && status != RunStatus::Queued && !claimed_here {
            return Err(RunError::Conflict {
                id: id.into(),
                status,
                why: if status == RunStatus::Running {
                    EXECUTES_ELSEWHERE
                } else {
                    NOT_QUEUED_OR_RUNNING
                },
            });
        }
        Ok(Arc::clone(&queue.external_slot(id, config, num_envs).link))
    }

    /// Removes a run that is not running: its rows and its folder.
    pub fn delete(&self, id: &str) -> Result<(), RunError> {
        let row = self
            .store
            .run(id)?
            .ok_or_else(|| RunError::NotFound(id.into()))?;
        let mut queue = lock(&self.queue.0);
        if queue.active.contains_key(id) || row.status == RunStatus::Running {
            return Err(RunError::Conflict {
                id: id.into(),
                status: row.status,
                why: "cancel it first; a running run cannot be deleted",
            });
        }
        queue.end_external(id, Ending::Stopped("the run was deleted".into()));
        // The removals below may be slow (a bucket far away): the queue,
        // which the heartbeat needs, is not held through them.
        drop(queue);
        // Rows first: a folder without rows is invisible, rows without a
        // folder would list a run whose files are gone.
        self.store.delete_run(id)?;
        if let Some(objects) = &self.objects
            && let Err(e) = objects.delete_run(id)
        {
            tracing::error!(run_id = %id, "removing the run's mirrored files: {e}");
        }
        let folder = self.folder(id);
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RunError::Io {
                path: folder.display().to_string(),
                source: e,
            }),
        }
    }

    /// Stops taking runs, asks running ones to checkpoint and stop as
    /// `interrupted`, and waits for the workers up to `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        {
            let (mutex, ready) = &*self.queue;
            let mut queue = lock(mutex);
            queue.closing = true;
            let reason = if self.node.hands_back {
                StopReason::HandedBack
            } else {
                StopReason::Interrupted
            };
            for active in queue.active.values_mut() {
                active.stop.get_or_insert(reason);
                active.cancel.cancel();
            }
            // Running runs' links end with their runs; queued ones' now.
            let queued: Vec<String> = queue
                .external
                .keys()
                .filter(|id| !queue.active.contains_key(*id))
                .cloned()
                .collect();
            for id in queued {
                queue.end_external(&id, Ending::Stopped(SHUTTING_DOWN.into()));
            }
            for slot in queue.external.values() {
                slot.link.stop();
            }
            ready.notify_all();
            self.tick.notify_all();
        }
        let deadline = Instant::now() + timeout;
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in handles {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        self.store.flush();
    }

    /// Claims the next queued run from the store for a worker thread,
    /// waiting while there is none; `None` once the process closes.
    fn claim_next(&self) -> Option<(String, CancelFlag, Arc<Mutex<LiveProgress>>)> {
        let (mutex, ready) = &*self.queue;
        loop {
            let seen = {
                let queue = lock(mutex);
                if queue.closing {
                    return None;
                }
                queue.wakes
            };
            let claimed = self
                .store
                .claim(&self.node.name, self.node.lease, self.node.claims);
            let mut queue = lock(mutex);
            match claimed {
                Ok(Some(id)) => {
                    if queue.closing {
                        drop(queue);
                        // Taken as the process closed: back to the queue.
                        self.put_back(&id);
                        return None;
                    }
                    if let Some(earlier) = queue.active.get_mut(&id) {
                        // This process lost the run's lease without
                        // noticing yet, and took it again: the earlier
                        // execution stops, and the run goes back to the
                        // queue, so that it never runs twice here.
                        earlier.stop.get_or_insert(StopReason::LeaseLost);
                        earlier.cancel.cancel();
                        drop(queue);
                        self.put_back(&id);
                        // Not again until the earlier execution has gone.
                        let mut queue = lock(mutex);
                        let deadline = Instant::now() + Duration::from_secs(30);
                        while queue.active.contains_key(&id) && !queue.closing {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break;
                            }
                            queue = self
                                .ended
                                .wait_timeout(queue, left)
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                        continue;
                    }
                    let cancel = CancelFlag::new();
                    let progress = Arc::new(Mutex::new(LiveProgress::default()));
                    queue.active.insert(
                        id.clone(),
                        Active {
                            cancel: cancel.clone(),
                            stop: None,
                            progress: Arc::clone(&progress),
                            ending: false,
                        },
                    );
                    return Some((id, cancel, progress));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("claiming a queued run: {e}"),
            }
            // Nothing queued: wait for a wake-up unless one came meanwhile.
            // The timeout is the fallback for runs queued by processes that
            // cannot notify this one (a shared SQLite file).
            if queue.wakes == seen && !queue.closing {
                let _ = ready
                    .wait_timeout(queue, IDLE_POLL)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// Queues again a run this process just claimed and will not execute.
    fn put_back(&self, id: &str) {
        let _ =
            self.store
                .set_status_held(id, Some(&self.node.name), RunStatus::Queued, None, None);
    }

    /// A worker: takes queued runs until the server closes.
    fn work(&self) {
        let (mutex, _) = &*self.queue;
        loop {
            let Some((id, cancel, progress)) = self.claim_next() else {
                return;
            };
            let span = tracing::info_span!("run", run_id = %id);
            let outcome = span.in_scope(|| {
                std::panic::catch_unwind(AssertUnwindSafe(|| self.execute(&id, &cancel, &progress)))
            });
            let stop = {
                let mut queue = lock(mutex);
                let active = queue.active.get_mut(&id);
                active.and_then(|active| {
                    active.ending = true;
                    active.stop
                })
            };
            let ending = match (&outcome, stop) {
                (Ok(Ok(summary)), _) if summary.status == RunStatus::Completed => Ending::Finished,
                (Ok(Ok(_)), Some(StopReason::Interrupted | StopReason::HandedBack)) => {
                    Ending::Stopped(SHUTTING_DOWN.into())
                }
                (_, Some(StopReason::LeaseLost)) => {
                    Ending::Stopped("the run's lease was lost; another worker resumes it".into())
                }
                (Ok(Ok(_)), _) => Ending::Stopped("the run was cancelled".into()),
                (Ok(Err(failure)), _) => {
                    Ending::Stopped(format!("the run failed: {}", failure.client_message()))
                }
                (Err(_), _) => Ending::Stopped("the run failed".into()),
            };
            let (status, error, summary) = match outcome {
                Ok(Ok(summary)) if summary.status == RunStatus::Cancelled => (
                    match stop {
                        Some(StopReason::Interrupted) => RunStatus::Interrupted,
                        Some(StopReason::HandedBack) => RunStatus::Queued,
                        _ => RunStatus::Cancelled,
                    },
                    None,
                    Some(summary),
                ),
                Ok(Ok(summary)) => (RunStatus::Completed, None, Some(summary)),
                Ok(Err(failure)) => {
                    // Outside the run's span: its log lines are served to clients.
                    tracing::error!(run_id = %id, "run failed: {failure}");
                    if failure.is_disk_full() {
                        // Or the end below may not fit either.
                        self.store.release_reserve();
                    }
                    (RunStatus::Failed, Some(failure.client_message()), None)
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    (
                        RunStatus::Failed,
                        Some(format!("the run panicked: {message}")),
                        None,
                    )
                }
            };
            span.in_scope(|| match &error {
                Some(error) => tracing::error!("run {status}: {error}"),
                None => tracing::info!("run {status}"),
            });
            let summary = summary.map(|mut s| {
                s.status = status;
                // Where the server keeps its files is not the client's business.
                s.run_dir = None;
                serde_json::to_value(&s).unwrap_or(Value::Null)
            });
            if stop != Some(StopReason::LeaseLost) {
                // The whole folder, before the status says the run ended:
                // a client that sees it ended finds its files.
                self.mirror(&id, &[]);
            }
            if stop == Some(StopReason::LeaseLost) {
                // Another worker holds it now; its store rows are that
                // worker's to write.
            } else if status == RunStatus::Queued {
                // Handed back at shutdown: another worker resumes it from
                // its checkpoint; unless a cancel was asked for meanwhile
                // (the heartbeat that would pass it on has stopped).
                let cancelled = self
                    .store
                    .cancel_requests(&self.node.name)
                    .is_ok_and(|asked| asked.contains(&id));
                let status = if cancelled {
                    RunStatus::Cancelled
                } else {
                    RunStatus::Queued
                };
                self.record_end(&id, status, None, None);
            } else {
                self.record_end(&id, status, error, summary);
            }
            // Only now, with its status stored, does the run stop being
            // active: a cancel waiting on `ended` then reads the truth.
            {
                let mut queue = lock(mutex);
                queue.active.remove(&id);
                queue.end_external(&id, ending);
            }
            self.ended.notify_all();
        }
    }

    /// Stores how run `id` ended. A full disk gets a second try once the
    /// reserve is released (another run may have been first to hit it);
    /// an end that does not fit even then is kept by the store's writer and
    /// stored once the disk has room (until then the store says `running`;
    /// a server stopped before that marks the run `interrupted` at its next
    /// start), and the log says so.
    fn record_end(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<String>,
        summary: Option<Value>,
    ) {
        let holder = Some(self.node.name.as_str());
        let first = self
            .store
            .set_status_held(id, holder, status, error.clone(), summary.clone());
        let mut outcome = match first {
            Err(e) if e.fault() == Some(StoreFault::DiskFull) => {
                self.store.release_reserve();
                self.store
                    .set_status_held(id, holder, status, error.clone(), summary.clone())
            }
            other => other,
        };
        // A database away for a moment (a failover, a network blip) must
        // not cost a finished run: its lease would lapse and the run be
        // done again. Tried for up to a minute, within which the lease is
        // still renewed (the run stays active until this returns).
        let began = Instant::now();
        while let Err(e) = &outcome {
            if e.fault() != Some(StoreFault::Unreachable)
                || began.elapsed() > Duration::from_secs(60)
            {
                break;
            }
            tracing::warn!("run {id}: its end ({status}) waits for the database: {e}");
            std::thread::sleep(Duration::from_secs(2));
            outcome =
                self.store
                    .set_status_held(id, holder, status, error.clone(), summary.clone());
        }
        match outcome {
            Ok(()) => {}
            Err(e) if e.fault() == Some(StoreFault::DiskFull) => tracing::error!(
                "run {id}: its end ({status}) waits for room on the disk to be stored: {e}"
            ),
            Err(e) => tracing::error!("run {id}: recording its end ({status}) failed: {e}"),
        }
    }

    /// Trains one run.
    fn execute(
        &self,
        id: &str,
        cancel: &CancelFlag,
        live: &Arc<Mutex<LiveProgress>>,
    ) -> Result<rl_runner::Summary, RunFailure> {
        let row = self
            .store
            .run(id)?
            .ok_or_else(|| RunFailure::Vanished(id.into()))?;
        let spec = RunSpec::from_value(&row.spec)?;
        let mut prepared = if spec.env_is_external() {
            let config =
                ExternalConfig::from_json(&spec.env.config).map_err(rl_runner::Error::Env)?;
            let env_ends = lock(&self.queue.0)
                .external_slot(id, &config, spec.env.num_envs)
                .env_ends
                .take()
                .expect("a run's link is removed when the run ends, so each execution finds a fresh one");
            self.engine.prepare_linked(spec, env_ends)?
        } else {
            self.engine.prepare(spec)?
        };
        let path = self
            .fetch_folder(id)
            .map_err(|e| RunFailure::Artifacts(e.to_string()))?;
        let folder = RunFolder::open(path)?;
        let start = match folder.checkpoint()? {
            Some(checkpoint) => {
                let counters = prepared.restore(&checkpoint)?;
                tracing::info!(
                    steps = counters.steps,
                    episodes = counters.episodes,
                    "resuming from the checkpoint"
                );
                counters
            }
            None => Counters::default(),
        };
        self.store.truncate_metrics(id, start.steps)?;
        self.store.keep_reserve();
        folder.write_json("spec.json", &prepared.spec)?;
        let jsonl = folder.metrics_resumed(start.steps)?;
        let tensorboard_folder = folder.path().join("tb");
        let tensorboard =
            EventWriter::create(&tensorboard_folder).map_err(|source| RunFailure::TensorBoard {
                path: tensorboard_folder.display().to_string(),
                source,
            })?;
        tracing::info!(
            env = %prepared.spec.env.id,
            agent = %prepared.spec.agent.id,
            seed = prepared.spec.seed,
            "run started"
        );
        *live.lock().unwrap_or_else(|p| p.into_inner()) = LiveProgress {
            steps: start.steps,
            episodes: start.episodes,
            steps_per_second: 0.0,
            recent_mean_return: None,
        };
        let mut sink = ServerSink {
            run_id: id.to_string(),
            store: self.store.clone(),
            jsonl,
            tensorboard,
            json: Vec::new(),
        };
        let mut hooks = ServerHooks {
            run_id: id.to_string(),
            folder: &folder,
            manager: self,
            store: &self.store,
            live: Arc::clone(live),
            last_checkpoint: Instant::now(),
            last_progress: Instant::now(),
        };
        let summary = prepared.execute_with(&folder, &mut sink, &mut hooks, cancel, start)?;
        self.store.send(Write::Progress {
            run_id: id.to_string(),
            steps: summary.steps,
            episodes: summary.episodes,
            steps_per_second: None,
            recent_mean_return: None,
        });
        Ok(summary)
    }
}

/// Metrics to the run folder, TensorBoard and the store.
struct ServerSink {
    run_id: String,
    store: Store,
    jsonl: rl_runner::folder::JsonlSink,
    tensorboard: EventWriter,
    /// A record's JSON text is written here, then copied out at its exact
    /// size: a write waiting in the store's queue holds no spare capacity.
    json: Vec<u8>,
}

impl Sink for ServerSink {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        // The store gave its reserve back: what space is left is for runs'
        // ends, this one's included.
        if self.store.disk_full() {
            return Err(std::io::ErrorKind::StorageFull.into());
        }
        self.jsonl.record(record)?;
        let values = metric_values(record);
        for value in &values {
            self.tensorboard.metric(value)?;
        }
        let json = self.record_json(record)?;
        self.store.send(Write::Metric {
            run_id: self.run_id.clone(),
            record: json,
            step: record.step(),
            values,
        });
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.jsonl.flush()?;
        self.tensorboard.flush()
    }
}

impl ServerSink {
    fn record_json(&mut self, record: &Record) -> std::io::Result<String> {
        self.json.clear();
        serde_json::to_writer(&mut self.json, record)?;
        String::from_utf8(self.json.as_slice().to_vec()).map_err(std::io::Error::other)
    }
}

/// The named scalars a record holds, as the store's `metrics` rows: an
/// episode gives `rollout/episode_return`, `rollout/episode_length` and
/// `rollout/epsilon` (if the agent has one); a merged window gives the same
/// names with its mean as the value and its count, min, max and last.
fn metric_values(record: &Record) -> Vec<MetricValue> {
    let row = |name: Cow<'static, str>, step: u64, wall_seconds: f64, value: f64| MetricValue {
        name,
        step,
        value,
        wall_seconds,
        window: None,
    };
    let merged =
        |name: Cow<'static, str>, step: u64, wall_seconds: f64, count: u64, a: &Aggregate| {
            MetricValue {
                window: Some(WindowColumns {
                    count,
                    min: a.min,
                    max: a.max,
                    last: a.last,
                }),
                ..row(name, step, wall_seconds, a.mean)
            }
        };
    match record {
        Record::Episode(e) => [
            Some(row(
                EPISODE_RETURN.into(),
                e.step,
                e.wall_seconds,
                e.episode_return,
            )),
            Some(row(
                EPISODE_LENGTH.into(),
                e.step,
                e.wall_seconds,
                e.length as f64,
            )),
            e.epsilon
                .map(|epsilon| row(EPSILON.into(), e.step, e.wall_seconds, epsilon)),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Record::Episodes(w) => [
            Some((EPISODE_RETURN, &w.episode_return)),
            Some((EPISODE_LENGTH, &w.length)),
            w.epsilon.as_ref().map(|epsilon| (EPSILON, epsilon)),
        ]
        .into_iter()
        .flatten()
        .map(|(name, a)| merged(name.into(), w.step, w.wall_seconds, w.count, a))
        .collect(),
        Record::Scalar {
            name,
            step,
            value,
            wall_seconds,
        } => vec![row(name.clone().into(), *step, *wall_seconds, *value)],
        Record::ScalarWindow {
            name,
            step,
            count,
            values,
            wall_seconds,
        } => vec![merged(
            name.clone().into(),
            *step,
            *wall_seconds,
            *count,
            values,
        )],
    }
}

/// The episode series' names in the store and TensorBoard.
pub const EPISODE_RETURN: &str = "rollout/episode_return";
const EPISODE_LENGTH: &str = "rollout/episode_length";
const EPSILON: &str = "rollout/epsilon";

/// Checkpoints on the spec's period and every [`CHECKPOINT_PERIOD`], and
/// reports progress.
struct ServerHooks<'a> {
    run_id: String,
    folder: &'a RunFolder,
    manager: &'a RunManager,
    store: &'a Store,
    live: Arc<Mutex<LiveProgress>>,
    last_checkpoint: Instant,
    last_progress: Instant,
}

impl Hooks for ServerHooks<'_> {
    fn on_episode(&mut self, progress: &Progress) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = LiveProgress {
            steps: progress.counters.steps,
            episodes: progress.counters.episodes,
            steps_per_second: progress.steps_per_second,
            recent_mean_return: progress.recent_mean_return,
        };
        if self.last_progress.elapsed() >= Duration::from_millis(200) {
            self.last_progress = Instant::now();
            self.store.send(Write::Progress {
                run_id: self.run_id.clone(),
                steps: progress.counters.steps,
                episodes: progress.counters.episodes,
                steps_per_second: Some(progress.steps_per_second),
                recent_mean_return: progress.recent_mean_return,
            });
        }
    }

    fn checkpoint(
        &mut self,
        agent: &dyn Agent,
        counters: Counters,
        carried: &CarriedState,
    ) -> rl_runner::Result<()> {
        self.last_checkpoint = Instant::now();
        // A process that stalled past its lease (a paused machine) may
        // wake here before its heartbeat hears the run went to another: its
        // checkpoint would overwrite the newer one of the run's holder.
        if !self.manager.still_holds(&self.run_id) {
            self.manager.stop_local(&self.run_id, StopReason::LeaseLost);
            return Ok(());
        }
        // A resumed run keeps the stored metrics up to its checkpoint and
        // replays the rest: those up to here must be stored before the
        // checkpoint says they are, or a crash between the two leaves a
        // gap that no resume fills.
        self.store.flush();
        self.folder.write_checkpoint(agent, counters, carried)?;
        // The metrics file is flushed up to the checkpoint: a resume
        // elsewhere keeps its lines to there and appends. It goes first,
        // the checkpoint last: a process killed between the two leaves
        // the earlier checkpoint beside a metrics file that reaches past
        // it (trimmed on resume), never a checkpoint whose episodes the
        // metrics file lacks.
        self.manager.mirror(
            &self.run_id,
            &["spec.json", "metrics.jsonl", "checkpoint.json"],
        );
        let live = *self.live.lock().unwrap_or_else(|p| p.into_inner());
        self.store.send(Write::Progress {
            run_id: self.run_id.clone(),
            steps: counters.steps,
            episodes: counters.episodes,
            steps_per_second: Some(live.steps_per_second),
            recent_mean_return: live.recent_mean_return,
        });
        tracing::info!(
            steps = counters.steps,
            episodes = counters.episodes,
            "checkpoint written"
        );
        Ok(())
    }

    fn wants_checkpoint(&mut self, _counters: Counters) -> bool {
        self.last_checkpoint.elapsed() >= CHECKPOINT_PERIOD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BatchFailure;

    #[test]
    fn a_failed_runs_error_names_no_path_and_no_sqlite_text() {
        let server_side = [
            RunFailure::Runner(rl_runner::Error::Io {
                path: "/srv/lab-data/runs/run-1/metrics.jsonl".into(),
                source: std::io::Error::from_raw_os_error(5), // EIO
            }),
            RunFailure::Store(StoreError::Batch(BatchFailure {
                write: "record a metric of run-1 at step 5".into(),
                cause: "database disk image is malformed".into(),
                batch: 1,
                fault: None,
            })),
            RunFailure::TensorBoard {
                path: "/srv/lab-data/runs/run-1/tb".into(),
                source: std::io::Error::other("Permission denied (os error 13)"),
            },
        ];
        for failure in &server_side {
            let message = failure.client_message();
            for secret in ["/srv/lab-data", "os error", "database", "disk"] {
                assert!(!message.contains(secret), "{message}");
            }
            assert!(message.contains("log"), "{message}");
            // The detail is still there for the server's log.
            let detail = failure.to_string();
            assert!(
                detail.contains("/srv/lab-data")
                    || detail.contains("database disk image is malformed"),
                "{detail}"
            );
        }
        // A full disk is said plainly, still without paths or SQLite text.
        let disk_full = [
            RunFailure::Runner(rl_runner::Error::Io {
                path: "/srv/lab-data/runs/run-1/metrics.jsonl".into(),
                source: std::io::Error::from_raw_os_error(28), // ENOSPC
            }),
            RunFailure::TensorBoard {
                path: "/srv/lab-data/runs/run-1/tb".into(),
                source: std::io::Error::from(std::io::ErrorKind::QuotaExceeded),
            },
            RunFailure::Store(StoreError::Batch(BatchFailure {
                write: "record a metric of run-1 at step 5".into(),
                cause: "database or disk is full".into(),
                batch: 1,
                fault: Some(StoreFault::DiskFull),
            })),
        ];
        for failure in &disk_full {
            assert!(failure.is_disk_full(), "{failure}");
            let message = failure.client_message();
            assert!(message.starts_with("no space left"), "{message}");
            for secret in [
                "/srv/lab-data",
                "os error",
                "database",
                "No space left on device",
            ] {
                assert!(!message.contains(secret), "{message}");
            }
        }
        assert!(!server_side.iter().any(RunFailure::is_disk_full));
        // The run's own failure is the user's to fix: told whole.
        let diverged = RunFailure::Runner(rl_runner::Error::Agent(rl_agent::Error::Diverged {
            step: 12,
            message: "the loss is NaN at gradient update 3".into(),
        }));
        assert_eq!(diverged.client_message(), diverged.to_string());
        assert!(diverged.client_message().contains("the loss is NaN"));
    }
}
