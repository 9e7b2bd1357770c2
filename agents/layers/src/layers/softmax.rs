//! Softmax.

use super::linear::copy_into;
use super::{Layer, Mode};
use crate::buf::Buf;
use crate::error::{Error, Result, shape_err};
use ndarray::ArrayViewD;

/// Softmax over the last axis.
///
/// - forward: `y_k = e^(x_k − m) / Σ_j e^(x_j − m)` with `m = max_j x_j`, so
///   logits of ±1e4 neither overflow nor produce NaN;
/// - derivative: `∂L/∂x = y ⊙ (dy − Σ_k dy_k y_k)`.
///
/// For classification, prefer the fused [`crate::Loss::SoftmaxCrossEntropy`]:
/// its gradient `(y − t)/N` is better conditioned than chaining this layer and
/// a cross-entropy.
///
/// ```
/// use rl_layers::{Layer, Mode, Softmax};
/// let mut s = Softmax::new();
/// let y = s.forward(ndarray::arr2(&[[1e4f32, 0.0]]).into_dyn().view(), Mode::Eval).unwrap();
/// assert_eq!(y.as_slice().unwrap(), &[1.0, 0.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Softmax {
    y: Option<Buf>,
    dx: Buf,
}

impl Softmax {
    /// A softmax layer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// In-place softmax of one row.
pub(crate) fn softmax_row(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    let inv = 1.0 / s;
    row.iter_mut().for_each(|v| *v *= inv);
}

impl Layer for Softmax {
    fn kind(&self) -> &'static str {
        "softmax"
    }

    /// # Shapes
    /// `x: [N, …, K]` → `y` of the same shape, each last-axis lane summing to 1.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        _mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        let k = x.shape().last().copied().unwrap_or(0);
        if x.ndim() < 1 || k == 0 {
            return Err(shape_err("softmax", "[…, K] with K ≥ 1", x.shape()));
        }
        let y = self.y.get_or_insert_with(Buf::default);
        y.reshape(x.shape());
        copy_into(y, &x);
        y.as_mut_slice().chunks_exact_mut(k).for_each(softmax_row);
        Ok(y.view())
    }

    /// # Shapes
    /// `dy` and `dx` have the shape of `x`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        let y = self
            .y
            .as_ref()
            .ok_or(Error::NoForwardCache { layer: "softmax" })?;
        if dy.shape() != y.shape() {
            return Err(shape_err(
                "softmax",
                format!("dy of shape {:?}", y.shape()),
                dy.shape(),
            ));
        }
        let k = *y.shape().last().expect("at least 1-D");
        self.dx.reshape(y.shape());
        copy_into(&mut self.dx, &dy);
        for (dx, y) in self
            .dx
            .as_mut_slice()
            .chunks_exact_mut(k)
            .zip(y.as_slice().chunks_exact(k))
        {
            // ∂L/∂x = y ⊙ (dy − ⟨dy, y⟩)
            let dot: f32 = dx.iter().zip(y).map(|(a, b)| a * b).sum();
            for (d, &yy) in dx.iter_mut().zip(y) {
                *d = yy * (*d - dot);
            }
        }
        Ok(self.dx.view())
    }

    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.y.as_ref().map(Buf::view)
    }
}
