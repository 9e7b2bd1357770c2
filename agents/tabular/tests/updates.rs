//! Single updates, checked by hand against the book's formulas, and the
//! rule that truncation bootstraps while termination does not.

use rl_agent::{Agent, EnvContext, Transition};
use rl_env::{Action, Observation, Space};
use rl_tabular::n_step_sarsa::{NStepSarsa, NStepSarsaConfig};
use rl_tabular::q_learning::QLearning;
use rl_tabular::td::TdConfig;
use serde_json::json;

fn context<'a>(obs: &'a Space, act: &'a Space) -> EnvContext<'a> {
    EnvContext {
        num_envs: 1,
        total_steps: None,
        observation_space: obs,
        action_space: act,
        model: None,
        env_id: "test",
    }
}

fn step(
    agent: &mut dyn Agent,
    s: i64,
    a: i64,
    r: f64,
    next: i64,
    terminated: bool,
    truncated: bool,
) {
    agent
        .observe(&Transition {
            lane: 0,
            obs: &Observation::Discrete(s),
            action: &Action::Discrete(a),
            reward: r,
            next_obs: &Observation::Discrete(next),
            terminated,
            truncated,
        })
        .unwrap();
}

fn q(agent: &dyn Agent, s: usize, a: usize) -> f64 {
    agent.tables().unwrap().q.unwrap()[s][a]
}

#[test]
fn q_learning_bootstraps_through_truncation_not_termination() {
    let (obs, act) = (Space::discrete(3), Space::discrete(2));
    let config: TdConfig = serde_json::from_value(
        json!({"alpha": 1.0, "gamma": 0.5, "epsilon": 0.0, "initial_q": 2.0}),
    )
    .unwrap();
    let mut agent = QLearning::new(config, &context(&obs, &act), 0).unwrap();
    // y = r + γ max_a' Q(s', a') = 1 + 0.5 · 2
    step(&mut agent, 0, 1, 1.0, 1, false, false);
    assert_eq!(q(&agent, 0, 1), 2.0);
    // truncated: still bootstraps
    step(&mut agent, 1, 0, 1.0, 2, false, true);
    assert_eq!(q(&agent, 1, 0), 2.0);
    // terminated: y = r
    step(&mut agent, 2, 0, 1.0, 0, true, false);
    assert_eq!(q(&agent, 2, 0), 1.0);
}

#[test]
fn n_step_sarsa_sums_n_rewards_then_bootstraps() {
    let (obs, act) = (Space::discrete(6), Space::discrete(1));
    let config: NStepSarsaConfig = serde_json::from_value(
        json!({"n": 2, "alpha": 1.0, "gamma": 0.5, "epsilon": 0.0, "initial_q": 8.0}),
    )
    .unwrap();
    let mut agent = NStepSarsa::new(config, &context(&obs, &act), 0).unwrap();
    // A chain 0 → 1 → 2 → 3 (terminal) with rewards 1, 2, 4.
    step(&mut agent, 0, 0, 1.0, 1, false, false);
    assert_eq!(q(&agent, 0, 0), 8.0, "nothing to update before n rewards");
    step(&mut agent, 1, 0, 2.0, 2, false, false);
    // G_{0:2} = R1 + γ R2 + γ² Q(S2, A2) = 1 + 1 + 0.25 · 8
    assert_eq!(q(&agent, 0, 0), 4.0);
    step(&mut agent, 2, 0, 4.0, 3, true, false);
    // G_{1:3} = R2 + γ R3 = 2 + 2 (S3 terminal); G_{2:3} = R3 = 4
    assert_eq!(q(&agent, 1, 0), 4.0);
    assert_eq!(q(&agent, 2, 0), 4.0);
}

#[test]
fn tabular_agents_refuse_non_discrete_spaces() {
    let (obs, act) = (
        Space::uniform_box(0.0, 1.0, &[4], rl_env::DType::F32),
        Space::discrete(2),
    );
    let err = QLearning::new(TdConfig::default(), &context(&obs, &act), 0)
        .err()
        .unwrap();
    assert!(err.to_string().contains("Discrete observations"), "{err}");
}
