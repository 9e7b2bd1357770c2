//! [`VectorEnv`]: N copies of an environment stepped as one batch.
//!
//! # Auto-reset: Gymnasium's `NEXT_STEP` rule
//!
//! When copy `i` ends an episode (`terminated` or `truncated`), the step
//! that ends it returns, as usual, the reward, the flags and the **true
//! final observation** (which is also put in `infos[i].final_observation`).
//! Copy `i` is *not* reset then. On the **next** call to
//! [`VectorEnv::step`], copy `i` ignores its action and resets instead:
//! that call returns the first observation of the new episode, reward 0,
//! `terminated = truncated = false`, the reset's info, and
//! `autoreset[i] = true`. A learner must therefore skip the transition of
//! any copy whose `autoreset` flag is set (the "transition" from the final
//! observation to the reset observation is not a real one). This is
//! Gymnasium 1.x's default, `AutoresetMode.NEXT_STEP`.
//!
//! # Seeds
//!
//! `reset(Some(seed))` resets copy `i` with `seed + i` (wrapping); automatic
//! resets pass no seed, so each copy continues its own stream. A caller
//! that wants a seed per episode instead (the training loop does) names
//! copy `i`'s next one with [`VectorEnv::seed_next_reset`]; it holds for
//! that reset only, whether explicit or automatic. The same seeds and
//! actions give the same batches whatever the thread count.
//!
//! # Copies served by one call
//!
//! The copies may be lanes of one vector that lives elsewhere, such as a
//! remote adapter's vector instance ([`VectorEnv::fed_by`]). Before the
//! copies run, a [`Feed`] is told what every copy will do (step with its
//! action, or reset with its seed) and fetches all their outcomes in one
//! call; each copy's env, wrappers and all, then reads its own. The copies
//! run on the caller's thread.
//!
//! # Threads
//!
//! With [`VectorEnv::with_threads`] the copies are split into contiguous
//! shards, one per thread. The caller's thread steps the first shard and
//! each other shard belongs to a persistent worker thread. Every thread
//! writes its shard's results into buffers of its own, in place, and the
//! [`Batch`] reads them where they are: each of its [`Column`]s is one
//! contiguous slice per thread. Nothing is gathered or copied between
//! threads, so observations stay in the cache of the core that wrote them
//! until the learner reads them.
//!
//! A call hands each worker its shard and takes it back through a mutex
//! nobody else is holding, and signals through atomic counters: the
//! waiting side spins briefly, then sleeps until woken. A hand-off thus
//! costs well under a microsecond while calls follow each other closely,
//! and an idle worker uses no CPU. If a worker has not started its shard
//! by the time the caller's thread has finished its own (it is asleep, or
//! another process has its core), the caller steps that shard itself, so a
//! busy machine slows a batch down to one thread's speed, not to the
//! scheduler's. Threads pay off once a shard's work outweighs the hand-off:
//! a few dozen fast copies per thread, or slow environments.

use crate::wrappers::buffers::copy_into;
use crate::{Action, Env, Error, Info, Observation, Result, Space};
use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, Thread};

/// What one copy will do in a batch call, as a [`Feed`] is told it.
#[derive(Clone, Debug, PartialEq)]
pub enum CopyCall {
    /// Step with this action.
    Step(Action),
    /// Reset, with this seed or continuing the copy's stream.
    Reset(Option<u64>),
}

/// Serves every copy's call of a batch at once, before the copies run:
/// one round trip per batch instead of one per copy, for copies that are
/// lanes of one vector elsewhere. Each copy's env must then make exactly
/// the call the feed was told of, once (a wrapper that repeats or changes
/// the call cannot wrap such a copy), and read the outcome the feed
/// fetched for it.
pub trait Feed: Send {
    /// Fetches the outcome of `calls[i]` for every copy `i`.
    fn fetch(&mut self, calls: &[CopyCall]) -> Result<()>;
}

/// N copies of an environment, stepped together, with auto-reset.
///
/// ```
/// use rl_env::{Action, Env, VectorEnv};
/// # use rl_env::{Space, Observation, Info, StepOutcome, Frame};
/// # struct Coin { s: Space, t: u32 }
/// # impl Env for Coin {
/// #   fn observation_space(&self) -> &Space { &self.s }
/// #   fn action_space(&self) -> &Space { &self.s }
/// #   fn reset_into(&mut self, _: Option<u64>, o: &mut Observation) -> rl_env::Result<Info> { self.t = 0; *o = Observation::Discrete(0); Ok(Info::default()) }
/// #   fn step_into(&mut self, _: &Action, o: &mut Observation) -> rl_env::Result<StepOutcome> { self.t += 1; *o = Observation::Discrete(1); Ok(StepOutcome::new(1.0, self.t == 2)) }
/// #   fn render_text(&self) -> String { String::new() }
/// #   fn render_rgb(&self) -> Frame { Frame::zeros((1, 1, 3)) }
/// # }
/// // Episodes of two steps each.
/// let mut envs = VectorEnv::new(3, |_| Ok(Box::new(Coin { s: Space::discrete(2), t: 0 }) as Box<dyn Env>)).unwrap();
/// envs.reset(Some(42)).unwrap();
/// let actions = vec![Action::Discrete(0); 3];
/// envs.step(&actions).unwrap();
/// let end = envs.step(&actions).unwrap();
/// assert!(end.terminated.iter().all(|&t| t));
/// assert!(end.infos[0].final_observation.is_some());
/// let next = envs.step(&actions).unwrap(); // NEXT_STEP: this call resets
/// assert!(next.autoreset.iter().all(|&a| a));
/// assert_eq!(next.rewards, &[0.0; 3]);
/// assert!(envs.step(&actions[..2]).is_err()); // wrong batch size
/// ```
pub struct VectorEnv {
    /// The copies stepped on the caller's thread: copies `0..home.len()`.
    home: Shard,
    /// The other shards, in copy order, one per worker thread.
    workers: Vec<Worker>,
    /// Each shard's results, home first: `parts[k]` is shard `k`'s, in
    /// place between calls (a worker holds its part while it runs).
    parts: Vec<Columns>,
    /// Copies in the home shard.
    first: usize,
    /// Copies per worker shard (the last may have fewer).
    chunk: usize,
    started: bool,
    observation_space: Space,
    action_space: Space,
    /// Fetches every copy's outcome before the copies run, when they are
    /// lanes of one vector elsewhere.
    feed: Option<Box<dyn Feed>>,
    /// What the feed is told, kept between calls.
    calls: Vec<CopyCall>,
}

