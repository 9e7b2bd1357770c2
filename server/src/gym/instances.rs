//! The table of open instances: ids, the cap, and idle reaping.
//!
//! Each instance sits behind its own `std::sync::Mutex`. Env steps take
//! microseconds, so handlers step inline under that lock rather than
//! paying for a hand-off to a blocking thread; no lock is ever held across
//! an `.await` (the workspace denies `await_holding_lock`). The table
//! itself is behind another mutex, held only to look up, insert or remove.
//!
//! **Idle reaping** is done twice over. Every access checks the
//! instance's last use, so an instance idle past the timeout is gone
//! exactly on time (it answers `Instance_id X unknown`). And a tokio task,
//! spawned on the first create, sweeps the table every quarter of the
//! timeout (at most every 30 s) so that abandoned instances release
//! their memory and leave the open-instances gauge. The task holds only a
//! weak reference and ends with the table.

use super::error::{GymError, Result};
use super::monitor::Monitor;
use rl_env::{Env, Observation, VectorEnv};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// One env, as gym-http-api's instances are.
pub struct Single {
    /// The environment, with its registered wrappers (time limit).
    pub env: Box<dyn Env>,
    /// The observation buffer steps write into.
    pub obs: Observation,
    /// The seed given at creation, applied by the first reset.
    pub pending_seed: Option<u64>,
    /// Draws `action_space/sample`; seeded from the creation seed.
    pub sampler: rand_chacha::ChaCha8Rng,
    /// Set between monitor/start and monitor/close.
    pub monitor: Option<Monitor>,
    /// A reset has happened: steps are allowed.
    pub started: bool,
}

/// Many copies stepped per request.
pub struct Vector {
    /// The copies, with NEXT_STEP auto-reset.
    pub envs: VectorEnv,
    /// The seed given at creation, applied by the first reset.
    pub pending_seed: Option<u64>,
}

/// What an instance holds.
pub enum Slot {
    /// Made by `POST /v1/envs/`.
    Single(Box<Mutex<Single>>),
    /// Made by `POST /v1/vector-envs`.
    Vector(Box<Mutex<Vector>>),
}

/// An open instance.
pub struct Instance {
    /// The id it was made from, e.g. `CartPole-v1`.
    pub env_id: String,
    /// Milliseconds since the table's epoch at the last access.
    last_used: AtomicU64,
    /// The environment(s).
    pub slot: Slot,
}

/// Locks an instance's mutex; a poisoned one (an env panicked while it
/// was held) makes the instance unusable rather than the server.
pub fn lock<'a, T>(mutex: &'a Mutex<T>, id: &str) -> Result<MutexGuard<'a, T>> {
    mutex.lock().map_err(|_| {
        tracing::error!(
            instance_id = id,
            request_id = crate::request_id::for_log(),
            "an environment panicked earlier in this instance"
        );
        GymError::Broken(id.to_string())
    })
}

/// The open environment instances, single and vector, under one cap.
pub struct Instances {
    table: Arc<Table>,
}

struct Table {
    map: Mutex<HashMap<String, Arc<Instance>>>,
    epoch: Instant,
    reaper_started: AtomicBool,
    shutdown: tokio::sync::Notify,
    shutdown_requested: AtomicBool,
}

impl Default for Instances {
    fn default() -> Self {
        Instances {
            table: Arc::new(Table {
                map: Mutex::new(HashMap::new()),
                epoch: Instant::now(),
                reaper_started: AtomicBool::new(false),
                shutdown: tokio::sync::Notify::new(),
                shutdown_requested: AtomicBool::new(false),
            }),
        }
    }
}

impl Table {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Instance>>> {
        // Nothing panics while the table is locked (inserts, removals and
        // lookups only), so a poisoned lock still holds a consistent map.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes every instance idle longer than `timeout`; returns them so
    /// that they drop (and monitors flush) after the lock is released.
    fn reap(&self, timeout: Duration) -> Vec<Arc<Instance>> {
        let now = self.now_ms();
        let limit = timeout.as_millis() as u64;
        let mut map = self.map();
        let idle: Vec<String> = map
            .iter()
            .filter(|(_, i)| now.saturating_sub(i.last_used.load(Ordering::Relaxed)) > limit)
            .map(|(id, _)| id.clone())
            .collect();
        idle.iter().filter_map(|id| map.remove(id)).collect()
    }
}

impl Instances {
    /// How many instances are open (for `/metrics`).
    pub fn open_count(&self) -> usize {
        self.table.map().len()
    }

