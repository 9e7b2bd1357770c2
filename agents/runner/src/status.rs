//! Where a run stands. One type for the run summary (`summary.json`), the
//! server's API and store, and the CLI client, so that a status is never a
//! string compared in five places.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A run's status.
///
/// Its one spelling, in JSON and in the server's SQL alike, is
/// [`as_str`](RunStatus::as_str): serde goes through `as_str` and
/// [`FromStr`], so the two cannot drift apart.
///
/// ```
/// use rl_runner::RunStatus;
///
/// assert_eq!(RunStatus::Cancelled.as_str(), "cancelled");
/// assert_eq!("interrupted".parse::<RunStatus>(), Ok(RunStatus::Interrupted));
/// assert_eq!(serde_json::to_string(&RunStatus::Failed).unwrap(), "\"failed\"");
/// assert!(RunStatus::Completed.is_final() && !RunStatus::Queued.is_final());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum RunStatus {
    /// Waiting for a worker (submitted, or resumed).
    Queued,
    /// Training on a worker.
    Running,
    /// Trained through its budget and evaluated.
    Completed,
    /// Stopped by an error; the run's `error` says why.
    Failed,
    /// Stopped on request, after a checkpoint; it can be resumed.
    Cancelled,
    /// Stopped by the server going down, after a checkpoint when the server
    /// had time for one; it can be resumed.
    Interrupted,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
    ];

    /// The status's one spelling, in JSON and in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the run has stopped for good, or until someone resumes it:
    /// nothing more will happen to it on its own.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// Every spelling, comma-separated, for messages.
    pub fn spellings() -> String {
        RunStatus::ALL.map(RunStatus::as_str).join(", ")
    }

    /// Whether a run in this status can be queued again from its checkpoint.
    pub fn is_resumable(self) -> bool {
        matches!(self, RunStatus::Cancelled | RunStatus::Interrupted)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no run status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status '{0}'; one of {all}", all = RunStatus::spellings())]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, UnknownStatus> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_string()))
    }
}

impl From<RunStatus> for &'static str {
    fn from(status: RunStatus) -> Self {
        status.as_str()
    }
}

impl TryFrom<String> for RunStatus {
    type Error = UnknownStatus;

    fn try_from(text: String) -> Result<Self, UnknownStatus> {
        text.parse()
    }
}

/// The OpenAPI schema: a string, one of [`RunStatus::ALL`]'s spellings.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RunStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(RunStatus::ALL.map(RunStatus::as_str)))
            .description(Some("Where a run stands."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RunStatus {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_one_spelling() {
        for status in RunStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(serde_json::from_value::<RunStatus>(json).unwrap(), status);
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert!(serde_json::from_str::<RunStatus>("\"done\"").is_err());
        assert_eq!(
            "Completed".parse::<RunStatus>(),
            Err(UnknownStatus("Completed".into()))
        );
    }
}
