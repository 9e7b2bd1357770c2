//! Neural-network building blocks (layers, losses, optimisers) on ndarray, from first principles.
//!
//! The crate knows nothing about reinforcement learning. Arrays are `f32`,
//! batch first, images NCHW. Layers follow one contract (see [`layers`]):
//! `forward(x, mode)` caches what backward needs in typed `Option` fields,
//! `backward(dy)` returns `dx` and stores parameter gradients, and a separate
//! [`Optimizer`] visits `(parameter, gradient)` pairs.
//!
//! # Build, train and save a network
//!
//! Write the architecture as data; input sizes are inferred and named sizes
//! (here `"classes"`) are given at build time:
//!
//! ```
//! use rand::SeedableRng;
//! use rl_layers::{Architecture, Init, Loss, Mode, OptimizerConfig};
//!
//! # fn main() -> rl_layers::Result<()> {
//! let arch: Architecture = serde_json::from_str(r#"["flatten", {"affine": 8}, "tanh", {"affine": "classes"}]"#).unwrap();
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let mut net = arch.build(&[2], &[("classes", 2)], Init::XavierUniform, &mut rng)?;
//! let mut opt = OptimizerConfig::adam(0.05).build()?;
//!
//! // XOR, one-hot targets
//! let x = ndarray::arr2(&[[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).into_dyn();
//! let t = ndarray::arr2(&[[1.0f32, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]).into_dyn();
//! let mut grad = ndarray::ArrayD::zeros(t.raw_dim());
//! let mut loss = f32::INFINITY;
//! for _ in 0..300 {
//!     let logits = net.forward(x.view(), Mode::Train)?;
//!     loss = Loss::SoftmaxCrossEntropy.compute_into(logits, t.view(), grad.view_mut())?;
//!     net.backward(grad.view())?;
//!     opt.step(&mut net)?;
//! }
//! assert!(loss < 0.05);
//!
//! // Save in safetensors (opens in Python with safetensors.numpy.load_file) and load back.
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("xor.safetensors");
//! net.save_safetensors(&path)?;
//! let mut copy = arch.build(&[2], &[("classes", 2)], Init::XavierUniform, &mut rng)?;
//! copy.load_safetensors(&path)?;
//! assert_eq!(copy.named_params(), net.named_params());
//! # Ok(())
//! # }
//! ```
//!
//! # Training without allocation
//!
//! [`Sequential::forward`] returns a view into a buffer the network owns,
//! [`Loss::compute_into`] and [`Loss::compute_selected`] (a loss on one
//! chosen entry per row) write the gradient into a preallocated array, and
//! the optimiser keeps its state from one step to the next. After the first
//! step, a training loop built from these makes no heap allocation;
//! [`bench::TrainStep`] is such a step, which the benchmarks time and
//! `tests/alloc.rs` checks.

#![warn(missing_docs)]

pub mod bench;
mod buf;
mod distribution;
mod error;
mod init;
pub mod io;
mod kernels;
pub mod layers;
mod loss;
mod optim;
mod sequential;
mod shared_torso;
#[cfg(test)]
mod test_values;

pub use distribution::{Categorical, log_softmax};
pub use error::{Error, Result};
pub use init::{Init, orthogonalize};
pub use kernels::simd::{Simd, set_simd_limit, simd_level};
pub use kernels::sparse::{SPARSE_MAX_DENSITY, set_sparse_max_density};
pub use layers::{
    Affine, Conv2d, Dsilu, Flatten, Hardtanh, Layer, LeakyRelu, MatMul, MaxPool2d, Mode, Param,
    Relu, Sigmoid, Silu, Softmax, Tanh,
};
pub use layers::{CONV_SPARSE_MAX_DENSITY, set_conv_sparse_max_density};
pub use loss::Loss;
pub use optim::{
    LrSchedule, Optimizer, OptimizerConfig, OptimizerState, Parameters, clip_grad_norm, grad_norm,
};
pub use sequential::{
    AnyLayer, Architecture, LayerSpec, MAX_LAYER_WIDTH, MAX_PARAMETERS, MAX_WINDOW, NetworkPlan,
    ParamName, Sequential, Size,
};
pub use shared_torso::SharedTorso;
