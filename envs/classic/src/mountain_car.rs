//! MountainCar: drive an underpowered car up a hill (Moore, 1990), as
//! Gymnasium 1.x's `MountainCarEnv`.
//!
//! **Rules.** A car sits in a valley `y = sin(3x)`. Each step it pushes
//! left (action 0), not at all (1) or right (2):
//! `v ← clip(v + (a − 1)·0.001 − cos(3x)·0.0025, ±0.07)`, then
//! `x ← clip(x + v, [−1.2, 0.6])`; hitting the left wall stops the car.
//!
//! **Reward.** −1 for every step.
//!
//! **End.** Terminated when `x ≥ 0.5` and `v ≥ goal_velocity` (default 0);
//! truncated after 200 steps (`MountainCar-v0`).
//!
//! **Start.** `x` uniform in [−0.6, −0.4) (one `uniform(-0.6, -0.4)` from
//! the seeded generator, as Gymnasium draws it), `v = 0`.
//!
//! **Observation.** `[x, v]` as `float32`: Gymnasium's float64 state,
//! rounded, as Gymnasium returns it.

use crate::{SetState, draw};
use rl_env::numpy_random::Generator;
use rl_env::{Action, DType, Env, Error, Frame, Info, Observation, Result, Space, StepOutcome};
use serde::{Deserialize, Serialize};

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;
/// Initial position range.
const INIT_LOW: f64 = -0.6;
const INIT_HIGH: f64 = -0.4;

/// MountainCar's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountainCarConfig {
    /// Time limit, in env steps; default 200 (Gymnasium's `max_episode_steps`).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Velocity the car must have at the flag to finish; default 0
    /// (Gymnasium's `goal_velocity`).
    #[serde(default)]
    pub goal_velocity: f64,
}

/// The mountain car, without its time limit.
pub struct MountainCar {
    goal_velocity: f64,
    observation_space: Space,
    action_space: Space,
    rng: Generator,
    /// `[x, v]`.
    state: [f64; 2],
    started: bool,
}

impl MountainCar {
    /// A mountain car; `config.max_steps` is ignored here (the registry applies it).
    pub fn new(config: &MountainCarConfig) -> Result<Self> {
        if !config.goal_velocity.is_finite() {
            return Err(Error::config("goal_velocity", "must be a finite number"));
        }
        Ok(MountainCar {
            goal_velocity: config.goal_velocity,
            // Gymnasium's bounds are float32 arrays.
            observation_space: Space::bounded_box(
                vec![f64::from(MIN_POSITION as f32), f64::from(-MAX_SPEED as f32)],
                vec![f64::from(MAX_POSITION as f32), f64::from(MAX_SPEED as f32)],
                &[2],
                DType::F32,
            ),
            action_space: Space::discrete(3),
            rng: Generator::from_seed(0),
            state: [0.0; 2],
            started: false,
        })
    }
}

impl SetState for MountainCar {
    fn state(&self) -> &[f64] {
        &self.state
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        self.state = crate::state_array(state)?;
        self.started = true;
        Ok(())
    }
}

impl MountainCar {
    fn write(&self, obs: &mut Observation) {
        crate::write_f32(obs, &self.state.map(|v| v as f32));
    }
}

/// Height of the hill at `x`, for drawing.
fn height(x: f64) -> f64 {
    (3.0 * x).sin() * 0.45 + 0.55
}

impl Env for MountainCar {
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
        self.state = [self.rng.uniform(INIT_LOW, INIT_HIGH), 0.0];
        self.started = true;
        self.write(obs);
        Ok(Info::default())
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        if !self.started {
            return Err(Error::ResetNeeded);
        }
        let a = rl_env::discrete_action(&self.action_space, action)? as f64;
        let [mut position, mut velocity] = self.state;
        // v ← v + (a − 1)·force − cos(3x)·gravity, in Gymnasium's order.
        velocity += (a - 1.0) * FORCE + (3.0 * position).cos() * (-GRAVITY);
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        // The left wall is inelastic.
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= GOAL_POSITION && velocity >= self.goal_velocity;
        self.state = [position, velocity];
        self.write(obs);
        Ok(StepOutcome::new(-1.0, terminated))
    }

    fn render_text(&self) -> String {
        let [x, v] = self.state;
        let at = |p: f64| (p - MIN_POSITION) / (MAX_POSITION - MIN_POSITION);
        let mut row: Vec<char> = draw::track(49, at(x), 'o').chars().collect();
        let flag = (at(GOAL_POSITION) * 48.0).round() as usize;
        if row[flag] == '-' {
            row[flag] = 'F';
        }
        format!(
            "{}\nx {x:+.4}  v {v:+.5}",
            row.into_iter().collect::<String>()
        )
    }

    /// Gymnasium's 600 × 400 picture: the hill, a black car, a yellow flag.
    fn render_rgb(&self) -> Frame {
        let (width, height_px) = (600.0, 400.0);
        let scale = width / (MAX_POSITION - MIN_POSITION);
        let mut canvas = draw::Canvas::new(width as usize, height_px as usize);
        let to_px = |x: f64| ((x - MIN_POSITION) * scale, height(x) * scale);
        for i in 0..99 {
            let x0 = MIN_POSITION + (MAX_POSITION - MIN_POSITION) * i as f64 / 99.0;
            let x1 = MIN_POSITION + (MAX_POSITION - MIN_POSITION) * (i + 1) as f64 / 99.0;
            canvas.line(to_px(x0), to_px(x1), 2.0, [0, 0, 0]);
        }
        let pos = self.state[0];
        let (car_w, car_h, clearance) = (40.0, 20.0, 10.0);
        let angle = (3.0 * pos).cos();
        let (base_x, base_y) = to_px(pos);
        let place = |c: (f64, f64)| {
            let (px, py) = draw::rotate(c, angle);
            (px + base_x, py + clearance + base_y)
        };
        let (l, r, t, b) = (-car_w / 2.0, car_w / 2.0, car_h, 0.0);
        canvas.polygon(&[(l, b), (l, t), (r, t), (r, b)].map(place), [0, 0, 0]);
        for wheel in [(car_w / 4.0, 0.0), (-car_w / 4.0, 0.0)] {
            let (wx, wy) = place(wheel);
            canvas.disc(wx, wy, car_h / 2.5, [128, 128, 128]);
        }
        let (flag_x, flag_y1) = to_px(GOAL_POSITION);
        let flag_y2 = flag_y1 + 50.0;
        canvas.line((flag_x, flag_y1), (flag_x, flag_y2), 2.0, [0, 0, 0]);
        canvas.polygon(
            &[
                (flag_x, flag_y2),
                (flag_x, flag_y2 - 10.0),
                (flag_x + 25.0, flag_y2 - 5.0),
            ],
            [204, 204, 0],
        );
        canvas.into_frame()
    }
}
