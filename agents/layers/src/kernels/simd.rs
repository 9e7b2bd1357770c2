//! Run-time selection of AVX-512 and AVX2 + FMA builds of hot loops.
//!
//! The crate is compiled for baseline x86-64 (SSE2), where LLVM vectorises 4
//! wide and has no fused multiply-add. A [`Kernel`] is compiled again inside
//! `#[target_feature]` functions, and [`dispatch`] picks the widest build the
//! CPU supports:
//!
//! - AVX-512 (F and VL, with AVX2 and FMA), for kernels that set
//!   [`Kernel::WIDE`]: their [`Kernel::run_wide`] body uses 16-lane tiles and
//!   the 32 vector registers;
//! - AVX2 + FMA, [`Kernel::run`] with `FMA = true` (also what a kernel
//!   without a wide body runs on an AVX-512 CPU);
//! - baseline, `FMA = false`.
//!
//! Calling a target-feature function is the crate's one `unsafe` block, below.
//!
//! `Kernel::run` and `Kernel::run_wide` must be `#[inline(always)]`, and so
//! must everything they call that should get the wider instructions: a
//! function that is not inlined is compiled once, for the baseline.
//!
//! [`set_simd_limit`] caps the build used on the calling thread, so that tests
//! cover every path on a CPU that has them all.

use std::cell::Cell;

/// An instruction-set level of the hot loops, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Baseline x86-64 (SSE2), or no x86 at all.
    Baseline,
    /// AVX2 with fused multiply-add.
    Avx2Fma,
    /// AVX-512 F and VL, with AVX2 and FMA.
    Avx512,
}

thread_local! {
    static LIMIT: Cell<Simd> = const { Cell::new(Simd::Avx512) };
}

/// Caps the instruction-set level used by this crate's kernels on the calling
/// thread (for tests and benchmarks; the default is the highest level the CPU
/// supports). Returns the previous cap.
///
/// ```
/// use rl_layers::{Simd, set_simd_limit, simd_level};
/// let before = set_simd_limit(Simd::Baseline);
/// assert_eq!(simd_level(), Simd::Baseline);
/// set_simd_limit(before);
/// ```
pub fn set_simd_limit(limit: Simd) -> Simd {
    LIMIT.with(|l| l.replace(limit))
}

/// The level this thread's kernels run at: the CPU's highest, capped by [`set_simd_limit`].
pub fn simd_level() -> Simd {
    detected().min(LIMIT.with(Cell::get))
}

/// The highest level the CPU supports.
#[inline(always)]
fn detected() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Simd::Avx512;
            }
            return Simd::Avx2Fma;
        }
    }
    Simd::Baseline
}

/// A computation with one body and up to three builds.
pub(crate) trait Kernel: Sized {
    /// What the computation returns.
    type Output;
    /// Whether [`Kernel::run_wide`] has a body of its own for AVX-512.
    const WIDE: bool = false;
    /// The body. `FMA` is true in the AVX2 + FMA build, where `f32::mul_add`
    /// is one instruction (elsewhere it is a slow libm call).
    fn run<const FMA: bool>(self) -> Self::Output;
    /// The AVX-512 body, used when [`Kernel::WIDE`] is set.
    #[inline(always)]
    fn run_wide(self) -> Self::Output {
        self.run::<true>()
    }
}

/// Runs `k`, built for the widest instruction set the CPU has (and the thread allows).
#[inline(always)]
pub(crate) fn dispatch<K: Kernel>(k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        let level = simd_level();
        if level >= Simd::Avx2Fma {
            #[allow(unsafe_code)]
            // SAFETY: `avx512` requires AVX-512 F and VL, AVX2 and FMA, and
            // `avx2_fma` AVX2 and FMA; `simd_level` returns `Avx512` only when
            // the CPU was detected to have all four, `Avx2Fma` only when it has
            // the last two. Both bodies are safe code.
            return unsafe {
                if K::WIDE && level == Simd::Avx512 {
                    avx512(k)
                } else {
                    avx2_fma(k)
                }
            };
        }
    }
    k.run::<false>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2_fma<K: Kernel>(k: K) -> K::Output {
    k.run::<true>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn avx512<K: Kernel>(k: K) -> K::Output {
    k.run_wide()
}
