//! Batched kernels over `[B, L, V]` logits: **row summaries, not rows** (DESIGN §2
//! `backend`, §3.5).
//!
//! Decoding a diffusion language model reads a `[B, L, V]` logit tensor at every step. A
//! backend reads each selected row once (twice where an inverse-CDF draw walks the row again
//! while it is still in cache) and returns a [`RowSummary`] per position: everything a
//! sampler or a position selector needs — argmax, log-sum-exp, top-2 margin, entropy, the
//! sampled token and its log-probability. It never materialises a softmax, a one-hot or a
//! noise tensor: extra memory is `O(B·L)`.
//!
//! # Contract
//!
//! For every selected position `(b, i)` with logits `ℓ = logits[b, i, :]` and the excluded
//! ids `E` removed (their probability is 0):
//!
//! * `max = max_v ℓ_v`, `argmax` its lowest index;
//! * `logsumexp = ln Σ_v exp(ℓ_v)` (untempered), accumulated in `f64`;
//! * `margin = p₁ − p₂`, the difference of the two largest probabilities of `softmax(ℓ)`
//!   (`p₁` alone when only one state is allowed);
//! * `entropy = −Σ p ln p` of `softmax(ℓ)` in nats;
//! * `token ~ softmax(ℓ / τ)` for temperature `τ > 0` by inverse CDF with the uniform
//!   `u = CounterRng::new(RngKey::for_stream(seed, streams[b]), purpose, step, i).uniform()`
//!   (`τ = 0`: `token = argmax`), and `token_logprob = ℓ_token − logsumexp`, the
//!   **untempered** log-probability (the confidence of LLaDA, Dream and Fast-dLLM; DESIGN
//!   §3.6: confidence comes from untempered probabilities unless a preset says otherwise).
//!
//! Draws depend only on `(seed, streams[b], purpose, step, i)`: never on the batch
//! composition, the order of rows or the number of threads.
//!
//! [`ReferenceBackend`] implements the contract directly in `f64` with the crate's scalar
//! functions; it is the oracle the fast backends are tested against.

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2};

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod steps;

use crate::error::{Error, Result};
use crate::rng::{CounterRng, Purpose, RngKey};

/// What one pass over a row of logits yields (see the module's contract).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowSummary {
    /// `argmax_v ℓ_v` over allowed ids (lowest index on ties).
    pub argmax: u32,
    /// `max_v ℓ_v` over allowed ids.
    pub max: f32,
    /// `ln Σ_v exp(ℓ_v)` over allowed ids (untempered).
    pub logsumexp: f64,
    /// `p₁ − p₂` of `softmax(ℓ)` (0 unless requested).
    pub margin: f64,
    /// `−Σ p ln p` of `softmax(ℓ)` in nats (0 unless requested).
    pub entropy: f64,
    /// The drawn token (`argmax` when `τ = 0` or no draw was requested).
    pub token: u32,
    /// `ℓ_token − logsumexp`: the untempered log-probability of `token`.
    pub token_logprob: f64,
}

/// Which summaries to compute and how to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct RowSpec {
    /// Sampling temperature `τ ≥ 0`, finite; `0` means greedy (`token = argmax`).
    pub temperature: f64,
    /// Ids removed from every row's distribution (e.g. the mask token, padding). Sorted or
    /// not; duplicates allowed.
    pub excluded: Vec<u32>,
    /// Compute [`RowSummary::entropy`].
    pub entropy: bool,
    /// Compute [`RowSummary::margin`].
    pub margin: bool,
}

impl Default for RowSpec {
    fn default() -> Self {
        RowSpec {
            temperature: 1.0,
            excluded: Vec::new(),
            entropy: false,
            margin: false,
        }
    }
}

/// The random-number addressing of one batch: sequence `b` draws from
/// `RngKey::for_stream(seed, streams[b])` at `(purpose, step, position i)`.
#[derive(Clone, Copy, Debug)]
pub struct BatchRng<'a> {
    /// The seed.
    pub seed: u64,
    /// One stream id per sequence (its identity, e.g. a request id; not its batch row).
    pub streams: &'a [u64],
    /// The sampler step.
    pub step: u32,
    /// The purpose tag of the draws.
    pub purpose: Purpose,
}

impl BatchRng<'_> {
    /// The Philox keys of the batch's sequences.
    pub fn keys(&self) -> Vec<RngKey> {
        self.streams
            .iter()
            .map(|&s| RngKey::for_stream(self.seed, s))
            .collect()
    }

    /// The uniform of position `i` under `key`.
    #[inline]
    pub fn uniform(&self, key: RngKey, i: usize) -> f64 {
        CounterRng::new(key, self.purpose, self.step, i as u32).uniform()
    }
}

/// A batched row-summary engine (CPU, CUDA, or the scalar reference).
pub trait Backend: Send + Sync {
    /// A short name for reports (`"reference"`, `"cpu"`, …).
    fn name(&self) -> &'static str;

