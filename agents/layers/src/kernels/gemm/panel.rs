//! The panel path: a small A (`M·K ≤ PANEL_A_MAX`), packed whole once,
//! against a wide row-major B (`N ≥ PANEL_MIN_N`) walked one column panel at
//! a time, into an output given as rows.
//!
//! [`gemm`](super::gemm) takes it for plain matrices; three entry points
//! here take it for rows at offsets of one buffer: [`gemm_offset_rows`] (B's
//! rows anywhere, [`OffsetRows`]), [`gemm_scatter_add`] (C added segment by
//! segment at overlapping offsets, [`ScatterRows`]) and [`gemm_rows_at`]
//! (C's rows overwritten where they lie).

use super::micro::{MR, NR, TAIL_ROWS, kernel, kernel_rows, kernel_strided, rank1, store_row};
use super::{Scratch, with_scratch};
use crate::kernels::simd::{Kernel, dispatch};
use ndarray::{ArrayView2, Axis, s};

/// AVX-512 panel tile rows: `8 × 32` was the fastest of the tiles measured
/// (docs/perf/layers.md), and leaves 16 of the 32 registers for operands.
pub(super) const WMR: usize = 8;
/// AVX-512 panel tile columns: two 16-lane registers.
pub(super) const WNR: usize = 32;

/// Largest `A` (in floats, 256 KiB) that the panel path packs whole.
pub(super) const PANEL_A_MAX: usize = 64 * 1024;
/// Fewest columns of B for the panel path. Narrower products (convolution
/// forwards on chunks of 147 to 162 columns) ran slower on it than on the
/// blocked path (docs/perf/layers.md): a last, mostly empty, 32-wide panel,
/// and 4 depth blocks over C.
pub(super) const PANEL_MIN_N: usize = 256;
/// Bytes of one packed column panel of B, kept in the L1 cache while every
/// row panel of A passes over it.
const PANEL_B_BYTES: usize = 16 * 1024;

/// `C ← α·A·B + β·C` for a small `A` (`M·K ≤ PANEL_A_MAX`) and row-major
/// `B` (rows contiguous), into row-major `C`: A is packed whole into `PM`-row
/// panels, and each `PN`-wide column panel of B meets every panel of A.
/// With at most `IN_PLACE` row panels, B's rows are read where they are,
/// at full depth (packing them was a measurable share of a fully connected
/// layer's backward, docs/perf/layers.md); otherwise each `kc × PN` panel is packed so that it stays in
/// L1 however far apart B's rows are. A last, partial column panel is always
/// packed (zero-padded).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn panel<
    const FMA: bool,
    const PM: usize,
    const PN: usize,
    const IN_PLACE: usize,
    B: PanelB,
    C: PanelC,
