//! Networks described as data: [`Architecture`] (serde) builds a [`Sequential`].

use crate::error::{Error, Result, checked_product, shape_err};
use crate::init::Init;
use crate::layers::{
    Affine, Conv2d, Dsilu, Flatten, Hardtanh, Layer, LeakyRelu, MatMul, MaxPool2d, Mode, Param,
    Relu, Sigmoid, Silu, Softmax, Tanh, Window,
};
use crate::optim::Parameters;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// A layer width: a number, or a name resolved when the network is built
/// (for example `"actions"`, known only once the environment is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Size {
    /// A fixed width.
    Fixed(#[schemars(range(min = 1, max = MAX_LAYER_WIDTH))] usize),
    /// A named width, looked up in the `sizes` given to [`Architecture::build`].
    Named(String),
}

impl From<usize> for Size {
    fn from(v: usize) -> Self {
        Size::Fixed(v)
    }
}

fn one() -> usize {
    1
}

/// One layer of an [`Architecture`]. Input sizes are never written: they are
/// inferred from the input shape while building.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// [`Conv2d`]: `{"conv": {"out": 16, "kernel": 3, "stride": 1, "padding": 0}}`
    /// (`stride` defaults to 1, `padding` to 0).
    Conv {
        /// Number of filters F.
        out: Size,
        /// Square kernel side K, at most [`MAX_WINDOW`].
        #[schemars(range(min = 1, max = MAX_WINDOW))]
        kernel: usize,
        /// Stride S, at most [`MAX_WINDOW`].
        #[serde(default = "one")]
        #[schemars(range(min = 1, max = MAX_WINDOW))]
        stride: usize,
        /// Zero padding P on every side, at most [`MAX_WINDOW`].
        #[serde(default)]
        #[schemars(range(max = MAX_WINDOW))]
        padding: usize,
    },
    /// [`MaxPool2d`]: `{"max_pool": {"kernel": 2}}` (`stride` defaults to `kernel`, `padding` to 0).
    MaxPool {
        /// Square window side K, at most [`MAX_WINDOW`].
        #[schemars(range(min = 1, max = MAX_WINDOW))]
        kernel: usize,
        /// Stride S; defaults to K; at most [`MAX_WINDOW`].
        #[serde(default)]
        #[schemars(range(min = 1, max = MAX_WINDOW))]
        stride: Option<usize>,
        /// Padding P ≤ K/2.
        #[serde(default)]
        #[schemars(range(max = MAX_WINDOW))]
        padding: usize,
    },
    /// [`Affine`]: `{"affine": 128}` or `{"affine": "actions"}`.
    Affine(Size),
    /// [`MatMul`] (no bias): `{"mat_mul": 10}`.
    MatMul(Size),
    /// [`Relu`]: `"relu"`.
    Relu,
    /// [`LeakyRelu`]: `{"leaky_relu": 0.01}`.
    LeakyRelu(f32),
    /// [`Sigmoid`]: `"sigmoid"`.
    Sigmoid,
    /// [`Tanh`]: `"tanh"`.
    Tanh,
    /// [`Hardtanh`]: `"hardtanh"`.
    Hardtanh,
    /// [`Silu`]: `"silu"`.
    Silu,
    /// [`Dsilu`]: `"dsilu"`.
    Dsilu,
    /// [`Softmax`] over the last axis: `"softmax"`.
    Softmax,
    /// [`Flatten`]: `"flatten"`.
    Flatten,
}

impl LayerSpec {
    fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::MaxPool { .. } => "max_pool",
            LayerSpec::Affine(_) => "affine",
            LayerSpec::MatMul(_) => "mat_mul",
            LayerSpec::Relu => "relu",
            LayerSpec::LeakyRelu(_) => "leaky_relu",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Hardtanh => "hardtanh",
            LayerSpec::Silu => "silu",
            LayerSpec::Dsilu => "dsilu",
            LayerSpec::Softmax => "softmax",
            LayerSpec::Flatten => "flatten",
        }
    }
}

