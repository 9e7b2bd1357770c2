//! The Q-network: a [`Sequential`] from the layer crate, described by an
//! [`Architecture`] in the agent's config, optionally ending in a dueling
//! head (Wang et al. 2016).
//!
//! Default architectures, chosen from the network's input shape:
//!
//! | input | network | source |
//! |---|---|---|
//! | `[C, H, W]` with `H, W ≥ 36` (e.g. `[4, 84, 84]` pixel stacks) | Conv 32 8×8/4, Conv 64 4×4/2, Conv 64 3×3/1, Affine 512, Affine actions | Mnih et al. 2015 |
//! | other `[C, H, W]` with `H, W ≥ 3` (e.g. MinAtar's `[C, 10, 10]`) | Conv 16 3×3/1, Affine 128, Affine actions | Young & Tian 2019, MinAtar's `examples/dqn.py` |
//! | anything else (vectors, one-hot, stacked vectors) | Affine 64, Affine 64, Affine actions | the issue's MLP |
//!
//! ReLU between layers throughout. Sizes are never written by hand: the
//! layer crate infers each layer's input from the one before.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, Ix2, IxDyn, Slice};
use rand::Rng;
use rl_agent::{Error, Result};
use rl_layers::{Architecture, Init, LayerSpec, Mode, Param, Parameters, Sequential, Size};

/// The MinAtar network (Young & Tian 2019, `examples/dqn.py`): Conv 16 3×3/1,
/// ReLU, Affine 128, ReLU, Affine `"actions"`.
pub fn minatar_architecture() -> Architecture {
    Architecture(vec![
        conv(16, 3, 1),
        LayerSpec::Relu,
        LayerSpec::Flatten,
        LayerSpec::Affine(Size::Fixed(128)),
        LayerSpec::Relu,
        LayerSpec::Affine(Size::Named("actions".into())),
    ])
}

/// The Nature network (Mnih et al. 2015): Conv 32 8×8/4, Conv 64 4×4/2,
/// Conv 64 3×3/1, Affine 512, Affine `"actions"`, ReLUs between.
pub fn nature_architecture() -> Architecture {
    Architecture(vec![
        conv(32, 8, 4),
        LayerSpec::Relu,
        conv(64, 4, 2),
        LayerSpec::Relu,
        conv(64, 3, 1),
        LayerSpec::Relu,
        LayerSpec::Flatten,
        LayerSpec::Affine(Size::Fixed(512)),
        LayerSpec::Relu,
        LayerSpec::Affine(Size::Named("actions".into())),
    ])
}

/// An unpadded convolution to `out` channels.
fn conv(out: usize, kernel: usize, stride: usize) -> LayerSpec {
    LayerSpec::Conv {
        out: Size::Fixed(out),
        kernel,
        stride,
        padding: 0,
    }
}

/// The MLP default: flatten, Affine 64, ReLU, Affine 64, ReLU, Affine `"actions"`.
pub fn mlp_architecture() -> Architecture {
    Architecture(vec![
        LayerSpec::Flatten,
        LayerSpec::Affine(Size::Fixed(64)),
        LayerSpec::Relu,
        LayerSpec::Affine(Size::Fixed(64)),
        LayerSpec::Relu,
        LayerSpec::Affine(Size::Named("actions".into())),
    ])
}

/// The default network for a per-sample input shape (see the module docs).
pub fn default_architecture(input: &[usize]) -> Architecture {
    match *input {
        [_, h, w] if h >= 36 && w >= 36 => nature_architecture(),
        [_, h, w] if h >= 3 && w >= 3 => minatar_architecture(),
        _ => mlp_architecture(),
    }
}

/// A layer-crate error met while building, as a config error on `network`.
pub(crate) fn build_error(e: rl_layers::Error) -> Error {
    match e {
        rl_layers::Error::InvalidLayer {
            index,
            layer,
            field,
            reason,
        } => Error::config(
            format!("network[{index}].{field}"),
            format!("{layer}: {reason}"),
        ),
        rl_layers::Error::OutOfMemory { what, bytes } => Error::OutOfMemory {
            what: format!("the Q-network's {what}"),
            bytes: bytes as u64,
        },
        other => Error::config("network", other.to_string()),
    }
}

