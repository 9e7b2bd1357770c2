//! An environment that another process serves over HTTP: `env.id = "remote"`.
//!
//! The server speaks rl-lab's adapter protocol (`python -m rl_lab_env
//! serve`, docs/env-protocol.md §1) or gym-http-api, in its original form
//! (`done` only) or the Gymnasium-era one (`terminated`/`truncated`);
//! `rl-lab serve` itself is one. The dialect is found once, when the env
//! is made (§2), and reported by [`Env::connection`] for the run summary.
//!
//! Spaces are read from the server and mapped onto rl-lab's ([`wire`]);
//! every observation is checked against its space and every reward for
//! finiteness, so a misbehaving server fails the run with a message
//! instead of feeding an agent garbage. The remote instance is closed when
//! the env is dropped, whatever ended its run.
//!
//! ```no_run
//! use rl_env::Env;
//! let mut registry = rl_env::Registry::new();
//! rl_remote::register(&mut registry, rl_remote::UrlPolicy::Any);
//! let config = serde_json::json!({"url": "http://127.0.0.1:5000", "env_id": "FrozenLake-v1"});
//! let mut env = registry.make("remote", &config).unwrap();
//! let (obs, _) = env.reset(Some(1)).unwrap();
//! assert!(env.observation_space().contains(&obs));
//! ```
#![warn(missing_docs)]

pub mod http;
mod model;
mod policy;
mod vector;
pub mod wire;

pub use model::RemoteModel;
pub use policy::{HostPattern, UrlPolicy, parse_url};
pub use vector::{RemoteLane, RemoteVector, connect_vector};

use http::{Client, Method, Reply};
use rl_env::{
    Action, Env, Error, Frame, Info, Model, Observation, Registry, Result, Space, StepOutcome,
    parse_config,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::Duration;
use wire::{Mapped, Role, number, snippet};

/// The adapter protocol's name and the major version this client speaks.
pub const PROTOCOL: &str = "rl-lab-env";
/// A server of another major version is refused at creation.
pub const PROTOCOL_MAJOR: &str = "1";

/// How long closing an instance may hold up the end of a run.
const CLOSE_DEADLINE: Duration = Duration::from_secs(1);

/// Which protocol to speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialectChoice {
    /// Ask `GET /v1/version`: the adapter protocol if it answers
    /// `rl-lab-env`, gym-http-api otherwise.
    #[default]
    Auto,
    /// rl-lab's adapter protocol, `rl-lab-env/1`.
    RlLab,
    /// gym-http-api (its original `done` form or the Gymnasium-era
    /// `terminated`/`truncated` one, told apart at the first step).
    GymHttpApi,
}

/// `env.config` of `"env": {"id": "remote"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// Base URL of the env server, e.g. `http://127.0.0.1:5000`. Required.
    pub url: String,
    /// The id the server makes, e.g. `Taxi-v4`. Required.
    pub env_id: String,
    /// Keyword arguments for the server's `gymnasium.make` (adapter
    /// protocol); sent to a gym-http-api server only when not empty.
    /// Default `{}`.
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    /// `auto` (default), `rl-lab` or `gym-http-api`.
    #[serde(default)]
    pub dialect: DialectChoice,
    /// Deadline of each call, in seconds; more than 0. Default 30, the
    /// order of ML-Agents' 60 s but short enough that a stalled server
    /// fails a run while someone is watching.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
}

fn default_timeout() -> f64 {
    30.0
}

/// The dialect found when the env was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// rl-lab's adapter protocol, at this `MAJOR.MINOR` version.
    RlLab {
        /// The server's protocol version.
        version: String,
    },
    /// gym-http-api.
    GymHttpApi {
        /// Whether steps carry `terminated`/`truncated` (the Gymnasium-era
        /// form) or `done` alone; `None` until the first step says.
        split_flags: Option<bool>,
    },
}

impl Dialect {
    /// The name recorded in summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Dialect::RlLab { .. } => "rl-lab",
            Dialect::GymHttpApi { .. } => "gym-http-api",
        }
    }
}

/// The id a run spec names a remote env by.
pub const ENV_ID: &str = "remote";

/// Registers `remote`, making envs only from URLs `policy` allows; a
/// refused URL is a config error on `url`, with the way to allow it.
pub fn register(registry: &mut Registry, policy: UrlPolicy) {
    let vector_policy = policy.clone();
    registry.register(
        ENV_ID,
        "An environment served by another process over HTTP: rl-lab's adapter (python -m rl_lab_env serve) or any gym-http-api server",
        json!({"url": null, "env_id": null, "kwargs": {}, "dialect": "auto", "timeout_seconds": default_timeout()}),
        move |config| {
            let config: RemoteConfig = parse_config(config)?;
            policy.check(&config.url).map_err(|m| Error::config("url", m))?;
            Ok(Box::new(RemoteEnv::connect(config)?))
        },
    );
    registry.register_fed(ENV_ID, move |config, n| {
        let config: RemoteConfig = parse_config(config)?;
        vector_policy
            .check(&config.url)
            .map_err(|m| Error::config("url", m))?;
        connect_vector(config, n)
    });
}

