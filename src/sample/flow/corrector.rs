//! Time-dependent corrector (divergence-free) coefficients `β_s` of the flow solvers
//! (Gat et al. 2024, "Discrete Flow Matching", §"Corrector sampling": the velocity
//! `α_s û − β_s ǔ` with `α_s − β_s = 1`; facebookresearch/flow_matching
//! `MixtureDiscreteEulerSolver.sample(div_free = float | callable of t)`).
//!
//! A solver evaluates `β` at the **left** end `s_k` of each grid interval (as
//! flow_matching evaluates `div_free(t)` at the current time) and uses the step with the
//! corrector velocity `(1 + β_{s_k}) û − β_{s_k} ǔ` frozen over `[s_k, s_{k+1}]`. Whatever
//! the function `s ↦ β_s ≥ 0`, the added term `β_s (û − ǔ)` is divergence-free at every `s`
//! (it leaves `p_s` unchanged), so the marginals of the exact continuous-time process are
//! those of the path for every corrector schedule.
//!
//! | schedule | `β_s` |
//! |---|---|
//! | [`CorrectorSchedule::none`] | `0` (plain Euler solver) |
//! | [`CorrectorSchedule::constant`] | `c` |
//! | [`CorrectorSchedule::power`] | `a s^α (1 − s)^γ` (`0^0 = 1`) |
//! | [`CorrectorSchedule::gat_et_al`] | `10 s^{1/4} (1 − s)^{1/4}`: Gat et al.'s corrector `α_t = 1 + 10 t^{1/4}(1 − t)^{1/4}` |
//! | [`CorrectorSchedule::custom`] | any closure, checked finite and `≥ 0` at every evaluation |
//!
//! **Endpoints.** The corrector multiplies the backward coefficient `κ̇/κ`, singular at
//! `κ = 0` (`s = 0` for the usual schedulers); the mixture path drops the term there
//! exactly (see [`crate::kernel::path::mixture`]). A power schedule with `α > 0` vanishes
//! at `s = 0` (and with `γ > 0` at `s = 1`), so that the corrector rate `β_s κ̇/κ` stays
//! bounded near the source when `α ≥ 1` for CondOT; its value at the endpoints is computed
//! exactly (`0` for a positive exponent, `a` for a zero exponent), never as `0 · ∞`.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::validate;

type CorrectorFn = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

#[derive(Clone)]
enum Kind {
    Constant(f64),
    Power { a: f64, alpha: f64, gamma: f64 },
    Custom(CorrectorFn),
}

/// A corrector coefficient `s ↦ β_s ≥ 0` on flow time `s ∈ [0, 1]` (module docs).
///
/// ```
/// use discrete_diffusion::sample::flow::CorrectorSchedule;
/// let b = CorrectorSchedule::power(10.0, 0.25, 0.25)?;
/// assert_eq!(b.at(0.0)?, 0.0);
/// assert!((b.at(0.5)? - 10.0 * 0.5f64.sqrt()).abs() < 1e-12); // 10 · (1/2)^{1/4} (1/2)^{1/4}
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone)]
pub struct CorrectorSchedule {
    kind: Kind,
}

impl fmt::Debug for CorrectorSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Constant(c) => write!(f, "CorrectorSchedule::Constant({c})"),
            Kind::Power { a, alpha, gamma } => write!(
                f,
                "CorrectorSchedule::Power {{ a: {a}, alpha: {alpha}, gamma: {gamma} }}"
            ),
            Kind::Custom(_) => write!(f, "CorrectorSchedule::Custom(<closure>)"),
        }
    }
}

impl Default for CorrectorSchedule {
    fn default() -> Self {
        Self::none()
    }
}

fn non_negative(arg: &'static str, x: f64) -> Result<f64> {
    if !(x.is_finite() && x >= 0.0) {
        return Err(Error::invalid(arg, format!("{x} must be finite and ≥ 0")));
    }
    Ok(x)
}

impl CorrectorSchedule {
    /// `β_s = 0`: no corrector.
    pub fn none() -> Self {
        CorrectorSchedule {
            kind: Kind::Constant(0.0),
        }
    }

    /// `β_s = c` (flow_matching's `div_free = c`).
    ///
    /// # Errors
    /// `c` negative or not finite.
    pub fn constant(c: f64) -> Result<Self> {
        Ok(CorrectorSchedule {
            kind: Kind::Constant(non_negative("div_free", c)?),
        })
    }

