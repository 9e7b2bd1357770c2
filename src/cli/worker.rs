//! `rl-lab worker`: executes runs queued in a shared store.

use super::serve::{
    LogFormat, QueueArgs, host_pattern, init_logs, remote_env_policy, run_async, store_location,
};
use super::{CliError, CliResult};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `rl-lab worker`.
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The store to claim runs from: postgres://USER@HOST[:PORT]/DB. The
    /// password comes from the file named by RL_LAB_STORE_PASSWORD_FILE,
    /// else from PGPASSWORD; never from the URL.
    // Parsed by `store_location`, not by clap, whose refusal would repeat
    // the value, and with it a password given by mistake.
    #[arg(long, env = "RL_LAB_STORE", hide_env_values = true, value_name = "URL")]
    store: String,
    /// Run folders (checkpoints, metrics files, TensorBoard files): workers
    /// that may resume each other's runs must share it.
    #[arg(long, default_value = "./rl-lab-data")]
    data: PathBuf,
    /// Mirror run folders to object storage, as `rl-lab serve --artifacts`:
    /// file:///path or s3://bucket/prefix. Workers that share it resume
    /// each other's runs without a shared --data.
    #[arg(long, env = "RL_LAB_ARTIFACTS", value_name = "URL")]
    artifacts: Option<String>,
    /// Runs executed at once (default: the number of cores).
    #[arg(long)]
    slots: Option<usize>,
    #[command(flatten)]
    queue: QueueArgs,
    /// Stop once nothing has run for this many seconds: a Slurm job array
    /// drains the queue and ends.
    #[arg(long, value_name = "SECONDS")]
    exit_when_idle: Option<u64>,
    /// Most memory one run may need, e.g. 4G or 512M; a larger run fails.
    /// Default: three quarters of the machine's memory divided by --slots.
    #[arg(long, value_name = "BYTES", value_parser = rl_runner::memory::parse_bytes)]
    max_run_memory: Option<u64>,
    /// Lets runs use `remote` envs served at HOST[:PORT] (repeatable), as
    /// `rl-lab serve --allow-remote-env`; loopback only without it.
    #[arg(long = "allow-remote-env", value_name = "HOST[:PORT]", value_parser = host_pattern)]
    allow_remote_env: Vec<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Started by `rl-lab serve` as one of its local workers: --store may
    /// be sqlite:PATH, stdin is the server's pipe (a byte: a run was
    /// queued; its end: the server stopped, and so does this worker), and
    /// a stop checkpoints runs as `interrupted` as the server's would.
    #[arg(long, hide = true)]
    serve_child: bool,
}

/// Claims and executes runs until SIGINT or SIGTERM (or --exit-when-idle),
/// then hands the runs it holds back to the queue. The first line on
/// stdout is `worker NAME ready`.
pub fn worker(args: WorkerArgs, lab: &super::Lab) -> CliResult {
    if args.slots == Some(0) {
        return Err(CliError::input("--slots: must be at least 1"));
    }
    let store = match args.store.strip_prefix("sqlite:") {
        Some(path) if args.serve_child => {
            rl_server::store::StoreLocation::Sqlite(PathBuf::from(path))
        }
        Some(_) => {
            return Err(CliError::input(
                "--store: rl-lab worker takes postgres://…; a SQLite file's workers are the ones \
                 rl-lab serve starts itself (--slots)",
            ));
        }
        None => store_location(&args.store)?,
    };
    let remote_envs = remote_env_policy(&args.allow_remote_env)?;
    let base = rl_server::runs::NodeConfig {
        // A server's local workers take external runs too: the server
        // relays their env processes' connections.
        claims: if args.serve_child {
            rl_server::store::ClaimScope::Any
        } else {
            rl_server::store::ClaimScope::NotExternal
        },
        hands_back: !args.serve_child,
        ..rl_server::runs::NodeConfig::server()
    };
    let node = args.queue.node(base)?;
    init_logs(args.log_format);
    let config = rl_server::WorkerConfig {
        store,
        data: args.data,
        slots: args
            .slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        node,
        artifacts: args.artifacts,
        exit_when_idle: args.exit_when_idle.map(Duration::from_secs),
        max_run_memory: args.max_run_memory,
        env_plugins: lab.env_plugins().to_vec(),
        remote_envs,
        serve_child: args.serve_child,
    };
    run_async(rl_server::work(config, |name, relay| {
        let mut stdout = std::io::stdout();
        if let Some(address) = relay {
            let _ = writeln!(stdout, "{}{address}", rl_server::local_workers::RELAY_LINE);
        }
        let _ = writeln!(stdout, "worker {name} ready");
        let _ = stdout.flush();
    }))
}
