//! Acrobot: swing a two-link pendulum up (Sutton, 1996), as Gymnasium
//! 1.x's `AcrobotEnv`.
//!
//! **Rules.** Two 1 m, 1 kg links hang from a fixed pivot; only the joint
//! between them is driven. Each step applies a torque of −1, 0 or +1 N·m
//! (actions 0, 1, 2) for 0.2 s, integrated by one fourth-order Runge–Kutta
//! step. Angles wrap to [−π, π]; the angular velocities are clipped to
//! ±4π and ±9π rad/s. The equations are the book's (Sutton & Barto)
//! unless `book_or_nips` is `nips`.
//!
//! **Reward.** −1 per step, 0 on the step that reaches the goal.
//!
//! **End.** Terminated when the free end rises above the bar,
//! `−cos θ₁ − cos(θ₁ + θ₂) > 1`; truncated after 500 steps (`Acrobot-v1`).
//!
//! **Start.** θ₁, θ₂, θ̇₁, θ̇₂ uniform in [−0.1, 0.1) (one
//! `uniform(-0.1, 0.1, size=(4,))` from the seeded generator), rounded to
//! `float32` as Gymnasium rounds them. The torque noise Gymnasium could
//! draw at each step is off by default (`torque_noise_max = 0`), so steps
//! draw nothing.
//!
//! **Observation.** `[cos θ₁, sin θ₁, cos θ₂, sin θ₂, θ̇₁, θ̇₂]` as
//! `float32`. After a step the state is float64 (Runge–Kutta works in
//! float64) and the features are computed in float64, then rounded. At
//! reset the state is still the float32 array Gymnasium drew, so numpy
//! computes the first observation's cos and sin in single precision;
//! [`crate::numpy_f32`] reproduces those. [`SetState`] reads and writes
//! the underlying state `[θ₁, θ₂, θ̇₁, θ̇₂]`.

use crate::{SetState, draw, numpy_f32};
use rl_env::numpy_random::Generator;
use rl_env::{Action, Env, Error, Frame, Info, Observation, Result, Space, StepOutcome};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Integration time step, s.
const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_LENGTH_2: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
/// Positions of the links' centres of mass, m.
const LINK_COM_POS_1: f64 = 0.5;
const LINK_COM_POS_2: f64 = 0.5;
/// Moment of inertia of either link.
const LINK_MOI: f64 = 1.0;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];
const G: f64 = 9.8;
const INIT_BOUND: f64 = 0.1;

/// Which equations of motion to integrate.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dynamics {
    /// Sutton & Barto's book, which produced the published results (Gymnasium's default).
    #[default]
    Book,
    /// The NeurIPS 1995 paper's, which lack a term.
    Nips,
}

/// Acrobot's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcrobotConfig {
    /// Time limit, in env steps; default 500 (Gymnasium's `max_episode_steps`).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Equations of motion; default `book` (Gymnasium's `book_or_nips`).
    #[serde(default)]
    pub book_or_nips: Dynamics,
}

/// The acrobot, without its time limit.
pub struct Acrobot {
    dynamics: Dynamics,
    observation_space: Space,
    action_space: Space,
    rng: Generator,
    /// `[θ₁, θ₂, θ̇₁, θ̇₂]`.
    state: [f64; 4],
    started: bool,
}

impl Acrobot {
    /// An acrobot; `config.max_steps` is ignored here (the registry applies it).
    pub fn new(config: &AcrobotConfig) -> Self {
        let high = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2];
        Acrobot {
            dynamics: config.book_or_nips,
            observation_space: crate::symmetric_f32_box(&high),
            action_space: Space::discrete(3),
            rng: Generator::from_seed(0),
            state: [0.0; 4],
            started: false,
        }
    }

    /// The observation of a float64 state (after a step).
    fn write(&self, obs: &mut Observation) {
        let [t1, t2, d1, d2] = self.state;
        crate::write_f32(
            obs,
            &[t1.cos(), t1.sin(), t2.cos(), t2.sin(), d1, d2].map(|v| v as f32),
        );
    }

    /// The observation of the float32 start state, computed in single
    /// precision as numpy computes it.
    fn write_start(&self, obs: &mut Observation) {
        let [t1, t2, d1, d2] = self.state.map(|v| v as f32);
        crate::write_f32(
            obs,
            &[
                numpy_f32::cos(t1),
                numpy_f32::sin(t1),
                numpy_f32::cos(t2),
                numpy_f32::sin(t2),
                d1,
                d2,
            ],
        );
    }

    /// The time derivative of `[θ₁, θ₂, θ̇₁, θ̇₂]` under `torque`: Gymnasium's
    /// `_dsdt`, with its constants and its order of operations.
    fn derivatives(&self, s: [f64; 4], a: f64) -> [f64; 4] {
        let (m1, m2, l1) = (LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1);
        let (lc1, lc2) = (LINK_COM_POS_1, LINK_COM_POS_2);
        let (i1, i2) = (LINK_MOI, LINK_MOI);
        let [theta1, theta2, dtheta1, dtheta2] = s;
        let d1 =
            m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
        let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
        let phi2 = m2 * lc2 * G * (theta1 + theta2 - PI / 2.0).cos();
        let phi1 = -m2 * l1 * lc2 * (dtheta2 * dtheta2) * theta2.sin()
            - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
            + (m1 * lc1 + m2 * l1) * G * (theta1 - PI / 2.0).cos()
            + phi2;
        let ddtheta2 = match self.dynamics {
            Dynamics::Nips => {
                (a + d2 / d1 * phi1 - phi2) / (m2 * (lc2 * lc2) + i2 - (d2 * d2) / d1)
            }
            Dynamics::Book => {
                (a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * theta2.sin() - phi2)
                    / (m2 * (lc2 * lc2) + i2 - (d2 * d2) / d1)
            }
        };
        let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
        [dtheta1, dtheta2, ddtheta1, ddtheta2]
    }

    /// One classical Runge–Kutta step of length `DT`, as Gymnasium's `rk4`
    /// with `t = [0, dt]` (the torque rides along as a constant fifth state).
    fn rk4(&self, y0: [f64; 4], torque: f64) -> [f64; 4] {
        let dt = DT - 0.0;
        let dt2 = dt / 2.0;
        let shifted = |k: [f64; 4], h: f64| std::array::from_fn(|i| y0[i] + h * k[i]);
        let k1 = self.derivatives(y0, torque);
        let k2 = self.derivatives(shifted(k1, dt2), torque);
        let k3 = self.derivatives(shifted(k2, dt2), torque);
        let k4 = self.derivatives(shifted(k3, dt), torque);
        // y₁ = y₀ + dt/6 · (k₁ + 2k₂ + 2k₃ + k₄)
        std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
    }

    fn terminal(&self) -> bool {
        let [t1, t2, _, _] = self.state;
        -t1.cos() - (t2 + t1).cos() > 1.0
    }
}

