//! Breakout.
//!
//! **Rules.** The player moves a paddle along the bottom row to keep a ball
//! in play and break three rows of bricks near the top. The ball only moves
//! diagonally, one cell per frame. It bounces off the side walls, the
//! ceiling and bricks. When it reaches the paddle's row it bounces back up
//! if it was above the paddle (reversing its vertical direction) or if it
//! arrives at the paddle's cell (reversing both directions). A brick struck
//! is removed and the ball bounces; a ball that reaches a brick on two
//! consecutive frames passes into it without breaking it. When every brick
//! is gone and the ball next reaches the bottom row, three fresh rows
//! appear. The ball starts on row 3 in the left or the right corner
//! (chosen at random), heading down and away from the wall. A trail
//! channel marks where the ball was on the last frame, which shows its
//! direction.
//!
//! **Reward.** +1 for each brick broken.
//!
//! **End.** The episode ends when the ball reaches the bottom row anywhere
//! but at or above the paddle.
//!
//! **Actions.** Minimal set `n l r`; `u d f` do nothing. No difficulty ramp.

use crate::numpy_rng::RandomState;
use crate::rules::{Act, CELLS, Channel, GRID, MoveTable, Rules, mark, move_table};

/// The paddle, on the bottom row.
pub const PADDLE: usize = 0;
/// The ball.
pub const BALL: usize = 1;
/// Where the ball was one frame ago.
pub const TRAIL: usize = 2;
/// The bricks.
pub const BRICK: usize = 3;

/// Rows holding bricks at the start and after each refill.
const BRICK_ROWS: std::ops::Range<usize> = 1..4;
/// Row the ball starts on.
const BALL_START_ROW: i32 = 3;
/// The paddle's starting column.
const PADDLE_START: i32 = 4;

/// Cells in the brick rows.
const BRICK_CELLS: usize = (BRICK_ROWS.end - BRICK_ROWS.start) * GRID;
/// The paddle's moves, within the grid.
const MOVE_X: MoveTable = move_table(true, 0, 9);

/// Ball directions, numbered as MinAtar numbers them:
/// 0 up-left, 1 up-right, 2 down-right, 3 down-left.
const VELOCITY: [(i32, i32); 4] = [(-1, -1), (1, -1), (1, 1), (-1, 1)];
/// Direction after hitting a side wall (horizontal component reversed).
const BOUNCE_SIDE: [u8; 4] = [1, 0, 3, 2];
/// Direction after hitting the ceiling, a brick or the paddle from above
/// (vertical component reversed).
const BOUNCE_VERTICAL: [u8; 4] = [3, 2, 1, 0];
/// Direction after the paddle meets the ball at its own cell (both reversed).
const BOUNCE_CORNER: [u8; 4] = [2, 3, 0, 1];

/// Breakout's state.
pub struct Breakout {
    ball_x: i32,
    ball_y: i32,
    ball_dir: u8,
    last_x: i32,
    last_y: i32,
    paddle: i32,
    /// The bricks of rows 1–3, the only rows that ever hold any, one
    /// byte per cell as in the observation's brick plane.
    bricks: [u8; BRICK_CELLS],
    /// Bricks left.
    bricks_left: u32,
    /// The ball struck a brick on the previous frame.
    strike: bool,
    terminal: bool,
}

impl Breakout {
    fn refill_bricks(&mut self) {
        for row in BRICK_ROWS {
            let start = (row - BRICK_ROWS.start) * GRID;
            self.bricks[start..start + GRID].fill(1);
        }
        self.bricks_left = (BRICK_ROWS.len() * GRID) as u32;
    }

    /// Where `bricks` keeps cell `(x, y)` (both on the grid), if in a
    /// brick row.
    #[inline(always)]
    fn brick(x: i32, y: i32) -> Option<usize> {
        let row = (y as usize).wrapping_sub(BRICK_ROWS.start);
        (row < BRICK_ROWS.len()).then_some(row * GRID + x as usize)
    }
}

