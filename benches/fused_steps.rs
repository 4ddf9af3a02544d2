//! Fused sampling steps over `[B, L, V]` logits (`discrete_diffusion::backend`), at the five
//! sizes of issue 3: `(16, 1024, 32768)`, `(8, 1024, 50257)`, `(64, 256, 4096)`,
//! `(256, 512, 4)` (DNA), `(256, 256, 25)` (protein).
//!
//! One group per size, `fused_steps/B×L×V`, with throughput `Elements(B·L·V)`; one benchmark
//! per entry of [`runners`] (`<runner>/<variant>`). Inputs are those of
//! `examples/perf_report.rs` and of the PyTorch scripts: logits `3·N(0, 1)` in `f32`, about
//! half of the positions masked (mask id `V − 1`). Each call is run once and checked to
//! succeed before it is timed.
//!
//! The big sizes hold half a billion logits (2 GiB): 10 samples, a short measurement time,
//! flat sampling. Runners marked `slow` (the scalar reference) are skipped at sizes above
//! [`SLOW_MAX_ELEMS`] unless `FUSED_BENCH_ALL=1` (one reference call there takes 5–15 s, so
//! 10 samples of each would take minutes); `FUSED_BENCH_SIZES=0,2` restricts the sizes.
//!
//! Runners: every fused step of `backend::steps` on the `CpuBackend` (tokens reset before each
//! call, `O(B·L)`), `Backend::summarize` on the `CpuBackend` and on the scalar
//! `ReferenceBackend` (greedy and `τ = 1`); adding one is one line in [`runners`].
//!
//! Run: `cargo bench --bench fused_steps` (≈ 1 min), `FUSED_BENCH_ALL=1 cargo bench --bench
//! fused_steps` (≈ 10 min), or a filter: `cargo bench --bench fused_steps -- 64x256x4096`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::steps::{
    DfmEulerStep, JumpRule, LladaStep, MdlmStep, Scorer, SeddAbsorbingStep, StepRng, ThresholdStep,
    dfm_euler_step, llada_step, mdlm_ancestral_step, sample_categorical,
    sedd_analytic_absorbing_step, threshold_step,
};
use discrete_diffusion::backend::{Backend, BatchRng, ReferenceBackend, RowSpec, RowSummary};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::schedule::{Kappa, Linear, LogLinear};
use ndarray::{Array2, Array3, Axis, s};
use rayon::prelude::*;

/// The five `(B, L, V)` sizes of issue 3.
const SIZES: [(usize, usize, usize); 5] = [
    (16, 1024, 32768),
    (8, 1024, 50257),
    (64, 256, 4096),
    (256, 512, 4),
    (256, 256, 25),
];
/// Slow runners are benched only up to this many elements by default.
const SLOW_MAX_ELEMS: usize = 100_000_000;

/// The inputs of one size (see the module docs).
struct Workload {
    logits: Array3<f32>,
    tokens: Array2<u32>,
    mask: u32,
    streams: Vec<u64>,
    seed: u64,
}

/// Output buffers (`O(B·L)`), reused across iterations.
struct Scratch {
    summaries: Array2<RowSummary>,
    tokens: Array2<u32>,
}

type RunFn = Box<dyn Fn(&Workload, &mut Scratch) -> discrete_diffusion::Result<()> + Sync>;

/// One benchmark function: `name/variant`, and whether it is too slow for the big sizes.
struct Runner {
    name: &'static str,
    variant: &'static str,
    slow: bool,
    run: RunFn,
}

