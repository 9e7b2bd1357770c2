//! Zeros skipped in fully connected layers: `Y = X·Wᵀ + b` touching only the
//! non-zero entries of `X`, for eval-mode forwards ([`SparseForward`]), and
//! the backward over outputs whose gradient is not zero for the whole batch
//! ([`LiveBackward`], described there).
//!
//! Why: the input of a fully connected layer after a ReLU is often half
//! zeros or more (the densities measured in training are in
//! docs/perf/layers.md), and the dense GEMMs already run near the core's
//! FMA peak, so skipping zeros is what is left. Per sample,
//! `y[n] = b + Σ_{k: x[n,k] ≠ 0} x[n,k] · Wᵀ[k]`: each non-zero input adds
//! one row of `Wᵀ` (`O` contiguous floats) to `O` accumulators.
//!
//! That needs `Wᵀ`, and transposing `W` costs about half a dense forward, so
//! the layer keeps `Wᵀ` until its parameters are next borrowed mutably, and
//! only eval-mode forwards take this path: no backward follows them, and the
//! weight typically stays the same over many of them (a network that is
//! only evaluated between updates). Train-mode forwards, each followed by
//! a backward and an optimiser step that changes the weight, keep the dense
//! GEMM. The choice depends only on the mode, the shape and the input, never
//! on what is cached, so that a computation resumed from a checkpoint takes
//! the same path at every call as the uninterrupted one (the two paths
//! round differently).
//!
//! The non-zero entries are found through bit masks (one `u32` per 32
//! inputs), and the kernel walks the set bits with `trailing_zeros`. `Wᵀ`
//! and the output rows start on 64-byte boundaries: with 16-lane loads
//! split across cache lines, the kernel ran markedly slower.

use crate::kernels::gemm::{OffsetRows, axpy, gemm_offset_rows, gemm_rows_at, offset_rows_apply};
use crate::kernels::simd::{Kernel, dispatch};
use ndarray::ArrayView2;
use std::cell::Cell;

/// Output columns per accumulator tile: 8 vectors of 16 lanes (AVX-512) or,
/// as two tiles, of 8 lanes (AVX2 and baseline); `O` is padded to a multiple.
const TILE: usize = 128;

/// Inputs per mask word, and rows of `Wᵀ` per block (16 KiB for `O = 128`).
const WORD: usize = 32;

/// Floats per 64-byte cache line.
const LINE: usize = 16;

/// Largest fraction of non-zero inputs for which the sparse path is taken,
/// by default: with a margin below the density at which it measured even
/// with the dense GEMM (the measurements are in the repository's
/// docs/perf/layers.md).
pub const SPARSE_MAX_DENSITY: f32 = 0.75;

/// Fewest samples for the sparse path: acting at batch 1 stays dense.
const MIN_ROWS: usize = 8;

/// Smallest weight (`O·D`) for the sparse path: small layers are cheap either way.
const MIN_WEIGHTS: usize = 4 * 1024;

thread_local! {
    static MAX_DENSITY: Cell<f32> = const { Cell::new(SPARSE_MAX_DENSITY) };
}

/// Sets, for the calling thread, the largest fraction of non-zero inputs for
/// which fully connected layers take their sparse path (default
/// [`SPARSE_MAX_DENSITY`]; `1.0` whenever it applies, a negative value
/// never). For tests and benchmarks; returns the previous value.
///
/// ```
/// use rl_layers::{SPARSE_MAX_DENSITY, set_sparse_max_density};
/// let before = set_sparse_max_density(-1.0); // dense GEMMs only
/// assert_eq!(set_sparse_max_density(before), -1.0);
/// assert_eq!(before, SPARSE_MAX_DENSITY);
/// ```
pub fn set_sparse_max_density(max_density: f32) -> f32 {
    MAX_DENSITY.with(|m| m.replace(max_density))
}

