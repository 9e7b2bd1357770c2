//! The direct convolution: no im2col, for stride 1, no padding and output
//! rows a whole number of `VW`-wide vectors ([`applies`]; the MinAtar
//! network's 3×3 convolution on 10×10).
//!
//! Each kernel tap reads `VW` adjacent outputs' inputs as one contiguous run
//! of `x`, so the forward ([`forward`]) and the weight gradient
//! ([`weight_grad`]) read `x` and `dy` in place and the output lands in
//! NCHW order directly. The layer chooses it
//! ([`Strategy::Direct`](super::Strategy::Direct)) whenever the window
//! allows, unless the input is sparse enough for [`super::sparse`]; the
//! input gradient goes through [`super::chunked`] (`W₂ᵀ · dY`, then col2im).

use super::Conv;
use crate::kernels::simd::{Kernel, Simd, dispatch, simd_level};
use crate::layers::Window;

/// Output columns per vector: the direct path computes `VW` adjacent outputs of one row at once.
const VW: usize = 8;
/// Direct forward tile: `DP` output vectors (adjacent runs of `VW` columns)
/// by `DF` filters; 12 accumulators, 3 broadcast weights and 1 input vector
/// fill the 16 AVX registers.
const DP: usize = 4;
/// Filters per direct forward tile.
const DF: usize = 3;
/// Direct weight-gradient tile: `GF` filters by `GK` kernel taps (12
/// accumulators, 3 input vectors, 1 `dy` vector).
const GF: usize = 4;
/// Kernel taps per direct weight-gradient tile.
const GK: usize = 3;

/// Whether the direct (no im2col) path applies: stride 1, no padding, and
/// output rows that split into whole vectors, so that every kernel tap reads
/// one contiguous run of `VW` input floats per output vector.
pub(crate) fn applies(win: Window, ow: usize) -> bool {
    win.stride == 1 && win.padding == 0 && ow > 0 && ow.is_multiple_of(VW)
}

/// Offsets of the kernel taps `(c, ki, kj)` in one `[C, H, W]` sample, in
/// `W₂`'s column order: `c·H·W + ki·W + kj`.
fn tap_offsets(offsets: &mut Vec<usize>, c: usize, h: usize, w: usize, win: Window) {
    offsets.clear();
    for ci in 0..c {
        for ki in 0..win.kh {
            for kj in 0..win.kw {
                offsets.push(ci * h * w + ki * w + kj);
            }
        }
    }
}

/// Direct convolution for [`applies`] windows:
/// `y[n, f, oh, ow..ow+8] = b[f] + Σ_k W₂[f, k] · x[n, offset(k) + oh·W + ow ..][..8]`,
/// written straight into the NCHW output.
struct DirectForward<'a> {
    x: &'a [f32],
    dims: [usize; 4],
    out_hw: (usize, usize),
    /// `W₂` in tiles of `DF` filters (`WDF` in the AVX-512 build), zero-padded:
    /// `wt[(f / DF)·K·DF + k·DF + f % DF]`.
    wt: &'a [f32],
    f: usize,
    kernel: (usize, usize),
    bias: &'a [f32],
    y: &'a mut [f32],
}

