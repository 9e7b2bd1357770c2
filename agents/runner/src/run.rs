//! From a spec to a finished run: build everything (all validation happens
//! here, before anything is written), train, evaluate, summarise.

use crate::folder::{Checkpoint, FolderHooks, RunFolder};
use crate::seeds::{Stream, derive};
use crate::spec::RunSpec;
use crate::train::{
    CancelFlag, CarriedState, Counters, EvalReport, Hooks, LoopSettings, PeriodicEval, Progress,
    TrainOutcome, evaluate_with_epsilon, train,
};
use crate::{Error, MemoryEstimate, Result, RunStatus};
use rl_agent::{AgentRegistry, AnyAgent, EnvContext, Sink, Tables};
use rl_env::{Env, GridView, Registry, VectorEnv};
use serde::Serialize;

/// The registries a run is built from, and the memory one run may take.
pub struct Engine {
    /// Every environment id.
    pub envs: Registry,
    /// Every agent id.
    pub agents: AgentRegistry,
    /// The most bytes one run's estimate ([`Engine::estimate`]) may reach;
    /// `None` admits any. Default: [`crate::memory::default_max_run_memory`]
    /// for one run.
    pub max_run_memory: Option<u64>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            envs: crate::envs::registry(),
            agents: crate::agents::registry(),
            max_run_memory: Some(crate::memory::default_max_run_memory(1)),
        }
    }
}

impl Engine {
    /// These registries with more environments: each plugin registers its
    /// ids after ours.
    pub fn with_envs(mut self, plugins: &[crate::envs::EnvPlugin]) -> Self {
        for register in plugins {
            register(&mut self.envs);
        }
        self
    }
}

/// A run whose spec has been checked and whose parts are built.
pub struct PreparedRun {
    /// The spec.
    pub spec: RunSpec,
    /// The training environments: `env.num_envs` copies.
    pub envs: VectorEnv,
    /// A second instance for evaluation, so evaluation never disturbs training.
    pub eval_env: Box<dyn Env>,
    /// The agent: a learner or a planner.
    pub agent: AnyAgent,
}

impl Engine {
    /// The engine of a server: `remote` envs only from URLs `remote` allows.
    pub fn with_remote_policy(remote: crate::envs::UrlPolicy) -> Self {
        Engine {
            envs: crate::envs::registry_allowing(remote),
            agents: crate::agents::server_registry(),
            max_run_memory: Some(crate::memory::default_max_run_memory(1)),
        }
    }

    /// Builds the environment described by `spec.env`.
    pub fn make_env(&self, spec: &RunSpec) -> Result<Box<dyn Env>> {
        self.make_env_linked(spec, None)
    }

    /// Builds the environment, an external one on `link` when given.
    fn make_env_linked(
        &self,
        spec: &RunSpec,
        link: Option<rl_external::EnvEnd>,
    ) -> Result<Box<dyn Env>> {
        let env = match link {
            Some(end) => rl_external::ExternalConfig::from_json(&spec.env.config).map(|config| {
                Box::new(rl_external::ExternalEnv::linked(config, end)) as Box<dyn Env>
            }),
            None => self.envs.make(&spec.env.id, &spec.env.config),
        }
        .map_err(|e| Error::from_env_config(e, "env.config"))?;
        rl_env::wrappers::apply_wrappers(env, &spec.env.wrappers)
            .map_err(|e| Error::from_env_config(e, "env"))
    }

