//! Observations two ways: as the network's `f32` input, and as compact
//! frames in the replay buffer.
//!
//! A *frame* is what the replay stores once per env step. Without frame
//! stacking it is the whole observation; with `replay.frame_stack = k` it
//! is the newest of the `k` frames a `frame_stack` wrapper stacks, and the
//! buffer rebuilds the stack from the frames before it.
//!
//! | observation | stored as | bytes per frame |
//! |---|---|---|
//! | `uint8` with bounds [0, 1] (MinAtar's planes), `MultiBinary` | bits, 8 to a byte | ⌈n / 8⌉ (Breakout: 400 cells → 50) |
//! | other `uint8` (pixels) | bytes | n |
//! | `float32`, `float64` | `f32` | 4n |
//! | `Discrete(n)` | the index, `u32` | 4 (one-hot of width n when decoded) |

use crate::{Error, Result};
use rl_env::{Observation, Space};
use serde::{Deserialize, Serialize};

/// How one frame is kept in the replay buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// 0/1 values packed 8 to a byte.
    Bits,
    /// One byte per value.
    Bytes,
    /// One little-endian `f32` per value.
    Floats,
    /// A `Discrete` observation's index as a little-endian `u32`.
    Index,
}

/// Encodes observations of one space: to network input, and to and from
/// stored frames.
///
/// ```
/// use rl_agent::encode::{ObsCodec, Storage};
/// use rl_env::{DType, Observation, Space};
/// let codec = ObsCodec::new(&Space::uniform_box(0.0, 1.0, &[4, 10, 10], DType::U8), 1).unwrap();
/// assert_eq!((codec.storage(), codec.frame_bytes()), (Storage::Bits, 50));
/// let mut planes = ndarray::ArrayD::zeros(vec![4, 10, 10]);
/// planes[[1, 2, 3]] = 1u8;
/// let mut stored = [0u8; 50];
/// codec.store(&Observation::U8(planes), &mut stored).unwrap();
/// let mut input = [0.0f32; 400];
/// codec.load(&stored, &mut input);
/// assert_eq!(input.iter().sum::<f32>(), 1.0);
/// assert_eq!(input[100 + 20 + 3], 1.0);
/// ```
#[derive(Clone, Debug)]
pub struct ObsCodec {
    storage: Storage,
    /// Values in one frame as the network sees it (the one-hot width for `Index`).
    frame_len: usize,
    /// Frames per observation.
    stack: usize,
    /// `uint8` value → network input: `(x − low) / (high − low)`.
    table: Box<[f32; 256]>,
    /// For `Bits`: a packed byte → the eight network inputs of its cells,
    /// so that a batch decodes a byte at a time (empty otherwise).
    octets: Vec<[f32; 8]>,
    /// Smallest element of a `Discrete` space.
    start: i64,
}

impl ObsCodec {
    /// A codec for observations of `space`, of which `stack` frames make one
    /// observation (`stack > 1` needs the space's first axis to be `stack`).
    /// Errors name the config field `replay.frame_stack`.
    pub fn new(space: &Space, stack: usize) -> Result<Self> {
        let shape = space.shape();
        if stack == 0 {
            return Err(Error::config("replay.frame_stack", "must be at least 1"));
        }
        if stack > 1 && shape.first() != Some(&stack) {
            return Err(Error::config(
                "replay.frame_stack",
                format!(
                    "{stack} frames need observations of shape [{stack}, …] (a frame_stack wrapper of {stack}); this env's are {space}"
                ),
            ));
        }
        let values: usize = shape.iter().product();
        let mut table = Box::new([0.0f32; 256]);
        let (storage, frame_len, start) = match space {
            Space::Discrete { n, start } => (Storage::Index, *n as usize, *start),
            Space::MultiBinary { .. } => {
                fill_table(&mut table, 0.0, 1.0);
                (Storage::Bits, values / stack, 0)
            }
            Space::Box {
                low, high, dtype, ..
            } => match dtype {
                rl_env::DType::U8 => {
                    let uniform = |b: &rl_env::Bounds| b.0.iter().all(|&x| x == b.0[0]);
                    let (lo, hi) = if uniform(low) && uniform(high) && !low.0.is_empty() {
                        (low.at(0), high.at(0))
                    } else {
                        // Per-element bounds: feed the raw bytes.
                        (0.0, 1.0)
                    };
                    fill_table(&mut table, lo, hi);
                    let binary = lo == 0.0 && hi == 1.0 && uniform(low) && uniform(high);
                    let storage = if binary {
                        Storage::Bits
                    } else {
                        Storage::Bytes
                    };
                    (storage, values / stack, 0)
                }
                rl_env::DType::F32 | rl_env::DType::F64 => (Storage::Floats, values / stack, 0),
            },
        };
        let octets = match storage {
            Storage::Bits => (0..256)
                .map(|byte: usize| std::array::from_fn(|bit| table[(byte >> bit) & 1]))
                .collect(),
            _ => Vec::new(),
        };
        Ok(ObsCodec {
            storage,
            frame_len,
            stack,
            table,
            octets,
            start,
        })
    }

