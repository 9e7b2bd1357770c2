//! Experience replay (Lin 1992; Mnih et al. 2015): a ring buffer of
//! frames, each stored once, sampled uniformly by a seeded generator.
//!
//! # Layout
//!
//! The buffer is a ring of `capacity` *slots*. A slot holds one frame and,
//! if an action was taken from it, that action, its reward and flags:
//!
//! ```text
//! slot      s0     s1     s2     s3(final)  s4     s5 …
//! frame     o0     o1     o2     o3         o0'    o1'
//! action    a0     a1     a2     —          a0'    (pending)
//! flags     F|A    A      A|T|E  —          F|A
//! ```
//!
//! `F` marks an episode's first frame, `A` a slot an action was taken from,
//! `T` a transition that reached a terminal state and `E` the last
//! transition of an episode (terminated or truncated). The successor of the
//! transition in slot `s` is the frame in slot `s + 1`, so `obs` and
//! `next_obs` are never stored twice. An episode of `L` steps takes `L + 1`
//! slots: its final observation gets a slot of its own, the *true* final
//! observation also when a time limit truncated the episode, so that the
//! target can bootstrap from it.
//!
//! With `frame_stack = k` a slot holds only the newest frame; the stack of
//! slot `s` is the frames `s − k + 1 … s`, with the episode's first frame
//! repeated in place of frames from before the episode began (the reset
//! padding of the `frame_stack` wrapper, which the agent checks).
//!
//! # Sampling
//!
//! Uniform over the transitions whose frames are all still in the buffer:
//! a slot is drawn uniformly and drawn again if it holds no transition (a
//! final observation, or the newest slot whose action is not known yet), or
//! if its stack or its n-step successor reaches past the buffer's ends.
//! Rejection keeps the distribution uniform over the valid transitions.
//! Draws are with replacement, as in CleanRL and SB3 (MinAtar's
//! `random.sample` draws without).
//!
//! # Lanes
//!
//! A loop that steps several copies of the environment interleaves their
//! episodes, while a slot's successor must be the same episode's next
//! frame. So each copy (a *lane*) writes its own ring: the slots are cut
//! into one contiguous range per lane, of near-equal capacity, and a lane
//! overwrites only its own oldest frames. A draw is uniform over all
//! lanes' slots together, so sampling stays uniform over every stored
//! transition. With one lane the buffer is the single ring above.

use crate::encode::{ObsCodec, Storage};
use base64::Engine as _;
use ndarray::{Array1, ArrayD, IxDyn};
use rand::RngExt;
use rl_agent::{Error, Result, try_vec};
use rl_env::Observation;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// This slot's frame starts an episode.
const FIRST: u8 = 1;
/// An action was taken from this slot: it holds a transition whose next
/// frame is in the following slot.
const ACTED: u8 = 2;
/// That transition reached a terminal state: no bootstrapping from it.
const TERMINATED: u8 = 4;
/// That transition ended the episode (terminated or truncated): the
/// following slot holds the final observation and no action.
const ENDED: u8 = 8;

/// Give up drawing a valid transition after this many rejections per sample.
const MAX_DRAWS: usize = 1_000;

/// A sampled batch, in buffers reused from one update to the next.
#[derive(Clone, Debug)]
pub struct Batch {
    /// States `s`, `[N, …input]`.
    pub obs: ArrayD<f32>,
    /// Actions taken, `[N]`.
    pub actions: Vec<usize>,
    /// n-step returns `Σ_{i<m} γⁱ r_{t+i}`, `[N]`.
    pub returns: Array1<f32>,
    /// `γᵐ` where the target bootstraps from `next_obs`, 0 where the
    /// transition reached a terminal state, `[N]`.
    pub discounts: Array1<f32>,
    /// The states to bootstrap from, `s_{t+m}`, `[N, …input]`.
    pub next_obs: ArrayD<f32>,
}

