//! Deep Q-Networks (Mnih et al. 2015, "Human-level control through deep
//! reinforcement learning"), with MinAtar's published setup (Young & Tian
//! 2019) as the defaults.
//!
//! Top to bottom: the config, the agent and how it is built, the update,
//! then the act step. Beyond the 2015 paper, and off by default: Double DQN
//! (van Hasselt et al. 2016), the dueling head (Wang et al. 2016) and
//! n-step returns (Sutton 1988; Hessel et al. 2018).

use crate::encode::{ObsCodec, network_input};
use crate::network::{QNet, default_architecture, input_buffer, run_error};
use crate::replay::{Batch, Replay, ReplayState, Step};
use base64::Engine as _;
use ndarray::{Array1, Array2, ArrayD};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rl_agent::{Agent, EnvContext, Error, Policy, Result, Transition};
use rl_env::{Action, Observation, Space};
use rl_layers::{Architecture, Init, Loss, Mode, Optimizer, OptimizerConfig};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::time::Instant;

// ---------------------------------------------------------------------------
// The config
// ---------------------------------------------------------------------------

/// Most replay slots: 100 million, a hundred times the Nature DQN's
/// million, so that only a typo meets it (the run's memory estimate then
/// weighs what the slots cost for the env's frames).
pub const MAX_REPLAY_CAPACITY: usize = 100_000_000;

/// Most transitions per update: 65,536, two thousand times DQN's 32.
pub const MAX_BATCH_SIZE: usize = 1 << 16;

/// Longest n-step return: 1,000 steps, far past Rainbow's 3; the replay
/// looks that far ahead of every sample.
pub const MAX_N_STEP: usize = 1_000;

/// DQN's hyperparameters. Every default is MinAtar's `examples/dqn.py`
/// unless its doc says otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DqnConfig {
    /// The Q-network: `"auto"` picks one by observation type (the MinAtar
    /// network for `[C, 10, 10]` frames, the Nature network for
    /// `[k, 84, 84]`, an MLP 64-64 for vectors and one-hot states), or a list
    /// of layers ending in `{"affine": "actions"}`. Default `"auto"`.
    pub network: NetworkSpec,
    /// Weight initialiser; default `torch_default`, PyTorch's `nn.Linear` and
    /// `nn.Conv2d` default, which MinAtar's `dqn.py` gets by not choosing one.
    pub init: Init,
    /// The replay buffer.
    pub replay: ReplayConfig,
    /// Transitions per gradient update; default 32 (`BATCH_SIZE`). At most
    /// 65,536 (see [`MAX_BATCH_SIZE`]).
    #[schemars(range(min = 1, max = MAX_BATCH_SIZE))]
    pub batch_size: usize,
    /// Discount γ in [0, 1]; default 0.99 (`GAMMA`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// Any optimiser of the layer crate; default centered RMSProp with lr
    /// 2.5e-4, α 0.95, ε 0.01 (`STEP_SIZE`, `SQUARED_GRAD_MOMENTUM`,
    /// `MIN_SQUARED_GRAD`, `centered=True`).
    pub optimizer: OptimizerConfig,
    /// Gradient clipping: `"none"` (MinAtar's `dqn.py` does not clip) or
    /// `{"global_norm": max}` (CleanRL's Atari DQN uses 10).
    pub grad_clip: GradClip,
    /// Target-network period, in gradient updates: every this many updates
    /// `θ⁻ ← τ θ + (1 − τ) θ⁻`; default 1,000 (`TARGET_NETWORK_UPDATE_FREQ`,
    /// counted in policy-network updates).
    #[schemars(range(min = 1))]
    pub target_update_period: u64,
    /// τ in (0, 1] of the target update; default 1, the hard copy of Mnih et
    /// al. Soft (Polyak) updates use a small τ, e.g. 0.005 every update.
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub tau: f32,
    /// The TD loss on the taken action's Q-value: `{"huber": {"delta": 1.0}}`
    /// (default; `f.smooth_l1_loss` in MinAtar's `dqn.py`) or `"mse"`.
    pub loss: TdLoss,
    /// Env steps of uniformly random actions before learning starts; default
    /// 5,000 (`REPLAY_START_SIZE`).
    pub learning_starts: u64,
    /// One gradient update every this many env steps; default 1 (`TRAINING_FREQ`).
    #[schemars(range(min = 1))]
    pub train_frequency: u64,
    /// ε when learning starts; default 1.0 (`EPSILON`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub epsilon_start: f64,
    /// ε after the decay; default 0.1 (`END_EPSILON`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub epsilon_end: f64,
    /// Length of the linear ε decay, in env steps after `learning_starts`;
    /// default 100,000 (`FIRST_N_FRAMES`).
    pub epsilon_decay_steps: u64,
    /// Double DQN: the online network picks the bootstrap action, the target
    /// network values it (van Hasselt et al. 2016); default off.
    pub double_dqn: bool,
    /// Dueling head `Q = V + A − mean A` (Wang et al. 2016) in place of the
    /// network's last layer; default off.
    pub dueling: bool,
    /// n of n-step returns (Sutton 1988, as in Rainbow); default 1, the
    /// paper's. At most 1,000 (see [`MAX_N_STEP`]).
    #[schemars(range(min = 1, max = MAX_N_STEP))]
    pub n_step: usize,
    /// Report `train/loss`, `train/q_mean`, `train/epsilon` and
    /// `time/steps_per_second` every this many gradient updates; default
    /// 1,000 (ours: MinAtar prints per episode).
    #[schemars(range(min = 1))]
    pub log_every: u64,
}

