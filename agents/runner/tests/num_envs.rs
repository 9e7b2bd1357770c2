//! The training loop over `env.num_envs` copies: one copy plays exactly
//! the runs the one-env loop played, and every agent trains on several.

use rl_agent::Agent;
use rl_agent::sink::NullSink;
use rl_runner::train::{CarriedState, Counters, Hooks, Progress};
use rl_runner::{CancelFlag, Engine, RunSpec, Summary};

/// FNV-1a over everything a run shows of itself: each episode's progress
/// (counters, the 100-episode mean, ε), each checkpoint's counters and
/// carried env state, the summary's figures and the trained agent's saved
/// state (for a table agent its tables; for DQN both networks, the
/// optimiser, the replay buffer and the random streams). One changed action
/// anywhere changes it.
struct Digest(u64);

impl Digest {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f64(&mut self, v: Option<f64>) {
        self.u64(v.map_or(u64::MAX, f64::to_bits));
    }
}

impl Hooks for Digest {
    fn on_episode(&mut self, progress: &Progress) {
        self.u64(progress.counters.episodes);
        self.u64(progress.counters.steps);
        self.f64(progress.recent_mean_return);
        self.f64(progress.epsilon);
    }
    fn checkpoint(
        &mut self,
        _agent: &dyn Agent,
        counters: Counters,
        carried: &CarriedState,
    ) -> rl_runner::Result<()> {
        self.u64(counters.episodes);
        self.u64(counters.steps);
        self.bytes(serde_json::to_string(carried).unwrap().as_bytes());
        Ok(())
    }
}

fn run(spec: &str) -> (u64, Summary) {
    // The digests are of exact floating-point results: the portable
    // kernels give the same ones on every x86-64 CPU, where AVX2 and FMA
    // would round differently from a CPU without them.
    rl_layers::set_simd_limit(rl_layers::Simd::Baseline);
    let spec = RunSpec::from_json(spec).unwrap();
    let mut run = Engine::default().prepare(spec).unwrap();
    let mut digest = Digest(0xcbf2_9ce4_8422_2325);
    let summary = run
        .execute(
            &mut NullSink,
            &mut digest,
            &CancelFlag::new(),
            Counters::default(),
        )
        .unwrap();
    digest.u64(summary.episodes);
    digest.u64(summary.steps);
    digest.f64(summary.train_mean_return_last_100);
    for r in &summary.eval.returns {
        digest.f64(Some(*r));
    }
    // A table agent's learned tables; any other agent's whole saved state.
    let state = match run.agent.policy().tables() {
        Some(tables) => serde_json::to_value(tables).unwrap(),
        None => run.agent.policy().save().unwrap(),
    };
    digest.bytes(serde_json::to_string(&state).unwrap().as_bytes());
    (digest.0, summary)
}

