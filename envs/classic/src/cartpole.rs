//! CartPole: balance a pole on a cart (Barto, Sutton & Anderson, 1983), as
//! Gymnasium 1.x's `CartPoleEnv`.
//!
//! **Rules.** A pole is hinged to a cart on a frictionless track. Each step
//! pushes the cart left (action 0) or right (action 1) with a force of 10 N
//! for 0.02 s, integrated by explicit Euler.
//!
//! **Reward.** +1 for every step, including the one that ends the episode;
//! 0 for any step taken after that without a reset (Gymnasium warns there).
//! With `sutton_barto_reward`, 0 per step and −1 on termination.
//!
//! **End.** Terminated when the cart leaves ±2.4 or the pole leans past
//! ±12° (0.2094 rad); truncated after 500 steps (`CartPole-v1`) or 200
//! (`CartPole-v0`).
//!
//! **Start.** All four state variables uniform in [−0.05, 0.05): one
//! `uniform(-0.05, 0.05, size=(4,))` from the seeded generator, as
//! Gymnasium draws it.
//!
//! **Observation.** `[x, ẋ, θ, θ̇]` as `float32`: the float64 state
//! Gymnasium keeps (`env.unwrapped.state`), rounded, as Gymnasium returns it.

use crate::{SetState, draw};
use rl_env::numpy_random::Generator;
use rl_env::{Action, Env, Error, Frame, Info, Observation, Result, Space, StepOutcome};
use serde::{Deserialize, Serialize};

/// Gravity, m/s².
const GRAVITY: f64 = 9.8;
/// Cart mass, kg.
const MASS_CART: f64 = 1.0;
/// Pole mass, kg.
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_POLE + MASS_CART;
/// Half the pole's length, m.
const LENGTH: f64 = 0.5;
const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
/// Magnitude of the push, N.
const FORCE_MAG: f64 = 10.0;
/// Seconds between state updates.
const TAU: f64 = 0.02;
/// ±12°, in radians, computed as Gymnasium computes it.
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
/// Cart position limit, m.
const X_THRESHOLD: f64 = 2.4;
/// Initial state: each variable uniform in [−0.05, 0.05).
const INIT_BOUND: f64 = 0.05;

/// How positions are advanced from velocities.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Integrator {
    /// Positions move with the old velocities (Gymnasium's default, `"euler"`).
    #[default]
    Euler,
    /// Velocities first, then positions with the new velocities.
    SemiImplicitEuler,
}

/// CartPole's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartPoleConfig {
    /// Time limit, in env steps; default 500 for `CartPole-v1` and 200 for
    /// `CartPole-v0` (Gymnasium's `max_episode_steps`).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// 0 per step and −1 on termination instead of +1 per step; default
    /// false (Gymnasium 1.0's `sutton_barto_reward`).
    #[serde(default)]
    pub sutton_barto_reward: bool,
    /// Integration scheme; default `euler` (Gymnasium's `kinematics_integrator`).
    #[serde(default)]
    pub kinematics_integrator: Integrator,
}

/// The CartPole system, without its time limit.
pub struct CartPole {
    config: CartPoleConfig,
    observation_space: Space,
    action_space: Space,
    rng: Generator,
    /// `[x, ẋ, θ, θ̇]`.
    state: [f64; 4],
    started: bool,
    steps_beyond_terminated: Option<u64>,
}

impl CartPole {
    /// A cart-pole; `config.max_steps` is ignored here (the registry applies it).
    pub fn new(config: CartPoleConfig) -> Self {
        let high = [
            X_THRESHOLD * 2.0,
            f64::INFINITY,
            THETA_THRESHOLD * 2.0,
            f64::INFINITY,
        ];
        CartPole {
            config,
            observation_space: crate::symmetric_f32_box(&high),
            action_space: Space::discrete(2),
            rng: Generator::from_seed(0),
            state: [0.0; 4],
            started: false,
            steps_beyond_terminated: None,
        }
    }

    fn write(&self, obs: &mut Observation) {
        crate::write_f32(obs, &self.state.map(|v| v as f32));
    }

    // Written as Gymnasium writes it: a NaN state does not terminate,
    // where `!range.contains` would.
    #[allow(clippy::manual_range_contains)]
    fn terminated(&self) -> bool {
        let [x, _, theta, _] = self.state;
        x < -X_THRESHOLD || x > X_THRESHOLD || theta < -THETA_THRESHOLD || theta > THETA_THRESHOLD
    }
}