>(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: B,
    beta: f32,
    c: &mut C,
    apack: &mut Vec<f32>,
    bpack: &mut Vec<f32>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let mp = m.div_ceil(PM);
    let in_place = mp <= IN_PLACE && b.in_place();
    // packed panels of B are cut in depth to stay in L1; B read in place is
    // not, so that C is stored once
    let kcp = if in_place {
        k
    } else {
        (PANEL_B_BYTES / 4 / PN).max(1)
    };
    if apack.len() < mp * PM * k {
        apack.resize(mp * PM * k, 0.0);
    }
    if bpack.len() < kcp.min(k) * PN {
        bpack.resize(kcp.min(k) * PN, 0.0);
    }
    // With B packed and the AVX2 tile, a remainder of 2 or 4 rows is cut
    // into 4-row panels (M = 32: 6·4 + 4·2 instead of 6·6 with 4 rows
    // computed for nothing), done by a tile of 8 accumulators.
    let tail = !in_place && PM == MR && matches!(m % PM, 2 | 4) && m >= TAIL_ROWS;
    let split_last_two = tail && m % PM == 2;
    // (first row, rows) of each packed row panel
    let geometry = |slot: usize| -> (usize, usize) {
        if split_last_two && slot + 2 >= mp {
            ((mp - 2) * PM + (slot + 2 - mp) * TAIL_ROWS, TAIL_ROWS)
        } else {
            (slot * PM, PM.min(m - slot * PM))
        }
    };
    // apack[panel][p][r] = A[first row of panel + r, p], zero-padded rows
    for panel in 0..mp {
        let (first, mr) = geometry(panel);
        let rows = a.slice(s![first..first + mr, ..]);
        let dst = &mut apack[panel * PM * k..(panel + 1) * PM * k];
        if mr < PM {
            dst.fill(0.0);
        }
        if rows.strides()[0] == 1 {
            // column-major A (a transposed view): each column is PM contiguous floats
            for (p, col) in rows.columns().into_iter().enumerate() {
                let d = &mut dst[p * PM..p * PM + mr];
                match col.to_slice() {
                    // fixed-size: vector moves instead of a `memcpy` call
                    Some(s) if mr == PM => {
                        let d: &mut [f32; PM] = d.try_into().expect("PM rows");
                        *d = s.try_into().expect("PM rows");
                    }
                    Some(s) => d.copy_from_slice(s),
                    None => d.iter_mut().zip(col.iter()).for_each(|(d, &v)| *d = v),
                }
            }
        } else {
            for (r, row) in rows.rows().into_iter().enumerate() {
                for (p, &v) in row.iter().enumerate() {
                    dst[p * PM + r] = v;
                }
            }
        }
    }
    for pc in (0..k).step_by(kcp) {
        let kc = kcp.min(k - pc);
        let beta_here = if pc == 0 { beta } else { 1.0 };
        for j0 in (0..n).step_by(PN) {
            let nr = PN.min(n - j0);
            if in_place && nr == PN {
                // few row panels: read B's rows where they are
                for panel in 0..mp {
                    let ap = &apack[panel * PM * k + pc * PM..][..kc * PM];
                    let acc = b.kernel::<FMA, PM, PN>(ap, pc, j0);
                    let mr = PM.min(m - panel * PM);
                    c.store(panel * PM, j0, mr, nr, &acc, alpha, beta_here);
                }
                continue;
            }
            let bp = &mut bpack[..kc * PN];
            for (p, d) in bp.as_chunks_mut::<PN>().0.iter_mut().enumerate() {
                let src = &b.row_slice(pc + p)[j0..j0 + nr];
                if nr == PN {
                    // a fixed-size copy is a few vector moves; `copy_from_slice`
                    // of a run this short was a call to `memcpy` per row
                    *d = src.try_into().expect("PN wide");
                } else {
                    d[..nr].copy_from_slice(src);
                    d[nr..].fill(0.0);
                }
            }
            let bp = &bpack[..kc * PN];
            for panel in 0..mp {
                let ap = &apack[panel * PM * k + pc * PM..][..kc * PM];
                let (first, mr) = geometry(panel);
                if tail && mr == TAIL_ROWS {
                    let acc = kernel_rows::<FMA, PM, TAIL_ROWS, PN>(ap, bp);
                    c.store(first, j0, mr, nr, &acc, alpha, beta_here);
                } else {
                    let acc = kernel::<FMA, PM, PN>(ap, bp);
                    c.store(first, j0, mr, nr, &acc, alpha, beta_here);
                }
            }
        }
    }
}

/// Where the panel path finds the rows of B.
pub(super) trait PanelB: Copy {
    /// Columns of B.
    fn ncols(&self) -> usize;
    /// Whether the rows can be read in place (else each panel is packed).
    fn in_place(&self) -> bool;
    /// Row `p`, all `ncols` of it.
    fn row_slice(&self, p: usize) -> &[f32];
    /// `Σ_p ap[p] ⊗ B[pc + p, j0..j0 + PN]` over the depth of `ap`, B read in place.
    fn kernel<const FMA: bool, const PM: usize, const PN: usize>(
        &self,
        ap: &[f32],
        pc: usize,
        j0: usize,
    ) -> [[f32; PN]; PM];
}

impl PanelB for ArrayView2<'_, f32> {
    #[inline(always)]
    fn ncols(&self) -> usize {
        ArrayView2::ncols(self)
    }
    #[inline(always)]
    fn in_place(&self) -> bool {
        self.as_slice().is_some()
    }
    #[inline(always)]
    fn row_slice(&self, p: usize) -> &[f32] {
        self.index_axis(Axis(0), p)
            .to_slice()
            .expect("unit column stride")
    }
    #[inline(always)]
    fn kernel<const FMA: bool, const PM: usize, const PN: usize>(
        &self,
        ap: &[f32],
        pc: usize,
        j0: usize,
    ) -> [[f32; PN]; PM] {
        let n = ArrayView2::ncols(self);
        let bs = self.as_slice().expect("checked by in_place");
        kernel_strided::<FMA, PM, PN>(ap, &bs[pc * n + j0..], n)
    }
}

/// A matrix B whose row `p` is `data[offsets[p]..][..n]`: rows that overlap
/// or lie in any order in one buffer, such as the taps of Conv2d's phased
/// im2col layout, read without first copying them into a matrix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OffsetRows<'a> {
    /// The buffer every row lies in.
    pub data: &'a [f32],
    /// Where each row starts in `data`.
    pub offsets: &'a [usize],
    /// Columns of every row.
    pub n: usize,
}

