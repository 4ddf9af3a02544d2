//! Noise schedules, discrete β schedules, training-time samplers and inference time grids
//! (DESIGN §2, `schedule` layer).
//!
//! # Time convention
//!
//! One convention for the whole crate: `t ∈ [0, 1]`, `t = 0` clean data, `t = 1` the prior.
//! A continuous schedule is described by its **survival probability** `α(t)`: the
//! probability that a token is still clean (unmasked / not resampled) at time `t`, with
//! `α(0) ≈ 1`, `α(1) ≈ 0` and `α` non-increasing. Everything else is derived from it:
//!
//! | quantity | formula | name in the anchors |
//! |---|---|---|
//! | total noise | `σ̄(t) = −ln α(t)` | SEDD/MDLM `total_noise`, "sigma" |
//! | noise rate | `σ(t) = dσ̄/dt = −α'(t)/α(t)` | SEDD/MDLM `rate_noise`, "dsigma" |
//! | move chance | `1 − α(t)` | MDLM/SEDD `move_chance` |
//! | NELBO weight | `w(t) = −α'(t)/(1 − α(t)) = σ/(e^{σ̄} − 1)` | MDLM `continuous_loss_weight`, MD4 `−dgamma_times_alpha` |
//! | log-SNR | `ln α − ln(1 − α)` | MD4 `logsnr` |
//!
//! SEDD and MDLM run their samplers from `t = 1` down to `t = ε`, MD4 from 1 to 0: it is the
//! same variable as ours, so no conversion is needed. Discrete flow matching uses
//! `s = 1 − t` (`s = 0` source, `s = 1` data) and `κ(s) = α(1 − s)`: see [`Kappa`].
//!
//! # Contents
//!
//! * [`Schedule`], the object-safe trait, and its implementations:
//!   masking-native ([`LogLinear`], [`MdlmCosine`], [`MdlmCosineSqr`], [`Linear`],
//!   [`Polynomial`], [`Md4Cosine`], [`FlowPolynomial`]) and noise-native
//!   ([`Geometric`], [`LinearTotalNoise`], [`VariancePreserving`]);
//! * [`Kappa`]: the discrete-flow-matching view `κ(s) = α(1 − s)` of any schedule;
//! * [`BetaSchedule`]: discrete-time `β_1..β_T` (D3PM images and text), and
//!   [`MutualInformationSchedule`] (D3PM text matrix-exponential exponents);
//! * [`TimeSampler`]s for training ([`Uniform`], [`Antithetic`], [`Stratified`],
//!   [`LogitNormal`], [`LogLinearImportance`]), driven by the crate's Philox;
//! * [`TimeGrid`]s for inference (uniform, power, α-uniform, MDLM, MD4) and the flow-matching
//!   solver grid [`flow_matching_time_grid`].

mod discrete;
mod flow;
mod grid;
mod masking;
mod mutual_info;
mod noise;
mod sampler;

pub use discrete::{BetaSchedule, D3pmTextKind};
pub use flow::{FlowPolynomial, Kappa, SigmaConvention, VariancePreserving};
pub use grid::{Md4GridKind, TimeGrid, discretize_time, flow_matching_time_grid};
pub use masking::{Linear, LogLinear, Md4Cosine, MdlmCosine, MdlmCosineSqr, Polynomial};
pub use mutual_info::{
    ExponentialFamily, MutualInformationExponents, MutualInformationKind,
    MutualInformationSchedule, pchip_interpolate, relative_information_removal,
};
pub use noise::{Geometric, LinearTotalNoise};
pub use sampler::{Antithetic, LogLinearImportance, LogitNormal, Stratified, TimeSampler, Uniform};

use crate::error::{Error, Result};
use crate::validate;