/// A network written as data, e.g. in a run spec:
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::{Architecture, Init};
/// let arch: Architecture = serde_json::from_str(
///     r#"[{"conv": {"out": 16, "kernel": 3, "stride": 1}}, "relu", "flatten",
///         {"affine": 128}, "relu", {"affine": "actions"}]"#,
/// ).unwrap();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let net = arch.build(&[4, 10, 10], &[("actions", 6)], Init::HeUniform, &mut rng).unwrap();
/// assert_eq!(net.output_shape(), &[6]);
/// // 16·(4·9 + 1) + 128·(1024 + 1) + 6·(128 + 1)
/// assert_eq!(net.param_count(), 592 + 131_200 + 774);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Architecture(pub Vec<LayerSpec>);

/// Widest layer a spec may ask for (units of an affine layer, filters of a
/// convolution): 65,536, sixteen times the widest layer of the networks we
/// reproduce (Nature DQN's 512, MinAtar's 128), so that only a typo meets it.
pub const MAX_LAYER_WIDTH: usize = 1 << 16;

/// Largest kernel side, stride or padding of a convolution or pooling
/// layer: 256, beyond any image an environment here produces (84 × 84
/// frames, MinAtar's 10 × 10, pixel frames of at most 1,024).
pub const MAX_WINDOW: usize = 256;

/// Most parameters a network may have: 50 million, about twenty-five
/// times the Nature DQN network (1.7 million). With gradients, an online
/// and a target copy and two optimiser moments, such a network already
/// takes about 1.2 GB.
pub const MAX_PARAMETERS: usize = 50_000_000;

/// What [`Architecture::plan`] finds without allocating: the layers with
/// every size resolved and checked, and the network's totals.
#[derive(Clone, Debug)]
pub struct NetworkPlan {
    layers: Vec<PlannedLayer>,
    /// The per-sample output shape.
    pub output_shape: Vec<usize>,
    /// Trainable scalars (weights and biases).
    pub parameters: usize,
    /// Scalars of one sample's working buffers summed over the layers:
    /// each layer's output and, for convolutions, the unfolded input
    /// (`C·K·K × OH·OW`). Times the batch size, it is what a forward pass
    /// keeps.
    pub activation_scalars: usize,
}

