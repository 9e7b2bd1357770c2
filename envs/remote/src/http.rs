//! Calls with deadlines, and the errors users see when they fail.
//!
//! Every call names the URL, the request and the cause. Connecting gets
//! [`CONNECT_TIMEOUT`]; then sending the request, waiting for the reply
//! and reading its body each get the configured timeout, so a server that
//! stops answering (a stopped process, a hung env) fails the call after
//! that long. Only idempotent reads are retried: a repeated `step` would
//! step twice.
//!
//! Why per phase and not ureq's one global deadline: with a global
//! deadline every call to the loopback adapter took several times as long
//! (the figures are in docs/perf/README.md), which alone broke the
//! adapter's speed goal.

use crate::wire::cut;
use rl_env::Error;
use serde_json::Value;
use std::time::Duration;

/// How long connecting may take: a server that is up accepts at once.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Tries of an idempotent call, and the pause before each retry.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(300)];

/// HTTP methods the protocol uses.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    /// Reads.
    Get,
    /// Everything that changes the env.
    Post,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// What a call got back, when it got an HTTP reply at all.
pub enum Reply {
    /// A 2xx status with its body parsed as JSON (`Null` when empty).
    Json(Value),
    /// A 2xx status whose body is not JSON.
    NotJson(String),
    /// A 4xx or 5xx status, with the server's message.
    Status(u16, String),
}

/// A blocking client for one server.
pub struct Client {
    /// The base URL, without a trailing slash.
    pub url: String,
    agent: ureq::Agent,
    timeout: Duration,
}

/// An agent whose every phase of a call gets `timeout`.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_send_request(Some(timeout))
        .timeout_send_body(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout))
        .max_redirects(0)
        .build()
        .into()
}

impl Client {
    /// A client whose calls each get `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Client {
        Client {
            url: url.trim_end_matches('/').to_string(),
            agent: agent(timeout),
            timeout,
        }
    }

    /// The error for `call` failing because of `cause`.
    pub fn error(&self, method: Method, path: &str, cause: impl Into<String>) -> Error {
        Error::Remote {
            url: self.url.clone(),
            call: format!("{} {path}", method.name()),
            cause: cause.into(),
        }
    }

    /// One call, once. `deadline` overrides the configured timeout (for
    /// closing, which must not hold a run's end for long).
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: Option<Duration>,
    ) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.url);
        let timeout = deadline.unwrap_or(self.timeout);
        // A call with its own deadline (closing, once per run) gets an agent
        // of its own rather than slowing every step with per-call settings.
        let short;
        let agent = match deadline {
            Some(deadline) if deadline != self.timeout => {
                short = agent(deadline);
                &short
            }
            _ => &self.agent,
        };
        let result = match method {
            Method::Get => agent.get(&url).call(),
            Method::Post => {
                let request = agent.post(&url);
                match body {
                    Some(body) => request.send_json(body),
                    None => request.send_empty(),
                }
            }
        };
        let mut response = result.map_err(|e| self.error(method, path, cause(e, timeout)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.error(method, path, cause(e, timeout)))?;
        if status >= 400 {
            return Ok(Reply::Status(status, server_message(&text)));
        }
        if text.trim().is_empty() {
            return Ok(Reply::Json(Value::Null));
        }
        Ok(match serde_json::from_str(&text) {
            Ok(value) => Reply::Json(value),
            Err(_) => Reply::NotJson(text),
        })
    }

    /// A call whose reply must be JSON with a 2xx status.
    pub fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let reply = self.send(method, path, body, None)?;
        self.expect_json(method, path, reply)
    }

    /// The JSON of a 2xx reply, or the error that names what came instead.
    pub fn expect_json(&self, method: Method, path: &str, reply: Reply) -> Result<Value, Error> {
        match reply {
            Reply::Json(value) => Ok(value),
            Reply::NotJson(text) => Err(self.error(
                method,
                path,
                format!("malformed body: expected JSON, got {:?}", cut(&text, 120)),
            )),
            Reply::Status(status, message) => {
                Err(self.error(method, path, format!("HTTP {status}: {message}")))
            }
        }
    }

    /// A `GET` that is retried when the server cannot be reached or fails
    /// (5xx), since reading twice changes nothing.
    pub fn get_idempotent(&self, path: &str) -> Result<Value, Error> {
        let mut pauses = RETRY_PAUSES.iter();
        loop {
            let result = self.json(Method::Get, path, None);
            let retryable = match &result {
                // Not a timeout either: it has already cost the whole
                // deadline, and a cancel waits for the call in flight.
                Err(Error::Remote { cause, .. }) => {
                    !cause.starts_with("HTTP 4")
                        && !cause.starts_with("malformed")
                        && !cause.starts_with("timeout")
                }
                _ => false,
            };
            match pauses.next() {
                Some(pause) if retryable => std::thread::sleep(*pause),
                _ => return result,
            }
        }
    }
}

/// The cause of a transport failure, in the words users search for.
fn cause(e: ureq::Error, timeout: Duration) -> String {
    match &e {
        ureq::Error::Timeout(ureq::Timeout::Connect) => {
            format!("timeout connecting after {} s", CONNECT_TIMEOUT.as_secs())
        }
        ureq::Error::Timeout(_) => format!("timeout after {} s", seconds(timeout)),
        ureq::Error::ConnectionFailed => "connection refused".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                format!("timeout after {} s", seconds(timeout))
            }
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::BrokenPipe => format!("the connection was closed ({io})"),
            _ => io.to_string(),
        },
        _ => e.to_string(),
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

/// The server's own words: `{"message"}` (gym-http-api and the adapter),
/// `{"error": {"message"}}` (rl-lab's API), or the start of the text.
fn server_message(text: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    parsed
        .as_ref()
        .and_then(|v| {
            v["message"]
                .as_str()
                .or_else(|| v["error"]["message"].as_str())
        })
        .map(str::to_string)
        .unwrap_or_else(|| cut(text.trim(), 200))
}
