//! Our `RandomState` against numpy's own outputs.
//!
//! The fixture is written by `tests/reference/numpy_fixture.py` (numpy's
//! legacy `np.random.RandomState`); see that script for what each list is.

use rl_minatar::numpy_rng::RandomState;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    bounds: Vec<(i64, i64)>,
    seeds: Vec<Seed>,
}

#[derive(Deserialize)]
struct Seed {
    seed: u32,
    rand: Vec<u64>,
    randint: Vec<i64>,
    randint_array: Vec<i64>,
    mixed: Vec<u64>,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/numpy_random_state.json");
    serde_json::from_str(text).expect("the committed fixture parses")
}

/// `rand()` scaled to the integer numpy stored: `value · 2⁵³`.
fn scaled(x: f64) -> u64 {
    let k = x * 9_007_199_254_740_992.0;
    assert_eq!(k.fract(), 0.0, "rand() must have 53 bits");
    k as u64
}

#[test]
fn covers_the_required_seeds() {
    let seeds: Vec<u32> = fixture().seeds.iter().map(|s| s.seed).collect();
    assert_eq!(seeds, [0, 1, u32::MAX]);
}

#[test]
fn rand_matches_numpy() {
    for s in fixture().seeds {
        let mut rng = RandomState::new(s.seed);
        assert_eq!(s.rand.len(), 1000);
        for (i, &want) in s.rand.iter().enumerate() {
            assert_eq!(scaled(rng.rand()), want, "seed {} draw {i}", s.seed);
        }
    }
}

#[test]
fn randint_matches_numpy() {
    let f = fixture();
    for s in &f.seeds {
        let mut rng = RandomState::new(s.seed);
        assert_eq!(s.randint.len(), 1000);
        for (i, &want) in s.randint.iter().enumerate() {
            let (low, high) = f.bounds[i % f.bounds.len()];
            assert_eq!(
                rng.randint(low, high),
                want,
                "seed {} draw {i}: randint({low}, {high})",
                s.seed
            );
        }
    }
}

#[test]
fn array_randint_matches_numpy() {
    for s in fixture().seeds {
        let mut rng = RandomState::new(s.seed);
        let mut got = Vec::new();
        for _ in 0..125 {
            let mut speeds = [0i64; 8];
            rng.randint_into(1, 6, &mut speeds);
            got.extend(speeds);
        }
        let mut rest = vec![0i64; 1000];
        rng.randint_into(0, 7, &mut rest);
        got.extend(rest);
        assert_eq!(got, s.randint_array, "seed {}", s.seed);
    }
}

#[test]
fn interleaved_draws_match_numpy() {
    for s in fixture().seeds {
        let mut rng = RandomState::new(s.seed);
        for (i, &want) in s.mixed.iter().enumerate() {
            let got = if i % 3 == 2 {
                rng.randint(1, 9) as u64
            } else {
                scaled(rng.rand())
            };
            assert_eq!(got, want, "seed {} draw {i}", s.seed);
        }
    }
}
