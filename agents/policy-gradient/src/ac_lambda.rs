//! AC(λ): the online actor-critic with eligibility traces that MinAtar's
//! paper (Young & Tian 2019) reports beside DQN, as its
//! `examples/AC_lambda.py` runs it: no replay, no batches, one trace update
//! per env step, its size normalised as RMSProp's.
//!
//! ```text
//! per episode: e ← 0; s₀ observed; a₀ ~ π_θ(·|s₀); e ← ∇_θ P(s₀, a₀)
//! per step t (s_t, a_t → r_t, s_{t+1}), every quantity at the current θ:
//!     a_{t+1} ~ π_θ(·|s_{t+1})                     (unless the episode ended)
//!     δ = r_t + γ V_θ(s_{t+1}) − V_θ(s_t)         (γ V = 0 after a termination)
//!     g = ∇_θ P(s_{t+1}, a_{t+1})                  (before the update)
//!     u = δ e + β ∇_θ H(π_θ(·|s_{t+1}))
//!     m ← ρ m + (1 − ρ) u²;  θ ← θ + α u / √(m / (1 − ρⁿ⁺¹) + ε)
//!                                     (n frames so far; plain: θ ← θ + α u)
//!     e ← λγ e + g,  or e ← 0 once the episode ended
//! where P(s, a) = V_θ(s) + ½ log(π_θ(a|s) + 10⁻⁴)   (the "trace potential")
//! and   H(π) = −Σ_a π(a) log(π(a) + 10⁻⁴)
//! ```
//!
//! The ½ weighs the actor's gradient against the critic's in the one
//! trace both share; the 10⁻⁴ keeps the logarithms finite. As in the
//! original, the entropy bonus of the step that ends an episode is taken at
//! its final observation. With `env.num_envs` > 1, each copy keeps its own
//! trace and the copies' steps update θ one after another.
//!
//! Defaults are the paper's (MinAtar's `AC_lambda.py` as released with its
//! results): α = 2⁻¹¹, ρ = 0.999, ε = 10⁻⁴, λ = 0.8, γ = 0.99, β = 0.01,
//! and MinAtar's network: Conv 16 3×3 → SiLU → Affine 128 → dSiLU → a
//! policy head and a value head, PyTorch's default initialisation. An
//! earlier version of that file took plain steps of α = 2⁻⁸
//! (`"step": "plain", "alpha": 0.00390625`); on Breakout it lands far below
//! the paper's curve.

use crate::net::{ActorCritic, NetworkConfig};
use crate::onpolicy::{decode, read_state, write_state};
use crate::rollout::{decode_floats, encode_floats};
use base64::Engine as _;
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_agent::encode::network_input;
use rl_agent::{Agent, EnvContext, Error, Lanes, Policy, Result, Transition};
use rl_env::{Action, Observation, Space};
use rl_layers::{Architecture, Init, LayerSpec, Mode, Parameters, Size};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Hyperparameters of AC(λ); every default is MinAtar's `AC_lambda.py`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AcLambdaConfig {
    /// The step size α of the trace update; default 2⁻¹¹ = 0.00048828125.
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub alpha: f32,
    /// How a step is sized: `"rms_prop"` (default) divides it by the root
    /// of a debiased running mean of its squares; `"plain"` takes α times
    /// it.
    pub step: StepRule,
    /// RMSProp's decay ρ of the mean square; default 0.999.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub rms_decay: f32,
    /// RMSProp's ε, inside the root; default 1e-4.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub rms_eps: f32,
    /// The traces' decay λ; default 0.8.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub lambda: f32,
    /// Discount γ; default 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f32,
    /// Entropy bonus β; default 0.01.
    #[schemars(range(min = 0.0))]
    pub beta: f32,
    /// The network's layers. By default, on `[C, H, W]` frames: Conv 16
    /// 3×3/1, SiLU, Flatten, Affine 128, dSiLU (MinAtar's); on anything
    /// else: Flatten, Affine 128, dSiLU. Each head is one affine layer.
    pub network: NetworkConfig,
}

/// [`AcLambdaConfig::step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepRule {
    /// `θ ← θ + α u / √(m̂ + ε)`.
    RmsProp,
    /// `θ ← θ + α u`.
    Plain,
}

impl Default for AcLambdaConfig {
    fn default() -> Self {
        AcLambdaConfig {
            alpha: 0.00048828125,
            step: StepRule::RmsProp,
            rms_decay: 0.999,
            rms_eps: 1e-4,
            lambda: 0.8,
            gamma: 0.99,
            beta: 0.01,
            network: NetworkConfig::default(),
        }
    }
}

