//! Request ids. Every request gets one in `x-request-id` (tower-http's
//! `SetRequestId`, a UUID; an id the client sent is kept), the response
//! echoes it, the request's tracing span carries it, and error bodies
//! quote it: a client's report of a `500` leads straight to the log line
//! with the detail.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::RequestId;

tokio::task_local! {
    /// The id of the request this task is answering.
    static CURRENT: String;
}

/// The request's id, as `SetRequestId` stored it.
pub fn of<B>(request: &axum::http::Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
}

/// Middleware: makes the request's id available to [`current`] while the
/// request is handled, so that an error body can quote it without every
/// handler passing it along.
pub async fn scope(request: Request, next: Next) -> Response {
    match of(&request).map(str::to_string) {
        Some(id) => CURRENT.scope(id, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// The id of the request being answered; `None` outside a request (a
/// WebSocket message, a unit test calling a function directly).
pub fn current() -> Option<String> {
    CURRENT.try_with(String::clone).ok()
}
