//! Environments over HTTP, end to end: the real binary on an ephemeral
//! port, real HTTP clients. The routes one by one are tested in process
//! in `server/tests/gym.rs`.

use serde_json::{Value, json};
use std::sync::{Arc, Barrier};

mod support;
use support::{Server, agent};

/// A POST as gym-http-api's clients send it.
fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(u16, Value), ureq::Error> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn get_text(agent: &ureq::Agent, url: &str) -> String {
    agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

fn open_instances(agent: &ureq::Agent, base: &str) -> u64 {
    let metrics = get_text(agent, &format!("{base}/metrics"));
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("rl_lab_open_env_instances "))
        .unwrap_or_else(|| panic!("no gauge in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// One client: create a seeded CartPole, step it `steps` times (resetting
/// when an episode ends), close it. Returns the errors it met.
fn client(
    base: &str,
    seed: u64,
    steps: usize,
    created: &Barrier,
    counted: &Barrier,
) -> Vec<String> {
    let agent = agent();
    let mut errors = Vec::new();
    let mut check = |what: &str, result: Result<(u16, Value), ureq::Error>, want: u16| match result
    {
        Ok((status, body)) if status == want => Some(body),
        Ok((status, body)) => {
            errors.push(format!("{what}: {status} {body}"));
            None
        }
        Err(e) => {
            errors.push(format!("{what}: {e}"));
            None
        }
    };
    let body = json!({"env_id": "CartPole-v1", "seed": seed}).to_string();
    let created_reply = check(
        "create",
        post(&agent, &format!("{base}/v1/envs/"), &body),
        200,
    );
    created.wait();
    counted.wait();
    let Some(id) = created_reply.and_then(|r| r["instance_id"].as_str().map(String::from)) else {
        return errors;
    };
    let reset = format!("{base}/v1/envs/{id}/reset/");
    let step = format!("{base}/v1/envs/{id}/step/");
    check("reset", post(&agent, &reset, "null"), 200);
    for t in 0..steps {
        // A fixed, seed-dependent policy: deterministic and varied.
        let action = (t as u64 / 3 + seed) % 2;
        let reply = check(
            "step",
            post(&agent, &step, &format!("{{\"action\": {action}}}")),
            200,
        );
        if reply.is_some_and(|r| r["done"] == true) {
            check("reset", post(&agent, &reset, "null"), 200);
        }
    }
    check(
        "close",
        post(&agent, &format!("{base}/v1/envs/{id}/close/"), "null"),
        204,
    );
    errors
}

#[test]
fn thirty_two_clients_step_their_instances_2000_times_without_an_error() {
    const CLIENTS: usize = 32;
    let server = Server::start_in_temp(&[]);
    let created = Arc::new(Barrier::new(CLIENTS + 1));
    let counted = Arc::new(Barrier::new(CLIENTS + 1));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let base = server.base.clone();
            let (created, counted) = (Arc::clone(&created), Arc::clone(&counted));
            std::thread::spawn(move || client(&base, i as u64, 2000, &created, &counted))
        })
        .collect();
    created.wait();
    let agent = agent();
    assert_eq!(open_instances(&agent, &server.base), CLIENTS as u64);
    counted.wait();
    let errors: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client panicked"))
        .collect();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(open_instances(&agent, &server.base), 0);
}

#[test]
fn bad_env_requests_get_400_with_the_documented_message() {
    let server = Server::start_in_temp(&["--max-body-bytes", "65536"]);
    let agent = agent();
    let base = &server.base;
    let (status, created) = post(
        &agent,
        &format!("{base}/v1/envs/"),
        r#"{"env_id": "FrozenLake-v0"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{created}");
    let id = created["instance_id"].as_str().unwrap();
    let step = format!("{base}/v1/envs/{id}/step/");
    post(&agent, &format!("{base}/v1/envs/{id}/reset/"), "").unwrap();

    let cases = [
        (
            format!("{base}/v1/envs/"),
            r#"{"env_id": "CartPole-v1""#.to_string(),
            "malformed JSON body",
        ),
        (
            format!("{base}/v1/envs/"),
            r#"{"env_id": "CartPole-v1", "sed": 1}"#.to_string(),
            "unknown field `sed`",
        ),
        (
            format!("{base}/v1/envs/"),
            r#"{"env_id": "Pong-v9"}"#.to_string(),
            "Attempted to look up malformed environment ID 'Pong-v9'",
        ),
        (
            step.clone(),
            r#"{"action": 9}"#.to_string(),
            "action 9 is not in the action space Discrete(4)",
        ),
        (
            step.clone(),
            "{}".to_string(),
            "A required request parameter 'action' was not provided",
        ),
        (
            format!("{base}/v1/envs/0000beef/reset/"),
            "null".to_string(),
            "Instance_id 0000beef unknown",
        ),
    ];
    for (url, body, expected) in cases {
        let (status, reply) = post(&agent, &url, &body).unwrap();
        assert_eq!(status, 400, "{body}: {reply}");
        let message = reply["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{reply}"));
        assert!(message.contains(expected), "{body}: {message}");
    }
    // Over the server's body limit: refused before the handler reads it.
    let huge = format!("{{\"action\": [{}]}}", "0,".repeat(50_000) + "0");
    let refused = agent
        .post(&step)
        .header("Content-Type", "application/json")
        .send(&huge)
        .unwrap();
    assert_eq!(refused.status().as_u16(), 413);
    // Refused unread, so the server closes the connection and says so: a
    // pooling client must not send its next request into it.
    assert_eq!(
        refused.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    // The instance is still usable after all of that.
    let (status, reply) = post(&agent, &step, r#"{"action": 1}"#).unwrap();
    assert_eq!(status, 200, "{reply}");
}
