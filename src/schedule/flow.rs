//! The discrete-flow-matching view of a schedule (Gat et al. 2024, "Discrete Flow
//! Matching"; facebookresearch/flow_matching) and the scheduler shapes of that library
//! that are not already masking schedules.
//!
//! Flow matching runs time `s ∈ [0, 1]` from the source (`s = 0`) to the data (`s = 1`),
//! i.e. `s = 1 − t`, and its mixture path keeps a token from the data with probability
//! `κ(s)`. Hence `κ(s) = α(1 − s)` and `κ̇(s) = −α'(1 − s)`. The library's schedulers map
//! onto our schedules as follows (verified by the `scheduler_*` conformance cases):
//!
//! | flow_matching | `κ(s)` = `alpha_t` | our [`Schedule`] | `sigma_t` |
//! |---|---|---|---|
//! | `CondOTScheduler` | `s` | [`Linear`](super::Linear) | convex `1 − κ` |
//! | `PolynomialConvexScheduler(n)` | `sⁿ` | [`FlowPolynomial`] | convex `1 − κ` |
//! | `LinearVPScheduler` | `s` | [`Linear`](super::Linear) | VP `√(1 − κ²)` |
//! | `CosineScheduler` | `sin(πs/2)` | [`MdlmCosine`](super::MdlmCosine) with `ε = 0` | VP `√(1 − κ²)` |
//! | `VPScheduler(β_min, β_max)` | `e^{−T(s)/2}` | [`VariancePreserving`] | VP `√(1 − κ²)` |
//!
//! Only convex schedulers define a discrete mixture path; the VP ones are reproduced so that
//! their `alpha_t`/`sigma_t` quantities can be computed in one place.

use super::{Schedule, alpha_out_of_range, check_alpha, check_t, positive};
use crate::error::{Error, Result};

/// How the flow-matching `σ` is formed from `κ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigmaConvention {
    /// `σ(s) = 1 − κ(s)` (convex schedulers; the discrete mixture path).
    Convex,
    /// `σ(s) = √(1 − κ(s)²)` (variance-preserving schedulers of the Gaussian paths).
    VariancePreserving,
}

/// The flow-matching adaptor: `κ(s) = α(1 − s)`, `κ̇(s) = −α'(1 − s)`, with `s = 0` the
/// source and `s = 1` the data (Gat et al. 2024).
///
/// ```
/// use discrete_diffusion::schedule::{FlowPolynomial, Kappa};
/// let k = Kappa::convex(FlowPolynomial::new(3.0)?);
/// assert!((k.kappa(0.5)? - 0.125).abs() < 1e-15);
/// assert!((k.kappa_derivative(0.5)? - 0.75).abs() < 1e-15);
/// assert!((k.kappa_inverse(0.125)? - 0.5).abs() < 1e-15);
/// assert!((k.sigma(0.5)? - 0.875).abs() < 1e-15);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Kappa<S> {
    schedule: S,
    sigma: SigmaConvention,
}

impl<S: Schedule> Kappa<S> {
    /// The convex view: `σ(s) = 1 − κ(s)`.
    pub fn convex(schedule: S) -> Self {
        Kappa {
            schedule,
            sigma: SigmaConvention::Convex,
        }
    }
    /// The variance-preserving view: `σ(s) = √(1 − κ(s)²)`.
    pub fn variance_preserving(schedule: S) -> Self {
        Kappa {
            schedule,
            sigma: SigmaConvention::VariancePreserving,
        }
    }
    /// The underlying schedule (in the crate's time `t = 1 − s`).
    pub fn schedule(&self) -> &S {
        &self.schedule
    }
    /// The σ convention.
    pub fn sigma_convention(&self) -> SigmaConvention {
        self.sigma
    }

