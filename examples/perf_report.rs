//! Regenerates `docs/performance.md`: the crate's fused sampling steps against eager
//! PyTorch and against this machine's roofline, at the five `(B, L, V)` sizes of issue 3.
//!
//! ```sh
//! scripts/bench_pytorch.sh                       # PyTorch reference → target/perf/pytorch.jsonl
//! cargo run --release --example roofline         # read bandwidth, exp → target/perf/roofline.json
//! cargo run --release --example perf_report      # crate timings (in-process) → docs/performance.md
//! ```
//!
//! The crate's steps are timed here, in-process: the median of `PERF_REPS` (default 9)
//! repetitions after one warm-up call, a repetition being `k` back-to-back calls (`k` chosen
//! so that a repetition lasts ≥ 0.1 s, as in the PyTorch harness), the repetitions of the
//! steps of one size interleaved (see [`time_interleaved`]), inside a rayon pool of
//! `THREADS` (default 2) threads — the thread count the PyTorch figures are read at. The
//! steps measured are listed in [`crate_steps`]; each names the PyTorch variants it is
//! compared with: the fused steps of `backend::steps` on the `CpuBackend`.
//!
//! Environment: `THREADS` (2), `PERF_REPS` (9), `PERF_SIZES` (size indices, default
//! `0,1,2,3,4`), `PERF_DIR` (default `target/perf` under the crate root), `PERF_DOC`
//! (default `docs/performance.md` under the crate root). The crate's raw timings are also
//! written to `$PERF_DIR/crate.jsonl`.

#[path = "perf_common/mod.rs"]
mod perf_common;
use perf_common::{cpu_model, env_or, loadavg, utc_now};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::cpu::exp::sum_exp_below;
use discrete_diffusion::backend::steps::{
    DfmEulerStep, JumpRule, LladaStep, MdlmStep, Scorer, SeddAbsorbingStep, StepRng, ThresholdStep,
    dfm_euler_step, llada_step, mdlm_ancestral_step, sample_categorical,
    sedd_analytic_absorbing_step, threshold_step,
};
use discrete_diffusion::backend::{RowSpec, RowSummary};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::schedule::{Kappa, Linear, LogLinear};
use ndarray::{Array2, Array3};
use rayon::prelude::*;
use serde_json::Value;

/// The five `(B, L, V)` sizes of issue 3 (index = the PyTorch scripts' size index).
const SIZES: [(usize, usize, usize); 5] = [
    (16, 1024, 32768),
    (8, 1024, 50257),
    (64, 256, 4096),
    (256, 512, 4),
    (256, 256, 25),
];
/// A repetition lasts at least this long (fast calls are batched).
const MIN_REP_S: f64 = 0.1;

// ------------------------------------------------------------------------------------------
// What is measured
// ------------------------------------------------------------------------------------------

/// The inputs of one size, built once, outside the timed region: the same shapes and
/// statistics as the PyTorch harness (`common.make_logits_and_state`): logits `3·N(0, 1)`,
/// about half of the positions masked (mask id `V − 1`), the others a random non-mask token.
/// Some fields are read only by the real steps' runners.
#[allow(dead_code)]
struct Workload {
    b: usize,
    l: usize,
    v: usize,
    /// Model logits `[B, L, V]`.
    logits: Array3<f32>,
    /// Current tokens `[B, L]`.
    tokens: Array2<u32>,
    /// `tokens == mask`.
    masked: Array2<bool>,
    /// The mask id (`V − 1`).
    mask: u32,
    /// `max` of the logits (the upper bound of [`exp_pass`]).
    max: f32,
    /// One random stream per sequence.
    streams: Vec<u64>,
    /// The seed of every step's randomness.
    seed: u64,
    /// Diffusion time of the step (`t`, and `s = t − dt` for the two-time steps).
    t: f64,
    /// Step size (`1/128`, as in the PyTorch scripts).
    dt: f64,
    /// Tokens unmasked per sequence by the top-k steps (`L / 64`, as LLaDA's script).
    k_per_row: usize,
}

/// Output buffers a step writes (`O(B·L)`), reused across repetitions.
#[allow(dead_code)]
struct Scratch {
    summaries: Array2<RowSummary>,
    tokens: Array2<u32>,
    /// Rows of logits the last call actually read (reported by the step).
    rows_read: Option<usize>,
}

/// One call of a step over a whole workload.
type RunFn = Box<dyn Fn(&Workload, &mut Scratch) -> discrete_diffusion::Result<()> + Sync>;

/// Which rows a runner reads (for the fraction of the roofline).
#[derive(Clone, Copy)]
#[allow(dead_code)]
enum Rows {
    /// Every position's row of `V` logits.
    All,
    /// Only the masked positions' rows (carry-over: unmasked positions keep their token).
    Masked,
}

/// A measurable piece of crate code. Runners with the same `name` are timed once per size.
struct Runner {
    /// Unique id (a crate.jsonl key).
    name: &'static str,
    /// What the timing is, for the report.
    what: &'static str,
    rows: Rows,
    run: RunFn,
}

/// One row of the comparison: a step of issue 3, the crate code that implements it and the
/// PyTorch variants (`(bench, variant)` of `target/perf/pytorch.jsonl`, or
/// `("compiled", step)` of `target/perf/pytorch_compiled.jsonl`) it is compared with.
struct CrateStep {
    id: &'static str,
    title: &'static str,
    /// `true` for greedy steps (target ≥ 3× PyTorch), `false` for stochastic (≥ 20×).
    greedy: bool,
    torch: &'static [(&'static str, &'static str)],
    runner: Runner,
}

