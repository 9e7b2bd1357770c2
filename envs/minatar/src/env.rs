//! The environment wrapper shared by the five games: MinAtar's
//! `Environment` class (sticky actions, seeding) behind rl-env's `Env`.

use crate::numpy_rng::{RandomState, threshold_53};
use crate::render::{self, PixelPainter};
use crate::rules::{Act, CELLS, GRID, Rules};
use rl_env::{Action, DType, Env, Error, Frame, Info, Observation, Result, Space, StepOutcome};

/// Where the episode stands, for refusing steps that make no sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    Ended,
}

/// One MinAtar game as an [`Env`].
///
/// Seeding follows the `minatar` package's Gymnasium wrapper:
/// `reset(Some(seed))` is `Environment.seed(seed)` then `reset()`, so a new
/// environment reset with `seed` replays `Environment(game)`, `seed(seed)`,
/// `reset()` draw for draw. `reset(None)` continues the stream. Python
/// seeds an unseeded environment from the OS; we start from seed 0 so that
/// runs stay reproducible.
///
/// As in MinAtar, every step draws one uniform number for sticky actions,
/// even when the probability is 0, and the last action taken survives
/// `reset`, seeded or not: the first step of an episode may repeat the last
/// action of the previous one.
///
/// Stepping after the episode ended is refused ([`Error::ResetNeeded`]);
/// MinAtar would return `(0, True)` and still draw the sticky number.
///
/// The fields every step reads come first, in declaration order
/// (`repr(C)`), ending with the generator's position and next outputs, so
/// that a step touches a few neighbouring cache lines; with many copies in
/// a [`rl_env::VectorEnv`], scattered fields would each cost a cache miss.
#[repr(C)]
pub struct MinAtar<G: Rules> {
    phase: Phase,
    /// Full-set action last applied; survives resets as in MinAtar.
    last_action: Act,
    /// `⌈sticky_action_prob · 2⁵³⌉`: MinAtar's `rand() < sticky_action_prob`
    /// as an integer comparison (see [`threshold_53`]).
    sticky_threshold: u64,
    /// Our action index → MinAtar's action.
    action_set: &'static [Act],
    pixels: Option<PixelPainter>,
    game: G,
    rng: RandomState,
    observation_space: Space,
    action_space: Space,
    /// Scratch `[C, 10, 10]` planes for pixel mode and rendering.
    planes: Vec<u8>,
}

impl<G: Rules> MinAtar<G> {
    /// A game with validated settings (see [`crate::MinAtarConfig::build`]).
    pub(crate) fn new(
        sticky_action_prob: f64,
        ramping: bool,
        minimal_actions: bool,
        pixels: Option<PixelPainter>,
    ) -> Self {
        let channels = G::CHANNELS.len();
        let action_set: &'static [Act] = if minimal_actions {
            G::MINIMAL_ACTIONS
        } else {
            &Act::ALL
        };
        let observation_space = match &pixels {
            Some(p) => Space::uniform_box(0.0, 255.0, &p.shape(), DType::U8),
            None => Space::uniform_box(0.0, 1.0, &[channels, GRID, GRID], DType::U8),
        };
        MinAtar {
            game: G::new(ramping),
            rng: RandomState::new(0),
            sticky_threshold: threshold_53(sticky_action_prob),
            last_action: Act::Noop,
            action_set,
            observation_space,
            action_space: Space::discrete(action_set.len() as u64),
            planes: vec![0; channels * CELLS],
            pixels,
            phase: Phase::NotStarted,
        }
    }

    /// The difficulty level the game has ramped to, for games that ramp.
    pub fn difficulty(&self) -> Option<u32> {
        self.game.difficulty()
    }

    /// The planes of `obs` to draw into, when `obs` is a planes buffer of
    /// the right shape (the common case, kept small enough to inline).
    #[inline(always)]
    fn planes_of<'a>(&self, obs: &'a mut Observation) -> Option<&'a mut [u8]> {
        if self.pixels.is_none()
            && let Observation::U8(array) = obs
            && is_planes_shape(array.shape(), G::CHANNELS.len())
            && let Some(out) = array.as_slice_mut()
        {
            // The shape fixes the length; slicing to it lets the compiler
            // see a constant size and drop the bounds checks in `draw`.
            return Some(&mut out[..G::CHANNELS.len() * CELLS]);
        }
        None
    }

    /// Writes the observation, reusing `obs`'s buffer when its shape fits.
    #[inline(always)]
    fn write_observation(&mut self, obs: &mut Observation) {
        match self.planes_of(obs) {
            Some(out) => self.game.draw(out),
            None => self.write_observation_slow(obs),
        }
    }

    /// [`Self::write_observation`] for pixels, or into a fresh buffer.
    #[cold]
    #[inline(never)]
    fn write_observation_slow(&mut self, obs: &mut Observation) {
        if let (Observation::U8(array), Some(painter)) = (&mut *obs, &mut self.pixels)
            && array.shape() == painter.shape().as_slice()
            && let Some(out) = array.as_slice_mut()
        {
            self.game.draw(&mut self.planes);
            painter.paint(&self.planes, G::CHANNELS.len(), out);
            return;
        }
        let Space::Box { ref shape, .. } = self.observation_space else {
            unreachable!("MinAtar observation spaces are boxes")
        };
        let mut fresh = ndarray::ArrayD::zeros(shape.as_slice());
        let out = fresh.as_slice_mut().expect("a fresh array is contiguous");
        match &mut self.pixels {
            None => self.game.draw(out),
            Some(painter) => {
                self.game.draw(&mut self.planes);
                painter.paint(&self.planes, G::CHANNELS.len(), out);
            }
        }
        *obs = Observation::U8(fresh);
    }

    fn current_planes(&self) -> Vec<u8> {
        let mut planes = vec![0; G::CHANNELS.len() * CELLS];
        if self.phase != Phase::NotStarted {
            self.game.draw(&mut planes);
        }
        planes
    }
}

