//! One torso feeding several heads: the actor-critic network, with policy
//! logits and a value estimate computed from the same features.
//!
//! It is made of [`Sequential`]s, not a network kind of its own: the torso
//! is one, and each head is one built on the torso's output shape. Forward
//! runs the torso once and every head on its features; backward adds the
//! heads' input gradients and runs the torso's backward once on the sum,
//! which is the chain rule for a shared input.

use crate::error::{Error, Result, shape_err};
use crate::layers::{Mode, Param};
use crate::optim::Parameters;
use crate::sequential::Sequential;
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

/// The torso's name in [`SharedTorso::named_params`].
const TORSO: &str = "torso";

/// A torso [`Sequential`] and named head [`Sequential`]s on its output.
///
/// Parameters are named `"torso.{layer}.{name}"` and `"{head}.{layer}.{name}"`:
/// PyTorch's state-dict names for a module with a `torso` and one
/// `nn.Sequential` attribute per head.
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::{Architecture, Init, Mode, SharedTorso};
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let arch = |json: &str| serde_json::from_str::<Architecture>(json).unwrap();
/// let torso = arch(r#"[{"affine": 16}, "tanh"]"#).build(&[4], &[], Init::Orthogonal { gain: 2f32.sqrt() }, &mut rng).unwrap();
/// let policy = arch(r#"[{"affine": 2}]"#).build(torso.output_shape(), &[], Init::Orthogonal { gain: 0.01 }, &mut rng).unwrap();
/// let value = arch(r#"[{"affine": 1}]"#).build(torso.output_shape(), &[], Init::Orthogonal { gain: 1.0 }, &mut rng).unwrap();
/// let mut net = SharedTorso::new(torso, vec![("policy".into(), policy), ("value".into(), value)]).unwrap();
/// let x = ndarray::Array2::<f32>::zeros((3, 4)).into_dyn();
/// net.forward(x.view(), Mode::Train).unwrap();
/// assert_eq!(net.output(0).unwrap().shape(), &[3, 2]);
/// assert_eq!(net.output(1).unwrap().shape(), &[3, 1]);
/// let d_logits = ndarray::Array2::<f32>::ones((3, 2)).into_dyn();
/// let d_value = ndarray::Array2::<f32>::ones((3, 1)).into_dyn();
/// net.backward(&[d_logits.view(), d_value.view()]).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct SharedTorso {
    torso: Sequential,
    heads: Vec<(String, Sequential)>,
    /// The sum of the heads' input gradients, reused between backwards.
    features_grad: ArrayD<f32>,
}

impl SharedTorso {
    /// Puts heads on a torso. Each head's input shape must be the torso's
    /// output shape; head names must be distinct, non-empty, free of `.`
    /// and not `"torso"`.
    pub fn new(torso: Sequential, heads: Vec<(String, Sequential)>) -> Result<Self> {
        if heads.is_empty() {
            return Err(Error::InvalidConfig {
                what: "shared torso",
                field: "heads",
                reason: "needs at least one head".into(),
            });
        }
        for (i, (name, head)) in heads.iter().enumerate() {
            let bad_name = name.is_empty()
                || name.contains('.')
                || name == TORSO
                || heads[..i].iter().any(|(other, _)| other == name);
            if bad_name {
                return Err(Error::InvalidConfig {
                    what: "shared torso",
                    field: "heads",
                    reason: format!(
                        "head name {name:?} must be non-empty, without '.', not \"{TORSO}\" and unique"
                    ),
                });
            }
            if head.input_shape() != torso.output_shape() {
                return Err(shape_err(
                    "shared torso head",
                    format!("input {:?}, the torso's output", torso.output_shape()),
                    head.input_shape(),
                ));
            }
        }
        Ok(SharedTorso {
            torso,
            heads,
            features_grad: ArrayD::zeros(IxDyn(&[0])),
        })
    }

    /// The torso.
    pub fn torso(&self) -> &Sequential {
        &self.torso
    }

    /// The heads' names, in order.
    pub fn head_names(&self) -> impl Iterator<Item = &str> {
        self.heads.iter().map(|(name, _)| name.as_str())
    }

    /// The head at `index`.
    pub fn head(&self, index: usize) -> Option<&Sequential> {
        self.heads.get(index).map(|(_, head)| head)
    }

    /// Runs the torso once and every head on its output. Read the heads'
    /// outputs with [`SharedTorso::output`].
    ///
    /// # Shapes
    /// `x: [N, …input_shape]`.
    pub fn forward(&mut self, x: ArrayViewD<'_, f32>, mode: Mode) -> Result<()> {
        let features = self.torso.forward(x, mode)?;
        for (_, head) in &mut self.heads {
            head.forward(features.view(), mode)?;
        }
        Ok(())
    }

