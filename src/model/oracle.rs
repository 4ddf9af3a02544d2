//! Exact posterior oracles and the [`Denoiser`] that wraps them (DESIGN §4, "exact oracles").
//!
//! Under a per-token forward kernel the noisy sequence factorises given the clean one,
//!
//! ```text
//! q(x_t | x_0) = Π_i q(x_t^i | x_0^i),
//! ```
//!
//! so for a known data law `p(x_0)` the marginal and the per-position posteriors are
//!
//! ```text
//! p_t(x_t)              = Σ_{x_0} p(x_0) Π_i q(x_t^i | x_0^i),
//! p(x_0^i = v | x_t)    = Σ_{x_0 : x_0^i = v} p(x_0) Π_j q(x_t^j | x_0^j) / p_t(x_t).
//! ```
//!
//! [`ExactPosterior`] is this contract (with leave-one-out posteriors
//! `p(x_0^i | x_t^{−i})`, the exact concrete score `p_t(x_t^{i←y}) / p_t(x_t)` and exact
//! joint draws from `p(x_0 | x_t)`); it is implemented by
//! [`EnumerationOracle`](super::enumeration::EnumerationOracle) (explicit sums over `V^L`
//! sequences) and [`MarkovChainOracle`](super::markov::MarkovChainOracle) (forward–backward
//! on the hidden Markov model that a Markov prior and a per-token channel form; Rabiner
//! 1989). [`OracleDenoiser`] turns either into a [`Denoiser`] whose logits are the exact
//! `ln p(x_0^i = v | x_t)`, the ground truth against which samplers and losses are tested.
//!
//! References: L. R. Rabiner, "A tutorial on hidden Markov models and selected applications
//! in speech recognition", Proc. IEEE 77(2), 1989; DESIGN §4.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3};

use crate::error::{Error, Result};
use crate::kernel::{Channel, NoiseProcess};
use crate::model::Denoiser;
use crate::rng::CounterRng;
use crate::validate;

/// A clean-data law `p(x_0)` over sequences of a fixed length `L` on `V` states whose
/// posteriors under any per-token channel are computed exactly (in f64).
///
/// The state space `V` is the channel's: it may include states that the clean data never
/// uses (the mask token of an absorbing kernel, at any index); the prior gives them
/// probability 0 and the posterior does too.
pub trait ExactPosterior: Send + Sync {
    /// Number of states `V` (including states of zero prior mass, such as a mask).
    fn vocab_size(&self) -> usize;

    /// Sequence length `L`.
    fn seq_len(&self) -> usize;

    /// `ln p(x_0)`; `-inf` for sequences outside the support.
    ///
    /// Errors: `x0` of length `≠ L`, or a token `≥ V`.
    fn log_prob_x0(&self, x0: &[u32]) -> Result<f64>;

    /// `ln p_t(x_t) = ln Σ_{x_0} p(x_0) Π_i q(x_t^i | x_0^i)` where
    /// `q(x_t^i = y | x_0^i = v) = channel.likelihood(y)[v]`; `-inf` when `x_t` is impossible.
    ///
    /// Errors: `xt` of length `≠ L`, a token `≥ V`, a channel with another `V`, or a channel
    /// likelihood that is negative or not finite.
    fn log_prob_xt(&self, xt: &[u32], channel: &dyn Channel) -> Result<f64>;

    /// `out[i, v] = p(x_0^i = v | x_t)`, the exact per-position posterior (each row sums to 1).
    ///
    /// Errors: as [`log_prob_xt`](Self::log_prob_xt), `out` not of shape `[L, V]`, and
    /// [`Error::ZeroProbability`] when `p_t(x_t) = 0` (the posterior is undefined).
    fn posterior_x0(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        out: ArrayViewMut2<'_, f64>,
    ) -> Result<()>;

    /// An exact draw `x_0 ~ p(x_0)` by inverse-CDF sampling, consuming uniforms from `rng`
    /// (one per token for a Markov chain, one per sequence for an enumeration).
    fn sample_x0(&self, rng: &mut CounterRng) -> Vec<u32>;

    /// Leave-one-out posterior `out[i, v] = p(x_0^i = v | x_t^{−i})`: the law of the clean
    /// token at `i` given every noisy token except the one at `i`. By Bayes,
    /// `p(x_0^i = v | x_t) ∝ p(x_0^i = v | x_t^{−i}) · q(x_t^i | v)`; this is what the
    /// concrete score needs (see [`concrete_score`](Self::concrete_score)).
    ///
    /// Errors: as [`posterior_x0`](Self::posterior_x0), including
    /// [`Error::ZeroProbability`] when `p_t(x_t) = 0`.
    fn posterior_x0_loo(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        out: ArrayViewMut2<'_, f64>,
    ) -> Result<()>;

