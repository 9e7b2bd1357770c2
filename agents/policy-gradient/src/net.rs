//! The actor-critic network: a torso shared by a policy head (one logit
//! per action) and a value head (one state value), built from the layer
//! crate's [`SharedTorso`].
//!
//! Default layers, chosen from the network's input shape:
//!
//! | input | torso | policy head | value head | source |
//! |---|---|---|---|---|
//! | `[C, H, W]` with `H, W ≥ 36` (pixels) | Conv 32 8×8/4, Conv 64 4×4/2, Conv 64 3×3/1, Affine 512 | Affine actions | Affine 1 | Mnih et al. 2016; CleanRL's `ppo_atari.py` |
//! | other `[C, H, W]` with `H, W ≥ 3` (MinAtar) | Conv 16 3×3/1, Affine 128 | Affine actions | Affine 1 | MinAtar's `examples/AC_lambda.py` |
//! | anything else (vectors, one-hot) | none | Affine 64, Tanh, Affine 64, Tanh, Affine actions | the same to 1 | CleanRL's `ppo.py` |
//!
//! ReLU after every torso layer. Weights start orthogonal, as CleanRL's
//! `layer_init` starts them: gain √2, except the policy's last layer (0.01,
//! so that the first policy is near uniform) and the value's last layer
//! (1); biases start at 0.

use ndarray::{ArrayD, ArrayView2, Axis, Ix2, IxDyn, Slice};
use rand::Rng;
use rl_agent::encode::{ObsCodec, network_input};
use rl_agent::{Error, Result};
use rl_env::{Observation, Space};
use rl_layers::{Architecture, Init, LayerSpec, Mode, Parameters, SharedTorso, Size};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The network's layers in a config; each part absent takes its default
/// (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Layers shared by both heads; `[]` for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torso: Option<Architecture>,
    /// Layers from the torso's output to the logits; must end in
    /// `{"affine": "actions"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_head: Option<Architecture>,
    /// Layers from the torso's output to the value; must end in
    /// `{"affine": 1}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_head: Option<Architecture>,
}

/// Index of the policy head in the [`SharedTorso`].
const POLICY: usize = 0;
/// Index of the value head.
const VALUE: usize = 1;

/// The network's layers for a per-sample input shape, `config`'s where it
/// gives them.
fn layers(config: &NetworkConfig, input: &[usize]) -> (Architecture, Architecture, Architecture) {
    let conv = |out, kernel, stride| LayerSpec::Conv {
        out: Size::Fixed(out),
        kernel,
        stride,
        padding: 0,
    };
    let affine = |n: usize| LayerSpec::Affine(Size::Fixed(n));
    let actions = || LayerSpec::Affine(Size::Named("actions".into()));
    let (torso, policy, value) = match *input {
        [_, h, w] if h >= 36 && w >= 36 => (
            vec![
                conv(32, 8, 4),
                LayerSpec::Relu,
                conv(64, 4, 2),
                LayerSpec::Relu,
                conv(64, 3, 1),
                LayerSpec::Relu,
                LayerSpec::Flatten,
                affine(512),
                LayerSpec::Relu,
            ],
            vec![actions()],
            vec![affine(1)],
        ),
        [_, h, w] if h >= 3 && w >= 3 => (
            vec![
                conv(16, 3, 1),
                LayerSpec::Relu,
                LayerSpec::Flatten,
                affine(128),
                LayerSpec::Relu,
            ],
            vec![actions()],
            vec![affine(1)],
        ),
        _ => {
            let mlp = |last| {
                vec![
                    affine(64),
                    LayerSpec::Tanh,
                    affine(64),
                    LayerSpec::Tanh,
                    last,
                ]
            };
            (vec![LayerSpec::Flatten], mlp(actions()), mlp(affine(1)))
        }
    };
    (
        config.torso.clone().unwrap_or(Architecture(torso)),
        config.policy_head.clone().unwrap_or(Architecture(policy)),
        config.value_head.clone().unwrap_or(Architecture(value)),
    )
}

/// A layer-crate error met while building, as a config error on
/// `network.<part>`.
fn build_error(part: &str, e: rl_layers::Error) -> Error {
    match e {
        rl_layers::Error::InvalidLayer {
            index,
            layer,
            field,
            reason,
        } => Error::config(
            format!("network.{part}[{index}].{field}"),
            format!("{layer}: {reason}"),
        ),
        rl_layers::Error::OutOfMemory { what, bytes } => Error::OutOfMemory {
            what: format!("the network's {what}"),
            bytes: bytes as u64,
        },
        other => Error::config(format!("network.{part}"), other.to_string()),
    }
}