/// Wraps `x` into `[lo, hi]` by whole turns, as Gymnasium's `wrap`.
fn wrap(mut x: f64, lo: f64, hi: f64) -> f64 {
    let diff = hi - lo;
    while x > hi {
        x -= diff;
    }
    while x < lo {
        x += diff;
    }
    x
}

/// `min(max(x, lo), hi)`, as Gymnasium's `bound`.
fn bound(x: f64, lo: f64, hi: f64) -> f64 {
    x.max(lo).min(hi)
}

impl SetState for Acrobot {
    fn state(&self) -> &[f64] {
        &self.state
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        self.state = crate::state_array(state)?;
        self.started = true;
        Ok(())
    }
}

impl Env for Acrobot {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        if let Some(seed) = seed {
            self.rng = Generator::from_seed(seed);
        }
        for v in &mut self.state {
            // Gymnasium draws in float64, then keeps the float32 rounding.
            *v = f64::from(self.rng.uniform(-INIT_BOUND, INIT_BOUND) as f32);
        }
        self.started = true;
        self.write_start(obs);
        Ok(Info::default())
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        if !self.started {
            return Err(Error::ResetNeeded);
        }
        let torque = AVAIL_TORQUE[rl_env::discrete_action(&self.action_space, action)?];
        let mut next = self.rk4(self.state, torque);
        next[0] = wrap(next[0], -PI, PI);
        next[1] = wrap(next[1], -PI, PI);
        next[2] = bound(next[2], -MAX_VEL_1, MAX_VEL_1);
        next[3] = bound(next[3], -MAX_VEL_2, MAX_VEL_2);
        self.state = next;
        let terminated = self.terminal();
        self.write(obs);
        Ok(StepOutcome::new(
            if terminated { 0.0 } else { -1.0 },
            terminated,
        ))
    }

    fn render_text(&self) -> String {
        let [t1, t2, d1, d2] = self.state;
        let tip = -t1.cos() - (t2 + t1).cos();
        format!(
            "tip height {tip:+.3} (goal > 1)  {}\ntheta1 {t1:+.4}  theta2 {t2:+.4}  theta1' {d1:+.4}  theta2' {d2:+.4}",
            draw::track(21, (tip + 2.0) / 4.0, '^')
        )
    }

    /// Gymnasium's 500 × 500 picture: two teal links, yellow joints, the goal bar.
    fn render_rgb(&self) -> Frame {
        let dim = 500.0;
        let reach = LINK_LENGTH_1 + LINK_LENGTH_2 + 0.2;
        let scale = dim / (reach * 2.0);
        let offset = dim / 2.0;
        let mut canvas = draw::Canvas::new(dim as usize, dim as usize);
        let [t1, t2, _, _] = self.state;
        canvas.line(
            (-2.2 * scale + offset, scale + offset),
            (2.2 * scale + offset, scale + offset),
            1.0,
            [0, 0, 0],
        );
        // Joint positions, x right and y up, in pixels.
        let p0 = (offset, offset);
        let p1 = (
            LINK_LENGTH_1 * t1.sin() * scale + offset,
            -LINK_LENGTH_1 * t1.cos() * scale + offset,
        );
        let p2 = (
            p1.0 + LINK_LENGTH_2 * (t1 + t2).sin() * scale,
            p1.1 - LINK_LENGTH_2 * (t1 + t2).cos() * scale,
        );
        for (a, b) in [(p0, p1), (p1, p2)] {
            canvas.line(a, b, 0.2 * scale, [0, 204, 204]);
            canvas.disc(a.0, a.1, 0.1 * scale, [204, 204, 0]);
        }
        canvas.into_frame()
    }
}
