//! The environment API's error type.

/// Everything an environment or wrapper can refuse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The action is not a member of the action space.
    #[error("action {action} is not in the action space {space}")]
    InvalidAction {
        /// The action, as given.
        action: String,
        /// The action space, described.
        space: String,
    },
    /// `step` was called before `reset`, or after the episode ended.
    #[error("the episode has ended or not begun: call reset before step")]
    ResetNeeded,
    /// A configuration value is out of range or inconsistent.
    #[error("{field}: {message}")]
    Config {
        /// JSON path of the offending field, e.g. `map[2]` or `cells.A.jump.to`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No environment is registered under this id.
    #[error("unknown environment id '{id}'{}", suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownEnv {
        /// The id, as given.
        id: String,
        /// The closest registered id, if one is close.
        suggestion: Option<String>,
    },
    /// A space was asked for something its kind cannot do.
    #[error("space mismatch: {0}")]
    Space(String),
    /// A vectorised call got a batch of the wrong size.
    #[error("got a batch of {got} actions for {expected} environments")]
    BatchSize {
        /// Number of environment copies.
        expected: usize,
        /// Number of actions given.
        got: usize,
    },
    /// An environment served by another process failed: it could not be
    /// reached, did not answer in time, refused the call, or answered
    /// something outside the protocol or outside its own spaces.
    #[error("remote env at {url}: {call} failed: {cause}")]
    Remote {
        /// The server's base URL, as configured.
        url: String,
        /// The request, e.g. `POST /v1/envs/ab12cd34/step/`.
        call: String,
        /// Why it failed, e.g. `timeout after 30 s`.
        cause: String,
    },
    /// The environment cannot go on: the process behind it is gone, or the
    /// run stopped while it waited for one.
    #[error("{0}")]
    Unavailable(String),
    /// Writing a rendered frame failed.
    #[error("could not write {path}: {message}")]
    Write {
        /// Where we tried to write.
        path: String,
        /// Why it failed.
        message: String,
    },
}

impl Error {
    /// A configuration error on `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
