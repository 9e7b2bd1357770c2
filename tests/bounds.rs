//! No request can bring the server down (issue 17 §5): the real binary on
//! an ephemeral port receives the reproductions and, generated from
//! the catalogue's JSON Schemas, an oversized value for every bounded size
//! of every agent's and env's config; each is refused with a 4xx naming the
//! field, the server keeps answering, and a run finished before is untouched.

use serde_json::{Value, json};
use std::time::Duration;

mod support;
use support::{Server, get_json, post_json, wait_status};

/// A size past every bound and every memory cap.
const HUGE: u64 = 1_000_000_000_000;

/// One oversized submission: the spec, and the spec paths of which the
/// refusal's `field` must name one (a layer is named by index and field,
/// `network[0].out`, not by its variant key).
struct Case {
    spec: Value,
    names: Vec<String>,
}

/// A path step inside a config.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// The schema a `{"$ref": "#/$defs/Name"}` points at, or the schema itself.
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| root["$defs"].get(name))
        .unwrap_or(schema)
}

/// The smallest value `schema` accepts, for the required siblings of an
/// oversized field: objects get their required properties, integers their
/// minimum (or 1), alternatives their first choice.
fn minimal(schema: &Value, root: &Value) -> Value {
    let schema = resolve(schema, root);
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = schema.get(key).and_then(|a| a.get(0)) {
            return minimal(first, root);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().find(|k| *k != "null").cloned(),
        other => other.cloned(),
    };
    match kind.as_ref().and_then(Value::as_str) {
        Some("integer") => json!(schema.get("minimum").and_then(Value::as_u64).unwrap_or(1)),
        Some("number") => json!(0.5),
        Some("boolean") => json!(false),
        Some("string") => json!("."),
        Some("array") => json!([]),
        Some("object") => {
            let mut object = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                object.insert(name.into(), minimal(&schema["properties"][name], root));
            }
            Value::Object(object)
        }
        _ => Value::Null,
    }
}

/// Every bounded size under `schema`: for an integer with a `maximum`, a
/// value just past it and [`HUGE`]; for an array or string with a
/// `maxItems`/`maxLength`, one element or character more. Each comes as
/// the smallest value of `schema` holding it, and its path.
fn oversized(schema: &Value, root: &Value) -> Vec<(Value, Vec<Step>)> {
    let schema = resolve(schema, root);
    let mut found = Vec::new();
    if let Some(most) = schema.get("maximum").and_then(Value::as_f64)
        && schema
            .get("type")
            .is_some_and(|t| t.to_string().contains("integer"))
    {
        let past = most as u64 + 1;
        found.push((json!(past), vec![]));
        if HUGE > past {
            found.push((json!(HUGE), vec![]));
        }
    }
    if let Some(most) = schema.get("maxItems").and_then(Value::as_u64) {
        let element = minimal(&schema["items"], root);
        found.push((Value::Array(vec![element; most as usize + 1]), vec![]));
    }
    if let Some(most) = schema.get("maxLength").and_then(Value::as_u64) {
        found.push((json!(".".repeat(most as usize + 1)), vec![]));
    }
    if let Some(items) = schema.get("items") {
        for (value, path) in oversized(items, root) {
            let mut steps = vec![Step::Index(0)];
            steps.extend(path);
            found.push((json!([value]), steps));
        }
    }
    for key in ["anyOf", "oneOf"] {
        for alternative in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            found.extend(oversized(alternative, root));
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            for (value, path) in oversized(property, root) {
                let Value::Object(mut object) = minimal(schema, root) else {
                    continue;
                };
                object.insert(name.clone(), value);
                let mut steps = vec![Step::Key(name.clone())];
                steps.extend(path);
                found.push((Value::Object(object), steps));
            }
        }
    }
    found
}

