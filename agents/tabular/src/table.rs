//! What the tabular agents share: state and action indices, Q tables,
//! ε-greedy choice, policies given as data, and the Bellman backup.

use rand::{Rng, RngExt};
use rl_agent::{EnvContext, Error, Result, Tables, try_vec};
use rl_env::{Action, Model, Observation, Space};
use serde::{Deserialize, Serialize};

/// Sizes of a tabular problem: `Discrete` observations and actions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sizes {
    /// Number of states.
    pub states: usize,
    /// Number of actions.
    pub actions: usize,
    /// The action space's `start`.
    pub action_start: i64,
    /// The observation space's `start`.
    pub state_start: i64,
}

impl Sizes {
    /// Reads the sizes off the environment, or says why a table cannot fit it.
    pub fn of(ctx: &EnvContext<'_>, agent: &str) -> Result<Self> {
        let (
            Space::Discrete {
                n: states,
                start: state_start,
            },
            Space::Discrete {
                n: actions,
                start: action_start,
            },
        ) = (ctx.observation_space, ctx.action_space)
        else {
            return Err(Error::Incompatible(format!(
                "agent '{agent}' is tabular and needs Discrete observations and actions; env '{}' has observations {} and actions {}",
                ctx.env_id, ctx.observation_space, ctx.action_space
            )));
        };
        if *states > 10_000_000 {
            return Err(Error::Incompatible(format!(
                "env '{}' has {states} states, too many for a table",
                ctx.env_id
            )));
        }
        Ok(Sizes {
            states: *states as usize,
            actions: *actions as usize,
            action_start: *action_start,
            state_start: *state_start,
        })
    }

    /// Entries of a state-action table, `states × actions`.
    pub fn entries(&self) -> usize {
        self.states * self.actions
    }

    /// The state index of an observation.
    pub fn state(&self, obs: &Observation) -> Result<usize> {
        match obs {
            Observation::Discrete(s)
                if (0..self.states as i64).contains(&(s - self.state_start)) =>
            {
                Ok((s - self.state_start) as usize)
            }
            other => Err(Error::Incompatible(format!(
                "observation {other:?} is not a state index in 0..{}",
                self.states
            ))),
        }
    }

    /// The action index of an action.
    pub fn action_index(&self, action: &Action) -> Result<usize> {
        match action {
            Action::Discrete(a) if (0..self.actions as i64).contains(&(a - self.action_start)) => {
                Ok((a - self.action_start) as usize)
            }
            other => Err(Error::Incompatible(format!(
                "action {other:?} is not in 0..{}",
                self.actions
            ))),
        }
    }

    /// The action with index `a`.
    pub fn action(&self, a: usize) -> Action {
        Action::Discrete(self.action_start + a as i64)
    }
}

/// The memory estimate of every tabular agent, whatever its config: at
/// most four `f64`-sized state-action tables (Double Q-learning's two Q
/// tables, visit counts, a policy's probabilities) and four per-state
/// arrays (values, greedy actions, first visits, flags).
/// An env no table fits weighs nothing here: the agent's build refuses it
/// with its own message (a planner's is about the model).
pub fn memory_bytes<C>(_config: &C, ctx: &EnvContext<'_>) -> Result<u64> {
    let Ok(sizes) = Sizes::of(ctx, "a tabular agent") else {
        return Ok(0);
    };
    let entries = sizes.entries() as u64;
    Ok(entries.saturating_mul(4 * 8) + (sizes.states as u64).saturating_mul(4 * 16))
}

/// Q(s, a) for every state and action, row-major by state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QTable {
    actions: usize,
    values: Vec<f64>,
}

impl QTable {
    /// Every entry set to `initial`; errors when the allocator refuses the table.
    pub fn new(sizes: &Sizes, initial: f64) -> Result<Self> {
        Ok(QTable {
            actions: sizes.actions,
            values: try_vec("the Q table", sizes.entries(), initial)?,
        })
    }

    /// The action values of state `s`.
    pub fn row(&self, s: usize) -> &[f64] {
        &self.values[s * self.actions..(s + 1) * self.actions]
    }

    /// Q(s, a), mutable.
    pub fn at(&mut self, s: usize, a: usize) -> &mut f64 {
        &mut self.values[s * self.actions + a]
    }

    /// Q(s, a).
    pub fn get(&self, s: usize, a: usize) -> f64 {
        self.values[s * self.actions + a]
    }