/// A fully connected layer's sparse-path state: the cached `Wᵀ`, masks and
/// padded output rows, all reused between calls.
#[derive(Clone, Debug, Default)]
pub(crate) struct SparseForward {
    /// Whether `wt` holds the transpose of the current weight.
    wt_valid: bool,
    /// `Wᵀ` as `[D, O']` from offset `wt_at`, `O'` = `O` rounded up to [`TILE`], zero-padded.
    wt: Vec<f32>,
    wt_at: usize,
    /// `rows[n·⌈D/32⌉ + w]` bit `j` set iff `x[n, 32w + j] ≠ 0`.
    rows: Vec<u32>,
    /// `Y` as `[N, O']` from offset `y_at`.
    y: Vec<f32>,
    y_at: usize,
}

impl SparseForward {
    /// The weight is about to change (its parameters were borrowed mutably).
    pub(crate) fn invalidate(&mut self) {
        self.wt_valid = false;
    }

    /// `y ← x·Wᵀ + b` for `x: [n, d]`, `w: [o, d]`, `y: [n, o]` if the sparse
    /// path applies (at least 8 rows, a large enough weight, few enough
    /// non-zero inputs); returns `false`, leaving `y` untouched, otherwise.
    pub(crate) fn try_forward(
        &mut self,
        x: &[f32],
        (n, d): (usize, usize),
        w: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> bool {
        let o = w.len() / d.max(1);
        if n < MIN_ROWS || d * o < MIN_WEIGHTS {
            return false;
        }
        let op = o.div_ceil(TILE) * TILE;
        let words = d.div_ceil(WORD);
        // sized on every eligible call, so that no later call allocates
        grow(&mut self.rows, n * words);
        let wt_at = grow_aligned(&mut self.wt, d * op);
        if wt_at != self.wt_at {
            // a clone or a reallocation moved the cached Wᵀ off the boundary
            self.wt_valid = false;
            self.wt_at = wt_at;
        }
        self.y_at = grow_aligned(&mut self.y, n * op);
        let max_density = MAX_DENSITY.with(Cell::get);
        let rows = &mut self.rows[..n * words];
        let nonzero = dispatch(RowMasks { x, d, masks: rows });
        if nonzero as f32 > max_density * (n * d) as f32 {
            return false;
        }
        let wt = &mut self.wt[self.wt_at..][..d * op];
        if !self.wt_valid {
            transpose(w, o, d, wt, op);
            self.wt_valid = true;
        }
        // every padded output row starts at the bias
        let yp = &mut self.y[self.y_at..][..n * op];
        for row in yp.chunks_exact_mut(op) {
            match bias {
                Some(b) => row[..o].copy_from_slice(b),
                None => row[..o].fill(0.0),
            }
            row[o..].fill(0.0);
        }
        dispatch(SparseRows {
            x,
            d,
            masks: rows,
            wt,
            op,
            yp,
        });
        for (dst, src) in y.chunks_exact_mut(o).zip(yp.chunks_exact(op)) {
            dst.copy_from_slice(&src[..o]);
        }
        true
    }
}

/// The path below is taken when at least one output in this many is dead
/// for the whole batch. A margin, not a measured break-even: each dead
/// output saves `1/O` of the dense backward, against packing `dy`'s live
/// columns and a pass zeroing the dead rows of `∂L/∂W`.
const DEAD_MIN_PART: usize = 16;

/// A fully connected layer's backward over its *live* outputs: those whose
/// gradient is non-zero for some sample of the batch.
///
/// Why: an output behind a ReLU that is off for every sample of the batch
/// has a zero column in `dy`. Its row of `∂L/∂W = dyᵀ·x` is zero, and it adds
/// nothing to `∂L/∂x = dy·W`. Early in training a third of a hidden layer's
/// units can be off for a whole batch (docs/perf/layers.md), so both
/// products shrink by about a third. Unlike element-wise sparsity, which
/// needs transposes, this keeps the dense GEMM's panel path and its full
/// FMA rate: `dy`'s live
/// columns are packed (`[N, live]`, 16 KiB at most), the live rows of `W`
/// are read at their offsets, and the live rows of `∂L/∂W` written at theirs.
///
/// Every entry sums the same non-zero terms, in the same order, as the dense
/// GEMM, so the two paths agree to the bit (up to the sign of a zero), and
/// the choice, made from `dy` alone, cannot make a resumed run drift.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveBackward {
    /// Whether each output is live.
    nonzero: Vec<bool>,
    /// Indices of the live outputs, ascending.
    cols: Vec<usize>,
    /// `j·D` for each live `j`: where its row starts in `W` and `∂L/∂W`.
    offsets: Vec<usize>,
    /// `dy`'s live columns, `[N, live]`.
    dy: Vec<f32>,
}