impl Batch {
    /// Buffers for `n` samples of per-sample network input `input`; errors
    /// when the allocator refuses them.
    pub fn new(n: usize, input: &[usize]) -> Result<Self> {
        let shape: Vec<usize> = std::iter::once(n).chain(input.iter().copied()).collect();
        let len = shape
            .iter()
            .try_fold(1usize, |len, &d| len.checked_mul(d))
            .unwrap_or(usize::MAX);
        let array = |what: &str| {
            ArrayD::from_shape_vec(IxDyn(&shape), try_vec(what, len, 0.0f32)?)
                .map_err(|e| Error::Incompatible(format!("batch buffer: {e}")))
        };
        Ok(Batch {
            obs: array("the batch's observations")?,
            actions: vec![0; n],
            returns: Array1::zeros(n),
            discounts: Array1::zeros(n),
            next_obs: array("the batch's next observations")?,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// One transition as the loop hands it over, by its parts.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// Observation the action was taken in.
    pub obs: &'a Observation,
    /// The action's index.
    pub action: usize,
    /// Reward received.
    pub reward: f64,
    /// Observation after the step; the true final one if the episode ended.
    pub next_obs: &'a Observation,
    /// A terminal state was reached.
    pub terminated: bool,
    /// A time limit cut the episode.
    pub truncated: bool,
}

/// Where a sampled transition's parts are, as positions from its ring's
/// oldest slot.
struct Plan {
    obs: usize,
    next: usize,
    ret: f32,
    discount: f32,
}

/// The replay buffer.
///
/// ```
/// use rand::SeedableRng;
/// use rl_dqn::encode::ObsCodec;
/// use rl_dqn::replay::{Batch, Replay, Step};
/// use rl_env::{Observation, Space};
/// let mut replay = Replay::new(ObsCodec::new(&Space::discrete(5), 1).unwrap(), 16).unwrap();
/// // One episode 0 → 1 → 2, cut by a time limit: two transitions, three frames.
/// for s in 0..2 {
///     replay.push(&Step { obs: &Observation::Discrete(s), action: 1, reward: 1.0,
///                         next_obs: &Observation::Discrete(s + 1),
///                         terminated: false, truncated: s == 1 }).unwrap();
/// }
/// assert_eq!((replay.len(), replay.pushed()), (3, 2));
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut batch = Batch::new(4, &[5]).unwrap();
/// assert!(replay.sample(&mut rng, &mut batch, 1, 0.9));
/// // Truncation bootstraps: every sample keeps its discount γ.
/// assert!(batch.discounts.iter().all(|&d| d == 0.9));
/// ```
#[derive(Clone, Debug)]
pub struct Replay {
    codec: ObsCodec,
    capacity: usize,
    frame_bytes: usize,
    frames: Vec<u8>,
    actions: Vec<u16>,
    rewards: Vec<f32>,
    flags: Vec<u8>,
    /// Each lane's ring, in lane order, over consecutive ranges of slots.
    lanes: Vec<Ring>,
    /// Slots written, over all lanes.
    len: usize,
    /// Transitions pushed since the buffer was created or emptied.
    pushed: u64,
}

/// One lane's ring: slots `base .. base + capacity`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ring {
    base: usize,
    capacity: usize,
    /// Next slot to write, counted from `base`.
    head: usize,
    /// Slots written, up to `capacity`.
    len: usize,
    /// Slot (absolute) of the newest frame of the lane's episode in progress.
    current: Option<usize>,
}

impl Ring {
    /// The slot at `position` counted from the ring's oldest.
    fn slot(&self, position: usize) -> usize {
        let oldest = if self.len < self.capacity {
            0
        } else {
            self.head
        };
        self.base + (oldest + position) % self.capacity
    }
}

/// Where one lane's ring stood, in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingState {
    /// Next slot to write, counted from the lane's first.
    pub head: usize,
    /// Slots written.
    pub len: usize,
    /// Slot of the newest frame of the lane's episode in progress.
    pub current: Option<usize>,
}

impl Replay {
    /// Bytes of a slot besides its frame: action (`u16`), reward (`f32`)
    /// and flags (`u8`).
    pub const SLOT_OVERHEAD: usize = 2 + 4 + 1;

    /// An empty buffer of `capacity ≥ 2` slots for frames of `codec`. The
    /// frames are the one allocation that grows with a user's numbers, so
    /// it is checked and fallible: a refusal is
    /// [`Error::OutOfMemory`](rl_agent::Error::OutOfMemory), not an abort.
    pub fn new(codec: ObsCodec, capacity: usize) -> Result<Self> {
        Self::with_lanes(codec, capacity, 1)
    }

