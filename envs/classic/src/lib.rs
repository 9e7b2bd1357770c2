//! Gymnasium's classic control, state for state: `CartPole-v1`,
//! `CartPole-v0`, `MountainCar-v0` and `Acrobot-v1`.
//!
//! Dynamics, constants, thresholds, rewards, initial-state ranges and time
//! limits are Gymnasium 1.x's. From the same state and action our next
//! state equals Gymnasium's to 1e-9 (`tests/traces.rs` checks 1,000-step
//! traces made by `tests/reference/make_traces.py`); the arithmetic is
//! written in Gymnasium's order, so in practice they agree to the last ulp
//! that `sin`/`cos` allow.
//!
//! **Seeds mean what they mean in Gymnasium.** `reset(Some(s))` reseeds
//! the environment's generator exactly as Gymnasium's `reset(seed=s)`
//! does (numpy's `Generator(PCG64(SeedSequence(s)))`, reimplemented in
//! [`rl_env::numpy_random`]) and draws the start state with the same
//! calls; `reset(None)` continues the stream. So the same seed and actions
//! give Gymnasium's episode, observation for observation
//! (`tests/seeded.rs` replays episodes Gymnasium recorded). An environment
//! never seeded starts as if seeded with 0.
//!
//! **Observations are `float32`**, as Gymnasium's spaces say, with the
//! `Box` bounds Gymnasium has (its float32 values). The state the dynamics
//! integrate stays `float64`, as Gymnasium's does; the observation is that
//! state rounded to `float32` (for Acrobot, the cos/sin features of it).
//! [`SetState`] reads and writes the `float64` state, as
//! `env.unwrapped.state` does.
//!
//! ```
//! use rl_env::{Action, Env};
//! let mut registry = rl_env::Registry::new();
//! rl_classic::register(&mut registry);
//! let mut env = registry.make("CartPole-v1", &serde_json::Value::Null).unwrap();
//! let (mut obs, _) = env.reset(Some(0)).unwrap();
//! let mut steps = 0;
//! loop {
//!     let out = env.step_into(&Action::Discrete(steps % 2), &mut obs).unwrap();
//!     steps += 1;
//!     if out.terminated || out.truncated {
//!         break;
//!     }
//! }
//! assert!(steps <= 500);
//! ```
#![warn(missing_docs)]

pub mod acrobot;
pub mod cartpole;
pub mod draw;
pub mod mountain_car;
pub mod numpy_f32;

pub use acrobot::{Acrobot, AcrobotConfig};
pub use cartpole::{CartPole, CartPoleConfig};
pub use mountain_car::{MountainCar, MountainCarConfig};

use rl_env::{Env, Error, Observation, Registry, Result, parse_config, wrappers::TimeLimit};
use serde_json::{Value, json};

/// Read and write the physical state, as Gymnasium's `env.unwrapped.state`.
pub trait SetState {
    /// The state the dynamics integrate: CartPole `[x, ẋ, θ, θ̇]`,
    /// MountainCar `[x, v]`, Acrobot `[θ₁, θ₂, θ̇₁, θ̇₂]`.
    fn state(&self) -> &[f64];
    /// Replaces the state, as if an episode had just started from it.
    /// Errors if the length is wrong.
    fn set_state(&mut self, state: &[f64]) -> Result<()>;
}

/// Copies a state slice into a fixed array, or names the length mismatch.
fn state_array<const N: usize>(state: &[f64]) -> Result<[f64; N]> {
    state.try_into().map_err(|_| {
        Error::config(
            "state",
            format!("has {} values, this environment's has {N}", state.len()),
        )
    })
}

/// Writes `values` into a 1-D `float32` observation, reusing its buffer.
fn write_f32(obs: &mut Observation, values: &[f32]) {
    if let Observation::F32(a) = obs
        && a.len() == values.len()
        && let Some(slice) = a.as_slice_mut()
    {
        slice.copy_from_slice(values);
        return;
    }
    *obs = Observation::F32(
        ndarray::ArrayD::from_shape_vec(vec![values.len()], values.to_vec())
            .expect("a vector's shape is its length"),
    );
}

