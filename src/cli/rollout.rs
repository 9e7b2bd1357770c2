//! `rl-lab rollout --env ID [--config JSON] --seed S [--actions FILE | --policy random]
//! [--steps N] [--format jsonl|gif|png] [--out PATH]`
//!
//! Plays one episode, or `--steps N` steps with auto-reset, and writes it
//! down: JSON lines, an animated GIF or a folder of PNG frames. This is how
//! a user checks an environment by eye and how fidelity tests drive the
//! binary.
//!
//! JSON lines: each reset is a line `{"t": 0, "action": null, "obs": …}`,
//! each step a line `{"t", "action", "reward", "terminated", "truncated",
//! "obs"}` with the observation after the step, `t` counting the steps of
//! the current episode. With `--steps N`, an episode that ends is followed
//! by a reset line (no seed: the env's stream continues) and play goes on
//! until N steps have been taken. The rollout also stops when an
//! `--actions` file runs out.

use super::{CliError, CliResult};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rl_env::{Action, Env, Observation, StepOutcome};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line: the reset, then each step.
    Jsonl,
    /// An animated GIF of the rendered frames.
    Gif,
    /// A folder of PNG frames, 00000.png, 00001.png, …
    Png,
}

/// Where actions come from when no file is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Uniform over the action space, seeded by --seed.
    Random,
}

/// Arguments of `rl-lab rollout`.
#[derive(clap::Args)]
pub struct RolloutArgs {
    /// Environment id, as `rl-lab envs` lists them (e.g. CartPole-v1, minatar/breakout).
    #[arg(long)]
    env: String,
    /// Environment config, a JSON object (e.g. '{"max_steps": 100}').
    #[arg(long)]
    config: Option<String>,
    /// Seed of the first reset and of the random policy.
    #[arg(long)]
    seed: u64,
    /// A file of actions, one integer per line (blank lines are skipped).
    #[arg(long, conflicts_with = "policy")]
    actions: Option<PathBuf>,
    /// The policy when no --actions file is given.
    #[arg(long, value_enum)]
    policy: Option<Policy>,
    /// Take this many steps, resetting when episodes end; default: one episode.
    #[arg(long)]
    steps: Option<u64>,
    /// What to write.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Output file (jsonl: default stdout; gif: required) or folder (png: required).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The seed stream of the random policy, apart from any env's stream 0.
const POLICY_STREAM: u64 = 0x706f_6c69;

/// Plays and writes the rollout.
pub fn rollout(args: RolloutArgs, lab: &super::Lab) -> CliResult {
    let config: Value = match &args.config {
        None => Value::Null,
        Some(text) => serde_json::from_str(text)
            .map_err(|e| CliError::input(format!("--config: not JSON: {e}")))?,
    };
    let registry = lab.engine().envs;
    let mut env = registry.make(&args.env, &config).map_err(|e| match e {
        rl_env::Error::UnknownEnv { .. } => CliError::input(format!("--env: {e}")),
        other => CliError::input(format!("--config: {other}")),
    })?;
    if args.format != Format::Jsonl && args.out.is_none() {
        return Err(CliError::input(format!(
            "--out is required with --format {}",
            if args.format == Format::Gif {
                "gif"
            } else {
                "png"
            }
        )));
    }
    let mut actions = match &args.actions {
        Some(path) => Actions::File(read_actions(path, env.action_space())?.into_iter()),
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
            rng.set_stream(POLICY_STREAM);
            Actions::Random(Box::new(rng))
        }
    };
    let mut sink = Sink::open(args.format, args.out.as_deref())?;

    let mut obs = env.observation_space().zeros();
    env.reset_into(Some(args.seed), &mut obs)
        .map_err(|e| run_error(format!("reset: {e}")))?;
    let mut t = 0u64;
    sink.record(env.as_ref(), t, None, &obs, None)?;
    let mut taken = 0u64;
    loop {
        if args.steps.is_some_and(|n| taken >= n) {
            break;
        }
        let Some(action) = actions.next(env.action_space()) else {
            break;
        };
        let out = env
            .step_into(&action, &mut obs)
            .map_err(|e| run_error(format!("step {taken}: {e}")))?;
        taken += 1;
        t += 1;
        sink.record(env.as_ref(), t, Some(&action), &obs, Some(&out))?;
        if out.terminated || out.truncated {
            if args.steps.is_none_or(|n| taken >= n) {
                break;
            }
            env.reset_into(None, &mut obs)
                .map_err(|e| run_error(format!("reset: {e}")))?;
            t = 0;
            sink.record(env.as_ref(), t, None, &obs, None)?;
        }
    }
    sink.finish()
}

