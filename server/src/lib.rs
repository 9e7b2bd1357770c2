//! The rl-lab server: runs launched over REST and kept in SQLite, live
//! metrics and logs, and environments stepped over HTTP with the
//! gym-http-api protocol.
//!
//! The server holds no algorithm code. Runs are built by `rl-runner`'s
//! [`Engine`] from the same run spec as `rl-lab run`, and execute on
//! dedicated worker threads ([`runs`]), never on the async runtime.

pub mod api;
pub mod dashboard;
pub mod error;
pub mod gym;
pub mod local_workers;
pub mod logs;
pub mod objects;
pub mod openapi;
pub mod own_runtime;
pub mod request_id;
pub mod runs;
pub mod store;
pub mod tensorboard;

pub use error::{ApiError, ApiResult, ErrorBody};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rl_runner::Engine;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

/// How the server is started: `rl-lab serve`'s flags.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen. Loopback unless the user says otherwise.
    pub addr: SocketAddr,
    /// The data folder: `rl-lab.db` and `runs/<id>/`.
    pub data: PathBuf,
    /// Where runs, metrics and events are kept: SQLite at
    /// `DATA/rl-lab.db` unless told otherwise.
    pub store: store::StoreLocation,
    /// Runs executing at once; further runs queue in submission order.
    /// Zero with a shared store: this server only answers, and other
    /// servers or `rl-lab worker` processes execute its runs.
    pub max_concurrent_runs: usize,
    /// How this server takes part in the store's queue.
    pub node: runs::NodeConfig,
    /// Where run folders are mirrored (`--artifacts file:///…` or
    /// `s3://bucket/prefix`); none: the data folder alone.
    pub artifacts: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Env instances idle this long are closed.
    pub instance_idle_timeout: Duration,
    /// Most env instances open at once; beyond it, `429`.
    pub max_instances: usize,
    /// The most memory one run's estimate may reach, in bytes; larger runs
    /// are refused with `422`. `None`:
    /// [`rl_runner::memory::default_max_run_memory`] of
    /// `max_concurrent_runs`, three quarters of the machine's memory (or
    /// cgroup limit) shared by the runs that train at once.
    pub max_run_memory: Option<u64>,
    /// When set, every `/v1` route and `/metrics` need `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Environments added to rl-lab's own (a crate's `register`), for runs
    /// and for the environment routes alike.
    pub env_plugins: Vec<rl_runner::EnvPlugin>,
    /// Which URLs runs may name for a `remote` env: loopback only unless
    /// `--allow-remote-env` adds hosts, since a run spec that makes the
    /// server connect somewhere is a request-forgery risk.
    pub remote_envs: rl_runner::envs::UrlPolicy,
    /// How to start local worker processes (`rl-lab serve`): then runs
    /// execute in them, `max_concurrent_runs` of them, and none in this
    /// process (the connections of `external` runs' env processes are
    /// relayed to them). `None`: runs execute on this process's own
    /// threads (a server embedded in a test or a program of the user's).
    pub local_workers: Option<local_workers::LocalWorkerCommand>,
}