/// The result of a batch call, borrowed from the [`VectorEnv`]; index `i`
/// is copy `i`.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Observation after the call (the final one where an episode ended).
    pub observations: Column<'a, Observation>,
    /// Rewards (0 for copies that reset in this call).
    pub rewards: Column<'a, f64>,
    /// A terminal state was reached.
    pub terminated: Column<'a, bool>,
    /// The episode was cut short.
    pub truncated: Column<'a, bool>,
    /// The copy reset in this call instead of stepping; skip its transition.
    pub autoreset: Column<'a, bool>,
    /// Per-copy info; `final_observation` is set where an episode ended.
    pub infos: Column<'a, Info>,
}

/// One field of a [`Batch`], copy by copy: indexable and iterable like a
/// slice, stored as one contiguous slice per thread
/// ([`parts`](Column::parts)), where that thread wrote it.
///
/// ```
/// # use rl_env::{Action, Env, VectorEnv, Space, Observation, Info, StepOutcome, Frame};
/// # struct Coin { s: Space }
/// # impl Env for Coin {
/// #   fn observation_space(&self) -> &Space { &self.s }
/// #   fn action_space(&self) -> &Space { &self.s }
/// #   fn reset_into(&mut self, _: Option<u64>, o: &mut Observation) -> rl_env::Result<Info> { *o = Observation::Discrete(0); Ok(Info::default()) }
/// #   fn step_into(&mut self, a: &Action, o: &mut Observation) -> rl_env::Result<StepOutcome> { *o = Observation::Discrete(1); Ok(StepOutcome::new(1.0, false)) }
/// #   fn render_text(&self) -> String { String::new() }
/// #   fn render_rgb(&self) -> Frame { Frame::zeros((1, 1, 3)) }
/// # }
/// let mut envs = VectorEnv::new(5, |_| Ok(Box::new(Coin { s: Space::discrete(2) }) as Box<dyn Env>))
///     .unwrap()
///     .with_threads(2)
///     .unwrap();
/// envs.reset(Some(0)).unwrap();
/// let batch = envs.step(&vec![Action::Discrete(1); 5]).unwrap();
/// assert_eq!(batch.rewards.len(), 5);
/// assert_eq!(batch.rewards[4], 1.0);
/// assert_eq!(batch.rewards, &[1.0; 5]);
/// assert_eq!(batch.rewards.parts().map(<[f64]>::len).collect::<Vec<_>>(), [3, 2]);
/// let total: f64 = batch.rewards.iter().sum();
/// assert_eq!(total, 5.0);
/// ```
pub struct Column<'a, T: 'a> {
    parts: &'a [Columns],
    field: fn(&Columns) -> &[T],
    /// Copies in the first part, and in each later one but the last.
    first: usize,
    chunk: usize,
    len: usize,
}

impl<T> Clone for Column<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Column<'_, T> {}

impl<'a, T: 'a> Column<'a, T> {
    /// Number of copies.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no copies (never, for a batch).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy `i`'s entry.
    pub fn get(&self, i: usize) -> Option<&'a T> {
        let (part, j) = match i.checked_sub(self.first) {
            None => (0, i),
            Some(k) => (1 + k / self.chunk, k % self.chunk),
        };
        (self.field)(self.parts.get(part)?).get(j)
    }

    /// The contiguous slices the column is stored in, in copy order: one
    /// per thread.
    pub fn parts(&self) -> impl Iterator<Item = &'a [T]> + use<'a, T> {
        let field = self.field;
        self.parts.iter().map(field)
    }

    /// The entries in copy order.
    pub fn iter(&self) -> impl Iterator<Item = &'a T> + use<'a, T> {
        self.parts().flatten()
    }

    /// The entries, copied into one vector.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.iter().cloned().collect()
    }
}

impl<T> std::ops::Index<usize> for Column<'_, T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(entry) => entry,
            None => panic!("copy {i} out of range for a batch of {}", self.len),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Column<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq<[T]> for Column<'_, T> {
    fn eq(&self, other: &[T]) -> bool {
        self.len == other.len() && self.iter().eq(other)
    }
}

impl<T: PartialEq> PartialEq<&[T]> for Column<'_, T> {
    fn eq(&self, other: &&[T]) -> bool {
        *self == **other
    }
}

impl<T: PartialEq, const N: usize> PartialEq<[T; N]> for Column<'_, T> {
    fn eq(&self, other: &[T; N]) -> bool {
        *self == other[..]
    }
}

impl<T: PartialEq, const N: usize> PartialEq<&[T; N]> for Column<'_, T> {
    fn eq(&self, other: &&[T; N]) -> bool {
        *self == other[..]
    }
}

impl<T: PartialEq> PartialEq<Vec<T>> for Column<'_, T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        *self == other[..]
    }
}

impl<T: PartialEq> PartialEq for Column<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

/// One shard's results, one entry per copy.
#[derive(Default)]
struct Columns {
    observations: Vec<Observation>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    autoreset: Vec<bool>,
    infos: Vec<Info>,
}

/// A range of [`Columns`] to write.
struct ColumnsMut<'a> {
    observations: &'a mut [Observation],
    rewards: &'a mut [f64],
    terminated: &'a mut [bool],
    truncated: &'a mut [bool],
    autoreset: &'a mut [bool],
    infos: &'a mut [Info],
}

impl Columns {
    fn all(&mut self) -> ColumnsMut<'_> {
        ColumnsMut {
            observations: &mut self.observations,
            rewards: &mut self.rewards,
            terminated: &mut self.terminated,
            truncated: &mut self.truncated,
            autoreset: &mut self.autoreset,
            infos: &mut self.infos,
        }
    }

    fn split_off(&mut self, at: usize) -> Columns {
        Columns {
            observations: self.observations.split_off(at),
            rewards: self.rewards.split_off(at),
            terminated: self.terminated.split_off(at),
            truncated: self.truncated.split_off(at),
            autoreset: self.autoreset.split_off(at),
            infos: self.infos.split_off(at),
        }
    }

    fn append(&mut self, other: &mut Columns) {
        self.observations.append(&mut other.observations);
        self.rewards.append(&mut other.rewards);
        self.terminated.append(&mut other.terminated);
        self.truncated.append(&mut other.truncated);
        self.autoreset.append(&mut other.autoreset);
        self.infos.append(&mut other.infos);
    }
}

/// A contiguous range of copies.
#[derive(Default)]
struct Shard {
    /// Index of the first copy.
    offset: usize,
    copies: Vec<Slot>,
}

