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
//!
//! He et al. 2015 derive the He variants for ReLU networks; Glorot and Bengio
//! 2010 derive the Xavier variants for symmetric activations (tanh).

use crate::error::{Result, try_array, try_zeros};
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
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
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
