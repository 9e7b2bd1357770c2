//! Conv2d forward and weight gradient touching only the non-zero inputs, for
//! the direct path's windows (stride 1 without padding). The layer takes it
//! instead of [`super::direct`] when at most [`CONV_SPARSE_MAX_DENSITY`] of
//! the input is non-zero, counted on every call.
//!
//! Why: a first convolution that reads 0/1 image planes, mostly zeros (the
//! densities measured are in docs/perf/layers.md), spends most of the dense
//! direct path's FMAs on zeros. Each non-zero input pixel
//! `(c, iy, ix)` of value `v` adds `v·W[:, c, ky, kx]` to the `F` outputs at
//! `(iy − ky, ix − kx)`, and `v·dy[n, :, iy − ky, ix − kx]` to
//! `∂L/∂W[:, c, ky, kx]`: both are `F`-wide additions, so the filters are
//! the contiguous dimension here (`W` transposed to `[C·KH·KW][F']`, the
//! output and `dy` of one sample held as `[OH·OW][F']`, `F'` = `F` rounded
//! up to 8), and the arithmetic is about the density times the dense path's.
//! What does not shrink with the density is moving each sample's output and
//! `dy` between `[F, L]` and `[L][F']` (most of a forward on an all-zero
//! batch): LLVM turns these transposes into single-float moves whatever the
//! formulation tried (see the transposes).
//!
//! The choice depends only on the shape and the input (its fraction of
//! non-zero entries against [`CONV_SPARSE_MAX_DENSITY`]), never on what is
//! cached, so a computation resumed from a checkpoint takes the same path at
//! every call as the uninterrupted one (the two paths round differently).

use super::Conv;
use crate::kernels::gemm::axpy;
use crate::kernels::simd::{Kernel, dispatch};
use crate::layers::Window;
use std::cell::Cell;

/// Filters per vector; `F` is padded to a multiple.
const LANES: usize = 8;

/// Most filters for the sparse path: the kernels are built for `F'` of 8,
/// 16, 24 and 32, so that a row of `F'` accumulators is a fixed-size array
/// (with slices of run-time length, every tap paid a loop and bounds checks).
const MAX_FILTERS: usize = 32;

/// Output positions per block of the transposes between `[F, L]` and `[L][F']`.
const BLOCK: usize = 8;

/// Largest fraction of non-zero inputs for which Conv2d takes its sparse
/// path, by default: below the density at which forward and weight
/// gradient together measured even with the dense direct path (the
/// measurements are in the repository's docs/perf/layers.md).
pub const CONV_SPARSE_MAX_DENSITY: f32 = 0.12;

thread_local! {
    static MAX_DENSITY: Cell<f32> = const { Cell::new(CONV_SPARSE_MAX_DENSITY) };
}

/// Sets, for the calling thread, the largest fraction of non-zero inputs for
/// which stride-1 unpadded convolutions take their sparse path (default
/// [`CONV_SPARSE_MAX_DENSITY`]; `1.0` whenever it applies, a negative value
/// never). For tests and benchmarks; returns the previous value.
///
/// ```
/// use rl_layers::{CONV_SPARSE_MAX_DENSITY, set_conv_sparse_max_density};
/// let before = set_conv_sparse_max_density(-1.0); // dense paths only
/// assert_eq!(set_conv_sparse_max_density(before), -1.0);
/// assert_eq!(before, CONV_SPARSE_MAX_DENSITY);
/// ```
pub fn set_conv_sparse_max_density(max_density: f32) -> f32 {
    MAX_DENSITY.with(|m| m.replace(max_density))
}

/// Whether the sparse path applies to input `x` for `f` filters and `l`
/// outputs per sample under window `win`: stride 1, no padding, whole
/// transpose blocks, and few enough non-zero inputs.
pub(crate) fn applies(win: Window, f: usize, l: usize, x: &[f32]) -> bool {
    let shaped = win.stride == 1 && win.padding == 0 && f <= MAX_FILTERS && l.is_multiple_of(BLOCK);
    if !shaped || x.is_empty() {
        return false;
    }
    let max_density = MAX_DENSITY.with(Cell::get);
    if max_density < 0.0 {
        return false;
    }
    let nonzero = dispatch(NonZeros { x });
    nonzero as f32 <= max_density * x.len() as f32
}

/// Counts the non-zero entries of `x`.
struct NonZeros<'a> {
    x: &'a [f32],
}

