//! SEDD's log concrete-score parameterisation and its conversions to and from clean-token
//! posteriors (Lou et al. 2024, §3–4; louaaron/Score-Entropy-Discrete-Diffusion
//! `model/transformer.py`, `scale_by_sigma`).
//!
//! A score network outputs, per position, `ℓ_y ≈ log p_t(…y…)/p_t(…x…)` for the current state
//! `x` (so `ℓ_x = 0`). Conversions:
//!
//! * [`sedd_absorbing_log_score`]: SEDD's output head for the absorbing graph. The raw output
//!   `h` is shifted by `−log(e^{σ̄} − 1) − log(V − 1)` (so that a network averaging 0 starts
//!   near the true magnitude `log(α/(1 − α)) + log(1/(V − 1))` of the scores at a mask), then
//!   `ℓ_x = 0` is forced.
//! * [`log_score_from_x0`]: x0 logits → log score, via
//!   [`concrete_score_from_x0`] (any [`RateGenerator`]).
//! * [`x0_from_score`]: ratios → clean-token posterior, for every [`MixtureGenerator`]
//!   (uniform, absorbing, marginal) in closed form. For a general generator the map is
//!   `wᵀ = rᵀ exp(−sQ)`, `p(x0) ∝ w_{x0} q_s(x | x0)`, i.e. a backward-in-time
//!   exponential that is ill-conditioned for large `s`; it is not offered here.

use num_traits::Float;

use crate::error::{Error, Result};
use crate::kernel::ctmc::{MixtureGenerator, RateGenerator, concrete_score_from_x0};
use crate::validate;

/// SEDD's absorbing score head (`scale_by_sigma`): `out_y = h_y − log(e^{σ̄} − 1) − log(V − 1)`
/// for `y ≠ x`, `out_x = 0`, where `x` is the token's current state and `V = raw.len()`
/// (mask included). `sigma_bar > 0` finite.
///
/// # Errors
/// Length, token and non-finite errors naming the argument; `sigma_bar ≤ 0`.
pub fn sedd_absorbing_log_score<F: Float>(
    raw: &[F],
    x: u32,
    sigma_bar: f64,
    out: &mut [F],
) -> Result<()> {
    let v = raw.len();
    validate::vocab("raw", v)?;
    validate::len("out", out.len(), v)?;
    validate::token("x", x, v)?;
    validate::all_finite("raw", raw)?;
    if !(sigma_bar.is_finite() && sigma_bar > 0.0) {
        return Err(Error::invalid(
            "sigma_bar",
            format!("must be finite and > 0, got {sigma_bar}"),
        ));
    }
    let shift = sigma_bar.exp_m1().ln() + ((v - 1) as f64).ln();
    for (o, &h) in out.iter_mut().zip(raw) {
        *o = F::from(h.to_f64().unwrap_or(f64::NAN) - shift).unwrap_or_else(F::nan);
    }
    out[x as usize] = F::zero();
    Ok(())
}

/// x0 logits → log concrete score at state `x`, total noise `s`:
/// `out_y = log Σ_{x0} softmax(ℓ)_{x0} q_s(y | x0)/q_s(x | x0)` (`−∞` where the ratio is 0).
/// `scratch` has length `2V`.
///
/// # Errors
/// As [`concrete_score_from_x0`]; length and non-finite errors naming the argument.
pub fn log_score_from_x0<G: RateGenerator + ?Sized, F: Float>(
    generator: &G,
    s: f64,
    x: u32,
    logits: &[F],
    scratch: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    validate::len("logits", logits.len(), v)?;
    validate::len("scratch", scratch.len(), 2 * v)?;
    validate::all_finite("logits", logits)?;
    let (p, work) = scratch.split_at_mut(v);
    crate::math::softmax_into(logits, p)?;
    concrete_score_from_x0(generator, s, x, p, work, out)?;
    out.iter_mut().for_each(|o| *o = o.ln());
    Ok(())
}

/// Ratios `ratio_y = p_t(…y…)/p_t(…x…)` (with `ratio_x = 1`) → the clean-token posterior
/// `p(x0 | x_t)` that produces them through [`concrete_score_from_x0`], for a mixture
/// generator `exp(sQ) = a I + (1 − a) 1πᵀ`, `a = e^{−s}`:
///
/// ```text
/// W = Σ_y ratio_y,    w_{x0} = (ratio_{x0} − (1 − a) π_{x0} W)/a,    p(x0) ∝ w_{x0} q_s(x | x0).
/// ```
///
/// Exact for consistent ratios (`p = Σ_{x0}`-mixture); for a model's ratios, negative `w`
/// are clamped to 0 and the result renormalised. Cases: uniform — every entry is used;
/// absorbing with `x` the mask — RADD's identity `p(y) = ratio_y (e^{s} − 1)`; absorbing with
/// `x` unmasked — the point mass on `x`. `s` finite and `> 0`.
///
/// # Errors
/// Length, token and value errors naming the argument; [`Error::ZeroProbability`] if no
/// mass remains.
pub fn x0_from_score(
    generator: &MixtureGenerator,
    s: f64,
    x: u32,
    ratio: &[f64],
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    validate::len("ratio", ratio.len(), v)?;
    validate::len("out", out.len(), v)?;
    validate::token("x", x, v)?;
    if !(s.is_finite() && s > 0.0) {
        return Err(Error::invalid(
            "s",
            format!("must be finite and > 0, got {s}"),
        ));
    }
    for (i, &r) in ratio.iter().enumerate() {
        if !(r.is_finite() && r >= 0.0) {
            return Err(Error::invalid(
                "ratio",
                format!("ratio[{i}] = {r} must be finite and ≥ 0"),
            ));
        }
    }
    let a = (-s).exp();
    let m = -(-s).exp_m1();
    let pi = generator.pi();
    let xi = x as usize;
    // ratio_x is 1 by definition, whatever the caller stored there.
    let total: f64 = ratio
        .iter()
        .enumerate()
        .map(|(y, &r)| if y == xi { 1.0 } else { r })
        .sum();
    let mut z = 0.0;
    for (k, o) in out.iter_mut().enumerate() {
        let r = if k == xi { 1.0 } else { ratio[k] };
        let w = ((r - m * pi[k] * total) / a).max(0.0);
        let qx = m * pi[xi] + if k == xi { a } else { 0.0 };
        *o = w * qx;
        z += *o;
    }
    if !(z > 0.0 && z.is_finite()) {
        return Err(Error::ZeroProbability {
            what: format!("the posterior recovered from the ratios at x = {x} (mass {z})"),
        });
    }
    out.iter_mut().for_each(|o| *o /= z);
    Ok(())
}
