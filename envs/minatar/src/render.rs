//! Pictures of MinAtar states: RGB frames, pixel observations and text.
//!
//! Each channel gets one colour, on black, where several channels share a
//! cell the highest-numbered one shows, exactly as MinAtar's own
//! `display_state` and Gymnasium `rgb_array` renderer draw it. The colours
//! are seaborn's `cubehelix` palette with one colour per channel, MinAtar's
//! choice, pinned here so we need no plotting library:
//!
//! ```python
//! import seaborn as sns
//! for n in (4, 6, 7, 10):
//!     print(n, [tuple(int(round(c * 255)) for c in col)
//!               for col in sns.color_palette("cubehelix", n)])
//! ```
//!
//! Grayscale frames use evenly spaced intensities instead,
//! `round(255 · (k + 1) / C)` for channel `k` of `C`, so every channel
//! stays distinct and bright enough to see.

use crate::rules::{CELLS, Channel, GRID};
use rl_env::Frame;

const CUBEHELIX_4: [[u8; 3]; 4] = [
    [22, 61, 78],
    [84, 121, 47],
    [208, 126, 147],
    [193, 202, 243],
];
const CUBEHELIX_6: [[u8; 3]; 6] = [
    [26, 36, 65],
    [27, 97, 69],
    [105, 123, 48],
    [200, 123, 124],
    [205, 162, 224],
    [198, 225, 241],
];
const CUBEHELIX_7: [[u8; 3]; 7] = [
    [27, 30, 59],
    [22, 83, 76],
    [68, 119, 49],
    [161, 121, 74],
    [212, 132, 169],
    [198, 180, 238],
    [203, 232, 240],
];
const CUBEHELIX_10: [[u8; 3]; 10] = [
    [25, 18, 43],
    [23, 52, 76],
    [24, 91, 72],
    [60, 118, 50],
    [126, 122, 54],
    [188, 121, 103],
    [212, 134, 175],
    [202, 169, 231],
    [194, 210, 243],
    [214, 240, 239],
];

/// The colour of each channel for a game with `channels` channels.
pub fn palette(channels: usize) -> Vec<[u8; 3]> {
    match channels {
        4 => CUBEHELIX_4.to_vec(),
        6 => CUBEHELIX_6.to_vec(),
        7 => CUBEHELIX_7.to_vec(),
        10 => CUBEHELIX_10.to_vec(),
        // Not a MinAtar game; spread grays so the picture still works.
        n => (0..n).map(|k| [gray_level(k, n); 3]).collect::<Vec<_>>(),
    }
}

/// The grayscale intensity of channel `k` of `channels`.
pub fn gray_level(k: usize, channels: usize) -> u8 {
    ((255 * (k + 1) + channels / 2) / channels) as u8
}

/// For each of the 100 cells, 0 if empty or `1 + ` the highest channel
/// set there.
pub fn top_channel(planes: &[u8], channels: usize, out: &mut [u8; CELLS]) {
    out.fill(0);
    for c in 0..channels {
        let plane = &planes[c * CELLS..(c + 1) * CELLS];
        for (cell, &v) in out.iter_mut().zip(plane) {
            if v != 0 {
                *cell = c as u8 + 1;
            }
        }
    }
}

/// Writes pixel observations: nearest-neighbour upscaling of the 10 × 10
/// grid to `size × size`, `[1, size, size]` gray or `[3, size, size]` RGB.
#[derive(Clone, Debug)]
pub struct PixelPainter {
    size: usize,
    /// Source row (or column) for each output row (or column).
    source: Vec<usize>,
    /// `[1 + C][depth]` colour of each top-channel value; index 0 is black.
    colours: Vec<[u8; 3]>,
    depth: usize,
    top: [u8; CELLS],
}