    /// Summaries of `logits[b, i, :]` for every position with `select[b, i]` (all positions
    /// when `select` is `None`), written to `out[b, i]`; unselected entries of `out` are left
    /// untouched. Shapes: `logits [B, L, V]`, `select [B, L]`, `out [B, L]`,
    /// `rng.streams.len() == B`.
    ///
    /// Errors: shape mismatches, `B·L = 0`, `V < 2`, an excluded id `≥ V`, a bad
    /// temperature, a selected row with NaN or `+∞`, or with no finite allowed logit.
    fn summarize(
        &self,
        logits: ArrayView3<'_, f32>,
        select: Option<ArrayView2<'_, bool>>,
        spec: &RowSpec,
        rng: &BatchRng<'_>,
        out: ArrayViewMut2<'_, RowSummary>,
    ) -> Result<()>;
}

/// Validate the arguments of [`Backend::summarize`]; returns `(B, L, V)`.
pub fn check_summarize_args(
    logits: &ArrayView3<'_, f32>,
    select: &Option<ArrayView2<'_, bool>>,
    spec: &RowSpec,
    rng: &BatchRng<'_>,
    out: &ArrayViewMut2<'_, RowSummary>,
) -> Result<(usize, usize, usize)> {
    let (b, l, v) = logits.dim();
    if b == 0 || l == 0 {
        return Err(Error::shape(
            "logits",
            "[B ≥ 1, L ≥ 1, V]",
            format!("{:?}", logits.shape()),
        ));
    }
    crate::validate::vocab("logits.V", v)?;
    if let Some(s) = select
        && s.dim() != (b, l)
    {
        return Err(Error::shape(
            "select",
            format!("[{b}, {l}]"),
            format!("{:?}", s.shape()),
        ));
    }
    if out.dim() != (b, l) {
        return Err(Error::shape(
            "out",
            format!("[{b}, {l}]"),
            format!("{:?}", out.shape()),
        ));
    }
    if rng.streams.len() != b {
        return Err(Error::shape(
            "rng.streams",
            format!("length {b}"),
            format!("length {}", rng.streams.len()),
        ));
    }
    if !(spec.temperature >= 0.0 && spec.temperature.is_finite()) {
        return Err(Error::invalid(
            "spec.temperature",
            format!("temperature {} must be finite and ≥ 0", spec.temperature),
        ));
    }
    crate::validate::tokens("spec.excluded", spec.excluded.iter(), v)?;
    if l > u32::MAX as usize {
        return Err(Error::invalid(
            "logits",
            format!("sequence length {l} exceeds u32 positions"),
        ));
    }
    Ok((b, l, v))
}

/// The scalar `f64` implementation of the [`Backend`] contract: one row at a time with the
/// crate's reference functions. Slow and obviously right; fast backends are tested against
/// it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn summarize(
        &self,
        logits: ArrayView3<'_, f32>,
        select: Option<ArrayView2<'_, bool>>,
        spec: &RowSpec,
        rng: &BatchRng<'_>,
        mut out: ArrayViewMut2<'_, RowSummary>,
    ) -> Result<()> {
        let (b, l, v) = check_summarize_args(&logits, &select, spec, rng, &out)?;
        let keys = rng.keys();
        let mut allowed = vec![true; v];
        for &e in &spec.excluded {
            allowed[e as usize] = false;
        }
        let mut row = vec![0.0f64; v];
        let mut p = vec![0.0f64; v];
        for bi in 0..b {
            for i in 0..l {
                if let Some(s) = &select
                    && !s[[bi, i]]
                {
                    continue;
                }
                for (k, (r, &x)) in row
                    .iter_mut()
                    .zip(logits.slice(ndarray::s![bi, i, ..]))
                    .enumerate()
                {
                    let x = x as f64;
                    if x.is_nan() || x == f64::INFINITY {
                        return Err(Error::NonFinite {
                            arg: "logits",
                            index: (bi * l + i) * v + k,
                            value: x,
                        });
                    }
                    *r = if allowed[k] { x } else { f64::NEG_INFINITY };
                }
                out[[bi, i]] = reference_row(&row, &mut p, spec, rng.uniform(keys[bi], i), bi, i)?;
            }
        }
        Ok(())
    }
}

