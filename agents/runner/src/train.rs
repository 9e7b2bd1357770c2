//! The one training loop. The CLI, the server and every agent use it; there
//! is no second copy.
//!
//! Each training episode resets the environment with a seed derived from
//! the run seed and the episode number, so a run resumed from a checkpoint
//! (taken at an episode boundary) continues exactly as if uninterrupted.

use crate::recording::{Recording, RecordingPolicy};
use crate::seeds::{Stream, derive, env_seed};
use crate::spec::Budget;
use crate::{Error, Result};
use rand::{RngExt, SeedableRng};
use rl_agent::{
    Agent, AnyAgent, EpisodeRecord, PlanReport, Planner, Policy, Record, Sink, Transition,
};
use rl_env::Env;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Where a run stands: what a checkpoint stores besides the agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Training episodes finished.
    pub episodes: u64,
    /// Environment steps taken.
    pub steps: u64,
}

/// Progress, as the loop reports it after each episode.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Where the run stands.
    pub counters: Counters,
    /// Mean return of the last 100 episodes.
    pub recent_mean_return: Option<f64>,
    /// Environment steps per second since training began.
    pub steps_per_second: f64,
    /// The agent's exploration rate now, if it has one.
    pub epsilon: Option<f64>,
}

/// Lets another thread stop a run between steps.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag that is not raised.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the run to stop at the next step.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether someone asked the run to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What training ended with.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    /// Where the run stands.
    pub counters: Counters,
    /// What the planner reported (planning agents only).
    pub plan: Option<PlanReport>,
    /// Whether training stopped because it was cancelled.
    pub cancelled: bool,
    /// Mean return of the last 100 training episodes.
    pub recent_mean_return: Option<f64>,
    /// Seconds spent.
    pub wall_seconds: f64,
}

/// Hooks the loop calls between episodes.
pub trait Hooks {
    /// After each finished episode.
    fn on_episode(&mut self, _progress: &Progress) {}
    /// At each checkpoint boundary: save `agent`, `counters` and what the
    /// environments carry into their next episodes.
    fn checkpoint(
        &mut self,
        _agent: &dyn Agent,
        _counters: Counters,
        _carried: &CarriedState,
    ) -> Result<()> {
        Ok(())
    }
    /// Asked at each episode end: whether to checkpoint now besides the
    /// spec's `checkpoint.every_episodes`. The server uses it to checkpoint
    /// on a wall-clock period, so a crash loses at most that much training.
    fn wants_checkpoint(&mut self, _counters: Counters) -> bool {
        false
    }
}

/// What the training and evaluation environments carry from one episode
/// into the next ([`Env::carried_state`]), saved with a checkpoint so that
/// a resumed run continues exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarriedState {
    /// The training environment's.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub train: serde_json::Value,
    /// The evaluation environment's.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub eval: serde_json::Value,
}

impl CarriedState {
    /// Reads both environments' carried state.
    pub fn of(train: &dyn Env, eval: Option<&dyn Env>) -> Self {
        CarriedState {
            train: train.carried_state(),
            eval: eval.map_or(serde_json::Value::Null, |e| e.carried_state()),
        }
    }

    /// Whether neither environment carries anything.
    pub fn is_empty(&self) -> bool {
        self.train.is_null() && self.eval.is_null()
    }
}

/// Hooks that do nothing.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// What the loop needs besides the env and the agent.
pub struct LoopSettings<'a> {
    /// How long to train.
    pub budget: Budget,
    /// The run seed.
    pub seed: u64,
    /// Checkpoint every this many episodes.
    pub checkpoint_every: Option<u64>,
    /// Cooperative cancellation.
    pub cancel: &'a CancelFlag,
    /// Where the run stands (zero for a new run, restored on resume).
    pub start: Counters,
    /// Evaluation during training, if any.
    pub periodic_eval: Option<PeriodicEval<'a>>,
}

