//! D3PM training loss with its gradient, and the exact Markov-chain oracle.
//!
//! * `hybrid_loss/*`: `loss::d3pm::hybrid_loss` (λ = 0.01, `Decoder::Direct`) with the
//!   gradient with respect to `f32` logits `2·N(0, 1)`, at the mid step `t = 32` of `T = 64`
//!   (so the VB term is `L_{t−1}`, a KL between two posteriors), for the Uniform kernel and
//!   the Absorbing kernel (mask at `V/2`, observed `x_t = mask`), `V ∈ {25, 32768}`, one
//!   position per call with a reused `D3pmWorkspace`. Throughput `Elements(V)`.
//! * `oracle/*`: `ExactPosterior::posterior_x0` of an order-1 `MarkovChainOracle` of length
//!   `L = 1024` over `V ∈ {4, 32}` states (the mask included: a random chain on the `V − 1`
//!   clean tokens embedded with the mask at index `V/2`), under the absorbing channel
//!   `q(x_t | x_0) = ½ δ_{x_0} + ½ δ_mask`; `x_t` is one fixed corrupted draw. One call is one
//!   whole sequence (forward–backward); throughput `Elements(L·V)`, the entries of the
//!   `[L, V]` posterior.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;

use common::{Inputs, config, linear_betas};
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::mixture::MixtureChannel;
use discrete_diffusion::kernel::uniform::Uniform;
use discrete_diffusion::kernel::{Channel, ForwardKernel};
use discrete_diffusion::loss::d3pm::{D3pmWorkspace, Decoder, hybrid_loss};
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::ExactPosterior;
use discrete_diffusion::rng::sample_masses;

const LOSS_SIZES: [usize; 2] = [25, 32768];
const STEPS: usize = 64;
const LAMBDA: f64 = 0.01;
const ORACLE_SIZES: [usize; 2] = [4, 32];
const ORACLE_LEN: usize = 1024;

fn bench_hybrid<K: ForwardKernel>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    kernel: &K,
    x_t: u32,
    x0: u32,
    inputs: &mut Inputs,
) {
    let v = kernel.vocab_size();
    let t = STEPS / 2;
    let logits = inputs.logits_f32(v, 2.0);
    let mut grad = vec![0.0f32; v];
    let mut ws = D3pmWorkspace::new(v);
    hybrid_loss(
        kernel,
        t,
        x_t,
        x0,
        &logits,
        LAMBDA,
        Decoder::Direct,
        &mut ws,
        Some(&mut grad),
    )
    .expect("hybrid_loss");
    g.throughput(Throughput::Elements(v as u64));
    g.bench_function(BenchmarkId::new(name, v), |b| {
        b.iter(|| {
            let l = hybrid_loss(
                kernel,
                t,
                black_box(x_t),
                black_box(x0),
                black_box(&logits),
                LAMBDA,
                Decoder::Direct,
                &mut ws,
                Some(&mut grad),
            )
            .unwrap();
            black_box(&grad);
            black_box(l)
        })
    });
}

fn hybrid(c: &mut Criterion) {
    let mut g = c.benchmark_group("hybrid_loss");
    let mut inputs = Inputs::new(30);
    for v in LOSS_SIZES {
        let k = Uniform::new(v, &linear_betas(STEPS, 0.01, 0.1)).unwrap();
        bench_hybrid(&mut g, "uniform_grad", &k, 1, 2, &mut inputs);
    }
    let betas: Vec<f64> = (1..=STEPS).map(|t| 1.0 / (STEPS - t + 1) as f64).collect();
    for v in LOSS_SIZES {
        let mask = (v / 2) as u32;
        let k = Absorbing::new(v, mask, &betas).unwrap();
        bench_hybrid(&mut g, "absorbing_grad", &k, mask, 1, &mut inputs);
    }
    g.finish();
}

fn oracle(c: &mut Criterion) {
    let mut g = c.benchmark_group("oracle");
    let mut inputs = Inputs::new(31);
    for v in ORACLE_SIZES {
        let clean = v - 1;
        let mask = (v / 2) as u32;
        let initial = inputs.distribution(clean, 1.0);
        let transition: Vec<f64> = (0..clean)
            .flat_map(|_| inputs.distribution(clean, 1.0))
            .collect();
        let chain = MarkovChainOracle::new(clean, 1, ORACLE_LEN, initial, transition).unwrap();
        let ids: Vec<u32> = (0..v as u32).filter(|&i| i != mask).collect();
        let oracle = chain.embed(&ids, v).unwrap();

        let mut pi = vec![0.0; v];
        pi[mask as usize] = 1.0;
        let channel = MixtureChannel::new(&pi, 0.5).unwrap();
        let x0 = oracle.sample_x0(inputs.rng());
        let mut row = vec![0.0; v];
        let xt: Vec<u32> = x0
            .iter()
            .map(|&x| {
                channel.transition_row(x, &mut row).unwrap();
                sample_masses(&row, inputs.uniform()).unwrap().token
            })
            .collect();
        let mut out = Array2::<f64>::zeros((ORACLE_LEN, v));
        oracle
            .posterior_x0(&xt, &channel, out.view_mut())
            .expect("posterior_x0");

        g.throughput(Throughput::Elements((ORACLE_LEN * v) as u64));
        g.bench_function(
            BenchmarkId::new(format!("markov1_posterior_x0_L{ORACLE_LEN}"), v),
            |b| {
                b.iter(|| {
                    oracle
                        .posterior_x0(black_box(&xt), &channel, out.view_mut())
                        .unwrap();
                    black_box(&out);
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = hybrid, oracle
}
criterion_main!(benches);
