//! `rl-lab serve`: the HTTP server.

use super::{CliError, CliResult};
use rl_server::ServeConfig;
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
    /// Data folder: the SQLite database `rl-lab.db` and run folders `runs/<id>/`.
    #[arg(long, default_value = "./rl-lab-data")]
    data: PathBuf,
    /// Runs training at once (default: the number of cores); more queue in order.
    #[arg(long)]
    max_concurrent_runs: Option<usize>,
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
    #[arg(long = "allow-remote-env", value_name = "HOST[:PORT]", value_parser = parse_host_pattern)]
    allow_remote_env: Vec<rl_runner::envs::HostPattern>,
}

fn parse_host_pattern(text: &str) -> Result<rl_runner::envs::HostPattern, String> {
    text.parse()
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Serves until SIGINT or SIGTERM. The first line on stdout is
/// `listening on http://ADDR`. `RL_LAB_TOKEN` turns on token authentication.
pub fn serve(args: ServeArgs, lab: &super::Lab) -> CliResult {
    if args.max_concurrent_runs == Some(0) {
        return Err(CliError::input("--max-concurrent-runs: must be at least 1"));
    }
    if args.max_instances == 0 {
        return Err(CliError::input("--max-instances: must be at least 1"));
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("RL_LAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(rl_server::logs::RunLogLayer);
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => registry.with(stderr).init(),
        LogFormat::Json => registry.with(stderr.json()).init(),
    }
    let mut config = ServeConfig::new(args.addr, args.data);
    config.env_plugins = lab.env_plugins().to_vec();
    if let Some(n) = args.max_concurrent_runs {
        config.max_concurrent_runs = n;
    }
    config.max_body_bytes = args.max_body_bytes;
    config.instance_idle_timeout = Duration::from_secs(args.instance_idle_timeout);
    config.max_instances = args.max_instances;
    config.max_run_memory = args.max_run_memory;
    config.token = std::env::var("RL_LAB_TOKEN").ok().filter(|t| !t.is_empty());
    config.remote_envs = rl_runner::envs::UrlPolicy::LoopbackAnd(args.allow_remote_env);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError {
            code: 1,
            message: format!("starting the async runtime: {e}"),
        })?;
    runtime
        .block_on(rl_server::serve(config, |bound| {
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "listening on http://{bound}");
            let _ = stdout.flush();
        }))
        .map_err(|e| CliError {
            code: match e {
                rl_server::ServeError::Bind { .. } | rl_server::ServeError::Data { .. } => 2,
                _ => 1,
            },
            message: e.to_string(),
        })
}
