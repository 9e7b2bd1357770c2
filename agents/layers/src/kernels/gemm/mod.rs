//! Single-precision GEMM, `C ← α·A·B + β·C`, on any strides, without heap
//! allocation after warm-up.
//!
//! Why not ndarray's `general_mat_mul` (the `matrixmultiply` crate)? It is
//! fast, but allocates its packing buffers on every call (the allocation test
//! counted 14 per training step of the MinAtar network). This is the same
//! Goto/BLIS scheme with packing buffers kept in a thread-local that only
//! grows. [`gemm`] picks one of three paths from the operands' shapes and
//! strides:
//!
//! - [`dot`]: A's rows and B's columns both contiguous along `k` (`x·Wᵀ` in
//!   Affine's forward, `dY·colᵀ` in Conv2d's weight gradient): packing B
//!   would mean transposing it; instead a `4 × 3` block of dot products reads
//!   both operands in place.
//! - [`panel`](mod@panel): A small (`M·K ≤ 64 Ki` floats) against a wide
//!   row-major B (`N ≥ 256`: Affine's `dyᵀ·x` and `dy·W`, Conv2d's `W₂ᵀ·dY`
//!   and one-sample forwards): A is packed whole once, then B is walked one
//!   column panel at a time. The AVX-512 build reads B's rows in place with
//!   an `8 × 32` tile (16 of the 32 registers accumulate; `M = 32` splits
//!   into whole tiles); the AVX2 build packs each panel and uses the
//!   `6 × 16` tile, with `4 × 16` tiles for a remainder of 2 or 4 rows (no
//!   rows computed for nothing when M is even).
//! - [`blocked`](mod@blocked): everything else, blocked in the Goto/BLIS
//!   way: column blocks of B (`NC`), then depth blocks (`KC`), packed into
//!   `NR`-wide panels; row blocks of A (`MC`), packed into `MR`-tall panels;
//!   a `MR × NR` micro-kernel accumulates `Σ_p a[p] ⊗ b[p]` in registers.
//!
//! Three entry points on the panel path take rows at offsets of one buffer:
//! [`gemm_offset_rows`], whose B rows lie anywhere (Conv2d's phased im2col
//! taps, read without an im2col copy; the live rows of `W` in Affine's
//! backward), [`gemm_scatter_add`], whose C rows are added in segment by
//! segment (Conv2d's col2im fused into the store), and [`gemm_rows_at`],
//! whose C rows are overwritten where they lie (the live rows of `∂L/∂W`).
//!
//! The micro-kernels ([`micro`]) are plain Rust over fixed-size arrays,
//! which LLVM turns into vector code; [`crate::kernels::simd::dispatch`] runs
//! their AVX-512 or AVX2 + FMA build. Their loops over tile rows are written
//! out by macros: as loops, LLVM vectorised across rows (gathers and
//! scatters), or kept the accumulators in memory, once a tile had more than
//! 12 of them.

mod blocked;
mod dot;
mod micro;
mod panel;
#[cfg(test)]
mod tests;

pub(crate) use micro::axpy;
pub(crate) use panel::{
    OffsetRows, ScatterRows, gemm_offset_rows, gemm_rows_at, gemm_scatter_add, offset_rows_apply,
    scatter_apply,
};

use crate::kernels::simd::{Kernel, dispatch};
use blocked::blocked;
use dot::{DM, DN, gemm_nt};
use micro::{MR, NR};
use ndarray::{ArrayView2, ArrayViewMut2};
use panel::{PANEL_A_MAX, PANEL_MIN_N, Rows, Strided, WMR, WNR, panel};
use std::cell::RefCell;

