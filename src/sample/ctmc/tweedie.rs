//! The analytic ("Tweedie τ-leaping") step of SEDD (Lou et al. 2024 §4.2;
//! louaaron/Score-Entropy-Discrete-Diffusion `sampling.py:AnalyticPredictor`,
//! `graph_lib.py:staggered_score`/`transp_transition`).
//!
//! For a step `t → s < t` with `δ = σ̄(t) − σ̄(s)`, the exact single-token reverse transition is
//! Bayes' rule with `p_s = p_t·exp(−δQ)` (row vectors, row convention):
//!
//! ```text
//! p(x_s = y | x_t = x) = p_s(y)·exp(δQ)[y, x] / p_t(x)
//!                      = [s_tᵀ exp(−δQ)]_y · exp(δQ)[y, x],      s_t(z) = p_t(z)/p_t(x),
//! ```
//!
//! where `s_tᵀ exp(−δQ)` is SEDD's *staggered score* ([`staggered_score`]; in SEDD's column
//! convention `exp(−δQ_col)·s`). With a model score the products may be negative: they are
//! clamped at 0 and renormalised (the law of SEDD's `argmax(p/Exp(1))` draw). With the
//! exact score the step is the exact one-token reverse transition.
//!
//! The same law comes from an x0 posterior without any inverse exponential
//! ([`tweedie_law_from_x0`]): `p_s(y)/p_t(x) = Σ_{x0} p(x0 | x_t)·q_s(y | x0)/q_t(x | x0)`;
//! for absorbing noise this is MDLM's ancestral step and RADD's `direct_sample`.

use crate::error::{Error, Result};
use crate::kernel::ctmc::dense::DenseGenerator;
use crate::kernel::ctmc::{MixtureGenerator, RateGenerator};
use crate::param::reverse::RateWorkspace;
use crate::validate;

/// A [`RateGenerator`] that can also apply the *inverse* transition `exp(−δQ)`
/// (`δ ≥ 0`), needed for SEDD's staggered score.
pub trait InverseTransition: RateGenerator {
    /// `out = pᵀ exp(−δQ)`, `out[y] = Σ_z p[z]·exp(−δQ)[z, y]`, for finite `p` of any sign
    /// and `δ ∈ [0, ∞)`.
    fn inverse_transition_vecmat(&self, p: &[f64], delta: f64, out: &mut [f64]) -> Result<()>;
}

impl<G: InverseTransition + ?Sized> InverseTransition for &G {
    fn inverse_transition_vecmat(&self, p: &[f64], delta: f64, out: &mut [f64]) -> Result<()> {
        (**self).inverse_transition_vecmat(p, delta, out)
    }
}

/// `exp(−δQ) = e^{δ} I + (1 − e^{δ}) 1πᵀ` for `Q = 1πᵀ − I`, so
/// `out[y] = e^{δ} p[y] + (1 − e^{δ})·(Σp)·π_y`, `O(V)`.
impl InverseTransition for MixtureGenerator {
    fn inverse_transition_vecmat(&self, p: &[f64], delta: f64, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        check_delta(delta)?;
        validate::len("p", p.len(), v)?;
        validate::len("out", out.len(), v)?;
        validate::all_finite("p", p.iter())?;
        let e = delta.exp();
        let m = -delta.exp_m1(); // 1 − e^{δ}
        let total: f64 = p.iter().sum();
        for ((o, &w), &q) in out.iter_mut().zip(p).zip(self.pi()) {
            *o = e * w + m * total * q;
        }
        Ok(())
    }
}

/// The eigen routes of a dense generator (symmetric `U e^{−δΛ} Uᵀ`, reversible
/// `D^{−1/2} U e^{−δΛ} Uᵀ D^{1/2}`) and Padé `expm(−δQ)`:
/// [`DenseGenerator::inverse_transition_vecmat`], which refuses a step whose growth factor
/// `e^{δρ}` exceeds [`MAX_INVERSE_GROWTH`](crate::kernel::ctmc::dense::MAX_INVERSE_GROWTH).
impl InverseTransition for DenseGenerator {
    fn inverse_transition_vecmat(&self, p: &[f64], delta: f64, out: &mut [f64]) -> Result<()> {
        DenseGenerator::inverse_transition_vecmat(self, p, delta, out)
    }
}

fn check_delta(delta: f64) -> Result<f64> {
    let d = validate::finite("delta", delta)?;
    if d < 0.0 {
        return Err(Error::invalid(
            "delta",
            format!("noise increment must be ≥ 0, got {d}"),
        ));
    }
    Ok(d)
}

/// SEDD's staggered score `out = scoreᵀ exp(−δQ)` (`graph_lib.Graph.staggered_score`,
/// row convention; `δ = σ̄(t) − σ̄(s) ≥ 0`).
///
/// # Errors
/// Lengths, a non-finite score, `delta` negative or not finite.
pub fn staggered_score<G: InverseTransition + ?Sized>(
    generator: &G,
    score: &[f64],
    delta: f64,
    out: &mut [f64],
) -> Result<()> {
    generator.inverse_transition_vecmat(score, delta, out)
}

/// Clamp at 0 and normalise; error if nothing positive is left.
fn clamp_normalise(out: &mut [f64]) -> Result<()> {
    let mut total = 0.0;
    for o in out.iter_mut() {
        if o.is_nan() || *o <= 0.0 {
            *o = 0.0;
        }
        total += *o;
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(Error::ZeroProbability {
            what: format!("the analytic step law: total positive mass {total}"),
        });
    }
    out.iter_mut().for_each(|o| *o /= total);
    Ok(())
}