impl Kernel for NonZeros<'_> {
    type Output = usize;
    #[inline(always)]
    fn run<const FMA: bool>(self) -> usize {
        // lane-wise counts: one dependent addition per element would be slower
        let (chunks, tail) = self.x.as_chunks::<LANES>();
        let mut counts = [0u32; LANES];
        for c in chunks {
            for lane in 0..LANES {
                counts[lane] += u32::from(c[lane] != 0.0);
            }
        }
        counts.iter().map(|&n| n as usize).sum::<usize>()
            + tail.iter().filter(|&&v| v != 0.0).count()
    }
}

/// The geometry both kernels share.
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    /// Input `[N, C, H, W]`.
    pub dims: [usize; 4],
    /// Output rows and columns.
    pub out_hw: (usize, usize),
    /// Kernel rows and columns.
    pub kernel: (usize, usize),
    /// Filters.
    pub f: usize,
}

impl Geometry {
    /// The geometry of one call.
    pub(crate) fn new(conv: Conv<'_>) -> Self {
        let win = conv.win;
        Self {
            dims: conv.dims,
            out_hw: conv.out_hw(),
            kernel: (win.kh, win.kw),
            f: conv.w2.nrows(),
        }
    }

    /// `F` rounded up to whole vectors.
    pub(crate) fn fp(&self) -> usize {
        self.f.div_ceil(LANES) * LANES
    }

    /// Floats of the per-sample `[OH·OW][F']` scratch.
    pub(crate) fn sample_scratch(&self) -> usize {
        self.out_hw.0 * self.out_hw.1 * self.fp()
    }

    /// Floats of `[C·KH·KW][F']`.
    pub(crate) fn taps_scratch(&self) -> usize {
        self.dims[1] * self.kernel.0 * self.kernel.1 * self.fp()
    }

    /// For every non-zero input `v` at `(c, iy, ix)` of sample `xs`, calls
    /// `tap(v, c·KH·KW + ky·KW + kx, (iy − ky)·OW + ix − kx)` for each tap
    /// whose output lies inside.
    ///
    /// The non-zero entries are found 64 at a time through a bit mask (a
    /// compare-and-branch per element cost more than the taps at the
    /// densities this path is for), and their row followed incrementally
    /// instead of divided out.
    #[inline(always)]
    fn each_nonzero_tap(&self, xs: &[f32], mut tap: impl FnMut(f32, usize, usize)) {
        let [_, _, h, w] = self.dims;
        let (oh, ow) = self.out_hw;
        let (kh, kw) = self.kernel;
        // the row (c, iy) holding the current entry, and where it starts in xs
        let (mut ci, mut iy, mut row_start) = (0, 0, 0);
        // one call site of `tap`, so that LLVM inlines it into this FMA build
        for (wi, word) in xs.chunks(64).enumerate() {
            let mut bits = nonzero_mask(word);
            while bits != 0 {
                let p = wi * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                while p >= row_start + w {
                    row_start += w;
                    iy += 1;
                    if iy == h {
                        iy = 0;
                        ci += 1;
                    }
                }
                let ix = p - row_start;
                let v = xs[p];
                // output row oy = iy − ky must lie in [0, OH), likewise the column
                let (ky_lo, ky_hi) = ((iy + 1).saturating_sub(oh), kh.min(iy + 1));
                let (kx_lo, kx_hi) = ((ix + 1).saturating_sub(ow), kw.min(ix + 1));
                for ky in ky_lo..ky_hi {
                    let taps = (ci * kh + ky) * kw;
                    let outs = (iy - ky) * ow + ix;
                    for kx in kx_lo..kx_hi {
                        tap(v, taps + kx, outs - kx);
                    }
                }
            }
        }
    }
}

/// Bit `j` set iff `word[j] ≠ 0`, for up to 64 entries.
#[inline(always)]
fn nonzero_mask(word: &[f32]) -> u64 {
    let mut bits = 0u64;
    if let Ok(full) = <&[f32; 64]>::try_from(word) {
        // a fixed length: vector compares and mask moves
        for (j, &v) in full.iter().enumerate() {
            bits |= u64::from(v != 0.0) << j;
        }
    } else {
        for (j, &v) in word.iter().enumerate() {
            bits |= u64::from(v != 0.0) << j;
        }
    }
    bits
}

/// `acc += v · src`.
#[inline(always)]
fn add_scaled<const FMA: bool, const FP: usize>(acc: &mut [f32; FP], v: f32, src: &[f32; FP]) {
    *acc = axpy::<FMA, FP>(*acc, v, src);
}

