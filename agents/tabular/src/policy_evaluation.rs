//! Iterative policy evaluation (Sutton & Barto §4.1): the value of a fixed
//! policy, by in-place sweeps of the Bellman expectation equation until the
//! largest change is below θ.

use crate::dp::{Sweeping, check_stopping, planning_sizes};
use crate::table::{Policy, PolicySpec, Sizes, backup, check_gamma};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rl_agent::{EnvContext, Error, PlanReport, Planner, Record, Result, Sink, Tables};
use rl_env::Model;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hyperparameters of policy evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyEvaluationConfig {
    /// Discount γ; default 1.0, as in Sutton & Barto's Example 4.1 (episodic).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// Stop when a sweep changes no value by more than θ; default 1e-10.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub theta: f64,
    /// Give up after this many sweeps (γ = 1 with a policy that never ends); default 100,000.
    #[schemars(range(min = 1))]
    pub max_sweeps: u64,
    /// The policy to evaluate: `"uniform"` (default), one action per state, or probability rows.
    pub policy: PolicySpec,
}

impl Default for PolicyEvaluationConfig {
    fn default() -> Self {
        PolicyEvaluationConfig {
            gamma: 1.0,
            theta: 1e-10,
            max_sweeps: 100_000,
            policy: PolicySpec::default(),
        }
    }
}

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct PolicyEvaluation {
    config: PolicyEvaluationConfig,
    sizes: Sizes,
    policy: Policy,
    v: Vec<f64>,
    absorbing: Vec<bool>,
    rng: ChaCha8Rng,
}

impl PolicyEvaluation {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: PolicyEvaluationConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        let sizes = planning_sizes(ctx, "policy-evaluation")?;
        check_gamma(config.gamma)?;
        check_stopping(config.theta, config.max_sweeps)?;
        let policy = Policy::from_spec(&config.policy, &sizes, "policy")?;
        Ok(PolicyEvaluation {
            config,
            sizes,
            policy,
            v: vec![0.0; sizes.states],
            absorbing: vec![false; sizes.states],
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The current estimate of v_π.
    pub fn values(&self) -> &[f64] {
        &self.v
    }
}

/// Sweeps v(s) ← Σ_a π(a|s) Σ p(s', r|s, a)[r + γ v(s')] in place until the
/// largest change is below θ. Shared with policy iteration's evaluation step.
pub(crate) fn evaluate(
    model: &dyn Model,
    policy: &Policy,
    v: &mut [f64],
    sweeping: Sweeping,
    sweeps_so_far: u64,
    sink: &mut dyn Sink,
) -> Result<(u64, bool)> {
    let mut sweeps = 0;
    loop {
        let mut delta: f64 = 0.0;
        for s in 0..model.n_states() {
            if model.is_absorbing(s) {
                continue;
            }
            // v(s) = Σ_a π(a|s) q(s, a)
            let new: f64 = policy
                .row(s)
                .iter()
                .enumerate()
                .filter(|(_, p)| **p > 0.0)
                .map(|(a, p)| p * backup(model, v, s, a, sweeping.gamma))
                .sum();
            delta = delta.max((new - v[s]).abs());
            v[s] = new;
        }
        sweeps += 1;
        sink.record(&Record::Scalar {
            name: "plan/delta".into(),
            step: sweeps_so_far + sweeps,
            value: delta,
            wall_seconds: 0.0,
        })
        .map_err(Error::Sink)?;
        if delta < sweeping.theta {
            return Ok((sweeps, true));
        }
        if sweeps >= sweeping.max_sweeps || !delta.is_finite() {
            return Ok((sweeps, false));
        }
    }
}

impl Planner for PolicyEvaluation {
    fn plan(&mut self, model: &dyn Model, sink: &mut dyn Sink) -> Result<PlanReport> {
        self.absorbing = (0..model.n_states())
            .map(|s| model.is_absorbing(s))
            .collect();
        let c = &self.config;
        let sweeping = Sweeping {
            gamma: c.gamma,
            theta: c.theta,
            max_sweeps: c.max_sweeps,
        };
        let (sweeps, converged) = evaluate(model, &self.policy, &mut self.v, sweeping, 0, sink)?;
        Ok(PlanReport {
            sweeps,
            improvements: None,
            converged,
        })
    }
}

// Evaluation runs the evaluated policy itself, sampling its actions.
crate::tabular_policy!(PolicyEvaluation,
act_greedy: |agent, obs| {
    let s = agent.sizes.state(obs)?;
    Ok(agent.sizes.action(agent.policy.sample(s, &mut agent.rng)))
},
tables: |agent| Tables {
    v: agent.v.clone(),
    q: None,
    policy: (0..agent.sizes.states)
        .map(|s| (!agent.absorbing[s]).then(|| agent.policy.mode(s)).flatten())
        .collect(),
});