/// The analytic (Tweedie) law of one position from a concrete score `score[z] ≈
/// p_t(z)/p_t(x)`: `out[y] ∝ max(0, [scoreᵀ exp(−δQ)]_y · exp(δQ)[y, x])`
/// (SEDD `AnalyticPredictor.update_fn`). `scratch` has length `V`.
///
/// # Errors
/// Lengths, `x ≥ V`, `delta`, a non-finite score, and [`Error::ZeroProbability`] when no
/// entry is positive.
pub fn tweedie_law_from_score<G: InverseTransition + ?Sized>(
    generator: &G,
    delta: f64,
    x: u32,
    score: &[f64],
    scratch: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    validate::token("x", x, v)?;
    validate::len("scratch", scratch.len(), v)?;
    validate::len("out", out.len(), v)?;
    generator.inverse_transition_vecmat(score, delta, scratch)?;
    generator.transition_col(x, delta, out)?;
    out.iter_mut()
        .zip(scratch.iter())
        .for_each(|(o, &s)| *o *= s);
    clamp_normalise(out)
}

/// The analytic (Tweedie) law of one position from its x0 posterior `p_x0 = p(x0 | x_t)`,
/// for a step from total noise `sigma_bar_t` to `sigma_bar_s ≤ sigma_bar_t`:
///
/// ```text
/// out[y] ∝ Σ_{x0} p(x0 | x_t)·q_s(y | x0)/q_t(x | x0) · exp((σ̄_t − σ̄_s)Q)[y, x],
/// ```
///
/// `x0` with `q_t(x | x0) = 0` are dropped (they cannot have produced `x`). With the exact
/// posterior this is the exact single-token reverse transition; `O(V)` for mixture
/// generators, buffers from `ws`.
///
/// # Errors
/// Lengths, `x ≥ V`, `p_x0` not a distribution (tolerance `1e-6`), total noises NaN,
/// negative or `sigma_bar_s > sigma_bar_t`, and [`Error::ZeroProbability`] when no `x0`
/// with posterior mass can produce `x`.
pub fn tweedie_law_from_x0<G: RateGenerator + ?Sized>(
    generator: &G,
    sigma_bar_t: f64,
    sigma_bar_s: f64,
    x: u32,
    p_x0: &[f64],
    ws: &mut RateWorkspace,
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    validate::token("x", x, v)?;
    validate::len("p_x0", p_x0.len(), v)?;
    validate::len("out", out.len(), v)?;
    if ws.vocab_size() != v {
        return Err(Error::shape(
            "workspace",
            format!("buffers of length {v}"),
            format!("length {}", ws.vocab_size()),
        ));
    }
    validate::distribution("p_x0", p_x0, 1e-6)?;
    if sigma_bar_t.is_nan() || sigma_bar_s.is_nan() || sigma_bar_s < 0.0 {
        return Err(Error::invalid(
            "sigma_bar",
            format!("total noises must be ≥ 0, got t: {sigma_bar_t}, s: {sigma_bar_s}"),
        ));
    }
    if sigma_bar_s > sigma_bar_t {
        return Err(Error::invalid(
            "sigma_bar_s",
            format!("must be ≤ sigma_bar_t = {sigma_bar_t}, got {sigma_bar_s}"),
        ));
    }
    let delta = if sigma_bar_t == f64::INFINITY && sigma_bar_s == f64::INFINITY {
        0.0
    } else {
        sigma_bar_t - sigma_bar_s
    };
    generator.transition_col(x, sigma_bar_t, &mut ws.scratch)?;
    let mut any = false;
    for (w, &p) in ws.scratch.iter_mut().zip(p_x0) {
        *w = if *w > 0.0 && p > 0.0 {
            any = true;
            p / *w
        } else {
            0.0
        };
    }
    if !any {
        return Err(Error::ZeroProbability {
            what: format!("x = {x}: every x0 with posterior mass has q_t(x | x0) = 0"),
        });
    }
    generator.transition_vecmat(&ws.scratch, sigma_bar_s, &mut ws.ratio)?;
    generator.transition_col(x, delta, out)?;
    out.iter_mut()
        .zip(ws.ratio.iter())
        .for_each(|(o, &r)| *o *= r);
    clamp_normalise(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_and_x0_routes_agree_with_exact_score() {
        // One token, p0 known: the exact score and the exact posterior give the same law.
        let p0 = [0.5, 0.2, 0.3, 0.0];
        let g = MixtureGenerator::absorbing(4, 3).unwrap();
        let (st, ss) = (1.2, 0.4);
        let mut pt = [0.0; 4];
        g.transition_vecmat(&p0, st, &mut pt).unwrap();
        let x = 3u32;
        let score: Vec<f64> = pt.iter().map(|&p| p / pt[3]).collect();
        let mut col = [0.0; 4];
        g.transition_col(x, st, &mut col).unwrap();
        let post: Vec<f64> = (0..4).map(|i| p0[i] * col[i] / pt[3]).collect();
        let (mut a, mut b, mut scratch) = ([0.0; 4], [0.0; 4], [0.0; 4]);
        tweedie_law_from_score(&g, st - ss, x, &score, &mut scratch, &mut a).unwrap();
        let mut ws = RateWorkspace::new(4).unwrap();
        tweedie_law_from_x0(&g, st, ss, x, &post, &mut ws, &mut b).unwrap();
        for y in 0..4 {
            assert!((a[y] - b[y]).abs() < 1e-12, "{a:?} {b:?}");
        }
    }
}