/// The replay buffer's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Slots in the ring, in frames: each transition takes one and each
    /// episode one more for its final observation; at least `n_step +
    /// frame_stack + 1` (3 for one-step returns of single frames); default
    /// 100,000 (`REPLAY_BUFFER_SIZE`). At most 100,000,000 (see
    /// [`MAX_REPLAY_CAPACITY`]).
    #[schemars(range(min = 3, max = MAX_REPLAY_CAPACITY))]
    pub capacity: usize,
    /// Frames per observation when the env stacks them (a `frame_stack`
    /// wrapper of k): the buffer then stores each frame once and rebuilds
    /// the stacks. Default 1: observations are stored whole. It must match
    /// the env's stacks, whose `frame_stack` wrapper allows at most 64.
    #[schemars(range(min = 1))]
    pub frame_stack: usize,
    /// Whether checkpoints include the buffer (deflate-compressed), so a
    /// resumed run continues bit for bit; default true (ours).
    pub checkpoint: bool,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            capacity: 100_000,
            frame_stack: 1,
            checkpoint: true,
        }
    }
}

/// The Q-network in a config: `"auto"` or layers.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[schemars(schema_with = "network_schema")]
pub enum NetworkSpec {
    /// Chosen by the observation's shape (see [`crate::network`]).
    Auto,
    /// Exactly these layers.
    Layers(Architecture),
}

impl Serialize for NetworkSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            NetworkSpec::Auto => s.serialize_str("auto"),
            NetworkSpec::Layers(arch) => arch.serialize(s),
        }
    }
}

/// The schema of [`NetworkSpec`]'s JSON forms, which its hand-written
/// serde impls define.
fn network_schema(generator: &mut SchemaGenerator) -> Schema {
    let layers = generator.subschema_for::<Architecture>();
    json_schema!({"description": "\"auto\", or a list of layers.", "anyOf": [{"const": "auto"}, layers]})
}