    /// `β_s = a s^α (1 − s)^γ` (Gat et al. 2024's family), with `0^0 = 1`: at `s = 0` the
    /// value is `a` if `α = 0`, else `0`; at `s = 1` it is `a` if `γ = 0`, else `0`.
    ///
    /// # Errors
    /// `a`, `α` or `γ` negative or not finite.
    pub fn power(a: f64, alpha: f64, gamma: f64) -> Result<Self> {
        Ok(CorrectorSchedule {
            kind: Kind::Power {
                a: non_negative("a", a)?,
                alpha: non_negative("alpha", alpha)?,
                gamma: non_negative("gamma", gamma)?,
            },
        })
    }

    /// Gat et al. 2024's corrector schedule `β_s = 10 s^{1/4} (1 − s)^{1/4}` (their
    /// `α_t = 1 + 10 t^{1/4}(1 − t)^{1/4}`, `β_t = α_t − 1`; the form is symmetric in
    /// `s ↔ 1 − s`; ReMDM's "DFM corrector" baseline,
    /// [`remdm_dfm_corrector`](crate::sample::remask::remdm_dfm_corrector)).
    pub fn gat_et_al() -> Self {
        CorrectorSchedule {
            kind: Kind::Power {
                a: 10.0,
                alpha: 0.25,
                gamma: 0.25,
            },
        }
    }

    /// Any `β_s = f(s)` (flow_matching's callable `div_free`). Its values are checked at
    /// every evaluation ([`CorrectorSchedule::at`]): a NaN, infinite or negative value is an
    /// error naming `s`, never a silent clamp.
    pub fn custom<F>(f: F) -> Self
    where
        F: Fn(f64) -> f64 + Send + Sync + 'static,
    {
        CorrectorSchedule {
            kind: Kind::Custom(Arc::new(f)),
        }
    }

    /// `β_s`.
    ///
    /// # Errors
    /// `s ∉ [0, 1]`; a custom schedule whose value at `s` is negative or not finite.
    pub fn at(&self, s: f64) -> Result<f64> {
        validate::time("s", s)?;
        match &self.kind {
            Kind::Constant(c) => Ok(*c),
            Kind::Power { a, alpha, gamma } => {
                let left = if s == 0.0 {
                    f64::from(u8::from(*alpha == 0.0))
                } else {
                    s.powf(*alpha)
                };
                let right = if s == 1.0 {
                    f64::from(u8::from(*gamma == 0.0))
                } else {
                    (1.0 - s).powf(*gamma)
                };
                Ok(a * left * right)
            }
            Kind::Custom(f) => {
                let b = f(s);
                if !(b.is_finite() && b >= 0.0) {
                    return Err(Error::invalid(
                        "div_free",
                        format!(
                            "the corrector schedule gives β({s}) = {b}: it must be finite and ≥ 0"
                        ),
                    ));
                }
                Ok(b)
            }
        }
    }

    /// `Some(c)` when `β_s = c` for every `s` (constant schedules and `a = 0` powers).
    pub fn constant_value(&self) -> Option<f64> {
        match &self.kind {
            Kind::Constant(c) => Some(*c),
            Kind::Power { a, .. } if *a == 0.0 => Some(0.0),
            Kind::Power {
                a,
                alpha: 0.0,
                gamma: 0.0,
            } => Some(*a),
            _ => None,
        }
    }

    /// Whether `β ≡ 0` is known without evaluating (constant 0, or `a = 0`). A custom
    /// closure is never known to vanish.
    pub fn is_zero(&self) -> bool {
        self.constant_value() == Some(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_endpoints() {
        let g = CorrectorSchedule::gat_et_al();
        assert_eq!(g.at(0.0).unwrap(), 0.0);
        assert_eq!(g.at(1.0).unwrap(), 0.0);
        assert!((g.at(0.5).unwrap() - 10.0 * 0.5f64.sqrt()).abs() < 1e-12);
        let p = CorrectorSchedule::power(2.0, 0.0, 1.0).unwrap();
        assert_eq!(p.at(0.0).unwrap(), 2.0);
        assert_eq!(p.at(1.0).unwrap(), 0.0);
        assert_eq!(
            CorrectorSchedule::power(3.0, 0.0, 0.0)
                .unwrap()
                .constant_value(),
            Some(3.0)
        );
        assert!(CorrectorSchedule::none().is_zero());
        assert!(!CorrectorSchedule::custom(|_| 0.0).is_zero());
        let bad = CorrectorSchedule::custom(|s| if s > 0.5 { f64::NAN } else { s });
        assert_eq!(bad.at(0.25).unwrap(), 0.25);
        assert!(bad.at(0.75).is_err());
        assert!(CorrectorSchedule::constant(-1.0).is_err());
        assert!(CorrectorSchedule::power(1.0, f64::INFINITY, 0.0).is_err());
        assert!(g.at(1.5).is_err());
        assert!(format!("{:?}", CorrectorSchedule::custom(|_| 1.0)).contains("Custom"));
    }
}