impl LiveBackward {
    /// For `dy: [n, o]`, `x: [n, d]` and `w: [o, d]` (row-major slices):
    /// `dw ← dyᵀ·x` and, if given, `dx ← dy·W`, over the live outputs only,
    /// if enough outputs are dead and the sizes suit the panel path. Returns
    /// `false`, writing nothing, otherwise.
    pub(crate) fn backward(
        &mut self,
        dy: ArrayView2<'_, f32>,
        x: &[f32],
        w: &[f32],
        dw: &mut [f32],
        dx: Option<&mut [f32]>,
    ) -> bool {
        let (n, o) = dy.dim();
        let d = w.len() / o.max(1);
        // whether each output has a non-zero (or NaN) gradient, row by row:
        // walking down each column of row-major dy instead measured slower
        self.nonzero.clear();
        self.nonzero.resize(o, false);
        for row in dy.rows() {
            match row.as_slice() {
                // a slice, so that the loop is vectorised
                Some(row) => mark(&mut self.nonzero, row),
                None => mark(&mut self.nonzero, row),
            }
        }
        // sized whole on every call, taken or not, so that no later call allocates
        grow(&mut self.dy, n * o);
        self.cols.clear();
        self.cols.reserve(o);
        self.offsets.clear();
        self.offsets.reserve(o);
        for (j, _) in self.nonzero.iter().enumerate().filter(|(_, nz)| **nz) {
            self.cols.push(j);
            self.offsets.push(j * d);
        }
        let live = self.cols.len();
        let dead = o - live;
        let sizes_fit = live == 0 || offset_rows_apply(live, n, d) && offset_rows_apply(n, live, d);
        if dead == 0 || dead * DEAD_MIN_PART < o || !sizes_fit {
            return false;
        }
        let packed = &mut self.dy[..n * live];
        for (dst, row) in packed.chunks_exact_mut(live.max(1)).zip(dy.rows()) {
            for (v, &j) in dst.iter_mut().zip(&self.cols) {
                *v = row[j];
            }
        }
        // the dead outputs' rows of ∂L/∂W: zero
        let mut next_live = self.cols.iter().copied().peekable();
        for (j, row) in dw.chunks_exact_mut(d).enumerate() {
            if next_live.next_if_eq(&j).is_none() {
                row.fill(0.0);
            }
        }
        if live == 0 {
            if let Some(dx) = dx {
                dx.fill(0.0);
            }
            return true;
        }
        let dy_live = ArrayView2::from_shape((n, live), &*packed).expect("packed [n, live]");
        let x = ArrayView2::from_shape((n, d), x).expect("x is [n, d]");
        // ∂L/∂W[j] = Σ_n dy[n, j]·x[n] for each live j
        gemm_rows_at(1.0, dy_live.t(), x, 0.0, dw, &self.offsets);
        if let Some(dx) = dx {
            // ∂L/∂x[n] = Σ_{live j} dy[n, j]·W[j]
            let w_rows = OffsetRows {
                data: w,
                offsets: &self.offsets,
                n: d,
            };
            gemm_offset_rows(1.0, dy_live, w_rows, 0.0, dx);
        }
        true
    }
}

