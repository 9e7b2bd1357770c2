//! Zero heap allocations per DQN update after warm-up on the benchmark's
//! networks and batches ([`rl_dqn::bench::UpdateBench`]), with acting and
//! target updates between updates, counted by a counting global allocator
//! (`stats_alloc`). `tests/alloc.rs` counts whole training steps of the
//! agent; this test adds the Nature network and the inputs that take the
//! layer crate's sparse paths.
//!
//! This file holds a single test so that no other test's allocations run
//! concurrently with the counted region.

use ndarray::{ArrayD, Axis, Slice};
use rl_dqn::bench::UpdateBench;
use rl_dqn::network::QNet;
use rl_layers::bench::{sparse_binary, switch_off_every_third};
use rl_layers::{Mode, Parameters};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn act(net: &mut QNet, obs: &ArrayD<f32>) -> usize {
    let q = net.forward(obs.view(), Mode::Eval).unwrap();
    QNet::argmax(q, 0)
}

#[test]
fn dqn_updates_do_not_allocate_after_warm_up() {
    // MinAtar-like observations (0/1, about 8% non-zero): Conv2d's sparse path
    let mut sparse = UpdateBench::minatar(3).unwrap();
    sparse.batch.obs = sparse_binary(sparse.batch.obs.raw_dim());
    sparse.batch.next_obs = sparse_binary(sparse.batch.next_obs.raw_dim());
    // a third of the hidden units off for every sample (a large negative
    // bias): Affine's backward over live outputs only
    let mut dead = UpdateBench::minatar(3).unwrap();
    dead.online.visit_params_mut(&mut |p| {
        // the bias of the 128 hidden units (the only parameter of 128 values)
        if p.value.len() == 128 {
            switch_off_every_third(&mut p.value);
        }
    });
    for (name, mut bench) in [
        ("minatar", UpdateBench::minatar(3).unwrap()),
        ("minatar, sparse observations", sparse),
        ("minatar, dead hidden units", dead),
        ("nature", UpdateBench::nature(3).unwrap()),
    ] {
        let one = bench
            .batch
            .obs
            .slice_axis(Axis(0), Slice::from(0..1))
            .to_owned();
        // warm-up: buffers at batch 32 and batch 1, optimiser state
        bench.step().unwrap();
        act(&mut bench.online, &one);
        bench.step().unwrap();
        let region = Region::new(GLOBAL);
        let updates = if name.starts_with("minatar") { 20 } else { 2 };
        for _ in 0..updates {
            // acting between updates (batch 1, eval mode) must not force reallocation either
            std::hint::black_box(act(&mut bench.online, &one));
            bench.step().unwrap();
            bench.target_net.copy_from(&bench.online).unwrap();
            bench
                .target_net
                .soft_update_from(&bench.online, 0.005)
                .unwrap();
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