    /// The training copies as lanes of one vector that a single call steps
    /// (a remote adapter's vector instance), each wrapped as `spec` says;
    /// `None` when there is one copy, when the env cannot serve its copies
    /// so, or when a wrapper repeats or changes calls (skipping, no-op
    /// resets, sticky actions), which only copies of their own can take.
    fn make_fed(&self, spec: &RunSpec) -> Result<Option<VectorEnv>> {
        let n = spec.env.num_envs;
        if n == 1
            || spec.env_is_external()
            || !spec.env.wrappers.iter().all(|w| w.passes_calls_through())
        {
            return Ok(None);
        }
        let Some(fed) = self
            .envs
            .make_fed(&spec.env.id, &spec.env.config, n)
            .map_err(|e| Error::from_env_config(e, "env.config"))?
        else {
            return Ok(None);
        };
        fed.copies
            .into_iter()
            .map(|copy| rl_env::wrappers::apply_wrappers(copy, &spec.env.wrappers))
            .collect::<rl_env::Result<Vec<_>>>()
            .and_then(vector_of)
            .and_then(|envs| envs.fed_by(fed.feed))
            .map(Some)
            .map_err(|e| Error::from_env_config(e, "env"))
    }

    /// Checks `spec` and builds its environments and agent. Every input
    /// error surfaces here, naming the spec field. An external env is
    /// built without a link: no process can reach it (see
    /// [`Engine::prepare_linked`]).
    pub fn prepare(&self, spec: RunSpec) -> Result<PreparedRun> {
        self.prepare_with(spec, Vec::new())
    }

    /// [`Engine::prepare`] for an external run (`env.id` is
    /// [`rl_external::ENV_ID`]) on a server: its env processes connect
    /// through `links`, one lane per copy (`env.num_envs`).
    pub fn prepare_linked(
        &self,
        spec: RunSpec,
        links: Vec<rl_external::EnvEnd>,
    ) -> Result<PreparedRun> {
        if !spec.env_is_external() {
            return Err(Error::spec(
                "env.id",
                format!("'{}' is not an external env: it takes no link", spec.env.id),
            ));
        }
        if links.len() != spec.env.num_envs {
            return Err(Error::spec(
                "env.num_envs",
                format!(
                    "{}: the run's link has {} lanes",
                    spec.env.num_envs,
                    links.len()
                ),
            ));
        }
        self.prepare_with(spec, links)
    }

    fn prepare_with(&self, spec: RunSpec, links: Vec<rl_external::EnvEnd>) -> Result<PreparedRun> {
        if spec.env_is_external() {
            external_eval_rules(&spec)?;
        }
        let n = spec.env.num_envs;
        // Never stepped: external runs do not evaluate (external_eval_rules).
        // Built first, and weighed, so that no training copy is made for a
        // run its estimate refuses.
        let eval_env = self.make_env(&spec)?;
        let entry = self
            .agents
            .get(&spec.agent.id)
            .map_err(Error::from_agent_config)?;
        let estimate = self.weigh(entry, &spec, &context(eval_env.as_ref(), &spec))?;
        if let Some(cap) = self.max_run_memory.filter(|&cap| estimate.total() > cap) {
            return Err(Error::TooLarge {
                field: estimate.field().into(),
                estimate: estimate.total(),
                cap,
            });
        }
        let envs = match self.make_fed(&spec)? {
            Some(fed) => fed,
            None => {
                let mut links = links.into_iter();
                let copies = (0..n)
                    .map(|_| self.make_env_linked(&spec, links.next()))
                    .collect::<Result<Vec<_>>>()?;
                vector_of(copies)
                    .and_then(|envs| envs.with_threads(threads_for(&spec, n)))
                    .map_err(|e| Error::from_env_config(e, "env"))?
            }
        };
        let ctx = context(envs.env(0).expect("num_envs is at least 1"), &spec);
        let agent = (entry.make)(
            &spec.agent.config,
            &ctx,
            derive(spec.seed, Stream::Agent, 0),
        )
        .map_err(Error::from_agent_config)?;
        Ok(PreparedRun {
            spec,
            envs,
            eval_env,
            agent,
        })
    }
}