/// The steps of the report. **Adding a step is one line here** (a runner that calls it, e.g.
/// `runner("mdlm_step", "steps::mdlm_step, CpuBackend", Rows::Masked, |w, o| …)`).
fn crate_steps() -> Vec<CrateStep> {
    vec![
        step(
            "categorical",
            "Categorical sampling from logits (τ = 1)",
            false,
            &[
                ("e_categorical", "multinomial_softmax"),
                ("e_categorical", "gumbel_logits"),
            ],
            cpu_categorical(),
        ),
        step(
            "mdlm",
            "MDLM ancestral step (with carry-over)",
            false,
            &[
                ("a_mdlm", "ddpm_update"),
                ("a_mdlm", "subs_ddpm_update"),
                ("compiled", "mdlm_ddpm_update"),
            ],
            cpu_mdlm(),
        ),
        step(
            "llada_t1",
            "LLaDA low-confidence step, temperature 1",
            false,
            &[
                ("b_llada", "T1_f64noise"),
                ("b_llada", "T1_f32noise"),
                ("compiled", "llada_T1_f64noise"),
            ],
            cpu_llada(1.0),
        ),
        step(
            "llada_t0",
            "LLaDA low-confidence step, greedy (temperature 0)",
            true,
            &[("b_llada", "T0_f32"), ("compiled", "llada_T0")],
            cpu_llada(0.0),
        ),
        step(
            "fast_dllm",
            "Fast-dLLM threshold step, greedy (no PyTorch script: LLaDA's greedy step is the nearest)",
            true,
            &[("b_llada", "T0_f32")],
            cpu_threshold(),
        ),
        step(
            "dfm",
            "DFM Euler-jump step (mixture path, mask source)",
            false,
            &[
                ("d_flowmatching", "reimpl_step"),
                ("d_flowmatching", "fast_step"),
            ],
            cpu_dfm(),
        ),
        step(
            "sedd",
            "SEDD analytic absorbing step",
            false,
            &[("c_sedd", "analytic"), ("c_sedd", "euler")],
            cpu_sedd(),
        ),
    ]
}

fn step(
    id: &'static str,
    title: &'static str,
    greedy: bool,
    torch: &'static [(&'static str, &'static str)],
    runner: Runner,
) -> CrateStep {
    CrateStep {
        id,
        title,
        greedy,
        torch,
        runner,
    }
}

/// A runner for a fused step of `src/backend/steps` on the `CpuBackend`.
fn runner(
    name: &'static str,
    what: &'static str,
    rows: Rows,
    run: impl Fn(&Workload, &mut Scratch) -> discrete_diffusion::Result<()> + Sync + 'static,
) -> Runner {
    Runner {
        name,
        what,
        rows,
        run: Box::new(run),
    }
}

// ------------------------------------------------------------------------------------------
// The fused steps on the CPU backend
// ------------------------------------------------------------------------------------------

/// The step's random-number addressing for a workload.
fn step_rng(w: &Workload) -> StepRng<'_> {
    StepRng {
        seed: w.seed,
        streams: &w.streams,
        step: 0,
    }
}

/// Reset the tokens a step writes (`O(B·L)`), so every repetition does the same work.
fn reset(w: &Workload, o: &mut Scratch) {
    o.tokens.assign(&w.tokens);
}

fn cpu_categorical() -> Runner {
    let spec = RowSpec::default();
    runner(
        "cpu_categorical_t1",
        "steps::sample_categorical on CpuBackend, τ = 1, every position",
        Rows::All,
        move |w, o| {
            reset(w, o);
            sample_categorical(
                &CpuBackend::new(),
                w.logits.view(),
                None,
                &spec,
                &step_rng(w),
                o.tokens.view_mut(),
            )
            .map(|out| o.rows_read = Some(out.rows_read()))
        },
    )
}

fn cpu_mdlm() -> Runner {
    runner(
        "cpu_mdlm",
        "steps::mdlm_ancestral_step on CpuBackend (log-linear α, t → t − dt; reads only the rows that unmask)",
        Rows::Masked,
        move |w, o| {
            reset(w, o);
            let sched = LogLinear::new(1e-3)?;
            let p = MdlmStep {
                mask_id: w.mask,
                t: w.t,
                s: w.t - w.dt,
            };
            mdlm_ancestral_step(
                &CpuBackend::new(),
                &sched,
                w.logits.view(),
                o.tokens.view_mut(),
                &p,
                &step_rng(w),
            )
            .map(|out| o.rows_read = Some(out.rows_read()))
        },
    )
}

fn cpu_llada(temperature: f64) -> Runner {
    let (name, what) = if temperature == 0.0 {
        (
            "cpu_llada_t0",
            "steps::llada_step on CpuBackend, greedy, confidence top-k (k = L/64)",
        )
    } else {
        (
            "cpu_llada_t1",
            "steps::llada_step on CpuBackend, τ = 1, confidence top-k (k = L/64)",
        )
    };
    runner(name, what, Rows::Masked, move |w, o| {
        reset(w, o);
        let k = vec![w.k_per_row; w.b];
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
        .map(|out| o.rows_read = Some(out.rows_read()))
    })
}

fn cpu_threshold() -> Runner {
    runner(
        "cpu_fast_dllm",
        "steps::threshold_step on CpuBackend, greedy, confidence ≥ 0.9 (at least one)",
        Rows::Masked,
        move |w, o| {
            reset(w, o);
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
            .map(|out| o.rows_read = Some(out.rows_read()))
        },
    )
}