/// The names a refusal may give for `path` under `prefix`: the dotted
/// path, and the path without the variant keys of a list of externally
/// tagged layers, as the network's errors name them: `network[0].conv.kernel`
/// is `network[0].kernel`, and `network[0].affine` (the width itself) is
/// `network[0].out`.
fn names(prefix: &str, path: &[Step]) -> Vec<String> {
    let mut full = prefix.to_string();
    let mut untagged = prefix.to_string();
    for (i, step) in path.iter().enumerate() {
        match step {
            Step::Key(key) => {
                full.push_str(&format!(".{key}"));
                let is_variant = i > 0 && matches!(path[i - 1], Step::Index(_));
                match (is_variant, i + 1 == path.len()) {
                    (false, _) => untagged.push_str(&format!(".{key}")),
                    (true, true) => untagged.push_str(".out"),
                    (true, false) => {}
                }
            }
            Step::Index(index) => {
                full.push_str(&format!("[{index}]"));
                untagged.push_str(&format!("[{index}]"));
            }
        }
    }
    vec![full, untagged]
}

/// The env each agent is swept on: one it can work with (DQN's
/// convolution and pooling layers need image frames), so that the refusal
/// is the oversized field's.
fn env_for(agent: &str) -> &'static str {
    if agent == "dqn" {
        "minatar/breakout"
    } else {
        "FrozenLake-v1"
    }
}

fn cases(server: &Server) -> Vec<Case> {
    let mut cases = vec![
        // The reproductions.
        Case {
            spec: json!({"env": {"id": "CartPole-v1"},
                         "agent": {"id": "dqn", "config": {"replay": {"capacity": HUGE}}}}),
            names: vec!["agent.config.replay.capacity".into()],
        },
        Case {
            spec: json!({"env": {"id": "CartPole-v1"},
                         "agent": {"id": "dqn", "config": {"network": [{"affine": 2_000_000_000u64}]}}}),
            names: vec!["agent.config.network[0].out".into()],
        },
        // The run spec's own sizes and a wrapper's.
        Case {
            spec: json!({"env": {"id": "FrozenLake-v1"}, "agent": {"id": "q-learning"},
                         "eval": {"episodes": HUGE}}),
            names: vec!["eval.episodes".into()],
        },
        Case {
            spec: json!({"env": {"id": "FrozenLake-v1"}, "agent": {"id": "q-learning"},
                         "eval": {"episodes": 10, "max_steps": HUGE}}),
            names: vec!["eval.max_steps".into()],
        },
        Case {
            spec: json!({"env": {"id": "CartPole-v1", "wrappers": [{"frame_stack": HUGE}]},
                         "agent": {"id": "dqn"}}),
            names: vec!["env.wrappers[0].frame_stack".into()],
        },
    ];
    let (code, catalog) = get_json(server, "/v1/catalog/agents");
    assert_eq!(code, 200, "{catalog}");
    for agent in catalog["agents"].as_array().unwrap() {
        let id = agent["id"].as_str().unwrap();
        let schema = &agent["config_schema"];
        for (config, path) in oversized(schema, schema) {
            cases.push(Case {
                spec: json!({"env": {"id": env_for(id)}, "agent": {"id": id, "config": config}}),
                names: names("agent.config", &path),
            });
        }
    }
    let (code, catalog) = get_json(server, "/v1/catalog/envs");
    assert_eq!(code, 200, "{catalog}");
    for env in catalog["envs"].as_array().unwrap() {
        let id = env["id"].as_str().unwrap();
        let schema = &env["config_schema"];
        for (mut config, path) in oversized(schema, schema) {
            if id == "minatar" {
                // The generic id needs its game, which the schema leaves optional.
                config["game"] = json!("breakout");
            }
            cases.push(Case {
                spec: json!({"env": {"id": id, "config": config}, "agent": {"id": "q-learning"}}),
                names: names("env.config", &path),
            });
        }
    }
    cases
}

/// A run's status and how many rows each of its series holds.
fn fingerprint(server: &Server, id: &str) -> (Value, Value) {
    let (code, run) = get_json(server, &format!("/v1/runs/{id}"));
    assert_eq!(code, 200, "{run}");
    let (code, metrics) = get_json(
        server,
        &format!("/v1/runs/{id}/metrics?name=rollout/episode_return&limit=100000"),
    );
    assert_eq!(code, 200, "{metrics}");
    // The rows themselves; `last_event_id` moves with every other run.
    (run["status"].clone(), metrics["metrics"].clone())
}