fn run_error(message: String) -> CliError {
    CliError { code: 1, message }
}

enum Actions {
    File(std::vec::IntoIter<Action>),
    Random(Box<ChaCha8Rng>),
}

impl Actions {
    fn next(&mut self, space: &rl_env::Space) -> Option<Action> {
        match self {
            Actions::File(it) => it.next(),
            Actions::Random(rng) => Some(space.sample_action(rng.as_mut())),
        }
    }
}

/// Reads one integer action per line and checks each against `space`,
/// so that a bad file fails before anything is played or written.
fn read_actions(path: &Path, space: &rl_env::Space) -> Result<Vec<Action>, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(format!("--actions {shown}: cannot read: {e}")))?;
    let mut actions = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: i64 = line.parse().map_err(|_| {
            CliError::input(format!(
                "--actions {shown}:{}: '{line}' is not an integer action",
                i + 1
            ))
        })?;
        let action = Action::Discrete(value);
        if !space.contains_action(&action) {
            return Err(CliError::input(format!(
                "--actions {shown}:{}: action {value} is not in the action space {space}",
                i + 1
            )));
        }
        actions.push(action);
    }
    Ok(actions)
}

/// One JSON line.
#[derive(Serialize)]
struct Line<'a> {
    t: u64,
    action: Option<&'a Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reward: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
    obs: &'a Observation,
}

pub(super) enum Sink {
    Jsonl(Box<dyn Write>),
    Gif(rl_env::GifWriter),
    Png { folder: PathBuf, index: usize },
}

fn write_error(path: &Path, e: impl std::fmt::Display) -> CliError {
    run_error(format!("could not write {}: {e}", path.display()))
}

impl Sink {
    pub(super) fn open(format: Format, out: Option<&Path>) -> Result<Sink, CliError> {
        Ok(match (format, out) {
            (Format::Jsonl, None) => {
                Sink::Jsonl(Box::new(std::io::BufWriter::new(std::io::stdout())))
            }
            (Format::Jsonl, Some(path)) => {
                let file = std::fs::File::create(path).map_err(|e| write_error(path, e))?;
                Sink::Jsonl(Box::new(std::io::BufWriter::new(file)))
            }
            (Format::Gif, Some(path)) => Sink::Gif(rl_env::GifWriter::new(path)),
            (Format::Png, Some(folder)) => {
                std::fs::create_dir_all(folder).map_err(|e| write_error(folder, e))?;
                Sink::Png {
                    folder: folder.to_path_buf(),
                    index: 0,
                }
            }
            (_, None) => unreachable!("--out is checked before opening"),
        })
    }

    pub(super) fn record(
        &mut self,
        env: &dyn Env,
        t: u64,
        action: Option<&Action>,
        obs: &Observation,
        out: Option<&StepOutcome>,
    ) -> CliResult {
        match self {
            Sink::Jsonl(w) => {
                let line = Line {
                    t,
                    action,
                    reward: out.map(|o| o.reward),
                    terminated: out.map(|o| o.terminated),
                    truncated: out.map(|o| o.truncated),
                    obs,
                };
                serde_json::to_writer(&mut *w, &line)
                    .map_err(|e| run_error(format!("writing JSON: {e}")))?;
                w.write_all(b"\n")
                    .map_err(|e| run_error(format!("writing JSON: {e}")))
            }
            Sink::Gif(writer) => writer
                .push(&rl_env::render::picture(env))
                .map_err(|e| run_error(e.to_string())),
            Sink::Png { folder, index } => {
                let path = folder.join(format!("{index:05}.png"));
                *index += 1;
                rl_env::save_png(&rl_env::render::picture(env), &path)
                    .map_err(|e| run_error(e.to_string()))
            }
        }
    }

    pub(super) fn finish(self) -> CliResult {
        match self {
            Sink::Jsonl(mut w) => w
                .flush()
                .map_err(|e| run_error(format!("writing JSON: {e}"))),
            Sink::Gif(writer) => writer
                .finish()
                .map(drop)
                .map_err(|e| run_error(e.to_string())),
            Sink::Png { .. } => Ok(()),
        }
    }
}
