//! `monitor/start`: records episodes of an instance as GIFs, with one
//! line of statistics per episode, under `DATA/monitor/<instance_id>/`.
//!
//! gym's `Monitor` wrote wherever the client said; we never do, so a
//! client cannot make the server write outside its data folder.
//!
//! Frames are rendered while the instance is locked (they need its
//! state) and handed to a writer thread per monitor through a bounded
//! channel, which the handler awaits after releasing the lock: encoding
//! never runs on the async runtime, and a client that steps faster than
//! the encoder can keep up with is slowed down rather than buffered
//! without bound. Dropping the [`Monitor`] (monitor/close, close, or the
//! idle reaper) closes the channel; the writer then finishes the GIF it
//! is writing and exits.

use rl_env::{Env, Frame, GifWriter};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Frames kept per episode; later frames of a long episode are dropped
/// so that one GIF stays a few megabytes.
pub const MAX_FRAMES: usize = 1000;
/// Records in flight between an instance and its writer.
const CHANNEL: usize = 16;

/// Which episodes get a GIF: gym's `video_callable`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Videos {
    /// None (`video_callable: false`, what gym-http-api's Python client
    /// sends by default): statistics only.
    Never,
    /// Every episode (`video_callable: true`).
    Always,
    /// Episodes 0, 1, 8, 27, …, 729, then every 1,000th: gym's
    /// `capped_cubic_video_schedule`, its default (`null` or absent).
    CappedCubic,
}

impl Videos {
    fn records(self, episode: u64) -> bool {
        match self {
            Videos::Never => false,
            Videos::Always => true,
            Videos::CappedCubic if episode < 1000 => {
                let root = (episode as f64).cbrt().round() as u64;
                root * root * root == episode
            }
            Videos::CappedCubic => episode.is_multiple_of(1000),
        }
    }
}

/// One line of `episodes.jsonl`.
#[derive(Serialize, Debug)]
struct EpisodeLine {
    episode: u64,
    #[serde(rename = "return")]
    episode_return: f64,
    length: u64,
    terminated: bool,
    truncated: bool,
    /// The GIF's file name, when this episode was recorded.
    gif: Option<String>,
}

/// What an instance sends its writer.
pub enum Record {
    /// A frame of the episode being recorded.
    Frame {
        /// The episode it belongs to.
        episode: u64,
        /// The picture.
        frame: Frame,
    },
    /// The episode ended (or was cut by a reset or close).
    End(EpisodeEndRecord),
}

/// The totals of an ended episode.
pub struct EpisodeEndRecord {
    episode: u64,
    episode_return: f64,
    length: u64,
    terminated: bool,
    truncated: bool,
    recorded: bool,
}

/// An instance's recorder: episode bookkeeping, and the channel to its
/// writer thread.
pub struct Monitor {
    tx: mpsc::Sender<Record>,
    videos: Videos,
    /// Number of the current episode; `None` before the first reset.
    episode: Option<u64>,
    next_episode: u64,
    recording: bool,
    frames: usize,
    episode_return: f64,
    length: u64,
    /// The current episode has ended and its line was sent.
    ended: bool,
}

