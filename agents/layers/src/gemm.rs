//! Single-precision GEMM, `C ← α·A·B + β·C`, on any strides, without heap
//! allocation after warm-up.
//!
//! Why not ndarray's `general_mat_mul` (the `matrixmultiply` crate)? It is
//! fast, but allocates its packing buffers on every call: 14 allocations per
//! MinAtar DQN update (the allocation test counted them). This is the same
//! Goto/BLIS scheme with packing buffers kept in a thread-local that only
//! grows:
//!
//! - loop over column blocks of B (`NC`), then depth blocks (`KC`): pack
//!   `B[pc.., jc..]` into `NR`-wide panels;
//! - loop over row blocks of A (`MC`): pack `A[ic.., pc..]` into `MR`-tall panels;
//! - a `MR × NR` micro-kernel accumulates `Σ_p a[p] ⊗ b[p]` in registers.
//!
//! When A's rows and B's columns are both contiguous along `k` (`x·Wᵀ` in
//! Affine's forward, `dY·colᵀ` in Conv2d's weight gradient), packing B would
//! mean transposing it; instead a `4 × 3` block of dot products reads both
//! operands in place.
//!
//! The micro-kernel is plain Rust over fixed-size arrays, which LLVM turns
//! into vector code; [`crate::simd::dispatch`] runs its AVX2 + FMA build.

use crate::simd::{Kernel, dispatch};
use ndarray::{ArrayView2, ArrayViewMut2, Axis, s};
use std::cell::RefCell;

/// Micro-tile rows.
const MR: usize = 6;
/// Micro-tile columns: two 8-lane AVX registers.
const NR: usize = 16;
/// Depth of one packed block: the convolutions' 256 to 576 in one pass
/// (512 and 384 measured alike on the nets benchmark; 256 was slower).
const KC: usize = 512;
/// Rows of one packed A block (192 KiB packed).
const MC: usize = 96;
/// Columns of one packed B block (2 MiB packed at full depth).
const NC: usize = 1024;

/// Scratch memory of one thread: packed A, packed B, and a row-major stand-in
/// for an output that is not row-major. Grown on first use, then reused.
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `c ← α·a·b + β·c`. When `β = 0`, `c` is not read (it may hold anything).
pub(crate) fn gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    assert_eq!(a.ncols(), b.nrows(), "gemm: inner dimensions");
    assert_eq!((a.nrows(), b.ncols()), c.dim(), "gemm: output shape");
    // The scratch is moved out of the thread-local (no allocation) so that the
    // feature-specific code below contains no closure compiled without its features.
    let mut scratch = SCRATCH.with(|s| s.take());
    run(alpha, a, b, beta, c, &mut scratch);
    SCRATCH.with(|s| s.replace(scratch));
}

fn run(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut Scratch,
) {
    dispatch(Gemm {
        alpha,
        a,
        b,
        beta,
        c,
        scratch,
    });
}

struct Gemm<'a, 'b, 'c> {
    alpha: f32,
    a: ArrayView2<'a, f32>,
    b: ArrayView2<'a, f32>,
    beta: f32,
    c: &'b mut ArrayViewMut2<'c, f32>,
    scratch: &'b mut Scratch,
}

impl Kernel for Gemm<'_, '_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        gemm_portable::<FMA>(self.alpha, self.a, self.b, self.beta, self.c, self.scratch);
    }
}

