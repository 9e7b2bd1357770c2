//! Seeded weight initialisers.
//!
//! With `fan_in` the number of inputs of one output unit (`in` for Affine,
//! `C·KH·KW` for Conv2d) and `fan_out` the number of outputs fed by one input
//! (`out` for Affine, `F·KH·KW` for Conv2d):
//!
//! | initialiser | distribution |
//! |---|---|
//! | He (Kaiming) uniform | `U(−b, b)`, `b = √(6 / fan_in)` |
//! | He normal | `N(0, σ²)`, `σ = √(2 / fan_in)` |
//! | Xavier (Glorot) uniform | `U(−b, b)`, `b = √(6 / (fan_in + fan_out))` |
//! | Xavier normal | `N(0, σ²)`, `σ = √(2 / (fan_in + fan_out))` |
//! | PyTorch default | `U(−b, b)`, `b = 1/√fan_in` (weights and biases of `nn.Linear`/`nn.Conv2d`) |
//! | Orthogonal with gain `g` | `g · Q`, `Q` (semi-)orthogonal from the QR of a standard normal matrix |
//!
//! He et al. 2015 derive the He variants for ReLU networks; Glorot and Bengio
//! 2010 derive the Xavier variants for symmetric activations (tanh). Saxe et
//! al. 2014 propose orthogonal weights; policy-gradient code (OpenAI
//! Baselines, CleanRL's `layer_init`) uses them with gain √2 for hidden
//! layers, 0.01 for a policy head and 1 for a value head, and zero biases.

use crate::error::{Error, Result, try_array, try_zeros};
use ndarray::ArrayD;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// How the weights of Affine, MatMul and Conv2d layers are drawn.
///
/// ```
/// use rl_layers::Init;
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let w = Init::HeUniform.sample(&[128, 1024], 1024, 128, &mut rng).unwrap();
/// let bound = (6.0f32 / 1024.0).sqrt();
/// assert!(w.iter().all(|v| v.abs() <= bound));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Init {
    /// `U(−√(6/fan_in), √(6/fan_in))`.
    #[default]
    HeUniform,
    /// `N(0, 2/fan_in)`.
    HeNormal,
    /// `U(−√(6/(fan_in+fan_out)), +…)`.
    XavierUniform,
    /// `N(0, 2/(fan_in+fan_out))`.
    XavierNormal,
    /// `U(−1/√fan_in, 1/√fan_in)`: what PyTorch's `nn.Linear` and `nn.Conv2d` do by default.
    TorchDefault,
    /// `gain · Q` with orthonormal rows or columns, PyTorch's
    /// `nn.init.orthogonal_`: the weight is seen as a matrix of `shape[0]`
    /// rows (outputs) by the product of the rest, and `Q` comes from the QR
    /// decomposition of a standard normal matrix of that shape, with the
    /// signs that make `R`'s diagonal positive. Biases are zero.
    Orthogonal {
        /// The scale, finite and ≥ 0: √2 for ReLU layers, 0.01 for a
        /// policy head, 1 for a value head.
        gain: f32,
    },
}

