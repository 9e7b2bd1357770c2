//! numpy's single-precision `cos` and `sin`, bit for bit.
//!
//! Gymnasium's Acrobot casts its start state to `float32` and computes the
//! first observation's `cos θ` and `sin θ` from it, so numpy evaluates them
//! in single precision. On x86-64 machines with FMA (every x86-64-v3 CPU)
//! numpy does not call libm there: it uses its own vectorised routine
//! (`loops_trigonometric.dispatch` in numpy's sources, max error 1.49 ulp),
//! which differs from the correctly rounded value for about one input in
//! a thousand near zero. This module reproduces that routine: Cody–Waite
//! reduction by π/2 with three fused multiply–adds, then minimax
//! polynomials for the cosine and the sine of the remainder, chosen and
//! signed by the quadrant. `f32::mul_add` is a true fused multiply–add on
//! every target, so the results do not depend on our CPU.
//!
//! Beyond numpy's reduction range numpy falls back to libm; so do we, by
//! rounding the double-precision result.

/// 2/π, rounded to `f32`.
const TWO_OVER_PI: f32 = f32::from_bits(0x3f22_f983);
/// π/2 split in three parts whose products with a small integer are exact.
const PI_OVER_2_HIGH: f32 = f32::from_bits(0x3fc9_0fd8);
const PI_OVER_2_MEDIUM: f32 = f32::from_bits(0x34a8_885a);
const PI_OVER_2_LOW: f32 = f32::from_bits(0x27c2_34c4);
/// Adding and subtracting 1.5 · 2²³ rounds an `f32` to the nearest integer.
const ROUNDING_MAGIC: f32 = 12_582_912.0;
/// Cosine polynomial in r², highest degree first (x⁸ … x⁰ coefficients).
const COS_COEFFICIENTS: [f32; 5] = [
    f32::from_bits(0x37cc_730b),
    f32::from_bits(0xbab6_036e),
    f32::from_bits(0x3d2a_aa9e),
    -0.5,
    1.0,
];
/// Sine polynomial in r², highest degree first (x⁹ … x³ coefficients).
const SIN_COEFFICIENTS: [f32; 4] = [
    f32::from_bits(0x363e_9dde),
    f32::from_bits(0xb950_35dd),
    f32::from_bits(0x3c08_88cd),
    f32::from_bits(0xbe2a_aaab),
];
/// Largest |x| numpy reduces itself, for cosine and for sine
/// (71476.0625 and 117435.9921875 once rounded to `f32`).
const COS_RANGE: f32 = 71_476.06;
const SIN_RANGE: f32 = 117_435.99;

#[derive(Clone, Copy)]
enum Function {
    Cos,
    Sin,
}

/// numpy's `np.cos` of a `float32`.
pub fn cos(x: f32) -> f32 {
    evaluate(x, Function::Cos)
}

/// numpy's `np.sin` of a `float32`.
pub fn sin(x: f32) -> f32 {
    evaluate(x, Function::Sin)
}