    /// `κ(s) = α(1 − s)` (flow_matching `alpha_t`).
    pub fn kappa(&self, s: f64) -> Result<f64> {
        self.schedule.alpha(1.0 - check_s(s)?)
    }
    /// `κ̇(s) = −α'(1 − s)` (flow_matching `d_alpha_t`).
    pub fn kappa_derivative(&self, s: f64) -> Result<f64> {
        Ok(-self.schedule.alpha_derivative(1.0 - check_s(s)?)?)
    }
    /// `κ⁻¹(k) = 1 − t(α = k)` (flow_matching `kappa_inverse`).
    pub fn kappa_inverse(&self, kappa: f64) -> Result<f64> {
        Ok((1.0 - self.schedule.time_of_alpha(kappa)?).clamp(0.0, 1.0))
    }
    /// `σ(s)`: `1 − κ` (convex) or `√(1 − κ²)` (VP) (flow_matching `sigma_t`).
    pub fn sigma(&self, s: f64) -> Result<f64> {
        let k = self.kappa(s)?;
        Ok(match self.sigma {
            SigmaConvention::Convex => 1.0 - k,
            SigmaConvention::VariancePreserving => (1.0 - k * k).max(0.0).sqrt(),
        })
    }
    /// `σ̇(s)`: `−κ̇` (convex) or `−κκ̇/√(1 − κ²)` (VP) (flow_matching `d_sigma_t`).
    pub fn sigma_derivative(&self, s: f64) -> Result<f64> {
        let dk = self.kappa_derivative(s)?;
        Ok(match self.sigma {
            SigmaConvention::Convex => -dk,
            SigmaConvention::VariancePreserving => {
                let k = self.kappa(s)?;
                let sig = (1.0 - k * k).max(0.0).sqrt();
                if k * dk == 0.0 { -0.0 } else { -k * dk / sig }
            }
        })
    }
    /// The forward (data-ward) jump coefficient of the mixture path,
    /// `κ̇(s)/(1 − κ(s))` (Gat et al. 2024, eq. for `u_t` of the mixture path): the rate at
    /// which a token not yet at the data jumps to it. Singular at `κ(s) = 1` (the path is at
    /// the data): returned as `+∞` there when `κ̇(s) > 0` and `0` when `κ̇(s) = 0`, never
    /// a division by zero.
    ///
    /// # Errors
    /// `s ∉ [0, 1]`, or a schedule error; [`Error::Numerical`] if `κ̇/(1 − κ)` is NaN.
    pub fn forward_rate(&self, s: f64) -> Result<f64> {
        let k = self.kappa(s)?;
        let dk = self.kappa_derivative(s)?;
        singular_ratio(dk, 1.0 - k, "κ̇/(1 − κ)", s)
    }

    /// The backward (source-ward) jump coefficient `κ̇(s)/κ(s)`: the rate of the backward
    /// velocity `ǔ = κ̇/κ (δ_z − p_0)` (Gat et al. 2024, §2.3 "corrector sampling").
    /// Singular at `κ(s) = 0` (the path is at the source): `+∞` there when `κ̇(s) > 0`,
    /// `0` when `κ̇(s) = 0`.
    ///
    /// # Errors
    /// As [`Kappa::forward_rate`].
    pub fn backward_rate(&self, s: f64) -> Result<f64> {
        let k = self.kappa(s)?;
        let dk = self.kappa_derivative(s)?;
        singular_ratio(dk, k, "κ̇/κ", s)
    }

    /// Signal-to-noise ratio `κ(s)/σ(s)`.
    pub fn snr(&self, s: f64) -> Result<f64> {
        let k = self.kappa(s)?;
        let sig = self.sigma(s)?;
        Ok(if sig > 0.0 { k / sig } else { f64::INFINITY })
    }
    /// The `s` with `κ(s)/σ(s) = snr` (flow_matching `snr_inverse`): `κ = snr/(1 + snr)`
    /// (convex) or `κ = snr/√(1 + snr²)` (VP), then [`Kappa::kappa_inverse`]. `snr ≥ 0`.
    pub fn snr_inverse(&self, snr: f64) -> Result<f64> {
        if !(snr.is_finite() && snr >= 0.0) {
            return Err(Error::invalid(
                "snr",
                format!("{snr} must be finite and ≥ 0"),
            ));
        }
        let k = match self.sigma {
            SigmaConvention::Convex => snr / (1.0 + snr),
            SigmaConvention::VariancePreserving => snr / (1.0 + snr * snr).sqrt(),
        };
        self.kappa_inverse(k)
    }
}

impl Kappa<super::Linear> {
    /// `CondOTScheduler`: `κ(s) = s` (convex), i.e. [`Linear`](super::Linear) under
    /// `t = 1 − s`.
    pub fn cond_ot() -> Self {
        Kappa::convex(super::Linear::new())
    }
}

impl Kappa<FlowPolynomial> {
    /// `PolynomialConvexScheduler(n)`: `κ(s) = sⁿ` (convex), `n > 0` finite.
    pub fn polynomial(n: f64) -> Result<Self> {
        Ok(Kappa::convex(FlowPolynomial::new(n)?))
    }
}

impl Kappa<super::MdlmCosine> {
    /// The cosine path `κ(s) = sin(πs/2)` taken as a convex (mixture) scheduler: MDLM's
    /// cosine schedule with `ε = 0` under `t = 1 − s`. (flow_matching's `CosineScheduler`
    /// is the same `κ` with the VP `σ`; use [`Kappa::variance_preserving`] for that one.)
    pub fn cosine() -> Self {
        Kappa::convex(super::MdlmCosine::new(0.0).expect("ε = 0 is a valid MDLM cosine floor"))
    }
}

/// `num/den` for `num ≥ 0`, `den ∈ [0, 1]`, with the singular point `den = 0` made explicit.
fn singular_ratio(num: f64, den: f64, what: &str, s: f64) -> Result<f64> {
    let r = if den <= 0.0 {
        if num > 0.0 { f64::INFINITY } else { 0.0 }
    } else {
        num / den
    };
    if r.is_nan() {
        return Err(Error::Numerical {
            what: "Kappa",
            reason: format!("{what} is NaN at s = {s} (κ̇ = {num}, denominator {den})"),
        });
    }
    Ok(r)
}

