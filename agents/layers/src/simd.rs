//! Run-time selection of an AVX2 + FMA build of hot loops.
//!
//! The crate is compiled for baseline x86-64 (SSE2), where LLVM vectorises 4
//! wide and has no fused multiply-add. A [`Kernel`] is compiled a second time
//! inside a `#[target_feature(enable = "avx2,fma")]` function, and
//! [`dispatch`] picks that build when the CPU supports it. Calling a
//! target-feature function is the crate's one `unsafe` block, below.
//!
//! `Kernel::run` must be `#[inline(always)]`, and so must everything it calls
//! that should get the wider instructions: a function that is not inlined is
//! compiled once, for the baseline.

/// A computation with one body and two builds.
pub(crate) trait Kernel {
    /// What the computation returns.
    type Output;
    /// The body. `FMA` is true in the AVX2 + FMA build, where `f32::mul_add`
    /// is one instruction (elsewhere it is a slow libm call).
    fn run<const FMA: bool>(self) -> Self::Output;
}

/// Runs `k`, built for AVX2 + FMA when the CPU has both.
#[inline(always)]
pub(crate) fn dispatch<K: Kernel>(k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            #[allow(unsafe_code)]
            // SAFETY: `avx2_fma` requires only the AVX2 and FMA instruction sets,
            // which the CPU was just detected to support. Its body is safe code.
            return unsafe { avx2_fma(k) };
        }
    }
    k.run::<false>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2_fma<K: Kernel>(k: K) -> K::Output {
    k.run::<true>()
}
