//! The general path: Goto/BLIS blocking for any A and B, into row-major C.
//!
//! B is cut into column blocks of `NC` and depth blocks of `KC`, each packed
//! into `NR`-wide panels; A into row blocks of `MC`, each packed into
//! `MR`-tall panels; the `MR × NR` micro-kernel then runs over every pair of
//! panels. β applies on the first depth block only; later blocks add.

use super::micro::{MR, NR, kernel};
use super::panel::{PanelC, Rows, Strided};
use ndarray::{ArrayView2, Axis, s};

/// Depth of one packed block: the convolutions' 256 to 576 in one pass
/// (the depths measured are in docs/perf/layers.md).
const KC: usize = 512;
/// Rows of one packed A block (192 KiB packed).
const MC: usize = 96;
/// Columns of one packed B block (2 MiB packed at full depth).
const NC: usize = 1024;

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn blocked<const FMA: bool>(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    cs: &mut [f32],
    ldc: usize,
    apack: &mut Vec<f32>,
    bpack: &mut Vec<f32>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let mut c = Rows {
        cs,
        rows: Strided(ldc),
    };
    {
        let need_a = MC.min(m).div_ceil(MR) * MR * KC.min(k);
        let need_b = NC.min(n).div_ceil(NR) * NR * KC.min(k);
        if apack.len() < need_a {
            apack.resize(need_a, 0.0);
        }
        if bpack.len() < need_b {
            bpack.resize(need_b, 0.0);
        }
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                pack_b(b.slice(s![pc..pc + kc, jc..jc + nc]), bpack);
                // β applies once, on the first depth block; later blocks add.
                let beta_here = if pc == 0 { beta } else { 1.0 };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    pack_a(a.slice(s![ic..ic + mc, pc..pc + kc]), apack);
                    for jr in (0..nc).step_by(NR) {
                        let nr = NR.min(nc - jr);
                        let bp = &bpack[jr * kc..(jr + NR) * kc];
                        for ir in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ir);
                            let ap = &apack[ir * kc..(ir + MR) * kc];
                            let acc = kernel::<FMA, MR, NR>(ap, bp);
                            c.store(ic + ir, jc + jr, mr, nr, &acc, alpha, beta_here);
                        }
                    }
                }
            }
        }
    }
}

/// Packs an `mc × kc` block of A into `MR`-row panels: `out[panel][p][r] = A[panel·MR + r, p]`,
/// zero-padding the last panel.
#[inline(always)]
fn pack_a(a: ArrayView2<'_, f32>, out: &mut [f32]) {
    let (mc, kc) = a.dim();
    for (panel, rows) in a.axis_chunks_iter(Axis(0), MR).enumerate() {
        let dst = &mut out[panel * MR * kc..(panel + 1) * MR * kc];
        let mr = rows.nrows();
        if mr < MR {
            dst.fill(0.0);
        }
        if mr == MR && rows.strides()[1] == 1 {
            // a full panel of row-major A: walk the MR rows together so that the
            // writes are contiguous, MR floats per step of p
            let src: [&[f32]; MR] =
                std::array::from_fn(|r| rows.row(r).to_slice().expect("unit stride"));
            let src: [&[f32]; MR] = src.map(|s| &s[..kc]);
            for (p, d) in dst.as_chunks_mut::<MR>().0.iter_mut().enumerate() {
                for r in 0..MR {
                    d[r] = src[r][p];
                }
            }
        } else if rows.strides()[1] == 1 || mr == 1 {
            for (r, row) in rows.rows().into_iter().enumerate() {
                for (p, &v) in row.iter().enumerate() {
                    dst[p * MR + r] = v;
                }
            }
        } else {
            for (p, col) in rows.columns().into_iter().enumerate() {
                for (r, &v) in col.iter().enumerate() {
                    dst[p * MR + r] = v;
                }
            }
        }
    }
    debug_assert!(out.len() >= mc.div_ceil(MR) * MR * kc);
}

/// Packs a `kc × nc` block of B into `NR`-column panels: `out[panel][p][j] = B[p, panel·NR + j]`,
/// zero-padding the last panel.
#[inline(always)]
fn pack_b(b: ArrayView2<'_, f32>, out: &mut [f32]) {
    let kc = b.nrows();
    for (panel, cols) in b.axis_chunks_iter(Axis(1), NR).enumerate() {
        let dst = &mut out[panel * NR * kc..(panel + 1) * NR * kc];
        let nr = cols.ncols();
        if nr < NR {
            dst.fill(0.0);
        }
        if cols.strides()[0] == 1 && nr > 1 {
            // column-major source (a transposed view): transpose 8 × 8 blocks in registers
            pack_b_transposed(cols, dst);
        } else {
            for (row, d) in cols.rows().into_iter().zip(dst.chunks_exact_mut(NR)) {
                match row.as_slice() {
                    Some(s) if nr == NR => {
                        let d: &mut [f32; NR] = d.try_into().expect("NR wide");
                        let s: &[f32; NR] = s.try_into().expect("NR wide");
                        *d = *s;
                    }
                    _ => d.iter_mut().zip(row.iter()).for_each(|(d, &v)| *d = v),
                }
            }
        }
    }
}

/// `dst[p·NR + j] = cols[p, j]` for a column-major `kc × nr` block.
#[inline(always)]
fn pack_b_transposed(cols: ArrayView2<'_, f32>, dst: &mut [f32]) {
    let (kc, nr) = cols.dim();
    let col_slices: [Option<&[f32]>; NR] = std::array::from_fn(|j| {
        if j < nr {
            cols.column(j).to_slice()
        } else {
            None
        }
    });
    if col_slices.iter().take(nr).all(Option::is_some) {
        let full = kc - kc % 8;
        for j0 in (0..nr).step_by(8) {
            let width = 8.min(nr - j0);
            for p0 in (0..full).step_by(8) {
                let mut blk = [[0.0f32; 8]; 8];
                for (jj, row) in blk.iter_mut().enumerate().take(width) {
                    let src = col_slices[j0 + jj].expect("checked");
                    *row = src[p0..p0 + 8].try_into().expect("8 wide");
                }
                for pp in 0..8 {
                    let d: &mut [f32; 8] = (&mut dst[(p0 + pp) * NR + j0..(p0 + pp) * NR + j0 + 8])
                        .try_into()
                        .expect("8 wide");
                    for jj in 0..8 {
                        d[jj] = blk[jj][pp];
                    }
                }
            }
            for p in full..kc {
                for jj in 0..width {
                    dst[p * NR + j0 + jj] = col_slices[j0 + jj].expect("checked")[p];
                }
            }
        }
    } else {
        for (j, col) in cols.columns().into_iter().enumerate() {
            for (p, &v) in col.iter().enumerate() {
                dst[p * NR + j] = v;
            }
        }
    }
}