impl ServeConfig {
    /// Defaults for a server on `addr` keeping its data in `data`.
    pub fn new(addr: SocketAddr, data: PathBuf) -> Self {
        ServeConfig {
            addr,
            store: store::StoreLocation::Sqlite(data.join("rl-lab.db")),
            data,
            max_concurrent_runs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            node: runs::NodeConfig::server(),
            artifacts: None,
            max_body_bytes: 1 << 20,
            instance_idle_timeout: Duration::from_secs(600),
            max_instances: 1024,
            max_run_memory: None,
            token: None,
            env_plugins: Vec::new(),
            remote_envs: rl_runner::envs::UrlPolicy::default(),
            local_workers: None,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data folder cannot be made.
    #[error("data folder {path}: {source}")]
    Data {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Runs cannot be started.
    #[error(transparent)]
    Runs(#[from] runs::RunError),
    /// The object storage for run folders cannot be used.
    #[error(transparent)]
    Artifacts(objects::ObjectsError),
    /// The local worker processes cannot be started.
    #[error("starting the local worker processes: {source}")]
    LocalWorkers {
        /// The cause.
        source: std::io::Error,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Everything the handlers share.
pub struct AppState {
    /// The env and agent registries runs and instances are built from.
    pub engine: Arc<Engine>,
    /// The start-up settings.
    pub config: ServeConfig,
    /// Runs, metrics, events.
    pub store: store::Store,
    /// The run queue and workers.
    pub runs: Arc<runs::RunManager>,
    /// The local worker processes that execute runs, when there are.
    pub local_workers: Option<Arc<local_workers::LocalWorkers>>,
    /// Open environment instances (the gym-http-api routes).
    pub envs: gym::Instances,
    /// When the server started.
    pub started: Instant,
}

/// The shared state as handlers receive it.
pub type Shared = Arc<AppState>;

impl AppState {
    /// Opens the data folder and its store, marks runs the last server left
    /// running as `interrupted`, and starts the run workers.
    pub fn open(config: ServeConfig) -> Result<Shared, ServeError> {
        std::fs::create_dir_all(config.data.join("runs")).map_err(|source| ServeError::Data {
            path: config.data.display().to_string(),
            source,
        })?;
        let local = config
            .local_workers
            .clone()
            .filter(|command| command.count > 0);
        let mut node = config.node.clone();
        let store = if local.is_some() {
            // Its local workers execute every run, and this process none.
            // A SQLite file is the server's alone: runs found running died
            // with the last server (and its workers, which it waits for).
            if let store::StoreLocation::Sqlite(path) = &config.store {
                node.owns_store = true;
                local_workers::wait_for_last_workers(path);
            }
            store::Store::open_shared(&config.store)?
        } else {
            store::Store::open_at(&config.store)?
        };
        let executing_here = if local.is_some() {
            0
        } else {
            config.max_concurrent_runs
        };
        let engine = Arc::new(engine(
            &config.env_plugins,
            &config.remote_envs,
            config.max_run_memory,
            config.max_concurrent_runs,
        ));
        let objects = open_objects(config.artifacts.as_deref())?;
        let runs = runs::RunManager::start(
            store.clone(),
            Arc::clone(&engine),
            &config.data,
            executing_here,
            node,
            objects,
        )?;
        let local_workers = match local {
            Some(command) => {
                let workers = local_workers::LocalWorkers::start(
                    command,
                    runs.node_name(),
                    store.clone(),
                    config.node.max_attempts,
                )
                .map_err(|source| ServeError::LocalWorkers { source })?;
                let waking = Arc::downgrade(&workers);
                runs.also_wake(Box::new(move || {
                    if let Some(workers) = waking.upgrade() {
                        workers.wake();
                    }
                }));
                Some(workers)
            }
            None => None,
        };
        Ok(Arc::new(AppState {
            engine,
            store,
            runs,
            local_workers,
            envs: gym::Instances::default(),
            config,
            started: Instant::now(),
        }))
    }
}

/// The engine runs are built with: our envs and the plugins', the remote
/// URL policy, and the memory one run may take (by default a share of the
/// machine for each of `slots` runs).
fn engine(
    env_plugins: &[rl_runner::EnvPlugin],
    remote_envs: &rl_runner::envs::UrlPolicy,
    max_run_memory: Option<u64>,
    slots: usize,
) -> Engine {
    let mut engine = Engine::with_remote_policy(remote_envs.clone()).with_envs(env_plugins);
    engine.max_run_memory = Some(
        max_run_memory.unwrap_or_else(|| rl_runner::memory::default_max_run_memory(slots.max(1))),
    );
    engine
}

/// The mirror of run folders at `url`, if one is given.
fn open_objects(url: Option<&str>) -> Result<Option<Arc<objects::Objects>>, ServeError> {
    url.map(|url| objects::Objects::open(url).map(Arc::new))
        .transpose()
        .map_err(ServeError::Artifacts)
}

/// How `rl-lab worker` is started.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The store it claims runs from: PostgreSQL, or for a server's local
    /// worker the server's SQLite file.
    pub store: store::StoreLocation,
    /// Run folders: checkpoints, metrics files, TensorBoard files. Workers
    /// that may resume each other's runs share it.
    pub data: PathBuf,
    /// Runs executed at once.
    pub slots: usize,
    /// Its name, leases and attempts.
    pub node: runs::NodeConfig,
    /// Where run folders are mirrored, as `ServeConfig::artifacts`.
    pub artifacts: Option<String>,
    /// Stop once nothing has been running for this long (a Slurm job
    /// array draining the queue).
    pub exit_when_idle: Option<Duration>,
    /// The most memory one run's estimate may reach.
    pub max_run_memory: Option<u64>,
    /// Environments added to rl-lab's own.
    pub env_plugins: Vec<rl_runner::EnvPlugin>,
    /// Which URLs runs may name for a `remote` env.
    pub remote_envs: rl_runner::envs::UrlPolicy,
    /// Started by `rl-lab serve` as one of its local workers: its stdin is
    /// the server's pipe, whose bytes say a run was queued and whose end
    /// says the server is gone, and it stops then.
    pub serve_child: bool,
}

/// Executes queued runs from the store until SIGINT or SIGTERM (or, with
/// `exit_when_idle`, until nothing has run for that long; or, as a
/// server's local worker, until its server's pipe closes); then hands the
/// runs it holds back to the queue, checkpointed, for another worker to
/// resume (a server's local worker marks them `interrupted`, as its server
/// would), and returns within 10 s. `on_ready` is called once it claims,
/// with the address of its `external` runs' WebSocket for a local worker.
pub async fn work(
    config: WorkerConfig,
    on_ready: impl FnOnce(&str, Option<SocketAddr>),
) -> Result<(), ServeError> {
    std::fs::create_dir_all(config.data.join("runs")).map_err(|source| ServeError::Data {
        path: config.data.display().to_string(),
        source,
    })?;
    // A server's local worker on its SQLite file: held while it runs, so
    // that the server's next start waits for it before it marks runs that
    // are still running here `interrupted`.
    let _running_on_file = match &config.store {
        store::StoreLocation::Sqlite(path) if config.serve_child => Some(
            local_workers::hold_worker_lock(path).map_err(|source| ServeError::Data {
                path: path.display().to_string(),
                source,
            })?,
        ),
        _ => None,
    };
    let store = store::Store::open_for_worker(&config.store, config.slots)?;
    logs::attach(store.clone());
    let engine = Arc::new(engine(
        &config.env_plugins,
        &config.remote_envs,
        config.max_run_memory,
        config.slots,
    ));
    let runs = runs::RunManager::start(
        store.clone(),
        Arc::clone(&engine),
        &config.data,
        config.slots,
        config.node.clone(),
        open_objects(config.artifacts.as_deref())?,
    )?;
    tracing::info!(worker = %runs.node_name(), slots = config.slots, "worker started");
    // A server's local worker takes its external runs' connections from
    // the server, on loopback, behind the server's relay token.
    let relay_token = std::env::var(local_workers::RELAY_TOKEN_VAR)
        .ok()
        .filter(|token| config.serve_child && !token.is_empty());
    let relay = match relay_token {
        Some(token) => {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let listener = tokio::net::TcpListener::bind(loopback)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: loopback,
                    source,
                })?;
            let address = listener.local_addr().map_err(|source| ServeError::Bind {
                addr: loopback,
                source,
            })?;
            let mut relay_config = ServeConfig::new(address, config.data.clone());
            relay_config.store = config.store.clone();
            relay_config.node = config.node.clone();
            relay_config.max_concurrent_runs = config.slots;
            relay_config.token = Some(token);
            let state = Arc::new(AppState {
                engine,
                config: relay_config,
                store: store.clone(),
                runs: Arc::clone(&runs),
                local_workers: None,
                envs: gym::Instances::default(),
                started: Instant::now(),
            });
            tokio::spawn(async move {
                let _ = axum::serve(listener, relay_app(state)).await;
            });
            Some(address)
        }
        None => None,
    };
    let serve_child = config.serve_child;
    let (server_gone, parent) = tokio::sync::oneshot::channel::<()>();
    if serve_child {
        let waking = Arc::clone(&runs);
        std::thread::Builder::new()
            .name("server-pipe".into())
            .spawn(move || {
                use std::io::Read;
                let mut wakes = [0u8; 64];
                let mut stdin = std::io::stdin().lock();
                loop {
                    match stdin.read(&mut wakes) {
                        Ok(0) => break,
                        Ok(_) => waking.wake(),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = server_gone.send(());
            })
            .map_err(|source| ServeError::LocalWorkers { source })?;
    }
    let parent = async move {
        if serve_child {
            let _ = parent.await;
            tracing::info!("the server that started this worker stopped: stopping");
        } else {
            std::future::pending::<()>().await;
        }
    };
    on_ready(runs.node_name(), relay);
    let idle = async {
        let Some(limit) = config.exit_when_idle else {
            return std::future::pending().await;
        };
        let mut idle_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !runs.is_idle() {
                idle_since = Instant::now();
            } else if idle_since.elapsed() >= limit {
                tracing::info!("idle for {} s: stopping", limit.as_secs());
                return;
            }
        }
    };
    tokio::select! {
        _ = shutdown_signal() => {},
        _ = idle => {},
        _ = parent => {},
    }
    if serve_child {
        tracing::info!("shutting down: checkpointing running runs as interrupted");
    } else {
        tracing::info!("shutting down: handing running runs back to the queue");
    }
    let stopping = Arc::clone(&runs);
    // A server's local worker stops inside its server's budget, which
    // kills it after 8.5 s.
    let budget = if serve_child {
        Duration::from_millis(6500)
    } else {
        Duration::from_secs(8)
    };
    let _ = tokio::task::spawn_blocking(move || stopping.shutdown(budget)).await;
    store.flush();
    tracing::info!("stopped");
    Ok(())
}

/// Runs blocking work (SQLite, building envs) off the async runtime.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(request_id::carried(work))
        .await
        .map_err(|e| ApiError::internal("a request worker failed", e))
}

#[derive(OpenApi)]
#[openapi(info(
    title = "rl-lab",
    description = "Runs over REST, live training events, and environments over HTTP (gym-http-api compatible). Every response carries an `x-request-id` header; error bodies quote it."
))]
struct ApiDoc;

