//! The env against a process played by a test thread through a
//! [`Connection`], as the server's socket task drives one.

use super::*;
use serde_json::json;
use std::sync::Arc;

fn config() -> ExternalConfig {
    ExternalConfig::from_json(&json!({
        "observation_space": {"type": "Discrete", "n": 4},
        "action_space": {"type": "Discrete", "n": 2},
        "step_timeout_seconds": 0.3
    }))
    .unwrap()
}

/// Sends one message and waits for its answer, as a socket task would.
fn ask(connection: &mut Connection, message: Value) -> Value {
    let reply = match connection.receive(&message.to_string()) {
        Answer::Now(reply) => reply,
        Answer::Later(later) => later.blocking_recv().unwrap_or(Reply::Finished),
    };
    serde_json::from_str(&reply.to_text()).unwrap()
}

fn get_action(connection: &mut Connection, episode: &Value, observation: i64) -> Value {
    ask(
        connection,
        json!({"type": "get_action", "episode_id": episode, "observation": observation}),
    )
}

fn log_returns(connection: &mut Connection, episode: &Value, reward: f64) -> Value {
    ask(
        connection,
        json!({"type": "log_returns", "episode_id": episode, "reward": reward}),
    )
}

fn hello(name: &str) -> Value {
    json!({"type": "hello", "protocol": "rl-lab-external", "version": "1.0", "name": name,
           "observation_space": {"type": "Discrete", "n": 4},
           "action_space": {"type": "Discrete", "n": 2, "start": 0}})
}

#[test]
fn an_episode_is_steps_with_the_rewards_logged_in_between() {
    let (link, ends) = link("run-1", &config(), 1);
    let end = ends.into_iter().next().unwrap();
    let mut env = ExternalEnv::linked(config(), end);
    let process = std::thread::spawn(move || {
        let mut c = Connection::new(link);
        assert_eq!(ask(&mut c, hello("p1"))["type"], "ready");
        let ep = ask(&mut c, json!({"type": "start_episode"}))["episode_id"].clone();
        let action = get_action(&mut c, &ep, 1);
        assert_eq!(action, json!({"type": "action", "action": 1}));
        for reward in [0.5, 0.25] {
            let ok = ask(
                &mut c,
                json!({"type": "log_returns", "episode_id": ep, "reward": reward}),
            );
            assert_eq!(ok["type"], "ok");
        }
        let bad = ask(
            &mut c,
            json!({"type": "get_action", "episode_id": "9", "observation": 2}),
        );
        assert_eq!(bad["field"], "episode_id", "{bad}");
        let bad = get_action(&mut c, &ep, 7);
        assert_eq!(bad["field"], "observation", "{bad}");
        get_action(&mut c, &ep, 2);
        log_returns(&mut c, &ep, 1.0);
        let ok = ask(
            &mut c,
            json!({"type": "end_episode", "episode_id": ep, "observation": 3,
                                    "terminated": true, "truncated": false}),
        );
        assert_eq!(ok["type"], "ok");
        c
    });
    let mut obs = env.observation_space().zeros();
    env.reset_into(None, &mut obs).unwrap();
    assert_eq!(obs, Observation::Discrete(1));
    let first = env.step_into(&Action::Discrete(1), &mut obs).unwrap();
    assert_eq!(
        (first.reward, first.terminated, &obs),
        (0.75, false, &Observation::Discrete(2))
    );
    let last = env.step_into(&Action::Discrete(0), &mut obs).unwrap();
    assert_eq!(
        (last.reward, last.terminated, last.truncated, &obs),
        (1.0, true, false, &Observation::Discrete(3))
    );
    drop(process.join().unwrap());
}

