//! The predictor–corrector corrector of Campbell et al. 2022 §4.2 (andrew-cr/tauLDR
//! `PCTauLeaping`).
//!
//! At time `t` the forward generator `Q_t` and its time reversal `R̂_t` are in detailed
//! balance with the marginal `p_t` (`p_t(x) R̂_t(x, y) = p_t(y) Q_t(y, x)`), so their sum
//!
//! ```text
//! C_t(x, y) = Q_t(x, y) + R̂_t(x, y) = σ(t)·Q[x, y] + R̂_t(x, y)
//! ```
//!
//! is a generator that leaves `p_t` invariant. Simulating it (by τ-leaping with a step
//! `multiplier·h`) after each predictor step pulls the sampled law back towards `p_t`
//! without moving time. Each corrector step needs the reverse rates at the new time: one
//! more function evaluation, unless the state and time are unchanged (see the sampler's
//! cache).

use crate::error::{Error, Result};
use crate::kernel::ctmc::RateGenerator;
use crate::validate;

/// `out[y] = σ·Q[x, y] + reverse[y]` for `y ≠ x`, `out[x] = −Σ_{y≠x} out[y]`: the corrector
/// rate row out of `x` (`reverse` is a reverse rate row out of `x`, its diagonal ignored;
/// `sigma = σ(t) ≥ 0`). `scratch` has length `V`.
///
/// # Errors
/// Lengths, `x ≥ V`, `sigma` negative or not finite, a negative or non-finite off-diagonal
/// reverse rate.
pub fn corrector_rates<G: RateGenerator + ?Sized>(
    generator: &G,
    sigma: f64,
    x: u32,
    reverse: &[f64],
    scratch: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    let xi = validate::token("x", x, v)?;
    validate::len("reverse", reverse.len(), v)?;
    validate::len("scratch", scratch.len(), v)?;
    validate::len("out", out.len(), v)?;
    let sigma = validate::finite("sigma", sigma)?;
    if sigma < 0.0 {
        return Err(Error::invalid("sigma", format!("must be ≥ 0, got {sigma}")));
    }
    generator.rate_row(x, scratch)?;
    let mut total = 0.0;
    for (y, ((o, &q), &r)) in out.iter_mut().zip(scratch.iter()).zip(reverse).enumerate() {
        if y == xi {
            *o = 0.0;
            continue;
        }
        if !r.is_finite() || r < 0.0 {
            return Err(Error::invalid(
                "reverse",
                format!("off-diagonal rate {y} must be finite and ≥ 0, got {r}"),
            ));
        }
        *o = sigma * q + r;
        total += *o;
    }
    out[xi] = -total;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::ctmc::MixtureGenerator;

    #[test]
    fn corrector_leaves_the_marginal_invariant() {
        // One token: p_t C_t = 0 when R̂ is the exact reversal.
        let g = MixtureGenerator::marginal(vec![0.4, 0.3, 0.2, 0.1]).unwrap();
        let sigma = 0.9;
        let p = [0.1, 0.2, 0.3, 0.4];
        let mut flow = [0.0; 4];
        let mut q = [0.0; 4];
        for x in 0..4u32 {
            let mut rev = [0.0; 4];
            for y in 0..4u32 {
                if y != x {
                    g.rate_row(y, &mut q).unwrap();
                    rev[y as usize] = sigma * q[x as usize] * p[y as usize] / p[x as usize];
                }
            }
            let (mut c, mut s) = ([0.0; 4], [0.0; 4]);
            corrector_rates(&g, sigma, x, &rev, &mut s, &mut c).unwrap();
            for y in 0..4 {
                flow[y] += p[x as usize] * c[y];
            }
        }
        assert!(flow.iter().all(|f| f.abs() < 1e-15), "{flow:?}");
        let mut s = [0.0; 4];
        assert!(corrector_rates(&g, -1.0, 0, &[0.0; 4], &mut s, &mut [0.0; 4]).is_err());
        assert!(
            corrector_rates(&g, 1.0, 0, &[0.0, -1.0, 0.0, 0.0], &mut s, &mut [0.0; 4]).is_err()
        );
    }
}