fn cpu_dfm() -> Runner {
    runner(
        "cpu_dfm",
        "steps::dfm_euler_step on CpuBackend (κ(s) = s, exact jump 1 − e^{−hλ}; reads only the rows that jump)",
        Rows::Masked,
        move |w, o| {
            reset(w, o);
            let kappa = Kappa::convex(Linear::new());
            let s0 = 1.0 - w.t;
            let p = DfmEulerStep {
                mask_id: w.mask,
                s: s0,
                s_next: s0 + w.dt,
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
            .map(|out| o.rows_read = Some(out.rows_read()))
        },
    )
}

fn cpu_sedd() -> Runner {
    runner(
        "cpu_sedd",
        "steps::sedd_analytic_absorbing_step on CpuBackend (log-linear σ, logits as log-scores; reads every masked row)",
        Rows::Masked,
        move |w, o| {
            reset(w, o);
            let sched = LogLinear::new(1e-3)?;
            let p = SeddAbsorbingStep {
                mask_id: w.mask,
                t: w.t,
                s: w.t - w.dt,
            };
            sedd_analytic_absorbing_step(
                &CpuBackend::new(),
                &sched,
                w.logits.view(),
                o.tokens.view_mut(),
                &p,
                &step_rng(w),
            )
            .map(|out| o.rows_read = Some(out.rows_read()))
        },
    )
}

// ------------------------------------------------------------------------------------------
// Timing
// ------------------------------------------------------------------------------------------

/// One timed (runner, size).
#[derive(Clone, Debug)]
struct Timing {
    median_s: f64,
    min_s: f64,
    times_s: Vec<f64>,
    calls_per_rep: usize,
    loadavg_before: Vec<f64>,
    loadavg_after: Vec<f64>,
    /// Fraction of rows the runner reads.
    rows_read: f64,
    /// The streaming read rate (elements/s) of the workload's logits, measured right after
    /// each repetition in the same pool ([`read_pass`]): the bound at that moment.
    read_rates: Vec<f64>,
    /// The exp throughput (elements/s) on the same logits at the same moment: one
    /// `sum_exp_below` pass ([`exp_pass`]) right after the read.
    exp_rates: Vec<f64>,
}

impl Timing {
    /// Median over the repetitions of (elements read/s in the repetition) / (the bound of
    /// that moment: the lower of the read rate and the exp throughput measured on the same
    /// logits right after it), paired so that the machine's drift (its read rate moves by
    /// 1.5× here, its compute speed by up to 1.3×) cancels.
    fn paired_fraction(&self, elems: usize) -> Option<f64> {
        self.paired_by(elems, true)
    }

    /// [`Timing::paired_fraction`] against the read rate alone (`with_exp = false`): how
    /// close the step comes to streaming its logits at memory speed.
    fn paired_by(&self, elems: usize, with_exp: bool) -> Option<f64> {
        let mut f: Vec<f64> = self
            .times_s
            .iter()
            .zip(self.read_rates.iter().zip(&self.exp_rates))
            .map(|(t, (r, e))| {
                let bound = if with_exp { r.min(*e) } else { *r };
                elems as f64 * self.rows_read / t / bound
            })
            .collect();
        if f.is_empty() {
            return None;
        }
        f.sort_by(f64::total_cmp);
        let n = f.len();
        Some(if n % 2 == 1 {
            f[n / 2]
        } else {
            0.5 * (f[n / 2 - 1] + f[n / 2])
        })
    }
}

/// One streaming pass of `Σ exp(x − max)` over `x` on the current rayon pool, with the
/// crate's `sum_exp_below` (the `exp_crate` kernel of `examples/roofline.rs`).
fn exp_pass(x: &[f32], max: f32) -> f64 {
    x.par_chunks(1 << 16)
        .map(|c| sum_exp_below(c, max).expect("max is an upper bound"))
        .sum()
}

/// One streaming read of `x` on the current rayon pool: a 16-lane `f32` sum per chunk of
/// `2¹⁶` (the `sum_f32` kernel of `examples/roofline.rs`).
fn read_pass(x: &[f32]) -> f32 {
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

/// A step being timed: its scratch, its batch size `k` and the repetitions so far.
struct InFlight {
    scratch: Scratch,
    calls_per_rep: usize,
    loadavg_before: Vec<f64>,
    times_s: Vec<f64>,
    read_rates: Vec<f64>,
    exp_rates: Vec<f64>,
}

/// One warm-up call (and the error check), then `k` so that a repetition lasts
/// ≥ [`MIN_REP_S`].
fn start_runner(r: &Runner, w: &Workload) -> discrete_diffusion::Result<InFlight> {
    let mut scratch = Scratch {
        summaries: Array2::from_elem((w.b, w.l), RowSummary::default()),
        tokens: w.tokens.clone(),
        rows_read: None,
    };
    let loadavg_before = loadavg();
    let t = Instant::now();
    (r.run)(w, &mut scratch)?;
    let first = t.elapsed().as_secs_f64();
    let calls_per_rep = if first >= MIN_REP_S {
        1
    } else {
        ((MIN_REP_S / first.max(1e-7)) as usize + 1).min(100_000)
    };
    Ok(InFlight {
        scratch,
        calls_per_rep,
        loadavg_before,
        times_s: Vec::new(),
        read_rates: Vec::new(),
        exp_rates: Vec::new(),
    })
}

/// One repetition (`k` calls), then the paired streaming read of the same logits.
fn one_rep(r: &Runner, w: &Workload, f: &mut InFlight) -> discrete_diffusion::Result<()> {
    let flat = w.logits.as_slice().expect("standard layout");
    let t = Instant::now();
    for _ in 0..f.calls_per_rep {
        (r.run)(w, &mut f.scratch)?;
    }
    f.times_s
        .push(t.elapsed().as_secs_f64() / f.calls_per_rep as f64);
    let t = Instant::now();
    std::hint::black_box(read_pass(std::hint::black_box(flat)));
    f.read_rates
        .push(flat.len() as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    std::hint::black_box(exp_pass(std::hint::black_box(flat), w.max));
    f.exp_rates
        .push(flat.len() as f64 / t.elapsed().as_secs_f64());
    Ok(())
}

fn finish_runner(r: &Runner, w: &Workload, f: InFlight) -> Timing {
    let mut sorted = f.times_s.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median_s = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    };
    let rows_read = match (f.scratch.rows_read, &r.rows) {
        (Some(n), _) => n as f64 / (w.b * w.l) as f64,
        (None, Rows::All) => 1.0,
        (None, Rows::Masked) => w.masked.iter().filter(|&&m| m).count() as f64 / (w.b * w.l) as f64,
    };
    Timing {
        median_s,
        min_s: sorted[0],
        times_s: f.times_s,
        calls_per_rep: f.calls_per_rep,
        loadavg_before: f.loadavg_before,
        loadavg_after: loadavg(),
        rows_read,
        read_rates: f.read_rates,
        exp_rates: f.exp_rates,
    }
}

/// Times every step of `runners` on `w`: the repetitions are **interleaved** (repetition
/// 1 of every step, then repetition 2, …), so that a transient slowdown of this shared
/// virtual machine (its CPU or its memory bandwidth can change by 1.5× for a second or
/// two) costs every step one repetition instead of costing one step all of them.
fn time_interleaved(runners: &[&Runner], w: &Workload, reps: usize) -> Vec<Result<Timing, String>> {
    let mut state: Vec<Result<InFlight, String>> = runners
        .iter()
        .map(|r| start_runner(r, w).map_err(|e| e.to_string()))
        .collect();
    for _ in 0..reps {
        for (r, st) in runners.iter().zip(state.iter_mut()) {
            if let Ok(f) = st
                && let Err(e) = one_rep(r, w, f)
            {
                *st = Err(e.to_string());
            }
        }
    }
    runners
        .iter()
        .zip(state)
        .map(|(r, st)| st.map(|f| finish_runner(r, w, f)))
        .collect()
}

/// Build the inputs of one size in parallel: row `(b, i)` is filled from its own Philox
/// stream, so the data do not depend on the thread count.
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
    let masked = tokens.mapv(|x| x == mask);
    let max = logits
        .as_slice()
        .expect("standard layout")
        .par_iter()
        .copied()
        .reduce(|| f32::NEG_INFINITY, f32::max);
    Workload {
        b,
        l,
        v,
        max,
        logits,
        tokens,
        masked,
        mask,
        streams: (0..b as u64).collect(),
        seed: 2024,
        t: 0.5,
        dt: 1.0 / 128.0,
        k_per_row: (l / 64).max(1),
    }
}

// ------------------------------------------------------------------------------------------
// Inputs from the other two commands
// ------------------------------------------------------------------------------------------

/// A PyTorch figure: elements/s and its provenance.
#[derive(Clone, Debug)]
struct TorchRec {
    elems_per_s: Option<f64>,
    median_s: Option<f64>,
    note: String,
    rec: Value,
}

/// `(bench, variant, B, L, V, threads)` → the last record (later runs supersede).
type TorchMap = BTreeMap<(String, String, usize, usize, usize, usize), TorchRec>;

fn load_torch(dir: &str) -> (TorchMap, Vec<String>) {
    let mut map = TorchMap::new();
    let mut sources = Vec::new();
    for (file, compiled) in [("pytorch.jsonl", false), ("pytorch_compiled.jsonl", true)] {
        let path = format!("{dir}/{file}");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        sources.push(path);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(r) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let dim = |k: &str| r.get(k).and_then(Value::as_u64).map(|x| x as usize);
            let (Some(b), Some(l), Some(v)) = (dim("B"), dim("L"), dim("V")) else {
                continue;
            };
            let threads = dim("threads").unwrap_or(0);
            let (bench, variant) = if compiled {
                if r.get("mode").and_then(Value::as_str) != Some("compiled") {
                    continue;
                }
                ("compiled".to_string(), str_of(&r, "step"))
            } else {
                (str_of(&r, "bench"), str_of(&r, "variant"))
            };
            let mut note = String::new();
            if let Some(e) = r.get("error").and_then(Value::as_str) {
                note = if e.contains("allocate") {
                    "out of memory".into()
                } else {
                    e.chars().take(60).collect()
                };
            } else if let Some(sk) = r.get("skipped").and_then(Value::as_str) {
                note = sk.to_string();
            } else if r.get("stats_from").and_then(Value::as_str) == Some("all(contaminated)") {
                note = "noisy: fewer than 3 clean reps".into();
            }
            map.insert(
                (bench, variant, b, l, v, threads),
                TorchRec {
                    elems_per_s: r.get("elems_per_s").and_then(Value::as_f64),
                    median_s: r.get("median_s").and_then(Value::as_f64),
                    note,
                    rec: r,
                },
            );
        }
    }
    (map, sources)
}

