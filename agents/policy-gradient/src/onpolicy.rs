//! What the on-policy actor-critic agents share, so that each algorithm's
//! file holds only its config and its update: acting on every env copy in
//! one forward pass, storing the copies' steps in a [`Rollout`] with the
//! observations it must bootstrap from, and the network's saved state.

use crate::net::{ActorCritic, NetworkConfig};
use crate::rollout::{Rollout, RolloutState, Step};
use base64::Engine as _;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rl_agent::{EnvContext, Error, Lanes, Result, Transition};
use rl_env::{Action, Observation, Space};
use rl_layers::{Categorical, Mode, Optimizer};
use serde::{Deserialize, Serialize};

/// What acting on a lane's current observation gave.
#[derive(Clone, Debug, Default)]
struct Acted {
    input: Vec<f32>,
    action: usize,
    log_prob: f32,
    value: f32,
}

/// The acting half of an on-policy agent, and its rollout.
pub struct OnPolicy {
    /// The actor-critic network.
    pub net: ActorCritic,
    /// π over the latest forward's rows.
    pub pi: Categorical,
    /// Draws the actions.
    rng: ChaCha8Rng,
    /// The steps since the last update.
    pub rollout: Rollout,
    /// Transitions per rollout.
    pub rollout_len: usize,
    /// Per lane, the action chosen for its current observation.
    acted: Lanes<Acted>,
    /// Env copies the loop steps.
    pub num_envs: usize,
    /// Transitions seen.
    pub steps: u64,
    action_space: Space,
    /// Metrics for the loop to record.
    pub scalars: Vec<(&'static str, f64)>,
}

/// The saved part of [`OnPolicy`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnPolicyState {
    steps: u64,
    rng: ChaCha8Rng,
    /// The network's weights, safetensors, base64.
    network: String,
    /// The rollout so far.
    rollout: RolloutState,
}

impl OnPolicy {
    /// The network for the environment of `ctx`, drawn from `rng`, and an
    /// empty rollout of `num_steps` steps per env copy.
    pub fn new(
        network: &NetworkConfig,
        ctx: &EnvContext<'_>,
        num_steps: usize,
        agent: &str,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let Some(actions) = ctx.action_space.n() else {
            return Err(Error::Incompatible(format!(
                "{agent} needs a Discrete action space; {} has {}",
                ctx.env_id, ctx.action_space
            )));
        };
        let num_envs = ctx.num_envs.max(1);
        let net = ActorCritic::build(network, ctx.observation_space, actions, rng)?;
        let rollout_len = num_steps * num_envs;
        Ok(OnPolicy {
            rollout: Rollout::new(net.input_len(), rollout_len + num_envs),
            rollout_len,
            net,
            pi: Categorical::default(),
            rng: ChaCha8Rng::seed_from_u64(rand::RngExt::random(rng)),
            acted: Lanes::default(),
            num_envs,
            steps: 0,
            action_space: ctx.action_space.clone(),
            scalars: Vec::with_capacity(8),
        })
    }

