//! `num_envs` copies of a remote env stepped by one call: a vector
//! instance of the adapter (`POST /v1/vector-envs`, protocol 1.2,
//! docs/env-protocol.md §1), instead of one instance and one round trip per
//! copy.
//!
//! The training loop's [`VectorEnv`](rl_env::VectorEnv) keeps deciding
//! what each copy does: it resets a copy when the copy's episode ended
//! (its own wrappers' time limits included) and with the seed it chose for
//! that episode. So the instance is made without autoreset, and each call
//! names the copies that reset and their seeds. The [`RemoteVector`] feed
//! sends the whole batch; each [`RemoteLane`] then hands its copy's
//! outcome to the wrappers above it, exactly as a [`RemoteEnv`](crate::RemoteEnv)
//! of its own would have.

use crate::http::{Client, Method, Reply};
use crate::model::RemoteModel;
use crate::wire::{Mapped, Role, number, snippet};
use crate::{CLOSE_DEADLINE, Dialect, RemoteConfig, fetch_model, info_from, reach};
use rl_env::{
    Action, CopyCall, Env, Error, FedCopies, Feed, Frame, Info, Model, Observation, Result, Space,
    StepOutcome,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, PoisonError};

/// The adapter protocol's minor version from which vector instances take
/// `autoreset: false`, per-copy `resets` and `seeds`, and serve a model.
const VECTOR_FEED_MINOR: u32 = 2;

/// Makes `n` copies of `config`'s env as one vector instance, or `None`
/// when the server cannot serve them so (gym-http-api, or an adapter
/// older than protocol 1.2): the caller then opens one instance per copy.
pub fn connect_vector(config: RemoteConfig, n: usize) -> Result<Option<FedCopies>> {
    let (client, dialect) = reach(&config)?;
    let Dialect::RlLab { version } = &dialect else {
        return Ok(None);
    };
    let minor = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    if minor < VECTOR_FEED_MINOR {
        return Ok(None);
    }
    let path = "/v1/vector-envs";
    let created = client.json(
        Method::Post,
        path,
        Some(&json!({
            "env_id": config.env_id,
            "num_envs": n,
            "kwargs": config.kwargs,
            "autoreset": false,
        })),
    )?;
    let field = |name: &str| {
        created.get(name).ok_or_else(|| {
            client.error(
                Method::Post,
                path,
                format!(
                    "malformed body: expected \"{name}\", got {}",
                    snippet(&created)
                ),
            )
        })
    };
    let instance_id = field("instance_id")?
        .as_str()
        .ok_or_else(|| client.error(Method::Post, path, "instance_id must be a string"))?
        .to_string();
    let observation_wire = field("observation_space")?.clone();
    let action_wire = field("action_space")?.clone();
    let base = format!("/v1/vector-envs/{instance_id}");
    // From here on, dropping the feed closes the instance.
    let mut feed = RemoteVector {
        client,
        env_id: config.env_id.clone(),
        step_path: format!("{base}/step"),
        reset_path: format!("{base}/reset"),
        close_path: format!("{base}/close"),
        observation: Mapped::from_wire(&json!({"name": "Discrete", "n": 1}), Role::Observation)
            .expect("a Discrete space maps"),
        action: Mapped::from_wire(&json!({"name": "Discrete", "n": 1}), Role::Action)
            .expect("a Discrete space maps"),
        lanes: Arc::new(Mutex::new(Vec::new())),
        resets: vec![false; n],
        open: true,
    };
    let refuse = |role: &str, message: String| {
        Error::Space(format!(
            "remote env {} at {}: its {role} space cannot be used: {message}",
            config.env_id, config.url
        ))
    };
    feed.observation = Mapped::from_wire(&observation_wire, Role::Observation)
        .map_err(|m| refuse("observation", m))?;
    feed.action = Mapped::from_wire(&action_wire, Role::Action).map_err(|m| refuse("action", m))?;
    let model = match created.get("has_model").and_then(Value::as_bool) {
        Some(true) => Some(Arc::new(fetch_model(
            &feed.client,
            &format!("{base}/model"),
            &feed.observation.space,
            &feed.action.space,
        )?)),
        _ => None,
    };
    *lock(&feed.lanes) = (0..n)
        .map(|_| Fetched {
            call: None,
            observation: feed.observation.space.zeros(),
            outcome: StepOutcome::new(0.0, false),
        })
        .collect();
    let connection = json!({
        "url": config.url,
        "env_id": config.env_id,
        "dialect": dialect.name(),
        "protocol_version": version,
        "stepping": "vector",
        "num_envs": n,
    });
    let copies = (0..n)
        .map(|index| {
            Box::new(RemoteLane {
                lanes: Arc::clone(&feed.lanes),
                index,
                observation_space: feed.observation.space.clone(),
                action_space: feed.action.space.clone(),
                model: model.clone(),
                connection: connection.clone(),
            }) as Box<dyn Env>
        })
        .collect();
    Ok(Some(FedCopies {
        copies,
        feed: Box::new(feed),
    }))
}

