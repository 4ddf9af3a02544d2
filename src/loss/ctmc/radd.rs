//! RADD's objectives (Ou et al. 2024, "Your Absorbing Discrete Diffusion Secretly Models the
//! Conditional Distributions of Clean Data", §3–4; ML-GSAI/RADD `losses.py`).
//!
//! For absorbing noise the concrete score at a masked position is a time scalar times a
//! time-free conditional: `s(x_t)_{mask→y} = e^{−σ̄}/(1 − e^{−σ̄}) · c(y | x_t^{UM})`
//! (Thm. 1; [`crate::param::radd`]). The network outputs `log c` (a log-softmax over the
//! non-mask tokens). With `r(t) = 1/(e^{σ̄(t)} − 1)` and `M` the masked positions of `x_t`:
//!
//! | loss | per-sample value (paper form) | anchor function |
//! |---|---|---|
//! | t-DSE | `σ(t) Σ_{i∈M} [ r Σ_{y≠m} c_i(y) − r log(r c_i(x0^i)) + r(log r − 1) ]`, the DWDSE with score `r·c` | `t_DSE_loss` |
//! | t-DCE | `σ(t) r Σ_{i∈M} −log c_i(x0^i)` (Thm. 2) | `t_DCE_loss` |
//! | λ-DCE | `(1/λ) Σ_{i∈M} −log c_i(x0^i)`, `x_λ` masks each token w.p. `λ` | `lambda_DCE_loss` |
//! | k-DCE | `(L/k) Σ_{i∈M} −log c_i(x0^i)`, `k = |M| ~ U{1..L}`, `M` a uniform `k`-subset | `k_DCE_loss` |
//!
//! All four have the same expectation, the NELBO (t-DSE only once `c` is normalised: it
//! equals t-DCE plus `σ r Σ_i (Σ_y c_i(y) − 1)`). λ-DCE is t-DCE after the change of variable
//! `λ = 1 − e^{−σ̄(t)}`; k-DCE integrates `λ` out (`∫ λ^{k−1}(1−λ)^{L−k} dλ · C(L,k) = 1/k`),
//! the any-order autoregressive loss.
//!
//! **Where the public code differs:** `t_DCE_loss` computes
//! `σ(t) Σ_{i∈M} (−log c_i(x0^i) + log(e^{σ̄} − 1))/(e^{σ̄} − 1)`, which adds the
//! θ-independent `σ r log(e^{σ̄} − 1)` per masked token (same gradients, expectation offset
//! ≈ 0 under the log-linear schedule, see the conformance notes): [`DceForm::Code`]. The
//! default [`DceForm::Paper`] is Thm. 2's form. The anchor also switches between `expm1` and
//! `exp − 1` at `σ̄ = 0.5`; this crate always uses `expm1` (same value, better accuracy).
//!
//! Inputs: `x0`, `x_t` of length `L` (`x0` has no mask; `x_t[i]` is the mask or `x0[i]`),
//! `log_c` row-major `[L, V]` over the full vocabulary (the entry at the mask index is
//! ignored), gradients with respect to `log_c` (chain them through the network's
//! log-softmax). Values in nats.

use num_traits::Float;

use super::{cast, check_grad, f64_of};
use crate::error::{Error, Result};
use crate::schedule::Schedule;
use crate::validate;

/// Which t-DCE: Ou et al.'s Thm. 2 or the public code's (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DceForm {
    /// `σ r Σ −log c(x0)`.
    #[default]
    Paper,
    /// `σ r Σ (−log c(x0) + log(e^{σ̄} − 1))` (ML-GSAI/RADD `t_DCE_loss`).
    Code,
}

