//! The five MinAtar games (Young & Tian, 2019), draw-for-draw identical to
//! the `minatar` Python package, version 1.0.15.
//!
//! Breakout, Asterix, Freeway, Seaquest and Space Invaders on a 10 × 10
//! grid, one `u8` plane per object kind: observations are `[C, 10, 10]`,
//! channel-first, with C = 4, 4, 7, 10 and 6. Seeded with the same integer
//! and given the same actions, every frame, reward and terminal flag equals
//! MinAtar's: the games draw from [`numpy_rng::RandomState`], our copy of
//! numpy's legacy generator, in MinAtar's order.
//!
//! Ids, registered by [`register`]:
//! - `minatar/breakout`, `minatar/asterix`, `minatar/freeway`,
//!   `minatar/seaquest`, `minatar/space_invaders`, configured by
//!   [`MinAtarConfig`] (all 6 actions unless `"actions": "minimal"`);
//! - `minatar`, the same with a `game` field;
//! - the package's Gymnasium ids, `MinAtar/Breakout-v0` (all 6 actions) and
//!   `MinAtar/Breakout-v1` (the game's minimal action set), and so on for
//!   `Asterix`, `Freeway`, `Seaquest` and `SpaceInvaders`. Like the
//!   package, they set no time limit.
//!
//! ```
//! use rl_env::{Action, Env, Observation};
//! let mut registry = rl_env::Registry::new();
//! rl_minatar::register(&mut registry);
//! let mut env = registry
//!     .make("minatar/breakout", &serde_json::json!({"actions": "minimal"}))
//!     .unwrap();
//! let (mut obs, _) = env.reset(Some(0)).unwrap();
//! assert_eq!(env.action_space().n(), Some(3));
//! let step = env.step_into(&Action::Discrete(2), &mut obs).unwrap();
//! let Observation::U8(planes) = &obs else { unreachable!() };
//! assert_eq!(planes.shape(), &[4, 10, 10]);
//! assert_eq!(step.reward, 0.0);
//! ```
#![warn(missing_docs)]

pub mod asterix;
pub mod bench;
pub mod breakout;
mod env;
pub mod freeway;
pub mod numpy_rng;
pub mod render;
pub mod rules;
pub mod seaquest;
pub mod space_invaders;
pub mod trace;

pub use env::MinAtar;
pub use rules::{Act, Channel};

use rl_env::{Env, Error, Registry, Result, parse_config, wrappers::TimeLimit};
use rules::Rules;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::str::FromStr;

/// The five games.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Game {
    /// [`asterix`]: dodge enemies, collect gold.
    Asterix,
    /// [`breakout`]: bounce a ball into bricks.
    Breakout,
    /// [`freeway`]: cross a road.
    Freeway,
    /// [`seaquest`]: shoot, rescue divers, mind the oxygen.
    Seaquest,
    /// [`space_invaders`]: shoot the descending aliens.
    SpaceInvaders,
}

impl Game {
    /// All five, in the order MinAtar's Gymnasium module registers them.
    pub const ALL: [Game; 5] = [
        Game::Asterix,
        Game::Breakout,
        Game::Freeway,
        Game::Seaquest,
        Game::SpaceInvaders,
    ];

    /// MinAtar's module name, e.g. `space_invaders`.
    pub fn name(self) -> &'static str {
        match self {
            Game::Asterix => "asterix",
            Game::Breakout => "breakout",
            Game::Freeway => "freeway",
            Game::Seaquest => "seaquest",
            Game::SpaceInvaders => "space_invaders",
        }
    }

    /// Our id, e.g. `minatar/space_invaders`.
    pub fn id(self) -> String {
        format!("minatar/{}", self.name())
    }

    /// The Gymnasium id MinAtar registers, e.g. `MinAtar/SpaceInvaders-v1`
    /// for the minimal action set, `-v0` for all six.
    pub fn gym_id(self, minimal_actions: bool) -> String {
        let title = match self {
            Game::Asterix => "Asterix",
            Game::Breakout => "Breakout",
            Game::Freeway => "Freeway",
            Game::Seaquest => "Seaquest",
            Game::SpaceInvaders => "SpaceInvaders",
        };
        format!("MinAtar/{title}-v{}", u8::from(minimal_actions))
    }

    /// The observation channels, in order.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            Game::Asterix => asterix::Asterix::CHANNELS,
            Game::Breakout => breakout::Breakout::CHANNELS,
            Game::Freeway => freeway::Freeway::CHANNELS,
            Game::Seaquest => seaquest::Seaquest::CHANNELS,
            Game::SpaceInvaders => space_invaders::SpaceInvaders::CHANNELS,
        }
    }

    /// The game's minimal action set, as MinAtar action indices.
    pub fn minimal_actions(self) -> &'static [Act] {
        match self {
            Game::Asterix => asterix::Asterix::MINIMAL_ACTIONS,
            Game::Breakout => breakout::Breakout::MINIMAL_ACTIONS,
            Game::Freeway => freeway::Freeway::MINIMAL_ACTIONS,
            Game::Seaquest => seaquest::Seaquest::MINIMAL_ACTIONS,
            Game::SpaceInvaders => space_invaders::SpaceInvaders::MINIMAL_ACTIONS,
        }
    }
}