    /// [`Replay::new`] for `lanes` copies of the environment, each with a
    /// ring of its own (see the module docs); needs `capacity ≥ 2 · lanes`.
    pub fn with_lanes(codec: ObsCodec, capacity: usize, lanes: usize) -> Result<Self> {
        assert!(
            lanes >= 1 && capacity >= 2 * lanes,
            "the config check requires two slots per lane"
        );
        let frame_bytes = codec.frame_bytes();
        let frames_len = capacity
            .checked_mul(frame_bytes)
            .ok_or_else(|| Error::OutOfMemory {
                what: "the replay buffer's frames".into(),
                bytes: u64::MAX,
            })?;
        Ok(Replay {
            codec,
            capacity,
            frame_bytes,
            frames: try_vec("the replay buffer's frames", frames_len, 0)?,
            actions: try_vec("the replay buffer's actions", capacity, 0)?,
            rewards: try_vec("the replay buffer's rewards", capacity, 0.0)?,
            flags: try_vec("the replay buffer's flags", capacity, 0)?,
            lanes: (0..lanes)
                .map(|lane| Ring {
                    // The first `capacity % lanes` lanes take one slot more.
                    base: lane * (capacity / lanes) + lane.min(capacity % lanes),
                    capacity: capacity / lanes + usize::from(lane < capacity % lanes),
                    head: 0,
                    len: 0,
                    current: None,
                })
                .collect(),
            len: 0,
            pushed: 0,
        })
    }

    /// Lanes the slots are cut into.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Bytes each slot takes: frame, action (`u16`), reward (`f32`) and flags.
    /// A transition takes one slot; each episode takes one more for its
    /// final observation.
    pub fn bytes_per_transition(&self) -> usize {
        self.frame_bytes + Self::SLOT_OVERHEAD
    }

