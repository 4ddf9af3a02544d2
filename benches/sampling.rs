//! Categorical draws and Philox throughput (`discrete_diffusion::rng`).
//!
//! * `categorical/*`: one draw per call from a row of `V ∈ {4, 25, 32768, 262144}` `f32`
//!   logits `2·N(0, 1)` (the masses benches use `exp` of the same logits in `f64`):
//!   `sample_logits` (exponential race, one 53-bit uniform per element),
//!   `sample_logits_inverse_cdf` (one uniform per row, two passes), `sample_masses`
//!   (inverse CDF on `f64` masses) and `sample_masses_race`. Each call of a race gets a
//!   fresh `CounterRng` at its own position, as a sampler does per token. Throughput is
//!   `Elements(V)`.
//! * `philox/*`: `CounterRng::next_u64` and the raw `philox4x32_10` block function, 4096
//!   per call (`Elements(4096)`: u64 words, resp. 128-bit blocks).

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use common::{Inputs, config};
use discrete_diffusion::rng::{
    CounterRng, Purpose, RngKey, philox4x32_10, sample_logits, sample_logits_inverse_cdf,
    sample_masses, sample_masses_race,
};

const SIZES: [usize; 4] = [4, 25, 32768, 262144];
/// Words (or blocks) per call of the Philox benches.
const PHILOX_BATCH: usize = 4096;

fn categorical(c: &mut Criterion) {
    let mut g = c.benchmark_group("categorical");
    let mut inputs = Inputs::new(20);
    let key = RngKey::for_stream(7, 0);
    for v in SIZES {
        let logits = inputs.logits_f32(v, 2.0);
        let masses: Vec<f64> = logits.iter().map(|&l| (l as f64).exp()).collect();
        // 1024 uniforms cycled through by the inverse-CDF benches.
        let us: Vec<f64> = (0..1024).map(|_| inputs.uniform()).collect();
        g.throughput(Throughput::Elements(v as u64));

        let mut pos = 0u32;
        g.bench_function(BenchmarkId::new("sample_logits_race_f32", v), |b| {
            b.iter(|| {
                pos = pos.wrapping_add(1);
                let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, 0, pos);
                black_box(sample_logits(black_box(&logits), &mut rng).unwrap())
            })
        });
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("sample_logits_inverse_cdf_f32", v), |b| {
            b.iter(|| {
                i = (i + 1) % us.len();
                black_box(sample_logits_inverse_cdf(black_box(&logits), us[i]).unwrap())
            })
        });
        g.bench_function(BenchmarkId::new("sample_masses", v), |b| {
            b.iter(|| {
                i = (i + 1) % us.len();
                black_box(sample_masses(black_box(&masses), us[i]).unwrap())
            })
        });
        g.bench_function(BenchmarkId::new("sample_masses_race", v), |b| {
            b.iter(|| {
                pos = pos.wrapping_add(1);
                let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, 0, pos);
                black_box(sample_masses_race(black_box(&masses), &mut rng).unwrap())
            })
        });
    }
    g.finish();
}

fn philox(c: &mut Criterion) {
    let mut g = c.benchmark_group("philox");
    g.throughput(Throughput::Elements(PHILOX_BATCH as u64));
    let key = RngKey::for_stream(7, 0);
    let mut pos = 0u32;
    g.bench_function(
        BenchmarkId::new("counter_rng_next_u64", PHILOX_BATCH),
        |b| {
            b.iter(|| {
                pos = pos.wrapping_add(1);
                let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, 0, pos);
                let mut acc = 0u64;
                for _ in 0..PHILOX_BATCH {
                    acc ^= rng.next_u64();
                }
                black_box(acc)
            })
        },
    );
    g.bench_function(BenchmarkId::new("philox4x32_10_block", PHILOX_BATCH), |b| {
        b.iter(|| {
            pos = pos.wrapping_add(1);
            let mut acc = 0u32;
            for j in 0..PHILOX_BATCH as u32 {
                let out = philox4x32_10(black_box([j, pos, 0, 2]), key.0);
                acc ^= out[0] ^ out[1] ^ out[2] ^ out[3];
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = categorical, philox
}
criterion_main!(benches);