impl SetState for CartPole {
    fn state(&self) -> &[f64] {
        &self.state
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        self.state = crate::state_array(state)?;
        self.started = true;
        self.steps_beyond_terminated = None;
        Ok(())
    }
}

impl Env for CartPole {
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
            *v = self.rng.uniform(-INIT_BOUND, INIT_BOUND);
        }
        self.started = true;
        self.steps_beyond_terminated = None;
        self.write(obs);
        Ok(Info::default())
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        if !self.started {
            return Err(Error::ResetNeeded);
        }
        let push_right = rl_env::discrete_action(&self.action_space, action)? == 1;
        let [mut x, mut x_dot, mut theta, mut theta_dot] = self.state;
        let force = if push_right { FORCE_MAG } else { -FORCE_MAG };
        let costheta = theta.cos();
        let sintheta = theta.sin();
        // The operations below are Gymnasium's, in its order, so that the
        // float64 results agree bit for bit up to the last ulp of sin/cos.
        let temp = (force + POLE_MASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
        // θ̈ = (g sin θ − cos θ · temp) / (l (4/3 − m_p cos²θ / M))
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * (costheta * costheta) / TOTAL_MASS));
        // ẍ = temp − m_p l θ̈ cos θ / M
        let xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
        match self.config.kinematics_integrator {
            Integrator::Euler => {
                x += TAU * x_dot;
                x_dot += TAU * xacc;
                theta += TAU * theta_dot;
                theta_dot += TAU * thetaacc;
            }
            Integrator::SemiImplicitEuler => {
                x_dot += TAU * xacc;
                x += TAU * x_dot;
                theta_dot += TAU * thetaacc;
                theta += TAU * theta_dot;
            }
        }
        self.state = [x, x_dot, theta, theta_dot];
        let terminated = self.terminated();
        let sutton_barto = self.config.sutton_barto_reward;
        let reward = if !terminated {
            if sutton_barto { 0.0 } else { 1.0 }
        } else if let Some(beyond) = self.steps_beyond_terminated.as_mut() {
            *beyond += 1;
            if sutton_barto { -1.0 } else { 0.0 }
        } else {
            self.steps_beyond_terminated = Some(0);
            if sutton_barto { -1.0 } else { 1.0 }
        };
        self.write(obs);
        Ok(StepOutcome::new(reward, terminated))
    }

    fn render_text(&self) -> String {
        let [x, x_dot, theta, theta_dot] = self.state;
        let at = (x + X_THRESHOLD) / (2.0 * X_THRESHOLD);
        let lean = if theta > THETA_THRESHOLD / 3.0 {
            '/'
        } else if theta < -THETA_THRESHOLD / 3.0 {
            '\\'
        } else {
            '|'
        };
        let pole = draw::track(49, at, lean).replace('-', " ");
        format!(
            "{pole}\n{}\nx {x:+.4}  x' {x_dot:+.4}  theta {theta:+.4}  theta' {theta_dot:+.4}",
            draw::track(49, at, '#')
        )
    }

    /// Gymnasium's 600 × 400 picture: a black cart, a brown pole, a blue axle.
    fn render_rgb(&self) -> Frame {
        let (width, height) = (600.0, 400.0);
        let scale = width / (X_THRESHOLD * 2.0);
        let pole_width = 10.0;
        let pole_len = scale * (2.0 * LENGTH);
        let (cart_w, cart_h) = (50.0, 30.0);
        let mut canvas = draw::Canvas::new(width as usize, height as usize);
        let cart_x = self.state[0] * scale + width / 2.0;
        let cart_y = 100.0;
        canvas.line((0.0, cart_y), (width, cart_y), 1.0, [0, 0, 0]);
        let (l, r, t, b) = (-cart_w / 2.0, cart_w / 2.0, cart_h / 2.0, -cart_h / 2.0);
        canvas.polygon(
            &[(l, b), (l, t), (r, t), (r, b)].map(|(px, py)| (px + cart_x, py + cart_y)),
            [0, 0, 0],
        );
        let axle = cart_h / 4.0;
        let (l, r, t, b) = (
            -pole_width / 2.0,
            pole_width / 2.0,
            pole_len - pole_width / 2.0,
            -pole_width / 2.0,
        );
        let pole = [(l, b), (l, t), (r, t), (r, b)].map(|c| {
            let (px, py) = draw::rotate(c, -self.state[2]);
            (px + cart_x, py + cart_y + axle)
        });
        canvas.polygon(&pole, [202, 152, 101]);
        canvas.disc(cart_x, cart_y + axle, pole_width / 2.0, [129, 132, 203]);
        canvas.into_frame()
    }
}