impl AcLambdaConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        crate::ppo::check_unit("lambda", self.lambda)?;
        crate::ppo::check_unit("gamma", self.gamma)?;
        crate::ppo::check_non_negative("beta", self.beta)?;
        crate::ppo::check_unit("rms_decay", self.rms_decay)?;
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return Err(Error::config(
                "rms_eps",
                format!("{} is not a positive number", self.rms_eps),
            ));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(Error::config(
                "alpha",
                format!("{} is not in (0, 1]", self.alpha),
            ));
        }
        Ok(())
    }

    /// The network with MinAtar's layers wherever the config gives none.
    fn network(&self, observation_space: &Space) -> NetworkConfig {
        let conv = LayerSpec::Conv {
            out: Size::Fixed(16),
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        let hidden = [
            LayerSpec::Flatten,
            LayerSpec::Affine(Size::Fixed(128)),
            LayerSpec::Dsilu,
        ];
        let torso = match *network_input(observation_space) {
            [_, h, w] if h >= 3 && w >= 3 => {
                [vec![conv, LayerSpec::Silu], hidden.to_vec()].concat()
            }
            _ => hidden.to_vec(),
        };
        let n = &self.network;
        NetworkConfig {
            torso: Some(n.torso.clone().unwrap_or(Architecture(torso))),
            policy_head: Some(n.policy_head.clone().unwrap_or(Architecture(vec![
                LayerSpec::Affine(Size::Named("actions".into())),
            ]))),
            value_head: Some(
                n.value_head
                    .clone()
                    .unwrap_or(Architecture(vec![LayerSpec::Affine(Size::Fixed(1))])),
            ),
        }
    }
}

/// Keeps the logarithms of π finite (`MIN_DENOM` in `AC_lambda.py`).
const MIN_DENOM: f32 = 1e-4;

/// One copy's eligibility trace, and the action drawn for its newest
/// observation.
#[derive(Clone, Debug, Default)]
struct Lane {
    /// e, one value per network weight, in [`Parameters`] order.
    trace: Vec<f32>,
    /// The action drawn for the observation the copy is in, once its
    /// previous step was learned from; `None` at an episode's start.
    next_action: Option<usize>,
}

/// The agent.
pub struct AcLambda {
    config: AcLambdaConfig,
    net: ActorCritic,
    rng: ChaCha8Rng,
    lanes: Lanes<Lane>,
    action_space: Space,
    /// Weights in the network.
    weights: usize,
    /// g = ∇P of the newest step, before the update.
    potential_grad: Vec<f32>,
    /// RMSProp's running mean of squared steps, m.
    mean_square: Vec<f32>,
    /// u = δ e + β ∇H of the update, per weight, reused.
    step: Vec<f32>,
    /// ∂/∂logits and ∂/∂V of one row.
    d_logits: Array2<f32>,
    d_values: Array2<f32>,
    /// V(s_t), from the value head alone.
    v_last: Vec<f32>,
    /// π of the latest forward.
    probs: Vec<f32>,
    /// Transitions learned from.
    steps: u64,
    /// Running sums for the metrics, reset when taken.
    td_error_sq: f64,
    entropy: f64,
    counted: u64,
}

/// What `save` writes.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcLambdaState {
    format: String,
    steps: u64,
    rng: ChaCha8Rng,
    /// The network's weights, safetensors, base64.
    network: String,
    /// RMSProp's mean square per weight, little-endian `f32`, base64.
    mean_square: String,
}

const FORMAT: &str = "rl-lab ac-lambda 1";

