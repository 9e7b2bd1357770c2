//! Where a run's [`ExternalEnv`](crate::ExternalEnv) meets the connections
//! of env processes, whatever carries them.
//!
//! The env runs on the training thread and blocks; connections live on an
//! async runtime and must not. So requests go to the env over a std
//! channel (a send never blocks), and each carries a oneshot for its reply
//! that the connection awaits. A connection whose request was dropped
//! unanswered (the run ended) learns why from [`Connection::closing`].

use crate::ExternalConfig;
use crate::protocol::{self, Reply, Request};
use rl_env::Space;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// How a run ended, as its connections are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The run trained through its budget: requests get `finished`.
    Finished,
    /// Cancelled, failed or interrupted: the socket closes with this reason.
    Stopped(String),
}

/// What a connection is told when it must go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    /// The run ended.
    Run(Ending),
    /// This connection was dropped by the env (it fell silent mid-episode).
    Dropped(String),
}

/// What reaches the env.
pub(crate) enum Event {
    /// A request of connection `session`, with its reply's way back.
    Request {
        session: u64,
        request: Request,
        reply: oneshot::Sender<Reply>,
    },
    /// Connection `session` closed.
    Disconnected { session: u64 },
    /// The run is being cancelled or the server stops: give up waiting.
    Stop,
}

struct Connected {
    session: u64,
    name: String,
    since: Instant,
    dropped: watch::Sender<Option<String>>,
}

/// Who is connected to each lane.
#[derive(Default)]
struct Slots {
    /// `connected[lane]`: the process driving copy `lane`, if any.
    connected: Vec<Option<Connected>>,
    sessions: u64,
}

/// One run's meeting point: shared by the server and the connections.
/// A run of `num_envs` copies has that many lanes, each driven by one
/// connected process at a time; a process takes the first free lane.
pub struct Link {
    run_id: String,
    observation_space: Space,
    action_space: Space,
    /// `events[lane]` reaches copy `lane`'s env.
    events: Vec<mpsc::Sender<Event>>,
    slots: Mutex<Slots>,
    ending: watch::Sender<Option<Ending>>,
}

/// One lane's end of a [`Link`]: give it to
/// [`ExternalEnv::linked`](crate::ExternalEnv::linked).
pub struct EnvEnd {
    pub(crate) events: mpsc::Receiver<Event>,
    link: Weak<Link>,
    lane: usize,
    /// Episodes started on every lane of the run, so that ids are unique
    /// across its processes.
    episodes: Arc<AtomicU64>,
}

/// A link for run `run_id` with the spaces of `config` and `lanes` lanes
/// (at least one), and the env end of each lane.
pub fn link(run_id: &str, config: &ExternalConfig, lanes: usize) -> (Arc<Link>, Vec<EnvEnd>) {
    let (events, receivers): (Vec<_>, Vec<_>) = (0..lanes.max(1)).map(|_| mpsc::channel()).unzip();
    let link = Arc::new(Link {
        run_id: run_id.to_string(),
        observation_space: config.observation_space.clone(),
        action_space: config.action_space.clone(),
        slots: Mutex::new(Slots {
            connected: events.iter().map(|_| None).collect(),
            sessions: 0,
        }),
        events,
        ending: watch::Sender::new(None),
    });
    let episodes = Arc::new(AtomicU64::new(0));
    let ends = receivers
        .into_iter()
        .enumerate()
        .map(|(lane, events)| EnvEnd {
            events,
            link: Arc::downgrade(&link),
            lane,
            episodes: Arc::clone(&episodes),
        })
        .collect();
    (link, ends)
}

impl Link {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Every update of the slots is one assignment: a panic cannot leave it half-done.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the envs if they wait (for a connection, or mid-episode), so
    /// that a cancelled run stops at once; the caller has raised the run's
    /// cancel flag first.
    pub fn stop(&self) {
        for lane in &self.events {
            let _ = lane.send(Event::Stop);
        }
    }

    /// The run ended: connections are told, the env (if it still waits)
    /// stops, and no process can say `hello` any more.
    pub fn end(&self, ending: Ending) {
        self.ending.send_replace(Some(ending));
        self.stop();
    }

    /// How many processes are connected now.
    pub fn connected(&self) -> usize {
        self.slots().connected.iter().flatten().count()
    }

    /// Drops connection `session` of `lane` with `reason`, if it is still
    /// the one.
    pub(crate) fn drop_session(&self, lane: usize, session: u64, reason: String) {
        if let Some(Some(connected)) = self.slots().connected.get(lane)
            && connected.session == session
        {
            connected.dropped.send_replace(Some(reason));
        }
    }