impl Engine {
    /// The agent's estimate for `ctx`, and the env's model once per copy:
    /// the training copies and the evaluation one.
    fn weigh(
        &self,
        entry: &rl_agent::AgentEntry,
        spec: &RunSpec,
        ctx: &EnvContext<'_>,
    ) -> Result<MemoryEstimate> {
        let agent = (entry.memory)(&spec.agent.config, ctx).map_err(Error::from_agent_config)?;
        let copies = spec.env.num_envs as u64 + 1;
        let env = ctx.model.map_or(0, |model| {
            crate::memory::model_bytes(model).saturating_mul(copies)
        });
        Ok(MemoryEstimate { agent, env })
    }
}

/// The copies, in order, as one [`VectorEnv`] on the caller's thread.
fn vector_of(copies: Vec<Box<dyn Env>>) -> rl_env::Result<VectorEnv> {
    let n = copies.len();
    let mut copies = copies.into_iter();
    VectorEnv::new(n, |_| {
        copies
            .next()
            .ok_or_else(|| rl_env::Error::Space("each copy is made once".into()))
    })
}

/// What the agent is told of the run's environment `env`.
fn context<'a>(env: &'a dyn Env, spec: &'a RunSpec) -> EnvContext<'a> {
    EnvContext {
        observation_space: env.observation_space(),
        action_space: env.action_space(),
        model: env.model(),
        env_id: &spec.env.id,
        num_envs: spec.env.num_envs,
        total_steps: match spec.budget {
            crate::spec::Budget::Steps(n) => Some(n),
            crate::spec::Budget::Episodes(_) => None,
        },
    }
}

/// Threads to step `n` copies of `spec`'s env on: the loop's own, for every
/// env that runs in this process.
///
/// Measured with `rl-lab bench envs --seconds 1` (its `training_batches`:
/// 4, 8 and 16 copies with 100 µs of agent work between steps) on the
/// project's 2-core machine, env steps per second of env time, inline
/// against 2 threads: CartPole 10.0 M / 2.4 M at 4 copies and 15.4 M /
/// 6.8 M at 16; MinAtar Breakout 12.4 M / 2.3 M and 22.0 M / 7.4 M; Space
/// Invaders, the slowest game, 5.2 M / 1.4 M and 5.7 M / 3.9 M. Between two
/// steps the agent works long enough for a worker thread to fall asleep,
/// and waking it costs more than the copies' whole step. Threads pay only
/// for hundreds of copies stepped back to back (`vectorized` in the same
/// report), which no training loop does.
///
/// The exception is an external run: each copy waits on its own process,
/// so each gets a thread and the processes play their steps at once.
fn threads_for(spec: &RunSpec, n: usize) -> usize {
    if spec.env_is_external() { n } else { 1 }
}

/// An external env's episodes are the process's to start, so the lab
/// cannot play greedy ones on it, between training episodes or after them:
/// its runs must say `eval.episodes: 0` and no `eval.every_steps`, so that
/// their summary claims no evaluation.
fn external_eval_rules(spec: &RunSpec) -> Result<()> {
    const WHY: &str = "an external env's episodes are started by its process, so the lab cannot play evaluation episodes on it";
    if spec.eval.episodes != 0 {
        return Err(Error::spec("eval.episodes", format!("must be 0: {WHY}")));
    }
    if spec.eval.every_steps.is_some() {
        return Err(Error::spec(
            "eval.every_steps",
            format!("must be absent: {WHY}"),
        ));
    }
    Ok(())
}

