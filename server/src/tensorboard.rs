//! TensorBoard event files, so `tensorboard --logdir rl-lab-data/runs` shows
//! our curves with no TensorFlow on our side.
//!
//! The file is a sequence of TFRecords: a little-endian u64 length, its
//! masked CRC-32C, the bytes of one `tensorflow.Event` protobuf message, and
//! their masked CRC-32C. We write the three message shapes TensorBoard needs
//! by hand: the version header and scalar summaries.

use crate::store::MetricValue;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest scalars wait in memory before reaching the file.
const FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// Appends scalar summaries to one event file.
pub struct EventWriter {
    out: BufWriter<File>,
    last_flush: Instant,
    record: Vec<u8>,
    /// Reused for the `name/min` and `name/max` tags.
    tag: String,
}

/// TFRecord's CRC mask, which keeps a CRC of data containing CRCs from
/// looking like one.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited protobuf field.
fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `Event { wall_time = 1, step = 2, <payload> }`.
fn event(step: u64, payload: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut message = Vec::with_capacity(64);
    message.push(1 << 3 | 1); // wall_time: double
    message.extend_from_slice(&wall_time().to_le_bytes());
    message.push(2 << 3); // step: int64
    varint(&mut message, step);
    payload(&mut message);
    message
}

impl EventWriter {
    /// Creates a new event file in `folder` (made if missing). A resumed
    /// run gets a second file beside the first; TensorBoard reads both.
    pub fn create(folder: &Path) -> std::io::Result<EventWriter> {
        std::fs::create_dir_all(folder)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "events.out.tfevents.{}.{:09}.rl-lab",
            stamp.as_secs(),
            stamp.subsec_nanos()
        );
        let mut writer = EventWriter {
            out: BufWriter::new(File::create(folder.join(name))?),
            last_flush: Instant::now(),
            record: Vec::new(),
            tag: String::new(),
        };
        let header = event(0, |m| bytes_field(m, 3, b"brain.Event:2"));
        writer.write_record(&header)?;
        writer.flush()?;
        Ok(writer)
    }

    fn write_record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let length = (data.len() as u64).to_le_bytes();
        self.out.write_all(&length)?;
        self.out.write_all(&masked_crc(&length).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked_crc(data).to_le_bytes())
    }

    /// Records `value` under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> std::io::Result<()> {
        // Summary { value = 1: Value { tag = 1, simple_value = 2 (float) } }
        let mut summary_value = std::mem::take(&mut self.record);
        summary_value.clear();
        bytes_field(&mut summary_value, 1, tag.as_bytes());
        summary_value.push(2 << 3 | 5);
        summary_value.extend_from_slice(&(value as f32).to_le_bytes());
        let message = event(step, |m| {
            let mut summary = Vec::with_capacity(summary_value.len() + 4);
            bytes_field(&mut summary, 1, &summary_value);
            bytes_field(m, 5, &summary);
        });
        self.record = summary_value;
        self.write_record(&message)?;
        if self.last_flush.elapsed() >= FLUSH_PERIOD {
            self.flush()?;
        }
        Ok(())
    }

    /// Records a metric row: its value (a merged window's mean) under its
    /// name and, for a window, its min and max under `name/min` and
    /// `name/max`, so a plot of a fast run still shows its spikes.
    pub fn metric(&mut self, metric: &MetricValue) -> std::io::Result<()> {
        self.scalar(&metric.name, metric.step, metric.value)?;
        if let Some(window) = &metric.window {
            let mut tag = std::mem::take(&mut self.tag);
            for (suffix, value) in [("/min", window.min), ("/max", window.max)] {
                tag.clear();
                tag.push_str(&metric.name);
                tag.push_str(suffix);
                self.scalar(&tag, metric.step, value)?;
            }
            self.tag = tag;
        }
        Ok(())
    }

    /// Pushes everything written to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.last_flush = Instant::now();
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // CRC-32C of "123456789" is 0xE3069283 (RFC 3720, appendix B.4).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn varints_encode_as_protobuf_does() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
    }

    #[test]
    fn records_frame_their_data_with_checked_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path()).unwrap();
        writer.scalar("rollout/episode_return", 7, -13.0).unwrap();
        writer.flush().unwrap();
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        let mut at = 0;
        let mut records = 0;
        while at < bytes.len() {
            let length = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let length_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(length_crc, masked_crc(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + length];
            let data_crc = u32::from_le_bytes(
                bytes[at + 12 + length..at + 16 + length]
                    .try_into()
                    .unwrap(),
            );
            assert_eq!(data_crc, masked_crc(data));
            at += 16 + length;
            records += 1;
        }
        assert_eq!(records, 2);
    }
}