/// A layer-crate error met while running: the network and its inputs disagree.
pub(crate) fn run_error(e: rl_layers::Error) -> Error {
    Error::Incompatible(format!("Q-network: {e}"))
}

/// `Q(s, ·)`: the body alone, or the body with a dueling head.
///
/// ```
/// use rand::SeedableRng;
/// use rl_dqn::network::{QNet, default_architecture};
/// use rl_layers::{Init, Mode};
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let arch = default_architecture(&[4, 10, 10]); // MinAtar's network
/// let mut net = QNet::build(&arch, &[4, 10, 10], 6, true, Init::TorchDefault, &mut rng).unwrap();
/// let x = ndarray::ArrayD::zeros(ndarray::IxDyn(&[2, 4, 10, 10]));
/// assert_eq!(net.forward(x.view(), Mode::Eval).unwrap().dim(), (2, 6));
/// ```
#[derive(Clone, Debug)]
pub struct QNet {
    body: Sequential,
    dueling: Option<Dueling>,
    actions: usize,
}

/// `Q(s, a) = V(s) + A(s, a) − mean_a' A(s, a')` over the body's features.
#[derive(Clone, Debug)]
struct Dueling {
    value: Sequential,
    advantage: Sequential,
    /// Q, for up to the largest batch seen.
    q: Array2<f32>,
    dv: Array2<f32>,
    da: Array2<f32>,
    dh: Array2<f32>,
}

impl QNet {
    /// Builds the network for per-sample input `input` and `actions` outputs.
    ///
    /// The architecture must end in `actions` outputs. With `dueling`, its
    /// last layer (an `affine` to the actions) is replaced by two heads on
    /// the features before it: an Affine to 1 (V) and an Affine to the
    /// actions (A). Errors name `network` or `network[i].field`.
    pub fn build<R: Rng + ?Sized>(
        arch: &Architecture,
        input: &[usize],
        actions: usize,
        dueling: bool,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let sizes = [("actions", actions)];
        if !dueling {
            let body = arch.build(input, &sizes, init, rng).map_err(build_error)?;
            check_output(&body, actions)?;
            return Ok(QNet {
                body,
                dueling: None,
                actions,
            });
        }
        let Some((LayerSpec::Affine(_), layers)) = arch.0.split_last() else {
            return Err(Error::config(
                "dueling",
                "the dueling head replaces the network's last layer, which must be an affine layer to the actions",
            ));
        };
        let body = Architecture(layers.to_vec())
            .build(input, &sizes, init, rng)
            .map_err(build_error)?;
        let [features] = *body.output_shape() else {
            return Err(Error::config(
                "network",
                format!(
                    "with dueling, the layers before the last must output flat features, not {:?}",
                    body.output_shape()
                ),
            ));
        };
        let head = |out: usize, rng: &mut R| {
            Architecture(vec![LayerSpec::Affine(Size::Fixed(out))])
                .build(&[features], &[], init, rng)
                .map_err(build_error)
        };
        let value = head(1, rng)?;
        let advantage = head(actions, rng)?;
        Ok(QNet {
            body,
            dueling: Some(Dueling {
                value,
                advantage,
                q: Array2::zeros((0, actions)),
                dv: Array2::zeros((0, 1)),
                da: Array2::zeros((0, actions)),
                dh: Array2::zeros((0, features)),
            }),
            actions,
        })
    }

    /// Number of actions.
    pub fn actions(&self) -> usize {
        self.actions
    }

