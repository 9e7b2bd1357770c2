//! The dot-product path: `C ← α·A·Btᵀ + β·C` with A's rows and Bt's rows
//! contiguous along `k` (`x·Wᵀ` in Affine's forward, `dY·colᵀ` in Conv2d's
//! weight gradient). Packing B would mean transposing it; instead blocks of
//! `DM × DN` dot products read both operands in place, 8 lanes at a time,
//! and fold their lanes at the end.

use ndarray::ArrayView2;

/// Rows of A per dot-product block.
pub(super) const DM: usize = 4;
/// Rows of Bᵀ per dot-product block: 4 × 3 accumulators of 8 lanes, plus
/// operands, fit the 16 vector registers.
pub(super) const DN: usize = 3;
/// Depth of one dot-product pass: shorter passes cost extra passes over C
/// (the depths measured are in docs/perf/layers.md).
const DK: usize = 2048;

/// `C ← α·A·Btᵀ + β·C` for row-major `A: [M, K]`, `Bt: [N, K]` (rows contiguous)
/// and row-major `C` with rows `ldc` apart, in blocks of `QM × QN` dot
/// products of `L` lanes.
#[inline(always)]
pub(super) fn gemm_nt<const FMA: bool, const QM: usize, const QN: usize, const L: usize>(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    bt: ArrayView2<'_, f32>,
    beta: f32,
    cs: &mut [f32],
    ldc: usize,
) {
    let (m, k) = a.dim();
    let n = bt.nrows();
    let a_row = |i: usize| a.row(i).to_slice().expect("unit stride along k");
    let b_row = |j: usize| bt.row(j).to_slice().expect("unit stride along k");
    for pc in (0..k).step_by(DK) {
        let kc = DK.min(k - pc);
        let beta_here = if pc == 0 { beta } else { 1.0 };
        // B rows outside: each block of QN rows of Bt is read from memory once
        // and reused against every row block of A, which stays in cache
        for j0 in (0..n).step_by(QN) {
            let nj = QN.min(n - j0);
            // rows past the edge repeat the first row; their sums are discarded
            let br: [&[f32]; QN] =
                std::array::from_fn(|c| &b_row(j0 + if c < nj { c } else { 0 })[pc..pc + kc]);
            for i0 in (0..m).step_by(QM) {
                let mi = QM.min(m - i0);
                let ar: [&[f32]; QM] =
                    std::array::from_fn(|r| &a_row(i0 + if r < mi { r } else { 0 })[pc..pc + kc]);
                let sums = dot_block::<FMA, QM, QN, L>(ar, br);
                for (r, row) in sums.iter().enumerate().take(mi) {
                    let dst = &mut cs[(i0 + r) * ldc + j0..][..nj];
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = if beta_here == 0.0 {
                            alpha * v
                        } else {
                            alpha * v + beta_here * *d
                        };
                    }
                }
            }
        }
    }
}

/// The `QM × QN` dot products of `a[r]` and `b[c]` (all of one length), `L`
/// lanes at a time (8 or 16).
#[inline(always)]
fn dot_block<const FMA: bool, const QM: usize, const QN: usize, const L: usize>(
    a: [&[f32]; QM],
    b: [&[f32]; QN],
) -> [[f32; QN]; QM] {
    const {
        assert!(
            (L == 8 || L == 16) && QM <= 8,
            "dot_block: 8 or 16 lanes, 8 rows"
        )
    };
    let len = a[0].len();
    let chunks = len / L;
    let av: [&[[f32; L]]; QM] = a.map(|s| &s.as_chunks::<L>().0[..chunks]);
    let bv: [&[[f32; L]]; QN] = b.map(|s| &s.as_chunks::<L>().0[..chunks]);
    let mut acc = [[[0.0f32; L]; QN]; QM];
    for q in 0..chunks {
        let bq: [[f32; L]; QN] = std::array::from_fn(|c| bv[c][q]);
        // rows and columns written out (see `rank1`): with a loop over either,
        // LLVM may keep the accumulators in memory
        macro_rules! cols {
            ($r:literal, $aq:ident, $($c:literal)*) => {$(
                if $c < QN {
                    acc[$r][$c] = fma_lanes::<FMA, L>($aq, bq[$c], acc[$r][$c]);
                }
            )*};
        }
        macro_rules! rows {
            ($($r:literal)*) => {$(
                if $r < QM {
                    let aq = av[$r][q];
                    cols!($r, aq, 0 1 2 3 4 5 6 7);
                }
            )*};
        }
        rows!(0 1 2 3 4 5 6 7);
    }
    let mut out = [[0.0f32; QN]; QM];
    for r in 0..QM {
        for c in 0..QN {
            let lanes = &acc[r][c];
            // 16 lanes fold to 8 first; 8 lanes sum as pairs of pairs
            let l8: [f32; 8] = if L == 16 {
                std::array::from_fn(|i| lanes[i] + lanes[i + 8])
            } else {
                std::array::from_fn(|i| lanes[i])
            };
            let s4 = [l8[0] + l8[4], l8[1] + l8[5], l8[2] + l8[6], l8[3] + l8[7]];
            let mut s = (s4[0] + s4[2]) + (s4[1] + s4[3]);
            for p in chunks * L..len {
                s += a[r][p] * b[c][p];
            }
            out[r][c] = s;
        }
    }
    out
}

/// `a·b + c`, lane by lane.
#[inline(always)]
fn fma_lanes<const FMA: bool, const L: usize>(
    a: [f32; L],
    b: [f32; L],
    mut c: [f32; L],
) -> [f32; L] {
    for l in 0..L {
        c[l] = if FMA {
            a[l].mul_add(b[l], c[l])
        } else {
            c[l] + a[l] * b[l]
        };
    }
    c
}
