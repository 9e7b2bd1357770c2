//! An on-policy rollout: the transitions of every env copy (lane) since
//! the last update, in the order the loop handed them over, and the
//! advantages computed from them.
//!
//! The loop steps its copies with Gymnasium's next-step autoreset, so a
//! lane's transitions are consecutive steps of its episodes, and a lane
//! that ended an episode sits out one step. A transition's successor in its
//! lane is the next step of the same episode unless the transition ended
//! it. The value to bootstrap from after a transition is therefore:
//!
//! - 0 after a termination: the terminal state is worth nothing;
//! - `V(s′)` of the **true final observation** after a truncation: the time
//!   limit cut an episode whose future still counts;
//! - `V(s′)` of the lane's newest observation after its last transition,
//!   when that did not end the episode;
//! - otherwise the value the next transition of the lane stored when its
//!   action was chosen (the same state, evaluated by the same network).
//!
//! The second and third need a forward pass the acting did not make; their
//! observations are kept in [`Rollout::bootstrap`] until the update.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One stored transition's scalars.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The copy it happened in.
    pub lane: usize,
    /// The action's index.
    pub action: usize,
    /// `log π_old(a|s)` when the action was chosen.
    pub log_prob: f32,
    /// `V_old(s)` when the action was chosen.
    pub value: f32,
    /// The reward.
    pub reward: f32,
    /// A terminal state was reached.
    pub terminated: bool,
    /// The episode ended here (terminated or truncated).
    pub ended: bool,
}

/// The transitions since the last update.
#[derive(Clone, Debug, Default)]
pub struct Rollout {
    input_len: usize,
    /// Encoded observations, one row of `input_len` per transition.
    pub obs: Vec<f32>,
    /// The transitions' scalars.
    pub steps: Vec<Step>,
    /// Encoded observations to bootstrap from, one row per entry of
    /// `bootstrap_of`.
    pub bootstrap: Vec<f32>,
    /// For each bootstrap row, the transition whose next state it is.
    pub bootstrap_of: Vec<usize>,
    /// `A_t` per transition, once [`Rollout::advantages`] has run.
    pub advantages: Vec<f32>,
    /// The value targets `A_t + V_old(s_t)`.
    pub returns: Vec<f32>,
}

impl Rollout {
    /// An empty rollout of observations `input_len` values long, with room
    /// for `capacity` transitions.
    pub fn new(input_len: usize, capacity: usize) -> Self {
        Rollout {
            input_len,
            obs: Vec::with_capacity(capacity * input_len),
            steps: Vec::with_capacity(capacity),
            bootstrap: Vec::new(),
            bootstrap_of: Vec::new(),
            advantages: Vec::with_capacity(capacity),
            returns: Vec::with_capacity(capacity),
        }
    }

    /// Transitions stored.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Stores a transition from its encoded observation.
    pub fn push(&mut self, obs: &[f32], step: Step) {
        debug_assert_eq!(obs.len(), self.input_len);
        self.obs.extend_from_slice(obs);
        self.steps.push(step);
    }

    /// Row `i`'s encoded observation.
    pub fn obs(&self, i: usize) -> &[f32] {
        &self.obs[i * self.input_len..(i + 1) * self.input_len]
    }

