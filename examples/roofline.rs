//! The machine's roofline for the fused sampling steps: how fast it can stream `f32` logits
//! from memory and how fast it can exponentiate them.
//!
//! A fused step over `[B, L, V]` logits reads every element once and (for anything that
//! needs a probability) takes one `exp` of it, so its best possible rate in elements per
//! second is `min(read bandwidth / 4 B, exp throughput)`. This example measures both on
//! the machine it runs on:
//!
//! * **read**: `Σ x` over a large `f32` array (default 1 GiB, far past the last-level
//!   cache), 16 independent `f32` lanes per chunk so that the adds are not the limit, with
//!   1 thread and with every thread (rayon, one contiguous slice per task);
//! * **exp**: `Σ exp(x)` over the same streamed array, with each exponential kernel of
//!   [`EXP_KERNELS`]: the scalar `f64::exp` of the standard library (what a plain loop
//!   gets), and a branch-free polynomial `f32` exp (Cody–Waite reduction, Cephes' degree-6
//!   `expf` polynomial) that the compiler vectorises at the default x86-64 target (SSE2, 4
//!   lanes; its accuracy is checked against `f64::exp` before it is timed), and the crate's
//!   own `backend::cpu::exp::sum_exp_below` (the backend's exp on AVX2/AVX-512, chosen at
//!   run time): the fastest of them is the machine's exp throughput.
//!
//! Each figure is the best and the median of several repetitions (best = the roofline: the
//! rate this machine demonstrably reaches). The load average before and after is recorded:
//! the machine may be shared. Results go to `target/perf/roofline.json` (or `$PERF_DIR`)
//! and a table is printed.
//!
//! Run: `cargo run --release --example roofline`. Environment: `ROOFLINE_MIB` (array size,
//! default 1024), `ROOFLINE_REPS` (default 5), `THREADS` (an extra thread count to measure
//! besides 1 and all).

#[path = "perf_common/mod.rs"]
mod perf_common;
use perf_common::{cpu_model, env_or, loadavg, utc_now};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

/// Elements per rayon task (256 KiB of `f32`).
const TASK: usize = 1 << 16;
/// Independent accumulator lanes.
const LANES: usize = 16;

/// An exponential kernel: `Σ exp(x)` over a slice, accumulated in `f64` per slice.
type ExpKernel = fn(&[f32]) -> f64;

/// The exp kernels measured, by name.
const EXP_KERNELS: &[(&str, &str, ExpKernel)] = &[
    (
        "exp_f64_scalar",
        "std f64::exp per element (libm, scalar)",
        sum_exp_f64,
    ),
    (
        "exp_f32_poly",
        "polynomial f32 exp, auto-vectorised (SSE2 baseline, 4 lanes)",
        sum_exp_poly,
    ),
    (
        "exp_crate",
        "the crate's `sum_exp_below`: the backend's exp (fused multiply-adds), AVX2/AVX-512 chosen at run time",
        sum_exp_crate,
    ),
];

/// `Σ exp(x − 6)` with the crate's vectorised exp (the data lie in `[−6, 6)`).
fn sum_exp_crate(xs: &[f32]) -> f64 {
    discrete_diffusion::backend::cpu::exp::sum_exp_below(xs, 6.0).expect("data below 6")
}

fn main() {
    let mib: usize = env_or("ROOFLINE_MIB", 1024);
    let reps: usize = env_or::<usize>("ROOFLINE_REPS", 5).max(1);
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1, ncpu];
    if let Some(t) = std::env::var("THREADS").ok().and_then(|s| s.parse().ok()) {
        thread_counts.push(t);
    }
    thread_counts.sort_unstable();
    thread_counts.dedup();

    let n = mib * (1 << 20) / 4;
    let load_before = loadavg();
    let t0 = Instant::now();
    let data = make_data(n);
    eprintln!(
        "roofline: {} M f32 ({mib} MiB) filled in {:.1} s; {reps} repetitions; threads {thread_counts:?}",
        n >> 20,
        t0.elapsed().as_secs_f64()
    );
    let max_err = check_poly_exp();
    eprintln!("polynomial exp: max relative error {max_err:.2e} over [-87, 88]");
    assert!(max_err < 5e-7, "polynomial exp is inaccurate: {max_err}");

    let mut rows: Vec<Measurement> = Vec::new();
    for &threads in &thread_counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("rayon pool");
        rows.push(measure(
            &pool,
            &data,
            reps,
            "read",
            "sum_f32",
            "Σ x, 16 f32 lanes",
            threads,
            sum_f32,
        ));
        for &(name, what, k) in EXP_KERNELS {
            rows.push(measure(&pool, &data, reps, "exp", name, what, threads, k));
        }
    }
    let load_after = loadavg();

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| kind | kernel | threads | best G elem/s | median G elem/s | best GB/s (f32 read) |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|");
    for m in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.3} | {:.3} | {:.1} |",
            m.kind,
            m.name,
            m.threads,
            m.best / 1e9,
            m.median / 1e9,
            m.best * 4.0 / 1e9
        );
    }
    println!("{table}");
    println!(
        "load average before {:?}, after {:?}",
        load_before, load_after
    );

    let json = serde_json::json!({
        "date_utc": utc_now(),
        "cpu_model": cpu_model(),
        "ncpu": ncpu,
        "array_mib": mib,
        "reps": reps,
        "poly_exp_max_rel_err": max_err,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "measurements": rows.iter().map(|m| serde_json::json!({
            "kind": m.kind,
            "name": m.name,
            "what": m.what,
            "threads": m.threads,
            "best_elems_per_s": m.best,
            "median_elems_per_s": m.median,
            "best_read_GBps": m.best * 4.0 / 1e9,
            "times_s": m.times,
        })).collect::<Vec<_>>(),
    });
    let dir = std::env::var("PERF_DIR").unwrap_or_else(|_| "target/perf".into());
    std::fs::create_dir_all(&dir).expect("create the output folder");
    let path = format!("{dir}/roofline.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).expect("json") + "\n",
    )
    .expect("write roofline.json");
    eprintln!("wrote {path}");
}

