//! A tiny rasteriser for the classic-control pictures: filled convex
//! polygons, discs and thick lines on a white canvas, in world coordinates
//! with y pointing up (as Gymnasium draws before its final flip).

use rl_env::Frame;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// A white canvas of `width × height` pixels, y up.
pub struct Canvas {
    frame: Frame,
    width: usize,
    height: usize,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Self {
        Canvas {
            frame: Frame::from_elem((height, width, 3), 255),
            width,
            height,
        }
    }

    /// The finished picture, `[H, W, 3]`, row 0 at the top.
    pub fn into_frame(self) -> Frame {
        self.frame
    }

    fn put(&mut self, x: i64, y: i64, colour: Rgb) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let row = self.height - 1 - y as usize;
        for (c, &v) in colour.iter().enumerate() {
            self.frame[[row, x as usize, c]] = v;
        }
    }

    /// Fills a convex polygon given by its corners in either winding order.
    pub fn polygon(&mut self, corners: &[(f64, f64)], colour: Rgb) {
        if corners.len() < 3 {
            return;
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in corners {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let (w, h) = (self.width as f64 - 1.0, self.height as f64 - 1.0);
        let (px0, px1) = (
            x0.floor().clamp(0.0, w) as i64,
            x1.ceil().clamp(0.0, w) as i64,
        );
        let (py0, py1) = (
            y0.floor().clamp(0.0, h) as i64,
            y1.ceil().clamp(0.0, h) as i64,
        );
        for py in py0..=py1 {
            for px in px0..=px1 {
                let (cx, cy) = (px as f64 + 0.5, py as f64 + 0.5);
                let (mut pos, mut neg) = (false, false);
                for i in 0..corners.len() {
                    let (ax, ay) = corners[i];
                    let (bx, by) = corners[(i + 1) % corners.len()];
                    let cross = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
                    pos |= cross > 0.0;
                    neg |= cross < 0.0;
                }
                if !(pos && neg) {
                    self.put(px, py, colour);
                }
            }
        }
    }

    /// Fills a disc.
    pub fn disc(&mut self, cx: f64, cy: f64, radius: f64, colour: Rgb) {
        let r = radius.ceil() as i64;
        let (ix, iy) = (cx.floor() as i64, cy.floor() as i64);
        for py in iy - r..=iy + r {
            for px in ix - r..=ix + r {
                let (dx, dy) = (px as f64 + 0.5 - cx, py as f64 + 0.5 - cy);
                if dx * dx + dy * dy <= radius * radius {
                    self.put(px, py, colour);
                }
            }
        }
    }

    /// A line `width` pixels thick.
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, colour: Rgb) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
        self.polygon(
            &[
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ],
            colour,
        );
    }
}

/// Rotates `(x, y)` by `angle` radians counter-clockwise (pygame's
/// `Vector2.rotate_rad`).
pub fn rotate((x, y): (f64, f64), angle: f64) -> (f64, f64) {
    let (s, c) = angle.sin_cos();
    (x * c - y * s, x * s + y * c)
}

/// A row of `width` characters with `mark` at the fraction `at` ∈ [0, 1].
pub fn track(width: usize, at: f64, mark: char) -> String {
    let i = ((at.clamp(0.0, 1.0)) * (width - 1) as f64).round() as usize;
    (0..width)
        .map(|j| if j == i { mark } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_land_where_drawn() {
        let mut c = Canvas::new(20, 10);
        c.polygon(&[(2.0, 2.0), (2.0, 4.0), (6.0, 4.0), (6.0, 2.0)], [0, 0, 0]);
        c.disc(15.0, 5.0, 2.0, [255, 0, 0]);
        let f = c.into_frame();
        // y = 3 (up) is row 10 − 1 − 3 = 6.
        assert_eq!(f[[6, 3, 0]], 0);
        assert_eq!(f[[6, 10, 0]], 255);
        assert_eq!(f[[4, 15, 1]], 0);
        assert_eq!(f[[4, 15, 0]], 255);
    }
}