#[test]
fn a_second_process_is_refused_and_a_dropped_one_truncates_its_episode() {
    let (link, ends) = link("run-2", &config(), 1);
    let end = ends.into_iter().next().unwrap();
    let mut env = ExternalEnv::linked(config(), end);
    let second = Arc::clone(&link);
    let process = std::thread::spawn(move || {
        let mut c = Connection::new(link);
        ask(&mut c, hello("first"));
        let refused = ask(&mut Connection::new(second), hello("second"));
        assert_eq!(refused["type"], "refused");
        assert!(
            refused["reason"].as_str().unwrap().contains("'first'"),
            "{refused}"
        );
        let ep = ask(&mut c, json!({"type": "start_episode"}))["episode_id"].clone();
        get_action(&mut c, &ep, 2);
        log_returns(&mut c, &ep, 2.0);
        // Gone without end_episode.
    });
    let mut obs = env.observation_space().zeros();
    env.reset_into(None, &mut obs).unwrap();
    let out = env.step_into(&Action::Discrete(0), &mut obs).unwrap();
    assert_eq!(
        (out.reward, out.terminated, out.truncated),
        (2.0, false, true)
    );
    assert_eq!(obs, Observation::Discrete(2));
    process.join().unwrap();
}

#[test]
fn silence_mid_episode_truncates_and_drops_the_connection() {
    let (link, ends) = link("run-3", &config(), 1);
    let end = ends.into_iter().next().unwrap();
    let mut env = ExternalEnv::linked(config(), end);
    let mut c = Connection::new(Arc::clone(&link));
    let process = std::thread::spawn(move || {
        ask(&mut c, hello("slow"));
        let ep = ask(&mut c, json!({"type": "start_episode"}))["episode_id"].clone();
        get_action(&mut c, &ep, 0);
        c
    });
    let mut obs = env.observation_space().zeros();
    env.reset_into(None, &mut obs).unwrap();
    let began = Instant::now();
    let out = env.step_into(&Action::Discrete(1), &mut obs).unwrap();
    assert!(out.truncated && began.elapsed() >= Duration::from_millis(300));
    let mut c = process.join().unwrap();
    let closing = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(c.closing());
    assert!(
        matches!(&closing, Closing::Dropped(why) if why.contains("0.3 s")),
        "{closing:?}"
    );
}

#[test]
fn stop_ends_the_wait_for_a_connection() {
    let (link, ends) = link("run-4", &config(), 1);
    let end = ends.into_iter().next().unwrap();
    let mut env = ExternalEnv::linked(config(), end);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        link.end(Ending::Stopped("cancelled".into()));
        link
    });
    let mut obs = env.observation_space().zeros();
    assert!(matches!(
        env.reset_into(None, &mut obs),
        Err(rl_env::Error::Unavailable(_))
    ));
    let link = stopper.join().unwrap();
    let refused = ask(&mut Connection::new(link), hello("late"));
    assert_eq!(refused, json!({"type": "refused", "reason": "cancelled"}));
}

#[test]
fn hello_is_checked_field_by_field() {
    let (link, _ends) = link("run-5", &config(), 1);
    let reason = |mut message: Value, key: &str, value: Value| {
        message[key] = value;
        let reply = ask(&mut Connection::new(Arc::clone(&link)), message);
        assert_eq!(reply["type"], "refused", "{reply}");
        reply["reason"].as_str().unwrap().to_string()
    };
    assert!(reason(hello("x"), "version", json!("2.0")).starts_with("version:"));
    assert!(reason(hello("x"), "protocol", json!("gym")).starts_with("protocol:"));
    let wrong = json!({"type": "Discrete", "n": 5});
    assert!(reason(hello("x"), "observation_space", wrong).starts_with("observation_space:"));
    let first = ask(
        &mut Connection::new(Arc::clone(&link)),
        json!({"type": "start_episode"}),
    );
    assert!(
        first["reason"].as_str().unwrap().starts_with("type:"),
        "{first}"
    );
}

#[test]
fn a_detached_env_says_it_needs_a_server() {
    let mut registry = Registry::new();
    register(&mut registry);
    let mut env = registry
        .make(
            ENV_ID,
            &json!({"observation_space": {"type": "Discrete", "n": 4},
                               "action_space": {"type": "Discrete", "n": 2}}),
        )
        .unwrap();
    let err = env.reset(None).unwrap_err();
    assert!(err.to_string().contains("rl-lab serve"), "{err}");
    let err = registry
        .make(
            ENV_ID,
            &json!({"observation_space": {"type": "Discrete", "n": 0},
                               "action_space": {"type": "Discrete", "n": 2}}),
        )
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("observation_space.n:"), "{err}");
}
