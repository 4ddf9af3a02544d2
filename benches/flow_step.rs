//! One step of the discrete-flow-matching solvers (`sample::flow`) at `V ∈ {4, 25, 32768}`
//! (DNA, protein, a text vocabulary).
//!
//! The denoiser is a fixed table of logits `3·N(0, 1)` copied into the solver's buffer
//! (the cost of a model call is not measured beyond that copy). Runners per size:
//! the masked path without corrector (the backend's fused `dfm_euler_step`), the masked
//! path with the remasking corrector `c = 0.5` and the uniform-source path (both: `X_1`
//! for every position by the backend's `sample_categorical`, then an `O(1)` jump per
//! position), and the metric-induced path at the small sizes (`O(V)` per position, positions
//! in parallel on rayon's pool), without and with the kinetic corrector `c = 0.5`. Half of
//! the positions are masked; the step is the middle one of a 16-step grid.
//!
//! Run: `cargo bench --bench flow_step` (check: `cargo bench --bench flow_step -- --test`).

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use discrete_diffusion::Result;
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::kernel::path::{MetricBeta, MetricPath, MixturePath, SourceLaw};
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::flow::{CorrectorSchedule, MetricSolver, MixtureSolver};
use discrete_diffusion::schedule::Kappa;
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3};

const SIZES: [(usize, usize, usize); 3] = [(64, 512, 4), (64, 256, 25), (4, 256, 32768)];

/// A denoiser returning a fixed logits table.
struct Table(Array3<f32>);

impl Denoiser for Table {
    fn vocab_size(&self) -> usize {
        self.0.dim().2
    }
    fn logits(
        &self,
        _tokens: ArrayView2<'_, u32>,
        _times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        out.assign(&self.0);
        Ok(())
    }
}

fn normal(r: &mut CounterRng) -> f64 {
    let (u, v) = (r.uniform_open(), r.uniform());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn bench(c: &mut Criterion) {
    let backend = CpuBackend::new();
    let grid: Vec<f64> = (0..=16).map(|k| k as f64 / 16.0).collect();
    let k = 8;
    for (b, l, v) in SIZES {
        let mut r = CounterRng::new(RngKey::new(1), Purpose::USER, 0, 0);
        let table = Table(Array3::from_shape_simple_fn((b, l, v), || {
            (3.0 * normal(&mut r)) as f32
        }));
        let mask = (v - 1) as u32;
        let tokens = Array2::from_shape_fn((b, l), |(i, j)| {
            if (i + j) % 2 == 0 {
                mask
            } else {
                (j % (v - 1)) as u32
            }
        });
        let streams: Vec<u64> = (0..b as u64).collect();
        let mut group = c.benchmark_group(format!("flow_step/{b}x{l}x{v}"));
        group.throughput(Throughput::Elements((b * l * v) as u64));
        if v > 1000 {
            group.sample_size(10);
        }
        let masked = MixturePath::new(Kappa::cond_ot(), SourceLaw::Mask(mask), v).unwrap();
        let uniform = MixturePath::new(Kappa::cond_ot(), SourceLaw::Uniform, v).unwrap();
        let solvers = [
            (
                "masked_fused",
                MixtureSolver::new(masked.clone(), grid.clone()).unwrap(),
            ),
            (
                "masked_corrector",
                MixtureSolver::new(masked, grid.clone())
                    .unwrap()
                    .with_div_free(0.5)
                    .unwrap(),
            ),
            (
                "uniform",
                MixtureSolver::new(uniform, grid.clone()).unwrap(),
            ),
        ];
        let mut logits = Array3::<f32>::zeros((b, l, v));
        for (name, solver) in &solvers {
            solver
                .step(
                    k,
                    &table,
                    &backend,
                    tokens.clone().view_mut(),
                    &mut logits,
                    5,
                    &streams,
                )
                .unwrap();
            group.bench_function(BenchmarkId::new(*name, v), |bch| {
                bch.iter_batched_ref(
                    || tokens.clone(),
                    |t| {
                        black_box(
                            solver
                                .step(k, &table, &backend, t.view_mut(), &mut logits, 5, &streams)
                                .unwrap(),
                        )
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        if v <= 64 {
            let emb = Array2::from_shape_fn((v, 2), |(x, j)| {
                if j == 0 {
                    x as f64
                } else {
                    ((x * 7) % v) as f64
                }
            });
            let path = MetricPath::from_embeddings(emb.view(), MetricBeta::new(3.0, 1.0).unwrap())
                .unwrap();
            let plain = MetricSolver::new(path, grid.clone()).unwrap();
            let corrected = plain
                .clone()
                .with_corrector(CorrectorSchedule::constant(0.5).unwrap());
            for (name, solver) in [("metric", plain), ("metric_corrector", corrected)] {
                solver
                    .step(
                        k,
                        &table,
                        &backend,
                        tokens.clone().view_mut(),
                        &mut logits,
                        5,
                        &streams,
                    )
                    .unwrap();
                group.bench_function(BenchmarkId::new(name, v), |bch| {
                    bch.iter_batched_ref(
                        || tokens.clone(),
                        |t| {
                            black_box(
                                solver
                                    .step(
                                        k,
                                        &table,
                                        &backend,
                                        t.view_mut(),
                                        &mut logits,
                                        5,
                                        &streams,
                                    )
                                    .unwrap(),
                            )
                        },
                        BatchSize::LargeInput,
                    )
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