/// One layer with its input size known.
#[derive(Clone, Debug)]
enum PlannedLayer {
    Conv {
        channels: usize,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Affine {
        inputs: usize,
        outputs: usize,
    },
    MatMul {
        inputs: usize,
        outputs: usize,
    },
    Parameterless(usize),
}

impl PlannedLayer {
    fn parameters(&self) -> usize {
        match *self {
            PlannedLayer::Conv {
                channels,
                out,
                kernel,
                ..
            } => out * (channels * kernel * kernel + 1),
            PlannedLayer::Affine { inputs, outputs } => outputs * (inputs + 1),
            PlannedLayer::MatMul { inputs, outputs } => outputs * inputs,
            PlannedLayer::MaxPool { .. } | PlannedLayer::Parameterless(_) => 0,
        }
    }
}

impl Architecture {
    /// Checks the architecture against a per-sample input shape (no batch
    /// axis, e.g. `[4, 10, 10]`), infers every layer's input size and
    /// resolves named sizes from `sizes`, allocating nothing: callers can
    /// weigh a network before building it. Every width is at most
    /// [`MAX_LAYER_WIDTH`], every window at most [`MAX_WINDOW`], and the
    /// total at most [`MAX_PARAMETERS`].
    ///
    /// Errors name the offending layer's index and field.
    pub fn plan(&self, input: &[usize], sizes: &[(&str, usize)]) -> Result<NetworkPlan> {
        if self.0.is_empty() {
            return Err(Error::InvalidConfig {
                what: "architecture",
                field: "layers",
                reason: "is empty".into(),
            });
        }
        if input.is_empty() || input.contains(&0) {
            return Err(Error::InvalidConfig {
                what: "architecture",
                field: "input",
                reason: format!(
                    "per-sample input shape must be non-empty with no zero axis, got {input:?}"
                ),
            });
        }
        let mut cur = input.to_vec();
        let mut layers = Vec::with_capacity(self.0.len());
        let mut parameters = 0usize;
        let mut activation_scalars = 0usize;
        for (index, spec) in self.0.iter().enumerate() {
            let layer = spec.kind();
            let bad = |field: &'static str, reason: String| Error::InvalidLayer {
                index,
                layer,
                field,
                reason,
            };
            let resolve = |size: &Size, field: &'static str| -> Result<usize> {
                let v = match size {
                    Size::Fixed(v) => *v,
                    Size::Named(name) => sizes
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|&(_, v)| v)
                        .ok_or_else(|| {
                            let known: Vec<&str> = sizes.iter().map(|(k, _)| *k).collect();
                            bad(
                                field,
                                format!("unknown size name {name:?} (known: {known:?})"),
                            )
                        })?,
                };
                if v == 0 {
                    return Err(bad(field, "must be at least 1".into()));
                }
                if v > MAX_LAYER_WIDTH {
                    return Err(bad(
                        field,
                        format!("{v} is more than the most, {MAX_LAYER_WIDTH}"),
                    ));
                }
                Ok(v)
            };
            let window = |field: &'static str, v: usize| -> Result<usize> {
                if v > MAX_WINDOW {
                    return Err(bad(
                        field,
                        format!("{v} is more than the most, {MAX_WINDOW}"),
                    ));
                }
                Ok(v)
            };
            let image = |cur: &[usize]| -> Result<[usize; 3]> {
                match *cur {
                    [c, h, w] => Ok([c, h, w]),
                    _ => Err(bad(
                        "input",
                        format!("needs a [C, H, W] input, got {cur:?}"),
                    )),
                }
            };
            let too_big = |kernel: usize, h: usize, w: usize, padding: usize| {
                bad(
                    "kernel",
                    format!(
                        "{kernel} exceeds the padded input {}×{}",
                        h + 2 * padding,
                        w + 2 * padding
                    ),
                )
            };
            let planned = match spec {
                LayerSpec::Conv {
                    out,
                    kernel,
                    stride,
                    padding,
                } => {
                    // The layer's own sizes first: a value out of bounds
                    // is named whatever the input.
                    let f = resolve(out, "out")?;
                    let kernel = window("kernel", *kernel)?;
                    let stride = window("stride", *stride)?;
                    let padding = window("padding", *padding)?;
                    let [c, h, w] = image(&cur)?;
                    if kernel == 0 {
                        return Err(bad("kernel", "must be at least 1".into()));
                    }
                    if stride == 0 {
                        return Err(bad("stride", "must be at least 1".into()));
                    }
                    let geometry = Window {
                        kh: kernel,
                        kw: kernel,
                        stride,
                        padding,
                    };
                    let (oh, ow) = geometry
                        .out_size(h, w)
                        .ok_or_else(|| too_big(kernel, h, w, padding))?;
                    cur = vec![f, oh, ow];
                    activation_scalars = activation_scalars.saturating_add(
                        checked_product(&[c, kernel, kernel, oh, ow]).unwrap_or(usize::MAX),
                    );
                    PlannedLayer::Conv {
                        channels: c,
                        out: f,
                        kernel,
                        stride,
                        padding,
                    }
                }
                LayerSpec::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let kernel = window("kernel", *kernel)?;
                    let stride = window("stride", stride.unwrap_or(kernel))?;
                    let padding = window("padding", *padding)?;
                    let [c, h, w] = image(&cur)?;
                    let pool = MaxPool2d::new(kernel, stride, padding).map_err(|e| match e {
                        Error::InvalidConfig { field, reason, .. } => bad(field, reason),
                        other => other,
                    })?;
                    let shape = pool
                        .output_shape(c, h, w)
                        .ok_or_else(|| too_big(kernel, h, w, padding))?;
                    cur = shape.to_vec();
                    PlannedLayer::MaxPool {
                        kernel,
                        stride,
                        padding,
                    }
                }
                LayerSpec::Affine(size) => {
                    let outputs = resolve(size, "out")?;
                    let inputs = checked_product(&cur).unwrap_or(usize::MAX);
                    cur = vec![outputs];
                    PlannedLayer::Affine { inputs, outputs }
                }
                LayerSpec::MatMul(size) => {
                    let outputs = resolve(size, "out")?;
                    let [inputs] = *cur.as_slice() else {
                        return Err(bad(
                            "input",
                            format!("needs a flat [D] input (add \"flatten\"), got {cur:?}"),
                        ));
                    };
                    cur = vec![outputs];
                    PlannedLayer::MatMul { inputs, outputs }
                }
                LayerSpec::Flatten => {
                    cur = vec![checked_product(&cur).unwrap_or(usize::MAX)];
                    PlannedLayer::Parameterless(index)
                }
                _ => PlannedLayer::Parameterless(index),
            };
            parameters = parameters.saturating_add(planned.parameters());
            if parameters > MAX_PARAMETERS {
                return Err(bad(
                    "out",
                    format!(
                        "brings the network to {parameters} parameters, more than the most, {MAX_PARAMETERS}"
                    ),
                ));
            }
            activation_scalars =
                activation_scalars.saturating_add(checked_product(&cur).unwrap_or(usize::MAX));
            layers.push(planned);
        }
        Ok(NetworkPlan {
            layers,
            output_shape: cur,
            parameters,
            activation_scalars,
        })
    }

    /// Plans the architecture (see [`Architecture::plan`]: the same checks
    /// and errors) and draws weights with `init` from `rng`.
    pub fn build<R: Rng + ?Sized>(
        &self,
        input: &[usize],
        sizes: &[(&str, usize)],
        init: Init,
        rng: &mut R,
    ) -> Result<Sequential> {
        let plan = self.plan(input, sizes)?;
        let mut layers = Vec::with_capacity(plan.layers.len());
        for (planned, spec) in plan.layers.into_iter().zip(&self.0) {
            let built = match planned {
                PlannedLayer::Conv {
                    channels,
                    out,
                    kernel,
                    stride,
                    padding,
                } => AnyLayer::Conv2d(Conv2d::new(
                    channels, out, kernel, stride, padding, init, rng,
                )?),
                PlannedLayer::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => AnyLayer::MaxPool2d(MaxPool2d::new(kernel, stride, padding)?),
                PlannedLayer::Affine { inputs, outputs } => {
                    AnyLayer::Affine(Affine::new(inputs, outputs, init, rng)?)
                }
                PlannedLayer::MatMul { inputs, outputs } => {
                    AnyLayer::MatMul(MatMul::new(inputs, outputs, init, rng)?)
                }
                PlannedLayer::Parameterless(index) => match spec {
                    LayerSpec::Relu => AnyLayer::Relu(Relu::new()),
                    LayerSpec::LeakyRelu(a) => {
                        AnyLayer::LeakyRelu(LeakyRelu::new(*a).map_err(|e| match e {
                            Error::InvalidConfig { reason, .. } => Error::InvalidLayer {
                                index,
                                layer: "leaky_relu",
                                field: "a",
                                reason,
                            },
                            other => other,
                        })?)
                    }
                    LayerSpec::Sigmoid => AnyLayer::Sigmoid(Sigmoid::new()),
                    LayerSpec::Tanh => AnyLayer::Tanh(Tanh::new()),
                    LayerSpec::Hardtanh => AnyLayer::Hardtanh(Hardtanh::new()),
                    LayerSpec::Silu => AnyLayer::Silu(Silu::new()),
                    LayerSpec::Dsilu => AnyLayer::Dsilu(Dsilu::new()),
                    LayerSpec::Softmax => AnyLayer::Softmax(Softmax::new()),
                    _ => AnyLayer::Flatten(Flatten::new()),
                },
            };
            layers.push(built);
        }
        Ok(Sequential {
            arch: self.clone(),
            input_shape: input.to_vec(),
            output_shape: plan.output_shape,
            layers,
        })
    }
}