/// One copy and what the runner keeps about it, together so that a step
/// reads one place per copy.
struct Slot {
    env: Box<dyn Env>,
    /// Its episode ended on the last call: it resets on the next.
    pending: bool,
    /// The seed of its next reset, if the caller chose one
    /// ([`VectorEnv::seed_next_reset`]).
    next_seed: Option<u64>,
    /// A buffer for its final observation, kept from an earlier episode
    /// end so that ending an episode does not allocate.
    spare: Option<Box<Observation>>,
}

/// A shard's actions for a step.
#[derive(Clone, Copy)]
enum Actions<'a> {
    /// As the caller gave them.
    Given(&'a [Action]),
    /// The integers of `Discrete` actions.
    Discrete(&'a [i64]),
}

impl Actions<'_> {
    fn len(&self) -> usize {
        match self {
            Actions::Given(given) => given.len(),
            Actions::Discrete(values) => values.len(),
        }
    }
}

#[derive(Clone, Copy)]
enum Job {
    Reset(Option<u64>),
    Step,
}

impl Shard {
    fn len(&self) -> usize {
        self.copies.len()
    }

    fn run(&mut self, job: Job, actions: Actions<'_>, out: ColumnsMut<'_>) -> Result<()> {
        match job {
            Job::Reset(seed) => self.reset(seed, out),
            Job::Step => self.step(actions, out),
        }
    }

    /// What each copy will do in `job`, as [`Shard::reset`] and
    /// [`Shard::step`] decide it, into `calls`.
    fn calls(&self, job: Job, actions: &[Action], calls: &mut Vec<CopyCall>) {
        calls.truncate(self.copies.len());
        for (j, copy) in self.copies.iter().enumerate() {
            let call = match job {
                Job::Reset(seed) => CopyCall::Reset(
                    copy.next_seed
                        .or_else(|| seed.map(|s| s.wrapping_add((self.offset + j) as u64))),
                ),
                Job::Step if copy.pending => CopyCall::Reset(copy.next_seed),
                Job::Step => CopyCall::Step(actions[j].clone()),
            };
            match calls.get_mut(j) {
                Some(slot) => *slot = call,
                None => calls.push(call),
            }
        }
    }

    /// Resets every copy; copy `offset + j` gets the seed chosen for it,
    /// else `seed + offset + j`.
    fn reset(&mut self, seed: Option<u64>, out: ColumnsMut<'_>) -> Result<()> {
        for (j, copy) in self.copies.iter_mut().enumerate() {
            let seed = copy
                .next_seed
                .take()
                .or_else(|| seed.map(|s| s.wrapping_add((self.offset + j) as u64)));
            keep_spare(&mut copy.spare, &mut out.infos[j]);
            reset_one(
                copy.env.as_mut(),
                seed,
                &mut out.observations[j],
                &mut out.infos[j],
            )?;
            out.rewards[j] = 0.0;
            out.terminated[j] = false;
            out.truncated[j] = false;
            out.autoreset[j] = false;
            copy.pending = false;
        }
        Ok(())
    }

    /// Steps every copy with its action, or resets the ones pending.
    fn step(&mut self, actions: Actions<'_>, out: ColumnsMut<'_>) -> Result<()> {
        // Equal lengths, checked once, let the compiler drop the bounds
        // checks on every column below.
        let n = self.copies.len();
        assert!(
            actions.len() == n
                && out.observations.len() == n
                && out.rewards.len() == n
                && out.terminated.len() == n
                && out.truncated.len() == n
                && out.autoreset.len() == n
                && out.infos.len() == n,
            "a shard's columns match its copies"
        );
        for (j, copy) in self.copies.iter_mut().enumerate() {
            let Slot {
                env,
                pending,
                next_seed,
                spare,
            } = copy;
            let discrete;
            let action = match actions {
                Actions::Given(given) => &given[j],
                Actions::Discrete(values) => {
                    discrete = Action::Discrete(values[j]);
                    &discrete
                }
            };
            let obs = &mut out.observations[j];
            let info = &mut out.infos[j];
            keep_spare(spare, info);
            if *pending {
                reset_one(env.as_mut(), next_seed.take(), obs, info)?;
                out.rewards[j] = 0.0;
                out.terminated[j] = false;
                out.truncated[j] = false;
                out.autoreset[j] = true;
                *pending = false;
            } else {
                // The outcome is read field by field where it lies, rather
                // than moved out of the `Result` first: moving it reads it
                // back in wider pieces than the env wrote it, which stalls
                // the CPU's store forwarding on every step.
                let result = env.step_into(action, obs);
                let step = match &result {
                    Ok(step) => step,
                    Err(_) => return result.map(drop),
                };
                out.rewards[j] = step.reward;
                out.terminated[j] = step.terminated;
                out.truncated[j] = step.truncated;
                out.autoreset[j] = false;
                // Most steps' info is empty, as is the one it replaces.
                if !is_empty(&step.info) || !is_empty(info) {
                    *info = step.info.clone();
                }
                if step.terminated || step.truncated {
                    *pending = true;
                    let mut last = spare
                        .take()
                        .unwrap_or_else(|| Box::new(Observation::Discrete(0)));
                    copy_into(&mut last, obs);
                    info.final_observation = Some(last);
                }
            }
        }
        Ok(())
    }
}

/// Resets `env` into `obs` and `info`. The info is read where it lies
/// rather than moved out of the `Result` (see [`Shard::step`]).
#[inline(always)]
fn reset_one(
    env: &mut dyn Env,
    seed: Option<u64>,
    obs: &mut Observation,
    info: &mut Info,
) -> Result<()> {
    let result = env.reset_into(seed, obs);
    let new = match &result {
        Ok(new) => new,
        Err(_) => return result.map(drop),
    };
    if !is_empty(new) || !is_empty(info) {
        *info = new.clone();
    }
    Ok(())
}

/// Whether `info` holds nothing, read field by field.
#[inline(always)]
fn is_empty(info: &Info) -> bool {
    let Info {
        episode,
        prob,
        final_observation,
    } = info;
    episode.is_none() && prob.is_none() && final_observation.is_none()
}

/// Takes back the final-observation buffer an earlier call put in `info`,
/// before `info` is overwritten.
#[inline]
fn keep_spare(spare: &mut Option<Box<Observation>>, info: &mut Info) {
    if let Some(last) = info.final_observation.take() {
        *spare = Some(last);
    }
}

