//! The subcommands, and how their errors become exit codes: 2 for bad
//! input (the message names the field and the value), 1 for failures
//! while running.

/// `println!` for command output, except that a closed stdout (`rl-lab
/// runs | head -3`) ends the output quietly instead of panicking, as
/// [`print_json`] does; any other write error goes to stderr.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

pub mod bench;
pub mod bench_envs;
pub mod bench_remote;
pub mod client;
pub mod eval;
pub mod list;
pub mod rollout;
pub mod run;
pub mod serve;
pub mod show;
pub mod worker;

use clap::{Parser, Subcommand};
use rl_runner::{Engine, EnvPlugin};
use std::process::ExitCode;

/// rl-lab: fast environments, textbook-exact agents, one binary.
#[derive(Parser)]
#[command(name = "rl-lab", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an agent on an environment as described by a run spec (JSON).
    Run(run::RunArgs),
    /// List the registered environments: ids, spaces and config defaults.
    Envs(list::EnvsArgs),
    /// List the agents with every hyperparameter: its default, bounds or choices, and what it does.
    Agents(list::AgentsArgs),
    /// Play a finished run's saved policy greedily; optionally record an episode as a GIF.
    Eval(eval::EvalArgs),
    /// Print the environment of a run spec rendered as text.
    Show(show::ShowArgs),
    /// Measure speed; prints figures (JSON with --json).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Play an environment (one episode, or N steps with auto-reset) and write JSON lines, a GIF or PNGs.
    Rollout(rollout::RolloutArgs),
    /// Serve the HTTP API: runs over REST in SQLite or PostgreSQL, live events, environments over HTTP.
    Serve(serve::ServeArgs),
    /// Execute runs queued in a PostgreSQL store (`serve --store`), on this machine.
    Worker(worker::WorkerArgs),
    /// Launch a run on a server and print its id.
    Submit(client::SubmitArgs),
    /// Launch a sweep (runs over a grid, random draws and seeds) on a server; prints its id, then its runs'.
    Sweep(client::SweepArgs),
    /// List a server's runs, newest first.
    Runs(client::RunsArgs),
    /// Follow a run on a server until it ends (exit 0 completed, 1 failed, 3 cancelled or interrupted).
    Watch(client::WatchArgs),
}

/// The command-line tool, with the environments it knows. `rl-lab`'s own
/// binary is `Lab::default().main()`; a crate that defines its own
/// environment links rl-lab and adds it with [`Lab::with_envs`], so that
/// every subcommand (`run`, `serve`, `rollout`, `envs`, ...) knows it.
#[derive(Clone, Debug, Default)]
pub struct Lab {
    env_plugins: Vec<EnvPlugin>,
}

impl Lab {
    /// Adds environments: `register` is called on every registry the tool
    /// builds, after rl-lab's own ids, so it may add ids (or replace one).
    pub fn with_envs(mut self, register: EnvPlugin) -> Self {
        self.env_plugins.push(register);
        self
    }

    /// The registries a run is built from, with the added environments.
    pub fn engine(&self) -> Engine {
        Engine::default().with_envs(&self.env_plugins)
    }

    /// The environments added with [`Lab::with_envs`].
    pub fn env_plugins(&self) -> &[EnvPlugin] {
        &self.env_plugins
    }

    /// Parses the command line, runs the subcommand and gives the exit
    /// code: 0 success, 2 bad input, 1 a failure while running.
    pub fn main(self) -> ExitCode {
        let args = Args::parse();
        let result = match args.command {
            Command::Run(a) => run::run(a, &self),
            Command::Envs(a) => list::envs(a, &self),
            Command::Agents(a) => list::agents(a, &self),
            Command::Eval(a) => eval::eval(a, &self),
            Command::Show(a) => show::show(a, &self),
            Command::Bench(b) => bench::bench(b),
            Command::Rollout(a) => rollout::rollout(a, &self),
            Command::Serve(a) => serve::serve(a, &self),
            Command::Worker(a) => worker::worker(a, &self),
            Command::Submit(a) => client::submit(a),
            Command::Sweep(a) => client::sweep(a),
            Command::Runs(a) => client::runs(a),
            Command::Watch(a) => client::watch(a),
        };
        exit(result)
    }
}

/// A failed command: its message and exit code.
#[derive(Debug)]
pub struct CliError {
    /// 2 for bad input, 1 for a failure while running.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl CliError {
    /// Bad input: exit code 2.
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<rl_runner::Error> for CliError {
    fn from(e: rl_runner::Error) -> Self {
        CliError {
            code: if e.is_input() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

/// What every subcommand returns.
pub type CliResult = Result<(), CliError>;

/// Prints the error, if any, and picks the exit code.
pub fn exit(result: CliResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Reads and parses a run spec file; every failure is an input error.
pub fn read_spec(path: &std::path::Path) -> Result<rl_runner::RunSpec, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
    rl_runner::RunSpec::from_json(&text)
        .map_err(|e| CliError::input(format!("{}: {e}", path.display())))
}

/// Writes one line of command output for [`say!`].
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: stdout: {e}");
        }
        _ => {}
    }
}

/// Prints a value as one line of JSON on stdout. A closed pipe (`| head`)
/// is not an error worth a panic.
pub fn print_json<T: serde::Serialize>(value: &T) -> CliResult {
    use std::io::Write;
    let text = serde_json::to_string(value).map_err(|e| CliError {
        code: 1,
        message: e.to_string(),
    })?;
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError {
            code: 1,
            message: format!("stdout: {e}"),
        }),
        _ => Ok(()),
    }
}