impl Kernel for DirectForward<'_> {
    type Output = ();
    const WIDE: bool = true;
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let [n, c, h, w] = self.dims;
        let (oh, ow) = self.out_hw;
        let (f, l) = (self.f, oh * ow);
        let fp = f.div_ceil(DF) * DF;
        let (kh, kw) = self.kernel;
        let k = c * kh * kw;
        let per_row = ow / VW;
        let vecs = oh * per_row;
        for ni in 0..n {
            let xs = &self.x[ni * c * h * w..(ni + 1) * c * h * w];
            let ys = &mut self.y[ni * f * l..(ni + 1) * f * l];
            for v0 in (0..vecs).step_by(DP) {
                // vectors past the end repeat the last one; their sums are discarded
                let bases: [usize; DP] = std::array::from_fn(|i| {
                    let v = (v0 + i).min(vecs - 1);
                    (v / per_row) * w + (v % per_row) * VW
                });
                for f0 in (0..fp).step_by(DF) {
                    let mut acc = [[[0.0f32; VW]; DF]; DP];
                    // the taps of one (c, ki) are one run of KW + VW − 1 input floats per vector
                    let run = kw + VW - 1;
                    let wt = &self.wt[f0 / DF * k * DF..][..k * DF];
                    let (wt, _) = wt.as_chunks::<DF>();
                    for (row, wrow) in wt.chunks_exact(kw).enumerate() {
                        let (ci, ki) = (row / kh, row % kh);
                        let xr: [&[f32]; DP] =
                            std::array::from_fn(|i| &xs[ci * h * w + ki * w + bases[i]..][..run]);
                        for (kj, wk) in wrow.iter().enumerate() {
                            for i in 0..DP {
                                let xv: &[f32; VW] =
                                    xr[i][kj..kj + VW].try_into().expect("VW long");
                                for j in 0..DF {
                                    for lane in 0..VW {
                                        acc[i][j][lane] = if FMA {
                                            xv[lane].mul_add(wk[j], acc[i][j][lane])
                                        } else {
                                            acc[i][j][lane] + xv[lane] * wk[j]
                                        };
                                    }
                                }
                            }
                        }
                    }
                    // y = b + acc, on the valid vectors and filters of the tile (index
                    // loops: iterating `acc` by reference kept LLVM from holding it in
                    // registers, and the tile ran many times slower)
                    #[allow(clippy::needless_range_loop)]
                    for i in 0..DP.min(vecs - v0) {
                        let v = v0 + i;
                        let at = (v / per_row) * ow + (v % per_row) * VW;
                        for j in 0..DF.min(f - f0) {
                            let fi = f0 + j;
                            let b = self.bias[fi];
                            let dst: &mut [f32; VW] = (&mut ys[fi * l + at..fi * l + at + VW])
                                .try_into()
                                .expect("VW long");
                            for lane in 0..VW {
                                dst[lane] = acc[i][j][lane] + b;
                            }
                        }
                    }
                }
            }
        }
    }
    /// The same with `WDF` filters per tile: 16 accumulators of the 32 registers.
    #[inline(always)]
    fn run_wide(self) {
        const { assert!(DP == 4 && WDF == 4, "run_wide writes out a 4 × 4 tile") };
        let [n, c, h, w] = self.dims;
        let (oh, ow) = self.out_hw;
        let (f, l) = (self.f, oh * ow);
        let fp = f.div_ceil(WDF) * WDF;
        let (kh, kw) = self.kernel;
        let k = c * kh * kw;
        let per_row = ow / VW;
        let vecs = oh * per_row;
        for ni in 0..n {
            let xs = &self.x[ni * c * h * w..(ni + 1) * c * h * w];
            let ys = &mut self.y[ni * f * l..(ni + 1) * f * l];
            for v0 in (0..vecs).step_by(DP) {
                // vectors past the end repeat the last one; their sums are discarded
                let bases: [usize; DP] = std::array::from_fn(|i| {
                    let v = (v0 + i).min(vecs - 1);
                    (v / per_row) * w + (v % per_row) * VW
                });
                for f0 in (0..fp).step_by(WDF) {
                    let mut acc = [[[0.0f32; VW]; WDF]; DP];
                    // the taps of one (c, ki) are one run of KW + VW − 1 input floats per vector
                    let run = kw + VW - 1;
                    let wt = &self.wt[f0 / WDF * k * WDF..][..k * WDF];
                    let (wt, _) = wt.as_chunks::<WDF>();
                    for (row, wrow) in wt.chunks_exact(kw).enumerate() {
                        let (ci, ki) = (row / kh, row % kh);
                        let xr: [&[f32]; DP] =
                            std::array::from_fn(|i| &xs[ci * h * w + ki * w + bases[i]..][..run]);
                        for (kj, wk) in wrow.iter().enumerate() {
                            // every index into `acc` a constant (see the module's gemm
                            // notes): with loops, LLVM kept the 16 accumulators in memory
                            macro_rules! cols {
                                ($i:literal, $xv:ident, $($j:literal)*) => {$(
                                    for lane in 0..VW {
                                        acc[$i][$j][lane] =
                                            $xv[lane].mul_add(wk[$j], acc[$i][$j][lane]);
                                    }
                                )*};
                            }
                            macro_rules! rows {
                                ($($i:literal)*) => {$(
                                    let xv: &[f32; VW] =
                                        xr[$i][kj..kj + VW].try_into().expect("VW long");
                                    cols!($i, xv, 0 1 2 3);
                                )*};
                            }
                            rows!(0 1 2 3);
                        }
                    }
                    // y = b + acc, on the valid vectors and filters of the tile
                    let (vi, fj) = (DP.min(vecs - v0), WDF.min(f - f0));
                    macro_rules! store_cols {
                        ($i:literal, $at:ident, $($j:literal)*) => {$(
                            if $j < fj {
                                let fi = f0 + $j;
                                let b = self.bias[fi];
                                let dst: &mut [f32; VW] = (&mut ys[fi * l + $at..][..VW])
                                    .try_into()
                                    .expect("VW long");
                                for lane in 0..VW {
                                    dst[lane] = acc[$i][$j][lane] + b;
                                }
                            }
                        )*};
                    }
                    macro_rules! store_rows {
                        ($($i:literal)*) => {$(
                            if $i < vi {
                                let v = v0 + $i;
                                let at = (v / per_row) * ow + (v % per_row) * VW;
                                store_cols!($i, at, 0 1 2 3);
                            }
                        )*};
                    }
                    store_rows!(0 1 2 3);
                }
            }
        }
    }
}