impl PanelB for OffsetRows<'_> {
    #[inline(always)]
    fn ncols(&self) -> usize {
        self.n
    }
    #[inline(always)]
    fn in_place(&self) -> bool {
        true
    }
    #[inline(always)]
    fn row_slice(&self, p: usize) -> &[f32] {
        &self.data[self.offsets[p]..][..self.n]
    }
    #[inline(always)]
    fn kernel<const FMA: bool, const PM: usize, const PN: usize>(
        &self,
        ap: &[f32],
        pc: usize,
        j0: usize,
    ) -> [[f32; PN]; PM] {
        let mut acc = [[0.0f32; PN]; PM];
        let (a_rows, _) = ap.as_chunks::<PM>();
        for (a, &off) in a_rows.iter().zip(&self.offsets[pc..]) {
            let bp: &[f32; PN] = self.data[off + j0..][..PN].try_into().expect("PN wide");
            rank1::<FMA, PM, PN>(&mut acc, a, bp);
        }
        acc
    }
}

/// Where the panel path stores its tiles.
pub(super) trait PanelC {
    /// `C[i0.., j0..] ← α·acc + β·C` on the valid `mr × nr` part of a tile.
    #[allow(clippy::too_many_arguments)]
    fn store<const PM: usize, const PN: usize>(
        &mut self,
        i0: usize,
        j0: usize,
        mr: usize,
        nr: usize,
        acc: &[[f32; PN]; PM],
        alpha: f32,
        beta: f32,
    );
}

/// Where each row of an output starts in its buffer.
pub(super) trait RowStarts {
    fn start(&self, r: usize) -> usize;
}

/// Row-major: rows `ldc` apart.
pub(super) struct Strided(pub(super) usize);

impl RowStarts for Strided {
    #[inline(always)]
    fn start(&self, r: usize) -> usize {
        r * self.0
    }
}

/// Rows at the given offsets, in any order: the rows of a weight gradient
/// that the live-output backward computes (it zeroes the others).
impl RowStarts for &[usize] {
    #[inline(always)]
    fn start(&self, r: usize) -> usize {
        self[r]
    }
}

/// An output overwritten (`α·acc + β·C`) row by row, each row contiguous
/// from where `rows` says it starts; rows must not overlap.
pub(super) struct Rows<'a, R> {
    pub(super) cs: &'a mut [f32],
    pub(super) rows: R,
}

impl<R: RowStarts> PanelC for Rows<'_, R> {
    #[inline(always)]
    fn store<const PM: usize, const PN: usize>(
        &mut self,
        i0: usize,
        j0: usize,
        mr: usize,
        nr: usize,
        acc: &[[f32; PN]; PM],
        alpha: f32,
        beta: f32,
    ) {
        for (r, acc_row) in acc.iter().enumerate().take(mr) {
            let start = self.rows.start(i0 + r) + j0;
            store_row(&mut self.cs[start..start + nr], acc_row, alpha, beta);
        }
    }
}

/// An output added into one buffer at row offsets, segment by segment:
/// columns `[s·seg, (s+1)·seg)` of row `r` go to
/// `data[s·stride + offsets[r]..][..seg]`. Rows may overlap: every store
/// adds. This is col2im fused into the GEMM for Conv2d's phased layout
/// (`∂L/∂col = W₂ᵀ·dY` added straight onto the phase planes of `∂L/∂x`,
/// one segment per sample), so that `∂L/∂col` is never written out.
pub(crate) struct ScatterRows<'a> {
    /// The buffer every row is added into.
    pub data: &'a mut [f32],
    /// Where each row's first segment starts in `data`.
    pub offsets: &'a [usize],
    /// Columns per segment.
    pub seg: usize,
    /// Floats between consecutive segments of one row.
    pub stride: usize,
}

impl PanelC for ScatterRows<'_> {
    #[inline(always)]
    fn store<const PM: usize, const PN: usize>(
        &mut self,
        i0: usize,
        j0: usize,
        mr: usize,
        nr: usize,
        acc: &[[f32; PN]; PM],
        alpha: f32,
        _beta: f32,
    ) {
        let seg = self.seg;
        let s0 = j0 / seg;
        if j0 + nr <= (s0 + 1) * seg {
            // the whole tile inside one segment
            let at = s0 * self.stride + j0 - s0 * seg;
            for (r, acc_row) in acc.iter().enumerate().take(mr) {
                let start = self.offsets[i0 + r] + at;
                if nr == PN {
                    let dst: &mut [f32; PN] = (&mut self.data[start..start + PN])
                        .try_into()
                        .expect("PN wide");
                    for j in 0..PN {
                        dst[j] += alpha * acc_row[j];
                    }
                } else {
                    for (d, &v) in self.data[start..start + nr].iter_mut().zip(acc_row) {
                        *d += alpha * v;
                    }
                }
            }
            return;
        }
        // a tile across segment ends: one run per segment
        let mut j = j0;
        while j < j0 + nr {
            let sg = j / seg;
            let end = ((sg + 1) * seg).min(j0 + nr);
            let at = sg * self.stride + j - sg * seg;
            for (r, acc_row) in acc.iter().enumerate().take(mr) {
                let start = self.offsets[i0 + r] + at;
                let src = &acc_row[j - j0..end - j0];
                for (d, &v) in self.data[start..start + src.len()].iter_mut().zip(src) {
                    *d += alpha * v;
                }
            }
            j = end;
        }
    }
}

