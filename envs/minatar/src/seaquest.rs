//! Seaquest.
//!
//! **Rules.** The player steers a two-cell submarine (front and back, which
//! shows its heading) anywhere from the surface (row 0) down to row 8, and
//! fires torpedoes forward, at most one every 5 frames. Enemy fish and
//! enemy submarines enter rows 1 to 8 from either side and cross the
//! screen; enemy submarines also fire bullets every 10 frames. Divers swim
//! across too, and the player picks one up by touching it, carrying at
//! most 6 (a gauge on the bottom row shows how many). Oxygen, shown by
//! another gauge, runs down by one unit per frame below the surface.
//! Surfacing with at least one diver refills the oxygen and drops one
//! diver; surfacing with all 6 drops all of them and pays a bonus for the
//! oxygen left. Each surfacing raises the difficulty (when ramping is
//! enabled): enemies spawn more often and, every other time, move faster.
//! Trail channels mark the cell behind each fish, enemy sub and diver.
//!
//! **Reward.** +1 per enemy hit by a torpedo; when surfacing with 6 divers,
//! `⌊10 · oxygen / 200⌋` more.
//!
//! **End.** The episode ends when the submarine touches a fish, an enemy
//! sub or an enemy bullet, when its oxygen runs out, or when it surfaces
//! with no diver on board.
//!
//! **Quirks kept from MinAtar 1.0.15.** Surfacing with 6 divers leaves the
//! diver count at −1 (it is set to 0 and then decremented), after which
//! surfacing no longer ends the game until the count climbs back to 0.
//! Entities are removed from Python lists by value while iterating over
//! them backwards (see [`crate::rules::remove_first_equal`]); an enemy sub
//! removed in a frame still fires if its timer says so. We reproduce all of
//! this so that frames match MinAtar's exactly.
//!
//! **Actions.** All six are distinct: `n l u r d f`.

use crate::numpy_rng::RandomState;
use crate::rules::{
    Act, CELLS, Channel, GRID, MoveTable, Reversed, Rules, follow_removal, mark, move_table,
    on_grid, remove_first_equal, step_x,
};

/// The front of the player's submarine.
pub const SUB_FRONT: usize = 0;
/// The back of the player's submarine.
pub const SUB_BACK: usize = 1;
/// The player's torpedoes.
pub const FRIENDLY_BULLET: usize = 2;
/// The cell behind each fish, enemy sub and diver.
pub const TRAIL: usize = 3;
/// Enemy subs' bullets.
pub const ENEMY_BULLET: usize = 4;
/// Enemy fish.
pub const ENEMY_FISH: usize = 5;
/// Enemy submarines.
pub const ENEMY_SUB: usize = 6;
/// Oxygen gauge, bottom row from the left.
pub const OXYGEN_GAUGE: usize = 7;
/// Rescued-diver gauge, bottom row ending at column 8.
pub const DIVER_GAUGE: usize = 8;
/// Divers waiting to be rescued.
pub const DIVER: usize = 9;

/// Full oxygen, in frames.
const MAX_OXYGEN: i32 = 200;
/// Initial frames between enemy spawns.
const INIT_SPAWN_SPEED: i32 = 20;
/// Frames between diver spawns.
const DIVER_SPAWN_SPEED: i32 = 30;
/// Initial frames between enemy moves.
const INIT_MOVE_INTERVAL: i32 = 5;
/// Frames between the player's shots.
const SHOT_COOL_DOWN: i32 = 5;
/// Frames between an enemy sub's shots.
const ENEMY_SHOT_INTERVAL: i32 = 10;
/// Frames between diver moves.
const DIVER_MOVE_INTERVAL: i32 = 5;
/// The sub's moves: columns 0–9, rows 0–8.
const MOVE_X: MoveTable = move_table(true, 0, 9);
const MOVE_Y: MoveTable = move_table(false, 0, 8);
/// Divers the submarine can carry.
const MAX_DIVERS: i32 = 6;

/// `OXYGEN_ROWS[n]`: the oxygen gauge's row with `n` cells lit, columns
/// `[0, n)`.
const OXYGEN_ROWS: [[u8; GRID]; GRID + 1] = {
    let mut rows = [[0; GRID]; GRID + 1];
    let mut n = 0;
    while n <= GRID {
        let mut x = 0;
        while x < n {
            rows[n][x] = 1;
            x += 1;
        }
        n += 1;
    }
    rows
};

