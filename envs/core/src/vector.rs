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
//! resets pass no seed, so each copy continues its own stream. The same
//! seed and actions give the same batches whatever the thread count.
//!
//! # Threads
//!
//! With [`VectorEnv::with_threads`] the copies are split into contiguous
//! shards, one per thread. The caller's thread steps the first shard; each
//! other shard is handed to its own persistent worker thread for the call
//! and handed back (by channel, so no locks are held while stepping), and
//! its results are copied into the batch. A hand-off costs a thread
//! wake-up, a few microseconds, so threads pay off when a shard's work is
//! larger than that: hundreds of fast copies, or slow environments.

use crate::wrappers::buffers::copy_into;
use crate::{Action, Env, Error, Info, Observation, Result, Space};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

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
    /// `shards[0]` is stepped on the caller's thread, `shards[k + 1]` by
    /// `workers[k]`. A shard is `None` only while a worker holds it.
    shards: Vec<Option<Box<Shard>>>,
    workers: Vec<Worker>,
    /// The whole batch, gathered from the shards when there are several.
    gathered: Columns,
    started: bool,
    observation_space: Space,
    action_space: Space,
}

/// The result of a batch call, borrowed from the [`VectorEnv`]; index `i`
/// is copy `i`.
#[derive(Debug)]
pub struct Batch<'a> {
    /// Observation after the call (the final one where an episode ended).
    pub observations: &'a [Observation],
    /// Rewards (0 for copies that reset in this call).
    pub rewards: &'a [f64],
    /// A terminal state was reached.
    pub terminated: &'a [bool],
    /// The episode was cut short.
    pub truncated: &'a [bool],
    /// The copy reset in this call instead of stepping; skip its transition.
    pub autoreset: &'a [bool],
    /// Per-copy info; `final_observation` is set where an episode ended.
    pub infos: &'a [Info],
}

/// What a batch call returns, one entry per copy.
#[derive(Default)]
struct Columns {
    observations: Vec<Observation>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    autoreset: Vec<bool>,
    infos: Vec<Info>,
}

