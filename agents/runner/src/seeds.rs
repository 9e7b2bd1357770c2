//! Independent random streams derived from one run seed.
//!
//! Each stream (the agent's, each training episode's reset, evaluation) gets
//! its own 64-bit seed by SplitMix64 over the run seed and a stream tag, so
//! that the streams do not overlap and adding one changes no other.

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of stream `tag`, element `index`, of the run seeded `seed`.
pub fn derive(seed: u64, tag: Stream, index: u64) -> u64 {
    mix(mix(seed ^ mix(tag as u64)).wrapping_add(index))
}

/// The reset seed of training or evaluation episode `index`: the top 32
/// bits of [`derive`], because some environments take only 32-bit seeds
/// (MinAtar seeds numpy's `RandomState`, which refuses 2³² and above).
pub fn env_seed(seed: u64, tag: Stream, index: u64) -> u64 {
    derive(seed, tag, index) >> 32
}

/// The random streams of a run.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    /// The agent's own generator (exploration, tie-breaking).
    Agent = 1,
    /// The reset of training episode `index`.
    TrainEpisode = 2,
    /// The reset of evaluation episode `index`.
    EvalEpisode = 3,
    /// The ε-random actions of evaluation round `index` (0: the final one).
    EvalPolicy = 4,
}