/// Validate the common inputs; returns `(L, V)`.
fn check(mask: u32, x0: &[u32], x_t: &[u32], log_c: &[impl Float]) -> Result<(usize, usize)> {
    let l = x0.len();
    if l == 0 {
        return Err(Error::invalid("x0", "empty sequence"));
    }
    validate::len("x_t", x_t.len(), l)?;
    if !log_c.len().is_multiple_of(l) || log_c.len() / l < 2 {
        return Err(Error::shape(
            "log_c",
            format!("[L = {l}, V ≥ 2] row-major"),
            format!("length {}", log_c.len()),
        ));
    }
    let v = log_c.len() / l;
    validate::token("mask", mask, v)?;
    validate::tokens("x0", x0, v)?;
    validate::tokens("x_t", x_t, v)?;
    for (i, (&a, &b)) in x0.iter().zip(x_t).enumerate() {
        if a == mask {
            return Err(Error::invalid(
                "x0",
                format!("x0[{i}] is the mask token {mask}"),
            ));
        }
        if b != mask && b != a {
            return Err(Error::invalid(
                "x_t",
                format!("x_t[{i}] = {b} is neither the mask nor x0[{i}] = {a} (absorbing noise)"),
            ));
        }
    }
    Ok((l, v))
}

/// `Σ_{i∈M} w·(−log c_i(x0^i))` with gradient `−w` at `(i, x0^i)`; entries other than the
/// masked rows' `x0` need finite values only where they are read.
fn weighted_dce<F: Float>(
    mask: u32,
    x0: &[u32],
    x_t: &[u32],
    log_c: &[F],
    v: usize,
    w: f64,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let mut total = 0.0;
    let mut grad = grad;
    if let Some(g) = grad.as_deref_mut() {
        g.fill(cast(0.0));
    }
    for (i, (&a, &b)) in x0.iter().zip(x_t).enumerate() {
        if b != mask {
            continue;
        }
        let lc = f64_of(log_c[i * v + a as usize]);
        if !lc.is_finite() {
            return Err(Error::NonFinite {
                arg: "log_c",
                index: i * v + a as usize,
                value: lc,
            });
        }
        total -= w * lc;
        if let Some(g) = grad.as_deref_mut() {
            g[i * v + a as usize] = cast(-w);
        }
    }
    Ok(total)
}

/// `(σ(t), r = 1/expm1(σ̄(t)))`, both finite.
fn sigma_and_factor<S: Schedule + ?Sized>(schedule: &S, t: f64) -> Result<(f64, f64)> {
    let sigma = schedule.noise_rate(t)?;
    let sb = schedule.total_noise(t)?;
    let r = 1.0 / sb.exp_m1();
    if !(sigma.is_finite() && r.is_finite()) {
        return Err(Error::invalid(
            "t",
            format!("σ(t) = {sigma} and 1/(e^σ̄ − 1) = {r} at t = {t}: the weight is not finite"),
        ));
    }
    Ok((sigma, r))
}

/// RADD's t-DCE (Thm. 2, or the code's form): `σ(t)/(e^{σ̄} − 1) · Σ_{i∈M} −log c_i(x0^i)`
/// (+ `log(e^{σ̄} − 1)` per masked token for [`DceForm::Code`]).
///
/// # Errors
/// Shape, token and value errors naming the argument; `t` where the weight is not finite.
#[allow(clippy::too_many_arguments)]
pub fn t_dce<S: Schedule + ?Sized, F: Float>(
    schedule: &S,
    t: f64,
    mask: u32,
    x0: &[u32],
    x_t: &[u32],
    log_c: &[F],
    form: DceForm,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let (_, v) = check(mask, x0, x_t, log_c)?;
    check_grad(&grad, log_c.len())?;
    let (sigma, r) = sigma_and_factor(schedule, t)?;
    let mut total = weighted_dce(mask, x0, x_t, log_c, v, sigma * r, grad)?;
    if form == DceForm::Code {
        let k = x_t.iter().filter(|&&b| b == mask).count() as f64;
        total += k * sigma * r * (1.0 / r).ln();
    }
    Ok(total)
}