/// What the feed fetched for one lane, waiting for the lane's env to read
/// it.
struct Fetched {
    /// The call it answers; `None` once read.
    call: Option<CopyCall>,
    observation: Observation,
    outcome: StepOutcome,
}

fn lock(lanes: &Mutex<Vec<Fetched>>) -> std::sync::MutexGuard<'_, Vec<Fetched>> {
    // A panic elsewhere leaves plain data behind; reading it is safe.
    lanes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The feed: one vector instance on the adapter.
pub struct RemoteVector {
    client: Client,
    env_id: String,
    step_path: String,
    reset_path: String,
    close_path: String,
    observation: Mapped,
    action: Mapped,
    lanes: Arc<Mutex<Vec<Fetched>>>,
    /// Which lanes reset in the call being made.
    resets: Vec<bool>,
    open: bool,
}

impl RemoteVector {
    fn malformed(&self, path: &str, expected: &str, got: &Value) -> Error {
        self.client.error(
            Method::Post,
            path,
            format!("malformed body: expected {expected}, got {}", snippet(got)),
        )
    }

    /// A list of one entry per lane from `reply[name]`.
    fn column<'a>(&self, path: &str, reply: &'a Value, name: &str) -> Result<&'a [Value]> {
        reply
            .get(name)
            .and_then(Value::as_array)
            .filter(|column| column.len() == self.resets.len())
            .map(Vec::as_slice)
            .ok_or_else(|| {
                self.malformed(
                    path,
                    &format!("\"{name}\": a list of {} entries", self.resets.len()),
                    reply,
                )
            })
    }
}

impl Feed for RemoteVector {
    fn fetch(&mut self, calls: &[CopyCall]) -> Result<()> {
        let mut actions = Vec::with_capacity(calls.len());
        let mut seeds = Vec::with_capacity(calls.len());
        for (lane, call) in calls.iter().enumerate() {
            match call {
                CopyCall::Step(action) => {
                    rl_env::check_action(&self.action.space, action)?;
                    actions.push(self.action.encode(action).map_err(Error::Space)?);
                    seeds.push(Value::Null);
                    self.resets[lane] = false;
                }
                CopyCall::Reset(seed) => {
                    actions.push(Value::Null);
                    seeds.push(seed.map_or(Value::Null, Value::from));
                    self.resets[lane] = true;
                }
            }
        }
        let all_reset = self.resets.iter().all(|&reset| reset);
        let (path, body) = if all_reset {
            (&self.reset_path, json!({"seeds": seeds}))
        } else if self.resets.iter().any(|&reset| reset) {
            (
                &self.step_path,
                json!({"actions": actions, "resets": self.resets, "seeds": seeds}),
            )
        } else {
            (&self.step_path, json!({"actions": actions}))
        };
        let path = path.clone();
        let reply = self.client.json(Method::Post, &path, Some(&body))?;
        let observations = self.column(&path, &reply, "observations")?;
        let infos = self.column(&path, &reply, "infos")?;
        let stepped = if all_reset {
            None
        } else {
            Some((
                self.column(&path, &reply, "rewards")?,
                self.column(&path, &reply, "terminated")?,
                self.column(&path, &reply, "truncated")?,
                self.column(&path, &reply, "autoreset")?,
            ))
        };
        let mut lanes = lock(&self.lanes);
        for (lane, fetched) in lanes.iter_mut().enumerate() {
            let value = &observations[lane];
            self.observation
                .decode(value, &mut fetched.observation)
                .map_err(|m| {
                    self.client.error(
                        Method::Post,
                        &path,
                        format!("malformed observations[{lane}]: {m}"),
                    )
                })?;
            if !self.observation.space.contains(&fetched.observation) {
                return Err(self.client.error(
                    Method::Post,
                    &path,
                    format!(
                        "observations[{lane}] = {} is outside the observation space {}",
                        snippet(value),
                        self.observation.space
                    ),
                ));
            }
            let info = info_from(&infos[lane]);
            fetched.outcome = match stepped {
                None => StepOutcome {
                    info,
                    ..StepOutcome::new(0.0, false)
                },
                Some((rewards, terminated, truncated, autoreset)) => {
                    if autoreset[lane].as_bool() != Some(self.resets[lane]) {
                        return Err(self.malformed(
                            &path,
                            &format!("autoreset[{lane}] = {}", self.resets[lane]),
                            &reply,
                        ));
                    }
                    let reward = number(&rewards[lane])
                        .filter(|r| r.is_finite())
                        .ok_or_else(|| {
                            self.malformed(&path, &format!("a finite rewards[{lane}]"), &reply)
                        })?;
                    let flag = |column: &[Value], name: &str| {
                        column[lane].as_bool().ok_or_else(|| {
                            self.malformed(&path, &format!("a boolean {name}[{lane}]"), &reply)
                        })
                    };
                    StepOutcome {
                        reward,
                        terminated: flag(terminated, "terminated")?,
                        truncated: flag(truncated, "truncated")?,
                        info,
                    }
                }
            };
            fetched.call = Some(calls[lane].clone());
        }
        Ok(())
    }
}

