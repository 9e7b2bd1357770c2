//! The runs API under `/v1`, the catalogue and the operations routes: one
//! module per resource, each with its own `router()`, merged here.
//!
//! Every refusal is an [`ApiError`], whose body is `{"error": {"code",
//! "message", "field", "request_id"}}`; `field` is the JSON path of a bad
//! value in the request, when there is one. The extractors here turn
//! axum's own rejections into `ApiError`s, so that no route answers in
//! another shape.

mod artifacts;
mod catalog;
mod connect;
mod evaluate;
mod events;
mod ops;
mod relay;
mod runs;
mod sweeps;

use crate::error::{ApiError, ApiResult};
use crate::{Shared, blocking};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;

/// The `connect` route alone: what a local worker serves for its server.
pub fn connect_router() -> OpenApiRouter<Shared> {
    connect::router()
}

/// Every route of the runs API, the catalogue and operations.
pub fn router() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .merge(runs::router())
        .merge(sweeps::router())
        .merge(connect::router())
        .merge(events::router())
        .merge(artifacts::router())
        .merge(evaluate::router())
        .merge(catalog::router())
        .merge(ops::router())
}

/// Path parameters; one that does not decode (invalid UTF-8 once
/// percent-decoded) is a `400 bad_path`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// A query string as `T`; unknown or malformed parameters are a
/// `400 bad_query` naming them.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The raw request body, for every route that takes one (the environment
/// routes too): a body over the limit is a `413 body_too_large` in the runs
/// API's shape, wherever it arrives.
///
/// Bodies are read as bytes and parsed by each route, rather than by axum's
/// `Json`, so that a parse error names the field (and, on the environment
/// routes, keeps gym-http-api's lenient reading).
pub struct RequestBody(pub Bytes);

impl FromRequest<Shared> for RequestBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Shared) -> ApiResult<Self> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(RequestBody(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BodyTooLarge {
                    limit: state.config.max_body_bytes,
                })
            }
            Err(rejection) => Err(ApiError::UnreadableBody(rejection.body_text())),
        }
    }
}

/// `201 Created` with `body`, and `Location: location`.
fn created(location: &str, body: impl serde::Serialize) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(location) = axum::http::HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    response
}

/// Reads a JSON body, naming the line and column of malformed JSON.
/// Whole numbers written as floats (`3.0`) are read as integers.
///
/// Every body of the runs API is an object (or `null`, where a body is
/// optional): anything else is a `422 invalid_request` here, since serde
/// would otherwise read a struct from an array of its fields in order.
fn parse_json(body: &Bytes) -> ApiResult<Value> {
    let mut value = serde_json::from_slice(body).map_err(ApiError::MalformedJson)?;
    if !matches!(value, Value::Object(_) | Value::Null) {
        return Err(ApiError::InvalidRequest {
            message: "the request body must be a JSON object".into(),
            field: None,
        });
    }
    whole_numbers_as_integers(&mut value);
    Ok(value)
}

/// Whether a config (an env's or an agent's) is a JSON object, or absent
/// or `null` for every default. serde would read a config struct from an
/// array of its fields in order, which no config is documented to take.
pub fn config_shape_ok(config: Option<&Value>) -> bool {
    matches!(config, None | Some(Value::Null | Value::Object(_)))
}

/// A run spec's env and agent configs are objects (or absent): anything
/// else is a `422 invalid_spec` naming `env.config` or `agent.config`.
fn check_config_shapes(spec: &Value) -> ApiResult<()> {
    for part in ["env", "agent"] {
        if !config_shape_ok(spec.get(part).and_then(|p| p.get("config"))) {
            return Err(ApiError::InvalidSpec {
                message: "a config must be a JSON object".into(),
                field: Some(format!("{part}.config")),
            });
        }
    }
    Ok(())
}

/// Rewrites every float with no fractional part that fits an integer
/// type (`3.0`, `-2.0`) as that integer, throughout `value`.
///
/// JSON has one number type and JSON Schema counts `3.0` as an integer,
/// as do clients that keep every number as a double; serde's integer
/// fields refuse a float, so the request is normalised once here.
pub fn whole_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            let x = number.as_f64().unwrap_or(f64::NAN);
            // 2^64 and -2^63, exactly representable; beyond them the
            // float is no integer type's.
            let whole = x.fract() == 0.0;
            if whole && (0.0..18_446_744_073_709_551_616.0).contains(&x) {
                *number = (x as u64).into();
            } else if whole && (-9_223_372_036_854_775_808.0..0.0).contains(&x) {
                *number = (x as i64).into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// A `404 run_not_found` unless run `id` exists.
async fn run_exists(state: &Shared, id: &str) -> ApiResult<()> {
    let state = state.clone();
    let id = id.to_string();
    blocking(move || match state.store.run(&id)? {
        Some(_) => Ok(()),
        None => Err(ApiError::RunNotFound(id)),
    })
    .await?
}