/// Evaluation every `every_steps` training steps, on its own env instance,
/// recorded as `eval/mean_return` and `eval/mean_length` at that step.
pub struct PeriodicEval<'a> {
    /// The evaluation environment (never the training one).
    pub env: &'a mut dyn Env,
    /// Evaluate every this many env steps.
    pub every_steps: u64,
    /// Episodes per evaluation.
    pub episodes: u64,
    /// Each episode is cut after this many steps.
    pub max_steps: u64,
    /// Probability of a random action instead of the greedy one.
    pub epsilon: f64,
}

/// Trains `agent` on `env` until the budget is spent or the run is cancelled.
/// Planning agents plan from the env's model instead of stepping.
///
/// Metrics reach `sink` through the recording policy ([`crate::recording`]),
/// here, so that every caller's files and streams see the same points; the
/// summaries' figures (`recent_mean_return`) come from the loop itself and
/// stay exact whatever the policy merges.
pub fn train(
    env: &mut dyn Env,
    agent: &mut AnyAgent,
    settings: LoopSettings<'_>,
    sink: &mut dyn Sink,
    hooks: &mut dyn Hooks,
) -> Result<TrainOutcome> {
    let mut recording = Recording::new(sink, RecordingPolicy::default());
    let outcome = match agent {
        AnyAgent::Learner(learner) => learn(env, learner.as_mut(), settings, &mut recording, hooks),
        AnyAgent::Planner(planner) => plan(env, planner.as_mut(), settings.start, &mut recording),
    };
    // Even a failed run's metrics are written up to where it stopped.
    let closed = recording
        .close_windows()
        .map_err(|e| Error::io("metrics", e));
    let outcome = outcome?;
    closed?;
    Ok(outcome)
}

/// Lets a planner solve the environment's model; nothing is stepped.
fn plan(
    env: &dyn Env,
    planner: &mut dyn Planner,
    start: Counters,
    sink: &mut dyn Sink,
) -> Result<TrainOutcome> {
    let began = Instant::now();
    let model = env.model().ok_or_else(|| {
        Error::Incompatible("this agent plans with a model and the environment has none".into())
    })?;
    let report = planner.plan(model, sink).map_err(|e| match e {
        rl_agent::Error::Sink(cause) => Error::io("metrics", cause),
        other => Error::Agent(other),
    })?;
    Ok(TrainOutcome {
        counters: start,
        plan: Some(report),
        cancelled: false,
        recent_mean_return: None,
        wall_seconds: began.elapsed().as_secs_f64(),
    })
}

