//! Schedules that are native in `α(t)`: SEDD/MDLM log-linear, MDLM cosine and cosine²,
//! MD4 linear / polynomial / cosine.

use std::f64::consts::FRAC_PI_2;

use super::{
    Schedule, alpha_out_of_range, check_alpha, check_t, in_range_half_open, positive, ratio_or_inf,
};
use crate::error::{Error, Result};

/// Log-linear schedule of SEDD (Lou et al. 2024, §3.3) and MDLM (Sahoo et al. 2024,
/// `LogLinearNoise`):
///
/// `α(t) = 1 − (1 − ε)t`, `σ̄(t) = −ln(1 − (1 − ε)t)`, `σ(t) = (1 − ε)/(1 − (1 − ε)t)`,
/// move chance `(1 − ε)t`, NELBO weight exactly `1/t`.
///
/// `ε ∈ (0, 1)` keeps `σ̄(1) = −ln ε` finite (`α(1) = ε`); the anchors use `ε = 10⁻³`
/// ([`Default`]). For `ε = 0` use [`Linear`].
///
/// ```
/// use discrete_diffusion::schedule::{LogLinear, Schedule};
/// let s = LogLinear::new(1e-3)?;
/// assert_eq!(s.alpha(0.0)?, 1.0);
/// assert!((s.alpha(1.0)? - 1e-3).abs() < 1e-16);
/// assert!((s.noise_rate(0.5)? - 0.999 / (1.0 - 0.999 * 0.5)).abs() < 1e-15);
/// // MDLM's importance-sampling map sends [0, 1] onto [≈ε, 1]:
/// assert!((s.importance_sampling_transformation(1.0)? - 1.0).abs() < 1e-15);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogLinear {
    eps: f64,
}

impl LogLinear {
    /// The log-linear schedule with `α(1) = eps`, `eps ∈ (0, 1)`.
    pub fn new(eps: f64) -> Result<Self> {
        if !(eps > 0.0 && eps < 1.0) {
            return Err(Error::invalid("eps", format!("{eps} must lie in (0, 1)")));
        }
        Ok(LogLinear { eps })
    }

    /// `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// MDLM's importance-sampling transformation of a training time `u ∈ [0, 1]`
    /// (`LogLinearNoise.importance_sampling_transformation`, kuleshov-group/mdlm).
    ///
    /// The move chance of the result interpolates geometrically between the anchor's
    /// endpoints: with `f₀ = ln(1 − e^{−σ_min})`, `f₁ = ln(1 − e^{−σ_max})`,
    /// `σ_min = ε` (the anchor's `eps + total_noise(0)`, kept as coded) and
    /// `σ_max = σ̄(1) = −ln ε`,
    ///
    /// `1 − α(t') = exp(u f₁ + (1 − u) f₀)`, i.e. `t' = exp(u f₁ + (1 − u) f₀)/(1 − ε)`.
    ///
    /// For uniform `u` this samples `t'` with density `∝ 1/t'` — proportional to the
    /// log-linear NELBO weight — on `[(1 − e^{−ε})/(1 − ε), 1]`.
    pub fn importance_sampling_transformation(&self, u: f64) -> Result<f64> {
        let u = validate_unit("u", u)?;
        let sigma_max = -(self.eps.ln());
        let sigma_min = self.eps;
        let f1 = (-(-sigma_max).exp_m1()).ln();
        let f0 = (-(-sigma_min).exp_m1()).ln();
        let g = u * f1 + (1.0 - u) * f0;
        Ok((g.exp() / (1.0 - self.eps)).min(1.0))
    }
}

impl Default for LogLinear {
    /// `ε = 10⁻³`, the SEDD/MDLM default.
    fn default() -> Self {
        LogLinear { eps: 1e-3 }
    }
}

impl Schedule for LogLinear {
    fn name(&self) -> &'static str {
        "loglinear"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(1.0 - (1.0 - self.eps) * t)
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        check_t(t)?;
        Ok(-(1.0 - self.eps))
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let a = check_alpha(alpha)?;
        if a < self.eps {
            return Err(alpha_out_of_range(a, self.eps, 1.0));
        }
        Ok(((1.0 - a) / (1.0 - self.eps)).min(1.0))
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(-(-(1.0 - self.eps) * t).ln_1p())
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok((1.0 - self.eps) / (1.0 - (1.0 - self.eps) * t))
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok((1.0 - self.eps) * t)
    }
}