/// Any layer, so that a [`Sequential`] holds them without boxing and can be cloned.
// A network holds a handful of layers, so the size spread between variants
// (Conv2d's buffers against a bare ReLU) costs nothing worth a Box.
#[derive(Clone, Debug)]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum AnyLayer {
    Conv2d(Conv2d),
    MaxPool2d(MaxPool2d),
    Affine(Affine),
    MatMul(MatMul),
    Relu(Relu),
    LeakyRelu(LeakyRelu),
    Sigmoid(Sigmoid),
    Tanh(Tanh),
    Hardtanh(Hardtanh),
    Silu(Silu),
    Dsilu(Dsilu),
    Softmax(Softmax),
    Flatten(Flatten),
}

macro_rules! dispatch {
    ($self:expr, $l:ident => $e:expr) => {
        match $self {
            AnyLayer::Conv2d($l) => $e,
            AnyLayer::MaxPool2d($l) => $e,
            AnyLayer::Affine($l) => $e,
            AnyLayer::MatMul($l) => $e,
            AnyLayer::Relu($l) => $e,
            AnyLayer::LeakyRelu($l) => $e,
            AnyLayer::Sigmoid($l) => $e,
            AnyLayer::Tanh($l) => $e,
            AnyLayer::Hardtanh($l) => $e,
            AnyLayer::Silu($l) => $e,
            AnyLayer::Dsilu($l) => $e,
            AnyLayer::Softmax($l) => $e,
            AnyLayer::Flatten($l) => $e,
        }
    };
}

