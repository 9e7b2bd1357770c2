//! Agents that exist only to test the machinery around training, behind
//! the `test-agents` feature: the release binary has none of them.
//!
//! The server registers them only when `RL_LAB_TEST_AGENTS` is set (see
//! [`crate::agents::server_registry`]), so that a test build's catalogue,
//! and the tests that sweep it, see the same agents a user does.

use rl_agent::{Agent, AgentRegistry, EnvContext, Error, Policy, Result, Transition};
use rl_env::{Action, Observation, Space};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable that makes the server register these agents.
pub const ENABLE_VAR: &str = "RL_LAB_TEST_AGENTS";

/// Registers `test/panic`.
pub fn register(registry: &mut AgentRegistry) {
    registry.learner(
        "test/panic",
        "Test only: acts with the first action and panics (or aborts its process) at a chosen env step, to test how a worker survives a panic and a server a lost worker",
        PanicAgent::new,
    );
}

/// `test/panic`'s config.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PanicConfig {
    /// The env step (counted from 1 over the agent's life) at which `act`
    /// panics; never when absent. No default to cite: a test chooses it.
    pub panic_at_step: Option<u64>,
    /// The env step at which `act` aborts the whole process
    /// (`std::process::abort`, as a fatal fault in native code would): a
    /// run that takes down its worker costs that worker only, and after
    /// its attempts it ends failed. Never when absent.
    pub abort_at_step: Option<u64>,
    /// Milliseconds `act` sleeps each step: a run that holds its worker
    /// for as long as a test needs while using neither CPU nor disk. No
    /// sleep when absent.
    pub sleep_ms_per_step: Option<u64>,
}

/// Acts with the space's first action; panics at `panic_at_step`, aborts
/// at `abort_at_step`.
pub struct PanicAgent {
    config: PanicConfig,
    first_action: i64,
    steps: u64,
}

impl PanicAgent {
    /// Needs a discrete action space: its first element is the one action.
    pub fn new(config: PanicConfig, ctx: &EnvContext<'_>, _seed: u64) -> Result<Self> {
        let Space::Discrete { start, .. } = ctx.action_space else {
            return Err(Error::Incompatible(format!(
                "test/panic acts in discrete action spaces only; {}'s is not",
                ctx.env_id
            )));
        };
        Ok(PanicAgent {
            config,
            first_action: *start,
            steps: 0,
        })
    }
}

impl Policy for PanicAgent {
    fn act_greedy(&mut self, _obs: &Observation) -> Result<Action> {
        Ok(Action::Discrete(self.first_action))
    }

    fn save(&self) -> Result<Value> {
        Ok(serde_json::json!({ "steps": self.steps }))
    }

    fn load(&mut self, state: &Value) -> Result<()> {
        self.steps = state["steps"].as_u64().unwrap_or(0);
        Ok(())
    }
}

impl Agent for PanicAgent {
    fn act(&mut self, _lane: usize, _obs: &Observation) -> Result<Action> {
        self.steps += 1;
        if self.config.panic_at_step == Some(self.steps) {
            panic!("test/panic: panicking at step {} as asked", self.steps);
        }
        if self.config.abort_at_step == Some(self.steps) {
            eprintln!(
                "test/panic: aborting the process at step {} as asked",
                self.steps
            );
            std::process::abort();
        }
        if let Some(ms) = self.config.sleep_ms_per_step {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        Ok(Action::Discrete(self.first_action))
    }

    fn observe(&mut self, _transition: &Transition<'_>) -> Result<()> {
        Ok(())
    }
}
