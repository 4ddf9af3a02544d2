//! Reverse CTMC rates from an exact oracle, an x0-denoiser or a concrete score
//! (survey §II-C/D; Campbell et al. 2022, Prop. 1; Lou et al. 2024, SEDD eq. 3; Ou et al.
//! 2024, RADD Thm. 1).
//!
//! For a factorised forward CTMC `Q_t = σ(t)·Q` (see [`Ctmc`]) the time reversal jumps one
//! token at a time with rates
//!
//! ```text
//! R̂_t(x, x^{i←y}) = σ(t) · Q[y, x^i] · p_t(x^{i←y}) / p_t(x),     y ≠ x^i,
//! ```
//!
//! so one position needs only the single-token ratios `p_t(x^{i←y})/p_t(x)` (the concrete
//! score). This module gets them three ways and hands them to
//! [`reverse_rate_row`]:
//!
//! * **concrete score** given directly (a SEDD-style network, or an oracle):
//!   [`reverse_rates_from_score`];
//! * **x0 posterior** `p(x_0^i | x_t)` (probabilities or a denoiser's logits), converted by
//!   [`concrete_score_from_x0`]: [`reverse_rates_from_x0`], [`reverse_rates_from_logits`],
//!   and whole sequences with [`reverse_rates_from_denoiser`];
//! * **exact oracle**: the exact concrete score of an [`ExactPosterior`] under the CTMC's
//!   channel at `t` ([`CtmcChannel`]): [`reverse_rates_exact`].
//!
//! Every per-position function is `O(V)` for a
//! [`MixtureGenerator`](crate::kernel::ctmc::MixtureGenerator) and works in the buffers of a
//! [`RateWorkspace`] (no allocation per call).

use ndarray::{Array1, Array2, Array3, ArrayViewMut2};

use crate::error::{Error, Result};
use crate::kernel::Channel;
use crate::kernel::ctmc::{Ctmc, RateGenerator, concrete_score_from_x0, reverse_rate_row};
use crate::math::softmax_into;
use crate::model::Denoiser;
use crate::model::oracle::ExactPosterior;
use crate::schedule::Schedule;
use crate::validate;

/// Work buffers of length `V` reused by every per-position conversion (no allocation per
/// call). One workspace per thread.
#[derive(Clone, Debug)]
pub struct RateWorkspace {
    pub(crate) probs: Vec<f64>,
    pub(crate) ratio: Vec<f64>,
    pub(crate) scratch: Vec<f64>,
}

impl RateWorkspace {
    /// Buffers for `V ≥ 2` states.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `v < 2`.
    pub fn new(v: usize) -> Result<Self> {
        validate::vocab("v", v)?;
        Ok(RateWorkspace {
            probs: vec![0.0; v],
            ratio: vec![0.0; v],
            scratch: vec![0.0; v],
        })
    }

    /// The number of states `V` the buffers hold.
    pub fn vocab_size(&self) -> usize {
        self.probs.len()
    }

    /// The concrete score (ratios) written by the last `*_from_x0`/`*_from_logits` call.
    pub fn ratio(&self) -> &[f64] {
        &self.ratio
    }

    /// The x0 probabilities written by the last [`reverse_rates_from_logits`] call.
    pub fn probs(&self) -> &[f64] {
        &self.probs
    }

    fn check(&self, v: usize) -> Result<()> {
        if self.probs.len() != v {
            return Err(Error::shape(
                "workspace",
                format!("buffers of length {v} (the generator's V)"),
                format!("length {}", self.probs.len()),
            ));
        }
        Ok(())
    }
}

/// `out[y] = R̂(x, y) = σ·Q[y, x]·ratio[y]` (`y ≠ x`), `out[x] = −Σ_{y≠x} out[y]`: the
/// reverse rate row from a concrete score given directly (SEDD's `Graph.reverse_rate`
/// with `σ` the noise rate; the score's entry at `x` is ignored).
///
/// # Errors
/// Shapes (`ratio`, `out`, workspace of length `V`), `x ≥ V`, `σ` negative or not finite,
/// a negative or non-finite ratio.
pub fn reverse_rates_from_score<G: RateGenerator + ?Sized>(
    generator: &G,
    sigma: f64,
    x: u32,
    ratio: &[f64],
    ws: &mut RateWorkspace,
    out: &mut [f64],
) -> Result<()> {
    ws.check(generator.vocab_size())?;
    reverse_rate_row(generator, sigma, x, ratio, &mut ws.scratch, out)
}

