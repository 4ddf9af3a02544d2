//! `CpuBackend::summarize` over large `[B, L, V]` logit tensors, against the machine's
//! roofline measured in the same run.
//!
//! * `summarize/<variant>/<B>x<L>x<V>`: one call over every position, on rayon's global
//!   pool (all cores) with the fastest instruction set; variants `greedy` (τ = 0),
//!   `tau1` (τ = 1), `tau1_entropy_margin` (τ = 1 with entropy and margin) and `tau0.7`
//!   (a tempered draw: a second `exp` per logit). The mask id `V − 1` is excluded.
//! * `roofline/read`: a parallel `f32` sum of the same tensor (16 lanes, on all threads):
//!   the streaming bound.
//! * `in_cache/<variant>/<level>/1x64x16384`: one thread on a 4 MiB input that stays in
//!   the L3 cache, called repeatedly, on each vectorised instruction set the machine has
//!   (`avx2`, `avx512`): the per-core compute rate of the kernel without DRAM traffic.
//!
//! Throughput is `Elements(B·L·V)`; logits are `3·(U₁ + U₂ + U₃ + U₄ − 2)` from a
//! splitmix hash (fast to generate in parallel; the distribution does not matter for the
//! cost). Sizes: `(16, 1024, 32768)` (2 GiB of logits) and `(8, 1024, 50257)` (1.5 GiB).

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, Array3};
use rayon::prelude::*;

use common::config;
use discrete_diffusion::backend::cpu::{CpuBackend, Simd};
use discrete_diffusion::backend::{Backend, BatchRng, RowSpec, RowSummary};
use discrete_diffusion::rng::Purpose;

const SIZES: [(usize, usize, usize); 2] = [(16, 1024, 32768), (8, 1024, 50257)];

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn logits(b: usize, l: usize, v: usize) -> Array3<f32> {
    let mut data = vec![0f32; b * l * v];
    data.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (k, x) in chunk.iter_mut().enumerate() {
                let h = splitmix(((c as u64) << 16) | k as u64);
                let s: u32 = (0..4).map(|j| ((h >> (16 * j)) & 0xFFFF) as u32).sum();
                *x = 3.0 * (s as f32 / 65536.0 - 2.0);
            }
        });
    Array3::from_shape_vec((b, l, v), data).expect("shape")
}

/// The benchmarked specs; the mask id `V − 1` is excluded.
fn variants(v: usize) -> Vec<(&'static str, RowSpec)> {
    let spec = |temperature: f64, stats: bool| RowSpec {
        temperature,
        excluded: vec![(v - 1) as u32],
        entropy: stats,
        margin: stats,
    };
    vec![
        ("greedy", spec(0.0, false)),
        ("tau1", spec(1.0, false)),
        ("tau1_entropy_margin", spec(1.0, true)),
        ("tau0.7", spec(0.7, false)),
    ]
}

fn read_sum(x: &[f32]) -> f32 {
    x.par_chunks(1 << 16)
        .map(|c| {
            let mut acc = [0f32; 16];
            for ch in c.chunks_exact(16) {
                for j in 0..16 {
                    acc[j] += ch[j];
                }
            }
            acc.iter().sum::<f32>()
        })
        .sum()
}

fn summarize(c: &mut Criterion) {
    let cpu = CpuBackend::new();
    eprintln!("CpuBackend: {} threads, {:?}", cpu.threads(), cpu.simd());
    for (b, l, v) in SIZES {
        let x = logits(b, l, v);
        let flat = x.as_slice().expect("standard layout");
        let n = (b * l * v) as u64;
        let id = format!("{b}x{l}x{v}");
        let streams: Vec<u64> = (0..b as u64).collect();
        let rng = BatchRng {
            seed: 1,
            streams: &streams,
            step: 0,
            purpose: Purpose::CATEGORICAL,
        };
        let mut out = Array2::from_elem((b, l), RowSummary::default());
        let mut g = c.benchmark_group("roofline");
        g.throughput(Throughput::Elements(n));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        g.bench_function(BenchmarkId::new("read", &id), |bch| {
            bch.iter(|| black_box(read_sum(black_box(flat))))
        });
        g.finish();

        let mut g = c.benchmark_group("summarize");
        g.throughput(Throughput::Elements(n));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        for (name, spec) in variants(v) {
            g.bench_function(BenchmarkId::new(name, &id), |bch| {
                bch.iter(|| {
                    cpu.summarize(black_box(x.view()), None, &spec, &rng, out.view_mut())
                        .expect("valid input");
                    black_box(&out);
                })
            });
        }
        g.finish();
    }
}

fn in_cache(c: &mut Criterion) {
    // Every vectorised level this machine has (the portable level, ~50× slower without
    // FMA, is left out): a regression on the level that is not the default shows here.
    for simd in Simd::available() {
        if simd != Simd::Portable {
            in_cache_on(c, simd);
        }
    }
}

fn in_cache_on(c: &mut Criterion, simd: Simd) {
    let one = CpuBackend::with_threads(1)
        .expect("a 1-thread pool")
        .with_simd(simd)
        .expect("an available level");
    let (b, l, v) = (1usize, 64usize, 16384usize);
    let x = logits(b, l, v);
    let rng = BatchRng {
        seed: 1,
        streams: &[0],
        step: 0,
        purpose: Purpose::CATEGORICAL,
    };
    let mut out = Array2::from_elem((b, l), RowSummary::default());
    let mut g = c.benchmark_group("in_cache");
    g.throughput(Throughput::Elements((b * l * v) as u64));
    for (name, spec) in variants(v) {
        let id = format!("{simd:?}/{b}x{l}x{v}").to_lowercase();
        g.bench_function(BenchmarkId::new(name, id), |bch| {
            bch.iter(|| {
                one.summarize(black_box(x.view()), None, &spec, &rng, out.view_mut())
                    .expect("valid input");
                black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = summarize, in_cache
}
criterion_main!(benches);