    /// Bytes of the buffer's storage.
    pub fn memory_bytes(&self) -> usize {
        self.capacity * self.bytes_per_transition()
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots written so far, up to the capacity.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Transitions pushed since the buffer was created (or restored empty).
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The codec frames are stored with.
    pub fn codec(&self) -> &ObsCodec {
        &self.codec
    }

    /// Stores one transition of a one-lane buffer ([`Replay::push_to`]
    /// lane 0).
    pub fn push(&mut self, step: &Step<'_>) -> Result<()> {
        self.push_to(0, step)
    }

    /// Stores one transition of lane `lane`. Its observation is written
    /// only if it begins an episode: otherwise it is the lane's previous
    /// transition's `next_obs`.
    pub fn push_to(&mut self, lane: usize, step: &Step<'_>) -> Result<()> {
        let action = u16::try_from(step.action)
            .map_err(|_| Error::Incompatible("the replay stores at most 65,536 actions".into()))?;
        let current = self
            .lanes
            .get(lane)
            .ok_or_else(|| {
                Error::Incompatible(format!(
                    "lane {lane}: the replay has {} lanes",
                    self.lanes.len()
                ))
            })?
            .current;
        if current.is_none() {
            self.codec.check_reset_stack(step.obs)?;
        }
        self.codec.check_shifted_stack(step.obs, step.next_obs)?;
        let slot = match current {
            Some(slot) => slot,
            None => self.write(lane, step.obs, FIRST)?,
        };
        let ended = step.terminated || step.truncated;
        self.actions[slot] = action;
        self.rewards[slot] = step.reward as f32;
        self.flags[slot] |=
            ACTED | if step.terminated { TERMINATED } else { 0 } | if ended { ENDED } else { 0 };
        let next = self.write(lane, step.next_obs, 0)?;
        self.lanes[lane].current = (!ended).then_some(next);
        self.pushed += 1;
        Ok(())
    }

    /// Writes a frame into lane `lane`'s oldest slot and returns the slot.
    fn write(&mut self, lane: usize, obs: &Observation, flags: u8) -> Result<usize> {
        let ring = &mut self.lanes[lane];
        let slot = ring.base + ring.head;
        let bytes = &mut self.frames[slot * self.frame_bytes..(slot + 1) * self.frame_bytes];
        self.codec.store(obs, bytes)?;
        self.flags[slot] = flags;
        self.actions[slot] = 0;
        self.rewards[slot] = 0.0;
        ring.head = (ring.head + 1) % ring.capacity;
        if ring.len < ring.capacity {
            ring.len += 1;
            self.len += 1;
        }
        Ok(slot)
    }

    fn flags_at(&self, ring: &Ring, position: usize) -> u8 {
        self.flags[ring.slot(position)]
    }

    /// Position of the oldest frame of the stack ending at `position`, or
    /// `None` if that frame is no longer in the ring.
    fn stack_start(&self, ring: &Ring, position: usize) -> Option<usize> {
        let mut p = position;
        for _ in 1..self.codec.stack() {
            if self.flags_at(ring, p) & FIRST != 0 {
                return Some(p);
            }
            p = p.checked_sub(1)?;
        }
        Some(p)
    }

    /// The transition at `position` of `ring` with its n-step successor,
    /// if all of its frames are in the ring.
    fn plan(&self, ring: &Ring, position: usize, n_step: usize, gamma: f32) -> Option<Plan> {
        if self.flags_at(ring, position) & ACTED == 0 {
            return None;
        }
        self.stack_start(ring, position)?;
        let (mut ret, mut discount) = (0.0f32, 1.0f32);
        let mut p = position;
        for m in 1..=n_step {
            let flags = self.flags_at(ring, p);
            // R = Σ_{i<m} γⁱ r_{t+i}
            ret += discount * self.rewards[ring.slot(p)];
            discount *= gamma;
            if flags & TERMINATED != 0 {
                discount = 0.0;
            }
            if flags & ENDED != 0 || m == n_step {
                break;
            }
            p += 1;
            // The next transition is not known yet (its action is pending).
            if p >= ring.len || self.flags_at(ring, p) & ACTED == 0 {
                return None;
            }
        }
        Some(Plan {
            obs: position,
            next: p + 1,
            ret,
            discount,
        })
    }

    /// Fills `batch` with transitions drawn uniformly with `rng`. Returns
    /// `false`, leaving the batch unspecified, if no valid transition could
    /// be drawn (an empty buffer, or one whose n-step chains are not
    /// complete yet).
    pub fn sample<R: rand::Rng + ?Sized>(
        &self,
        rng: &mut R,
        batch: &mut Batch,
        n_step: usize,
        gamma: f32,
    ) -> bool {
        if self.len < 2 {
            return false;
        }
        let input = self.codec.input_len();
        for i in 0..batch.len() {
            let mut draws = 0;
            let (ring, plan) = loop {
                // Uniform over every lane's slots: the lanes in order, as
                // if their rings were one.
                let mut position = rng.random_range(0..self.len);
                let ring = self
                    .lanes
                    .iter()
                    .find(|ring| {
                        let here = position < ring.len;
                        if !here {
                            position -= ring.len;
                        }
                        here
                    })
                    .expect("positions fall within the lanes' slots");
                if let Some(plan) = self.plan(ring, position, n_step, gamma) {
                    break (ring, plan);
                }
                draws += 1;
                if draws == MAX_DRAWS {
                    return false;
                }
            };
            batch.actions[i] = usize::from(self.actions[ring.slot(plan.obs)]);
            batch.returns[i] = plan.ret;
            batch.discounts[i] = plan.discount;
            let obs = batch
                .obs
                .as_slice_mut()
                .expect("batch buffers are contiguous");
            self.stack_into(ring, plan.obs, &mut obs[i * input..(i + 1) * input]);
            let next = batch
                .next_obs
                .as_slice_mut()
                .expect("batch buffers are contiguous");
            self.stack_into(ring, plan.next, &mut next[i * input..(i + 1) * input]);
        }
        true
    }

    /// Decodes the stack ending at `position` of `ring` (oldest frame
    /// first).
    fn stack_into(&self, ring: &Ring, position: usize, out: &mut [f32]) {
        let k = self.codec.stack();
        let first = self
            .stack_start(ring, position)
            .expect("sampled transitions have their whole stack");
        let len = self.codec.frame_len();
        for (j, chunk) in out.chunks_exact_mut(len).enumerate() {
            // Frame j of the stack is k − 1 − j frames before the newest,
            // and no earlier than the episode's first frame.
            let p = (position + j + 1).saturating_sub(k).max(first);
            let slot = ring.slot(p);
            self.codec.load(
                &self.frames[slot * self.frame_bytes..(slot + 1) * self.frame_bytes],
                chunk,
            );
        }
    }

    /// The buffer's contents, deflate-compressed, for a checkpoint.
    pub fn save(&self) -> Result<ReplayState> {
        // Fed to the encoder piece by piece, not copied into one raw buffer
        // first, which doubled a checkpoint's memory for nothing; the
        // buffered writer gathers the actions' and rewards' small writes
        // into 64 KiB chunks for the compressor.
        let compress =
            |e: std::io::Error| Error::State(format!("compressing the replay buffer: {e}"));
        let mut encoder = std::io::BufWriter::with_capacity(
            1 << 16,
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast()),
        );
        encoder.write_all(&self.frames).map_err(compress)?;
        for action in &self.actions {
            encoder.write_all(&action.to_le_bytes()).map_err(compress)?;
        }
        for reward in &self.rewards {
            encoder.write_all(&reward.to_le_bytes()).map_err(compress)?;
        }
        encoder.write_all(&self.flags).map_err(compress)?;
        let compressed = encoder
            .into_inner()
            .map_err(|e| compress(e.into_error()))?
            .finish()
            .map_err(compress)?;
        let ring_state = |ring: &Ring| RingState {
            head: ring.head,
            len: ring.len,
            current: ring.current,
        };
        Ok(ReplayState {
            storage: self.codec.storage(),
            frame_bytes: self.frame_bytes,
            capacity: self.capacity,
            head: self.lanes[0].head,
            len: self.lanes[0].len,
            current: self.lanes[0].current,
            more_lanes: self.lanes[1..].iter().map(ring_state).collect(),
            pushed: self.pushed,
            deflate_base64: base64::engine::general_purpose::STANDARD.encode(compressed),
        })
    }

