//! Envs that own their loop: a game engine, a robot or a simulator that
//! cannot be stepped from outside connects to a run and asks it for
//! actions, as RLlib's external env and ML-Agents do
//! (`rl-lab-external/1`, docs/env-protocol.md §3).
//!
//! To the training loop it is one more [`Env`]: [`ExternalEnv::reset_into`]
//! waits for the connected process to start an episode and send its first
//! observation; [`ExternalEnv::step_into`] answers that `get_action` with
//! the agent's action and waits for the process's next `get_action` or
//! `end_episode`. The rewards the process logs in between are the step's
//! reward. So the agent learns exactly as from a local env.
//!
//! The crate knows no transport: the server feeds each connection's text
//! messages to a [`Connection`] and sends back its answers.
#![warn(missing_docs)]

mod link;
pub mod protocol;

pub use link::{Answer, Closing, Connection, Ending, EnvEnd, Link, link};

use link::Event;
use protocol::{Reply, Request};
use rl_env::{Action, Env, Frame, Info, Observation, Registry, Space, StepOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The env id of a run whose env process connects to it.
pub const ENV_ID: &str = "external";

/// A request the lab refuses, answered `{"type": "error", "field", "message"}`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// `field` of the message is at fault.
    #[error("{field}: {message}")]
    Field {
        /// `type`, `episode_id`, `observation`, `reward`, …
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// A refusal naming `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `env.config` of an external run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalConfig {
    /// The observations the process sends, in the run spec's space form;
    /// its `hello` must give the same space.
    pub observation_space: Space,
    /// The actions the lab answers with; `hello` must give the same.
    pub action_space: Space,
    /// Seconds the lab waits for the process's next message in the middle
    /// of an episode, after which the episode ends truncated at its last
    /// observation and the connection is closed; default 30, half of
    /// ML-Agents' 60 s `timeout_wait`, since a step here is one message.
    #[serde(default = "default_step_timeout")]
    pub step_timeout_seconds: f64,
}

fn default_step_timeout() -> f64 {
    30.0
}

impl ExternalConfig {
    /// Reads and checks `env.config`; errors name the field.
    pub fn from_json(config: &Value) -> rl_env::Result<Self> {
        let config: ExternalConfig = rl_env::parse_config(config)?;
        for (field, space) in [
            ("observation_space", &config.observation_space),
            ("action_space", &config.action_space),
        ] {
            space.validate().map_err(|e| match e {
                rl_env::Error::Config {
                    field: inner,
                    message,
                } => rl_env::Error::config(format!("{field}.{inner}"), message),
                other => other,
            })?;
        }
        // At most a day: a longer wait is a typo, and `Duration` has a limit.
        if !(config.step_timeout_seconds > 0.0 && config.step_timeout_seconds <= 86_400.0) {
            return Err(rl_env::Error::config(
                "step_timeout_seconds",
                format!(
                    "{} is not a number of seconds in (0, 86400]",
                    config.step_timeout_seconds
                ),
            ));
        }
        Ok(config)
    }
}

/// Registers [`ENV_ID`]. Made from the registry, the env has no link: it
/// can be listed and its config checked, and its `reset` says that only a
/// run of `rl-lab serve` can be driven by a process.
pub fn register(registry: &mut Registry) {
    registry.register(
        ENV_ID,
        "an env process that owns its loop connects to the run and asks for actions (rl-lab serve only)",
        serde_json::json!({"step_timeout_seconds": default_step_timeout()}),
        |config| Ok(Box::new(ExternalEnv::detached(ExternalConfig::from_json(config)?))),
    );
}

/// Why only `rl-lab serve` can host an external env, for every place that
/// refuses one.
pub const NEEDS_SERVER: &str = "an external env is driven by a process that connects to a run of `rl-lab serve` (GET /v1/runs/{id}/connect); submit the spec to a server instead";

/// The episode in progress.
struct Episode {
    id: String,
    session: u64,
    /// Rewards logged since the last `get_action`.
    reward: f64,
    /// The `get_action` the lab has not answered yet.
    awaiting_action: Option<oneshot::Sender<Reply>>,
}

/// An [`Env`] whose episodes a connected process plays.
pub struct ExternalEnv {
    observation_space: Space,
    action_space: Space,
    step_timeout: Duration,
    end: Option<EnvEnd>,
    episode: Option<Episode>,
    /// The episode's last observation: where a dropped episode ends.
    last_observation: Observation,
    /// Where a message's observation is read before it is accepted.
    incoming: Observation,
}

impl ExternalEnv {
    /// An env that no process can reach (listing, config checks).
    pub fn detached(config: ExternalConfig) -> Self {
        Self::new(config, None)
    }

    /// An env whose process connects through `end`'s link.
    pub fn linked(config: ExternalConfig, end: EnvEnd) -> Self {
        Self::new(config, Some(end))
    }

    fn new(config: ExternalConfig, end: Option<EnvEnd>) -> Self {
        ExternalEnv {
            last_observation: config.observation_space.zeros(),
            incoming: config.observation_space.zeros(),
            step_timeout: Duration::from_secs_f64(config.step_timeout_seconds),
            observation_space: config.observation_space,
            action_space: config.action_space,
            end,
            episode: None,
        }
    }

    fn events(&self) -> rl_env::Result<&EnvEnd> {
        self.end
            .as_ref()
            .ok_or_else(|| rl_env::Error::Unavailable(NEEDS_SERVER.into()))
    }

    /// Reads an observation of the episode into `incoming`, then makes it
    /// the last observation and writes it to `obs`.
    fn accept_observation(&mut self, value: &Value, obs: &mut Observation) -> Result<(), Error> {
        protocol::read_observation(&self.observation_space, value, &mut self.incoming)?;
        std::mem::swap(&mut self.incoming, &mut self.last_observation);
        obs.clone_from(&self.last_observation);
        Ok(())
    }

    /// Checks that `episode_id` names the episode in progress.
    fn check_episode(&self, episode_id: &str) -> Result<(), Error> {
        match &self.episode {
            Some(episode) if episode.id == episode_id => Ok(()),
            Some(episode) => Err(Error::field(
                "episode_id",
                format!(
                    "'{episode_id}' is not the episode in progress, '{}'",
                    episode.id
                ),
            )),
            None => Err(Error::field(
                "episode_id",
                format!("'{episode_id}': no episode is in progress; send start_episode first"),
            )),
        }
    }

    /// Between episodes: takes one request. Returns true once the first
    /// observation of a new episode is in `obs`.
    fn take_between(
        &mut self,
        session: u64,
        request: Request,
        reply: oneshot::Sender<Reply>,
        obs: &mut Observation,
    ) -> bool {
        let answer = match request {
            Request::StartEpisode if self.episode.is_none() => {
                let Some(end) = &self.end else {
                    return false;
                };
                let id = end.next_episode_id();
                self.episode = Some(Episode {
                    id: id.clone(),
                    session,
                    reward: 0.0,
                    awaiting_action: None,
                });
                Reply::Episode { episode_id: id }
            }
            Request::StartEpisode => self.episode_in_progress(),
            Request::GetAction {
                episode_id,
                observation,
            } => return self.take_get_action(&episode_id, &observation, reply, obs),
            Request::LogReturns { episode_id, .. } => match self.check_episode(&episode_id) {
                Ok(()) => Error::field(
                    "type",
                    "log_returns before the episode's first get_action: a reward follows an action",
                )
                .into(),
                Err(e) => e.into(),
            },
            Request::EndEpisode { episode_id, .. } => match self.check_episode(&episode_id) {
                // An episode without a single action has no step to learn
                // from: it is dropped, and not counted.
                Ok(()) => {
                    self.episode = None;
                    Reply::Ok
                }
                Err(e) => e.into(),
            },
            Request::Hello(_) => already_helloed(),
        };
        let _ = reply.send(answer);
        false
    }

    /// The answer to `start_episode` while an episode is in progress.
    fn episode_in_progress(&self) -> Reply {
        Error::field(
            "type",
            format!(
                "episode '{}' is in progress: end it with end_episode first",
                self.episode.as_ref().map_or("", |e| e.id.as_str())
            ),
        )
        .into()
    }

    /// Takes a `get_action`: its observation goes into `obs`, and `reply`
    /// waits for the agent's action. Returns false (and answers the error)
    /// if the request is refused.
    fn take_get_action(
        &mut self,
        episode_id: &str,
        observation: &Value,
        reply: oneshot::Sender<Reply>,
        obs: &mut Observation,
    ) -> bool {
        let taken = self
            .check_episode(episode_id)
            .and_then(|()| self.accept_observation(observation, obs));
        match (taken, &mut self.episode) {
            (Ok(()), Some(episode)) => {
                episode.awaiting_action = Some(reply);
                true
            }
            (Ok(()), None) => false,
            (Err(e), _) => {
                let _ = reply.send(e.into());
                false
            }
        }
    }

    /// The episode ends truncated at its last observation: the process
    /// went away, or fell silent.
    fn drop_episode(&mut self, obs: &mut Observation) -> StepOutcome {
        let reward = self.episode.take().map_or(0.0, |e| e.reward);
        obs.clone_from(&self.last_observation);
        StepOutcome {
            reward,
            terminated: false,
            truncated: true,
            info: Info::default(),
        }
    }
}

fn already_helloed() -> Reply {
    Error::field("type", "hello was already answered").into()
}

fn stopped() -> rl_env::Error {
    rl_env::Error::Unavailable("the run was stopped while it waited for its env process".into())
}

impl Env for ExternalEnv {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    /// Waits, as long as it takes, for the connected process (or the next
    /// one) to start an episode and send its first observation. The seed is
    /// not used: the process seeds its own env.
    fn reset_into(&mut self, _seed: Option<u64>, obs: &mut Observation) -> rl_env::Result<Info> {
        self.events()?;
        // An episode the loop left unfinished (it stopped mid-episode) is abandoned.
        self.episode = None;
        loop {
            let event = self.events()?.events.recv().map_err(|_| stopped())?;
            match event {
                Event::Stop => return Err(stopped()),
                Event::Disconnected { session } => {
                    if self.episode.as_ref().is_some_and(|e| e.session == session) {
                        self.episode = None;
                    }
                }
                Event::Request {
                    session,
                    request,
                    reply,
                } => {
                    if self.take_between(session, request, reply, obs) {
                        return Ok(Info::default());
                    }
                }
            }
        }
    }

    /// Answers the pending `get_action` with `action`, then waits at most
    /// `step_timeout_seconds` for each next message of the process.
    fn step_into(&mut self, action: &Action, obs: &mut Observation) -> rl_env::Result<StepOutcome> {
        let step_timeout = self.step_timeout;
        let episode = self.episode.as_mut().ok_or(rl_env::Error::ResetNeeded)?;
        let reply = episode
            .awaiting_action
            .take()
            .ok_or(rl_env::Error::ResetNeeded)?;
        rl_env::check_action(&self.action_space, action)?;
        let session = episode.session;
        // A process that has gone is found out by the wait below.
        let _ = reply.send(Reply::Action {
            action: action.clone(),
        });
        let mut deadline = Instant::now() + step_timeout;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let event = match self.events()?.events.recv_timeout(wait) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    self.events()?.drop_session(
                        session,
                        format!(
                            "no message for {} s in the middle of an episode: it ended truncated",
                            step_timeout.as_secs_f64()
                        ),
                    );
                    return Ok(self.drop_episode(obs));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
            };
            let (request, reply) = match event {
                Event::Stop => return Err(stopped()),
                Event::Disconnected { session: gone } if gone == session => {
                    return Ok(self.drop_episode(obs));
                }
                Event::Disconnected { .. } => continue,
                Event::Request { request, reply, .. } => (request, reply),
            };
            deadline = Instant::now() + step_timeout;
            let answer = match request {
                Request::LogReturns { episode_id, reward } => {
                    match self.check_episode(&episode_id) {
                        Ok(()) => {
                            if let Some(episode) = &mut self.episode {
                                episode.reward += reward;
                            }
                            Reply::Ok
                        }
                        Err(e) => e.into(),
                    }
                }
                Request::GetAction {
                    episode_id,
                    observation,
                } => {
                    if self.take_get_action(&episode_id, &observation, reply, obs) {
                        let reward = self
                            .episode
                            .as_mut()
                            .map_or(0.0, |e| std::mem::take(&mut e.reward));
                        return Ok(StepOutcome::new(reward, false));
                    }
                    continue;
                }
                Request::EndEpisode {
                    episode_id,
                    observation,
                    terminated,
                    truncated,
                } => {
                    let ended = self.check_episode(&episode_id).and_then(|()| {
                        if terminated || truncated {
                            self.accept_observation(&observation, obs)
                        } else {
                            Err(Error::field(
                                "terminated",
                                "an episode ends terminated or truncated; both are false",
                            ))
                        }
                    });
                    match ended {
                        Ok(()) => {
                            let reward = self.episode.take().map_or(0.0, |e| e.reward);
                            let _ = reply.send(Reply::Ok);
                            return Ok(StepOutcome {
                                reward,
                                terminated,
                                truncated,
                                info: Info::default(),
                            });
                        }
                        Err(e) => e.into(),
                    }
                }
                Request::StartEpisode => self.episode_in_progress(),
                Request::Hello(_) => already_helloed(),
            };
            let _ = reply.send(answer);
        }
    }

    fn render_text(&self) -> String {
        match &self.episode {
            Some(episode) => format!("external episode '{}'", episode.id),
            None => "external env, between episodes".into(),
        }
    }

    fn render_rgb(&self) -> Frame {
        Frame::zeros((1, 1, 3))
    }
}

#[cfg(test)]
mod tests;