/// Scratch memory of one thread: packed A, packed B, and a row-major stand-in
/// for an output that is not row-major. Grown on first use, then reused.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) a: Vec<f32>,
    pub(super) b: Vec<f32>,
    pub(super) c: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` on this thread's packing buffers. They are moved out of the
/// thread-local (no allocation) so that the feature-specific code `f` calls
/// contains no thread-local access compiled without its features.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut scratch = SCRATCH.with(|s| s.take());
    let out = f(&mut scratch);
    SCRATCH.with(|s| s.replace(scratch));
    out
}

/// `c ← α·a·b + β·c`. When `β = 0`, `c` is not read (it may hold anything).
pub(crate) fn gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    assert_eq!(a.ncols(), b.nrows(), "gemm: inner dimensions");
    assert_eq!((a.nrows(), b.ncols()), c.dim(), "gemm: output shape");
    with_scratch(|scratch| run(alpha, a, b, beta, c, scratch));
}

fn run(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut Scratch,
) {
    // The dot-product path (below) keeps the AVX2 build: its AVX-512 build
    // measured slower (docs/perf/layers.md).
    let nt = a.strides()[1] == 1 && b.strides()[0] == 1 && a.ncols() >= 8;
    if nt {
        dispatch(Gemm::<false> {
            alpha,
            a,
            b,
            beta,
            c,
            scratch,
        });
    } else {
        dispatch(Gemm::<true> {
            alpha,
            a,
            b,
            beta,
            c,
            scratch,
        });
    }
}

/// One GEMM call; `W` says whether it may run the AVX-512 build.
struct Gemm<'a, 'b, 'c, const W: bool> {
    alpha: f32,
    a: ArrayView2<'a, f32>,
    b: ArrayView2<'a, f32>,
    beta: f32,
    c: &'b mut ArrayViewMut2<'c, f32>,
    scratch: &'b mut Scratch,
}

impl<const W: bool> Kernel for Gemm<'_, '_, '_, W> {
    type Output = ();
    const WIDE: bool = W;
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        gemm_portable::<FMA, MR, NR, 0>(
            self.alpha,
            self.a,
            self.b,
            self.beta,
            self.c,
            self.scratch,
        );
    }
    #[inline(always)]
    fn run_wide(self) {
        gemm_portable::<true, WMR, WNR, { usize::MAX }>(
            self.alpha,
            self.a,
            self.b,
            self.beta,
            self.c,
            self.scratch,
        );
    }
}

/// Picks the path. `FMA` selects fused multiply-adds in the micro-kernels
/// (only worth it where the instruction exists; elsewhere `mul_add` is a libm
/// call); `PM × PN` is the panel path's tile, and B is read in place there
/// when A has at most `IP` row panels (else packed).
#[inline(always)]
fn gemm_portable<const FMA: bool, const PM: usize, const PN: usize, const IP: usize>(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut Scratch,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale(c, beta);
        return;
    }
    if a.strides()[1] == 1
        && b.strides()[0] == 1
        && k >= 8
        && let Some(cs) = c.as_slice_mut()
    {
        // A·Bᵀ with both operands contiguous along k (x·Wᵀ, dY·colᵀ):
        // register-blocked dot products read them in place, no packing
        gemm_nt::<FMA, DM, DN, 8>(alpha, a, b.reversed_axes(), beta, cs, n);
        return;
    }
    let Scratch {
        a: apack,
        b: bpack,
        c: tmp,
    } = scratch;
    if b.strides()[1] == 1
        && m * k <= PANEL_A_MAX
        && n >= PANEL_MIN_N
        && let Some(cs) = c.as_slice_mut()
    {
        // a small A, packed whole, against row-major B one column panel at a time
        let mut c = Rows {
            cs,
            rows: Strided(n),
        };
        panel::<FMA, PM, PN, IP, _, _>(alpha, a, b, beta, &mut c, apack, bpack);
        return;
    }
    if let Some(cs) = c.as_slice_mut() {
        // row-major C: the common case, rows `n` apart
        blocked::<FMA>(alpha, a, b, beta, cs, n, apack, bpack);
        return;
    }
    // any other layout: compute into a row-major copy
    if tmp.len() < m * n {
        tmp.resize(m * n, 0.0);
    }
    let t = &mut tmp[..m * n];
    if beta != 0.0 {
        for (d, &v) in t.iter_mut().zip(c.iter()) {
            *d = v;
        }
    }
    blocked::<FMA>(alpha, a, b, beta, t, n, apack, bpack);
    for (d, &v) in c.iter_mut().zip(t.iter()) {
        *d = v;
    }
}

/// `c ← β·c` (`β = 0` writes zeros without reading).
fn scale(c: &mut ArrayViewMut2<'_, f32>, beta: f32) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.mapv_inplace(|v| v * beta);
    }
}
