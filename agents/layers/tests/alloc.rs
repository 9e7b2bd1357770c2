//! Zero heap allocations per training step (forward, backward, optimiser
//! step) after warm-up, with eval-mode forwards and weight copies between
//! steps, counted by a counting global allocator (`stats_alloc`, so no
//! `unsafe` is needed here).
//!
//! This file holds a single test so that no other test's allocations run
//! concurrently with the counted region.

use rl_layers::bench::{TrainStep, sparse_binary, switch_off_every_third};
use rl_layers::{Layer, Mode, Sequential};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The index of the largest output for one input.
fn argmax(net: &mut Sequential, input: &ndarray::ArrayD<f32>) -> usize {
    let y = net.forward(input.view(), Mode::Eval).unwrap();
    let mut best = 0;
    for (i, &v) in y.iter().enumerate() {
        if v > y[[0, best]] {
            best = i;
        }
    }
    best
}

#[test]
fn training_steps_do_not_allocate_after_warm_up() {
    // 0/1 inputs, about 8% non-zero: Conv2d's sparse path
    let mut sparse = TrainStep::conv_10x10(3).unwrap();
    sparse.input = sparse_binary(sparse.input.raw_dim());
    // a third of the hidden units off for every sample (a large negative
    // bias): Affine's backward over live outputs only
    let mut dead = TrainStep::conv_10x10(3).unwrap();
    for layer in dead.net.layers_mut() {
        if layer.kind() == "affine" && layer.params()[1].value.len() == 128 {
            switch_off_every_third(&mut layer.params_mut()[1].value);
        }
    }
    for (name, mut step) in [
        ("conv 10x10", TrainStep::conv_10x10(3).unwrap()),
        ("conv 10x10, sparse inputs", sparse),
        ("conv 10x10, dead hidden units", dead),
        ("conv 84x84", TrainStep::conv_84x84(3).unwrap()),
    ] {
        let one = step
            .input
            .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..1))
            .to_owned();
        // a second network of the same layers, evaluated on the whole batch
        let mut copy = step.net.clone();
        // warm-up: buffers at the full batch and at batch 1, optimiser state
        step.run().unwrap();
        copy.forward(step.input.view(), Mode::Eval).unwrap();
        argmax(&mut step.net, &one);
        step.run().unwrap();
        let region = Region::new(GLOBAL);
        let steps = if name.starts_with("conv 10x10") {
            20
        } else {
            2
        };
        for _ in 0..steps {
            // eval-mode forwards between steps (batch 1 on the trained
            // network, the whole batch on its copy) must not force
            // reallocation either
            std::hint::black_box(argmax(&mut step.net, &one));
            std::hint::black_box(copy.forward(step.input.view(), Mode::Eval).unwrap());
            step.run().unwrap();
            copy.copy_from(&step.net).unwrap();
            copy.soft_update_from(&step.net, 0.005).unwrap();
        }
        let stats = region.change();
        println!("{name}: {stats:?}");
        assert_eq!(
            stats.allocations + stats.reallocations,
            0,
            "{name}: {stats:?} over {steps} steps"
        );
    }
}