impl<G: Rules> Env for MinAtar<G> {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        if let Some(seed) = seed {
            let seed = u32::try_from(seed).map_err(|_| {
                Error::config(
                    "seed",
                    format!(
                        "{seed} is too large: MinAtar seeds numpy's RandomState, which takes 0 to 2^32 - 1"
                    ),
                )
            })?;
            self.rng = RandomState::new(seed);
        }
        self.game.reset(&mut self.rng);
        self.phase = Phase::Running;
        self.write_observation(obs);
        Ok(Info::default())
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        if self.phase != Phase::Running {
            return Err(Error::ResetNeeded);
        }
        let index = match action {
            Action::Discrete(a) if (0..self.action_set.len() as i64).contains(a) => *a as usize,
            _ => {
                rl_env::check_action(&self.action_space, action)?;
                return Err(Error::InvalidAction {
                    action: format!("{action:?}"),
                    space: self.action_space.to_string(),
                });
            }
        };
        let mut chosen = self.action_set[index];
        // Sticky actions: MinAtar draws on every step, whatever the probability.
        if self.rng.rand_53() < self.sticky_threshold {
            chosen = self.last_action;
        }
        self.last_action = chosen;
        // The observation is zeroed before the game moves, not after: the
        // zeroing is most of the stores in a step, and the CPU drains them
        // while it works out the move, which is mostly loads and arithmetic.
        let mut planes = self.planes_of(obs);
        if let Some(planes) = &mut planes {
            planes.fill(0);
        }
        let (reward, terminated) = self.game.act(chosen, &mut self.rng);
        if terminated {
            self.phase = Phase::Ended;
        }
        match planes {
            Some(planes) => self.game.draw_on_zeros(planes),
            None => self.write_observation_slow(obs),
        }
        Ok(StepOutcome::new(f64::from(reward), terminated))
    }

    fn render_text(&self) -> String {
        render::text(&self.current_planes(), G::CHANNELS)
    }

    /// `{"last_action": k}`, MinAtar's index of the last action applied,
    /// which survives a reset and which the next episode's first step
    /// repeats with the sticky probability.
    fn carried_state(&self) -> serde_json::Value {
        serde_json::json!({ "last_action": self.last_action as u8 })
    }

    /// `Null` (a checkpoint from before episodes carried state) keeps the
    /// current last action.
    fn restore_carried_state(&mut self, state: &serde_json::Value) -> Result<()> {
        if state.is_null() {
            return Ok(());
        }
        let index = state
            .get("last_action")
            .and_then(serde_json::Value::as_u64)
            .filter(|&k| k < Act::ALL.len() as u64)
            .ok_or_else(|| {
                Error::config(
                    "carried_state.last_action",
                    format!("expected {{\"last_action\": 0 to 5}}, got {state}"),
                )
            })?;
        self.last_action = Act::ALL[index as usize];
        Ok(())
    }

    fn render_rgb(&self) -> Frame {
        render::rgb_frame(&self.current_planes(), G::CHANNELS.len())
    }
}

/// Whether `shape` is `[channels, 10, 10]`, compared element by element:
/// a slice `==` goes through `memcmp`.
#[inline]
fn is_planes_shape(shape: &[usize], channels: usize) -> bool {
    shape.len() == 3 && shape[0] == channels && shape[1] == GRID && shape[2] == GRID
}
