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
//! Three cases take other routes:
//!
//! - A's rows and B's columns both contiguous along `k` (`x·Wᵀ` in Affine's
//!   forward, `dY·colᵀ` in Conv2d's weight gradient): packing B would mean
//!   transposing it; instead a `4 × 3` block of dot products reads both
//!   operands in place.
//! - A small (`M·K ≤ 64 Ki` floats) against a wide row-major B (`N ≥ 256`:
//!   Affine's `dyᵀ·x` and `dy·W`, Conv2d's `W₂ᵀ·dY` and one-sample forwards):
//!   the panel path packs A whole once, then walks B one column panel at a
//!   time. The AVX-512 build reads B's rows in place with an `8 × 32` tile
//!   (16 of the 32 registers accumulate; `M = 32` splits into whole tiles);
//!   the AVX2 build packs each panel and uses the `6 × 16` tile, with
//!   `4 × 16` tiles for a remainder of 2 or 4 rows (no rows computed for
//!   nothing when M is even).
//!
//! Three entry points on the panel path take rows at offsets of one buffer:
//! [`gemm_offset_rows`], whose B rows lie anywhere (Conv2d's phased im2col
//! taps, read without an im2col copy; the live rows of `W` in Affine's
//! backward), [`gemm_scatter_add`], whose C rows are added in segment by
//! segment (Conv2d's col2im fused into the store), and [`gemm_rows_at`],
//! whose C rows are overwritten where they lie (the live rows of `∂L/∂W`).
//!
//! The micro-kernels are plain Rust over fixed-size arrays, which LLVM turns
//! into vector code; [`crate::kernels::simd::dispatch`] runs their AVX-512 or AVX2 +
//! FMA build. Their loops over tile rows are written out by macros: as loops,
//! LLVM vectorised across rows (gathers and scatters), or kept the
//! accumulators in memory, once a tile had more than 12 of them.

use crate::kernels::simd::{Kernel, dispatch};
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

/// Runs `f` on this thread's packing buffers. They are moved out of the
/// thread-local (no allocation) so that the feature-specific code `f` calls
/// contains no thread-local access compiled without its features.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut scratch = SCRATCH.with(|s| s.take());
    let out = f(&mut scratch);
    SCRATCH.with(|s| s.replace(scratch));
    out
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
    with_scratch(|scratch| run(alpha, a, b, beta, c, scratch));
}

fn run(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    scratch: &mut Scratch,
) {
    // The dot-product path (below) measured slower in the AVX-512 build than
    // in the AVX2 one (105-108 against 91-96 µs for the MinAtar net's
    // 1024 → 128 forward), so it keeps the AVX2 build.
    let nt = a.strides()[1] == 1 && b.strides()[0] == 1 && a.ncols() >= 8;
    if nt {
        dispatch(Gemm::<false> {
            alpha,
            a,
            b,
            beta,
            c,
            scratch,
        });
    } else {
        dispatch(Gemm::<true> {
            alpha,
            a,
            b,
            beta,
            c,
            scratch,
        });
    }
}

/// One GEMM call; `W` says whether it may run the AVX-512 build.
struct Gemm<'a, 'b, 'c, const W: bool> {
    alpha: f32,
    a: ArrayView2<'a, f32>,
    b: ArrayView2<'a, f32>,
    beta: f32,
    c: &'b mut ArrayViewMut2<'c, f32>,
    scratch: &'b mut Scratch,
}

impl<const W: bool> Kernel for Gemm<'_, '_, '_, W> {
    type Output = ();
    const WIDE: bool = W;
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        gemm_portable::<FMA, MR, NR, 0>(
            self.alpha,
            self.a,
            self.b,
            self.beta,
            self.c,
            self.scratch,
        );
    }
    #[inline(always)]
    fn run_wide(self) {
        gemm_portable::<true, WMR, WNR, { usize::MAX }>(
            self.alpha,
            self.a,
            self.b,
            self.beta,
            self.c,
            self.scratch,
        );
    }
}

/// AVX-512 panel tile rows. Measured on the MinAtar Affine backward
/// (`dW` + `dx`, µs): 16 × 16 248, 12 × 32 237, 8 × 48 228, 8 × 32 227
/// (with B packed; reading it in place then gave 201).
const WMR: usize = 8;
/// AVX-512 panel tile columns: two 16-lane registers.
const WNR: usize = 32;