impl Columns {
    fn batch(&self) -> Batch<'_> {
        Batch {
            observations: &self.observations,
            rewards: &self.rewards,
            terminated: &self.terminated,
            truncated: &self.truncated,
            autoreset: &self.autoreset,
            infos: &self.infos,
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

/// A contiguous range of copies with their results, moved between threads.
struct Shard {
    /// Index of the first copy.
    offset: usize,
    envs: Vec<Box<dyn Env>>,
    out: Columns,
    /// Copies whose episode ended on the last call: they reset on the next.
    pending: Vec<bool>,
    /// This call's actions, copied in by the caller.
    actions: Vec<Action>,
}

#[derive(Clone, Copy)]
enum Job {
    Reset(Option<u64>),
    Step,
}

impl Shard {
    fn run(&mut self, job: Job) -> Result<()> {
        match job {
            Job::Reset(seed) => self.reset(seed),
            Job::Step => self.step(),
        }
    }

    /// Resets every copy; copy `offset + j` gets `seed + offset + j`.
    fn reset(&mut self, seed: Option<u64>) -> Result<()> {
        let out = &mut self.out;
        for (j, env) in self.envs.iter_mut().enumerate() {
            let seed = seed.map(|s| s.wrapping_add((self.offset + j) as u64));
            out.infos[j] = env.reset_into(seed, &mut out.observations[j])?;
            out.rewards[j] = 0.0;
            out.terminated[j] = false;
            out.truncated[j] = false;
            out.autoreset[j] = false;
            self.pending[j] = false;
        }
        Ok(())
    }

    /// Steps every copy with its action, or resets the ones pending.
    fn step(&mut self) -> Result<()> {
        let out = &mut self.out;
        for (j, env) in self.envs.iter_mut().enumerate() {
            let obs = &mut out.observations[j];
            if self.pending[j] {
                out.infos[j] = env.reset_into(None, obs)?;
                out.rewards[j] = 0.0;
                out.terminated[j] = false;
                out.truncated[j] = false;
                out.autoreset[j] = true;
                self.pending[j] = false;
            } else {
                let step = env.step_into(&self.actions[j], obs)?;
                out.rewards[j] = step.reward;
                out.terminated[j] = step.terminated;
                out.truncated[j] = step.truncated;
                out.autoreset[j] = false;
                out.infos[j] = step.info;
                if step.terminated || step.truncated {
                    self.pending[j] = true;
                    out.infos[j].final_observation = Some(Box::new(obs.clone()));
                }
            }
        }
        Ok(())
    }

    fn split_off(&mut self, at: usize) -> Shard {
        Shard {
            offset: self.offset + at,
            envs: self.envs.split_off(at),
            out: self.out.split_off(at),
            pending: self.pending.split_off(at),
            actions: self.actions.split_off(at),
        }
    }

    fn append(&mut self, mut other: Shard) {
        self.envs.append(&mut other.envs);
        self.out.append(&mut other.out);
        self.pending.append(&mut other.pending);
        self.actions.append(&mut other.actions);
    }
}

/// A persistent thread that runs jobs on the shards it is handed.
struct Worker {
    jobs: Option<Sender<(Box<Shard>, Job)>>,
    done: Receiver<(Box<Shard>, Result<()>)>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(index: usize) -> Result<Worker> {
        let (jobs, inbox) = channel::<(Box<Shard>, Job)>();
        let (outbox, done) = channel();
        let handle = std::thread::Builder::new()
            .name(format!("vector-env-{index}"))
            .spawn(move || {
                while let Ok((mut shard, job)) = inbox.recv() {
                    let result = shard.run(job);
                    if outbox.send((shard, result)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::config("threads", format!("cannot start a thread: {e}")))?;
        Ok(Worker {
            jobs: Some(jobs),
            done,
            handle: Some(handle),
        })
    }

    /// The shard back, or the worker's panic re-raised here.
    fn collect(&mut self) -> (Box<Shard>, Result<()>) {
        match self.done.recv() {
            Ok(back) => back,
            Err(_) => {
                let handle = self.handle.take().expect("a worker is joined once");
                match handle.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(()) => panic!("a vector-env worker stopped without a panic"),
                }
            }
        }
    }
}

impl Drop for VectorEnv {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            // Closing the job channel ends the worker's loop.
            worker.jobs = None;
        }
        for worker in &mut self.workers {
            if let Some(handle) = worker.handle.take() {
                // A worker's panic was already re-raised by `collect`.
                let _ = handle.join();
            }
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
        let shard = Shard {
            offset: 0,
            envs,
            out,
            pending: vec![false; n],
            actions: vec![Action::Discrete(0); n],
        };
        Ok(VectorEnv {
            shards: vec![Some(Box::new(shard))],
            workers: Vec::new(),
            gathered: Columns::default(),
            started: false,
            observation_space,
            action_space,
        })
    }

    /// Spreads the copies over `threads` threads (at most one per copy;
    /// 0 means one per available core): the caller's and `threads − 1`
    /// persistent workers. The copies keep their state.
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let n = self.num_envs();
        let threads = threads.clamp(1, n);
        // Gather every copy into one shard, then cut it anew.
        let mut all = self.shards[0]
            .take()
            .expect("shards are home between calls");
        for slot in self.shards.drain(1..) {
            all.append(*slot.expect("shards are home between calls"));
        }
        for mut worker in self.workers.drain(..) {
            worker.jobs = None;
            if let Some(handle) = worker.handle.take() {
                let _ = handle.join();
            }
        }
        let chunk = n.div_ceil(threads);
        let mut shards = Vec::with_capacity(threads);
        let mut rest = *all;
        while rest.envs.len() > chunk {
            let tail = rest.split_off(chunk);
            shards.push(Some(Box::new(rest)));
            rest = tail;
        }
        shards.push(Some(Box::new(rest)));
        let shard_count = shards.len();
        self.shards = shards;
        for k in 1..shard_count {
            self.workers.push(Worker::spawn(k)?);
        }
        self.gathered = if shard_count > 1 {
            let home = self.shards[0].as_ref().expect("home");
            Columns {
                observations: vec![home.out.observations[0].clone(); n],
                rewards: vec![0.0; n],
                terminated: vec![false; n],
                truncated: vec![false; n],
                autoreset: vec![false; n],
                infos: vec![Info::default(); n],
            }
        } else {
            Columns::default()
        };
        if shard_count > 1 && self.started {
            self.gather();
        }
        Ok(self)
    }

    /// Number of copies.
    pub fn num_envs(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.envs.len()))
            .sum()
    }