impl fmt::Display for Game {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Game {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Game::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| {
                Error::config(
                    "game",
                    format!(
                        "unknown MinAtar game '{s}': use one of asterix, breakout, freeway, seaquest, space_invaders"
                    ),
                )
            })
    }
}

/// Which actions the agent chooses from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionSet {
    /// All six MinAtar actions, `n l u r d f` (MinAtar's `num_actions()`).
    #[default]
    Full,
    /// The game's `minimal_action_set()`, in MinAtar's order.
    Minimal,
}

/// Pixel observations for Nature-DQN-style pipelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PixelConfig {
    /// Side of the square frame, in pixels; the 10 × 10 grid is scaled by
    /// nearest neighbour. Default 84, the Nature DQN input size. 1 to 1024
    /// ([`MAX_PIXEL_SIZE`]).
    #[serde(default = "default_pixel_size")]
    #[schemars(range(min = 1, max = MAX_PIXEL_SIZE))]
    pub size: usize,
    /// One gray channel (`[1, size, size]`) rather than RGB
    /// (`[3, size, size]`). Default true, as the Nature DQN preprocessing.
    #[serde(default = "yes")]
    pub grayscale: bool,
}

impl Default for PixelConfig {
    fn default() -> Self {
        PixelConfig {
            size: default_pixel_size(),
            grayscale: true,
        }
    }
}

/// Largest pixel frame side we accept.
pub const MAX_PIXEL_SIZE: usize = 1024;

/// A MinAtar game's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinAtarConfig {
    /// The game; only for the generic `minatar` id (the per-game ids fix it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game: Option<Game>,
    /// Probability that a step repeats the previous action instead of the
    /// chosen one, in [0, 1]. Default 0.1, MinAtar's `Environment` default
    /// (after Machado et al., 2018).
    #[serde(default = "default_sticky")]
    pub sticky_action_prob: f64,
    /// Whether Asterix, Seaquest and Space Invaders speed up over time.
    /// Default true, MinAtar's default.
    #[serde(default = "yes")]
    pub difficulty_ramping: bool,
    /// The agent's action set. Default `full`, the 6 actions MinAtar's
    /// `Environment` exposes.
    #[serde(default)]
    pub actions: ActionSet,
    /// Pixel observations instead of channel planes. Default none.
    #[serde(default)]
    pub pixels: Option<PixelConfig>,
    /// Time limit in env steps (truncation). Default none: MinAtar registers
    /// no `max_episode_steps` (Freeway ends itself after 2,500 frames).
    #[serde(default)]
    pub max_steps: Option<u64>,
}

fn default_sticky() -> f64 {
    0.1
}
fn yes() -> bool {
    true
}
fn default_pixel_size() -> usize {
    84
}

impl Default for MinAtarConfig {
    fn default() -> Self {
        MinAtarConfig {
            game: None,
            sticky_action_prob: default_sticky(),
            difficulty_ramping: true,
            actions: ActionSet::Full,
            pixels: None,
            max_steps: None,
        }
    }
}

