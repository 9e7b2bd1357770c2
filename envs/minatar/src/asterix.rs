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
use crate::rules::{Act, CELLS, Channel, GRID, MoveTable, Rules, mark, move_table};

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
/// The player's moves: columns 0–9, rows 1–8.
const MOVE_X: MoveTable = move_table(true, 0, 9);
const MOVE_Y: MoveTable = move_table(false, 1, 8);
/// Values in an observation: 4 planes of 10 × 10.
const FRAME: usize = 4 * CELLS;

/// Asterix's state.
///
/// The eight entity slots (slot `i` is row `i + 1`) are stored field by
/// field, `xs[i]`, `steps[i]`, …, so that moving them all is a few vector
/// instructions rather than a loop. A slot keeps a column on the grid even
/// when it is empty.
///
/// Entities change only every few frames (when they move, spawn or are
/// collected), so the cells they light are worked out then, and each
/// observation is a zeroed frame with those cells and the player's set.
pub struct Asterix {
    ramping: bool,
    player_x: i32,
    player_y: i32,
    /// Column of each slot's entity, 0–9.
    xs: [u8; SLOTS],
    /// +1 for entities moving right, −1 (255, added with wrapping) for
    /// those moving left.
    steps: [u8; SLOTS],
    /// Bit `i` set: slot `i` holds an entity. A word of bits rather than
    /// eight `bool`s, so that updating one slot and then reading all eight
    /// are accesses of the same size: a narrow store followed by a wider
    /// load of the same bytes stalls the CPU's store forwarding.
    alive: u32,
    /// Bit `i` set: slot `i` holds gold rather than an enemy.
    gold: u32,
    /// The cells the entities light (an entity and its trail each, the
    /// trail only when on the grid), `lit[..n_lit]`: worked out when the
    /// entities change (every few frames), set in every observation. One
    /// spare entry, which `draw_entities` may write past the last lit cell.
    lit: [u16; 2 * SLOTS + 1],
    n_lit: usize,
    spawn_speed: i32,
    spawn_timer: i32,
    move_speed: i32,
    move_timer: i32,
    ramp_timer: i32,
    ramp_index: u32,
    /// MinAtar's `ramping and (spawn_speed > 1 or move_speed > 1)`, kept
    /// up to date when the speeds change rather than recomputed per frame.
    ramp_active: bool,
    terminal: bool,
}

impl Asterix {
    /// A new enemy or gold in a random free row (none if all are taken).
    fn spawn_entity(&mut self, rng: &mut RandomState) {
        let rightward = rng.rand() < 0.5;
        let gold = rng.rand() < 1.0 / 3.0;
        let mut free = [0usize; SLOTS];
        let mut n_free = 0;
        for slot in 0..SLOTS {
            if self.alive & (1 << slot) == 0 {
                free[n_free] = slot;
                n_free += 1;
            }
        }
        if n_free == 0 {
            return;
        }
        let slot = free[rng.randint(0, n_free as i64) as usize];
        self.xs[slot] = if rightward { 0 } else { 9 };
        self.steps[slot] = if rightward { 1 } else { u8::MAX };
        self.alive |= 1 << slot;
        self.gold = (self.gold & !(1 << slot)) | (u32::from(gold) << slot);
    }

    /// What touching the entity in the player's row does: gold is
    /// collected, an enemy kills; returns whether gold was collected. Slot
    /// `i` is row `i + 1` and entities never change rows, so only the
    /// player's row can touch it (MinAtar checks all eight; the outcome is
    /// the same).
    ///
    /// Written without branches: whether the player's row holds an entity
    /// changes at random as the player moves, and a mispredicted branch
    /// costs more than the arithmetic.
    #[inline(always)]
    fn touch(&mut self) -> bool {
        let slot = (self.player_y - 1) as usize;
        let bit = 1 << slot;
        let touching = (self.alive & bit != 0) & (i32::from(self.xs[slot]) == self.player_x);
        let gold = self.gold & bit != 0;
        let collected = touching & gold;
        self.alive &= !(u32::from(collected) << slot);
        self.terminal |= touching & !gold;
        collected
    }

