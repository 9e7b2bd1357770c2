//! Textbook tabular agents, each reading like its pseudocode in Sutton &
//! Barto's *Reinforcement Learning: An Introduction* (2nd ed.):
//!
//! | id | algorithm | book |
//! |---|---|---|
//! | `policy-evaluation` | iterative policy evaluation | §4.1 |
//! | `policy-iteration` | policy iteration | §4.3 |
//! | `value-iteration` | value iteration | §4.4 |
//! | `monte-carlo-prediction` | first-/every-visit MC prediction | §5.1 |
//! | `monte-carlo` | on-policy ε-soft MC control | §5.4 |
//! | `sarsa` | SARSA | §6.4 |
//! | `q-learning` | Q-learning | §6.5 |
//! | `expected-sarsa` | Expected SARSA | §6.6 |
//! | `double-q-learning` | Double Q-learning | §6.7 |
//! | `n-step-sarsa` | n-step SARSA | §7.2 |
//!
//! Dynamic-programming agents need an environment with a model
//! ([`rl_env::Model`]); the others learn from experience alone.
#![warn(missing_docs)]

pub mod double_q_learning;
mod dp;
pub mod expected_sarsa;
pub mod mc_prediction;
pub mod monte_carlo;
pub mod n_step_sarsa;
pub mod policy_evaluation;
pub mod policy_iteration;
pub mod q_learning;
pub mod sarsa;
pub mod table;
pub mod td;
pub mod value_iteration;

use rl_agent::AgentRegistry;

/// Adds every tabular agent to `registry`.
pub fn register(registry: &mut AgentRegistry) {
    registry.planner(
        "policy-evaluation",
        "Iterative policy evaluation of a given policy with the model (S&B §4.1)",
        policy_evaluation::PolicyEvaluation::new,
    );
    registry.planner(
        "policy-iteration",
        "Policy iteration: evaluate, improve greedily, repeat until stable (S&B §4.3)",
        |c, ctx, _| policy_iteration::PolicyIteration::new(c, ctx),
    );
    registry.planner(
        "value-iteration",
        "Value iteration: in-place Bellman optimality sweeps until the change is below θ (S&B §4.4)",
        |c, ctx, _| value_iteration::ValueIteration::new(c, ctx),
    );
    registry.learner(
        "monte-carlo-prediction",
        "Monte Carlo prediction of v_π for a given policy, first- or every-visit (S&B §5.1)",
        mc_prediction::McPrediction::new,
    );
    registry.learner(
        "monte-carlo",
        "On-policy ε-soft Monte Carlo control, first- or every-visit (S&B §5.4)",
        monte_carlo::MonteCarlo::new,
    );
    registry.learner(
        "sarsa",
        "SARSA: on-policy TD control, bootstraps from the action it will take (S&B §6.4)",
        sarsa::Sarsa::new,
    );
    registry.learner(
        "q-learning",
        "Q-learning: off-policy TD control, bootstraps from the greedy action (S&B §6.5)",
        q_learning::QLearning::new,
    );
    registry.learner(
        "expected-sarsa",
        "Expected SARSA: bootstraps from the expectation under the ε-greedy policy (S&B §6.6)",
        expected_sarsa::ExpectedSarsa::new,
    );
    registry.learner(
        "double-q-learning",
        "Double Q-learning: two tables remove the maximisation bias (S&B §6.7)",
        double_q_learning::DoubleQLearning::new,
    );
    registry.learner(
        "n-step-sarsa",
        "n-step SARSA: n rewards, then bootstrap; the multi-step method (S&B §7.2)",
        n_step_sarsa::NStepSarsa::new,
    );
    registry.estimate_memory::<policy_evaluation::PolicyEvaluationConfig>(
        "policy-evaluation",
        table::memory_bytes,
    );
    registry.estimate_memory::<policy_iteration::PolicyIterationConfig>(
        "policy-iteration",
        table::memory_bytes,
    );
    registry.estimate_memory::<value_iteration::ValueIterationConfig>(
        "value-iteration",
        table::memory_bytes,
    );
    registry.estimate_memory::<mc_prediction::McPredictionConfig>(
        "monte-carlo-prediction",
        table::memory_bytes,
    );
    registry.estimate_memory::<monte_carlo::MonteCarloConfig>("monte-carlo", table::memory_bytes);
    for id in ["sarsa", "q-learning", "expected-sarsa", "double-q-learning"] {
        registry.estimate_memory::<td::TdConfig>(id, table::memory_bytes);
    }
    registry.estimate_memory::<n_step_sarsa::NStepSarsaConfig>("n-step-sarsa", table::memory_bytes);
}
