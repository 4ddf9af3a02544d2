//! Posterior → velocity for discrete flow matching on mixture paths (Gat et al. 2024,
//! "Discrete Flow Matching", §2.3–2.4; facebookresearch/flow_matching
//! `MixtureDiscreteProbPath.posterior_to_velocity`), the backward velocity and the
//! corrector / divergence-free combinations.
//!
//! Flow time `s ∈ [0, 1]` (`s = 0` source, `s = 1` data), `κ(s) = α(1 − s)` ([`Kappa`]).
//! For the current token `z` of one position:
//!
//! | velocity | formula | generates `p_s` |
//! |---|---|---|
//! | forward (from `p_{1|s}`) | `û(x | z) = κ̇/(1 − κ) (p_{1|s}(x | z) − δ_z(x))` | forward in `s` |
//! | backward (from `p_{0|s}`) | `ǔ(x | z) = κ̇/κ (δ_z(x) − p_{0|s}(x | z))` | backward in `s` |
//! | corrector | `ū = (1 + β) û − β ǔ`, `β ≥ 0` | forward in `s` |
//! | divergence-free part | `ū − û = β (û − ǔ)` | leaves `p_s` unchanged |
//!
//! The coefficient `β` may depend on time (`β_s`, Gat et al. 2024; the solvers take a
//! [`CorrectorSchedule`](crate::sample::flow::CorrectorSchedule)): the identities hold at
//! every `s` for the value `β_s` there.
//!
//! Every row is a CTMC generator row (`û`, `ū`: non-negative off the diagonal, rows sum to
//! 0). For the masked path `p_{0|s} = δ_mask`, so `−β ǔ` sends an unmasked token back to the
//! mask at rate `β κ̇/κ`: remasking by the backward velocity. The coefficients are singular
//! at `κ = 1` (forward) and `κ = 0` (backward): these functions reject the singular points
//! with a clear error instead of dividing by zero; the solver
//! ([`crate::sample::flow`]) handles them explicitly.

use num_traits::Float;

use crate::error::{Error, Result};
use crate::schedule::{Kappa, Schedule};
use crate::validate;

fn finite_rate(rate: f64, what: &str, s: f64) -> Result<f64> {
    if !rate.is_finite() {
        return Err(Error::invalid(
            "s",
            format!("the {what} coefficient is infinite at s = {s} (singular point of κ)"),
        ));
    }
    Ok(rate)
}

fn check_row(arg: &'static str, p: &[f64], z: u32, out: &[f64]) -> Result<()> {
    validate::vocab(arg, p.len())?;
    validate::distribution(arg, p, validate::SIMPLEX_TOL)?;
    validate::token("z", z, p.len())?;
    validate::len("out", out.len(), p.len())
}

/// The forward velocity `out = κ̇/(1 − κ) (p1 − δ_z)` from the posterior `p1 = p_{1|s}(· | z)`
/// (flow_matching `posterior_to_velocity` with probabilities).
///
/// # Errors
/// `p1` not a distribution over `V ≥ 2`, `z ≥ V`, `out` of length `≠ V`, `s ∉ [0, 1]`,
/// and an invalid `s` where `κ(s) = 1` (infinite coefficient).
pub fn forward_velocity<S: Schedule>(
    kappa: &Kappa<S>,
    s: f64,
    z: u32,
    p1: &[f64],
    out: &mut [f64],
) -> Result<()> {
    check_row("p1", p1, z, out)?;
    let a = finite_rate(kappa.forward_rate(s)?, "forward κ̇/(1 − κ)", s)?;
    for (x, (o, &p)) in out.iter_mut().zip(p1).enumerate() {
        let d = if x == z as usize { 1.0 } else { 0.0 };
        *o = a * (p - d);
    }
    Ok(())
}

