//! Categorical ratio matching (Sun et al. 2023, "Score-based Continuous-time Discrete
//! Diffusion Models", §4), in its cross-entropy form with an x0 parameterisation.
//!
//! Ratios that change one coordinate are ratios of the single-site conditional:
//! `p_t(…y…)/p_t(…x…) = p_t(X^d = y | x^{∖d}) / p_t(X^d = x | x^{∖d})`, so it suffices to
//! learn the conditional `p_t(X^d | x^{∖d})`. Sun et al. match it by the (pseudo-likelihood)
//! cross-entropy `E_{x_t} Σ_d −log p_θ(X^d = x_t^d | x_t^{∖d})`, whose minimiser is the true
//! conditional. With the network predicting the clean token from the other coordinates,
//! `p_θ(x0^d | x_t^{∖d}) = softmax(ℓ)`, the noisy conditional is
//! `p_θ(X^d = c | x_t^{∖d}) = Σ_{x0} softmax(ℓ)_{x0} q_s(c | x0)`, and per coordinate
//!
//! ```text
//! L = −log Σ_{x0} p_{x0} q_s(x | x0),    ∂L/∂ℓ_k = p_k − π_k,   π_k = p_k q_s(x | k) / Σ_j p_j q_s(x | j),
//! ```
//!
//! (`π` is the model's posterior of the clean token after seeing `x`).

use num_traits::Float;

use super::{cast, check_grad};
use crate::error::{Error, Result};
use crate::kernel::ctmc::RateGenerator;
use crate::validate;

/// Per-coordinate categorical ratio-matching loss (module docs) for the observed noisy state
/// `x` at total noise `sigma_bar`, from clean-token `logits` (length `V`, computed from the
/// other coordinates only); `scratch` has length `2V`. Optionally writes `∂L/∂ℓ`.
///
/// # Errors
/// Length, token and non-finite errors naming the argument; [`Error::Numerical`] if the
/// model's noisy likelihood of `x` underflows to 0.
pub fn categorical_ratio_matching<G: RateGenerator + ?Sized, F: Float>(
    generator: &G,
    sigma_bar: f64,
    x: u32,
    logits: &[F],
    scratch: &mut [f64],
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let v = generator.vocab_size();
    validate::len("logits", logits.len(), v)?;
    validate::len("scratch", scratch.len(), 2 * v)?;
    validate::token("x", x, v)?;
    validate::all_finite("logits", logits)?;
    check_grad(&grad, v)?;
    let (p, col) = scratch.split_at_mut(v);
    crate::math::softmax_into(logits, p)?;
    generator.transition_col(x, sigma_bar, col)?;
    let z: f64 = p.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
    if !(z > 0.0 && z.is_finite()) {
        return Err(Error::Numerical {
            what: "categorical_ratio_matching",
            reason: format!("the model's likelihood of x = {x} is {z}"),
        });
    }
    if let Some(g) = grad {
        for ((gk, &pk), &qk) in g.iter_mut().zip(p.iter()).zip(col.iter()) {
            *gk = cast(pk - pk * qk / z);
        }
    }
    Ok(-z.ln())
}
