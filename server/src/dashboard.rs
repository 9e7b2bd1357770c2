//! The dashboard: the static pages under `server/dashboard/`, embedded in
//! the binary (rust-embed; a debug build reads them from disk, so an edit
//! shows on reload). `/` is the page, `/assets/…` its scripts, styles and
//! the vendored chart library. Neither needs the token: the page holds no
//! data and no secret, and asks for the token itself when `/v1` refuses it.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "dashboard/"]
struct Assets;

/// What the page may load and talk to: only this server. Styles allow
/// `style` attributes, which the page sets for bar widths.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /`: the dashboard's page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /assets/{*path}`: one of its files.
pub async fn asset(
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&path, &headers)
}

/// Every asset's name and size, for tests of the page weight.
pub fn files() -> Vec<(String, usize)> {
    Assets::iter()
        .filter_map(|name| Some((name.to_string(), Assets::get(&name)?.data.len())))
        .collect()
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "no such dashboard file").into_response();
    };
    // Revalidated on every load (`no-cache`), answered 304 when unchanged:
    // a new binary's pages are never mixed with an old one's cached scripts.
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let content_type = file.metadata.mimetype();
    let set = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        set.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        set.insert(header::ETAG, value);
    }
    set.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}
