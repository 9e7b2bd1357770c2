//! The catalogue: what can be run, for launch forms and clients.

use super::Path;
use crate::error::responses::Internal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::{Shared, blocking};
use axum::Json;
use axum::extract::State;
use rl_runner::catalog::{AgentListing, EnvListing};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(catalog_envs))
        .routes(routes!(catalog_agents))
        .routes(routes!(agent_schema))
}

/// Every environment.
#[derive(Serialize, ToSchema)]
pub struct EnvCatalog {
    /// Sorted by id.
    pub envs: Vec<EnvListing>,
}

/// Every agent.
#[derive(Serialize, ToSchema)]
pub struct AgentCatalog {
    /// Sorted by id.
    pub agents: Vec<AgentListing>,
}

/// Every environment: id, spaces, config defaults.
#[utoipa::path(get, path = "/v1/catalog/envs", tag = "catalog",
    responses(
        (status = 200, description = "Every environment", body = EnvCatalog),
        Internal,
    ))]
async fn catalog_envs(State(state): State<Shared>) -> ApiResult<Json<EnvCatalog>> {
    let envs = blocking(move || rl_runner::catalog::envs(&state.engine)).await?;
    Ok(Json(EnvCatalog { envs }))
}

/// Every agent: each hyperparameter with its type, default and doc, and a
/// JSON Schema of its config.
#[utoipa::path(get, path = "/v1/catalog/agents", tag = "catalog",
    responses(
        (status = 200, description = "Every agent", body = AgentCatalog),
        Internal,
    ))]
async fn catalog_agents(State(state): State<Shared>) -> ApiResult<Json<AgentCatalog>> {
    let agents = blocking(move || rl_runner::catalog::agents(&state.engine)).await?;
    Ok(Json(AgentCatalog { agents }))
}

/// The JSON Schema of one agent's config.
#[utoipa::path(get, path = "/v1/catalog/agents/{id}/schema", tag = "catalog",
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 200, description = "A JSON Schema (draft 2020-12) of the agent's `config`", body = Object),
        (status = 400, description = "`bad_path`", body = ErrorBody),
        (status = 404, description = "`agent_not_found`", body = ErrorBody),
        Internal,
    ))]
async fn agent_schema(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let agents = blocking(move || rl_runner::catalog::agents(&state.engine)).await?;
    agents
        .into_iter()
        .find(|a| a.id == id)
        .map(|a| Json(a.config_schema))
        .ok_or(ApiError::AgentNotFound(id))
}
