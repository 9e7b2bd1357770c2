//! The phased im2col layout of strided convolutions: the input split into
//! its `S × S` phase planes, so that every kernel tap's row of the im2col
//! matrix is one contiguous run per sample (see [`Phased`]).
//!
//! The layer chooses it ([`Strategy::Phased`](super::Strategy::Phased))
//! where [`Phased::new`] accepts the window: the padded output columns cost
//! at most 1/8 more arithmetic. [`super::chunked`] drives it; its train-mode
//! forward keeps the phase planes as the backward cache.

use super::{deinterleave, interleave};
use crate::kernels::simd::{Kernel, dispatch};
use crate::layers::Window;

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
/// nothing to `∂L/∂W` or `∂L/∂x`. (What the layout saves on the Nature
/// network's layers is in docs/perf/layers.md.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Phased {
    /// Output rows and columns.
    oh: usize,
    ow: usize,
    /// Rows and columns of one phase plane.
    qh: usize,
    pub(super) qw: usize,
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
    pub(crate) fn sample_len(&self) -> usize {
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
    pub(super) fn tap_offsets(&self, win: Window, out: &mut Vec<usize>) {
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
/// merge keep the baseline build: their AVX2 builds measured slower
/// (docs/perf/layers.md).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::im2col::{col2im, im2col};

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