/// `y[n, f, oh, ow] = b[f] + Σ_{non-zero x} x · W[f, c, ky, kx]`, written into NCHW.
pub(crate) fn forward(
    geo: Geometry,
    x: &[f32],
    w2: &[f32],
    bias: &[f32],
    wt: &mut Vec<f32>,
    outs: &mut Vec<f32>,
    y: &mut [f32],
) {
    let fp = geo.fp();
    wt.clear();
    wt.resize(geo.taps_scratch(), 0.0);
    transpose_into(w2, geo.f, wt, fp);
    outs.clear();
    outs.resize(geo.sample_scratch(), 0.0);
    dispatch(SparseForward {
        geo,
        x,
        wt,
        bias,
        outs,
        y,
    });
}

/// `∂L/∂W₂[f, k] = Σ_{non-zero x} x · dy[n, f, o]` over the taps `k` that
/// join `x` to output `o`; `dw` (`[F, K]`) is overwritten.
pub(crate) fn weight_grad(
    geo: Geometry,
    x: &[f32],
    dy: &[f32],
    dwt: &mut Vec<f32>,
    dys: &mut Vec<f32>,
    dw: &mut [f32],
) {
    let fp = geo.fp();
    dwt.clear();
    dwt.resize(geo.taps_scratch(), 0.0);
    dys.clear();
    dys.resize(geo.sample_scratch(), 0.0);
    dispatch(SparseWeightGrad {
        geo,
        x,
        dy,
        dwt,
        dys,
    });
    let k = dw.len() / geo.f.max(1);
    for (fi, row) in dw.chunks_exact_mut(k).enumerate() {
        for (kk, d) in row.iter_mut().enumerate() {
            *d = dwt[kk * fp + fi];
        }
    }
}

/// `dst[k·fp + f] = src[f·K + k]`: `[F, K]` into `[K][F']`, padding untouched.
fn transpose_into(src: &[f32], f: usize, dst: &mut [f32], fp: usize) {
    let k = src.len() / f.max(1);
    for (fi, row) in src.chunks_exact(k).enumerate() {
        for (kk, &v) in row.iter().enumerate() {
            dst[kk * fp + fi] = v;
        }
    }
}

/// A kernel built once per padded filter count `F'` (8, 16, 24 or 32), so
/// that a row of accumulators is a fixed-size array.
trait PerWidth: Sized {
    fn geo(&self) -> Geometry;
    fn body<const FMA: bool, const FP: usize>(self);
}

/// Runs `kernel`'s build for its `F'`.
#[inline(always)]
fn by_width<const FMA: bool, K: PerWidth>(kernel: K) {
    match kernel.geo().fp() {
        8 => kernel.body::<FMA, 8>(),
        16 => kernel.body::<FMA, 16>(),
        24 => kernel.body::<FMA, 24>(),
        _ => kernel.body::<FMA, 32>(),
    }
}

struct SparseForward<'a> {
    geo: Geometry,
    x: &'a [f32],
    /// `W` as `[C·KH·KW][F']`.
    wt: &'a [f32],
    bias: &'a [f32],
    /// One sample's output as `[OH·OW][F']`.
    outs: &'a mut [f32],
    y: &'a mut [f32],
}

impl Kernel for SparseForward<'_> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        by_width::<FMA, _>(self);
    }
}

impl PerWidth for SparseForward<'_> {
    fn geo(&self) -> Geometry {
        self.geo
    }

    #[inline(always)]
    fn body<const FMA: bool, const FP: usize>(self) {
        let SparseForward {
            geo,
            x,
            wt,
            bias,
            outs,
            y,
        } = self;
        let [n, c, h, w] = geo.dims;
        let f = geo.f;
        let l = geo.out_hw.0 * geo.out_hw.1;
        let wt: &[[f32; FP]] = wt.as_chunks::<FP>().0;
        let outs: &mut [[f32; FP]] = outs.as_chunks_mut::<FP>().0;
        for ni in 0..n {
            outs.fill([0.0; FP]);
            geo.each_nonzero_tap(&x[ni * c * h * w..][..c * h * w], |v, tap, o| {
                add_scaled::<FMA, FP>(&mut outs[o], v, &wt[tap]);
            });
            // y[f, o] = outs[o][f] + b[f], 8 positions at a time: their rows
            // interleaved into a panel first, as `sparse::Transpose` does
            // (written into `y` element by element, it measured slower)
            let ys = &mut y[ni * f * l..][..f * l];
            for (o0, block) in outs.chunks_exact(BLOCK).enumerate() {
                let rows: &[[f32; FP]; BLOCK] = block.try_into().expect("BLOCK rows");
                let mut panel = [[0.0f32; BLOCK]; FP];
                for (fi, p) in panel.iter_mut().enumerate() {
                    for j in 0..BLOCK {
                        p[j] = rows[j][fi];
                    }
                }
                for (fi, (p, &b)) in panel.iter().zip(bias).enumerate() {
                    let dst: &mut [f32; BLOCK] = (&mut ys[fi * l + o0 * BLOCK..][..BLOCK])
                        .try_into()
                        .expect("BLOCK long");
                    *dst = std::array::from_fn(|j| p[j] + b);
                }
            }
        }
    }
}

