//! `GET /v1/envs/{instance_id}/ws`: a WebSocket to step one instance
//! without per-request HTTP overhead.
//!
//! Each text (or binary) message is one JSON request, answered by one
//! text message, in order:
//!
//! - `{"op": "reset", "seed": 1, "options": {}}` (both fields optional)
//!   is answered like `POST …/reset/`: `{"observation", "info"}`;
//! - `{"op": "step", "action": 0}` is answered like `POST …/step/`:
//!   `{"observation", "reward", "done", "terminated", "truncated", "info"}`.
//!
//! An error is answered with `{"status": 400, "message": …}` (the HTTP
//! status and body the same request would get) and the socket stays open.
//! Every message counts as a use of the instance for the idle timeout.
//! Closing the socket does not close the instance.

use super::error::{GymError, Message};
use super::{Path, ResetRequest, StepRequest, TAG, reset_single, single_of, wire};
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// One request on the socket.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Reset(ResetRequest),
    Step(StepRequest),
}

/// An error on the socket.
#[derive(Serialize)]
struct Failure {
    status: u16,
    #[serde(flatten)]
    body: Message,
}

/// Opens a WebSocket to the instance.
#[utoipa::path(
    get,
    path = "/v1/envs/{instance_id}/ws",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol: send `{\"op\": \"reset\" | \"step\", …}` messages, one reply each"),
        (status = 400, description = "`Instance_id X unknown`, or not a WebSocket upgrade", body = Message),
    )
)]
pub(super) async fn websocket(
    State(state): State<Shared>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, GymError> {
    let instance = state.instance(&id)?;
    single_of(&instance, &id)?;
    drop(instance);
    let upgrade = upgrade.map_err(|rejection| {
        GymError::BadRequest(format!(
            "not a WebSocket upgrade: {}",
            rejection.body_text()
        ))
    })?;
    Ok(upgrade.on_upgrade(move |socket| serve(state, id, socket)))
}

async fn serve(state: Shared, id: String, mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let bytes = match message {
            ws::Message::Text(text) => Bytes::from(text),
            ws::Message::Binary(bytes) => bytes,
            ws::Message::Close(_) => break,
            ws::Message::Ping(_) | ws::Message::Pong(_) => continue,
        };
        let reply = match answer(&state, &id, &bytes).await {
            Ok(body) => body,
            Err(e) => serde_json::to_vec(&Failure {
                status: e.status().as_u16(),
                body: e.message(),
            })
            .expect("messages serialise"),
        };
        let text = String::from_utf8(reply).expect("serde_json writes UTF-8");
        if socket.send(ws::Message::Text(text.into())).await.is_err() {
            break;
        }
    }
}

async fn answer(state: &Shared, id: &str, bytes: &Bytes) -> Result<Vec<u8>, GymError> {
    let request: Option<Request> = wire::body(bytes)?;
    let request = request.ok_or(GymError::MissingParam("op"))?;
    let instance = state.instance(id)?;
    let reply = match request {
        Request::Reset(r) => reset_single(&instance, id, r)?,
        Request::Step(r) => super::step_single(&instance, id, r)?,
    };
    drop(instance);
    Ok(reply.finish().await)
}
