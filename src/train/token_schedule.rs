//! Per-token masking schedules and token-level loss weights.
//!
//! A [`TokenSchedule`] gives every position `i` of a clean sequence its own survival
//! probability `α_i(t)` (the probability that the token is still unmasked at time `t`) and
//! its derivative. Masking each position independently with probability `1 − α_i(t)` and
//! weighting its cross-entropy by `w_i(t) = −α_i'(t)/(1 − α_i(t))` gives the continuous-time
//! NELBO of a masked diffusion with state-dependent rates (Shi et al. 2024, MD4 §5 "GenMD4",
//! eq. 11):
//!
//! ```text
//! NELBO(x_0) = ∫_0^1 E_{x_t}[ Σ_{i masked} w_i(t) · (−log p_θ(x_0^i | x_t)) ] dt.
//! ```
//!
//! Implementations: [`SharedSchedule`] (every position follows one [`Schedule`]),
//! [`Spindle`] (DiffusionBERT, He et al. 2023) and [`GenMd4`] (MD4's per-token-type
//! polynomial). [`cart_weights`] is Dream's context-adaptive token-level reweighting (CART).
//! Every schedule here is exact at the endpoints: `α_i(0) = 1`, `α_i(1) = 0`.

use std::f64::consts::PI;

use crate::error::{Error, Result};
use crate::schedule::Schedule;
use crate::validate;

/// A per-position masking schedule (module docs).
pub trait TokenSchedule: Send + Sync + std::fmt::Debug {
    /// Number of token ids `V` the schedule accepts in `x0`.
    fn vocab_size(&self) -> usize;

    /// `alpha[i] = α_i(t)` and `dalpha[i] = α_i'(t)` for every position of `x0`.
    ///
    /// Errors: `t ∉ [0, 1]`, `x0` empty, a token `≥ V`, outputs of another length.
    fn alphas(&self, t: f64, x0: &[u32], alpha: &mut [f64], dalpha: &mut [f64]) -> Result<()>;
}

fn check_io(t: f64, x0: &[u32], v: usize, a: &[f64], da: &[f64]) -> Result<()> {
    validate::time("t", t)?;
    if x0.is_empty() {
        return Err(Error::invalid("x0", "empty sequence (L = 0)"));
    }
    validate::tokens("x0", x0, v)?;
    validate::len("alpha", a.len(), x0.len())?;
    validate::len("dalpha", da.len(), x0.len())
}

/// Per-position masking probabilities `out[i] = 1 − α_i(t)` (for
/// [`bernoulli_mask`](super::masks::bernoulli_mask)) and NELBO weights
/// `weights[i] = −α_i'(t)/(1 − α_i(t))` (`+∞` where `α_i(t) = 1`).
///
/// Errors: those of [`TokenSchedule::alphas`], outputs of another length.
pub fn token_mask_probs_and_weights(
    schedule: &dyn TokenSchedule,
    t: f64,
    x0: &[u32],
    probs: &mut [f64],
    weights: &mut [f64],
) -> Result<()> {
    let mut da = vec![0.0; x0.len()];
    schedule.alphas(t, x0, probs, &mut da)?;
    validate::len("weights", weights.len(), x0.len())?;
    for ((p, w), &d) in probs.iter_mut().zip(weights.iter_mut()).zip(&da) {
        let m = 1.0 - *p;
        *w = if m > 0.0 { -d / m } else { f64::INFINITY };
        *p = m;
    }
    Ok(())
}

/// Every position follows the same [`Schedule`]: `α_i(t) = α(t)`.
#[derive(Clone, Copy, Debug)]
pub struct SharedSchedule<S> {
    schedule: S,
    vocab: usize,
}

impl<S: Schedule> SharedSchedule<S> {
    /// `schedule` for token ids in `0..vocab` (`vocab ≥ 2`).
    pub fn new(schedule: S, vocab: usize) -> Result<Self> {
        validate::vocab("vocab", vocab)?;
        Ok(SharedSchedule { schedule, vocab })
    }
}