fn str_of(r: &Value, k: &str) -> String {
    r.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The machine's limits at a thread count, from `roofline.json`.
#[derive(Clone, Debug, Default)]
struct Roof {
    /// Streaming read, f32 elements/s (best repetition).
    read: Option<f64>,
    read_threads: usize,
    /// Fastest measured exp kernel, elements/s, and its name.
    exp: Option<(f64, String)>,
    json: Option<Value>,
}

impl Roof {
    /// `min(read, exp)`: a fused step reads each logit it uses once and exponentiates it
    /// (every step of the report does), so it can go no faster than the streaming read
    /// rate nor than the fastest measured exp throughput (the crate's vectorised
    /// `sum_exp_below` when `roofline.json` has it).
    fn bound(&self) -> Option<f64> {
        match (self.read, self.exp.as_ref().map(|e| e.0)) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        }
    }
}

fn load_roof(dir: &str, threads: usize) -> Roof {
    let Ok(text) = std::fs::read_to_string(format!("{dir}/roofline.json")) else {
        return Roof::default();
    };
    let Ok(j) = serde_json::from_str::<Value>(&text) else {
        return Roof::default();
    };
    let ms: Vec<Value> = j["measurements"].as_array().cloned().unwrap_or_default();
    let th = |m: &Value| m["threads"].as_u64().unwrap_or(0) as usize;
    // The measured thread count closest to ours.
    let best_t = ms
        .iter()
        .map(th)
        .min_by_key(|&t| t.abs_diff(threads))
        .unwrap_or(0);
    let at = |kind: &str| {
        ms.iter()
            .filter(|m| th(m) == best_t && m["kind"] == kind)
            .filter_map(|m| Some((m["best_elems_per_s"].as_f64()?, str_of(m, "name"))))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    Roof {
        read: at("read").map(|x| x.0),
        read_threads: best_t,
        exp: at("exp"),
        json: Some(j),
    }
}

// ------------------------------------------------------------------------------------------
// The report
// ------------------------------------------------------------------------------------------

fn main() {
    let threads: usize = env_or("THREADS", 2);
    let reps: usize = env_or::<usize>("PERF_REPS", 9).max(1);
    let sizes: Vec<usize> = std::env::var("PERF_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| (0..SIZES.len()).collect());
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = std::env::var("PERF_DIR").unwrap_or_else(|_| format!("{root}/target/perf"));
    let doc = std::env::var("PERF_DOC").unwrap_or_else(|_| format!("{root}/docs/performance.md"));

    let (torch, torch_sources) = load_torch(&dir);
    let roof = load_roof(&dir, threads);
    let steps = crate_steps();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");

    // name → size index → timing
    let mut timings: BTreeMap<&'static str, BTreeMap<usize, Result<Timing, String>>> =
        BTreeMap::new();
    let mut raw = String::new();
    for &si in sizes.iter().filter(|&&si| si < SIZES.len()) {
        let (b, l, v) = SIZES[si];
        let t = Instant::now();
        let w = pool.install(|| workload(b, l, v));
        eprintln!(
            "size {si}: {b}×{l}×{v} built in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let mut runners: Vec<&Runner> = Vec::new();
        for st in &steps {
            let r = &st.runner;
            let seen = timings.get(r.name).is_some_and(|m| m.contains_key(&si))
                || runners.iter().any(|q| q.name == r.name);
            if !seen {
                runners.push(r);
            }
        }
        let results = pool.install(|| time_interleaved(&runners, &w, reps));
        for (r, res) in runners.iter().zip(results) {
            match &res {
                Ok(tm) => {
                    eprintln!(
                        "  {:28} median {:.4} s  {:.1} M elem/s  (load {:?})",
                        r.name,
                        tm.median_s,
                        (b * l * v) as f64 / tm.median_s / 1e6,
                        tm.loadavg_before
                    );
                    let line = serde_json::json!({
                        "runner": r.name, "what": r.what,
                        "B": b, "L": l, "V": v, "threads": threads,
                        "median_s": tm.median_s, "min_s": tm.min_s, "times_s": tm.times_s,
                        "calls_per_rep": tm.calls_per_rep,
                        "elems_per_s": (b * l * v) as f64 / tm.median_s,
                        "rows_read": tm.rows_read,
                        "read_rates": tm.read_rates,
                        "exp_rates": tm.exp_rates,
                        "loadavg_before": tm.loadavg_before, "loadavg_after": tm.loadavg_after,
                        "date_utc": utc_now(),
                    });
                    raw.push_str(&line.to_string());
                    raw.push('\n');
                }
                Err(e) => eprintln!("  {:28} error: {e}", r.name),
            }
            timings.entry(r.name).or_default().insert(si, res);
        }
    }
    std::fs::create_dir_all(&dir).expect("create the output folder");
    std::fs::write(format!("{dir}/crate.jsonl"), &raw).expect("write crate.jsonl");

    let md = render(
        &steps,
        &timings,
        &torch,
        &torch_sources,
        &roof,
        threads,
        reps,
        &sizes,
    );
    std::fs::write(&doc, md).expect("write the report");
    eprintln!("wrote {doc}");
}

fn fmt_rate(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(x) if x >= 1e9 => format!("{:.2} G", x / 1e9),
        Some(x) if x >= 1e6 => format!("{:.1} M", x / 1e6),
        Some(x) => format!("{:.3} M", x / 1e6),
    }
}

fn fmt_pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:.1} %", 100.0 * x))
}

