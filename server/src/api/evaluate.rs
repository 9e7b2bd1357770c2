//! Playing the policy a run saved, on request.

use super::{Path, RequestBody, parse_json};
use crate::error::responses::{Internal, UnknownRun};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::{Shared, blocking};
use axum::Json;
use axum::extract::State;
use rl_runner::RunSpec;
use rl_runner::saved::{Record, SavedEvaluation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(evaluate_run))
}

/// `POST /v1/runs/{id}/evaluate` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    /// Episodes to play (1 to 10,000; default the spec's `eval.episodes`).
    #[schema(minimum = 1, maximum = 10_000)]
    episodes: Option<u64>,
    /// Seed of the evaluation episodes (default the run seed).
    seed: Option<u64>,
    /// Record the first episode: `true` or `"gif"` as a GIF artefact,
    /// `"frames"` as the reply's `replay` (each frame a PNG with the action
    /// and reward that led to it and the policy's action values), which the
    /// dashboard plays.
    record: Option<RecordRequest>,
}

/// `record` of an evaluation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(untagged)]
enum RecordRequest {
    /// `true` records a GIF, `false` nothing.
    Flag(bool),
    /// `"gif"` or `"frames"`.
    Kind(RecordKind),
}

/// What to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum RecordKind {
    /// An animated GIF artefact.
    Gif,
    /// Frames in the reply, for a replay.
    Frames,
}

/// What the evaluation found.
#[derive(Serialize, ToSchema)]
pub struct EvaluateReply {
    /// Returns, lengths, their means, and the policy played.
    #[serde(flatten)]
    pub evaluation: SavedEvaluation,
    /// With `record`: the artefact name of the first episode's GIF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gif: Option<String>,
}

/// Play the policy of the latest checkpoint; returns returns and lengths,
/// and with `record` the first episode: a GIF artefact's name, or its
/// frames for a replay.
#[utoipa::path(post, path = "/v1/runs/{id}/evaluate", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = Option<EvaluateRequest>, description = "Optional; an empty body takes every default"),
    responses(
        (status = 200, description = "The evaluation", body = EvaluateReply),
        (status = 400, description = "`malformed_json` or `bad_path`", body = ErrorBody),
        (status = 409, description = "`no_checkpoint`: the run has saved no policy yet; `conflict`: an external run, whose episodes only its env process can start", body = ErrorBody),
        (status = 422, description = "`invalid_request`: a bad request field, or a body that is not a JSON object", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn evaluate_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RequestBody(body): RequestBody,
) -> ApiResult<Json<EvaluateReply>> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(&body)?
    };
    // An untagged enum's own refusal names no choice: say them.
    if let Some(record) = value.get("record")
        && !matches!(record, Value::Null | Value::Bool(_))
        && !matches!(record.as_str(), Some("gif" | "frames"))
    {
        return Err(ApiError::InvalidRequest {
            message: format!("{record} is not a record: give true, false, \"gif\" or \"frames\""),
            field: Some("record".into()),
        });
    }
    let request: EvaluateRequest =
        rl_env::parse_config(&value).map_err(ApiError::invalid_request)?;
    if request.episodes.is_some_and(|n| !(1..=10_000).contains(&n)) {
        return Err(ApiError::InvalidRequest {
            message: "episodes must be 1 to 10000".into(),
            field: Some("episodes".into()),
        });
    }
    let row = {
        let state = state.clone();
        let id = id.clone();
        blocking(move || state.store.run(&id)).await??
    }
    .ok_or_else(|| ApiError::RunNotFound(id.clone()))?;
    let spec = RunSpec::from_value(&row.spec)
        .map_err(|e| ApiError::internal(format!("reading {id}'s stored spec"), e))?;
    if spec.env_is_external() {
        return Err(ApiError::Conflict {
            id,
            status: row.status,
            why: "an external run's episodes are started by its env process, so the lab cannot play one to evaluate",
        });
    }
    let episodes = request.episodes.unwrap_or(spec.eval.episodes.max(1));
    let seed = request.seed.unwrap_or(spec.seed);
    let reply = blocking(move || {
        let path = state
            .runs
            .fetch_folder(&id)
            .map_err(|e| ApiError::internal(format!("fetching {id}'s folder"), e))?;
        let folder = rl_runner::RunFolder::open(path)
            .map_err(|e| ApiError::internal(format!("opening {id}'s folder"), e))?;
        if !folder.path().join("agent.json").exists()
            && !folder.path().join("checkpoint.json").exists()
        {
            return Err(ApiError::NoCheckpoint(id));
        }
        let wants_gif = matches!(
            request.record,
            Some(RecordRequest::Flag(true) | RecordRequest::Kind(RecordKind::Gif))
        );
        let gif = wants_gif.then(|| {
            format!(
                "eval-{}-seed{seed}.gif",
                (crate::store::now() * 1000.0) as u64
            )
        });
        let gif_path = gif.as_ref().map(|name| folder.path().join(name));
        let record = match (&gif_path, request.record) {
            (Some(path), _) => Record::Gif(path),
            (None, Some(RecordRequest::Kind(RecordKind::Frames))) => Record::Frames,
            (None, _) => Record::None,
        };
        let evaluation =
            rl_runner::saved::evaluate_saved(&state.engine, &folder, episodes, seed, record)
                .map_err(|e| ApiError::internal(format!("evaluating {id}'s saved policy"), e))?;
        if let Some(name) = &gif {
            state.runs.mirror(&id, &[name]);
        }
        Ok(EvaluateReply { evaluation, gif })
    })
    .await??;
    Ok(Json(reply))
}