impl PixelPainter {
    /// A painter for `size × size` frames of a game with `channels` channels.
    pub fn new(size: usize, grayscale: bool, channels: usize) -> Self {
        let mut colours = vec![[0u8; 3]];
        if grayscale {
            colours.extend((0..channels).map(|k| [gray_level(k, channels); 3]));
        } else {
            colours.extend(palette(channels));
        }
        PixelPainter {
            size,
            // Output pixel i shows cell ⌊i · 10 / size⌋.
            source: (0..size).map(|i| i * GRID / size).collect(),
            colours,
            depth: if grayscale { 1 } else { 3 },
            top: [0; CELLS],
        }
    }

    /// The observation shape, `[depth, size, size]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.depth, self.size, self.size]
    }

    /// Paints `planes` (`[C, 10, 10]`) into `out` (`[depth, size, size]`).
    pub fn paint(&mut self, planes: &[u8], channels: usize, out: &mut [u8]) {
        top_channel(planes, channels, &mut self.top);
        let area = self.size * self.size;
        for d in 0..self.depth {
            let layer = &mut out[d * area..(d + 1) * area];
            for (row, &sy) in layer.chunks_exact_mut(self.size).zip(&self.source) {
                let cells = &self.top[sy * GRID..(sy + 1) * GRID];
                for (pixel, &sx) in row.iter_mut().zip(&self.source) {
                    *pixel = self.colours[cells[sx] as usize][d];
                }
            }
        }
    }
}

/// Pixels per grid cell in [`rgb_frame`].
pub const RGB_CELL: usize = 16;

/// An RGB picture of `planes`, each cell 16 × 16 pixels: `[160, 160, 3]`.
pub fn rgb_frame(planes: &[u8], channels: usize) -> Frame {
    let mut top = [0u8; CELLS];
    top_channel(planes, channels, &mut top);
    let colours = palette(channels);
    Frame::from_shape_fn((GRID * RGB_CELL, GRID * RGB_CELL, 3), |(y, x, c)| match top
        [(y / RGB_CELL) * GRID + x / RGB_CELL]
    {
        0 => 0,
        k => colours[k as usize - 1][c],
    })
}

/// A text picture: ten rows of ten characters, `.` for an empty cell, then
/// a legend.
pub fn text(planes: &[u8], channels: &[Channel]) -> String {
    let mut top = [0u8; CELLS];
    top_channel(planes, channels.len(), &mut top);
    let mut s = String::with_capacity(CELLS * 2 + 64);
    for row in top.chunks_exact(GRID) {
        for &k in row {
            s.push(match k {
                0 => '.',
                k => channels[k as usize - 1].symbol,
            });
        }
        s.push('\n');
    }
    let legend: Vec<String> = channels
        .iter()
        .map(|c| format!("{} {}", c.symbol, c.name))
        .collect();
    s.push_str(&legend.join(", "));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_levels_are_distinct_and_bright() {
        for n in [4, 6, 7, 10] {
            let levels: Vec<u8> = (0..n).map(|k| gray_level(k, n)).collect();
            assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
            assert_eq!(levels[n - 1], 255);
            assert!(levels[0] >= 25);
        }
    }

    #[test]
    fn nearest_neighbour_upscale() {
        let mut planes = vec![0u8; 4 * CELLS];
        planes[CELLS + 3 * GRID + 7] = 1; // channel 1 at (3, 7)
        let mut painter = PixelPainter::new(84, true, 4);
        let mut out = vec![0u8; 84 * 84];
        painter.paint(&planes, 4, &mut out);
        let lit: Vec<(usize, usize)> = (0..84 * 84)
            .filter(|&i| out[i] != 0)
            .map(|i| (i / 84, i % 84))
            .collect();
        // Rows i with ⌊10 i / 84⌋ = 3 are 26..=33; columns for 7 are 59..=67.
        assert_eq!(lit.len(), 8 * 9);
        assert!(
            lit.iter()
                .all(|&(y, x)| (26..=33).contains(&y) && (59..=67).contains(&x))
        );
        assert_eq!(out[30 * 84 + 60], gray_level(1, 4));
    }
}