/// The example specs, with `env.num_envs` set and the budget cut.
fn example(file: &str, num_envs: usize, steps: Option<u64>) -> String {
    let path = format!("{}/../../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    spec["env"]["num_envs"] = num_envs.into();
    if let Some(steps) = steps {
        spec["budget"] = serde_json::json!({ "steps": steps });
    }
    spec.to_string()
}

/// Digests of these runs as the one-env loop played them, before the loop
/// stepped copies (commit 2154fdd, the same digest code run against it,
/// with the portable kernels).
const CLIFF_Q_LEARNING: u64 = 0x3b39_9593_9df2_5f48;
const CARTPOLE_DQN_20K: u64 = 0xcc4e_4e5e_02b6_b403;
const BREAKOUT_DQN_50K: u64 = 0x16e9_a082_f19c_9067;

#[test]
fn one_copy_replays_the_one_env_loop_bit_for_bit() {
    let cases = [
        ("01-q-learning-cliff.json", None, CLIFF_Q_LEARNING),
        ("cartpole-dqn.json", Some(20_000), CARTPOLE_DQN_20K),
        ("minatar-breakout-dqn.json", Some(50_000), BREAKOUT_DQN_50K),
    ];
    for (file, steps, expected) in cases {
        let (digest, summary) = run(&example(file, 1, steps));
        println!(
            "{file}: digest {digest:#018x}, {} episodes, last-100 mean {:?}",
            summary.episodes, summary.train_mean_return_last_100
        );
        assert_eq!(digest, expected, "{file}");
    }
}

/// Counts the episodes the loop reports, checking that each id is the
/// next one: ids stay unique whichever copy ends an episode.
#[derive(Default)]
struct Episodes {
    seen: u64,
    steps: u64,
}

impl Hooks for Episodes {
    fn on_episode(&mut self, progress: &Progress) {
        assert_eq!(progress.counters.episodes, self.seen + 1, "episode ids");
        assert!(progress.counters.steps >= self.steps, "steps only grow");
        self.seen = progress.counters.episodes;
        self.steps = progress.counters.steps;
    }
}

fn lake(agent: &str, num_envs: usize) -> String {
    let config = if agent == "monte-carlo-prediction" {
        serde_json::json!({})
    } else {
        serde_json::json!({"epsilon": {"linear": {"start": 1.0, "end": 0.1, "episodes": 150}}})
    };
    serde_json::json!({
        "env": {"id": "gridworld/frozen-lake-4x4", "num_envs": num_envs},
        "agent": {"id": agent, "config": config},
        "budget": {"episodes": 200}, "seed": 11, "eval": {"episodes": 20}
    })
    .to_string()
}

#[test]
fn every_table_agent_trains_on_four_copies() {
    for agent in [
        "q-learning",
        "sarsa",
        "expected-sarsa",
        "double-q-learning",
        "n-step-sarsa",
        "monte-carlo",
        "monte-carlo-prediction",
    ] {
        let mut run = Engine::default()
            .prepare(RunSpec::from_json(&lake(agent, 4)).unwrap())
            .unwrap();
        let mut episodes = Episodes::default();
        let summary = run
            .execute(
                &mut NullSink,
                &mut episodes,
                &CancelFlag::new(),
                Counters::default(),
            )
            .unwrap();
        // Copies that end an episode on the same step all count: the
        // budget is passed by at most num_envs − 1.
        assert!(
            (200..=203).contains(&summary.episodes),
            "{agent}: {summary:?}"
        );
        assert_eq!(episodes.seen, summary.episodes, "{agent}");
        assert_eq!(episodes.steps, summary.steps, "{agent}");
        // Seeded: the same spec plays the same run.
        assert_eq!(
            run_digest(&lake(agent, 4)),
            run_digest(&lake(agent, 4)),
            "{agent}"
        );
    }
}

fn run_digest(spec: &str) -> u64 {
    run(spec).0
}

#[test]
fn q_learning_on_four_copies_of_the_cliff_finds_the_shortest_path() {
    let (_, one) = run(&example("01-q-learning-cliff.json", 1, None));
    let (_, four) = run(&example("01-q-learning-cliff.json", 4, None));
    assert_eq!(one.eval.mean_return, Some(-13.0));
    assert_eq!(four.eval.mean_return, Some(-13.0), "{four:?}");
    // Four copies play other episodes than one, from other seeds.
    assert_ne!(one.steps, four.steps);
}

#[test]
fn dqn_learns_cartpole_on_four_copies_with_a_ring_per_copy() {
    let spec = example("cartpole-dqn.json", 4, Some(20_000));
    let (digest, summary) = run(&spec);
    let mean = summary.train_mean_return_last_100.unwrap();
    println!(
        "4 copies, 20k steps: last-100 mean {mean}, {} episodes",
        summary.episodes
    );
    // A uniformly random policy averages about 22 steps.
    assert!(mean > 50.0, "{summary:?}");
    assert!((20_000..20_004).contains(&summary.steps));
    assert_eq!(digest, run_digest(&spec), "seeded");

    let mut run = Engine::default()
        .prepare(RunSpec::from_json(&example("cartpole-dqn.json", 4, Some(2_000))).unwrap())
        .unwrap();
    run.execute(
        &mut NullSink,
        &mut rl_runner::train::NoHooks,
        &CancelFlag::new(),
        Counters::default(),
    )
    .unwrap();
    let state = run.agent.policy().save().unwrap();
    assert_eq!(state["replay"]["more_lanes"].as_array().unwrap().len(), 3);
}

#[test]
fn a_checkpoint_of_several_copies_carries_each_copys_state_and_resumes() {
    let spec = |every: Option<u64>| {
        let mut spec: serde_json::Value =
            serde_json::from_str(&example("minatar-breakout-dqn.json", 2, Some(6_000))).unwrap();
        spec["agent"]["config"] =
            serde_json::json!({"learning_starts": 500, "replay": {"capacity": 4000}});
        spec["checkpoint"] = serde_json::json!({ "every_episodes": every });
        spec["eval"] = serde_json::json!({"episodes": 2});
        RunSpec::from_value(&spec).unwrap()
    };
    let engine = Engine::default();
    let dir = tempfile::tempdir().unwrap();
    let folder = rl_runner::RunFolder::create(dir.path().join("run")).unwrap();
    let mut whole = engine.prepare(spec(Some(40))).unwrap();
    let uninterrupted = whole
        .execute_in(&folder, &CancelFlag::new(), |_| {})
        .unwrap();
    let text = std::fs::read_to_string(folder.path().join("checkpoint.json")).unwrap();
    let checkpoint: rl_runner::folder::Checkpoint = serde_json::from_str(&text).unwrap();
    assert!(checkpoint.counters.episodes >= 40);
    let copies = checkpoint
        .envs
        .train
        .as_array()
        .expect("one state per copy");
    assert_eq!(copies.len(), 2);
    assert!(
        copies.iter().all(|c| c["last_action"].is_u64()),
        "{copies:?}"
    );
    assert_eq!(
        checkpoint.agent["replay"]["more_lanes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let mut resumed = engine.prepare(spec(None)).unwrap();
    let start = resumed.restore(&checkpoint).unwrap();
    let continued = resumed
        .execute(
            &mut NullSink,
            &mut Episodes {
                seen: start.episodes,
                steps: start.steps,
            },
            &CancelFlag::new(),
            start,
        )
        .unwrap();
    assert!(continued.steps >= 6_000 && continued.steps < 6_002);
    assert!(continued.episodes > checkpoint.counters.episodes);
    assert!(uninterrupted.episodes > 0);

    // A checkpoint of two copies cannot restore a run of three.
    let mut spec3 = serde_json::to_value(spec(None)).unwrap();
    spec3["env"]["num_envs"] = 3.into();
    let mut other = engine
        .prepare(RunSpec::from_value(&spec3).unwrap())
        .unwrap();
    let err = other.restore(&checkpoint).unwrap_err().to_string();
    assert!(
        err.contains("lanes") || err.contains("env.num_envs"),
        "{err}"
    );
}

#[test]
fn bad_copy_counts_are_refused_naming_the_field() {
    let engine = Engine::default();
    for n in [0, 257] {
        let err = RunSpec::from_json(&example("01-q-learning-cliff.json", n, None))
            .and_then(|spec| engine.prepare(spec).map(drop))
            .unwrap_err();
        assert!(err.is_input(), "{err}");
        assert!(err.to_string().starts_with("env.num_envs:"), "{err}");
    }
    // Each copy's ring must hold a transition.
    let mut spec: serde_json::Value =
        serde_json::from_str(&example("cartpole-dqn.json", 64, None)).unwrap();
    spec["agent"]["config"]["replay"] = serde_json::json!({"capacity": 100});
    spec["agent"]["config"]["batch_size"] = 32.into();
    let err = engine
        .prepare(RunSpec::from_value(&spec).unwrap())
        .map(drop)
        .unwrap_err();
    assert!(err.is_input(), "{err}");
    assert!(err.to_string().contains("replay.capacity"), "{err}");
}