/// A continuous-time masking / noise schedule in the crate's time convention
/// (`t ∈ [0, 1]`, `t = 0` data, `t = 1` prior).
///
/// Implementors give `α(t)` (the probability that a token is still clean) and its analytic
/// derivative; the trait derives the total noise `σ̄ = −ln α`, the noise rate
/// `σ = −α'/α`, the move chance `1 − α`, the MDLM/MD4 NELBO weight `−α'/(1 − α)` and the
/// log-SNR. Implementations override the derived quantities where a more accurate native
/// form exists (e.g. [`Geometric`] is native in `σ̄`, [`LogLinear`] has `1 − α = (1 − ε)t`).
///
/// Every method validates its argument (`t` finite in `[0, 1]`, `α` in `[0, 1]`) and returns
/// an [`Error`] naming it otherwise. Quantities that are mathematically infinite (e.g.
/// `σ̄(1) = +∞` when `α(1) = 0`, or the NELBO weight at `t = 0`) are returned as `±∞`.
///
/// The trait is object safe: `&dyn Schedule` and `Box<dyn Schedule>` are schedules too.
///
/// ```
/// use discrete_diffusion::schedule::{LogLinear, Schedule};
/// let s = LogLinear::new(1e-3)?;
/// let t = 0.25;
/// assert!((s.alpha(t)? - (1.0 - 0.999 * t)).abs() < 1e-15);
/// assert!((s.total_noise(t)? + (1.0f64 - 0.999 * t).ln()).abs() < 1e-15);
/// assert!((s.elbo_weight(t)? - 1.0 / t).abs() < 1e-12); // log-linear: exactly 1/t
/// assert!((s.time_of_alpha(s.alpha(t)?)? - t).abs() < 1e-15);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub trait Schedule: Send + Sync + std::fmt::Debug {
    /// A short, stable, human-readable name (e.g. `"loglinear"`).
    fn name(&self) -> &'static str;

    /// `α(t)`: the probability that a token is still clean at time `t`; non-increasing.
    fn alpha(&self, t: f64) -> Result<f64>;

    /// `α'(t) = dα/dt ≤ 0`, analytic.
    fn alpha_derivative(&self, t: f64) -> Result<f64>;

    /// The time `t` with `α(t) = alpha`.
    ///
    /// The default is a bisection on `[0, 1]` (α is monotone), accurate to about one ulp of
    /// `t`; implementations override it with the closed form where one exists. Where α is
    /// flat the smallest such `t` is returned. Errors if `alpha` is not in
    /// `[α(1), α(0)]`.
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        bisect_time_of_alpha(self, alpha)
    }

    /// Total noise `σ̄(t) = −ln α(t)` (`+∞` where `α = 0`).
    fn total_noise(&self, t: f64) -> Result<f64> {
        Ok(-self.alpha(t)?.ln())
    }

    /// Noise rate `σ(t) = dσ̄/dt = −α'(t)/α(t)` (`+∞` where `α = 0` and `α' < 0`).
    fn noise_rate(&self, t: f64) -> Result<f64> {
        let a = self.alpha(t)?;
        let da = self.alpha_derivative(t)?;
        Ok(ratio_or_inf(-da, a))
    }

    /// Move chance `1 − α(t)`: the probability that a token has been corrupted by time `t`.
    fn move_chance(&self, t: f64) -> Result<f64> {
        Ok(1.0 - self.alpha(t)?)
    }

    /// The continuous-time NELBO weight `w(t) = −α'(t)/(1 − α(t)) ≥ 0` of masked diffusion
    /// (MDLM, Sahoo et al. 2024, eq. 10; MD4, Shi et al. 2024, eq. 5), equal to MDLM's
    /// `σ(t)/expm1(σ̄(t))`. `+∞` where `α(t) = 1`.
    fn elbo_weight(&self, t: f64) -> Result<f64> {
        let da = self.alpha_derivative(t)?;
        let m = self.move_chance(t)?;
        Ok(ratio_or_inf(-da, m))
    }

    /// Log signal-to-noise ratio `λ(t) = ln α(t) − ln(1 − α(t))` (MD4 `logsnr`).
    fn log_snr(&self, t: f64) -> Result<f64> {
        let a = self.alpha(t)?;
        let m = self.move_chance(t)?;
        Ok(a.ln() - m.ln())
    }
}

