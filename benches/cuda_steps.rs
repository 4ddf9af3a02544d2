//! Fused sampler steps on the CUDA backend (`--features cuda`), on device-resident logits,
//! reported as the read bandwidth `GB/s = (rows read · V · 4 bytes) / time`.
//!
//! Sizes `(B, L, V)`: `(16, 1024, 32768)`, `(8, 1024, 50257)`, `(64, 1024, 131072)` (34 GB of
//! `f32` logits: an 80 GB GPU). Logits `3·N(0, 1)`: one sequence is generated on the host
//! and replicated `B` times on the device (streams differ, so the draws do too); about half
//! of the positions are masked (mask id `V − 1`). Each step runs once (checked to succeed),
//! then `REPS` timed calls; the median is reported. Every call synchronises.
//!
//! Without a device it prints why and exits 0. `cargo bench --bench cuda_steps --features
//! cuda -- --test` runs one small size once (a smoke test); `CUDA_BENCH_SIZES=0,1`
//! restricts the sizes; `DD_CUDA_MODULE=file.ptx` loads prebuilt PTX instead of NVRTC;
//! `CUDA_BENCH_OUT=file` also writes one JSON object per line.

use std::io::Write;
use std::time::Instant;

use discrete_diffusion::backend::cuda::{BoundLogits, CudaBackend, DeviceLogits, KernelModule};
use discrete_diffusion::backend::steps::{
    DfmEulerStep, JumpRule, LladaStep, MdlmStep, Scorer, StepRng, ThresholdStep, dfm_euler_step,
    llada_step, mdlm_ancestral_step, sample_categorical, threshold_step,
};
use discrete_diffusion::backend::{Backend, BatchRng, RowSpec, RowSummary};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::schedule::{Kappa, Linear, LogLinear};
use ndarray::{Array2, ArrayView3};
use rayon::prelude::*;

const SIZES: [(usize, usize, usize); 3] = [(16, 1024, 32768), (8, 1024, 50257), (64, 1024, 131072)];
const REPS: usize = 5;

fn backend() -> discrete_diffusion::Result<CudaBackend> {
    match std::env::var("DD_CUDA_MODULE") {
        Ok(path) => {
            let ptx = std::fs::read_to_string(&path).map_err(|e| {
                discrete_diffusion::Error::invalid("DD_CUDA_MODULE", format!("{path}: {e}"))
            })?;
            CudaBackend::with_module(0, KernelModule::Ptx(ptx))
        }
        Err(_) => CudaBackend::new(0),
    }
}

/// One sequence `[L, V]` of `3·N(0,1)` logits, rows generated in parallel.
fn sequence(l: usize, v: usize) -> Vec<f32> {
    let mut x = vec![0f32; l * v];
    x.par_chunks_mut(v).enumerate().for_each(|(i, row)| {
        let mut g = CounterRng::new(
            RngKey::for_stream(0xBE_4C_11, i as u64),
            Purpose::USER,
            0,
            0,
        );
        for r in row.iter_mut() {
            let u1 = g.uniform_open();
            let u2 = g.uniform();
            *r = (3.0 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
        }
    });
    x
}

/// `B` copies of one sequence in device memory.
fn device_logits(gpu: &CudaBackend, b: usize, l: usize, v: usize) -> DeviceLogits {
    let seq = sequence(l, v);
    let st = gpu.stream();
    let one = st.clone_htod(&seq).expect("upload");
    let mut all = st.alloc_zeros::<f32>(b * l * v).expect("device memory");
    for k in 0..b {
        let mut dst = all.slice_mut(k * l * v..(k + 1) * l * v);
        st.memcpy_dtod(&one, &mut dst).expect("replicate");
    }
    st.synchronize().expect("sync");
    DeviceLogits::from_f32(all, (b, l, v)).expect("shape")
}

type Run<'a> = Box<dyn Fn(&mut Array2<u32>) -> usize + 'a>;

/// The timed runners: name, and a closure returning the number of rows it read.
fn runners<'a>(
    bound: &'a BoundLogits<'a>,
    x: ArrayView3<'static, f32>,
    mask: u32,
    rng: StepRng<'a>,
) -> Vec<(&'static str, Run<'a>)> {
    let (b, l, _) = x.dim();
    let summarize = move |temperature: f64| -> Run<'a> {
        Box::new(move |_t: &mut Array2<u32>| {
            let spec = RowSpec {
                temperature,
                ..RowSpec::default()
            };
            let batch = BatchRng {
                seed: rng.seed,
                streams: rng.streams,
                step: rng.step,
                purpose: Purpose::CATEGORICAL,
            };
            let mut out = Array2::from_elem((b, l), RowSummary::default());
            bound
                .summarize(x, None, &spec, &batch, out.view_mut())
                .unwrap();
            b * l
        })
    };
    let read =
        |o: discrete_diffusion::backend::steps::StepOutput| o.read.iter().filter(|&&r| r).count();
    vec![
        ("summarize/greedy", summarize(0.0)),
        ("summarize/t1", summarize(1.0)),
        (
            "categorical/t1",
            Box::new(move |t: &mut Array2<u32>| {
                read(
                    sample_categorical(bound, x, None, &RowSpec::default(), &rng, t.view_mut())
                        .unwrap(),
                )
            }),
        ),
        (
            "mdlm/loglinear",
            Box::new(move |t: &mut Array2<u32>| {
                let sched = LogLinear::new(1e-3).unwrap();
                let p = MdlmStep {
                    mask_id: mask,
                    t: 0.5,
                    s: 0.5 - 1.0 / 128.0,
                };
                read(mdlm_ancestral_step(bound, &sched, x, t.view_mut(), &p, &rng).unwrap())
            }),
        ),
        (
            "llada/t1",
            Box::new(move |t: &mut Array2<u32>| llada(bound, x, t, mask, &rng, 1.0)),
        ),
        (
            "llada/greedy",
            Box::new(move |t: &mut Array2<u32>| llada(bound, x, t, mask, &rng, 0.0)),
        ),
        (
            "fast_dllm/greedy",
            Box::new(move |t: &mut Array2<u32>| {
                let p = ThresholdStep {
                    mask_id: mask,
                    temperature: 0.0,
                    threshold: 0.9,
                    exclude_mask: false,
                };
                read(threshold_step(bound, x, t.view_mut(), None, &p, &rng).unwrap())
            }),
        ),
        (
            "dfm/exact_jump",
            Box::new(move |t: &mut Array2<u32>| {
                let kappa = Kappa::convex(Linear::new());
                let p = DfmEulerStep {
                    mask_id: mask,
                    s: 0.5,
                    s_next: 0.5 + 1.0 / 128.0,
                    rule: JumpRule::Exponential,
                    final_step: false,
                    exclude_mask: false,
                };
                read(dfm_euler_step(bound, &kappa, x, t.view_mut(), &p, &rng).unwrap())
            }),
        ),
    ]
}