/// Every route with its OpenAPI document. Besides what each handler
/// documents, every operation may answer `413` and every guarded one `401`
/// (see [`check`]); those are added here, from the same rules the check
/// applies.
pub fn routes() -> (Router<Shared>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::router())
        .merge(gym::router())
        .split_for_parts();
    let error_body = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build()
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let mut add = |status: &str, description: &str| {
                let response = ResponseBuilder::new()
                    .description(description)
                    .content("application/json", error_body())
                    .build();
                add_response(operation, status, response);
            };
            add(
                "413",
                "`body_too_large`: a body (declared or sent) over `--max-body-bytes`",
            );
            if needs_token(path) {
                add(
                    "401",
                    "`unauthorized`: the server has a token (RL_LAB_TOKEN) and the request lacks it",
                );
            }
        }
    }
    (router, openapi)
}

/// Adds a response to an operation, unless it documents that status itself.
fn add_response(operation: &mut Operation, status: &str, response: utoipa::openapi::Response) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert(response.into());
}

/// The whole application: routes, `/openapi.json`, auth, body limits,
/// request ids and request tracing.
///
/// The body limit is axum's `DefaultBodyLimit` rather than tower-http's
/// `RequestBodyLimit`: a refused body must get the API's JSON error, and
/// axum's limit surfaces as an extractor rejection that [`api::RequestBody`]
/// turns into one, where tower-http's answers `text/plain` itself.
/// Declared lengths are refused before anything is read, in [`check`].
pub fn app(state: Shared) -> Router {
    let router = routes().0;
    let openapi = Arc::new(openapi::document(&state.engine));
    // Layers wrap what is above them: the last one sees a request first.
    router
        .route("/", axum::routing::get(dashboard::index))
        .route("/assets/{*path}", axum::routing::get(dashboard::asset))
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let openapi = Arc::clone(&openapi);
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(
            request_id::MakeRequestIds::default(),
        ))
        .with_state(state)
}

