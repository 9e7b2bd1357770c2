//! The errors of the environment routes, and the one place they become
//! HTTP responses.
//!
//! gym-http-api's clients read `{"message": …}` from a `400`, and some
//! match the texts, so the variants that gym-http-api has keep its exact
//! wording. Over HTTP the body also quotes the request's `x-request-id`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything the environment routes refuse.
#[derive(Debug, thiserror::Error)]
pub enum GymError {
    /// `400`: no open instance has this id (never created, closed, or
    /// closed for being idle).
    #[error("Instance_id {0} unknown")]
    UnknownInstance(String),
    /// `400`: the id names a vector instance on a single-instance route,
    /// or the other way round.
    #[error("Instance_id {id} is a {kind} instance: use {routes}")]
    WrongKind {
        /// The instance id.
        id: String,
        /// `vector` or `single`.
        kind: &'static str,
        /// Where its routes are.
        routes: String,
    },
    /// `400`: a required field of the JSON body is missing.
    #[error("A required request parameter '{0}' was not provided")]
    MissingParam(&'static str),
    /// `400`: no environment is registered under this id. `suggestion`
    /// is the closest registered id, sent as a separate field so that the
    /// message keeps gym-http-api's text.
    #[error("Attempted to look up malformed environment ID '{id}'")]
    UnknownEnv {
        /// The id, as given.
        id: String,
        /// The closest registered id, if one is close.
        suggestion: Option<String>,
    },
    /// `400`: the body is not JSON.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// `400`: the body is JSON but not the expected shape (an unknown
    /// field, a wrong type, an action outside the action space, a bad
    /// config, a step before reset).
    #[error("{0}")]
    BadRequest(String),
    /// `429`: the instance cap is reached.
    #[error(
        "too many open environment instances: the server's limit is {limit}; close some with POST /v1/envs/{{id}}/close/"
    )]
    TooManyInstances {
        /// The cap (`ServeConfig::max_instances`).
        limit: usize,
    },
    /// `410`: uploads went to the OpenAI Gym scoreboard, which is closed.
    #[error(
        "nothing was uploaded: gym-http-api uploaded to the OpenAI Gym scoreboard, which has closed; the episodes recorded by monitor/start are in the server's data folder under monitor/<instance_id>/"
    )]
    UploadClosed,
    /// `500`: an environment panicked earlier while this instance was
    /// being stepped, so its state cannot be trusted. Details are logged.
    #[error(
        "environment instance {0} failed during an earlier call and can no longer be used: close it and create another"
    )]
    Broken(String),
    /// `500`: the env's frame could not be encoded as a PNG (an env whose
    /// renderer breaks its own contract). Details are logged.
    #[error("the env's frame could not be encoded")]
    Render,
    /// `500`: the data folder could not be written. Details are logged.
    #[error("the server could not write its data folder")]
    Storage,
}

impl From<rl_env::Error> for GymError {
    fn from(e: rl_env::Error) -> Self {
        match e {
            rl_env::Error::UnknownEnv { id, suggestion } => GymError::UnknownEnv { id, suggestion },
            other => GymError::BadRequest(other.to_string()),
        }
    }
}

/// The body of every error reply on the environment routes.
#[derive(Serialize, ToSchema)]
pub struct Message {
    /// What went wrong, in gym-http-api's words where it has them.
    pub message: String,
    /// For an unknown env id: the closest registered id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// The request's `x-request-id` (absent on the WebSocket); the
    /// server's log lines about the request carry it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl GymError {
    /// The status each variant is documented with.
    pub fn status(&self) -> StatusCode {
        match self {
            GymError::TooManyInstances { .. } => StatusCode::TOO_MANY_REQUESTS,
            GymError::UploadClosed => StatusCode::GONE,
            GymError::Broken(_) | GymError::Storage | GymError::Render => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON body, as sent over HTTP and over the WebSocket; it quotes
    /// the id of the request being answered, if any.
    pub fn message(&self) -> Message {
        Message {
            message: self.to_string(),
            suggestion: match self {
                GymError::UnknownEnv { suggestion, .. } => suggestion.clone(),
                _ => None,
            },
            request_id: crate::request_id::current(),
        }
    }
}

impl IntoResponse for GymError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.message())).into_response()
    }
}

/// The OpenAPI response of a route that locks an instance.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 500,
    description = "The instance broke in an earlier call (an environment panicked): close it"
)]
pub struct BrokenInstance(pub Message);

/// Result with [`GymError`].
pub type Result<T, E = GymError> = std::result::Result<T, E>;
