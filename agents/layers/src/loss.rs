//! Losses. Each returns the loss and its gradient with respect to the prediction.
//!
//! | loss | per-element term, `a = y − t` | reduction |
//! |---|---|---|
//! | [`Loss::SquaredError`] | `½ a²` (the ½ cancels the 2 of the derivative) | sum over features, mean over the batch |
//! | [`Loss::MeanSquaredError`] | `a²` | mean over all elements |
//! | [`Loss::BinaryCrossEntropy`] | `−t ln y − (1 − t) ln(1 − y)` | mean over all elements |
//! | [`Loss::CrossEntropy`] | `−Σ_k t_k ln y_k` (per sample) | mean over the batch |
//! | [`Loss::SoftmaxCrossEntropy`] | `−Σ_k t_k ln softmax(x)_k` (per sample) | mean over the batch |
//! | [`Loss::Huber`] | `½ a²` if `\|a\| ≤ δ`, else `δ (\|a\| − ½ δ)` | mean over all elements |
//!
//! The batch is the first axis. All are finite for logits of ±1e4 and for
//! probabilities of exactly 0 or 1: logarithms are clamped at −100 and
//! divisions at 1e-12 (PyTorch's `BCELoss` convention), and softmax goes
//! through log-sum-exp.

use crate::error::{Error, Result, shape_err};
use crate::layers::softmax::softmax_row;
use ndarray::{
    ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD, IxDyn, Zip,
};
use serde::{Deserialize, Serialize};

/// The loss functions.
///
/// ```
/// use rl_layers::Loss;
/// let y = ndarray::arr2(&[[0.5f32, 3.0]]).into_dyn();
/// let t = ndarray::arr2(&[[0.0f32, 0.0]]).into_dyn();
/// let (l, g) = Loss::Huber { delta: 1.0 }.compute(y.view(), t.view()).unwrap();
/// // (½·0.25 + (3 − ½)) / 2
/// assert!((l - 1.3125).abs() < 1e-6);
/// assert_eq!(g.as_slice().unwrap(), &[0.25, 0.5]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    /// `L = (1/N) Σ_n ½ Σ_k (y − t)²`; `∂L/∂y = (y − t)/N`.
    SquaredError,
    /// `L = mean (y − t)²`; `∂L/∂y = 2 (y − t)/numel` (PyTorch's `MSELoss`).
    MeanSquaredError,
    /// On probabilities `y ∈ [0, 1]`: `L = mean −[t ln y + (1 − t) ln(1 − y)]`;
    /// `∂L/∂y = (y − t) / (y (1 − y)) / numel` (PyTorch's `BCELoss`).
    BinaryCrossEntropy,
    /// On probabilities `y` of shape `[N, K]`: `L = −(1/N) Σ t ln y`; `∂L/∂y = −t / y / N`.
    CrossEntropy,
    /// On logits `x` of shape `[N, K]`, fused with softmax:
    /// `L = (1/N) Σ_n [Σ_k t_k · lse(x_n) − Σ_k t_k x_k]`;
    /// `∂L/∂x = (softmax(x) · Σ_k t_k − t)/N` (PyTorch's `CrossEntropyLoss` with probability targets).
    SoftmaxCrossEntropy,
    /// Huber loss with threshold `δ > 0`: quadratic for `|a| ≤ δ`, linear outside;
    /// `∂L/∂y = clamp(a, −δ, δ)/numel` (PyTorch's `HuberLoss`; `δ = 1` is `SmoothL1Loss`).
    /// The notes write the quadratic branch's condition as `|a| ≤ 1`; it is `|a| ≤ δ`.
    Huber {
        /// The threshold δ between the quadratic and the linear part.
        delta: f32,
    },
}

const LOG_FLOOR: f32 = -100.0;
const DIV_FLOOR: f32 = 1e-12;

fn clamped_ln(v: f32) -> f32 {
    v.ln().max(LOG_FLOOR)
}

