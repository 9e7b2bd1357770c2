//! im2col and col2im for the plain layout: the unrolled matrix
//! `[C·KH·KW, N·OH·OW]`, filled through phase-split input rows so that
//! every copy is a contiguous run.
//!
//! The layer chooses this layout ([`Strategy::Im2col`](super::Strategy::Im2col))
//! for windows that neither the direct path nor the phased layout takes (a
//! 3×3 stride-1 window on 9×9, say, where padding the output rows to the
//! phased width would cost more than these copies); the direct path's input
//! gradient also goes through [`col2im`]. [`super::chunked`] calls both, a
//! chunk of samples at a time.

use super::{copy_run, copy8, deinterleave};
use crate::kernels::simd::{Kernel, dispatch};
use crate::layers::Window;

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
