//! numpy's legacy `RandomState`, bit for bit, for the calls MinAtar makes.
//!
//! MinAtar draws every random number from `np.random.RandomState(seed)`.
//! To replay its games draw for draw we need the same stream:
//!
//! - the generator is MT19937, seeded from an integer by Matsumoto and
//!   Nishimura's `init_genrand` (numpy's `_legacy_seeding` for an int seed);
//! - `rand()` is a 53-bit double from two 32-bit words:
//!   `(a >> 5) · 2²⁶ + (b >> 6)`, divided by 2⁵³;
//! - `randint(low, high)` draws `low + v` where `v` is the first
//!   `word & mask ≤ high − low − 1`, `mask` being the smallest all-ones
//!   number covering that range (numpy's masked rejection sampling, which
//!   the legacy generator keeps for compatibility). A range of one value
//!   draws nothing; an array `randint(low, high, n)` is `n` scalar draws in
//!   a row. Ranges wider than 32 bits use 64-bit words (high word first).
//!
//! `tests/numpy_fixture.rs` checks all of this against numpy's own outputs
//! (`tests/fixtures/numpy_random_state.json`, written by
//! `tests/reference/numpy_fixture.py`).
//!
//! ```
//! use rl_minatar::numpy_rng::RandomState;
//! // np.random.RandomState(0).rand() == 0.5488135039273248
//! let mut rng = RandomState::new(0);
//! assert_eq!(rng.rand(), 0.5488135039273248);
//! // np.random.RandomState(0).randint(1, 9) == 5
//! assert_eq!(RandomState::new(0).randint(1, 9), 5);
//! ```

/// Number of 32-bit words in the MT19937 state.
const N: usize = 624;
/// MT19937's middle offset.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// numpy's `np.random.RandomState`: MT19937 with numpy's derived draws.
///
/// Each twist also tempers the whole new block into `out`, in one loop the
/// compiler vectorises, so a draw is a buffered read.
///
/// The fields are laid out in declaration order (`repr(C)`): the position
/// and the outputs read every draw first, the state read only by a twist
/// last, so that the hot ones sit next to whatever the generator is
/// embedded after.
#[derive(Clone)]
#[repr(C)]
pub struct RandomState {
    pos: usize,
    /// `key` tempered: the next outputs, read from `pos` on.
    out: [u32; N],
    /// MT19937's state.
    key: [u32; N],
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomState")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl RandomState {
    /// `np.random.RandomState(seed)`: MT19937's `init_genrand(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; N];
        key[0] = seed;
        for i in 1..N {
            // key[i] = 1812433253 · (key[i−1] ⊕ (key[i−1] >> 30)) + i   (mod 2³²)
            let prev = key[i - 1];
            key[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        RandomState {
            key,
            out: [0; N],
            pos: N,
        }
    }

    /// Regenerates all 624 words (MT19937's twist), in three runs so the
    /// hot loop has no modulo, and tempers them into `out` in a loop the
    /// compiler vectorises.
    #[cold]
    #[inline(never)]
    fn twist(&mut self) {
        #[inline(always)]
        fn mix(upper: u32, lower: u32, far: u32) -> u32 {
            let y = (upper & UPPER_MASK) | (lower & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            far ^ (y >> 1) ^ mag
        }
        let k = &mut self.key;
        for i in 0..N - M {
            k[i] = mix(k[i], k[i + 1], k[i + M]);
        }
        for i in N - M..N - 1 {
            k[i] = mix(k[i], k[i + 1], k[i + M - N]);
        }
        k[N - 1] = mix(k[N - 1], k[0], k[M - 1]);
        for (out, &y) in self.out.iter_mut().zip(k.iter()) {
            *out = temper(y);
        }
        self.pos = 0;
    }

    /// The next raw 32-bit word (numpy's `next_uint32`).
    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let y = self.out[self.pos];
        self.pos += 1;
        y
    }

    /// The next 64-bit word: two 32-bit words, the first one high.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let high = u64::from(self.next_u32());
        (high << 32) | u64::from(self.next_u32())
    }

    /// `rand()`: a uniform double in `[0, 1)` with 53 random bits.
    #[inline(always)]
    pub fn rand(&mut self) -> f64 {
        // k / 2⁵³, exact: k < 2⁵³ fits a double's mantissa.
        self.rand_53() as f64 / 9_007_199_254_740_992.0
    }