    /// a ~ π_θ(·|s) for every lane of `lanes` at once, in one forward pass,
    /// keeping each lane's encoded observation, log π(a|s) and V(s).
    pub fn choose<'o>(
        &mut self,
        lanes: &[usize],
        obs: impl Fn(usize) -> &'o Observation,
    ) -> Result<()> {
        if lanes.is_empty() {
            return Ok(());
        }
        let len = self.net.input_len();
        self.net.reserve(lanes.len());
        for (row, &lane) in lanes.iter().enumerate() {
            // Encoded once, for the forward pass and for the rollout.
            let encoded = &mut self.acted.get_mut(lane).input;
            encoded.resize(len, 0.0);
            self.net.encode(obs(lane), encoded)?;
            self.net.input_row(row).copy_from_slice(encoded);
        }
        self.net.forward(lanes.len(), Mode::Eval)?;
        self.set_policy()?;
        let values = self.net.values()?;
        for (row, &lane) in lanes.iter().enumerate() {
            let index = self.pi.sample(row, &mut self.rng);
            let acted = self.acted.get_mut(lane);
            acted.action = index;
            acted.log_prob = self.pi.log_prob(row, index);
            acted.value = values[[row, 0]];
        }
        Ok(())
    }

    /// The action `choose` picked for `lane`, as the env takes it.
    pub fn action(&mut self, lane: usize) -> Action {
        let index = self.acted.get_mut(lane).action;
        self.action_of(index)
    }

    fn action_of(&self, index: usize) -> Action {
        let start = match self.action_space {
            Space::Discrete { start, .. } => start,
            _ => 0,
        };
        Action::Discrete(start + index as i64)
    }

    /// π from the latest forward's logits.
    pub fn set_policy(&mut self) -> Result<()> {
        let step = self.steps;
        self.pi
            .set_logits(self.net.logits()?)
            .map_err(|e| Error::Diverged {
                step,
                message: format!("policy logits: {e}"),
            })
    }

    /// Stores one step's transitions; returns whether the rollout is full,
    /// in which case every copy whose episode goes on has its newest
    /// observation queued to bootstrap from.
    pub fn store(&mut self, transitions: &[Transition<'_>]) -> Result<bool> {
        let first = self.rollout.len();
        self.push(transitions)?;
        if self.rollout.len() < self.rollout_len {
            return Ok(false);
        }
        // The rollout ends: every copy whose episode goes on bootstraps
        // from its newest observation. A copy that sat this step out ended
        // its episode on its last stored step.
        for (k, t) in transitions.iter().enumerate() {
            if !t.done() {
                self.rollout
                    .bootstrap_for(first + k, |row| self.net.encode(t.next_obs, row))?;
            }
        }
        Ok(true)
    }

    /// Stores one step's transitions, with the true final observation of
    /// each episode a time limit cut.
    pub fn push(&mut self, transitions: &[Transition<'_>]) -> Result<()> {
        for t in transitions {
            let acted = self.acted.get_mut(t.lane);
            let step = Step {
                lane: t.lane,
                action: acted.action,
                log_prob: acted.log_prob,
                value: acted.value,
                reward: t.reward as f32,
                terminated: t.terminated,
                ended: t.done(),
            };
            self.rollout.push(&acted.input, step);
            if t.truncated && !t.terminated {
                // The true final observation of an episode a time limit cut.
                let index = self.rollout.len() - 1;
                self.rollout
                    .bootstrap_for(index, |row| self.net.encode(t.next_obs, row))?;
            }
            self.steps += 1;
        }
        Ok(())
    }

    /// GAE(λ) over the full rollout, after `V` of its bootstrap
    /// observations.
    pub fn advantages(&mut self, gamma: f32, lambda: f32) -> Result<()> {
        let boots = self.rollout.bootstrap_of.len();
        self.net.reserve(boots.max(self.rollout.len()));
        for k in 0..boots {
            let (net, rollout) = (&mut self.net, &self.rollout);
            net.input_row(k).copy_from_slice(rollout.bootstrap_row(k));
        }
        let mut values = Vec::with_capacity(boots);
        if boots > 0 {
            self.net.value_only(boots, &mut values)?;
        }
        self.rollout
            .advantages(gamma, lambda, &values, self.num_envs);
        Ok(())
    }

    /// Runs the network in train mode on the rollout rows `rows`, and sets
    /// π from its logits. Read the values with [`ActorCritic::values`].
    pub fn forward_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.net.reserve(rows.len());
        for (row, &i) in rows.iter().enumerate() {
            let (net, rollout) = (&mut self.net, &self.rollout);
            net.input_row(row).copy_from_slice(rollout.obs(i));
        }
        self.net.forward(rows.len(), Mode::Train)?;
        self.set_policy()
    }

    /// Backpropagates, clips the global gradient norm to `max_grad_norm`
    /// and takes one optimiser step.
    pub fn step(
        &mut self,
        optimizer: &mut Optimizer,
        d_logits: ndarray::ArrayView2<'_, f32>,
        d_values: ndarray::ArrayView2<'_, f32>,
        max_grad_norm: f32,
    ) -> Result<()> {
        self.net.backward(d_logits, d_values)?;
        self.net.clip_grad_norm(max_grad_norm);
        optimizer
            .step(self.net.params())
            .map_err(crate::net::run_error)
    }

    /// Checks the weights after update `update`.
    pub fn check_finite(&self, update: u64) -> Result<()> {
        if self.net.all_finite() {
            return Ok(());
        }
        Err(Error::Diverged {
            step: self.steps,
            message: format!("a weight of the network is not finite after update {update}"),
        })
    }

    /// The most probable action.
    pub fn act_greedy(&mut self, obs: &Observation) -> Result<Action> {
        let len = self.net.input_len();
        self.net.reserve(1);
        let mut encoded = vec![0.0; len];
        self.net.encode(obs, &mut encoded)?;
        self.net.input_row(0).copy_from_slice(&encoded);
        self.net.forward(1, Mode::Eval)?;
        let logits = self.net.logits()?;
        let mut best = 0;
        for a in 1..logits.ncols() {
            if logits[[0, a]] > logits[[0, best]] {
                best = a;
            }
        }
        Ok(self.action_of(best))
    }

    /// What [`OnPolicy::load`] restores.
    pub fn save(&self) -> Result<OnPolicyState> {
        Ok(OnPolicyState {
            steps: self.steps,
            rng: self.rng.clone(),
            network: base64::engine::general_purpose::STANDARD.encode(self.net.to_safetensors()?),
            rollout: self.rollout.save(),
        })
    }

    /// Restores the network, the counters, the random stream and the
    /// rollout so far: a one-copy run resumed from a checkpoint (taken at
    /// an episode boundary) learns from the rollouts the uninterrupted run
    /// learns from.
    pub fn load(&mut self, state: &OnPolicyState) -> Result<()> {
        let bytes = decode("network", &state.network)?;
        let mut rollout = self.rollout.clone();
        rollout
            .load(&state.rollout, self.net.actions(), self.num_envs)
            .map_err(Error::State)?;
        self.net.load_safetensors(&bytes)?;
        self.rollout = rollout;
        self.steps = state.steps;
        self.rng = state.rng.clone();
        Ok(())
    }
}

