//! Layers: the forward/backward contract and its implementations.
//!
//! Every layer follows one contract:
//!
//! - `forward(&mut self, x, mode)` computes the output into a buffer the layer
//!   owns and returns a view of it. In [`Mode::Train`] it also fills a typed
//!   `Option` cache with what `backward` needs; in [`Mode::Eval`] it empties
//!   that cache (keeping its memory), so a `backward` after an eval forward
//!   is an error rather than a silent use of stale values.
//! - `backward(&mut self, dy)` returns `dx = ∂L/∂x` (a view into another
//!   owned buffer) and stores `∂L/∂θ` in each [`Param`]'s `grad`, overwriting
//!   the previous gradient (there is no accumulation and no `zero_grad`).
//! - Parameters are visited as `(name, Param)` pairs by an optimiser that
//!   lives outside the layer.
//!
//! Buffers only grow, so after the first call with the largest batch, calls
//! make no heap allocation.

mod activation;
mod conv;
mod flatten;
mod linear;
mod pool;
pub(crate) mod softmax;

pub use activation::{Dsilu, Hardtanh, LeakyRelu, Relu, Sigmoid, Silu, Tanh};
pub(crate) use conv::Window;
pub use conv::{CONV_SPARSE_MAX_DENSITY, Conv2d, set_conv_sparse_max_density};
pub use flatten::Flatten;
pub use linear::{Affine, MatMul};
pub use pool::MaxPool2d;
pub use softmax::Softmax;

use crate::Result;
use ndarray::{ArrayD, ArrayViewD};
use serde::{Deserialize, Serialize};

/// Whether a forward pass prepares for a backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Cache what `backward` needs.
    Train,
    /// Compute the output only (inference, or a copy of a network that is
    /// evaluated but not trained).
    Eval,
}

/// A trainable tensor and the gradient of the loss with respect to it.
///
/// ```
/// use rl_layers::Param;
/// let p = Param::new(ndarray::ArrayD::zeros(ndarray::IxDyn(&[2, 3]))).unwrap();
/// assert_eq!(p.grad.shape(), &[2, 3]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// The parameter θ, in standard (row-major) layout.
    pub value: ArrayD<f32>,
    /// `∂L/∂θ` from the latest backward pass, same shape as `value`.
    pub grad: ArrayD<f32>,
}

impl Param {
    /// Wraps a value with a zero gradient. The value is copied into
    /// standard layout. Errors only when the allocator refuses the gradient.
    pub fn new(value: ArrayD<f32>) -> Result<Self> {
        let value = value.as_standard_layout().into_owned();
        let grad = crate::error::try_zeros("gradients", value.shape())?;
        Ok(Self { value, grad })
    }
}

/// The contract every layer implements.
pub trait Layer {
    /// A short name for errors and parameter names (`"affine"`, `"conv2d"`, …).
    fn kind(&self) -> &'static str;

    /// Runs the layer forward and returns a view of its output buffer.
    ///
    /// # Shapes
    /// Batch first; see each layer for its shapes.
    fn forward<'a>(&'a mut self, x: ArrayViewD<'_, f32>, mode: Mode)
    -> Result<ArrayViewD<'a, f32>>;

    /// Given `dy = ∂L/∂y` for the latest train-mode forward, stores the
    /// parameter gradients and returns `dx = ∂L/∂x`.
    ///
    /// # Shapes
    /// `dy` has the output's shape; `dx` has the input's shape.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>>;

    /// Like [`Layer::backward`], but only the parameter gradients are needed
    /// (the first layer of a network), so layers may skip computing `dx`.
    fn backward_params(&mut self, dy: ArrayViewD<'_, f32>) -> Result<()> {
        self.backward(dy).map(|_| ())
    }

    /// The latest forward output, if any.
    fn output(&self) -> Option<ArrayViewD<'_, f32>>;

    /// The names of the parameters, in the order of [`Layer::params`] (`"weight"`, `"bias"`).
    fn param_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// The parameters, in a fixed order.
    fn params(&self) -> &[Param] {
        &[]
    }

    /// The parameters, mutably, in the same order.
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }
}