    /// Total number of parameters.
    pub fn param_count(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |p| n += p.value.len());
        n
    }

    /// Runs the network forward.
    ///
    /// # Shapes
    /// `x: [N, …input]` → `[N, actions]`.
    pub fn forward(&mut self, x: ArrayViewD<'_, f32>, mode: Mode) -> Result<ArrayView2<'_, f32>> {
        let n = x.shape()[0];
        let Some(d) = &mut self.dueling else {
            return self
                .body
                .forward(x, mode)
                .map_err(run_error)?
                .into_dimensionality::<Ix2>()
                .map_err(|e| Error::Incompatible(format!("Q-network output: {e}")));
        };
        let Dueling {
            value,
            advantage,
            q,
            ..
        } = d;
        let h = self.body.forward(x, mode).map_err(run_error)?;
        let v = value.forward(h.view(), mode).map_err(run_error)?;
        let a = advantage.forward(h.view(), mode).map_err(run_error)?;
        if q.nrows() < n {
            *q = Array2::zeros((n, self.actions));
        }
        let inv = 1.0 / self.actions as f32;
        for i in 0..n {
            let mean: f32 = (0..self.actions).map(|j| a[[i, j]]).sum::<f32>() * inv;
            for j in 0..self.actions {
                // Q(s, a) = V(s) + A(s, a) − mean_a' A(s, a')
                q[[i, j]] = v[[i, 0]] + a[[i, j]] - mean;
            }
        }
        Ok(rows(q, n))
    }

    /// Backpropagates `dq = ∂L/∂Q` of the latest train-mode forward and
    /// stores every parameter gradient.
    ///
    /// # Shapes
    /// `dq: [N, actions]`.
    pub fn backward(&mut self, dq: ArrayView2<'_, f32>) -> Result<()> {
        let Some(d) = &mut self.dueling else {
            return self.body.backward(dq.into_dyn()).map_err(run_error);
        };
        let n = dq.nrows();
        if d.dv.nrows() < n {
            d.dv = Array2::zeros((n, 1));
            d.da = Array2::zeros((n, self.actions));
            d.dh = Array2::zeros((n, d.dh.ncols()));
        }
        let inv = 1.0 / self.actions as f32;
        for i in 0..n {
            let total: f32 = dq.row(i).sum();
            // ∂L/∂V = Σ_a ∂L/∂Q(a);  ∂L/∂A(a) = ∂L/∂Q(a) − mean_a' ∂L/∂Q(a')
            d.dv[[i, 0]] = total;
            for j in 0..self.actions {
                d.da[[i, j]] = dq[[i, j]] - total * inv;
            }
        }
        let dh_value = d
            .value
            .backward_input(rows(&d.dv, n).into_dyn())
            .map_err(run_error)?;
        rows_mut(&mut d.dh, n).assign(
            &dh_value
                .into_dimensionality::<Ix2>()
                .map_err(|e| Error::Incompatible(format!("dueling head gradient: {e}")))?,
        );
        let dh_advantage = d
            .advantage
            .backward_input(rows(&d.da, n).into_dyn())
            .map_err(run_error)?;
        let dh_advantage = dh_advantage
            .into_dimensionality::<Ix2>()
            .map_err(|e| Error::Incompatible(format!("dueling head gradient: {e}")))?;
        let mut dh = rows_mut(&mut d.dh, n);
        dh += &dh_advantage;
        self.body
            .backward(rows(&d.dh, n).into_dyn())
            .map_err(run_error)
    }

    /// The parameters as named tensors: PyTorch's `nn.Sequential` names
    /// (`"0.weight"`, …) for a plain network; `body.…`, `value.…` and
    /// `advantage.…` with a dueling head.
    pub fn named_params(&self) -> Vec<(String, ArrayD<f32>)> {
        match &self.dueling {
            None => self.body.named_params(),
            Some(d) => {
                let prefixed = |prefix: &str, net: &Sequential| {
                    net.named_params()
                        .into_iter()
                        .map(move |(name, t)| (format!("{prefix}.{name}"), t))
                        .collect::<Vec<_>>()
                };
                let mut out = prefixed("body", &self.body);
                out.extend(prefixed("value", &d.value));
                out.extend(prefixed("advantage", &d.advantage));
                out
            }
        }
    }

    /// Sets every parameter from [`QNet::named_params`]-style tensors.
    pub fn set_named_params(&mut self, tensors: Vec<(String, ArrayD<f32>)>) -> Result<()> {
        let fail = |e: rl_layers::Error| Error::State(format!("Q-network weights: {e}"));
        match &mut self.dueling {
            None => self.body.set_named_params(tensors).map_err(fail),
            Some(d) => {
                let mut parts: [Vec<(String, ArrayD<f32>)>; 3] = Default::default();
                for (name, t) in tensors {
                    let (prefix, rest) = name.split_once('.').unwrap_or(("", ""));
                    let i = match prefix {
                        "body" => 0,
                        "value" => 1,
                        "advantage" => 2,
                        _ => {
                            return Err(Error::State(format!(
                                "Q-network weights: unexpected tensor {name}"
                            )));
                        }
                    };
                    parts[i].push((rest.to_string(), t));
                }
                let [body, value, advantage] = parts;
                self.body.set_named_params(body).map_err(fail)?;
                d.value.set_named_params(value).map_err(fail)?;
                d.advantage.set_named_params(advantage).map_err(fail)
            }
        }
    }

    /// The weights as a safetensors buffer.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        rl_layers::io::tensors_to_bytes(&self.named_params(), None)
            .map_err(|e| Error::State(format!("writing Q-network weights: {e}")))
    }

    /// Loads weights from a safetensors buffer (names and shapes must match).
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        let (tensors, _) = rl_layers::io::tensors_from_bytes(bytes)
            .map_err(|e| Error::State(format!("reading Q-network weights: {e}")))?;
        self.set_named_params(tensors)
    }

    /// Applies `f` to each (own, other's) network pair.
    fn zip_with(
        &mut self,
        other: &QNet,
        mut f: impl FnMut(&mut Sequential, &Sequential) -> rl_layers::Result<()>,
    ) -> Result<()> {
        f(&mut self.body, &other.body).map_err(run_error)?;
        match (&mut self.dueling, &other.dueling) {
            (Some(a), Some(b)) => {
                f(&mut a.value, &b.value).map_err(run_error)?;
                f(&mut a.advantage, &b.advantage).map_err(run_error)
            }
            (None, None) => Ok(()),
            _ => Err(Error::Incompatible(
                "one network has a dueling head and the other not".into(),
            )),
        }
    }

    /// Hard update: `θ⁻ ← θ`.
    pub fn copy_from(&mut self, other: &QNet) -> Result<()> {
        self.zip_with(other, |dst, src| dst.copy_from(src))
    }

    /// Soft (Polyak) update: `θ⁻ ← τ θ + (1 − τ) θ⁻`.
    pub fn soft_update_from(&mut self, other: &QNet, tau: f32) -> Result<()> {
        self.zip_with(other, |dst, src| dst.soft_update_from(src, tau))
    }

    /// Whether every parameter is finite.
    pub fn all_finite(&self) -> bool {
        let mut finite = true;
        self.visit_params(&mut |p| finite &= p.value.iter().all(|v| v.is_finite()));
        finite
    }

    /// The index of the largest of `q`'s row `i`, the first among ties (as
    /// `torch.argmax`). NaNs are never chosen over numbers.
    pub fn argmax(q: ArrayView2<'_, f32>, i: usize) -> usize {
        let row = q.index_axis(Axis(0), i);
        let mut best = 0;
        for (j, &v) in row.iter().enumerate() {
            if v > row[best] || row[best].is_nan() {
                best = j;
            }
        }
        best
    }
}