    /// Restores what [`Replay::save`] wrote into a buffer of the same shape.
    pub fn load(&mut self, state: &ReplayState) -> Result<()> {
        let bad = |m: String| Error::State(format!("replay buffer: {m}"));
        if state.storage != self.codec.storage()
            || state.frame_bytes != self.frame_bytes
            || state.capacity != self.capacity
        {
            return Err(bad(format!(
                "saved with capacity {} and {} bytes per frame ({:?}); this run has {} and {} ({:?})",
                state.capacity,
                state.frame_bytes,
                state.storage,
                self.capacity,
                self.frame_bytes,
                self.codec.storage()
            )));
        }
        if state.more_lanes.len() + 1 != self.lanes.len() {
            return Err(bad(format!(
                "saved with {} lanes (env.num_envs); this run has {}",
                state.more_lanes.len() + 1,
                self.lanes.len()
            )));
        }
        let saved = std::iter::once(RingState {
            head: state.head,
            len: state.len,
            current: state.current,
        })
        .chain(state.more_lanes.iter().cloned());
        let mut rings = self.lanes.clone();
        for (ring, saved) in rings.iter_mut().zip(saved) {
            let inside = |slot: usize| (ring.base..ring.base + ring.capacity).contains(&slot);
            if saved.head >= ring.capacity
                || saved.len > ring.capacity
                || saved.current.is_some_and(|c| !inside(c))
            {
                return Err(bad("counters out of range".into()));
            }
            ring.head = saved.head;
            ring.len = saved.len;
            ring.current = saved.current;
        }
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(&state.deflate_base64)
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let mut raw = Vec::with_capacity(self.memory_bytes());
        flate2::read::DeflateDecoder::new(compressed.as_slice())
            .read_to_end(&mut raw)
            .map_err(|e| bad(format!("not deflate data: {e}")))?;
        if raw.len() != self.memory_bytes() {
            return Err(bad(format!(
                "{} bytes, expected {}",
                raw.len(),
                self.memory_bytes()
            )));
        }
        let (frames, rest) = raw.split_at(self.frames.len());
        let (actions, rest) = rest.split_at(2 * self.capacity);
        let (rewards, flags) = rest.split_at(4 * self.capacity);
        self.frames.copy_from_slice(frames);
        for (a, b) in self.actions.iter_mut().zip(actions.chunks_exact(2)) {
            *a = u16::from_le_bytes([b[0], b[1]]);
        }
        for (r, b) in self.rewards.iter_mut().zip(rewards.chunks_exact(4)) {
            *r = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        self.flags.copy_from_slice(flags);
        self.len = rings.iter().map(|ring| ring.len).sum();
        self.lanes = rings;
        self.pushed = state.pushed;
        Ok(())
    }

    /// Lane `lane`'s next push starts a new episode, even if the last one
    /// did not end (the loop abandoned it): its first observation gets a
    /// slot of its own.
    pub fn begin_episode(&mut self, lane: usize) {
        if let Some(ring) = self.lanes.get_mut(lane) {
            ring.current = None;
        }
    }

    /// Forgets every transition (a resume from a checkpoint without the buffer).
    pub fn clear(&mut self) {
        self.flags.fill(0);
        for ring in &mut self.lanes {
            ring.head = 0;
            ring.len = 0;
            ring.current = None;
        }
        self.len = 0;
        self.pushed = 0;
    }
}

/// A replay buffer in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayState {
    /// How frames are stored.
    pub storage: Storage,
    /// Bytes per frame.
    pub frame_bytes: usize,
    /// Slots.
    pub capacity: usize,
    /// Next slot to write.
    pub head: usize,
    /// Slots written.
    pub len: usize,
    /// Slot of the newest frame of the episode in progress.
    pub current: Option<usize>,
    /// Lanes 1, 2, … of a buffer of several (`head`, `len` and `current`
    /// above are lane 0's); absent for one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_lanes: Vec<RingState>,
    /// Transitions pushed since the buffer was created.
    pub pushed: u64,
    /// Frames, actions (`u16`), rewards (`f32`) and flags, little-endian,
    /// concatenated, deflated and base64-encoded.
    pub deflate_base64: String,
}