    /// An exact draw of a whole clean sequence `x_0 ~ p(x_0 | x_t)` (jointly, not per
    /// position), consuming uniforms from `rng`. For the Markov chain this is forward
    /// filtering, backward sampling; for an enumeration one inverse-CDF draw.
    ///
    /// Errors: as [`posterior_x0`](Self::posterior_x0).
    fn sample_x0_given_xt(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        rng: &mut CounterRng,
    ) -> Result<Vec<u32>>;

    /// The exact concrete score (Meng et al. 2022; Lou et al. 2024, SEDD) of `p_t` at `x_t`
    /// over single-token changes:
    ///
    /// ```text
    /// out[i, y] = p_t(x_t with x_t^i ← y) / p_t(x_t)
    ///           = Σ_v λ_i(v) q(y | v) / Σ_v λ_i(v) q(x_t^i | v),   λ_i = p(x_0^i | x_t^{−i}),
    /// ```
    ///
    /// with `q(y | v) = channel.transition_row(v)[y]`; the diagonal `out[i, x_t^i]` is 1.
    /// Cost: the leave-one-out posterior plus `O(L·V²)`.
    ///
    /// Errors: as [`posterior_x0_loo`](Self::posterior_x0_loo), and a channel row that is
    /// negative or not finite.
    fn concrete_score(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        let (l, v) = (self.seq_len(), self.vocab_size());
        check_posterior_out(&out, l, v)?;
        let mut lam = ndarray::Array2::<f64>::zeros((l, v));
        self.posterior_x0_loo(xt, channel, lam.view_mut())?;
        let mut row = vec![0.0; v];
        for (i, &y) in xt.iter().enumerate() {
            let mut acc = out.row_mut(i);
            acc.fill(0.0);
            for (u, &w) in lam.row(i).iter().enumerate() {
                if w == 0.0 {
                    continue;
                }
                channel.transition_row(u as u32, &mut row)?;
                check_channel_values(&row)?;
                acc.iter_mut().zip(&row).for_each(|(a, &q)| *a += w * q);
            }
            let denom = acc[y as usize];
            if denom <= 0.0 {
                out.fill(0.0);
                return Err(zero_evidence());
            }
            acc.mapv_inplace(|a| a / denom);
        }
        Ok(())
    }
}

/// Every value of a channel row or column is finite and non-negative.
fn check_channel_values(row: &[f64]) -> Result<()> {
    for (v, &q) in row.iter().enumerate() {
        if !q.is_finite() {
            return Err(Error::NonFinite {
                arg: "channel",
                index: v,
                value: q,
            });
        }
        if q < 0.0 {
            return Err(Error::invalid(
                "channel",
                format!("entry {v} of a channel row is negative ({q})"),
            ));
        }
    }
    Ok(())
}

/// Per-position channel likelihoods of an observed sequence, each row rescaled by its
/// maximum: `e[i, v] = q(x_t^i | x_0^i = v) / m_i`, `log_scale = Σ_i ln m_i`.
///
/// Rescaling by the row maximum keeps every recursion that multiplies emissions far from
/// underflow (it is the emission half of Rabiner's scaling; the other half is the
/// per-step normalisation of the forward variables).
#[derive(Debug, Clone)]
pub(crate) struct Emissions {
    /// `[L, V]` row-major, rows scaled so their maximum is 1.
    pub e: Vec<f64>,
    /// `Σ_i ln m_i`; `-inf` if some position is impossible under every clean state.
    pub log_scale: f64,
}

impl Emissions {
    /// Whether some position has `q(x_t^i | v) = 0` for every `v` (then `p_t(x_t) = 0`).
    pub fn impossible(&self) -> bool {
        self.log_scale == f64::NEG_INFINITY
    }
}