    /// The ids and env ids of the open single instances, as
    /// `GET /v1/envs/` lists them.
    pub fn list_single(&self, timeout: Duration) -> Vec<(String, String)> {
        drop(self.table.reap(timeout));
        self.table
            .map()
            .iter()
            .filter(|(_, i)| matches!(i.slot, Slot::Single(_)))
            .map(|(id, i)| (id.clone(), i.env_id.clone()))
            .collect()
    }

    /// Fails with `429` when `max` instances are open.
    pub fn check_room(&self, max: usize) -> Result<()> {
        if self.open_count() >= max {
            return Err(GymError::TooManyInstances { limit: max });
        }
        Ok(())
    }

    /// Adds an instance under a fresh 8-hex-digit id (gym-http-api's
    /// form), unless `max` are open already. Starts the idle reaper on
    /// first use.
    pub fn insert(
        &self,
        env_id: String,
        slot: Slot,
        max: usize,
        timeout: Duration,
    ) -> Result<String> {
        self.start_reaper(timeout);
        let instance = Arc::new(Instance {
            env_id,
            last_used: AtomicU64::new(self.table.now_ms()),
            slot,
        });
        let mut map = self.table.map();
        if map.len() >= max {
            return Err(GymError::TooManyInstances { limit: max });
        }
        let id = loop {
            let id = format!("{:08x}", rand::random::<u32>());
            if !map.contains_key(&id) {
                break id;
            }
        };
        map.insert(id.clone(), instance);
        Ok(id)
    }

    /// The open instance `id`, marked as used now; an instance idle past
    /// `timeout` is closed here and reported unknown.
    pub fn get(&self, id: &str, timeout: Duration) -> Result<Arc<Instance>> {
        let now = self.table.now_ms();
        let mut map = self.table.map();
        let Some(instance) = map.get(id) else {
            return Err(GymError::UnknownInstance(id.to_string()));
        };
        let last = instance.last_used.swap(now, Ordering::Relaxed);
        if now.saturating_sub(last) > timeout.as_millis() as u64 {
            let stale = map.remove(id);
            drop(map);
            drop(stale);
            return Err(GymError::UnknownInstance(id.to_string()));
        }
        Ok(instance.clone())
    }

    /// Closes `id`; its monitor, if any, finishes writing.
    pub fn remove(&self, id: &str) -> Result<Arc<Instance>> {
        let removed = self.table.map().remove(id);
        removed.ok_or_else(|| GymError::UnknownInstance(id.to_string()))
    }

    /// Closes every instance (`POST /v1/shutdown/`) and wakes
    /// [`shutdown_requested`](Self::shutdown_requested).
    pub fn close_all(&self) {
        let all: Vec<Arc<Instance>> = self.table.map().drain().map(|(_, i)| i).collect();
        drop(all);
        self.table.shutdown_requested.store(true, Ordering::SeqCst);
        self.table.shutdown.notify_waiters();
    }

    /// Resolves once a client has called `POST /v1/shutdown/`, as
    /// gym-http-api's server stopped then. The server's start-up code
    /// decides whether to treat it as a graceful-shutdown signal.
    pub async fn shutdown_requested(&self) {
        loop {
            let notified = self.table.shutdown.notified();
            if self.table.shutdown_requested.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    fn start_reaper(&self, timeout: Duration) {
        if self.table.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime (a unit test): the check on access suffices.
            self.table.reaper_started.store(false, Ordering::SeqCst);
            return;
        };
        let weak: Weak<Table> = Arc::downgrade(&self.table);
        let period = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(table) = weak.upgrade() else { break };
                let reaped = table.reap(timeout);
                drop(table);
                if !reaped.is_empty() {
                    tracing::info!(count = reaped.len(), "closed idle env instances");
                }
            }
        });
    }
}