impl<'de> Deserialize<'de> for NetworkSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NetworkSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\" or a list of layers")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<NetworkSpec, E> {
                if v == "auto" {
                    Ok(NetworkSpec::Auto)
                } else {
                    Err(E::custom(format!(
                        "expected \"auto\" or a list of layers, found \"{v}\""
                    )))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<NetworkSpec, A::Error> {
                Architecture::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(NetworkSpec::Layers)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Gradient clipping.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GradClip {
    /// No clipping.
    None,
    /// Scale all gradients by `max / ‖g‖` when their global L2 norm exceeds `max`.
    GlobalNorm(#[schemars(extend("exclusiveMinimum" = 0.0))] f32),
}

/// The loss on the TD error `a = Q(s, a) − y`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TdLoss {
    /// `½ a²` for `|a| ≤ δ`, `δ (|a| − ½ δ)` beyond: the gradient is `a`
    /// clipped to `[−δ, δ]`, Mnih et al.'s error clipping.
    Huber {
        /// The threshold δ > 0.
        #[schemars(extend("exclusiveMinimum" = 0.0))]
        delta: f32,
    },
    /// `a²`.
    Mse,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig {
            network: NetworkSpec::Auto,
            init: Init::TorchDefault,
            replay: ReplayConfig::default(),
            batch_size: 32,
            gamma: 0.99,
            optimizer: OptimizerConfig::RmsProp {
                lr: 2.5e-4,
                alpha: 0.95,
                eps: 0.01,
                centered: true,
            },
            grad_clip: GradClip::None,
            target_update_period: 1_000,
            tau: 1.0,
            loss: TdLoss::Huber { delta: 1.0 },
            learning_starts: 5_000,
            train_frequency: 1,
            epsilon_start: 1.0,
            epsilon_end: 0.1,
            epsilon_decay_steps: 100_000,
            double_dqn: false,
            dueling: false,
            n_step: 1,
            log_every: 1_000,
        }
    }
}

fn probability(field: &str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("{p} is not a probability in [0, 1]"),
        ))
    }
}

fn at_least_one(field: &str, v: u64) -> Result<()> {
    if v >= 1 {
        Ok(())
    } else {
        Err(Error::config(field, "must be at least 1"))
    }
}

fn at_most(field: &str, v: usize, most: usize) -> Result<()> {
    if v <= most {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("{v} is more than the most, {most}"),
        ))
    }
}

impl DqnConfig {
    /// Each of `lanes` env copies writes a ring of its own (see `replay`),
    /// and each ring must hold one whole transition with its stack.
    fn check_capacity(&self, lanes: usize) -> Result<()> {
        let needed = (self.n_step + self.replay.frame_stack + 1).saturating_mul(lanes);
        if self.replay.capacity >= needed {
            return Ok(());
        }
        let room = if lanes == 1 {
            "hold one".to_string()
        } else {
            format!("give each of {lanes} env copies (env.num_envs) room for one")
        };
        Err(Error::config(
            "replay.capacity",
            format!(
                "{} slots cannot {room} {}-step transition of {}-frame stacks; at least {needed}",
                self.replay.capacity, self.n_step, self.replay.frame_stack
            ),
        ))
    }