impl AcLambda {
    /// Builds the agent for an environment; every config error names its field.
    pub fn new(config: AcLambdaConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate()?;
        let Some(actions) = ctx.action_space.n() else {
            return Err(Error::Incompatible(format!(
                "ac-lambda needs a Discrete action space; {} has {}",
                ctx.env_id, ctx.action_space
            )));
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let network = config.network(ctx.observation_space);
        let mut net = ActorCritic::build_with(
            &network,
            ctx.observation_space,
            actions,
            Some(Init::TorchDefault),
            &mut rng,
        )?;
        net.reserve(1);
        let weights = net.param_count();
        Ok(AcLambda {
            config,
            net,
            rng,
            lanes: Lanes::default(),
            action_space: ctx.action_space.clone(),
            weights,
            potential_grad: vec![0.0; weights],
            mean_square: vec![0.0; weights],
            step: vec![0.0; weights],
            d_logits: Array2::zeros((1, actions)),
            d_values: Array2::zeros((1, 1)),
            v_last: Vec::with_capacity(1),
            probs: vec![0.0; actions],
            steps: 0,
            td_error_sq: 0.0,
            entropy: 0.0,
            counted: 0,
        })
    }

    /// Bytes the agent holds at most: the network, its gradients, g,
    /// RMSProp's mean squares, the step buffer, one trace per env copy, and
    /// one row's activations and their gradients.
    pub fn memory_bytes(config: &AcLambdaConfig, ctx: &EnvContext<'_>) -> Result<u64> {
        config.validate()?;
        let actions = ctx.action_space.n().unwrap_or(1);
        let network = config.network(ctx.observation_space);
        let (parameters, activations) = crate::net::plan(&network, ctx.observation_space, actions)?;
        let copies = 5 + ctx.num_envs.max(1) as u64;
        Ok(4 * (parameters.saturating_mul(copies) + 2 * activations))
    }

    /// Runs the network on input row 0 (written with
    /// [`ActorCritic::encode_row`]), sets `probs` from its logits and
    /// returns its value.
    fn forward(&mut self) -> Result<f32> {
        self.net.forward(1, Mode::Train)?;
        let logits = self.net.logits()?;
        let last = logits.row(0);
        let max = last.fold(f32::NEG_INFINITY, |m, &z| m.max(z));
        let mut sum = 0.0;
        for (p, &z) in self.probs.iter_mut().zip(last) {
            *p = (z - max).exp();
            sum += *p;
        }
        if !(sum.is_finite() && sum > 0.0) {
            return Err(Error::Diverged {
                step: self.steps,
                message: "the policy's logits are not finite".into(),
            });
        }
        self.probs.iter_mut().for_each(|p| *p /= sum);
        Ok(self.net.values()?[[0, 0]])
    }

    /// a ~ π from `probs`.
    fn sample(&mut self) -> usize {
        let u: f32 = self.rng.random();
        let mut cumulative = 0.0;
        for (a, &p) in self.probs.iter().enumerate() {
            cumulative += p;
            if u < cumulative {
                return a;
            }
        }
        self.probs.len() - 1
    }

    /// g = ∇_θ P(s, a) of the latest forward, into
    /// `potential_grad`: ∂P/∂V = 1, ∂P/∂z_j = ½ π_a (1[j = a] − π_j) / (π_a + ε).
    fn potential_gradient(&mut self, action: usize) -> Result<()> {
        self.d_logits.fill(0.0);
        self.d_values.fill(0.0);
        let p_a = self.probs[action];
        for (j, &p_j) in self.probs.iter().enumerate() {
            let indicator = if j == action { 1.0 } else { 0.0 };
            self.d_logits[[0, j]] = 0.5 * p_a * (indicator - p_j) / (p_a + MIN_DENOM);
        }
        self.d_values[[0, 0]] = 1.0;
        self.net
            .backward(self.d_logits.view(), self.d_values.view())?;
        let mut at = 0;
        let grad = &mut self.potential_grad;
        self.net.params().visit_params(&mut |param| {
            let g = param.grad.as_slice().expect("gradients are contiguous");
            grad[at..at + g.len()].copy_from_slice(g);
            at += g.len();
        });
        Ok(())
    }

    /// β ∇_θ H of the latest forward, left in the network's
    /// gradients: with h_i = ∂H/∂π_i = −log(π_i + ε) − π_i/(π_i + ε),
    /// ∂H/∂z_j = π_j (h_j − Σ_i π_i h_i).
    fn entropy_gradient(&mut self) -> Result<()> {
        self.d_logits.fill(0.0);
        self.d_values.fill(0.0);
        let h = |p: f32| -(p + MIN_DENOM).ln() - p / (p + MIN_DENOM);
        let mean: f32 = self.probs.iter().map(|&p| p * h(p)).sum();
        let mut entropy = 0.0;
        for (j, &p) in self.probs.iter().enumerate() {
            self.d_logits[[0, j]] = self.config.beta * p * (h(p) - mean);
            entropy -= p * (p + MIN_DENOM).ln();
        }
        self.entropy += f64::from(entropy);
        self.net
            .backward(self.d_logits.view(), self.d_values.view())
    }

    /// An episode starts in `lane`: a₀ ~ π(·|s₀) and e ← ∇P(s₀, a₀).
    fn start(&mut self, lane: usize, obs: &Observation) -> Result<usize> {
        self.net.encode_row(0, obs)?;
        self.forward()?;
        let action = self.sample();
        self.potential_gradient(action)?;
        let weights = self.weights;
        let state = self.lanes.get_mut(lane);
        state.trace.resize(weights, 0.0);
        state.trace.copy_from_slice(&self.potential_grad);
        state.next_action = Some(action);
        Ok(action)
    }

    /// Learns from one transition of `t.lane`, as the module docs say.
    fn learn(&mut self, t: &Transition<'_>) -> Result<()> {
        let c = self.config.clone();
        let (alpha, beta_on, decay, gamma) = (c.alpha, c.beta > 0.0, c.lambda * c.gamma, c.gamma);
        // V(s_t), then π and V at s_{t+1}, both at the current θ; the
        // backward passes below run through the second forward.
        self.net.encode_row(0, t.obs)?;
        self.net.value_only(1, &mut self.v_last)?;
        let v_last = self.v_last[0];
        self.net.encode_row(0, t.next_obs)?;
        let v_next = self.forward()?;
        let bootstrap = if t.terminated { 0.0 } else { gamma * v_next };
        let delta = t.reward as f32 + bootstrap - v_last;
        let ended = t.done();
        // g at s_{t+1}, before θ moves.
        let next_action = if ended {
            None
        } else {
            let action = self.sample();
            self.potential_gradient(action)?;
            Some(action)
        };
        // θ ← θ + α (δ e + β ∇H), e ← λγ e + g.
        if beta_on {
            self.entropy_gradient()?;
        }
        let lane = self.lanes.get_mut(t.lane);
        if lane.trace.len() != self.weights {
            return Err(Error::State(format!(
                "ac-lambda: lane {} learned from before its episode started",
                t.lane
            )));
        }
        let trace = &mut lane.trace;
        let grad = &self.potential_grad;
        let mean_square = &mut self.mean_square;
        let step = &mut self.step;
        // The debiasing of AC_lambda.py: n frames so far, this one included.
        let rms = (c.step == StepRule::RmsProp).then(|| {
            let debias = 1.0 - f64::from(c.rms_decay).powf((self.steps + 2) as f64);
            (c.rms_decay, c.rms_eps, debias as f32)
        });
        let mut at = 0;
        self.net.params().visit_params_mut(&mut |param| {
            let n = param.value.len();
            let value = param.value.as_slice_mut().expect("weights are contiguous");
            let entropy = param.grad.as_slice().expect("gradients are contiguous");
            let (e, g, m) = (
                &mut trace[at..at + n],
                &grad[at..at + n],
                &mut mean_square[at..at + n],
            );
            // u = δ e + β ∇H, then the step, each a branch-free loop over
            // zipped slices, so that they vectorise.
            let u = &mut step[..n];
            if beta_on {
                for ((u, &e), &h) in u.iter_mut().zip(&*e).zip(entropy) {
                    *u = delta * e + h;
                }
            } else {
                for (u, &e) in u.iter_mut().zip(&*e) {
                    *u = delta * e;
                }
            }
            match rms {
                Some((rho, eps, debias)) => {
                    for ((v, &u), m) in value.iter_mut().zip(&*u).zip(m.iter_mut()) {
                        *m = rho * *m + (1.0 - rho) * u * u;
                        *v += alpha * u / (*m / debias + eps).sqrt();
                    }
                }
                None => {
                    for (v, &u) in value.iter_mut().zip(&*u) {
                        *v += alpha * u;
                    }
                }
            }
            if ended {
                e.fill(0.0);
            } else {
                for (e, &g) in e.iter_mut().zip(g) {
                    *e = decay * *e + g;
                }
            }
            at += n;
        });
        lane.next_action = next_action;
        self.steps += 1;
        self.td_error_sq += f64::from(delta * delta);
        self.counted += 1;
        Ok(())
    }

    fn action_of(&self, index: usize) -> Action {
        let start = match self.action_space {
            Space::Discrete { start, .. } => start,
            _ => 0,
        };
        Action::Discrete(start + index as i64)
    }
}

impl Agent for AcLambda {
    /// The action drawn when the previous step was learned from, or at an
    /// episode's start a fresh draw that also starts the copy's trace.
    fn act(&mut self, lane: usize, obs: &Observation) -> Result<Action> {
        let index = match self.lanes.get_mut(lane).next_action {
            Some(index) => index,
            None => self.start(lane, obs)?,
        };
        Ok(self.action_of(index))
    }

    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        self.learn(t)
    }

