//! One driver step per preset at `(B, L, V) = (8, 256, 32768)`: the per-step work of
//! `sample::driver` over logits the model has produced (transforms of the rows read, one
//! backend pass, selection in `O(B·L)`), without the denoiser call. Logits `3·N(0, 1)`-like
//! (hashed), half of the positions masked, the CpuBackend. Tokens and logits are reset
//! outside the timing (`iter_batched`).
//!
//! Check: `cargo bench --bench driver -- --test`. Run: `cargo bench --bench driver`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::driver::{SamplerConfig, StepPlace, step};
use discrete_diffusion::sample::presets::*;
use discrete_diffusion::sample::remask::RemdmSigma;
use discrete_diffusion::schedule::Linear;
use ndarray::{Array2, Array3};

const B: usize = 8;
const L: usize = 256;
const V: usize = 32768;

fn presets(mask: u32) -> Vec<(&'static str, SamplerConfig)> {
    let layout = LladaLayout {
        prompt_len: 0,
        gen_length: L,
        block_length: 32,
        steps: 64,
    };
    let lin = || Arc::new(Linear::new());
    let dream_o = DreamOptions {
        steps: 64,
        temperature: 0.7,
        top_k: Some(50),
        ..DreamOptions::default()
    };
    vec![
        ("llada", llada(mask, layout, 0.0, false).unwrap()),
        (
            "fast_dllm_threshold",
            fast_dllm_threshold(mask, layout, 0.0, 0.9).unwrap(),
        ),
        (
            "fast_dllm_factor",
            fast_dllm_factor(mask, layout, 0.0, 1.0).unwrap(),
        ),
        (
            "dream_entropy_t0.7_topk50",
            dream(mask, DreamAlg::Entropy, &dream_o).unwrap(),
        ),
        (
            "dimple",
            dimple(
                mask,
                &DreamOptions {
                    steps: 64,
                    ..DreamOptions::default()
                },
                0.9,
                true,
            )
            .unwrap(),
        ),
        ("mdlm", mdlm(mask, 64, 1e-5, lin()).unwrap()),
        (
            "remdm_cap",
            remdm(mask, 64, 1e-5, lin(), RemdmSigma::Cap { eta: 0.02 }).unwrap(),
        ),
        ("fudoki", fudoki(mask, 64, 1e-5, lin()).unwrap()),
        ("eb_sampler", eb_sampler(mask, 64, 0.1).unwrap()),
    ]
}

fn bench(c: &mut Criterion) {
    let mask = (V - 1) as u32;
    let key = RngKey::new(1);
    let logits = Array3::from_shape_fn((B, L, V), |(b, i, v)| {
        let u = CounterRng::new(key, Purpose::USER, (b * L + i) as u32, v as u32).uniform();
        (6.0 * u - 3.0) as f32
    });
    let tokens = Array2::from_shape_fn((B, L), |(b, i)| {
        if (b + i) % 2 == 0 {
            mask
        } else {
            (i % 100) as u32
        }
    });
    let fixed = Array2::from_elem((B, L), false);
    let streams: Vec<u64> = (0..B as u64).collect();
    let backend = CpuBackend::new();
    let mut g = c.benchmark_group(format!("driver_step/{B}x{L}x{V}"));
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((B * L * V) as u64));
    for (name, cfg) in presets(mask) {
        // The whole sequence as the current block (every masked position a candidate).
        let block = (0, L);
        let place = StepPlace {
            step: 0,
            steps: cfg.steps,
            t: 1.0,
            s: 1.0 - 1.0 / cfg.steps as f64,
        };
        // One step on fresh copies of the logits and tokens.
        let one_step = |(mut lg, mut tk): (Array3<f32>, Array2<u32>)| {
            step(
                &backend,
                &cfg,
                &mut lg,
                tk.view_mut(),
                fixed.view(),
                block,
                place,
                0,
                7,
                &streams,
            )
            .unwrap()
        };
        // Check once.
        one_step((logits.clone(), tokens.clone()));
        g.bench_function(name, |bch| {
            bch.iter_batched(
                || (logits.clone(), tokens.clone()),
                |io| black_box(one_step(io)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
