//! The OpenAPI document as `/openapi.json` serves it: utoipa's, from the
//! handlers' annotations ([`crate::routes`]), completed with what only the
//! running server knows, and with the links between operations.
//!
//! A client, or a fuzzer such as schemathesis, generates requests from this
//! document, so a body the document allows should be one the server takes.
//! The annotations cannot say which env and agent ids exist (a server may
//! add envs from plugins) nor what config each one takes, so that is added
//! here from the same registries that build runs:
//!
//! - a run spec's `agent` is one of the registered agents, each with the
//!   JSON Schema of its config (the catalogue's, from the config struct);
//! - a run spec's `env`, and the env routes' create bodies, are one of the
//!   registered envs, each with its config's JSON Schema (the catalogue's,
//!   from the config struct, with every size's bound). An env whose crate
//!   gives no schema (a plugin's) gets one derived from its defaults: each
//!   field typed from its default value and nullable, never narrower than
//!   what the env accepts. The value rules no schema states (a map's
//!   shape) are the env constructor's, answered with `422` (runs) or `400`
//!   (env routes).
//!
//! Links (OpenAPI `links` on a response) lead from the operation that
//! creates a run or an env instance to every operation under its path, so
//! that a client can follow a new resource through its life.

use rl_runner::Engine;
use serde_json::{Map, Value, json};

/// The whole document for a server built on `engine`.
pub fn document(engine: &Engine) -> Value {
    let mut doc =
        serde_json::to_value(crate::routes().1).expect("the OpenAPI document serialises to JSON");
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas");

    let agents: Vec<(String, Value)> = rl_runner::catalog::agents(engine)
        .into_iter()
        .map(|agent| {
            let name = format!("AgentConfig.{}", agent.id);
            let config = embed(schemas, &name, agent.config_schema);
            (agent.id, config)
        })
        .collect();
    let envs: Vec<(String, Value)> = rl_runner::catalog::envs(engine)
        .into_iter()
        .map(|env| {
            let config = if env.config_schema.is_object() {
                // Component names allow letters, digits, `.`, `-` and `_`.
                let name = format!("EnvConfig.{}", env.id.replace('/', "."));
                embed(schemas, &name, env.config_schema)
            } else {
                config_from_defaults(&env.defaults)
            };
            (env.id, config)
        })
        .collect();
    let instance_envs: Vec<(String, Value)> = envs
        .iter()
        .filter(|(id, _)| rl_runner::envs::only_for_runs(id).is_none())
        .cloned()
        .collect();
    one_per_id(schemas, "AgentSpec", "id", &agents);
    one_per_id(schemas, "EnvSpec", "id", &envs);
    one_per_id(schemas, "CreateEnv", "env_id", &instance_envs);
    one_per_id(schemas, "CreateVector", "env_id", &instance_envs);

    integer_ranges(&mut doc);
    headers_are_text(&mut doc);
    link_to_children(&mut doc, "/v1/runs", "post", "201", "id");
    // A created run's events on the server-wide stream, too.
    doc["paths"]["/v1/runs"]["post"]["responses"]["201"]["links"]["get__v1_events"] = json!({
        "operationRef": "#/paths/~1v1~1events/get",
        "parameters": { "runs": "$response.body#/id" },
    });
    link_to_children(&mut doc, "/v1/sweeps", "post", "201", "id");
    link_to_children(&mut doc, "/v1/envs/", "post", "200", "instance_id");
    link_to_children(&mut doc, "/v1/vector-envs", "post", "200", "instance_id");
    doc
}

/// Adds a standalone JSON Schema (draft 2020-12, as schemars writes it) to
/// the components as `name`, its `$defs` beside it as `name.Def`, and
/// returns a reference to it.
fn embed(schemas: &mut Map<String, Value>, name: &str, mut schema: Value) -> Value {
    let defs = schema
        .as_object_mut()
        .and_then(|s| {
            s.remove("$schema");
            s.remove("$defs")
        })
        .unwrap_or_default();
    let moved = |reference: &str| {
        reference
            .strip_prefix("#/$defs/")
            .map(|def| format!("#/components/schemas/{name}.{def}"))
    };
    if let Value::Object(defs) = defs {
        for (def, mut body) in defs {
            rewrite_refs(&mut body, &moved);
            schemas.insert(format!("{name}.{def}"), body);
        }
    }
    rewrite_refs(&mut schema, &moved);
    schemas.insert(name.to_string(), schema);
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Replaces every `$ref` that `moved` maps.
fn rewrite_refs(value: &mut Value, moved: &impl Fn(&str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(new) = moved(reference)
            {
                *reference = new;
            }
            map.values_mut().for_each(|v| rewrite_refs(v, moved));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, moved)),
        _ => {}
    }
}