    fn take_scalars(&mut self, out: &mut Vec<(&'static str, f64)>) {
        if self.counted > 0 {
            let n = self.counted as f64;
            out.push(("train/td_error_rms", (self.td_error_sq / n).sqrt()));
            if self.config.beta > 0.0 {
                out.push(("train/entropy", self.entropy / n));
            }
            (self.td_error_sq, self.entropy, self.counted) = (0.0, 0.0, 0);
        }
    }
}

impl Policy for AcLambda {
    /// The most probable action.
    fn act_greedy(&mut self, obs: &Observation) -> Result<Action> {
        self.net.encode_row(0, obs)?;
        self.forward()?;
        let mut best = 0;
        for (a, &p) in self.probs.iter().enumerate() {
            if p > self.probs[best] {
                best = a;
            }
        }
        Ok(self.action_of(best))
    }

    /// The network, RMSProp's mean squares, the counters and the random
    /// stream. No trace: a
    /// checkpoint sits between episodes, and a resumed run begins new ones
    /// in every copy, each with a zero trace.
    fn save(&self) -> Result<Value> {
        write_state(&AcLambdaState {
            format: FORMAT.into(),
            steps: self.steps,
            rng: self.rng.clone(),
            network: base64::engine::general_purpose::STANDARD.encode(self.net.to_safetensors()?),
            mean_square: encode_floats(&self.mean_square),
        })
    }

