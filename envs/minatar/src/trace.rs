//! Reference traces recorded from the Python `minatar` package, and their
//! replay.
//!
//! `tests/reference/make_traces.py` plays MinAtar 1.0.15 with random
//! actions and writes one JSON file per game and seed. A trace stores, for
//! each step, the CRC-32 of the frame after the step, plus the rewards,
//! the terminal steps and the CRC-32 of each reset frame. Frames are hashed
//! as MinAtar's `state()` transposed to our channel-first `[C, 10, 10]`
//! layout, one byte (0 or 1) per cell.
//!
//! The environment is reset (without a seed, continuing the stream) after
//! each terminal step, as an agent would.

use crate::Game;
use crate::numpy_rng::RandomState;
use rl_env::{Action, Env, Observation};
use serde::{Deserialize, Serialize};

/// One recorded run of one game.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// Version of the `minatar` package that produced it.
    pub minatar_version: String,
    /// MinAtar's game name, e.g. `space_invaders`.
    pub game: String,
    /// `Environment.seed(seed)` before the first reset.
    pub seed: u32,
    /// Actions are `np.random.RandomState(action_seed).randint(6)`, one per step.
    pub action_seed: u32,
    /// MinAtar's `sticky_action_prob`.
    pub sticky_action_prob: f64,
    /// MinAtar's `difficulty_ramping`.
    pub difficulty_ramping: bool,
    /// `uniform` (each action is `randint(6)` from the action stream) or
    /// `scripted` (a game-aware policy in the script; the actions are
    /// taken from `actions` and the stream is not checked).
    #[serde(default = "uniform")]
    pub policy: String,
    /// Number of steps.
    pub steps: usize,
    /// The actions taken, one digit per step (MinAtar's full action set).
    pub actions: String,
    /// CRC-32 of the frame after each step, 8 hex digits per step.
    pub frames: String,
    /// CRC-32 of each reset frame: the first reset, then one after each
    /// terminal step.
    pub resets: String,
    /// `[step, reward]` for every step with a non-zero reward.
    pub rewards: Vec<(usize, u32)>,
    /// Steps whose `terminal` flag was true.
    pub terminals: Vec<usize>,
}

fn uniform() -> String {
    "uniform".into()
}

/// What a successful replay covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Steps compared.
    pub steps: usize,
    /// Episodes that ended.
    pub episodes: usize,
    /// Sum of rewards.
    pub total_reward: u64,
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn frame_crc(obs: &Observation) -> u32 {
    match obs {
        Observation::U8(a) => crc32(a.as_slice().expect("observations are contiguous")),
        _ => unreachable!("MinAtar observations are u8 planes"),
    }
}

fn hex_at(s: &str, i: usize) -> Option<u32> {
    s.get(i * 8..i * 8 + 8)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
}

/// Replays `trace` through our environment (built from the registry's
/// config path) and reports the first difference, if any.
pub fn replay(trace: &Trace) -> Result<Replayed, String> {
    let game: Game = trace.game.parse().map_err(|e| format!("{e}"))?;
    let config = serde_json::json!({
        "sticky_action_prob": trace.sticky_action_prob,
        "difficulty_ramping": trace.difficulty_ramping,
    });
    let mut env = crate::make(game, &config).map_err(|e| e.to_string())?;
    let name = format!("{} seed {}", trace.game, trace.seed);
    let mut actions = RandomState::new(trace.action_seed);
    let mut rewards = trace.rewards.iter().peekable();
    let mut terminals = trace.terminals.iter().peekable();
    let mut obs = env.observation_space().zeros();
    env.reset_into(Some(u64::from(trace.seed)), &mut obs)
        .map_err(|e| e.to_string())?;
    let mut resets = 0;
    let check_reset = |obs: &Observation, resets: usize, step: usize| {
        let want = hex_at(&trace.resets, resets)
            .ok_or_else(|| format!("{name}: trace has no reset frame #{resets}"))?;
        let got = frame_crc(obs);
        if got != want {
            return Err(format!(
                "{name}: reset frame #{resets} (after step {step}) differs: crc {got:08x}, MinAtar {want:08x}"
            ));
        }
        Ok(())
    };
    check_reset(&obs, 0, 0)?;
    resets += 1;
    let mut total_reward = 0u64;
    let digits = trace.actions.as_bytes();
    if digits.len() != trace.steps {
        return Err(format!(
            "{name}: {} actions for {} steps",
            digits.len(),
            trace.steps
        ));
    }
    for (t, &digit) in digits.iter().enumerate() {
        let step = t + 1;
        let action = i64::from(digit) - i64::from(b'0');
        let ours = actions.randint(0, 6);
        if trace.policy == "uniform" && action != ours {
            return Err(format!(
                "{name}: step {step}: trace action {action}, our action stream {ours}"
            ));
        }
        let out = env
            .step_into(&Action::Discrete(action), &mut obs)
            .map_err(|e| format!("{name}: step {step}: {e}"))?;
        let got = frame_crc(&obs);
        let want = hex_at(&trace.frames, t).ok_or_else(|| format!("{name}: no frame {step}"))?;
        if got != want {
            return Err(format!(
                "{name}: step {step} (action {action}): frame crc {got:08x}, MinAtar {want:08x}"
            ));
        }
        let want_reward = match rewards.peek() {
            Some(&&(s, r)) if s == step => {
                rewards.next();
                r
            }
            _ => 0,
        };
        if out.reward != f64::from(want_reward) {
            return Err(format!(
                "{name}: step {step}: reward {}, MinAtar {want_reward}",
                out.reward
            ));
        }
        total_reward += u64::from(want_reward);
        let want_terminal = terminals.peek() == Some(&&step);
        if want_terminal {
            terminals.next();
        }
        if out.terminated != want_terminal {
            return Err(format!(
                "{name}: step {step}: terminated {}, MinAtar {want_terminal}",
                out.terminated
            ));
        }
        if out.terminated {
            env.reset_into(None, &mut obs).map_err(|e| e.to_string())?;
            check_reset(&obs, resets, step)?;
            resets += 1;
        }
    }
    Ok(Replayed {
        steps: trace.steps,
        episodes: trace.terminals.len(),
        total_reward,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        // zlib.crc32(b"123456789") == 0xcbf43926, the standard check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
