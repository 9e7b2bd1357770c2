//! Asterix.
//!
//! **Rules.** The player moves freely in the four directions between rows 1
//! and 8. Each of those eight rows holds at most one entity, an enemy or a
//! piece of gold, which enters from the left or right edge and crosses the
//! screen horizontally. Every `spawn_speed` frames a new entity appears in
//! a random free row, on a random side, and is gold with probability 1/3.
//! Entities move one cell every `move_speed + 1` frames; a trail channel
//! marks the cell behind each one, which shows its direction.
//!
//! **Reward.** +1 for each piece of gold the player touches (the gold
//! disappears).
//!
//! **End.** The episode ends when the player touches an enemy.
//!
//! **Difficulty ramp** (when enabled). Every 100 frames or so the spawn
//! interval shortens by one frame, and every other ramp step the movement
//! interval does too, until both reach 1.
//!
//! **Actions.** Minimal set `n l u r d`; `f` does nothing.

use crate::numpy_rng::RandomState;
use crate::rules::{Act, CELLS, Channel, GRID, Rules, mark, on_grid, step_x};

/// The player.
pub const PLAYER: usize = 0;
/// Enemies.
pub const ENEMY: usize = 1;
/// The cell each enemy or gold came from.
pub const TRAIL: usize = 2;
/// Gold.
pub const GOLD: usize = 3;

/// Frames between difficulty increases.
const RAMP_INTERVAL: i32 = 100;
/// Initial frames between spawns.
const INIT_SPAWN_SPEED: i32 = 10;
/// Initial frames between entity moves.
const INIT_MOVE_INTERVAL: i32 = 5;
/// Rows 1..=8 each hold one entity slot.
const SLOTS: usize = 8;

/// The entity in one row's slot. Slots hold a valid column even when
/// empty, so drawing and moving need no branches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entity {
    x: i32,
    rightward: bool,
    gold: bool,
    alive: bool,
}

/// Asterix's state.
pub struct Asterix {
    ramping: bool,
    player_x: i32,
    player_y: i32,
    /// Slot `i` is row `i + 1`.
    entities: [Entity; SLOTS],
    spawn_speed: i32,
    spawn_timer: i32,
    move_speed: i32,
    move_timer: i32,
    ramp_timer: i32,
    ramp_index: u32,
    terminal: bool,
}

impl Asterix {
    /// A new enemy or gold in a random free row (none if all are taken).
    fn spawn_entity(&mut self, rng: &mut RandomState) {
        let rightward = rng.rand() < 0.5;
        let gold = rng.rand() < 1.0 / 3.0;
        let x = if rightward { 0 } else { 9 };
        let mut free = [0usize; SLOTS];
        let mut n_free = 0;
        for (slot, entity) in self.entities.iter().enumerate() {
            if !entity.alive {
                free[n_free] = slot;
                n_free += 1;
            }
        }
        if n_free == 0 {
            return;
        }
        let slot = free[rng.randint(0, n_free as i64) as usize];
        self.entities[slot] = Entity {
            x,
            rightward,
            gold,
            alive: true,
        };
    }

    /// What touching the entity in the player's row does: gold is
    /// collected, an enemy kills.
    ///
    /// Written without branches: whether the player's row holds an entity
    /// changes at random as the player moves, and a mispredicted branch
    /// costs more than the arithmetic.
    #[inline(always)]
    fn touch(&mut self, reward: &mut u32) {
        let slot = (self.player_y - 1) as usize;
        let entity = &mut self.entities[slot];
        let touching = entity.alive & (entity.x == self.player_x);
        let collected = touching & entity.gold;
        entity.alive &= !collected;
        *reward += u32::from(collected);
        self.terminal |= touching & !entity.gold;
    }
}

impl Rules for Asterix {
    const CHANNELS: &'static [Channel] = &[
        Channel {
            name: "player",
            symbol: '@',
        },
        Channel {
            name: "enemy",
            symbol: 'X',
        },
        Channel {
            name: "trail",
            symbol: '·',
        },
        Channel {
            name: "gold",
            symbol: '$',
        },
    ];
    const MINIMAL_ACTIONS: &'static [Act] = &[Act::Noop, Act::Left, Act::Up, Act::Right, Act::Down];

    fn new(ramping: bool) -> Self {
        Asterix {
            ramping,
            player_x: 5,
            player_y: 5,
            entities: [Entity::default(); SLOTS],
            spawn_speed: INIT_SPAWN_SPEED,
            spawn_timer: INIT_SPAWN_SPEED,
            move_speed: INIT_MOVE_INTERVAL,
            move_timer: INIT_MOVE_INTERVAL,
            ramp_timer: RAMP_INTERVAL,
            ramp_index: 0,
            terminal: false,
        }
    }

    fn reset(&mut self, _rng: &mut RandomState) {
        *self = Asterix::new(self.ramping);
    }

    fn act(&mut self, action: Act, rng: &mut RandomState) -> (u32, bool) {
        if self.terminal {
            return (0, true);
        }
        let mut reward = 0;

        if self.spawn_timer == 0 {
            self.spawn_entity(rng);
            self.spawn_timer = self.spawn_speed;
        }

        // `l r u d` move the player, within columns 0–9 and rows 1–8.
        self.player_x = (self.player_x + action.dx()).clamp(0, 9);
        self.player_y = (self.player_y + action.dy()).clamp(1, 8);

        // The player may have walked into an entity. Slot `i` is row
        // `i + 1` and entities never change rows, so only the player's row
        // can touch it (MinAtar checks all eight; the outcome is the same).
        self.touch(&mut reward);
        // Entities move, leave the screen at the far edge, or run into the player.
        if self.move_timer == 0 {
            self.move_timer = self.move_speed;
            for e in &mut self.entities {
                let x = e.x + step_x(e.rightward) * i32::from(e.alive);
                e.alive &= on_grid(x);
                e.x = x.clamp(0, 9);
            }
            self.touch(&mut reward);
        }

        self.spawn_timer -= 1;
        self.move_timer -= 1;

        if self.ramping && (self.spawn_speed > 1 || self.move_speed > 1) {
            if self.ramp_timer >= 0 {
                self.ramp_timer -= 1;
            } else {
                if self.move_speed > 1 && self.ramp_index % 2 == 1 {
                    self.move_speed -= 1;
                }
                if self.spawn_speed > 1 {
                    self.spawn_speed -= 1;
                }
                self.ramp_index += 1;
                self.ramp_timer = RAMP_INTERVAL;
            }
        }
        (reward, self.terminal)
    }

    #[inline(always)]
    fn draw(&self, planes: &mut [u8]) {
        mark(planes, PLAYER, self.player_y, self.player_x);
        // Each slot's branches below sit at their own address once the
        // loop is unrolled, and a slot fills or empties only every few
        // dozen frames, so the CPU predicts them well; skipping empty slots
        // beats computing them.
        for (slot, e) in self.entities.iter().enumerate() {
            if !e.alive {
                continue;
            }
            let row = (slot + 1) * GRID;
            let channel = if e.gold { GOLD } else { ENEMY };
            planes[channel * CELLS + row + e.x as usize] = 1;
            let back_x = e.x - step_x(e.rightward);
            if on_grid(back_x) {
                planes[TRAIL * CELLS + row + back_x as usize] = 1;
            }
        }
    }

    fn difficulty(&self) -> Option<u32> {
        Some(self.ramp_index)
    }
}