    fn load(&mut self, state: &Value) -> Result<()> {
        let state: AcLambdaState = read_state(state, "AC(λ)", FORMAT)?;
        let mean_square = decode_floats("mean_square", &state.mean_square).map_err(Error::State)?;
        if mean_square.len() != self.weights {
            return Err(Error::State(format!(
                "ac-lambda: {} mean squares for {} weights",
                mean_square.len(),
                self.weights
            )));
        }
        self.net
            .load_safetensors(&decode("network", &state.network)?)?;
        self.lanes = Lanes::default();
        self.mean_square = mean_square;
        self.steps = state.steps;
        self.rng = state.rng;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};
    use rl_env::DType;

    /// The agent on `[2, 5, 5]` frames: MinAtar's default torso (Conv,
    /// SiLU, Affine, dSiLU) at a size a finite difference can check.
    fn agent() -> (AcLambda, Observation) {
        agent_stepping("plain")
    }

    fn agent_stepping(step: &str) -> (AcLambda, Observation) {
        let observations = Space::uniform_box(0.0, 1.0, &[2, 5, 5], DType::F32);
        let actions = Space::discrete(3);
        let ctx = EnvContext {
            observation_space: &observations,
            action_space: &actions,
            model: None,
            env_id: "test",
            num_envs: 1,
            total_steps: None,
        };
        let config: AcLambdaConfig = serde_json::from_value(serde_json::json!({
            "beta": 0.5, "step": step, "alpha": 0.00390625,
            "network": {"torso": [{"conv": {"out": 3, "kernel": 3, "stride": 1}}, "silu",
                                  "flatten", {"affine": 6}, "dsilu"]}
        }))
        .unwrap();
        let agent = AcLambda::new(config, &ctx, 7).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let frame = ArrayD::from_shape_fn(IxDyn(&[2, 5, 5]), |_| rng.random::<f32>());
        (agent, Observation::F32(frame))
    }

    /// P(s, a) = V(s) + ½ log(π(a|s) + ε), and H with the same ε, at the
    /// current weights.
    fn potential_and_entropy(agent: &mut AcLambda, obs: &Observation, action: usize) -> (f64, f64) {
        agent.net.encode_row(0, obs).unwrap();
        let value = agent.forward().unwrap();
        let p = &agent.probs;
        let potential = f64::from(value) + 0.5 * f64::from((p[action] + MIN_DENOM).ln());
        let entropy = -p
            .iter()
            .map(|&p| f64::from(p) * f64::from((p + MIN_DENOM).ln()))
            .sum::<f64>();
        (potential, entropy)
    }

    /// Visits weight `index` (in [`Parameters`] order) mutably.
    fn nudge(agent: &mut AcLambda, index: usize, by: f32) {
        let mut at = 0;
        agent.net.params().visit_params_mut(&mut |param| {
            let n = param.value.len();
            if (at..at + n).contains(&index) {
                param.value.as_slice_mut().unwrap()[index - at] += by;
            }
            at += n;
        });
    }