/// The summary of a run: `summary.json`, and `rl-lab run --json`'s output.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// `completed`, `cancelled` or `failed`.
    pub status: RunStatus,
    /// Environment id.
    pub env: String,
    /// Agent id.
    pub agent: String,
    /// The run seed.
    pub seed: u64,
    /// Training episodes.
    pub episodes: u64,
    /// Training environment steps.
    pub steps: u64,
    /// Sweeps over the states (dynamic programming only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweeps: Option<u64>,
    /// Policy-improvement steps (policy iteration only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub improvements: Option<u64>,
    /// Whether planning met its stopping criterion (dynamic programming only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converged: Option<bool>,
    /// Mean return of the last 100 training episodes.
    pub train_mean_return_last_100: Option<f64>,
    /// Greedy evaluation after training.
    pub eval: EvalReport,
    /// Gridworlds: V(s) per cell, `null` on walls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_grid: Option<Vec<Vec<Option<f64>>>>,
    /// Gridworlds: the policy as arrows per cell; `·` terminal or wall,
    /// `+` where no single action is preferred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_grid: Option<Vec<String>>,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Where the environment was served, for remote envs: `{url, env_id,
    /// dialect, protocol_version?, step_flags?}` (see `Env::connection`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub env_connection: Option<serde_json::Value>,
    /// Where the run folder is, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<String>,
    /// Why the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PreparedRun {
    /// Restores the agent from a checkpoint and returns where the run
    /// stood; pass that to [`PreparedRun::execute`] to continue it.
    pub fn restore(&mut self, checkpoint: &Checkpoint) -> Result<Counters> {
        self.agent
            .policy_mut()
            .load(&checkpoint.agent)
            .map_err(Error::Agent)?;
        checkpoint.envs.restore_train(&mut self.envs)?;
        self.eval_env
            .restore_carried_state(&checkpoint.envs.eval)
            .map_err(Error::Env)?;
        Ok(checkpoint.counters)
    }

    /// Trains, evaluates and summarises, sending metrics to `sink`.
    pub fn execute(
        &mut self,
        sink: &mut dyn Sink,
        hooks: &mut dyn Hooks,
        cancel: &CancelFlag,
        start: Counters,
    ) -> Result<Summary> {
        let outcome = train(
            &mut self.envs,
            &mut self.agent,
            LoopSettings {
                budget: self.spec.budget,
                seed: self.spec.seed,
                checkpoint_every: self.spec.checkpoint.every_episodes,
                cancel,
                start,
                periodic_eval: self.spec.eval.every_steps.map(|every_steps| PeriodicEval {
                    env: self.eval_env.as_mut(),
                    every_steps,
                    episodes: self.spec.eval.episodes,
                    max_steps: self.spec.eval.max_steps,
                    epsilon: self.spec.eval.epsilon,
                }),
            },
            sink,
            hooks,
        )?;
        if outcome.cancelled {
            // A cancelled run keeps what it learned, so it can be resumed;
            // evaluating it would only delay the stop. (Only a learner can
            // be cancelled: planning is not interrupted.)
            if let AnyAgent::Learner(agent) = &self.agent {
                let carried = CarriedState::of(&self.envs, Some(self.eval_env.as_ref()));
                hooks.checkpoint(agent.as_ref(), outcome.counters, &carried)?;
            }
            return Ok(self.summarize(&outcome, EvalReport::default()));
        }
        let eval = evaluate_with_epsilon(
            self.eval_env.as_mut(),
            self.agent.policy_mut(),
            self.spec.eval.episodes,
            self.spec.eval.max_steps,
            self.spec.seed,
            self.spec.eval.epsilon,
            0,
        )?;
        Ok(self.summarize(&outcome, eval))
    }

    fn summarize(&self, outcome: &TrainOutcome, eval: EvalReport) -> Summary {
        let tables = self.agent.policy().tables();
        let grid = self.envs.env(0).and_then(|env| env.grid());
        let (value_grid, policy_grid) = match (&grid, &tables) {
            (Some(grid), Some(tables)) => (
                Some(value_grid(grid, tables)),
                Some(policy_grid(grid, tables)),
            ),
            _ => (None, None),
        };
        Summary {
            status: if outcome.cancelled {
                RunStatus::Cancelled
            } else {
                RunStatus::Completed
            },
            env: self.spec.env.id.clone(),
            agent: self.spec.agent.id.clone(),
            seed: self.spec.seed,
            episodes: outcome.counters.episodes,
            steps: outcome.counters.steps,
            sweeps: outcome.plan.as_ref().map(|p| p.sweeps),
            improvements: outcome.plan.as_ref().and_then(|p| p.improvements),
            converged: outcome.plan.as_ref().map(|p| p.converged),
            train_mean_return_last_100: outcome.recent_mean_return,
            eval,
            value_grid,
            policy_grid,
            train_seconds: outcome.wall_seconds,
            env_connection: self.envs.env(0).and_then(|env| env.connection()),
            run_dir: None,
            error: None,
        }
    }

    /// Runs into a folder: spec, metrics, checkpoints, tables and summary.
    pub fn execute_in(
        &mut self,
        folder: &RunFolder,
        cancel: &CancelFlag,
        on_progress: impl FnMut(&Progress),
    ) -> Result<Summary> {
        folder.write_json("spec.json", &self.spec)?;
        let mut metrics = folder.metrics()?;
        let mut hooks = FolderHooks {
            folder,
            on_progress,
        };
        self.execute_with(
            folder,
            &mut metrics,
            &mut hooks,
            cancel,
            Counters::default(),
        )
    }

    /// Trains from `start`, sending metrics to `sink` (which should write the
    /// folder's `metrics.jsonl`), then writes tables, the trained agent and
    /// the summary into `folder`. The server calls this with its own sink
    /// and hooks; `execute_in` with the folder's.
    pub fn execute_with(
        &mut self,
        folder: &RunFolder,
        sink: &mut dyn Sink,
        hooks: &mut dyn Hooks,
        cancel: &CancelFlag,
        start: Counters,
    ) -> Result<Summary> {
        let result = self.execute(sink, hooks, cancel, start);
        sink.flush()
            .map_err(|e| Error::io(folder.path().join("metrics.jsonl"), e))?;
        let mut summary = match result {
            Ok(summary) => summary,
            Err(e) => {
                let failed = Summary {
                    status: RunStatus::Failed,
                    error: Some(e.to_string()),
                    ..self.summarize(
                        &TrainOutcome {
                            counters: Counters::default(),
                            plan: None,
                            cancelled: false,
                            recent_mean_return: None,
                            wall_seconds: 0.0,
                        },
                        EvalReport::default(),
                    )
                };
                folder.write_json("summary.json", &failed)?;
                return Err(e);
            }
        };
        summary.run_dir = Some(folder.path().display().to_string());
        if let Some(tables) = self.agent.policy().tables() {
            folder.write_json("tables.json", &tables)?;
        }
        if let AnyAgent::Learner(agent) = &self.agent {
            // The trained agent, in checkpoint form, for `rl-lab eval`.
            folder.write_json(
                "agent.json",
                &Checkpoint {
                    counters: Counters {
                        episodes: summary.episodes,
                        steps: summary.steps,
                    },
                    agent: agent.save().map_err(Error::Agent)?,
                    envs: CarriedState::default(),
                },
            )?;
        }
        folder.write_json("summary.json", &summary)?;
        Ok(summary)
    }
}

pub(crate) fn value_grid(grid: &GridView, tables: &Tables) -> Vec<Vec<Option<f64>>> {
    (0..grid.rows)
        .map(|r| {
            (0..grid.cols)
                .map(|c| grid.cells[r * grid.cols + c].map(|s| tables.v[s]))
                .collect()
        })
        .collect()
}

pub(crate) fn policy_grid(grid: &GridView, tables: &Tables) -> Vec<String> {
    (0..grid.rows)
        .map(|r| {
            (0..grid.cols)
                .map(|c| {
                    let i = r * grid.cols + c;
                    match grid.cells[i] {
                        None => '·',
                        Some(_) if grid.terminal[i] => '·',
                        Some(s) => tables.policy[s]
                            .and_then(|a| grid.action_arrows.get(a).copied())
                            .unwrap_or('+'),
                    }
                })
                .collect()
        })
        .collect()
}