/// MDLM's cosine schedule (Sahoo et al. 2024; kuleshov-group/mdlm `CosineNoise`):
///
/// `α(t) = ε + (1 − ε) cos(πt/2)`, `α'(t) = −(1 − ε)(π/2) sin(πt/2)`,
/// `σ̄ = −ln α`, `σ = (π/2)(1 − ε) sin(πt/2)/α(t)`.
///
/// `ε ∈ [0, 1)`; the anchor's default is `10⁻³` ([`Default`]). With `ε = 0` this is
/// `α(t) = cos(πt/2)`, the flow-matching `CosineScheduler` (`κ(s) = sin(πs/2)`) seen
/// through [`Kappa`](super::Kappa). Not MD4's cosine: see [`Md4Cosine`].
///
/// Precision note: `α` is evaluated as coded (`ε + (1 − ε)·cos(πt/2)`), so for `t ≲ 10⁻⁴`
/// `σ̄ = −ln α` and the NELBO weight inherit the rounding of `cos` near 1 (relative error
/// ~10⁻⁶ at `t = 10⁻⁵`), exactly as the anchor's values do; the conformance vectors encode
/// that rounding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MdlmCosine {
    eps: f64,
}

impl MdlmCosine {
    /// MDLM's cosine schedule with floor `eps ∈ [0, 1)`.
    pub fn new(eps: f64) -> Result<Self> {
        Ok(MdlmCosine {
            eps: in_range_half_open("eps", eps, 0.0, 1.0)?,
        })
    }
    /// `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Default for MdlmCosine {
    /// `ε = 10⁻³`, MDLM's default.
    fn default() -> Self {
        MdlmCosine { eps: 1e-3 }
    }
}

impl Schedule for MdlmCosine {
    fn name(&self) -> &'static str {
        "mdlm_cosine"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.eps + (1.0 - self.eps) * (t * FRAC_PI_2).cos())
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(-(1.0 - self.eps) * FRAC_PI_2 * (t * FRAC_PI_2).sin())
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let a = check_alpha(alpha)?;
        if a < self.eps {
            return Err(alpha_out_of_range(a, self.eps, 1.0));
        }
        let c = ((a - self.eps) / (1.0 - self.eps)).clamp(0.0, 1.0);
        Ok((c.acos() / FRAC_PI_2).clamp(0.0, 1.0))
    }
}

/// MDLM's squared-cosine schedule (kuleshov-group/mdlm `CosineSqrNoise`):
///
/// `α(t) = ε + (1 − ε) cos²(πt/2)`, `α'(t) = −(1 − ε)(π/2) sin(πt)`,
/// `σ = (π/2)(1 − ε) sin(πt)/α(t)`.
///
/// `ε ∈ [0, 1)`, default `10⁻³`. Note that `α'(1) = 0`: the noise rate vanishes at `t = 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MdlmCosineSqr {
    eps: f64,
}

impl MdlmCosineSqr {
    /// MDLM's cosine² schedule with floor `eps ∈ [0, 1)`.
    pub fn new(eps: f64) -> Result<Self> {
        Ok(MdlmCosineSqr {
            eps: in_range_half_open("eps", eps, 0.0, 1.0)?,
        })
    }
    /// `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Default for MdlmCosineSqr {
    /// `ε = 10⁻³`, MDLM's default.
    fn default() -> Self {
        MdlmCosineSqr { eps: 1e-3 }
    }
}

impl Schedule for MdlmCosineSqr {
    fn name(&self) -> &'static str {
        "mdlm_cosine_sqr"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        let c = (t * FRAC_PI_2).cos();
        Ok(self.eps + (1.0 - self.eps) * (c * c))
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(-(1.0 - self.eps) * FRAC_PI_2 * (t * std::f64::consts::PI).sin())
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let a = check_alpha(alpha)?;
        if a < self.eps {
            return Err(alpha_out_of_range(a, self.eps, 1.0));
        }
        let c2 = ((a - self.eps) / (1.0 - self.eps)).clamp(0.0, 1.0);
        Ok((c2.sqrt().acos() / FRAC_PI_2).clamp(0.0, 1.0))
    }
}

