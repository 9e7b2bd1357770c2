//! Environments over HTTP, compatible with openai/gym-http-api.
//!
//! The routes, bodies and error texts are gym-http-api's, so that its
//! existing clients work unchanged; `docs/server.md` lists them. On top:
//! Gymnasium's `terminated`/`truncated` beside `done`, `reset` with
//! `{seed, options}`, vector instances that step many copies per request
//! ([`vector`]), and a WebSocket per instance ([`ws`]).
//!
//! Quirks of the original clients that we accept: `Content-Type:
//! application/json` with an empty body even on `GET`, and `null` bodies
//! on reset and close. Bodies are therefore read as bytes and parsed here
//! ([`wire::body`]) rather than by axum's `Json` extractor.
//!
//! Instances live in [`Instances`]: see its module for locking and idle
//! reaping.

mod bodies;
mod error;
mod instances;
mod monitor;
pub mod vector;
mod wire;
pub mod ws;

pub use bodies::{
    AllEnvs, CreateEnv, Created, Member, MonitorStart, ResetReply, ResetRequest, SampleReply,
    SpaceReply, StepReply, StepRequest, Upload,
};
pub use error::{BrokenInstance, GymError, Message};
pub use instances::Instances;
pub use wire::{INFINITY, SpaceInfo};

use crate::Shared;
use crate::api::RequestBody;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use error::Result;
use instances::{Instance, Single, Slot, lock};
use monitor::{Monitor, Record, Videos};
use rand::SeedableRng;
use rl_env::Env;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The gym-http-api routes under `/v1/envs`, `/v1/upload` and
/// `/v1/shutdown`, the vector instances under `/v1/vector-envs`, and the
/// WebSocket at `/v1/envs/{instance_id}/ws`.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(reset))
        .routes(routes!(step))
        .routes(routes!(action_space))
        .routes(routes!(observation_space))
        .routes(routes!(render))
        .routes(routes!(action_space_sample))
        .routes(routes!(action_space_contains))
        .routes(routes!(observation_space_contains))
        .routes(routes!(monitor_start))
        .routes(routes!(monitor_close))
        .routes(routes!(close))
        .routes(routes!(upload))
        .routes(routes!(shutdown))
        .routes(routes!(ws::websocket))
        .routes(routes!(vector::create))
        .routes(routes!(vector::describe))
        .routes(routes!(vector::reset))
        .routes(routes!(vector::step))
        .routes(routes!(vector::close))
}

const TAG: &str = "envs";

/// Path parameters; one that does not decode (invalid UTF-8 once
/// percent-decoded) is a `400` with a message, as every refusal here.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(GymError))]
pub(crate) struct Path<T>(pub T);

impl From<PathRejection> for GymError {
    fn from(rejection: PathRejection) -> Self {
        GymError::BadRequest(rejection.body_text())
    }
}

/// A JSON response from bytes already serialised.
fn json_bytes(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json<T: Serialize>(value: &T) -> Response {
    json_bytes(serde_json::to_vec(value).expect("reply types serialise"))
}

/// A reply serialised under the instance's lock, and the monitor records
/// to send after the lock is released.
pub(crate) struct Reply {
    pub body: Vec<u8>,
    monitor: Option<(mpsc::Sender<Record>, Vec<Record>)>,
}

impl Reply {
    /// Sends the monitor records, waiting for the writer if it lags, and
    /// gives the body.
    pub async fn finish(self) -> Vec<u8> {
        if let Some((tx, records)) = self.monitor {
            monitor::send(tx, records).await;
        }
        self.body
    }
}

fn monitor_records(
    single: &Single,
    records: Vec<Record>,
) -> Option<(mpsc::Sender<Record>, Vec<Record>)> {
    match (&single.monitor, records.is_empty()) {
        (Some(m), false) => Some((m.sender(), records)),
        _ => None,
    }
}

fn single_of<'a>(instance: &'a Instance, id: &str) -> Result<&'a std::sync::Mutex<Single>> {
    match &instance.slot {
        Slot::Single(single) => Ok(single),
        Slot::Vector(_) => Err(GymError::WrongKind {
            id: id.to_string(),
            kind: "vector",
            routes: format!("/v1/vector-envs/{id}/…"),
        }),
    }
}

impl crate::AppState {
    /// The open instance `id`, if it is open and not idle too long.
    fn instance(&self, id: &str) -> Result<Arc<Instance>> {
        self.envs.get(id, self.config.instance_idle_timeout)
    }
}

