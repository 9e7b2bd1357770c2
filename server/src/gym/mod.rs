//! Environments over HTTP, compatible with openai/gym-http-api.

use crate::Shared;
use utoipa_axum::router::OpenApiRouter;

/// The open environment instances.
#[derive(Default)]
pub struct Instances {}

impl Instances {
    /// How many instances are open (for `/metrics`).
    pub fn open_count(&self) -> usize {
        0
    }
}

/// The gym-http-api routes under `/v1/envs`, `/v1/vector-envs`, `/v1/upload`
/// and `/v1/shutdown`.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
}
