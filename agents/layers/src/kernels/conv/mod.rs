//! The convolution strategies behind [`Conv2d`](crate::Conv2d).
//!
//! The layer computes `Y = W₂ · im2col(x)`, `∂L/∂W₂ = dY · colᵀ` and
//! `∂L/∂x = col2im(W₂ᵀ · dY)`; [`Strategy::choose`] picks, from the shapes
//! alone, how:
//!
//! - [`direct`]: stride 1, no padding and output rows a whole number of
//!   8-wide vectors (the MinAtar network's 3×3 convolution on 10×10): no
//!   im2col at all, every kernel tap reads its inputs in place. On input
//!   that is mostly zeros (0/1 image planes), [`sparse`] instead, which
//!   touches only the non-zero inputs.
//! - [`phased`]: strided windows where laying output rows out `QW` wide
//!   instead of `OW` costs at most 1/8 more arithmetic (the Nature network's
//!   8×8/4 and 4×4/2 layers): im2col on the input's phase planes, one
//!   contiguous run per tap and sample.
//! - [`im2col`]: everything else, im2col through phase-split input rows.
//!
//! [`chunked`] runs the last two: im2col, then the matrix product, in chunks
//! of samples whose im2col matrix stays in cache, with two variants of the
//! phased layout: a one-sample forward whose GEMM reads the taps straight
//! from the phase planes, and col2im fused into the backward GEMM's store.
//!
//! Every strategy is tested against the plain im2col/col2im reference next
//! to the layer (`layers/conv/reference.rs`).

pub(crate) mod chunked;
pub(crate) mod direct;
pub(crate) mod im2col;
pub(crate) mod phased;
pub(crate) mod sparse;

pub(crate) use phased::Phased;

use crate::buf::Buf;
use crate::layers::Window;
use ndarray::ArrayView2;

/// How one convolution is computed, chosen from its shapes alone (and, for
/// [`sparse`] within [`Strategy::Direct`], from its input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Stride 1, no padding, output rows of whole vectors: [`direct`] (or [`sparse`]).
    Direct,
    /// im2col on the input's [`Phased`] planes, then the matrix product, by [`chunked`].
    Phased(Phased),
    /// im2col through phase-split rows ([`im2col`]), then the matrix product, by [`chunked`].
    Im2col,
}

impl Strategy {
    /// The strategy for input `[N, C, H, W]` under `win`, which must fit.
    pub(crate) fn choose(win: Window, [_, c, h, w]: [usize; 4]) -> Self {
        let (_, ow) = win.out_size(h, w).expect("validated window");
        if direct::applies(win, ow) {
            Self::Direct
        } else if let Some(lay) = Phased::new(win, c, h, w) {
            Self::Phased(lay)
        } else {
            Self::Im2col
        }
    }
}

/// One convolution call, as every strategy reads it.
#[derive(Clone, Copy)]
pub(crate) struct Conv<'a> {
    /// The sliding window.
    pub win: Window,
    /// Input `[N, C, H, W]`.
    pub dims: [usize; 4],
    /// The weight `[F, C, KH, KW]` as the matrix `W₂ = [F, C·KH·KW]`.
    pub w2: ArrayView2<'a, f32>,
}

impl Conv<'_> {
    /// Output rows and columns.
    pub(crate) fn out_hw(&self) -> (usize, usize) {
        let [_, _, h, w] = self.dims;
        self.win.out_size(h, w).expect("validated window")
    }
}

/// What backward reads of the latest train-mode forward.
#[derive(Clone, Copy)]
pub(crate) enum Saved<'a> {
    /// The input itself, `[N, C, H, W]`.
    Input(&'a [f32]),
    /// The input's [`phased::phase_split`] planes, which the phased forward
    /// computes anyway.
    Phases(&'a [f32]),
}

/// Buffers the strategies reuse from call to call; they only grow.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    /// Phase-split input rows, scratch for [`im2col::im2col`]; or one
    /// chunk's [`phased::phase_split`] planes.
    pub phases: Vec<f32>,
    /// One chunk's input gradient on [`Phased`] planes, before
    /// [`phased::phase_merge`].
    pub dphases: Vec<f32>,
    /// One chunk's im2col matrix.
    pub col: Buf,
    /// One chunk's `Y` or `dY`, `[F, n·L]`.
    pub y_mat: Buf,
    /// One chunk's `∂L/∂col`.
    pub dcol: Buf,
    /// Direct path scratch: `W₂` in filter tiles (forward), lane-wise
    /// partial sums (weight gradient); sparse path: `W` or `∂L/∂W` with the
    /// filters innermost.
    pub wpack: Vec<f32>,
    /// Kernel-tap offsets in one input sample (direct weight gradient) or
    /// in its phase planes.
    pub offsets: Vec<usize>,
    /// Sparse path scratch: one sample's output or `dy`, filters innermost.
    pub per_output: Vec<f32>,
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
pub(super) fn copy8(dst: &mut [f32], src: &[f32]) {
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
pub(super) fn deinterleave<const S: usize>(row: &[f32], dst: &mut [f32], phase_stride: usize) {
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
pub(super) fn interleave<const S: usize>(src: &[f32], row: &mut [f32], phase_stride: usize) {
    let (groups, _) = row.as_chunks_mut::<S>();
    let phases: [&[f32]; S] = std::array::from_fn(|r| &src[r * phase_stride..][..groups.len()]);
    for (q, g) in groups.iter_mut().enumerate() {
        for r in 0..S {
            g[r] = phases[r][q];
        }
    }
}