/// One timed kernel.
struct Measurement {
    kind: &'static str,
    name: &'static str,
    what: &'static str,
    threads: usize,
    /// Elements per second, best repetition.
    best: f64,
    /// Elements per second, median repetition.
    median: f64,
    times: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
fn measure(
    pool: &rayon::ThreadPool,
    data: &[f32],
    reps: usize,
    kind: &'static str,
    name: &'static str,
    what: &'static str,
    threads: usize,
    kernel: fn(&[f32]) -> f64,
) -> Measurement {
    let run = || -> f64 {
        if threads == 1 {
            kernel(data)
        } else {
            pool.install(|| data.par_chunks(TASK).map(kernel).sum())
        }
    };
    black_box(run()); // warm-up: page in, spin up the pool
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            black_box(run());
            t.elapsed().as_secs_f64()
        })
        .collect();
    let n = data.len() as f64;
    let raw = times.clone();
    times.sort_by(f64::total_cmp);
    let m = Measurement {
        kind,
        name,
        what,
        threads,
        best: n / times[0],
        median: n / times[times.len() / 2],
        times: raw,
    };
    eprintln!(
        "  {kind:4} {name:16} threads {threads}: best {:.3} G elem/s, median {:.3}",
        m.best / 1e9,
        m.median / 1e9
    );
    m
}

/// `Σ x` with [`LANES`] independent `f32` accumulators (vectorised), reduced in `f64`.
fn sum_f32(xs: &[f32]) -> f64 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&x| x as f64).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
}

/// `Σ exp(x)` with the standard library's scalar `f64::exp`.
fn sum_exp_f64(xs: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = xs.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|&x| (x as f64).exp()).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += (x as f64).exp();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `Σ exp(x)` with [`exp_poly`] over [`LANES`] lanes.
fn sum_exp_poly(xs: &[f32]) -> f64 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&x| exp_poly(x) as f64).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += exp_poly(x);
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
}

/// Branch-free `exp(x)` in `f32`: `x = n ln 2 + r`, `|r| ≤ ln 2 / 2` (Cody–Waite, two-part
/// `ln 2`), `e^r` by Cephes' `expf` polynomial, `2^n` assembled in the exponent bits.
/// Inputs are clamped to `[-87, 88]` (no subnormals, no overflow). Relative error ≲ 2 ulp.
#[inline(always)]
fn exp_poly(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to the nearest integer in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * z + r + 1.0;
    let ni = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    er * f32::from_bits(((ni + 127) as u32) << 23)
}

/// Maximum relative error of [`exp_poly`] against `f64::exp` on a grid over `[-87, 88]`.
fn check_poly_exp() -> f64 {
    (0..=1_000_000)
        .map(|k| -87.0 + 175.0 * k as f64 / 1e6)
        .map(|x| {
            let x = x as f32;
            let want = (x as f64).exp();
            ((exp_poly(x) as f64 - want) / want).abs()
        })
        .fold(0.0, f64::max)
}

/// `n` values `3·N(0,1)`-like in `[-6, 6)`, filled in parallel (a cheap integer hash: the
/// kernels' speed does not depend on the distribution, only on the values staying finite).
fn make_data(n: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    v.par_chunks_mut(TASK).enumerate().for_each(|(c, chunk)| {
        let mut s = (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for x in chunk {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *x = ((s >> 40) as f32 / (1u64 << 24) as f32) * 12.0 - 6.0;
        }
    });
    v
}
