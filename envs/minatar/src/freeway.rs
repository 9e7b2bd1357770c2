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
use crate::rules::{Act, Channel, GRID, Rules, mark};

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

#[derive(Clone, Copy, Debug, Default)]
struct Car {
    x: i32,
    y: i32,
    timer: i32,
    /// Frames per move, signed by direction (positive moves right).
    /// Zero only if numpy's `rand()` returned exactly 0.5 (`np.sign(0) == 0`);
    /// MinAtar then moves the car left every frame, and so do we.
    velocity: i32,
}

/// Freeway's state.
pub struct Freeway {
    cars: [Car; LANES],
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
        for (lane, car) in self.cars.iter_mut().enumerate() {
            let u = rng.rand();
            let direction = if u > 0.5 {
                1
            } else if u < 0.5 {
                -1
            } else {
                0
            };
            car.velocity = speeds[lane] as i32 * direction;
            car.timer = car.velocity.abs();
            if initialize {
                car.x = 0;
                car.y = lane as i32 + 1;
            }
        }
    }
}

/// A column one step off the grid, wrapped around: MinAtar's `% 10` for
/// the only values it meets, −1 to 10, without a division.
#[inline(always)]
fn wrap(x: i32) -> i32 {
    if x < 0 {
        x + GRID as i32
    } else if x >= GRID as i32 {
        x - GRID as i32
    } else {
        x
    }
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
            cars: [Car::default(); LANES],
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
        self.chicken_y = (self.chicken_y + i32::from(moves) * action.dy()).clamp(0, 9);
        self.move_timer = if moves { PLAYER_SPEED } else { self.move_timer };

        if self.chicken_y == 0 {
            reward += 1;
            self.randomize_cars(rng, false);
            self.chicken_y = 9;
        }

        // Written with selects rather than `if`s: which cars move on a
        // frame is close to random, and mispredicted branches would cost
        // more than the arithmetic.
        let mut chicken_y = self.chicken_y;
        for car in &mut self.cars {
            // A car already on the chicken knocks it back.
            let hit = (car.x, car.y) == (CHICKEN_X, chicken_y);
            chicken_y = if hit { 9 } else { chicken_y };
            // A car whose timer ran out moves a cell, wrapping around, and
            // restarts its timer.
            let moves = car.timer == 0;
            car.timer = if moves {
                car.velocity.abs()
            } else {
                car.timer - 1
            };
            let direction = if car.velocity > 0 { 1 } else { -1 };
            car.x = wrap(car.x + i32::from(moves) * direction);
            // Checked even when the car stayed put: then it is the check
            // above again, which cannot hit a chicken sent back to row 9
            // (cars drive on rows 1 to 8).
            let hit = (car.x, car.y) == (CHICKEN_X, chicken_y);
            chicken_y = if hit { 9 } else { chicken_y };
        }
        self.chicken_y = chicken_y;

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
    fn draw(&self, planes: &mut [u8]) {
        mark(planes, CHICKEN, self.chicken_y, CHICKEN_X);
        // MinAtar reuses the previous car's trail channel for a car with
        // no speed (see `Car::velocity`); the first car then has none.
        let mut trail = None;
        for car in &self.cars {
            mark(planes, CAR, car.y, car.x);
            let back_x = if car.velocity > 0 {
                car.x - 1
            } else {
                car.x + 1
            };
            let back_x = wrap(back_x);
            let speed = car.velocity.unsigned_abs() as usize;
            if (1..=5).contains(&speed) {
                trail = Some(SPEED_TRAILS[speed - 1]);
            }
            if let Some(channel) = trail {
                mark(planes, channel, car.y, back_x);
            }
        }
    }

    fn difficulty(&self) -> Option<u32> {
        None
    }
}