/// An environment stepped over HTTP.
pub struct RemoteEnv {
    client: Client,
    config: RemoteConfig,
    dialect: Dialect,
    instance_id: String,
    observation: Mapped,
    action: Mapped,
    model: Option<RemoteModel>,
    reset_path: String,
    step_path: String,
    /// Cleared once the instance is closed.
    open: bool,
}

impl RemoteEnv {
    /// Checks `config`, finds the dialect, creates an instance and reads
    /// its spaces (and its model, when it has one).
    pub fn connect(config: RemoteConfig) -> Result<RemoteEnv> {
        let (client, dialect) = reach(&config)?;
        let instance_id = open_instance(&client, &config, &dialect)?;
        let base = format!("/v1/envs/{instance_id}");
        // From here on, Drop closes the instance, whatever fails next.
        let mut env = RemoteEnv {
            reset_path: format!("{base}/reset/"),
            step_path: format!("{base}/step/"),
            client,
            config,
            dialect,
            instance_id,
            observation: Mapped::from_wire(&json!({"name": "Discrete", "n": 1}), Role::Observation)
                .expect("a Discrete space maps"),
            action: Mapped::from_wire(&json!({"name": "Discrete", "n": 1}), Role::Action)
                .expect("a Discrete space maps"),
            model: None,
            open: true,
        };
        let (observation_wire, action_wire, has_model) = match env.dialect {
            Dialect::RlLab { .. } => {
                let path = format!("{base}/");
                let described = env.client.get_idempotent(&path)?;
                let field = |name: &str| {
                    described.get(name).cloned().ok_or_else(|| {
                        env.client.error(
                            Method::Get,
                            &path,
                            format!(
                                "malformed body: expected \"{name}\", got {}",
                                snippet(&described)
                            ),
                        )
                    })
                };
                let has_model = described.get("has_model").and_then(Value::as_bool) == Some(true);
                (
                    field("observation_space")?,
                    field("action_space")?,
                    has_model,
                )
            }
            Dialect::GymHttpApi { .. } => {
                let read = |which: &str| {
                    let path = format!("{base}/{which}/");
                    let body = env.client.get_idempotent(&path)?;
                    body.get("info").cloned().ok_or_else(|| {
                        env.client.error(
                            Method::Get,
                            &path,
                            format!(
                                "malformed body: expected {{\"info\": space}}, got {}",
                                snippet(&body)
                            ),
                        )
                    })
                };
                (read("observation_space")?, read("action_space")?, false)
            }
        };
        let refuse = |role: &str, message: String| {
            Error::Space(format!(
                "remote env {} at {}: its {role} space cannot be used: {message}",
                env.config.env_id, env.config.url
            ))
        };
        env.observation = Mapped::from_wire(&observation_wire, Role::Observation)
            .map_err(|m| refuse("observation", m))?;
        env.action =
            Mapped::from_wire(&action_wire, Role::Action).map_err(|m| refuse("action", m))?;
        if has_model {
            let model = fetch_model(
                &env.client,
                &format!("{base}/model/"),
                &env.observation.space,
                &env.action.space,
            )?;
            env.model = Some(model);
        }
        Ok(env)
    }

    /// Replaces an instance the server no longer knows with a new one.
    fn reopen(&mut self) -> Result<()> {
        self.instance_id = open_instance(&self.client, &self.config, &self.dialect)?;
        let base = format!("/v1/envs/{}", self.instance_id);
        self.reset_path = format!("{base}/reset/");
        self.step_path = format!("{base}/step/");
        Ok(())
    }

