//! The agent API's error type.

/// Why an agent could not be built or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyperparameter is out of range or does not fit the environment.
    #[error("{field}: {message}")]
    Config {
        /// JSON path of the field within the agent's config.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The agent cannot work with this environment.
    #[error("{0}")]
    Incompatible(String),
    /// A metric sink refused a record (a full disk, a closed store):
    /// planning stops rather than go on unrecorded.
    #[error("recording a metric: {0}")]
    Sink(std::io::Error),
    /// The environment refused a step.
    #[error(transparent)]
    Env(#[from] rl_env::Error),
    /// A saved state could not be read back.
    #[error("cannot restore agent state: {0}")]
    State(String),
    /// Training produced a NaN or an infinity (in the loss or the weights):
    /// the run stops instead of training on silently.
    #[error("training diverged at env step {step}: {message}")]
    Diverged {
        /// Environment steps the agent had seen when it noticed.
        step: u64,
        /// What was not finite, e.g. "the loss is NaN at update 12".
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