/// What a worker owns while it runs a job, and hands back after.
struct Work {
    shard: Shard,
    /// Its part of the batch, while it runs.
    out: Columns,
    /// Its copies' actions for a step, when they are not `Discrete`.
    actions: Vec<Action>,
    /// Its copies' actions for a step, when they are `Discrete`: just the
    /// integers, a third of the bytes to hand from one core to another.
    discrete: Option<Vec<i64>>,
    /// The job to run; taken by whoever runs it.
    job: Option<Job>,
    /// Which post the job came with (see [`Handoff::posted`]).
    number: u64,
    result: Result<()>,
    /// A panic caught while running the job, re-raised on the caller's
    /// thread.
    panic: Option<Box<dyn Any + Send>>,
    /// Woken when the job is done.
    caller: Option<Thread>,
}

/// How the caller and one worker pass [`Work`] back and forth.
struct Handoff {
    /// The work, while the worker has it.
    slot: Mutex<Option<Box<Work>>>,
    /// Number of the last job posted; the worker looks in the slot when it
    /// grows.
    posted: AtomicU64,
    /// Number of the last job the worker finished.
    done: AtomicU64,
    stop: AtomicBool,
}

/// How long a waiting side spins before it goes to sleep: long enough to
/// cover the gap between two calls of a tight loop, short enough not to
/// burn a core for long when the caller does something else between calls.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Spins until `ready()` or [`SPIN`] has passed; returns `ready()`.
#[inline]
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > SPIN {
            return ready();
        }
    }
}

impl Handoff {
    fn slot(&self) -> MutexGuard<'_, Option<Box<Work>>> {
        // A panic while stepping is caught (see `run_job`) and the lock is
        // never held while stepping, so it is not poisoned by one; if it
        // were, the work in it would still be whole.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A persistent thread that runs jobs on the shard it is handed.
struct Worker {
    handoff: Arc<Handoff>,
    /// The work, between calls.
    work: Option<Box<Work>>,
    thread: Thread,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(index: usize, work: Box<Work>) -> Result<Worker> {
        let handoff = Arc::new(Handoff {
            slot: Mutex::new(None),
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let shared = Arc::clone(&handoff);
        let handle = std::thread::Builder::new()
            .name(format!("vector-env-{index}"))
            .spawn(move || work_loop(&shared))
            .map_err(|e| Error::config("threads", format!("cannot start a thread: {e}")))?;
        Ok(Worker {
            handoff,
            work: Some(work),
            thread: handle.thread().clone(),
            handle: Some(handle),
        })
    }

    fn work(&self) -> &Work {
        self.work.as_ref().expect("the work is home between calls")
    }

    fn work_mut(&mut self) -> &mut Work {
        self.work.as_mut().expect("the work is home between calls")
    }

    /// Hands the work over with `job` to run, writing into `out`.
    fn post(&mut self, job: Job, out: Columns) {
        let mut work = self.work.take().expect("the work is home between calls");
        work.job = Some(job);
        work.out = out;
        work.caller = Some(std::thread::current());
        work.number = self.handoff.posted.load(Ordering::Relaxed) + 1;
        let number = work.number;
        *self.handoff.slot() = Some(work);
        self.handoff.posted.store(number, Ordering::Release);
        self.thread.unpark();
    }

    /// Waits for the job posted last, takes the work back, puts its
    /// results in `out`, and re-raises a panic the job raised.
    ///
    /// If the worker has not even started the job, it is asleep or has
    /// lost its core to another process, and the job is run here instead:
    /// the batch is then no slower than on one thread, however busy the
    /// machine.
    fn collect(&mut self, out: &mut Columns) -> Result<()> {
        let stolen = {
            let mut slot = self.handoff.slot();
            match &*slot {
                Some(work) if work.job.is_some() => slot.take(),
                _ => None,
            }
        };
        let mut work = match stolen {
            Some(mut work) => {
                // The worker finds the slot empty and leaves the job be.
                run_job(&mut work);
                work
            }
            None => {
                let posted = self.handoff.posted.load(Ordering::Relaxed);
                let done = || self.handoff.done.load(Ordering::Acquire) == posted;
                if !spin_until(done) {
                    while !done() {
                        if self.handle.as_ref().is_none_or(|h| h.is_finished()) {
                            panic!("a vector-env worker stopped without finishing its job");
                        }
                        // Woken by the worker when it is done.
                        std::thread::park_timeout(std::time::Duration::from_millis(10));
                    }
                }
                self.handoff
                    .slot()
                    .take()
                    .expect("a finished job's work is in the slot")
            }
        };
        let panic = work.panic.take();
        let result = std::mem::replace(&mut work.result, Ok(()));
        *out = std::mem::take(&mut work.out);
        self.work = Some(work);
        if let Some(panic) = panic {
            std::panic::resume_unwind(panic);
        }
        result
    }

    /// Stops the thread and takes the work back.
    fn stop(&mut self) -> Option<Box<Work>> {
        self.handoff.stop.store(true, Ordering::Release);
        self.thread.unpark();
        if let Some(handle) = self.handle.take() {
            // A panic inside a job was caught and re-raised by `collect`.
            let _ = handle.join();
        }
        self.work.take().or_else(|| self.handoff.slot().take())
    }
}

/// A worker's life: wait for a job, run it, hand the work back, repeat.
fn work_loop(handoff: &Handoff) {
    let mut seen = 0;
    loop {
        let news = || {
            handoff.stop.load(Ordering::Acquire) || handoff.posted.load(Ordering::Acquire) != seen
        };
        while !spin_until(news) {
            // Woken by `post` or `stop`, or spuriously: look again.
            std::thread::park();
        }
        if handoff.stop.load(Ordering::Acquire) {
            return;
        }
        seen = handoff.posted.load(Ordering::Acquire);
        // The caller may have taken the job back to run it itself.
        let Some(mut work) = handoff.slot().take() else {
            continue;
        };
        if work.job.is_none() {
            *handoff.slot() = Some(work);
            continue;
        }
        run_job(&mut work);
        let caller = work.caller.take();
        // The job's own number, not `seen`: the job taken may have been
        // posted after `seen` was read, when the caller ran the one before.
        let number = work.number;
        *handoff.slot() = Some(work);
        handoff.done.store(number, Ordering::Release);
        if let Some(caller) = caller {
            caller.unpark();
        }
    }
}

/// Runs `work`'s job, catching a panic to be re-raised on the caller's
/// thread.
fn run_job(work: &mut Work) {
    let Work {
        shard,
        out,
        actions,
        discrete,
        job,
        number: _,
        result,
        panic,
        caller: _,
    } = work;
    let Some(job) = job.take() else {
        return;
    };
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let actions = match discrete {
            Some(values) => Actions::Discrete(values),
            None => Actions::Given(actions),
        };
        shard.run(job, actions, out.all())
    }));
    match ran {
        Ok(r) => *result = r,
        Err(payload) => *panic = Some(payload),
    }
}