struct SparseWeightGrad<'a> {
    geo: Geometry,
    x: &'a [f32],
    dy: &'a [f32],
    /// `∂L/∂W` as `[C·KH·KW][F']`, accumulated.
    dwt: &'a mut [f32],
    /// One sample's `dy` as `[OH·OW][F']`.
    dys: &'a mut [f32],
}

impl Kernel for SparseWeightGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        by_width::<FMA, _>(self);
    }
}

impl PerWidth for SparseWeightGrad<'_> {
    fn geo(&self) -> Geometry {
        self.geo
    }

    #[inline(always)]
    fn body<const FMA: bool, const FP: usize>(self) {
        let SparseWeightGrad {
            geo,
            x,
            dy,
            dwt,
            dys,
        } = self;
        let [n, c, h, w] = geo.dims;
        let f = geo.f;
        let l = geo.out_hw.0 * geo.out_hw.1;
        let dwt: &mut [[f32; FP]] = dwt.as_chunks_mut::<FP>().0;
        let dys: &mut [[f32; FP]] = dys.as_chunks_mut::<FP>().0;
        for ni in 0..n {
            let xs = &x[ni * c * h * w..][..c * h * w];
            // dys[o][f] = dy[n, f, o], 8 positions at a time (as 8 × 8 blocks
            // of array shuffles, it measured slower)
            let ds = &dy[ni * f * l..][..f * l];
            for (o0, block) in dys.chunks_exact_mut(BLOCK).enumerate() {
                let block: &mut [[f32; FP]; BLOCK] = block.try_into().expect("BLOCK rows");
                for fi in 0..f.min(FP) {
                    let src: &[f32; BLOCK] = ds[fi * l + o0 * BLOCK..][..BLOCK]
                        .try_into()
                        .expect("BLOCK long");
                    for j in 0..BLOCK {
                        block[j][fi] = src[j];
                    }
                }
            }
            geo.each_nonzero_tap(xs, |v, tap, o| {
                add_scaled::<FMA, FP>(&mut dwt[tap], v, &dys[o]);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{Simd, set_simd_limit};
    use crate::layers::{Conv2d, Layer, Mode};
    use ndarray::{ArrayD, IxDyn};

    /// Uniform in `[0, 1)`.
    fn lcg(seed: u32) -> impl FnMut() -> f32 {
        let mut centred = crate::test_values::lcg_centred(seed);
        move || centred() + 0.5
    }

    /// `[N, C, H, W]` with about `density` non-zero entries: 1.0, or uniform in ±1.
    fn sparse_input(dims: [usize; 4], density: f32, binary: bool, seed: u32) -> ArrayD<f32> {
        let mut next = lcg(seed);
        ArrayD::from_shape_simple_fn(IxDyn(&dims), || {
            let keep = next() < density;
            let v = if binary { 1.0 } else { 2.0 * next() - 1.0 };
            if keep { v } else { 0.0 }
        })
    }

    fn conv(c: usize, f: usize, k: usize, seed: u32) -> Conv2d {
        let mut next = lcg(seed);
        let w = ArrayD::from_shape_simple_fn(IxDyn(&[f, c, k, k]), || next() - 0.5);
        let b = ArrayD::from_shape_simple_fn(IxDyn(&[f]), || next() - 0.5);
        Conv2d::from_params(w, b, 1, 0).expect("valid conv")
    }

    /// Output, weight gradient and bias gradient of one train forward and `backward_params`.
    fn run(layer: &mut Conv2d, x: &ArrayD<f32>, dy: &ArrayD<f32>) -> [Vec<f32>; 3] {
        let y = layer.forward(x.view(), Mode::Train).expect("forward");
        let y = y.iter().copied().collect();
        let eval: Vec<f32> = layer
            .forward(x.view(), Mode::Eval)
            .expect("forward")
            .iter()
            .copied()
            .collect();
        assert_eq!(y, eval, "train and eval forwards take the same path");
        layer.forward(x.view(), Mode::Train).expect("forward");
        layer.backward_params(dy.view()).expect("backward");
        let p = layer.params();
        [
            y,
            p[0].grad.iter().copied().collect(),
            p[1].grad.iter().copied().collect(),
        ]
    }

    /// The sparse path against the dense direct path on sparse 0/1 and
    /// real-valued inputs, at every SIMD level. They differ only in the
    /// order of summation: tolerance `1e-5 · √terms · max(1, |value|)`.
    #[test]
    fn matches_the_dense_path() {
        // (N, C, H, W, F): MinAtar's batch and acting shapes, more channels,
        // two output vectors per row, filters that pad to 8, 24 and 32
        let shapes = [
            (32, 4, 10, 10, 16),
            (1, 4, 10, 10, 16),
            (5, 10, 10, 10, 16),
            (3, 6, 9, 18, 8),
            (4, 7, 12, 10, 5),
            (2, 4, 10, 10, 20),
            (32, 5, 10, 10, 32),
        ];
        for level in [Simd::Baseline, Simd::Avx2Fma, Simd::Avx512] {
            let before = set_simd_limit(level);
            for (i, &(n, c, h, w, f)) in shapes.iter().enumerate() {
                for (density, binary) in [(0.08, true), (0.15, false), (0.0, true)] {
                    let seed = i as u32 * 7 + u32::from(binary);
                    let x = sparse_input([n, c, h, w], density, binary, seed);
                    let mut next = lcg(seed + 100);
                    let dy =
                        ArrayD::from_shape_simple_fn(IxDyn(&[n, f, h - 2, w - 2]), || next() - 0.5);
                    let mut layer = conv(c, f, 3, seed + 200);
                    set_conv_sparse_max_density(-1.0);
                    let dense = run(&mut layer, &x, &dy);
                    set_conv_sparse_max_density(1.0);
                    let sparse = run(&mut layer, &x, &dy);
                    let terms = [c * 9, n * (h - 2) * (w - 2), n * (h - 2) * (w - 2)];
                    for (what, ((d, s), t)) in ["y", "dW", "db"]
                        .iter()
                        .zip(dense.iter().zip(&sparse).zip(terms))
                    {
                        assert_eq!(d.len(), s.len());
                        for (j, (&a, &b)) in d.iter().zip(s).enumerate() {
                            let tol = 1e-5 * (t as f32).sqrt() * a.abs().max(1.0);
                            assert!(
                                (a - b).abs() <= tol,
                                "{level:?} {:?} density {density} binary {binary}: {what}[{j}] dense {a} sparse {b}",
                                (n, c, h, w, f)
                            );
                        }
                    }
                }
            }
            set_simd_limit(before);
        }
        set_conv_sparse_max_density(CONV_SPARSE_MAX_DENSITY);
    }

    /// When the path is taken: stride 1, no padding, whole transpose
    /// blocks, at most 32 filters, and density at most the threshold.
    #[test]
    fn taken_when_it_applies() {
        let win = |stride, padding| Window {
            kh: 3,
            kw: 3,
            stride,
            padding,
        };
        let sparse = sparse_input([32, 4, 10, 10], 0.08, true, 1);
        let x = sparse.as_slice().expect("standard layout");
        let dense = sparse_input([32, 4, 10, 10], 0.6, false, 2);
        let xd = dense.as_slice().expect("standard layout");
        assert!(applies(win(1, 0), 16, 64, x), "MinAtar-like input");
        assert!(!applies(win(1, 0), 16, 64, xd), "60% non-zero");
        assert!(!applies(win(2, 0), 16, 64, x), "stride 2");
        assert!(!applies(win(1, 1), 16, 64, x), "padding");
        assert!(!applies(win(1, 0), 16, 63, x), "partial block");
        assert!(!applies(win(1, 0), 33, 64, x), "too many filters");
        assert!(applies(win(1, 0), 16, 64, &vec![0.0; 400]), "all zeros");
        let before = set_conv_sparse_max_density(-1.0);
        assert!(!applies(win(1, 0), 16, 64, x), "switched off");
        set_conv_sparse_max_density(before);
    }
}