/// `DIVER_ROWS[n]`: the diver gauge's row for `n` divers, columns
/// `[9 − n, 9)`.
const DIVER_ROWS: [[u8; GRID]; MAX_DIVERS as usize + 1] = {
    let mut rows = [[0; GRID]; MAX_DIVERS as usize + 1];
    let mut n = 0;
    while n <= MAX_DIVERS as usize {
        let mut x = 9 - n;
        while x < 9 {
            rows[n][x] = 1;
            x += 1;
        }
        n += 1;
    }
    rows
};

/// Marks a fish, enemy sub or diver at `(y, x)` on `channel`, and its trail,
/// the cell behind it, unless that is off the grid. Like [`mark`], cells
/// off the grid are ignored.
#[inline(always)]
fn mark_with_trail(planes: &mut [u8], channel: usize, y: i32, x: i32, rightward: bool) {
    if on_grid(y) && on_grid(x) {
        let cell = y as usize * GRID + x as usize;
        planes[channel * CELLS + cell] = 1;
        let back = x - step_x(rightward);
        if on_grid(back) {
            planes[TRAIL * CELLS + y as usize * GRID + back as usize] = 1;
        }
    } else {
        mark(planes, TRAIL, y, x - step_x(rightward));
    }
}

/// A torpedo or an enemy bullet: `[x, y, rightward]` in MinAtar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bullet {
    x: i32,
    y: i32,
    rightward: bool,
}

/// A fish or a diver: `[x, y, rightward, move_timer]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Swimmer {
    x: i32,
    y: i32,
    rightward: bool,
    timer: i32,
}

/// An enemy sub: `[x, y, rightward, move_timer, shot_timer]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EnemySub {
    x: i32,
    y: i32,
    rightward: bool,
    timer: i32,
    shot_timer: i32,
}

/// Seaquest's state.
pub struct Seaquest {
    ramping: bool,
    oxygen: i32,
    diver_count: i32,
    sub_x: i32,
    sub_y: i32,
    /// Facing right.
    sub_right: bool,
    f_bullets: Vec<Bullet>,
    e_bullets: Vec<Bullet>,
    e_fish: Vec<Swimmer>,
    e_subs: Vec<EnemySub>,
    divers: Vec<Swimmer>,
    e_spawn_speed: i32,
    e_spawn_timer: i32,
    d_spawn_timer: i32,
    move_speed: i32,
    ramp_index: u32,
    shot_timer: i32,
    /// At the surface since the last refill.
    surface: bool,
    terminal: bool,
}

/// Lists start with room for this many entities, so steps don't allocate.
const CAPACITY: usize = 32;

impl Seaquest {
    fn at_sub(&self, x: i32, y: i32) -> bool {
        (x, y) == (self.sub_x, self.sub_y)
    }

    /// A fish or enemy sub in a random row and direction, unless that row
    /// already has an enemy heading the other way.
    fn spawn_enemy(&mut self, rng: &mut RandomState) {
        let rightward = rng.rand() < 0.5;
        let is_sub = rng.rand() < 1.0 / 3.0;
        let x = if rightward { 0 } else { 9 };
        let y = rng.randint(1, 9) as i32;
        let head_on = self
            .e_subs
            .iter()
            .map(|s| (s.y, s.rightward))
            .chain(self.e_fish.iter().map(|f| (f.y, f.rightward)))
            .any(|(row, right)| row == y && right != rightward);
        if head_on {
            return;
        }
        if is_sub {
            self.e_subs.push(EnemySub {
                x,
                y,
                rightward,
                timer: self.move_speed,
                shot_timer: ENEMY_SHOT_INTERVAL,
            });
        } else {
            self.e_fish.push(Swimmer {
                x,
                y,
                rightward,
                timer: self.move_speed,
            });
        }
    }

    fn spawn_diver(&mut self, rng: &mut RandomState) {
        let rightward = rng.rand() < 0.5;
        let x = if rightward { 0 } else { 9 };
        let y = rng.randint(1, 9) as i32;
        self.divers.push(Swimmer {
            x,
            y,
            rightward,
            timer: DIVER_MOVE_INTERVAL,
        });
    }