    /// Checks every field that does not depend on the environment.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(Error::config(
                "gamma",
                format!("{} is not a discount in [0, 1]", self.gamma),
            ));
        }
        probability("epsilon_start", self.epsilon_start)?;
        probability("epsilon_end", self.epsilon_end)?;
        at_least_one("batch_size", self.batch_size as u64)?;
        at_most("batch_size", self.batch_size, MAX_BATCH_SIZE)?;
        at_most("replay.capacity", self.replay.capacity, MAX_REPLAY_CAPACITY)?;
        at_most("n_step", self.n_step, MAX_N_STEP)?;
        if self.batch_size > self.replay.capacity {
            return Err(Error::config(
                "batch_size",
                format!(
                    "{} is larger than the replay buffer (replay.capacity {})",
                    self.batch_size, self.replay.capacity
                ),
            ));
        }
        at_least_one("n_step", self.n_step as u64)?;
        at_least_one("replay.frame_stack", self.replay.frame_stack as u64)?;
        self.check_capacity(1)?;
        at_least_one("train_frequency", self.train_frequency)?;
        self.init
            .validate()
            .map_err(|e| Error::config("init", e.to_string()))?;
        at_least_one("target_update_period", self.target_update_period)?;
        at_least_one("log_every", self.log_every)?;
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return Err(Error::config(
                "tau",
                format!("{} is not in (0, 1]", self.tau),
            ));
        }
        match self.loss {
            TdLoss::Huber { delta } if !(delta.is_finite() && delta > 0.0) => {
                return Err(Error::config(
                    "loss.huber.delta",
                    format!("{delta} is not finite and > 0"),
                ));
            }
            _ => {}
        }
        if let GradClip::GlobalNorm(max) = self.grad_clip
            && !(max.is_finite() && max > 0.0)
        {
            return Err(Error::config(
                "grad_clip.global_norm",
                format!("{max} is not finite and > 0"),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------

/// The DQN agent.
pub struct Dqn {
    config: DqnConfig,
    action_space: Space,
    actions: usize,
    /// Per-sample network input, e.g. `[4, 10, 10]`.
    input_shape: Vec<usize>,
    online: QNet,
    target_net: QNet,
    optimizer: Optimizer,
    update: DqnUpdate,
    replay: Replay,
    /// Exploration.
    rng: ChaCha8Rng,
    /// Replay sampling, a stream of its own so that acting and sampling
    /// never shift each other's draws.
    sample_rng: ChaCha8Rng,
    /// Env steps observed.
    steps: u64,
    /// Gradient updates made.
    updates: u64,
    window: Window,
    batch: Batch,
    act_input: ArrayD<f32>,
    /// When the current logging window began, and at which step.
    clock: (Instant, u64),
    scalars: Vec<(&'static str, f64)>,
}

/// Sums over the updates since the last report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Window {
    loss: f64,
    q: f64,
    updates: u64,
}

impl Dqn {
    /// Builds the agent for an environment; every config error names its field.
    pub fn new(config: DqnConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        config.validate()?;
        let Some(actions) = ctx.action_space.n() else {
            return Err(Error::Incompatible(format!(
                "dqn needs a Discrete action space; {} has {}",
                ctx.env_id, ctx.action_space
            )));
        };
        if actions > usize::from(u16::MAX) + 1 {
            return Err(Error::Incompatible(format!(
                "dqn handles at most 65,536 actions; {} has {actions}",
                ctx.env_id
            )));
        }
        let lanes = ctx.num_envs.max(1);
        config.check_capacity(lanes)?;
        let optimizer = config.optimizer.build().map_err(|e| match e {
            rl_layers::Error::InvalidConfig { field, reason, .. } => {
                Error::config(format!("optimizer.{field}"), reason)
            }
            other => Error::config("optimizer", other.to_string()),
        })?;
        let codec = ObsCodec::new(ctx.observation_space, config.replay.frame_stack)?;
        let input_shape = network_input(ctx.observation_space);
        let arch = match &config.network {
            NetworkSpec::Auto => default_architecture(&input_shape),
            NetworkSpec::Layers(arch) => arch.clone(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let online = QNet::build(
            &arch,
            &input_shape,
            actions,
            config.dueling,
            config.init,
            &mut rng,
        )?;
        // The target starts as the online net's copy: built, as that one
        // is, with fallible allocations (a clone would abort the server on
        // a network too large for memory, rather than fail the run), then
        // given its weights. The clone of the generator leaves the online
        // net's stream where it was.
        let mut target_net = QNet::build(
            &arch,
            &input_shape,
            actions,
            config.dueling,
            config.init,
            &mut rng.clone(),
        )?;
        target_net.copy_from(&online)?;
        let mut sample_rng = rng.clone();
        sample_rng.set_stream(1);
        Ok(Dqn {
            action_space: ctx.action_space.clone(),
            actions,
            target_net,
            online,
            optimizer,
            update: DqnUpdate::new(&config, actions),
            replay: Replay::with_lanes(codec, config.replay.capacity, lanes)?,
            rng,
            sample_rng,
            steps: 0,
            updates: 0,
            window: Window::default(),
            batch: Batch::new(config.batch_size, &input_shape)?,
            act_input: input_buffer(1, &input_shape),
            input_shape,
            clock: (Instant::now(), 0),
            scalars: Vec::with_capacity(8),
            config,
        })
    }

    /// The most bytes an agent built from `config` for `ctx` holds, without
    /// building it: the replay ring (`capacity` slots of one stored frame,
    /// action, reward and flags), the online and target networks (weights
    /// and gradients each), the optimiser's state (one or two buffers per
    /// parameter), each network's activation buffers at the batch size, and
    /// the batch. Config errors are those [`Dqn::new`] gives.
    pub fn memory_bytes(config: &DqnConfig, ctx: &EnvContext<'_>) -> Result<u64> {
        config.validate()?;
        let actions = ctx.action_space.n().unwrap_or(1).max(1);
        let codec = ObsCodec::new(ctx.observation_space, config.replay.frame_stack)?;
        let input_shape = network_input(ctx.observation_space);
        let arch = match &config.network {
            NetworkSpec::Auto => default_architecture(&input_shape),
            NetworkSpec::Layers(arch) => arch.clone(),
        };
        let plan = arch
            .plan(&input_shape, &[("actions", actions)])
            .map_err(crate::network::build_error)?;
        const F32: u64 = 4;
        let slot = codec.frame_bytes() as u64 + Replay::SLOT_OVERHEAD as u64;
        let replay = (config.replay.capacity as u64).saturating_mul(slot);
        // A dueling head adds a value head beside the advantage head: at
        // most doubling the last layer, counted as doubling the network.
        let parameters = plan.parameters as u64 * if config.dueling { 2 } else { 1 };
        let optimizer_buffers = config.optimizer.state_names().len() as u64;
        let networks = parameters * F32 * (2 + 2 + optimizer_buffers);
        let batch = config.batch_size as u64;
        let activations = batch
            .saturating_mul(plan.activation_scalars as u64)
            .saturating_mul(F32 * 2 * 2);
        let input: u64 = input_shape.iter().map(|&d| d as u64).product();
        let batch_buffers = batch.saturating_mul(input).saturating_mul(F32 * 2);
        Ok(replay
            .saturating_add(networks)
            .saturating_add(activations)
            .saturating_add(batch_buffers))
    }

    /// The replay buffer.
    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// The online network.
    pub fn online(&self) -> &QNet {
        &self.online
    }

    /// The target network.
    pub fn target_net(&self) -> &QNet {
        &self.target_net
    }

    /// Gradient updates made.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Env steps observed.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The per-sample network input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn diverged(&self, message: String) -> Error {
        Error::Diverged {
            step: self.steps,
            message,
        }
    }
}

// ---------------------------------------------------------------------------
// The update
// ---------------------------------------------------------------------------

/// One gradient step of DQN: the TD target, the loss on the actions taken,
/// backward, optional gradient clipping and the optimiser step, with the
/// buffers it reuses. The agent's updates and `rl-lab bench nets`
/// ([`crate::bench`]) both run [`DqnUpdate::step`], so the benchmark times
/// exactly the agent's update.
#[derive(Clone, Debug)]
pub struct DqnUpdate {
    loss: Loss,
    double_dqn: bool,
    grad_clip: GradClip,
    /// The targets `y`, `[N]`.
    targets: Array1<f32>,
    /// `∂L/∂Q`, `[N, A]`.
    dq: Array2<f32>,
    /// Double DQN's bootstrap actions `a*`, `[N]`.
    best: Vec<usize>,
}

/// What [`DqnUpdate::step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepOutcome {
    /// The optimiser moved the online network.
    Stepped {
        /// The loss on the batch.
        loss: f32,
        /// The mean of `Q(s, a; θ)` over the batch, before the step.
        q_mean: f64,
    },
    /// A value came out NaN or infinite, so the optimiser did not run.
    NotFinite {
        /// Which value: `"the loss"` or `"the gradient norm"`.
        what: &'static str,
        /// Its value.
        value: f32,
    },
}

impl DqnUpdate {
    /// The step `config` describes (its loss, `double_dqn` and
    /// `grad_clip`), for batches of `config.batch_size` and `actions`
    /// outputs.
    pub fn new(config: &DqnConfig, actions: usize) -> Self {
        let n = config.batch_size;
        DqnUpdate {
            loss: match config.loss {
                TdLoss::Huber { delta } => Loss::Huber { delta },
                TdLoss::Mse => Loss::MeanSquaredError,
            },
            double_dqn: config.double_dqn,
            grad_clip: config.grad_clip,
            targets: Array1::zeros(n),
            dq: Array2::zeros((n, actions)),
            best: vec![0; n],
        }
    }

    /// One gradient step of `online` on `batch`, bootstrapping from
    /// `target_net`. After the first call it makes no heap allocation.
    ///
    /// # Shapes
    /// `batch.obs`, `batch.next_obs`: `[N, …input]`; `batch.actions`,
    /// `batch.returns`, `batch.discounts`: `[N]`, with `N` the config's
    /// `batch_size`; both networks output `[N, A]`.
    pub fn step(
        &mut self,
        online: &mut QNet,
        target_net: &mut QNet,
        optimizer: &mut Optimizer,
        batch: &Batch,
    ) -> Result<StepOutcome> {
        let n = batch.len();
        if self.double_dqn {
            // a* = argmax_a' Q(s', a'; θ), the online network's choice
            let q_online = online.forward(batch.next_obs.view(), Mode::Eval)?;
            for i in 0..n {
                self.best[i] = QNet::argmax(q_online, i);
            }
        }
        {
            let q_next = target_net.forward(batch.next_obs.view(), Mode::Eval)?;
            for i in 0..n {
                let discount = batch.discounts[i];
                // Terminal states are worth 0, whatever the network says of them.
                let bootstrap = if discount == 0.0 {
                    0.0
                } else if self.double_dqn {
                    q_next[[i, self.best[i]]]
                } else {
                    q_next[[i, QNet::argmax(q_next, i)]]
                };
                // y = R + γⁿ · (1 − terminated) · max_a' Q(s', a'; θ⁻), where
                // R = Σ_{k<n} γᵏ r_{t+k} and discount = γⁿ (1 − terminated);
                // with Double DQN max_a' Q(s', a'; θ⁻) becomes Q(s', a*; θ⁻).
                self.targets[i] = batch.returns[i] + discount * bootstrap;
            }
        }
        let (loss, q_mean) = {
            let q = online.forward(batch.obs.view(), Mode::Train)?;
            let q_mean = (0..n)
                .map(|i| f64::from(q[[i, batch.actions[i]]]))
                .sum::<f64>()
                / n as f64;
            // L = (1/N) Σ_i ℓ(Q(s_i, a_i; θ) − y_i), ℓ Huber_δ or squared;
            // ∂L/∂Q is zero off the taken actions.
            let loss = self
                .loss
                .compute_selected(q, &batch.actions, self.targets.view(), self.dq.view_mut())
                .map_err(run_error)?;
            (loss, q_mean)
        };
        if !loss.is_finite() {
            return Ok(StepOutcome::NotFinite {
                what: "the loss",
                value: loss,
            });
        }
        online.backward(self.dq.view())?;
        if let GradClip::GlobalNorm(max) = self.grad_clip {
            // g ← g · max / ‖g‖ when ‖g‖ > max
            let norm = rl_layers::clip_grad_norm(online, max);
            if !norm.is_finite() {
                return Ok(StepOutcome::NotFinite {
                    what: "the gradient norm",
                    value: norm,
                });
            }
        }
        optimizer.step(online).map_err(run_error)?;
        Ok(StepOutcome::Stepped { loss, q_mean })
    }
}

impl Dqn {
    /// One gradient step on a sampled batch, then the target update.
    fn learn(&mut self) -> Result<()> {
        let gamma = self.config.gamma as f32;
        if !self.replay.sample(
            &mut self.sample_rng,
            &mut self.batch,
            self.config.n_step,
            gamma,
        ) {
            return Ok(());
        }
        let step = self.update.step(
            &mut self.online,
            &mut self.target_net,
            &mut self.optimizer,
            &self.batch,
        )?;
        let (loss, q_mean) = match step {
            StepOutcome::Stepped { loss, q_mean } => (loss, q_mean),
            StepOutcome::NotFinite { what, value } => {
                return Err(self.diverged(format!(
                    "{what} is {value} at gradient update {}",
                    self.updates + 1
                )));
            }
        };
        self.updates += 1;
        if self
            .updates
            .is_multiple_of(self.config.target_update_period)
        {
            if self.config.tau == 1.0 {
                // θ⁻ ← θ (Mnih et al.'s periodic copy)
                self.target_net.copy_from(&self.online)?;
            } else {
                // θ⁻ ← τ θ + (1 − τ) θ⁻
                self.target_net
                    .soft_update_from(&self.online, self.config.tau)?;
            }
        }
        self.window.loss += f64::from(loss);
        self.window.q += q_mean;
        self.window.updates += 1;
        if self.updates.is_multiple_of(self.config.log_every) {
            self.report()?;
        }
        Ok(())
    }

    /// Queues the window's metrics and checks the weights are finite.
    fn report(&mut self) -> Result<()> {
        if !self.online.all_finite() {
            return Err(self.diverged(format!(
                "a weight of the online network is not finite after gradient update {}",
                self.updates
            )));
        }
        let w = std::mem::take(&mut self.window);
        let updates = w.updates.max(1) as f64;
        let (began, from) = self.clock;
        let now = Instant::now();
        let seconds = now.duration_since(began).as_secs_f64().max(1e-9);
        self.scalars.push(("train/loss", w.loss / updates));
        self.scalars.push(("train/q_mean", w.q / updates));
        self.scalars
            .push(("train/epsilon", self.epsilon_at(self.steps)));
        self.scalars.push((
            "time/steps_per_second",
            (self.steps - from) as f64 / seconds,
        ));
        self.clock = (now, self.steps);
        Ok(())
    }

    // -----------------------------------------------------------------------
    // The act step
    // -----------------------------------------------------------------------

    /// ε after `steps` env steps: 1 (uniformly random actions) before
    /// `learning_starts`, then linear from `epsilon_start` to `epsilon_end`
    /// over `epsilon_decay_steps`, then `epsilon_end`.
    pub fn epsilon_at(&self, steps: u64) -> f64 {
        let c = &self.config;
        if steps < c.learning_starts {
            return 1.0;
        }
        let fraction = if c.epsilon_decay_steps == 0 {
            1.0
        } else {
            ((steps - c.learning_starts) as f64 / c.epsilon_decay_steps as f64).min(1.0)
        };
        c.epsilon_start + fraction * (c.epsilon_end - c.epsilon_start)
    }

    /// `Q(s, ·; θ)` of the online network, for inspection and tests.
    pub fn q_values(&mut self, obs: &Observation) -> Result<Vec<f32>> {
        Ok(self.q_row(obs)?.row(0).to_vec())
    }

    /// The greedy action's index: `argmax_a Q(s, a; θ)`, first among ties.
    fn greedy(&mut self, obs: &Observation) -> Result<usize> {
        let q = self.q_row(obs)?;
        Ok(QNet::argmax(q, 0))
    }

    /// Q(obs, ·; θ) of the online network, as a `[1, actions]` row.
    fn q_row(&mut self, obs: &Observation) -> Result<ndarray::ArrayView2<'_, f32>> {
        self.replay.codec().input(
            obs,
            self.act_input
                .as_slice_mut()
                .expect("the input buffer is contiguous"),
        )?;
        self.online.forward(self.act_input.view(), Mode::Eval)
    }

    fn action(&self, index: usize) -> Action {
        let start = match self.action_space {
            Space::Discrete { start, .. } => start,
            _ => 0,
        };
        Action::Discrete(start + index as i64)
    }
}

impl Agent for Dqn {
    fn act(&mut self, _lane: usize, obs: &Observation) -> Result<Action> {
        let epsilon = self.epsilon_at(self.steps);
        // ε-greedy: a uniformly random action with probability ε (always
        // before learning starts), else argmax_a Q(s, a; θ).
        let explore =
            self.steps < self.config.learning_starts || self.rng.random::<f64>() < epsilon;
        let index = if explore {
            self.rng.random_range(0..self.actions)
        } else {
            self.greedy(obs)?
        };
        Ok(self.action(index))
    }

    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let action = rl_env::discrete_action(&self.action_space, t.action)?;
        self.replay.push_to(
            t.lane,
            &Step {
                obs: t.obs,
                action,
                reward: t.reward,
                next_obs: t.next_obs,
                terminated: t.terminated,
                truncated: t.truncated,
            },
        )?;
        self.steps += 1;
        if self.steps == 1 {
            self.scalars.push((
                "replay/bytes_per_transition",
                self.replay.bytes_per_transition() as f64,
            ));
        }
        if self.replay.pushed() > self.config.learning_starts
            && self.steps.is_multiple_of(self.config.train_frequency)
        {
            self.learn()?;
        }
        Ok(())
    }

    fn begin_episode(&mut self, lane: usize) {
        self.replay.begin_episode(lane);
    }

    fn epsilon(&self) -> Option<f64> {
        Some(self.epsilon_at(self.steps))
    }

    fn take_scalars(&mut self, out: &mut Vec<(&'static str, f64)>) {
        out.append(&mut self.scalars);
    }
}

impl Policy for Dqn {
    fn act_greedy(&mut self, obs: &Observation) -> Result<Action> {
        let index = self.greedy(obs)?;
        Ok(self.action(index))
    }

    fn action_values(&mut self, obs: &Observation) -> Result<Option<Vec<f64>>> {
        let q = self.q_row(obs)?;
        Ok(Some(q.row(0).iter().map(|&v| f64::from(v)).collect()))
    }

    fn save(&self) -> Result<Value> {
        let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
        let state = DqnState {
            format: FORMAT.into(),
            steps: self.steps,
            updates: self.updates,
            rng: self.rng.clone(),
            sample_rng: self.sample_rng.clone(),
            online: b64(self.online.to_safetensors()?),
            target: b64(self.target_net.to_safetensors()?),
            optimizer: b64(self
                .optimizer
                .state_to_safetensors()
                .map_err(|e| Error::State(format!("optimiser state: {e}")))?),
            window: self.window,
            replay: if self.config.replay.checkpoint {
                Some(self.replay.save()?)
            } else {
                None
            },
        };
        serde_json::to_value(state).map_err(|e| Error::State(e.to_string()))
    }

    fn load(&mut self, state: &Value) -> Result<()> {
        let state: DqnState = serde_json::from_value(state.clone())
            .map_err(|e| Error::State(format!("not a DQN checkpoint: {e}")))?;
        if state.format != FORMAT {
            return Err(Error::State(format!(
                "checkpoint format {}, this build reads {FORMAT}",
                state.format
            )));
        }
        let bytes = |field: &str, text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| Error::State(format!("{field}: not base64: {e}")))
        };
        self.online
            .load_safetensors(&bytes("online", &state.online)?)?;
        self.target_net
            .load_safetensors(&bytes("target", &state.target)?)?;
        self.optimizer
            .load_state_safetensors(&bytes("optimizer", &state.optimizer)?)
            .map_err(|e| Error::State(format!("optimiser state: {e}")))?;
        match &state.replay {
            Some(replay) => self.replay.load(replay)?,
            // Without the buffer, learning waits until it holds
            // `learning_starts` transitions again.
            None => self.replay.clear(),
        }
        self.steps = state.steps;
        self.updates = state.updates;
        self.rng = state.rng;
        self.sample_rng = state.sample_rng;
        self.window = state.window;
        self.clock = (Instant::now(), self.steps);
        self.scalars.clear();
        Ok(())
    }
}

const FORMAT: &str = "rl-dqn/1";

/// What [`Dqn::save`] writes: the weights and the optimiser state as
/// safetensors (base64), the random streams, the counters and, optionally,
/// the compressed replay buffer.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DqnState {
    format: String,
    steps: u64,
    updates: u64,
    rng: ChaCha8Rng,
    sample_rng: ChaCha8Rng,
    /// The online network, safetensors, base64.
    online: String,
    /// The target network, safetensors, base64.
    target: String,
    /// The optimiser's state, safetensors (step count in the metadata), base64.
    optimizer: String,
    window: Window,
    replay: Option<ReplayState>,
}
