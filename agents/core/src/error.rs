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
    /// The allocator refused one of the agent's large buffers (replay,
    /// network, tables): the run fails, the process hosting it goes on.
    #[error("out of memory: could not allocate {bytes} bytes for {what}")]
    OutOfMemory {
        /// What the buffer was for, e.g. "the replay buffer's frames".
        what: String,
        /// The size asked for; `u64::MAX` when it overflows the address space.
        bytes: u64,
    },
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

/// `len` copies of `value`, allocated fallibly: the large buffers of an
/// agent (a replay ring, a Q table) fail their run with
/// [`Error::OutOfMemory`] instead of aborting the process that hosts it.
///
/// The reservation is tried first and released, then `vec!` allocates:
/// for a zero `value` it asks the allocator for zeroed memory, which the
/// OS maps lazily, so a large ring that fills slowly costs only what it
/// holds (filling a reserved `Vec` would touch every page at once).
pub fn try_vec<T: Clone>(what: &str, len: usize, value: T) -> Result<Vec<T>> {
    Vec::<T>::new()
        .try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory {
            what: what.to_owned(),
            bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        })?;
    Ok(vec![value; len])
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