impl Loss {
    /// Checks the loss's parameters (`δ > 0` and finite for Huber).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Loss::Huber { delta } if !(delta.is_finite() && delta > 0.0) => {
                Err(Error::InvalidConfig {
                    what: "huber loss",
                    field: "delta",
                    reason: format!("must be finite and > 0, got {delta}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// The loss and its per-element derivative for element-wise losses, before reduction.
    fn element(&self, y: f32, t: f32) -> Option<(f32, f32)> {
        let a = y - t;
        Some(match *self {
            Loss::SquaredError => (0.5 * a * a, a),
            Loss::MeanSquaredError => (a * a, 2.0 * a),
            Loss::BinaryCrossEntropy => (
                -(t * clamped_ln(y) + (1.0 - t) * clamped_ln(1.0 - y)),
                a / (y * (1.0 - y)).max(DIV_FLOOR),
            ),
            Loss::Huber { delta } => {
                if a.abs() <= delta {
                    (0.5 * a * a, a)
                } else {
                    (delta * (a.abs() - 0.5 * delta), delta * a.signum())
                }
            }
            Loss::CrossEntropy | Loss::SoftmaxCrossEntropy => return None,
        })
    }

    /// Computes the loss and a freshly allocated gradient.
    ///
    /// # Shapes
    /// `y` and `t` of the same shape, batch first; `[N, K]` for the cross-entropies.
    /// The gradient has the shape of `y`.
    pub fn compute(
        &self,
        y: ArrayViewD<'_, f32>,
        t: ArrayViewD<'_, f32>,
    ) -> Result<(f32, ArrayD<f32>)> {
        let mut grad = ArrayD::zeros(IxDyn(y.shape()));
        let l = self.compute_into(y, t, grad.view_mut())?;
        Ok((l, grad))
    }

    /// Computes the loss and writes `∂L/∂y` into `grad`, without allocating.
    ///
    /// # Shapes
    /// `y`, `t` and `grad` of the same shape, batch first; `[N, K]` for the cross-entropies.
    pub fn compute_into(
        &self,
        y: ArrayViewD<'_, f32>,
        t: ArrayViewD<'_, f32>,
        mut grad: ArrayViewMutD<'_, f32>,
    ) -> Result<f32> {
        self.validate()?;
        if y.shape() != t.shape() || y.shape() != grad.shape() || y.ndim() == 0 {
            return Err(shape_err(
                "loss",
                format!("y, t and grad of one shape {:?}", y.shape()),
                t.shape(),
            ));
        }
        let n = y.shape()[0].max(1) as f32;
        let numel = y.len().max(1) as f32;
        match self {
            Loss::CrossEntropy | Loss::SoftmaxCrossEntropy => {
                if y.ndim() != 2 {
                    return Err(shape_err("cross-entropy", "[N, K]", y.shape()));
                }
                let y2 = y.into_dimensionality().expect("2-D");
                let t2 = t.into_dimensionality().expect("2-D");
                let g2 = grad.view_mut().into_dimensionality().expect("2-D");
                Ok(if *self == Loss::CrossEntropy {
                    cross_entropy(y2, t2, g2)
                } else {
                    softmax_cross_entropy(y2, t2, g2)
                })
            }
            _ => {
                // SquaredError averages over the batch only; the rest over every element.
                let scale = if *self == Loss::SquaredError {
                    1.0 / n
                } else {
                    1.0 / numel
                };
                let mut total = 0.0f64;
                Zip::from(&mut grad).and(&y).and(&t).for_each(|g, &y, &t| {
                    let (l, d) = self.element(y, t).expect("element-wise loss");
                    total += f64::from(l);
                    *g = d * scale;
                });
                Ok((total * f64::from(scale)) as f32)
            }
        }
    }

    /// The loss on one selected entry per row, for example the Q-value of the
    /// action taken: `L = (1/N) Σ_n ℓ(y[n, idx[n]], t[n])`. Writes `∂L/∂y`
    /// into `grad`, which is zero outside the selected entries. Element-wise
    /// losses only (an error for the cross-entropies).
    ///
    /// # Shapes
    /// `y: [N, K]`, `idx: [N]` with entries `< K`, `t: [N]`, `grad: [N, K]`.
    ///
    /// ```
    /// use rl_layers::Loss;
    /// let q = ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]);
    /// let target = ndarray::arr1(&[2.5f32, 3.0]);
    /// let mut dq = ndarray::Array2::zeros((2, 2));
    /// let l = Loss::Huber { delta: 1.0 }
    ///     .compute_selected(q.view(), &[1, 0], target.view(), dq.view_mut())
    ///     .unwrap();
    /// assert!((l - 0.0625).abs() < 1e-7);
    /// assert_eq!(dq, ndarray::arr2(&[[0.0, -0.25], [0.0, 0.0]]));
    /// ```
    pub fn compute_selected(
        &self,
        y: ArrayView2<'_, f32>,
        idx: &[usize],
        t: ArrayView1<'_, f32>,
        mut grad: ArrayViewMut2<'_, f32>,
    ) -> Result<f32> {
        self.validate()?;
        let (n, k) = y.dim();
        if idx.len() != n || t.len() != n || grad.dim() != (n, k) {
            return Err(shape_err(
                "selected loss",
                format!("idx [{n}], t [{n}] and grad [{n}, {k}] for y [{n}, {k}]"),
                &[idx.len(), t.len(), grad.nrows(), grad.ncols()],
            ));
        }
        if let Some(&bad) = idx.iter().find(|&&i| i >= k) {
            return Err(shape_err("selected loss", format!("indices < {k}"), &[bad]));
        }
        if self.element(0.5, 0.5).is_none() {
            return Err(Error::InvalidConfig {
                what: "selected loss",
                field: "loss",
                reason: "needs an element-wise loss, not a cross-entropy".into(),
            });
        }
        grad.fill(0.0);
        let scale = 1.0 / n.max(1) as f32;
        let mut total = 0.0f64;
        for (row, (&i, &tv)) in idx.iter().zip(t.iter()).enumerate() {
            let (l, d) = self.element(y[(row, i)], tv).expect("element-wise loss");
            total += f64::from(l);
            grad[(row, i)] = d * scale;
        }
        Ok((total * f64::from(scale)) as f32)
    }
}

fn cross_entropy(
    y: ArrayView2<'_, f32>,
    t: ArrayView2<'_, f32>,
    mut g: ArrayViewMut2<'_, f32>,
) -> f32 {
    let n = y.nrows().max(1) as f32;
    let mut total = 0.0f64;
    Zip::from(&mut g).and(&y).and(&t).for_each(|g, &y, &t| {
        total -= f64::from(t * clamped_ln(y));
        *g = -t / y.max(DIV_FLOOR) / n;
    });
    (total / f64::from(n)) as f32
}

fn softmax_cross_entropy(
    x: ArrayView2<'_, f32>,
    t: ArrayView2<'_, f32>,
    mut g: ArrayViewMut2<'_, f32>,
) -> f32 {
    let n = x.nrows().max(1) as f32;
    let mut total = 0.0f64;
    for ((xr, tr), mut gr) in x.rows().into_iter().zip(t.rows()).zip(g.rows_mut()) {
        // lse(x) = m + ln Σ e^(x − m)
        let m = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = xr.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + s.ln();
        let tsum: f32 = tr.sum();
        // −Σ t (x − lse), in f64 so that ±1e4 logits lose no digits
        total += tr
            .iter()
            .zip(xr)
            .map(|(&t, &x)| -f64::from(t) * (f64::from(x) - f64::from(lse)))
            .sum::<f64>();
        gr.assign(&xr);
        if gr.is_standard_layout() {
            softmax_row(gr.as_slice_mut().expect("standard layout"));
        } else {
            let inv = 1.0 / s;
            gr.mapv_inplace(|v| (v - m).exp() * inv);
        }
        // ∂L/∂x = (softmax(x) Σt − t)/N
        Zip::from(&mut gr)
            .and(&tr)
            .for_each(|g, &t| *g = (*g * tsum - t) / n);
    }
    (total / f64::from(n)) as f32
}
