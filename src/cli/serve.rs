//! `rl-lab serve`: the HTTP server.

use super::{CliError, CliResult};
use rl_server::{ServeConfig, ServeError};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Arguments of `rl-lab serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Data folder: the SQLite database `rl-lab.db` (unless --store says
    /// otherwise) and run folders `runs/<id>/`.
    #[arg(long, default_value = "./rl-lab-data")]
    data: PathBuf,
    /// Where runs, metrics and events are kept: postgres://USER@HOST[:PORT]/DB
    /// for a PostgreSQL database (its schema is made or migrated at start).
    /// The password is never part of the URL: it comes from the file named
    /// by RL_LAB_STORE_PASSWORD_FILE, else from PGPASSWORD. Default: SQLite
    /// at DATA/rl-lab.db.
    // Parsed by `store_location`, not by clap, whose refusal would repeat
    // the value, and with it a password given by mistake.
    #[arg(long, env = "RL_LAB_STORE", hide_env_values = true, value_name = "URL")]
    store: Option<String>,
    /// Mirror run folders (checkpoints, metrics files, GIFs, TensorBoard
    /// files) to object storage: file:///path or s3://bucket/prefix (AWS_*
    /// environment variables; AWS_ENDPOINT and AWS_ALLOW_HTTP=true for
    /// MinIO). Processes that share it need no shared file system. Default:
    /// the data folder alone.
    #[arg(long, env = "RL_LAB_ARTIFACTS", value_name = "URL")]
    artifacts: Option<String>,
    /// Runs training at once (default: the number of cores), each in a
    /// local worker process of its own; more queue in order.
    #[arg(long, conflicts_with = "slots")]
    max_concurrent_runs: Option<usize>,
    /// Local worker processes this server starts, one run each, as
    /// --max-concurrent-runs. Runs never execute in the server's own
    /// process (it relays the connections of `external` runs' env
    /// processes to the worker that executes the run). 0 with a PostgreSQL
    /// --store: none, the server only answers, and `rl-lab worker`
    /// processes on the same store execute runs.
    #[arg(long)]
    slots: Option<usize>,
    #[command(flatten)]
    queue: QueueArgs,
    /// Server log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Seconds after which an idle environment instance is closed.
    #[arg(long, default_value_t = 600)]
    instance_idle_timeout: u64,
    /// Most environment instances open at once; beyond it, 429.
    #[arg(long, default_value_t = 1024)]
    max_instances: usize,
    /// Most memory one run may need, e.g. 4G or 512M (K, M, G, T are
    /// powers of 1,024); a run whose estimate (replay, networks, optimiser
    /// state, tables, env models) is larger is refused with 422. Default:
    /// three quarters of the machine's memory (MemTotal, or the cgroup
    /// limit when smaller) divided by --max-concurrent-runs.
    #[arg(long, value_name = "BYTES", value_parser = rl_runner::memory::parse_bytes)]
    max_run_memory: Option<u64>,
    /// Lets runs use `remote` envs served at HOST[:PORT] (repeatable). Without
    /// it only loopback URLs are allowed. HOST alone or HOST:* allows every
    /// port; *.example.org allows every name under example.org; * allows every
    /// host. Names are matched as written, not resolved.
    #[arg(long = "allow-remote-env", value_name = "HOST[:PORT]", value_parser = host_pattern)]
    allow_remote_env: Vec<String>,
}

/// A `--allow-remote-env` value, checked; kept as written, for the local
/// workers' own flags.
pub fn host_pattern(text: &str) -> Result<String, String> {
    text.parse::<rl_runner::envs::HostPattern>()?;
    Ok(text.to_string())
}

/// The URL policy of checked `--allow-remote-env` values.
pub fn remote_env_policy(patterns: &[String]) -> Result<rl_runner::envs::UrlPolicy, CliError> {
    let patterns = patterns
        .iter()
        .map(|text| {
            text.parse()
                .map_err(|e| CliError::input(format!("--allow-remote-env: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(rl_runner::envs::UrlPolicy::LoopbackAnd(patterns))
}

/// The log format on stderr.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The `--log-format` value that names it.
    fn flag(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Logs to stderr, filtered by `RL_LAB_LOG` (default `info`); a run's log
/// lines also go to the store, for its clients.
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RL_LAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(rl_server::logs::RunLogLayer);
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry.with(stderr).init(),
        LogFormat::Json => registry.with(stderr.json()).init(),
    }
}

/// The store a `--store` URL names, with the password from the
/// environment; exit code 2 naming the flag or variable when either is
/// bad. The URL is never repeated: it may hold a password by mistake.
pub fn store_location(url: &str) -> Result<rl_server::store::StoreLocation, CliError> {
    let target = url
        .parse()
        .map_err(|e| CliError::input(format!("--store: {e}")))?;
    let password = rl_server::store::postgres::Password::from_env().map_err(CliError::input)?;
    Ok(rl_server::store::StoreLocation::Postgres { target, password })
}

/// How a process takes part in the store's queue (`serve` and `worker`).
#[derive(clap::Args)]
pub struct QueueArgs {
    /// This process's name in the store, shown as the holder of the runs it
    /// executes (default HOST-PID).
    #[arg(long)]
    name: Option<String>,
    /// Seconds a claimed run is held without renewal: the runs of a process
    /// that stops renewing (killed, cut off) go back to the queue after this.
    /// (A server on SQLite gives its local workers at least 600: it sees
    /// them die at once, and a busy machine must not cost runs progress.)
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    lease: f64,
    /// Seconds between lease renewals; under --lease.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    heartbeat: f64,
    /// Most claims of one run: a run whose worker is lost this many times
    /// ends failed.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
}

impl QueueArgs {
    /// `base` with these flags, checked.
    pub fn node(
        &self,
        base: rl_server::runs::NodeConfig,
    ) -> Result<rl_server::runs::NodeConfig, CliError> {
        let seconds = |flag: &str, value: f64| {
            if value.is_finite() && value > 0.0 && value <= 86_400.0 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(CliError::input(format!(
                    "{flag}: {value} is not a number of seconds from 0 to 86400"
                )))
            }
        };
        let lease = seconds("--lease", self.lease)?;
        let heartbeat = seconds("--heartbeat", self.heartbeat)?;
        if heartbeat >= lease {
            return Err(CliError::input(format!(
                "--heartbeat: {} s is not under --lease ({} s): leases would lapse between renewals",
                self.heartbeat, self.lease
            )));
        }
        if self.max_attempts == 0 {
            return Err(CliError::input("--max-attempts: must be at least 1"));
        }
        if let Some(name) = &self.name
            && (name.is_empty() || name.len() > 200 || name.chars().any(char::is_control))
        {
            return Err(CliError::input(
                "--name: must be 1 to 200 characters, none of them control characters",
            ));
        }
        Ok(rl_server::runs::NodeConfig {
            name: self.name.clone().unwrap_or(base.name),
            lease,
            heartbeat,
            max_attempts: self.max_attempts,
            ..base
        })
    }
}

/// The shortest lease of a server's local worker on SQLite, in seconds.
const LOCAL_SQLITE_LEASE: f64 = 600.0;

impl QueueArgs {
    /// The same flags for a local worker process (its `--name` is added).
    /// On the server's own SQLite file a worker's lease is at least
    /// [`LOCAL_SQLITE_LEASE`]: the server sees its workers die at once,
    /// and a machine too busy to renew in time must not cost runs their
    /// progress since the last checkpoint.
    fn for_local_worker(&self, sqlite: bool) -> Vec<std::ffi::OsString> {
        let lease = if sqlite {
            self.lease.max(LOCAL_SQLITE_LEASE)
        } else {
            self.lease
        }
        .to_string();
        let heartbeat = self.heartbeat.to_string();
        let max_attempts = self.max_attempts.to_string();
        [
            "--lease",
            &lease,
            "--heartbeat",
            &heartbeat,
            "--max-attempts",
            &max_attempts,
        ]
        .iter()
        .map(Into::into)
        .collect()
    }
}

/// Serves until SIGINT or SIGTERM. The first line on stdout is
/// `listening on http://ADDR`. `RL_LAB_TOKEN` turns on token authentication.
pub fn serve(args: ServeArgs, lab: &super::Lab) -> CliResult {
    if args.max_concurrent_runs == Some(0) {
        return Err(CliError::input("--max-concurrent-runs: must be at least 1"));
    }
    if args.slots == Some(0) && args.store.is_none() {
        return Err(CliError::input(
            "--slots 0: a server that executes no runs needs a --store postgres://… that workers claim from",
        ));
    }
    if args.max_instances == 0 {
        return Err(CliError::input("--max-instances: must be at least 1"));
    }
    let node = args.queue.node(rl_server::runs::NodeConfig::server())?;
    if node.name.len() > 190 {
        return Err(CliError::input(
            "--name: at most 190 characters for a server, whose local workers are named after it (NAME.1, NAME.2, …)",
        ));
    }
    let remote_envs = remote_env_policy(&args.allow_remote_env)?;
    let mut config = ServeConfig::new(args.addr, args.data.clone());
    // The store as the local workers are told it: the same URL (its
    // password reaches them through the environment they inherit), or
    // the SQLite file.
    let store_for_workers = match &args.store {
        Some(url) => {
            config.store = store_location(url)?;
            url.clone()
        }
        None => format!("sqlite:{}", args.data.join("rl-lab.db").display()),
    };
    let program = std::env::current_exe().map_err(|e| CliError {
        code: 1,
        message: format!("finding this program, to start its local workers: {e}"),
    })?;
    init_logs(args.log_format);
    config.node = node;
    config.artifacts = args.artifacts.clone();
    config.env_plugins = lab.env_plugins().to_vec();
    if let Some(n) = args.max_concurrent_runs.or(args.slots) {
        config.max_concurrent_runs = n;
    }
    let slots = config.max_concurrent_runs;
    // One figure for the server's 422 and its workers' own check.
    let max_run_memory = args
        .max_run_memory
        .unwrap_or_else(|| rl_runner::memory::default_max_run_memory(slots));
    config.max_body_bytes = args.max_body_bytes;
    config.instance_idle_timeout = Duration::from_secs(args.instance_idle_timeout);
    config.max_instances = args.max_instances;
    config.max_run_memory = Some(max_run_memory);
    config.token = std::env::var("RL_LAB_TOKEN").ok().filter(|t| !t.is_empty());
    config.remote_envs = remote_envs;
    let mut worker_args: Vec<std::ffi::OsString> = vec![
        "worker".into(),
        "--serve-child".into(),
        "--store".into(),
        store_for_workers.into(),
        "--data".into(),
        args.data.into(),
        "--slots".into(),
        "1".into(),
        "--max-run-memory".into(),
        max_run_memory.to_string().into(),
        "--log-format".into(),
        args.log_format.flag().into(),
    ];
    worker_args.extend(args.queue.for_local_worker(args.store.is_none()));
    if let Some(artifacts) = &args.artifacts {
        worker_args.extend(["--artifacts".into(), artifacts.into()]);
    }
    for pattern in &args.allow_remote_env {
        worker_args.extend(["--allow-remote-env".into(), pattern.into()]);
    }
    config.local_workers = Some(rl_server::local_workers::LocalWorkerCommand {
        program,
        args: worker_args,
        count: slots,
    });
    run_async(rl_server::serve(config, |bound| {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on http://{bound}");
        let _ = stdout.flush();
    }))
}

/// Runs the server or a worker on a multi-threaded runtime until it
/// returns. A data folder, an address or an `--artifacts` URL that cannot
/// be used is bad input (exit code 2); anything else failed while running.
pub fn run_async(work: impl std::future::Future<Output = Result<(), ServeError>>) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError {
            code: 1,
            message: format!("starting the async runtime: {e}"),
        })?;
    runtime.block_on(work).map_err(|e| CliError {
        code: match e {
            ServeError::Bind { .. }
            | ServeError::Data { .. }
            | ServeError::Artifacts(rl_server::objects::ObjectsError::Url(_)) => 2,
            _ => 1,
        },
        message: e.to_string(),
    })
}