/// The loss's gradients per row of an update, reused across updates: each
/// agent fills `d_log_prob` (∂L/∂log π(a|s)), `d_entropy` (∂L/∂H) and
/// `d_values` (∂L/∂V), and [`LossGrads::apply`] carries them through π and
/// the network into one optimiser step.
#[derive(Clone, Debug)]
pub struct LossGrads {
    /// ∂L/∂log π(a|s) per row.
    pub d_log_prob: ndarray::Array1<f32>,
    /// ∂L/∂H(π(·|s)) per row.
    pub d_entropy: ndarray::Array1<f32>,
    /// ∂L/∂V(s), `[rows, 1]`.
    pub d_values: ndarray::Array2<f32>,
    d_logits: ndarray::Array2<f32>,
}

impl Default for LossGrads {
    fn default() -> Self {
        LossGrads {
            d_log_prob: ndarray::Array1::zeros(0),
            d_entropy: ndarray::Array1::zeros(0),
            d_values: ndarray::Array2::zeros((0, 1)),
            d_logits: ndarray::Array2::zeros((0, 0)),
        }
    }
}

impl LossGrads {
    /// Room for `rows` rows of `actions` logits; reallocates only when the
    /// shape changes.
    pub fn resize(&mut self, rows: usize, actions: usize) {
        if self.d_logits.dim() != (rows, actions) {
            self.d_logits = ndarray::Array2::zeros((rows, actions));
            self.d_values = ndarray::Array2::zeros((rows, 1));
            self.d_log_prob = ndarray::Array1::zeros(rows);
            self.d_entropy = ndarray::Array1::zeros(rows);
        }
    }

    /// Backpropagates through π (taken at `actions`) and the network,
    /// clips the global gradient norm to `max_grad_norm` and takes one
    /// optimiser step.
    pub fn apply(
        &mut self,
        on: &mut OnPolicy,
        optimizer: &mut Optimizer,
        actions: &[usize],
        max_grad_norm: f32,
    ) -> Result<()> {
        on.pi
            .backward(
                actions,
                self.d_log_prob.view(),
                self.d_entropy.view(),
                self.d_logits.view_mut(),
            )
            .map_err(crate::net::run_error)?;
        on.step(
            optimizer,
            self.d_logits.view(),
            self.d_values.view(),
            max_grad_norm,
        )
    }
}

/// Normalises the advantage `advantage(item)` of each of `items`:
/// `(A − mean A) / (std A + 1e-8)`, with torch's unbiased std. Fewer than
/// two are left as they are.
pub fn normalize<T>(items: &mut [T], advantage: impl Fn(&mut T) -> &mut f32) {
    let n = items.len();
    if n < 2 {
        return;
    }
    let mean = items.iter_mut().map(|i| *advantage(i)).sum::<f32>() / n as f32;
    let var = items
        .iter_mut()
        .map(|i| (*advantage(i) - mean).powi(2))
        .sum::<f32>()
        / (n - 1) as f32;
    let std = var.sqrt();
    for item in items {
        let a = advantage(item);
        *a = (*a - mean) / (std + 1e-8);
    }
}

