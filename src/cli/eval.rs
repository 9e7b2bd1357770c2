//! `rl-lab eval RUN_DIR [--episodes N] [--gif OUT.gif] [--json]`
//!
//! Plays the policy a run saved, greedily (or ε-greedily when the spec's
//! `eval.epsilon` says so), on the run's environment with the run's
//! evaluation seeds, and prints the returns. The policy is `agent.json`
//! (the agent at the end of training), or else the latest
//! `checkpoint.json`. `--gif` records evaluation episode 0.

use super::rollout::{Format, Sink};
use super::{CliError, CliResult, print_json, read_spec};
use rand::{RngExt, SeedableRng};
use rl_runner::folder::Checkpoint;
use rl_runner::seeds::{Stream, derive, env_seed};
use rl_runner::train::evaluate_with_epsilon;
use rl_runner::{Engine, PreparedRun};
use serde::Serialize;
use std::path::{Path, PathBuf};

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

#[derive(Serialize)]
struct EvalOutput {
    run_dir: String,
    /// Which saved state was played.
    policy: String,
    /// Env steps the policy had trained for.
    trained_steps: u64,
    episodes: u64,
    mean_return: Option<f64>,
    mean_length: Option<f64>,
    returns: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gif: Option<String>,
}

/// Evaluates a run folder's saved policy.
pub fn eval(args: EvalArgs) -> CliResult {
    let spec = read_spec(&args.run_dir.join("spec.json"))?;
    let (policy, checkpoint) = read_policy(&args.run_dir)?;
    let engine = Engine::default();
    let mut run = engine.prepare(spec)?;
    run.restore(&checkpoint)?;
    let episodes = match args.episodes {
        Some(0) => return Err(CliError::input("--episodes: must be at least 1")),
        Some(n) => n,
        None => run.spec.eval.episodes.max(1),
    };
    let report = evaluate_with_epsilon(
        run.eval_env.as_mut(),
        run.agent.as_mut(),
        episodes,
        run.spec.eval.max_steps,
        run.spec.seed,
        run.spec.eval.epsilon,
        0,
    )?;
    if let Some(path) = &args.gif {
        record_episode(&mut run, path)?;
    }
    let output = EvalOutput {
        run_dir: args.run_dir.display().to_string(),
        policy: policy.display().to_string(),
        trained_steps: checkpoint.counters.steps,
        episodes,
        mean_return: report.mean_return,
        mean_length: report.mean_length,
        returns: report.returns,
        gif: args.gif.as_ref().map(|p| p.display().to_string()),
    };
    if args.json {
        return print_json(&output);
    }
    println!(
        "{} on {} ({} after {} training steps)",
        run.spec.agent.id, run.spec.env.id, output.policy, output.trained_steps
    );
    if let (Some(r), Some(l)) = (output.mean_return, output.mean_length) {
        println!("  mean return {r:.3}, mean length {l:.1} over {episodes} episodes");
    }
    println!("  returns {:?}", output.returns);
    if let Some(gif) = &output.gif {
        println!("  episode 0 written to {gif}");
    }
    Ok(())
}

/// `agent.json` if the run finished, else its latest `checkpoint.json`.
fn read_policy(dir: &Path) -> Result<(PathBuf, Checkpoint), CliError> {
    for name in ["agent.json", "checkpoint.json"] {
        let path = dir.join(name);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let checkpoint = serde_json::from_str(&text).map_err(|e| {
                CliError::input(format!("{}: not a checkpoint: {e}", path.display()))
            })?;
            return Ok((path, checkpoint));
        }
    }
    Err(CliError::input(format!(
        "{}: no agent.json or checkpoint.json; is it a folder written by `rl-lab run`?",
        dir.display()
    )))
}

/// Plays evaluation episode 0 again on the (unused) training env instance,
/// with the same reset seed and ε stream, rendering every frame to a GIF.
fn record_episode(run: &mut PreparedRun, path: &Path) -> CliResult {
    let seed = run.spec.seed;
    let epsilon = run.spec.eval.epsilon;
    let env = run.env.as_mut();
    let agent = run.agent.as_mut();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(derive(seed, Stream::EvalPolicy, 0));
    let fail = |e: String| CliError {
        code: 1,
        message: e,
    };
    let mut sink = Sink::open(Format::Gif, Some(path))?;
    let mut obs = env.observation_space().zeros();
    env.reset_into(Some(env_seed(seed, Stream::EvalEpisode, 0)), &mut obs)
        .map_err(|e| fail(format!("reset: {e}")))?;
    sink.record(&*env, 0, None, &obs, None)?;
    for t in 1..=run.spec.eval.max_steps {
        let action = if epsilon > 0.0 && rng.random::<f64>() < epsilon {
            env.action_space().sample_action(&mut rng)
        } else {
            agent
                .act_greedy(&obs)
                .map_err(|e| fail(format!("agent: {e}")))?
        };
        let out = env
            .step_into(&action, &mut obs)
            .map_err(|e| fail(format!("step {t}: {e}")))?;
        sink.record(&*env, t, Some(&action), &obs, Some(&out))?;
        if out.terminated || out.truncated {
            break;
        }
    }
    sink.finish()
}