    /// How frames are stored.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// Frames per observation.
    pub fn stack(&self) -> usize {
        self.stack
    }

    /// Network inputs per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Network inputs per observation: `stack · frame_len`.
    pub fn input_len(&self) -> usize {
        self.stack * self.frame_len
    }

    /// Bytes one stored frame takes.
    pub fn frame_bytes(&self) -> usize {
        match self.storage {
            Storage::Bits => self.frame_len.div_ceil(8),
            Storage::Bytes => self.frame_len,
            Storage::Floats => 4 * self.frame_len,
            Storage::Index => 4,
        }
    }

    /// Writes the whole observation as network input (`input_len` values).
    pub fn input(&self, obs: &Observation, out: &mut [f32]) -> Result<()> {
        debug_assert_eq!(out.len(), self.input_len());
        match (obs, self.storage) {
            (Observation::Discrete(i), Storage::Index) => {
                out.fill(0.0);
                out[self.index(*i)?] = 1.0;
            }
            (Observation::U8(a), Storage::Bits | Storage::Bytes) => {
                let v = self.values(a.as_slice(), a.len())?;
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = self.table[x as usize];
                }
            }
            (Observation::F32(a), Storage::Floats) => {
                out.copy_from_slice(self.values(a.as_slice(), a.len())?);
            }
            (Observation::F64(a), Storage::Floats) => {
                for (o, &x) in out.iter_mut().zip(self.values(a.as_slice(), a.len())?) {
                    *o = x as f32;
                }
            }
            _ => return Err(self.mismatch(obs)),
        }
        Ok(())
    }

    /// Stores the observation's newest frame in `out` (`frame_bytes` bytes).
    pub fn store(&self, obs: &Observation, out: &mut [u8]) -> Result<()> {
        debug_assert_eq!(out.len(), self.frame_bytes());
        let newest = self.input_len() - self.frame_len;
        match (obs, self.storage) {
            (Observation::Discrete(i), Storage::Index) => {
                out.copy_from_slice(&(self.index(*i)? as u32).to_le_bytes());
            }
            (Observation::U8(a), Storage::Bits) => {
                let frame = &self.values(a.as_slice(), a.len())?[newest..];
                if frame.iter().any(|&x| x > 1) {
                    return Err(Error::Incompatible(
                        "an observation of a [0, 1] uint8 space holds a value above 1".into(),
                    ));
                }
                out.fill(0);
                for (byte, chunk) in out.iter_mut().zip(frame.chunks(8)) {
                    for (bit, &x) in chunk.iter().enumerate() {
                        *byte |= x << bit;
                    }
                }
            }
            (Observation::U8(a), Storage::Bytes) => {
                out.copy_from_slice(&self.values(a.as_slice(), a.len())?[newest..]);
            }
            (Observation::F32(a), Storage::Floats) => {
                let frame = &self.values(a.as_slice(), a.len())?[newest..];
                for (o, x) in out.chunks_exact_mut(4).zip(frame) {
                    o.copy_from_slice(&x.to_le_bytes());
                }
            }
            (Observation::F64(a), Storage::Floats) => {
                let frame = &self.values(a.as_slice(), a.len())?[newest..];
                for (o, &x) in out.chunks_exact_mut(4).zip(frame) {
                    o.copy_from_slice(&(x as f32).to_le_bytes());
                }
            }
            _ => return Err(self.mismatch(obs)),
        }
        Ok(())
    }

    /// Decodes one stored frame into `frame_len` network inputs.
    pub fn load(&self, stored: &[u8], out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.frame_len);
        match self.storage {
            Storage::Bits => {
                for (o, &byte) in out.chunks_mut(8).zip(stored) {
                    o.copy_from_slice(&self.octets[usize::from(byte)][..o.len()]);
                }
            }
            Storage::Bytes => {
                for (o, &x) in out.iter_mut().zip(stored) {
                    *o = self.table[x as usize];
                }
            }
            Storage::Floats => {
                for (o, b) in out.iter_mut().zip(stored.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Storage::Index => {
                out.fill(0.0);
                let i = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
                out[i as usize] = 1.0;
            }
        }
    }

    /// With frame stacking: checks that a reset observation holds its first
    /// frame `stack` times (a `frame_stack` wrapper's reset padding).
    pub fn check_reset_stack(&self, obs: &Observation) -> Result<()> {
        if self.stack == 1 {
            return Ok(());
        }
        let frame = self.frame_len;
        let ok = match obs {
            Observation::U8(a) => repeated(a.as_slice(), frame),
            Observation::F32(a) => repeated(a.as_slice(), frame),
            Observation::F64(a) => repeated(a.as_slice(), frame),
            Observation::Discrete(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Incompatible(format!(
                "replay.frame_stack = {}: the first observation of an episode is not one frame repeated {} times; stack the frames with a frame_stack wrapper, or set replay.frame_stack to 1",
                self.stack, self.stack
            )))
        }
    }

    /// With frame stacking: checks that `next` is `obs` shifted by one frame.
    pub fn check_shifted_stack(&self, obs: &Observation, next: &Observation) -> Result<()> {
        if self.stack == 1 {
            return Ok(());
        }
        let frame = self.frame_len;
        let ok = match (obs, next) {
            (Observation::U8(a), Observation::U8(b)) => shifted(a.as_slice(), b.as_slice(), frame),
            (Observation::F32(a), Observation::F32(b)) => {
                shifted(a.as_slice(), b.as_slice(), frame)
            }
            (Observation::F64(a), Observation::F64(b)) => {
                shifted(a.as_slice(), b.as_slice(), frame)
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Incompatible(format!(
                "replay.frame_stack = {}: successive observations are not a stack shifted by one frame; stack the frames with a frame_stack wrapper, or set replay.frame_stack to 1",
                self.stack
            )))
        }
    }

    fn index(&self, i: i64) -> Result<usize> {
        let k = i.wrapping_sub(self.start);
        if k >= 0 && (k as usize) < self.frame_len {
            Ok(k as usize)
        } else {
            Err(Error::Incompatible(format!(
                "observation {i} is outside Discrete({}, start={})",
                self.frame_len, self.start
            )))
        }
    }

    fn values<'a, T>(&self, slice: Option<&'a [T]>, len: usize) -> Result<&'a [T]> {
        match slice {
            Some(s) if len == self.input_len() => Ok(s),
            _ => Err(Error::Incompatible(format!(
                "an observation has {len} values in non-standard layout or size; the network takes {}",
                self.input_len()
            ))),
        }
    }

    fn mismatch(&self, obs: &Observation) -> Error {
        let kind = match obs {
            Observation::Discrete(_) => "Discrete",
            Observation::U8(_) => "uint8",
            Observation::F32(_) => "float32",
            Observation::F64(_) => "float64",
        };
        Error::Incompatible(format!(
            "a {kind} observation does not match the observation space (stored as {:?})",
            self.storage
        ))
    }
}

