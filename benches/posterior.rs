//! Per-row cost of the D3PM posteriors for every forward kernel in `src/kernel/`.
//!
//! For each kernel and vocabulary size `V`, at the mid step `t = T/2`, one benchmark each of
//! (all in `discrete_diffusion::kernel::posterior`, with one reused `PosteriorWorkspace`):
//!
//! * `q_posterior`: `q(x_{t−1} | x_t, x_0)` (one cumulative row, one step column);
//! * `p_reverse_joint`: D3PM's joint-form reverse step against a predicted `p̃(x_0)`
//!   (one cumulative vecmat, one step column);
//! * `p_reverse_mixture`: the posterior-mixture form (one cumulative column, one vecmat,
//!   one step column).
//!
//! Throughput is `Elements(V)`: the `V` entries of the output row. A `posterior/baseline`
//! group times a plain f64 sum and an element-wise product over `V` entries for reference.
//!
//! Sizes. The mixture-to-π kernels (Uniform, Absorbing with the mask in the middle of the
//! vocabulary, Marginal, MaskAndUniform) are closed forms, O(V) per row, and run at
//! `V ∈ {4, 25, 32768}` with `T = 64`. The kernels whose cumulative matrices are dense
//! (DiscretizedGaussian, BandedUniform, Dense, MatrixExponentialKernel with the absorbing
//! generator, which takes the Padé route) or spectral (Similarity, MatrixExponentialKernel
//! with the uniform generator, which takes the eigen route) cannot hold `V = 32768`
//! (one `V × V` f64 matrix is 8 GiB; the dense ones store `2T + 1` of them), so they run at
//! `V ∈ {4, 25, 1024}` with `T = 16` (dense storage at `V = 1024`: 33 matrices, 264 MiB),
//! except the Padé route, whose construction (`2T + 1` dense exponentials, 22 s at
//! `V = 1024` on the 2-core benchmark machine) limits it to `V ∈ {4, 25, 512}`.
//! Construction happens once per kernel and `V`, outside the timed loop; its wall time is
//! printed to stderr.

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use ndarray::Array2;

use common::{Inputs, config, linear_betas};
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::banded_uniform::BandedUniform;
use discrete_diffusion::kernel::dense::Dense;
use discrete_diffusion::kernel::gaussian::DiscretizedGaussian;
use discrete_diffusion::kernel::generator::{MatrixExponentialKernel, exponents_from_betas};
use discrete_diffusion::kernel::marginal::Marginal;
use discrete_diffusion::kernel::mask_uniform::MaskAndUniform;
use discrete_diffusion::kernel::posterior::{
    PosteriorWorkspace, p_reverse_joint, p_reverse_mixture, q_posterior,
};
use discrete_diffusion::kernel::similarity::Similarity;
use discrete_diffusion::kernel::uniform::Uniform;

/// Vocabulary sizes of the O(V) mixture-to-π kernels.
const MIXTURE_SIZES: [usize; 3] = [4, 25, 32768];
/// Vocabulary sizes of the dense / spectral kernels (`V = 32768` would need 8 GiB per matrix).
const DENSE_SIZES: [usize; 3] = [4, 25, 1024];
/// Vocabulary sizes of the Padé-route matrix exponential: building `2T + 1 = 33` Padé
/// exponentials took 22 s at `V = 1024` on the 2-core benchmark machine, so it stops at 512.
const PADE_SIZES: [usize; 3] = [4, 25, 512];
/// Steps of the mixture kernels (their per-row cost does not depend on `T`).
const MIXTURE_STEPS: usize = 64;
/// Steps of the dense / spectral kernels (kept small so construction takes seconds).
const DENSE_STEPS: usize = 16;