/// The loop proper: step, observe, record, checkpoint.
fn learn(
    env: &mut dyn Env,
    agent: &mut dyn Agent,
    mut settings: LoopSettings<'_>,
    sink: &mut dyn Sink,
    hooks: &mut dyn Hooks,
) -> Result<TrainOutcome> {
    let began = Instant::now();
    let mut counters = settings.start;
    let mut recent: VecDeque<f64> = VecDeque::with_capacity(100);
    let mut obs = env.observation_space().zeros();
    let mut next_obs = obs.clone();
    let record_error = |e: std::io::Error| Error::io("metrics", e);
    let mut cancelled = false;
    // Scalars the agent reports (train/loss, …), recorded at the current step.
    let mut scalars: Vec<(&'static str, f64)> = Vec::with_capacity(8);

    'episodes: while !budget_spent(settings.budget, counters) {
        if settings.cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        let episode_seed = env_seed(settings.seed, Stream::TrainEpisode, counters.episodes);
        if let Err(e) = env.reset_into(Some(episode_seed), &mut obs) {
            // An env that waits on another process gives up when the run is
            // cancelled: that is the cancellation, not a failure.
            if settings.cancel.is_cancelled() {
                cancelled = true;
                break;
            }
            return Err(Error::Env(e));
        }
        agent.begin_episode();
        let epsilon = agent.epsilon();
        let (mut episode_return, mut length) = (0.0, 0u64);
        loop {
            let action = agent.act(&obs).map_err(Error::Agent)?;
            let out = match env.step_into(&action, &mut next_obs) {
                Ok(out) => out,
                Err(_) if settings.cancel.is_cancelled() => {
                    cancelled = true;
                    break 'episodes;
                }
                Err(e) => return Err(Error::Env(e)),
            };
            counters.steps += 1;
            length += 1;
            episode_return += out.reward;
            agent
                .observe(&Transition {
                    obs: &obs,
                    action: &action,
                    reward: out.reward,
                    next_obs: &next_obs,
                    terminated: out.terminated,
                    truncated: out.truncated,
                })
                .map_err(Error::Agent)?;
            agent.take_scalars(&mut scalars);
            if !scalars.is_empty() {
                let wall_seconds = began.elapsed().as_secs_f64();
                for (name, value) in scalars.drain(..) {
                    sink.record(&Record::Scalar {
                        name: name.into(),
                        step: counters.steps,
                        value,
                        wall_seconds,
                    })
                    .map_err(record_error)?;
                }
            }
            if let Some(eval) = settings.periodic_eval.as_mut()
                && counters.steps.is_multiple_of(eval.every_steps)
            {
                let report = evaluate_with_epsilon(
                    &mut *eval.env,
                    agent,
                    eval.episodes,
                    eval.max_steps,
                    settings.seed,
                    eval.epsilon,
                    counters.steps / eval.every_steps,
                )?;
                let wall_seconds = began.elapsed().as_secs_f64();
                for (name, value) in [
                    ("eval/mean_return", report.mean_return),
                    ("eval/mean_length", report.mean_length),
                ] {
                    if let Some(value) = value {
                        sink.record(&Record::Scalar {
                            name: name.into(),
                            step: counters.steps,
                            value,
                            wall_seconds,
                        })
                        .map_err(record_error)?;
                    }
                }
            }
            std::mem::swap(&mut obs, &mut next_obs);
            if out.terminated || out.truncated {
                // Episode statistics recorded before reward clipping are the real score.
                if let Some(stats) = out.info.episode {
                    (episode_return, length) = (stats.episode_return, stats.length);
                }
                counters.episodes += 1;
                if recent.len() == 100 {
                    recent.pop_front();
                }
                recent.push_back(episode_return);
                let wall_seconds = began.elapsed().as_secs_f64();
                sink.record(&Record::Episode(EpisodeRecord {
                    episode: counters.episodes,
                    step: counters.steps,
                    episode_return,
                    length,
                    epsilon,
                    truncated: out.truncated && !out.terminated,
                    wall_seconds,
                }))
                .map_err(record_error)?;
                hooks.on_episode(&Progress {
                    counters,
                    recent_mean_return: mean(&recent),
                    steps_per_second: (counters.steps - settings.start.steps) as f64
                        / wall_seconds.max(1e-9),
                    epsilon: agent.epsilon(),
                });
                let every = settings.checkpoint_every;
                if every.is_some_and(|every| counters.episodes.is_multiple_of(every))
                    || hooks.wants_checkpoint(counters)
                {
                    // No merged window may span the checkpoint: a resumed
                    // run keeps the lines up to its step, and only those.
                    sink.flush().map_err(record_error)?;
                    let carried = CarriedState::of(
                        &*env,
                        settings.periodic_eval.as_ref().map(|eval| &*eval.env),
                    );
                    // A resume keeps the records up to the checkpoint's
                    // step: they must be written before it claims them.
                    sink.flush().map_err(record_error)?;
                    hooks.checkpoint(agent, counters, &carried)?;
                }
                break;
            }
            if budget_spent(settings.budget, counters) {
                break 'episodes;
            }
            // Often enough that a slow agent (DQN: ~1 ms a step) stops well within a second.
            if counters.steps.is_multiple_of(64) && settings.cancel.is_cancelled() {
                cancelled = true;
                break 'episodes;
            }
        }
    }
    Ok(TrainOutcome {
        counters,
        plan: None,
        cancelled,
        recent_mean_return: mean(&recent),
        wall_seconds: began.elapsed().as_secs_f64(),
    })
}

