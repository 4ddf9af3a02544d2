//! Schedules that are native in the total noise `σ̄(t)`: SEDD's geometric schedule and
//! MDLM's linear total-noise schedule. `α = e^{−σ̄}`, `1 − α = −expm1(−σ̄)`.

use super::{Schedule, alpha_out_of_range, check_alpha, check_t, positive, ratio_or_inf};
use crate::error::{Error, Result};

/// SEDD's geometric schedule (Lou et al. 2024, §5; louaaron/Score-Entropy-Discrete-Diffusion
/// `GeometricNoise`, also MDLM's):
///
/// `σ̄(t) = σ_min^{1−t} σ_max^t`, `σ(t) = σ̄(t)(ln σ_max − ln σ_min)`, `α(t) = e^{−σ̄(t)}`.
///
/// Note `α(0) = e^{−σ_min} < 1` and `α(1) = e^{−σ_max} > 0`: the schedule never quite
/// reaches clean data nor the prior. `0 < σ_min < σ_max` finite; SEDD uses
/// `σ_min = 10⁻⁴`, `σ_max = 20` for the uniform graph.
///
/// ```
/// use discrete_diffusion::schedule::{Geometric, Schedule};
/// let g = Geometric::new(1e-4, 20.0)?;
/// assert!((g.total_noise(0.5)? - (1e-4f64 * 20.0).sqrt()).abs() < 1e-15);
/// let a = g.alpha(0.3)?;
/// assert!((g.time_of_alpha(a)? - 0.3).abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometric {
    sigma_min: f64,
    sigma_max: f64,
}

impl Geometric {
    /// The geometric schedule from `σ_min` to `σ_max`, `0 < σ_min < σ_max` finite.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        positive("sigma_min", sigma_min)?;
        positive("sigma_max", sigma_max)?;
        if sigma_min >= sigma_max {
            return Err(Error::invalid(
                "sigma_max",
                format!("{sigma_max} must exceed sigma_min = {sigma_min}"),
            ));
        }
        Ok(Geometric {
            sigma_min,
            sigma_max,
        })
    }
    /// `σ_min = σ̄(0)`.
    pub fn sigma_min(&self) -> f64 {
        self.sigma_min
    }
    /// `σ_max = σ̄(1)`.
    pub fn sigma_max(&self) -> f64 {
        self.sigma_max
    }
    fn log_ratio(&self) -> f64 {
        self.sigma_max.ln() - self.sigma_min.ln()
    }
}

impl Schedule for Geometric {
    fn name(&self) -> &'static str {
        "geometric"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        Ok((-self.total_noise(t)?).exp())
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let s = self.total_noise(t)?;
        Ok(-s * self.log_ratio() * (-s).exp())
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let a = check_alpha(alpha)?;
        let (lo, hi) = ((-self.sigma_max).exp(), (-self.sigma_min).exp());
        if a < lo || a > hi {
            return Err(alpha_out_of_range(a, lo, hi));
        }
        let s = -a.ln();
        Ok(((s.ln() - self.sigma_min.ln()) / self.log_ratio()).clamp(0.0, 1.0))
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.sigma_min.powf(1.0 - t) * self.sigma_max.powf(t))
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        Ok(self.total_noise(t)? * self.log_ratio())
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        Ok(-(-self.total_noise(t)?).exp_m1())
    }
    fn elbo_weight(&self, t: f64) -> Result<f64> {
        // σ / (e^{σ̄} − 1), MDLM's `dsigma / expm1(sigma)`.
        let s = self.total_noise(t)?;
        Ok(ratio_or_inf(s * self.log_ratio(), s.exp_m1()))
    }
}

/// MDLM's linear total-noise schedule (kuleshov-group/mdlm `noise_schedule.Linear`):
///
/// `σ̄(t) = σ_min + t(σ_max − σ_min)`, `σ(t) = σ_max − σ_min`, `α(t) = e^{−σ̄(t)}`.
///
/// Linear in the *total noise*, not in `α` (for that see [`Linear`](super::Linear)).
/// `0 ≤ σ_min < σ_max` finite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearTotalNoise {
    sigma_min: f64,
    sigma_max: f64,
}

impl LinearTotalNoise {
    /// `σ̄(t) = σ_min + t(σ_max − σ_min)`, `0 ≤ σ_min < σ_max` finite.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min.is_finite() && sigma_min >= 0.0) {
            return Err(Error::invalid(
                "sigma_min",
                format!("{sigma_min} must be finite and ≥ 0"),
            ));
        }
        positive("sigma_max", sigma_max)?;
        if sigma_min >= sigma_max {
            return Err(Error::invalid(
                "sigma_max",
                format!("{sigma_max} must exceed sigma_min = {sigma_min}"),
            ));
        }
        Ok(LinearTotalNoise {
            sigma_min,
            sigma_max,
        })
    }
    /// `σ_min = σ̄(0)`.
    pub fn sigma_min(&self) -> f64 {
        self.sigma_min
    }
    /// `σ_max = σ̄(1)`.
    pub fn sigma_max(&self) -> f64 {
        self.sigma_max
    }

    /// MDLM's importance-sampling transformation for this schedule
    /// (`Linear.importance_sampling_transformation`): with `f₀ = ln(1 − e^{−σ_min})` and
    /// `f₁ = ln(1 − e^{−σ_max})`, `σ_u = −ln(1 − exp(u f₁ + (1 − u) f₀))` and the result is
    /// `(σ_u − σ_min)/(σ_max − σ_min)`: the time whose move chance interpolates
    /// geometrically between the endpoints' move chances. Requires `σ_min > 0`.
    pub fn importance_sampling_transformation(&self, u: f64) -> Result<f64> {
        let u = super::masking::validate_unit("u", u)?;
        if self.sigma_min == 0.0 {
            return Err(Error::invalid(
                "sigma_min",
                "importance sampling needs sigma_min > 0 (ln(1 − e^0) = −∞)",
            ));
        }
        let f1 = (-(-self.sigma_max).exp_m1()).ln();
        let f0 = (-(-self.sigma_min).exp_m1()).ln();
        let g = u * f1 + (1.0 - u) * f0;
        let sigma_u = -(-(g.exp())).ln_1p();
        Ok(((sigma_u - self.sigma_min) / (self.sigma_max - self.sigma_min)).clamp(0.0, 1.0))
    }
}

impl Schedule for LinearTotalNoise {
    fn name(&self) -> &'static str {
        "linear_total_noise"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        Ok((-self.total_noise(t)?).exp())
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        let s = self.total_noise(t)?;
        Ok(-(self.sigma_max - self.sigma_min) * (-s).exp())
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let a = check_alpha(alpha)?;
        let (lo, hi) = ((-self.sigma_max).exp(), (-self.sigma_min).exp());
        if a < lo || a > hi {
            return Err(alpha_out_of_range(a, lo, hi));
        }
        let s = -a.ln();
        Ok(((s - self.sigma_min) / (self.sigma_max - self.sigma_min)).clamp(0.0, 1.0))
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        let t = check_t(t)?;
        Ok(self.sigma_min + t * (self.sigma_max - self.sigma_min))
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        check_t(t)?;
        Ok(self.sigma_max - self.sigma_min)
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        Ok(-(-self.total_noise(t)?).exp_m1())
    }
    fn elbo_weight(&self, t: f64) -> Result<f64> {
        let s = self.total_noise(t)?;
        Ok(ratio_or_inf(self.sigma_max - self.sigma_min, s.exp_m1()))
    }
}