/// The reverse rate row at a position in state `x` from its clean-token posterior
/// `p_x0 = p(x_0^i | x_t)`: `ratio = concrete_score_from_x0(s, x, p_x0)` at total noise
/// `sigma_bar = σ̄(t)`, then `R̂ = σ·Q[·, x]ᵀ ⊙ ratio` (Campbell et al. 2022, eq. 5 with the
/// x0-parameterisation; RADD Thm. 1 for absorbing). With the exact posterior this is the
/// exact time reversal. The ratios stay in [`RateWorkspace::ratio`].
///
/// # Errors
/// As [`concrete_score_from_x0`] and [`reverse_rates_from_score`].
pub fn reverse_rates_from_x0<G: RateGenerator + ?Sized>(
    generator: &G,
    sigma: f64,
    sigma_bar: f64,
    x: u32,
    p_x0: &[f64],
    ws: &mut RateWorkspace,
    out: &mut [f64],
) -> Result<()> {
    ws.check(generator.vocab_size())?;
    concrete_score_from_x0(
        generator,
        sigma_bar,
        x,
        p_x0,
        &mut ws.scratch,
        &mut ws.ratio,
    )?;
    reverse_rate_row(generator, sigma, x, &ws.ratio, &mut ws.scratch, out)
}

/// [`reverse_rates_from_x0`] from a denoiser's logits at one position: `p_x0 =
/// softmax(logits)` in f64 (`-inf` entries are impossible states), kept in
/// [`RateWorkspace::probs`].
///
/// # Errors
/// As [`reverse_rates_from_x0`]; NaN/`+inf` logits or no finite logit; wrong lengths.
pub fn reverse_rates_from_logits<G: RateGenerator + ?Sized>(
    generator: &G,
    sigma: f64,
    sigma_bar: f64,
    x: u32,
    logits: &[f32],
    ws: &mut RateWorkspace,
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    ws.check(v)?;
    validate::len("logits", logits.len(), v)?;
    softmax_into(logits, &mut ws.probs)?;
    let RateWorkspace {
        probs,
        ratio,
        scratch,
    } = ws;
    concrete_score_from_x0(generator, sigma_bar, x, probs, scratch, ratio)?;
    reverse_rate_row(generator, sigma, x, ratio, scratch, out)
}

/// The reverse rate rows of a whole sequence from one denoiser call:
/// `out[i, ·] = R̂_t(x, x^{i←·})` for every position `i`, from the softmax of
/// `denoiser.logits(tokens, t)` (one function evaluation).
///
/// # Errors
/// `t ∉ [0, 1]`, `σ(t)` infinite, token/shape errors, denoiser errors, and the errors of
/// [`reverse_rates_from_logits`].
pub fn reverse_rates_from_denoiser<G, S, D>(
    ctmc: &Ctmc<G, S>,
    denoiser: &D,
    tokens: &[u32],
    t: f64,
    out: ArrayViewMut2<'_, f64>,
) -> Result<()>
where
    G: RateGenerator,
    S: Schedule,
    D: Denoiser + ?Sized,
{
    let v = ctmc.vocab_size();
    let l = tokens.len();
    check_rows_out(&out, l, v)?;
    if denoiser.vocab_size() != v {
        return Err(Error::shape(
            "denoiser",
            format!("vocab_size {v} (the generator's)"),
            format!("vocab_size {}", denoiser.vocab_size()),
        ));
    }
    let logits = denoiser_logits(denoiser, tokens, t, v)?;
    rates_from_logit_rows(ctmc, &logits, tokens, t, out)
}

