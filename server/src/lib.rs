//! The rl-lab server: runs launched over REST and kept in SQLite, live
//! metrics and logs, and environments stepped over HTTP with the
//! gym-http-api protocol.
//!
//! The server holds no algorithm code. Runs are built by `rl-runner`'s
//! [`Engine`] from the same run spec as `rl-lab run`, and execute on
//! dedicated worker threads, never on the async runtime.

pub mod gym;

use rl_runner::Engine;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the server is started: `rl-lab serve`'s flags.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen. Loopback unless the user says otherwise.
    pub addr: SocketAddr,
    /// The data folder: `rl-lab.db` and `runs/<id>/`.
    pub data: PathBuf,
    /// Runs executing at once; further runs queue in submission order.
    pub max_concurrent_runs: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Env instances idle this long are closed.
    pub instance_idle_timeout: Duration,
    /// Most env instances open at once; beyond it, `429`.
    pub max_instances: usize,
    /// When set, every `/v1` route and `/metrics` need `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

/// Everything the handlers share.
pub struct AppState {
    /// The env and agent registries runs and instances are built from.
    pub engine: Arc<Engine>,
    /// The start-up settings.
    pub config: ServeConfig,
    /// Open environment instances (the gym-http-api routes).
    pub envs: gym::Instances,
    /// When the server started.
    pub started: Instant,
}

/// The shared state as handlers receive it.
pub type Shared = Arc<AppState>;
