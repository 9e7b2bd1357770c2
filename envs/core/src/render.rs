//! RGB frames and writing them to PNG.

use crate::{Error, Result};
use ndarray::Array3;
use std::path::Path;

/// An RGB picture, `[H, W, 3]`.
pub type Frame = Array3<u8>;

/// Writes `frame` as an 8-bit RGB PNG.
pub fn save_png(frame: &Frame, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let fail = |message: String| Error::Write {
        path: path.display().to_string(),
        message,
    };
    let bytes = encode_png(frame).map_err(fail)?;
    std::fs::write(path, bytes).map_err(|e| fail(e.to_string()))
}

/// `frame` as the bytes of an 8-bit RGB PNG, for files and for replays
/// sent to a browser.
pub fn encode_png(frame: &Frame) -> std::result::Result<Vec<u8>, String> {
    let (h, w, c) = frame.dim();
    if c != 3 || h == 0 || w == 0 {
        return Err(format!("frame must be [H, W, 3], got [{h}, {w}, {c}]"));
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    let data: Vec<u8> = frame.iter().copied().collect();
    writer.write_image_data(&data).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Scales a frame up by an integer factor, nearest neighbour.
pub fn upscale(frame: &Frame, factor: usize) -> Frame {
    let (h, w, _) = frame.dim();
    Frame::from_shape_fn((h * factor, w * factor, 3), |(y, x, c)| {
        frame[[y / factor, x / factor, c]]
    })
}

/// Frames smaller than this on their longer side (MinAtar's 10×10,
/// gridworlds) are scaled up by a whole factor for pictures people look at.
pub const MIN_PICTURE: usize = 160;

/// Delay between GIF frames, in hundredths of a second (20 frames/s).
pub const GIF_FRAME_DELAY: u16 = 5;

/// The env's RGB frame, scaled up by a whole factor if it is tiny.
pub fn picture(env: &dyn crate::Env) -> Frame {
    let frame = env.render_rgb();
    let (h, w, _) = frame.dim();
    let factor = MIN_PICTURE / h.max(w).max(1);
    if factor > 1 {
        upscale(&frame, factor)
    } else {
        frame
    }
}

/// Writes frames as an animated, looping GIF. The file is created with the
/// first frame, whose size every later frame must have.
pub struct GifWriter {
    path: std::path::PathBuf,
    encoder: Option<gif::Encoder<std::io::BufWriter<std::fs::File>>>,
    size: (usize, usize),
}

impl GifWriter {
    /// A writer to `path`; nothing is written before the first frame.
    pub fn new(path: impl AsRef<Path>) -> GifWriter {
        GifWriter {
            path: path.as_ref().to_path_buf(),
            encoder: None,
            size: (0, 0),
        }
    }

    fn fail(&self, message: impl std::fmt::Display) -> Error {
        Error::Write {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    /// Appends `frame` (`[H, W, 3]`).
    pub fn push(&mut self, frame: &Frame) -> Result<()> {
        let (h, w, _) = frame.dim();
        if h == 0 || w == 0 || h > u16::MAX as usize || w > u16::MAX as usize {
            return Err(self.fail(format!("a GIF frame cannot be {h}×{w}")));
        }
        if self.encoder.is_none() {
            let file = std::fs::File::create(&self.path).map_err(|e| self.fail(e))?;
            let mut encoder =
                gif::Encoder::new(std::io::BufWriter::new(file), w as u16, h as u16, &[])
                    .map_err(|e| self.fail(e))?;
            encoder
                .set_repeat(gif::Repeat::Infinite)
                .map_err(|e| self.fail(e))?;
            self.encoder = Some(encoder);
            self.size = (h, w);
        }
        if self.size != (h, w) {
            return Err(self.fail(format!(
                "frames changed size from {:?} to {:?}",
                self.size,
                (h, w)
            )));
        }
        let mut gif_frame = gif_frame(frame);
        gif_frame.delay = GIF_FRAME_DELAY;
        let result = match self.encoder.as_mut() {
            Some(encoder) => encoder.write_frame(&gif_frame),
            None => Ok(()),
        };
        result.map_err(|e| self.fail(e))
    }

    /// Finishes the file; `false` if no frame was ever pushed (no file).
    pub fn finish(self) -> Result<bool> {
        use std::io::Write;
        let Some(encoder) = self.encoder else {
            return Ok(false);
        };
        let fail = |e: &dyn std::fmt::Display| Error::Write {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let mut writer = encoder.into_inner().map_err(|e| fail(&e))?;
        writer.flush().map_err(|e| fail(&e))?;
        Ok(true)
    }
}

/// A GIF frame with an exact palette when the picture has at most 256
/// colours (classic control and MinAtar do), else NeuQuant's.
fn gif_frame(frame: &Frame) -> gif::Frame<'static> {
    let (h, w, _) = frame.dim();
    let rgb: Vec<u8> = frame.iter().copied().collect();
    let mut colours: std::collections::HashMap<[u8; 3], u8> = std::collections::HashMap::new();
    let mut palette = Vec::new();
    let mut indices = Vec::with_capacity(h * w);
    for px in rgb.chunks_exact(3) {
        let key = [px[0], px[1], px[2]];
        let next = colours.len();
        if next == 256 && !colours.contains_key(&key) {
            return gif::Frame::from_rgb_speed(w as u16, h as u16, &rgb, 10);
        }
        let index = *colours.entry(key).or_insert_with(|| {
            palette.extend_from_slice(&key);
            next as u8
        });
        indices.push(index);
    }
    gif::Frame::from_palette_pixels(w as u16, h as u16, indices, palette, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.png");
        let frame = upscale(&Frame::from_elem((2, 3, 3), 200), 4);
        save_png(&frame, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(save_png(&Frame::zeros((2, 2, 4)), dir.path().join("g.png")).is_err());
    }
}
