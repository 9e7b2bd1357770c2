//! 2-D convolution by im2col and GEMM.

use super::linear::copy_into;
use super::{Layer, Mode, Param};
use crate::buf::{Buf, take_storage};
use crate::error::{Error, Result, shape_err};
use crate::init::Init;
use crate::kernels::gemm::{
    OffsetRows, ScatterRows, gemm, gemm_offset_rows, gemm_scatter_add, offset_rows_apply,
    scatter_apply,
};
use crate::kernels::simd::{Kernel, dispatch};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Ix2};
use rand::Rng;

use crate::kernels::conv::sparse;
pub use sparse::{CONV_SPARSE_MAX_DENSITY, set_conv_sparse_max_density};

/// The geometry of a sliding window over an `H × W` image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// `O = (H + 2P − K) / S + 1`, or `None` when the window does not fit.
    pub(crate) fn out_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.stride == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some((
            (hp - self.kh) / self.stride + 1,
            (wp - self.kw) / self.stride + 1,
        ))
    }

    /// For kernel column `kj`, the output columns `ow` whose input column
    /// `iw = ow·S + kj − P` lies inside `[0, W)`.
    fn valid_range(&self, k: usize, size: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let k = k as isize;
        // ow·S + k − P ≥ 0  ⇔  ow ≥ ⌈(P − k) / S⌉
        let lo = if p > k { (p - k + s - 1) / s } else { 0 };
        // ow·S + k − P ≤ size − 1  ⇔  ow ≤ ⌊(size − 1 + P − k) / S⌋
        let top = size as isize - 1 + p - k;
        let hi = if top < 0 { 0 } else { top / s + 1 };
        let lo = (lo as usize).min(out);
        let hi = (hi as usize).clamp(lo, out);
        (lo, hi)
    }
}

/// Copies a short run without a `memcpy` call (runs here are 7 to 400
/// floats): 8-wide blocks, the last one overlapping the previous, so no
/// element-by-element tail.
#[inline(always)]
pub(crate) fn copy_run(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let src = &src[..n];
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            copy8(&mut dst[i..i + 8], &src[i..i + 8]);
            i += 8;
        }
        if i < n {
            copy8(&mut dst[n - 8..], &src[n - 8..]);
        }
    } else if n >= 4 {
        copy4(&mut dst[..4], &src[..4]);
        copy4(&mut dst[n - 4..], &src[n - 4..]);
    } else {
        dst.copy_from_slice(src);
    }
}

#[inline(always)]
fn copy8(dst: &mut [f32], src: &[f32]) {
    let d: &mut [f32; 8] = dst.try_into().expect("8 long");
    *d = src.try_into().expect("8 long");
}

#[inline(always)]
fn copy4(dst: &mut [f32], src: &[f32]) {
    let d: &mut [f32; 4] = dst.try_into().expect("4 long");
    *d = src.try_into().expect("4 long");
}

/// Splits `row` into its `S` phases, `dst[r·stride_r + q] = row[q·S + r]`, for
/// rows that need no padding and whose length is a multiple of `S`.
#[inline(always)]
fn deinterleave<const S: usize>(row: &[f32], dst: &mut [f32], phase_stride: usize) {
    let (groups, _) = row.as_chunks::<S>();
    for r in 0..S {
        let out = &mut dst[r * phase_stride..][..groups.len()];
        for (d, g) in out.iter_mut().zip(groups) {
            *d = g[r];
        }
    }
}

/// The inverse of [`deinterleave`]: `row[q·S + r] = src[r·phase_stride + q]`.
#[inline(always)]
fn interleave<const S: usize>(src: &[f32], row: &mut [f32], phase_stride: usize) {
    let (groups, _) = row.as_chunks_mut::<S>();
    let phases: [&[f32]; S] = std::array::from_fn(|r| &src[r * phase_stride..][..groups.len()]);
    for (q, g) in groups.iter_mut().enumerate() {
        for r in 0..S {
            g[r] = phases[r][q];
        }
    }
}

/// Unrolls image patches into columns.
///
/// `x` is `[N, C, H, W]`; `col` is `[C·KH·KW, N·OH·OW]` with row
/// `(c·KH + ki)·KW + kj` and column `(n·OH + oh)·OW + ow` holding
/// `x[n, c, oh·S + ki − P, ow·S + kj − P]`, or 0 in the padding.
///
/// Each zero-padded input row is first split into its `S` phases
/// (`phase_r[q] = row[q·S + r]`), so that every output row is one contiguous
/// run `phase_{kj mod S}[kj div S ..][..OW]` instead of a strided gather.
pub(crate) fn im2col(
    x: &[f32],
    dims: [usize; 4],
    win: Window,
    col: &mut [f32],
    phases: &mut Vec<f32>,
) {
    dispatch(Im2col {
        x,
        dims,
        win,
        col,
        phases,
    });
}

struct Im2col<'a> {
    x: &'a [f32],
    dims: [usize; 4],
    win: Window,
    col: &'a mut [f32],
    phases: &'a mut Vec<f32>,
}

