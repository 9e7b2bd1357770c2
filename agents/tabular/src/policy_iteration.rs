//! Policy iteration (Sutton & Barto §4.3): evaluate the policy, make it
//! greedy with respect to its values, repeat until it no longer changes.
//!
//! The first policy is the uniform random one rather than an arbitrary
//! deterministic policy: with γ = 1 an arbitrary policy may never reach a
//! terminal state, and its evaluation would not converge.

use crate::dp::{Sweeping, check_stopping, planning_sizes};
use crate::policy_evaluation::evaluate;
use crate::table::{Policy, PolicySpec, Sizes, backup, check_gamma, first_argmax};
use rl_agent::{EnvContext, Error, PlanReport, Planner, Record, Result, Sink};
use rl_env::Model;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hyperparameters of policy iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyIterationConfig {
    /// Discount γ; default 0.99, so continuing tasks (no terminal state) converge.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// Each evaluation stops when a sweep changes no value by more than θ; default 1e-10.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub theta: f64,
    /// Cap on evaluation sweeps, in total; default 100,000.
    #[schemars(range(min = 1))]
    pub max_sweeps: u64,
    /// Cap on improvement steps; default 1,000.
    #[schemars(range(min = 1))]
    pub max_improvements: u64,
}

impl Default for PolicyIterationConfig {
    fn default() -> Self {
        PolicyIterationConfig {
            gamma: 0.99,
            theta: 1e-10,
            max_sweeps: 100_000,
            max_improvements: 1_000,
        }
    }
}

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct PolicyIteration {
    config: PolicyIterationConfig,
    sizes: Sizes,
    v: Vec<f64>,
    /// π(s) once improved; `None` for absorbing states.
    greedy: Vec<Option<usize>>,
}

impl PolicyIteration {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: PolicyIterationConfig, ctx: &EnvContext<'_>) -> Result<Self> {
        let sizes = planning_sizes(ctx, "policy-iteration")?;
        check_gamma(config.gamma)?;
        check_stopping(config.theta, config.max_sweeps)?;
        if config.max_improvements == 0 {
            return Err(Error::config("max_improvements", "must be at least 1"));
        }
        Ok(PolicyIteration {
            config,
            sizes,
            v: vec![0.0; sizes.states],
            greedy: vec![Some(0); sizes.states],
        })
    }
}

impl Planner for PolicyIteration {
    fn plan(&mut self, model: &dyn Model, sink: &mut dyn Sink) -> Result<PlanReport> {
        let c = self.config.clone();
        let mut policy = Policy::from_spec(&PolicySpec::default(), &self.sizes, "policy")?;
        let (mut sweeps, mut improvements) = (0, 0);
        loop {
            // 1. Policy evaluation: v ← v_π.
            let sweeping = Sweeping {
                gamma: c.gamma,
                theta: c.theta,
                max_sweeps: c.max_sweeps.saturating_sub(sweeps).max(1),
            };
            let (done, converged) = evaluate(model, &policy, &mut self.v, sweeping, sweeps, sink)?;
            sweeps += done;
            if !converged {
                return Ok(PlanReport {
                    sweeps,
                    improvements: Some(improvements),
                    converged: false,
                });
            }
            // 2. Policy improvement: π(s) ← argmax_a q(s, a). Keep the old
            //    action when it is already as good as the best, so that ties
            //    cannot make the policy flip forever.
            let mut stable = true;
            let mut q = vec![0.0; self.sizes.actions];
            for s in 0..self.sizes.states {
                if model.is_absorbing(s) {
                    self.greedy[s] = None;
                    continue;
                }
                for (a, qa) in q.iter_mut().enumerate() {
                    *qa = backup(model, &self.v, s, a, c.gamma);
                }
                let best = first_argmax(&q);
                let tolerance = 1e-9 * (1.0 + q[best].abs());
                let keep =
                    self.greedy[s].filter(|&old| improvements > 0 && q[old] >= q[best] - tolerance);
                let chosen = keep.unwrap_or(best);
                if improvements > 0 && Some(chosen) != self.greedy[s] {
                    stable = false;
                }
                self.greedy[s] = Some(chosen);
            }
            improvements += 1;
            sink.record(&Record::Scalar {
                name: "plan/improvement".into(),
                step: sweeps,
                value: improvements as f64,
                wall_seconds: 0.0,
            })
            .map_err(Error::Sink)?;
            // After the first improvement (from the uniform policy) the
            // policy is deterministic; a stable one is optimal.
            if improvements > 1 && stable || improvements >= c.max_improvements {
                return Ok(PlanReport {
                    sweeps,
                    improvements: Some(improvements),
                    converged: stable,
                });
            }
            let choice: Vec<usize> = self.greedy.iter().map(|a| a.unwrap_or(0)).collect();
            policy = Policy::from_spec(&PolicySpec::Deterministic(choice), &self.sizes, "policy")?;
        }
    }
}

crate::greedy_policy!(PolicyIteration);
