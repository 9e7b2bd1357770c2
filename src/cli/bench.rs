//! `rl-lab bench …`: speed figures as JSON. The README's table comes from
//! `benches/peers/compare.py`, which runs these beside the Python peers.

use super::{CliError, CliResult, print_json};
use std::time::Duration;

/// What to measure.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Q-learning on CliffWalking, value iteration on FrozenLake 8x8, raw gridworld steps.
    Tabular(BenchArgs),
    /// Env steps/s, single-threaded and vectorised: the MinAtar games and CartPole-v1.
    Envs(BenchArgs),
    /// One DQN update per second and 1-observation latency, MinAtar and Nature networks, one thread.
    Nets(BenchArgs),
    /// DQN training env steps/s on minatar/breakout after learning starts (defaults, one thread).
    Dqn(BenchArgs),
    /// PPO training env steps/s on minatar/breakout: 8 envs, 128-step rollouts, 4 epochs of 4 minibatches, one thread.
    Ppo(BenchArgs),
    /// A remote env's step against its server's echo, and vector steps/s, through an adapter at --url.
    Remote(super::bench_remote::RemoteBenchArgs),
}

/// Options shared by the benchmarks.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Seconds to spend on each workload.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
}

impl BenchArgs {
    /// `--seconds` as a duration, checked.
    pub fn budget(&self) -> Result<Duration, CliError> {
        if self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 3600.0 {
            Ok(Duration::from_secs_f64(self.seconds))
        } else {
            Err(CliError::input(format!(
                "--seconds: {} is not a duration in (0, 3600]",
                self.seconds
            )))
        }
    }
}

/// Runs the chosen benchmark.
pub fn bench(command: BenchCommand) -> CliResult {
    match command {
        BenchCommand::Remote(args) => super::bench_remote::bench_remote(args),
        BenchCommand::Envs(args) => super::bench_envs::bench_envs(args.budget()?, args.json),
        BenchCommand::Nets(args) => {
            let report = rl_dqn::bench::nets(args.budget()?).map_err(|e| CliError {
                code: 1,
                message: e.to_string(),
            })?;
            if args.json {
                print_json(&report)
            } else {
                say!(
                    "MinAtar net: {:.0} updates/s, {:.1} µs per observation\nNature net: {:.1} updates/s, {:.1} µs per observation",
                    report.minatar.updates_per_second,
                    report.minatar.infer_b1_us,
                    report.nature.updates_per_second,
                    report.nature.infer_b1_us
                );
                Ok(())
            }
        }
        BenchCommand::Dqn(args) => train_rate(
            "dqn",
            "one update per step, batch 32",
            rl_runner::bench::dqn(args.budget()?)?,
            args.json,
        ),
        BenchCommand::Ppo(args) => train_rate(
            "ppo",
            "8 envs, 128-step rollouts, 4 epochs of 4 minibatches",
            rl_runner::bench::ppo(args.budget()?)?,
            args.json,
        ),
        BenchCommand::Tabular(args) => {
            let report = rl_runner::bench::tabular(args.budget()?)?;
            if args.json {
                print_json(&report)
            } else {
                say!(
                    "q-learning on CliffWalking: {:.0} steps/s\nvalue iteration on FrozenLake 8x8: {:.6} s, {} sweeps\ngridworld random steps: {:.0} steps/s",
                    report.q_learning_cliff_walking.steps_per_second,
                    report.value_iteration_frozen_lake_8x8.seconds,
                    report.value_iteration_frozen_lake_8x8.sweeps,
                    report.gridworld_steps_per_second
                );
                Ok(())
            }
        }
    }
}

/// Prints a training-rate report as JSON or as one line per env.
fn train_rate(
    agent: &str,
    setting: &str,
    report: rl_runner::bench::TrainReport,
    json: bool,
) -> CliResult {
    if json {
        return print_json(&report);
    }
    for (env, rate) in &report {
        say!(
            "{agent} on {env}: {:.0} env steps/s while training ({setting})",
            rate.train_steps_per_second
        );
    }
    Ok(())
}