impl Layer for AnyLayer {
    fn kind(&self) -> &'static str {
        dispatch!(self, l => l.kind())
    }
    /// # Shapes
    /// Those of the wrapped layer.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        dispatch!(self, l => l.forward(x, mode))
    }
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        dispatch!(self, l => l.backward(dy))
    }
    fn backward_params(&mut self, dy: ArrayViewD<'_, f32>) -> Result<()> {
        dispatch!(self, l => l.backward_params(dy))
    }
    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        dispatch!(self, l => l.output())
    }
    fn param_names(&self) -> &'static [&'static str] {
        dispatch!(self, l => l.param_names())
    }
    fn params(&self) -> &[Param] {
        dispatch!(self, l => l.params())
    }
    fn params_mut(&mut self) -> &mut [Param] {
        dispatch!(self, l => l.params_mut())
    }
}

/// The name of a parameter in a [`Sequential`]: `"{layer index}.{name}"`,
/// as PyTorch's `nn.Sequential` names its state dict (e.g. `"0.weight"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamName {
    /// Index of the layer in the architecture.
    pub layer: usize,
    /// The parameter's name within the layer (`"weight"` or `"bias"`).
    pub name: &'static str,
}

impl fmt::Display for ParamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.name)
    }
}

/// A chain of layers built from an [`Architecture`].
///
/// Its buffers are reused between calls, so forward and backward make no
/// heap allocation once they have run at the largest batch size. `Clone`
/// gives an independent copy (one to evaluate while the original trains,
/// say).
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::{Architecture, Init, LayerSpec, Loss, Mode, OptimizerConfig, Size};
/// let arch = Architecture(vec![LayerSpec::Affine(Size::Fixed(8)), LayerSpec::Tanh, LayerSpec::Affine(Size::Fixed(1))]);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut net = arch.build(&[2], &[], Init::XavierUniform, &mut rng).unwrap();
/// let mut opt = OptimizerConfig::adam(0.01).build().unwrap();
/// let x = ndarray::arr2(&[[0.0f32, 1.0], [1.0, 0.0]]).into_dyn();
/// let t = ndarray::arr2(&[[1.0f32], [-1.0]]).into_dyn();
/// let y = net.forward(x.view(), Mode::Train).unwrap().to_owned();
/// let (loss, dy) = Loss::MeanSquaredError.compute(y.view(), t.view()).unwrap();
/// net.backward(dy.view()).unwrap();
/// opt.step(&mut net).unwrap();
/// assert!(loss.is_finite());
/// ```
#[derive(Clone, Debug)]
pub struct Sequential {
    arch: Architecture,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    layers: Vec<AnyLayer>,
}

impl Sequential {
    /// The architecture this network was built from.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The per-sample input shape (no batch axis).
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The per-sample output shape (no batch axis).
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[AnyLayer] {
        &self.layers
    }

    /// The layers, mutably (to drive one layer by hand).
    pub fn layers_mut(&mut self) -> &mut [AnyLayer] {
        &mut self.layers
    }