impl Kernel for Im2col<'_> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let Im2col {
            x,
            dims,
            win,
            col,
            phases,
        } = self;
        let [n, c, h, w] = dims;
        let (oh, ow) = win.out_size(h, w).expect("validated window");
        let (l, nl) = (oh * ow, n * oh * ow);
        let (s, p) = (win.stride, win.padding);
        // phases[r][ih][q] = x[ih][q·S + r − P], zero in the padding; without
        // stride or padding the image itself is the one phase
        let direct = s == 1 && p == 0;
        let q_len = if direct { w } else { (w + 2 * p).div_ceil(s) };
        let plane_len = s * h * q_len;
        if !direct && phases.len() < plane_len {
            phases.resize(plane_len, 0.0);
        }
        for ni in 0..n {
            for ci in 0..c {
                let img = &x[(ni * c + ci) * h * w..][..h * w];
                let ph: &[f32] = if direct {
                    img
                } else {
                    let ph = &mut phases[..plane_len];
                    for (ih, row) in img.chunks_exact(w).enumerate() {
                        if p == 0 && w % s == 0 && (s == 2 || s == 4) {
                            // the Nature network's strides, without bounds arithmetic per element
                            let out = &mut ph[ih * q_len..];
                            match s {
                                2 => deinterleave::<2>(row, out, h * q_len),
                                _ => deinterleave::<4>(row, out, h * q_len),
                            }
                            continue;
                        }
                        for r in 0..s {
                            let dst = &mut ph[(r * h + ih) * q_len..][..q_len];
                            // u = q·S + r must lie in [P, W + P)
                            let q_lo = (if p > r { (p - r).div_ceil(s) } else { 0 }).min(q_len);
                            let q_hi = (w + p).saturating_sub(r).div_ceil(s).clamp(q_lo, q_len);
                            dst[..q_lo].fill(0.0);
                            dst[q_hi..].fill(0.0);
                            let start = q_lo * s + r - p;
                            for (d, chunk) in dst[q_lo..q_hi].iter_mut().zip(row[start..].chunks(s))
                            {
                                *d = chunk[0];
                            }
                        }
                    }
                    &phases[..plane_len]
                };
                for ki in 0..win.kh {
                    let (oh_lo, oh_hi) = win.valid_range(ki, h, oh);
                    for kj in 0..win.kw {
                        let r = (ci * win.kh + ki) * win.kw + kj;
                        let (rj, qj) = (kj % s, kj / s);
                        let dst = &mut col[r * nl + ni * l..][..l];
                        dst[..oh_lo * ow].fill(0.0);
                        dst[oh_hi * ow..].fill(0.0);
                        for o in oh_lo..oh_hi {
                            let ih = o * s + ki - p;
                            let at = (rj * h + ih) * q_len + qj;
                            if (4..8).contains(&ow) && o + 1 < oh_hi && at + 8 <= ph.len() {
                                // a short run (the Nature network's 3×3/1 layer: 7) as one
                                // 8-float copy; its last float lands on the next run's
                                // first, which that run then overwrites
                                copy8(&mut dst[o * ow..o * ow + 8], &ph[at..at + 8]);
                                continue;
                            }
                            copy_run(&mut dst[o * ow..(o + 1) * ow], &ph[at..][..ow]);
                        }
                    }
                }
            }
        }
    }
}