/// What a server's local worker serves on loopback: the `connect` route
/// of the external runs it executes, for its server's relay, behind the
/// relay token (as the bearer token).
fn relay_app(state: Shared) -> Router {
    let (router, _) = OpenApiRouter::new()
        .merge(api::connect_router())
        .split_for_parts();
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The span every request is handled in, with the request id, and (with
/// tower-http's `TraceLayer`) its start, end and latency. It is at `debug`,
/// as the `TraceLayer`'s own events are: enabled at the default `info`, it
/// would format its fields on every request, about 1.4 µs, which is more
/// than a gym step costs. Error lines carry `request_id` themselves.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        request_id = request_id::of(request).unwrap_or("-"),
    )
}

/// Whether `path` needs the token, when the server has one.
fn needs_token(path: &str) -> bool {
    path.starts_with("/v1") || path == "/metrics"
}

/// Compares in time independent of where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

/// Every request passes here: its id is made available to error bodies
/// ([`request_id::current`]), then [`check`] runs.
async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let id = request_id::of(&request).map(str::to_string);
    request_id::scope(id, check(state, request, next)).await
}

/// Token check on `/v1` and `/metrics`, and the body limit on declared
/// lengths (so an oversized body is refused before it is read).
async fn check(state: Shared, request: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token
        && needs_token(request.uri().path())
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.config.max_body_bytes) {
        return ApiError::BodyTooLarge {
            limit: state.config.max_body_bytes,
        }
        .into_response();
    }
    next.run(request).await
}