/// [`forward_velocity`] from posterior logits: `p1 = softmax(logits)` (computed in f64),
/// exactly flow_matching's `posterior_to_velocity(posterior_logits, x_t, t)`.
///
/// ```
/// use discrete_diffusion::param::velocity::forward_velocity_from_logits;
/// use discrete_diffusion::schedule::Kappa;
/// let mut u = [0.0; 3];
/// forward_velocity_from_logits(&Kappa::cond_ot(), 0.5, 0, &[0.0f32, 0.0, 0.0], &mut u)?;
/// // κ̇/(1 − κ) = 2 at s = 1/2: u = 2 (1/3 − δ_0).
/// assert!((u[0] + 4.0 / 3.0).abs() < 1e-12 && (u[1] - 2.0 / 3.0).abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
///
/// # Errors
/// As [`forward_velocity`]; NaN or `+∞` logits, or no finite logit.
pub fn forward_velocity_from_logits<S: Schedule, F: Float>(
    kappa: &Kappa<S>,
    s: f64,
    z: u32,
    logits: &[F],
    out: &mut [f64],
) -> Result<()> {
    validate::len("out", out.len(), logits.len())?;
    let mut p = vec![0.0; logits.len()];
    crate::math::softmax_into(logits, &mut p)?;
    forward_velocity(kappa, s, z, &p, out)
}

/// The backward velocity `out = κ̇/κ (δ_z − p0)` from a source-side posterior
/// `p0 = p_{0|s}(· | z)` (for the masked path `δ_mask`; conditionally on `x_1`, the source
/// law `p_0` itself, see [`crate::kernel::path::mixture`]). Non-positive off the diagonal:
/// it generates the path backwards in `s`.
///
/// # Errors
/// As [`forward_velocity`], with the singular point `κ(s) = 0`.
pub fn backward_velocity<S: Schedule>(
    kappa: &Kappa<S>,
    s: f64,
    z: u32,
    p0: &[f64],
    out: &mut [f64],
) -> Result<()> {
    check_row("p0", p0, z, out)?;
    let b = finite_rate(kappa.backward_rate(s)?, "backward κ̇/κ", s)?;
    for (x, (o, &p)) in out.iter_mut().zip(p0).enumerate() {
        let d = if x == z as usize { 1.0 } else { 0.0 };
        *o = b * (d - p);
    }
    Ok(())
}

fn check_combination(forward: &[f64], backward: &[f64], beta: f64, out: &[f64]) -> Result<()> {
    validate::len("backward", backward.len(), forward.len())?;
    validate::len("out", out.len(), forward.len())?;
    validate::all_finite("forward", forward)?;
    validate::all_finite("backward", backward)?;
    if !(beta.is_finite() && beta >= 0.0) {
        return Err(Error::invalid(
            "beta",
            format!("{beta} must be finite and ≥ 0"),
        ));
    }
    Ok(())
}

/// The corrector velocity `out = (1 + β) forward − β backward` (Gat et al. 2024, §2.4: `α_t
/// û − β_t ǔ` with `α_t − β_t = 1`), a valid forward rate row generating the same marginals.
///
/// # Errors
/// Lengths differ, non-finite entries, `β` negative or not finite.
pub fn corrector_velocity(
    forward: &[f64],
    backward: &[f64],
    beta: f64,
    out: &mut [f64],
) -> Result<()> {
    check_combination(forward, backward, beta, out)?;
    for ((o, &f), &b) in out.iter_mut().zip(forward).zip(backward) {
        *o = (1.0 + beta) * f - beta * b;
    }
    Ok(())
}

/// The divergence-free part `out = β (forward − backward)` of [`corrector_velocity`]:
/// added to any velocity generating `p_s` it leaves the marginals unchanged
/// (flow_matching's `div_free` term is its value conditionally on `x_1`).
///
/// # Errors
/// As [`corrector_velocity`].
pub fn divergence_free_velocity(
    forward: &[f64],
    backward: &[f64],
    beta: f64,
    out: &mut [f64],
) -> Result<()> {
    check_combination(forward, backward, beta, out)?;
    for ((o, &f), &b) in out.iter_mut().zip(forward).zip(backward) {
        *o = beta * (f - b);
    }
    Ok(())
}