/// What the network for `observation_space` and `actions` actions will
/// hold, planned without building it: its parameters, and the scalars one
/// sample's forward pass keeps. Errors are those building would give.
pub fn plan(
    config: &NetworkConfig,
    observation_space: &Space,
    actions: usize,
) -> Result<(u64, u64)> {
    let input = network_input(observation_space);
    let (torso, policy, value) = layers(config, &input);
    let sizes = [("actions", actions)];
    let torso = torso
        .plan(&input, &sizes)
        .map_err(|e| build_error("torso", e))?;
    let mut parameters = torso.parameters as u64;
    let mut activations = torso.activation_scalars as u64;
    for (arch, part) in [(policy, "policy_head"), (value, "value_head")] {
        let head = arch
            .plan(&torso.output_shape, &sizes)
            .map_err(|e| build_error(part, e))?;
        parameters += head.parameters as u64;
        activations += head.activation_scalars as u64;
    }
    Ok((parameters, activations))
}

/// Bytes an on-policy agent with this network holds at most, planned
/// without building anything: a rollout of `num_steps` per env copy and
/// the network input of a whole rollout (an update's minibatch is at most
/// that), the network's weights, gradients and `optimizer_buffers` more
/// copies (Adam's two moments: 2), and a forward pass's activations and
/// their gradients for a rollout's rows.
pub fn memory_bytes(
    network: &NetworkConfig,
    ctx: &rl_agent::EnvContext<'_>,
    num_steps: usize,
    optimizer_buffers: u64,
) -> Result<u64> {
    const F32: u64 = 4;
    let num_envs = ctx.num_envs.max(1);
    let actions = ctx.action_space.n().unwrap_or(1);
    let (parameters, activations) = plan(network, ctx.observation_space, actions)?;
    let codec = ObsCodec::new(ctx.observation_space, 1)?;
    let rows = num_steps.saturating_mul(num_envs).saturating_add(num_envs) as u64;
    let input = codec.input_len() as u64;
    // Per row: its action, log-probability, value, reward, flags,
    // advantage and return.
    let per_row = 8 + 4 * 5 + 8;
    let rollout = rows.saturating_mul(input * F32 * 2 + per_row);
    let network = parameters.saturating_mul(F32 * (2 + optimizer_buffers));
    let forward = rows.saturating_mul(activations).saturating_mul(F32 * 2);
    Ok(rollout.saturating_add(network).saturating_add(forward))
}

/// A layer-crate error met while running: the network and its inputs disagree.
pub(crate) fn run_error(e: rl_layers::Error) -> Error {
    Error::Incompatible(format!("actor-critic network: {e}"))
}

/// The policy and value of a batch of observations.
///
/// Inputs are written row by row into a buffer the network keeps
/// ([`ActorCritic::set_input`]), then one call runs the rows written.
#[derive(Clone, Debug)]
pub struct ActorCritic {
    net: SharedTorso,
    codec: ObsCodec,
    /// `[rows, …input]`, grown to the largest batch asked for.
    input: ArrayD<f32>,
    input_shape: Vec<usize>,
    actions: usize,
}

impl ActorCritic {
    /// Builds the network for `observation_space` and `actions` actions,
    /// with CleanRL's orthogonal weights (see the module docs).
    pub fn build<R: Rng + ?Sized>(
        config: &NetworkConfig,
        observation_space: &Space,
        actions: usize,
        rng: &mut R,
    ) -> Result<Self> {
        Self::build_with(config, observation_space, actions, None, rng)
    }

    /// [`ActorCritic::build`], or with every layer drawn from `init` when
    /// given (no rescaled last layers): MinAtar's AC(λ) keeps PyTorch's
    /// default initialisation.
    pub fn build_with<R: Rng + ?Sized>(
        config: &NetworkConfig,
        observation_space: &Space,
        actions: usize,
        init: Option<Init>,
        rng: &mut R,
    ) -> Result<Self> {
        let codec = ObsCodec::new(observation_space, 1)?;
        let input_shape = network_input(observation_space);
        let (torso, policy, value) = layers(config, &input_shape);
        let hidden = init.unwrap_or(Init::Orthogonal {
            gain: std::f32::consts::SQRT_2,
        });
        let sizes = [("actions", actions)];
        let torso = torso
            .build(&input_shape, &sizes, hidden, rng)
            .map_err(|e| build_error("torso", e))?;
        let features = torso.output_shape().to_vec();
        let mut head = |arch: Architecture, part: &str, outputs: usize, gain: f32| {
            let mut head = arch
                .build(&features, &sizes, hidden, rng)
                .map_err(|e| build_error(part, e))?;
            if head.output_shape() != [outputs] {
                return Err(Error::config(
                    format!("network.{part}"),
                    format!(
                        "must end in {outputs} output(s), not {:?}",
                        head.output_shape()
                    ),
                ));
            }
            // W = g·Q: the last layer's orthogonal draw, rescaled from √2
            // to its own gain.
            let last = head.layers().len() - 1;
            if init.is_none() {
                head.for_each_named_param_mut(&mut |name, param| {
                    if name.layer == last && name.name == "weight" {
                        param
                            .value
                            .mapv_inplace(|w| w * gain / std::f32::consts::SQRT_2);
                    }
                });
            }
            Ok(head)
        };
        let policy = head(policy, "policy_head", actions, 0.01)?;
        let value = head(value, "value_head", 1, 1.0)?;
        let net = SharedTorso::new(
            torso,
            vec![("policy".into(), policy), ("value".into(), value)],
        )
        .map_err(|e| build_error("torso", e))?;
        let mut input_dims = vec![0];
        input_dims.extend_from_slice(&input_shape);
        Ok(ActorCritic {
            net,
            codec,
            input: ArrayD::zeros(IxDyn(&input_dims)),
            input_shape,
            actions,
        })
    }

