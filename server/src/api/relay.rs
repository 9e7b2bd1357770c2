//! The server's half of an external run that one of its local worker
//! processes executes: the env process connects here, as ever, and this
//! carries its frames to the worker's own `connect` route on loopback and
//! the worker's back, unchanged. The protocol, and the refusals, endings
//! and truncations it has, stay in the worker, next to the run; this side
//! only waits for a worker to take the run, then passes frames on.

use super::connect::{close, fit_close_reason};
use crate::error::{ApiError, ApiResult};
use crate::local_workers::{LocalWorkers, Waiting};
use crate::store::RunRow;
use crate::{Shared, blocking};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use rl_external::{Closing, Ending};
use rl_runner::RunStatus;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How often a connection to a queued run looks whether a worker took it.
const WAIT_PERIOD: Duration = Duration::from_millis(100);

/// How long the worker's loopback port may take to accept a relayed
/// connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames an env process may send before a worker takes its run (the
/// protocol asks one question at a time: `hello` is the one).
const MOST_EARLY_FRAMES: usize = 16;

/// Refuses a connection to run `row` unless it is queued, or running in
/// one of this server's local workers.
pub(super) fn check(workers: &LocalWorkers, id: &str, row: &RunRow) -> ApiResult<()> {
    match row.status {
        RunStatus::Queued => Ok(()),
        RunStatus::Running if row.worker.as_deref().is_some_and(|w| workers.is_local(w)) => Ok(()),
        RunStatus::Running => Err(ApiError::Conflict {
            id: id.to_string(),
            status: row.status,
            why: crate::runs::EXECUTES_ELSEWHERE,
        }),
        status => Err(ApiError::Conflict {
            id: id.to_string(),
            status,
            why: crate::runs::NOT_QUEUED_OR_RUNNING,
        }),
    }
}

/// Where run `id` stands for a relayed connection.
enum Holder {
    /// A local worker executes it: its loopback address and token.
    Local(SocketAddr, String),
    /// Queued, or taken by a local worker that has not said where it
    /// listens yet.
    Waiting,
    /// It will not run here: the reason to close with.
    Gone(String),
}

async fn holder(state: &Shared, id: &str) -> Holder {
    let looking = state.clone();
    let run = id.to_string();
    let row = match blocking(move || looking.store.run(&run)).await {
        Ok(Ok(Some(row))) => row,
        Ok(Ok(None)) => return Holder::Gone("the run was deleted".into()),
        // A store blip: look again.
        Ok(Err(_)) | Err(_) => return Holder::Waiting,
    };
    let Some(workers) = &state.local_workers else {
        return Holder::Gone("this server has no local workers".into());
    };
    match (row.status, row.worker) {
        (RunStatus::Queued, _) => Holder::Waiting,
        (RunStatus::Running, Some(worker)) => match workers.relay(&worker) {
            Some((address, token)) => Holder::Local(address, token),
            None if workers.is_local(&worker) => Holder::Waiting,
            None => Holder::Gone(format!(
                "the run executes on another server ({worker}); its env processes connect there"
            )),
        },
        (RunStatus::Running, None) => Holder::Waiting,
        (status, _) => Holder::Gone(format!("the run was {status}")),
    }
}

