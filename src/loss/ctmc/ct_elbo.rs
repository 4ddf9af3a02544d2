//! Campbell et al. 2022's continuous-time ELBO `L_CT` ("A Continuous Time Framework for
//! Discrete Denoising Models", Prop. 2 and App. C.3), as tauLDR evaluates it
//! (andrew-cr/tauLDR `lib/losses/losses.py`, `GenericAux.calc_loss`, `one_forward_pass`).
//!
//! Training draws `t`, `x_t ~ q_{t|0}(·|x0)` (all `D` coordinates), and one forward jump
//! `x̃ ~ R_t(x_t, ·)/Z_t(x_t)` (one coordinate changes), then evaluates the network once
//! at `x̃`: `p_d = softmax(ℓ_d) ≈ p(x0^d | x̃)`. Given `x̃` the estimator is deterministic
//! ([`ct_elbo_given_tilde`]); with `q = q_{t|0}`, `R = R_t = σ(t)Q`, `ε` = `eps_ratio`,
//! `Z(s) = −R[s, s]` and `Z̃ = Σ_d Z(x̃_d)`:
//!
//! ```text
//! reg      = Σ_d Σ_{x0} p_d(x0)/(q[x0, x̃_d] + ε) · Σ_{x' ≠ x̃_d} R[x', x̃_d] q[x0, x']
//!          (the model's total reverse rate out of x̃)
//! outer    = Σ_d Σ_{x' ≠ x̃_d} R[x', x̃_d] · q[x0_d, x']/(q[x0_d, x̃_d] + ε)
//!                · log( Σ_{x0} p_d(x0) q[x0, x']/(q[x0, x̃_d] + ε) + ε )
//! sig_norm = Σ_d Σ_{x' ≠ x̃_d} R[x', x̃_d] q[x0_d, x'] / ((Z̃ − Z(x̃_d) + Z(x')) (q[x0_d, x̃_d] + ε))
//! neg_elbo = reg − outer / sig_norm,     nll = mean_d CE(ℓ_d, x0_d),
//! loss     = neg_elbo + nll_weight · nll.
//! ```
//!
//! `sig_norm` is the self-normalised importance weight that replaces the intractable
//! `x_t`-marginal in the paper's second term (Campbell et al. App. C.3). Cost `O(D·V²)` plus
//! `V` transition rows: meant for tauLDR-sized state spaces.

use num_traits::Float;

use super::{cast, check_grad, f64_of};
use crate::error::{Error, Result};
use crate::kernel::ctmc::{Ctmc, RateGenerator};
use crate::schedule::Schedule;
use crate::validate;

/// The terms of tauLDR's CT-ELBO estimator for one sequence (names as in the anchor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtElboTerms {
    /// The reverse-rate ("regularisation") term.
    pub reg_term: f64,
    /// The unnormalised signal sum.
    pub outer_sum_sig: f64,
    /// Its self-normalising weight.
    pub sig_norm: f64,
    /// `−outer_sum_sig / sig_norm`.
    pub sig_term: f64,
    /// `sig_term + reg_term`.
    pub neg_elbo: f64,
    /// Mean cross-entropy of the logits against `x0`.
    pub nll: f64,
    /// `neg_elbo + nll_weight · nll`.
    pub loss: f64,
}