impl MinAtarConfig {
    /// Checks the values and builds `game`, with its time limit if any.
    pub fn build(&self, game: Game) -> Result<Box<dyn Env>> {
        if let Some(other) = self.game.filter(|&g| g != game) {
            return Err(Error::config(
                "game",
                format!("'{other}' does not match this id's game '{game}'"),
            ));
        }
        let p = self.sticky_action_prob;
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::config(
                "sticky_action_prob",
                format!("{p} is not a probability in [0, 1]"),
            ));
        }
        let painter = match self.pixels {
            None => None,
            Some(pixels) => {
                if !(1..=MAX_PIXEL_SIZE).contains(&pixels.size) {
                    return Err(Error::config(
                        "pixels.size",
                        format!(
                            "{} is not a supported frame size: use 1 to {MAX_PIXEL_SIZE} pixels",
                            pixels.size
                        ),
                    ));
                }
                Some(render::PixelPainter::new(
                    pixels.size,
                    pixels.grayscale,
                    game.channels().len(),
                ))
            }
        };
        if self.max_steps == Some(0) {
            return Err(Error::config("max_steps", "must be at least 1"));
        }
        let minimal = self.actions == ActionSet::Minimal;
        let ramping = self.difficulty_ramping;
        fn boxed<G: Rules>(
            p: f64,
            ramping: bool,
            minimal: bool,
            painter: Option<render::PixelPainter>,
        ) -> Box<dyn Env> {
            Box::new(MinAtar::<G>::new(p, ramping, minimal, painter))
        }
        let env = match game {
            Game::Asterix => boxed::<asterix::Asterix>(p, ramping, minimal, painter),
            Game::Breakout => boxed::<breakout::Breakout>(p, ramping, minimal, painter),
            Game::Freeway => boxed::<freeway::Freeway>(p, ramping, minimal, painter),
            Game::Seaquest => boxed::<seaquest::Seaquest>(p, ramping, minimal, painter),
            Game::SpaceInvaders => {
                boxed::<space_invaders::SpaceInvaders>(p, ramping, minimal, painter)
            }
        };
        Ok(match self.max_steps {
            Some(limit) => Box::new(TimeLimit::new(env, limit)),
            None => env,
        })
    }
}

/// Builds `game` from a JSON config (`null` for all defaults).
pub fn make(game: Game, config: &Value) -> Result<Box<dyn Env>> {
    parse_config::<MinAtarConfig>(config)?.build(game)
}

/// Builds a Gymnasium alias: `minimal` fixes the action set, which the
/// config may repeat but not change.
fn make_gym(game: Game, minimal: bool, config: &Value) -> Result<Box<dyn Env>> {
    let mut parsed: MinAtarConfig = parse_config(config)?;
    let wanted = if minimal {
        ActionSet::Minimal
    } else {
        ActionSet::Full
    };
    if config.get("actions").is_some() && parsed.actions != wanted {
        return Err(Error::config(
            "actions",
            format!(
                "{} fixes the action set; use {} for the other one",
                game.gym_id(minimal),
                game.gym_id(!minimal)
            ),
        ));
    }
    parsed.actions = wanted;
    parsed.build(game)
}

/// Adds the MinAtar ids to `registry`: `minatar/<game>`, `minatar` (with a
/// `game` field) and the Gymnasium aliases `MinAtar/<Game>-v0|v1`.
pub fn register(registry: &mut Registry) {
    let defaults =
        serde_json::to_value(MinAtarConfig::default()).expect("the config serialises to JSON");
    let schema = schemars::schema_for!(MinAtarConfig).to_value();
    for game in Game::ALL {
        let channels = game.channels().len();
        let minimal: String = game.minimal_actions().iter().map(|a| a.letter()).collect();
        registry.register(
            game.id(),
            format!(
                "MinAtar {game}: [{channels}, 10, 10] u8 planes, 6 actions (minimal set '{minimal}'), sticky actions 0.1; as minatar 1.0.15"
            ),
            defaults.clone(),
            move |config| make(game, config),
        );
        registry.describe(&game.id(), schema.clone());
        for minimal_set in [false, true] {
            let mut alias_defaults = defaults.clone();
            alias_defaults["actions"] = json!(if minimal_set { "minimal" } else { "full" });
            registry.register(
                game.gym_id(minimal_set),
                format!(
                    "minatar's Gymnasium id for {game} with {}; observations channel-first",
                    if minimal_set {
                        format!("the minimal action set '{minimal}'")
                    } else {
                        "all 6 actions".to_string()
                    }
                ),
                alias_defaults,
                move |config| make_gym(game, minimal_set, config),
            );
            registry.describe(&game.gym_id(minimal_set), schema.clone());
        }
    }
    let mut generic_defaults = defaults;
    generic_defaults["game"] = json!("breakout");
    registry.register(
        "minatar",
        "A MinAtar game chosen by the `game` field (asterix, breakout, freeway, seaquest, space_invaders)",
        generic_defaults,
        |config| {
            let parsed: MinAtarConfig = parse_config(config)?;
            let game = parsed.game.ok_or_else(|| {
                Error::config(
                    "game",
                    "missing: choose asterix, breakout, freeway, seaquest or space_invaders",
                )
            })?;
            parsed.build(game)
        },
    );
    registry.describe("minatar", schema);
}