    /// Surfacing with at least one diver: refill oxygen, drop divers, ramp.
    fn surface(&mut self) -> u32 {
        self.surface = true;
        let mut reward = 0;
        if self.diver_count == MAX_DIVERS {
            self.diver_count = 0;
            // ⌊10 · oxygen / 200⌋; oxygen is never negative here.
            reward = (self.oxygen * 10).div_euclid(MAX_OXYGEN).max(0) as u32;
        }
        self.oxygen = MAX_OXYGEN;
        // MinAtar decrements even after emptying the sub (count becomes −1).
        self.diver_count -= 1;
        if self.ramping && (self.e_spawn_speed > 1 || self.move_speed > 2) {
            if self.move_speed > 2 && self.ramp_index % 2 == 1 {
                self.move_speed -= 1;
            }
            if self.e_spawn_speed > 1 {
                self.e_spawn_speed -= 1;
            }
            self.ramp_index += 1;
        }
        reward
    }

    /// Torpedoes move; one leaving the screen or hitting an enemy goes.
    fn move_torpedoes(&mut self, reward: &mut u32) {
        let mut visit = Reversed::new(self.f_bullets.len());
        while let Some(i) = visit.next(self.f_bullets.len()) {
            self.f_bullets[i].x += step_x(self.f_bullets[i].rightward);
            let bullet = self.f_bullets[i];
            if !on_grid(bullet.x) {
                remove_first_equal(&mut self.f_bullets, &bullet);
                continue;
            }
            let hits = |x: i32, y: i32| (x, y) == (bullet.x, bullet.y);
            if let Some(k) = self.e_fish.iter().position(|f| hits(f.x, f.y)) {
                self.e_fish.remove(k);
                remove_first_equal(&mut self.f_bullets, &bullet);
                *reward += 1;
            } else if let Some(k) = self.e_subs.iter().position(|s| hits(s.x, s.y)) {
                self.e_subs.remove(k);
                remove_first_equal(&mut self.f_bullets, &bullet);
                *reward += 1;
            }
        }
    }

    /// Divers move every 6 frames and are picked up on contact.
    fn move_divers(&mut self) {
        let mut visit = Reversed::new(self.divers.len());
        while let Some(i) = visit.next(self.divers.len()) {
            let diver = self.divers[i];
            if self.at_sub(diver.x, diver.y) && self.diver_count < MAX_DIVERS {
                remove_first_equal(&mut self.divers, &diver);
                self.diver_count += 1;
            } else if diver.timer == 0 {
                let diver = &mut self.divers[i];
                diver.timer = DIVER_MOVE_INTERVAL;
                diver.x += step_x(diver.rightward);
                let diver = *diver;
                if !on_grid(diver.x) {
                    remove_first_equal(&mut self.divers, &diver);
                } else if self.at_sub(diver.x, diver.y) && self.diver_count < MAX_DIVERS {
                    remove_first_equal(&mut self.divers, &diver);
                    self.diver_count += 1;
                }
            } else {
                self.divers[i].timer -= 1;
            }
        }
    }

    /// Enemy subs move, collide and fire.
    fn move_enemy_subs(&mut self, reward: &mut u32) {
        let mut visit = Reversed::new(self.e_subs.len());
        while let Some(i) = visit.next(self.e_subs.len()) {
            // Python keeps a reference to the sub even after removing it
            // from the list, so `sub` is our copy and `current` where it
            // sits in the list, if it still does.
            let mut current = Some(i);
            let mut sub = self.e_subs[i];
            if self.at_sub(sub.x, sub.y) {
                self.terminal = true;
            }
            if sub.timer == 0 {
                sub.timer = self.move_speed;
                sub.x += step_x(sub.rightward);
                self.e_subs[i] = sub;
                if !on_grid(sub.x) {
                    let removed = remove_first_equal(&mut self.e_subs, &sub);
                    follow_removal(&mut current, removed);
                } else if self.at_sub(sub.x, sub.y) {
                    self.terminal = true;
                } else if let Some(k) = self
                    .f_bullets
                    .iter()
                    .position(|b| (b.x, b.y) == (sub.x, sub.y))
                {
                    let removed = remove_first_equal(&mut self.e_subs, &sub);
                    follow_removal(&mut current, removed);
                    self.f_bullets.remove(k);
                    *reward += 1;
                }
            } else {
                sub.timer -= 1;
            }
            if sub.shot_timer == 0 {
                sub.shot_timer = ENEMY_SHOT_INTERVAL;
                self.e_bullets.push(Bullet {
                    x: sub.x,
                    y: sub.y,
                    rightward: sub.rightward,
                });
            } else {
                sub.shot_timer -= 1;
            }
            if let Some(c) = current {
                self.e_subs[c] = sub;
            }
        }
    }

