//! `GET /v1/runs/{id}/connect`: the WebSocket an external run's env
//! process drives it through (`rl-lab-external/1`, docs/env-protocol.md §3).
//!
//! The protocol lives in `rl-external`; this task only carries text frames
//! both ways. It never blocks: requests reach the training thread over a
//! channel, and their replies come back on a oneshot.

use super::Path;
use crate::error::responses::{Internal, UnknownRun};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::{Shared, blocking};
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use rl_external::protocol::Reply;
use rl_external::{Answer, Closing, Connection, Ending, ExternalConfig};
use rl_runner::RunSpec;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(connect))
}

/// How long a connection waits, after its request was dropped unanswered,
/// to learn how the run ended.
const ENDING_GRACE: Duration = Duration::from_secs(10);

/// Connect an env process to an external run.
///
/// A WebSocket of JSON text frames (`rl-lab-external/1`): the process says
/// `hello`, then starts episodes and asks for actions. Only one process is
/// connected at a time; a second is answered `refused`.
#[utoipa::path(get, path = "/v1/runs/{id}/connect", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol: `rl-lab-external/1` messages (docs/env-protocol.md §3)"),
        (status = 400, description = "`bad_header`: not a WebSocket upgrade; `bad_path`", body = ErrorBody),
        (status = 409, description = "`conflict`: the run is not external, or not queued or running", body = ErrorBody),
        UnknownRun, Internal,
    ))]
async fn connect(
    State(state): State<Shared>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    if let Some(workers) = state.local_workers.clone() {
        // A local worker process executes the run: this server carries
        // the frames to it (and checks the run the same way first).
        let checking = state.clone();
        let run = id.clone();
        let waiting = blocking(move || {
            let (row, spec) = external_run(&checking, &run)?;
            super::relay::check(&workers, &run, &row)?;
            workers
                .wait_for(&run, spec.env.num_envs)
                .ok_or(ApiError::Conflict {
                    id: run,
                    status: row.status,
                    why: "as many env processes as the run has copies (env.num_envs) already wait for it to start",
                })
        })
        .await??;
        let upgrade = upgrade.map_err(|_| not_an_upgrade())?;
        return Ok(
            upgrade.on_upgrade(move |socket| super::relay::relay(socket, state, id, waiting))
        );
    }
    let link = blocking(move || {
        let (row, spec) = external_run(&state, &id)?;
        let config = ExternalConfig::from_json(&spec.env.config)
            .map_err(|e| ApiError::internal("reading a stored external run's config", e))?;
        Ok::<_, ApiError>(state.runs.external_link(
            &id,
            row.status,
            row.worker.as_deref(),
            &config,
            spec.env.num_envs,
        )?)
    })
    .await??;
    let upgrade = upgrade.map_err(|_| not_an_upgrade())?;
    Ok(upgrade.on_upgrade(move |socket| drive(socket, Connection::new(link))))
}

fn not_an_upgrade() -> ApiError {
    ApiError::BadHeader {
        header: "upgrade",
        message: "this route takes a WebSocket upgrade (GET with Upgrade: websocket)",
    }
}

/// Run `id`'s row and spec, when it is a run of an `external` env.
fn external_run(state: &Shared, id: &str) -> ApiResult<(crate::store::RunRow, RunSpec)> {
    let row = state
        .store
        .run(id)?
        .ok_or_else(|| ApiError::RunNotFound(id.to_string()))?;
    let not_external = || ApiError::Conflict {
        id: id.to_string(),
        status: row.status,
        why: "only a run whose env.id is \"external\" takes env processes",
    };
    let spec = RunSpec::from_value(&row.spec).map_err(|_| not_external())?;
    if !spec.env_is_external() {
        return Err(not_external());
    }
    Ok((row, spec))
}

/// Carries one connection: each text frame in, its answer out, until the
/// process leaves, is refused, or the run ends.
async fn drive(mut socket: WebSocket, mut connection: Connection) {
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            closing = connection.closing() => return close(socket, closing).await,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                let reply = Reply::from(rl_external::Error::field(
                    "message",
                    "messages are JSON text frames, not binary",
                ));
                if send(&mut socket, &reply).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
        };
        let reply = match connection.receive(text.as_str()) {
            Answer::Now(reply) => reply,
            Answer::Later(later) => tokio::select! {
                // A reply the env gave before the run ended goes out first.
                biased;
                reply = later => match reply {
                    Ok(reply) => reply,
                    // Dropped unanswered: the run ended.
                    Err(_) => match tokio::time::timeout(ENDING_GRACE, connection.closing()).await {
                        Ok(closing) => return close(socket, closing).await,
                        Err(_) => return close(socket, Closing::Run(Ending::Stopped("the run stopped".into()))).await,
                    },
                },
                closing = connection.closing() => return close(socket, closing).await,
            },
        };
        let refused = matches!(reply, Reply::Refused { .. });
        if send(&mut socket, &reply).await.is_err() {
            return;
        }
        if refused {
            let frame = CloseFrame {
                code: close_code::POLICY,
                reason: "refused".into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
            return;
        }
    }
}

async fn send(socket: &mut WebSocket, reply: &Reply) -> Result<(), axum::Error> {
    socket.send(Message::Text(reply.to_text().into())).await
}

/// Says goodbye: `finished` and a normal close when the run completed,
/// else a close frame whose reason says why.
pub(super) async fn close(mut socket: WebSocket, closing: Closing) {
    let (code, reason) = match closing {
        Closing::Run(Ending::Finished) => {
            let _ = send(&mut socket, &Reply::Finished).await;
            (close_code::NORMAL, "the run is finished".to_string())
        }
        Closing::Run(Ending::Stopped(why)) => (close_code::AWAY, why),
        Closing::Dropped(why) => (close_code::POLICY, why),
    };
    let frame = CloseFrame {
        code,
        reason: fit_close_reason(&reason).into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// A close frame's reason is at most 123 bytes; cut at a character boundary.
pub(super) fn fit_close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