/// Turns the object schema `name`, whose `key` names a registry entry and
/// whose `config` configures it, into a `oneOf` with one variant per entry:
/// `key` fixed to the entry's id and `config` typed by its schema (or
/// `null`, which means every default).
fn one_per_id(
    schemas: &mut Map<String, Value>,
    name: &str,
    key: &str,
    entries: &[(String, Value)],
) {
    let base = schemas
        .remove(name)
        .unwrap_or_else(|| panic!("{name} is in the document"));
    let variants: Vec<Value> = entries
        .iter()
        .map(|(id, config)| {
            let mut variant = base.clone();
            variant["title"] = json!(id);
            variant["properties"][key] = json!({ "const": id });
            let mut typed = json!({ "anyOf": [config, { "type": "null" }] });
            if let Some(description) = base["properties"]["config"].get("description") {
                typed["description"] = description.clone();
            }
            variant["properties"]["config"] = typed;
            let required = variant["required"].as_array_mut();
            match required {
                Some(required) if required.iter().any(|r| r == key) => {}
                Some(required) => required.push(json!(key)),
                None => variant["required"] = json!([key]),
            }
            variant
        })
        .collect();
    let mut schema = json!({ "oneOf": variants });
    if let Some(description) = base.get("description") {
        schema["description"] = description.clone();
    }
    schemas.insert(name.to_string(), schema);
}

/// A config schema from an env's defaults: its fields, each typed by its
/// default and nullable. Other fields are not refused here: a field with
/// no default (an external env's spaces) is missing from the defaults, and
/// the schema must never be narrower than what the env accepts.
fn config_from_defaults(defaults: &Value) -> Value {
    match defaults {
        Value::Object(fields) => json!({
            "type": "object",
            "properties": fields
                .iter()
                .map(|(field, default)| (field.clone(), field_from_default(default)))
                .collect::<Map<_, _>>(),
        }),
        _ => json!({ "type": "object" }),
    }
}

/// The type of a config field, as far as its default shows it: a `null`
/// default shows nothing, an array shows its items by its first, and an
/// object (a table keyed by the env's own names) only that it is one.
/// Numbers are any number: an integer default may stand for a float field.
fn field_from_default(default: &Value) -> Value {
    let mut field = match default {
        Value::Null => return json!({}),
        Value::Bool(_) => json!({ "type": ["boolean", "null"] }),
        Value::Number(_) => json!({ "type": ["number", "null"] }),
        Value::String(_) => json!({ "type": ["string", "null"] }),
        Value::Array(items) => json!({
            "type": ["array", "null"],
            "items": items.first().map_or(json!({}), field_from_default),
        }),
        Value::Object(_) => json!({ "type": ["object", "null"] }),
    };
    field["default"] = default.clone();
    field
}

/// States the range of every unsigned integer exactly: utoipa writes a
/// `u64` as `format: int64, minimum: 0`, which clients read as at most
/// 2^63 − 1, and schemars writes `format: uint64` with no maximum. The
/// server takes up to the type's maximum, so the document says so.
fn integer_ranges(value: &mut Value) {
    match value {
        Value::Object(schema) => {
            let unsigned = schema
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| m >= 0.0);
            let maximum: Option<u64> = match schema.get("format").and_then(Value::as_str) {
                Some("int64") if unsigned => Some(u64::MAX),
                Some("uint64" | "uint") => Some(u64::MAX),
                Some("uint32") => Some(u32::MAX.into()),
                Some("uint16") => Some(u16::MAX.into()),
                Some("uint8") => Some(u8::MAX.into()),
                _ => None,
            };
            if let Some(maximum) = maximum
                && !schema.contains_key("maximum")
            {
                if schema["format"] == "int64" {
                    schema.insert("format".into(), json!("uint64"));
                }
                schema.insert("maximum".into(), json!(maximum));
            }
            schema.values_mut().for_each(integer_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(integer_ranges),
        _ => {}
    }
}

/// Header parameters carry text: an optional one is absent, never `null`,
/// so utoipa's nullable type for an `Option` header is narrowed.
fn headers_are_text(doc: &mut Value) {
    for operation in operations_mut(doc) {
        let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for parameter in parameters.iter_mut().filter(|p| p["in"] == "header") {
            if let Some(types) = parameter["schema"]["type"].as_array_mut() {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    parameter["schema"]["type"] = types[0].clone();
                }
            }
        }
    }
}

/// Every operation of the document.
fn operations_mut(doc: &mut Value) -> impl Iterator<Item = &mut Value> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
}

/// Links the `status` response of `method parent` to every operation on a
/// path below `parent/{param}`, passing the response body's `field` as
/// `param`: a created run to its cancel, metrics, delete…; a created env
/// instance to its reset, step, close….
fn link_to_children(doc: &mut Value, parent: &str, method: &str, status: &str, field: &str) {
    let prefix = format!("{}/", parent.trim_end_matches('/'));
    let mut links = Map::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let Some(param) = path
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_prefix('{'))
            .and_then(|rest| rest.split_once('}'))
            .map(|(param, _)| param)
        else {
            continue;
        };
        for target in item.as_object().into_iter().flat_map(|i| i.keys()) {
            // A JSON pointer into `paths`, percent-encoded as a URI fragment.
            let pointer = path
                .replace('~', "~0")
                .replace('/', "~1")
                .replace('{', "%7B")
                .replace('}', "%7D");
            let name: String = format!("{target} {path}")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            links.insert(
                name,
                json!({
                    "operationRef": format!("#/paths/{pointer}/{target}"),
                    "parameters": { param: format!("$response.body#/{field}") },
                }),
            );
        }
    }
    let response = &mut doc["paths"][parent][method]["responses"][status];
    assert!(
        response.is_object(),
        "{method} {parent} documents a {status}"
    );
    response["links"] = Value::Object(links);
}