/// The blocked algorithm. `FMA` selects fused multiply-adds in the micro-kernel
/// (only worth it where the instruction exists; elsewhere `mul_add` is a libm call).
#[inline(always)]
fn gemm_portable<const FMA: bool>(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut Scratch,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale(c, beta);
        return;
    }
    if a.strides()[1] == 1
        && b.strides()[0] == 1
        && k >= 8
        && let Some(cs) = c.as_slice_mut()
    {
        // A·Bᵀ with both operands contiguous along k (x·Wᵀ, dY·colᵀ):
        // register-blocked dot products read them in place, no packing
        gemm_nt::<FMA>(alpha, a, b.reversed_axes(), beta, cs, n);
        return;
    }
    let Scratch {
        a: apack,
        b: bpack,
        c: tmp,
    } = scratch;
    if let Some(cs) = c.as_slice_mut() {
        // row-major C: the common case, rows `n` apart
        blocked::<FMA>(alpha, a, b, beta, cs, n, apack, bpack);
        return;
    }
    // any other layout: compute into a row-major copy
    if tmp.len() < m * n {
        tmp.resize(m * n, 0.0);
    }
    let t = &mut tmp[..m * n];
    if beta != 0.0 {
        for (d, &v) in t.iter_mut().zip(c.iter()) {
            *d = v;
        }
    }
    blocked::<FMA>(alpha, a, b, beta, t, n, apack, bpack);
    for (d, &v) in c.iter_mut().zip(t.iter()) {
        *d = v;
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn blocked<const FMA: bool>(
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
                            let acc = kernel::<FMA>(ap, bp);
                            store(cs, ldc, ic + ir, jc + jr, mr, nr, &acc, alpha, beta_here);
                        }
                    }
                }
            }
        }
    }
}

