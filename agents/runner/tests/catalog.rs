//! The catalogue's config schemas are derived from the config structs, so
//! they must say exactly what the agents accept: every field documented
//! with a default, the defaults and every example spec valid under them,
//! and every bound the schema states enforced by the agent, with an error
//! that names the field.

use rl_runner::catalog;
use rl_runner::{Engine, RunSpec};
use serde_json::{Value, json};

fn validator(schema: &Value) -> jsonschema::Validator {
    assert!(
        jsonschema::meta::is_valid(schema),
        "not a valid JSON Schema: {schema}"
    );
    jsonschema::validator_for(schema).expect("a schema")
}

#[test]
fn every_field_has_a_type_a_default_and_a_doc() {
    let agents = catalog::agents(&Engine::default());
    assert!(agents.len() >= 11);
    for agent in &agents {
        let schema = &agent.config_schema;
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false, "{}", agent.id);
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(
            properties.len(),
            agent.hyperparameters.len(),
            "{}",
            agent.id
        );
        let mut defaults = serde_json::Map::new();
        for h in &agent.hyperparameters {
            let what = format!("{}.{}", agent.id, h.name);
            assert!(h.doc.len() > 10, "{what}: no doc");
            assert!(!h.doc.contains('\n'), "{what}: doc not unwrapped");
            assert!(!h.default.is_null(), "{what}: no default");
            assert_ne!(h.kind, "any", "{what}: no type");
            assert_eq!(properties[&h.name]["default"], h.default, "{what}");
            assert_eq!(properties[&h.name]["description"], h.doc.as_str(), "{what}");
            defaults.insert(h.name.clone(), h.default.clone());
        }
        let validator = validator(schema);
        assert!(validator.is_valid(&Value::Object(defaults)), "{}", agent.id);
        assert!(validator.is_valid(&json!({})), "{}", agent.id);
        assert!(
            !validator.is_valid(&json!({"no_such_field": 1})),
            "{}",
            agent.id
        );
    }
}

#[test]
fn every_example_config_is_valid_under_its_schema() {
    let engine = Engine::default();
    let agents = catalog::agents(&engine);
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let spec = RunSpec::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let agent = agents.iter().find(|a| a.id == spec.agent.id).unwrap();
        let config = if spec.agent.config.is_null() {
            json!({})
        } else {
            spec.agent.config.clone()
        };
        let validator = validator(&agent.config_schema);
        let errors: Vec<String> = validator
            .iter_errors(&config)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 15, "{checked} examples");
}

/// A number just past `bound` on the side the schema forbids.
fn beyond(bound: f64, below: bool, integer: bool) -> f64 {
    let step = if integer {
        1.0
    } else {
        1e-6 * (1.0 + bound.abs())
    };
    if below { bound - step } else { bound + step }
}

/// Every numeric bound on a field (nested objects included, such as DQN's
/// `replay.capacity`): the schema and the agent both accept the bound when
/// it is inclusive and both refuse a value past it, the agent with an error
/// that names the field.
#[test]
fn every_bound_the_schema_states_is_enforced_by_the_agent() {
    let engine = Engine::default();
    let mut bounds_checked = 0;
    for agent in catalog::agents(&engine) {
        let schema = &agent.config_schema;
        let validator = validator(schema);
        let mut defaults: Value = agent
            .hyperparameters
            .iter()
            .map(|h| (h.name.clone(), h.default.clone()))
            .collect::<serde_json::Map<_, _>>()
            .into();
        if agent.id == "dqn" {
            // A batch must fit the buffer: a rule between two fields, which
            // a per-field bound cannot state, so the smallest buffer is
            // tried with the smallest batch.
            defaults["batch_size"] = json!(1);
        }
        for (path, property) in numeric_fields(schema, schema) {
            let integer = property["type"] == "integer";
            for (key, below, inclusive) in [
                ("minimum", true, true),
                ("exclusiveMinimum", true, false),
                ("maximum", false, true),
                ("exclusiveMaximum", false, false),
            ] {
                let Some(bound) = property.get(key).and_then(Value::as_f64) else {
                    continue;
                };
                // An unsigned field's minimum 0 is its type's: serde itself
                // refuses −1, and must name the field as well.
                let over = beyond(bound, below, integer);
                let field = path.join(".");
                let outside = with(&defaults, &path, number(over, integer));
                assert!(
                    !validator.is_valid(&outside),
                    "{}: {field} = {over}",
                    agent.id
                );
                let err = build(&engine, &agent.id, &outside)
                    .expect_err(&format!("{}: {field} = {over} accepted", agent.id));
                assert!(
                    err.contains(&format!("agent.config.{field}")),
                    "{}: {field} = {over}: {err}",
                    agent.id
                );
                if inclusive {
                    let at = with(&defaults, &path, number(bound, integer));
                    assert!(validator.is_valid(&at), "{}: {field} = {bound}", agent.id);
                    if let Err(err) = build(&engine, &agent.id, &at) {
                        panic!("{}: {field} = {bound} refused: {err}", agent.id);
                    }
                }
                bounds_checked += 1;
            }
        }
    }
    assert!(bounds_checked >= 40, "{bounds_checked} bounds");
}

fn number(value: f64, integer: bool) -> Value {
    if integer {
        json!(value as i64)
    } else {
        json!(value)
    }
}

/// `defaults` with the field at `path` set to `value`.
fn with(defaults: &Value, path: &[String], value: Value) -> Value {
    let mut config = defaults.clone();
    let mut slot = &mut config;
    for key in path {
        slot = &mut slot[key.as_str()];
    }
    *slot = value;
    config
}

/// Every field whose schema is a plain number or integer, by path, looking
/// into nested objects through `$ref`.
fn numeric_fields<'a>(schema: &'a Value, root: &'a Value) -> Vec<(Vec<String>, &'a Value)> {
    let mut found = Vec::new();
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let target = match property["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/$defs/");
                &root["$defs"][name]
            }
            None => property,
        };
        match target["type"].as_str() {
            Some("number" | "integer") => found.push((vec![name.clone()], target)),
            Some("object") => {
                for (mut path, inner) in numeric_fields(target, root) {
                    path.insert(0, name.clone());
                    found.push((path, inner));
                }
            }
            _ => {}
        }
    }
    found
}

/// Builds the agent on an environment every agent can use (FrozenLake has
/// a model and discrete states); the error text on refusal.
fn build(engine: &Engine, agent: &str, config: &Value) -> Result<(), String> {
    let spec = RunSpec::from_value(&json!({
        "env": {"id": "FrozenLake-v1"},
        "agent": {"id": agent, "config": config},
        "seed": 0
    }))
    .map_err(|e| e.to_string())?;
    engine.prepare(spec).map(|_| ()).map_err(|e| e.to_string())
}
