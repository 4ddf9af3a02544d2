//! SEDD score entropy (value + gradient with respect to `f32` log-scores) for one position,
//! `V ∈ {4, 25, 32768}`, at total noise `σ̄ = 0.7`:
//!
//! * `score_entropy/absorbing/V`: mask at `V/2`, observed `x = mask`, `x0 = 0`;
//! * `score_entropy/uniform/V`: `x = 1`, `x0 = 0`.
//!
//! One call per iteration with a reused `CtmcLossWorkspace`; throughput `Elements(V)`.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use common::config;
use discrete_diffusion::kernel::ctmc::MixtureGenerator;
use discrete_diffusion::loss::ctmc::score_entropy::{CtmcLossWorkspace, score_entropy};

const SIZES: [usize; 3] = [4, 25, 32768];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("score_entropy");
    for &v in &SIZES {
        g.throughput(Throughput::Elements(v as u64));
        let log_score: Vec<f32> = (0..v).map(|i| ((i as f32) * 0.37).sin() * 2.0).collect();
        let mut grad = vec![0.0f32; v];
        let mut ws = CtmcLossWorkspace::new(v);
        let mask = (v / 2) as u32;
        let cases = [
            (
                "absorbing",
                MixtureGenerator::absorbing(v, mask).unwrap(),
                mask,
            ),
            ("uniform", MixtureGenerator::uniform(v).unwrap(), 1),
        ];
        for (name, gen_, x) in &cases {
            g.bench_with_input(BenchmarkId::new(*name, v), &v, |b, _| {
                b.iter(|| {
                    score_entropy(
                        gen_,
                        0.7,
                        *x,
                        0,
                        black_box(&log_score[..]),
                        &mut ws,
                        Some(&mut grad[..]),
                    )
                    .unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