    /// The integer `k < 2⁵³` behind `rand()`, which returns exactly
    /// `k / 2⁵³`: `(a >> 5) · 2²⁶ + (b >> 6)` from the next two words.
    ///
    /// `rand() < p` is `rand_53() < ⌈p · 2⁵³⌉` (see [`threshold_53`]),
    /// an integer comparison.
    #[inline(always)]
    pub fn rand_53(&mut self) -> u64 {
        // Both words from the buffer with one check, unless they straddle
        // a twist.
        let (a, b) = if self.pos + 2 <= N {
            let pair = (self.out[self.pos], self.out[self.pos + 1]);
            self.pos += 2;
            pair
        } else {
            (self.next_u32(), self.next_u32())
        };
        (u64::from(a >> 5) << 26) | u64::from(b >> 6)
    }

    /// `randint(low, high)`: an integer in `[low, high)`.
    ///
    /// # Panics
    /// If `high <= low`, where numpy raises `ValueError`.
    #[inline]
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        assert!(high > low, "randint: low >= high ({low} >= {high})");
        // The range is inclusive: values 0..=range are accepted.
        let range = high.wrapping_sub(low).wrapping_sub(1) as u64;
        low.wrapping_add(self.bounded(range) as i64)
    }

    /// `randint(low, high, out.len())`: fills `out`, draw after draw,
    /// exactly as that many scalar calls would.
    ///
    /// # Panics
    /// If `high <= low`.
    pub fn randint_into(&mut self, low: i64, high: i64, out: &mut [i64]) {
        for v in out {
            *v = self.randint(low, high);
        }
    }

    /// A value in `0..=range` by masked rejection sampling.
    #[inline]
    fn bounded(&mut self, range: u64) -> u64 {
        if range == 0 {
            // numpy returns `low` without drawing.
            return 0;
        }
        // Smallest 2^k − 1 that is ≥ range.
        let mask = u64::MAX >> range.leading_zeros();
        if range <= u64::from(u32::MAX) {
            if range == u64::from(u32::MAX) {
                return u64::from(self.next_u32());
            }
            let mask = mask as u32;
            loop {
                let v = self.next_u32() & mask;
                if u64::from(v) <= range {
                    return u64::from(v);
                }
            }
        }
        if range == u64::MAX {
            return self.next_u64();
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= range {
                return v;
            }
        }
    }
}

/// MT19937's tempering of one state word into an output.
#[inline(always)]
fn temper(mut y: u32) -> u32 {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c_5680;
    y ^= (y << 15) & 0xefc6_0000;
    y ^ (y >> 18)
}

/// `⌈p · 2⁵³⌉` for a probability `p` in `[0, 1]`: then, for every draw,
/// `rng.rand() < p` exactly when `rng.rand_53() < threshold_53(p)`.
///
/// Why exact: `rand()` is `k / 2⁵³` with no rounding, `p · 2⁵³` is exact
/// too (a power-of-two scaling), and an integer `k` is below a real `x`
/// exactly when it is below `⌈x⌉`.
///
/// ```
/// use rl_minatar::numpy_rng::{RandomState, threshold_53};
/// let (mut a, mut b) = (RandomState::new(7), RandomState::new(7));
/// for _ in 0..1000 {
///     assert_eq!(a.rand() < 0.1, b.rand_53() < threshold_53(0.1));
/// }
/// ```
///
/// # Panics
/// If `p` is not in `[0, 1]`.
pub fn threshold_53(p: f64) -> u64 {
    assert!((0.0..=1.0).contains(&p), "{p} is not a probability");
    (p * 9_007_199_254_740_992.0).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_output() {
        // The first output of init_genrand(5489), MT19937's default seed,
        // from Matsumoto and Nishimura's mt19937ar.out.
        let mut rng = RandomState::new(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
    }

    #[test]
    fn single_value_range_draws_nothing() {
        let mut a = RandomState::new(3);
        let mut b = RandomState::new(3);
        assert_eq!(a.randint(4, 5), 4);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn integer_threshold_agrees_with_rand() {
        for p in [0.0, 1e-300, 0.1, 1.0 / 3.0, 0.5, 0.999_999_999, 1.0] {
            let t = threshold_53(p);
            let (mut a, mut b) = (RandomState::new(11), RandomState::new(11));
            for _ in 0..2000 {
                // Odd offsets make some pairs straddle a twist.
                a.next_u32();
                b.next_u32();
                assert_eq!(a.rand() < p, b.rand_53() < t, "p = {p}");
            }
        }
    }
}
