//! Spaces survive JSON, infinite bounds included, and contain their samples.

use proptest::prelude::*;
use rand::SeedableRng;
use rl_env::{DType, Space};

fn bound() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        -1e6f64..1e6,
        (-100i32..100).prop_map(f64::from),
    ]
}

fn arbitrary_space() -> impl Strategy<Value = Space> {
    prop_oneof![
        (1u64..1000, -5i64..5).prop_map(|(n, start)| Space::Discrete { n, start }),
        prop::collection::vec(1usize..4, 1..3).prop_map(|n| Space::MultiBinary { n }),
        prop::collection::vec((bound(), bound()), 1..6).prop_map(|pairs| {
            let (low, high): (Vec<f64>, Vec<f64>) =
                pairs.into_iter().map(|(a, b)| (a.min(b), a.max(b))).unzip();
            let n = low.len();
            Space::bounded_box(low, high, &[n], DType::F64)
        }),
    ]
}

proptest! {
    // Seeded, so that CI runs the same cases every time.
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn spaces_round_trip_through_json(space in arbitrary_space(), seed in 0u64..100) {
        let text = serde_json::to_string(&space).unwrap();
        let back: Space = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &space);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let sample = space.sample(&mut rng);
        prop_assert!(space.contains(&sample), "{} does not contain {:?}", space, sample);
    }
}
