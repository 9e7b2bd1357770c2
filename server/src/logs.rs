//! A run's own log lines: tracing events inside a worker's `run` span are
//! stored with the run (and streamed live), besides going to the server's log.

use crate::store::{Store, Write, now};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt::Debug;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// One of a run's log lines: as stored, and as `GET /v1/runs/{id}/logs`
/// sends it (one per line, with its event `id`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// The event id, increasing; absent in storage, where the row has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// When (Unix seconds).
    pub time: f64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
    /// The event's other fields, e.g. `steps` of a checkpoint.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// The run id a `run` span carries.
struct RunId(String);

/// Where run log lines go, once the server has opened its store; events
/// before that only reach the server's own log.
static STORE: OnceLock<Store> = OnceLock::new();

/// Starts storing run log lines in `store` (the first store attached wins:
/// one server per process).
pub fn attach(store: Store) {
    let _ = STORE.set(store);
}

/// Sends each event inside a `run{run_id}` span to the store.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunLogLayer;

#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.insert(field.name().into(), Value::String(text));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.into());
        } else {
            self.fields.insert(field.name().into(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
}

impl<S> Layer<S> for RunLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "run" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(Value::String(run_id)), Some(span)) =
            (fields.fields.remove("run_id"), ctx.span(id))
        {
            span.extensions_mut().insert(RunId(run_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(store) = STORE.get() else {
            return;
        };
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(run_id) = scope
            .from_root()
            .find_map(|span| span.extensions().get::<RunId>().map(|r| r.0.clone()))
        else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = LogLine {
            id: None,
            time: now(),
            level: event.metadata().level().as_str().into(),
            target: event.metadata().target().into(),
            message: fields.message.unwrap_or_default(),
            fields: fields.fields,
        };
        store.send(Write::Log {
            run_id,
            line: serde_json::to_value(line).expect("a log line serialises"),
        });
    }
}