/// One row of the contract in `f64` (`row` has excluded ids at `-inf`; `p` is scratch).
fn reference_row(
    row: &[f64],
    p: &mut [f64],
    spec: &RowSpec,
    u: f64,
    b: usize,
    i: usize,
) -> Result<RowSummary> {
    use crate::math::{logsumexp, softmax_into};
    let no_mass = || {
        Error::invalid(
            "logits",
            format!("row ({b}, {i}) has no finite allowed logit"),
        )
    };
    let lse = logsumexp(row).map_err(|_| no_mass())?;
    softmax_into(row, p).map_err(|_| no_mass())?;
    let mut argmax = 0usize;
    for (k, &x) in row.iter().enumerate() {
        if x > row[argmax] {
            argmax = k;
        }
    }
    let mut s = RowSummary {
        argmax: argmax as u32,
        max: row[argmax] as f32,
        logsumexp: lse,
        token: argmax as u32,
        token_logprob: row[argmax] - lse,
        ..RowSummary::default()
    };
    if spec.margin {
        let second = p
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != argmax)
            .map(|(_, &q)| q)
            .fold(0.0f64, f64::max);
        s.margin = p[argmax] - second;
    }
    if spec.entropy {
        s.entropy = -p
            .iter()
            .filter(|&&q| q > 0.0)
            .map(|&q| q * q.ln())
            .sum::<f64>();
    }
    if spec.temperature > 0.0 {
        let tempered: Vec<f64> = row.iter().map(|&x| x / spec.temperature).collect();
        let d = crate::rng::sample_logits_inverse_cdf(&tempered, u).map_err(|_| no_mass())?;
        s.token = d.token;
        s.token_logprob = row[d.token as usize] - lse;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3};

    #[test]
    fn reference_row_contract() {
        // p = [0.5, 0.25, 0.25, 0] with id 3 excluded.
        let l = [2f32.ln(), 0.0, 0.0, 5.0];
        let logits = Array3::from_shape_vec((1, 1, 4), l.to_vec()).unwrap();
        let spec = RowSpec {
            temperature: 1.0,
            excluded: vec![3],
            entropy: true,
            margin: true,
        };
        let rng = BatchRng {
            seed: 1,
            streams: &[9],
            step: 0,
            purpose: Purpose::CATEGORICAL,
        };
        let mut out = Array2::from_elem((1, 1), RowSummary::default());
        ReferenceBackend
            .summarize(logits.view(), None, &spec, &rng, out.view_mut())
            .unwrap();
        let s = out[[0, 0]];
        assert_eq!(s.argmax, 0);
        assert!((s.logsumexp - 4f64.ln()).abs() < 1e-7);
        assert!((s.margin - 0.25).abs() < 1e-7);
        let h = -(0.5f64 * 0.5f64.ln() + 0.5 * 0.25f64.ln());
        assert!((s.entropy - h).abs() < 1e-7);
        assert_ne!(s.token, 3);
        let want = [0.5f64, 0.25, 0.25][s.token as usize].ln();
        assert!((s.token_logprob - want).abs() < 1e-7);
        // The draw is the inverse CDF at the documented uniform.
        let u = rng.uniform(RngKey::for_stream(1, 9), 0);
        let expect = if u < 0.5 {
            0
        } else if u < 0.75 {
            1
        } else {
            2
        };
        assert_eq!(s.token, expect);
    }

    #[test]
    fn bad_arguments() {
        let logits = Array3::<f32>::zeros((2, 3, 4));
        let mut out = Array2::from_elem((2, 3), RowSummary::default());
        let rng = BatchRng {
            seed: 0,
            streams: &[0, 1],
            step: 0,
            purpose: Purpose::CATEGORICAL,
        };
        let spec = RowSpec::default();
        let bad_t = RowSpec {
            temperature: -1.0,
            ..RowSpec::default()
        };
        let bad_ex = RowSpec {
            excluded: vec![4],
            ..RowSpec::default()
        };
        let short = BatchRng {
            streams: &[0],
            ..rng
        };
        let b = ReferenceBackend;
        assert!(
            b.summarize(logits.view(), None, &bad_t, &rng, out.view_mut())
                .is_err()
        );
        assert!(
            b.summarize(logits.view(), None, &bad_ex, &rng, out.view_mut())
                .is_err()
        );
        assert!(
            b.summarize(logits.view(), None, &spec, &short, out.view_mut())
                .is_err()
        );
        let mut small = Array2::from_elem((2, 2), RowSummary::default());
        assert!(
            b.summarize(logits.view(), None, &spec, &rng, small.view_mut())
                .is_err()
        );
        let mut nan = logits.clone();
        nan[[1, 2, 0]] = f32::NAN;
        assert!(
            b.summarize(nan.view(), None, &spec, &rng, out.view_mut())
                .is_err()
        );
        let all_ex = RowSpec {
            excluded: vec![0, 1, 2, 3],
            ..RowSpec::default()
        };
        assert!(
            b.summarize(logits.view(), None, &all_ex, &rng, out.view_mut())
                .is_err()
        );
        // Unselected rows are not read: a NaN there is fine.
        let mut sel = Array2::from_elem((2, 3), true);
        sel[[1, 2]] = false;
        assert!(
            b.summarize(nan.view(), Some(sel.view()), &spec, &rng, out.view_mut())
                .is_ok()
        );
    }
}