impl Drop for RemoteVector {
    /// The instance is closed however the run ended.
    fn drop(&mut self) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        match self
            .client
            .send(Method::Post, &self.close_path, None, Some(CLOSE_DEADLINE))
        {
            Ok(Reply::Status(status, message)) if status >= 400 => tracing::warn!(
                "closing remote vector env {} ({}) at {}: HTTP {status}: {message}",
                self.close_path,
                self.env_id,
                self.client.url
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// One copy of a remote vector: it reads what the feed fetched for it.
pub struct RemoteLane {
    lanes: Arc<Mutex<Vec<Fetched>>>,
    index: usize,
    observation_space: Space,
    action_space: Space,
    model: Option<Arc<RemoteModel>>,
    connection: Value,
}

impl RemoteLane {
    /// The outcome fetched for `call`, into `obs`. A call other than the
    /// one the feed was told of is an error: a wrapper between the loop
    /// and this copy changed or repeated it.
    fn take(&self, call: Call<'_>, obs: &mut Observation) -> Result<StepOutcome> {
        let mut lanes = lock(&self.lanes);
        let fetched = &mut lanes[self.index];
        let answers = match (&fetched.call, call) {
            (Some(CopyCall::Step(fetched)), Call::Step(asked)) => fetched == asked,
            (Some(CopyCall::Reset(fetched)), Call::Reset(asked)) => *fetched == asked,
            _ => false,
        };
        match fetched.call.take() {
            Some(_) if answers => {
                std::mem::swap(obs, &mut fetched.observation);
                Ok(std::mem::replace(
                    &mut fetched.outcome,
                    StepOutcome::new(0.0, false),
                ))
            }
            other => Err(Error::Space(format!(
                "copy {} of a remote vector env was asked to {call:?} after its batch fetched {}: only wrappers that pass each call through unchanged can wrap it",
                self.index,
                other.map_or_else(|| "nothing".to_string(), |c| format!("{c:?}"))
            ))),
        }
    }
}

/// A call a lane's env is making, borrowed.
#[derive(Clone, Copy, Debug)]
enum Call<'a> {
    Step(&'a Action),
    Reset(Option<u64>),
}

impl Env for RemoteLane {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut Observation) -> Result<Info> {
        Ok(self.take(Call::Reset(seed), obs)?.info)
    }

    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> Result<StepOutcome> {
        self.take(Call::Step(action), obs)
    }

    fn render_text(&self) -> String {
        format!(
            "copy {} of {} served at {}",
            self.index, self.connection["env_id"], self.connection["url"]
        )
    }

    fn render_rgb(&self) -> Frame {
        Frame::zeros((1, 1, 3))
    }

    fn model(&self) -> Option<&dyn Model> {
        self.model.as_deref().map(|m| m as &dyn Model)
    }

    fn connection(&self) -> Option<Value> {
        Some(self.connection.clone())
    }
}
