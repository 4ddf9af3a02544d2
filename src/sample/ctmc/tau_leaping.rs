//! τ-leaping for reverse CTMCs (Campbell et al. 2022 §4.1, Alg. 1; andrew-cr/tauLDR
//! `lib/sampling/sampling.py:TauLeaping`).
//!
//! Over a step of length `h` the reverse rates out of the current state are frozen, and every
//! target `y ≠ x` of a position fires `N_y ~ Poisson(h·R̂(x, y))` times, independently of
//! the other targets and positions. How the jumps combine depends on the state space:
//!
//! * [`TauLeapMode::Ordinal`] (ordinal data, e.g. pixel intensities): the jumps add up as
//!   displacements and the result is clamped to the state space,
//!   `x' = clamp(x + Σ_y N_y·(y − x), 0, V − 1)` (tauLDR's `take_poisson_step`).
//! * [`TauLeapMode::RejectMultiple`] (categorical data): a single jump `N_y = 1`, `N_· = 0`
//!   elsewhere moves to `y`; no jump or more than one jump in the dimension leaves it where
//!   it is (Campbell et al. 2022 §4.1, "reject multiple jumps"). With `Λ = h Σ R̂`,
//!   `p(y) = h R̂(x, y) e^{−Λ}`, `p(x) = 1 − Λ e^{−Λ}`.
//!
//! Both are first order in `h`. The Poisson draws use the crate's counter RNG only.

use crate::error::{Error, Result};
use crate::rng::CounterRng;
use crate::sample::ctmc::euler::check_rates;
use crate::validate;

/// How simultaneous jumps of one dimension are combined (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TauLeapMode {
    /// Ordinal state space: `x + Σ_y N_y (y − x)` clamped to `[0, V − 1]`.
    Ordinal,
    /// Categorical state space: move only on exactly one jump, otherwise stay.
    RejectMultiple,
}

/// Largest support (in displacement units) [`tau_leaping_law`] convolves before giving up.
const MAX_SUPPORT: usize = 1 << 22;

/// Probabilities of `Poisson(mu)` at `0..=k_max`, truncated where the tail is below `1e-17`
/// (computed in log space so large means do not underflow).
fn poisson_pmf(mu: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let ln_mu = mu.ln();
    let mut lp = -mu;
    let mut cum = 0.0;
    let mut k = 0u64;
    loop {
        let p = lp.exp();
        out.push(p);
        cum += p;
        k += 1;
        if (k as f64 > mu && (1.0 - cum < 1e-17 || p < 1e-300)) || out.len() > MAX_SUPPORT {
            break;
        }
        lp += ln_mu - (k as f64).ln();
    }
    out
}

/// The exact law of one τ-leaping step of a position in state `x` with reverse rate row
/// `rates` (diagonal ignored) and step `h`; returns the truncated Poisson tail mass (≈ 0;
/// each Poisson is cut where its tail is below `1e-17`).
///
/// For [`TauLeapMode::Ordinal`] the law of `Σ_y N_y (y − x)` is an exact convolution of the
/// scaled Poisson laws (tauLDR's `next_state_probs`), then clamped.
///
/// # Errors
/// As [`euler_law`](super::euler_law); [`Error::Numerical`] when the displacement support
/// exceeds `2²²` (rates far too large for the step).
pub fn tau_leaping_law(
    rates: &[f64],
    x: u32,
    h: f64,
    mode: TauLeapMode,
    out: &mut [f64],
) -> Result<f64> {
    let total = check_rates(rates, x, h)?;
    validate::len("out", out.len(), rates.len())?;
    let xi = x as usize;
    match mode {
        TauLeapMode::RejectMultiple => {
            let lambda = h * total;
            let e = (-lambda).exp();
            for (o, &r) in out.iter_mut().zip(rates) {
                *o = h * r * e;
            }
            out[xi] = 1.0 - lambda * e;
            Ok(0.0)
        }
        TauLeapMode::Ordinal => {
            // Displacement distribution over [lo, hi], stored with offset −lo.
            let mut dist = vec![1.0f64];
            let mut lo: i64 = 0;
            for (y, &r) in rates.iter().enumerate() {
                let mu = h * r;
                if y == xi || mu == 0.0 {
                    continue;
                }
                let pmf = poisson_pmf(mu);
                let d = y as i64 - xi as i64;
                let width = dist.len() + (pmf.len() - 1) * d.unsigned_abs() as usize;
                if width > MAX_SUPPORT {
                    return Err(Error::Numerical {
                        what: "tau_leaping_law",
                        reason: format!("displacement support {width} too large (h·rates ≫ 1)"),
                    });
                }
                let mut next = vec![0.0; width];
                let shift = if d < 0 {
                    (pmf.len() - 1) as i64 * -d
                } else {
                    0
                };
                for (a, &pa) in dist.iter().enumerate() {
                    if pa == 0.0 {
                        continue;
                    }
                    for (k, &pk) in pmf.iter().enumerate() {
                        let idx = a as i64 + k as i64 * d + shift;
                        next[idx as usize] += pa * pk;
                    }
                }
                lo -= shift;
                dist = next;
            }
            out.fill(0.0);
            let vmax = rates.len() as i64 - 1;
            let mut kept = 0.0;
            for (a, &pa) in dist.iter().enumerate() {
                let dest = (xi as i64 + lo + a as i64).clamp(0, vmax);
                out[dest as usize] += pa;
                kept += pa;
            }
            Ok((1.0 - kept).max(0.0))
        }
    }
}