/// Filters per direct forward tile in the AVX-512 build: 4 vectors × 4
/// filters, 16 accumulators, and no padded filter for 16 filters. Written
/// with loops, as `run`, the tile ran many times slower: LLVM kept its
/// accumulators in memory (docs/perf/layers.md).
const WDF: usize = 4;

/// `∂L/∂W₂[f, k] = Σ_{n, oh, ow} dy[n, f, oh, ow] · x[n, offset(k) + oh·W + ow]`
/// for [`applies`] windows, read in place from `dy` and `x`.
struct DirectWeightGrad<'a> {
    x: &'a [f32],
    dims: [usize; 4],
    out_hw: (usize, usize),
    dy: &'a [f32],
    f: usize,
    offsets: &'a [usize],
    /// `[F, K]`, overwritten.
    dw: &'a mut [f32],
    /// Lane-wise partial sums of every tile, kept between sample passes.
    lanes: &'a mut Vec<f32>,
}

impl Kernel for DirectWeightGrad<'_> {
    type Output = ();
    const WIDE: bool = true;
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        self.tiles::<FMA, GF, GK>();
    }
    /// With 32 registers: 4 filters × 6 taps (24 accumulators, 6 input vectors, 1 `dy`).
    #[inline(always)]
    fn run_wide(self) {
        self.tiles::<true, GF, WGK>();
    }
}

/// Kernel taps per direct weight-gradient tile in the AVX-512 build, whose
/// 32 registers hold 4 × 6 accumulators.
const WGK: usize = 6;

impl DirectWeightGrad<'_> {
    /// The weight gradient in tiles of `TF` filters by `TK` taps.
    #[inline(always)]
    fn tiles<const FMA: bool, const TF: usize, const TK: usize>(self) {
        let [n, c, h, w] = self.dims;
        let (oh, ow) = self.out_hw;
        let (f, l) = (self.f, oh * ow);
        let k = self.offsets.len();
        let per_row = ow / VW;
        let (ft, kt) = (f.div_ceil(TF), k.div_ceil(TK));
        let tile_len = TF * TK * VW;
        self.lanes.clear();
        self.lanes.resize(ft * kt * tile_len, 0.0);
        // samples per pass: their x and dy stay in the L1 cache while every tile reads them
        let per = (L1_FLOATS / (c * h * w + f * l)).clamp(1, n.max(1));
        for n0 in (0..n).step_by(per) {
            let n1 = (n0 + per).min(n);
            for (t, saved) in self.lanes.chunks_exact_mut(tile_len).enumerate() {
                let (f0, k0) = (t / kt * TF, t % kt * TK);
                // filters and taps past the end repeat the first; their sums are discarded
                let fs: [usize; TF] = std::array::from_fn(|j| if f0 + j < f { f0 + j } else { f0 });
                let offs: [usize; TK] =
                    std::array::from_fn(|u| self.offsets[if k0 + u < k { k0 + u } else { k0 }]);
                let saved: &mut [[f32; VW]] = saved.as_chunks_mut::<VW>().0;
                let mut acc: [[[f32; VW]; TK]; TF] =
                    std::array::from_fn(|j| std::array::from_fn(|u| saved[j * TK + u]));
                for ni in n0..n1 {
                    let xs = &self.x[ni * c * h * w..(ni + 1) * c * h * w];
                    let ds = &self.dy[ni * f * l..(ni + 1) * f * l];
                    let dp: [&[[f32; VW]]; TF] =
                        std::array::from_fn(|j| ds[fs[j] * l..][..l].as_chunks::<VW>().0);
                    let span = (oh - 1) * w + ow;
                    let xr: [&[f32]; TK] = std::array::from_fn(|u| &xs[offs[u]..][..span]);
                    for o in 0..oh {
                        for q in 0..per_row {
                            let at = o * w + q * VW;
                            // TK input vectors held, one dy vector at a time: TF·TK + TK + 1 registers
                            let xv: [[f32; VW]; TK] = std::array::from_fn(|u| {
                                xr[u][at..at + VW].try_into().expect("VW long")
                            });
                            for j in 0..TF {
                                let dv = dp[j][o * per_row + q];
                                for u in 0..TK {
                                    for lane in 0..VW {
                                        acc[j][u][lane] = if FMA {
                                            dv[lane].mul_add(xv[u][lane], acc[j][u][lane])
                                        } else {
                                            acc[j][u][lane] + dv[lane] * xv[u][lane]
                                        };
                                    }
                                }
                            }
                        }
                    }
                }
                for j in 0..TF {
                    for u in 0..TK {
                        saved[j * TK + u] = acc[j][u];
                    }
                }
            }
        }
        for (t, saved) in self.lanes.chunks_exact(tile_len).enumerate() {
            let (f0, k0) = (t / kt * TF, t % kt * TK);
            for j in 0..TF.min(f - f0) {
                for u in 0..TK.min(k - k0) {
                    let a = &saved[(j * TK + u) * VW..][..VW];
                    let s4 = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
                    self.dw[(f0 + j) * k + k0 + u] = (s4[0] + s4[2]) + (s4[1] + s4[3]);
                }
            }
        }
    }
}

