//! The compute kernels behind the layers: how a product or a convolution is
//! computed fast, as opposed to what a layer computes (each layer's formula
//! lives in its own file under [`crate::layers`]).
//!
//! - [`simd`]: run-time choice of the AVX-512, AVX2 + FMA or baseline build of a kernel;
//! - [`gemm`]: single-precision matrix products (blocked, panel and
//!   dot-product paths over register-tile micro-kernels);
//! - [`sparse`]: the fully connected layers' zero-skipping eval forward and
//!   their backward over live outputs;
//! - [`conv`]: the convolution strategies that `Conv2d` dispatches to.

pub(crate) mod conv;
pub(crate) mod gemm;
pub(crate) mod simd;
pub(crate) mod sparse;
