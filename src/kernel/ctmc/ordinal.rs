//! tauLDR's ordinal forward processes (Campbell et al. 2022, "A Continuous Time Framework for
//! Discrete Denoising Models", §6 and App. C; andrew-cr/tauLDR `lib/models/models.py`:
//! `BirthDeathForwardBase`, `GaussianTargetRate`, `UniformRate`).
//!
//! tauLDR writes every process as `R_t = β(t)·R_b` with a time-homogeneous base `R_b` and
//! `q_{t|0} = exp((∫_0^t β) R_b)`. In this crate that is a [`Ctmc`](super::Ctmc) whose base
//! generator is `R_b` and whose schedule has noise rate `σ = β` and total noise
//! `σ̄ = ∫_0^t β` (so `σ̄(0) = 0`, unlike SEDD's [`Geometric`](crate::schedule::Geometric),
//! whose `σ̄(0) = σ_min`: the two do not coincide). The mapping:
//!
//! | tauLDR class | base generator | schedule |
//! |---|---|---|
//! | `BirthDeathForwardBase(σ_min, σ_max)` | [`birth_death`] | [`ExponentialRate::birth_death`]: `β = σ_min² r^{2t} ln r`, `r = σ_max/σ_min` |
//! | `GaussianTargetRate(rate_sigma, Q_sigma, time_base a, time_exponential b)` | [`gaussian_target`] | [`ExponentialRate::gaussian_target`]: `β = a b^t ln b` |
//! | `UniformRate(rate_const c)` | [`MixtureGenerator::uniform`](super::MixtureGenerator::uniform)`(S)` | [`LinearTotalNoise`](crate::schedule::LinearTotalNoise)`::new(0, c·S)` (`R = c(11ᵀ − S I)`, no time scaling) |
//!
//! Both exponential schedules are `σ̄(t) = a(b^t − 1)`, `σ(t) = a b^t ln b` ([`ExponentialRate`]).

use ndarray::Array2;

use super::dense::DenseGenerator;
use crate::error::{Error, Result};
use crate::kernel::generator::Generator;
use crate::schedule::Schedule;
use crate::validate;

/// tauLDR's birth–death base generator (`BirthDeathForwardBase.base_rate`): a state moves to
/// each neighbour `x ± 1` at rate 1 (reflecting ends), `Q = tridiag(1, −2, 1)` with corners
/// `−1`. Symmetric, so the eigen route is used; its stationary law is uniform.
///
/// # Errors
/// [`Error::InvalidArgument`] if `v < 2`.
pub fn birth_death(v: usize) -> Result<DenseGenerator> {
    validate::vocab("v", v)?;
    let mut q = Array2::zeros((v, v));
    for i in 0..v {
        if i + 1 < v {
            q[[i, i + 1]] = 1.0;
            q[[i + 1, i]] = 1.0;
        }
    }
    for i in 0..v {
        q[[i, i]] = -q.row(i).sum();
    }
    DenseGenerator::new(Generator::new(q)?)
}

/// tauLDR's Gaussian-target base generator (`GaussianTargetRate.__init__`), reproduced step
/// by step for `S = v` states, `w_k = exp(−k²/rate_sigma²)`:
///
/// 1. for `i < S/2` (integer division) and `i < j < S − i`: `R[i, j] = w_{j−i−1}`; for
///    `i > S/2` and `S − 1 − i < j < i`: `R[i, j] = w_{i−j−1}` (rates towards the centre);
/// 2. in row-major order over `(i, j)`, wherever `R[j, i] > 0`:
///    `R[i, j] = R[j, i] · exp(−((j+1)² − (i+1)² + S(i+1) − S(j+1)) / (2 Q_sigma²))`, the
///    detailed-balance rate for a discretised Gaussian target `∝ exp(−(x+1 − S/2)²/(2Q_σ²))`
///    (the loop reads entries it has already rewritten, as the anchor's does);
/// 3. diagonal `= −` row sum.
///
/// Not symmetric but reversible (detailed balance with that discretised Gaussian, step 2
/// rewrites each pair so that `R[i, j]/R[j, i] = π_j/π_i`): [`DenseGenerator::new`] detects
/// it and takes the reversible eigen route, one symmetric eigendecomposition of
/// `D^{1/2} R D^{−1/2}` (the anchor uses a general eigendecomposition), unless
/// `√(π_max/π_min)` exceeds
/// [`MAX_SYMMETRISATION_CONDITION`](super::dense::MAX_SYMMETRISATION_CONDITION) (then Padé).
///
/// # Errors
/// [`Error::InvalidArgument`] if `v < 2` or a width is not finite and positive.
pub fn gaussian_target(v: usize, rate_sigma: f64, q_sigma: f64) -> Result<DenseGenerator> {
    validate::vocab("v", v)?;
    for (name, x) in [("rate_sigma", rate_sigma), ("q_sigma", q_sigma)] {
        if !(x.is_finite() && x > 0.0) {
            return Err(Error::invalid(
                name,
                format!("must be finite and > 0, got {x}"),
            ));
        }
    }
    let w: Vec<f64> = (0..v)
        .map(|k| (-((k * k) as f64) / (rate_sigma * rate_sigma)).exp())
        .collect();
    let half = v / 2;
    let mut r = Array2::<f64>::zeros((v, v));
    for i in 0..v {
        for j in 0..v {
            if i < half {
                if j > i && j < v - i {
                    r[[i, j]] = w[j - i - 1];
                }
            } else if i > half && j < i && j + i > v - 1 {
                r[[i, j]] = w[i - j - 1];
            }
        }
    }
    let sf = v as f64;
    for i in 0..v {
        for j in 0..v {
            if r[[j, i]] > 0.0 {
                let (a, b) = ((i + 1) as f64, (j + 1) as f64);
                let e = -(b * b - a * a + sf * a - sf * b) / (2.0 * q_sigma * q_sigma);
                r[[i, j]] = r[[j, i]] * e.exp();
            }
        }
    }
    for i in 0..v {
        r[[i, i]] = 0.0;
        r[[i, i]] = -r.row(i).sum();
    }
    DenseGenerator::new(Generator::new(r)?)
}

