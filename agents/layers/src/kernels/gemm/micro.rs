//! Register-tile micro-kernels: `Σ_p a[p] ⊗ b[p]` over packed panels of A
//! and B, accumulated in registers, and the store of a tile into C.

/// Micro-tile rows.
pub(super) const MR: usize = 6;
/// Micro-tile columns: two 8-lane AVX registers.
pub(super) const NR: usize = 16;

/// `Σ_p a[p] ⊗ b[p]` over one pair of packed panels (`PM`-row and
/// `PN`-column), in registers.
#[inline(always)]
pub(super) fn kernel<const FMA: bool, const PM: usize, const PN: usize>(
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
pub(super) const TAIL_ROWS: usize = 4;

/// [`kernel`] on the first `R` rows of `PM`-row packed panels (a tail panel
/// whose other rows would be zeros or belong to the next panel).
#[inline(always)]
pub(super) fn kernel_rows<const FMA: bool, const PM: usize, const R: usize, const PN: usize>(
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
pub(super) fn kernel_strided<const FMA: bool, const PM: usize, const PN: usize>(
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
pub(super) fn rank1<const FMA: bool, const PM: usize, const PN: usize>(
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
pub(super) fn store_row<const PN: usize>(
    dst: &mut [f32],
    acc_row: &[f32; PN],
    alpha: f32,
    beta: f32,
) {
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