/// `nonzero[j] |= row[j] ≠ 0` (NaN counts as non-zero).
#[inline(always)]
fn mark<'a>(nonzero: &mut [bool], row: impl IntoIterator<Item = &'a f32>) {
    for (nz, &v) in nonzero.iter_mut().zip(row) {
        *nz |= v != 0.0;
    }
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// Grows `v` to hold `len` floats from a 64-byte boundary; returns that offset.
fn grow_aligned(v: &mut Vec<f32>, len: usize) -> usize {
    grow(v, len + LINE);
    let misalign = (v.as_ptr() as usize / 4) % LINE;
    (LINE - misalign) % LINE
}

/// `wt[k·op + j] = w[j·d + k]`: `[o, d]` into `[d, op]`, padding zeroed.
fn transpose(w: &[f32], o: usize, d: usize, wt: &mut [f32], op: usize) {
    dispatch(Transpose { w, o, d, wt, op });
}

struct Transpose<'a> {
    w: &'a [f32],
    o: usize,
    d: usize,
    wt: &'a mut [f32],
    op: usize,
}

impl Kernel for Transpose<'_> {
    type Output = ();
    /// 8 rows of `w` at a time, interleaved into a 64-row panel: LLVM
    /// vectorises that store group with shuffles (8 × 8 blocks transposed
    /// by array shuffles became slower scalar moves through the stack);
    /// then copied into place, 8 floats per row.
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let Transpose { w, o, d, wt, op } = self;
        let o8 = o - o % 8;
        for j0 in (0..o8).step_by(8) {
            let rows: [&[f32]; 8] = std::array::from_fn(|jj| &w[(j0 + jj) * d..][..d]);
            for k0 in (0..d).step_by(64) {
                let kn = 64.min(d - k0);
                let mut panel = [[0.0f32; 8]; 64];
                for (k, p) in panel.iter_mut().enumerate().take(kn) {
                    for jj in 0..8 {
                        p[jj] = rows[jj][k0 + k];
                    }
                }
                for (k, p) in panel.iter().enumerate().take(kn) {
                    let dst: &mut [f32; 8] = (&mut wt[(k0 + k) * op + j0..][..8])
                        .try_into()
                        .expect("8 wide");
                    *dst = *p;
                }
            }
        }
        for j in o8..o {
            for k in 0..d {
                wt[k * op + j] = w[j * d + k];
            }
        }
        for row in wt.chunks_exact_mut(op) {
            row[o..].fill(0.0);
        }
    }
}

/// Row masks of `x: [n, d]`, `⌈d/32⌉` words per row; returns the number of non-zero entries.
struct RowMasks<'a> {
    x: &'a [f32],
    d: usize,
    masks: &'a mut [u32],
}

impl Kernel for RowMasks<'_> {
    type Output = usize;
    const WIDE: bool = true;
    #[inline(always)]
    fn run<const FMA: bool>(self) -> usize {
        let RowMasks { x, d, masks } = self;
        let words = d.div_ceil(WORD);
        let mut nonzero = 0;
        for (row, m) in x.chunks_exact(d).zip(masks.chunks_exact_mut(words)) {
            for (word, chunk) in m.iter_mut().zip(row.chunks(WORD)) {
                let mut bits = 0u32;
                for (j, &v) in chunk.iter().enumerate() {
                    bits |= u32::from(v != 0.0) << j;
                }
                *word = bits;
                nonzero += bits.count_ones() as usize;
            }
        }
        nonzero
    }
}

/// `yp[n] += Σ_{k: x[n,k] ≠ 0} x[n,k] · wt[k]` (rows `op` wide).
struct SparseRows<'a> {
    x: &'a [f32],
    d: usize,
    masks: &'a [u32],
    wt: &'a [f32],
    op: usize,
    yp: &'a mut [f32],
}

impl Kernel for SparseRows<'_> {
    type Output = ();
    const WIDE: bool = true;
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        self.tiles::<FMA, 8>();
    }
    #[inline(always)]
    fn run_wide(self) {
        self.tiles::<true, 16>();
    }
}

