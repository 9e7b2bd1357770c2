//! Single-thread throughput, the work `benches/peers/minatar_peer.py` does
//! in Python: uniformly random actions from all six, default config
//! (sticky actions 0.1, difficulty ramping), reset as soon as an episode
//! ends, the observation written every step.
//!
//! ```
//! use rl_minatar::{Game, bench};
//! let rate = bench::steps_per_second(Game::Breakout, 10_000);
//! assert!(rate > 0.0);
//! ```

use crate::numpy_rng::RandomState;
use crate::rules::Rules;
use crate::{Game, MinAtar, MinAtarConfig, asterix, breakout, freeway, seaquest, space_invaders};
use rl_env::{Action, Env};
use std::time::{Duration, Instant};

/// One measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    /// Steps taken.
    pub steps: u64,
    /// Episodes that ended.
    pub episodes: u64,
    /// Wall-clock time of the stepping loop.
    pub seconds: f64,
}

impl Throughput {
    /// Steps per second.
    pub fn rate(&self) -> f64 {
        self.steps as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Runs `game` for `steps` steps and returns steps per second.
pub fn steps_per_second(game: Game, steps: u64) -> f64 {
    run(game, steps, None).rate()
}

/// Runs `game` for about `duration` and returns steps per second.
pub fn steps_per_second_for(game: Game, duration: Duration) -> f64 {
    run(game, u64::MAX, Some(duration)).rate()
}

/// Runs `game` for `steps` steps or until `deadline` has passed, whichever
/// comes first (the clock is read every 4,096 steps).
///
/// The game is stepped through the [`Env`] trait on its concrete type, as
/// the Python peer calls `Environment.act` on its own class; a
/// `Box<dyn Env>` from the registry does the same work plus one indirect
/// call per step.
pub fn run(game: Game, steps: u64, deadline: Option<Duration>) -> Throughput {
    match game {
        Game::Asterix => run_game::<asterix::Asterix>(steps, deadline),
        Game::Breakout => run_game::<breakout::Breakout>(steps, deadline),
        Game::Freeway => run_game::<freeway::Freeway>(steps, deadline),
        Game::Seaquest => run_game::<seaquest::Seaquest>(steps, deadline),
        Game::SpaceInvaders => run_game::<space_invaders::SpaceInvaders>(steps, deadline),
    }
}

fn run_game<G: Rules>(steps: u64, deadline: Option<Duration>) -> Throughput {
    // The default config, as `MinAtarConfig::default().build(game)` makes it.
    let config = MinAtarConfig::default();
    let mut env = MinAtar::<G>::new(
        config.sticky_action_prob,
        config.difficulty_ramping,
        false,
        None,
    );
    // Actions are drawn up front, as the Python peer does, so the loop
    // times the environment rather than the action sampler.
    let mut sampler = RandomState::new(1);
    let actions: Vec<Action> = (0..4096)
        .map(|_| Action::Discrete(sampler.randint(0, 6)))
        .collect();
    let mut obs = env.observation_space().zeros();
    env.reset_into(Some(0), &mut obs)
        .expect("seed 0 is a valid seed");
    let start = Instant::now();
    let mut episodes = 0;
    let mut taken = 0;
    'outer: while taken < steps {
        for action in &actions {
            let out = env
                .step_into(action, &mut obs)
                .expect("random actions are valid and episodes are reset");
            if out.terminated || out.truncated {
                episodes += 1;
                env.reset_into(None, &mut obs)
                    .expect("reset without a seed cannot fail");
            }
            taken += 1;
            if taken == steps {
                break 'outer;
            }
        }
        if deadline.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
    }
    Throughput {
        steps: taken,
        episodes,
        seconds: start.elapsed().as_secs_f64(),
    }
}
