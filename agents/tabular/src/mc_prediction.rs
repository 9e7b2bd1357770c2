//! Monte Carlo prediction (Sutton & Barto §5.1): estimate v_π of a given
//! policy by averaging the returns that follow visits to each state,
//! first-visit or every-visit. No model is needed.

use crate::table::{Policy, PolicySpec, Sizes, check_gamma};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rl_agent::{Agent, EnvContext, Lanes, Result, StepSize, Tables, Transition};
use rl_env::{Action, Observation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Hyperparameters of Monte Carlo prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct McPredictionConfig {
    /// Discount γ; default 1.0 (episodic tasks, as in Sutton & Barto's blackjack).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gamma: f64,
    /// The policy to evaluate: `"uniform"` (default), one action per state, or probability rows.
    pub policy: PolicySpec,
    /// Average only the first visit of each state in an episode; default true.
    pub first_visit: bool,
    /// Step size: `"1/n"` (default) for exact averages, or a constant.
    pub alpha: StepSize,
}

impl Default for McPredictionConfig {
    fn default() -> Self {
        McPredictionConfig {
            gamma: 1.0,
            policy: PolicySpec::default(),
            first_visit: true,
            alpha: StepSize::SampleAverage,
        }
    }
}

/// The agent.
#[derive(Serialize, Deserialize)]
pub struct McPrediction {
    config: McPredictionConfig,
    sizes: Sizes,
    policy: Policy,
    v: Vec<f64>,
    counts: Vec<u64>,
    rng: ChaCha8Rng,
    /// Per lane, (S_t, R_{t+1}) of the episode so far. Never saved: a
    /// checkpoint's lanes begin new episodes.
    #[serde(skip)]
    episodes: Lanes<Vec<(usize, f64)>>,
    first_seen: Vec<u32>,
}

const UNSEEN: u32 = u32::MAX;

impl McPrediction {
    /// Builds the agent, checking the config against the environment.
    pub fn new(config: McPredictionConfig, ctx: &EnvContext<'_>, seed: u64) -> Result<Self> {
        let sizes = Sizes::of(ctx, "monte-carlo-prediction")?;
        check_gamma(config.gamma)?;
        config.alpha.validate("alpha")?;
        let policy = Policy::from_spec(&config.policy, &sizes, "policy")?;
        Ok(McPrediction {
            config,
            sizes,
            policy,
            v: vec![0.0; sizes.states],
            counts: vec![0; sizes.states],
            rng: ChaCha8Rng::seed_from_u64(seed),
            episodes: Lanes::default(),
            first_seen: vec![UNSEEN; sizes.states],
        })
    }
}

// Evaluation runs the evaluated policy itself.
crate::tabular_policy!(McPrediction,
act_greedy: |agent, obs| agent.sample(obs),
tables: |agent| Tables {
    v: agent.v.clone(),
    q: None,
    policy: (0..agent.sizes.states).map(|s| agent.policy.mode(s)).collect(),
});

impl McPrediction {
    /// An action of the evaluated policy in `obs`.
    fn sample(&mut self, obs: &Observation) -> Result<Action> {
        let s = self.sizes.state(obs)?;
        Ok(self.sizes.action(self.policy.sample(s, &mut self.rng)))
    }
}

impl Agent for McPrediction {
    fn act(&mut self, _lane: usize, obs: &Observation) -> Result<Action> {
        self.sample(obs)
    }

    fn observe(&mut self, t: &Transition<'_>) -> Result<()> {
        let s = self.sizes.state(t.obs)?;
        let episode = self.episodes.get_mut(t.lane);
        episode.push((s, t.reward));
        if !t.done() {
            return Ok(());
        }
        if self.config.first_visit {
            for (step, &(s, _)) in episode.iter().enumerate() {
                self.first_seen[s] = self.first_seen[s].min(step as u32);
            }
        }
        // G ← γ G + R_{t+1}; V(S_t) ← V(S_t) + α [G − V(S_t)]
        let mut g = 0.0;
        for step in (0..episode.len()).rev() {
            let (s, reward) = episode[step];
            g = self.config.gamma * g + reward;
            if !self.config.first_visit || self.first_seen[s] == step as u32 {
                self.counts[s] += 1;
                let alpha = self.config.alpha.alpha(self.counts[s]);
                self.v[s] += alpha * (g - self.v[s]);
            }
        }
        for &(s, _) in episode.iter() {
            self.first_seen[s] = UNSEEN;
        }
        episode.clear();
        Ok(())
    }

    /// An abandoned episode's steps are dropped, never averaged into the
    /// next episode's returns.
    fn begin_episode(&mut self, lane: usize) {
        self.episodes.get_mut(lane).clear();
    }
}
