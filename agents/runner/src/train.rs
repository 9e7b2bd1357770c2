//! The one training loop. The CLI, the server and every agent use it; there
//! is no second copy.
//!
//! It steps `env.num_envs` copies of the environment as one
//! [`VectorEnv`], with Gymnasium's next-step autoreset, and hands the
//! agent one batch of actions to choose and one batch of transitions to
//! see per step ([`rl_agent::Agent`]).
//!
//! Each training episode resets its copy with a seed derived from the run
//! seed and the episode's place among all resets, so a one-copy run
//! resumed from a checkpoint (taken at an episode boundary) continues
//! exactly as if uninterrupted. With several copies a checkpoint falls
//! while the other copies are mid-episode; a resumed run starts every
//! copy afresh.

use crate::recording::{Recording, RecordingPolicy};
use crate::seeds::{Stream, derive, env_seed};
use crate::spec::Budget;
use crate::{Error, Result};
use rand::{RngExt, SeedableRng};
use rl_agent::{
    Agent, AnyAgent, EpisodeRecord, PlanReport, Planner, Policy, Record, Sink, Transition,
};
use rl_env::{Action, Env, Observation, VectorEnv};
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
    /// Reads the environments' carried state: with one training copy its
    /// own, as before copies existed; with several, an array of the
    /// copies' (`null` if none carries anything).
    pub fn of(train: &VectorEnv, eval: Option<&dyn Env>) -> Self {
        let copies: Vec<serde_json::Value> = (0..train.num_envs())
            .map(|i| {
                train
                    .env(i)
                    .map_or(serde_json::Value::Null, |e| e.carried_state())
            })
            .collect();
        let train = match copies.len() {
            1 => copies.into_iter().next().unwrap_or_default(),
            _ if copies.iter().all(serde_json::Value::is_null) => serde_json::Value::Null,
            _ => serde_json::Value::Array(copies),
        };
        CarriedState {
            train,
            eval: eval.map_or(serde_json::Value::Null, |e| e.carried_state()),
        }
    }

    /// Gives each training copy back what [`CarriedState::of`] read.
    pub fn restore_train(&self, train: &mut VectorEnv) -> Result<()> {
        let n = train.num_envs();
        let copies: Vec<&serde_json::Value> = match (&self.train, n) {
            (state, 1) => vec![state],
            (serde_json::Value::Null, _) => return Ok(()),
            (serde_json::Value::Array(all), _) if all.len() == n => all.iter().collect(),
            (other, _) => {
                return Err(Error::spec(
                    "env.num_envs",
                    format!(
                        "the checkpoint's env state is for {} copies; this run has {n}",
                        other.as_array().map_or(1, Vec::len)
                    ),
                ));
            }
        };
        for (i, state) in copies.into_iter().enumerate() {
            if let Some(env) = train.env_mut(i) {
                env.restore_carried_state(state).map_err(Error::Env)?;
            }
        }
        Ok(())
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

/// Trains `agent` on the copies `envs` until the budget is spent or the
/// run is cancelled. Planning agents plan from the first copy's model
/// instead of stepping.
///
/// Metrics reach `sink` through the recording policy ([`crate::recording`]),
/// here, so that every caller's files and streams see the same points; the
/// summaries' figures (`recent_mean_return`) come from the loop itself and
/// stay exact whatever the policy merges.
pub fn train(
    envs: &mut VectorEnv,
    agent: &mut AnyAgent,
    settings: LoopSettings<'_>,
    sink: &mut dyn Sink,
    hooks: &mut dyn Hooks,
) -> Result<TrainOutcome> {
    let mut recording = Recording::new(sink, RecordingPolicy::default());
    let outcome = match agent {
        AnyAgent::Learner(learner) => {
            learn(envs, learner.as_mut(), settings, &mut recording, hooks)
        }
        AnyAgent::Planner(planner) => match envs.env(0) {
            Some(env) => plan(env, planner.as_mut(), settings.start, &mut recording),
            None => Err(Error::Incompatible("no environment to plan on".into())),
        },
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

/// One lane's episode in progress, as the loop counts it.
#[derive(Clone, Copy, Debug, Default)]
struct LaneEpisode {
    episode_return: f64,
    length: u64,
    /// The agent's exploration rate when the episode began.
    epsilon: Option<f64>,
    /// It ended on the last step: the copy resets on the next.
    resetting: bool,
}

/// An episode that ended on the current step.
struct Ended {
    lane: usize,
    episode_return: f64,
    length: u64,
    epsilon: Option<f64>,
    truncated: bool,
}

/// An empty vector for borrows of another lifetime, made from `v`, so
/// that the loop can keep one buffer of transitions for all its steps.
/// Nothing is mapped: the vector is emptied first. std collects a vector's
/// `into_iter` into a vector of the same layout in place, reusing the
/// buffer; that is an optimisation std makes, not a promise, and without
/// it this allocates once per step.
fn recycle<'b>(mut v: Vec<Transition<'_>>) -> Vec<Transition<'b>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// The loop proper: step every copy, observe, record, checkpoint.
///
/// Each episode resets with a seed of its own: the `r`-th reset of the
/// run, counting every copy's (copy 0's first, then copy 1's, …, then each
/// reset as an episode ends, in copy order), takes `env_seed(seed,
/// TrainEpisode, r)`. With one copy, `r` is the number of episodes
/// finished, so `num_envs: 1` plays exactly the episodes it always did. A
/// resumed run counts on from its checkpoint's episodes, so each copy
/// starts over with the seed of an episode the checkpoint abandoned.
fn learn(
    envs: &mut VectorEnv,
    agent: &mut dyn Agent,
    mut settings: LoopSettings<'_>,
    sink: &mut dyn Sink,
    hooks: &mut dyn Hooks,
) -> Result<TrainOutcome> {
    let began = Instant::now();
    let mut counters = settings.start;
    let mut recent: VecDeque<f64> = VecDeque::with_capacity(100);
    let record_error = |e: std::io::Error| Error::io("metrics", e);
    let outcome = |counters, cancelled, recent: &VecDeque<f64>| TrainOutcome {
        counters,
        plan: None,
        cancelled,
        recent_mean_return: mean(recent),
        wall_seconds: began.elapsed().as_secs_f64(),
    };
    if budget_spent(settings.budget, counters) {
        return Ok(outcome(counters, false, &recent));
    }
    if settings.cancel.is_cancelled() {
        return Ok(outcome(counters, true, &recent));
    }
    let n = envs.num_envs();
    let mut next_reset = counters.episodes;
    for lane in 0..n {
        envs.seed_next_reset(
            lane,
            env_seed(settings.seed, Stream::TrainEpisode, next_reset),
        );
        next_reset += 1;
    }
    let mut obs: Vec<Observation> = Vec::with_capacity(n);
    match envs.reset(None) {
        Ok(batch) => obs.extend(batch.observations.iter().cloned()),
        // An env that waits on another process gives up when the run is
        // cancelled: that is the cancellation, not a failure.
        Err(_) if settings.cancel.is_cancelled() => return Ok(outcome(counters, true, &recent)),
        Err(e) => return Err(Error::Env(e)),
    }
    let mut lanes = vec![LaneEpisode::default(); n];
    for (lane, state) in lanes.iter_mut().enumerate() {
        agent.begin_episode(lane);
        state.epsilon = agent.epsilon();
    }
    // What the copies that step are given; a resetting copy ignores its own.
    let mut actions = vec![Action::Discrete(0); n];
    let mut stepping: Vec<usize> = Vec::with_capacity(n);
    let mut transitions: Vec<Transition<'static>> = Vec::with_capacity(n);
    let mut ended: Vec<Ended> = Vec::with_capacity(n);
    // Scalars the agent reports (train/loss, …), recorded at the current step.
    let mut scalars: Vec<(&'static str, f64)> = Vec::with_capacity(8);
    let mut cancelled = false;

    loop {
        stepping.clear();
        stepping.extend((0..n).filter(|&lane| !lanes[lane].resetting));
        // With every copy resetting (one copy whose episode just ended)
        // there is nothing to choose.
        if !stepping.is_empty() {
            agent
                .act_batch(&stepping, &obs, &mut actions)
                .map_err(Error::Agent)?;
        }
        let batch = match envs.step(&actions) {
            Ok(batch) => batch,
            Err(_) if settings.cancel.is_cancelled() => {
                cancelled = true;
                break;
            }
            Err(e) => return Err(Error::Env(e)),
        };
        let steps_before = counters.steps;
        let mut step_transitions = recycle(std::mem::take(&mut transitions));
        for (lane, state) in lanes.iter_mut().enumerate() {
            if batch.autoreset[lane] {
                // NEXT_STEP autoreset: this call began the lane's next
                // episode instead of stepping.
                state.resetting = false;
                continue;
            }
            let (reward, terminated, truncated) = (
                batch.rewards[lane],
                batch.terminated[lane],
                batch.truncated[lane],
            );
            step_transitions.push(Transition {
                lane,
                obs: &obs[lane],
                action: &actions[lane],
                reward,
                next_obs: &batch.observations[lane],
                terminated,
                truncated,
            });
            state.length += 1;
            state.episode_return += reward;
            if terminated || truncated {
                // Episode statistics recorded before reward clipping are
                // the real score.
                if let Some(stats) = batch.infos[lane].episode {
                    (state.episode_return, state.length) = (stats.episode_return, stats.length);
                }
                ended.push(Ended {
                    lane,
                    episode_return: state.episode_return,
                    length: state.length,
                    epsilon: state.epsilon,
                    truncated: truncated && !terminated,
                });
                *state = LaneEpisode {
                    resetting: true,
                    ..LaneEpisode::default()
                };
            }
        }
        counters.steps += step_transitions.len() as u64;
        agent
            .observe_batch(&step_transitions)
            .map_err(Error::Agent)?;
        transitions = recycle(step_transitions);
        for (lane, state) in lanes.iter_mut().enumerate() {
            if batch.autoreset[lane] {
                agent.begin_episode(lane);
                state.epsilon = agent.epsilon();
            }
            obs[lane].copy_from(&batch.observations[lane]);
        }
        agent.take_scalars(&mut scalars);
        if !scalars.is_empty() {
            let wall_seconds = began.elapsed().as_secs_f64();
            for (name, value) in scalars.drain(..) {
                record_scalar(sink, name, counters.steps, value, wall_seconds)?;
            }
        }
        if let Some(eval) = settings.periodic_eval.as_mut()
            && counters.steps / eval.every_steps > steps_before / eval.every_steps
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
                    record_scalar(sink, name, counters.steps, value, wall_seconds)?;
                }
            }
        }
        if !ended.is_empty() {
            let episodes_before = counters.episodes;
            for end in ended.drain(..) {
                counters.episodes += 1;
                if recent.len() == 100 {
                    recent.pop_front();
                }
                recent.push_back(end.episode_return);
                let wall_seconds = began.elapsed().as_secs_f64();
                sink.record(&Record::Episode(EpisodeRecord {
                    episode: counters.episodes,
                    step: counters.steps,
                    episode_return: end.episode_return,
                    length: end.length,
                    epsilon: end.epsilon,
                    truncated: end.truncated,
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
                envs.seed_next_reset(
                    end.lane,
                    env_seed(settings.seed, Stream::TrainEpisode, next_reset),
                );
                next_reset += 1;
            }
            let every = settings.checkpoint_every;
            if every.is_some_and(|every| counters.episodes / every > episodes_before / every)
                || hooks.wants_checkpoint(counters)
            {
                // No merged window may span the checkpoint, and a resume
                // keeps the records up to the checkpoint's step: they must
                // be written before it claims them.
                sink.flush().map_err(record_error)?;
                let carried = CarriedState::of(
                    &*envs,
                    settings.periodic_eval.as_ref().map(|eval| &*eval.env),
                );
                hooks.checkpoint(agent, counters, &carried)?;
            }
        }
        if budget_spent(settings.budget, counters) {
            break;
        }
        if settings.cancel.is_cancelled() {
            cancelled = true;
            break;
        }
    }
    Ok(outcome(counters, cancelled, &recent))
}

fn record_scalar(
    sink: &mut dyn Sink,
    name: &'static str,
    step: u64,
    value: f64,
    wall_seconds: f64,
) -> Result<()> {
    sink.record(&Record::Scalar {
        name: name.into(),
        step,
        value,
        wall_seconds,
    })
    .map_err(|e| Error::io("metrics", e))
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
        action_values: false,
    };
    evaluate_watched(env, policy, settings, &mut |_| Ok(()))
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
    /// Ask the policy for its action values in each state it acts in
    /// during the first episode, the one a replay records, to show them to
    /// the watcher (a replay's Q-values); later episodes skip the cost.
    pub action_values: bool,
}

/// What [`evaluate_watched`] shows its watcher: the environment after a
/// reset or a step.
pub struct Watched<'a> {
    /// The evaluation episode's index.
    pub episode: u64,
    /// The environment, in the state reached.
    pub env: &'a dyn Env,
    /// The action that led here and its reward; `None` after a reset.
    pub step: Option<(&'a Action, f64)>,
    /// With [`EvalSettings::action_values`], in the first episode, the
    /// policy's values in this state, if it keeps any; `None` where the
    /// episode ends.
    pub action_values: Option<&'a [f64]>,
}

/// [`evaluate_with_epsilon`], showing `watch` the environment after each
/// reset and each step ([`Watched`]): `rl-lab eval --gif` and the server's
/// replays record frames this way, from the very episodes it scores.
pub fn evaluate_watched(
    env: &mut dyn Env,
    policy: &mut dyn Policy,
    settings: EvalSettings,
    watch: &mut dyn FnMut(&Watched<'_>) -> Result<()>,
) -> Result<EvalReport> {
    let EvalSettings {
        episodes,
        max_steps,
        seed,
        epsilon,
        round,
        action_values,
    } = settings;
    let values_in = |policy: &mut dyn Policy, obs: &Observation, episode: u64, ends: bool| {
        if action_values && episode == 0 && !ends {
            policy.action_values(obs).map_err(Error::Agent)
        } else {
            Ok(None)
        }
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(derive(seed, Stream::EvalPolicy, round));
    let mut obs = env.observation_space().zeros();
    let (mut returns, mut lengths) = (Vec::new(), Vec::new());
    for episode in 0..episodes {
        env.reset_into(Some(env_seed(seed, Stream::EvalEpisode, episode)), &mut obs)
            .map_err(Error::Env)?;
        let values = values_in(policy, &obs, episode, max_steps == 0)?;
        watch(&Watched {
            episode,
            env: &*env,
            step: None,
            action_values: values.as_deref(),
        })?;
        let (mut total, mut length) = (0.0, 0u64);
        while length < max_steps {
            let action = if epsilon > 0.0 && rng.random::<f64>() < epsilon {
                env.action_space().sample_action(&mut rng)
            } else {
                policy.act_greedy(&obs).map_err(Error::Agent)?
            };
            let out = env.step_into(&action, &mut obs).map_err(Error::Env)?;
            let ends = out.terminated || out.truncated || length + 1 >= max_steps;
            let values = values_in(policy, &obs, episode, ends)?;
            watch(&Watched {
                episode,
                env: &*env,
                step: Some((&action, out.reward)),
                action_values: values.as_deref(),
            })?;
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
