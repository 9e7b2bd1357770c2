//! Vector instances: many copies of an env stepped by one request, for
//! clients where per-step HTTP latency matters. They are [`VectorEnv`]s,
//! with Gymnasium's NEXT_STEP auto-reset: a copy whose episode ended
//! ignores its next action and resets, and says so in `autoreset`
//! (see `rl_env::vector`).
//!
//! Vector instances share the single instances' cap and idle timeout;
//! one vector instance counts as one instance whatever its `num_envs`.

use super::error::{BrokenInstance, GymError, Message, Result};
use super::instances::{Instance, Slot, Vector, lock};
use super::{Path, TAG, json, json_bytes, wire};
use crate::Shared;
use crate::api::RequestBody;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use rl_env::{Info, Observation, VectorEnv};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// Most copies in one vector instance.
pub const MAX_NUM_ENVS: usize = 4096;

/// Batches of at most this many copies are stepped on the async runtime;
/// larger ones on a blocking thread, so that a big batch of slow
/// environments cannot stall other requests. 256 CartPole copies step in
/// about 20 µs, MinAtar copies in a few hundred.
const INLINE_COPIES: usize = 256;

/// `POST /v1/vector-envs`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVector {
    /// A registered id, e.g. `CartPole-v1`. Required.
    #[serde(default, deserialize_with = "wire::lenient")]
    pub env_id: Option<String>,
    /// Number of copies, 1 to 4,096. Required.
    #[schema(value_type = usize, required = true, minimum = 1, maximum = 4096)]
    #[serde(default, deserialize_with = "wire::lenient")]
    pub num_envs: Option<usize>,
    /// Seeds the first reset: copy `i` gets `seed + i`.
    #[serde(default, deserialize_with = "wire::whole")]
    pub seed: Option<u64>,
    /// The environment's config (as in a run spec); defaults when absent.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// A vector instance.
#[derive(Serialize, ToSchema)]
pub struct VectorInfo {
    /// 8 hex digits.
    pub instance_id: String,
    /// The env id.
    pub env_id: String,
    /// Number of copies.
    pub num_envs: usize,
    /// One copy's observation space, in gym-http-api's format.
    pub observation_space: wire::SpaceInfo,
    /// One copy's action space, in gym-http-api's format.
    pub action_space: wire::SpaceInfo,
}

/// `POST /v1/vector-envs/{instance_id}/reset`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetVector {
    /// Copy `i` is reseeded with `seed + i`; without it the copies
    /// continue their streams (the creation seed applies to the first reset).
    #[serde(default, deserialize_with = "wire::whole")]
    pub seed: Option<u64>,
}

/// The first observation of every copy.
#[derive(Serialize, ToSchema)]
pub struct ResetVectorReply {
    /// One observation per copy.
    #[schema(schema_with = wire::observations_schema)]
    pub observations: Vec<Observation>,
    /// One reset info per copy.
    #[schema(value_type = Vec<Object>)]
    pub infos: Vec<Info>,
}

/// `POST /v1/vector-envs/{instance_id}/step`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepVector {
    /// One action per copy, in copy order. Required.
    #[schema(schema_with = wire::actions_schema, required = true)]
    #[serde(default, deserialize_with = "wire::lenient")]
    pub actions: Option<Vec<Value>>,
}

/// One transition per copy; index `i` is copy `i`.
#[derive(Serialize, ToSchema)]
pub struct StepVectorReply {
    /// Observations after the step (the true final one where an episode ended).
    #[schema(schema_with = wire::observations_schema)]
    pub observations: Vec<Observation>,
    /// JSON floats; 0 for copies that reset in this call.
    pub rewards: Vec<f64>,
    /// A terminal state was reached.
    pub terminated: Vec<bool>,
    /// The episode was cut short.
    pub truncated: Vec<bool>,
    /// `terminated || truncated`.
    pub dones: Vec<bool>,
    /// The copy reset in this call instead of stepping: skip its transition.
    pub autoreset: Vec<bool>,
    /// Per-copy info; `final_observation` is set where an episode ended.
    #[schema(value_type = Vec<Object>)]
    pub infos: Vec<Info>,
}