/// MD4's masking-schedule wrapper: `α(t) = ε + (1 − 2ε) α̃(t)` for a base `α̃` with
/// `α̃(0) = 1`, `α̃(1) = 0` (google-deepmind/md4 `MaskingSchedule`), `ε ∈ [0, ½)`.
fn md4_check_eps(eps: f64) -> Result<f64> {
    in_range_half_open("eps", eps, 0.0, 0.5)
}

/// Invert MD4's affine wrapper: `α̃ = (α − ε)/(1 − 2ε)`, validating `α ∈ [ε, 1 − ε]`.
fn md4_base_alpha(alpha: f64, eps: f64) -> Result<f64> {
    let a = check_alpha(alpha)?;
    if a < eps || a > 1.0 - eps {
        return Err(alpha_out_of_range(a, eps, 1.0 - eps));
    }
    Ok(((a - eps) / (1.0 - 2.0 * eps)).clamp(0.0, 1.0))
}

/// Linear masking schedule `α(t) = 1 − t` (MD4 "linear", Shi et al. 2024, Table 1), with
/// MD4's optional floor: `α(t) = ε + (1 − 2ε)(1 − t)`, `α' = −(1 − 2ε)`.
///
/// Also the flow-matching `CondOTScheduler` (`κ(s) = s`) and `LinearVPScheduler`
/// (`α_s = s`) seen through [`Kappa`](super::Kappa). NELBO weight `1/t` for `ε = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Linear {
    eps: f64,
}

impl Linear {
    /// `α(t) = 1 − t`.
    pub fn new() -> Self {
        Linear { eps: 0.0 }
    }
    /// MD4's variant `α(t) = ε + (1 − 2ε)(1 − t)`, `eps ∈ [0, ½)`.
    pub fn md4(eps: f64) -> Result<Self> {
        Ok(Linear {
            eps: md4_check_eps(eps)?,
        })
    }
    /// `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Schedule for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.eps + (1.0 - 2.0 * self.eps) * (1.0 - t))
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        check_t(t)?;
        Ok(-(1.0 - 2.0 * self.eps))
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let b = md4_base_alpha(alpha, self.eps)?;
        Ok(1.0 - b)
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.eps + (1.0 - 2.0 * self.eps) * t)
    }
}

/// Polynomial masking schedule `α(t) = 1 − tⁿ` (MD4 "poly2", "poly3", Shi et al. 2024), with
/// MD4's floor: `α(t) = ε + (1 − 2ε)(1 − tⁿ)`, `α'(t) = −(1 − 2ε) n tⁿ⁻¹`, `n > 0`.
///
/// Not the flow-matching polynomial `κ(s) = sⁿ` (that is `α(t) = (1 − t)ⁿ`, see
/// [`FlowPolynomial`](super::FlowPolynomial)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Polynomial {
    n: f64,
    eps: f64,
}

impl Polynomial {
    /// `α(t) = 1 − tⁿ`, `n > 0` finite.
    pub fn new(n: f64) -> Result<Self> {
        Ok(Polynomial {
            n: positive("n", n)?,
            eps: 0.0,
        })
    }
    /// MD4's variant `α(t) = ε + (1 − 2ε)(1 − tⁿ)`, `eps ∈ [0, ½)`.
    pub fn md4(n: f64, eps: f64) -> Result<Self> {
        Ok(Polynomial {
            n: positive("n", n)?,
            eps: md4_check_eps(eps)?,
        })
    }
    /// The exponent `n`.
    pub fn exponent(&self) -> f64 {
        self.n
    }
    /// `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Schedule for Polynomial {
    fn name(&self) -> &'static str {
        "polynomial"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.eps + (1.0 - 2.0 * self.eps) * (1.0 - t.powf(self.n)))
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        // n tⁿ⁻¹, with the limits 0 (n > 1), 1 (n = 1) and +∞ (n < 1) at t = 0.
        let d = if t == 0.0 {
            if self.n > 1.0 {
                0.0
            } else if self.n == 1.0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            self.n * t.powf(self.n - 1.0)
        };
        Ok(-(1.0 - 2.0 * self.eps) * d)
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let b = md4_base_alpha(alpha, self.eps)?;
        Ok((1.0 - b).powf(1.0 / self.n).clamp(0.0, 1.0))
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.eps + (1.0 - 2.0 * self.eps) * t.powf(self.n))
    }
    fn elbo_weight(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        if self.eps == 0.0 && t > 0.0 {
            // n tⁿ⁻¹ / tⁿ = n / t, without cancellation.
            return Ok(self.n / t);
        }
        let da = self.alpha_derivative(t)?;
        Ok(ratio_or_inf(-da, self.move_chance(t)?))
    }
}