/// Validate `xt` against `(L, V)` and the channel, and collect its scaled emissions.
pub(crate) fn emissions(
    xt: &[u32],
    channel: &dyn Channel,
    seq_len: usize,
    vocab: usize,
) -> Result<Emissions> {
    validate::len("xt", xt.len(), seq_len)?;
    if channel.vocab_size() != vocab {
        return Err(Error::shape(
            "channel",
            format!("vocab_size {vocab} (the oracle's)"),
            format!("vocab_size {}", channel.vocab_size()),
        ));
    }
    validate::tokens("xt", xt, vocab)?;
    let mut e = vec![0.0; seq_len * vocab];
    let mut log_scale = 0.0;
    for (&y, row) in xt.iter().zip(e.chunks_exact_mut(vocab)) {
        channel.likelihood(y, row)?;
        check_channel_values(row)?;
        let m = row.iter().fold(0.0f64, |m, &q| m.max(q));
        if m > 0.0 {
            let inv = 1.0 / m;
            row.iter_mut().for_each(|q| *q *= inv);
            log_scale += m.ln();
        } else {
            log_scale = f64::NEG_INFINITY;
        }
    }
    Ok(Emissions { e, log_scale })
}

impl Emissions {
    /// `ln e[i, v]` for every entry (`-inf` where the likelihood is 0): the oracles combine
    /// emissions in log space, because a product of a few likelihoods far from the row
    /// maximum (a nearly deterministic channel) underflows even after the row scaling.
    pub fn log(&self) -> Vec<f64> {
        self.e.iter().map(|&e| e.ln()).collect()
    }
}

/// `ln Σ_j exp(x_j)` by a maximum shift; `-inf` when every term is `-inf` (or there are
/// none). Inputs are never `+inf` or NaN in the oracles.
pub(crate) fn log_sum_exp(terms: &[f64]) -> f64 {
    let m = terms.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + terms.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
}

/// `out_j = exp(x_j − max_j x_j)`: unnormalised weights whose largest is exactly 1 (all 0
/// when every term is `-inf`). Returns the maximum.
pub(crate) fn exp_shifted(terms: &[f64], out: &mut [f64]) -> f64 {
    let m = terms.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    if m == f64::NEG_INFINITY {
        out.iter_mut().for_each(|o| *o = 0.0);
    } else {
        out.iter_mut()
            .zip(terms)
            .for_each(|(o, &x)| *o = (x - m).exp());
    }
    m
}

/// Check that `out` has shape `[L, V]`.
pub(crate) fn check_posterior_out(
    out: &ArrayViewMut2<'_, f64>,
    seq_len: usize,
    vocab: usize,
) -> Result<()> {
    if out.dim() != (seq_len, vocab) {
        return Err(Error::shape(
            "out",
            format!("[{seq_len}, {vocab}]"),
            format!("{:?}", out.shape()),
        ));
    }
    Ok(())
}

/// The error returned when a posterior is asked for an `x_t` of probability zero.
pub(crate) fn zero_evidence() -> Error {
    Error::ZeroProbability {
        what: "posterior p(x_0 | x_t): the observed x_t has p_t(x_t) = 0 under this oracle and channel"
            .into(),
    }
}

/// Inverse-CDF draw from unnormalised non-negative `masses` with uniform `u ∈ [0, 1)`:
/// the first index `j` with `Σ_{i ≤ j} masses[i] > u · Σ masses`. Never returns an index of
/// zero mass; if round-off leaves no index (u·total rounded up to total), the last index
/// of positive mass. Callers guarantee a positive total.
pub(crate) fn inverse_cdf(masses: &[f64], u: f64) -> usize {
    // The oracles build `masses` from validated probabilities (finite, non-negative, with a
    // positive total) and `u` from `CounterRng::uniform` (in [0, 1)), so the shared sampler
    // cannot fail here; the fallback keeps this helper total anyway.
    match crate::rng::categorical::sample_masses(masses, u) {
        Ok(d) => d.token as usize,
        Err(_) => masses.iter().rposition(|&m| m > 0.0).unwrap_or(0),
    }
}

/// A [`Denoiser`] whose logits are the exact posterior of an [`ExactPosterior`] under a
/// [`NoiseProcess`]: for batch row `b`,
///
/// ```text
/// out[b, i, v] = ln p(x_0^i = v | x_t = tokens[b]),  channel = process.channel(times[b]),
/// ```
///
/// rounded to f32, with `-inf` where the posterior is exactly 0 (DESIGN §4). Batch rows are
/// independent, so results never depend on batch composition.
#[derive(Debug, Clone)]
pub struct OracleDenoiser<O, P> {
    oracle: O,
    process: P,
}

impl<O: ExactPosterior, P: NoiseProcess> OracleDenoiser<O, P> {
    /// Wrap `oracle` and `process`; their vocabulary sizes must agree.
    pub fn new(oracle: O, process: P) -> Result<Self> {
        if oracle.vocab_size() != process.vocab_size() {
            return Err(Error::shape(
                "process",
                format!("vocab_size {} (the oracle's)", oracle.vocab_size()),
                format!("vocab_size {}", process.vocab_size()),
            ));
        }
        Ok(OracleDenoiser { oracle, process })
    }