fn vector_of<'a>(instance: &'a Instance, id: &str) -> Result<&'a std::sync::Mutex<Vector>> {
    match &instance.slot {
        Slot::Vector(vector) => Ok(vector),
        Slot::Single(_) => Err(GymError::WrongKind {
            id: id.to_string(),
            kind: "single",
            routes: format!("/v1/envs/{id}/…"),
        }),
    }
}

/// Creates a vector instance.
#[utoipa::path(
    post,
    path = "/v1/vector-envs",
    tag = TAG,
    request_body = CreateVector,
    responses(
        (status = 200, description = "The instance was created", body = VectorInfo),
        (status = 400, description = "A missing field, an unknown env id, num_envs out of range, or a bad config", body = Message),
        (status = 429, description = "The instance cap is reached", body = Message),
    )
)]
pub(super) async fn create(
    State(state): State<Shared>,
    RequestBody(body): RequestBody,
) -> Result<Response> {
    let request: CreateVector = wire::body(&body)?;
    let env_id = wire::required(request.env_id, "env_id")?;
    wire::check_config(request.config.as_ref())?;
    if let Some(why) = rl_runner::envs::only_for_runs(&env_id) {
        return Err(GymError::BadRequest(why.into()));
    }
    let num_envs = wire::required(request.num_envs, "num_envs")?;
    if !(1..=MAX_NUM_ENVS).contains(&num_envs) {
        return Err(GymError::BadRequest(format!(
            "num_envs must be between 1 and {MAX_NUM_ENVS}, got {num_envs}"
        )));
    }
    let config = &state.config;
    state.envs.check_room(config.max_instances)?;
    let env_config = request.config.unwrap_or(Value::Null);
    let registry = &state.engine.envs;
    // A vector holds `num_envs` copies: one is weighed before the rest are
    // made, so that thousands of copies of a large model are refused
    // rather than allocated.
    let first = registry.make(&env_id, &env_config)?;
    let bytes = first
        .model()
        .map_or(0, rl_runner::memory::model_bytes)
        .saturating_mul(num_envs as u64);
    if let Some(cap) = state.engine.max_run_memory.filter(|&cap| bytes > cap) {
        return Err(GymError::BadRequest(format!(
            "num_envs: {num_envs} copies of {env_id} {}",
            rl_runner::memory::over_cap(bytes, cap)
        )));
    }
    let mut first = Some(first);
    let envs = VectorEnv::new(num_envs, |_| match first.take() {
        Some(env) => Ok(env),
        None => registry.make(&env_id, &env_config),
    })?;
    let observation_space = wire::space_info(envs.single_observation_space());
    let action_space = wire::space_info(envs.single_action_space());
    let instance_id = state.envs.insert(
        env_id.clone(),
        Slot::Vector(Box::new(std::sync::Mutex::new(Vector {
            envs,
            pending_seed: request.seed,
        }))),
        config.max_instances,
        config.instance_idle_timeout,
    )?;
    Ok(json(&VectorInfo {
        instance_id,
        env_id,
        num_envs,
        observation_space,
        action_space,
    }))
}