/// Resets a single instance: the reply body, serialised.
pub(crate) fn reset_single(instance: &Instance, id: &str, request: ResetRequest) -> Result<Reply> {
    let mut guard = lock(single_of(instance, id)?, id)?;
    let single = &mut *guard;
    check_options(&instance.env_id, request.options.as_ref())?;
    let pending = single.pending_seed.take();
    let seed = request.seed.or(pending);
    let info = single.env.reset_into(seed, &mut single.obs)?;
    let mut records = Vec::new();
    if let Some(m) = &mut single.monitor {
        m.on_reset(&*single.env, &mut records);
    }
    let body = serde_json::to_vec(&ResetReply {
        observation: &single.obs,
        info: &info,
    })
    .expect("observations serialise");
    single.started = true;
    Ok(Reply {
        body,
        monitor: monitor_records(single, records),
    })
}

/// Refuses reset options: Gymnasium's are per environment, and ours have none.
fn check_options(env_id: &str, options: Option<&Value>) -> Result<()> {
    match options {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) => match map.keys().next() {
            None => Ok(()),
            Some(key) => Err(GymError::BadRequest(format!(
                "reset option '{key}' is not supported: {env_id} takes no reset options"
            ))),
        },
        Some(other) => Err(GymError::BadRequest(format!(
            "options must be a JSON object, got {other}"
        ))),
    }
}

/// Steps a single instance: the reply body, serialised.
pub(crate) fn step_single(instance: &Instance, id: &str, request: StepRequest) -> Result<Reply> {
    let action = wire::required(request.action, "action")?;
    let mut guard = lock(single_of(instance, id)?, id)?;
    let single = &mut *guard;
    let space = single.env.action_space();
    let action = wire::action(space, &action)?;
    rl_env::check_action(space, &action)?;
    if !single.started {
        return Err(rl_env::Error::ResetNeeded.into());
    }
    let out = single.env.step_into(&action, &mut single.obs)?;
    let mut records = Vec::new();
    if let Some(m) = &mut single.monitor {
        m.on_step(
            &*single.env,
            out.reward,
            out.terminated,
            out.truncated,
            &mut records,
        );
    }
    let body = serde_json::to_vec(&StepReply {
        observation: &single.obs,
        reward: out.reward,
        done: out.terminated || out.truncated,
        terminated: out.terminated,
        truncated: out.truncated,
        info: &out.info,
    })
    .expect("observations serialise");
    Ok(Reply {
        body,
        monitor: monitor_records(single, records),
    })
}

/// Creates an instance of `env_id`.
#[utoipa::path(
    post,
    path = "/v1/envs/",
    tag = TAG,
    request_body = CreateEnv,
    responses(
        (status = 200, description = "The instance was created", body = Created),
        (status = 400, description = "No env_id, an unknown env id (`Attempted to look up malformed environment ID '…'`), or a bad config", body = Message),
        (status = 429, description = "The instance cap is reached", body = Message),
    )
)]
async fn create(State(state): State<Shared>, RequestBody(body): RequestBody) -> Result<Response> {
    let request: CreateEnv = wire::body(&body)?;
    let env_id = wire::required(request.env_id, "env_id")?;
    wire::check_config(request.config.as_ref())?;
    if let Some(why) = rl_runner::envs::only_for_runs(&env_id) {
        return Err(GymError::BadRequest(why.into()));
    }
    let config = &state.config;
    state.envs.check_room(config.max_instances)?;
    let env = state
        .engine
        .envs
        .make(&env_id, request.config.as_ref().unwrap_or(&Value::Null))?;
    let single = Single {
        obs: env.observation_space().zeros(),
        env,
        pending_seed: request.seed,
        sampler: match request.seed {
            Some(seed) => rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            None => rand_chacha::ChaCha8Rng::from_rng(&mut rand::rng()),
        },
        monitor: None,
        started: false,
    };
    let instance_id = state.envs.insert(
        env_id,
        Slot::Single(Box::new(std::sync::Mutex::new(single))),
        config.max_instances,
        config.instance_idle_timeout,
    )?;
    Ok(json(&Created { instance_id }))
}

/// Lists the open instances.
#[utoipa::path(
    get,
    path = "/v1/envs/",
    tag = TAG,
    responses((status = 200, description = "Every open single instance", body = AllEnvs))
)]
async fn list(State(state): State<Shared>) -> Response {
    let all_envs = state
        .envs
        .list_single(state.config.instance_idle_timeout)
        .into_iter()
        .collect();
    json(&AllEnvs { all_envs })
}