    /// Runs the torso and one head only (acting needs the policy, not the
    /// value), and returns that head's output.
    pub fn forward_head(
        &mut self,
        x: ArrayViewD<'_, f32>,
        index: usize,
        mode: Mode,
    ) -> Result<ArrayViewD<'_, f32>> {
        let heads = self.heads.len();
        let (_, head) = self
            .heads
            .get_mut(index)
            .ok_or_else(|| shape_err("shared torso", format!("a head < {heads}"), &[index]))?;
        let features = self.torso.forward(x, mode)?;
        head.forward(features, mode)
    }

    /// The latest forward output of head `index`.
    pub fn output(&self, index: usize) -> Option<ArrayViewD<'_, f32>> {
        self.heads.get(index).and_then(|(_, head)| head.output())
    }

    /// Backpropagates one output gradient per head, from the latest
    /// train-mode [`SharedTorso::forward`], and stores every parameter
    /// gradient. A head that no loss reaches takes a zero gradient.
    pub fn backward(&mut self, d_outputs: &[ArrayViewD<'_, f32>]) -> Result<()> {
        if d_outputs.len() != self.heads.len() {
            return Err(shape_err(
                "shared torso backward",
                format!("{} output gradients, one per head", self.heads.len()),
                &[d_outputs.len()],
            ));
        }
        let mut first = true;
        for ((_, head), dy) in self.heads.iter_mut().zip(d_outputs) {
            let dx = head.backward_input(dy.view())?;
            if first {
                if self.features_grad.shape() != dx.shape() {
                    self.features_grad = ArrayD::zeros(dx.raw_dim());
                }
                self.features_grad.assign(&dx);
                first = false;
            } else {
                Zip::from(&mut self.features_grad)
                    .and(&dx)
                    .for_each(|sum, &g| *sum += g);
            }
        }
        self.torso.backward(self.features_grad.view())
    }

    /// Copies of the parameters as named tensors: `"torso.0.weight"`,
    /// `"policy.0.bias"`, ….
    pub fn named_params(&self) -> Vec<(String, ArrayD<f32>)> {
        let parts = std::iter::once((TORSO, &self.torso))
            .chain(self.heads.iter().map(|(name, head)| (name.as_str(), head)));
        let mut out = Vec::new();
        for (part, net) in parts {
            net.for_each_named_param(&mut |name, p| {
                out.push((format!("{part}.{name}"), p.value.clone()))
            });
        }
        out
    }

    /// Sets every parameter from named tensors, as [`Sequential::set_named_params`]
    /// does: all names present with matching shapes, and no others. On an
    /// error nothing has changed.
    pub fn set_named_params(
        &mut self,
        tensors: impl IntoIterator<Item = (String, ArrayD<f32>)>,
    ) -> Result<()> {
        let mut by_part: Vec<Vec<(String, ArrayD<f32>)>> = vec![Vec::new(); 1 + self.heads.len()];
        for (name, tensor) in tensors {
            let part = name.split_once('.').and_then(|(part, rest)| {
                let index = if part == TORSO {
                    Some(0)
                } else {
                    self.heads
                        .iter()
                        .position(|(head, _)| head == part)
                        .map(|i| i + 1)
                };
                index.map(|i| (i, rest.to_string()))
            });
            match part {
                Some((index, rest)) => by_part[index].push((rest, tensor)),
                None => {
                    return Err(Error::ParamMismatch(format!("unexpected tensor {name}")));
                }
            }
        }
        let mut staged = self.clone();
        let mut parts = by_part.into_iter();
        let prefixed = |part: &str, e: Error| match e {
            Error::ParamMismatch(m) => Error::ParamMismatch(format!("{part}.{m}")),
            other => other,
        };
        staged
            .torso
            .set_named_params(parts.next().expect("the torso's part"))
            .map_err(|e| prefixed(TORSO, e))?;
        for ((name, head), tensors) in staged.heads.iter_mut().zip(parts) {
            head.set_named_params(tensors)
                .map_err(|e| prefixed(name, e))?;
        }
        *self = staged;
        Ok(())
    }

    /// The parameters as a safetensors buffer.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        crate::io::tensors_to_bytes(&self.named_params(), None)
    }

    /// Sets the parameters from a safetensors buffer (names and shapes must match exactly).
    pub fn load_safetensors_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let (tensors, _) = crate::io::tensors_from_bytes(bytes)?;
        self.set_named_params(tensors)
    }

    /// Clips the gradients of every part by their global norm; see
    /// [`crate::clip_grad_norm`].
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> f32 {
        crate::optim::clip_grad_norm(self, max_norm)
    }
}

impl Parameters for SharedTorso {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.torso.visit_params(f);
        for (_, head) in &self.heads {
            head.visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.torso.visit_params_mut(f);
        for (_, head) in &mut self.heads {
            head.visit_params_mut(f);
        }
    }
}