fn evaluate(x: f32, function: Function) -> f32 {
    let range = match function {
        Function::Cos => COS_RANGE,
        Function::Sin => SIN_RANGE,
    };
    if x.is_nan() {
        return f32::NAN;
    }
    if x.abs() > range {
        let wide = f64::from(x);
        return match function {
            Function::Cos => wide.cos() as f32,
            Function::Sin => wide.sin() as f32,
        };
    }
    // q = round(x · 2/π): which quarter turn x lies in.
    let quadrant = (x * TWO_OVER_PI + ROUNDING_MAGIC) - ROUNDING_MAGIC;
    // r = x − q · π/2, in three exact steps.
    let mut reduced = quadrant.mul_add(-PI_OVER_2_HIGH, x);
    reduced = quadrant.mul_add(-PI_OVER_2_MEDIUM, reduced);
    reduced = quadrant.mul_add(-PI_OVER_2_LOW, reduced);
    let squared = reduced * reduced;
    let cosine = COS_COEFFICIENTS[1..]
        .iter()
        .fold(COS_COEFFICIENTS[0], |acc, &c| acc.mul_add(squared, c));
    let sine_odd = SIN_COEFFICIENTS[1..]
        .iter()
        .fold(SIN_COEFFICIENTS[0], |acc, &c| acc.mul_add(squared, c));
    // sin r = r + r · r² · p(r²)
    let sine = sine_odd.mul_add(squared, 0.0).mul_add(reduced, reduced);
    // cos x = sin(r + π/2): shift the quadrant by one for the cosine.
    let mut quarter = quadrant as i32;
    if let Function::Cos = function {
        quarter += 1;
    }
    let value = if quarter & 1 == 0 { sine } else { cosine };
    if quarter & 2 == 2 { 0.0 - value } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(x, np.cos(x), np.sin(x))` as bit patterns, printed by numpy 2.4.6
    /// on x86-64 (AVX-512) for float32 `x`: the first twelve are inputs
    /// where numpy's result is not the correctly rounded one.
    /// ```python
    /// for v in values:  # np.float32
    ///     print('(0x%08x, 0x%08x, 0x%08x),' % (v.view(np.uint32),
    ///           np.cos(v).view(np.uint32), np.sin(v).view(np.uint32)))
    /// ```
    const NUMPY: [(u32, u32, u32); 27] = [
        (0x3da80b7f, 0x3f7f2382, 0x3da7db3d),
        (0xbd947bd3, 0x3f7f53d4, 0xbd945a88),
        (0xbdba80b5, 0x3f7ef071, 0xbdba3ebe),
        (0xbd6651bd, 0x3f7f986b, 0xbd6632ac),
        (0x3dc38739, 0x3f7ed58c, 0x3dc33b37),
        (0xbdb499f8, 0x3f7f0158, 0xbdb45e12),
        (0xbdaff3ba, 0x3f7f0e48, 0xbdafbc55),
        (0xbd9a98f6, 0x3f7f455e, 0xbd9a7362),
        (0x3d8ca708, 0x3f7f6581, 0x3d8c8abb),
        (0xbd91c271, 0x3f7f5a16, 0xbd91a2f2),
        (0xbd96ee9f, 0x3f7f4e1c, 0xbd96cba7),
        (0xbd6116e7, 0x3f7f9d12, 0xbd60f9e7),
        (0x3d79dbc0, 0x3f7f861b, 0x3d79b417),
        (0x3d7c43dd, 0x3f7f83bf, 0x3d7c1b0b),
        (0x3b48e00d, 0x3f7fffb1, 0x3b48dff8),
        (0xbd2f78b5, 0x3f7fc3df, 0xbd2f6af8),
        (0x00000000, 0x3f800000, 0x00000000),
        (0x80000000, 0x3f800000, 0x80000000),
        (0x3f000000, 0x3f60a940, 0x3ef57744),
        (0xbf47ae14, 0x3f35fe6f, 0xbf340a1e),
        (0x3f800000, 0x3f0a5140, 0x3f576aa5),
        (0x40000000, 0xbed51132, 0x3f68c7b7),
        (0xc0466666, 0xbf7fc752, 0xbd2a5096),
        (0x40490fd0, 0xbf800000, 0x362a2216),
        (0x41200000, 0xbf56cd64, 0xbf0b44f7),
        (0xc2c90000, 0x3f7fe095, 0x3cfd9fc2),
        (0x447a1000, 0x3eae3ecb, 0x3f70b812),
    ];

    #[test]
    fn matches_numpy_bit_for_bit() {
        for (x, expected_cos, expected_sin) in NUMPY {
            let x = f32::from_bits(x);
            assert_eq!(cos(x).to_bits(), expected_cos, "cos({x:e})");
            assert_eq!(sin(x).to_bits(), expected_sin, "sin({x:e})");
        }
    }
}
