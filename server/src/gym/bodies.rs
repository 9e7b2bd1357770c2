//! The request and reply bodies of the single-instance routes, as the
//! OpenAPI document describes them.

use super::wire::{self, SpaceInfo};
use rl_env::{Info, Observation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// `POST /v1/envs/`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnv {
    /// A registered id, e.g. `CartPole-v1`; gym's old ids such as
    /// `CartPole-v0` and `FrozenLake-v0` resolve too. Required.
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub env_id: Option<String>,
    /// Seeds the first reset and `action_space/sample`.
    #[serde(default, deserialize_with = "wire::whole")]
    pub seed: Option<u64>,
    /// The environment's config (as in a run spec); defaults when absent.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// A new instance.
#[derive(Serialize, ToSchema)]
pub struct Created {
    /// 8 hex digits, as gym-http-api's.
    pub instance_id: String,
}

/// `GET /v1/envs/`.
#[derive(Serialize, ToSchema)]
pub struct AllEnvs {
    /// Instance id → env id, for every open single instance.
    pub all_envs: BTreeMap<String, String>,
}

/// `POST /v1/envs/{instance_id}/reset/`: every field optional, and an
/// empty or `null` body is `{}`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Reseeds the environment: the same seed and actions give the same
    /// episode. Without it the environment continues its random stream
    /// (the creation seed applies to the first reset).
    #[serde(default, deserialize_with = "wire::whole")]
    pub seed: Option<u64>,
    /// Gymnasium's reset options. rl-lab's environments take none, so
    /// only `null` or `{}` is accepted.
    #[schema(schema_with = wire::no_options)]
    pub options: Option<Value>,
}

/// The first observation of an episode.
#[derive(Serialize, ToSchema)]
pub struct ResetReply<'a> {
    /// An integer (Discrete) or nested arrays (Box), row-major.
    #[schema(schema_with = wire::observation_schema)]
    pub observation: &'a Observation,
    /// Gymnasium's reset info.
    #[schema(value_type = Object)]
    pub info: &'a Info,
}

/// `POST /v1/envs/{instance_id}/step/`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// An integer for a Discrete action space (`1.0` is read as 1), a
    /// number or array for a Box. Required.
    #[schema(schema_with = wire::action_schema, required = true)]
    pub action: Option<Value>,
    /// Accepted and ignored: the server has no screen. Use monitor/start
    /// to record GIFs.
    #[schema(schema_with = wire::lenient_bool)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub render: Option<bool>,
}

/// One transition, with gym's `done` and Gymnasium's two flags.
#[derive(Serialize, ToSchema)]
pub struct StepReply<'a> {
    /// The observation after the step.
    #[schema(schema_with = wire::observation_schema)]
    pub observation: &'a Observation,
    /// Always a JSON float.
    pub reward: f64,
    /// `terminated || truncated`, as gym's.
    pub done: bool,
    /// A terminal state was reached.
    pub terminated: bool,
    /// The episode was cut short (time limit).
    pub truncated: bool,
    /// The step's info (e.g. FrozenLake's `prob`).
    #[schema(value_type = Object)]
    pub info: &'a Info,
}

/// A space, in gym-http-api's format with Gymnasium's `dtype` and `start`.
#[derive(Serialize, ToSchema)]
pub struct SpaceReply {
    /// The space.
    pub info: SpaceInfo,
}

/// `action_space/sample`.
#[derive(Serialize, ToSchema)]
pub struct SampleReply {
    /// A uniformly random action.
    #[schema(schema_with = wire::action_schema)]
    pub action: Value,
}

/// `…/contains`.
#[derive(Serialize, ToSchema)]
pub struct Member {
    /// Whether the value is in the space.
    pub member: bool,
}

/// `POST /v1/envs/{instance_id}/monitor/start/`: gym's `Monitor` arguments.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorStart {
    /// Required, as gym-http-api requires it, but otherwise ignored:
    /// recordings go under the server's data folder, in
    /// `monitor/<instance_id>/`, never at a client's path.
    #[schema(value_type = String, required = true, min_length = 1)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub directory: Option<String>,
    /// Empty the instance's monitor folder first.
    #[schema(schema_with = wire::lenient_bool)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub force: Option<bool>,
    /// Accepted; episodes are always appended to an existing folder.
    #[schema(schema_with = wire::lenient_bool)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub resume: Option<bool>,
    /// `false`: statistics only; `true`: a GIF of every episode; absent
    /// or `null`: gym's capped cubic schedule (episodes 0, 1, 8, 27, …, then
    /// every 1,000th).
    #[schema(schema_with = wire::lenient_bool)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub video_callable: Option<bool>,
}

/// `POST /v1/upload/`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// gym's training directory. Required.
    #[schema(value_type = String, required = true, min_length = 1)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub training_dir: Option<String>,
    /// The OpenAI Gym scoreboard key. Required.
    #[schema(value_type = String, required = true, min_length = 1)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub api_key: Option<String>,
    /// gym's algorithm id.
    #[schema(schema_with = wire::lenient_string)]
    #[serde(default, deserialize_with = "super::wire::lenient")]
    pub algorithm_id: Option<String>,
}