    /// g = ∇P and β∇H (the second backward pass over the same forward) agree
    /// with central differences of P and H, weight by weight.
    #[test]
    fn trace_and_entropy_gradients_match_finite_differences() {
        let (mut agent, obs) = agent();
        let action = 2;
        agent.net.encode_row(0, &obs).unwrap();
        agent.forward().unwrap();
        agent.potential_gradient(action).unwrap();
        agent.entropy_gradient().unwrap();
        let potential_grad = agent.potential_grad.clone();
        let mut entropy_grad = Vec::new();
        agent.net.params().visit_params(&mut |param| {
            entropy_grad.extend(param.grad.iter().map(|&g| g / agent.config.beta));
        });
        assert_eq!(potential_grad.len(), agent.weights);
        let h = 1e-2f32;
        let mut checked = 0;
        for index in (0..agent.weights).step_by(3) {
            nudge(&mut agent, index, h);
            let (p_plus, h_plus) = potential_and_entropy(&mut agent, &obs, action);
            nudge(&mut agent, index, -2.0 * h);
            let (p_minus, h_minus) = potential_and_entropy(&mut agent, &obs, action);
            nudge(&mut agent, index, h);
            let fd_p = (p_plus - p_minus) / f64::from(2.0 * h);
            let fd_h = (h_plus - h_minus) / f64::from(2.0 * h);
            for (what, fd, got) in [
                ("potential", fd_p, potential_grad[index]),
                ("entropy", fd_h, entropy_grad[index]),
            ] {
                let got = f64::from(got);
                assert!(
                    (fd - got).abs() <= 2e-3 + 2e-2 * fd.abs().max(got.abs()),
                    "{what} weight {index}: finite difference {fd}, backward {got}"
                );
            }
            checked += 1;
        }
        assert!(checked > 50, "{checked}");
    }

    /// One step of the update by hand, with the trace of the episode's
    /// first step: u = δ e + β ∇H; plain θ' = θ + α u; RMSProp's first step
    /// θ' = θ + α u / √((1 − ρ) u² / (1 − ρ²) + ε); and e' = λγ e + g.
    #[test]
    fn one_step_moves_the_weights_along_the_trace() {
        for step in ["plain", "rms_prop"] {
            one_step(step);
        }
    }

    fn one_step(step: &str) {
        let (mut agent, obs) = agent_stepping(step);
        let mut next = obs.clone();
        if let Observation::F32(frame) = &mut next {
            frame.mapv_inplace(|v| 1.0 - v);
        }
        let first = agent.act(0, &obs).unwrap();
        let trace = agent.lanes.get_mut(0).trace.clone();
        let before: Vec<f32> = {
            let mut all = Vec::new();
            agent
                .net
                .params()
                .visit_params(&mut |p| all.extend(p.value.iter().copied()));
            all
        };
        let transition = Transition {
            lane: 0,
            obs: &obs,
            action: &first,
            reward: 1.0,
            next_obs: &next,
            terminated: false,
            truncated: false,
        };
        // δ from V at the weights before the step.
        agent.net.encode_row(0, &obs).unwrap();
        let v = agent.forward().unwrap();
        agent.net.encode_row(0, &next).unwrap();
        let v_next = agent.forward().unwrap();
        let delta = 1.0 + 0.99 * v_next - v;
        agent.observe(&transition).unwrap();
        let alpha = agent.config.alpha;
        let g = agent.potential_grad.clone();
        let mut at = 0;
        let mut moved = 0;
        agent.net.params().visit_params(&mut |p| {
            for (i, (&after, &grad_h)) in p.value.iter().zip(p.grad.iter()).enumerate() {
                let k = at + i;
                let u = delta * trace[k] + grad_h;
                let rho = 0.999f32;
                let size = if step == "plain" {
                    u
                } else {
                    u / ((1.0 - rho) * u * u / (1.0 - rho * rho) + 1e-4).sqrt()
                };
                let want = before[k] + alpha * size;
                assert!(
                    (after - want).abs() < 1e-6,
                    "{step}, weight {k}: {after} vs {want}"
                );
                moved += usize::from(after != before[k]);
            }
            at += p.value.len();
        });
        assert!(moved > agent.weights / 2, "{moved} of {}", agent.weights);
        let lane = agent.lanes.get_mut(0);
        for k in 0..trace.len() {
            let want = 0.8 * 0.99 * trace[k] + g[k];
            assert!((lane.trace[k] - want).abs() < 1e-6);
        }
        assert!(lane.next_action.is_some());
    }
}