    /// Total number of scalar parameters.
    pub fn param_count(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |p| n += p.value.len());
        n
    }

    /// Runs every layer forward and returns a view of the network's output,
    /// which lives in the last layer's buffer until the next forward.
    /// A [`Flatten`] that is not the last layer passes its input on
    /// reshaped, so its own [`Layer::output`] is not updated.
    ///
    /// # Shapes
    /// `x: [N, …input_shape]` → `y: [N, …output_shape]`.
    pub fn forward(&mut self, x: ArrayViewD<'_, f32>, mode: Mode) -> Result<ArrayViewD<'_, f32>> {
        if x.ndim() != self.input_shape.len() + 1 || x.shape()[1..] != self.input_shape[..] {
            return Err(shape_err(
                "sequential",
                format!("[N, {:?}…]", self.input_shape),
                x.shape(),
            ));
        }
        self.layers[0].forward(x, mode)?;
        // `source` is the layer whose output is the current activation. A
        // Flatten between two layers copies nothing (see
        // `Flatten::pass_through`): the layer after it reads `source`'s
        // output reshaped to `[N, D]`.
        let mut source = 0;
        let last = self.layers.len() - 1;
        for i in 1..self.layers.len() {
            let (done, rest) = self.layers.split_at_mut(i);
            let mut input = done[source].output().expect("an earlier layer just ran");
            if source + 1 < i {
                input = flattened(input);
            }
            if let AnyLayer::Flatten(flatten) = &mut rest[0]
                && i < last
                && input.is_standard_layout()
                && input.ndim() >= 1
            {
                flatten.pass_through(input.shape());
                continue;
            }
            rest[0].forward(input, mode)?;
            source = i;
        }
        Ok(self.output().expect("forward just ran"))
    }

    /// The latest forward output.
    pub fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.layers.last().and_then(|l| l.output())
    }

    /// Backpropagates `dy = ∂L/∂y` of the latest train-mode forward and stores
    /// every parameter gradient. The input gradient is not computed (the first
    /// layer skips it); use [`Sequential::backward_input`] when it is needed.
    ///
    /// # Shapes
    /// `dy: [N, …output_shape]`.
    pub fn backward(&mut self, dy: ArrayViewD<'_, f32>) -> Result<()> {
        self.backward_impl(dy, false).map(|_| ())
    }

    /// Like [`Sequential::backward`], and returns `∂L/∂x`.
    ///
    /// # Shapes
    /// `dy: [N, …output_shape]` → `dx: [N, …input_shape]`.
    pub fn backward_input(&mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'_, f32>> {
        Ok(self.backward_impl(dy, true)?.expect("dx requested"))
    }

    fn backward_impl(
        &mut self,
        dy: ArrayViewD<'_, f32>,
        need_dx: bool,
    ) -> Result<Option<ArrayViewD<'_, f32>>> {
        let n = self.layers.len();
        let (mut head, last) = self.layers.split_at_mut(n - 1);
        if head.is_empty() && !need_dx {
            last[0].backward_params(dy)?;
            return Ok(None);
        }
        let mut g = last[0].backward(dy)?;
        while let Some((cur, rest)) = std::mem::take(&mut head).split_last_mut() {
            if rest.is_empty() && !need_dx {
                cur.backward_params(g)?;
                return Ok(None);
            }
            g = match cur {
                AnyLayer::Flatten(flatten) if flatten.passed_through() => {
                    match flatten.unflatten(g.clone())? {
                        Some(reshaped) => reshaped,
                        None => cur.backward(g)?,
                    }
                }
                _ => cur.backward(g)?,
            };
            head = rest;
        }
        Ok(Some(g))
    }

    /// Visits every parameter with its name, in a fixed order.
    pub fn for_each_named_param(&self, f: &mut dyn FnMut(ParamName, &Param)) {
        for (layer, l) in self.layers.iter().enumerate() {
            for (&name, p) in l.param_names().iter().zip(l.params()) {
                f(ParamName { layer, name }, p);
            }
        }
    }

    /// Visits every parameter mutably with its name, in the same order.
    pub fn for_each_named_param_mut(&mut self, f: &mut dyn FnMut(ParamName, &mut Param)) {
        for (layer, l) in self.layers.iter_mut().enumerate() {
            for (&name, p) in l.param_names().iter().zip(l.params_mut()) {
                f(ParamName { layer, name }, p);
            }
        }
    }

    /// Copies of the parameters as named tensors (`"0.weight"`, `"0.bias"`, …),
    /// the names PyTorch's `nn.Sequential` uses for the same architecture.
    pub fn named_params(&self) -> Vec<(String, ArrayD<f32>)> {
        let mut out = Vec::new();
        self.for_each_named_param(&mut |name, p| out.push((name.to_string(), p.value.clone())));
        out
    }

    /// Sets every parameter from named tensors. All names must be present,
    /// with matching shapes, and no others.
    pub fn set_named_params(
        &mut self,
        tensors: impl IntoIterator<Item = (String, ArrayD<f32>)>,
    ) -> Result<()> {
        let mut map: HashMap<String, ArrayD<f32>> = tensors.into_iter().collect();
        let mut problem = None;
        let mut updates = Vec::new();
        self.for_each_named_param(&mut |name, p| {
            let key = name.to_string();
            match map.remove(&key) {
                Some(t) if t.shape() == p.value.shape() => updates.push(t),
                Some(t) => {
                    problem.get_or_insert(format!(
                        "{key}: shape {:?}, expected {:?}",
                        t.shape(),
                        p.value.shape()
                    ));
                }
                None => {
                    problem.get_or_insert(format!("missing tensor {key}"));
                }
            }
        });
        if let Some(p) = problem {
            return Err(Error::ParamMismatch(p));
        }
        if let Some(k) = map.keys().next() {
            return Err(Error::ParamMismatch(format!("unexpected tensor {k}")));
        }
        let mut it = updates.into_iter();
        self.visit_params_mut(&mut |p| {
            p.value
                .assign(&it.next().expect("one tensor per parameter"))
        });
        Ok(())
    }

    fn zip_params(
        &mut self,
        other: &Sequential,
        mut f: impl FnMut(&mut [f32], &[f32]),
    ) -> Result<()> {
        let same = self.layers.len() == other.layers.len()
            && self.layers.iter().zip(&other.layers).all(|(a, b)| {
                a.param_names() == b.param_names()
                    && a.params()
                        .iter()
                        .zip(b.params())
                        .all(|(p, q)| p.value.shape() == q.value.shape())
            });
        if !same {
            return Err(Error::ParamMismatch(format!(
                "networks differ: {:?} vs {:?}",
                self.arch, other.arch
            )));
        }
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            for (p, q) in a.params_mut().iter_mut().zip(b.params()) {
                f(
                    p.value.as_slice_mut().expect("standard layout"),
                    q.value.as_slice().expect("standard layout"),
                );
            }
        }
        Ok(())
    }

    /// Hard update: `θ ← θ_other` (refreshing a copy that follows another
    /// network now and then).
    /// Errors unless both networks have the same parameter names and shapes.
    pub fn copy_from(&mut self, other: &Sequential) -> Result<()> {
        self.zip_params(other, |dst, src| dst.copy_from_slice(src))
    }

    /// Soft (Polyak) update: `θ ← τ θ_other + (1 − τ) θ`, with `τ ∈ [0, 1]`.
    pub fn soft_update_from(&mut self, other: &Sequential, tau: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&tau) {
            return Err(Error::InvalidConfig {
                what: "soft update",
                field: "tau",
                reason: format!("must be in [0, 1], got {tau}"),
            });
        }
        self.zip_params(other, |dst, src| {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = tau * s + (1.0 - tau) * *d;
            }
        })
    }

    /// Clips the gradients by their global norm; see [`crate::clip_grad_norm`].
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> f32 {
        crate::optim::clip_grad_norm(self, max_norm)
    }
}

impl Parameters for Sequential {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.layers.iter().flat_map(|l| l.params()).for_each(f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .for_each(f);
    }
}

/// A standard-layout activation `[N, …]` seen as `[N, D]`, after a Flatten
/// that passed it through.
fn flattened(x: ArrayViewD<'_, f32>) -> ArrayViewD<'_, f32> {
    let n = x.shape()[0];
    let d = x.shape()[1..].iter().product();
    x.into_shape_with_order(IxDyn(&[n, d]))
        .expect("a Flatten passes through only standard-layout activations")
}
