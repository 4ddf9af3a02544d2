//! One weighting API for every masked-diffusion objective: the factor `w(t)` that multiplies
//! the x0 cross-entropy of the masked positions,
//!
//! ```text
//! loss(x_0, t, x_t) = w(t) · Σ_{i : x_t^i = mask} −log p_θ(x_0^i | x_t),
//! ```
//!
//! so that `E_{t ~ U[0,1], x_t ~ q(x_t | x_0)}[loss]` is the objective (the NELBO when `w` is
//! the ELBO weight). Every loss of [`crate::loss::masked`] and every estimator of
//! [`crate::train`] takes an [`ElboWeight`].
//!
//! | variant | `w(t)` | paper |
//! |---|---|---|
//! | [`ElboWeight::Elbo`] | `−α'(t)/(1 − α(t))` | MDLM (Sahoo et al. 2024, eq. 10), MD4 (Shi et al. 2024, eq. 5), RADD's t-DCE (Ou et al. 2024), LLaDA (`1/t` for `α = 1 − t`) |
//! | [`ElboWeight::RaddLambda`] | `1/(1 − α(t))` | RADD's λ-DCE (Ou et al. 2024, Thm. 2): `λ = 1 − α(t)` the masking ratio, drawn `λ ~ U(0, 1)` |
//! | [`ElboWeight::DplmLinear`] | `1 − t` | DPLM / RDM "linear" reweighting (Wang et al. 2024; Zheng et al. 2023), continuous-time limit of `1 − (k − 1)/T` |
//! | [`ElboWeight::Constant`] | `c` | DPLM / RDM "constant" (`c = 1`), plain MLM-style training |
//! | [`ElboWeight::D3pmHybrid`] | `T(α(t − 1/T) − α(t))/(1 − α(t)) + λ` at `t = k/T` | D3PM (Austin et al. 2021, §3.4) absorbing-state hybrid loss `L_vb + λ L_CE` with `t ~ U{1..T}` |
//!
//! Only [`ElboWeight::Elbo`] (with `t ~ U[0, 1]`), [`ElboWeight::RaddLambda`] (with
//! `1 − α(t) ~ U[0, 1]`) and [`ElboWeight::D3pmHybrid`] with `λ = 0` (with `t` uniform on the
//! grid `{1/T, …, 1}`) make the expected loss a variational bound; see
//! [`ElboWeight::is_variational_bound`].

use crate::error::{Error, Result};
use crate::schedule::Schedule;
use crate::validate;

/// The weight `w(t)` of a masked-diffusion objective (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum ElboWeight {
    /// The continuous-time NELBO weight `−α'(t)/(1 − α(t))` of the schedule
    /// ([`Schedule::elbo_weight`]); `1/t` for `α(t) = 1 − t`. `+∞` where `α(t) = 1`.
    Elbo,
    /// RADD's λ-DCE weight `1/λ` with `λ = 1 − α(t)` the masking probability; `+∞` where
    /// `α(t) = 1`. An unbiased NELBO estimator when `t` is drawn so that `λ ~ U(0, 1)`
    /// (for the linear schedule `α = 1 − t` it coincides with [`ElboWeight::Elbo`]).
    RaddLambda,
    /// DPLM/RDM linear reweighting `1 − t` (not a bound).
    DplmLinear,
    /// A constant weight `c ≥ 0` (DPLM/RDM `constant` with `c = 1`; not a bound).
    Constant(f64),
    /// D3PM's absorbing-state loss at step `k = tT ∈ 1..=T`:
    /// `T·(α((k−1)/T) − α(k/T))/(1 − α(k/T)) + λ`. The first term is `T` times the weight
    /// `λ⁽²⁾_{k−1}` of `L_{k−1}` on a masked position (so that `E_{k ~ U{1..T}}` of the
    /// weighted loss is the discrete NELBO `Σ_k L_{k−1}` without `L_T`); the second is the
    /// auxiliary cross-entropy weight (SUBS: unmasked positions contribute 0).
    D3pmHybrid {
        /// Number of discrete steps `T ≥ 1`.
        num_steps: usize,
        /// Weight `λ ≥ 0` of the auxiliary x0 cross-entropy.
        lambda: f64,
    },
}

