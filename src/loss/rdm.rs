//! The reweighted cross-entropy of reparameterized discrete diffusion (RDM; Zheng et al.
//! 2023, "A Reparameterized Discrete Diffusion Model for Text Generation", §4.2 and
//! Theorem 3.1; code HKUNLP/reparam-discrete-diffusion, `compute_loss`).
//!
//! Under the routing reformulation (see [`crate::sample::rdm`]) the step-`t` term of the
//! ELBO is, up to a constant in `θ`,
//!
//! `L_t = E[ λ_{t−1} Σ_i (1 − b_t^i) · (−log p_θ(x_0^i | x_t)) ]`, `b_t^i = 1[x_t^i = x_0^i]`,
//!
//! with `λ_{t−1} = λ⁽²⁾_{t−1} = (ᾱ_{t−1} − ᾱ_t)/(1 − ᾱ_t)`. (For an absorbing kernel and a
//! masked `x_t^i` this is immediate: `KL(λ δ_{x0} + (1−λ) δ_m ‖ λ p̃ + (1−λ) δ_m) = −λ log p̃(x_0)`.)
//! The paper observes that the weighting can be changed freely and proposes a linearly
//! decaying one; the public code calls the choices `reciprocal`, `linear` and `none`
//! ([`RdmWeighting`]).
//!
//! # Reduction (as in the code)
//!
//! `loss = (1/B) Σ_b w(t_b) · (1/L) Σ_i (1 − b^{b,i}) · CE_{b,i}`,
//! `CE_{b,i} = −log softmax(logits_{b,i})[x_0^{b,i}]`: the per-sequence sum over noisy
//! positions is divided by the full length `L` (positions with `x_t = x_0` count in the
//! denominator), then averaged over the batch. The gradient is
//! `∂loss/∂logits_{b,i,v} = w(t_b)/(B L) · (1 − b^{b,i}) · (softmax(logits_{b,i})_v − 1[v = x_0^{b,i}])`.
//! For multinomial noise `b` is taken from the tokens (`x_t = x_0`), so a token that was
//! noised back to its own value counts as clean, as in the code.

use ndarray::{ArrayView1, ArrayView2, ArrayView3, ArrayViewMut3};
use num_traits::Float;

use crate::error::{Error, Result};
use crate::sample::rdm::MixtureSchedule;
use crate::validate;

/// The per-step weight `w(t)`, `t ∈ 1..=T`, of the RDM loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdmWeighting {
    /// The ELBO weight `λ⁽²⁾_{t−1} = (ᾱ_{t−1} − ᾱ_t)/(1 − ᾱ_t)` of the schedule (0 when
    /// `ᾱ_t = 1`).
    Elbo,
    /// `1/t` (code: `reciprocal`): the ELBO weight of the linear schedule `ᾱ_t = 1 − t/T`.
    Reciprocal,
    /// `1 − (t − 1)/T` (code: `linear`; the paper's linearly decaying weight).
    Linear,
    /// `1` (code: `none`).
    Constant,
}

impl RdmWeighting {
    /// `w(t)` for step `t ∈ 1..=T` of `schedule`.
    pub fn weight(self, schedule: &MixtureSchedule, t: usize) -> Result<f64> {
        let n = schedule.num_steps();
        if t == 0 || t > n {
            return Err(Error::invalid("t", format!("step {t} is outside 1..={n}")));
        }
        Ok(match self {
            RdmWeighting::Elbo => {
                let a = schedule.alpha_bar();
                if a[t] < 1.0 {
                    (a[t - 1] - a[t]) / (1.0 - a[t])
                } else {
                    0.0
                }
            }
            RdmWeighting::Reciprocal => 1.0 / t as f64,
            RdmWeighting::Linear => 1.0 - (t - 1) as f64 / n as f64,
            RdmWeighting::Constant => 1.0,
        })
    }
}