/// Gets a monitor folder ready: creates it, empties it with `force`, and
/// says how many episodes are already recorded there, so that a resumed
/// monitor numbers on. Blocking: call from `spawn_blocking`.
pub fn prepare(dir: &Path, force: bool) -> std::io::Result<u64> {
    if force && dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    match std::fs::read_to_string(dir.join("episodes.jsonl")) {
        Ok(text) => Ok(text.lines().filter(|l| !l.trim().is_empty()).count() as u64),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

impl Monitor {
    /// Starts a writer thread for `dir` (already prepared); episodes are
    /// numbered from `first_episode`.
    pub fn start(dir: PathBuf, videos: Videos, first_episode: u64) -> std::io::Result<Monitor> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        std::thread::Builder::new()
            .name("gym-monitor".into())
            .spawn(move || write_loop(&dir, rx))?;
        Ok(Monitor {
            tx,
            videos,
            episode: None,
            next_episode: first_episode,
            recording: false,
            frames: 0,
            episode_return: 0.0,
            length: 0,
            ended: true,
        })
    }

    /// A sender for records to pass after the instance is unlocked.
    pub fn sender(&self) -> mpsc::Sender<Record> {
        self.tx.clone()
    }

    fn end(&mut self, terminated: bool, truncated: bool, out: &mut Vec<Record>) {
        if let (Some(episode), false) = (self.episode, self.ended) {
            out.push(Record::End(EpisodeEndRecord {
                episode,
                episode_return: self.episode_return,
                length: self.length,
                terminated,
                truncated,
                recorded: self.recording,
            }));
        }
        self.ended = true;
        self.recording = false;
    }

    fn frame(&mut self, env: &dyn Env, out: &mut Vec<Record>) {
        if let (true, Some(episode)) = (self.recording && self.frames < MAX_FRAMES, self.episode) {
            self.frames += 1;
            out.push(Record::Frame {
                episode,
                frame: rl_env::render::picture(env),
            });
        }
    }

    /// After a reset: ends a cut-short episode, starts the next, and
    /// records its first frame if it is to be recorded.
    pub fn on_reset(&mut self, env: &dyn Env, out: &mut Vec<Record>) {
        self.end(false, false, out);
        let episode = self.next_episode;
        self.next_episode += 1;
        self.episode = Some(episode);
        self.ended = false;
        self.recording = self.videos.records(episode);
        self.frames = 0;
        self.episode_return = 0.0;
        self.length = 0;
        self.frame(env, out);
    }

    /// After a step: records its frame and, if the episode ended, its line.
    pub fn on_step(
        &mut self,
        env: &dyn Env,
        reward: f64,
        terminated: bool,
        truncated: bool,
        out: &mut Vec<Record>,
    ) {
        if self.ended {
            return;
        }
        self.episode_return += reward;
        self.length += 1;
        self.frame(env, out);
        if terminated || truncated {
            self.end(terminated, truncated, out);
        }
    }
}

/// At monitor/close, instance close or reaping: the line of an episode in
/// progress is sent, then the channel closes once the writer has it.
impl Drop for Monitor {
    fn drop(&mut self) {
        let mut out = Vec::new();
        self.end(false, false, &mut out);
        let Some(record) = out.pop() else { return };
        if let Err(mpsc::error::TrySendError::Full(record)) = self.tx.try_send(record) {
            // The writer lags and this may run on the async runtime, where
            // a blocking send is not allowed: a short-lived thread waits.
            let tx = self.tx.clone();
            let spawned = std::thread::Builder::new()
                .name("gym-monitor-close".into())
                .spawn(move || {
                    let _ = tx.blocking_send(record);
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "the last episode's line is lost");
            }
        }
    }
}

/// Sends `records` to a writer, waiting for room; a writer that has
/// gone away (its folder became unwritable) is ignored.
pub async fn send(tx: mpsc::Sender<Record>, records: Vec<Record>) {
    for record in records {
        if tx.send(record).await.is_err() {
            break;
        }
    }
}

/// The writer thread: one GIF per recorded episode, one line per episode.
fn write_loop(dir: &Path, mut rx: mpsc::Receiver<Record>) {
    let mut gif: Option<GifFile> = None;
    while let Some(record) = rx.blocking_recv() {
        let result = match record {
            Record::Frame { episode, frame } => {
                if gif.as_ref().is_some_and(|g| g.episode != episode)
                    && let Some(stale) = gif.take()
                {
                    // Its end was lost (the channel was full at close).
                    let _ = stale.finish(dir);
                }
                gif.get_or_insert_with(|| GifFile::new(dir, episode))
                    .writer
                    .push(&frame)
                    .map_err(|e| e.to_string())
            }
            Record::End(end) => {
                let name = match gif.take() {
                    Some(g) if end.recorded && g.episode == end.episode => g.finish(dir),
                    Some(g) => g.finish(dir).map(|_| None),
                    None => Ok(None),
                };
                name.and_then(|gif| {
                    append_line(
                        dir,
                        &EpisodeLine {
                            episode: end.episode,
                            episode_return: end.episode_return,
                            length: end.length,
                            terminated: end.terminated,
                            truncated: end.truncated,
                            gif,
                        },
                    )
                })
                .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = result {
            tracing::warn!(dir = %dir.display(), error = %e, "monitor could not write");
        }
    }
    // The channel closed: a GIF whose end line was lost is still worth
    // keeping.
    if let Some(g) = gif
        && let Err(e) = g.finish(dir)
    {
        tracing::warn!(dir = %dir.display(), error = %e, "monitor could not write");
    }
}

fn append_line(dir: &Path, line: &EpisodeLine) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("episodes.jsonl"))?;
    let mut text = serde_json::to_vec(line).map_err(std::io::Error::other)?;
    text.push(b'\n');
    file.write_all(&text)
}

/// The GIF of the episode being recorded, written as frames arrive to
/// `episode-NNNNNN.gif.part` and renamed to `.gif` when the episode ends.
struct GifFile {
    episode: u64,
    writer: GifWriter,
}

impl GifFile {
    fn new(dir: &Path, episode: u64) -> Self {
        GifFile {
            episode,
            writer: GifWriter::new(dir.join(Self::name(episode) + ".part")),
        }
    }

    fn name(episode: u64) -> String {
        format!("episode-{episode:06}.gif")
    }

    /// Writes the GIF's trailer and gives it its final name.
    fn finish(self, dir: &Path) -> std::io::Result<Option<String>> {
        let name = Self::name(self.episode);
        if !self.writer.finish().map_err(std::io::Error::other)? {
            return Ok(None);
        }
        std::fs::rename(dir.join(name.clone() + ".part"), dir.join(&name))?;
        Ok(Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_cubic_schedule() {
        let recorded: Vec<u64> = (0..2001)
            .filter(|&e| Videos::CappedCubic.records(e))
            .collect();
        assert_eq!(
            recorded,
            [0, 1, 8, 27, 64, 125, 216, 343, 512, 729, 1000, 2000]
        );
        assert!(!Videos::Never.records(0));
        assert!(Videos::Always.records(5));
    }
}