/// Describes a vector instance.
#[utoipa::path(
    get,
    path = "/v1/vector-envs/{instance_id}",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/vector-envs")),
    responses(
        (status = 200, description = "Its env, size and spaces", body = VectorInfo),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        BrokenInstance,
    )
)]
pub(super) async fn describe(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response> {
    let instance = state.instance(&id)?;
    let vector = lock(vector_of(&instance, &id)?, &id)?;
    let info = VectorInfo {
        instance_id: id.clone(),
        env_id: instance.env_id.clone(),
        num_envs: vector.envs.num_envs(),
        observation_space: wire::space_info(vector.envs.single_observation_space()),
        action_space: wire::space_info(vector.envs.single_action_space()),
    };
    drop(vector);
    Ok(json(&info))
}

/// Runs `job` inline for small batches, on a blocking thread for large ones.
async fn run<F>(instance: Arc<Instance>, id: String, job: F) -> Result<Vec<u8>>
where
    F: FnOnce(&Instance, &str) -> Result<Vec<u8>> + Send + 'static,
{
    let copies = match &instance.slot {
        Slot::Vector(v) => lock(v, &id)?.envs.num_envs(),
        Slot::Single(_) => 1,
    };
    if copies <= INLINE_COPIES {
        return job(&instance, &id);
    }
    let name = id.clone();
    let request_id = crate::request_id::for_log();
    tokio::task::spawn_blocking(crate::request_id::carried(move || job(&instance, &id)))
        .await
        .map_err(|e| {
            tracing::error!(instance_id = name, request_id, error = %e, "an environment panicked");
            GymError::Broken(name)
        })?
}

/// Resets every copy.
#[utoipa::path(
    post,
    path = "/v1/vector-envs/{instance_id}/reset",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/vector-envs")),
    request_body(content = Option<ResetVector>, description = "Optional; `null` and empty bodies are accepted"),
    responses(
        (status = 200, description = "The first observations", body = ResetVectorReply),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        (status = 500, description = "The instance broke in an earlier call or in this one (an environment panicked): close it", body = Message),
    )
)]
pub(super) async fn reset(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RequestBody(body): RequestBody,
) -> Result<Response> {
    let request: ResetVector = wire::body(&body)?;
    let instance = state.instance(&id)?;
    vector_of(&instance, &id)?;
    let body = run(instance, id, move |instance, id| {
        let mut guard = lock(vector_of(instance, id)?, id)?;
        let vector = &mut *guard;
        let seed = request.seed.or(vector.pending_seed.take());
        let batch = vector.envs.reset(seed)?;
        Ok(serde_json::to_vec(&ResetVectorReply {
            observations: batch.observations.to_vec(),
            infos: batch.infos.to_vec(),
        })
        .expect("observations serialise"))
    })
    .await?;
    Ok(json_bytes(body))
}

/// Steps every copy with its action.
#[utoipa::path(
    post,
    path = "/v1/vector-envs/{instance_id}/step",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/vector-envs")),
    request_body = StepVector,
    responses(
        (status = 200, description = "One transition per copy", body = StepVectorReply),
        (status = 400, description = "`Instance_id X unknown`, `A required request parameter 'actions' was not provided`, a batch of the wrong size, an action outside the action space, or a step before reset", body = Message),
        (status = 500, description = "The instance broke in an earlier call or in this one (an environment panicked): close it", body = Message),
    )
)]
pub(super) async fn step(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RequestBody(body): RequestBody,
) -> Result<Response> {
    let request: StepVector = wire::body(&body)?;
    let actions = wire::required(request.actions, "actions")?;
    let instance = state.instance(&id)?;
    vector_of(&instance, &id)?;
    let body = run(instance, id, move |instance, id| {
        let mut guard = lock(vector_of(instance, id)?, id)?;
        let envs = &mut guard.envs;
        let space = envs.single_action_space();
        let actions = actions
            .iter()
            .map(|a| wire::action(space, a))
            .collect::<Result<Vec<_>>>()?;
        let batch = envs.step(&actions)?;
        let dones = batch
            .terminated
            .iter()
            .zip(batch.truncated.iter())
            .map(|(&a, &b)| a || b)
            .collect();
        Ok(serde_json::to_vec(&StepVectorReply {
            observations: batch.observations.to_vec(),
            rewards: batch.rewards.to_vec(),
            terminated: batch.terminated.to_vec(),
            truncated: batch.truncated.to_vec(),
            dones,
            autoreset: batch.autoreset.to_vec(),
            infos: batch.infos.to_vec(),
        })
        .expect("observations serialise"))
    })
    .await?;
    Ok(json_bytes(body))
}

/// Closes a vector instance.
#[utoipa::path(
    post,
    path = "/v1/vector-envs/{instance_id}/close",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/vector-envs")),
    responses(
        (status = 204, description = "Closed"),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
    )
)]
pub(super) async fn close(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let instance = state.instance(&id)?;
    vector_of(&instance, &id)?;
    drop(instance);
    state.envs.remove(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