    /// The dialect found at creation (and, for gym-http-api, the form of
    /// its step replies once a step has been taken).
    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// The server's id of this env's instance.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    fn malformed(&self, path: &str, expected: &str, got: &Value) -> Error {
        self.client.error(
            Method::Post,
            path,
            format!("malformed body: expected {expected}, got {}", snippet(got)),
        )
    }

    /// Decodes a reply's observation into `obs` and checks it is in the space.
    fn observe(&self, path: &str, reply: &Value, obs: &mut Observation) -> Result<()> {
        let value = reply
            .get("observation")
            .ok_or_else(|| self.malformed(path, "an \"observation\"", reply))?;
        self.observation.decode(value, obs).map_err(|m| {
            self.client
                .error(Method::Post, path, format!("malformed observation: {m}"))
        })?;
        if !self.observation.space.contains(obs) {
            return Err(self.client.error(
                Method::Post,
                path,
                format!(
                    "observation {} is outside the observation space {}",
                    snippet(value),
                    self.observation.space
                ),
            ));
        }
        Ok(())
    }

    fn close(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        let path = format!("/v1/envs/{}/close/", self.instance_id);
        match self
            .client
            .send(Method::Post, &path, None, Some(CLOSE_DEADLINE))
        {
            Ok(Reply::Status(status, message)) => tracing::warn!(
                "closing remote env {} at {}: HTTP {status}: {message}",
                self.instance_id,
                self.client.url
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// Checks `config`'s deadline, URL and id, and finds the server's dialect.
fn reach(config: &RemoteConfig) -> Result<(Client, Dialect)> {
    // At most a day: a longer deadline is a typo, and `Duration` has a limit.
    if !(config.timeout_seconds > 0.0 && config.timeout_seconds <= 86_400.0) {
        return Err(Error::config(
            "timeout_seconds",
            format!(
                "must be more than 0 and at most 86400 (a day), not {}",
                config.timeout_seconds
            ),
        ));
    }
    parse_url(&config.url).map_err(|m| Error::config("url", m))?;
    if config.env_id.is_empty() {
        return Err(Error::config(
            "env_id",
            "must name the env the server makes",
        ));
    }
    let client = Client::new(&config.url, Duration::from_secs_f64(config.timeout_seconds));
    let dialect = match config.dialect {
        DialectChoice::Auto => detect(&client)?,
        DialectChoice::RlLab => detect(&client).and_then(|found| match found {
            Dialect::RlLab { .. } => Ok(found),
            Dialect::GymHttpApi { .. } => Err(client.error(
                Method::Get,
                "/v1/version",
                format!("the server does not speak {PROTOCOL} (dialect \"rl-lab\" was asked for); use \"auto\" or \"gym-http-api\""),
            )),
        })?,
        DialectChoice::GymHttpApi => Dialect::GymHttpApi { split_flags: None },
    };
    Ok((client, dialect))
}

/// `GET path`: a model, checked against the spaces it must fit.
fn fetch_model(
    client: &Client,
    path: &str,
    observation: &Space,
    action: &Space,
) -> Result<RemoteModel> {
    let body = client.get_idempotent(path)?;
    let model = RemoteModel::from_wire(&body).map_err(|m| client.error(Method::Get, path, m))?;
    let fits = *observation == Space::discrete(model.n_states() as u64)
        && action.n() == Some(model.n_actions());
    if !fits {
        return Err(client.error(
            Method::Get,
            path,
            format!(
                "a model of {} states and {} actions does not fit the spaces {observation} and {action}",
                model.n_states(),
                model.n_actions(),
            ),
        ));
    }
    Ok(model)
}

/// `GET /v1/version`: the adapter protocol if it says so, gym-http-api
/// if it answers anything else. Not reaching the server is an error.
fn detect(client: &Client) -> Result<Dialect> {
    let path = "/v1/version";
    let mut pauses = [100u64, 300].into_iter();
    let reply = loop {
        match client.send(Method::Get, path, None, None) {
            Err(e) => match pauses.next() {
                Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
                None => return Err(e),
            },
            Ok(reply) => break reply,
        }
    };
    let Reply::Json(body) = reply else {
        return Ok(Dialect::GymHttpApi { split_flags: None });
    };
    if body.get("protocol").and_then(Value::as_str) != Some(PROTOCOL) {
        return Ok(Dialect::GymHttpApi { split_flags: None });
    }
    let version = body
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if version.split('.').next() != Some(PROTOCOL_MAJOR) {
        return Err(client.error(
            Method::Get,
            path,
            format!(
                "the server speaks {PROTOCOL}/{version}, this client {PROTOCOL}/{PROTOCOL_MAJOR}.x: use an adapter of major version {PROTOCOL_MAJOR}"
            ),
        ));
    }
    Ok(Dialect::RlLab { version })
}

impl Drop for RemoteEnv {
    /// The remote instance is closed however the env's owner ended: a
    /// finished, cancelled or failed run, or a server shutting down.
    fn drop(&mut self) {
        self.close();
    }
}

impl Env for RemoteEnv {
    fn observation_space(&self) -> &Space {
        &self.observation.space
    }

    fn action_space(&self) -> &Space {
        &self.action.space
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        let body = match seed {
            Some(seed) => json!({"seed": seed}),
            None => json!({}),
        };
        let reply = match self
            .client
            .send(Method::Post, &self.reset_path, Some(&body), None)?
        {
            // Servers close instances left idle (the adapter and `rl-lab
            // serve` after 600 s), and a run's evaluation env sits idle for
            // the whole of training when it only evaluates at the end. A
            // reset starts afresh anyway, so a new instance serves as well;
            // only a reset without a seed loses its stream.
            Reply::Status(400, message)
                if message.contains("unknown") && message.contains(&self.instance_id) =>
            {
                tracing::info!(
                    url = %self.config.url,
                    instance = %self.instance_id,
                    "the server closed an idle instance; opening a new one"
                );
                self.reopen()?;
                self.client
                    .json(Method::Post, &self.reset_path, Some(&body))?
            }
            reply => self
                .client
                .expect_json(Method::Post, &self.reset_path, reply)?,
        };
        let path = &self.reset_path;
        self.observe(path, &reply, obs)?;
        Ok(info_of(&reply))
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        rl_env::check_action(&self.action.space, action)?;
        let action = self.action.encode(action).map_err(Error::Space)?;
        let path = &self.step_path;
        let reply = self
            .client
            .json(Method::Post, path, Some(&json!({"action": action})))?;
        self.observe(path, &reply, obs)?;
        let reward = reply
            .get("reward")
            .and_then(number)
            .ok_or_else(|| self.malformed(path, "a numeric \"reward\"", &reply))?;
        if !reward.is_finite() {
            return Err(self.client.error(
                Method::Post,
                path,
                format!("non-finite reward {reward}"),
            ));
        }
        let flag = |name: &str| reply.get(name).and_then(Value::as_bool);
        let (terminated, truncated) = match (flag("terminated"), flag("truncated")) {
            (Some(terminated), Some(truncated)) => {
                if let Dialect::GymHttpApi { split_flags } = &mut self.dialect {
                    split_flags.get_or_insert(true);
                }
                (terminated, truncated)
            }
            _ => {
                let done = flag("done").ok_or_else(|| {
                    self.malformed(
                        path,
                        "\"terminated\" and \"truncated\", or \"done\"",
                        &reply,
                    )
                })?;
                if let Dialect::GymHttpApi { split_flags } = &mut self.dialect {
                    split_flags.get_or_insert(false);
                }
                // Old gym's TimeLimit marks a cut-short episode in info;
                // any other end is a terminal state.
                let cut_short = reply["info"]["TimeLimit.truncated"].as_bool() == Some(true);
                (done && !cut_short, done && cut_short)
            }
        };
        Ok(StepOutcome {
            reward,
            terminated,
            truncated,
            info: info_of(&reply),
        })
    }

    fn render_text(&self) -> String {
        format!(
            "{} served at {} (instance {})",
            self.config.env_id, self.client.url, self.instance_id
        )
    }

    fn render_rgb(&self) -> Frame {
        Frame::zeros((1, 1, 3))
    }

    fn model(&self) -> Option<&dyn Model> {
        self.model.as_ref().map(|m| m as &dyn Model)
    }

    fn connection(&self) -> Option<Value> {
        let mut connection = json!({
            "url": self.config.url,
            "env_id": self.config.env_id,
            "dialect": self.dialect.name(),
        });
        match &self.dialect {
            Dialect::RlLab { version } => {
                connection["protocol_version"] = json!(version);
            }
            Dialect::GymHttpApi {
                split_flags: Some(split),
            } => {
                connection["step_flags"] = json!(if *split {
                    "terminated/truncated"
                } else {
                    "done"
                });
            }
            Dialect::GymHttpApi { split_flags: None } => {}
        }
        Some(connection)
    }
}

/// The part of a reply's `info` rl-lab reads.
fn info_of(reply: &Value) -> Info {
    info_from(&reply["info"])
}

/// The part of an `info` object rl-lab reads: FrozenLake's `prob`.
fn info_from(info: &Value) -> Info {
    Info {
        prob: info["prob"].as_f64(),
        ..Info::default()
    }
}

/// Creates an instance of `config.env_id` on the server; its id.
fn open_instance(client: &Client, config: &RemoteConfig, dialect: &Dialect) -> Result<String> {
    let mut create = json!({"env_id": config.env_id});
    if matches!(dialect, Dialect::RlLab { .. }) || !config.kwargs.is_empty() {
        create["kwargs"] = Value::Object(config.kwargs.clone());
    }
    let created = client.json(Method::Post, "/v1/envs/", Some(&create))?;
    created
        .get("instance_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            client.error(
                Method::Post,
                "/v1/envs/",
                format!(
                    "malformed body: expected {{\"instance_id\"}}, got {}",
                    snippet(&created)
                ),
            )
        })
}