    /// The wrapped oracle.
    pub fn oracle(&self) -> &O {
        &self.oracle
    }

    /// The wrapped noise process.
    pub fn process(&self) -> &P {
        &self.process
    }

    /// Sequence length `L` the oracle is defined on.
    pub fn seq_len(&self) -> usize {
        self.oracle.seq_len()
    }

    /// `out[b, i, v] = p(x_0^i = v | x_t = tokens[b])` in f64 at `t = times[b]`.
    ///
    /// Shapes: `tokens [B, L]` with `B ≥ 1` and `L` the oracle's length, `times [B]` in
    /// `[0, 1]` (on the process's grid for a discrete process), `out [B, L, V]`. Errors on
    /// any mismatch, a token `≥ V`, a bad time, or a row with `p_t(x_t) = 0`.
    pub fn probabilities(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f64>,
    ) -> Result<()> {
        let (b, l, v) = self.check_shapes(&tokens, &times, out.dim())?;
        let mut row = vec![0u32; l];
        for bi in 0..b {
            let t = times[bi];
            let channel = self.process.channel(t)?;
            row.iter_mut()
                .zip(tokens.row(bi).iter())
                .for_each(|(r, &x)| *r = x);
            let view = out.index_axis_mut(ndarray::Axis(0), bi);
            debug_assert_eq!(view.dim(), (l, v));
            self.oracle.posterior_x0(&row, channel.as_ref(), view)?;
        }
        Ok(())
    }

    fn check_shapes(
        &self,
        tokens: &ArrayView2<'_, u32>,
        times: &ArrayView1<'_, f64>,
        out_dim: (usize, usize, usize),
    ) -> Result<(usize, usize, usize)> {
        let (b, l) = tokens.dim();
        let v = self.oracle.vocab_size();
        let len = self.oracle.seq_len();
        if b == 0 {
            return Err(Error::invalid("tokens", "empty batch (B = 0)"));
        }
        if l != len {
            return Err(Error::shape(
                "tokens",
                format!("[B, {len}]"),
                format!("[{b}, {l}]"),
            ));
        }
        validate::len("times", times.len(), b)?;
        if out_dim != (b, l, v) {
            return Err(Error::shape(
                "out",
                format!("[{b}, {l}, {v}]"),
                format!("[{}, {}, {}]", out_dim.0, out_dim.1, out_dim.2),
            ));
        }
        validate::tokens("tokens", tokens.iter(), v)?;
        for (i, &t) in times.iter().enumerate() {
            if !(0.0..=1.0).contains(&t) {
                return Err(Error::invalid(
                    "times",
                    format!("times[{i}] = {t} is outside [0, 1]"),
                ));
            }
        }
        Ok((b, l, v))
    }
}

impl<O: ExactPosterior, P: NoiseProcess> Denoiser for OracleDenoiser<O, P> {
    fn vocab_size(&self) -> usize {
        self.oracle.vocab_size()
    }

    /// `out[b, i, v] = ln p(x_0^i = v | x_t = tokens[b])` as f32 (exactly normalised in
    /// f64 before rounding), `-inf` where the posterior is 0. Validation as
    /// [`OracleDenoiser::probabilities`].
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let (b, l, v) = self.check_shapes(&tokens, &times, out.dim())?;
        let mut row = vec![0u32; l];
        let mut post = ndarray::Array2::<f64>::zeros((l, v));
        for bi in 0..b {
            let channel = self.process.channel(times[bi])?;
            row.iter_mut()
                .zip(tokens.row(bi).iter())
                .for_each(|(r, &x)| *r = x);
            self.oracle
                .posterior_x0(&row, channel.as_ref(), post.view_mut())?;
            let mut dst = out.index_axis_mut(ndarray::Axis(0), bi);
            dst.zip_mut_with(&post, |o, &p| {
                *o = if p > 0.0 {
                    p.ln() as f32
                } else {
                    f32::NEG_INFINITY
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_cdf_skips_zero_mass() {
        let m = [0.0, 1.0, 0.0, 3.0, 0.0];
        assert_eq!(inverse_cdf(&m, 0.0), 1);
        assert_eq!(inverse_cdf(&m, 0.2499), 1);
        assert_eq!(inverse_cdf(&m, 0.25), 3);
        assert_eq!(inverse_cdf(&m, 1.0 - f64::EPSILON / 2.0), 3);
        assert_eq!(inverse_cdf(&m, 1.0), 3);
    }
}