impl<S: Schedule> TokenSchedule for SharedSchedule<S> {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn alphas(&self, t: f64, x0: &[u32], alpha: &mut [f64], dalpha: &mut [f64]) -> Result<()> {
        check_io(t, x0, self.vocab, alpha, dalpha)?;
        alpha.fill(self.schedule.alpha(t)?);
        dalpha.fill(self.schedule.alpha_derivative(t)?);
        Ok(())
    }
}

/// DiffusionBERT's spindle schedule (He et al. 2023, "DiffusionBERT", §4.2, eq. 9; code
/// `diffusion_word_freq.py`, `MaskDiffusion.noise_fn`):
///
/// ```text
/// α_i(t) = 1 − t + λ sin(πt) · (h(x_0^i) − h̄),   h̄ = (1/L) Σ_j h(x_0^j),
/// α_i'(t) = −1 + λπ cos(πt) · (h(x_0^i) − h̄),
/// ```
///
/// where `h(v)` is a per-token score (DiffusionBERT uses word-frequency logits, so frequent,
/// less informative tokens stay clean longer and informative ones are masked first), centred
/// on the sequence's mean as in the code. The base `1 − t` is the mutual-information schedule
/// `ᾱ_t = 1 − t/T` of D3PM that DiffusionBERT uses.
///
/// Differences from the code, on purpose: the code clips `α` to `[0, 0.999]`, which breaks
/// `α(0) = 1`; here the constructor requires `λπ (max h − min h) ≤ 1`, which makes every
/// `α_i` non-increasing with `α_i(0) = 1` and `α_i(1) = 0` **exactly** (`sin(πt)` is
/// evaluated as `sin(π min(t, 1 − t))`, exactly 0 at both ends), so no clipping is needed
/// and the per-token NELBO weights are non-negative.
#[derive(Clone, Debug, PartialEq)]
pub struct Spindle {
    lambda: f64,
    scores: Vec<f64>,
}

impl Spindle {
    /// The spindle schedule with strength `lambda ≥ 0` and per-token scores `scores[v]`
    /// (length `V ≥ 2`, finite).
    ///
    /// Errors: `lambda` negative or not finite; `scores` shorter than 2 or non-finite;
    /// `λπ (max h − min h) > 1` (the schedule would not be monotone).
    pub fn new(lambda: f64, scores: Vec<f64>) -> Result<Self> {
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(Error::invalid(
                "lambda",
                format!("{lambda} must be finite and ≥ 0"),
            ));
        }
        validate::vocab("scores", scores.len())?;
        validate::all_finite("scores", &scores)?;
        let (lo, hi) = scores
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &s| {
                (a.min(s), b.max(s))
            });
        if lambda * PI * (hi - lo) > 1.0 {
            return Err(Error::invalid(
                "lambda",
                format!(
                    "λπ(max h − min h) = {} > 1: α_i(t) would not be monotone; lower λ or \
                     rescale the scores",
                    lambda * PI * (hi - lo)
                ),
            ));
        }
        Ok(Spindle { lambda, scores })
    }
}

impl TokenSchedule for Spindle {
    fn vocab_size(&self) -> usize {
        self.scores.len()
    }
    fn alphas(&self, t: f64, x0: &[u32], alpha: &mut [f64], dalpha: &mut [f64]) -> Result<()> {
        check_io(t, x0, self.scores.len(), alpha, dalpha)?;
        let mean = x0.iter().map(|&x| self.scores[x as usize]).sum::<f64>() / x0.len() as f64;
        let s = (PI * t.min(1.0 - t)).sin();
        let c = (PI * t).cos();
        for ((a, da), &x) in alpha.iter_mut().zip(dalpha.iter_mut()).zip(x0) {
            let d = self.scores[x as usize] - mean;
            *a = ((1.0 - t) + self.lambda * s * d).clamp(0.0, 1.0);
            *da = -1.0 + self.lambda * PI * c * d;
        }
        Ok(())
    }
}