fn check_s(s: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&s) {
        return Err(Error::invalid(
            "s",
            format!("flow-matching time {s} is outside [0, 1]"),
        ));
    }
    Ok(s)
}

/// The flow-matching polynomial scheduler `κ(s) = sⁿ` (`PolynomialConvexScheduler`,
/// facebookresearch/flow_matching) in the crate's time: `α(t) = (1 − t)ⁿ`,
/// `α'(t) = −n(1 − t)ⁿ⁻¹`, inverse `t = 1 − α^{1/n}`, `n > 0`.
///
/// `n = 1` is `CondOTScheduler` (equal to [`Linear`](super::Linear)). Not MD4's polynomial
/// `1 − tⁿ` ([`Polynomial`](super::Polynomial)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowPolynomial {
    n: f64,
}

impl FlowPolynomial {
    /// `α(t) = (1 − t)ⁿ`, `n > 0` finite.
    pub fn new(n: f64) -> Result<Self> {
        Ok(FlowPolynomial {
            n: positive("n", n)?,
        })
    }
    /// The exponent `n`.
    pub fn exponent(&self) -> f64 {
        self.n
    }
}

impl Schedule for FlowPolynomial {
    fn name(&self) -> &'static str {
        "flow_polynomial"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok((1.0 - t).powf(self.n))
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        let u = 1.0 - t;
        // n uⁿ⁻¹ with its limits at u = 0.
        let d = if u == 0.0 {
            if self.n > 1.0 {
                0.0
            } else if self.n == 1.0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            self.n * u.powf(self.n - 1.0)
        };
        Ok(-d)
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let a = check_alpha(alpha)?;
        Ok((1.0 - a.powf(1.0 / self.n)).clamp(0.0, 1.0))
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(-self.n * (-t).ln_1p())
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(if t < 1.0 {
            self.n / (1.0 - t)
        } else {
            f64::INFINITY
        })
    }
}

/// The variance-preserving scheduler of flow_matching (`VPScheduler`; the VP SDE of Song et
/// al. 2021) in the crate's time `t = 1 − s`:
///
/// `B(t) = ½ Δ t² + β_min t` with `Δ = β_max − β_min`, `α(t) = e^{−B(t)/2}`,
/// `α'(t) = −½(Δ t + β_min) α(t)`, `σ̄ = B/2`, inverse `t = 2B/(β_min + √(β_min² + 2ΔB))`
/// with `B = −2 ln α`.
///
/// As a masking schedule `α(1) = e^{−(Δ/2 + β_min)/2} > 0` (≈ 0.0066 for the defaults
/// `β_min = 0.1`, `β_max = 20`). `0 ≤ β_min ≤ β_max`, `β_max > 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VariancePreserving {
    beta_min: f64,
    beta_max: f64,
}

impl VariancePreserving {
    /// The VP schedule with `0 ≤ beta_min ≤ beta_max`, `beta_max > 0`, finite.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        if !(beta_min.is_finite() && beta_min >= 0.0) {
            return Err(Error::invalid(
                "beta_min",
                format!("{beta_min} must be finite and ≥ 0"),
            ));
        }
        positive("beta_max", beta_max)?;
        if beta_min > beta_max {
            return Err(Error::invalid(
                "beta_max",
                format!("{beta_max} must be ≥ beta_min = {beta_min}"),
            ));
        }
        Ok(VariancePreserving { beta_min, beta_max })
    }
    /// `β_min`.
    pub fn beta_min(&self) -> f64 {
        self.beta_min
    }
    /// `β_max`.
    pub fn beta_max(&self) -> f64 {
        self.beta_max
    }
    fn big_b(&self, t: f64) -> f64 {
        0.5 * (self.beta_max - self.beta_min) * t * t + self.beta_min * t
    }
}

impl Default for VariancePreserving {
    /// `β_min = 0.1`, `β_max = 20` (flow_matching's defaults).
    fn default() -> Self {
        VariancePreserving {
            beta_min: 0.1,
            beta_max: 20.0,
        }
    }
}

impl Schedule for VariancePreserving {
    fn name(&self) -> &'static str {
        "variance_preserving"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok((-0.5 * self.big_b(t)).exp())
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        let db = (self.beta_max - self.beta_min) * t + self.beta_min;
        Ok(-0.5 * db * (-0.5 * self.big_b(t)).exp())
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let a = check_alpha(alpha)?;
        let lo = (-0.5 * self.big_b(1.0)).exp();
        if a < lo || a == 0.0 {
            return Err(alpha_out_of_range(a, lo, 1.0));
        }
        let b = -2.0 * a.ln();
        let delta = self.beta_max - self.beta_min;
        let den = self.beta_min + (self.beta_min * self.beta_min + 2.0 * delta * b).sqrt();
        Ok(if den > 0.0 { 2.0 * b / den } else { 0.0 }.clamp(0.0, 1.0))
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(0.5 * self.big_b(t))
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(0.5 * ((self.beta_max - self.beta_min) * t + self.beta_min))
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        Ok(-(-self.total_noise(t)?).exp_m1())
    }
}