/// Folds columns back into an image, accumulating overlapping windows:
/// `dx[n, c, oh·S + ki − P, ow·S + kj − P] += col[(c, ki, kj), (n, oh, ow)]`.
/// `dx` must be zeroed by the caller.
pub(crate) fn col2im(col: &[f32], dims: [usize; 4], win: Window, dx: &mut [f32]) {
    let [n, c, h, w] = dims;
    let (oh, ow) = win.out_size(h, w).expect("validated window");
    let l = oh * ow;
    let nl = n * l;
    let (s, p) = (win.stride, win.padding);
    for ci in 0..c {
        for ki in 0..win.kh {
            let (oh_lo, oh_hi) = win.valid_range(ki, h, oh);
            for kj in 0..win.kw {
                let r = (ci * win.kh + ki) * win.kw + kj;
                let (ow_lo, ow_hi) = win.valid_range(kj, w, ow);
                if ow_lo == ow_hi {
                    continue;
                }
                let row = &col[r * nl..(r + 1) * nl];
                for ni in 0..n {
                    let img = &mut dx[(ni * c + ci) * h * w..][..h * w];
                    let srcs = &row[ni * l..(ni + 1) * l];
                    for o in oh_lo..oh_hi {
                        let src = &srcs[o * ow + ow_lo..o * ow + ow_hi];
                        let ih = o * s + ki - p;
                        let first = ow_lo * s + kj - p;
                        let drow = &mut img[ih * w..(ih + 1) * w];
                        if s == 1 {
                            for (d, &v) in drow[first..first + src.len()].iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (d, &v) in drow[first..].iter_mut().step_by(s).zip(src) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The phase-split ("padded-width") im2col layout of a strided convolution.
///
/// The zero-padded input is split into its `S × S` phases,
/// `phase[ri][rj][qi][qj] = x_padded[qi·S + ri, qj·S + rj]`, each a
/// `QH × QW` plane with `QH = OH + (KH − 1)/S` and `QW = OW + (KW − 1)/S`.
/// Kernel tap `(ki, kj)` then reads, for every output `(o, q)`,
/// `phase[ki mod S][kj mod S][o + ki div S][q + kj div S]`: with output rows
/// laid out `QW` wide instead of `OW`, one sample's whole im2col row is one
/// contiguous run of `OH·QW` floats of one plane, at offset
/// `(ki div S)·QW + kj div S`. im2col becomes one copy per row and sample
/// instead of `OH` copies of 7 to 20 floats, and col2im one contiguous
/// addition per row and sample instead of `OH` strided scatters.
///
/// The price is `QW − OW` extra columns per output row (the Nature network:
/// 1 of 21 for 8×8/4, 1 of 10 for 4×4/2) whose values are garbage: the
/// forward drops them, and backward zeroes them in `dY` so that they add
/// nothing to `∂L/∂W` or `∂L/∂x`. On the Nature network's 8×8/4 and 4×4/2
/// layers (batch 32, 2026-11-29): im2col 724–765 and 604–926 µs before,
/// split plus copy 221 + 274 and 143 + 160 µs after; col2im of the 4×4/2
/// layer 913–926 µs before, additions plus merge 188 + 94 µs after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Phased {
    /// Output rows and columns.
    oh: usize,
    ow: usize,
    /// Rows and columns of one phase plane.
    qh: usize,
    qw: usize,
    /// Input channels.
    c: usize,
    /// Stride and padding.
    s: usize,
    p: usize,
}

impl Phased {
    /// The layout for `[C, H, W]` samples, or `None` when the padded columns
    /// would add more than 1/8 to the GEMMs (stride 1 with a 3×3 kernel on
    /// 9×9, say: 9 columns for 7, where the per-row im2col is cheaper).
    pub(crate) fn new(win: Window, c: usize, h: usize, w: usize) -> Option<Self> {
        let (oh, ow) = win.out_size(h, w)?;
        let s = win.stride;
        let qw = ow + (win.kw - 1) / s;
        if (qw - ow) * 8 > ow {
            return None;
        }
        Some(Self {
            oh,
            ow,
            qh: oh + (win.kh - 1) / s,
            qw,
            c,
            s,
            p: win.padding,
        })
    }

    /// Floats of one phase plane.
    fn plane(&self) -> usize {
        self.qh * self.qw
    }

    /// Floats of one sample's phases.
    fn sample_len(&self) -> usize {
        self.c * self.s * self.s * self.plane()
    }

    /// Columns of one sample in the im2col matrix: `OH` rows of `QW`.
    pub(crate) fn cols_per_sample(&self) -> usize {
        self.oh * self.qw
    }

    /// Floats of the phase buffer for `n` samples: the reads of the last
    /// plane's garbage columns run up to `QW` floats past it.
    pub(crate) fn phases_len(&self, n: usize) -> usize {
        n * self.sample_len() + self.qw
    }

    /// Where kernel tap `(ci, ki, kj)`'s run starts in one sample's phases.
    #[inline(always)]
    fn tap_offset(&self, ci: usize, ki: usize, kj: usize) -> usize {
        let s = self.s;
        ((ci * s + ki % s) * s + kj % s) * self.plane() + (ki / s) * self.qw + kj / s
    }

    /// Every tap's run start in one sample's phases, in `W₂`'s column order.
    fn tap_offsets(&self, win: Window, out: &mut Vec<usize>) {
        out.clear();
        for ci in 0..self.c {
            for ki in 0..win.kh {
                for kj in 0..win.kw {
                    out.push(self.tap_offset(ci, ki, kj));
                }
            }
        }
    }

    /// For padded position `u` (row or column), the input index `u − P`, if inside `[0, size)`.
    #[inline(always)]
    fn unpad(&self, u: usize, size: usize) -> Option<usize> {
        u.checked_sub(self.p).filter(|&i| i < size)
    }
}

/// Splits `x` (`[N, C, H, W]`) into [`Phased`] planes, zero in the padding
/// and past the input's edge: `ph[n][c][ri][rj][qi][qj] = x[n, c, qi·S + ri − P, qj·S + rj − P]`.
pub(crate) fn phase_split(x: &[f32], dims: [usize; 4], lay: &Phased, ph: &mut [f32]) {
    let [n, c, h, w] = dims;
    let (s, qh, qw, plane) = (lay.s, lay.qh, lay.qw, lay.plane());
    for ni in 0..n {
        for ci in 0..c {
            let img = &x[(ni * c + ci) * h * w..][..h * w];
            let planes = &mut ph[ni * lay.sample_len() + ci * s * s * plane..][..s * s * plane];
            for u in 0..s * qh {
                let (ri, qi) = (u % s, u / s);
                let Some(ih) = lay.unpad(u, h) else {
                    for rj in 0..s {
                        planes[(ri * s + rj) * plane + qi * qw..][..qw].fill(0.0);
                    }
                    continue;
                };
                let row = &img[ih * w..(ih + 1) * w];
                if lay.p == 0 && w == s * qw && (s == 2 || s == 4) {
                    // the Nature network's strides: every phase row is whole
                    let dst = &mut planes[ri * s * plane + qi * qw..];
                    match s {
                        2 => deinterleave::<2>(row, dst, plane),
                        _ => deinterleave::<4>(row, dst, plane),
                    }
                    continue;
                }
                for rj in 0..s {
                    let dst = &mut planes[(ri * s + rj) * plane + qi * qw..][..qw];
                    for (qj, d) in dst.iter_mut().enumerate() {
                        *d = lay.unpad(qj * s + rj, w).map_or(0.0, |iw| row[iw]);
                    }
                }
            }
        }
    }
}

/// The inverse of [`phase_split`] on the positions inside the input:
/// `dx[n, c, ih, iw] = ph[n][c][(ih + P) mod S][(iw + P) mod S][(ih + P) div S][(iw + P) div S]`.
/// Every element of `dx` is written: zero where no window reaches.
pub(crate) fn phase_merge(ph: &[f32], dims: [usize; 4], lay: &Phased, dx: &mut [f32]) {
    let [n, c, h, w] = dims;
    let (s, qw, plane) = (lay.s, lay.qw, lay.plane());
    for ni in 0..n {
        for ci in 0..c {
            let img = &mut dx[(ni * c + ci) * h * w..][..h * w];
            let planes = &ph[ni * lay.sample_len() + ci * s * s * plane..][..s * s * plane];
            for (ih, row) in img.chunks_exact_mut(w).enumerate() {
                let u = ih + lay.p;
                let (ri, qi) = (u % s, u / s);
                if qi >= lay.qh {
                    // below every window: no output depends on this row
                    row.fill(0.0);
                    continue;
                }
                if lay.p == 0 && w == s * qw && (s == 2 || s == 4) {
                    let src = &planes[ri * s * plane + qi * qw..];
                    match s {
                        2 => interleave::<2>(src, row, plane),
                        _ => interleave::<4>(src, row, plane),
                    }
                    continue;
                }
                for (iw, d) in row.iter_mut().enumerate() {
                    let v = iw + lay.p;
                    // columns right of every window have no plane column: zero
                    *d = if v / s < qw {
                        planes[(ri * s + v % s) * plane + qi * qw + v / s]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// im2col on [`phase_split`] planes: `col` is `[C·KH·KW, N·OH·QW]`, row
/// `(c·KH + ki)·KW + kj`, column `(n·OH + oh)·QW + q`, holding
/// `x[n, c, oh·S + ki − P, q·S + kj − P]` for `q < OW` and garbage for `q ≥ OW`.
pub(crate) fn im2col_phased(ph: &[f32], n: usize, lay: &Phased, win: Window, col: &mut [f32]) {
    let cps = lay.cols_per_sample();
    let mut rows = col.chunks_exact_mut(n * cps);
    for ci in 0..lay.c {
        for ki in 0..win.kh {
            for kj in 0..win.kw {
                let row = rows.next().expect("C·KH·KW rows");
                let off = lay.tap_offset(ci, ki, kj);
                for (ni, dst) in row.chunks_exact_mut(cps).enumerate() {
                    dst.copy_from_slice(&ph[ni * lay.sample_len() + off..][..cps]);
                }
            }
        }
    }
}

/// col2im onto [`phase_split`] planes, the adjoint of [`im2col_phased`]:
/// `ph[tap run of (r, n)] += dcol[r, n's columns]`. `ph` must be zeroed by
/// the caller, and `dcol`'s garbage columns must be zero (they land on
/// positions that other taps use).
pub(crate) fn col2im_phased(dcol: &[f32], n: usize, lay: &Phased, win: Window, ph: &mut [f32]) {
    dispatch(PhasedOp::Col2im {
        dcol,
        n,
        lay,
        win,
        ph,
    });
}

#[inline(always)]
fn col2im_phased_body(dcol: &[f32], n: usize, lay: &Phased, win: Window, ph: &mut [f32]) {
    let cps = lay.cols_per_sample();
    let mut rows = dcol.chunks_exact(n * cps);
    for ci in 0..lay.c {
        for ki in 0..win.kh {
            for kj in 0..win.kw {
                let row = rows.next().expect("C·KH·KW rows");
                let off = lay.tap_offset(ci, ki, kj);
                for (ni, src) in row.chunks_exact(cps).enumerate() {
                    let dst = &mut ph[ni * lay.sample_len() + off..][..cps];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                }
            }
        }
    }
}

/// The phased col2im, run in the AVX2 build (8-lane additions). The split and
/// merge keep the baseline build: their AVX2 builds measured slower (268
/// against 221 µs, 175 against 132 µs for the 8×8/4 layer's batch).
enum PhasedOp<'a> {
    Col2im {
        dcol: &'a [f32],
        n: usize,
        lay: &'a Phased,
        win: Window,
        ph: &'a mut [f32],
    },
}

impl Kernel for PhasedOp<'_> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        match self {
            PhasedOp::Col2im {
                dcol,
                n,
                lay,
                win,
                ph,
            } => col2im_phased_body(dcol, n, lay, win, ph),
        }
    }
}

/// Fewest columns of one forward chunk's im2col matrix: at 256 or more the
/// GEMM takes its panel path (the AVX-512 build's 8 × 32 tile, B read in
/// place) instead of the blocked one (6 × 16, B packed). The Nature
/// network's 4×4/2 and 3×3/1 forwards, in chunks of 2 and 3 samples (180
/// and 147 columns) before: 2.49–2.55 and 1.71–1.74 ms; with at least 512
/// columns (6 and 11 samples): 2.22–2.26 and 1.47–1.48 ms; 640 and 800
/// measured alike (2026-11-29).
const FORWARD_COLUMNS: usize = 512;

/// Target size, in floats, of one chunk's im2col matrix: small enough that
/// the matrix and its packed copy stay in the L2 cache between im2col and GEMM.
const CHUNK_FLOATS: usize = 96 * 1024;

/// 2-D convolution (cross-correlation, as in PyTorch) with stride and zero padding.
///
/// With `W` of shape `[F, C, KH, KW]` viewed as the matrix `W₂ = [F, C·KH·KW]`
/// and `col = im2col(x)` of shape `[C·KH·KW, N·OH·OW]`:
///
/// - forward: `y[n, f, oh, ow] = b[f] + Σ_{c,i,j} W[f, c, i, j] · x[n, c, oh·S + i − P, ow·S + j − P]`,
///   computed as `Y = W₂ · col`;
/// - derivatives: `∂L/∂W₂ = dY · colᵀ`, `∂L/∂b[f] = Σ_{n,oh,ow} dy[n, f, oh, ow]`,
///   `∂L/∂x = col2im(W₂ᵀ · dY)`, where col2im adds up overlapping windows.
///
/// `OH = (H + 2P − KH) / S + 1`, likewise `OW`. The batch is processed in
/// chunks of samples whose im2col matrix stays in cache; the backward cache
/// is the input itself, and backward redoes im2col chunk by chunk (cheaper
/// than keeping, for the Nature network's first layer, a 13 MB matrix). All
/// buffers are reused between calls.
///
/// Where padding output rows from `OW` to `QW = OW + (KW − 1)/S` columns
/// costs at most 1/8 more arithmetic (the Nature network's 8×8/4 and 4×4/2
/// layers), im2col works on the input split into its `S × S` phases (see
/// `Phased`): each tap's row of `col` is then one contiguous run per sample.
/// The train-mode cache is then the phase planes instead of the input; the
/// one-sample forward reads the runs in place (no `col` at all), and
/// backward adds `W₂ᵀ · dY` tile by tile onto the phase planes of `∂L/∂x`
/// (col2im fused into the GEMM) before merging them into NCHW.
///
/// With stride 1, no padding and output rows a multiple of 8 wide (the
/// MinAtar network's 3×3 convolution on 10×10), forward and `∂L/∂W₂` skip
/// im2col altogether: each kernel tap reads 8 adjacent outputs' inputs as
/// one contiguous run of `x`, and the result lands in NCHW order directly.
///
/// ```
/// use rand::SeedableRng;
/// use rl_layers::{Conv2d, Init, Layer, Mode};
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut conv = Conv2d::new(4, 16, 3, 1, 0, Init::HeUniform, &mut rng).unwrap();
/// let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[32, 4, 10, 10]));
/// assert_eq!(conv.forward(x.view(), Mode::Eval).unwrap().shape(), &[32, 16, 8, 8]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[weight, bias]`.
    params: [Param; 2],
    win: Window,
    /// The latest train-mode input, contiguous; or, when `cached_phases` is
    /// set, its [`phase_split`] planes (what backward's im2col reads).
    x: Option<Buf>,
    /// The layout of `x` when it holds phase planes instead of the input.
    cached_phases: Option<Phased>,
    spare: Option<Buf>,
    /// Input dims `[N, C, H, W]` of the latest forward.
    dims: [usize; 4],
    /// A contiguous copy of a strided eval-mode input or `dy`.
    contig: Buf,
    /// Phase-split input rows, scratch for [`im2col`]; or one chunk's
    /// [`phase_split`] planes.
    phases: Vec<f32>,
    /// One chunk's input gradient on [`Phased`] planes, before [`phase_merge`].
    dphases: Vec<f32>,
    /// One chunk's im2col matrix.
    col: Buf,
    /// One chunk's `Y` or `dY`, `[F, n·L]`.
    y_mat: Buf,
    out: Option<Buf>,
    dcol: Buf,
    dx: Buf,
    /// Direct path scratch: `W₂` in filter tiles (forward), lane-wise
    /// partial sums (weight gradient).
    wpack: Vec<f32>,
    /// Kernel-tap offsets in one input sample, for the direct weight gradient.
    offsets: Vec<usize>,
    /// Sparse path scratch: one sample's output or `dy`, filters innermost.
    per_output: Vec<f32>,
}

impl Conv2d {
    /// A convolution with `out` filters of `kernel × kernel` over `channels`
    /// input channels, weights from `init` and biases from [`Init::sample_bias`].
    pub fn new<R: Rng + ?Sized>(
        channels: usize,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        for (field, v) in [
            ("in", channels),
            ("out", out),
            ("kernel", kernel),
            ("stride", stride),
        ] {
            if v == 0 {
                return Err(Error::InvalidConfig {
                    what: "conv2d",
                    field,
                    reason: "must be at least 1".into(),
                });
            }
        }
        let fan_in = channels * kernel * kernel;
        let w = init.sample(
            &[out, channels, kernel, kernel],
            fan_in,
            out * kernel * kernel,
            rng,
        );
        let b = init.sample_bias(out, fan_in, rng);
        Self::from_params(w, b, stride, padding)
    }

    /// Wraps a given `[F, C, KH, KW]` weight and `[F]` bias.
    pub fn from_params(
        weight: ArrayD<f32>,
        bias: ArrayD<f32>,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        if weight.ndim() != 4 || bias.shape() != [weight.shape()[0]] {
            return Err(shape_err(
                "conv2d",
                "weight [F, C, KH, KW] and bias [F]",
                &[weight.shape(), bias.shape()].concat(),
            ));
        }
        if stride == 0 {
            return Err(Error::InvalidConfig {
                what: "conv2d",
                field: "stride",
                reason: "must be at least 1".into(),
            });
        }
        let win = Window {
            kh: weight.shape()[2],
            kw: weight.shape()[3],
            stride,
            padding,
        };
        Ok(Self {
            params: [Param::new(weight), Param::new(bias)],
            win,
            x: None,
            cached_phases: None,
            spare: None,
            dims: [0; 4],
            contig: Buf::default(),
            phases: Vec::new(),
            dphases: Vec::new(),
            col: Buf::default(),
            y_mat: Buf::default(),
            out: None,
            dcol: Buf::default(),
            dx: Buf::default(),
            wpack: Vec::new(),
            offsets: Vec::new(),
            per_output: Vec::new(),
        })
    }

    /// The output shape `[F, OH, OW]` of one `[C, H, W]` sample, or `None` if the kernel does not fit.
    pub fn output_shape(&self, c: usize, h: usize, w: usize) -> Option<[usize; 3]> {
        if c != self.params[0].value.shape()[1] {
            return None;
        }
        let (oh, ow) = self.win.out_size(h, w)?;
        Some([self.params[0].value.shape()[0], oh, ow])
    }

    /// Samples per chunk for `k` im2col rows of `l` positions each.
    fn chunk(n: usize, k: usize, l: usize) -> usize {
        (CHUNK_FLOATS / (k * l).max(1)).clamp(1, n.max(1))
    }

    fn backward_impl(&mut self, dy: ArrayViewD<'_, f32>, need_dx: bool) -> Result<()> {
        let x = self
            .x
            .as_ref()
            .ok_or(Error::NoForwardCache { layer: "conv2d" })?;
        let [n, c, h, w] = self.dims;
        let (oh, ow) = self.win.out_size(h, w).expect("validated in forward");
        let f = self.params[0].value.shape()[0];
        let (l, k) = (oh * ow, c * self.win.kh * self.win.kw);
        if dy.shape() != [n, f, oh, ow] {
            return Err(shape_err(
                "conv2d",
                format!("dy of shape [{n}, {f}, {oh}, {ow}]"),
                dy.shape(),
            ));
        }
        let dys: &[f32] = match dy.as_slice() {
            Some(s) => s,
            None => {
                self.contig.reshape(dy.shape());
                copy_into(&mut self.contig, &dy);
                self.contig.as_slice()
            }
        };
        let [weight, bias] = &mut self.params;
        let w2: ArrayView2<'_, f32> = weight
            .value
            .view()
            .into_shape_with_order((f, k))
            .expect("standard-layout weight");
        let mut dw: ArrayViewMut2<'_, f32> = weight
            .grad
            .view_mut()
            .into_shape_with_order((f, k))
            .expect("standard-layout grad");
        let db = bias.grad.as_slice_mut().expect("standard-layout grad");
        db.fill(0.0);
        let direct = direct_applies(self.win, ow);
        // the direct path's input gradient keeps the plain layout
        let phased = if direct {
            None
        } else {
            Phased::new(self.win, c, h, w)
        };
        if need_dx {
            self.dx.reshape(&self.dims);
            // col2im accumulates; the phased path's merge overwrites every element
            if phased.is_none() {
                self.dx.fill(0.0);
            }
        }
        if direct {
            // ∂L/∂W₂ from x and dy in place; ∂L/∂b[f] = Σ dy[:, f]
            let dw = dw.as_slice_mut().expect("standard-layout grad");
            if sparse::applies(self.win, f, l, x.as_slice()) {
                let geo = sparse::Geometry {
                    dims: self.dims,
                    out_hw: (oh, ow),
                    kernel: (self.win.kh, self.win.kw),
                    f,
                };
                sparse::weight_grad(
                    geo,
                    x.as_slice(),
                    dys,
                    &mut self.wpack,
                    &mut self.per_output,
                    dw,
                );
            } else {
                tap_offsets(&mut self.offsets, c, h, w, self.win);
                dispatch(DirectWeightGrad {
                    x: x.as_slice(),
                    dims: self.dims,
                    out_hw: (oh, ow),
                    dy: dys,
                    f,
                    offsets: &self.offsets,
                    dw,
                    lanes: &mut self.wpack,
                });
            }
            for sample in dys.chunks_exact(f * l) {
                for (g, plane) in db.iter_mut().zip(sample.chunks_exact(l)) {
                    *g += lane_sum(plane);
                }
            }
            if !need_dx {
                return Ok(());
            }
        }
        // dW's dot-product GEMM reads col rows in place, so backward chunks may be larger
        let (lc, qw) = phased.map_or((l, ow), |lay| (lay.cols_per_sample(), lay.qw));
        let per = (Self::chunk(n, k, lc) * 3).min(n.max(1));
        let img = c * h * w;
        for n0 in (0..n).step_by(per) {
            let cn = per.min(n - n0);
            let dims = [cn, c, h, w];
            if let Some(lay) = &phased {
                self.col.reshape(&[k, cn * lc]);
                let ph: &[f32] = if self.cached_phases == phased {
                    // the forward's phase planes
                    &x.as_slice()[n0 * lay.sample_len()..]
                } else {
                    let len = lay.phases_len(cn);
                    if self.phases.len() < len {
                        self.phases.resize(len, 0.0);
                    }
                    let xc = &x.as_slice()[n0 * img..(n0 + cn) * img];
                    phase_split(xc, dims, lay, &mut self.phases);
                    &self.phases
                };
                im2col_phased(ph, cn, lay, self.win, self.col.as_mut_slice());
            } else if !direct {
                self.col.reshape(&[k, cn * l]);
                im2col(
                    &x.as_slice()[n0 * img..(n0 + cn) * img],
                    dims,
                    self.win,
                    self.col.as_mut_slice(),
                    &mut self.phases,
                );
            }
            // dY as [F, cn·L]: dy_mat[f, i·L + l] = dy[n0 + i, f, l]; phased, as
            // [F, cn·OH·QW] with zeros in the padded columns, so that they add
            // nothing to ∂L/∂W₂ and leave ∂L/∂col zero there
            self.y_mat.reshape(&[f, cn * lc]);
            let dst = self.y_mat.as_mut_slice();
            for (i, sample) in dys[n0 * f * l..(n0 + cn) * f * l]
                .chunks_exact(f * l)
                .enumerate()
            {
                for (fi, plane) in sample.chunks_exact(l).enumerate() {
                    let d = &mut dst[fi * cn * lc + i * lc..][..lc];
                    if qw == ow {
                        copy_run(d, plane);
                        continue;
                    }
                    for (drow, srow) in d.chunks_exact_mut(qw).zip(plane.chunks_exact(ow)) {
                        copy_run(&mut drow[..ow], srow);
                        drow[ow..].fill(0.0);
                    }
                }
            }
            let dy_mat = self.y_mat.view().into_dimensionality::<Ix2>().expect("2-D");
            if !direct {
                // ∂L/∂b[f] = Σ dY[f, :]
                for (g, row) in db.iter_mut().zip(dy_mat.rows()) {
                    *g += row.sum();
                }
                // ∂L/∂W₂ = Σ_chunks dY · colᵀ
                let col2 = self.col.view().into_dimensionality::<Ix2>().expect("2-D");
                gemm(
                    1.0,
                    dy_mat,
                    col2.t(),
                    if n0 == 0 { 0.0 } else { 1.0 },
                    &mut dw,
                );
            }
            if need_dx {
                let dxc = &mut self.dx.as_mut_slice()[n0 * img..(n0 + cn) * img];
                if let Some(lay) = &phased
                    && scatter_apply(k, f, cn * lc)
                {
                    // ∂L/∂col = W₂ᵀ · dY added tile by tile onto the phase planes
                    // of ∂L/∂x (col2im fused into the GEMM's store), then merged
                    let len = lay.phases_len(cn);
                    self.dphases.clear();
                    self.dphases.resize(len, 0.0);
                    lay.tap_offsets(self.win, &mut self.offsets);
                    let taps = ScatterRows {
                        data: &mut self.dphases,
                        offsets: &self.offsets,
                        seg: lc,
                        stride: lay.sample_len(),
                    };
                    gemm_scatter_add(1.0, w2.t(), dy_mat, taps);
                    phase_merge(&self.dphases, dims, lay, dxc);
                    continue;
                }
                // ∂L/∂col = W₂ᵀ · dY, then col2im accumulates overlapping windows
                self.dcol.reshape(&[k, cn * lc]);
                let mut dcol = self
                    .dcol
                    .view_mut()
                    .into_dimensionality::<Ix2>()
                    .expect("2-D");
                gemm(1.0, w2.t(), dy_mat, 0.0, &mut dcol);
                if let Some(lay) = &phased {
                    let len = lay.phases_len(cn);
                    self.dphases.clear();
                    self.dphases.resize(len, 0.0);
                    col2im_phased(self.dcol.as_slice(), cn, lay, self.win, &mut self.dphases);
                    phase_merge(&self.dphases, dims, lay, dxc);
                } else {
                    col2im(self.dcol.as_slice(), dims, self.win, dxc);
                }
            }
        }
        Ok(())
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }

    /// # Shapes
    /// `x: [N, C, H, W]` → `y: [N, F, OH, OW]`, `OH = (H + 2P − KH)/S + 1`, `OW = (W + 2P − KW)/S + 1`.
    fn forward<'a>(
        &'a mut self,
        x: ArrayViewD<'_, f32>,
        mode: Mode,
    ) -> Result<ArrayViewD<'a, f32>> {
        let c_w = self.params[0].value.shape()[1];
        let fits = x.ndim() == 4
            && x.shape()[1] == c_w
            && self.win.out_size(x.shape()[2], x.shape()[3]).is_some();
        if !fits {
            return Err(shape_err(
                "conv2d",
                format!("[N, {c_w}, H, W] with H, W ≥ kernel − 2·padding"),
                x.shape(),
            ));
        }
        let dims = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
        self.dims = dims;
        let [n, c, h, w] = dims;
        let (oh, ow) = self.win.out_size(h, w).expect("checked above");
        let (f, l, k) = (
            self.params[0].value.shape()[0],
            oh * ow,
            c * self.win.kh * self.win.kw,
        );
        // the phased im2col layout (strided layers, see `Phased`); its train-mode
        // backward cache is the phase planes, which the forward computes anyway
        let phased = if direct_applies(self.win, ow) {
            None
        } else {
            Phased::new(self.win, c, h, w)
        };
        self.cached_phases = None;
        // the train-mode phase planes, filled chunk by chunk, then stored as `self.x`
        let mut phase_cache: Option<Buf> = None;
        let xs: &[f32] = match (mode, &phased) {
            (Mode::Train, Some(lay)) => {
                let mut buf = take_storage(&mut self.x, &mut self.spare);
                buf.reshape(&[lay.phases_len(n)]);
                // the garbage columns of the last sample read the tail: keep it finite
                buf.as_mut_slice()[n * lay.sample_len()..].fill(0.0);
                phase_cache = Some(buf);
                self.cached_phases = phased;
                match x.to_slice() {
                    Some(s) => s,
                    None => {
                        self.contig.reshape(x.shape());
                        copy_into(&mut self.contig, &x);
                        self.contig.as_slice()
                    }
                }
            }
            (Mode::Train, None) => {
                let mut buf = take_storage(&mut self.x, &mut self.spare);
                buf.reshape(x.shape());
                copy_into(&mut buf, &x);
                self.x.insert(buf).as_slice()
            }
            (Mode::Eval, _) => {
                if let Some(b) = self.x.take() {
                    self.spare = Some(b);
                }
                match x.to_slice() {
                    Some(s) => s,
                    None => {
                        self.contig.reshape(x.shape());
                        copy_into(&mut self.contig, &x);
                        self.contig.as_slice()
                    }
                }
            }
        };
        let [weight, bias] = &self.params;
        let w2: ArrayView2<'_, f32> = weight
            .value
            .view()
            .into_shape_with_order((f, k))
            .expect("standard-layout weight");
        let out = self.out.get_or_insert_with(Buf::default);
        out.reshape(&[n, f, oh, ow]);
        if direct_applies(self.win, ow) && sparse::applies(self.win, f, l, xs) {
            let geo = sparse::Geometry {
                dims,
                out_hw: (oh, ow),
                kernel: (self.win.kh, self.win.kw),
                f,
            };
            sparse::forward(
                geo,
                xs,
                w2.as_slice().expect("standard-layout weight"),
                bias.value.as_slice().expect("standard-layout bias"),
                &mut self.wpack,
                &mut self.per_output,
                out.as_mut_slice(),
            );
            return Ok(out.view());
        }
        if direct_applies(self.win, ow) {
            // y = b + W₂ · x, read in place: no im2col and no reordering
            // filters per tile: the AVX-512 build (`run_wide`) holds more
            let df = if crate::kernels::simd::simd_level() == crate::kernels::simd::Simd::Avx512 {
                WDF
            } else {
                DF
            };
            let fp = f.div_ceil(df) * df;
            self.wpack.clear();
            self.wpack.resize(k * fp, 0.0);
            for (fi, row) in w2.rows().into_iter().enumerate() {
                let tile = &mut self.wpack[fi / df * k * df..][..k * df];
                for (kk, &v) in row.iter().enumerate() {
                    tile[kk * df + fi % df] = v;
                }
            }
            dispatch(DirectForward {
                x: xs,
                dims,
                out_hw: (oh, ow),
                wt: &self.wpack,
                f,
                kernel: (self.win.kh, self.win.kw),
                bias: bias.value.as_slice().expect("standard-layout bias"),
                y: out.as_mut_slice(),
            });
            return Ok(out.view());
        }
        // columns per sample and per output row: padded to QW in the phased layout
        let (lc, qw) = phased.map_or((l, ow), |lay| (lay.cols_per_sample(), lay.qw));
        // one sample where its taps are read in place; else chunks wide enough
        // for the GEMM's panel path
        let per = if phased.is_some() && offset_rows_apply(f, k, lc) {
            1
        } else {
            Self::chunk(n, k, lc)
                .max(FORWARD_COLUMNS.div_ceil(lc))
                .min(n.max(1))
        };
        let img = c * h * w;
        for n0 in (0..n).step_by(per) {
            let cn = per.min(n - n0);
            self.col.reshape(&[k, cn * lc]);
            let xc = &xs[n0 * img..(n0 + cn) * img];
            let mut in_place = false;
            if let Some(lay) = &phased {
                let ph: &mut [f32] = if let Some(cache) = phase_cache.as_mut() {
                    &mut cache.as_mut_slice()[n0 * lay.sample_len()..]
                } else {
                    let len = lay.phases_len(cn);
                    if self.phases.len() < len {
                        self.phases.resize(len, 0.0);
                    }
                    &mut self.phases
                };
                phase_split(xc, [cn, c, h, w], lay, ph);
                let ph: &[f32] = ph;
                if cn == 1 && offset_rows_apply(f, k, lc) {
                    // one sample: the GEMM reads every tap's run straight from
                    // the phases (the 8×8/4 layer's im2col copy cost 280 µs a batch)
                    lay.tap_offsets(self.win, &mut self.offsets);
                    self.y_mat.reshape(&[f, lc]);
                    let taps = OffsetRows {
                        data: ph,
                        offsets: &self.offsets,
                        n: lc,
                    };
                    gemm_offset_rows(1.0, w2, taps, 0.0, self.y_mat.as_mut_slice());
                    in_place = true;
                } else {
                    im2col_phased(ph, cn, lay, self.win, self.col.as_mut_slice());
                }
            } else {
                im2col(
                    xc,
                    [cn, c, h, w],
                    self.win,
                    self.col.as_mut_slice(),
                    &mut self.phases,
                );
            }
            let col2 = self.col.view().into_dimensionality::<Ix2>().expect("2-D");
            let dst = &mut out.as_mut_slice()[n0 * f * l..(n0 + cn) * f * l];
            if cn == 1 && phased.is_none() {
                // one sample: [F, L] is already its NCHW output, so Y = b + W₂ · col lands in place
                let mut y = ArrayViewMut2::from_shape((f, l), dst).expect("F·L elements");
                for (mut row, &b) in y.rows_mut().into_iter().zip(bias.value.iter()) {
                    row.fill(b);
                }
                gemm(1.0, w2, col2, 1.0, &mut y);
                continue;
            }
            // Y = W₂ · col, as [F, cn·L] (or [F, cn·OH·QW], phased)
            if !in_place {
                self.y_mat.reshape(&[f, cn * lc]);
                let mut y_mat = self
                    .y_mat
                    .view_mut()
                    .into_dimensionality::<Ix2>()
                    .expect("2-D");
                gemm(1.0, w2, col2, 0.0, &mut y_mat);
            }
            // y[n0 + i, f, oh, :] = Y[f, (i·OH + oh)·QW ..][..OW] + b[f]
            let ym = self.y_mat.as_slice();
            for (i, sample) in dst.chunks_exact_mut(f * l).enumerate() {
                for (fi, plane) in sample.chunks_exact_mut(l).enumerate() {
                    let b = bias.value[fi];
                    let src = &ym[fi * cn * lc + i * lc..][..lc];
                    if qw == ow {
                        for (d, &v) in plane.iter_mut().zip(src) {
                            *d = v + b;
                        }
                        continue;
                    }
                    for (drow, srow) in plane.chunks_exact_mut(ow).zip(src.chunks_exact(qw)) {
                        for (d, &v) in drow.iter_mut().zip(srow) {
                            *d = v + b;
                        }
                    }
                }
            }
        }
        if phase_cache.is_some() {
            self.x = phase_cache;
        }
        Ok(out.view())
    }

    /// # Shapes
    /// `dy: [N, F, OH, OW]` → `dx: [N, C, H, W]`.
    fn backward<'a>(&'a mut self, dy: ArrayViewD<'_, f32>) -> Result<ArrayViewD<'a, f32>> {
        self.backward_impl(dy, true)?;
        Ok(self.dx.view())
    }

    fn backward_params(&mut self, dy: ArrayViewD<'_, f32>) -> Result<()> {
        self.backward_impl(dy, false)
    }

    fn output(&self) -> Option<ArrayViewD<'_, f32>> {
        self.out.as_ref().map(Buf::view)
    }

    fn param_names(&self) -> &'static [&'static str] {
        &["weight", "bias"]
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}

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
fn direct_applies(win: Window, ow: usize) -> bool {
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

/// Direct convolution for [`direct_applies`] windows:
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
                    // registers, and the tile ran 18 times slower)
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
/// filters, 16 accumulators, and no padded filter for the MinAtar layer's 16
/// (33 → 27 µs). Written with loops, as `run`, the tile ran 12 times slower:
/// LLVM kept its accumulators in memory.
const WDF: usize = 4;

/// `∂L/∂W₂[f, k] = Σ_{n, oh, ow} dy[n, f, oh, ow] · x[n, offset(k) + oh·W + ow]`
/// for [`direct_applies`] windows, read in place from `dy` and `x`.
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
/// 32 registers hold 4 × 6 accumulators (MinAtar layer: 48 → 38 µs).
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
/// dependent addition after another, which cost the MinAtar update about 10 µs.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Shapes `(N, C, H, W, KH, KW, S, P)` for the phased layout: the Nature
    /// network's 8×8/4 and 4×4/2 layers, padding, windows that leave input
    /// rows and columns unused, and the slow (non-Nature-stride) split.
    /// `(N, C, H, W, KH, KW, S, P)`.
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

    const PHASED_CASES: [Case; 8] = [
        (2, 4, 84, 84, 8, 8, 4, 0),
        (3, 3, 20, 20, 4, 4, 2, 0),
        (2, 2, 17, 16, 3, 3, 2, 1),
        (1, 3, 30, 34, 5, 3, 3, 2),
        (2, 1, 19, 18, 2, 2, 2, 0),
        (1, 2, 40, 43, 4, 4, 4, 1),
        (2, 2, 18, 18, 3, 3, 1, 1),
        (1, 1, 41, 42, 3, 5, 4, 0),
    ];

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 31) as f32 - 15.0)
            .collect()
    }

    /// im2col on phase planes holds the same values as the plain im2col in
    /// every column that is not padding, and col2im on phase planes followed
    /// by the merge gives the plain col2im (exactly: the additions per
    /// element happen in the same order).
    #[test]
    fn phased_im2col_and_col2im_match_the_plain_ones() {
        for &(n, c, h, w, kh, kw, s, p) in &PHASED_CASES {
            let win = Window {
                kh,
                kw,
                stride: s,
                padding: p,
            };
            let lay = Phased::new(win, c, h, w).expect("phased layout applies");
            let (oh, ow) = win.out_size(h, w).expect("fits");
            let (k, l, lc) = (c * kh * kw, oh * ow, lay.cols_per_sample());
            let x = values(n * c * h * w, 1);
            let mut plain = vec![0.0; k * n * l];
            im2col(&x, [n, c, h, w], win, &mut plain, &mut Vec::new());
            let mut ph = vec![f32::NAN; lay.phases_len(n)];
            phase_split(&x, [n, c, h, w], &lay, &mut ph);
            let mut col = vec![0.0; k * n * lc];
            im2col_phased(&ph, n, &lay, win, &mut col);
            for r in 0..k {
                for ni in 0..n {
                    for o in 0..oh {
                        for q in 0..ow {
                            assert_eq!(
                                col[r * n * lc + ni * lc + o * lay.qw + q],
                                plain[r * n * l + ni * l + o * ow + q],
                                "im2col {:?} row {r} sample {ni} at {o},{q}",
                                (n, c, h, w, kh, kw, s, p)
                            );
                        }
                    }
                }
            }
            // dcol with zeros in the padded columns
            let dplain = values(k * n * l, 2);
            let mut dcol = vec![0.0; k * n * lc];
            for r in 0..k {
                for ni in 0..n {
                    for o in 0..oh {
                        for q in 0..ow {
                            dcol[r * n * lc + ni * lc + o * lay.qw + q] =
                                dplain[r * n * l + ni * l + o * ow + q];
                        }
                    }
                }
            }
            let mut want = vec![0.0; n * c * h * w];
            col2im(&dplain, [n, c, h, w], win, &mut want);
            let mut dph = vec![0.0; lay.phases_len(n)];
            col2im_phased(&dcol, n, &lay, win, &mut dph);
            let mut got = vec![f32::NAN; n * c * h * w];
            phase_merge(&dph, [n, c, h, w], &lay, &mut got);
            assert_eq!(got, want, "col2im {:?}", (n, c, h, w, kh, kw, s, p));
        }
    }

    /// The layout is chosen only where its padded columns cost at most 1/8.
    #[test]
    fn phased_layout_is_chosen_for_the_nature_strides_only() {
        let win = |k, s| Window {
            kh: k,
            kw: k,
            stride: s,
            padding: 0,
        };
        assert!(Phased::new(win(8, 4), 4, 84, 84).is_some());
        assert!(Phased::new(win(4, 2), 32, 20, 20).is_some());
        assert!(Phased::new(win(3, 1), 64, 9, 9).is_none());
        assert!(Phased::new(win(3, 1), 4, 10, 10).is_none());
    }
}