    /// Marks transition `index` as bootstrapping from `V(s′)` of an
    /// observation that `encode` writes into a new bootstrap row.
    pub fn bootstrap_for<E>(
        &mut self,
        index: usize,
        encode: impl FnOnce(&mut [f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let at = self.bootstrap.len();
        self.bootstrap.resize(at + self.input_len, 0.0);
        encode(&mut self.bootstrap[at..])?;
        self.bootstrap_of.push(index);
        Ok(())
    }

    /// Bootstrap row `i`.
    pub fn bootstrap_row(&self, i: usize) -> &[f32] {
        &self.bootstrap[i * self.input_len..(i + 1) * self.input_len]
    }

    /// Generalised advantage estimation (Schulman et al. 2016), per lane:
    ///
    /// δ_t = r_t + γ V(s_{t+1}) − V(s_t), with V(s_{t+1}) as the module
    /// docs say; A_t = δ_t + γλ A_{t+1} within an episode, A_t = δ_t at its
    /// last stored step. `bootstrap_values[k]` is `V` of bootstrap row `k`.
    /// λ = 1 gives the Monte Carlo advantage, λ = 0 the one-step TD error.
    pub fn advantages(&mut self, gamma: f32, lambda: f32, bootstrap_values: &[f32], lanes: usize) {
        let n = self.steps.len();
        let mut next_value = vec![f32::NAN; n];
        for (&t, &v) in self.bootstrap_of.iter().zip(bootstrap_values) {
            next_value[t] = v;
        }
        self.advantages.clear();
        self.advantages.resize(n, 0.0);
        self.returns.clear();
        self.returns.resize(n, 0.0);
        // The lane's transition after t, walking backwards.
        let mut later: Vec<Option<usize>> = vec![None; lanes];
        for t in (0..n).rev() {
            let step = self.steps[t];
            let next = later[step.lane].filter(|_| !step.ended);
            let bootstrap = if step.terminated {
                0.0
            } else {
                match next {
                    Some(next) => self.steps[next].value,
                    None => next_value[t],
                }
            };
            let delta = step.reward + gamma * bootstrap - step.value;
            let carried = next.map_or(0.0, |next| gamma * lambda * self.advantages[next]);
            self.advantages[t] = delta + carried;
            self.returns[t] = self.advantages[t] + step.value;
            later[step.lane] = Some(t);
        }
    }

    /// Moves the steps of episodes still running to `unfinished` (which
    /// must be empty), keeping here only whole episodes, in order: a Monte
    /// Carlo update needs each episode's every reward. A lane's steps after
    /// its last episode end are its running episode's.
    pub fn split_off_unfinished(&mut self, lanes: usize, unfinished: &mut Rollout) {
        debug_assert!(unfinished.is_empty());
        let mut last_end: Vec<Option<usize>> = vec![None; lanes];
        for (t, step) in self.steps.iter().enumerate() {
            if step.ended {
                last_end[step.lane] = Some(t);
            }
        }
        let finished = |t: usize, step: &Step| last_end[step.lane].is_some_and(|end| t <= end);
        // Where each kept step lands, for the bootstrap rows (which only
        // ended, so kept, steps have).
        let len = self.input_len;
        let mut kept = 0;
        let mut new_index = vec![usize::MAX; self.steps.len()];
        for (t, landing) in new_index.iter_mut().enumerate() {
            let step = self.steps[t];
            if finished(t, &step) {
                *landing = kept;
                if kept != t {
                    self.steps[kept] = step;
                    self.obs.copy_within(t * len..(t + 1) * len, kept * len);
                }
                kept += 1;
            } else {
                unfinished.push(&self.obs[t * len..(t + 1) * len], step);
            }
        }
        self.steps.truncate(kept);
        self.obs.truncate(kept * self.input_len);
        for t in &mut self.bootstrap_of {
            *t = new_index[*t];
        }
    }

    /// Appends every step of `other` (which holds no bootstrap rows) and
    /// empties it.
    pub fn append(&mut self, other: &mut Rollout) {
        debug_assert!(other.bootstrap_of.is_empty());
        self.obs.append(&mut other.obs);
        self.steps.append(&mut other.steps);
        other.clear();
    }

    /// The stored transitions, for a checkpoint: a resumed run then learns
    /// from the same rollout as the uninterrupted one.
    pub fn save(&self) -> RolloutState {
        RolloutState {
            obs: encode_floats(&self.obs),
            steps: self.steps.clone(),
            bootstrap: encode_floats(&self.bootstrap),
            bootstrap_of: self.bootstrap_of.clone(),
        }
    }

    /// Restores what [`Rollout::save`] wrote, checking it against this
    /// rollout's shapes: `actions` actions and `lanes` env copies.
    pub fn load(
        &mut self,
        state: &RolloutState,
        actions: usize,
        lanes: usize,
    ) -> Result<(), String> {
        let obs = decode_floats("rollout observations", &state.obs)?;
        let bootstrap = decode_floats("rollout bootstrap observations", &state.bootstrap)?;
        let n = state.steps.len();
        if obs.len() != n * self.input_len
            || bootstrap.len() != state.bootstrap_of.len() * self.input_len
        {
            return Err(format!(
                "rollout: {} and {} values for {n} steps and {} bootstraps of {} each",
                obs.len(),
                bootstrap.len(),
                state.bootstrap_of.len(),
                self.input_len
            ));
        }
        if let Some(bad) = state
            .steps
            .iter()
            .find(|s| s.action >= actions || s.lane >= lanes)
        {
            return Err(format!(
                "rollout: a step of lane {} with action {}, for {lanes} lanes and {actions} actions",
                bad.lane, bad.action
            ));
        }
        if state.bootstrap_of.iter().any(|&t| t >= n) {
            return Err("rollout: a bootstrap of a step it does not hold".into());
        }
        self.obs = obs;
        self.steps.clone_from(&state.steps);
        self.bootstrap = bootstrap;
        self.bootstrap_of.clone_from(&state.bootstrap_of);
        self.advantages.clear();
        self.returns.clear();
        Ok(())
    }

    /// Forgets every transition, keeping the buffers.
    pub fn clear(&mut self) {
        self.obs.clear();
        self.steps.clear();
        self.bootstrap.clear();
        self.bootstrap_of.clear();
        self.advantages.clear();
        self.returns.clear();
    }
}

/// Little-endian `f32` values as base64 text, for a checkpoint.
pub(crate) fn encode_floats(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The values [`encode_floats`] wrote; errors name `what`.
pub(crate) fn decode_floats(what: &str, text: &str) -> Result<Vec<f32>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("{what}: not base64: {e}"))?;
    if bytes.len() % 4 != 0 {
        return Err(format!("{what}: not whole f32 values"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A rollout in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutState {
    /// The encoded observations, little-endian `f32`, base64.
    pub obs: String,
    /// The steps' scalars.
    pub steps: Vec<Step>,
    /// The bootstrap observations, as `obs`.
    pub bootstrap: String,
    /// The step each bootstrap row belongs to.
    pub bootstrap_of: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(lane: usize, reward: f32, value: f32, terminated: bool, ended: bool) -> Step {
        Step {
            lane,
            action: 0,
            log_prob: 0.0,
            value,
            reward,
            terminated,
            ended,
        }
    }

    /// Two lanes interleaved: lane 0 terminates after two steps and starts
    /// again; lane 1 is truncated, then its rollout ends mid-episode.
    #[test]
    fn advantages_follow_each_lane_and_each_end() {
        let (g, l) = (0.9f32, 0.5f32);
        let mut r = Rollout::new(1, 8);
        r.push(&[0.0], step(0, 1.0, 0.5, false, false)); // 0
        r.push(&[0.0], step(1, 2.0, 1.0, false, false)); // 1
        r.push(&[0.0], step(0, 3.0, 0.25, true, true)); // 2: terminal
        r.push(&[0.0], step(1, 4.0, 2.0, false, true)); // 3: truncated
        let write = |v: f32| {
            move |row: &mut [f32]| -> Result<(), ()> {
                row[0] = v;
                Ok(())
            }
        };
        r.bootstrap_for(3, write(7.0)).unwrap();
        r.push(&[0.0], step(0, 5.0, 0.75, false, false)); // 4: new episode, last
        r.bootstrap_for(4, write(8.0)).unwrap();
        // V of the true final observation of 3 is 10; lane 0's newest is 20.
        r.advantages(g, l, &[10.0, 20.0], 2);
        let a = &r.advantages;
        let d4 = 5.0 + g * 20.0 - 0.75;
        let d3 = 4.0 + g * 10.0 - 2.0;
        let d2 = 3.0 - 0.25;
        let d1 = 2.0 + g * 2.0 - 1.0;
        let d0 = 1.0 + g * 0.25 - 0.5;
        let want = [d0 + g * l * d2, d1 + g * l * d3, d2, d3, d4];
        for (got, want) in a.iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{a:?} vs {want:?}");
        }
        assert!((r.returns[4] - (d4 + 0.75)).abs() < 1e-5);
        assert_eq!(r.bootstrap_row(0), &[7.0]);
    }

    /// Lane 0 ends an episode (truncated, with its final observation) and
    /// starts another; lane 1's episode runs on: only lane 0's ended
    /// episode stays, in order, with its bootstrap row; the rest moves out
    /// and comes back after.
    #[test]
    fn split_keeps_whole_episodes_and_their_bootstraps() {
        let mut r = Rollout::new(1, 8);
        r.push(&[1.0], step(1, 0.0, 0.0, false, false)); // lane 1 runs on
        r.push(&[2.0], step(0, 0.0, 0.0, false, false));
        r.push(&[3.0], step(0, 0.0, 0.0, false, true)); // truncated
        r.bootstrap_for(2, |row: &mut [f32]| -> Result<(), ()> {
            row[0] = 9.0;
            Ok(())
        })
        .unwrap();
        r.push(&[4.0], step(1, 0.0, 0.0, false, false));
        r.push(&[5.0], step(0, 0.0, 0.0, false, false)); // lane 0's next episode
        let mut rest = Rollout::new(1, 0);
        r.split_off_unfinished(2, &mut rest);
        assert_eq!(r.obs, [2.0, 3.0]);
        assert_eq!(r.bootstrap_of, [1]);
        assert_eq!(r.bootstrap_row(0), &[9.0]);
        assert_eq!(rest.obs, [1.0, 4.0, 5.0]);
        assert_eq!(
            rest.steps.iter().map(|s| s.lane).collect::<Vec<_>>(),
            [1, 1, 0]
        );
        r.clear();
        r.append(&mut rest);
        assert_eq!((r.obs.len(), rest.len()), (3, 0));
    }
}