impl Rules for Breakout {
    const CHANNELS: &'static [Channel] = &[
        Channel {
            name: "paddle",
            symbol: '=',
        },
        Channel {
            name: "ball",
            symbol: 'o',
        },
        Channel {
            name: "trail",
            symbol: '·',
        },
        Channel {
            name: "brick",
            symbol: '#',
        },
    ];
    const MINIMAL_ACTIONS: &'static [Act] = &[Act::Noop, Act::Left, Act::Right];

    fn new(_ramping: bool) -> Self {
        Breakout {
            ball_x: 0,
            ball_y: BALL_START_ROW,
            ball_dir: 2,
            last_x: 0,
            last_y: BALL_START_ROW,
            paddle: PADDLE_START,
            bricks: [0; BRICK_CELLS],
            bricks_left: 0,
            strike: false,
            terminal: false,
        }
    }

    fn reset(&mut self, rng: &mut RandomState) {
        self.ball_y = BALL_START_ROW;
        // Left corner heading down-right, or right corner heading down-left.
        (self.ball_x, self.ball_dir) = if rng.randint(0, 2) == 0 {
            (0, 2)
        } else {
            (9, 3)
        };
        self.paddle = PADDLE_START;
        self.bricks = [0; BRICK_CELLS];
        self.refill_bricks();
        self.strike = false;
        self.last_x = self.ball_x;
        self.last_y = self.ball_y;
        self.terminal = false;
    }

    fn act(&mut self, action: Act, _rng: &mut RandomState) -> (u32, bool) {
        if self.terminal {
            return (0, true);
        }
        let mut reward = 0;
        // `l` and `r` move the paddle, within the grid.
        self.paddle = MOVE_X[action as usize][self.paddle as usize];

        self.last_x = self.ball_x;
        self.last_y = self.ball_y;
        let (dx, dy) = VELOCITY[self.ball_dir as usize];
        let mut new_x = self.ball_x + dx;
        let mut new_y = self.ball_y + dy;

        let mut strike_now = false;
        if !(0..=9).contains(&new_x) {
            new_x = new_x.clamp(0, 9);
            self.ball_dir = BOUNCE_SIDE[self.ball_dir as usize];
        }
        if new_y < 0 {
            new_y = 0;
            self.ball_dir = BOUNCE_VERTICAL[self.ball_dir as usize];
        } else if Self::brick(new_x, new_y).is_some_and(|cell| self.bricks[cell] == 1) {
            strike_now = true;
            if !self.strike {
                reward += 1;
                self.strike = true;
                if let Some(cell) = Self::brick(new_x, new_y) {
                    self.bricks[cell] = 0;
                }
                self.bricks_left -= 1;
                new_y = self.last_y;
                self.ball_dir = BOUNCE_VERTICAL[self.ball_dir as usize];
            }
        } else if new_y == 9 {
            if self.bricks_left == 0 {
                self.refill_bricks();
            }
            if self.ball_x == self.paddle {
                self.ball_dir = BOUNCE_VERTICAL[self.ball_dir as usize];
                new_y = self.last_y;
            } else if new_x == self.paddle {
                self.ball_dir = BOUNCE_CORNER[self.ball_dir as usize];
                new_y = self.last_y;
            } else {
                self.terminal = true;
            }
        }
        if !strike_now {
            self.strike = false;
        }

        self.ball_x = new_x;
        self.ball_y = new_y;
        (reward, self.terminal)
    }

    #[inline(always)]
    fn draw_on_zeros(&self, planes: &mut [u8]) {
        planes[BRICK * CELLS + BRICK_ROWS.start * GRID..][..BRICK_CELLS]
            .copy_from_slice(&self.bricks);
        mark(planes, BALL, self.ball_y, self.ball_x);
        mark(planes, PADDLE, 9, self.paddle);
        mark(planes, TRAIL, self.last_y, self.last_x);
    }

    fn difficulty(&self) -> Option<u32> {
        None
    }
}
