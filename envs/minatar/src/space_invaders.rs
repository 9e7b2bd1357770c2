//! Space Invaders.
//!
//! **Rules.** The player moves a cannon along the bottom row and fires
//! bullets straight up, at most one every 5 frames. A 4 × 6 block of aliens
//! starts at the top and marches sideways; when one reaches the edge it is
//! heading for, the whole block steps down one row and turns around. The
//! block moves once every `min(aliens left, move interval)` frames, so it
//! speeds up as it thins out. Every 10 frames the lowest alien of the
//! column nearest the cannon drops a bullet, which falls one row per
//! frame. Two channels, one per direction, repeat the alien positions to
//! show which way the block is moving. When the last alien is shot a new
//! block appears; with difficulty ramping, each new block moves one frame
//! faster, down to a move interval of 6.
//!
//! **Reward.** +1 per alien shot.
//!
//! **End.** The episode ends when an alien bullet or an alien reaches the
//! cannon, or when the block tries to step down while aliens are already
//! on the bottom row.
//!
//! **Actions.** Minimal set `n l r f`; `u d` do nothing.

use crate::numpy_rng::RandomState;
use crate::rules::{Act, CELLS, Channel, GRID, Rules, mark, plane};

/// The player's cannon, on the bottom row.
pub const CANNON: usize = 0;
/// Aliens.
pub const ALIEN: usize = 1;
/// Aliens, when the block moves left.
pub const ALIEN_LEFT: usize = 2;
/// Aliens, when the block moves right.
pub const ALIEN_RIGHT: usize = 3;
/// The player's bullets.
pub const FRIENDLY_BULLET: usize = 4;
/// Alien bullets.
pub const ENEMY_BULLET: usize = 5;

/// Frames between the player's shots.
const SHOT_COOL_DOWN: i32 = 5;
/// Initial frames between alien moves.
const ENEMY_MOVE_INTERVAL: i32 = 12;
/// Fastest move interval difficulty ramping reaches.
const FASTEST_MOVE_INTERVAL: i32 = 6;
/// Frames between alien shots.
const ENEMY_SHOT_INTERVAL: i32 = 10;

/// A 10 × 10 occupancy map, row-major.
type Map = [u8; CELLS];

fn at(y: usize, x: usize) -> usize {
    y * GRID + x
}

/// A fresh block of aliens: rows 0–3, columns 2–7.
fn alien_block() -> Map {
    let mut map = [0; CELLS];
    for y in 0..4 {
        map[at(y, 2)..at(y, 8)].fill(1);
    }
    map
}

fn count(map: &Map) -> i32 {
    map.iter().map(|&v| i32::from(v)).sum()
}

fn column_occupied(map: &Map, x: usize) -> bool {
    (0..GRID).any(|y| map[at(y, x)] != 0)
}

fn row_occupied(map: &Map, y: usize) -> bool {
    map[at(y, 0)..at(y + 1, 0)].iter().any(|&v| v != 0)
}

/// numpy's `np.roll(map, shift, axis=0)` for a shift of ±1: rows move
/// down (`+1`) or up (`−1`), wrapping around.
fn roll_rows(map: &mut Map, down: bool) {
    if down {
        map.rotate_right(GRID);
    } else {
        map.rotate_left(GRID);
    }
}

/// `np.roll(map, shift, axis=1)` for a shift of ±1, wrapping each row.
fn roll_columns(map: &mut Map, right: bool) {
    for row in map.chunks_exact_mut(GRID) {
        if right {
            row.rotate_right(1);
        } else {
            row.rotate_left(1);
        }
    }
}

/// Space Invaders' state.
pub struct SpaceInvaders {
    ramping: bool,
    cannon: i32,
    f_bullets: Map,
    e_bullets: Map,
    aliens: Map,
    /// −1 left, +1 right.
    alien_dir: i32,
    enemy_move_interval: i32,
    alien_move_timer: i32,
    alien_shot_timer: i32,
    ramp_index: u32,
    shot_timer: i32,
    terminal: bool,
}

impl SpaceInvaders {
    /// The lowest alien in the occupied column nearest the cannon, ties
    /// going to the left (Python's stable sort of columns by distance).
    fn nearest_alien(&self) -> Option<(usize, usize)> {
        let pos = self.cannon as usize;
        let columns = (0..GRID).flat_map(|d| {
            let left = pos.checked_sub(d);
            let right = if d > 0 && pos + d < GRID {
                Some(pos + d)
            } else {
                None
            };
            left.into_iter().chain(right)
        });
        for x in columns {
            if let Some(y) = (0..GRID).rev().find(|&y| self.aliens[at(y, x)] == 1) {
                return Some((y, x));
            }
        }
        None
    }

    fn cannon_cell(&self) -> usize {
        at(9, self.cannon as usize)
    }
}