fn fmt_ratio(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.2}×"))
}

#[allow(clippy::too_many_arguments)]
fn render(
    steps: &[CrateStep],
    timings: &BTreeMap<&'static str, BTreeMap<usize, Result<Timing, String>>>,
    torch: &TorchMap,
    torch_sources: &[String],
    roof: &Roof,
    threads: usize,
    reps: usize,
    sizes: &[usize],
) -> String {
    let mut o = String::new();
    let rate = |name: &str, si: usize| -> Option<f64> {
        let (b, l, v) = SIZES[si];
        match timings.get(name)?.get(&si)? {
            Ok(t) => Some((b * l * v) as f64 / t.median_s),
            Err(_) => None,
        }
    };
    let read_rate = |name: &str, si: usize| -> Option<f64> {
        let (b, l, v) = SIZES[si];
        match timings.get(name)?.get(&si)? {
            Ok(t) => Some((b * l * v) as f64 * t.rows_read / t.median_s),
            Err(_) => None,
        }
    };
    let paired = |name: &str, si: usize| -> Option<f64> {
        let (b, l, v) = SIZES[si];
        match timings.get(name)?.get(&si)? {
            Ok(t) => t.paired_fraction(b * l * v),
            Err(_) => None,
        }
    };
    let paired_read = |name: &str, si: usize| -> Option<f64> {
        let (b, l, v) = SIZES[si];
        match timings.get(name)?.get(&si)? {
            Ok(t) => t.paired_by(b * l * v, false),
            Err(_) => None,
        }
    };
    let trec = |bench: &str, variant: &str, si: usize| -> Option<&TorchRec> {
        let (b, l, v) = SIZES[si];
        torch.get(&(bench.to_string(), variant.to_string(), b, l, v, threads))
    };
    let bound = roof.bound();

    let _ = writeln!(
        o,
        "# Performance: fused sampling steps vs eager PyTorch and the roofline\n"
    );
    let _ = writeln!(
        o,
        "<!-- generated by `cargo run --release --example perf_report`; do not edit by hand -->\n"
    );
    let _ = writeln!(
        o,
        "Regenerate (all three steps, ≈ 40 min on 2 cores, most of it PyTorch):\n"
    );
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "scripts/bench_pytorch.sh && cargo run --release --example roofline && cargo run --release --example perf_report"
    );
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "`scripts/bench_pytorch.sh` times the reference scripts of `../shared/bench/` (eager \
         PyTorch, CPU wheel from PyPI, in `target/pytorch-venv`) at `THREADS=2` and appends to \
         `target/perf/pytorch.jsonl`; `examples/roofline.rs` measures the machine's read \
         bandwidth and exp throughput into `target/perf/roofline.json`; \
         `examples/perf_report.rs` times the crate's steps in-process (median of {reps} \
         repetitions, interleaved across the steps of a size so that a transient slowdown of \
         this shared virtual machine costs each step one repetition rather than one step all \
         of them; rayon pool of {threads} threads) and writes this file. Only \
         `perf_report` is needed to refresh the crate's column; the other two inputs are read \
         as they are. Criterion benches of the same steps: `cargo bench --bench fused_steps`.\n"
    );

    // Machine
    let _ = writeln!(o, "## Machine and runs\n");
    let first_torch = torch.values().next().map(|t| &t.rec);
    let torch_info = first_torch.map_or("not measured".to_string(), |r| {
        format!(
            "torch {} ({}), Python {}",
            str_of(r, "torch"),
            str_of(r, "torch_cpu_capability"),
            str_of(r, "python")
        )
    });
    let cpu = roof
        .json
        .as_ref()
        .map(|j| str_of(j, "cpu_model"))
        .unwrap_or_else(cpu_model);
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| CPU | {cpu}, {} logical CPUs |",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = writeln!(
        o,
        "| threads compared | {threads} (crate rayon pool, `torch.set_num_threads`) |"
    );
    let _ = writeln!(o, "| PyTorch | {torch_info} |");
    let runs: std::collections::BTreeSet<String> = torch
        .values()
        .map(|t| str_of(&t.rec, "run_id"))
        .filter(|s| !s.is_empty())
        .collect();
    if torch_sources.is_empty() {
        let _ = writeln!(
            o,
            "| PyTorch run(s) | not measured (`scripts/bench_pytorch.sh`) |"
        );
    } else {
        let _ = writeln!(
            o,
            "| PyTorch run(s) | {} (`{}`) |",
            runs.into_iter().collect::<Vec<_>>().join(", "),
            torch_sources
                .iter()
                .map(|p| p.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(p))
                .map(|p| p.trim_start_matches('/'))
                .collect::<Vec<_>>()
                .join("`, `")
        );
    }
    if let Some(j) = &roof.json {
        let _ = writeln!(
            o,
            "| roofline run | {} (load average before {}, after {}) |",
            str_of(j, "date_utc"),
            fmt_load(&j["loadavg_before"]),
            fmt_load(&j["loadavg_after"])
        );
    } else {
        let _ = writeln!(
            o,
            "| roofline run | not measured (`cargo run --release --example roofline`) |"
        );
    }
    let _ = writeln!(o, "| crate run | {} |", utc_now());
    let _ = writeln!(o);

    // Roofline
    let _ = writeln!(o, "## Roofline\n");
    if let Some(j) = &roof.json {
        let _ = writeln!(
            o,
            "Best of {} repetitions over a {} MiB `f32` array (`examples/roofline.rs`). A fused \
             step reads each logit it uses once and exponentiates it, so its bound is the lower \
             of the streaming read rate and the exp throughput at the same thread count. The \
             exp rows sum `exp(x)` over the same streamed array: the scalar libm `f64::exp` and \
             a portable (SSE2) polynomial are reference points; `exp_crate` is the crate's \
             `backend::cpu::exp::sum_exp_below`, the backend's own exp (fused multiply-adds) \
             on AVX-512 or AVX2, and is the exp bound. (The backend's pass — maximum, exp and \
             sums in one read of each block — runs at 2.3 to 3.3 G logits/s per core in \
             cache between runs on this machine: `cargo bench --bench backend_summarize -- \
             in_cache`.)\n",
            j["reps"], j["array_mib"]
        );
        let _ = writeln!(
            o,
            "| kernel | what | threads | best G elem/s | median G elem/s | best GB/s |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for m in j["measurements"].as_array().into_iter().flatten() {
            let best = m["best_elems_per_s"].as_f64().unwrap_or(0.0);
            let med = m["median_elems_per_s"].as_f64().unwrap_or(0.0);
            let _ = writeln!(
                o,
                "| {} `{}` | {} | {} | {:.3} | {:.3} | {:.1} |",
                str_of(m, "kind"),
                str_of(m, "name"),
                str_of(m, "what"),
                m["threads"],
                best / 1e9,
                med / 1e9,
                4.0 * best / 1e9
            );
        }
        let _ = writeln!(
            o,
            "\nBound used below ({} threads): min(streaming read {} elem/s, exp `{}` {} elem/s) \
             → **{} elem/s**.\n",
            roof.read_threads,
            fmt_rate(roof.read),
            roof.exp.as_ref().map_or("—", |e| e.1.as_str()),
            fmt_rate(roof.exp.as_ref().map(|e| e.0)),
            fmt_rate(bound),
        );
    } else {
        let _ = writeln!(
            o,
            "Not measured: run `cargo run --release --example roofline`.\n"
        );
    }

    // Targets summary
    let _ = writeln!(o, "## Targets (issue 3) at the two large sizes\n");
    let _ = writeln!(
        o,
        "Target: ≥ 60 % of the roofline for every fused step; that is ≥ 20× eager PyTorch \
         for the stochastic steps and ≥ 3× for the greedy ones (same threads).\n\n\
         Two measures of the fraction. **% paired** (the one `met` uses): after every timed \
         repetition of a step, the same process streams the workload's own logits once with \
         the roofline's read kernel, then exponentiates them once with its `exp_crate` kernel, \
         on the same thread pool; the fraction is the median over repetitions of (elements \
         the step read per second) / min(that read rate, that exp rate). **% roofline**: the \
         step's median rate over the \
         bound above (separate `roofline` run). On this virtual machine the read rate drifts \
         between 6.2 and 12 G elem/s at 2 threads from one minute to the next, and the exp \
         throughput (compute-bound) between 4.2 and 7 G/s, which moves the second measure; \
         pairing each repetition with a read and an exp pass of the same moment cancels that \
         drift. **% of read** (for reference, not a target): the paired fraction against the \
         read rate alone — how close the step comes to streaming its logits at memory speed; \
         the steps are exp-bound on this machine, so it is lower whenever the memory runs \
         fast.\n"
    );
    let _ = writeln!(
        o,
        "| step | B×L×V | crate elem/s | % paired | % roofline | % of read | vs PyTorch (first variant measured) | target | met |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for st in steps {
        for si in [0usize, 1] {
            if !sizes.contains(&si) {
                continue;
            }
            let (b, l, v) = SIZES[si];
            let c = rate(st.runner.name, si);
            let frac = read_rate(st.runner.name, si).zip(bound).map(|(r, b)| r / b);
            let pf = paired(st.runner.name, si);
            // The first listed PyTorch variant that has a figure at this size.
            let (variant, pt) = st
                .torch
                .iter()
                .find_map(|&(bench, variant)| {
                    Some((variant, trec(bench, variant, si)?.elems_per_s?))
                })
                .map_or((st.torch[0].1, None), |(v, p)| (v, Some(p)));
            let ratio = c.zip(pt).map(|(c, p)| c / p);
            let need = if st.greedy { 3.0 } else { 20.0 };
            let met = match (pf, ratio) {
                (Some(f), Some(r)) => {
                    if f >= 0.6 && r >= need {
                        "yes"
                    } else {
                        "no"
                    }
                }
                (Some(f), None) => {
                    if f >= 0.6 {
                        "roofline only"
                    } else {
                        "no"
                    }
                }
                _ => "—",
            };
            let _ = writeln!(
                o,
                "| {} | {b}×{l}×{v} | {} | {} | {} | {} | {} (`{variant}`) | ≥ 60 %, ≥ {need}× | {met} |",
                st.id,
                fmt_rate(c),
                fmt_pct(pf),
                fmt_pct(frac),
                fmt_pct(paired_read(st.runner.name, si)),
                fmt_ratio(ratio),
            );
        }
    }
    let _ = writeln!(o);

    // Per-step tables
    let _ = writeln!(o, "## Per step\n");
    let _ = writeln!(
        o,
        "Elements/s = `B·L·V / median time per step` for both sides (PyTorch: median of the \
         harness's clean repetitions). Ratio = crate / PyTorch. % roofline = elements the \
         step actually reads per second / the bound above. A PyTorch cell with a note is \
         explained in the notes column.\n\n\
         **Read the ratios with the rows read in mind.** Every step computes the same law as \
         its PyTorch counterpart, but the crate reads only the rows the law needs: the LLaDA, \
         Fast-dLLM and SEDD steps read the masked positions' rows (half of them in these \
         workloads), and the MDLM and DFM steps read only the rows of positions that unmask \
         in this step (one uniform per masked position decides, a few per cent of the rows at \
         `dt = 1/128`), where PyTorch computes a softmax, a noise tensor and a sample for every \
         position. Their huge ratios measure that algorithmic saving, not a faster kernel; the \
         `% roofline` column, which counts only the rows actually read, measures the kernel.\n"
    );
    for st in steps {
        let _ = writeln!(o, "### {} (`{}`)\n", st.title, st.id);
        let _ = writeln!(o, "Crate: `{}` — {}.\n", st.runner.name, st.runner.what);
        let mut head = String::from("| B×L×V | crate elem/s | crate % roofline |");
        let mut sep = String::from("|---|---|---|");
        for (bench, variant) in st.torch {
            let _ = write!(head, " PyTorch `{bench}/{variant}` | ratio |");
            sep.push_str("---|---|");
        }
        head.push_str(" PyTorch best % roofline | notes |");
        sep.push_str("---|---|");
        let _ = writeln!(o, "{head}\n{sep}");
        for &si in sizes {
            let (b, l, v) = SIZES[si];
            let c = rate(st.runner.name, si);
            let frac = read_rate(st.runner.name, si).zip(bound).map(|(r, b)| r / b);
            let mut row = format!("| {b}×{l}×{v} | {} | {} |", fmt_rate(c), fmt_pct(frac));
            let mut notes = Vec::new();
            let mut best_pt: Option<f64> = None;
            if let Some(Err(e)) = timings.get(st.runner.name).and_then(|m| m.get(&si)) {
                notes.push(format!("crate error: {e}"));
            }
            for (bench, variant) in st.torch {
                let rec = trec(bench, variant, si);
                let pt = rec.and_then(|t| t.elems_per_s);
                if let Some(p) = pt {
                    best_pt = Some(best_pt.map_or(p, |b: f64| b.max(p)));
                }
                match rec {
                    None => notes.push(format!("`{variant}` not measured")),
                    Some(t) if !t.note.is_empty() => notes.push(format!("`{variant}`: {}", t.note)),
                    _ => {}
                }
                let _ = write!(
                    row,
                    " {} | {} |",
                    fmt_rate(pt),
                    fmt_ratio(c.zip(pt).map(|(c, p)| c / p))
                );
            }
            let _ = writeln!(
                o,
                "{row} {} | {} |",
                fmt_pct(best_pt.zip(bound).map(|(p, b)| p / b)),
                notes.join("; ")
            );
        }
        let _ = writeln!(o);
    }

    // Scaling
    let _ = writeln!(o, "## Scaling in B·L·V\n");
    let _ = writeln!(
        o,
        "Nanoseconds per element of `[B, L, V]` (median time / B·L·V), sizes sorted by B·L·V. \
         Cost linear in B·L·V shows as a constant column; small V pays a per-row cost.\n"
    );
    let mut order: Vec<usize> = sizes.to_vec();
    order.sort_by_key(|&si| SIZES[si].0 * SIZES[si].1 * SIZES[si].2);
    let mut head = String::from("| code |");
    let mut sep = String::from("|---|");
    for &si in &order {
        let (b, l, v) = SIZES[si];
        let _ = write!(head, " {b}×{l}×{v} ({:.3} G) |", (b * l * v) as f64 / 1e9);
        sep.push_str("---|");
    }
    let _ = writeln!(o, "{head}\n{sep}");
    let mut seen = std::collections::BTreeSet::new();
    for st in steps {
        if !seen.insert(st.runner.name) {
            continue;
        }
        let mut row = format!("| crate `{}` |", st.runner.name);
        for &si in &order {
            let _ = write!(row, " {} |", fmt_ns(rate(st.runner.name, si)));
        }
        let _ = writeln!(o, "{row}");
    }
    for st in steps {
        for (bench, variant) in st.torch {
            if !seen.insert(variant) {
                continue;
            }
            let mut row = format!("| PyTorch `{bench}/{variant}` |");
            for &si in &order {
                let _ = write!(
                    row,
                    " {} |",
                    fmt_ns(trec(bench, variant, si).and_then(|t| t.elems_per_s))
                );
            }
            let _ = writeln!(o, "{row}");
        }
    }
    let _ = writeln!(o);

    // PyTorch load
    let _ = writeln!(o, "## PyTorch measurement conditions\n");
    let _ = writeln!(
        o,
        "The machine is shared (other builds may run). The harness (`common.py`) counts a \
         repetition as clean when other processes used < 10 % of the machine during it; \
         clean/n below, and the load average around each (bench, size) subprocess.\n"
    );
    let _ = writeln!(
        o,
        "| bench/variant | B×L×V | median s | clean/n | load avg before → after |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for ((bench, variant, b, l, v, th), t) in torch {
        if *th != threads {
            continue;
        }
        let _ = writeln!(
            o,
            "| `{bench}/{variant}` | {b}×{l}×{v} | {} | {}/{} | {} → {} |",
            t.median_s.map_or("—".into(), |m| format!("{m:.4}")),
            t.rec.get("n_clean").map_or("—".into(), |x| x.to_string()),
            t.rec.get("n").map_or("—".into(), |x| x.to_string()),
            fmt_load(&t.rec["loadavg_before"]),
            fmt_load(&t.rec["loadavg_after"])
        );
    }
    let _ = writeln!(o);

    // Notes
    let _ = writeln!(o, "## Notes\n");
    let notes = [
        "PyTorch figures are eager CPU PyTorch running the reference scripts of \
         `../shared/bench/` (they follow the public implementations line by line: MDLM \
         `_ddpm_caching_update`, LLaDA `generate.py`, SEDD `sampling.py`, flow_matching's \
         `MixtureDiscreteEulerSolver`). `torch.compile` figures appear only when \
         `target/perf/pytorch_compiled.jsonl` exists (`COMPILED=1 scripts/bench_pytorch.sh`).",
        "The PyTorch run, the roofline run and the crate run are sequential runs on the same \
         machine; the dates are in the table above. A busy machine slows every side; the load \
         averages are recorded with each figure.",
        "The crate's steps read only the rows they need where the mathematics allows (e.g. MDLM \
         with carry-over reads masked positions only); elements/s is nevertheless `B·L·V / t` \
         on both sides, and the % roofline column counts the elements actually read.",
        "The roofline bound is min(streaming read rate, exp throughput). The exp rows of the \
         roofline table are a scalar `f64::exp`, a portable polynomial `f32` exp \
         auto-vectorised for the baseline x86-64 target (SSE2) — reference points — and the \
         crate's `sum_exp_below` (the backend's exp on AVX2/AVX-512, selected at run time, \
         summed in `f32` lanes: the cheapest sum of those exponentials), the exp bound. The backend's \
         pass (maximum, exp with fused multiply-adds and the sums, in one read of each block \
         of 256 logits; weights added in pairs in `f32`, then in `f64`) runs at 2.3 to 3.3 G \
         logits/s per core in cache (AVX-512; the spread is this virtual machine's, between \
         runs): on two cores the fused steps run close to the exp bound, which is below the \
         streaming bound on this machine.",
        "Fast-dLLM's threshold step has no PyTorch reference script; it is compared with \
         LLaDA's greedy step, which does the same per-position work (argmax and softmax \
         confidence) plus a top-k instead of a threshold.",
        "\"out of memory\" in a PyTorch cell: the script runs each (bench, size) under an \
         address-space limit (`AS_GIB`, 16 GiB by default on this 24 GiB machine) so that a \
         step that materialises several `[B, L, V]` temporaries (one-hots in `int64`, `f64` \
         noise) fails cleanly instead of pushing the machine into the OOM killer; a cell can \
         be rerun alone with a larger limit, e.g. `AS_GIB=21 SIZES=1 BENCHES=llada \
         scripts/bench_pytorch.sh` (later records supersede earlier ones).",
        "Sizes 3 and 4 (V = 4 and 25) are dominated by per-row costs (random numbers, \
         bookkeeping), not by the stream of logits; their roofline fraction is low on both \
         sides by nature.",
    ];
    for n in notes {
        let _ = writeln!(o, "- {n}");
    }
    o
}

fn fmt_ns(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{:.3}", 1e9 / r))
}

fn fmt_load(v: &Value) -> String {
    v.as_array().map_or("—".into(), |a| {
        a.iter()
            .filter_map(Value::as_f64)
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}
