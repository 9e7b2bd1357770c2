//! Playing the policy a run saved: `rl-lab eval` and the server's
//! `POST /runs/{id}/evaluate`.

use crate::folder::{Checkpoint, RunFolder};
use crate::train::{EvalSettings, evaluate_watched};
use crate::{Engine, Error, Result, RunSpec};
use base64::Engine as _;
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
    /// With a record of frames: the first episode, frame by frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
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
/// derived from `seed`, and records the first one as `record` says.
pub fn evaluate_saved(
    engine: &Engine,
    folder: &RunFolder,
    episodes: u64,
    seed: u64,
    record: Record<'_>,
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
        action_values: record == Record::Frames,
    };
    // With a record, the first evaluation episode is recorded frame by
    // frame as it is played: into a GIF, or as frames for a replay.
    let mut writer = match record {
        Record::Gif(path) => Some(rl_env::GifWriter::new(path)),
        _ => None,
    };
    let mut frames = Vec::new();
    let mut cut = false;
    let report = evaluate_watched(
        run.eval_env.as_mut(),
        run.agent.policy_mut(),
        settings,
        &mut |watched| {
            if watched.episode != 0 {
                return Ok(());
            }
            if let Some(writer) = writer.as_mut() {
                writer
                    .push(&rl_env::render::picture(watched.env))
                    .map_err(Error::Env)?;
            }
            if record == Record::Frames {
                if frames.len() == MAX_REPLAY_FRAMES {
                    cut = true;
                    return Ok(());
                }
                let png = rl_env::render::encode_png(&watched.env.render_rgb())
                    .map_err(|e| Error::spec("record", format!("encoding a replay frame: {e}")))?;
                frames.push(ReplayFrame {
                    png: base64::engine::general_purpose::STANDARD.encode(png),
                    action: watched.step.map(|(action, _)| action_json(action)),
                    reward: watched.step.map(|(_, reward)| reward),
                    action_values: watched.action_values.map(<[f64]>::to_vec),
                });
            }
            Ok(())
        },
    )?;
    if let Some(writer) = writer {
        writer.finish().map_err(Error::Env)?;
    }
    let replay = (record == Record::Frames).then(|| {
        let grid = run.eval_env.grid().map(|grid| {
            let tables = run.agent.policy().tables();
            GridOverlay {
                values: tables.as_ref().map(|t| crate::run::value_grid(&grid, t)),
                policy: tables.as_ref().map(|t| crate::run::policy_grid(&grid, t)),
                rows: grid.rows,
                cols: grid.cols,
            }
        });
        Replay {
            episode_return: report.returns.first().copied().unwrap_or(0.0),
            length: report.lengths.first().copied().unwrap_or(0),
            cut,
            frames,
            grid,
        }
    });
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
        replay,
    })
}

/// What to record of the first evaluation episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// Nothing.
    None,
    /// An animated GIF at this path.
    Gif(&'a Path),
    /// Frames for a replay, returned in [`SavedEvaluation::replay`].
    Frames,
}

/// Most frames a replay holds: a few seconds of a 1000-step episode at
/// 20 frames a second is what a person watches; longer episodes are cut,
/// and say so.
pub const MAX_REPLAY_FRAMES: usize = 2000;

/// An action as JSON: an integer, or a list of numbers.
fn action_json(action: &rl_env::Action) -> serde_json::Value {
    match action {
        rl_env::Action::Discrete(a) => (*a).into(),
        rl_env::Action::Continuous(values) => values.clone().into(),
    }
}

/// The first evaluation episode, frame by frame, for the dashboard's
/// replay: the frames the env renders itself (so every env is drawn as its
/// own renderer draws it), with what led to each.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replay {
    /// The episode's return.
    pub episode_return: f64,
    /// Its length in steps.
    pub length: u64,
    /// Whether it ran past [`MAX_REPLAY_FRAMES`], so that the frames stop
    /// before it ends.
    pub cut: bool,
    /// The state after the reset, then after each step.
    pub frames: Vec<ReplayFrame>,
    /// For grid environments: the grid's size and, with a tabular agent,
    /// the learned values and greedy arrows per cell.
    pub grid: Option<GridOverlay>,
}

/// One state of a replay.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayFrame {
    /// The env's RGB frame as a base64 PNG.
    pub png: String,
    /// The action that led here (none on the first frame).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub action: Option<serde_json::Value>,
    /// Its reward.
    pub reward: Option<f64>,
    /// The policy's value of each action here (Q(s, ·) for DQN and the
    /// tabular control agents); none where the episode ends or the agent
    /// keeps no values.
    pub action_values: Option<Vec<f64>>,
}

/// A grid environment's layout and what a tabular agent learned on it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridOverlay {
    /// Rows of cells.
    pub rows: usize,
    /// Columns of cells.
    pub cols: usize,
    /// V(s) per cell, row by row (`null` for a wall).
    pub values: Option<Vec<Vec<Option<f64>>>>,
    /// The greedy action per cell as an arrow, one string per row (`·` for
    /// walls and terminal cells).
    pub policy: Option<Vec<String>>,
}
