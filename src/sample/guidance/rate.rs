//! Rate-space classifier guidance for CTMC / discrete-flow-matching samplers (Nisonoff et
//! al., "Unlocking guidance for discrete state-space diffusion and flow models", ICLR 2025).
//!
//! For one position whose current state is `x` and whose reverse (or flow) rates to the
//! other states `z` are `R̂(x, z) ≥ 0`, predictor guidance of strength `γ` uses
//!
//! ```text
//! R̂^γ(x, z) = R̂(x, z) · (p_t(y | z) / p_t(y | x))^γ,   z ≠ x,
//! R̂^γ(x, x) = −Σ_{z≠x} R̂^γ(x, z),
//! ```
//!
//! where "`z`" is the whole sequence with this position set to `z`. With `γ = 1` and the
//! exact noisy classifier this is the exact reverse rate of the conditional law
//! `p(x_0 | y)`; `γ ≠ 1` sharpens or flattens the guidance heuristically. The log-classifier
//! values come from [`exact_log_ratios`](super::exact_log_ratios) (row `i`, exact) or
//! [`taylor_log_ratios`](super::taylor_log_ratios) (TAG); only differences
//! `ln p(y | z) − ln p(y | x)` are used, so either absolute log-probabilities or ratios
//! relative to the current state can be passed.

use super::strength;
use crate::error::{Error, Result};
use crate::validate;

/// Relative tolerance of the "row sums to 0" check on the input row.
const ROW_SUM_TOL: f64 = 1e-9;

/// Tilt one CTMC rate row in place: `rates[z] ← rates[z] · exp(γ (log_probs[z] −
/// log_probs[current]))` for `z ≠ current`, then `rates[current] = −Σ_{z≠current} rates[z]`
/// (module docs). `γ = 0` leaves the row unchanged bit for bit.
///
/// `rates` must be a valid generator row: off-diagonal entries finite and `≥ 0`, and the
/// row summing to 0 within `1e-9 · max(1, Σ_{z≠x} rates[z])`. `log_probs[z]` is
/// `ln p_t(y | z)` up to a common constant: `-inf` allowed (that target's rate becomes 0),
/// NaN and `+inf` not, and `log_probs[current]` must be finite.
///
/// Errors: `rates.len() < 2`, `current ≥ V`, `log_probs.len() ≠ V`, `γ` negative or not
/// finite, an invalid row or classifier value as above, or a tilted rate that overflows
/// ([`Error::Numerical`]). Nothing is written on error.
///
/// ```
/// use discrete_diffusion::sample::guidance::tilt_rate_row;
/// let mut row = [-3.0, 1.0, 2.0];
/// tilt_rate_row(&mut row, 0, &[-1.0, 0.0, f64::NEG_INFINITY], 0.5).unwrap();
/// // rate 1 × e^{0.5·1}, rate to state 2 removed, diagonal recomputed
/// assert_eq!(row, [-(0.5f64.exp()), 0.5f64.exp(), 0.0]);
/// ```
pub fn tilt_rate_row(
    rates: &mut [f64],
    current: usize,
    log_probs: &[f64],
    gamma: f64,
) -> Result<()> {
    let v = validate::vocab("rates", rates.len())?;
    if current >= v {
        return Err(Error::invalid(
            "current",
            format!("state {current} is not below V = {v}"),
        ));
    }
    validate::len("log_probs", log_probs.len(), v)?;
    strength("gamma", gamma)?;
    let mut off = 0.0;
    for (z, &r) in rates.iter().enumerate() {
        if !r.is_finite() {
            return Err(Error::NonFinite {
                arg: "rates",
                index: z,
                value: r,
            });
        }
        if z != current {
            if r < 0.0 {
                return Err(Error::invalid(
                    "rates",
                    format!("off-diagonal rate {z} is negative ({r})"),
                ));
            }
            off += r;
        }
    }
    let sum = off + rates[current];
    if sum.abs() > ROW_SUM_TOL * off.max(1.0) {
        return Err(Error::invalid(
            "rates",
            format!("row sums to {sum}, not 0 (diagonal {})", rates[current]),
        ));
    }
    for (z, &lp) in log_probs.iter().enumerate() {
        if lp.is_nan() || lp == f64::INFINITY {
            return Err(Error::NonFinite {
                arg: "log_probs",
                index: z,
                value: lp,
            });
        }
    }
    let base = log_probs[current];
    if !base.is_finite() {
        return Err(Error::ZeroProbability {
            what: format!(
                "rate guidance: ln p(y | x) = {base} at the current state {current}; the ratios are undefined"
            ),
        });
    }
    if gamma == 0.0 {
        return Ok(());
    }
    let mut tilted = vec![0.0; v];
    let mut total = 0.0;
    for z in (0..v).filter(|&z| z != current) {
        let r = rates[z];
        if r == 0.0 || log_probs[z] == f64::NEG_INFINITY {
            continue;
        }
        let nr = r * (gamma * (log_probs[z] - base)).exp();
        if !nr.is_finite() {
            return Err(Error::Numerical {
                what: "rate guidance",
                reason: format!("tilted rate to state {z} overflows ({r} × ratio^{gamma})"),
            });
        }
        tilted[z] = nr;
        total += nr;
    }
    if !total.is_finite() {
        return Err(Error::Numerical {
            what: "rate guidance",
            reason: "the total tilted rate overflows".into(),
        });
    }
    tilted[current] = -total;
    rates.copy_from_slice(&tilted);
    Ok(())
}