/// A `float32` `Box` symmetric about zero, as Gymnasium builds them:
/// `Box(-high, high)` with `high` rounded to `float32`.
fn symmetric_f32_box(high: &[f64]) -> rl_env::Space {
    let high: Vec<f64> = high.iter().map(|&h| f64::from(h as f32)).collect();
    rl_env::Space::bounded_box(
        high.iter().map(|h| -h).collect(),
        high.clone(),
        &[high.len()],
        rl_env::DType::F32,
    )
}

/// Wraps `env` in its time limit, checking the override.
fn limited<E: Env + 'static>(env: E, max_steps: Option<u64>, default: u64) -> Result<Box<dyn Env>> {
    let limit = max_steps.unwrap_or(default);
    if limit == 0 {
        return Err(Error::config("max_steps", "must be at least 1"));
    }
    Ok(Box::new(TimeLimit::new(env, limit)))
}

/// Builds `CartPole` with a default time limit of `default_limit` steps.
pub fn cartpole(config: &Value, default_limit: u64) -> Result<Box<dyn Env>> {
    let config: CartPoleConfig = parse_config(config)?;
    let max_steps = config.max_steps;
    limited(CartPole::new(config), max_steps, default_limit)
}

/// Builds `MountainCar-v0`.
pub fn mountain_car(config: &Value) -> Result<Box<dyn Env>> {
    let config: MountainCarConfig = parse_config(config)?;
    limited(MountainCar::new(&config)?, config.max_steps, 200)
}

/// Builds `Acrobot-v1`.
pub fn acrobot(config: &Value) -> Result<Box<dyn Env>> {
    let config: AcrobotConfig = parse_config(config)?;
    limited(Acrobot::new(&config), config.max_steps, 500)
}

