//! The runs API's errors, and the one place they become HTTP responses.
//!
//! Every error body is `{"error": {"code", "message", "field",
//! "request_id"}}`: `code` is stable for programs, `field` names the bad
//! value of the request when there is one, and `request_id` is the
//! request's `x-request-id`. An internal error sends only a generic message
//! and that id; its detail (a SQLite message, a file path) goes to the
//! server's log, with the same id.

use crate::request_id;
use crate::runs::RunError;
use crate::store::{StoreError, StoreFault};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rl_runner::RunStatus;
use serde::Serialize;
use utoipa::ToSchema;

/// Everything the runs API, the catalogue and the operations routes refuse.
/// Each variant's doc gives its status and `code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `400 malformed_json`: the body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(serde_json::Error),
    /// `400 unreadable_body`: the body could not be read (the connection
    /// broke, or its framing is invalid).
    #[error("the request body could not be read: {0}")]
    UnreadableBody(String),
    /// `400 bad_path`: a path parameter is not valid (not UTF-8 once
    /// percent-decoded).
    #[error("{0}")]
    BadPath(String),
    /// `400 bad_query`: a query parameter is unknown, malformed or out of
    /// range.
    #[error("{message}")]
    BadQuery {
        /// What is wrong.
        message: String,
        /// The parameter, when one is to blame.
        field: Option<&'static str>,
    },
    /// `400 bad_header`: a header has a value it cannot have.
    #[error("{message}")]
    BadHeader {
        /// The header.
        header: &'static str,
        /// What it must be.
        message: &'static str,
    },
    /// `400 bad_artifact_name`: a name that could leave the run folder,
    /// or a hidden file.
    #[error("'{0}' is not an artefact name")]
    BadArtifactName(String),
    /// `401 unauthorized`: the server has a token and the request lacks it.
    #[error("a valid 'Authorization: Bearer <token>' header is required")]
    Unauthorized,
    /// `404 run_not_found`.
    #[error("run '{0}' not found")]
    RunNotFound(String),
    /// `404 artifact_not_found`.
    #[error("run '{run}' has no artefact '{name}'")]
    ArtifactNotFound {
        /// The run.
        run: String,
        /// The name asked for.
        name: String,
    },
    /// `404 agent_not_found`.
    #[error("unknown agent '{0}'")]
    AgentNotFound(String),
    /// `404 sweep_not_found`.
    #[error("sweep '{0}' not found")]
    SweepNotFound(String),
    /// `409 conflict`: the run's status does not allow the operation.
    #[error("run '{id}' is {status}: {why}")]
    Conflict {
        /// The run.
        id: String,
        /// Its status.
        status: RunStatus,
        /// What would have to hold.
        why: &'static str,
    },
    /// `409 no_checkpoint`: the run has saved no policy to evaluate yet.
    #[error("run '{0}' has saved no policy yet (no checkpoint)")]
    NoCheckpoint(String),
    /// `413 body_too_large`: the body is over `--max-body-bytes`.
    #[error("the request body is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// `422 invalid_spec`: the run spec is not valid; `field` is the JSON
    /// path of the bad value.
    #[error("{message}")]
    InvalidSpec {
        /// What is wrong.
        message: String,
        /// Where, when known.
        field: Option<String>,
    },
    /// `422 invalid_request`: a field of the request body is not valid.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// Where, when known.
        field: Option<String>,
    },
    /// `503 shutting_down`: the server takes no new work while it stops.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// `503 store_unavailable`: the database cannot serve the request as
    /// its files stand: the disk is full, or the database was made
    /// read-only (writes only; reads go on), or deleted. The client is told
    /// which (an operator's to mend); the log gets the detail.
    #[error("{fault} ({detail})")]
    StoreUnavailable {
        /// Which.
        fault: StoreFault,
        /// The store's error, for the log.
        detail: String,
    },
    /// `500 internal`: the server failed. The client gets a generic
    /// message and the request id; the log gets `what` and `source`.
    #[error("{what}: {source}")]
    Internal {
        /// What the server was doing.
        what: String,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a `500` says, whatever went wrong: details stay in the log.
pub const INTERNAL_MESSAGE: &str =
    "the server failed to answer; its log has the details under this request_id";

/// The body of every error reply of the runs API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `malformed_json`, `unreadable_body`,
    /// `bad_path`, `bad_query`, `bad_header`, `bad_artifact_name`,
    /// `unauthorized`, `run_not_found`, `artifact_not_found`,
    /// `agent_not_found`, `sweep_not_found`, `conflict`, `no_checkpoint`, `body_too_large`,
    /// `invalid_spec`, `invalid_request`, `shutting_down`,
    /// `store_unavailable` or `internal`.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// The JSON path (or the parameter, or the header) of the bad value,
    /// when one is to blame.
    pub field: Option<String>,
    /// The request's `x-request-id`; the server's log lines about the
    /// request carry it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// An internal error: `what` the server was doing, and why it failed.
    pub fn internal(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ApiError::Internal {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A `400 bad_query` on `field`.
    pub fn bad_query(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadQuery {
            message: message.into(),
            field: Some(field),
        }
    }

    /// A `422 invalid_request`, from a body field's parse error.
    pub fn invalid_request(e: rl_env::Error) -> Self {
        match e {
            rl_env::Error::Config { field, message } => ApiError::InvalidRequest {
                message,
                field: Some(field),
            },
            other => ApiError::InvalidRequest {
                message: other.to_string(),
                field: None,
            },
        }
    }

    /// The status each variant is documented with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::UnreadableBody(_)
            | ApiError::BadPath(_)
            | ApiError::BadQuery { .. }
            | ApiError::BadHeader { .. }
            | ApiError::BadArtifactName(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RunNotFound(_)
            | ApiError::ArtifactNotFound { .. }
            | ApiError::AgentNotFound(_)
            | ApiError::SweepNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::NoCheckpoint(_) => StatusCode::CONFLICT,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidSpec { .. } | ApiError::InvalidRequest { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::ShuttingDown | ApiError::StoreUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code each variant is documented with.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnreadableBody(_) => "unreadable_body",
            ApiError::BadPath(_) => "bad_path",
            ApiError::BadQuery { .. } => "bad_query",
            ApiError::BadHeader { .. } => "bad_header",
            ApiError::BadArtifactName(_) => "bad_artifact_name",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RunNotFound(_) => "run_not_found",
            ApiError::ArtifactNotFound { .. } => "artifact_not_found",
            ApiError::AgentNotFound(_) => "agent_not_found",
            ApiError::SweepNotFound(_) => "sweep_not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::NoCheckpoint(_) => "no_checkpoint",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::InvalidSpec { .. } => "invalid_spec",
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::StoreUnavailable { .. } => "store_unavailable",
            ApiError::Internal { .. } => "internal",
        }
    }

    /// The request value to blame, if one is.
    fn field(&self) -> Option<String> {
        match self {
            ApiError::BadQuery { field, .. } => field.map(str::to_string),
            ApiError::BadHeader { header, .. } => Some(header.to_string()),
            ApiError::Unauthorized => Some("Authorization".into()),
            ApiError::RunNotFound(_) | ApiError::AgentNotFound(_) | ApiError::SweepNotFound(_) => {
                Some("id".into())
            }
            ApiError::BadArtifactName(_) | ApiError::ArtifactNotFound { .. } => Some("name".into()),
            ApiError::InvalidSpec { field, .. } | ApiError::InvalidRequest { field, .. } => {
                field.clone()
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal { .. } => {
                tracing::error!(request_id = request_id::for_log(), error = %self, "internal error");
                INTERNAL_MESSAGE.to_string()
            }
            ApiError::StoreUnavailable { fault, .. } => {
                tracing::error!(request_id = request_id::for_log(), error = %self, "the store is unavailable");
                fault.message().to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field: self.field(),
                request_id: request_id::current(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::BodyTooLarge { .. }) {
            // The body was refused unread, so the connection cannot carry
            // another request: say so, or a client that pools connections
            // sends its next request into a socket the server is closing.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadPath(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadQuery {
            message: rejection.body_text(),
            field: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.fault() {
            Some(fault) => ApiError::StoreUnavailable {
                fault,
                detail: e.to_string(),
            },
            None => ApiError::internal("the store failed", e),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::NotFound(id) => ApiError::RunNotFound(id),
            RunError::Conflict { id, status, why } => ApiError::Conflict { id, status, why },
            RunError::ShuttingDown => ApiError::ShuttingDown,
            RunError::Store(e) => e.into(),
            e @ RunError::Io { .. } => ApiError::internal("controlling a run", e),
        }
    }
}

/// OpenAPI responses that many routes share.
pub mod responses {
    use super::ErrorBody;

    /// A route that can fail inside the server.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 500,
        description = "`internal`: the server failed; the body gives only the request id, the server's log has the detail"
    )]
    pub struct Internal(pub ErrorBody);

    /// A route about one run.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 404, description = "`run_not_found`")]
    pub struct UnknownRun(pub ErrorBody);
}

/// `Result` with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;