fn llada(
    bound: &BoundLogits<'_>,
    x: ArrayView3<'static, f32>,
    t: &mut Array2<u32>,
    mask: u32,
    rng: &StepRng<'_>,
    temperature: f64,
) -> usize {
    let (b, l) = t.dim();
    let k = vec![(l / 64).max(1); b];
    let p = LladaStep {
        mask_id: mask,
        temperature,
        scorer: Scorer::Confidence,
        exclude_mask: false,
    };
    let o = llada_step(bound, x, t.view_mut(), None, &k, &p, rng).unwrap();
    o.read.iter().filter(|&&r| r).count()
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let gpu = match backend() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cuda_steps: skipping, no CUDA device available ({e})");
            return;
        }
    };
    let sizes: Vec<(usize, usize, usize)> = if smoke {
        vec![(2, 64, 4096)]
    } else {
        match std::env::var("CUDA_BENCH_SIZES") {
            Ok(s) => s
                .split(',')
                .filter_map(|k| k.trim().parse::<usize>().ok())
                .filter_map(|k| SIZES.get(k).copied())
                .collect(),
            Err(_) => SIZES.to_vec(),
        }
    };
    let mut json = std::env::var("CUDA_BENCH_OUT")
        .ok()
        .map(|p| std::fs::File::create(p).expect("CUDA_BENCH_OUT"));
    println!(
        "{:<20} {:>18} {:>10} {:>12} {:>10}",
        "step", "B×L×V", "rows read", "median ms", "GB/s"
    );
    for (b, l, v) in sizes {
        let dev = device_logits(&gpu, b, l, v);
        let bound = gpu.bind(&dev);
        let x = bound.logits().unwrap();
        let mask = (v - 1) as u32;
        let tokens = Array2::from_shape_fn((b, l), |(bi, i)| {
            if (bi * 7 + i * 3) % 2 == 0 {
                mask
            } else {
                (i % (v - 1)) as u32
            }
        });
        let streams: Vec<u64> = (0..b as u64).collect();
        let rng = StepRng {
            seed: 1,
            streams: &streams,
            step: 0,
        };
        for (name, run) in runners(&bound, x, mask, rng) {
            let mut t = tokens.clone();
            let rows = run(&mut t); // warm-up, checked by unwrap inside
            let reps = if smoke { 1 } else { REPS };
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps {
                t.assign(&tokens);
                let start = Instant::now();
                run(&mut t);
                times.push(start.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            let gbs = (rows * v * 4) as f64 / med / 1e9;
            let size = format!("{b}×{l}×{v}");
            println!(
                "{name:<20} {size:>18} {rows:>10} {:>12.3} {gbs:>10.1}",
                med * 1e3
            );
            if let Some(f) = json.as_mut() {
                writeln!(
                    f,
                    "{{\"step\":\"{name}\",\"b\":{b},\"l\":{l},\"v\":{v},\"rows_read\":{rows},\"median_s\":{med:e},\"gb_per_s\":{gbs:.3}}}"
                )
                .unwrap();
            }
        }
    }
}