/// A small run submitted first and finished: its id and fingerprint, which
/// must not change whatever comes after.
fn finished_run(server: &Server) -> (String, (Value, Value)) {
    let (code, earlier) = post_json(
        server,
        "/v1/runs",
        &json!({"env": {"id": "FrozenLake-v1"}, "agent": {"id": "q-learning"},
                "budget": {"episodes": 200}, "seed": 3}),
    );
    assert_eq!(code, 201, "{earlier}");
    let earlier = earlier["id"].as_str().unwrap().to_string();
    wait_status(server, &earlier, &["completed"], Duration::from_secs(30));
    let before = fingerprint(server, &earlier);
    (earlier, before)
}

#[test]
fn oversized_sizes_are_refused_naming_the_field_and_the_server_goes_on() {
    // A fixed per-run cap, so that sizes within their bounds but too large
    // for it are refused the same way on every machine.
    let server = Server::start_in_temp(&["--max-run-memory", "1G"]);
    let (earlier, before) = finished_run(&server);
    let rows = before.1["rollout/episode_return"]["step"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(rows > 0, "{}", before.1);

    let cases = cases(&server);
    let swept_dqn = cases
        .iter()
        .filter(|c| c.spec["agent"]["id"] == "dqn" && c.names[0].contains("network"))
        .count();
    let swept_env = cases
        .iter()
        .filter(|c| c.names[0].starts_with("env.config"))
        .count();
    assert!(
        swept_dqn >= 6,
        "the layer list's sizes are swept: {swept_dqn}"
    );
    assert!(
        swept_env >= 4,
        "the env maps and frames are swept: {swept_env}"
    );
    for case in &cases {
        let (code, reply) = post_json(&server, "/v1/runs", &case.spec);
        assert!(
            (400..500).contains(&code),
            "{} answered {code}: {reply}",
            case.spec
        );
        let field = reply["error"]["field"].as_str().unwrap_or_default();
        assert!(
            case.names.iter().any(|name| field == name),
            "{} was refused naming {field:?}, not one of {:?}: {reply}",
            case.spec,
            case.names
        );
        let (code, health) = get_json(&server, "/healthz");
        assert_eq!(code, 200, "after {}: {health}", case.spec);
    }
    assert_eq!(fingerprint(&server, &earlier), before);

    // Within every bound, but past the 1 GiB cap: 10^8 replay slots of
    // CartPole's 16-byte observations. The refusal gives both figures.
    let (code, reply) = post_json(
        &server,
        "/v1/runs",
        &json!({"env": {"id": "CartPole-v1"},
                "agent": {"id": "dqn", "config": {"replay": {"capacity": 100_000_000}}}}),
    );
    assert_eq!(code, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "agent.config", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1073741824 bytes") && message.contains("1.0 GiB"),
        "{message}"
    );
    let estimate: u64 = message
        .split(" bytes")
        .next()
        .and_then(|head| head.rsplit('(').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no estimate in {message}"));
    assert!(estimate >= 2_300_000_000, "{message}");
}

#[test]
fn a_refused_allocation_fails_its_run_and_the_server_goes_on() {
    // 2 GiB of address space: enough for the server, not for 10^8 replay
    // slots of MinAtar frames (57 bytes each, 5.7 GB), which the raised
    // cap admits.
    let server = Server::start_in_temp_limited(2 << 20, &["--max-run-memory", "1T"]);
    let (earlier, before) = finished_run(&server);

    let (code, reply) = post_json(
        &server,
        "/v1/runs",
        &json!({"env": {"id": "minatar/breakout"},
                "agent": {"id": "dqn", "config": {"replay": {"capacity": 100_000_000}}}}),
    );
    assert_eq!(code, 201, "{reply}");
    let id = reply["id"].as_str().unwrap();
    let run = wait_status(&server, id, &["failed"], Duration::from_secs(30));
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("out of memory"), "{run}");
    assert!(error.contains("replay"), "{run}");

    let (code, health) = get_json(&server, "/healthz");
    assert_eq!(code, 200, "{health}");
    assert_eq!(fingerprint(&server, &earlier), before);
}