/// `c ← β·c` (`β = 0` writes zeros without reading).
fn scale(c: &mut ArrayViewMut2<'_, f32>, beta: f32) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.mapv_inplace(|v| v * beta);
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

/// Rows of A per dot-product block.
const DM: usize = 4;
/// Rows of Bᵀ per dot-product block: 4 × 3 accumulators of 8 lanes, plus
/// operands, fit the 16 vector registers.
const DN: usize = 3;
/// Depth of one dot-product pass (2048 and unbounded measured alike; 512 was
/// 5% slower on the MinAtar update, from the extra passes over C).
const DK: usize = 2048;

/// `C ← α·A·Btᵀ + β·C` for row-major `A: [M, K]`, `Bt: [N, K]` (rows contiguous)
/// and row-major `C` with rows `ldc` apart.
#[inline(always)]
fn gemm_nt<const FMA: bool>(
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
        // B rows outside: each block of DN rows of Bt is read from memory once
        // and reused against every row block of A, which stays in cache
        for j0 in (0..n).step_by(DN) {
            let nj = DN.min(n - j0);
            // rows past the edge repeat the first row; their sums are discarded
            let br: [&[f32]; DN] =
                std::array::from_fn(|c| &b_row(j0 + if c < nj { c } else { 0 })[pc..pc + kc]);
            for i0 in (0..m).step_by(DM) {
                let mi = DM.min(m - i0);
                let ar: [&[f32]; DM] =
                    std::array::from_fn(|r| &a_row(i0 + if r < mi { r } else { 0 })[pc..pc + kc]);
                let sums = dot_block::<FMA>(ar, br);
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

/// The `DM × DN` dot products of `a[r]` and `b[c]` (all of one length).
#[inline(always)]
fn dot_block<const FMA: bool>(a: [&[f32]; DM], b: [&[f32]; DN]) -> [[f32; DN]; DM] {
    let len = a[0].len();
    let chunks = len / 8;
    let a8: [&[[f32; 8]]; DM] = a.map(|s| &s.as_chunks::<8>().0[..chunks]);
    let b8: [&[[f32; 8]]; DN] = b.map(|s| &s.as_chunks::<8>().0[..chunks]);
    let mut acc = [[[0.0f32; 8]; DN]; DM];
    for q in 0..chunks {
        let bv: [[f32; 8]; DN] = std::array::from_fn(|c| b8[c][q]);
        for r in 0..DM {
            let av = a8[r][q];
            for c in 0..DN {
                for l in 0..8 {
                    acc[r][c][l] = if FMA {
                        av[l].mul_add(bv[c][l], acc[r][c][l])
                    } else {
                        acc[r][c][l] + av[l] * bv[c][l]
                    };
                }
            }
        }
    }
    let mut out = [[0.0f32; DN]; DM];
    for r in 0..DM {
        for c in 0..DN {
            let lanes = &acc[r][c];
            let s4 = [
                lanes[0] + lanes[4],
                lanes[1] + lanes[5],
                lanes[2] + lanes[6],
                lanes[3] + lanes[7],
            ];
            let mut s = (s4[0] + s4[2]) + (s4[1] + s4[3]);
            for p in chunks * 8..len {
                s += a[r][p] * b[c][p];
            }
            out[r][c] = s;
        }
    }
    out
}

/// `Σ_p a[p] ⊗ b[p]` over one pair of packed panels, in registers.
#[inline(always)]
fn kernel<const FMA: bool>(ap: &[f32], bp: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    let (a_rows, _) = ap.as_chunks::<MR>();
    let (b_rows, _) = bp.as_chunks::<NR>();
    for (a, b) in a_rows.iter().zip(b_rows) {
        for i in 0..MR {
            let ai = a[i];
            for j in 0..NR {
                acc[i][j] = if FMA {
                    ai.mul_add(b[j], acc[i][j])
                } else {
                    acc[i][j] + ai * b[j]
                };
            }
        }
    }
    acc
}

/// `C[i0.., j0..] ← α·acc + β·C` on the valid `mr × nr` part of the tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn store(
    cs: &mut [f32],
    ldc: usize,
    i0: usize,
    j0: usize,
    mr: usize,
    nr: usize,
    acc: &[[f32; NR]; MR],
    alpha: f32,
    beta: f32,
) {
    for (r, acc_row) in acc.iter().enumerate().take(mr) {
        let start = (i0 + r) * ldc + j0;
        if nr == NR {
            let dst: &mut [f32; NR] = (&mut cs[start..start + NR]).try_into().expect("NR wide");
            if beta == 0.0 {
                for j in 0..NR {
                    dst[j] = alpha * acc_row[j];
                }
            } else {
                for j in 0..NR {
                    dst[j] = alpha * acc_row[j] + beta * dst[j];
                }
            }
        } else {
            let dst = &mut cs[start..start + nr];
            for (d, &v) in dst.iter_mut().zip(acc_row) {
                *d = if beta == 0.0 {
                    alpha * v
                } else {
                    alpha * v + beta * *d
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    fn naive(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols())
                .map(|p| f64::from(a[(i, p)]) * f64::from(b[(p, j)]))
                .sum()
        })
    }

    #[test]
    fn matches_naive_on_odd_shapes_and_strides() {
        let mut seed = 1u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 100, 7),
            (2, 33, 40),
            (7, 5, 3),
            (13, 300, 17),
            (100, 33, 1030),
            (6, 16, 16),
            (2, 600, 5),
        ] {
            let a = Array2::from_shape_fn((m, k), |_| next());
            let b_t = Array2::from_shape_fn((n, k).f(), |_| next());
            let b = b_t.t();
            let c0 = Array2::from_shape_fn((m, n), |_| next());
            let want = naive(a.view(), b.view());
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (2.0, -0.5)] {
                let mut c = c0.clone();
                gemm(alpha, a.view(), b.view(), beta, &mut c.view_mut());
                let mut c_t = Array2::zeros((m, n).f());
                c_t.assign(&c0);
                gemm(alpha, a.t().t(), b, beta, &mut c_t.view_mut());
                for ((i, j), &v) in c.indexed_iter() {
                    let w =
                        f64::from(alpha) * want[(i, j)] + f64::from(beta) * f64::from(c0[(i, j)]);
                    assert!(
                        (f64::from(v) - w).abs() < 1e-4 * (k as f64).sqrt(),
                        "{m}x{k}x{n} at {i},{j}"
                    );
                    assert!((f64::from(c_t[(i, j)]) - w).abs() < 1e-4 * (k as f64).sqrt());
                }
            }
        }
    }
}