impl ElboWeight {
    /// Validate the variant's parameters (`c ≥ 0` finite; `T ≥ 1`, `λ ≥ 0` finite).
    pub fn validate(&self) -> Result<()> {
        match *self {
            ElboWeight::Constant(c) if !(c.is_finite() && c >= 0.0) => {
                return Err(Error::invalid(
                    "weight",
                    format!("constant weight {c} must be finite and ≥ 0"),
                ));
            }
            ElboWeight::D3pmHybrid { num_steps, lambda } => {
                if num_steps == 0 || num_steps > u32::MAX as usize {
                    return Err(Error::invalid(
                        "num_steps",
                        format!("{num_steps} must lie in 1..=u32::MAX"),
                    ));
                }
                if !(lambda.is_finite() && lambda >= 0.0) {
                    return Err(Error::invalid(
                        "lambda",
                        format!("{lambda} must be finite and ≥ 0"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `E[w(t) Σ_masked CE]` under the variant's own time law (module docs) is the
    /// negative ELBO.
    pub fn is_variational_bound(&self) -> bool {
        match *self {
            ElboWeight::Elbo | ElboWeight::RaddLambda => true,
            ElboWeight::D3pmHybrid { lambda, .. } => lambda == 0.0,
            ElboWeight::DplmLinear | ElboWeight::Constant(_) => false,
        }
    }

    /// `w(t)` for `schedule` at time `t ∈ [0, 1]` (module docs; `+∞` where the weight
    /// diverges, e.g. the ELBO weight at `t = 0`).
    ///
    /// Errors: `t` outside `[0, 1]` or NaN; invalid parameters ([`validate`](Self::validate));
    /// for [`ElboWeight::D3pmHybrid`], `t` not on the grid `{1/T, …, 1}` (`t = 0` is not a
    /// step).
    ///
    /// ```
    /// use discrete_diffusion::loss::weight::ElboWeight;
    /// use discrete_diffusion::schedule::Linear;
    /// let s = Linear::new();
    /// assert!((ElboWeight::Elbo.weight(&s, 0.25)? - 4.0).abs() < 1e-12);
    /// assert!((ElboWeight::DplmLinear.weight(&s, 0.25)? - 0.75).abs() < 1e-15);
    /// // D3PM with T = 4 on α = 1 − t: T·(1/T)/t = 1/t at t = k/T.
    /// let w = ElboWeight::D3pmHybrid { num_steps: 4, lambda: 0.0 }.weight(&s, 0.5)?;
    /// assert!((w - 2.0).abs() < 1e-12);
    /// # Ok::<(), discrete_diffusion::Error>(())
    /// ```
    pub fn weight(&self, schedule: &dyn Schedule, t: f64) -> Result<f64> {
        validate::time("t", t)?;
        self.validate()?;
        match *self {
            ElboWeight::Elbo => schedule.elbo_weight(t),
            ElboWeight::RaddLambda => {
                let m = schedule.move_chance(t)?;
                Ok(if m > 0.0 { 1.0 / m } else { f64::INFINITY })
            }
            ElboWeight::DplmLinear => Ok(1.0 - t),
            ElboWeight::Constant(c) => Ok(c),
            ElboWeight::D3pmHybrid { num_steps, lambda } => {
                let k = crate::kernel::step_of_time(t, num_steps)?;
                if k == 0 {
                    return Err(Error::invalid(
                        "t",
                        "t = 0 is not a D3PM step (steps are k/T, k ∈ 1..=T)",
                    ));
                }
                let n = num_steps as f64;
                let a_prev = schedule.alpha((k - 1) as f64 / n)?;
                let a = schedule.alpha(k as f64 / n)?;
                let m = 1.0 - a;
                let vb = if m > 0.0 { n * (a_prev - a) / m } else { 0.0 };
                Ok(vb + lambda)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Linear, MdlmCosine};

    #[test]
    fn elbo_weight_matches_schedule() {
        let s = MdlmCosine::default();
        for t in [0.1, 0.5, 0.9] {
            assert_eq!(
                ElboWeight::Elbo.weight(&s, t).unwrap(),
                s.elbo_weight(t).unwrap()
            );
        }
        assert_eq!(
            ElboWeight::Elbo.weight(&Linear::new(), 0.0).unwrap(),
            f64::INFINITY
        );
    }

    #[test]
    fn hybrid_rejects_off_grid() {
        let w = ElboWeight::D3pmHybrid {
            num_steps: 4,
            lambda: 0.1,
        };
        assert!(w.weight(&Linear::new(), 0.3).is_err());
        assert!(w.weight(&Linear::new(), 0.0).is_err());
        assert!((w.weight(&Linear::new(), 1.0).unwrap() - 1.1).abs() < 1e-12);
    }
}