/// Whether [`gemm_scatter_add`] takes an `m × k` A against `n` columns.
pub(crate) fn scatter_apply(m: usize, k: usize, n: usize) -> bool {
    m * k <= PANEL_A_MAX && n >= PANEL_MIN_N && k > 0
}

/// `C += α·a·b` for row-major `b` and C given as [`ScatterRows`] (`a.nrows()`
/// rows, `b.ncols()` columns), by the panel path; [`scatter_apply`] must hold.
pub(crate) fn gemm_scatter_add(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ScatterRows<'_>,
) {
    let (m, k) = a.dim();
    assert!(scatter_apply(m, k, b.ncols()), "gemm_scatter_add: sizes");
    assert_eq!(b.nrows(), k, "gemm_scatter_add: inner dimensions");
    assert_eq!(c.offsets.len(), m, "gemm_scatter_add: one offset per row");
    assert!(b.as_slice().is_some(), "gemm_scatter_add: row-major b");
    panel_call(alpha, a, b, 1.0, c);
}

/// Whether [`gemm_offset_rows`] and [`gemm_rows_at`] take an `m × k` A
/// against `n` columns: the panel path's sizes (A packed whole, B wide).
pub(crate) fn offset_rows_apply(m: usize, k: usize, n: usize) -> bool {
    m * k <= PANEL_A_MAX && n >= PANEL_MIN_N && k > 0
}

/// `c ← α·a·B + β·c` for B given as [`OffsetRows`] and row-major `c`
/// (`[M, n]`), by the panel path; [`offset_rows_apply`] must hold. When
/// `β = 0`, `c` is not read.
pub(crate) fn gemm_offset_rows(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: OffsetRows<'_>,
    beta: f32,
    c: &mut [f32],
) {
    let (m, k) = a.dim();
    assert!(offset_rows_apply(m, k, b.n), "gemm_offset_rows: sizes");
    assert_eq!(b.offsets.len(), k, "gemm_offset_rows: one offset per row");
    assert_eq!(c.len(), m * b.n, "gemm_offset_rows: output shape");
    let c = Rows {
        cs: c,
        rows: Strided(b.n),
    };
    panel_call(alpha, a, b, beta, c);
}

/// `C ← α·a·b + β·C` for row-major `b`, where row `r` of C is
/// `data[offsets[r]..][..b.ncols()]` (rows in any order, not overlapping),
/// by the panel path; [`offset_rows_apply`] must hold. When `β = 0`, C is
/// not read.
pub(crate) fn gemm_rows_at(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    data: &mut [f32],
    offsets: &[usize],
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(offset_rows_apply(m, k, n), "gemm_rows_at: sizes");
    assert_eq!(b.nrows(), k, "gemm_rows_at: inner dimensions");
    assert_eq!(offsets.len(), m, "gemm_rows_at: one offset per row");
    assert!(
        offsets.iter().all(|&o| o + n <= data.len()),
        "gemm_rows_at: rows inside data"
    );
    assert!(b.as_slice().is_some(), "gemm_rows_at: row-major b");
    let c = Rows {
        cs: data,
        rows: offsets,
    };
    panel_call(alpha, a, b, beta, c);
}

/// The panel path on this thread's scratch, at the widest SIMD level.
fn panel_call<B: PanelB, C: PanelC>(alpha: f32, a: ArrayView2<'_, f32>, b: B, beta: f32, c: C) {
    with_scratch(|scratch| {
        dispatch(PanelCall {
            alpha,
            a,
            b,
            beta,
            c,
            scratch,
        })
    });
}

/// One [`panel_call`].
struct PanelCall<'a, 'b, B, C> {
    alpha: f32,
    a: ArrayView2<'a, f32>,
    b: B,
    beta: f32,
    c: C,
    scratch: &'b mut Scratch,
}

impl<B: PanelB, C: PanelC> Kernel for PanelCall<'_, '_, B, C> {
    type Output = ();
    const WIDE: bool = true;
    #[inline(always)]
    fn run<const FMA: bool>(mut self) {
        let Scratch { a, b, .. } = self.scratch;
        panel::<FMA, MR, NR, 0, _, _>(self.alpha, self.a, self.b, self.beta, &mut self.c, a, b);
    }
    #[inline(always)]
    fn run_wide(mut self) {
        let Scratch { a, b, .. } = self.scratch;
        panel::<true, WMR, WNR, { usize::MAX }, _, _>(
            self.alpha,
            self.a,
            self.b,
            self.beta,
            &mut self.c,
            a,
            b,
        );
    }
}
