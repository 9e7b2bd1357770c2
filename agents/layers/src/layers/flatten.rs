//! Flatten.

use super::linear::copy_into;
use super::{Layer, Mode};
use crate::buf::Buf;
use crate::error::{Error, Result, shape_err};
use ndarray::{ArrayViewD, IxDyn};

/// Flattens every axis after the batch axis.
///
/// - forward: `y[n, :] = vec(x[n, …])` in row-major order;
/// - derivative: `∂L/∂x` is `dy` reshaped back to the input's shape.
///
/// ```
/// use rl_layers::{Flatten, Layer, Mode};
/// let mut f = Flatten::new();
/// let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 3, 4, 5]));
/// assert_eq!(f.forward(x.view(), Mode::Eval).unwrap().shape(), &[2, 60]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Flatten {
    /// The shape of the latest input (both modes: flattening has no other state).
    x_shape: Option<Vec<usize>>,
    /// The latest forward was [`Flatten::pass_through`]: `out` is stale.
    passed_through: bool,
    out: Option<Buf>,
    dx: Buf,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A forward that copies nothing, for a [`crate::Sequential`] that hands
    /// the next layer the previous layer's output reshaped to `[N, D]`: in
    /// the MinAtar network the copy moved 128 KiB per batch, each way.
    /// Only the input's shape is kept, for [`Flatten::unflatten`].
    pub(crate) fn pass_through(&mut self, x_shape: &[usize]) {
        let shape = self.x_shape.get_or_insert_with(Vec::new);
        shape.clear();
        shape.extend_from_slice(x_shape);
        self.passed_through = true;
    }

    /// Whether the latest forward was [`Flatten::pass_through`].
    pub(crate) fn passed_through(&self) -> bool {
        self.passed_through
    }

    /// The backward of a pass-through forward: `dy` reshaped, not copied,
    /// when it is contiguous (otherwise `None`: use [`Layer::backward`]).
    pub(crate) fn unflatten<'g>(
        &self,
        dy: ArrayViewD<'g, f32>,
    ) -> Result<Option<ArrayViewD<'g, f32>>> {
        let shape = checked_x_shape(&self.x_shape, &dy)?;
        if !dy.is_standard_layout() {
            return Ok(None);
        }
        Ok(dy.into_shape_with_order(IxDyn(shape)).ok())
    }
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }

    /// # Shapes
    /// `x: [N, d₁, …, d_k]` → `y: [N, d₁⋯d_k]`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        if x.ndim() < 1 {
            return Err(shape_err("flatten", "[N, …]", x.shape()));
        }
        let n = x.shape()[0];
        let shape = self.x_shape.get_or_insert_with(Vec::new);
        shape.clear();
        shape.extend_from_slice(x.shape());
        let d = x.shape()[1..].iter().product();
        self.passed_through = false;
        let out = self.out.get_or_insert_with(Buf::default);
        out.reshape(&[n, d]);
        copy_into(out, &x);
        Ok(out.view())
    }

    /// # Shapes
    /// `dy: [N, D]` → `dx` in the shape of the forward's `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        let shape = checked_x_shape(&self.x_shape, &dy)?;
        self.dx.reshape(shape);
        copy_into(&mut self.dx, &dy);
        Ok(self.dx.view())
    }

    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.out.as_ref().map(Buf::view)
    }
}

/// The forward input's shape, once `dy` is checked against it.
fn checked_x_shape<'s>(
    x_shape: &'s Option<Vec<usize>>,
    dy: &ArrayViewD<'_, f32>,
) -> Result<&'s [usize]> {
    let shape = x_shape
        .as_ref()
        .ok_or(Error::NoForwardCache { layer: "flatten" })?;
    let len: usize = shape.iter().product();
    if dy.len() != len || dy.ndim() != 2 || dy.shape()[0] != shape[0] {
        return Err(shape_err(
            "flatten",
            format!("dy of shape [{}, {}]", shape[0], len / shape[0].max(1)),
            dy.shape(),
        ));
    }
    Ok(shape)
}
