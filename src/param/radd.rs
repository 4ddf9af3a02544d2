//! RADD's time-free parameterisation of the absorbing concrete score (Ou et al. 2024,
//! "Your Absorbing Discrete Diffusion Secretly Models the Conditional Distributions of Clean
//! Data", Thm. 1; ML-GSAI/RADD `losses.py`, `log_condition -= log(esigm1)`).
//!
//! For absorbing noise at total noise `σ̄` (`α = e^{−σ̄}`), a masked position's concrete
//! score factorises into a time scalar and a time-independent conditional of clean data:
//!
//! ```text
//! s(x_t)_{mask → y} = α/(1 − α) · p(x0 = y | x_t^{UM}) = c(y | x_t^{UM}) / (e^{σ̄} − 1),
//! ```
//!
//! so the network needs no time input. [`score_from_conditional`] and
//! [`conditional_from_score`] are the two directions; both are exact inverses for `σ̄ ∈ (0, ∞)`.

use crate::error::{Error, Result};
use crate::validate;

/// The time scalar `α/(1 − α) = 1/(e^{σ̄} − 1)` (RADD's `1/esigm1`), `sigma_bar > 0`
/// (`+∞`-safe: `0` at `σ̄ = ∞`).
///
/// # Errors
/// [`Error::InvalidArgument`] if `sigma_bar` is NaN or `≤ 0`.
pub fn radd_factor(sigma_bar: f64) -> Result<f64> {
    if sigma_bar.is_nan() || sigma_bar <= 0.0 {
        return Err(Error::invalid(
            "sigma_bar",
            format!("must be > 0, got {sigma_bar}"),
        ));
    }
    Ok(1.0 / sigma_bar.exp_m1())
}

/// Conditional `c` (length `V`, entry at `mask` ignored; non-negative, finite) → the score
/// at a masked position: `out_y = c_y/(e^{σ̄} − 1)` for `y ≠ mask`, `out_mask = 1`.
///
/// ```
/// use discrete_diffusion::param::radd::score_from_conditional;
/// let mut out = [0.0; 3];
/// score_from_conditional(&[0.25, 0.75, 0.0], 2, 0.5, &mut out)?;
/// assert!((out[1] - 0.75 / 0.5f64.exp_m1()).abs() < 1e-15 && out[2] == 1.0);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
///
/// # Errors
/// Length, token and value errors naming the argument.
pub fn score_from_conditional(c: &[f64], mask: u32, sigma_bar: f64, out: &mut [f64]) -> Result<()> {
    let v = c.len();
    validate::vocab("c", v)?;
    validate::len("out", out.len(), v)?;
    validate::token("mask", mask, v)?;
    let f = radd_factor(sigma_bar)?;
    for (y, (o, &cy)) in out.iter_mut().zip(c).enumerate() {
        if y == mask as usize {
            *o = 1.0;
            continue;
        }
        if !(cy.is_finite() && cy >= 0.0) {
            return Err(Error::invalid(
                "c",
                format!("c[{y}] = {cy} must be finite and ≥ 0"),
            ));
        }
        *o = f * cy;
    }
    Ok(())
}

/// The inverse: a masked position's score → `c_y = score_y (e^{σ̄} − 1)` (`out_mask = 0`),
/// `sigma_bar` finite and `> 0`. No renormalisation: for a model's score the sum reports its
/// consistency.
///
/// # Errors
/// Length, token and value errors naming the argument.
pub fn conditional_from_score(
    score: &[f64],
    mask: u32,
    sigma_bar: f64,
    out: &mut [f64],
) -> Result<()> {
    let v = score.len();
    validate::vocab("score", v)?;
    validate::len("out", out.len(), v)?;
    validate::token("mask", mask, v)?;
    if !(sigma_bar.is_finite() && sigma_bar > 0.0) {
        return Err(Error::invalid(
            "sigma_bar",
            format!("must be finite and > 0, got {sigma_bar}"),
        ));
    }
    let e = sigma_bar.exp_m1();
    for (y, (o, &sy)) in out.iter_mut().zip(score).enumerate() {
        if y == mask as usize {
            *o = 0.0;
            continue;
        }
        if !(sy.is_finite() && sy >= 0.0) {
            return Err(Error::invalid(
                "score",
                format!("score[{y}] = {sy} must be finite and ≥ 0"),
            ));
        }
        *o = sy * e;
    }
    Ok(())
}