/// Build a kernel, reporting the construction time on stderr.
fn build<K>(name: &str, v: usize, f: impl FnOnce() -> K) -> K {
    let start = Instant::now();
    let k = f();
    eprintln!(
        "construct {name} V={v}: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    k
}

/// Bench the three posterior functions of one kernel at `t = T/2`, observing `x_t` with
/// clean token `x0` (chosen so that `q(x_t | x_0) > 0`). Every call is checked to succeed
/// once before it is timed, so no error path is measured.
fn bench_rows<K: ForwardKernel>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    kernel: &K,
    x_t: u32,
    x0: u32,
    inputs: &mut Inputs,
) {
    let v = kernel.vocab_size();
    let t = kernel.num_steps() / 2;
    let p0 = inputs.distribution(v, 1.0);
    let mut ws = PosteriorWorkspace::new(v);
    let mut out = vec![0.0; v];
    q_posterior(kernel, t, x_t, x0, &mut ws, &mut out).expect("q_posterior");
    p_reverse_joint(kernel, t, x_t, &p0, &mut ws, &mut out).expect("p_reverse_joint");
    p_reverse_mixture(kernel, t, x_t, &p0, &mut ws, &mut out).expect("p_reverse_mixture");

    group.throughput(Throughput::Elements(v as u64));
    group.bench_function(BenchmarkId::new("q_posterior", v), |b| {
        b.iter(|| {
            q_posterior(kernel, t, black_box(x_t), black_box(x0), &mut ws, &mut out).unwrap();
            black_box(&out);
        })
    });
    group.bench_function(BenchmarkId::new("p_reverse_joint", v), |b| {
        b.iter(|| {
            p_reverse_joint(kernel, t, black_box(x_t), black_box(&p0), &mut ws, &mut out).unwrap();
            black_box(&out);
        })
    });
    group.bench_function(BenchmarkId::new("p_reverse_mixture", v), |b| {
        b.iter(|| {
            p_reverse_mixture(kernel, t, black_box(x_t), black_box(&p0), &mut ws, &mut out)
                .unwrap();
            black_box(&out);
        })
    });
}

fn uniform(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/uniform");
    let mut inputs = Inputs::new(1);
    let betas = linear_betas(MIXTURE_STEPS, 0.01, 0.1);
    for v in MIXTURE_SIZES {
        let k = Uniform::new(v, &betas).unwrap();
        bench_rows(&mut g, &k, 1, 2, &mut inputs);
    }
    g.finish();
}

fn absorbing(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/absorbing");
    let mut inputs = Inputs::new(2);
    let betas: Vec<f64> = (1..=MIXTURE_STEPS)
        .map(|t| 1.0 / (MIXTURE_STEPS - t + 1) as f64)
        .collect();
    for v in MIXTURE_SIZES {
        // Mask in the middle of the vocabulary (never assumed last); observe x_t = mask.
        let mask = (v / 2) as u32;
        let k = Absorbing::new(v, mask, &betas).unwrap();
        bench_rows(&mut g, &k, mask, 1, &mut inputs);
    }
    g.finish();
}

fn marginal(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/marginal");
    let mut inputs = Inputs::new(3);
    let betas = linear_betas(MIXTURE_STEPS, 0.01, 0.1);
    for v in MIXTURE_SIZES {
        let pi = inputs.distribution(v, 1.0);
        let k = Marginal::new(pi, &betas).unwrap();
        bench_rows(&mut g, &k, 1, 2, &mut inputs);
    }
    g.finish();
}

fn mask_and_uniform(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/mask_and_uniform");
    let mut inputs = Inputs::new(4);
    for v in MIXTURE_SIZES {
        // K β_t + γ_t ≤ 1 with K = V − 1 ordinary tokens: replace mass 0.05 per step split
        // over the K tokens, mask probability γ_t rising from 0.01 to 0.1.
        let kk = (v - 1) as f64;
        let betas = vec![0.05 / kk; MIXTURE_STEPS];
        let gammas = linear_betas(MIXTURE_STEPS, 0.01, 0.1);
        let mask = (v / 2) as u32;
        let k = MaskAndUniform::new(v, mask, &betas, &gammas).unwrap();
        // Ordinary tokens on both sides (the mask is at V/2 ≥ 2).
        bench_rows(&mut g, &k, 1, 0, &mut inputs);
    }
    g.finish();
}

fn gaussian(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/discretized_gaussian");
    let mut inputs = Inputs::new(5);
    let betas = linear_betas(DENSE_STEPS, 0.02, 0.5);
    for v in DENSE_SIZES {
        // D3PM text's variant (grid stop V, full band) spreads mass at every V.
        let k = build("discretized_gaussian", v, || {
            DiscretizedGaussian::text(v, &betas).unwrap()
        });
        bench_rows(&mut g, &k, 2, 1, &mut inputs);
    }
    g.finish();
}

fn banded_uniform(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/banded_uniform");
    let mut inputs = Inputs::new(6);
    let betas = linear_betas(DENSE_STEPS, 0.02, 0.5);
    for v in DENSE_SIZES {
        let bands = (v - 1).min(16);
        let k = build("banded_uniform", v, || {
            BandedUniform::new(v, &betas, Some(bands)).unwrap()
        });
        bench_rows(&mut g, &k, 2, 1, &mut inputs);
    }
    g.finish();
}