/// Reverse rate rows of a sequence from precomputed logits `[L, V]` (e.g. a cached
/// denoiser output).
pub(crate) fn rates_from_logit_rows<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    logits: &Array2<f32>,
    tokens: &[u32],
    t: f64,
    mut out: ArrayViewMut2<'_, f64>,
) -> Result<()> {
    let v = ctmc.vocab_size();
    let (sigma, sigma_bar) = rate_and_total(ctmc, t)?;
    let mut ws = RateWorkspace::new(v)?;
    let mut row = vec![0.0; v];
    for (i, &x) in tokens.iter().enumerate() {
        let lrow = logits.row(i);
        let lrow = lrow
            .as_slice()
            .ok_or_else(|| Error::invalid("logits", "not contiguous"))?;
        reverse_rates_from_logits(
            ctmc.generator(),
            sigma,
            sigma_bar,
            x,
            lrow,
            &mut ws,
            &mut row,
        )?;
        out.row_mut(i).assign(&ndarray::ArrayView1::from(&row[..]));
    }
    Ok(())
}

/// `(σ(t), σ̄(t))`, with an error if the rate is infinite.
pub(crate) fn rate_and_total<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    t: f64,
) -> Result<(f64, f64)> {
    validate::time("t", t)?;
    let sigma = ctmc.noise_rate(t)?;
    if !sigma.is_finite() {
        return Err(Error::Numerical {
            what: "reverse rates",
            reason: format!("the noise rate σ(t) is {sigma} at t = {t}"),
        });
    }
    Ok((sigma, ctmc.total_noise(t)?))
}

/// One denoiser call on a single sequence: logits `[L, V]`.
pub(crate) fn denoiser_logits<D: Denoiser + ?Sized>(
    denoiser: &D,
    tokens: &[u32],
    t: f64,
    v: usize,
) -> Result<Array2<f32>> {
    validate::time("t", t)?;
    if tokens.is_empty() {
        return Err(Error::invalid("tokens", "empty sequence"));
    }
    validate::tokens("tokens", tokens, v)?;
    let l = tokens.len();
    let toks = ndarray::ArrayView2::from_shape((1, l), tokens)
        .map_err(|e| Error::invalid("tokens", e.to_string()))?;
    let times = Array1::from_elem(1, t);
    let mut out = Array3::<f32>::zeros((1, l, v));
    denoiser.logits(toks, times.view(), out.view_mut())?;
    out.into_shape_with_order((l, v))
        .map_err(|e| Error::invalid("logits", e.to_string()))
}

fn check_rows_out(out: &ArrayViewMut2<'_, f64>, l: usize, v: usize) -> Result<()> {
    if out.dim() != (l, v) {
        return Err(Error::shape(
            "out",
            format!("[{l}, {v}]"),
            format!("{:?}", out.shape()),
        ));
    }
    Ok(())
}

/// The channel `q(x_t = y | x_0 = v) = exp(σ̄ Q)[v, y]` of a [`RateGenerator`] at a fixed
/// total noise `σ̄`: what an [`ExactPosterior`] needs to condition on a CTMC's `x_t`.
#[derive(Clone, Copy, Debug)]
pub struct CtmcChannel<'a, G: ?Sized> {
    generator: &'a G,
    sigma_bar: f64,
}

impl<'a, G: RateGenerator + ?Sized> CtmcChannel<'a, G> {
    /// The channel `exp(σ̄ Q)` (`σ̄ ∈ [0, ∞]`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `sigma_bar` is NaN or negative.
    pub fn new(generator: &'a G, sigma_bar: f64) -> Result<Self> {
        if sigma_bar.is_nan() || sigma_bar < 0.0 {
            return Err(Error::invalid(
                "sigma_bar",
                format!("total noise must be in [0, ∞], got {sigma_bar}"),
            ));
        }
        Ok(CtmcChannel {
            generator,
            sigma_bar,
        })
    }

