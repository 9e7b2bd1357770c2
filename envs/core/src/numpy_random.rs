//! numpy's `Generator(PCG64(SeedSequence(seed)))`, draw for draw.
//!
//! Gymnasium's `Env.reset(seed=s)` seeds its generator with
//! `np.random.default_rng`-style seeding (`gymnasium.utils.seeding.np_random`),
//! so an environment that wants `reset(seed=s)` to start the episode
//! Gymnasium starts must reproduce three layers of numpy exactly:
//!
//! 1. [`SeedSequence`]: the integer seed, split into 32-bit words
//!    (least significant first), hashed into a pool of four words, then
//!    expanded into the generator's 128-bit state and increment
//!    (`numpy/random/bit_generator.pyx`);
//! 2. [`Pcg64`]: the 128-bit LCG with the XSL-RR output
//!    (`numpy/random/src/pcg64`);
//! 3. [`Generator`]: `random()` and `uniform(low, high)`
//!    (`numpy/random/_generator.pyx`, `distributions.c`).
//!
//! The unit tests pin values printed by numpy 2.4 itself.
//!
//! ```
//! use rl_env::numpy_random::Generator;
//! // Gymnasium's MountainCar-v0 draws its start position like this:
//! // `env.reset(seed=8)` starts at -0.5346….
//! let mut rng = Generator::from_seed(8);
//! let position = rng.uniform(-0.6, -0.4);
//! assert!((position - -0.5346).abs() < 1e-4);
//! ```

/// numpy's `SeedSequence` with an integer entropy and no spawn key: the
/// hashing that turns any seed into well-mixed generator state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

/// numpy's `DEFAULT_POOL_SIZE`, in 32-bit words.
const POOL_SIZE: usize = 4;
/// The hash constants of numpy's `SeedSequence` (Melissa O'Neill's
/// `seed_seq_fe`, which numpy follows).
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

/// One hashing step: the constant advances on every call, so the same word
/// hashes differently at each position.
fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut value = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    value = value.wrapping_mul(*hash_const);
    value ^ (value >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let result = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    result ^ (result >> XSHIFT)
}

impl SeedSequence {
    /// `SeedSequence(seed)`.
    pub fn new(seed: u64) -> Self {
        // numpy's `_int_to_uint32_array`: least significant word first;
        // zero is the single word 0, and a seed below 2³² is one word.
        let words: &[u32] = &[seed as u32, (seed >> 32) as u32];
        let entropy = if seed >> 32 == 0 { &words[..1] } else { words };
        let mut hash_const = INIT_A;
        let mut pool = [0u32; POOL_SIZE];
        for (i, slot) in pool.iter_mut().enumerate() {
            // Words past the entropy hash as zeros.
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const);
        }
        for i_src in 0..POOL_SIZE {
            for i_dst in 0..POOL_SIZE {
                if i_src != i_dst {
                    pool[i_dst] = mix(pool[i_dst], hashmix(pool[i_src], &mut hash_const));
                }
            }
        }
        // An entropy longer than the pool would be mixed in here; a u64 is
        // at most two words, so there is never any.
        SeedSequence { pool }
    }

    /// The hashed pool, numpy's `SeedSequence.pool`.
    pub fn pool(&self) -> [u32; POOL_SIZE] {
        self.pool
    }

    /// `generate_state(N, np.uint64)`: `2N` 32-bit words drawn by cycling
    /// the pool through a second hash, paired little-endian into `u64`s.
    pub fn generate_state_u64<const N: usize>(&self) -> [u64; N] {
        let mut hash_const = INIT_B;
        let mut next_word = {
            let mut source = self.pool.iter().cycle();
            move || {
                let mut value = *source.next().expect("a cycle never ends") ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                value = value.wrapping_mul(hash_const);
                value ^ (value >> XSHIFT)
            }
        };
        std::array::from_fn(|_| {
            let low = u64::from(next_word());
            let high = u64::from(next_word());
            low | (high << 32)
        })
    }
}

/// numpy's `PCG64` bit generator: a 128-bit linear congruential generator
/// whose output folds and rotates the state (PCG's XSL-RR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcg64 {
    state: u128,
    /// Odd, so the LCG has full period.
    increment: u128,
}

/// PCG's default 128-bit multiplier.
const PCG64_MULTIPLIER: u128 = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645;

impl Pcg64 {
    /// `PCG64(seed_sequence)`: the first two state words are the initial
    /// state, the last two the stream (`pcg64_set_seed`, with each pair
    /// read high word first), then PCG's `srandom_r`.
    pub fn from_seed_sequence(seed_sequence: &SeedSequence) -> Self {
        let [s_high, s_low, i_high, i_low] = seed_sequence.generate_state_u64::<4>();
        let initial_state = (u128::from(s_high) << 64) | u128::from(s_low);
        let stream = (u128::from(i_high) << 64) | u128::from(i_low);
        let mut pcg = Pcg64 {
            state: 0,
            increment: (stream << 1) | 1,
        };
        pcg.step();
        pcg.state = pcg.state.wrapping_add(initial_state);
        pcg.step();
        pcg
    }

