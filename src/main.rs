//! The `rl-lab` command-line tool.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

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
    Run(cli::run::RunArgs),
    /// List the registered environments: ids, spaces and config defaults.
    Envs(cli::list::EnvsArgs),
    /// List the agents with every hyperparameter: its default, bounds or choices, and what it does.
    Agents(cli::list::AgentsArgs),
    /// Play a finished run's saved policy greedily; optionally record an episode as a GIF.
    Eval(cli::eval::EvalArgs),
    /// Print the environment of a run spec rendered as text.
    Show(cli::show::ShowArgs),
    /// Measure speed; prints figures (JSON with --json).
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// Play an environment (one episode, or N steps with auto-reset) and write JSON lines, a GIF or PNGs.
    Rollout(cli::rollout::RolloutArgs),
    /// Serve the HTTP API: runs over REST in SQLite, live events, environments over HTTP.
    Serve(cli::serve::ServeArgs),
    /// Launch a run on a server and print its id.
    Submit(cli::client::SubmitArgs),
    /// List a server's runs, newest first.
    Runs(cli::client::RunsArgs),
    /// Follow a run on a server until it ends (exit 0 completed, 1 failed, 3 cancelled or interrupted).
    Watch(cli::client::WatchArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Run(a) => cli::run::run(a),
        Command::Envs(a) => cli::list::envs(a),
        Command::Agents(a) => cli::list::agents(a),
        Command::Eval(a) => cli::eval::eval(a),
        Command::Show(a) => cli::show::show(a),
        Command::Bench(b) => cli::bench::bench(b),
        Command::Rollout(a) => cli::rollout::rollout(a),
        Command::Serve(a) => cli::serve::serve(a),
        Command::Submit(a) => cli::client::submit(a),
        Command::Runs(a) => cli::client::runs(a),
        Command::Watch(a) => cli::client::watch(a),
    };
    cli::exit(result)
}