/// Reads a saved state of format `format` (`what` names the agent in
/// errors); the format is checked first, so another agent's state is
/// refused by name, not by a missing field.
pub fn read_state<T: serde::de::DeserializeOwned>(
    state: &serde_json::Value,
    what: &str,
    format: &str,
) -> Result<T> {
    let found = state["format"].as_str().unwrap_or_default();
    if found != format {
        return Err(Error::State(format!(
            "format '{found}', expected '{format}'"
        )));
    }
    serde_json::from_value(state.clone())
        .map_err(|e| Error::State(format!("not a {what} state: {e}")))
}

/// A state as JSON.
pub fn write_state<T: Serialize>(state: &T) -> Result<serde_json::Value> {
    serde_json::to_value(state).map_err(|e| Error::State(e.to_string()))
}

/// Base64 text of a saved state's `what`.
pub fn decode(what: &str, text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::State(format!("{what}: not base64: {e}")))
}

/// Base64 text of an optimiser's state.
pub fn encode_optimizer(optimizer: &Optimizer) -> Result<String> {
    let bytes = optimizer
        .state_to_safetensors()
        .map_err(|e| Error::State(format!("optimiser state: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Restores an optimiser's state from [`encode_optimizer`]'s text.
pub fn load_optimizer(optimizer: &mut Optimizer, text: &str) -> Result<()> {
    optimizer
        .load_state_safetensors(&decode("optimizer", text)?)
        .map_err(|e| Error::State(format!("optimiser state: {e}")))
}

/// 1 − Var(R − V) / Var(R): how much of the returns' variance the value
/// function explains (1 is perfect, 0 no better than a constant).
pub fn explained_variance(rollout: &Rollout) -> f64 {
    let n = rollout.returns.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let variance = |xs: &mut dyn Iterator<Item = f64>| {
        let xs: Vec<f64> = xs.collect();
        let mean = xs.iter().sum::<f64>() / n;
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n
    };
    let of_returns = variance(&mut rollout.returns.iter().map(|&r| f64::from(r)));
    let of_errors = variance(
        &mut rollout
            .returns
            .iter()
            .zip(&rollout.steps)
            .map(|(&r, s)| f64::from(r - s.value)),
    );
    if of_returns == 0.0 {
        f64::NAN
    } else {
        1.0 - of_errors / of_returns
    }
}

/// Implements [`rl_agent::Agent`]'s acting and observing for an agent with
/// an `on: OnPolicy` field and a `learn(&mut self) -> Result<()>` method run
/// when the rollout is full. `on_policy_agent!(acting)` leaves out
/// `observe_batch`, for an agent that decides itself when to learn.
#[macro_export]
#[doc(hidden)]
macro_rules! on_policy_agent {
    () => {
        $crate::on_policy_agent!(acting);

        /// Stores the step of every lane; learns once the rollout is full.
        fn observe_batch(
            &mut self,
            transitions: &[rl_agent::Transition<'_>],
        ) -> rl_agent::Result<()> {
            if self.on.store(transitions)? {
                self.learn()?;
                self.on.rollout.clear();
            }
            Ok(())
        }
    };
    (acting) => {
        fn act(
            &mut self,
            lane: usize,
            obs: &rl_env::Observation,
        ) -> rl_agent::Result<rl_env::Action> {
            self.on.choose(&[lane], |_| obs)?;
            Ok(self.on.action(lane))
        }

        fn act_batch(
            &mut self,
            lanes: &[usize],
            obs: &[rl_env::Observation],
            actions: &mut [rl_env::Action],
        ) -> rl_agent::Result<()> {
            self.on.choose(lanes, |lane| &obs[lane])?;
            for &lane in lanes {
                actions[lane] = self.on.action(lane);
            }
            Ok(())
        }

        fn observe(&mut self, t: &rl_agent::Transition<'_>) -> rl_agent::Result<()> {
            self.observe_batch(std::slice::from_ref(t))
        }

        fn take_scalars(&mut self, out: &mut Vec<(&'static str, f64)>) {
            out.append(&mut self.on.scalars);
        }
    };
}
