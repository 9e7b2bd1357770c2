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
    let (h, w, c) = frame.dim();
    if c != 3 || h == 0 || w == 0 {
        return Err(fail(format!(
            "frame must be [H, W, 3], got [{h}, {w}, {c}]"
        )));
    }
    let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
    let data: Vec<u8> = frame.iter().copied().collect();
    writer
        .write_image_data(&data)
        .map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))
}

/// Scales a frame up by an integer factor, nearest neighbour.
pub fn upscale(frame: &Frame, factor: usize) -> Frame {
    let (h, w, _) = frame.dim();
    Frame::from_shape_fn((h * factor, w * factor, 3), |(y, x, c)| {
        frame[[y / factor, x / factor, c]]
    })
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