/// Adds `CartPole-v1`, `CartPole-v0`, `MountainCar-v0` and `Acrobot-v1`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "CartPole-v1",
        "Gymnasium's CartPole-v1: balance a pole, +1 per step, ends past ±12° or ±2.4 m; 500-step limit",
        json!({"max_steps": 500, "sutton_barto_reward": false, "kinematics_integrator": "euler"}),
        |c| cartpole(c, 500),
    );
    registry.register(
        "CartPole-v0",
        "Gymnasium's CartPole-v0: CartPole-v1 with a 200-step limit",
        json!({"max_steps": 200, "sutton_barto_reward": false, "kinematics_integrator": "euler"}),
        |c| cartpole(c, 200),
    );
    registry.register(
        "MountainCar-v0",
        "Gymnasium's MountainCar-v0: rock an underpowered car up to the flag at x = 0.5, -1 per step; 200-step limit",
        json!({"max_steps": 200, "goal_velocity": 0.0}),
        mountain_car,
    );
    registry.register(
        "Acrobot-v1",
        "Gymnasium's Acrobot-v1: swing the two-link tip above the bar, -1 per step, RK4 with dt 0.2; 500-step limit",
        json!({"max_steps": 500, "book_or_nips": "book"}),
        acrobot,
    );
    // Classic control has no size a config can set (its one count, the
    // time limit, only bounds an episode's length); the schemas still
    // describe the fields for catalogues and fuzzers.
    let cartpole = schemars::schema_for!(cartpole::CartPoleConfig).to_value();
    registry.describe("CartPole-v1", cartpole.clone());
    registry.describe("CartPole-v0", cartpole);
    registry.describe(
        "MountainCar-v0",
        schemars::schema_for!(mountain_car::MountainCarConfig).to_value(),
    );
    registry.describe(
        "Acrobot-v1",
        schemars::schema_for!(acrobot::AcrobotConfig).to_value(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rl_env::Action;

    fn registry() -> Registry {
        let mut r = Registry::new();
        register(&mut r);
        r
    }

    #[test]
    fn every_id_resets_steps_and_renders() {
        let r = registry();
        for entry in r.entries() {
            let mut env = r.make(&entry.id, &Value::Null).unwrap();
            let mut defaults = r.make(&entry.id, &entry.defaults).unwrap();
            let (mut obs, _) = env.reset(Some(3)).unwrap();
            let (obs2, _) = defaults.reset(Some(3)).unwrap();
            assert_eq!(obs, obs2, "{}: defaults are the defaults", entry.id);
            assert!(env.observation_space().contains(&obs), "{}", entry.id);
            env.step_into(&Action::Discrete(1), &mut obs).unwrap();
            assert!(
                env.observation_space().contains(&obs),
                "{}: {obs:?}",
                entry.id
            );
            assert!(!env.render_text().is_empty());
            let frame = env.render_rgb();
            assert_eq!(frame.dim().2, 3);
            assert!(
                frame.iter().any(|&v| v < 255),
                "{}: something is drawn",
                entry.id
            );
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let r = registry();
        let cases = [
            ("CartPole-v1", json!({"max_step": 3}), "max_step"),
            ("CartPole-v1", json!({"max_steps": 0}), "max_steps"),
            (
                "CartPole-v0",
                json!({"kinematics_integrator": "rk4"}),
                "kinematics_integrator",
            ),
            (
                "Acrobot-v1",
                json!({"book_or_nips": "paper"}),
                "book_or_nips",
            ),
            (
                "MountainCar-v0",
                json!({"goal_velocity": "fast"}),
                "goal_velocity",
            ),
        ];
        for (id, config, field) in cases {
            let err = r.make(id, &config).err().expect("refused").to_string();
            assert!(err.contains(field), "{id} {config}: {err}");
        }
    }

    #[test]
    fn time_limits_are_gymnasiums() {
        let r = registry();
        for (id, limit) in [
            ("CartPole-v1", 500),
            ("CartPole-v0", 200),
            ("MountainCar-v0", 200),
            ("Acrobot-v1", 500),
        ] {
            // Action 1 is a no-op for MountainCar and Acrobot; for CartPole a
            // short configured limit shows the override instead.
            let (config, limit) = if id.starts_with("CartPole") {
                (json!({"max_steps": 5}), 5)
            } else {
                (Value::Null, limit)
            };
            let mut env = r.make(id, &config).unwrap();
            let (mut obs, _) = env.reset(Some(0)).unwrap();
            for t in 1..=limit {
                let out = env.step_into(&Action::Discrete(1), &mut obs).unwrap();
                assert_eq!(out.truncated, t == limit, "{id} at {t}");
                assert!(!out.terminated, "{id} at {t}");
            }
        }
    }

    #[test]
    fn cartpole_rewards_follow_gymnasium_after_termination() {
        for (sutton_barto, expected) in [(false, [1.0, 1.0, 0.0]), (true, [0.0, -1.0, -1.0])] {
            let mut env = CartPole::new(CartPoleConfig {
                max_steps: None,
                sutton_barto_reward: sutton_barto,
                kinematics_integrator: cartpole::Integrator::Euler,
            });
            let (mut obs, _) = env.reset(Some(0)).unwrap();
            env.set_state(&[2.3, 1.0, 0.0, 0.0]).unwrap();
            let first = env.step_into(&Action::Discrete(1), &mut obs).unwrap();
            env.set_state(&[2.399, 1.0, 0.0, 0.0]).unwrap();
            let end = env.step_into(&Action::Discrete(1), &mut obs).unwrap();
            let after = env.step_into(&Action::Discrete(1), &mut obs).unwrap();
            assert!(!first.terminated && end.terminated && after.terminated);
            assert_eq!([first.reward, end.reward, after.reward], expected);
        }
    }

    #[test]
    fn same_seed_same_start_and_step_before_reset_is_refused() {
        let mut a = Acrobot::new(&AcrobotConfig {
            max_steps: None,
            book_or_nips: acrobot::Dynamics::Book,
        });
        assert!(a.step(&Action::Discrete(0)).is_err());
        let (o1, _) = a.reset(Some(9)).unwrap();
        let (o2, _) = a.reset(Some(9)).unwrap();
        assert_eq!(o1, o2);
        for &v in a.state() {
            assert!((-0.1..0.1).contains(&v) && v as f32 as f64 == v);
        }
        assert!(a.set_state(&[0.0; 3]).is_err());
    }
}