/// What is benched. **One line per step or backend** (`step(name, variant, |w, o| …)` or
/// `backend_summarize(name, backend, τ, slow)`).
fn runners() -> Vec<Runner> {
    vec![
        step("cpu_categorical", "t1", |w, o| {
            let spec = RowSpec::default();
            sample_categorical(
                &CpuBackend::new(),
                w.logits.view(),
                None,
                &spec,
                &step_rng(w),
                o.tokens.view_mut(),
            )
            .map(|_| ())
        }),
        step("cpu_mdlm", "loglinear", |w, o| {
            let sched = LogLinear::new(1e-3)?;
            let p = MdlmStep {
                mask_id: w.mask,
                t: 0.5,
                s: 0.5 - 1.0 / 128.0,
            };
            mdlm_ancestral_step(
                &CpuBackend::new(),
                &sched,
                w.logits.view(),
                o.tokens.view_mut(),
                &p,
                &step_rng(w),
            )
            .map(|_| ())
        }),
        step("cpu_llada", "t1", |w, o| llada(w, o, 1.0)),
        step("cpu_llada", "greedy", |w, o| llada(w, o, 0.0)),
        step("cpu_fast_dllm", "greedy", |w, o| {
            let p = ThresholdStep {
                mask_id: w.mask,
                temperature: 0.0,
                threshold: 0.9,
                exclude_mask: false,
            };
            threshold_step(
                &CpuBackend::new(),
                w.logits.view(),
                o.tokens.view_mut(),
                None,
                &p,
                &step_rng(w),
            )
            .map(|_| ())
        }),
        step("cpu_dfm", "exact_jump", |w, o| {
            let kappa = Kappa::convex(Linear::new());
            let p = DfmEulerStep {
                mask_id: w.mask,
                s: 0.5,
                s_next: 0.5 + 1.0 / 128.0,
                rule: JumpRule::Exponential,
                final_step: false,
                exclude_mask: false,
            };
            dfm_euler_step(
                &CpuBackend::new(),
                &kappa,
                w.logits.view(),
                o.tokens.view_mut(),
                &p,
                &step_rng(w),
            )
            .map(|_| ())
        }),
        step("cpu_sedd", "analytic", |w, o| {
            let sched = LogLinear::new(1e-3)?;
            let p = SeddAbsorbingStep {
                mask_id: w.mask,
                t: 0.5,
                s: 0.5 - 1.0 / 128.0,
            };
            sedd_analytic_absorbing_step(
                &CpuBackend::new(),
                &sched,
                w.logits.view(),
                o.tokens.view_mut(),
                &p,
                &step_rng(w),
            )
            .map(|_| ())
        }),
        backend_summarize("cpu_summarize", CpuBackend::new(), 0.0, false),
        backend_summarize("cpu_summarize", CpuBackend::new(), 1.0, false),
        backend_summarize("reference_summarize", ReferenceBackend, 0.0, true),
        backend_summarize("reference_summarize", ReferenceBackend, 1.0, true),
    ]
}

/// A fused step on the `CpuBackend`; the tokens are reset first so that every iteration does
/// the same work.
fn step(
    name: &'static str,
    variant: &'static str,
    run: impl Fn(&Workload, &mut Scratch) -> discrete_diffusion::Result<()> + Sync + 'static,
) -> Runner {
    Runner {
        name,
        variant,
        slow: false,
        run: Box::new(move |w, o| {
            o.tokens.assign(&w.tokens);
            run(w, o)
        }),
    }
}

fn step_rng(w: &Workload) -> StepRng<'_> {
    StepRng {
        seed: w.seed,
        streams: &w.streams,
        step: 0,
    }
}

/// LLaDA's low-confidence step at temperature `τ`, `k = L/64` per sequence.
fn llada(w: &Workload, o: &mut Scratch, temperature: f64) -> discrete_diffusion::Result<()> {
    let (b, l) = w.tokens.dim();
    let k = vec![(l / 64).max(1); b];
    let p = LladaStep {
        mask_id: w.mask,
        temperature,
        scorer: Scorer::Confidence,
        exclude_mask: false,
    };
    llada_step(
        &CpuBackend::new(),
        w.logits.view(),
        o.tokens.view_mut(),
        None,
        &k,
        &p,
        &step_rng(w),
    )
    .map(|_| ())
}