impl<S: Schedule + ?Sized> Schedule for &S {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        (**self).alpha(t)
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        (**self).alpha_derivative(t)
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        (**self).time_of_alpha(alpha)
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        (**self).total_noise(t)
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        (**self).noise_rate(t)
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        (**self).move_chance(t)
    }
    fn elbo_weight(&self, t: f64) -> Result<f64> {
        (**self).elbo_weight(t)
    }
    fn log_snr(&self, t: f64) -> Result<f64> {
        (**self).log_snr(t)
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn alpha(&self, t: f64) -> Result<f64> {
        (**self).alpha(t)
    }
    fn alpha_derivative(&self, t: f64) -> Result<f64> {
        (**self).alpha_derivative(t)
    }
    fn time_of_alpha(&self, alpha: f64) -> Result<f64> {
        (**self).time_of_alpha(alpha)
    }
    fn total_noise(&self, t: f64) -> Result<f64> {
        (**self).total_noise(t)
    }
    fn noise_rate(&self, t: f64) -> Result<f64> {
        (**self).noise_rate(t)
    }
    fn move_chance(&self, t: f64) -> Result<f64> {
        (**self).move_chance(t)
    }
    fn elbo_weight(&self, t: f64) -> Result<f64> {
        (**self).elbo_weight(t)
    }
    fn log_snr(&self, t: f64) -> Result<f64> {
        (**self).log_snr(t)
    }
}

/// `num / den` for `num ≥ 0`, `den ≥ 0`, with `x/0 = +∞` for `x > 0` and `0/0 = +∞`
/// (the limits that occur for schedules: both vanish only where the weight diverges).
#[inline]
pub(crate) fn ratio_or_inf(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { f64::INFINITY }
}

/// Validate a time argument `t ∈ [0, 1]` (rejects NaN and ±∞).
#[inline]
pub(crate) fn check_t(t: f64) -> Result<f64> {
    validate::time("t", t)
}

/// Validate an `alpha` argument: finite, in `[0, 1]`.
#[inline]
pub(crate) fn check_alpha(alpha: f64) -> Result<f64> {
    validate::probability("alpha", alpha)
}

/// Error for `alpha` outside the range `[α(1), α(0)]` of a schedule.
pub(crate) fn alpha_out_of_range(alpha: f64, lo: f64, hi: f64) -> Error {
    Error::invalid(
        "alpha",
        format!("{alpha} is outside the range [{lo}, {hi}] of α(t) over t ∈ [0, 1]"),
    )
}

/// Robust bisection for `α(t) = alpha` on `[0, 1]`, α non-increasing.
fn bisect_time_of_alpha<S: Schedule + ?Sized>(s: &S, alpha: f64) -> Result<f64> {
    check_alpha(alpha)?;
    let a0 = s.alpha(0.0)?;
    let a1 = s.alpha(1.0)?;
    if alpha > a0 || alpha < a1 {
        return Err(alpha_out_of_range(alpha, a1, a0));
    }
    if alpha == a0 {
        return Ok(0.0);
    }
    // Invariant: α(lo) > alpha ≥ α(hi).
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if s.alpha(mid)? > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Validate a positive finite parameter.
pub(crate) fn positive(arg: &'static str, x: f64) -> Result<f64> {
    if !(x.is_finite() && x > 0.0) {
        return Err(Error::invalid(arg, format!("{x} must be finite and > 0")));
    }
    Ok(x)
}

/// Validate a parameter in the half-open interval `[lo, hi)`.
pub(crate) fn in_range_half_open(arg: &'static str, x: f64, lo: f64, hi: f64) -> Result<f64> {
    if !(x >= lo && x < hi) {
        return Err(Error::invalid(arg, format!("{x} must lie in [{lo}, {hi})")));
    }
    Ok(x)
}
