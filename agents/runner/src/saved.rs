//! Playing the policy a run saved: `rl-lab eval` and the server's
//! `POST /runs/{id}/evaluate`.

use crate::folder::{Checkpoint, RunFolder};
use crate::train::{EvalSettings, evaluate_watched};
use crate::{Engine, Error, Result, RunSpec};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What evaluating a saved policy found.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SavedEvaluation {
    /// The file of the run folder the policy came from: `agent.json` or
    /// `checkpoint.json`.
    pub policy: String,
    /// Training steps behind the policy.
    pub trained_steps: u64,
    /// Episodes played.
    pub episodes: u64,
    /// Mean return.
    pub mean_return: Option<f64>,
    /// Mean length.
    pub mean_length: Option<f64>,
    /// Each episode's return.
    pub returns: Vec<f64>,
    /// Each episode's length.
    pub lengths: Vec<u64>,
}

/// The newest policy in a run folder: `agent.json` (written when training
/// ended) or else the latest `checkpoint.json`.
pub fn read_policy(dir: &Path) -> Result<(PathBuf, Checkpoint)> {
    for name in ["agent.json", "checkpoint.json"] {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let checkpoint = serde_json::from_str(&text).map_err(|e| {
                    Error::spec(
                        "run_dir",
                        format!("{}: not a checkpoint: {e}", path.display()),
                    )
                })?;
                return Ok((path, checkpoint));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Err(Error::spec(
        "run_dir",
        format!(
            "{}: no agent.json or checkpoint.json yet; the run has not saved a policy",
            dir.display()
        ),
    ))
}

/// Plays `episodes` episodes of the policy saved in `folder` (greedy, or
/// ε-greedy as the spec's `eval.epsilon` says), from evaluation seeds
/// derived from `seed`, and with `gif` records the first one.
pub fn evaluate_saved(
    engine: &Engine,
    folder: &RunFolder,
    episodes: u64,
    seed: u64,
    gif: Option<&Path>,
) -> Result<SavedEvaluation> {
    let text = std::fs::read_to_string(folder.path().join("spec.json"))
        .map_err(|e| Error::io(folder.path().join("spec.json"), e))?;
    let spec = RunSpec::from_json(&text)?;
    let (policy, checkpoint) = read_policy(folder.path())?;
    let mut run = engine.prepare(spec)?;
    run.restore(&checkpoint)?;
    let settings = EvalSettings {
        episodes,
        max_steps: run.spec.eval.max_steps,
        seed,
        epsilon: run.spec.eval.epsilon,
        round: 0,
    };
    // With `gif`, the first evaluation episode is recorded frame by frame
    // as it is played.
    let mut writer = gif.map(rl_env::GifWriter::new);
    let report = evaluate_watched(
        run.eval_env.as_mut(),
        run.agent.policy_mut(),
        settings,
        &mut |episode, env| {
            if let (0, Some(writer)) = (episode, writer.as_mut()) {
                writer
                    .push(&rl_env::render::picture(env))
                    .map_err(Error::Env)?;
            }
            Ok(())
        },
    )?;
    if let Some(writer) = writer {
        writer.finish().map_err(Error::Env)?;
    }
    Ok(SavedEvaluation {
        policy: policy
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
        trained_steps: checkpoint.counters.steps,
        episodes,
        mean_return: report.mean_return,
        mean_length: report.mean_length,
        returns: report.returns,
        lengths: report.lengths,
    })
}