    /// Number of actions (the policy head's width).
    pub fn actions(&self) -> usize {
        self.actions
    }

    /// Values in one encoded observation.
    pub fn input_len(&self) -> usize {
        self.codec.input_len()
    }

    /// Makes room for `rows` rows of input.
    pub fn reserve(&mut self, rows: usize) {
        if self.input.shape()[0] < rows {
            let mut dims = vec![rows];
            dims.extend_from_slice(&self.input_shape);
            self.input = ArrayD::zeros(IxDyn(&dims));
        }
    }

    /// Encodes `obs` into `out` (one row of [`ActorCritic::input_len`]).
    pub fn encode(&self, obs: &Observation, out: &mut [f32]) -> Result<()> {
        self.codec.input(obs, out)
    }

    /// Encodes `obs` straight into input row `row`.
    pub fn encode_row(&mut self, row: usize, obs: &Observation) -> Result<()> {
        let len = self.codec.input_len();
        let all = self
            .input
            .as_slice_mut()
            .expect("the input buffer is contiguous");
        self.codec.input(obs, &mut all[row * len..(row + 1) * len])
    }

    /// Row `row` of the input buffer, to write an encoded observation into.
    pub fn input_row(&mut self, row: usize) -> &mut [f32] {
        let len = self.codec.input_len();
        let all = self
            .input
            .as_slice_mut()
            .expect("the input buffer is contiguous");
        &mut all[row * len..(row + 1) * len]
    }

    /// Runs the torso and both heads on the first `rows` input rows.
    /// Read the results with [`ActorCritic::logits`] and
    /// [`ActorCritic::values`].
    pub fn forward(&mut self, rows: usize, mode: Mode) -> Result<()> {
        let input = self.input.slice_axis(Axis(0), Slice::from(..rows));
        self.net.forward(input, mode).map_err(run_error)
    }

    /// Runs the torso and the value head only, on the first `rows` rows,
    /// and writes `V(s)` per row into `values`.
    pub fn value_only(&mut self, rows: usize, values: &mut Vec<f32>) -> Result<()> {
        let input = self.input.slice_axis(Axis(0), Slice::from(..rows));
        let out = self
            .net
            .forward_head(input, VALUE, Mode::Eval)
            .map_err(run_error)?;
        values.clear();
        values.extend(out.iter().copied());
        Ok(())
    }

    /// The policy head's latest output, `[rows, actions]`.
    pub fn logits(&self) -> Result<ArrayView2<'_, f32>> {
        self.output(POLICY)
    }

    /// The value head's latest output, `[rows, 1]`.
    pub fn values(&self) -> Result<ArrayView2<'_, f32>> {
        self.output(VALUE)
    }

    fn output(&self, head: usize) -> Result<ArrayView2<'_, f32>> {
        self.net
            .output(head)
            .ok_or_else(|| Error::Incompatible("the network has not run".into()))?
            .into_dimensionality::<Ix2>()
            .map_err(|e| Error::Incompatible(format!("actor-critic output: {e}")))
    }

    /// Backpropagates the gradients of the loss with respect to the logits
    /// and the values of the latest train-mode forward.
    pub fn backward(
        &mut self,
        d_logits: ArrayView2<'_, f32>,
        d_values: ArrayView2<'_, f32>,
    ) -> Result<()> {
        self.net
            .backward(&[d_logits.into_dyn(), d_values.into_dyn()])
            .map_err(run_error)
    }

    /// Rescales the gradients to a global L2 norm of at most `max_norm`;
    /// returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> f32 {
        self.net.clip_grad_norm(max_norm)
    }

    /// Parameters, for the optimiser.
    pub fn params(&mut self) -> &mut SharedTorso {
        &mut self.net
    }

    /// Whether every weight is finite.
    pub fn all_finite(&self) -> bool {
        let mut finite = true;
        self.net
            .visit_params(&mut |p| finite &= p.value.iter().all(|v| v.is_finite()));
        finite
    }

    /// The weights as safetensors.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        self.net.to_safetensors().map_err(run_error)
    }

    /// Loads weights written by [`ActorCritic::to_safetensors`].
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        self.net
            .load_safetensors_bytes(bytes)
            .map_err(|e| Error::State(format!("network weights: {e}")))
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        let mut count = 0;
        self.net.visit_params(&mut |p| count += p.value.len());
        count
    }
}
