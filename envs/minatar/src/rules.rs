//! What every game provides to the shared environment wrapper.

use crate::numpy_rng::RandomState;

/// Side of MinAtar's square grid.
pub const GRID: usize = 10;
/// Cells in one channel plane.
pub const CELLS: usize = GRID * GRID;

/// MinAtar's full action set, in its order: `n l u r d f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// `n`: do nothing.
    Noop = 0,
    /// `l`: left.
    Left = 1,
    /// `u`: up.
    Up = 2,
    /// `r`: right.
    Right = 3,
    /// `d`: down.
    Down = 4,
    /// `f`: fire.
    Fire = 5,
}

impl Act {
    /// All six, indexed as MinAtar indexes them.
    pub const ALL: [Act; 6] = [
        Act::Noop,
        Act::Left,
        Act::Up,
        Act::Right,
        Act::Down,
        Act::Fire,
    ];

    /// MinAtar's letter for the action.
    pub fn letter(self) -> char {
        ['n', 'l', 'u', 'r', 'd', 'f'][self as usize]
    }

    /// The column change the action asks for: −1 for `l`, +1 for `r`.
    ///
    /// Games move with `x + dx` clamped to the grid rather than a `match`
    /// on the action: under random actions a `match` is a branch the CPU
    /// mispredicts on most steps, and two comparisons never are.
    #[inline(always)]
    pub fn dx(self) -> i32 {
        i32::from(self == Act::Right) - i32::from(self == Act::Left)
    }

    /// The row change the action asks for: −1 for `u`, +1 for `d`.
    #[inline(always)]
    pub fn dy(self) -> i32 {
        i32::from(self == Act::Down) - i32::from(self == Act::Up)
    }
}

/// Where a coordinate in `0..10` ends up after each action:
/// `table[action][v] = (v + delta(action)).clamp(lo, hi)`.
///
/// A player's move is then one load. Written as arithmetic, the compiler
/// turns the two coordinates' moves into a chain of vector instructions
/// whose latency the next step waits on.
pub type MoveTable = [[i32; GRID]; 6];

/// The [`MoveTable`] for movement along x (`l` −1, `r` +1) when
/// `horizontal`, else along y (`u` −1, `d` +1), kept within `lo..=hi`.
pub const fn move_table(horizontal: bool, lo: i32, hi: i32) -> MoveTable {
    let mut table = [[0; GRID]; 6];
    let mut a = 0;
    while a < 6 {
        let act = Act::ALL[a];
        let delta = if horizontal {
            (act as i32 == Act::Right as i32) as i32 - (act as i32 == Act::Left as i32) as i32
        } else {
            (act as i32 == Act::Down as i32) as i32 - (act as i32 == Act::Up as i32) as i32
        };
        let mut v = 0;
        while v < GRID {
            let moved = v as i32 + delta;
            table[a][v] = if moved < lo {
                lo
            } else if moved > hi {
                hi
            } else {
                moved
            };
            v += 1;
        }
        a += 1;
    }
    table
}

/// One observation channel: its name and the character `render_text` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// MinAtar's name for the channel, e.g. `paddle`.
    pub name: &'static str,
    /// Character drawn for it in text renderings.
    pub symbol: char,
}

/// The rules of one game, stepped by [`crate::env::MinAtar`].
///
/// All randomness comes from the `RandomState` passed in, in the same
/// order as MinAtar draws it.
pub trait Rules: Send + 'static {
    /// The channels, in observation order.
    const CHANNELS: &'static [Channel];
    /// The game's minimal action set, in MinAtar's order.
    const MINIMAL_ACTIONS: &'static [Act];

    /// A game in its pre-reset state, with difficulty ramping on or off.
    fn new(ramping: bool) -> Self;
    /// Starts a new episode.
    fn reset(&mut self, rng: &mut RandomState);
    /// Advances one frame; returns the reward and whether the game ended.
    fn act(&mut self, action: Act, rng: &mut RandomState) -> (u32, bool);
    /// Sets the occupied cells in `planes`, `[C, 10, 10]` row-major,
    /// which hold zeros.
    fn draw_on_zeros(&self, planes: &mut [u8]);
    /// Writes the observation into `planes`: every byte, whatever `planes`
    /// held before.
    #[inline(always)]
    fn draw(&self, planes: &mut [u8]) {
        planes.fill(0);
        self.draw_on_zeros(planes);
    }
    /// The difficulty level reached, for games that ramp.
    fn difficulty(&self) -> Option<u32>;
}

/// Marks cell `(y, x)` of `channel`; cells off the grid are ignored.
///
/// A branch rather than ORing a 0 into the nearest cell: reading a byte
/// just written by the zeroing `memset` stalls on store forwarding, and
/// costs more than the branch, which is nearly always predicted.
#[inline]
pub fn mark(planes: &mut [u8], channel: usize, y: i32, x: i32) {
    if on_grid(y) && on_grid(x) {
        planes[channel * CELLS + y as usize * GRID + x as usize] = 1;
    }
}

/// The whole plane of `channel`.
#[inline]
pub fn plane(planes: &mut [u8], channel: usize) -> &mut [u8] {
    &mut planes[channel * CELLS..(channel + 1) * CELLS]
}

/// Removes the first element equal to `value`, as Python's `list.remove`
/// does (by value, not identity), and returns its index.
///
/// MinAtar's Seaquest removes entities this way while iterating over a
/// list in reverse; when two entities are equal, the one removed may not be
/// the one being visited, and that changes what the loop visits next.
/// Reproducing it exactly keeps the games draw-for-draw identical.
#[inline]
pub fn remove_first_equal<T: PartialEq + Copy>(list: &mut Vec<T>, value: &T) -> Option<usize> {
    let index = list.iter().position(|v| v == value)?;
    list.remove(index);
    Some(index)
}

/// Python's `reversed(list)` iterator: visits index `len − 1` downwards,
/// and stops as soon as the next index is no longer inside the list, which
/// is how CPython behaves when the list shrinks during the loop.
#[derive(Clone, Copy, Debug)]
pub struct Reversed {
    next: isize,
}

impl Reversed {
    /// Starts at the end of a list of `len` elements.
    #[inline]
    pub fn new(len: usize) -> Self {
        Reversed {
            next: len as isize - 1,
        }
    }

    /// The index to visit next, given the list's current length.
    #[inline]
    pub fn next(&mut self, len: usize) -> Option<usize> {
        if self.next >= 0 && (self.next as usize) < len {
            let index = self.next as usize;
            self.next -= 1;
            Some(index)
        } else {
            self.next = -1;
            None
        }
    }
}

/// Tracks where the element being visited sits after `removed` was taken
/// out of its list: gone if it was the one removed, one place earlier if an
/// element before it was.
#[inline]
pub fn follow_removal(current: &mut Option<usize>, removed: Option<usize>) {
    if let (Some(c), Some(r)) = (*current, removed) {
        *current = match r.cmp(&c) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => Some(c - 1),
            std::cmp::Ordering::Greater => Some(c),
        };
    }
}

/// A horizontal step of `+1` for rightward movers, `−1` for leftward.
#[inline]
pub fn step_x(rightward: bool) -> i32 {
    if rightward { 1 } else { -1 }
}

/// Whether a column is on the grid.
#[inline]
pub fn on_grid(x: i32) -> bool {
    (0..GRID as i32).contains(&x)
}