/// Carries one env process's connection to the local worker that takes
/// run `id`, once one has.
pub(super) async fn relay(mut env: WebSocket, state: Shared, id: String, waiting: Waiting) {
    let mut early = Vec::new();
    let (address, token) = loop {
        match holder(&state, &id).await {
            Holder::Local(address, token) => break (address, token),
            Holder::Waiting => {}
            Holder::Gone(why) => return close(env, Closing::Run(Ending::Stopped(why))).await,
        }
        tokio::select! {
            message = env.recv() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(message)) if early.len() < MOST_EARLY_FRAMES => early.push(message),
                Some(Ok(_)) => {
                    let why = "too many messages before a worker took the run: wait for each answer";
                    return close(env, Closing::Dropped(why.into())).await;
                }
            },
            () = tokio::time::sleep(WAIT_PERIOD) => {}
        }
    };
    drop(waiting);
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT, connect_worker(address, &token, &id));
    let worker = match connecting.await {
        Ok(Ok(worker)) => worker,
        Ok(Err(tungstenite::Error::Http(response))) => {
            // The worker's own refusal (the run left it meanwhile): its
            // body says why.
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let why = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|reply| reply["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("the run's worker refused the connection ({status})"));
            return close(env, Closing::Dropped(why)).await;
        }
        Ok(Err(e)) => {
            tracing::error!(run_id = %id, "relaying an env process to its local worker: {e}");
            let why = "the worker executing the run cannot be reached; connect again";
            return close(env, Closing::Run(Ending::Stopped(why.into()))).await;
        }
        Err(_) => {
            tracing::error!(run_id = %id, "relaying an env process to its local worker: no answer");
            let why = "the worker executing the run did not answer; connect again";
            return close(env, Closing::Run(Ending::Stopped(why.into()))).await;
        }
    };
    let (mut to_worker, mut from_worker) = worker.split();
    for message in early {
        if let Some(message) = to_worker_message(message)
            && to_worker.send(message).await.is_err()
        {
            return;
        }
    }
    loop {
        tokio::select! {
            message = env.recv() => match message {
                Some(Ok(message)) => {
                    let closing = matches!(message, Message::Close(_));
                    if let Some(message) = to_worker_message(message) {
                        let _ = to_worker.send(message).await;
                    }
                    if closing {
                        return;
                    }
                }
                Some(Err(_)) | None => {
                    let _ = to_worker.close().await;
                    return;
                }
            },
            message = from_worker.next() => match message {
                Some(Ok(message)) => {
                    let Some(message) = to_env_message(message) else {
                        continue;
                    };
                    let closing = matches!(message, Message::Close(_));
                    if env.send(message).await.is_err() || closing {
                        return;
                    }
                }
                Some(Err(_)) | None => {
                    let why = "the worker executing the run went away; the run is taken back";
                    return close(env, Closing::Run(Ending::Stopped(why.into()))).await;
                }
            },
        }
    }
}

type WorkerSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the worker's `connect` route for run `id`, showing the relay
/// token.
async fn connect_worker(
    address: SocketAddr,
    token: &str,
    id: &str,
) -> Result<WorkerSocket, tungstenite::Error> {
    let mut request = format!("ws://{address}/v1/runs/{id}/connect").into_client_request()?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| tungstenite::Error::Url(tungstenite::error::UrlError::UnsupportedUrlScheme))?;
    request.headers_mut().insert("authorization", bearer);
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket)
}

/// An env process's frame as the worker's socket sends it; pings stay on
/// their own hop.
fn to_worker_message(message: Message) -> Option<tungstenite::Message> {
    Some(match message {
        Message::Text(text) => tungstenite::Message::Text(text.as_str().into()),
        Message::Binary(bytes) => tungstenite::Message::Binary(bytes),
        Message::Close(frame) => {
            tungstenite::Message::Close(frame.map(|frame| tungstenite::protocol::CloseFrame {
                code: frame.code.into(),
                reason: frame.reason.as_str().into(),
            }))
        }
        Message::Ping(_) | Message::Pong(_) => return None,
    })
}

/// A worker's frame as the env process's socket sends it.
fn to_env_message(message: tungstenite::Message) -> Option<Message> {
    Some(match message {
        tungstenite::Message::Text(text) => Message::Text(text.as_str().into()),
        tungstenite::Message::Binary(bytes) => Message::Binary(bytes),
        tungstenite::Message::Close(frame) => Message::Close(frame.map(|frame| CloseFrame {
            code: frame.code.into(),
            reason: fit_close_reason(&frame.reason).into(),
        })),
        _ => return None,
    })
}
