//! The run engine's error type.

use std::path::PathBuf;

/// Why a run could not be prepared or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The run spec is malformed or names something that does not exist.
    /// `field` is the JSON path of the bad value within the spec.
    #[error("{field}: {message}")]
    Spec {
        /// JSON path within the run spec, e.g. `agent.config.alpha`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The run would need more memory than one run may take
    /// (`--max-run-memory`): refused before anything is allocated.
    #[error("{field}: the run {}", crate::memory::over_cap(*estimate, *cap))]
    TooLarge {
        /// The spec part whose estimate is the larger: `agent.config` or `env.config`.
        field: String,
        /// The run's estimate in bytes.
        estimate: u64,
        /// The cap in bytes.
        cap: u64,
    },
    /// The agent cannot work with the environment (e.g. DP without a model).
    #[error("{0}")]
    Incompatible(String),
    /// The environment failed during the run.
    #[error("environment: {0}")]
    Env(rl_env::Error),
    /// The agent failed during the run.
    #[error("agent: {0}")]
    Agent(rl_agent::Error),
    /// Reading or writing a run file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// A spec error on `field`.
    pub fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether the error is the user's input (exit code 2, HTTP 4xx) rather
    /// than a failure while running.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::Spec { .. } | Error::Incompatible(_) | Error::TooLarge { .. }
        )
    }

    /// Whether the allocator refused one of the run's buffers: the spec
    /// passed every check, the machine had not the memory at that moment.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::Agent(rl_agent::Error::OutOfMemory { .. }))
    }

    /// An environment error met while building from the spec: config
    /// errors get their path within the spec.
    pub(crate) fn from_env_config(e: rl_env::Error, prefix: &str) -> Self {
        match e {
            rl_env::Error::Config { field, message } => {
                Error::spec(format!("{prefix}.{field}"), message)
            }
            rl_env::Error::UnknownEnv { .. } => Error::spec("env.id", e.to_string()),
            rl_env::Error::Space(m) => Error::Incompatible(m),
            // A remote env that cannot be made is the spec's URL at fault
            // (the server is down, or is not what the spec says it is).
            rl_env::Error::Remote { .. } => Error::spec("env.config.url", e.to_string()),
            other => Error::Env(other),
        }
    }

    /// An agent error met while building from the spec.
    pub(crate) fn from_agent_config(e: rl_agent::Error) -> Self {
        match e {
            rl_agent::Error::Config { field, message } if field.starts_with("agent.") => {
                Error::spec(field, message)
            }
            rl_agent::Error::Config { field, message } => {
                Error::spec(format!("agent.config.{field}"), message)
            }
            rl_agent::Error::Incompatible(m) => Error::Incompatible(m),
            other => Error::Agent(other),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
