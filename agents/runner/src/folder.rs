//! The run folder: `spec.json`, `metrics.jsonl`, `tables.json`,
//! `checkpoint.json` and `summary.json`. The server writes the same layout.
//!
//! Whole files are written to a temporary name and renamed into place, so a
//! reader never sees half a summary or half a checkpoint.

use crate::train::{CarriedState, Counters, Hooks, Progress};
use crate::{Error, Result};
use rl_agent::{Agent, Record, Sink};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A run's folder on disk.
pub struct RunFolder {
    path: PathBuf,
}

impl RunFolder {
    /// Creates the folder. Refuses one that exists and is not empty, so a
    /// run never overwrites another's results.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if path.exists() {
            let empty = std::fs::read_dir(&path)
                .map_err(|e| Error::io(&path, e))?
                .next()
                .is_none();
            if !empty {
                return Err(Error::spec(
                    "out",
                    format!(
                        "'{}' already exists and is not empty; choose another folder",
                        path.display()
                    ),
                ));
            }
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(RunFolder { path })
    }

    /// Opens a run's folder to continue it, creating it if missing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(RunFolder { path })
    }

    /// Where the folder is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` as pretty JSON, atomically.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let target = self.path.join(name);
        let temporary = self.path.join(format!(".{name}.tmp"));
        // Streamed, not built as one text first: a DQN checkpoint carries
        // its replay buffer, and a whole copy of the text added to the
        // largest transient of the server under the soak
        // (docs/server.md#load).
        let file = File::create(&temporary).map_err(|e| Error::io(&temporary, e))?;
        let mut out = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, value).map_err(|e| {
            let source = match e.io_error_kind() {
                Some(kind) => std::io::Error::new(kind, e),
                None => std::io::Error::other(e),
            };
            Error::io(&temporary, source)
        })?;
        out.flush().map_err(|e| Error::io(&temporary, e))?;
        drop(out);
        std::fs::rename(&temporary, &target).map_err(|e| Error::io(&target, e))
    }

    /// A sink writing one JSON line per record to a new `metrics.jsonl`.
    pub fn metrics(&self) -> Result<JsonlSink> {
        let path = self.path.join("metrics.jsonl");
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(JsonlSink {
            out: BufWriter::new(file),
        })
    }

    /// Continues `metrics.jsonl` of a resumed run: lines past `step` (written
    /// after the checkpoint being resumed from) are dropped, so the metrics
    /// go on exactly where the checkpoint stood.
    pub fn metrics_resumed(&self, step: u64) -> Result<JsonlSink> {
        let path = self.path.join("metrics.jsonl");
        let kept: String = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
                        .is_some_and(|s| s <= step)
                })
                .flat_map(|line| [line, "\n"])
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        std::fs::write(&path, kept).map_err(|e| Error::io(&path, e))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(JsonlSink {
            out: BufWriter::new(file),
        })
    }
}

/// Writes each record as one line of JSON.
pub struct JsonlSink {
    out: BufWriter<File>,
}

impl Sink for JsonlSink {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// What a checkpoint holds: where the run stands and the agent's state.
#[derive(Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Where the run stands.
    pub counters: Counters,
    /// [`Agent::save`]'s output.
    pub agent: serde_json::Value,
    /// What the environments carry into their next episodes (absent when
    /// they carry nothing).
    #[serde(default, skip_serializing_if = "CarriedState::is_empty")]
    pub envs: CarriedState,
}

/// Hooks that checkpoint into a run folder and pass progress on.
pub struct FolderHooks<'a, F: FnMut(&Progress)> {
    /// The folder.
    pub folder: &'a RunFolder,
    /// Called after each episode.
    pub on_progress: F,
}

impl RunFolder {
    /// Reads `checkpoint.json`, if the run has written one.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let path = self.path.join("checkpoint.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::io(&path, std::io::Error::other(e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Saves `agent`, `counters` and the environments' carried state as
    /// `checkpoint.json`, atomically.
    pub fn write_checkpoint(
        &self,
        agent: &dyn Agent,
        counters: Counters,
        carried: &CarriedState,
    ) -> Result<()> {
        let state = agent.save().map_err(Error::Agent)?;
        self.write_json(
            "checkpoint.json",
            &Checkpoint {
                counters,
                agent: state,
                envs: carried.clone(),
            },
        )
    }
}

impl<F: FnMut(&Progress)> Hooks for FolderHooks<'_, F> {
    fn on_episode(&mut self, progress: &Progress) {
        (self.on_progress)(progress)
    }

    fn checkpoint(
        &mut self,
        agent: &dyn Agent,
        counters: Counters,
        carried: &CarriedState,
    ) -> Result<()> {
        self.folder.write_checkpoint(agent, counters, carried)
    }
}
