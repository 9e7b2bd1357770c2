//! Request ids. Every request gets one in `x-request-id` (tower-http's
//! `SetRequestId`; an id the client sent is kept), the response echoes it,
//! the request's tracing span carries it, and error bodies quote it: a
//! client's report of a `500` leads straight to the log line with the
//! detail.

use axum::http::HeaderValue;
use axum::response::Response;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tower_http::request_id::{MakeRequestId, RequestId};

tokio::task_local! {
    /// The id of the request this task is answering.
    static CURRENT: String;
}

/// Makes ids `PPPPPPPP-N`: a random prefix per server and a counter. Ids
/// are unique within a server's life and unlikely to repeat across
/// restarts (a 32-bit prefix), and cost no system call for randomness on
/// every request.
#[derive(Clone)]
pub struct MakeRequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl Default for MakeRequestIds {
    fn default() -> Self {
        MakeRequestIds {
            prefix: rand::random(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for MakeRequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-{n:x}", self.prefix);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The request's id, as `SetRequestId` stored it.
pub fn of<B>(request: &axum::http::Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
}

/// Runs `answer` with `id` available to [`current`], so that an error
/// body can quote it without every handler passing it along.
pub async fn scope(id: Option<String>, answer: impl Future<Output = Response>) -> Response {
    match id {
        Some(id) => CURRENT.scope(id, answer).await,
        None => answer.await,
    }
}

/// `work`, to be run on a blocking thread, with the calling request's id
/// still [`current`] there: a task-local does not cross `spawn_blocking`,
/// and an error met there must still name its request.
pub fn carried<T>(work: impl FnOnce() -> T) -> impl FnOnce() -> T {
    let id = current();
    move || match id {
        Some(id) => CURRENT.sync_scope(id, work),
        None => work(),
    }
}

/// The id of the request being answered; `None` outside a request (a
/// WebSocket message, a unit test calling a function directly).
pub fn current() -> Option<String> {
    CURRENT.try_with(String::clone).ok()
}

/// [`current`] for a log line's `request_id` field: `-` outside a request.
/// Error log lines name the request explicitly, since the request's span
/// (which names it too) is only enabled at `debug`.
pub fn for_log() -> String {
    current().unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blocking_job_still_knows_its_request() {
        let seen = CURRENT
            .scope("abc-1".to_string(), async {
                let bare = tokio::task::spawn_blocking(current).await.unwrap();
                let carried = tokio::task::spawn_blocking(carried(current)).await.unwrap();
                (bare, carried)
            })
            .await;
        assert_eq!(seen, (None, Some("abc-1".to_string())));
        // Outside a request there is nothing to carry.
        let outside = tokio::task::spawn_blocking(carried(current)).await.unwrap();
        assert_eq!(outside, None);
    }
}
