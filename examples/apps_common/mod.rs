//! Shared helpers of the application examples (`dna`, `protein`, …): command-line flags,
//! the results file `target/results/<domain>.json`, sequence statistics, the absorbing
//! diffusion samplers over an exact Markov denoiser, progress bars and SVG line plots.
//!
//! Results format (read by `examples/results_report.rs`):
//! `{"domain", "dataset", "rows": [{"model", "sampler", "metrics": {name: number},
//! "nfe": number|null, "wall_s": number}], "notes": [str]}`.

#![allow(dead_code)] // each example uses a subset

pub mod d3pm;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator};
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey, sample_logits};
use discrete_diffusion::sample::ctmc::{
    CtmcSampler, FirstHitting, ModelOutput, Predictor, TauLeapMode, first_hitting_sample,
    sample_ctmc_batch,
};
use discrete_diffusion::sample::driver::{NoHook, run};
use discrete_diffusion::sample::presets;
use discrete_diffusion::schedule::{Linear, LogLinear};
use discrete_diffusion::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2, Array3, ArrayView2};
use serde_json::{Value, json};

// ---------------------------------------------------------------- command line

/// Flags shared by every example.
#[derive(Debug, Clone, Copy)]
pub struct Args {
    /// Reduced mode for CI (a few seconds).
    pub quick: bool,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Args {
    /// Parse `--quick`, `--seed N`, `--help` from the process arguments.
    pub fn parse(usage: &str) -> Args {
        let mut a = Args {
            quick: false,
            seed: 0,
        };
        let mut it = std::env::args().skip(1);
        while let Some(x) = it.next() {
            match x.as_str() {
                "--quick" => a.quick = true,
                "--seed" => {
                    a.seed = it
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| exit_usage(usage, "--seed needs an integer"))
                }
                "-h" | "--help" => {
                    println!("{usage}\n\nflags: --quick (reduced mode, for CI), --seed N");
                    std::process::exit(0);
                }
                other => exit_usage(usage, &format!("unknown argument {other:?}")),
            }
        }
        a
    }
}

fn exit_usage(usage: &str, msg: &str) -> ! {
    eprintln!("{msg}\n{usage}\n\nflags: --quick (reduced mode, for CI), --seed N");
    std::process::exit(2)
}

// ---------------------------------------------------------------- results file

/// `target/results` of this crate (created).
pub fn results_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("results");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// One domain's results, written as `target/results/<domain>.json`.
#[derive(Debug)]
pub struct Report {
    domain: String,
    dataset: String,
    rows: Vec<Value>,
    notes: Vec<String>,
}

impl Report {
    /// A report for `domain` on `dataset`.
    pub fn new(domain: &str, dataset: &str) -> Report {
        Report {
            domain: domain.into(),
            dataset: dataset.into(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Add a row and print it.
    pub fn row(
        &mut self,
        model: &str,
        sampler: &str,
        metrics: &[(&str, f64)],
        nfe: Option<usize>,
        wall_s: f64,
    ) {
        let m: serde_json::Map<String, Value> = metrics
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(round_sig(*v))))
            .collect();
        let shown: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        println!(
            "  {model:<22} {sampler:<20} nfe={:<5} {wall_s:>6.2}s  {}",
            nfe.map_or("-".into(), |n| n.to_string()),
            shown.join(" ")
        );
        self.rows.push(json!({
            "model": model,
            "sampler": sampler,
            "metrics": m,
            "nfe": nfe,
            "wall_s": (wall_s * 1000.0).round() / 1000.0,
        }));
    }

    /// Add a note (printed too).
    pub fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        println!("note: {s}");
        self.notes.push(s);
    }