/// tauLDR's exponential rate scalar as a [`Schedule`]: total noise and noise rate
///
/// ```text
/// σ̄(t) = a (b^t − 1),      σ(t) = β(t) = a b^t ln b,      α(t) = e^{−σ̄(t)},
/// ```
///
/// `a > 0`, `b > 1`. `σ̄(0) = 0`, so `α(0) = 1` exactly.
///
/// ```
/// use discrete_diffusion::kernel::ctmc::ordinal::ExponentialRate;
/// use discrete_diffusion::schedule::Schedule;
/// let s = ExponentialRate::gaussian_target(3.0, 100.0)?;
/// assert!((s.total_noise(1.0)? - 297.0).abs() < 1e-12);
/// let bd = ExponentialRate::birth_death(1.0, 10.0)?;
/// assert!((bd.total_noise(1.0)? - 49.5).abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialRate {
    a: f64,
    b: f64,
}

impl ExponentialRate {
    /// `σ̄(t) = a(b^t − 1)`, `a > 0` and `b > 1` finite.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad parameter.
    pub fn new(a: f64, b: f64) -> Result<Self> {
        if !(a.is_finite() && a > 0.0) {
            return Err(Error::invalid(
                "a",
                format!("must be finite and > 0, got {a}"),
            ));
        }
        if !(b.is_finite() && b > 1.0) {
            return Err(Error::invalid(
                "b",
                format!("must be finite and > 1, got {b}"),
            ));
        }
        Ok(ExponentialRate { a, b })
    }

    /// tauLDR `BirthDeathForwardBase`: `β = σ_min² (σ_max/σ_min)^{2t} ln(σ_max/σ_min)`,
    /// i.e. `a = σ_min²/2`, `b = (σ_max/σ_min)²`. `0 < σ_min < σ_max` finite.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad parameter.
    pub fn birth_death(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min.is_finite() && sigma_min > 0.0) {
            return Err(Error::invalid(
                "sigma_min",
                format!("must be finite and > 0, got {sigma_min}"),
            ));
        }
        if !(sigma_max.is_finite() && sigma_max > sigma_min) {
            return Err(Error::invalid(
                "sigma_max",
                format!("must be finite and > sigma_min = {sigma_min}, got {sigma_max}"),
            ));
        }
        let r = sigma_max / sigma_min;
        Self::new(0.5 * sigma_min * sigma_min, r * r)
    }

    /// tauLDR `GaussianTargetRate`: `a = time_base`, `b = time_exponential`.
    ///
    /// # Errors
    /// As [`ExponentialRate::new`].
    pub fn gaussian_target(time_base: f64, time_exponential: f64) -> Result<Self> {
        Self::new(time_base, time_exponential)
    }

    /// `a`.
    pub fn a(&self) -> f64 {
        self.a
    }

    /// `b`.
    pub fn b(&self) -> f64 {
        self.b
    }
}

impl Schedule for ExponentialRate {
    fn name(&self) -> &'static str {
        "tauldr_exponential"
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        Ok((-self.total_noise(t)?).exp())
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        Ok(-self.noise_rate(t)? * self.alpha(t)?)
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        let alpha = validate::probability("alpha", alpha)?;
        let lo = (-self.total_noise(1.0)?).exp();
        if alpha < lo {
            return Err(Error::invalid(
                "alpha",
                format!("{alpha} is below α(1) = {lo}"),
            ));
        }
        let s = -alpha.ln();
        Ok(((s / self.a).ln_1p() / self.b.ln()).clamp(0.0, 1.0))
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        let t = validate::time("t", t)?;
        Ok(self.a * (t * self.b.ln()).exp_m1())
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        let t = validate::time("t", t)?;
        Ok(self.a * self.b.ln() * self.b.powf(t))
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        Ok(-(-self.total_noise(t)?).exp_m1())
    }
}