impl Init {
    /// Draws an array of `shape` from this distribution; errors only when
    /// the allocator refuses the array.
    pub fn sample<R: Rng + ?Sized>(
        self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Result<ArrayD<f32>> {
        let fan_in = fan_in.max(1) as f32;
        let fan_out = fan_out.max(1) as f32;
        match self {
            Init::HeUniform => uniform(shape, (6.0 / fan_in).sqrt(), rng),
            Init::XavierUniform => uniform(shape, (6.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::TorchDefault => uniform(shape, 1.0 / fan_in.sqrt(), rng),
            Init::HeNormal => normal(shape, (2.0 / fan_in).sqrt(), rng),
            Init::XavierNormal => normal(shape, (2.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::Orthogonal { gain } => {
                self.validate()?;
                let gaussian = normal(shape, 1.0, rng)?;
                let rows = shape.first().copied().unwrap_or(1);
                let cols = gaussian.len() / rows.max(1);
                let mut weights = gaussian;
                let values = weights
                    .as_slice_mut()
                    .expect("a freshly drawn array is contiguous");
                orthogonalize(values, rows, cols, gain);
                Ok(weights)
            }
        }
    }

    /// Checks the initialiser's parameters (the gain of [`Init::Orthogonal`]).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Init::Orthogonal { gain } if !(gain.is_finite() && gain >= 0.0) => {
                Err(Error::InvalidConfig {
                    what: "orthogonal initialisation",
                    field: "gain",
                    reason: format!("must be finite and ≥ 0, got {gain}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// The bias that goes with this weight initialiser: zeros, except for
    /// [`Init::TorchDefault`], which draws biases from `U(−1/√fan_in, 1/√fan_in)`.
    pub fn sample_bias<R: Rng + ?Sized>(
        self,
        len: usize,
        fan_in: usize,
        rng: &mut R,
    ) -> Result<ArrayD<f32>> {
        match self {
            Init::TorchDefault => uniform(&[len], 1.0 / (fan_in.max(1) as f32).sqrt(), rng),
            _ => try_zeros("biases", &[len]),
        }
    }
}

fn uniform<R: Rng + ?Sized>(shape: &[usize], bound: f32, rng: &mut R) -> Result<ArrayD<f32>> {
    try_array("weights", shape, || rng.random_range(-bound..=bound))
}

fn normal<R: Rng + ?Sized>(shape: &[usize], std: f32, rng: &mut R) -> Result<ArrayD<f32>> {
    let dist = Normal::new(0.0f32, std).expect("a finite positive standard deviation");
    try_array("weights", shape, || dist.sample(rng))
}

/// [`Init::Orthogonal`]'s construction from a given normal matrix, public
/// so that it can be checked against PyTorch's on the same draws.
///
/// Replaces the `rows × cols` row-major matrix `values` by `gain · Q`,
/// where `Q` is the orthonormal factor of its QR decomposition with `R`'s
/// diagonal made positive (of its transpose when `rows < cols`, so that the
/// rows come out orthonormal): the same `Q` as PyTorch's `orthogonal_` gets
/// from the same normal matrix.
///
/// Gram–Schmidt in f64, each column orthogonalised twice ("twice is
/// enough", Giraud et al. 2005): the result is orthonormal to rounding even
/// when the columns are nearly dependent. A column that is dependent on the
/// ones before it (a matrix of lower rank, which a normal draw gives with
/// probability 0) is left at zero.
///
/// # Panics
/// When `values` does not hold `rows × cols` entries.
pub fn orthogonalize(values: &mut [f32], rows: usize, cols: usize, gain: f32) {
    assert_eq!(
        values.len(),
        rows * cols,
        "orthogonalize: a rows × cols matrix"
    );
    // Columns of the tall matrix: those of `values`, or its rows when wide.
    let wide = rows < cols;
    let (m, n) = if wide { (cols, rows) } else { (rows, cols) };
    let at = |i: usize, j: usize| if wide { j * cols + i } else { i * cols + j };
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..m).map(|i| f64::from(values[at(i, j)])).collect())
        .collect();
    for j in 0..n {
        let (done, rest) = q.split_at_mut(j);
        let column = &mut rest[0];
        let norm_before = norm(column);
        for _pass in 0..2 {
            for previous in done.iter() {
                let projection: f64 = previous.iter().zip(column.iter()).map(|(a, b)| a * b).sum();
                column
                    .iter_mut()
                    .zip(previous)
                    .for_each(|(c, p)| *c -= projection * p);
            }
        }
        let length = norm(column);
        // R's diagonal entry is `length`, positive: no sign to fix.
        let scale = if length > norm_before * 1e-12 && length > 0.0 {
            1.0 / length
        } else {
            0.0
        };
        column.iter_mut().for_each(|c| *c *= scale);
    }
    for (j, column) in q.iter().enumerate() {
        for (i, &v) in column.iter().enumerate() {
            values[at(i, j)] = (v * f64::from(gain)) as f32;
        }
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// `W Wᵀ = gain² I` for a wide weight, `Wᵀ W = gain² I` for a tall one.
    #[test]
    fn orthogonal_weights_are_orthogonal_and_scaled() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (shape, gain) in [
            (vec![16usize, 64], 2f32.sqrt()),
            (vec![64, 16], 0.01),
            (vec![16, 4, 3, 3], 1.0),
            (vec![7, 7], 1.0),
        ] {
            let init = Init::Orthogonal { gain };
            let w = init.sample(&shape, 0, 0, &mut rng).unwrap();
            let (rows, cols) = (shape[0], w.len() / shape[0]);
            let w = w.into_shape_with_order((rows, cols)).unwrap();
            let w = w.mapv(f64::from);
            let gram = if w.nrows() <= w.ncols() {
                w.dot(&w.t())
            } else {
                w.t().dot(&w)
            };
            let scale = f64::from(gain) * f64::from(gain);
            for ((i, j), &v) in gram.indexed_iter() {
                let expected = if i == j { scale } else { 0.0 };
                assert!(
                    (v - expected).abs() <= 1e-5 * scale.max(1e-4),
                    "{shape:?} gain {gain}: gram[{i}, {j}] = {v}"
                );
            }
            assert!(
                init.sample_bias(rows, 0, &mut rng)
                    .unwrap()
                    .iter()
                    .all(|&b| b == 0.0)
            );
        }
    }

    #[test]
    fn orthogonal_gain_is_checked_and_named() {
        for gain in [-1.0, f32::NAN, f32::INFINITY] {
            let error = Init::Orthogonal { gain }
                .validate()
                .unwrap_err()
                .to_string();
            assert!(error.contains("gain"), "{error}");
        }
        let init: Init = serde_json::from_str(r#"{"orthogonal": {"gain": 0.01}}"#).unwrap();
        assert_eq!(init, Init::Orthogonal { gain: 0.01 });
        assert!(serde_json::from_str::<Init>(r#"{"orthogonal": {"gian": 1}}"#).is_err());
    }
}
