//! The Euler step of a reverse CTMC (Campbell et al. 2022 §4.1, "Euler"; SEDD
//! `sampling.py:EulerPredictor`).
//!
//! Each position moves independently over one step of length `h`, with the first-order
//! transition probabilities of its reverse rate row `R̂(x, ·)`:
//!
//! ```text
//! p(y) = h·R̂(x, y)   (y ≠ x),        p(x) = 1 − h·Σ_{y≠x} R̂(x, y).
//! ```
//!
//! **Clamping.** When `Λ = h·Σ_{y≠x} R̂(x, y) > 1` the stay probability would be negative;
//! it is clamped to 0 and the moves are renormalised, `p(y) = R̂(x, y)/Σ R̂`. This is the
//! law of SEDD's sampler (`onehot(x) + h·rate`, negative entries never drawn, then
//! normalised by its `argmax(p/Exp(1))` draw), so the step agrees with the anchor for
//! every step size. The step is first order: the law error is `O(h)` per unit time.

use crate::error::{Error, Result};
use crate::validate;

/// Validate a reverse rate row (finite, off-diagonal `≥ 0`; the diagonal is ignored), `x`
/// and the step `h ≥ 0` (finite); returns `Σ_{y≠x} rates[y]`.
pub(crate) fn check_rates(rates: &[f64], x: u32, h: f64) -> Result<f64> {
    validate::vocab("rates", rates.len())?;
    let xi = validate::token("x", x, rates.len())?;
    let h = validate::finite("h", h)?;
    if h < 0.0 {
        return Err(Error::invalid(
            "h",
            format!("step size must be ≥ 0, got {h}"),
        ));
    }
    let mut total = 0.0;
    for (y, &r) in rates.iter().enumerate() {
        if y == xi {
            continue;
        }
        if !r.is_finite() {
            return Err(Error::NonFinite {
                arg: "rates",
                index: y,
                value: r,
            });
        }
        if r < 0.0 {
            return Err(Error::invalid(
                "rates",
                format!("off-diagonal rate {y} is negative ({r})"),
            ));
        }
        total += r;
    }
    Ok(total)
}

/// The Euler law of one position: `out[y] = h·rates[y]` for `y ≠ x`, `out[x] = 1 − Σ`, with
/// the clamping of the module docs when `Σ > 1`. `rates` is a reverse rate row out of `x`
/// (its diagonal is ignored).
///
/// # Errors
/// `rates` shorter than 2, non-finite or negative off-diagonal rates, `x ≥ V`, `h` negative
/// or not finite, `out` of another length.
///
/// ```
/// use discrete_diffusion::sample::ctmc::euler_law;
/// let mut p = [0.0; 3];
/// euler_law(&[0.0, 2.0, 6.0], 0, 0.1, &mut p)?;
/// assert!((p[0] - 0.2).abs() < 1e-15 && (p[2] - 0.6).abs() < 1e-15);
/// euler_law(&[0.0, 2.0, 6.0], 0, 1.0, &mut p)?; // Σ = 8 > 1: clamped, renormalised
/// assert_eq!(p, [0.0, 0.25, 0.75]);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn euler_law(rates: &[f64], x: u32, h: f64, out: &mut [f64]) -> Result<()> {
    let total = check_rates(rates, x, h)?;
    validate::len("out", out.len(), rates.len())?;
    let lambda = h * total;
    let scale = if lambda > 1.0 { 1.0 / total } else { h };
    for (o, &r) in out.iter_mut().zip(rates) {
        *o = scale * r;
    }
    out[x as usize] = if lambda > 1.0 { 0.0 } else { 1.0 - lambda };
    Ok(())
}

/// One Euler draw from the law of [`euler_law`] with the uniform `u ∈ [0, 1)`, by inverse
/// CDF over the states in index order (no buffer, `O(V)`).
///
/// # Errors
/// As [`euler_law`]; `u ∉ [0, 1)`.
pub fn euler_draw(rates: &[f64], x: u32, h: f64, u: f64) -> Result<u32> {
    let total = check_rates(rates, x, h)?;
    if !(0.0..1.0).contains(&u) {
        return Err(Error::invalid("u", format!("must be in [0, 1), got {u}")));
    }
    let lambda = h * total;
    let (scale, stay) = if lambda > 1.0 {
        (1.0 / total, 0.0)
    } else {
        (h, 1.0 - lambda)
    };
    let mut c = 0.0;
    let mut last = x;
    for (y, &r) in rates.iter().enumerate() {
        let p = if y == x as usize { stay } else { scale * r };
        if p > 0.0 {
            c += p;
            last = y as u32;
            if u < c {
                return Ok(y as u32);
            }
        }
    }
    Ok(last) // round-off: u just below the total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_follows_law() {
        let rates = [0.0, 1.0, 3.0, 0.5];
        let mut p = [0.0; 4];
        euler_law(&rates, 0, 0.1, &mut p).unwrap();
        let mut c = 0.0;
        for (y, &py) in p.iter().enumerate() {
            assert_eq!(euler_draw(&rates, 0, 0.1, c + py * 0.5).unwrap(), y as u32);
            c += py;
        }
        assert!(euler_draw(&rates, 0, 0.1, 1.0).is_err());
        assert!(euler_law(&rates, 4, 0.1, &mut p).is_err());
        assert!(euler_law(&[0.0, -1.0], 0, 0.1, &mut [0.0; 2]).is_err());
        assert!(euler_law(&rates, 0, -0.1, &mut p).is_err());
    }
}
