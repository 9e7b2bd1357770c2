//! Freeway.
//!
//! **Rules.** A chicken crosses an eight-lane road, moving only up and down
//! in column 4, and at most once every 3 frames. It starts on the bottom
//! row. Each lane (rows 1 to 8) has one car, which moves horizontally one
//! cell every 1 to 5 frames, in a random direction, wrapping around at the
//! edges. A car that meets the chicken sends it back to the bottom row.
//! Reaching the top row scores, sends the chicken back to the bottom and
//! gives every car a new random speed and direction. Five trail channels
//! mark the cell behind each car; which of them is lit tells its speed.
//!
//! **Reward.** +1 each time the chicken reaches the top row.
//!
//! **End.** After 2,500 frames: the episode lasts exactly 2,501 steps.
//!
//! **Actions.** Minimal set `n u d`; `l r f` do nothing. No difficulty ramp.

use crate::numpy_rng::RandomState;
use crate::rules::{Act, CELLS, Channel, GRID, MoveTable, Rules, mark, move_table};

/// The chicken.
pub const CHICKEN: usize = 0;
/// The cars.
pub const CAR: usize = 1;
/// Trail of a car that moves every frame.
pub const SPEED1: usize = 2;
/// Trail of a car that moves every 2 frames.
pub const SPEED2: usize = 3;
/// Trail of a car that moves every 3 frames.
pub const SPEED3: usize = 4;
/// Trail of a car that moves every 4 frames.
pub const SPEED4: usize = 5;
/// Trail of a car that moves every 5 frames.
pub const SPEED5: usize = 6;

/// Trail channel for each speed `1..=5`.
const SPEED_TRAILS: [usize; 5] = [SPEED1, SPEED2, SPEED3, SPEED4, SPEED5];
/// Frames between chicken moves.
const PLAYER_SPEED: i32 = 3;
/// Frames before the episode ends.
const TIME_LIMIT: i32 = 2500;
/// The chicken's column.
const CHICKEN_X: i32 = 4;
/// One car per lane.
const LANES: usize = 8;

/// The chicken's moves: rows 0–9 (the column never changes).
const MOVE_Y: MoveTable = move_table(false, 0, 9);
/// Values in an observation: 7 planes of 10 × 10.
const FRAME: usize = 7 * CELLS;

/// Freeway's state.
///
/// The car in lane `i` drives on row `i + 1`. The cars are stored field by
/// field (`xs[i]`, `timers[i]`, …) so that moving all eight is a few vector
/// instructions.
pub struct Freeway {
    /// Each car's column.
    xs: [i32; LANES],
    /// Frames until each car next moves.
    timers: [i32; LANES],
    /// Frames between moves: MinAtar's `abs(velocity)`. Zero only if
    /// numpy's `rand()` returned exactly 0.5 (`np.sign(0) == 0`); MinAtar
    /// then moves the car left every frame, and so do we.
    periods: [i32; LANES],
    /// +1 for cars moving right (positive velocity), −1 otherwise.
    dirs: [i32; LANES],
    /// Where each car's trail goes: the first cell of its row in the trail
    /// plane for its speed.
    trail_rows: [usize; LANES],
    /// 1 if the car draws a trail. MinAtar reuses the previous car's trail
    /// plane for a car with no speed (see `periods`); the first car then
    /// has none, and draws a 0 in its own row.
    trail_lit: [u8; LANES],
    chicken_y: i32,
    move_timer: i32,
    terminate_timer: i32,
    terminal: bool,
}

impl Freeway {
    /// New random speeds and directions; with `initialize`, cars also
    /// return to column 0.
    fn randomize_cars(&mut self, rng: &mut RandomState, initialize: bool) {
        // numpy: speeds = randint(1, 6, 8); directions = sign(rand(8) - 0.5).
        let mut speeds = [0i64; LANES];
        rng.randint_into(1, 6, &mut speeds);
        let mut trail = None;
        for (lane, &speed) in speeds.iter().enumerate() {
            let u = rng.rand();
            let direction = if u > 0.5 {
                1
            } else if u < 0.5 {
                -1
            } else {
                0
            };
            let velocity = speed as i32 * direction;
            self.periods[lane] = velocity.abs();
            self.timers[lane] = velocity.abs();
            self.dirs[lane] = if velocity > 0 { 1 } else { -1 };
            if velocity != 0 {
                trail = Some(SPEED_TRAILS[velocity.unsigned_abs() as usize - 1]);
            }
            self.trail_rows[lane] = trail.unwrap_or(SPEED1) * CELLS + (lane + 1) * GRID;
            self.trail_lit[lane] = u8::from(trail.is_some());
            if initialize {
                self.xs[lane] = 0;
            }
        }
    }
}