/// `Backend::summarize` over every position at temperature `τ` (`variant` "greedy" for 0,
/// "t1" for 1), the batch split over the rayon pool one sequence per task (draws are keyed
/// by stream, so the split changes nothing).
fn backend_summarize<B: Backend + 'static>(
    name: &'static str,
    backend: B,
    temperature: f64,
    slow: bool,
) -> Runner {
    let spec = RowSpec {
        temperature,
        ..RowSpec::default()
    };
    Runner {
        name,
        variant: if temperature == 0.0 { "greedy" } else { "t1" },
        slow,
        run: Box::new(move |w, o| {
            let outs: Vec<_> = o.summaries.outer_iter_mut().enumerate().collect();
            outs.into_par_iter().try_for_each(|(bi, out)| {
                let rng = BatchRng {
                    seed: w.seed,
                    streams: &w.streams[bi..bi + 1],
                    step: 0,
                    purpose: Purpose::CATEGORICAL,
                };
                backend.summarize(
                    w.logits.slice(s![bi..bi + 1, .., ..]),
                    None,
                    &spec,
                    &rng,
                    out.insert_axis(Axis(0)),
                )
            })
        }),
    }
}

/// Logits `3·N(0, 1)` (row `r` from its own Philox stream, filled in parallel) and tokens
/// with about half of the positions masked.
fn workload(b: usize, l: usize, v: usize) -> Workload {
    let key = RngKey::for_stream(0x9E7F, 0);
    let mut logits = Array3::<f32>::zeros((b, l, v));
    logits
        .as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(v)
        .enumerate()
        .for_each(|(row, out)| {
            let mut rng = CounterRng::new(key, Purpose::USER, 0, row as u32);
            for pair in out.chunks_mut(2) {
                let (u1, u2) = (rng.uniform_open(), rng.uniform());
                let r = 3.0 * (-2.0 * u1.ln()).sqrt();
                let (sn, cs) = (std::f64::consts::TAU * u2).sin_cos();
                pair[0] = (r * cs) as f32;
                if let Some(x) = pair.get_mut(1) {
                    *x = (r * sn) as f32;
                }
            }
        });
    let mask = (v - 1) as u32;
    let mut rng = CounterRng::new(key, Purpose::USER, 1, 0);
    let tokens = Array2::from_shape_fn((b, l), |_| {
        if rng.uniform() < 0.5 {
            mask
        } else {
            (rng.uniform() * (v - 1) as f64) as u32
        }
    });
    Workload {
        logits,
        tokens,
        mask,
        streams: (0..b as u64).collect(),
        seed: 2024,
    }
}

fn fused_steps(c: &mut Criterion) {
    let all = std::env::var("FUSED_BENCH_ALL").is_ok_and(|v| v == "1");
    let sizes: Vec<usize> = std::env::var("FUSED_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| (0..SIZES.len()).collect());
    let runners = runners();
    for &si in sizes.iter().filter(|&&si| si < SIZES.len()) {
        let (b, l, v) = SIZES[si];
        let n = b * l * v;
        let active: Vec<&Runner> = runners
            .iter()
            .filter(|r| all || !r.slow || n <= SLOW_MAX_ELEMS)
            .collect();
        if active.is_empty() {
            eprintln!(
                "fused_steps/{b}x{l}x{v}: slow runners skipped (FUSED_BENCH_ALL=1 runs them)"
            );
            continue;
        }
        let w = workload(b, l, v);
        let mut scratch = Scratch {
            summaries: Array2::from_elem((b, l), RowSummary::default()),
            tokens: w.tokens.clone(),
        };
        let mut g = c.benchmark_group(format!("fused_steps/{b}x{l}x{v}"));
        g.throughput(Throughput::Elements(n as u64));
        if n > SLOW_MAX_ELEMS {
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_secs(2))
                .sampling_mode(SamplingMode::Flat);
        } else {
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1));
        }
        for r in active {
            (r.run)(&w, &mut scratch).expect("the step runs on the bench inputs");
            g.bench_function(BenchmarkId::new(r.name, r.variant), |bch| {
                bch.iter(|| {
                    (r.run)(black_box(&w), &mut scratch).expect("checked above");
                    black_box(&scratch.summaries);
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = fused_steps
}
criterion_main!(benches);
