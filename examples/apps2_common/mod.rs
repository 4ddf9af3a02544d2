//! Shared helpers of the `molecules` and `text` examples: command-line flags, a parallel
//! wrapper around the exact Markov denoiser, Markov order selection by held-out
//! likelihood, the results file and a progress bar.
//!
//! Not an example itself (`examples/apps2_common/mod.rs` has no `main.rs`); each example
//! includes it with `mod apps2_common;`.

#![allow(dead_code)] // each example uses a different subset

use std::path::PathBuf;
use std::time::Instant;

use discrete_diffusion::Error;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::ExactPosterior;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::driver::BlockModel;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut3, Axis};
use rayon::prelude::*;

/// The flags every example takes: `--quick`, `--seed N`, `--data PATH`, `--samples N`,
/// `--max-order K`.
#[derive(Debug, Clone)]
pub struct Args {
    /// Reduced mode for CI (a few seconds).
    pub quick: bool,
    /// Master seed.
    pub seed: u64,
    /// A data file or directory replacing the embedded default.
    pub data: Option<PathBuf>,
    /// Number of generated sequences per sampler (overrides the default).
    pub samples: Option<usize>,
    /// Largest Markov order tried (overrides the default).
    pub max_order: Option<usize>,
}

impl Args {
    /// Parse `std::env::args`; `usage` is printed on `--help` or a bad flag.
    pub fn parse(usage: &str) -> Result<Args, Error> {
        let mut a = Args {
            quick: false,
            seed: 0,
            data: None,
            samples: None,
            max_order: None,
        };
        let mut it = std::env::args().skip(1);
        let bad = |flag: &str, msg: &str| Error::invalid("args", format!("{flag}: {msg}\n{usage}"));
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| bad(&flag, "missing value"));
            match flag.as_str() {
                "--quick" => a.quick = true,
                "--seed" => {
                    a.seed = value()?
                        .parse()
                        .map_err(|_| bad("--seed", "not an integer"))?
                }
                "--data" => a.data = Some(PathBuf::from(value()?)),
                "--samples" => {
                    let n: usize = value()?
                        .parse()
                        .map_err(|_| bad("--samples", "not an integer"))?;
                    if n == 0 {
                        return Err(bad("--samples", "must be at least 1"));
                    }
                    a.samples = Some(n);
                }
                "--max-order" => {
                    let k: usize = value()?
                        .parse()
                        .map_err(|_| bad("--max-order", "not an integer"))?;
                    if !(1..=4).contains(&k) {
                        return Err(bad("--max-order", "must be in 1..=4"));
                    }
                    a.max_order = Some(k);
                }
                "--help" | "-h" => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                other => return Err(bad(other, "unknown flag")),
            }
        }
        Ok(a)
    }
}

/// A [`Denoiser`] that splits the batch over rayon's threads (the exact oracle denoises one
/// sequence at a time) and advances a progress bar by one per call.
pub struct Parallel<'a, D> {
    /// The wrapped denoiser.
    pub inner: &'a D,
    /// Ticked once per denoiser call.
    pub bar: ProgressBar,
}

impl<D: Denoiser + Sync> Denoiser for Parallel<'_, D> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        let b = tokens.nrows();
        let chunk = b.div_ceil(rayon::current_num_threads() * 4).max(1);
        let parts: Vec<_> = tokens
            .axis_chunks_iter(Axis(0), chunk)
            .zip(times.axis_chunks_iter(Axis(0), chunk))
            .zip(out.axis_chunks_iter_mut(Axis(0), chunk))
            .collect();
        parts
            .into_par_iter()
            .try_for_each(|((t, s), o)| self.inner.logits(t, s, o))?;
        self.bar.inc(1);
        Ok(())
    }
}

impl<D: Denoiser + Sync> BlockModel for Parallel<'_, D> {}