fn fill_table(table: &mut [f32; 256], low: f64, high: f64) {
    let range = high - low;
    for (x, v) in table.iter_mut().enumerate() {
        *v = if range > 0.0 {
            ((x as f64 - low) / range) as f32
        } else {
            0.0
        };
    }
}

fn repeated<T: PartialEq>(s: Option<&[T]>, frame: usize) -> bool {
    match s {
        Some(s) if frame > 0 && s.len() % frame == 0 => {
            s.chunks_exact(frame).all(|c| c == &s[..frame])
        }
        _ => false,
    }
}

fn shifted<T: PartialEq>(a: Option<&[T]>, b: Option<&[T]>, frame: usize) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a.len() == b.len() && a.len() > frame => {
            a[frame..] == b[..b.len() - frame]
        }
        _ => false,
    }
}

/// The per-sample network input for observations of `space`: a `Discrete`
/// state becomes a one-hot vector; `[k, C, H, W]` stacks are read as
/// `[k·C, H, W]` (the same memory), which is what a convolution takes.
pub fn network_input(space: &Space) -> Vec<usize> {
    match (space, space.shape()) {
        (Space::Discrete { n, .. }, _) => vec![*n as usize],
        (_, &[k, c, h, w]) => vec![k * c, h, w],
        (_, shape) => shape.to_vec(),
    }
}