/// tauLDR's CT-ELBO given the sampled `x̃` (module docs): `x0`, `x_tilde` of length `D`,
/// `logits` row-major `[D, V]` (the network at `(x̃, t)`), `eps_ratio ≥ 0`,
/// `nll_weight ≥ 0`. `grad` (same shape as `logits`) receives `∂loss/∂ℓ`.
///
/// # Errors
/// Shape, token and non-finite errors naming the argument; [`Error::Numerical`] if the rate
/// at `t` is infinite or the signal normaliser vanishes.
#[allow(clippy::too_many_arguments)]
pub fn ct_elbo_given_tilde<G: RateGenerator, S: Schedule, F: Float>(
    ctmc: &Ctmc<G, S>,
    t: f64,
    x0: &[u32],
    x_tilde: &[u32],
    logits: &[F],
    eps_ratio: f64,
    nll_weight: f64,
    grad: Option<&mut [F]>,
) -> Result<CtElboTerms> {
    let v = ctmc.vocab_size();
    let d = x0.len();
    if d == 0 {
        return Err(Error::invalid("x0", "empty sequence"));
    }
    validate::len("x_tilde", x_tilde.len(), d)?;
    validate::tokens("x0", x0, v)?;
    validate::tokens("x_tilde", x_tilde, v)?;
    validate::len("logits", logits.len(), d * v)?;
    validate::all_finite("logits", logits)?;
    check_grad(&grad, d * v)?;
    for (name, x) in [("eps_ratio", eps_ratio), ("nll_weight", nll_weight)] {
        if !(x.is_finite() && x >= 0.0) {
            return Err(Error::invalid(
                name,
                format!("must be finite and ≥ 0, got {x}"),
            ));
        }
    }
    // Dense q[x0, x] and R[x, y] at t.
    let mut q = vec![0.0; v * v];
    let mut r = vec![0.0; v * v];
    for s in 0..v {
        ctmc.marginal_row(s as u32, t, &mut q[s * v..(s + 1) * v])?;
        ctmc.rate_row(s as u32, t, &mut r[s * v..(s + 1) * v])?;
    }
    let zrow: Vec<f64> = (0..v).map(|s| -r[s * v + s]).collect();
    let z_tilde: f64 = x_tilde.iter().map(|&s| zrow[s as usize]).sum();

    // The signal normaliser depends on x0, x̃ and the process only.
    let weight = |i: usize, y: usize| -> f64 {
        let (xt, z) = (x_tilde[i] as usize, x0[i] as usize);
        if y == xt {
            0.0
        } else {
            r[y * v + xt] * q[z * v + y] / (q[z * v + xt] + eps_ratio)
        }
    };
    let mut norm = 0.0;
    for (i, &xt) in x_tilde.iter().enumerate() {
        let xt = xt as usize;
        for y in 0..v {
            let w = weight(i, y);
            if w != 0.0 {
                norm += w / (z_tilde - zrow[xt] + zrow[y]);
            }
        }
    }
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(Error::Numerical {
            what: "ct_elbo_given_tilde",
            reason: format!("the signal normaliser is {norm}"),
        });
    }

    let (mut reg, mut outer, mut nll) = (0.0, 0.0, 0.0);
    let mut p = vec![0.0; v];
    let mut a = vec![0.0; v]; // ∂reg/∂p_d
    let mut m = vec![0.0; v];
    let mut w = vec![0.0; v];
    let mut grad = grad;
    for i in 0..d {
        let row = &logits[i * v..(i + 1) * v];
        let lse = crate::math::softmax_into(row, &mut p)?;
        let (xt, z) = (x_tilde[i] as usize, x0[i] as usize);
        nll += lse - f64_of(row[z]);
        m.fill(0.0);
        for x in 0..v {
            let den = q[x * v + xt] + eps_ratio;
            let mut acc = 0.0;
            for y in 0..v {
                if y != xt {
                    acc += r[y * v + xt] * q[x * v + y];
                    m[y] += p[x] * q[x * v + y] / den;
                }
            }
            a[x] = acc / den;
            reg += p[x] * a[x];
        }
        for (y, wy) in w.iter_mut().enumerate() {
            *wy = weight(i, y);
            if *wy != 0.0 {
                outer += *wy * (m[y] + eps_ratio).ln();
            }
        }
        if let Some(g) = grad.as_deref_mut() {
            let g = &mut g[i * v..(i + 1) * v];
            // ∂loss/∂p(x0) = a(x0) − b(x0)/sig_norm, b = ∂outer/∂p; then through the softmax.
            let mut mean = 0.0;
            for x in 0..v {
                let den = q[x * v + xt] + eps_ratio;
                let b: f64 = (0..v)
                    .filter(|&y| w[y] != 0.0)
                    .map(|y| w[y] * q[x * v + y] / den / (m[y] + eps_ratio))
                    .sum();
                a[x] -= b / norm;
                mean += p[x] * a[x];
            }
            let ce = nll_weight / d as f64;
            for x in 0..v {
                let onehot = if x == z { 1.0 } else { 0.0 };
                g[x] = cast(p[x] * (a[x] - mean) + ce * (p[x] - onehot));
            }
        }
    }
    let nll = nll / d as f64;
    let sig_term = -outer / norm;
    let neg_elbo = sig_term + reg;
    Ok(CtElboTerms {
        reg_term: reg,
        outer_sum_sig: outer,
        sig_norm: norm,
        sig_term,
        neg_elbo,
        nll,
        loss: neg_elbo + nll_weight * nll,
    })
}