/// MD4's cosine schedule (Shi et al. 2024, Table 1; google-deepmind/md4 `MaskingSchedule`
/// "cosine"): `α̃(t) = 1 − cos(π(1 − t)/2) = 1 − sin(πt/2)`, with MD4's floor
/// `α(t) = ε + (1 − 2ε) α̃(t)`, `α'(t) = −(1 − 2ε)(π/2) sin(π(1 − t)/2)`.
///
/// Not MDLM's cosine (`α = cos(πt/2)`, see [`MdlmCosine`]). `ε ∈ [0, ½)`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Md4Cosine {
    eps: f64,
}

impl Md4Cosine {
    /// `α(t) = 1 − sin(πt/2)`.
    pub fn new() -> Self {
        Md4Cosine { eps: 0.0 }
    }
    /// MD4's variant `α(t) = ε + (1 − 2ε)(1 − cos(π(1 − t)/2))`, `eps ∈ [0, ½)`.
    pub fn md4(eps: f64) -> Result<Self> {
        Ok(Md4Cosine {
            eps: md4_check_eps(eps)?,
        })
    }
    /// `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Schedule for Md4Cosine {
    fn name(&self) -> &'static str {
        "md4_cosine"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.eps + (1.0 - 2.0 * self.eps) * (1.0 - (FRAC_PI_2 * (1.0 - t)).cos()))
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(-(1.0 - 2.0 * self.eps) * FRAC_PI_2 * (FRAC_PI_2 * (1.0 - t)).sin())
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let b = md4_base_alpha(alpha, self.eps)?;
        // cos(π(1 − t)/2) = 1 − α̃.
        Ok((1.0 - (1.0 - b).acos() / FRAC_PI_2).clamp(0.0, 1.0))
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.eps + (1.0 - 2.0 * self.eps) * (FRAC_PI_2 * (1.0 - t)).cos())
    }
}

/// Validate a number in `[0, 1]` that is not a time (e.g. a raw uniform).
pub(crate) fn validate_unit(arg: &'static str, u: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&u) {
        return Err(Error::invalid(arg, format!("{u} is outside [0, 1]")));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_inverses_round_trip() {
        let ss: Vec<Box<dyn Schedule>> = vec![
            Box::new(LogLinear::default()),
            Box::new(MdlmCosine::default()),
            Box::new(MdlmCosineSqr::default()),
            Box::new(Linear::md4(1e-4).unwrap()),
            Box::new(Polynomial::md4(3.0, 1e-4).unwrap()),
            Box::new(Md4Cosine::md4(1e-4).unwrap()),
        ];
        for s in &ss {
            for &t in &[0.0, 0.1, 0.37, 0.5, 0.9, 1.0] {
                let a = s.alpha(t).unwrap();
                let back = s.time_of_alpha(a).unwrap();
                assert!(
                    (back - t).abs() < 1e-7,
                    "{}: {t} -> {a} -> {back}",
                    s.name()
                );
            }
        }
    }

    #[test]
    fn md4_cosine_move_chance_matches_alpha() {
        let s = Md4Cosine::md4(1e-4).unwrap();
        for &t in &[0.0, 0.3, 1.0] {
            let m = s.move_chance(t).unwrap();
            assert!((m - (1.0 - s.alpha(t).unwrap())).abs() < 1e-15);
        }
    }
}
