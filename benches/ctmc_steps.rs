//! Per-position cost of the CTMC sampler steps (`discrete_diffusion::sample::ctmc`) and of
//! the reverse-rate conversion they start from (`param::reverse`), at `V ∈ {4, 25, 32768}`,
//! on SEDD's uniform graph (`MixtureGenerator::uniform`, `O(V)` closed forms) with random
//! f32 logits as the x0 prediction, at `t = 0.6 → s = 0.55` of a geometric schedule.
//!
//! One benchmark each of: `rates_from_logits` (softmax + concrete score + rate row),
//! `euler_law`, `euler_draw`, `tau_reject_law`, `tau_reject_draw`, `tau_ordinal_draw`
//! (one Poisson per target), `tau_ordinal_law` (exact convolution; `V ≤ 25` only, its
//! support grows with `V·h·R̂`), `tweedie_from_x0`, `tweedie_from_score`,
//! `corrector_rates`, and the scalar `first_hitting_time`. Throughput is `Elements(V)`.
//! Buffers are allocated once, outside the timed loop.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use common::{Inputs, config};
use discrete_diffusion::kernel::ctmc::MixtureGenerator;
use discrete_diffusion::math::softmax_into;
use discrete_diffusion::param::reverse::{RateWorkspace, reverse_rates_from_logits};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::ctmc::{
    TauLeapMode, corrector_rates, euler_draw, euler_law, first_hitting_time, tau_leaping_draw,
    tau_leaping_law, tweedie_law_from_score, tweedie_law_from_x0,
};
use discrete_diffusion::schedule::{Geometric, Linear, Schedule};

fn bench(c: &mut Criterion) {
    let sched = Geometric::new(1e-3, 4.0).unwrap();
    let (t, s) = (0.6, 0.55);
    let sigma = sched.noise_rate(t).unwrap();
    let (st, ss) = (sched.total_noise(t).unwrap(), sched.total_noise(s).unwrap());
    let mut group = c.benchmark_group("ctmc_steps");
    for v in [4usize, 25, 32768] {
        group.throughput(Throughput::Elements(v as u64));
        let g = MixtureGenerator::uniform(v).unwrap();
        let logits = Inputs::new(v as u64).logits_f32(v, 2.0);
        let x = (v / 3) as u32;
        let mut ws = RateWorkspace::new(v).unwrap();
        let mut rates = vec![0.0; v];
        let mut out = vec![0.0; v];
        let mut scratch = vec![0.0; v];
        let mut p = vec![0.0; v];
        softmax_into(&logits, &mut p).unwrap();
        reverse_rates_from_logits(&g, sigma, st, x, &logits, &mut ws, &mut rates).unwrap();
        let score = ws.ratio().to_vec();
        // Scale so that h·Σ R̂ ≈ 0.5 at every V (a step size a sampler would use).
        let total: f64 = rates
            .iter()
            .enumerate()
            .filter(|&(y, _)| y != x as usize)
            .map(|(_, r)| r)
            .sum();
        let hh = 0.5 / total;
        group.bench_with_input(BenchmarkId::new("rates_from_logits", v), &v, |b, _| {
            b.iter(|| {
                reverse_rates_from_logits(&g, sigma, st, x, black_box(&logits), &mut ws, &mut out)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("euler_law", v), &v, |b, _| {
            b.iter(|| euler_law(black_box(&rates), x, hh, &mut out).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("euler_draw", v), &v, |b, _| {
            b.iter(|| euler_draw(black_box(&rates), x, hh, 0.7).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("tau_reject_law", v), &v, |b, _| {
            b.iter(|| {
                tau_leaping_law(
                    black_box(&rates),
                    x,
                    hh,
                    TauLeapMode::RejectMultiple,
                    &mut out,
                )
                .unwrap()
            })
        });
        let key = RngKey::new(3);
        let mut k = 0u32;
        group.bench_with_input(BenchmarkId::new("tau_reject_draw", v), &v, |b, _| {
            b.iter(|| {
                k = k.wrapping_add(1);
                let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, k, 0);
                tau_leaping_draw(
                    black_box(&rates),
                    x,
                    hh,
                    TauLeapMode::RejectMultiple,
                    &mut rng,
                )
                .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("tau_ordinal_draw", v), &v, |b, _| {
            b.iter(|| {
                k = k.wrapping_add(1);
                let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, k, 0);
                tau_leaping_draw(black_box(&rates), x, hh, TauLeapMode::Ordinal, &mut rng).unwrap()
            })
        });
        if v <= 25 {
            group.bench_with_input(BenchmarkId::new("tau_ordinal_law", v), &v, |b, _| {
                b.iter(|| {
                    tau_leaping_law(black_box(&rates), x, hh, TauLeapMode::Ordinal, &mut out)
                        .unwrap()
                })
            });
        }
        group.bench_with_input(BenchmarkId::new("tweedie_from_x0", v), &v, |b, _| {
            b.iter(|| tweedie_law_from_x0(&g, st, ss, x, black_box(&p), &mut ws, &mut out).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("tweedie_from_score", v), &v, |b, _| {
            b.iter(|| {
                tweedie_law_from_score(&g, st - ss, x, black_box(&score), &mut scratch, &mut out)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("corrector_rates", v), &v, |b, _| {
            b.iter(|| {
                corrector_rates(&g, sigma, x, black_box(&rates), &mut scratch, &mut out).unwrap()
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    let lin = Linear::new();
    group.bench_function("first_hitting_time", |b| {
        b.iter(|| first_hitting_time(&lin, black_box(0.8), 100, 0.37).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