    /// Works out `lit` for the entities as they stand.
    ///
    /// Every slot's two cells are written to `lit`, and counted only if
    /// lit, so there is no branch to mispredict (which slots hold an
    /// entity changes at random).
    fn draw_entities(&mut self) {
        let mut n = 0;
        for slot in 0..SLOTS {
            let row = (slot + 1) * GRID;
            let alive = self.alive & (1 << slot) != 0;
            let channel = if self.gold & (1 << slot) != 0 {
                GOLD
            } else {
                ENEMY
            };
            let cell = channel * CELLS + row + usize::from(self.xs[slot]);
            // The cell it came from, unless that is off the grid (x − 1
            // wraps to 255 at the left edge).
            let back_x = self.xs[slot].wrapping_sub(self.steps[slot]);
            let trail = TRAIL * CELLS + row + usize::from(back_x.min(9));
            self.lit[n] = cell as u16;
            n += usize::from(alive);
            self.lit[n] = trail as u16;
            n += usize::from(alive & (back_x < GRID as u8));
        }
        self.n_lit = n;
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
            xs: [0; SLOTS],
            steps: [1; SLOTS],
            alive: 0,
            gold: 0,
            lit: [0; 2 * SLOTS + 1],
            n_lit: 0,
            spawn_speed: INIT_SPAWN_SPEED,
            spawn_timer: INIT_SPAWN_SPEED,
            move_speed: INIT_MOVE_INTERVAL,
            move_timer: INIT_MOVE_INTERVAL,
            ramp_timer: RAMP_INTERVAL,
            ramp_index: 0,
            ramp_active: ramping,
            terminal: false,
        }
    }

    fn reset(&mut self, _rng: &mut RandomState) {
        *self = Asterix::new(self.ramping);
    }

    #[inline]
    fn act(&mut self, action: Act, rng: &mut RandomState) -> (u32, bool) {
        if self.terminal {
            return (0, true);
        }
        let mut reward = 0;
        // Whether the entity planes need redrawing.
        let mut changed = false;

        if self.spawn_timer == 0 {
            self.spawn_entity(rng);
            self.spawn_timer = self.spawn_speed;
            changed = true;
        }

        // `l r u d` move the player, within columns 0–9 and rows 1–8.
        self.player_x = MOVE_X[action as usize][self.player_x as usize];
        self.player_y = MOVE_Y[action as usize][self.player_y as usize];

        // The player may have walked into an entity.
        let collected = self.touch();
        reward += u32::from(collected);
        changed |= collected;
        // Entities move, leave the screen at the far edge, or run into the
        // player. Empty slots stay put.
        if self.move_timer == 0 {
            self.move_timer = self.move_speed;
            let mut on_grid = 0;
            for i in 0..SLOTS {
                let x = if self.alive & (1 << i) != 0 {
                    self.xs[i].wrapping_add(self.steps[i])
                } else {
                    self.xs[i]
                };
                // −1 wrapped to 255, or 10: off the grid.
                on_grid |= u32::from(x < GRID as u8) << i;
                self.xs[i] = x.min(9);
            }
            self.alive &= on_grid;
            reward += u32::from(self.touch());
            changed = true;
        }
        if changed {
            self.draw_entities();
        }

        self.spawn_timer -= 1;
        self.move_timer -= 1;

        if self.ramp_active {
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
                self.ramp_active = self.spawn_speed > 1 || self.move_speed > 1;
            }
        }
        (reward, self.terminal)
    }

    #[inline(always)]
    fn draw_on_zeros(&self, planes: &mut [u8]) {
        let planes: &mut [u8; FRAME] = planes
            .try_into()
            .expect("Asterix draws 4 planes of 10 x 10");
        mark(planes, PLAYER, self.player_y, self.player_x);
        for &cell in &self.lit[..self.n_lit] {
            planes[usize::from(cell)] = 1;
        }
    }

    fn difficulty(&self) -> Option<u32> {
        Some(self.ramp_index)
    }
}