/// Starts an episode.
#[utoipa::path(
    post,
    path = "/v1/envs/{instance_id}/reset/",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    request_body(content = Option<ResetRequest>, description = "Optional; `null` and empty bodies are accepted"),
    responses(
        (status = 200, description = "The first observation", body = ResetReply),
        (status = 400, description = "`Instance_id X unknown`, or unsupported options", body = Message),
        BrokenInstance,
    )
)]
async fn reset(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RequestBody(body): RequestBody,
) -> Result<Response> {
    let request: ResetRequest = wire::body(&body)?;
    let instance = state.instance(&id)?;
    let reply = reset_single(&instance, &id, request)?;
    Ok(json_bytes(reply.finish().await))
}

/// Takes one step.
#[utoipa::path(
    post,
    path = "/v1/envs/{instance_id}/step/",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    request_body = StepRequest,
    responses(
        (status = 200, description = "The transition", body = StepReply),
        (status = 400, description = "`Instance_id X unknown`, `A required request parameter 'action' was not provided`, an action outside the action space, or a step before reset", body = Message),
        BrokenInstance,
    )
)]
async fn step(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RequestBody(body): RequestBody,
) -> Result<Response> {
    let request: StepRequest = wire::body(&body)?;
    let instance = state.instance(&id)?;
    let reply = step_single(&instance, &id, request)?;
    Ok(json_bytes(reply.finish().await))
}

/// Reads something off a single instance's env.
fn with_env<T>(
    state: &crate::AppState,
    id: &str,
    f: impl FnOnce(&mut Single) -> Result<T>,
) -> Result<T> {
    let instance = state.instance(id)?;
    let mut single = lock(single_of(&instance, id)?, id)?;
    f(&mut single)
}

/// The action space.
#[utoipa::path(
    get,
    path = "/v1/envs/{instance_id}/action_space/",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    responses(
        (status = 200, description = "The action space", body = SpaceReply),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        BrokenInstance,
    )
)]
async fn action_space(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    let info = with_env(&state, &id, |s| Ok(wire::space_info(s.env.action_space())))?;
    Ok(json(&SpaceReply { info }))
}

/// The observation space.
#[utoipa::path(
    get,
    path = "/v1/envs/{instance_id}/observation_space/",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    responses(
        (status = 200, description = "The observation space", body = SpaceReply),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        BrokenInstance,
    )
)]
async fn observation_space(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response> {
    let info = with_env(&state, &id, |s| {
        Ok(wire::space_info(s.env.observation_space()))
    })?;
    Ok(json(&SpaceReply { info }))
}

/// The instance's picture of its current state, as the env renders it
/// (an rl-lab extension of the protocol: the dashboard shows it, and a
/// person plays gridworlds and classic control through it).
#[utoipa::path(
    get,
    path = "/v1/envs/{instance_id}/render",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    responses(
        (status = 200, description = "An RGB PNG of the env's frame", content_type = "image/png", body = Vec<u8>),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        BrokenInstance,
    )
)]
async fn render(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    let frame = with_env(&state, &id, |s| Ok(s.env.render_rgb()))?;
    let png = rl_env::render::encode_png(&frame).map_err(|e| {
        tracing::error!(instance_id = %id, "encoding a rendered frame: {e}");
        error::GymError::Render
    })?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// A random action.
#[utoipa::path(
    get,
    path = "/v1/envs/{instance_id}/action_space/sample",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    responses(
        (status = 200, description = "A uniformly random action, from a generator seeded by the creation seed", body = SampleReply),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        BrokenInstance,
    )
)]
async fn action_space_sample(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response> {
    let action = with_env(&state, &id, |s| {
        let action = s.env.action_space().sample_action(&mut s.sampler);
        Ok(serde_json::to_value(action).expect("actions serialise"))
    })?;
    Ok(json(&SampleReply { action }))
}

/// Whether `x` is a valid action.
#[utoipa::path(
    get,
    path = "/v1/envs/{instance_id}/action_space/contains/{x}",
    tag = TAG,
    params(
        ("instance_id" = String, Path, description = "From POST /v1/envs/"),
        ("x" = String, Path, description = "An integer (a number for a one-dimensional Box)"),
    ),
    responses(
        (status = 200, description = "Membership", body = Member),
        (status = 400, description = "`Instance_id X unknown`, or `x` is not a number", body = Message),
        BrokenInstance,
    )
)]
async fn action_space_contains(
    State(state): State<Shared>,
    Path((id, x)): Path<(String, String)>,
) -> Result<Response> {
    let member = with_env(&state, &id, |s| {
        let space = s.env.action_space();
        Ok(space.contains_action(&wire::path_action(space, &x)?))
    })?;
    Ok(json(&Member { member }))
}