/// Serves until SIGINT or SIGTERM, then stops accepting work, checkpoints
/// running runs as `interrupted`, flushes and returns, within 10 s.
/// `on_listening` gets the bound address (the port may have been 0).
pub async fn serve(
    config: ServeConfig,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let addr = config.addr;
    if config.token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "listening on {addr}, beyond loopback, without RL_LAB_TOKEN: anyone who can reach it can launch runs"
        );
    }
    let state = AppState::open(config)?;
    logs::attach(state.store.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    tracing::info!("listening on http://{bound}");
    on_listening(bound);
    let app = app(state.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Small request/response exchanges (one env step) must not wait on
    // Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    });
    // Long-lived streams (events, logs) would hold a graceful shutdown
    // open forever; give them a moment, then stop regardless.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let result = server.await;
        let _ = done_tx.send(());
        result
    });
    tokio::select! {
        _ = shutdown_signal() => {},
        _ = state.envs.shutdown_requested() => {},
    }
    let _ = stop.send(true);
    tracing::info!("shutting down: checkpointing running runs");
    let runs = Arc::clone(&state.runs);
    let stopping_runs = tokio::task::spawn_blocking(move || runs.shutdown(Duration::from_secs(7)));
    let workers = state.local_workers.clone();
    let stopping_workers = tokio::task::spawn_blocking(move || {
        if let Some(workers) = workers {
            // Past the workers' own 6.5 s (`work`), within the 10 s.
            workers.shutdown(Duration::from_millis(8500));
        }
    });
    let _ = tokio::join!(stopping_runs, stopping_workers);
    let _ = tokio::time::timeout(Duration::from_secs(1), done_rx).await;
    serving.abort();
    state.store.flush();
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
