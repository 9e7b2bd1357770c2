//! A training step for benchmarks and allocation tests: a train-mode
//! forward of a [`Sequential`], a backward from a fixed upstream gradient
//! and an optimiser step.
//!
//! No loss is computed: the gradient arriving at the output is given, so
//! the step times the layers and the optimiser and nothing built on them.
//! The gradient changes sign after every step, so that the weights swing
//! about their start: pushed the same way every step, they drift until
//! hidden units switch off for the whole batch (the 84×84 net's went from
//! 12% to 49% in a hundred steps), which changes the work being timed.
//! `benches/nets.rs` times it, `benches/pieces.rs` splits it by layer and
//! `tests/alloc.rs` checks that it does not allocate after warm-up.

use crate::error::Result;
use crate::init::Init;
use crate::layers::Mode;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::sequential::{Architecture, LayerSpec, Sequential, Size};
use ndarray::{ArrayD, IxDyn};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

/// Samples per step of the two conv nets below.
pub const BATCH: usize = 32;
/// Outputs of the two conv nets below.
pub const OUTPUTS: usize = 6;

/// Convolutions (each `(out channels, kernel, stride)`, unpadded, ReLU
/// after each), then Flatten, Affine `hidden`, ReLU, Affine `outputs`.
pub fn conv_net(convs: &[(usize, usize, usize)], hidden: usize, outputs: usize) -> Architecture {
    let mut layers = Vec::with_capacity(2 * convs.len() + 4);
    for &(out, kernel, stride) in convs {
        layers.push(LayerSpec::Conv {
            out: Size::Fixed(out),
            kernel,
            stride,
            padding: 0,
        });
        layers.push(LayerSpec::Relu);
    }
    layers.extend([
        LayerSpec::Flatten,
        LayerSpec::Affine(Size::Fixed(hidden)),
        LayerSpec::Relu,
        LayerSpec::Affine(Size::Fixed(outputs)),
    ]);
    Architecture(layers)
}

/// 0/1 values, about 8% of them 1, scattered: mostly empty binary planes,
/// inputs that take Conv2d's sparse path.
pub fn sparse_binary(shape: IxDyn) -> ArrayD<f32> {
    let mut k = 0usize;
    ArrayD::from_shape_fn(shape, |_| {
        k += 1;
        f32::from(u8::from((k * 7919) % 100 < 8))
    })
}

/// Sets every third value of `bias` to −1000, so that those units stay
/// off behind a ReLU for every input: Affine's backward then runs over the
/// live outputs only.
pub fn switch_off_every_third(bias: &mut ArrayD<f32>) {
    for (j, b) in bias.iter_mut().enumerate() {
        if j % 3 == 2 {
            *b = -1e3;
        }
    }
}

/// A network, its optimiser and fixed data for repeated training steps.
///
/// ```
/// let mut step = rl_layers::bench::TrainStep::conv_10x10(0).unwrap();
/// step.run().unwrap();
/// assert_eq!(step.net.output_shape(), [6]);
/// ```
#[derive(Clone, Debug)]
pub struct TrainStep {
    /// The network trained.
    pub net: Sequential,
    /// Its optimiser.
    pub optimizer: Optimizer,
    /// The input, uniform in `[0, 1)`, `[N, …input]`.
    pub input: ArrayD<f32>,
    /// The gradient of the loss with respect to the output, uniform in
    /// `[−0.01, 0.01)` and negated after every step, `[N, …output]`.
    pub upstream: ArrayD<f32>,
}

impl TrainStep {
    /// `arch` built for per-sample input `input` (He-uniform weights), with
    /// `BATCH` random inputs and upstream gradients, all drawn from `seed`.
    pub fn new(
        arch: &Architecture,
        input: &[usize],
        optimizer: OptimizerConfig,
        seed: u64,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let net = arch.build(input, &[], Init::HeUniform, &mut rng)?;
        let batched = |shape: &[usize]| {
            let dims: Vec<usize> = std::iter::once(BATCH)
                .chain(shape.iter().copied())
                .collect();
            IxDyn(&dims)
        };
        let input = ArrayD::from_shape_fn(batched(input), |_| rng.random::<f32>());
        let upstream = ArrayD::from_shape_fn(batched(net.output_shape()), |_| {
            rng.random_range(-0.01..0.01)
        });
        Ok(Self {
            net,
            optimizer: optimizer.build()?,
            input,
            upstream,
        })
    }

    /// Conv 16 3×3/1, Affine 128, Affine 6 on `[4, 10, 10]` inputs, with
    /// centered RMSProp (lr 2.5e-4, α 0.95, ε 0.01).
    pub fn conv_10x10(seed: u64) -> Result<Self> {
        let optimizer = OptimizerConfig::RmsProp {
            lr: 2.5e-4,
            alpha: 0.95,
            eps: 0.01,
            centered: true,
        };
        let arch = conv_net(&[(16, 3, 1)], 128, OUTPUTS);
        Self::new(&arch, &[4, 10, 10], optimizer, seed)
    }

    /// Conv 32 8×8/4, Conv 64 4×4/2, Conv 64 3×3/1, Affine 512, Affine 6 on
    /// `[4, 84, 84]` inputs, with Adam (lr 1e-4, ε 1.5e-4).
    pub fn conv_84x84(seed: u64) -> Result<Self> {
        let optimizer = OptimizerConfig::Adam {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1.5e-4,
        };
        let arch = conv_net(&[(32, 8, 4), (64, 4, 2), (64, 3, 1)], 512, OUTPUTS);
        Self::new(&arch, &[4, 84, 84], optimizer, seed)
    }

    /// Forward in train mode, backward from `upstream`, one optimiser step,
    /// then `upstream` negated. After the first call it makes no heap
    /// allocation.
    pub fn run(&mut self) -> Result<()> {
        self.net.forward(self.input.view(), Mode::Train)?;
        self.net.backward(self.upstream.view())?;
        self.optimizer.step(&mut self.net)?;
        self.upstream.mapv_inplace(|g| -g);
        Ok(())
    }
}

/// Calls of `f` per second: three untimed calls first (buffers, optimiser
/// state, caches), then calls until `budget` has passed and at least
/// `min_calls` were made.
pub fn calls_per_second<E>(
    budget: Duration,
    min_calls: u64,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<f64, E> {
    for _ in 0..3 {
        f()?;
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while calls < min_calls || start.elapsed() < budget {
        f()?;
        calls += 1;
    }
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}