/// Whether an observation, or a description, fits the observation space.
///
/// gym-http-api's form: the body lists properties of the space
/// (`{"name": "Box", "shape": [4]}`), and `member` says whether each
/// equals the space's own. rl-lab's form: `{"observation": x}` asks
/// whether `x` is an element of the space.
#[utoipa::path(
    post,
    path = "/v1/envs/{instance_id}/observation_space/contains",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    request_body(content = Object, description = "Space properties to compare, or `{\"observation\": x}`"),
    responses(
        (status = 200, description = "Membership", body = Member),
        (status = 400, description = "`Instance_id X unknown`, or a body that is not a JSON object", body = Message),
        BrokenInstance,
    )
)]
async fn observation_space_contains(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RequestBody(body): RequestBody,
) -> Result<Response> {
    let properties: serde_json::Map<String, Value> = wire::body(&body)?;
    let member = with_env(&state, &id, |s| {
        let space = s.env.observation_space();
        Ok(match properties.get("observation") {
            Some(observation) => wire::observation_member(space, observation),
            None => wire::properties_match(space, &properties),
        })
    })?;
    Ok(json(&Member { member }))
}

/// Starts recording episodes.
#[utoipa::path(
    post,
    path = "/v1/envs/{instance_id}/monitor/start/",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    request_body = MonitorStart,
    responses(
        (status = 204, description = "Recording into the server's `DATA/monitor/<instance_id>/`: `episode-NNNNNN.gif` and `episodes.jsonl`"),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        (status = 500, description = "The instance broke in an earlier call, or the server could not write its data folder (details in its log)", body = Message),
    )
)]
async fn monitor_start(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RequestBody(body): RequestBody,
) -> Result<StatusCode> {
    let request: MonitorStart = wire::body(&body)?;
    // Required, and checked before the instance, as gym-http-api did;
    // its value is not used (see `MonitorStart::directory`).
    wire::required(request.directory, "directory")?;
    let instance = state.instance(&id)?;
    single_of(&instance, &id)?;
    let videos = match request.video_callable {
        Some(false) => Videos::Never,
        Some(true) => Videos::Always,
        None => Videos::CappedCubic,
    };
    // Ids are 8 hex digits, so this stays inside the data folder.
    let dir = state.config.data.join("monitor").join(&id);
    let force = request.force.unwrap_or(false);
    let prepared = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || monitor::prepare(&dir, force)).await
    };
    let first_episode = match prepared {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tracing::error!(dir = %dir.display(), error = %e, request_id = crate::request_id::for_log(), "cannot prepare the monitor folder");
            return Err(GymError::Storage);
        }
        Err(e) => {
            tracing::error!(error = %e, request_id = crate::request_id::for_log(), "monitor preparation failed");
            return Err(GymError::Storage);
        }
    };
    let monitor = Monitor::start(dir, videos, first_episode).map_err(|e| {
        tracing::error!(error = %e, request_id = crate::request_id::for_log(), "cannot start a monitor thread");
        GymError::Storage
    })?;
    let previous = {
        let mut single = lock(single_of(&instance, &id)?, &id)?;
        single.monitor.replace(monitor)
    };
    drop(previous);
    Ok(StatusCode::NO_CONTENT)
}

/// Stops recording; the episode in progress is written.
#[utoipa::path(
    post,
    path = "/v1/envs/{instance_id}/monitor/close/",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    responses(
        (status = 204, description = "Recording stopped"),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
        BrokenInstance,
    )
)]
async fn monitor_close(State(state): State<Shared>, Path(id): Path<String>) -> Result<StatusCode> {
    let monitor = with_env(&state, &id, |s| Ok(s.monitor.take()))?;
    drop(monitor);
    Ok(StatusCode::NO_CONTENT)
}

/// Closes an instance.
#[utoipa::path(
    post,
    path = "/v1/envs/{instance_id}/close/",
    tag = TAG,
    params(("instance_id" = String, Path, description = "From POST /v1/envs/")),
    responses(
        (status = 204, description = "Closed; a monitor's recordings are finished"),
        (status = 400, description = "`Instance_id X unknown`", body = Message),
    )
)]
async fn close(State(state): State<Shared>, Path(id): Path<String>) -> Result<StatusCode> {
    let instance = state.instance(&id)?;
    single_of(&instance, &id)?;
    drop(instance);
    state.envs.remove(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// gym's upload to the OpenAI Gym scoreboard, which has closed.
#[utoipa::path(
    post,
    path = "/v1/upload/",
    tag = TAG,
    request_body = Upload,
    responses(
        (status = 400, description = "`A required request parameter 'api_key' was not provided`", body = Message),
        (status = 410, description = "With an api_key: nothing is uploaded, the scoreboard is gone", body = Message),
    )
)]
async fn upload(RequestBody(body): RequestBody) -> Result<Response> {
    let request: Upload = wire::body(&body)?;
    // gym-http-api's order: the directory, then the key.
    wire::required(request.training_dir, "training_dir")?;
    wire::required(request.api_key, "api_key")?;
    Err(GymError::UploadClosed)
}