    fn step(&mut self) {
        // state ← state · multiplier + increment  (mod 2¹²⁸)
        self.state = self
            .state
            .wrapping_mul(PCG64_MULTIPLIER)
            .wrapping_add(self.increment);
    }

    /// The next 64 random bits: advance, then output the new state
    /// (`random_raw()`).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        // XSL-RR: xor the halves, rotate right by the top 6 bits.
        let folded = ((self.state >> 64) as u64) ^ (self.state as u64);
        folded.rotate_right((self.state >> 122) as u32)
    }
}

/// numpy's `Generator` over [`Pcg64`], with the draws Gymnasium's
/// environments make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generator {
    bit_generator: Pcg64,
}

/// 2⁻⁵³: the spacing of the doubles `random()` returns.
const DOUBLE_UNIT: f64 = 1.0 / 9_007_199_254_740_992.0;

impl Generator {
    /// `np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))`,
    /// which is what Gymnasium's `seeding.np_random(seed)` builds.
    pub fn from_seed(seed: u64) -> Self {
        Generator {
            bit_generator: Pcg64::from_seed_sequence(&SeedSequence::new(seed)),
        }
    }

    /// The next raw 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.bit_generator.next_u64()
    }

    /// `random()`: uniform on `[0, 1)` from the top 53 bits of one draw.
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * DOUBLE_UNIT
    }

    /// `uniform(low, high)`: `low + (high − low) · random()`, with the
    /// width rounded first as numpy rounds it. Arrays (`size=(4,)`) are
    /// successive calls, in row-major order.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let range = high - low;
        low + range * self.random()
    }

    /// Gymnasium's `categorical_sample`, given the running sums of the
    /// probabilities: draws one `random()` and returns the first index
    /// whose running sum exceeds it. If rounding leaves every sum at or
    /// below the draw, numpy's `argmax` of all-false picks index 0, and so
    /// does this.
    pub fn categorical(&mut self, cumulative: impl IntoIterator<Item = f64>) -> usize {
        let u = self.random();
        cumulative.into_iter().position(|c| c > u).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    //! Expected values printed by numpy 2.4.6:
    //! ```python
    //! import numpy as np
    //! for s in [0, 1, 8, 2**32 - 1, 2**32, 2**64 - 1, 2**31 + 5]:
    //!     ss = np.random.SeedSequence(s)
    //!     state = ss.generate_state(4, np.uint64)
    //!     g = np.random.Generator(np.random.PCG64(ss))
    //!     raw = [g.bit_generator.random_raw() for _ in range(3)]
    //!     g = np.random.Generator(np.random.PCG64(np.random.SeedSequence(s)))
    //!     floats = [g.random().hex() for _ in range(2)]
    //!     u = g.uniform(-0.6, -0.4).hex()
    //!     print(s, [hex(v) for v in ss.pool], [hex(v) for v in state],
    //!           [hex(v) for v in raw], floats, u)
    //! ```
    use super::*;

    /// The script's output, pasted: seed, pool (4), state (4), raw (3),
    /// random (2), uniform.
    const NUMPY_OUTPUT: &str = "\
0 ['0xfe40eb07', '0x4f363a36', '0x4eb2009d', '0xc89a7aa7'] ['0xdb2cd7e7b0f478be', '0xabf4641a2c71ba49', '0x20c6ed6d9d7b8d41', '0x2c4099de223c39d4'] ['0xa30febcfd9c2825f', '0x4510bdf882d9d721', '0xa7d3da94ecde8b8'] ['0x1.461fd79fb3850p-1', '0x1.1442f7e20b674p-2'] -0x1.2f011a8913adap-1
1 ['0xa137e185', '0xde2fab1', '0x950eae78', '0x54dd0a81'] ['0x672d8ee56d6791ff', '0x8ae19ca14eb1072c', '0x4915796d1322fc4a', '0xd0cc2bdcaba049bd'] ['0x8306bdf37922e4ff', '0xf35196bbc152a866', '0x24e7a4f608ec18cd'] ['0x1.060d7be6f245cp-1', '0x1.e6a32d7782a55p-1'] -0x1.2470246a62d4cp-1
8 ['0x10cc49c7', '0xbe9cc881', '0x25da3d25', '0xc1e9d2b9'] ['0x4a4cb3342da36e29', '0x1f524b4ab3297aa9', '0x96df4317ce7ddd87', '0x983dc6f58fc60c16'] ['0x53b47482b83463f4', '0xfcbe2cda3c089379', '0x519708942d107be5'] ['0x1.4ed1d20ae0d18p-2', '0x1.f97c59b478112p-1'] -0x1.129062f7edf96p-1
4294967295 ['0x9c7e046c', '0xdecfba02', '0x6b54a1b3', '0xc4c4a610'] ['0x2a05c5e276c1fe08', '0x2032e40fc20e8198', '0xed4ac06d787f4396', '0x56896cb4f3db80fd'] ['0x407f5fa930d8fd9f', '0x3814b22eb9684802', '0x498b7dcee8d8dc95'] ['0x1.01fd7ea4c363ep-2', '0x1.c0a59175cb424p-3'] -0x1.15c83413a2dc7p-1
4294967296 ['0xe0f3eff2', '0xdccd2c4e', '0x17f18c20', '0x9b8cb8db'] ['0x50ff846cec53f444', '0x7a4918dbe8278562', '0x3bff9f6c362e2b19', '0xbdb177539a0654e3'] ['0xe3c5ebe285ac1625', '0x8ea09968fe31dbcc', '0xcd084ff84d8de9be'] ['0x1.c78bd7c50b582p-1', '0x1.1d4132d1fc63bp-1'] -0x1.c25fc006285b4p-2
18446744073709551615 ['0xfaf3ecf4', '0xfa0f8930', '0xe9f89a67', '0xe23d1f9'] ['0xaebca151928cad0d', '0x119c30448638dc7a', '0x1bbb155659e642a7', '0xa76b11e3e8c4a8f6'] ['0xae163a7a8c47568f', '0xd86659f5f3382359', '0x1e52b195bc2d24a'] ['0x1.5c2c74f5188eap-1', '0x1.b0ccb3ebe6704p-1'] -0x1.327121f5db4bbp-1
2147483653 ['0x106cb40d', '0xf170084f', '0x1c5386a5', '0xcccf9873'] ['0x33dab8348acd2b9d', '0x26fd8fb701061306', '0x3b5ef3c077a55205', '0xcd81589b9686c4d6'] ['0xba1b19cba37717f0', '0x7a05f5978a01d4f4', '0x42ee06b356d96eb4'] ['0x1.7436339746ee2p-1', '0x1.e817d65e28074p-2'] -0x1.186d96eb76dc4p-1";

    struct Expected {
        seed: u64,
        pool: [u32; 4],
        state: [u64; 4],
        raw: [u64; 3],
        random: [f64; 2],
        uniform: f64,
    }

    fn cases() -> Vec<Expected> {
        let hex = |t: &str| u64::from_str_radix(&t[2..], 16).expect("a hex integer");
        NUMPY_OUTPUT
            .lines()
            .map(|line| {
                let tokens: Vec<&str> = line
                    .split(|c: char| " ,[]'".contains(c))
                    .filter(|t| !t.is_empty())
                    .collect();
                assert_eq!(tokens.len(), 15, "{line}");
                Expected {
                    seed: tokens[0].parse().expect("a decimal seed"),
                    pool: std::array::from_fn(|i| hex(tokens[1 + i]) as u32),
                    state: std::array::from_fn(|i| hex(tokens[5 + i])),
                    raw: std::array::from_fn(|i| hex(tokens[9 + i])),
                    random: std::array::from_fn(|i| parse_hex_float(tokens[12 + i])),
                    uniform: parse_hex_float(tokens[14]),
                }
            })
            .collect()
    }

    /// Reads Python's `float.hex()` form, `[-]0x1.<13 hex digits>p<exp>`.
    fn parse_hex_float(text: &str) -> f64 {
        let (sign, rest) = match text.strip_prefix('-') {
            Some(rest) => (-1.0, rest),
            None => (1.0, text),
        };
        let rest = rest.strip_prefix("0x1.").expect("a normal number");
        let (mantissa, exponent) = rest.split_once('p').expect("an exponent");
        let fraction = u64::from_str_radix(mantissa, 16).expect("hex digits");
        let exponent: i32 = exponent.parse().expect("an integer exponent");
        let bits = (((exponent + 1023) as u64) << 52) | (fraction << (52 - 4 * mantissa.len()));
        sign * f64::from_bits(bits)
    }

    #[test]
    fn seed_sequence_matches_numpy() {
        for case in cases() {
            let seq = SeedSequence::new(case.seed);
            assert_eq!(seq.pool(), case.pool, "seed {}: pool", case.seed);
            assert_eq!(
                seq.generate_state_u64::<4>(),
                case.state,
                "seed {}: generate_state",
                case.seed
            );
        }
    }

    #[test]
    fn pcg64_and_generator_match_numpy() {
        for case in cases() {
            let mut pcg = Pcg64::from_seed_sequence(&SeedSequence::new(case.seed));
            let raw: [u64; 3] = std::array::from_fn(|_| pcg.next_u64());
            assert_eq!(raw, case.raw, "seed {}: random_raw", case.seed);
            let mut rng = Generator::from_seed(case.seed);
            let random = [rng.random(), rng.random()];
            assert_eq!(random.map(f64::to_bits), case.random.map(f64::to_bits));
            assert_eq!(
                rng.uniform(-0.6, -0.4).to_bits(),
                case.uniform.to_bits(),
                "seed {}: uniform",
                case.seed
            );
        }
    }

    #[test]
    fn categorical_takes_the_first_sum_above_the_draw_and_index_zero_when_none_is() {
        // Seed 8's first draw is 0.327…, seed 0's is 0.636….
        let cumulative = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0];
        assert_eq!(Generator::from_seed(8).categorical(cumulative), 1);
        assert_eq!(Generator::from_seed(0).categorical(cumulative), 2);
        assert_eq!(Generator::from_seed(0).categorical([0.1, 0.2]), 0);
    }
}