/// Picks the path. `FMA` selects fused multiply-adds in the micro-kernels
/// (only worth it where the instruction exists; elsewhere `mul_add` is a libm
/// call); `PM × PN` is the panel path's tile, and B is read in place there
/// when A has at most `IP` row panels (else packed).
#[inline(always)]
fn gemm_portable<const FMA: bool, const PM: usize, const PN: usize, const IP: usize>(
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
        gemm_nt::<FMA, DM, DN, 8>(alpha, a, b.reversed_axes(), beta, cs, n);
        return;
    }
    let Scratch {
        a: apack,
        b: bpack,
        c: tmp,
    } = scratch;
    if b.strides()[1] == 1
        && m * k <= PANEL_A_MAX
        && n >= PANEL_MIN_N
        && let Some(cs) = c.as_slice_mut()
    {
        // a small A, packed whole, against row-major B one column panel at a time
        let mut c = Rows {
            cs,
            rows: Strided(n),
        };
        panel::<FMA, PM, PN, IP, _, _>(alpha, a, b, beta, &mut c, apack, bpack);
        return;
    }
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

/// Largest `A` (in floats, 256 KiB) that the panel path packs whole.
const PANEL_A_MAX: usize = 64 * 1024;
/// Fewest columns of B for the panel path. The Nature network's convolution
/// forwards (`W₂ · col` on chunks of 147 to 162 columns) ran 10% slower on
/// it than on the blocked path: a last, mostly empty, 32-wide panel, and 4
/// depth blocks over C.
const PANEL_MIN_N: usize = 256;
/// Bytes of one packed column panel of B, kept in the L1 cache while every
/// row panel of A passes over it.
const PANEL_B_BYTES: usize = 16 * 1024;