fn dense(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/dense");
    let mut inputs = Inputs::new(7);
    for v in DENSE_SIZES {
        // Q_t = (1 − β_t) I + β_t M_t with M_t a random positive row-stochastic matrix.
        let betas = linear_betas(DENSE_STEPS, 0.02, 0.5);
        let steps: Vec<Array2<f64>> = betas
            .iter()
            .map(|&b| {
                let mut q = Array2::<f64>::zeros((v, v));
                for mut row in q.rows_mut() {
                    let m = inputs.distribution(v, 1.0);
                    row.iter_mut().zip(&m).for_each(|(r, &x)| *r = b * x);
                }
                q.diag_mut().mapv_inplace(|x| x + 1.0 - b);
                q
            })
            .collect();
        let prior = vec![1.0 / v as f64; v];
        let k = build("dense", v, || Dense::new(steps, &prior).unwrap());
        bench_rows(&mut g, &k, 2, 1, &mut inputs);
    }
    g.finish();
}

fn similarity_knn(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/similarity_knn");
    let mut inputs = Inputs::new(8);
    let betas = linear_betas(DENSE_STEPS, 0.02, 0.5);
    for v in DENSE_SIZES {
        // kNN (k = min(8, V − 1)) over random embeddings uniform in [0, 1)^8, bandwidth 0.5.
        let dim = 8;
        let emb = Array2::from_shape_fn((v, dim), |_| inputs.uniform());
        let k = build("similarity_knn", v, || {
            Similarity::from_embeddings_knn(emb.view(), 8.min(v - 1), 0.5, &betas).unwrap()
        });
        bench_rows(&mut g, &k, 2, 1, &mut inputs);
    }
    g.finish();
}

fn generator_uniform(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/matrix_exp_uniform");
    let mut inputs = Inputs::new(9);
    let tau = exponents_from_betas(&linear_betas(DENSE_STEPS, 0.02, 0.3)).unwrap();
    for v in DENSE_SIZES {
        // Symmetric generator: eigen route, O(V²) per row.
        let k = build("matrix_exp_uniform", v, || {
            MatrixExponentialKernel::uniform(v, &tau).unwrap()
        });
        bench_rows(&mut g, &k, 2, 1, &mut inputs);
    }
    g.finish();
}

fn generator_absorbing(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/matrix_exp_absorbing");
    let mut inputs = Inputs::new(10);
    let tau = exponents_from_betas(&linear_betas(DENSE_STEPS, 0.02, 0.3)).unwrap();
    for v in PADE_SIZES {
        // Non-symmetric generator: Padé route, dense storage.
        let mask = (v / 2) as u32;
        let k = build("matrix_exp_absorbing", v, || {
            MatrixExponentialKernel::absorbing(v, mask, &tau).unwrap()
        });
        bench_rows(&mut g, &k, mask, 1, &mut inputs);
    }
    g.finish();
}

/// Reference loops over one row of `V` f64, to read the posterior timings against: a
/// left-to-right `iter().sum()` (a serial dependency chain, since f64 addition is not
/// reassociated) and an element-wise product `out *= col` (vectorisable). Every
/// normalisation and every `Σ p` validation in the posterior functions is such a sum.
fn baseline(c: &mut Criterion) {
    let mut g = c.benchmark_group("posterior/baseline");
    let mut inputs = Inputs::new(11);
    for v in MIXTURE_SIZES {
        let a = inputs.distribution(v, 1.0);
        let col = inputs.distribution(v, 1.0);
        let mut out = a.clone();
        g.throughput(Throughput::Elements(v as u64));
        g.bench_function(BenchmarkId::new("f64_sum", v), |b| {
            b.iter(|| black_box(black_box(&a).iter().sum::<f64>()))
        });
        g.bench_function(BenchmarkId::new("f64_mul_assign", v), |b| {
            b.iter(|| {
                out.iter_mut()
                    .zip(black_box(&col).iter())
                    .for_each(|(o, c)| *o *= c);
                black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = uniform, absorbing, marginal, mask_and_uniform, gaussian, banded_uniform, dense,
        similarity_knn, generator_uniform, generator_absorbing, baseline
}
criterion_main!(benches);
