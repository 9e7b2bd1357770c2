//! A run's artefacts: the files of its folder, listed and served.

use super::{Path, run_exists};
use crate::error::responses::{Internal, UnknownRun};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::{Shared, blocking};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_artifacts))
        .routes(routes!(get_artifact))
}

/// Checks an artefact name and resolves it inside `folder`. Names are
/// relative paths of plain components: no `..`, no absolute paths, no
/// backslashes or NULs (percent-encoded forms arrive decoded and are
/// caught the same way).
fn artifact_path(folder: &std::path::Path, name: &str) -> ApiResult<std::path::PathBuf> {
    let bad = || ApiError::BadArtifactName(name.to_string());
    if name.is_empty() || name.starts_with('/') || name.contains(['\\', '\0', ':']) {
        return Err(bad());
    }
    let mut path = folder.to_path_buf();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.starts_with('.') {
            return Err(bad());
        }
        path.push(part);
    }
    Ok(path)
}

/// The files of a run folder, as artefact names (`tb/…` for TensorBoard).
fn artifact_names(folder: &std::path::Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut names = Vec::new();
    let mut pending = vec![(folder.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // files being written
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push((entry.path(), format!("{prefix}{name}/")));
            } else if kind.is_file() {
                names.push((format!("{prefix}{name}"), entry.metadata()?.len()));
            }
        }
    }
    names.sort();
    Ok(names)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("json") => "application/json",
        Some("jsonl") => "application/x-ndjson",
        Some("gif") => "image/gif",
        Some("png") => "image/png",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A run's files.
#[derive(Serialize, ToSchema)]
pub struct ArtifactList {
    /// Sorted by name.
    pub artifacts: Vec<Artifact>,
}

/// One file of a run folder.
#[derive(Serialize, ToSchema)]
pub struct Artifact {
    /// Its path in the run folder, e.g. `metrics.jsonl` or `tb/events.out…`.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// The content type it is served with.
    pub content_type: &'static str,
}

/// A run's artefacts: spec, metrics, checkpoints, tables, GIFs, TensorBoard files.
#[utoipa::path(get, path = "/v1/runs/{id}/artifacts", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run folder's files", body = ArtifactList),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn list_artifacts(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<ArtifactList>> {
    run_exists(&state, &id).await?;
    let folder = state.runs.folder(&id);
    let names = blocking(move || match state.runs.objects() {
        // The mirror has every process's files of the run; this node's
        // folder only what ran or was fetched here.
        Some(objects) => objects
            .list(&id)
            .map_err(|e| ApiError::internal(format!("listing {id}'s files"), e)),
        None => artifact_names(&folder)
            .map_err(|e| ApiError::internal(format!("listing {}", folder.display()), e)),
    })
    .await??;
    let artifacts = names
        .into_iter()
        .map(|(name, bytes)| Artifact {
            content_type: content_type(&name),
            name,
            bytes,
        })
        .collect();
    Ok(Json(ArtifactList { artifacts }))
}

/// One artefact, with its content type.
#[utoipa::path(get, path = "/v1/runs/{id}/artifacts/{name}", tag = "runs",
    params(("id" = String, Path, description = "Run id"),
           ("name" = String, Path, description = "Artefact name, e.g. `metrics.jsonl` or `tb/events.out.tfevents…` (percent-encoded)")),
    responses(
        (status = 200, description = "The file, with the content type its listing gives: by its extension, else `application/octet-stream`",
            content(
                (String = "application/octet-stream"),
                (Object = "application/json"),
                (String = "application/x-ndjson"),
                (String = "image/gif"),
                (String = "image/png"),
                (String = "text/plain"),
            )),
        (status = 400, description = "`bad_artifact_name` or `bad_path`", body = ErrorBody),
        (status = 404, description = "`run_not_found` or `artifact_not_found`", body = ErrorBody),
        Internal,
    ))]
async fn get_artifact(
    State(state): State<Shared>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    run_exists(&state, &id).await?;
    let path = artifact_path(&state.runs.folder(&id), &name)?;
    if let Some(objects) = state.runs.objects().cloned() {
        let (run, file) = (id.clone(), name.clone());
        let fetched = blocking(move || objects.get(&run, &file)).await?;
        return match fetched {
            Ok(Some(bytes)) => {
                Ok(([(header::CONTENT_TYPE, content_type(&name))], bytes).into_response())
            }
            Ok(None) => Err(ApiError::ArtifactNotFound { run: id, name }),
            Err(e) => Err(ApiError::internal(format!("reading {id}'s {name}"), e)),
        };
    }
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(ApiError::ArtifactNotFound { run: id, name });
        }
        Err(e) => {
            return Err(ApiError::internal(format!("reading {}", path.display()), e));
        }
    };
    Ok(([(header::CONTENT_TYPE, content_type(&name))], bytes).into_response())
}