/// `C ← α·A·B + β·C` for a small `A` (`M·K ≤ PANEL_A_MAX`) and row-major
/// `B` (rows contiguous), into row-major `C`: A is packed whole into `PM`-row
/// panels, and each `PN`-wide column panel of B meets every panel of A.
/// With at most `IN_PLACE` row panels, B's rows are read where they are,
/// at full depth (packing measured 20 µs of 227 in the MinAtar Affine
/// backward); otherwise each `kc × PN` panel is packed so that it stays in
/// L1 however far apart B's rows are. A last, partial column panel is always
/// packed (zero-padded).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn panel<
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
trait PanelB: Copy {
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
trait PanelC {
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
trait RowStarts {
    fn start(&self, r: usize) -> usize;
}

/// Row-major: rows `ldc` apart.
struct Strided(usize);

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
struct Rows<'a, R> {
    cs: &'a mut [f32],
    rows: R,
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
/// and row-major `C` with rows `ldc` apart, in blocks of `QM × QN` dot
/// products of `L` lanes.
#[inline(always)]
fn gemm_nt<const FMA: bool, const QM: usize, const QN: usize, const L: usize>(
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

/// `Σ_p a[p] ⊗ b[p]` over one pair of packed panels (`PM`-row and
/// `PN`-column), in registers.
#[inline(always)]
fn kernel<const FMA: bool, const PM: usize, const PN: usize>(
    ap: &[f32],
    bp: &[f32],
) -> [[f32; PN]; PM] {
    let mut acc = [[0.0f32; PN]; PM];
    let (a_rows, _) = ap.as_chunks::<PM>();
    let (b_rows, _) = bp.as_chunks::<PN>();
    for (a, b) in a_rows.iter().zip(b_rows) {
        rank1::<FMA, PM, PN>(&mut acc, a, b);
    }
    acc
}

/// Rows of the AVX2 panel path's tail tiles: `4 × 16` keeps 8 accumulators,
/// as many as hide the FMA latency at two per cycle.
const TAIL_ROWS: usize = 4;

/// [`kernel`] on the first `R` rows of `PM`-row packed panels (a tail panel
/// whose other rows would be zeros or belong to the next panel).
#[inline(always)]
fn kernel_rows<const FMA: bool, const PM: usize, const R: usize, const PN: usize>(
    ap: &[f32],
    bp: &[f32],
) -> [[f32; PN]; R] {
    const { assert!(R <= PM, "kernel_rows: at most PM rows") };
    let mut acc = [[0.0f32; PN]; R];
    let (a_rows, _) = ap.as_chunks::<PM>();
    let (b_rows, _) = bp.as_chunks::<PN>();
    for (a, b) in a_rows.iter().zip(b_rows) {
        let a: &[f32; R] = a[..R].try_into().expect("R ≤ PM");
        rank1::<FMA, R, PN>(&mut acc, a, b);
    }
    acc
}

/// [`kernel`] with B read in place: row `p` of the panel at `b[p·ldb..][..PN]`.
#[inline(always)]
fn kernel_strided<const FMA: bool, const PM: usize, const PN: usize>(
    ap: &[f32],
    b: &[f32],
    ldb: usize,
) -> [[f32; PN]; PM] {
    let mut acc = [[0.0f32; PN]; PM];
    let (a_rows, _) = ap.as_chunks::<PM>();
    for (p, a) in a_rows.iter().enumerate() {
        let bp: &[f32; PN] = b[p * ldb..][..PN].try_into().expect("PN wide");
        rank1::<FMA, PM, PN>(&mut acc, a, bp);
    }
    acc
}

/// `acc += a ⊗ b`, written out row by row: a loop over the rows would be
/// vectorised across rows by LLVM (gathers and scatters of the accumulators)
/// once the tile is too tall to unroll.
#[inline(always)]
fn rank1<const FMA: bool, const PM: usize, const PN: usize>(
    acc: &mut [[f32; PN]; PM],
    a: &[f32; PM],
    b: &[f32; PN],
) {
    macro_rules! rows {
        ($($i:literal)*) => {$(
            if $i < PM {
                acc[$i] = axpy::<FMA, PN>(acc[$i], a[$i], b);
            }
        )*};
    }
    rows!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    const { assert!(PM <= 16, "rank1: at most 16 rows") };
}

/// `acc + a·b`, lane by lane (also the sparse forward's step).
#[inline(always)]
pub(crate) fn axpy<const FMA: bool, const PN: usize>(
    mut acc: [f32; PN],
    a: f32,
    b: &[f32; PN],
) -> [f32; PN] {
    for j in 0..PN {
        acc[j] = if FMA {
            a.mul_add(b[j], acc[j])
        } else {
            acc[j] + a * b[j]
        };
    }
    acc
}

/// `dst ← α·acc_row + β·dst` on the `dst.len()` valid columns of a tile row.
#[inline(always)]
fn store_row<const PN: usize>(dst: &mut [f32], acc_row: &[f32; PN], alpha: f32, beta: f32) {
    if let Ok(dst) = <&mut [f32; PN]>::try_from(&mut *dst) {
        // the row is computed into a local array and stored whole: written
        // element by element into `dst`, LLVM kept the accumulators on the
        // stack and stored them one scalar at a time
        *dst = if beta == 0.0 {
            std::array::from_fn(|j| alpha * acc_row[j])
        } else {
            let old = *dst;
            std::array::from_fn(|j| alpha * acc_row[j] + beta * old[j])
        };
    } else {
        for (d, &v) in dst.iter_mut().zip(acc_row) {
            *d = if beta == 0.0 {
                alpha * v
            } else {
                alpha * v + beta * *d
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::Simd;
    use ndarray::{Array2, ShapeBuilder};

    fn naive(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols())
                .map(|p| f64::from(a[(i, p)]) * f64::from(b[(p, j)]))
                .sum()
        })
    }

    /// Every level this CPU has, lowest first.
    fn levels() -> Vec<Simd> {
        let top = crate::kernels::simd::set_simd_limit(Simd::Avx512);
        let have = crate::kernels::simd::simd_level();
        crate::kernels::simd::set_simd_limit(top);
        [Simd::Baseline, Simd::Avx2Fma, Simd::Avx512]
            .into_iter()
            .filter(|&l| l <= have)
            .collect()
    }

    /// B as rows at offsets into one buffer (overlapping, out of order), at
    /// every level: the AVX-512 build reads them in place, the others pack
    /// them; partial row tiles (M = 7, 33) and a partial last column panel.
    #[test]
    fn offset_rows_match_naive() {
        let mut next = crate::test_values::lcg_bits(7);
        for level in levels() {
            let before = crate::kernels::simd::set_simd_limit(level);
            for &(m, k, n) in &[(32, 256, 420), (7, 64, 300), (33, 300, 256), (1, 5, 290)] {
                assert!(offset_rows_apply(m, k, n));
                let data: Vec<f32> = (0..n + 3 * k + 50)
                    .map(|_| (next() % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let offsets: Vec<usize> = (0..k).map(|_| next() as usize % (3 * k + 50)).collect();
                let a = Array2::from_shape_fn((m, k), |_| (next() % 1000) as f32 / 500.0 - 1.0);
                let b = Array2::from_shape_fn((k, n), |(p, j)| data[offsets[p] + j]);
                let want = naive(a.view(), b.view());
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0)] {
                    let c0: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32).collect();
                    let mut c = c0.clone();
                    let rows = OffsetRows {
                        data: &data,
                        offsets: &offsets,
                        n,
                    };
                    gemm_offset_rows(alpha, a.view(), rows, beta, &mut c);
                    for i in 0..m {
                        for j in 0..n {
                            let w = f64::from(alpha) * want[(i, j)]
                                + f64::from(beta) * f64::from(c0[i * n + j]);
                            let got = f64::from(c[i * n + j]);
                            assert!(
                                (got - w).abs() < 1e-4 * (k as f64).sqrt(),
                                "{level:?} {m}x{k}x{n} at {i},{j}: {got} vs {w}"
                            );
                        }
                    }
                }
            }
            crate::kernels::simd::set_simd_limit(before);
        }
    }

    /// C as rows at offsets (out of order, gaps between them untouched), at
    /// every level, overwritten (β = 0) and blended (β = 1), with a
    /// transposed A as the sparse Affine backward's `dyᵀ`.
    #[test]
    fn rows_at_match_naive() {
        let mut next = crate::test_values::lcg_bits(13);
        for level in levels() {
            let before = crate::kernels::simd::set_simd_limit(level);
            for &(m, k, n) in &[(87, 32, 1024), (7, 9, 300), (33, 3, 256), (1, 5, 290)] {
                assert!(offset_rows_apply(m, k, n));
                // row r at slot order[r] of m + 3 slots, each n + 5 wide
                let ld = n + 5;
                let mut order: Vec<usize> = (0..m + 3).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, next() as usize % (i + 1));
                }
                let offsets: Vec<usize> = order[..m].iter().map(|&slot| slot * ld).collect();
                let a_t = Array2::from_shape_fn((k, m), |_| (next() % 1000) as f32 / 500.0 - 1.0);
                let b = Array2::from_shape_fn((k, n), |_| (next() % 1000) as f32 / 500.0 - 1.0);
                let want = naive(a_t.t(), b.view());
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0)] {
                    let data0: Vec<f32> = (0..(m + 3) * ld).map(|i| (i % 7) as f32).collect();
                    let mut data = data0.clone();
                    gemm_rows_at(alpha, a_t.t(), b.view(), beta, &mut data, &offsets);
                    let mut expect: Vec<f64> = data0.iter().map(|&v| f64::from(v)).collect();
                    for (r, &off) in offsets.iter().enumerate() {
                        for j in 0..n {
                            expect[off + j] = f64::from(alpha) * want[(r, j)]
                                + f64::from(beta) * f64::from(data0[off + j]);
                        }
                    }
                    for (i, (&got, &w)) in data.iter().zip(&expect).enumerate() {
                        assert!(
                            (f64::from(got) - w).abs() < 1e-4 * (k as f64).sqrt(),
                            "{level:?} {m}x{k}x{n} at {i}: {got} vs {w}"
                        );
                    }
                }
            }
            crate::kernels::simd::set_simd_limit(before);
        }
    }

    /// C added into one buffer at overlapping row offsets, segment by
    /// segment (tiles inside one segment and straddling two), at every level.
    #[test]
    fn scatter_rows_match_naive() {
        let mut next = crate::test_values::lcg_bits(11);
        for level in levels() {
            let before = crate::kernels::simd::set_simd_limit(level);
            // (m, k, segments, seg)
            for &(m, k, segs, seg) in &[(512, 64, 6, 90), (33, 17, 3, 100), (9, 300, 1, 300)] {
                let n = segs * seg;
                assert!(scatter_apply(m, k, n));
                let stride = seg + 40;
                let len = segs * stride + 60;
                let offsets: Vec<usize> = (0..m).map(|_| next() as usize % 60).collect();
                let a = Array2::from_shape_fn((m, k), |_| (next() % 1000) as f32 / 500.0 - 1.0);
                let b = Array2::from_shape_fn((k, n), |_| (next() % 1000) as f32 / 500.0 - 1.0);
                let prod = naive(a.view(), b.view());
                let data0: Vec<f32> = (0..len).map(|i| (i % 5) as f32).collect();
                let mut want: Vec<f64> = data0.iter().map(|&v| f64::from(v)).collect();
                for r in 0..m {
                    for j in 0..n {
                        want[(j / seg) * stride + offsets[r] + j % seg] += 0.5 * prod[(r, j)];
                    }
                }
                let mut data = data0.clone();
                let c = ScatterRows {
                    data: &mut data,
                    offsets: &offsets,
                    seg,
                    stride,
                };
                // a transposed A, as Conv2d's W₂ᵀ
                let a_t = a.t().to_owned();
                gemm_scatter_add(0.5, a_t.t(), b.view(), c);
                for (i, (&got, &w)) in data.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(got) - w).abs() < 1e-3,
                        "{level:?} {m}x{k}x{n} at {i}: {got} vs {w}"
                    );
                }
            }
            crate::kernels::simd::set_simd_limit(before);
        }
    }

    #[test]
    fn matches_naive_on_odd_shapes_and_strides() {
        let mut next = crate::test_values::lcg_centred(1);
        // (m, k, n): small ones; the panel path (n ≥ 256) with partial row and
        // column tiles and several depth blocks, B in place and packed, the
        // AVX2 build's 4-row tail panels (M mod 6 = 2 or 4); the blocked path
        // (m·k > 64 Ki)
        let shapes = [
            (1, 1, 1),
            (1, 100, 7),
            (2, 33, 40),
            (7, 5, 3),
            (13, 300, 17),
            (100, 33, 1030),
            (6, 16, 16),
            (2, 600, 5),
            (13, 300, 300),
            (37, 13, 260),
            (32, 128, 256),
            (33, 257, 290),
            (130, 32, 1024),
            (20, 300, 260),
            (4, 300, 300),
            (300, 250, 40),
        ];
        for level in levels() {
            let before = crate::kernels::simd::set_simd_limit(level);
            for &(m, k, n) in &shapes {
                let a = Array2::from_shape_fn((m, k), |_| next());
                let b_t = Array2::from_shape_fn((n, k).f(), |_| next());
                let b = b_t.t();
                let b_nt = Array2::from_shape_fn((k, n).f(), |(p, j)| b[(p, j)]);
                let c0 = Array2::from_shape_fn((m, n), |_| next());
                let want = naive(a.view(), b.view());
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (2.0, -0.5)] {
                    // row-major B (panel or blocked), column-major B (dot
                    // products), transposed A, column-major C
                    let mut c = c0.clone();
                    gemm(alpha, a.view(), b.view(), beta, &mut c.view_mut());
                    let mut c_nt = c0.clone();
                    gemm(alpha, a.view(), b_nt.view(), beta, &mut c_nt.view_mut());
                    let a_cm = Array2::from_shape_fn((m, k).f(), |(i, p)| a[(i, p)]);
                    let mut c_ta = c0.clone();
                    gemm(alpha, a_cm.view(), b.view(), beta, &mut c_ta.view_mut());
                    let mut c_t = Array2::zeros((m, n).f());
                    c_t.assign(&c0);
                    gemm(alpha, a.t().t(), b, beta, &mut c_t.view_mut());
                    for ((i, j), &v) in c.indexed_iter() {
                        let w = f64::from(alpha) * want[(i, j)]
                            + f64::from(beta) * f64::from(c0[(i, j)]);
                        let tol = 1e-4 * (k as f64).sqrt();
                        for (what, got) in [
                            ("row-major", v),
                            ("dot", c_nt[(i, j)]),
                            ("transposed A", c_ta[(i, j)]),
                            ("column-major C", c_t[(i, j)]),
                        ] {
                            assert!(
                                (f64::from(got) - w).abs() < tol,
                                "{level:?} {what} {m}x{k}x{n} at {i},{j}: {got} vs {w}"
                            );
                        }
                    }
                }
            }
            crate::kernels::simd::set_simd_limit(before);
        }
    }
}