    /// Write `target/results/<domain>.json` (or `<domain>-quick.json` in quick mode, so CI
    /// never overwrites a full run's numbers) and return its path.
    pub fn write(&self, quick: bool) -> std::io::Result<PathBuf> {
        let name = if quick {
            format!("{}-quick.json", self.domain)
        } else {
            format!("{}.json", self.domain)
        };
        let path = results_dir().join(name);
        let v = json!({
            "domain": self.domain,
            "dataset": self.dataset,
            "rows": self.rows,
            "notes": self.notes,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")?;
        println!("wrote {}", path.display());
        Ok(path)
    }
}

/// Keep 5 significant digits in the JSON.
fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let p = 10f64.powi(4 - x.abs().log10().floor() as i32);
    (x * p).round() / p
}

/// Run `f` and return its value with the wall time in seconds.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

/// A progress bar of `len` units on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(s) = ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} {elapsed}") {
        pb.set_style(s.progress_chars("=> "));
    }
    pb.set_message(msg.to_string());
    pb
}

// ---------------------------------------------------------------- statistics

/// Normalised frequencies of the `V^k` k-mers (lexicographic index) over all windows of
/// every sequence; tokens must be `< v`.
pub fn kmer_freqs(seqs: &[Vec<u32>], k: usize, v: usize) -> Vec<f64> {
    let mut c = vec![0.0; v.pow(k as u32)];
    for s in seqs {
        for w in s.windows(k) {
            let idx = w.iter().fold(0usize, |h, &t| h * v + t as usize);
            c[idx] += 1.0;
        }
    }
    normalise(c)
}

/// Token composition (k-mer frequencies with `k = 1`).
pub fn composition(seqs: &[Vec<u32>], v: usize) -> Vec<f64> {
    kmer_freqs(seqs, 1, v)
}

fn normalise(mut c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    if s > 0.0 {
        c.iter_mut().for_each(|x| *x /= s);
    }
    c
}

/// Jensen–Shannon divergence `½KL(p‖m) + ½KL(q‖m)`, `m = (p+q)/2`, in bits (`∈ [0, 1]`).
pub fn js_bits(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let m = 0.5 * (a + b);
            0.5 * kl(a, m) + 0.5 * kl(b, m)
        })
        .sum()
}

/// Total variation `½ Σ |p − q|`.
pub fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// Rows of a `[B, L]` token array as vectors.
pub fn rows(x: ArrayView2<'_, u32>) -> Vec<Vec<u32>> {
    x.rows().into_iter().map(|r| r.to_vec()).collect()
}

/// `n` sequences drawn without replacement (a seeded shuffle) from `pool`.
pub fn subsample(pool: &[Vec<u32>], n: usize, seed: u64) -> Vec<Vec<u32>> {
    let key = RngKey::for_stream(seed, u64::MAX);
    let mut idx: Vec<usize> = (0..pool.len()).collect();
    for i in (1..idx.len()).rev() {
        let u = CounterRng::new(key, Purpose::USER, 0, i as u32).uniform();
        idx.swap(i, ((u * (i + 1) as f64) as usize).min(i));
    }
    idx.into_iter().take(n).map(|i| pool[i].clone()).collect()
}

/// Non-overlapping windows of `len` tokens of every sequence.
pub fn windows_of(seqs: &[Vec<u32>], len: usize) -> Vec<Vec<u32>> {
    seqs.iter()
        .flat_map(|s| s.chunks_exact(len).map(|c| c.to_vec()))
        .collect()
}

// ---------------------------------------------------------------- absorbing diffusion

/// The exact denoiser of absorbing (masked) diffusion (samplers on `α(t) = 1 − t`) for a Markov
/// chain over `V` data tokens: the mask is token `V`.
pub struct AbsorbingOracle {
    /// The chain on `V + 1` states (the mask has prior mass 0).
    pub chain: MarkovChainOracle,
    /// `p(x_0^i | x_t)` as a [`Denoiser`].
    pub denoiser: OracleDenoiser<MarkovChainOracle, MixtureProcess>,
    /// The mask id `V`.
    pub mask: u32,
}

impl AbsorbingOracle {
    /// Embed `chain` (over `V` tokens) with a mask at id `V`.
    pub fn new(chain: &MarkovChainOracle, v: usize) -> Result<AbsorbingOracle> {
        let ids: Vec<u32> = (0..v as u32).collect();
        let chain = chain.embed(&ids, v + 1)?;
        let mut e = vec![0.0; v + 1];
        e[v] = 1.0;
        // α(t) = 1 − (1 − 10⁻³)t: unmasked tokens stay possible at t = 1 (infilling starts
        // there); for absorbing noise the exact posterior does not depend on α ∈ (0, 1).
        let process = MixtureProcess::from_schedule(e, LogLinear::new(1e-3)?)?;
        Ok(AbsorbingOracle {
            denoiser: OracleDenoiser::new(chain.clone(), process)?,
            chain,
            mask: v as u32,
        })
    }