fn check_output(net: &Sequential, actions: usize) -> Result<()> {
    if net.output_shape() == [actions] {
        Ok(())
    } else {
        Err(Error::config(
            "network",
            format!(
                "the network outputs {:?} per observation, but the environment has {actions} actions; end it with {{\"affine\": \"actions\"}}",
                net.output_shape()
            ),
        ))
    }
}

impl Parameters for QNet {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.body.visit_params(f);
        if let Some(d) = &self.dueling {
            d.value.visit_params(f);
            d.advantage.visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.body.visit_params_mut(f);
        if let Some(d) = &mut self.dueling {
            d.value.visit_params_mut(f);
            d.advantage.visit_params_mut(f);
        }
    }
}

/// An input buffer `[n, …input]`.
pub(crate) fn input_buffer(n: usize, input: &[usize]) -> ArrayD<f32> {
    let shape: Vec<usize> = std::iter::once(n).chain(input.iter().copied()).collect();
    ArrayD::zeros(IxDyn(&shape))
}

/// The first `n` rows.
fn rows(a: &Array2<f32>, n: usize) -> ArrayView2<'_, f32> {
    a.slice_axis(Axis(0), Slice::from(..n))
}

/// The first `n` rows, mutably.
fn rows_mut(a: &mut Array2<f32>, n: usize) -> ArrayViewMut2<'_, f32> {
    a.slice_axis_mut(Axis(0), Slice::from(..n))
}