/// MD4's GenMD4 state-dependent schedule (Shi et al. 2024, §5, eq. 10): a polynomial
/// exponent `w_v > 0` per token type, `α_v(t) = 1 − t^{w_v}`, `α_v'(t) = −w_v t^{w_v − 1}`,
/// so the per-token NELBO weight is `w_v / t`. Exact endpoints: `α_v(0) = 1`, `α_v(1) = 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct GenMd4 {
    exponents: Vec<f64>,
}

impl GenMd4 {
    /// Exponents `w_v` for every token id (length `V ≥ 2`, each finite and `> 0`).
    pub fn new(exponents: Vec<f64>) -> Result<Self> {
        validate::vocab("exponents", exponents.len())?;
        for (v, &w) in exponents.iter().enumerate() {
            if !(w.is_finite() && w > 0.0) {
                return Err(Error::invalid(
                    "exponents",
                    format!("exponents[{v}] = {w} must be finite and > 0"),
                ));
            }
        }
        Ok(GenMd4 { exponents })
    }
}

impl TokenSchedule for GenMd4 {
    fn vocab_size(&self) -> usize {
        self.exponents.len()
    }
    fn alphas(&self, t: f64, x0: &[u32], alpha: &mut [f64], dalpha: &mut [f64]) -> Result<()> {
        check_io(t, x0, self.exponents.len(), alpha, dalpha)?;
        for ((a, da), &x) in alpha.iter_mut().zip(dalpha.iter_mut()).zip(x0) {
            let w = self.exponents[x as usize];
            *a = 1.0 - t.powf(w);
            *da = if t == 0.0 {
                if w < 1.0 {
                    f64::NEG_INFINITY
                } else if w == 1.0 {
                    -1.0
                } else {
                    0.0
                }
            } else {
                -w * t.powf(w - 1.0)
            };
        }
        Ok(())
    }
}

/// Dream's context-adaptive token-level reweighting, CART (Ye et al. 2025, "Dream 7B", §3):
/// the weight of a masked position `n` measures how much clean context surrounds it,
///
/// ```text
/// w_n = ½ Σ_{i : x_t^i unmasked} Geo(p, |n − i| − 1),   Geo(p, d) = (1 − p)^d p,
/// ```
///
/// so a masked token next to clean tokens (easy, well determined) weighs more than one in a
/// long masked run. Unmasked positions get `w = 0` (they carry no loss). Computed in `O(L)`
/// by two sweeps: `A_n = (1 − p) A_{n−1} + p·1[unmasked_{n−1}]` from the left, and the
/// mirror image from the right. CART replaces the time weight `w(t)`; the result is a
/// training objective, not a bound.
///
/// Errors: `masked` empty, `p ∉ (0, 1]`, `out` of another length.
///
/// ```
/// use discrete_diffusion::train::token_schedule::cart_weights;
/// let mut w = [0.0; 4];
/// cart_weights(&[false, true, true, false], 0.5, &mut w)?;
/// // position 1: ½(Geo(0) from 0 + Geo(1) from 3) = ½(0.5 + 0.25)
/// assert!((w[1] - 0.375).abs() < 1e-15 && w[0] == 0.0);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn cart_weights(masked: &[bool], p: f64, out: &mut [f64]) -> Result<()> {
    if masked.is_empty() {
        return Err(Error::invalid("masked", "empty sequence (L = 0)"));
    }
    if !(p > 0.0 && p <= 1.0) {
        return Err(Error::invalid("p", format!("{p} must lie in (0, 1]")));
    }
    validate::len("out", out.len(), masked.len())?;
    let q = 1.0 - p;
    let mut acc = 0.0;
    for n in 0..masked.len() {
        if n > 0 {
            acc = q * acc + if masked[n - 1] { 0.0 } else { p };
        }
        out[n] = acc;
    }
    acc = 0.0;
    for n in (0..masked.len()).rev() {
        if n + 1 < masked.len() {
            acc = q * acc + if masked[n + 1] { 0.0 } else { p };
        }
        out[n] = if masked[n] { 0.5 * (out[n] + acc) } else { 0.0 };
    }
    Ok(())
}