impl Rules for SpaceInvaders {
    const CHANNELS: &'static [Channel] = &[
        Channel {
            name: "cannon",
            symbol: 'A',
        },
        Channel {
            name: "alien",
            symbol: 'W',
        },
        Channel {
            name: "alien_left",
            symbol: '<',
        },
        Channel {
            name: "alien_right",
            symbol: '>',
        },
        Channel {
            name: "friendly_bullet",
            symbol: '|',
        },
        Channel {
            name: "enemy_bullet",
            symbol: '!',
        },
    ];
    const MINIMAL_ACTIONS: &'static [Act] = &[Act::Noop, Act::Left, Act::Right, Act::Fire];

    fn new(ramping: bool) -> Self {
        SpaceInvaders {
            ramping,
            cannon: 5,
            f_bullets: [0; CELLS],
            e_bullets: [0; CELLS],
            aliens: alien_block(),
            alien_dir: -1,
            enemy_move_interval: ENEMY_MOVE_INTERVAL,
            alien_move_timer: ENEMY_MOVE_INTERVAL,
            alien_shot_timer: ENEMY_SHOT_INTERVAL,
            ramp_index: 0,
            shot_timer: 0,
            terminal: false,
        }
    }

    fn reset(&mut self, _rng: &mut RandomState) {
        *self = SpaceInvaders::new(self.ramping);
    }

    fn act(&mut self, action: Act, _rng: &mut RandomState) -> (u32, bool) {
        if self.terminal {
            return (0, true);
        }
        match action {
            Act::Fire if self.shot_timer == 0 => {
                let cell = self.cannon_cell();
                self.f_bullets[cell] = 1;
                self.shot_timer = SHOT_COOL_DOWN;
            }
            Act::Left => self.cannon = (self.cannon - 1).max(0),
            Act::Right => self.cannon = (self.cannon + 1).min(9),
            _ => {}
        }

        // The player's bullets rise a row; the top row's wrap to the bottom
        // and are cleared there.
        roll_rows(&mut self.f_bullets, false);
        self.f_bullets[at(9, 0)..].fill(0);
        // Alien bullets fall a row; the bottom row's wrap to the top and
        // are cleared there.
        roll_rows(&mut self.e_bullets, true);
        self.e_bullets[..GRID].fill(0);
        if self.e_bullets[self.cannon_cell()] != 0 {
            self.terminal = true;
        }

        if self.aliens[self.cannon_cell()] != 0 {
            self.terminal = true;
        }
        if self.alien_move_timer == 0 {
            self.alien_move_timer = count(&self.aliens).min(self.enemy_move_interval);
            let at_edge = (column_occupied(&self.aliens, 0) && self.alien_dir < 0)
                || (column_occupied(&self.aliens, 9) && self.alien_dir > 0);
            if at_edge {
                self.alien_dir = -self.alien_dir;
                if row_occupied(&self.aliens, 9) {
                    self.terminal = true;
                }
                roll_rows(&mut self.aliens, true);
            } else {
                roll_columns(&mut self.aliens, self.alien_dir > 0);
            }
            if self.aliens[self.cannon_cell()] != 0 {
                self.terminal = true;
            }
        }
        if self.alien_shot_timer == 0 {
            self.alien_shot_timer = ENEMY_SHOT_INTERVAL;
            // The block is never empty here: a cleared block respawns at
            // the end of the frame.
            if let Some((y, x)) = self.nearest_alien() {
                self.e_bullets[at(y, x)] = 1;
            }
        }

        let mut reward = 0;
        for (alien, bullet) in self.aliens.iter_mut().zip(self.f_bullets.iter_mut()) {
            if *alien != 0 && *alien == *bullet {
                reward += 1;
                *alien = 0;
                *bullet = 0;
            }
        }

        if self.shot_timer > 0 {
            self.shot_timer -= 1;
        }
        self.alien_move_timer -= 1;
        self.alien_shot_timer -= 1;
        if count(&self.aliens) == 0 {
            if self.enemy_move_interval > FASTEST_MOVE_INTERVAL && self.ramping {
                self.enemy_move_interval -= 1;
                self.ramp_index += 1;
            }
            self.aliens = alien_block();
        }
        (reward, self.terminal)
    }

    #[inline(always)]
    fn draw_on_zeros(&self, planes: &mut [u8]) {
        mark(planes, CANNON, 9, self.cannon);
        plane(planes, ALIEN).copy_from_slice(&self.aliens);
        let direction = if self.alien_dir < 0 {
            ALIEN_LEFT
        } else {
            ALIEN_RIGHT
        };
        plane(planes, direction).copy_from_slice(&self.aliens);
        plane(planes, FRIENDLY_BULLET).copy_from_slice(&self.f_bullets);
        plane(planes, ENEMY_BULLET).copy_from_slice(&self.e_bullets);
    }

    fn difficulty(&self) -> Option<u32> {
        Some(self.ramp_index)
    }
}