/// A progress bar over `len` units of work labelled `msg` (drawn on stderr, hidden when
/// stderr is not a terminal).
pub fn bar(len: usize, msg: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template("{msg:>40} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    b.set_message(msg.to_string());
    b
}

/// Mean negative log-likelihood per token (nats) of `seqs` (each of the chain's length)
/// under `chain`.
pub fn nll_per_token<S: AsRef<[u32]> + Sync>(
    chain: &MarkovChainOracle,
    seqs: &[S],
) -> Result<f64, Error> {
    let (lp, n) = seqs
        .par_iter()
        .map(|s| Ok::<_, Error>((chain.log_prob_x0(s.as_ref())?, s.as_ref().len())))
        .try_reduce(|| (0.0, 0), |a, b| Ok((a.0 + b.0, a.1 + b.1)))?;
    Ok(-lp / n as f64)
}

/// Fit Markov chains of orders `1..=max(max_order, 3)` on `train` by add-`pseudocount`
/// counting and return the one of order `≤ max_order` with the smallest held-out NLL per
/// token, and a line listing every order's held-out NLL (orders above `max_order` are
/// fitted only to show what a larger order would gain: the exact denoiser's cost grows as
/// `V^{k+1}`). All sequences have length `len` (the chain's); `vocab` counts data tokens.
pub fn select_order(
    train: &[Vec<u32>],
    heldout: &[Vec<u32>],
    vocab: usize,
    len: usize,
    max_order: usize,
    pseudocount: f64,
) -> Result<(MarkovChainOracle, String), Error> {
    if heldout.is_empty() {
        return Err(Error::invalid(
            "heldout",
            "no held-out sequence to select the order on",
        ));
    }
    let mut best: Option<(MarkovChainOracle, f64)> = None;
    let mut table = Vec::new();
    for k in 1..=max_order.max(3) {
        let chain = MarkovChainOracle::fit(train, k, vocab, len, pseudocount)?;
        let nll = nll_per_token(&chain, heldout)?;
        if k > max_order {
            table.push(format!("order {k}: {nll:.4} (not tried: --max-order {k})"));
        } else {
            table.push(format!("order {k}: {nll:.4}"));
            if best.as_ref().is_none_or(|(_, b)| nll < *b) {
                best = Some((chain, nll));
            }
        }
    }
    Ok((best.expect("max_order ≥ 1").0, table.join(", ")))
}

/// `n` exact left-to-right draws of `chain` (the `markov-ancestral` baseline), sequence
/// `b` from stream `b` of `seed`.
pub fn chain_draws(chain: &MarkovChainOracle, n: usize, seed: u64) -> Vec<Vec<u32>> {
    (0..n as u64)
        .map(|b| {
            let key = RngKey::for_stream(seed, b);
            chain.sample_x0(&mut CounterRng::new(key, Purpose::USER, 0, 0))
        })
        .collect()
}

/// The rows of a `[B, L]` token array.
pub fn rows(x: &Array2<u32>) -> Vec<Vec<u32>> {
    x.rows().into_iter().map(|r| r.to_vec()).collect()
}

/// Distinct-`n`: the number of distinct `n`-grams over the number of `n`-grams, pooled over
/// `items` (Li et al. 2016). `None` when there is no `n`-gram.
pub fn distinct_n<T: std::hash::Hash + Eq>(items: &[Vec<T>], n: usize) -> Option<f64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for x in items {
        for w in x.windows(n) {
            total += 1;
            seen.insert(w);
        }
    }
    (total > 0).then(|| seen.len() as f64 / total as f64)
}

/// One row of a results file.
pub struct Row {
    /// Model name.
    pub model: String,
    /// Sampler name (`"data"` and `"markov-ancestral"` for the baselines).
    pub sampler: String,
    /// Metric name and value.
    pub metrics: Vec<(String, f64)>,
    /// Denoiser calls per sequence (a mean for adaptive decoders), if a denoiser was called.
    pub nfe: Option<f64>,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

/// The results of one example, written to `target/results/<domain>.json`.
pub struct Results {
    /// The domain (`"molecules"`, `"text"`).
    pub domain: String,
    /// The data set used.
    pub dataset: String,
    /// Rows.
    pub rows: Vec<Row>,
    /// Free-form notes.
    pub notes: Vec<String>,
}

impl Results {
    /// Write the JSON file (format shared with the other application examples) and return
    /// its path.
    pub fn write(&self) -> std::io::Result<PathBuf> {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let metrics: serde_json::Map<String, serde_json::Value> = r
                    .metrics
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                    .collect();
                serde_json::json!({
                    "model": r.model, "sampler": r.sampler, "metrics": metrics,
                    "nfe": r.nfe, "wall_s": r.wall_s,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "domain": self.domain, "dataset": self.dataset, "rows": rows, "notes": self.notes,
        });
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/results");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.domain));
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
        Ok(path)
    }

    /// Print the notes, one per line.
    pub fn print_notes(&self) {
        println!("notes:");
        for n in &self.notes {
            println!("  - {n}");
        }
    }

    /// Print the rows as an aligned table with the metric columns `cols`.
    pub fn print_table(&self, cols: &[&str]) {
        print!("{:<22} {:<30}", "model", "sampler");
        for c in cols {
            print!(" {c:>12}");
        }
        println!(" {:>6} {:>8}", "NFE", "wall s");
        for r in &self.rows {
            print!("{:<22} {:<30}", r.model, r.sampler);
            for c in cols {
                match r.metrics.iter().find(|(k, _)| k == c) {
                    Some((_, v)) => print!(" {v:>12.4}"),
                    None => print!(" {:>12}", "-"),
                }
            }
            let nfe = r.nfe.map_or("-".to_string(), |n| format!("{n:.1}"));
            println!(" {nfe:>6} {:>8.2}", r.wall_s);
        }
    }
}

/// Seconds since `start`.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}