/// RADD's t-DSE: SEDD's DWDSE with the score `s_y = r·c(y)` at masked positions,
///
/// ```text
/// σ(t) Σ_{i∈M} [ r Σ_{y≠m} c_i(y) − r log(r c_i(x0^i)) + r (log r − 1) ],
/// ∂/∂log c_i(y) = σ r (c_i(y) − δ_{y, x0^i}),
/// ```
///
/// with `c = exp(log_c)` taken as given (not renormalised).
///
/// # Errors
/// As [`t_dce`]; non-finite `log_c` on a masked row.
pub fn t_dse<S: Schedule + ?Sized, F: Float>(
    schedule: &S,
    t: f64,
    mask: u32,
    x0: &[u32],
    x_t: &[u32],
    log_c: &[F],
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let (_, v) = check(mask, x0, x_t, log_c)?;
    check_grad(&grad, log_c.len())?;
    let (sigma, r) = sigma_and_factor(schedule, t)?;
    let mut grad = grad;
    if let Some(g) = grad.as_deref_mut() {
        g.fill(cast(0.0));
    }
    let lr = r.ln();
    let mut total = 0.0;
    for (i, (&a, &b)) in x0.iter().zip(x_t).enumerate() {
        if b != mask {
            continue;
        }
        let row = &log_c[i * v..(i + 1) * v];
        let mut pos = 0.0;
        for (y, &lc) in row.iter().enumerate() {
            if y == mask as usize {
                continue;
            }
            let lc = f64_of(lc);
            if !lc.is_finite() && lc != f64::NEG_INFINITY {
                return Err(Error::NonFinite {
                    arg: "log_c",
                    index: i * v + y,
                    value: lc,
                });
            }
            let c = lc.exp();
            pos += c;
            if let Some(g) = grad.as_deref_mut() {
                let d = if y == a as usize { 1.0 } else { 0.0 };
                g[i * v + y] = cast(sigma * r * (c - d));
            }
        }
        let lx0 = f64_of(row[a as usize]);
        if !lx0.is_finite() {
            return Err(Error::NonFinite {
                arg: "log_c",
                index: i * v + a as usize,
                value: lx0,
            });
        }
        total += sigma * (r * pos - r * (lr + lx0) + r * (lr - 1.0));
    }
    Ok(total)
}

/// RADD's λ-DCE for one sample noised at masking probability `lambda ∈ (0, 1]`:
/// `(1/λ) Σ_{i∈M} −log c_i(x0^i)`.
///
/// # Errors
/// As [`t_dce`]; `lambda` outside `(0, 1]`.
pub fn lambda_dce<F: Float>(
    lambda: f64,
    mask: u32,
    x0: &[u32],
    x_t: &[u32],
    log_c: &[F],
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let (_, v) = check(mask, x0, x_t, log_c)?;
    check_grad(&grad, log_c.len())?;
    if !(lambda > 0.0 && lambda <= 1.0) {
        return Err(Error::invalid(
            "lambda",
            format!("must be in (0, 1], got {lambda}"),
        ));
    }
    weighted_dce(mask, x0, x_t, log_c, v, 1.0 / lambda, grad)
}

/// RADD's k-DCE (any-order autoregressive form) for one sample with `k = |M| ≥ 1` masked
/// positions: `(L/k) Σ_{i∈M} −log c_i(x0^i)`.
///
/// # Errors
/// As [`t_dce`]; no masked position.
pub fn k_dce<F: Float>(
    mask: u32,
    x0: &[u32],
    x_t: &[u32],
    log_c: &[F],
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let (l, v) = check(mask, x0, x_t, log_c)?;
    check_grad(&grad, log_c.len())?;
    let k = x_t.iter().filter(|&&b| b == mask).count();
    if k == 0 {
        return Err(Error::invalid(
            "x_t",
            "k-DCE needs at least one masked position",
        ));
    }
    weighted_dce(mask, x0, x_t, log_c, v, l as f64 / k as f64, grad)
}