fn budget_spent(budget: Budget, counters: Counters) -> bool {
    match budget {
        Budget::Episodes(n) => counters.episodes >= n,
        Budget::Steps(n) => counters.steps >= n,
    }
}

fn mean(values: &VecDeque<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The result of evaluating a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalReport {
    /// Episodes played.
    pub episodes: u64,
    /// Mean undiscounted return.
    pub mean_return: Option<f64>,
    /// Mean episode length.
    pub mean_length: Option<f64>,
    /// Each episode's return.
    pub returns: Vec<f64>,
    /// Each episode's length.
    pub lengths: Vec<u64>,
}

/// Plays `episodes` greedy episodes, each cut after `max_steps` steps.
pub fn evaluate(
    env: &mut dyn Env,
    policy: &mut dyn Policy,
    episodes: u64,
    max_steps: u64,
    seed: u64,
) -> Result<EvalReport> {
    evaluate_with_epsilon(env, policy, episodes, max_steps, seed, 0.0, 0)
}

/// Like [`evaluate`], taking a uniformly random action with probability
/// `epsilon` (the Nature paper's 0.05) from a generator of its own, seeded
/// by `round` (0 for the final evaluation, k for the k-th periodic one), so
/// that evaluation never disturbs the agent's random stream. Episode `i`
/// resets with the same seed in every round.
pub fn evaluate_with_epsilon(
    env: &mut dyn Env,
    policy: &mut dyn Policy,
    episodes: u64,
    max_steps: u64,
    seed: u64,
    epsilon: f64,
    round: u64,
) -> Result<EvalReport> {
    let settings = EvalSettings {
        episodes,
        max_steps,
        seed,
        epsilon,
        round,
    };
    evaluate_watched(env, policy, settings, &mut |_, _| Ok(()))
}

/// How [`evaluate_watched`] plays.
#[derive(Clone, Copy, Debug)]
pub struct EvalSettings {
    /// Episodes to play.
    pub episodes: u64,
    /// Each episode is cut after this many steps.
    pub max_steps: u64,
    /// The run seed the episode seeds derive from.
    pub seed: u64,
    /// Probability of a uniformly random action instead of the greedy one.
    pub epsilon: f64,
    /// 0 for the final evaluation, k for the k-th periodic one.
    pub round: u64,
}

/// [`evaluate_with_epsilon`], showing `watch` the environment after each
/// reset and each step, with the episode's index: `rl-lab eval --gif`
/// records frames this way, from the very episodes it scores.
pub fn evaluate_watched(
    env: &mut dyn Env,
    policy: &mut dyn Policy,
    settings: EvalSettings,
    watch: &mut dyn FnMut(u64, &dyn Env) -> Result<()>,
) -> Result<EvalReport> {
    let EvalSettings {
        episodes,
        max_steps,
        seed,
        epsilon,
        round,
    } = settings;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(derive(seed, Stream::EvalPolicy, round));
    let mut obs = env.observation_space().zeros();
    let (mut returns, mut lengths) = (Vec::new(), Vec::new());
    for episode in 0..episodes {
        env.reset_into(Some(env_seed(seed, Stream::EvalEpisode, episode)), &mut obs)
            .map_err(Error::Env)?;
        watch(episode, &*env)?;
        let (mut total, mut length) = (0.0, 0u64);
        while length < max_steps {
            let action = if epsilon > 0.0 && rng.random::<f64>() < epsilon {
                env.action_space().sample_action(&mut rng)
            } else {
                policy.act_greedy(&obs).map_err(Error::Agent)?
            };
            let out = env.step_into(&action, &mut obs).map_err(Error::Env)?;
            watch(episode, &*env)?;
            length += 1;
            total += out.reward;
            if out.terminated || out.truncated {
                if let Some(stats) = out.info.episode {
                    (total, length) = (stats.episode_return, stats.length);
                }
                break;
            }
        }
        returns.push(total);
        lengths.push(length);
    }
    let average = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let float_lengths: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
    Ok(EvalReport {
        episodes,
        mean_return: average(&returns),
        mean_length: average(&float_lengths),
        returns,
        lengths,
    })
}