    /// Threads used per batch call.
    pub fn threads(&self) -> usize {
        self.shards.len()
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
        self.shards.iter().flatten().find_map(|s| {
            i.checked_sub(s.offset)
                .and_then(|j| s.envs.get(j))
                .map(|e| e.as_ref())
        })
    }

    fn batch(&self) -> Batch<'_> {
        if self.shards.len() == 1 {
            self.shards[0].as_ref().expect("home").out.batch()
        } else {
            self.gathered.batch()
        }
    }

    /// Copies the shards' results into the batch.
    fn gather(&mut self) {
        let gathered = &mut self.gathered;
        for shard in self.shards.iter_mut().flatten() {
            let out = &mut shard.out;
            let at = shard.offset;
            for (j, obs) in out.observations.iter().enumerate() {
                copy_into(&mut gathered.observations[at + j], obs);
            }
            let len = out.rewards.len();
            gathered.rewards[at..at + len].copy_from_slice(&out.rewards);
            gathered.terminated[at..at + len].copy_from_slice(&out.terminated);
            gathered.truncated[at..at + len].copy_from_slice(&out.truncated);
            gathered.autoreset[at..at + len].copy_from_slice(&out.autoreset);
            for (j, info) in out.infos.iter_mut().enumerate() {
                // The shard's info is rewritten on its next call.
                std::mem::swap(&mut gathered.infos[at + j], info);
            }
        }
    }

    /// Runs `job` on every shard: the others on their workers, the first here.
    /// The first error, in copy order, wins.
    fn run(&mut self, job: Job) -> Result<()> {
        for (k, worker) in self.workers.iter().enumerate() {
            let shard = self.shards[k + 1]
                .take()
                .expect("shards are home between calls");
            let jobs = worker.jobs.as_ref().expect("open until drop");
            if let Err(returned) = jobs.send((shard, job)) {
                // The worker is gone (it panicked earlier): keep the shard.
                self.shards[k + 1] = Some(returned.0.0);
            }
        }
        let mut result = self.shards[0].as_mut().expect("home").run(job);
        for (k, worker) in self.workers.iter_mut().enumerate() {
            if self.shards[k + 1].is_some() {
                continue;
            }
            let (shard, r) = worker.collect();
            self.shards[k + 1] = Some(shard);
            if result.is_ok() {
                result = r;
            }
        }
        if self.shards.len() > 1 {
            self.gather();
        }
        result
    }

    /// Resets every copy, copy `i` with `seed + i`.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<Batch<'_>> {
        self.run(Job::Reset(seed))?;
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
        for shard in self.shards.iter_mut().flatten() {
            let mine = &actions[shard.offset..shard.offset + shard.envs.len()];
            for (j, action) in mine.iter().enumerate() {
                if !shard.pending[j] && !self.action_space.contains_action(action) {
                    return Err(Error::InvalidAction {
                        action: format!(
                            "{} (for copy {})",
                            match action {
                                Action::Discrete(a) => a.to_string(),
                                Action::Continuous(v) => format!("{v:?}"),
                            },
                            shard.offset + j
                        ),
                        space: self.action_space.to_string(),
                    });
                }
            }
        }
        for shard in self.shards.iter_mut().flatten() {
            let mine = &actions[shard.offset..shard.offset + shard.envs.len()];
            for (slot, action) in shard.actions.iter_mut().zip(mine) {
                slot.clone_from(action);
            }
        }
        let result = self.run(Job::Step);
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