/// `Σ x` in 8 lane-wise partial sums: `iter().sum()` adds in order, one
/// dependent addition after another, which measured slower.
fn lane_sum(x: &[f32]) -> f32 {
    let (chunks, tail) = x.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for c in chunks {
        for lane in 0..8 {
            acc[lane] += c[lane];
        }
    }
    let s4 = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (s4[0] + s4[2]) + (s4[1] + s4[3]) + tail.iter().sum::<f32>()
}

/// Floats of input and `dy` per pass of the direct weight gradient (24 KiB).
const L1_FLOATS: usize = 6 * 1024;

/// `y = b + W₂ · x` for [`applies`] windows, read in place: no im2col and
/// no reordering, `y` written in NCHW order.
pub(crate) fn forward(
    conv: Conv<'_>,
    x: &[f32],
    bias: &[f32],
    wpack: &mut Vec<f32>,
    y: &mut [f32],
) {
    let Conv { win, dims, w2 } = conv;
    let (f, k) = w2.dim();
    // filters per tile: the AVX-512 build (`run_wide`) holds more
    let df = if simd_level() == Simd::Avx512 {
        WDF
    } else {
        DF
    };
    let fp = f.div_ceil(df) * df;
    wpack.clear();
    wpack.resize(k * fp, 0.0);
    for (fi, row) in w2.rows().into_iter().enumerate() {
        let tile = &mut wpack[fi / df * k * df..][..k * df];
        for (kk, &v) in row.iter().enumerate() {
            tile[kk * df + fi % df] = v;
        }
    }
    dispatch(DirectForward {
        x,
        dims,
        out_hw: conv.out_hw(),
        wt: wpack,
        f,
        kernel: (win.kh, win.kw),
        bias,
        y,
    });
}

/// `∂L/∂W₂` (`[F, K]`, overwritten) for [`applies`] windows, from `x` and
/// `dy` read in place.
pub(crate) fn weight_grad(
    conv: Conv<'_>,
    x: &[f32],
    dy: &[f32],
    offsets: &mut Vec<usize>,
    lanes: &mut Vec<f32>,
    dw: &mut [f32],
) {
    let [_, c, h, w] = conv.dims;
    tap_offsets(offsets, c, h, w, conv.win);
    dispatch(DirectWeightGrad {
        x,
        dims: conv.dims,
        out_hw: conv.out_hw(),
        dy,
        f: conv.w2.nrows(),
        offsets,
        dw,
        lanes,
    });
}

/// `∂L/∂b[f] += Σ_{n, o} dy[n, f, o]` for `dy` of `[N, F, L]`, in 8 lanes
/// per plane.
pub(crate) fn bias_grad(dy: &[f32], l: usize, db: &mut [f32]) {
    let f = db.len();
    for sample in dy.chunks_exact(f * l) {
        for (g, plane) in db.iter_mut().zip(sample.chunks_exact(l)) {
            *g += lane_sum(plane);
        }
    }
}