    /// Takes a `hello`: the lane, session and drop signal of the new
    /// connection, or the reason it is refused.
    fn hello(&self, hello: protocol::Hello) -> Result<Session, String> {
        if hello.protocol != protocol::PROTOCOL {
            return Err(format!(
                "protocol: this run speaks {} {}, not '{}'",
                protocol::PROTOCOL,
                protocol::VERSION,
                hello.protocol
            ));
        }
        if !protocol::same_major(&hello.version) {
            return Err(format!(
                "version: this run speaks {} {}, the process {}: the major versions differ",
                protocol::PROTOCOL,
                protocol::VERSION,
                hello.version
            ));
        }
        for (field, ours, theirs) in [
            (
                "observation_space",
                &self.observation_space,
                &hello.observation_space,
            ),
            ("action_space", &self.action_space, &hello.action_space),
        ] {
            let theirs: Space = serde_json::from_value(theirs.clone())
                .map_err(|e| format!("{field}: not a space in the run spec's form: {e}"))?;
            theirs
                .validate()
                .map_err(|e| format!("{field}: not a valid space: {e}"))?;
            if !protocol::same_space(ours, &theirs) {
                return Err(format!(
                    "{field}: the run's is {ours}, the process's {theirs}"
                ));
            }
        }
        if let Some(ending) = &*self.ending.borrow() {
            return Err(match ending {
                Ending::Finished => "the run is finished".to_string(),
                Ending::Stopped(why) => why.clone(),
            });
        }
        let mut slots = self.slots();
        let Some(lane) = slots.connected.iter().position(Option::is_none) else {
            let lanes = slots.connected.len();
            let who = slots
                .connected
                .iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{} (connected for {:.1} s)",
                        c.name,
                        c.since.elapsed().as_secs_f64()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(if lanes == 1 {
                format!("one env process drives a run at a time, and {who} is connected")
            } else {
                format!(
                    "this run takes {lanes} env processes (env.num_envs) and all are connected: {who}"
                )
            });
        };
        slots.sessions += 1;
        let session = slots.sessions;
        let (dropped, drop_signal) = watch::channel(None);
        slots.connected[lane] = Some(Connected {
            session,
            name: hello
                .name
                .map_or_else(|| format!("process #{session}"), |n| format!("'{n}'")),
            since: Instant::now(),
            dropped,
        });
        Ok(Session {
            lane,
            id: session,
            dropped: drop_signal,
        })
    }

    fn disconnect(&self, lane: usize, session: u64) {
        let mut slots = self.slots();
        if let Some(slot) = slots.connected.get_mut(lane)
            && slot.as_ref().is_some_and(|c| c.session == session)
        {
            *slot = None;
            // Sent under the lock: the env sees the disconnection before any
            // request of the next connection.
            let _ = self.events[lane].send(Event::Disconnected { session });
        }
    }
}

/// A connection's place on its link.
struct Session {
    lane: usize,
    id: u64,
    dropped: watch::Receiver<Option<String>>,
}

impl EnvEnd {
    pub(crate) fn drop_session(&self, session: u64, reason: String) {
        if let Some(link) = self.link.upgrade() {
            link.drop_session(self.lane, session, reason);
        }
    }

    /// A new episode's id, unique across the run's lanes: `1`, `2`, … in
    /// the order episodes start.
    pub(crate) fn next_episode_id(&self) -> String {
        (self.episodes.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

/// What to answer a message with.
pub enum Answer {
    /// At once.
    Now(Reply),
    /// When the env has taken the request. A dropped sender means the run
    /// ended: answer what [`Connection::closing`] says.
    Later(oneshot::Receiver<Reply>),
}

/// One env process's connection, as a transport (the server's WebSocket)
/// drives it: feed it each text message, send back each answer.
pub struct Connection {
    link: Arc<Link>,
    session: Option<Session>,
    ending: watch::Receiver<Option<Ending>>,
}

impl Connection {
    /// A connection to `link`; the process must say `hello` first.
    pub fn new(link: Arc<Link>) -> Connection {
        let ending = link.ending.subscribe();
        Connection {
            link,
            session: None,
            ending,
        }
    }

    /// Takes one text message. After a `refused` reply the transport
    /// closes the connection.
    pub fn receive(&mut self, text: &str) -> Answer {
        let request = match Request::parse(text) {
            Ok(request) => request,
            Err(e) if self.session.is_some() => return Answer::Now(e.into()),
            Err(e) => {
                return Answer::Now(Reply::Refused {
                    reason: format!("expected hello: {e}"),
                });
            }
        };
        let Some(session) = &self.session else {
            return Answer::Now(match request {
                Request::Hello(hello) => match self.link.hello(hello) {
                    Ok(session) => {
                        self.session = Some(session);
                        Reply::Ready {
                            run_id: self.link.run_id.clone(),
                        }
                    }
                    Err(reason) => Reply::Refused { reason },
                },
                other => Reply::Refused {
                    reason: format!(
                        "type: the first message must be hello, not {}",
                        other.kind()
                    ),
                },
            });
        };
        if let Request::Hello(_) = request {
            return Answer::Now(crate::already_helloed());
        }
        let (reply, answer) = oneshot::channel();
        // If the env is gone the request is dropped with `reply`, which
        // the transport reads as the run's end.
        let _ = self.link.events[session.lane].send(Event::Request {
            session: session.id,
            request,
            reply,
        });
        Answer::Later(answer)
    }

    /// Resolves when this connection must close: the run ended, or the env
    /// dropped it. Cancel-safe.
    pub async fn closing(&mut self) -> Closing {
        let ending = &mut self.ending;
        match &mut self.session {
            Some(Session { dropped, .. }) => tokio::select! {
                Some(ending) = first_value(ending) => Closing::Run(ending),
                Some(reason) = first_value(dropped) => Closing::Dropped(reason),
                else => std::future::pending().await,
            },
            None => match first_value(ending).await {
                Some(ending) => Closing::Run(ending),
                None => std::future::pending().await,
            },
        }
    }
}

/// The watched value once it is set; `None` if it never can be (its sender
/// is gone). The watch's guard is dropped before returning, so the
/// future stays `Send`.
async fn first_value<T: Clone>(watched: &mut watch::Receiver<Option<T>>) -> Option<T> {
    watched
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|value| value.clone())
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            self.link.disconnect(session.lane, session.id);
        }
    }
}