impl Drop for VectorEnv {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.stop();
        }
    }
}

impl VectorEnv {
    /// `n ≥ 1` copies made by `make(i)`, run on the caller's thread until
    /// [`with_threads`](Self::with_threads) says otherwise. Every copy
    /// must have the same spaces.
    pub fn new(n: usize, mut make: impl FnMut(usize) -> Result<Box<dyn Env>>) -> Result<Self> {
        if n == 0 {
            return Err(Error::config("num_envs", "must be at least 1"));
        }
        let envs = (0..n).map(&mut make).collect::<Result<Vec<_>>>()?;
        let observation_space = envs[0].observation_space().clone();
        let action_space = envs[0].action_space().clone();
        for (i, env) in envs.iter().enumerate() {
            if *env.observation_space() != observation_space || *env.action_space() != action_space
            {
                return Err(Error::Space(format!(
                    "copy {i} has spaces {} / {}, copy 0 has {observation_space} / {action_space}",
                    env.observation_space(),
                    env.action_space()
                )));
            }
        }
        let out = Columns {
            observations: envs.iter().map(|e| e.observation_space().zeros()).collect(),
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            autoreset: vec![false; n],
            infos: vec![Info::default(); n],
        };
        let home = Shard {
            offset: 0,
            copies: envs
                .into_iter()
                .map(|env| Slot {
                    env,
                    pending: false,
                    next_seed: None,
                    spare: None,
                })
                .collect(),
        };
        Ok(VectorEnv {
            home,
            workers: Vec::new(),
            parts: vec![out],
            first: n,
            chunk: n,
            started: false,
            observation_space,
            action_space,
            feed: None,
            calls: Vec::new(),
        })
    }

    /// Has `feed` fetch every copy's outcome before the copies run (see
    /// the module docs); the copies then run on the caller's thread.
    pub fn fed_by(mut self, feed: Box<dyn Feed>) -> Result<Self> {
        self = self.with_threads(1)?;
        self.feed = Some(feed);
        Ok(self)
    }

    /// Whether a [`Feed`] serves the copies' calls.
    pub fn is_fed(&self) -> bool {
        self.feed.is_some()
    }

