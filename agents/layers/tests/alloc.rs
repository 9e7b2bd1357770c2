//! Zero heap allocations per DQN update after warm-up, counted by a counting
//! global allocator (`stats_alloc`, so no `unsafe` is needed here).
//!
//! This file holds a single test so that no other test's allocations run
//! concurrently with the counted region.

use rl_layers::bench::DqnSetup;
use rl_layers::{Layer, Mode, Sequential};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn act(net: &mut Sequential, obs: &ndarray::ArrayD<f32>) -> usize {
    let q = net.forward(obs.view(), Mode::Eval).unwrap();
    let mut best = 0;
    for (i, &v) in q.iter().enumerate() {
        if v > q[[0, best]] {
            best = i;
        }
    }
    best
}

#[test]
fn dqn_updates_do_not_allocate_after_warm_up() {
    // MinAtar-like observations (0/1, about 8% non-zero): Conv2d's sparse path
    let mut sparse = DqnSetup::minatar(3).unwrap();
    let mut k = 0usize;
    let mut sparse_obs = || {
        ndarray::ArrayD::from_shape_fn(sparse.batch.obs.raw_dim(), |_| {
            k += 1;
            f32::from(u8::from((k * 7919) % 100 < 8))
        })
    };
    let (obs, next_obs) = (sparse_obs(), sparse_obs());
    sparse.batch.obs = obs;
    sparse.batch.next_obs = next_obs;
    // a third of the hidden units off for every sample (a large negative
    // bias): Affine's backward over live outputs only
    let mut dead = DqnSetup::minatar(3).unwrap();
    for layer in dead.online.layers_mut() {
        if layer.kind() == "affine" && layer.params()[1].value.len() == 128 {
            for (j, b) in layer.params_mut()[1].value.iter_mut().enumerate() {
                if j % 3 == 2 {
                    *b = -1e3;
                }
            }
        }
    }
    for (name, mut setup) in [
        ("minatar", DqnSetup::minatar(3).unwrap()),
        ("minatar, sparse observations", sparse),
        ("minatar, dead hidden units", dead),
        ("nature", DqnSetup::nature(3).unwrap()),
    ] {
        let one = setup
            .batch
            .obs
            .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..1))
            .to_owned();
        // warm-up: buffers at batch 32 and batch 1, optimiser state
        setup.update().unwrap();
        act(&mut setup.online, &one);
        setup.update().unwrap();
        let region = Region::new(GLOBAL);
        let updates = if name.starts_with("minatar") { 20 } else { 2 };
        for _ in 0..updates {
            // acting between updates (batch 1, eval mode) must not force reallocation either
            std::hint::black_box(act(&mut setup.online, &one));
            setup.update().unwrap();
            setup.target.copy_from(&setup.online).unwrap();
            setup.target.soft_update_from(&setup.online, 0.005).unwrap();
        }
        let stats = region.change();
        println!("{name}: {stats:?}");
        assert_eq!(
            stats.allocations + stats.reallocations,
            0,
            "{name}: {stats:?} over {updates} updates"
        );
    }
}
