//! Small scripted environments for the wrapper and vector tests.

use crate::{Action, DType, Env, Frame, Info, Observation, Result, Space, StepOutcome};
use ndarray::ArrayD;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A `uint8` box `[2]` env whose frame after step `t` is `[10·t, 200 − 10·t]`
/// plus `offset` (so consecutive frames differ in opposite directions), with
/// reward `t` and termination after `length` steps. `reset(Some(seed))` sets
/// `offset = seed % 5`. Action 0 is a no-op that keeps `t`; action 1 advances.
pub struct Ramp {
    pub obs_space: Space,
    pub act_space: Space,
    pub t: u8,
    pub offset: u8,
    pub length: u8,
    pub resets: u32,
    pub actions_seen: Vec<i64>,
    /// Panics on every step (a bug inside an env).
    pub panic_on_step: bool,
}

impl Ramp {
    pub fn new(length: u8) -> Self {
        Ramp {
            obs_space: Space::uniform_box(0.0, 255.0, &[2], DType::U8),
            act_space: Space::discrete(2),
            t: 0,
            offset: 0,
            length,
            resets: 0,
            actions_seen: Vec::new(),
            panic_on_step: false,
        }
    }

    fn frame(&self) -> [u8; 2] {
        let ten_t = 10u8.wrapping_mul(self.t);
        [
            ten_t.wrapping_add(self.offset),
            200u8.wrapping_sub(ten_t).wrapping_add(self.offset),
        ]
    }

    fn write(&self, obs: &mut Observation) {
        let f = self.frame();
        match obs {
            Observation::U8(a) if a.len() == 2 => a.as_slice_mut().unwrap().copy_from_slice(&f),
            _ => *obs = Observation::U8(ArrayD::from_shape_vec(vec![2], f.to_vec()).unwrap()),
        }
    }
}

impl Env for Ramp {
    fn observation_space(&self) -> &Space {
        &self.obs_space
    }
    fn action_space(&self) -> &Space {
        &self.act_space
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        if let Some(s) = seed {
            self.offset = (s % 5) as u8;
        }
        self.t = 0;
        self.resets += 1;
        self.write(obs);
        Ok(Info::default())
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        assert!(!self.panic_on_step, "boom");
        let a = crate::discrete_action(&self.act_space, action)?;
        self.actions_seen.push(a as i64);
        if a == 1 {
            self.t = self.t.wrapping_add(1);
        }
        self.write(obs);
        Ok(StepOutcome::new(self.t as f64, self.t >= self.length))
    }
    fn render_text(&self) -> String {
        format!("{}", self.t)
    }
    fn render_rgb(&self) -> Frame {
        Frame::zeros((1, 1, 3))
    }
}

/// A seeded random walk on a `float64` box `[3]`: each episode lasts a random
/// 1..=6 steps, rewards are random. Used to check determinism and threading.
#[allow(dead_code)] // used by the vector tests
pub struct Walk {
    pub obs_space: Space,
    pub act_space: Space,
    rng: ChaCha8Rng,
    x: [f64; 3],
    left: u32,
}

#[allow(dead_code)]
impl Walk {
    pub fn new() -> Self {
        Walk {
            obs_space: Space::uniform_box(f64::NEG_INFINITY, f64::INFINITY, &[3], DType::F64),
            act_space: Space::discrete(3),
            rng: ChaCha8Rng::seed_from_u64(0),
            x: [0.0; 3],
            left: 0,
        }
    }
    fn write(&self, obs: &mut Observation) {
        *obs = Observation::F64(ArrayD::from_shape_vec(vec![3], self.x.to_vec()).unwrap());
    }
}

impl Env for Walk {
    fn observation_space(&self) -> &Space {
        &self.obs_space
    }
    fn action_space(&self) -> &Space {
        &self.act_space
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        if let Some(s) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(s);
        }
        self.x = [self.rng.random(), self.rng.random(), self.rng.random()];
        self.left = self.rng.random_range(1..=6);
        self.write(obs);
        Ok(Info::default())
    }
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        let a = crate::discrete_action(&self.act_space, action)?;
        self.x[a] += self.rng.random::<f64>() - 0.5;
        self.left -= 1;
        self.write(obs);
        let mut out = StepOutcome::new(self.x[a], self.left == 0 && a != 2);
        out.truncated = self.left == 0 && a == 2;
        Ok(out)
    }
    fn render_text(&self) -> String {
        String::new()
    }
    fn render_rgb(&self) -> Frame {
        Frame::zeros((1, 1, 3))
    }
}
