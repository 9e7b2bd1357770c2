//! Deterministic test inputs for the unit tests of the GEMM, of the
//! convolution strategies and of the sparse paths of Affine and Conv2d,
//! which run at every SIMD level and so cannot take a dev-dependency
//! generator through the layer API; and the levels they run at.

use crate::kernels::simd::{Simd, set_simd_limit, simd_level};

/// Every SIMD level this CPU has, lowest first.
pub(crate) fn simd_levels() -> Vec<Simd> {
    let top = set_simd_limit(Simd::Avx512);
    let have = simd_level();
    set_simd_limit(top);
    [Simd::Baseline, Simd::Avx2Fma, Simd::Avx512]
        .into_iter()
        .filter(|&l| l <= have)
        .collect()
}

/// Numerical Recipes' 32-bit LCG: the top 24 bits of each state.
pub(crate) fn lcg_bits(mut seed: u32) -> impl FnMut() -> u32 {
    move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        seed >> 8
    }
}

/// [`lcg_bits`] as uniform values in `[-0.5, 0.5)`.
pub(crate) fn lcg_centred(seed: u32) -> impl FnMut() -> f32 {
    let mut bits = lcg_bits(seed);
    move || bits() as f32 / (1u32 << 24) as f32 - 0.5
}