    /// The channel of a [`Ctmc`] at time `t`, `exp(σ̄(t) Q)`.
    pub fn at<S: Schedule>(ctmc: &'a Ctmc<G, S>, t: f64) -> Result<Self>
    where
        G: Sized,
    {
        CtmcChannel::new(ctmc.generator(), ctmc.total_noise(t)?)
    }

    /// The total noise `σ̄`.
    pub fn sigma_bar(&self) -> f64 {
        self.sigma_bar
    }
}

impl<G: RateGenerator + ?Sized> Channel for CtmcChannel<'_, G> {
    fn vocab_size(&self) -> usize {
        self.generator.vocab_size()
    }
    fn likelihood(&self, y: u32, out: &mut [f64]) -> Result<()> {
        self.generator.transition_col(y, self.sigma_bar, out)
    }
    fn transition_row(&self, x0: u32, out: &mut [f64]) -> Result<()> {
        self.generator.transition_row(x0, self.sigma_bar, out)
    }
}

/// The exact reverse rate rows of a sequence: `out[i, y] = σ(t)·Q[y, x^i]·p_t(x^{i←y})/p_t(x)`
/// with the oracle's exact concrete score under the channel `exp(σ̄(t) Q)`
/// ([`ExactPosterior::concrete_score`]); exact for every `y`, including ratios that an x0
/// posterior cannot give (see [`concrete_score_from_x0`]).
///
/// # Errors
/// `t`, `σ(t)` infinite, shape and token errors, an oracle with another `V` or `L`, and
/// [`Error::ZeroProbability`] when `p_t(x) = 0`.
pub fn reverse_rates_exact<G, S>(
    ctmc: &Ctmc<G, S>,
    oracle: &dyn ExactPosterior,
    tokens: &[u32],
    t: f64,
    mut out: ArrayViewMut2<'_, f64>,
) -> Result<()>
where
    G: RateGenerator,
    S: Schedule,
{
    let v = ctmc.vocab_size();
    let l = tokens.len();
    check_rows_out(&out, l, v)?;
    if oracle.vocab_size() != v || oracle.seq_len() != l {
        return Err(Error::shape(
            "oracle",
            format!("V = {v}, L = {l}"),
            format!("V = {}, L = {}", oracle.vocab_size(), oracle.seq_len()),
        ));
    }
    let (sigma, sigma_bar) = rate_and_total(ctmc, t)?;
    let channel = CtmcChannel::new(ctmc.generator(), sigma_bar)?;
    let mut ratios = Array2::<f64>::zeros((l, v));
    oracle.concrete_score(tokens, &channel, ratios.view_mut())?;
    let mut ws = RateWorkspace::new(v)?;
    let mut row = vec![0.0; v];
    for (i, &x) in tokens.iter().enumerate() {
        let r = ratios.row(i);
        let r = r
            .as_slice()
            .ok_or_else(|| Error::invalid("ratios", "not contiguous"))?;
        reverse_rates_from_score(ctmc.generator(), sigma, x, r, &mut ws, &mut row)?;
        out.row_mut(i).assign(&ndarray::ArrayView1::from(&row[..]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::ctmc::MixtureGenerator;

    #[test]
    fn logits_route_equals_probability_route() {
        let g = MixtureGenerator::uniform(4).unwrap();
        let logits = [0.3f32, -1.0, 2.0, f32::NEG_INFINITY];
        let mut p = [0.0; 4];
        softmax_into(&logits, &mut p).unwrap();
        let mut ws = RateWorkspace::new(4).unwrap();
        let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
        reverse_rates_from_logits(&g, 1.3, 0.7, 1, &logits, &mut ws, &mut a).unwrap();
        reverse_rates_from_x0(&g, 1.3, 0.7, 1, &p, &mut ws, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().sum::<f64>().abs() < 1e-12);
    }

    #[test]
    fn workspace_of_wrong_size_is_an_error() {
        let g = MixtureGenerator::uniform(4).unwrap();
        let mut ws = RateWorkspace::new(3).unwrap();
        let mut out = [0.0; 4];
        assert!(reverse_rates_from_score(&g, 1.0, 0, &[1.0; 4], &mut ws, &mut out).is_err());
        assert!(RateWorkspace::new(1).is_err());
    }
}