    /// Enemy bullets move one cell per frame.
    fn move_enemy_bullets(&mut self) {
        let mut visit = Reversed::new(self.e_bullets.len());
        while let Some(i) = visit.next(self.e_bullets.len()) {
            if self.at_sub(self.e_bullets[i].x, self.e_bullets[i].y) {
                self.terminal = true;
            }
            self.e_bullets[i].x += step_x(self.e_bullets[i].rightward);
            let bullet = self.e_bullets[i];
            if !on_grid(bullet.x) {
                remove_first_equal(&mut self.e_bullets, &bullet);
            } else if self.at_sub(bullet.x, bullet.y) {
                self.terminal = true;
            }
        }
    }

    /// Fish move and collide.
    fn move_fish(&mut self, reward: &mut u32) {
        let mut visit = Reversed::new(self.e_fish.len());
        while let Some(i) = visit.next(self.e_fish.len()) {
            if self.at_sub(self.e_fish[i].x, self.e_fish[i].y) {
                self.terminal = true;
            }
            if self.e_fish[i].timer == 0 {
                let fish = &mut self.e_fish[i];
                fish.timer = self.move_speed;
                fish.x += step_x(fish.rightward);
                let fish = *fish;
                if !on_grid(fish.x) {
                    remove_first_equal(&mut self.e_fish, &fish);
                } else if self.at_sub(fish.x, fish.y) {
                    self.terminal = true;
                } else if let Some(k) = self
                    .f_bullets
                    .iter()
                    .position(|b| (b.x, b.y) == (fish.x, fish.y))
                {
                    remove_first_equal(&mut self.e_fish, &fish);
                    self.f_bullets.remove(k);
                    *reward += 1;
                }
            } else {
                self.e_fish[i].timer -= 1;
            }
        }
    }
}