    /// MDLM ancestral sampling (`presets::mdlm`, `steps` steps, `t_min = 0`) of `n`
    /// sequences of length `l` from all-mask, or from `start` (mask = free position).
    /// Returns the tokens and the NFE.
    pub fn mdlm(
        &self,
        steps: usize,
        start: Array2<u32>,
        seed: u64,
    ) -> Result<(Array2<u32>, usize)> {
        let cfg = presets::mdlm(self.mask, steps, 0.0, Arc::new(Linear::new()))?;
        let mut x = start;
        let streams: Vec<u64> = (0..x.nrows() as u64).collect();
        let rep = run(
            &mut NoHook(&self.denoiser),
            &CpuBackend::new(),
            &cfg,
            x.view_mut(),
            None,
            seed,
            &streams,
            &mut (),
        )?;
        self.check_complete(&x)?;
        Ok((x, rep.nfe))
    }

    /// τ-leaping (Campbell et al. 2022; reject multiple jumps, the categorical rule) of the
    /// reverse CTMC on `steps` uniform steps from `t = 1 − 10⁻³` to 0, then one final
    /// denoising call filling the positions still masked with draws from `p(x_0 | x_t)`.
    pub fn tau_leaping(
        &self,
        steps: usize,
        start: Array2<u32>,
        seed: u64,
    ) -> Result<(Array2<u32>, usize)> {
        let v = self.mask as usize + 1;
        let ctmc = Ctmc::new(MixtureGenerator::absorbing(v, self.mask)?, Linear::new());
        let t0 = 1.0 - 1e-3;
        let cfg = CtmcSampler {
            predictor: Predictor::TauLeaping(TauLeapMode::RejectMultiple),
            output: ModelOutput::X0Logits,
            corrector: None,
            times: (0..=steps)
                .map(|k| t0 * (1.0 - k as f64 / steps as f64))
                .collect(),
            seed,
            time_independent_denoiser: true,
        };
        let mut x = start;
        let streams: Vec<u64> = (0..x.nrows() as u64).collect();
        let out = sample_ctmc_batch(&ctmc, &self.denoiser, x.view_mut(), &streams, &cfg)?;
        let fill = self.fill_masks(&mut x, t0 / steps as f64, seed)?;
        self.check_complete(&x)?;
        Ok((x, out.nfe + fill))
    }

    /// An error if any position of `x` is still masked (every sampler must finish).
    pub fn check_complete(&self, x: &Array2<u32>) -> Result<()> {
        match x.iter().position(|&z| z == self.mask) {
            Some(k) => Err(Error::Numerical {
                what: "sampler output",
                reason: format!("position {k} of the batch is still masked"),
            }),
            None => Ok(()),
        }
    }