/// A column one step off the grid, wrapped around: MinAtar's `% 10` for
/// the only values it meets, −1 to 10, without a division.
#[inline(always)]
fn wrap(x: i32) -> i32 {
    x + GRID as i32 * (i32::from(x < 0) - i32::from(x >= GRID as i32))
}

impl Rules for Freeway {
    const CHANNELS: &'static [Channel] = &[
        Channel {
            name: "chicken",
            symbol: '@',
        },
        Channel {
            name: "car",
            symbol: 'C',
        },
        Channel {
            name: "speed1",
            symbol: '1',
        },
        Channel {
            name: "speed2",
            symbol: '2',
        },
        Channel {
            name: "speed3",
            symbol: '3',
        },
        Channel {
            name: "speed4",
            symbol: '4',
        },
        Channel {
            name: "speed5",
            symbol: '5',
        },
    ];
    const MINIMAL_ACTIONS: &'static [Act] = &[Act::Noop, Act::Up, Act::Down];

    fn new(_ramping: bool) -> Self {
        Freeway {
            xs: [0; LANES],
            timers: [0; LANES],
            periods: [0; LANES],
            dirs: [-1; LANES],
            trail_rows: [SPEED1 * CELLS; LANES],
            trail_lit: [0; LANES],
            chicken_y: 9,
            move_timer: PLAYER_SPEED,
            terminate_timer: TIME_LIMIT,
            terminal: false,
        }
    }

    fn reset(&mut self, rng: &mut RandomState) {
        self.randomize_cars(rng, true);
        self.chicken_y = 9;
        self.move_timer = PLAYER_SPEED;
        self.terminate_timer = TIME_LIMIT;
        self.terminal = false;
    }

    fn act(&mut self, action: Act, rng: &mut RandomState) -> (u32, bool) {
        if self.terminal {
            return (0, true);
        }
        let mut reward = 0;
        // `u` and `d` move the chicken when its timer allows, and restart
        // the timer; selects, not branches, as the actions are random.
        let moves = self.move_timer == 0 && action.dy() != 0;
        let moved = MOVE_Y[action as usize][self.chicken_y as usize];
        self.chicken_y = if moves { moved } else { self.chicken_y };
        self.move_timer = if moves { PLAYER_SPEED } else { self.move_timer };

        if self.chicken_y == 0 {
            reward += 1;
            self.randomize_cars(rng, false);
            self.chicken_y = 9;
        }

        // MinAtar visits the cars in order: a car on the chicken knocks it
        // back to row 9, where no car drives; then the car moves if its
        // timer ran out, and knocks the chicken back if it lands on it.
        // Only the car in the chicken's own lane can touch it, so the
        // others need no checks and can all move at once.
        let lane = (self.chicken_y - 1) as usize;
        let in_lane = lane < LANES;
        let lane = lane.min(LANES - 1);
        let hit_before = in_lane && self.xs[lane] == CHICKEN_X;
        for i in 0..LANES {
            // A car whose timer ran out moves a cell, wrapping around, and
            // restarts its timer.
            let moves = self.timers[i] == 0;
            self.timers[i] = if moves {
                self.periods[i]
            } else {
                self.timers[i] - 1
            };
            self.xs[i] = wrap(self.xs[i] + i32::from(moves) * self.dirs[i]);
        }
        // A car that stayed put is checked again, as MinAtar does not:
        // the same check, which cannot change the outcome.
        let hit_after = in_lane && self.xs[lane] == CHICKEN_X;
        if hit_before || hit_after {
            self.chicken_y = 9;
        }

        if self.move_timer > 0 {
            self.move_timer -= 1;
        }
        self.terminate_timer -= 1;
        if self.terminate_timer < 0 {
            self.terminal = true;
        }
        (reward, self.terminal)
    }

    #[inline(always)]
    fn draw_on_zeros(&self, planes: &mut [u8]) {
        let planes: &mut [u8; FRAME] = planes
            .try_into()
            .expect("Freeway draws 7 planes of 10 x 10");
        mark(planes, CHICKEN, self.chicken_y, CHICKEN_X);
        for lane in 0..LANES {
            let x = self.xs[lane];
            mark(planes, CAR, lane as i32 + 1, x);
            let back_x = wrap(x - self.dirs[lane]) as usize;
            planes[self.trail_rows[lane] + back_x] = self.trail_lit[lane];
        }
    }

    fn difficulty(&self) -> Option<u32> {
        None
    }
}