    /// Spreads the copies over `threads` threads (at most one per copy;
    /// 0 means one per available core): the caller's and `threads − 1`
    /// persistent workers. The copies keep their state and results.
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        let threads = if self.feed.is_some() {
            1
        } else if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let n = self.num_envs();
        let threads = threads.clamp(1, n);
        // Gather every copy and result into the home shard, then cut anew.
        let mut parts = std::mem::take(&mut self.parts).into_iter();
        let mut all = parts.next().expect("the home part");
        for (mut worker, mut part) in std::mem::take(&mut self.workers).into_iter().zip(parts) {
            let work = worker.stop().expect("a stopped worker hands its work back");
            let mut shard = work.shard;
            self.home.copies.append(&mut shard.copies);
            all.append(&mut part);
        }
        let first = n.div_ceil(threads);
        let chunk = first;
        let mut rest = std::mem::take(&mut self.home);
        let mut shards = Vec::new();
        let mut cut = first;
        while rest.len() > cut {
            let tail = Shard {
                offset: rest.offset + cut,
                copies: rest.copies.split_off(cut),
            };
            let tail_part = all.split_off(cut);
            shards.push(rest);
            self.parts.push(all);
            rest = tail;
            all = tail_part;
            cut = chunk;
        }
        shards.push(rest);
        self.parts.push(all);
        self.first = first;
        self.chunk = chunk;
        let mut shards = shards.into_iter();
        self.home = shards.next().expect("there is at least one copy");
        for (k, shard) in shards.enumerate() {
            let work = Box::new(Work {
                actions: Vec::new(),
                discrete: None,
                shard,
                out: Columns::default(),
                job: None,
                number: 0,
                result: Ok(()),
                panic: None,
                caller: None,
            });
            self.workers.push(Worker::spawn(k + 1, work)?);
        }
        Ok(self)
    }

    /// Number of copies.
    pub fn num_envs(&self) -> usize {
        self.home.len()
            + self
                .workers
                .iter()
                .map(|w| w.work().shard.len())
                .sum::<usize>()
    }

    /// Threads used per batch call.
    pub fn threads(&self) -> usize {
        1 + self.workers.len()
    }

    /// One copy's observation space.
    pub fn single_observation_space(&self) -> &Space {
        &self.observation_space
    }

    /// One copy's action space.
    pub fn single_action_space(&self) -> &Space {
        &self.action_space
    }

    /// Copy `i`, e.g. to render it.
    pub fn env(&self, i: usize) -> Option<&dyn Env> {
        self.shards().find_map(|s| {
            i.checked_sub(s.offset)
                .and_then(|j| s.copies.get(j))
                .map(|c| c.env.as_ref())
        })
    }

    /// Copy `i`, mutably, e.g. to restore what it carries between
    /// episodes.
    pub fn env_mut(&mut self, i: usize) -> Option<&mut (dyn Env + 'static)> {
        self.slot_mut(i).map(|c| c.env.as_mut())
    }

    /// Copy `i`'s next reset, by [`reset`](Self::reset) or automatically
    /// after its episode ends, takes `seed`. A training loop uses it to
    /// give every episode a seed of its own, whichever copy plays it.
    /// `false` if there is no copy `i`.
    pub fn seed_next_reset(&mut self, i: usize, seed: u64) -> bool {
        self.slot_mut(i).map(|c| c.next_seed = Some(seed)).is_some()
    }

    /// Whether copy `i` ended an episode on the last call, and so resets on
    /// the next.
    pub fn resets_next(&self, i: usize) -> bool {
        self.shards()
            .find_map(|s| i.checked_sub(s.offset).and_then(|j| s.copies.get(j)))
            .is_some_and(|c| c.pending)
    }

    fn shards(&self) -> impl Iterator<Item = &Shard> {
        std::iter::once(&self.home).chain(self.workers.iter().map(|w| &w.work().shard))
    }

    fn slot_mut(&mut self, i: usize) -> Option<&mut Slot> {
        std::iter::once(&mut self.home)
            .chain(self.workers.iter_mut().map(|w| &mut w.work_mut().shard))
            .find_map(|s| {
                let offset = s.offset;
                i.checked_sub(offset).and_then(move |j| s.copies.get_mut(j))
            })
    }

    fn column<T>(&self, field: fn(&Columns) -> &[T]) -> Column<'_, T> {
        Column {
            parts: &self.parts,
            field,
            first: self.first,
            chunk: self.chunk,
            len: self.parts.iter().map(|p| p.rewards.len()).sum(),
        }
    }

    fn batch(&self) -> Batch<'_> {
        Batch {
            observations: self.column(|c| &c.observations),
            rewards: self.column(|c| &c.rewards),
            terminated: self.column(|c| &c.terminated),
            truncated: self.column(|c| &c.truncated),
            autoreset: self.column(|c| &c.autoreset),
            infos: self.column(|c| &c.infos),
        }
    }

    /// Runs `job` on every shard: the workers' in parallel with the home
    /// shard's, which runs here on `actions[..home]`. The first error, in
    /// copy order, wins.
    fn run(&mut self, job: Job, actions: &[Action]) -> Result<()> {
        if let Some(feed) = self.feed.as_mut() {
            // A fed vector keeps every copy in the home shard.
            self.home.calls(job, actions, &mut self.calls);
            feed.fetch(&self.calls)?;
        }
        let (home_part, worker_parts) = self.parts.split_first_mut().expect("there is a home part");
        for (worker, part) in self.workers.iter_mut().zip(worker_parts.iter_mut()) {
            worker.post(job, std::mem::take(part));
        }
        let home_actions = Actions::Given(actions.get(..self.home.len()).unwrap_or(&[]));
        let mut result = self.home.run(job, home_actions, home_part.all());
        for (worker, part) in self.workers.iter_mut().zip(worker_parts.iter_mut()) {
            let r = worker.collect(part);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Resets every copy: copy `i` with the seed
    /// [`seed_next_reset`](Self::seed_next_reset) chose for it, else with
    /// `seed + i`.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<Batch<'_>> {
        self.run(Job::Reset(seed), &[])?;
        self.started = true;
        Ok(self.batch())
    }

    /// Steps every copy with its action (`actions[i]` for copy `i`),
    /// resetting instead the copies whose episode ended on the previous
    /// call (their actions are ignored; see the module docs).
    ///
    /// A batch of the wrong length, or an action outside the action space
    /// for a copy that steps, is refused before any copy moves. If a copy
    /// fails while stepping, the others have moved: call `reset` next.
    pub fn step(&mut self, actions: &[Action]) -> Result<Batch<'_>> {
        if !self.started {
            return Err(Error::ResetNeeded);
        }
        let n = self.num_envs();
        if actions.len() != n {
            return Err(Error::BatchSize {
                expected: n,
                got: actions.len(),
            });
        }
        // Almost always every action is valid, which one pass without
        // early exits settles; only otherwise is each checked against the
        // copy's state (a copy about to reset may be given anything).
        let space = &self.action_space;
        let all_valid = match *space {
            Space::Discrete { n, start } => actions.iter().fold(true, |ok, a| {
                ok & matches!(*a, Action::Discrete(v) if v >= start && (v.wrapping_sub(start) as u64) < n)
            }),
            _ => actions.iter().all(|a| space.contains_action(a)),
        };
        if !all_valid {
            let shards =
                std::iter::once(&self.home).chain(self.workers.iter().map(|w| &w.work().shard));
            for shard in shards {
                let mine = &actions[shard.offset..shard.offset + shard.len()];
                for (j, action) in mine.iter().enumerate() {
                    if !shard.copies[j].pending && !space.contains_action(action) {
                        return Err(Error::InvalidAction {
                            action: format!(
                                "{} (for copy {})",
                                match action {
                                    Action::Discrete(a) => a.to_string(),
                                    Action::Continuous(v) => format!("{v:?}"),
                                },
                                shard.offset + j
                            ),
                            space: space.to_string(),
                        });
                    }
                }
            }
        }
        for worker in &mut self.workers {
            let work = worker.work_mut();
            let offset = work.shard.offset;
            let mine = &actions[offset..offset + work.shard.len()];
            if let Space::Discrete { .. } = space {
                // A copy about to reset may have been given anything: 0
                // stands in for what it ignores.
                let values = work.discrete.get_or_insert_with(Vec::new);
                values.clear();
                values.extend(mine.iter().map(|a| match a {
                    Action::Discrete(v) => *v,
                    Action::Continuous(_) => 0,
                }));
            } else {
                work.discrete = None;
                work.actions.resize(mine.len(), Action::Discrete(0));
                for (slot, action) in work.actions.iter_mut().zip(mine) {
                    slot.clone_from(action);
                }
            }
        }
        let result = self.run(Job::Step, actions);
        if result.is_err() {
            self.started = false;
        }
        result?;
        Ok(self.batch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Ramp, Walk};
    use rand::{RngExt, SeedableRng};

    fn u8s(obs: &Observation) -> Vec<u8> {
        let Observation::U8(a) = obs else {
            panic!("expected uint8")
        };
        a.iter().copied().collect()
    }

    /// Copy `i` has episodes of `i + 1` steps.
    fn ramps(n: usize) -> VectorEnv {
        VectorEnv::new(n, |i| Ok(Box::new(Ramp::new(i as u8 + 1)) as Box<dyn Env>)).unwrap()
    }

    /// Observes and is rewarded its last continuous action; never ends.
    struct Echo {
        space: Space,
    }

    impl Env for Echo {
        fn observation_space(&self) -> &Space {
            &self.space
        }
        fn action_space(&self) -> &Space {
            &self.space
        }
        fn reset_into(&mut self, _: Option<u64>, obs: &mut Observation) -> Result<Info> {
            *obs = Observation::F64(ndarray::ArrayD::zeros(vec![1]));
            Ok(Info::default())
        }
        fn step_into(
            &mut self,
            action: &Action,
            obs: &mut Observation,
        ) -> Result<crate::StepOutcome> {
            crate::check_action(&self.space, action)?;
            let Action::Continuous(v) = action else {
                unreachable!("checked")
            };
            *obs = Observation::F64(ndarray::ArrayD::from_elem(vec![1], v[0]));
            Ok(crate::StepOutcome::new(v[0], false))
        }
        fn render_text(&self) -> String {
            String::new()
        }
        fn render_rgb(&self) -> crate::Frame {
            crate::Frame::zeros((1, 1, 3))
        }
    }

    /// Observes the seed of its last reset (0 for none); episodes of one
    /// step.
    struct Seeded {
        space: Space,
    }

    impl Env for Seeded {
        fn observation_space(&self) -> &Space {
            &self.space
        }
        fn action_space(&self) -> &Space {
            &self.space
        }
        fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
            *obs = Observation::Discrete(seed.map_or(0, |s| s as i64));
            Ok(Info::default())
        }
        fn step_into(&mut self, _: &Action, _: &mut Observation) -> Result<crate::StepOutcome> {
            Ok(crate::StepOutcome::new(0.0, true))
        }
        fn render_text(&self) -> String {
            String::new()
        }
        fn render_rgb(&self) -> crate::Frame {
            crate::Frame::zeros((1, 1, 3))
        }
    }

    #[test]
    fn chosen_seeds_hold_for_one_reset_on_every_thread() {
        for threads in [1, 2, 3] {
            let mut envs = VectorEnv::new(3, |_| {
                Ok(Box::new(Seeded {
                    space: Space::discrete(1000),
                }) as Box<dyn Env>)
            })
            .unwrap()
            .with_threads(threads)
            .unwrap();
            assert!(envs.seed_next_reset(1, 500));
            assert!(!envs.seed_next_reset(3, 1));
            let seen = |b: Batch<'_>| -> Vec<i64> {
                b.observations
                    .iter()
                    .map(|o| match o {
                        Observation::Discrete(v) => *v,
                        _ => unreachable!(),
                    })
                    .collect()
            };
            assert_eq!(seen(envs.reset(Some(10)).unwrap()), [10, 500, 12]);
            let act = vec![Action::Discrete(0); 3];
            envs.step(&act).unwrap();
            assert!((0..3).all(|i| envs.resets_next(i)));
            envs.seed_next_reset(2, 700);
            let b = envs.step(&act).unwrap();
            assert_eq!(b.autoreset, &[true, true, true]);
            // Automatic resets pass no seed unless one was chosen, and a
            // chosen seed is used once.
            assert_eq!(seen(b), [0, 0, 700], "{threads} threads");
            envs.step(&act).unwrap();
            assert_eq!(seen(envs.step(&act).unwrap()), [0, 0, 0]);
        }
    }

    #[test]
    fn continuous_actions_reach_every_thread() {
        let mut envs = VectorEnv::new(5, |_| {
            Ok(Box::new(Echo {
                space: Space::uniform_box(-1.0, 1.0, &[1], crate::DType::F64),
            }) as Box<dyn Env>)
        })
        .unwrap()
        .with_threads(2)
        .unwrap();
        envs.reset(Some(0)).unwrap();
        let actions: Vec<Action> = (0..5)
            .map(|i| Action::Continuous(vec![i as f64 / 5.0]))
            .collect();
        let b = envs.step(&actions).unwrap();
        assert_eq!(b.rewards, &[0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(b.rewards.parts().count(), 2);
        let mut wrong = actions.clone();
        wrong[4] = Action::Continuous(vec![2.0]);
        assert!(
            envs.step(&wrong)
                .unwrap_err()
                .to_string()
                .contains("copy 4")
        );
    }

    #[test]
    fn a_feed_is_told_each_copys_call_before_the_copies_run() {
        struct Recorder(Arc<Mutex<Vec<Vec<CopyCall>>>>);
        impl Feed for Recorder {
            fn fetch(&mut self, calls: &[CopyCall]) -> Result<()> {
                self.0.lock().unwrap().push(calls.to_vec());
                Ok(())
            }
        }
        let told = Arc::new(Mutex::new(Vec::new()));
        let mut envs = ramps(2)
            .fed_by(Box::new(Recorder(Arc::clone(&told))))
            .unwrap()
            .with_threads(2)
            .unwrap();
        assert!(
            envs.is_fed() && envs.threads() == 1,
            "a fed vector stays on one thread"
        );
        envs.seed_next_reset(1, 77);
        envs.reset(Some(10)).unwrap();
        let mut expected = vec![vec![CopyCall::Reset(Some(10)), CopyCall::Reset(Some(77))]];
        let go = vec![Action::Discrete(1), Action::Discrete(0)];
        let mut ended = [false, false];
        for round in 0..8 {
            // Copy 0's resets after the first take seed 3 once; the rest
            // continue the copies' streams.
            if round == 1 {
                envs.seed_next_reset(0, 3);
            }
            let seeded = round >= 1
                && !told
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|c| c[0] == CopyCall::Reset(Some(3)));
            expected.push(
                (0..2)
                    .map(|i| match ended[i] {
                        true => CopyCall::Reset(Some(3).filter(|_| i == 0 && seeded)),
                        false => CopyCall::Step(go[i].clone()),
                    })
                    .collect(),
            );
            let batch = envs.step(&go).unwrap();
            ended = [0, 1].map(|i| batch.terminated[i] || batch.truncated[i]);
        }
        let told = told.lock().unwrap();
        for call in [CopyCall::Reset(Some(3)), CopyCall::Reset(None)] {
            assert!(
                told.iter().flatten().any(|c| *c == call),
                "{call:?} in {told:?}"
            );
        }
        assert_eq!(*told, expected);
    }

    #[test]
    fn next_step_autoreset() {
        let go = vec![Action::Discrete(1); 2];
        let mut envs = ramps(2);
        let b = envs.reset(Some(10)).unwrap();
        // Seeds 10 and 11: offsets 0 and 1.
        assert_eq!(u8s(&b.observations[0]), [0, 200]);
        assert_eq!(u8s(&b.observations[1]), [1, 201]);

        // Copy 0 ends its one-step episode: the final observation is
        // returned as the observation and in info.
        let b = envs.step(&go).unwrap();
        assert_eq!(
            (b.terminated[0], b.truncated[0], b.rewards[0]),
            (true, false, 1.0)
        );
        assert_eq!(u8s(&b.observations[0]), [10, 190]);
        assert_eq!(
            b.infos[0].final_observation.as_deref(),
            Some(&b.observations[0])
        );
        assert!(!b.terminated[1] && b.infos[1].final_observation.is_none());
        assert_eq!(b.autoreset, &[false, false]);

        // Next call: copy 0 resets (action ignored, reward 0, no flags),
        // copy 1 ends its episode.
        let b = envs.step(&go).unwrap();
        assert_eq!(b.autoreset, &[true, false]);
        assert_eq!(
            (b.terminated[0], b.truncated[0], b.rewards[0]),
            (false, false, 0.0)
        );
        assert_eq!(
            u8s(&b.observations[0]),
            [0, 200],
            "the reset keeps copy 0's stream"
        );
        assert!(b.infos[0].final_observation.is_none());
        assert!(b.terminated[1]);
        assert_eq!(u8s(&b.observations[1]), [21, 181]);

        // Then copy 0 steps again, copy 1 resets.
        let b = envs.step(&go).unwrap();
        assert_eq!(b.autoreset, &[false, true]);
        assert!(b.terminated[0]);
        assert_eq!(u8s(&b.observations[1]), [1, 201]);
    }

    #[test]
    fn autoreset_ignores_the_action_and_truncation_counts_too() {
        let mut envs = VectorEnv::new(1, |_| {
            Ok(Box::new(crate::wrappers::TimeLimit::new(Ramp::new(100), 2)) as Box<dyn Env>)
        })
        .unwrap();
        envs.reset(Some(0)).unwrap();
        envs.step(&[Action::Discrete(1)]).unwrap();
        let b = envs.step(&[Action::Discrete(1)]).unwrap();
        assert!(b.truncated[0] && !b.terminated[0]);
        assert!(b.infos[0].final_observation.is_some());
        // Even an invalid action is ignored on a resetting call.
        let b = envs.step(&[Action::Discrete(9)]).unwrap();
        assert!(b.autoreset[0]);
        assert!(envs.step(&[Action::Discrete(9)]).is_err());
    }

    #[test]
    fn copies_are_seeded_seed_plus_index() {
        let mut envs = VectorEnv::new(4, |_| Ok(Box::new(Walk::new()) as Box<dyn Env>)).unwrap();
        let b = envs.reset(Some(100)).unwrap();
        for i in 0..4 {
            let (alone, _) = Walk::new().reset(Some(100 + i as u64)).unwrap();
            assert_eq!(b.observations[i], alone);
        }
    }

    #[test]
    fn threads_do_not_change_the_results() {
        let play = |threads: usize| {
            let mut envs = VectorEnv::new(7, |_| Ok(Box::new(Walk::new()) as Box<dyn Env>))
                .unwrap()
                .with_threads(threads)
                .unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            let mut log = Vec::new();
            let b = envs.reset(Some(1)).unwrap();
            log.push(format!("{:?}", b.observations));
            for _ in 0..300 {
                let actions: Vec<Action> = (0..7)
                    .map(|_| Action::Discrete(rng.random_range(0..3)))
                    .collect();
                let b = envs.step(&actions).unwrap();
                log.push(format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?}",
                    b.observations, b.rewards, b.terminated, b.truncated, b.autoreset, b.infos
                ));
            }
            (envs.threads(), log)
        };
        let (t1, one) = play(1);
        let (t3, three) = play(3);
        assert_eq!((t1, t3), (1, 3));
        assert_eq!(one, three);
        assert!(
            one.iter().any(|l| l.contains("true")),
            "episodes end in 300 steps"
        );
    }

    /// Calls so short that the caller often runs a worker's job itself
    /// before the worker wakes: every result must still come back, in
    /// order, whoever ran it.
    #[test]
    fn the_caller_can_take_back_a_job_the_worker_has_not_started() {
        let mut threaded = ramps(3).with_threads(3).unwrap();
        let mut alone = ramps(3);
        threaded.reset(Some(0)).unwrap();
        alone.reset(Some(0)).unwrap();
        let go = vec![Action::Discrete(1); 3];
        for _ in 0..20_000 {
            let a = format!("{:?}", threaded.step(&go).unwrap());
            let b = format!("{:?}", alone.step(&go).unwrap());
            assert_eq!(a, b);
        }
    }

    #[test]
    fn bad_batches_are_errors_not_hangs() {
        for threads in [1, 2] {
            let mut envs = ramps(3).with_threads(threads).unwrap();
            assert!(matches!(
                envs.step(&vec![Action::Discrete(1); 3]),
                Err(Error::ResetNeeded)
            ));
            envs.reset(Some(0)).unwrap();
            for n in [0, 2, 4] {
                let err = envs.step(&vec![Action::Discrete(1); n]).err().unwrap();
                assert!(
                    matches!(err, Error::BatchSize { expected: 3, got } if got == n),
                    "{err}"
                );
            }
            // An invalid action moves no copy.
            let before: Vec<Observation> = envs.reset(Some(0)).unwrap().observations.to_vec();
            let err = envs
                .step(&[
                    Action::Discrete(1),
                    Action::Discrete(7),
                    Action::Discrete(1),
                ])
                .err()
                .unwrap();
            assert!(err.to_string().contains("copy 1"), "{err}");
            let b = envs.step(&vec![Action::Discrete(0); 3]).unwrap();
            assert_eq!(b.observations, before.as_slice());
        }
        assert!(VectorEnv::new(0, |_| Ok(Box::new(Walk::new()) as Box<dyn Env>)).is_err());
        let mixed = VectorEnv::new(2, |i| {
            Ok(if i == 0 {
                Box::new(Walk::new()) as Box<dyn Env>
            } else {
                Box::new(Ramp::new(1))
            })
        });
        assert!(mixed.is_err());
    }

    #[test]
    fn a_panicking_copy_on_a_worker_panics_the_caller_instead_of_hanging() {
        let mut envs = VectorEnv::new(2, |i| {
            let mut ramp = Ramp::new(100);
            ramp.panic_on_step = i == 1;
            Ok(Box::new(ramp) as Box<dyn Env>)
        })
        .unwrap()
        .with_threads(2)
        .unwrap();
        envs.reset(Some(0)).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = envs.step(&[Action::Discrete(1), Action::Discrete(1)]);
        }));
        let message = caught.expect_err("the worker's panic reaches the caller");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"boom"));
    }

    #[test]
    fn threads_can_change_between_calls() {
        let go = vec![Action::Discrete(1); 3];
        let mut envs = ramps(3);
        envs.reset(Some(0)).unwrap();
        envs.step(&go).unwrap();
        let mut envs = envs.with_threads(3).unwrap();
        assert_eq!(envs.threads(), 3);
        let b = envs.step(&go).unwrap();
        // Copy 0 (one-step episodes) resets now; copy 1 ends its second step.
        assert_eq!(b.autoreset, &[true, false, false]);
        assert!(b.terminated[1]);
        assert_eq!(u8s(&b.observations[2]), [22, 182]);
    }
}