    /// Draw every still-masked position from the exact `p(x_0^i | x_t)` at time `t` (one
    /// denoiser call if any mask is left; returns the calls made).
    pub fn fill_masks(&self, x: &mut Array2<u32>, t: f64, seed: u64) -> Result<usize> {
        if !x.iter().any(|&z| z == self.mask) {
            return Ok(0);
        }
        let (b, l) = x.dim();
        let v = self.mask as usize + 1;
        let mut logits = Array3::<f32>::zeros((b, l, v));
        let times = Array1::from_elem(b, t);
        self.denoiser
            .logits(x.view(), times.view(), logits.view_mut())?;
        for bi in 0..b {
            let key = RngKey::for_stream(seed, bi as u64);
            for i in 0..l {
                if x[[bi, i]] == self.mask {
                    let mut row: Vec<f32> = logits.slice(ndarray::s![bi, i, ..]).to_vec();
                    row[self.mask as usize] = f32::NEG_INFINITY;
                    let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, u32::MAX, i as u32);
                    x[[bi, i]] = sample_logits(&row, &mut rng)?.token;
                }
            }
        }
        Ok(1)
    }

    /// The first-hitting sampler (Zheng et al. 2024): one exact reveal per call, `L` calls
    /// per sequence. Returns the tokens and the NFE per sequence.
    pub fn first_hitting(&self, start: Array2<u32>, seed: u64) -> Result<(Array2<u32>, usize)> {
        let mut x = start;
        let mut nfe = 0;
        for (b, mut row) in x.rows_mut().into_iter().enumerate() {
            let mut r = row.to_vec();
            let out = first_hitting_sample(
                &Linear::new(),
                &self.denoiser,
                &mut r,
                &FirstHitting {
                    mask_id: self.mask,
                    t_start: 1.0,
                    seed,
                    stream: b as u64,
                },
            )?;
            nfe = nfe.max(out.nfe);
            row.assign(&Array1::from(r));
        }
        self.check_complete(&x)?;
        Ok((x, nfe))
    }
}

/// `n` exact draws from `chain` (its own ancestral sampler).
pub fn markov_samples(chain: &MarkovChainOracle, n: usize, seed: u64) -> Vec<Vec<u32>> {
    use discrete_diffusion::model::oracle::ExactPosterior;
    (0..n)
        .map(|b| {
            let key = RngKey::for_stream(seed, b as u64);
            chain.sample_x0(&mut CounterRng::new(key, Purpose::USER, 0, 0))
        })
        .collect()
}

/// Mean `−log₂ p(x)/L` (bits per token) of `seqs` under `chain`.
pub fn bits_per_token(chain: &MarkovChainOracle, seqs: &[Vec<u32>]) -> Result<f64> {
    use discrete_diffusion::model::oracle::ExactPosterior;
    let mut s = 0.0;
    let mut n = 0usize;
    for x in seqs {
        s -= chain.log_prob_x0(x)?;
        n += x.len();
    }
    if n == 0 {
        return Err(Error::invalid("seqs", "no tokens"));
    }
    Ok(s / n as f64 / std::f64::consts::LN_2)
}

// ---------------------------------------------------------------- plots

/// One curve of a line plot.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

/// Write an SVG line plot (with point markers) of `series` to `target/results/<file>`.
/// `x_labels`, if given, names the integer x positions (e.g. amino-acid letters).
pub fn line_plot(
    file: &str,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_x: bool,
    x_labels: Option<&[String]>,
) -> std::result::Result<PathBuf, Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let path = results_dir().join(file);
    let pts = || series.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for (x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return Err("nothing to plot".into());
    }
    let pad = if log_x { 1.3 } else { 0.5 };
    let root = SVGBackend::new(&path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(&root);
    b.caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(0, 0, 0),
        RGBColor(140, 86, 75),
    ];
    macro_rules! draw {
        ($chart:ident) => {{
            for (k, s) in series.iter().enumerate() {
                let c = colors[k % colors.len()];
                $chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                $chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
            $chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(if log_x {
                    SeriesLabelPosition::MiddleRight
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .draw()?;
        }};
    }
    if log_x {
        let mut chart = b.build_cartesian_2d((x0 / pad..x1 * pad).log_scale(), 0.0..y1 * 1.15)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x: &f64| format!("{x:.0}"))
            .draw()?;
        draw!(chart);
    } else {
        let mut chart = b.build_cartesian_2d(x0 - pad..x1 + pad, 0.0..y1 * 1.15)?;
        let fmt = |x: &f64| match x_labels {
            Some(l) if (x.round() - x).abs() < 1e-9 && *x >= 0.0 => {
                l.get(*x as usize).cloned().unwrap_or_default()
            }
            Some(_) => String::new(),
            None => format!("{x}"),
        };
        let n_labels = x_labels.map_or(10, |l| l.len() + 2);
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(n_labels)
            .x_label_formatter(&fmt)
            .draw()?;
        draw!(chart);
    }
    root.present()?;
    drop(root);
    println!("wrote {}", path.display());
    Ok(path)
}
