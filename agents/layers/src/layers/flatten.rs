//! Flatten.

use super::linear::copy_into;
use super::{Layer, Mode};
use crate::buf::Buf;
use crate::error::{Error, Result, shape_err};
use ndarray::ArrayViewD;

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
    out: Option<Buf>,
    dx: Buf,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Self::default()
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
        let out = self.out.get_or_insert_with(Buf::default);
        out.reshape(&[n, d]);
        copy_into(out, &x);
        Ok(out.view())
    }

    /// # Shapes
    /// `dy: [N, D]` → `dx` in the shape of the forward's `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        let shape = self
            .x_shape
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
        self.dx.reshape(shape);
        copy_into(&mut self.dx, &dy);
        Ok(self.dx.view())
    }

    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.out.as_ref().map(Buf::view)
    }
}