impl Rules for Seaquest {
    const CHANNELS: &'static [Channel] = &[
        Channel {
            name: "sub_front",
            symbol: 'S',
        },
        Channel {
            name: "sub_back",
            symbol: 's',
        },
        Channel {
            name: "friendly_bullet",
            symbol: '-',
        },
        Channel {
            name: "trail",
            symbol: '·',
        },
        Channel {
            name: "enemy_bullet",
            symbol: '*',
        },
        Channel {
            name: "enemy_fish",
            symbol: 'F',
        },
        Channel {
            name: "enemy_sub",
            symbol: 'E',
        },
        Channel {
            name: "oxygen_guage",
            symbol: 'O',
        },
        Channel {
            name: "diver_guage",
            symbol: 'D',
        },
        Channel {
            name: "diver",
            symbol: 'd',
        },
    ];
    const MINIMAL_ACTIONS: &'static [Act] = &Act::ALL;

    fn new(ramping: bool) -> Self {
        Seaquest {
            ramping,
            oxygen: MAX_OXYGEN,
            diver_count: 0,
            sub_x: 5,
            sub_y: 0,
            sub_right: false,
            f_bullets: Vec::with_capacity(CAPACITY),
            e_bullets: Vec::with_capacity(CAPACITY),
            e_fish: Vec::with_capacity(CAPACITY),
            e_subs: Vec::with_capacity(CAPACITY),
            divers: Vec::with_capacity(CAPACITY),
            e_spawn_speed: INIT_SPAWN_SPEED,
            e_spawn_timer: INIT_SPAWN_SPEED,
            d_spawn_timer: DIVER_SPAWN_SPEED,
            move_speed: INIT_MOVE_INTERVAL,
            ramp_index: 0,
            shot_timer: 0,
            surface: true,
            terminal: false,
        }
    }

    fn reset(&mut self, _rng: &mut RandomState) {
        self.oxygen = MAX_OXYGEN;
        self.diver_count = 0;
        self.sub_x = 5;
        self.sub_y = 0;
        self.sub_right = false;
        // Clearing keeps the lists' capacity.
        self.f_bullets.clear();
        self.e_bullets.clear();
        self.e_fish.clear();
        self.e_subs.clear();
        self.divers.clear();
        self.e_spawn_speed = INIT_SPAWN_SPEED;
        self.e_spawn_timer = INIT_SPAWN_SPEED;
        self.d_spawn_timer = DIVER_SPAWN_SPEED;
        self.move_speed = INIT_MOVE_INTERVAL;
        self.ramp_index = 0;
        self.shot_timer = 0;
        self.surface = true;
        self.terminal = false;
    }

    fn act(&mut self, action: Act, rng: &mut RandomState) -> (u32, bool) {
        if self.terminal {
            return (0, true);
        }
        let mut reward = 0;

        if self.e_spawn_timer == 0 {
            self.spawn_enemy(rng);
            self.e_spawn_timer = self.e_spawn_speed;
        }
        if self.d_spawn_timer == 0 {
            self.spawn_diver(rng);
            self.d_spawn_timer = DIVER_SPAWN_SPEED;
        }

        if action == Act::Fire && self.shot_timer == 0 {
            self.f_bullets.push(Bullet {
                x: self.sub_x,
                y: self.sub_y,
                rightward: self.sub_right,
            });
            self.shot_timer = SHOT_COOL_DOWN;
        }
        // `l r u d` move the sub within columns 0–9 and rows 0–8; `l` and
        // `r` also turn it. Table loads and selects, not a `match`: the
        // actions are random and a mispredicted branch costs more.
        self.sub_x = MOVE_X[action as usize][self.sub_x as usize];
        self.sub_y = MOVE_Y[action as usize][self.sub_y as usize];
        self.sub_right = (self.sub_right && action != Act::Left) || action == Act::Right;

        self.move_torpedoes(&mut reward);
        self.move_divers();
        self.move_enemy_subs(&mut reward);
        self.move_enemy_bullets();
        self.move_fish(&mut reward);

        self.e_spawn_timer -= i32::from(self.e_spawn_timer > 0);
        self.d_spawn_timer -= i32::from(self.d_spawn_timer > 0);
        self.shot_timer -= i32::from(self.shot_timer > 0);
        self.terminal |= self.oxygen <= 0;
        // Below the surface oxygen runs down; arriving at the surface
        // (rare, so the only branch) refills it or ends the game.
        let below = self.sub_y > 0;
        self.oxygen -= i32::from(below);
        self.surface &= !below;
        if !below && !self.surface {
            if self.diver_count == 0 {
                self.terminal = true;
            } else {
                reward += self.surface();
            }
        }
        (reward, self.terminal)
    }

    #[inline(always)]
    fn draw_on_zeros(&self, planes: &mut [u8]) {
        mark(planes, SUB_FRONT, self.sub_y, self.sub_x);
        let back_x = if self.sub_right {
            self.sub_x - 1
        } else {
            self.sub_x + 1
        };
        mark(planes, SUB_BACK, self.sub_y, back_x);
        // Python slices: oxygen fills columns [0, ⌊10 · max(0, oxygen) / 200⌋),
        // divers fill [9 − count, 9) (empty when the count is negative).
        // Each gauge row is copied whole from a table, rather than lit by
        // a loop whose length changes as the gauge does.
        let oxygen_cells = (self.oxygen.max(0) * 10 / MAX_OXYGEN).min(GRID as i32);
        let divers = self.diver_count.clamp(0, MAX_DIVERS);
        let bottom = 9 * GRID;
        planes[OXYGEN_GAUGE * CELLS + bottom..][..GRID]
            .copy_from_slice(&OXYGEN_ROWS[oxygen_cells as usize]);
        planes[DIVER_GAUGE * CELLS + bottom..][..GRID]
            .copy_from_slice(&DIVER_ROWS[divers as usize]);
        for b in &self.f_bullets {
            mark(planes, FRIENDLY_BULLET, b.y, b.x);
        }
        for b in &self.e_bullets {
            mark(planes, ENEMY_BULLET, b.y, b.x);
        }
        for f in &self.e_fish {
            mark_with_trail(planes, ENEMY_FISH, f.y, f.x, f.rightward);
        }
        for s in &self.e_subs {
            mark_with_trail(planes, ENEMY_SUB, s.y, s.x, s.rightward);
        }
        for d in &self.divers {
            mark_with_trail(planes, DIVER, d.y, d.x, d.rightward);
        }
    }

    fn difficulty(&self) -> Option<u32> {
        Some(self.ramp_index)
    }
}
