//! Value iteration (Sutton & Barto §4.4): sweep the Bellman optimality
//! equation in place until the largest change is below θ, then act greedily.

use crate::dp::{check_stopping, planning_sizes};
use crate::table::{Sizes, backup, check_gamma, first_argmax};
use rl_agent::{EnvContext, Error, PlanReport, Planner, Record, Result, Sink};
use rl_env::Model;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hyperparameters of value iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ValueIterationConfig {
    /// Discount γ; default 0.99, so continuing tasks (no terminal state) converge.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// Stop when a sweep changes no value by more than θ; default 1e-10.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub theta: f64,
    /// Give up after this many sweeps; default 100,000.
    #[schemars(range(min = 1))]
    pub max_sweeps: u64,
}

impl Default for ValueIterationConfig {
    fn default() -> Self {
        ValueIterationConfig {
            gamma: 0.99,
            theta: 1e-10,
            max_sweeps: 100_000,
        }
    }
}

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct ValueIteration {
    config: ValueIterationConfig,
    sizes: Sizes,
    v: Vec<f64>,
    greedy: Vec<Option<usize>>,
}

impl ValueIteration {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: ValueIterationConfig, ctx: &EnvContext<'_>) -> Result<Self> {
        let sizes = planning_sizes(ctx, "value-iteration")?;
        check_gamma(config.gamma)?;
        check_stopping(config.theta, config.max_sweeps)?;
        Ok(ValueIteration {
            config,
            sizes,
            v: vec![0.0; sizes.states],
            greedy: vec![Some(0); sizes.states],
        })
    }
}

impl Planner for ValueIteration {
    fn plan(&mut self, model: &dyn Model, sink: &mut dyn Sink) -> Result<PlanReport> {
        let (gamma, actions) = (self.config.gamma, self.sizes.actions);
        let mut sweeps = 0;
        let converged = loop {
            let mut delta: f64 = 0.0;
            for s in 0..self.sizes.states {
                if model.is_absorbing(s) {
                    continue;
                }
                // v(s) ← max_a Σ p(s', r|s, a) [r + γ v(s')]
                let new = (0..actions)
                    .map(|a| backup(model, &self.v, s, a, gamma))
                    .fold(f64::NEG_INFINITY, f64::max);
                delta = delta.max((new - self.v[s]).abs());
                self.v[s] = new;
            }
            sweeps += 1;
            sink.record(&Record::Scalar {
                name: "plan/delta".into(),
                step: sweeps,
                value: delta,
                wall_seconds: 0.0,
            })
            .map_err(Error::Sink)?;
            if delta < self.config.theta {
                break true;
            }
            if sweeps >= self.config.max_sweeps || !delta.is_finite() {
                break false;
            }
        };
        // π(s) = argmax_a Σ p(s', r|s, a) [r + γ v(s')]
        let mut q = vec![0.0; actions];
        for s in 0..self.sizes.states {
            self.greedy[s] = (!model.is_absorbing(s)).then(|| {
                for (a, qa) in q.iter_mut().enumerate() {
                    *qa = backup(model, &self.v, s, a, gamma);
                }
                first_argmax(&q)
            });
        }
        Ok(PlanReport {
            sweeps,
            improvements: None,
            converged,
        })
    }
}

crate::greedy_policy!(ValueIteration);
