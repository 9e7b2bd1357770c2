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

#[derive(Default)]
struct Slot {
    connected: Option<Connected>,
    sessions: u64,
}

/// One run's meeting point: shared by the server and the connections.
pub struct Link {
    run_id: String,
    observation_space: Space,
    action_space: Space,
    events: mpsc::Sender<Event>,
    slot: Mutex<Slot>,
    ending: watch::Sender<Option<Ending>>,
}

/// The env's end of a [`Link`]: give it to
/// [`ExternalEnv::linked`](crate::ExternalEnv::linked).
pub struct EnvEnd {
    pub(crate) events: mpsc::Receiver<Event>,
    link: Weak<Link>,
}

/// A link for run `run_id` with the spaces of `config`, and its env end.
pub fn link(run_id: &str, config: &ExternalConfig) -> (Arc<Link>, EnvEnd) {
    let (events, receiver) = mpsc::channel();
    let link = Arc::new(Link {
        run_id: run_id.to_string(),
        observation_space: config.observation_space.clone(),
        action_space: config.action_space.clone(),
        events,
        slot: Mutex::new(Slot::default()),
        ending: watch::Sender::new(None),
    });
    let end = EnvEnd {
        events: receiver,
        link: Arc::downgrade(&link),
    };
    (link, end)
}

impl Link {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        // Every update of the slot is one assignment: a panic cannot leave it half-done.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the env if it waits (for a connection, or mid-episode), so
    /// that a cancelled run stops at once; the caller has raised the run's
    /// cancel flag first.
    pub fn stop(&self) {
        let _ = self.events.send(Event::Stop);
    }

    /// The run ended: connections are told, the env (if it still waits)
    /// stops, and no process can say `hello` any more.
    pub fn end(&self, ending: Ending) {
        self.ending.send_replace(Some(ending));
        self.stop();
    }

    /// Whether a process is connected now.
    pub fn is_connected(&self) -> bool {
        self.slot().connected.is_some()
    }

    /// Drops connection `session` with `reason`, if it is still the one.
    pub(crate) fn drop_session(&self, session: u64, reason: String) {
        if let Some(connected) = &self.slot().connected
            && connected.session == session
        {
            connected.dropped.send_replace(Some(reason));
        }
    }

    fn hello(
        &self,
        hello: protocol::Hello,
    ) -> Result<(u64, watch::Receiver<Option<String>>), String> {
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
        let mut slot = self.slot();
        if let Some(connected) = &slot.connected {
            return Err(format!(
                "one env process drives a run at a time, and {} has been connected for {:.1} s",
                connected.name,
                connected.since.elapsed().as_secs_f64()
            ));
        }
        slot.sessions += 1;
        let session = slot.sessions;
        let (dropped, drop_signal) = watch::channel(None);
        slot.connected = Some(Connected {
            session,
            name: hello
                .name
                .map_or_else(|| format!("process #{session}"), |n| format!("'{n}'")),
            since: Instant::now(),
            dropped,
        });
        Ok((session, drop_signal))
    }

    fn disconnect(&self, session: u64) {
        let mut slot = self.slot();
        if slot
            .connected
            .as_ref()
            .is_some_and(|c| c.session == session)
        {
            slot.connected = None;
            // Sent under the lock: the env sees the disconnection before any
            // request of the next connection.
            let _ = self.events.send(Event::Disconnected { session });
        }
    }
}

impl EnvEnd {
    pub(crate) fn drop_session(&self, session: u64, reason: String) {
        if let Some(link) = self.link.upgrade() {
            link.drop_session(session, reason);
        }
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
    session: Option<(u64, watch::Receiver<Option<String>>)>,
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
        let Some((session, _)) = &self.session else {
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
        let _ = self.link.events.send(Event::Request {
            session: *session,
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
            Some((_, dropped)) => tokio::select! {
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
        if let Some((session, _)) = &self.session {
            self.link.disconnect(*session);
        }
    }
}
