//! im2col, then a matrix product, in chunks of samples: the convolution as
//! the notes describe it, made fast. The layer takes this route for the
//! [`Phased`] and plain [`im2col`] layouts
//! ([`Strategy::Phased`](super::Strategy::Phased),
//! [`Strategy::Im2col`](super::Strategy::Im2col)).
//!
//! - Forward: `Y = W₂ · col` for each chunk of samples whose im2col matrix
//!   stays in cache (at least [`FORWARD_COLUMNS`] columns, so that the GEMM
//!   takes its panel path), then `y = Y + b` reordered into NCHW. Two
//!   variants: one sample of the plain layout multiplies straight into its
//!   NCHW output (`[F, L]` is already its layout); one sample of the phased
//!   layout, when the GEMM's panel path applies, reads every tap's run in
//!   place from the phase planes (`gemm_offset_rows`), with no im2col copy.
//! - Backward: per chunk (three times the forward's: the weight gradient's
//!   dot-product GEMM reads `col` in place), im2col again from what the
//!   forward saved, `∂L/∂W₂ += dY · colᵀ`, `∂L/∂b += Σ dY`, and
//!   `∂L/∂x = col2im(W₂ᵀ · dY)`. Under the phased layout, when the panel
//!   path applies, col2im is fused into the GEMM: `W₂ᵀ · dY` is added tile
//!   by tile onto the phase planes of `∂L/∂x` (`gemm_scatter_add`), never
//!   written out, then the planes are merged into NCHW.
//!
//! The backward cache is the input, redoing im2col per chunk (cheaper than
//! keeping, for the Nature network's first layer, a 13 MB matrix), or, under
//! the phased layout, the phase planes the forward computed.

use super::im2col::{col2im, im2col};
use super::phased::{Phased, col2im_phased, im2col_phased, phase_merge, phase_split};
use super::{Conv, Saved, Scratch, copy_run};
use crate::kernels::gemm::{
    OffsetRows, ScatterRows, gemm, gemm_offset_rows, gemm_scatter_add, offset_rows_apply,
    scatter_apply,
};
use ndarray::{ArrayViewMut2, Ix2};

/// Fewest columns of one forward chunk's im2col matrix: at 256 or more the
/// GEMM takes its panel path (the AVX-512 build's 8 × 32 tile, B read in
/// place) instead of the blocked one (6 × 16, B packed); 512 rather than
/// 256 from measurements of the Nature network's forwards
/// (docs/perf/layers.md).
const FORWARD_COLUMNS: usize = 512;

/// Target size, in floats, of one chunk's im2col matrix: small enough that
/// the matrix and its packed copy stay in the L2 cache between im2col and GEMM.
const CHUNK_FLOATS: usize = 96 * 1024;

/// Samples per chunk for `k` im2col rows of `l` positions each.
fn chunk(n: usize, k: usize, l: usize) -> usize {
    (CHUNK_FLOATS / (k * l).max(1)).clamp(1, n.max(1))
}