/// `ln k!`: exact sum below 20, Stirling's series to `n⁻⁷` (error below `1e-14` from 20 on) above.
fn ln_factorial(k: u64) -> f64 {
    if k < 20 {
        (2..=k).map(|i| (i as f64).ln()).sum()
    } else {
        let n = k as f64;
        let n2 = n * n;
        n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
            - 1.0 / (360.0 * n * n2)
            + 1.0 / (1260.0 * n * n2 * n2)
            - 1.0 / (1680.0 * n * n2 * n2 * n2)
    }
}

/// A draw `N ~ Poisson(mu)` (`mu ≥ 0` finite) from the counter RNG: sequential inversion
/// for `mu < 10` (one uniform), Hörmann's transformed rejection PTRS for larger means
/// (W. Hörmann, "The transformed rejection method for generating Poisson random variables",
/// Insurance: Mathematics and Economics 12, 1993).
///
/// # Errors
/// `mu` negative or not finite.
pub fn poisson(mu: f64, rng: &mut CounterRng) -> Result<u64> {
    let mu = validate::finite("mu", mu)?;
    if mu < 0.0 {
        return Err(Error::invalid("mu", format!("mean must be ≥ 0, got {mu}")));
    }
    if mu == 0.0 {
        return Ok(0);
    }
    if mu < 10.0 {
        let u = rng.uniform();
        let mut p = (-mu).exp();
        let mut c = p;
        let mut k = 0u64;
        while u >= c {
            k += 1;
            p *= mu / k as f64;
            c += p;
            if p < 1e-300 && k as f64 > mu {
                break; // round-off: u above the representable total
            }
        }
        return Ok(k);
    }
    let slam = mu.sqrt();
    let loglam = mu.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform_open();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + mu + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return Ok(k as u64);
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let lhs = v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln();
        if lhs <= -mu + k * loglam - ln_factorial(k as u64) {
            return Ok(k as u64);
        }
    }
}

/// One τ-leaping draw for a position in state `x` (law [`tau_leaping_law`]), consuming
/// numbers from `rng` (the position's own stream):
///
/// * `Ordinal`: one Poisson per target with positive rate, in index order;
/// * `RejectMultiple`: one uniform decides between no jump (`e^{−Λ}`), exactly one jump
///   (`Λe^{−Λ}`, the target then drawn `∝ R̂` with a second uniform) and several (stay).
///
/// # Errors
/// As [`tau_leaping_law`].
pub fn tau_leaping_draw(
    rates: &[f64],
    x: u32,
    h: f64,
    mode: TauLeapMode,
    rng: &mut CounterRng,
) -> Result<u32> {
    let total = check_rates(rates, x, h)?;
    let xi = x as usize;
    match mode {
        TauLeapMode::RejectMultiple => {
            let lambda = h * total;
            if lambda == 0.0 {
                return Ok(x);
            }
            let u = rng.uniform();
            let e = (-lambda).exp();
            if u < e || u >= e * (1.0 + lambda) {
                return Ok(x);
            }
            let target = rng.uniform() * total;
            let mut c = 0.0;
            let mut last = x;
            for (y, &r) in rates.iter().enumerate() {
                if y == xi || r == 0.0 {
                    continue;
                }
                c += r;
                last = y as u32;
                if target < c {
                    return Ok(y as u32);
                }
            }
            Ok(last)
        }
        TauLeapMode::Ordinal => {
            let mut d: i64 = 0;
            for (y, &r) in rates.iter().enumerate() {
                if y == xi || r == 0.0 {
                    continue;
                }
                let n = poisson(h * r, rng)?;
                d = d.saturating_add((n as i64).saturating_mul(y as i64 - xi as i64));
            }
            Ok((xi as i64)
                .saturating_add(d)
                .clamp(0, rates.len() as i64 - 1) as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, RngKey};

    #[test]
    fn poisson_moments() {
        for &mu in &[0.3, 4.0, 25.0, 400.0] {
            let n = 20_000;
            let (mut s, mut s2) = (0.0, 0.0);
            for i in 0..n {
                let mut rng = CounterRng::new(RngKey::new(7), Purpose::CATEGORICAL, 0, i);
                let k = poisson(mu, &mut rng).unwrap() as f64;
                s += k;
                s2 += k * k;
            }
            let mean = s / n as f64;
            let var = s2 / n as f64 - mean * mean;
            // 5 standard errors of the mean, and of the variance (≈ sqrt(2/n)·μ + …).
            assert!(
                (mean - mu).abs() < 5.0 * (mu / n as f64).sqrt(),
                "{mu}: {mean}"
            );
            assert!(
                (var - mu).abs() < 5.0 * mu * (2.0 / n as f64).sqrt() + 0.05,
                "{mu}: {var}"
            );
        }
        let mut rng = CounterRng::new(RngKey::new(7), Purpose::CATEGORICAL, 0, 0);
        assert!(poisson(-1.0, &mut rng).is_err());
        assert!(poisson(f64::NAN, &mut rng).is_err());
    }

    #[test]
    fn ln_factorial_is_continuous_at_the_switch() {
        let exact: f64 = (2..=20).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(20) - exact).abs() < 1e-13);
    }

    #[test]
    fn laws_sum_to_one() {
        let rates = [0.4, 0.0, 1.5, 2.0, 0.7];
        for mode in [TauLeapMode::Ordinal, TauLeapMode::RejectMultiple] {
            let mut p = [0.0; 5];
            let tail = tau_leaping_law(&rates, 1, 0.3, mode, &mut p).unwrap();
            assert!(tail < 1e-14);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-13);
        }
    }
}
