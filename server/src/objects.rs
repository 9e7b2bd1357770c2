//! Run folders in object storage (`--artifacts URL`), for processes on
//! machines that share no file system: a worker that resumes another's run
//! reads that run's checkpoint (its replay buffer included) from here, and
//! an API node serves artefacts that workers elsewhere wrote.
//!
//! Each process keeps working in its own run folder (`DATA/runs/<id>/`, the
//! layout `rl-lab run --out` writes) and mirrors it here, under the same
//! names as keys below `<prefix>/<run id>/`: the checkpoint with the
//! metrics file up to it at each checkpoint, everything when the run ends,
//! and an evaluation's GIF when it is recorded. `file:///path` mirrors to
//! another folder (an NFS mount); `s3://bucket/prefix` to S3 or any
//! S3-compatible store, configured by the usual AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and
//! `AWS_ENDPOINT` with `AWS_ALLOW_HTTP=true` for MinIO or another store on
//! plain HTTP).

use crate::own_runtime::OwnRuntime;
use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as Key;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the object store.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The URL is not one this build takes.
    #[error("--artifacts: {0}")]
    Url(String),
    /// The store refused or failed an operation.
    #[error("object storage at {url}: {source}")]
    Store {
        /// Where (no credentials: they come from the environment).
        url: String,
        /// Why.
        source: object_store::Error,
    },
    /// A local file of the run folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime for the store's requests could not start.
    #[error("cannot start the object store's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A mirror of run folders in object storage.
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    url: String,
    runtime: OwnRuntime,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.url)
    }
}

/// Files of a run folder, relative to it, with `/` between parts.
fn files_below(folder: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(relative) = path.strip_prefix(root) {
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(folder, folder, &mut out);
    out.sort();
    out
}

impl Objects {
    /// The store at `url`: `file:///absolute/path` or `s3://bucket[/prefix]`.
    pub fn open(url: &str) -> Result<Objects, ObjectsError> {
        let store: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(ObjectsError::Url(format!(
                    "'{url}': a file URL names an absolute path, file:///path"
                )));
            }
            std::fs::create_dir_all(path).map_err(|source| ObjectsError::Io {
                path: path.into(),
                source,
            })?;
            let local =
                object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|source| {
                    ObjectsError::Store {
                        url: url.into(),
                        source,
                    }
                })?;
            Arc::new(local)
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ObjectsError::Url(format!(
                    "'{url}': no bucket, s3://bucket/prefix"
                )));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|source| ObjectsError::Store {
                    url: url.into(),
                    source,
                })?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            return Err(ObjectsError::Url(format!(
                "'{url}': expected file:///path or s3://bucket/prefix"
            )));
        };
        Ok(Objects {
            store,
            url: url.into(),
            runtime: OwnRuntime::new("objects").map_err(ObjectsError::Runtime)?,
        })
    }

    /// Where it is, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn failed(&self, source: object_store::Error) -> ObjectsError {
        ObjectsError::Store {
            url: self.url.clone(),
            source,
        }
    }

    fn key(run_id: &str, name: &str) -> Key {
        Key::from(format!("{run_id}/{name}"))
    }

    /// Copies the named files of run `run_id`'s folder (those present)
    /// to the store; how many.
    pub fn upload(
        &self,
        run_id: &str,
        folder: &Path,
        names: &[&str],
    ) -> Result<usize, ObjectsError> {
        let mut sent = 0;
        for name in names {
            let path = folder.join(name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ObjectsError::Io {
                        path: path.display().to_string(),
                        source,
                    });
                }
            };
            let key = Self::key(run_id, name);
            self.runtime
                .block(|| self.store.put(&key, bytes.into()))
                .map_err(|e| self.failed(e))?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Copies every file of run `run_id`'s folder to the store; how many.
    pub fn upload_all(&self, run_id: &str, folder: &Path) -> Result<usize, ObjectsError> {
        let names = files_below(folder);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.upload(run_id, folder, &names)
    }

    /// The files the store holds of run `run_id`: (name, bytes), sorted.
    pub fn list(&self, run_id: &str) -> Result<Vec<(String, u64)>, ObjectsError> {
        let prefix = Key::from(run_id);
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block(|| self.store.list(Some(&prefix)).try_collect())
            .map_err(|e| self.failed(e))?;
        let mut files: Vec<(String, u64)> = metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.as_ref().strip_prefix(&format!("{run_id}/"))?;
                Some((name.to_string(), meta.size))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// One file of run `run_id`, if the store has it.
    pub fn get(&self, run_id: &str, name: &str) -> Result<Option<Vec<u8>>, ObjectsError> {
        let key = Self::key(run_id, name);
        let fetched = self.runtime.block(|| async {
            match self.store.get(&key).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        fetched
            .map(|bytes| bytes.map(|b| b.to_vec()))
            .map_err(|e| self.failed(e))
    }

    /// Writes every file the store holds of run `run_id` into `folder`
    /// (made if missing), as the run left them; how many. All are fetched
    /// before any is written, so a failure midway leaves the folder as it
    /// was, never a checkpoint without the metrics file beside it.
    pub fn download_all(&self, run_id: &str, folder: &Path) -> Result<usize, ObjectsError> {
        let mut fetched = Vec::new();
        for (name, _) in self.list(run_id)? {
            if let Some(bytes) = self.get(run_id, &name)? {
                fetched.push((name, bytes));
            }
        }
        for (name, bytes) in &fetched {
            let path: PathBuf = name
                .split('/')
                .fold(folder.to_path_buf(), |p, part| p.join(part));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| ObjectsError::Io {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            std::fs::write(&path, bytes).map_err(|source| ObjectsError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(fetched.len())
    }

    /// Removes every file of run `run_id` from the store.
    pub fn delete_run(&self, run_id: &str) -> Result<(), ObjectsError> {
        for (name, _) in self.list(run_id)? {
            let key = Self::key(run_id, &name);
            self.runtime
                .block(|| self.store.delete(&key))
                .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_round_trips_through_a_file_store() {
        let mirror = tempfile::tempdir().unwrap();
        let url = format!("file://{}", mirror.path().display());
        let objects = Objects::open(&url).unwrap();
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("checkpoint.json"), b"{\"steps\": 3}").unwrap();
        std::fs::create_dir(folder.path().join("tb")).unwrap();
        std::fs::write(folder.path().join("tb").join("events.out"), b"tb").unwrap();
        assert_eq!(objects.upload_all("run-7", folder.path()).unwrap(), 2);
        assert_eq!(
            objects.list("run-7").unwrap(),
            [
                ("checkpoint.json".to_string(), 12),
                ("tb/events.out".to_string(), 2)
            ]
        );
        // A missing file is skipped, not an error.
        assert_eq!(
            objects
                .upload("run-7", folder.path(), &["checkpoint.json", "gone.json"])
                .unwrap(),
            1
        );
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("runs").join("run-7");
        assert_eq!(objects.download_all("run-7", &target).unwrap(), 2);
        assert_eq!(
            std::fs::read(target.join("tb").join("events.out")).unwrap(),
            b"tb"
        );
        assert_eq!(objects.get("run-7", "nothing").unwrap(), None);
        assert!(objects.list("run-8").unwrap().is_empty());
        objects.delete_run("run-7").unwrap();
        assert!(objects.list("run-7").unwrap().is_empty());
        for bad in ["http://x/y", "file://relative/path", "s3://"] {
            assert!(Objects::open(bad).is_err(), "{bad}");
        }
    }
}