/// `y = b + W₂ · im2col(x)` (NCHW), chunk by chunk, under the phased
/// `layout` or, if `None`, the plain one. In train mode under the phased
/// layout, `phase_cache` (`phases_len(N)` floats) receives the input's phase
/// planes, for backward.
pub(crate) fn forward(
    conv: Conv<'_>,
    layout: Option<&Phased>,
    x: &[f32],
    bias: &[f32],
    mut phase_cache: Option<&mut [f32]>,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let Conv { win, dims, w2 } = conv;
    let [n, c, h, w] = dims;
    let (oh, ow) = conv.out_hw();
    let (f, k) = w2.dim();
    let l = oh * ow;
    // columns per sample and per output row: padded to QW in the phased layout
    let (lc, qw) = layout.map_or((l, ow), |lay| (lay.cols_per_sample(), lay.qw));
    // one sample where its taps are read in place; else chunks wide enough
    // for the GEMM's panel path
    let per = if layout.is_some() && offset_rows_apply(f, k, lc) {
        1
    } else {
        chunk(n, k, lc)
            .max(FORWARD_COLUMNS.div_ceil(lc))
            .min(n.max(1))
    };
    let img = c * h * w;
    for n0 in (0..n).step_by(per) {
        let cn = per.min(n - n0);
        scratch.col.reshape(&[k, cn * lc]);
        let xc = &x[n0 * img..(n0 + cn) * img];
        let mut in_place = false;
        if let Some(lay) = layout {
            let ph: &mut [f32] = if let Some(cache) = phase_cache.as_deref_mut() {
                &mut cache[n0 * lay.sample_len()..]
            } else {
                let len = lay.phases_len(cn);
                if scratch.phases.len() < len {
                    scratch.phases.resize(len, 0.0);
                }
                &mut scratch.phases
            };
            phase_split(xc, [cn, c, h, w], lay, ph);
            let ph: &[f32] = ph;
            if cn == 1 && offset_rows_apply(f, k, lc) {
                // one sample: the GEMM reads every tap's run straight from
                // the phases, without the im2col copy
                lay.tap_offsets(win, &mut scratch.offsets);
                scratch.y_mat.reshape(&[f, lc]);
                let taps = OffsetRows {
                    data: ph,
                    offsets: &scratch.offsets,
                    n: lc,
                };
                gemm_offset_rows(1.0, w2, taps, 0.0, scratch.y_mat.as_mut_slice());
                in_place = true;
            } else {
                im2col_phased(ph, cn, lay, win, scratch.col.as_mut_slice());
            }
        } else {
            im2col(
                xc,
                [cn, c, h, w],
                win,
                scratch.col.as_mut_slice(),
                &mut scratch.phases,
            );
        }
        let col2 = scratch
            .col
            .view()
            .into_dimensionality::<Ix2>()
            .expect("2-D");
        let dst = &mut out[n0 * f * l..(n0 + cn) * f * l];
        if cn == 1 && layout.is_none() {
            // one sample: [F, L] is already its NCHW output, so Y = b + W₂ · col lands in place
            let mut y = ArrayViewMut2::from_shape((f, l), dst).expect("F·L elements");
            for (mut row, &b) in y.rows_mut().into_iter().zip(bias.iter()) {
                row.fill(b);
            }
            gemm(1.0, w2, col2, 1.0, &mut y);
            continue;
        }
        // Y = W₂ · col, as [F, cn·L] (or [F, cn·OH·QW], phased)
        if !in_place {
            scratch.y_mat.reshape(&[f, cn * lc]);
            let mut y_mat = scratch
                .y_mat
                .view_mut()
                .into_dimensionality::<Ix2>()
                .expect("2-D");
            gemm(1.0, w2, col2, 0.0, &mut y_mat);
        }
        // y[n0 + i, f, oh, :] = Y[f, (i·OH + oh)·QW ..][..OW] + b[f]
        let ym = scratch.y_mat.as_slice();
        for (i, sample) in dst.chunks_exact_mut(f * l).enumerate() {
            for (fi, plane) in sample.chunks_exact_mut(l).enumerate() {
                let b = bias[fi];
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
}

/// Backward, chunk by chunk, redoing im2col from what the forward `saved`:
/// with `grads`, `∂L/∂W₂ = dY · colᵀ` (overwritten) and `∂L/∂b += Σ dY`;
/// with `dx`, `∂L/∂x = col2im(W₂ᵀ · dY)` (overwritten). Without `grads`
/// (the direct strategy's input gradient, plain layout), no im2col at all.
pub(crate) fn backward(
    conv: Conv<'_>,
    layout: Option<&Phased>,
    saved: Saved<'_>,
    dy: &[f32],
    mut grads: Option<(ArrayViewMut2<'_, f32>, &mut [f32])>,
    mut dx: Option<&mut [f32]>,
    scratch: &mut Scratch,
) {
    let Conv { win, dims, w2 } = conv;
    let [n, c, h, w] = dims;
    let (oh, ow) = conv.out_hw();
    let (f, k) = w2.dim();
    let l = oh * ow;
    if layout.is_none()
        && let Some(dx) = dx.as_deref_mut()
    {
        // col2im accumulates; the phased path's merge overwrites every element
        dx.fill(0.0);
    }
    // dW's dot-product GEMM reads col rows in place, so backward chunks may be larger
    let (lc, qw) = layout.map_or((l, ow), |lay| (lay.cols_per_sample(), lay.qw));
    let per = (chunk(n, k, lc) * 3).min(n.max(1));
    let img = c * h * w;
    for n0 in (0..n).step_by(per) {
        let cn = per.min(n - n0);
        let dims = [cn, c, h, w];
        if let Some(lay) = layout {
            scratch.col.reshape(&[k, cn * lc]);
            let ph: &[f32] = match saved {
                // the forward's phase planes
                Saved::Phases(ph) => &ph[n0 * lay.sample_len()..],
                Saved::Input(x) => {
                    let len = lay.phases_len(cn);
                    if scratch.phases.len() < len {
                        scratch.phases.resize(len, 0.0);
                    }
                    let xc = &x[n0 * img..(n0 + cn) * img];
                    phase_split(xc, dims, lay, &mut scratch.phases);
                    &scratch.phases
                }
            };
            im2col_phased(ph, cn, lay, win, scratch.col.as_mut_slice());
        } else if grads.is_some() {
            // the plain layout saves the input itself
            let (Saved::Input(x) | Saved::Phases(x)) = saved;
            scratch.col.reshape(&[k, cn * l]);
            im2col(
                &x[n0 * img..(n0 + cn) * img],
                dims,
                win,
                scratch.col.as_mut_slice(),
                &mut scratch.phases,
            );
        }
        // dY as [F, cn·L]: dy_mat[f, i·L + l] = dy[n0 + i, f, l]; phased, as
        // [F, cn·OH·QW] with zeros in the padded columns, so that they add
        // nothing to ∂L/∂W₂ and leave ∂L/∂col zero there
        scratch.y_mat.reshape(&[f, cn * lc]);
        let dst = scratch.y_mat.as_mut_slice();
        for (i, sample) in dy[n0 * f * l..(n0 + cn) * f * l]
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
        let dy_mat = scratch
            .y_mat
            .view()
            .into_dimensionality::<Ix2>()
            .expect("2-D");
        if let Some((dw, db)) = grads.as_mut() {
            // ∂L/∂b[f] = Σ dY[f, :]
            for (g, row) in db.iter_mut().zip(dy_mat.rows()) {
                *g += row.sum();
            }
            // ∂L/∂W₂ = Σ_chunks dY · colᵀ
            let col2 = scratch
                .col
                .view()
                .into_dimensionality::<Ix2>()
                .expect("2-D");
            gemm(1.0, dy_mat, col2.t(), if n0 == 0 { 0.0 } else { 1.0 }, dw);
        }
        if let Some(dx) = dx.as_deref_mut() {
            let dxc = &mut dx[n0 * img..(n0 + cn) * img];
            if let Some(lay) = layout
                && scatter_apply(k, f, cn * lc)
            {
                // ∂L/∂col = W₂ᵀ · dY added tile by tile onto the phase planes
                // of ∂L/∂x (col2im fused into the GEMM's store), then merged
                let len = lay.phases_len(cn);
                scratch.dphases.clear();
                scratch.dphases.resize(len, 0.0);
                lay.tap_offsets(win, &mut scratch.offsets);
                let taps = ScatterRows {
                    data: &mut scratch.dphases,
                    offsets: &scratch.offsets,
                    seg: lc,
                    stride: lay.sample_len(),
                };
                gemm_scatter_add(1.0, w2.t(), dy_mat, taps);
                phase_merge(&scratch.dphases, dims, lay, dxc);
                continue;
            }
            // ∂L/∂col = W₂ᵀ · dY, then col2im accumulates overlapping windows
            scratch.dcol.reshape(&[k, cn * lc]);
            let mut dcol = scratch
                .dcol
                .view_mut()
                .into_dimensionality::<Ix2>()
                .expect("2-D");
            gemm(1.0, w2.t(), dy_mat, 0.0, &mut dcol);
            if let Some(lay) = layout {
                let len = lay.phases_len(cn);
                scratch.dphases.clear();
                scratch.dphases.resize(len, 0.0);
                col2im_phased(scratch.dcol.as_slice(), cn, lay, win, &mut scratch.dphases);
                phase_merge(&scratch.dphases, dims, lay, dxc);
            } else {
                col2im(scratch.dcol.as_slice(), dims, win, dxc);
            }
        }
    }
}
