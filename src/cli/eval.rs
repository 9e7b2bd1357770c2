//! `rl-lab eval RUN_DIR [--episodes N] [--gif OUT.gif] [--json]`
//!
//! Plays the policy a run saved, greedily (or ε-greedily when the spec's
//! `eval.epsilon` says so), on the run's environment with the run's
//! evaluation seeds, and prints the returns. The policy is `agent.json`
//! (the agent at the end of training), or else the latest
//! `checkpoint.json`. `--gif` records evaluation episode 0.

use super::{CliError, CliResult, print_json, read_spec};
use rl_runner::RunFolder;
use rl_runner::saved::{Record, evaluate_saved};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `rl-lab eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// A run folder written by `rl-lab run` (spec.json with agent.json or checkpoint.json).
    run_dir: PathBuf,
    /// Episodes to play; default the spec's eval.episodes (at least 1).
    #[arg(long)]
    episodes: Option<u64>,
    /// Also record evaluation episode 0 as an animated GIF at this path.
    #[arg(long)]
    gif: Option<PathBuf>,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Plays the saved policy and prints the returns.
pub fn eval(args: EvalArgs, lab: &super::Lab) -> CliResult {
    let spec = read_spec(&args.run_dir.join("spec.json"))?;
    let episodes = match args.episodes {
        Some(0) => return Err(CliError::input("--episodes: must be at least 1")),
        Some(n) => n,
        None => spec.eval.episodes.max(1),
    };
    let folder = RunFolder::open(&args.run_dir)?;
    let report = evaluate_saved(
        &lab.engine(),
        &folder,
        episodes,
        spec.seed,
        args.gif.as_deref().map_or(Record::None, Record::Gif),
    )?;
    if args.json {
        #[derive(Serialize)]
        struct Output<'a> {
            run_dir: String,
            #[serde(flatten)]
            report: &'a rl_runner::saved::SavedEvaluation,
            #[serde(skip_serializing_if = "Option::is_none")]
            gif: Option<String>,
        }
        return print_json(&Output {
            run_dir: args.run_dir.display().to_string(),
            report: &report,
            gif: args.gif.as_ref().map(|p| p.display().to_string()),
        });
    }
    say!(
        "{} on {} ({} after {} training steps)",
        spec.agent.id,
        spec.env.id,
        report.policy,
        report.trained_steps
    );
    if let (Some(r), Some(l)) = (report.mean_return, report.mean_length) {
        say!("  mean return {r:.3}, mean length {l:.1} over {episodes} episodes");
    }
    say!("  returns {:?}", report.returns);
    if let Some(gif) = &args.gif {
        say!("  episode 0 written to {}", gif.display());
    }
    Ok(())
}