    /// max_a Q(s, a).
    pub fn max(&self, s: usize) -> f64 {
        self.row(s)
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The first action of highest value: deterministic, for evaluation.
    pub fn argmax(&self, s: usize) -> usize {
        first_argmax(self.row(s))
    }

    /// An action of highest value, ties broken uniformly at random, so that
    /// an untrained table does not always try action 0.
    pub fn argmax_random<R: Rng>(&self, s: usize, rng: &mut R) -> usize {
        argmax_random(self.row(s), rng)
    }

    /// ε-greedy: a uniformly random action with probability ε, else greedy.
    pub fn epsilon_greedy<R: Rng>(&self, s: usize, epsilon: f64, rng: &mut R) -> usize {
        if rng.random::<f64>() < epsilon {
            rng.random_range(0..self.actions)
        } else {
            self.argmax_random(s, rng)
        }
    }

    /// Σ_a π(a|s) Q(s, a) for the ε-greedy policy π (greedy mass shared by ties).
    pub fn expected_epsilon_greedy(&self, s: usize, epsilon: f64) -> f64 {
        let row = self.row(s);
        let best = self.max(s);
        let ties = row.iter().filter(|&&q| q == best).count() as f64;
        let uniform = epsilon / self.actions as f64;
        row.iter()
            .map(|&q| {
                let greedy = if q == best {
                    (1.0 - epsilon) / ties
                } else {
                    0.0
                };
                (uniform + greedy) * q
            })
            .sum()
    }

    /// Tables for the run folder: V = max_a Q, the greedy policy.
    pub fn tables(&self, absorbing: impl Fn(usize) -> bool) -> Tables {
        let states = self.values.len() / self.actions.max(1);
        Tables {
            v: (0..states).map(|s| self.max(s)).collect(),
            q: Some((0..states).map(|s| self.row(s).to_vec()).collect()),
            policy: (0..states)
                .map(|s| (!absorbing(s)).then(|| self.argmax(s)))
                .collect(),
        }
    }
}

/// The first index of the largest value.
pub fn first_argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

fn argmax_random<R: Rng>(values: &[f64], rng: &mut R) -> usize {
    // One pass for the maximum and how many share it; a second draw only on ties.
    let (mut best, mut ties) = (f64::NEG_INFINITY, 0usize);
    for &v in values {
        if v > best {
            (best, ties) = (v, 1);
        } else if v == best {
            ties += 1;
        }
    }
    let mut pick = if ties > 1 {
        rng.random_range(0..ties)
    } else {
        0
    };
    for (i, &v) in values.iter().enumerate() {
        if v == best {
            if pick == 0 {
                return i;
            }
            pick -= 1;
        }
    }
    first_argmax(values)
}

/// A policy given in a config: `"uniform"`, one action per state, or one
/// probability row per state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PolicySpec {
    /// `"uniform"`: every action equally likely.
    Named(#[schemars(extend("enum" = ["uniform"]))] String),
    /// `π(s)`: the action to take in each state.
    Deterministic(Vec<usize>),
    /// `π(a|s)`: one row of action probabilities per state.
    Stochastic(Vec<Vec<f64>>),
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec::Named("uniform".into())
    }
}

/// π(a|s) as a dense table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    actions: usize,
    probabilities: Vec<f64>,
}

impl Policy {
    /// Builds and checks a policy for `sizes`; errors name `field`.
    pub fn from_spec(spec: &PolicySpec, sizes: &Sizes, field: &str) -> Result<Self> {
        let (states, actions) = (sizes.states, sizes.actions);
        let mut probabilities = vec![0.0; states * actions];
        match spec {
            PolicySpec::Named(name) if name == "uniform" => {
                probabilities.fill(1.0 / actions as f64);
            }
            PolicySpec::Named(name) => {
                return Err(Error::config(
                    field,
                    format!(
                        "unknown policy \"{name}\": use \"uniform\", a list of actions, or a list of probability rows"
                    ),
                ));
            }
            PolicySpec::Deterministic(choice) => {
                check_len(choice.len(), states, field)?;
                for (s, &a) in choice.iter().enumerate() {
                    if a >= actions {
                        return Err(Error::config(
                            format!("{field}[{s}]"),
                            format!("action {a} is not in 0..{actions}"),
                        ));
                    }
                    probabilities[s * actions + a] = 1.0;
                }
            }
            PolicySpec::Stochastic(rows) => {
                check_len(rows.len(), states, field)?;
                for (s, row) in rows.iter().enumerate() {
                    let sum: f64 = row.iter().sum();
                    if row.len() != actions
                        || row.iter().any(|p| !(0.0..=1.0).contains(p))
                        || (sum - 1.0).abs() > 1e-6
                    {
                        return Err(Error::config(
                            format!("{field}[{s}]"),
                            format!("must be {actions} probabilities summing to 1, got {row:?}"),
                        ));
                    }
                    probabilities[s * actions..(s + 1) * actions].copy_from_slice(row);
                }
            }
        }
        Ok(Policy {
            actions,
            probabilities,
        })
    }

