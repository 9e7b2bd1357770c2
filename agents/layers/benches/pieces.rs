//! Run with: `cargo bench -p rl-layers --bench pieces [-- 10x10|84x84] [avx2|baseline]`
//!
//! Per-layer timings of the training step of `rl_layers::bench::TrainStep`
//! at batch 32 (min over 7 rounds of `reps` calls each), for finding where
//! a step's time goes: `10x10` is its conv net on 4×10×10 inputs, `84x84`
//! the one on 4×84×84 inputs. Layer `i` is the `i`-th layer of that
//! network; `fwd` is a train-mode
//! forward, `eval` an eval-mode one, `bwd` a backward (`bwd_params` for the
//! first layer, which needs no input gradient), `new weight` an eval-mode
//! forward right after the parameters were borrowed mutably (Affine's sparse
//! path then transposes `W` again), `params-only` a backward
//! without the input gradient, `opt step` one optimiser step over the whole
//! net. `avx2` and `baseline` cap the kernels at the AVX2 + FMA or SSE2 build.

use ndarray::ArrayD;
use rl_layers::bench::TrainStep;
use rl_layers::{Layer, Mode};
use std::time::Instant;

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if which.iter().any(|w| w == "avx2") {
        rl_layers::set_simd_limit(rl_layers::Simd::Avx2Fma);
    }
    if which.iter().any(|w| w == "baseline") {
        rl_layers::set_simd_limit(rl_layers::Simd::Baseline);
    }
    println!("simd: {:?}", rl_layers::simd_level());
    let which: Vec<String> = which
        .into_iter()
        .filter(|w| w != "avx2" && w != "baseline")
        .collect();
    for name in ["10x10", "84x84"] {
        if !which.is_empty() && !which.iter().any(|w| w == name) {
            continue;
        }
        let mut setup = if name == "10x10" {
            TrainStep::conv_10x10(0)
        } else {
            TrainStep::conv_84x84(0)
        }
        .expect("setup");
        let reps = if name == "10x10" { 400 } else { 8 };
        setup.run().expect("step");
        let whole = time(reps, || {
            setup.run().expect("step");
        });
        println!("{name}: training step {whole:.1} us");
        // inputs of every layer, from one train forward
        let x0 = setup.input.clone();
        let mut inputs: Vec<ArrayD<f32>> = vec![x0.clone()];
        let mut outs_shapes = Vec::new();
        {
            let layers = setup.net.layers_mut();
            let mut cur = x0.clone();
            for l in layers.iter_mut() {
                let y = l.forward(cur.view(), Mode::Train).expect("fwd").to_owned();
                outs_shapes.push(y.raw_dim());
                inputs.push(y.clone());
                cur = y;
            }
        }
        let layers = setup.net.layers_mut();
        for (i, l) in layers.iter_mut().enumerate() {
            let x = inputs[i].clone();
            let mut k = 0usize;
            let dy = ArrayD::from_shape_fn(outs_shapes[i].clone(), |_| {
                k += 1;
                ((k % 7) as f32 - 3.0) * 0.01
            });
            let fwd = time(reps, || {
                std::hint::black_box(l.forward(x.view(), Mode::Train).expect("fwd"));
            });
            let evl = time(reps, || {
                std::hint::black_box(l.forward(x.view(), Mode::Eval).expect("fwd"));
            });
            // eval right after a weight change (a network that both trains and
            // evaluates between steps): Affine's sparse path transposes W first
            let evl_new = time(reps, || {
                l.params_mut();
                std::hint::black_box(l.forward(x.view(), Mode::Eval).expect("fwd"));
            });
            l.forward(x.view(), Mode::Train).expect("fwd");
            let bwd = if i == 0 {
                time(reps, || l.backward_params(dy.view()).expect("bwd"))
            } else {
                time(reps, || {
                    std::hint::black_box(l.backward(dy.view()).expect("bwd"));
                })
            };
            let bwdp = time(reps, || l.backward_params(dy.view()).expect("bwd"));
            // a fully connected layer's dy with every third output dead for
            // the whole batch (as hidden units behind a ReLU that stay off)
            let dead = (dy.ndim() == 2).then(|| {
                let mut dy_dead = dy.clone();
                for (j, mut column) in dy_dead.axis_iter_mut(ndarray::Axis(1)).enumerate() {
                    if j % 3 == 2 {
                        column.fill(0.0);
                    }
                }
                time(reps, || {
                    std::hint::black_box(l.backward(dy_dead.view()).expect("bwd"));
                })
            });
            println!(
                "  {i} {:8} fwd {fwd:8.1} eval {evl:8.1} (new weight {evl_new:8.1}) {} {bwd:8.1} params-only {bwdp:8.1}{} us",
                l.kind(),
                if i == 0 { "bwd_params" } else { "bwd" },
                dead.map(|t| format!(" a-third-dead {t:8.1}"))
                    .unwrap_or_default(),
            );
        }
        let net = &mut setup.net;
        let optimizer = &mut setup.optimizer;
        let step = time(reps, || optimizer.step(net).expect("step"));
        println!("  opt step {step:.1} us");
    }
}