/// The RDM reweighted cross-entropy (module docs) and, if `grad` is given, its gradient with
/// respect to `logits` (overwritten, same shape).
///
/// Shapes: `logits [B, L, V]` (f32 or f64; `−∞` allowed except at a target of a noisy
/// position), `x0 [B, L]`, `xt [B, L]`, `steps [B]` with `steps[b] ∈ 1..=T`; `V` must equal
/// `schedule.vocab_size()`. Accumulated in f64. Errors: shapes, empty batch or length,
/// tokens out of range, NaN/`+∞` logits, steps out of range, and
/// [`Error::ZeroProbability`] when a counted target has logit `−∞`.
pub fn rdm_loss<F: Float>(
    logits: ArrayView3<'_, F>,
    x0: ArrayView2<'_, u32>,
    xt: ArrayView2<'_, u32>,
    steps: ArrayView1<'_, usize>,
    schedule: &MixtureSchedule,
    weighting: RdmWeighting,
    grad: Option<ArrayViewMut3<'_, F>>,
) -> Result<f64> {
    let (nb, len, v) = logits.dim();
    if nb == 0 || len == 0 {
        return Err(Error::shape(
            "logits",
            "[B ≥ 1, L ≥ 1, V]",
            format!("{:?}", logits.shape()),
        ));
    }
    if v != schedule.vocab_size() {
        return Err(Error::shape(
            "logits",
            format!("last axis V = {}", schedule.vocab_size()),
            format!("{v}"),
        ));
    }
    if x0.dim() != (nb, len) {
        return Err(Error::shape(
            "x0",
            format!("[{nb}, {len}]"),
            format!("{:?}", x0.shape()),
        ));
    }
    if xt.dim() != (nb, len) {
        return Err(Error::shape(
            "xt",
            format!("[{nb}, {len}]"),
            format!("{:?}", xt.shape()),
        ));
    }
    validate::len("steps", steps.len(), nb)?;
    validate::tokens("x0", x0.iter(), v)?;
    validate::tokens("xt", xt.iter(), v)?;
    for (index, x) in logits.iter().enumerate() {
        let x = x.to_f64().unwrap_or(f64::NAN);
        if x.is_nan() || x == f64::INFINITY {
            return Err(Error::NonFinite {
                arg: "logits",
                index,
                value: x,
            });
        }
    }
    let mut weights = Vec::with_capacity(nb);
    for &t in steps.iter() {
        weights.push(weighting.weight(schedule, t).map_err(|_| {
            Error::invalid(
                "steps",
                format!("step {t} is outside 1..={}", schedule.num_steps()),
            )
        })?);
    }
    if let Some(g) = &grad
        && g.dim() != (nb, len, v)
    {
        return Err(Error::shape(
            "grad",
            format!("[{nb}, {len}, {v}]"),
            format!("{:?}", g.shape()),
        ));
    }
    let mut grad = grad;
    let scale = 1.0 / (nb as f64 * len as f64);
    let mut total = 0.0;
    let mut probs = vec![0.0; v];
    for b in 0..nb {
        for i in 0..len {
            let target = x0[[b, i]] as usize;
            let counted = xt[[b, i]] != x0[[b, i]];
            let coef = weights[b] * scale;
            if !counted || coef == 0.0 {
                if let Some(g) = grad.as_mut() {
                    g.slice_mut(ndarray::s![b, i, ..]).fill(F::zero());
                }
                continue;
            }
            let row = logits.slice(ndarray::s![b, i, ..]);
            let lt = row[target].to_f64().unwrap_or(f64::NAN);
            if lt == f64::NEG_INFINITY {
                return Err(Error::ZeroProbability {
                    what: format!(
                        "target x0 = {target} has logit -inf at sequence {b}, position {i}"
                    ),
                });
            }
            // log-sum-exp in f64
            let max = row
                .iter()
                .map(|x| x.to_f64().unwrap_or(f64::NAN))
                .fold(f64::NEG_INFINITY, f64::max);
            let mut z = 0.0;
            for (p, x) in probs.iter_mut().zip(row.iter()) {
                let e = (x.to_f64().unwrap_or(f64::NAN) - max).exp();
                *p = e;
                z += e;
            }
            let lse = max + z.ln();
            total += coef * (lse - lt);
            if let Some(g) = grad.as_mut() {
                for (k, gk) in g.slice_mut(ndarray::s![b, i, ..]).iter_mut().enumerate() {
                    let d = probs[k] / z - if k == target { 1.0 } else { 0.0 };
                    *gk = F::from(coef * d).unwrap_or_else(F::nan);
                }
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::rdm::linear_alpha_bar;

    #[test]
    fn elbo_weight_is_reciprocal_for_linear_schedule() {
        let s = MixtureSchedule::absorbing(linear_alpha_bar(7), 3, 2).unwrap();
        for t in 1..=7 {
            let e = RdmWeighting::Elbo.weight(&s, t).unwrap();
            let r = RdmWeighting::Reciprocal.weight(&s, t).unwrap();
            assert!((e - r).abs() < 1e-12, "t={t}: {e} vs {r}");
        }
        assert_eq!(RdmWeighting::Linear.weight(&s, 1).unwrap(), 1.0);
        assert!((RdmWeighting::Linear.weight(&s, 7).unwrap() - 1.0 / 7.0).abs() < 1e-15);
        assert!(RdmWeighting::Constant.weight(&s, 0).is_err());
        assert!(RdmWeighting::Constant.weight(&s, 8).is_err());
    }
}