    /// π(·|s).
    pub fn row(&self, s: usize) -> &[f64] {
        &self.probabilities[s * self.actions..(s + 1) * self.actions]
    }

    /// Draws an action from π(·|s).
    pub fn sample<R: Rng>(&self, s: usize, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        for (a, &p) in self.row(s).iter().enumerate() {
            acc += p;
            if u < acc {
                return a;
            }
        }
        self.actions - 1
    }

    /// The single most probable action, or `None` when several tie.
    pub fn mode(&self, s: usize) -> Option<usize> {
        let row = self.row(s);
        let best = first_argmax(row);
        (row.iter().filter(|&&p| p == row[best]).count() == 1).then_some(best)
    }
}

fn check_len(got: usize, states: usize, field: &str) -> Result<()> {
    if got == states {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("has {got} entries but the environment has {states} states"),
        ))
    }
}

/// The one-step lookahead q(s, a) = Σ p(s', r | s, a) [r + γ (1 − terminated) v(s')].
pub fn backup(model: &dyn Model, v: &[f64], s: usize, a: usize, gamma: f64) -> f64 {
    model
        .transitions(s, a)
        .iter()
        .map(|o| {
            let future = if o.terminated {
                0.0
            } else {
                gamma * v[o.next_state]
            };
            o.probability * (o.reward + future)
        })
        .sum()
}

/// Checks a discount factor is in [0, 1].
pub fn check_gamma(gamma: f64) -> Result<()> {
    if (0.0..=1.0).contains(&gamma) {
        Ok(())
    } else {
        Err(Error::config(
            "gamma",
            format!("{gamma} is not a discount in [0, 1]"),
        ))
    }
}

/// Serialises an agent for a checkpoint.
pub fn save<T: Serialize>(agent: &T) -> Result<serde_json::Value> {
    serde_json::to_value(agent).map_err(|e| Error::State(e.to_string()))
}

/// Restores an agent from a checkpoint.
pub fn load<T: serde::de::DeserializeOwned>(state: &serde_json::Value) -> Result<T> {
    serde_json::from_value(state.clone()).map_err(|e| Error::State(e.to_string()))
}

/// [`rl_agent::Policy`] for a tabular agent, given how it acts greedily,
/// which tables it reports and, for an agent that keeps Q, its row of a
/// state (for replays). The agent is itself serialisable: its whole
/// state, random streams included, is the checkpoint.
#[macro_export]
#[doc(hidden)]
macro_rules! tabular_policy {
    ($agent:ty,
     act_greedy: |$acting:ident, $obs:ident| $greedy:expr,
     tables: |$reporting:ident| $tables:expr
     $(, action_values: |$valuing:ident, $values_obs:ident| $values:expr)? $(,)?) => {
        impl rl_agent::Policy for $agent {
            fn act_greedy(
                &mut self,
                $obs: &rl_env::Observation,
            ) -> rl_agent::Result<rl_env::Action> {
                let $acting = self;
                $greedy
            }

            fn tables(&self) -> Option<rl_agent::Tables> {
                let $reporting = self;
                Some($tables)
            }

            $(
            fn action_values(
                &mut self,
                $values_obs: &rl_env::Observation,
            ) -> rl_agent::Result<Option<Vec<f64>>> {
                let $valuing = self;
                $values
            }
            )?

            fn save(&self) -> rl_agent::Result<serde_json::Value> {
                $crate::table::save(self)
            }

            fn load(&mut self, state: &serde_json::Value) -> rl_agent::Result<()> {
                *self = $crate::table::load(state)?;
                Ok(())
            }
        }
    };
}