impl SparseRows<'_> {
    /// Tiles of 8 vectors of `L` lanes.
    #[inline(always)]
    fn tiles<const FMA: bool, const L: usize>(self) {
        let SparseRows {
            x,
            d,
            masks,
            wt,
            op,
            yp,
        } = self;
        let words = d.div_ceil(WORD);
        let tile = 8 * L;
        for o0 in (0..op).step_by(tile) {
            // 32 rows of Wᵀ per word, in L1 while every sample passes over them
            for w in 0..words {
                let k0 = w * WORD;
                for (s, row) in yp.chunks_exact_mut(op).enumerate() {
                    let mut bits = masks[s * words + w];
                    if bits == 0 {
                        continue;
                    }
                    let xs = &x[s * d + k0..][..WORD.min(d - k0)];
                    let out: &mut [[f32; L]] = &mut row[o0..][..tile].as_chunks_mut::<L>().0[..8];
                    let mut acc: [[f32; L]; 8] = std::array::from_fn(|v| out[v]);
                    while bits != 0 {
                        let j = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let xv = xs[j];
                        let wr: &[[f32; L]] = wt[(k0 + j) * op + o0..][..tile].as_chunks::<L>().0;
                        // every accumulator index a constant (see `gemm::rank1`)
                        macro_rules! vecs {
                            ($($v:literal)*) => {$(
                                acc[$v] = axpy::<FMA, L>(acc[$v], xv, &wr[$v]);
                            )*};
                        }
                        vecs!(0 1 2 3 4 5 6 7);
                    }
                    macro_rules! store {
                        ($($v:literal)*) => {$( out[$v] = acc[$v]; )*};
                    }
                    store!(0 1 2 3 4 5 6 7);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{Simd, set_simd_limit};

    fn naive(x: &[f32], (n, d): (usize, usize), w: &[f32], b: &[f32]) -> Vec<f64> {
        let o = b.len();
        let mut y = vec![0.0; n * o];
        for i in 0..n {
            for j in 0..o {
                y[i * o + j] = f64::from(b[j])
                    + (0..d)
                        .map(|k| f64::from(x[i * d + k]) * f64::from(w[j * d + k]))
                        .sum::<f64>();
            }
        }
        y
    }

    /// The live-output backward against the dense GEMMs, bit for bit, at
    /// every SIMD level: a third of the outputs dead (MinAtar's shape and
    /// two others), one in 16, all of them; and that it declines, writing
    /// nothing, below one in 16 dead or where the panel path does not apply.
    #[test]
    fn live_backward_matches_dense_gemms() {
        use crate::kernels::gemm::gemm;
        use ndarray::{Array2, ArrayViewMut2};
        let mut next = crate::test_values::lcg_centred(5);
        for level in [Simd::Baseline, Simd::Avx2Fma, Simd::Avx512] {
            let before = set_simd_limit(level);
            // (n, d, o, every how many'th output is dead, whether taken)
            for (n, d, o, dead_every, taken) in [
                (32, 1024, 128, 3, true),
                (9, 300, 40, 2, true),
                (8, 256, 16, 16, true),
                (5, 260, 7, 1, true),
                (32, 1024, 128, 19, false),
                (32, 200, 128, 3, false),
                (32, 1024, 128, usize::MAX, false),
            ] {
                let x: Vec<f32> = (0..n * d).map(|_| next().max(0.0)).collect();
                let w: Vec<f32> = (0..o * d).map(|_| next()).collect();
                // dead outputs zero for every sample, the rest half zeros
                let dy = Array2::from_shape_fn((n, o), |(_, j)| {
                    let v = next();
                    if j % dead_every == dead_every - 1 || v < 0.0 {
                        0.0
                    } else {
                        v
                    }
                });
                let mut want_dw = Array2::from_elem((o, d), f32::NAN);
                let mut want_dx = Array2::from_elem((n, d), f32::NAN);
                let xv = ArrayView2::from_shape((n, d), &x[..]).unwrap();
                let wv = ArrayView2::from_shape((o, d), &w[..]).unwrap();
                gemm(1.0, dy.t(), xv, 0.0, &mut want_dw.view_mut());
                gemm(1.0, dy.view(), wv, 0.0, &mut want_dx.view_mut());
                let mut live = LiveBackward::default();
                for with_dx in [true, false] {
                    let mut dw = vec![f32::NAN; o * d];
                    let mut dx = vec![f32::NAN; n * d];
                    let got =
                        live.backward(dy.view(), &x, &w, &mut dw, with_dx.then_some(&mut dx[..]));
                    let what = format!("{level:?} n{n} d{d} o{o} dead every {dead_every}");
                    assert_eq!(got, taken, "{what}: taken");
                    if !taken {
                        assert!(
                            dw.iter().chain(&dx).all(|v| v.is_nan()),
                            "{what}: untouched"
                        );
                        continue;
                    }
                    let dw = ArrayViewMut2::from_shape((o, d), &mut dw[..]).unwrap();
                    assert!(dw.iter().zip(&want_dw).all(|(a, b)| a == b), "{what}: dW");
                    if with_dx {
                        let dx = ArrayView2::from_shape((n, d), &dx[..]).unwrap();
                        assert!(dx.iter().zip(&want_dx).all(|(a, b)| a == b), "{what}: dx");
                    } else {
                        assert!(dx.iter().all(|v| v.is_nan()), "{what}: dx untouched");
                    }
                }
            }
            set_simd_limit(before);
        }
    }

    /// When the path is taken (density at most the threshold, enough rows
    /// and weights), that it then matches f64 sums, and that a changed
    /// weight is transposed again, at every SIMD level.
    #[test]
    fn taken_when_it_applies_and_correct() {
        let mut next = crate::test_values::lcg_centred(7);
        for level in [Simd::Baseline, Simd::Avx2Fma, Simd::Avx512] {
            let before = set_simd_limit(level);
            for (n, d, o) in [(32, 1024, 128), (9, 70, 130), (8, 33, 300)] {
                let w: Vec<f32> = (0..o * d).map(|_| next()).collect();
                let b: Vec<f32> = (0..o).map(|_| next()).collect();
                // ReLU-like: about half zeros
                let x: Vec<f32> = (0..n * d).map(|_| next().max(0.0)).collect();
                let mut y = vec![f32::NAN; n * o];
                let mut s = SparseForward::default();
                set_sparse_max_density(0.3);
                assert!(
                    !s.try_forward(&x, (n, d), &w, Some(&b), &mut y),
                    "too dense"
                );
                assert!(y.iter().all(|v| v.is_nan()), "y untouched when not taken");
                set_sparse_max_density(0.75);
                assert!(
                    s.try_forward(&x, (n, d), &w, Some(&b), &mut y),
                    "half zeros"
                );
                // y against f64 sums of the same weights, within 1e-5·√d relative
                let assert_matches = |y: &[f32], w: &[f32], what: &str| {
                    let want = naive(&x, (n, d), w, &b);
                    for (i, (&got, &want)) in y.iter().zip(&want).enumerate() {
                        let tol = 1e-5 * (d as f64).sqrt() * want.abs().max(1.0);
                        assert!(
                            (f64::from(got) - want).abs() < tol,
                            "{level:?} {n}x{d}x{o} {what} at {i}"
                        );
                    }
                };
                assert_matches(&y, &w, "first weight");
                // a changed weight is transposed again
                let w2: Vec<f32> = w.iter().map(|v| -v).collect();
                s.invalidate();
                assert!(s.try_forward(&x, (n, d), &w2, Some(&b), &mut y));
                assert_matches(&y, &w2, "new weight");
                // acting at batch 1 never takes it
                assert!(!s.try_forward(&x[..d], (1, d), &w, Some(&b), &mut y[..o]));
            }
            set_simd_limit(before);
        }
        set_sparse_max_density(SPARSE_MAX_DENSITY);
    }
}