/// Closes every instance and asks the server to stop, as gym-http-api's did.
#[utoipa::path(
    post,
    path = "/v1/shutdown/",
    tag = TAG,
    responses((status = 200, description = "`Server shutting down`", body = String, content_type = "text/plain"))
)]
async fn shutdown(State(state): State<Shared>) -> &'static str {
    tracing::info!("POST /v1/shutdown/: closing every env instance");
    state.envs.close_all();
    "Server shutting down"
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// Locks `mutex` in a thread that panics, as an environment panicking
    /// mid-step would leave it.
    fn poison<T: Send>(mutex: &std::sync::Mutex<T>) {
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _held = mutex.lock();
                    panic!("an environment panicked (on purpose, in a test)");
                })
                .join();
        });
        assert!(mutex.is_poisoned());
    }

    /// Every route of an instance whose environment panicked answers `500`,
    /// and documents it.
    #[tokio::test]
    async fn a_broken_instance_answers_the_documented_500() {
        let data = tempfile::tempdir().unwrap();
        let config = crate::ServeConfig::new("127.0.0.1:0".parse().unwrap(), data.path().into());
        let state = crate::AppState::open(config).unwrap();
        let app = crate::app(state.clone());
        let doc = serde_json::to_value(crate::routes().1).unwrap();
        let timeout = state.config.instance_idle_timeout;
        let single = state
            .envs
            .insert(
                "CartPole-v1".into(),
                Slot::Single(Box::new(std::sync::Mutex::new(Single {
                    env: state.engine.envs.make("CartPole-v1", &Value::Null).unwrap(),
                    obs: rl_env::Observation::Discrete(0),
                    pending_seed: None,
                    sampler: rand_chacha::ChaCha8Rng::seed_from_u64(0),
                    monitor: None,
                    started: false,
                }))),
                4,
                timeout,
            )
            .unwrap();
        let vector = state
            .envs
            .insert(
                "CartPole-v1".into(),
                Slot::Vector(Box::new(std::sync::Mutex::new(instances::Vector {
                    envs: rl_env::VectorEnv::new(2, |_| {
                        state.engine.envs.make("CartPole-v1", &Value::Null)
                    })
                    .unwrap(),
                    pending_seed: None,
                }))),
                4,
                timeout,
            )
            .unwrap();
        for id in [&single, &vector] {
            match &state.envs.get(id, timeout).unwrap().slot {
                Slot::Single(mutex) => poison(mutex),
                Slot::Vector(mutex) => poison(mutex),
            }
        }
        for (method, route, body) in [
            ("POST", "/v1/envs/{instance_id}/reset/", ""),
            ("POST", "/v1/envs/{instance_id}/step/", r#"{"action": 0}"#),
            ("GET", "/v1/envs/{instance_id}/action_space/", ""),
            ("GET", "/v1/envs/{instance_id}/observation_space/", ""),
            ("GET", "/v1/envs/{instance_id}/action_space/sample", ""),
            (
                "GET",
                "/v1/envs/{instance_id}/action_space/contains/{x}",
                "",
            ),
            (
                "POST",
                "/v1/envs/{instance_id}/observation_space/contains",
                "{}",
            ),
            (
                "POST",
                "/v1/envs/{instance_id}/monitor/start/",
                r#"{"directory": "tmp"}"#,
            ),
            ("POST", "/v1/envs/{instance_id}/monitor/close/", ""),
            ("GET", "/v1/vector-envs/{instance_id}", ""),
            ("POST", "/v1/vector-envs/{instance_id}/reset", ""),
            (
                "POST",
                "/v1/vector-envs/{instance_id}/step",
                r#"{"actions": [0, 0]}"#,
            ),
        ] {
            let id = if route.starts_with("/v1/envs") {
                &single
            } else {
                &vector
            };
            let uri = route.replace("{instance_id}", id).replace("{x}", "1");
            let request = Request::builder()
                .method(method)
                .uri(&uri)
                .body(Body::from(body))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), 500, "{method} {uri}");
            let documented = &doc["paths"][route][method.to_lowercase()]["responses"]["500"];
            assert!(
                documented.is_object(),
                "{method} {route} does not document 500"
            );
        }
    }
}
