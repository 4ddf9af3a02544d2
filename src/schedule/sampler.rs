//! Training-time samplers of `t`, driven by the crate's counter-based Philox.
//!
//! # Design
//!
//! A [`TimeSampler`] fills a batch `out[0..n]` of times from an [`RngKey`] and a training
//! `step`. Element `i` reads the Philox address `(key, Purpose::TIME, step, position = i)`,
//! so the draws are a pure function of `(seed, stream, step, i)`: they do not depend on
//! thread count or on how the batch was assembled. Variance-reduced samplers
//! ([`Antithetic`], [`Stratified`]) couple the elements of one batch by construction; their
//! element `i` additionally depends on the batch size `n`.
//!
//! Every sampler maps its unit variate `v ∈ [0, 1)` to `t = t_min + (1 − t_min) v`
//! (MDLM's `sampling_eps`), except [`LogitNormal`], whose support is `(0, 1)`.

use super::LogLinear;
use crate::error::{Error, Result};
use crate::rng::{CounterRng, Purpose, RngKey, u64_at, u64_to_open_unit_f64, u64_to_unit_f64};

/// A training-time sampler of diffusion times.
pub trait TimeSampler: Send + Sync + std::fmt::Debug {
    /// Fill `out` with `out.len()` times for training step `step` under `key`.
    ///
    /// Errors on an empty `out` or one longer than `u32::MAX` (positions are u32).
    fn sample_into(&self, key: RngKey, step: u32, out: &mut [f64]) -> Result<()>;
}

fn check_out(out: &[f64]) -> Result<()> {
    if out.is_empty() {
        return Err(Error::invalid("out", "empty batch"));
    }
    if out.len() > u32::MAX as usize {
        return Err(Error::invalid(
            "out",
            format!("batch of {} exceeds u32 positions", out.len()),
        ));
    }
    Ok(())
}

fn check_t_min(t_min: f64) -> Result<f64> {
    if !(0.0..1.0).contains(&t_min) {
        return Err(Error::invalid(
            "t_min",
            format!("{t_min} must lie in [0, 1)"),
        ));
    }
    Ok(t_min)
}

#[inline]
fn unit(key: RngKey, step: u32, i: usize) -> f64 {
    u64_to_unit_f64(u64_at(key, Purpose::TIME, step, i as u32, 0))
}

#[inline]
fn to_time(t_min: f64, v: f64) -> f64 {
    (t_min + (1.0 - t_min) * v).min(1.0)
}

/// `t = t_min + (1 − t_min) u`, `u ~ U[0, 1)` i.i.d. (MDLM `_sample_t` without antithetic
/// sampling; SEDD with `t_min = ε`).
///
/// ```
/// use discrete_diffusion::rng::RngKey;
/// use discrete_diffusion::schedule::{TimeSampler, Uniform};
/// let mut t = [0.0; 8];
/// Uniform::new(1e-3)?.sample_into(RngKey::for_stream(7, 0), 0, &mut t)?;
/// assert!(t.iter().all(|&x| (1e-3..1.0).contains(&x)));
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Uniform {
    t_min: f64,
}

impl Uniform {
    /// Uniform on `[t_min, 1)`, `t_min ∈ [0, 1)`.
    pub fn new(t_min: f64) -> Result<Self> {
        Ok(Uniform {
            t_min: check_t_min(t_min)?,
        })
    }
}

impl TimeSampler for Uniform {
    fn sample_into(&self, key: RngKey, step: u32, out: &mut [f64]) -> Result<()> {
        check_out(out)?;
        for (i, o) in out.iter_mut().enumerate() {
            *o = to_time(self.t_min, unit(key, step, i));
        }
        Ok(())
    }
}

/// MDLM's "antithetic" time sampling (kuleshov-group/mdlm `Diffusion._sample_t` with
/// `antithetic_sampling=True`): with i.i.d. `u_i ~ U[0, 1)`,
/// `v_i = (u_i/n + i/n) mod 1` and `t_i = t_min + (1 − t_min) v_i`.
///
/// Despite its name this is stratified sampling with one independent uniform per stratum
/// `[i/n, (i+1)/n)`: every `t_i` is marginally uniform and the batch covers `[0, 1)` evenly.
/// Compare [`Stratified`], which shares one uniform across the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Antithetic {
    t_min: f64,
}

impl Antithetic {
    /// MDLM antithetic sampling with `sampling_eps = t_min ∈ [0, 1)`.
    pub fn new(t_min: f64) -> Result<Self> {
        Ok(Antithetic {
            t_min: check_t_min(t_min)?,
        })
    }

    /// The deterministic part: map raw uniforms `u_i ∈ [0, 1]` to times,
    /// `t_i = t_min + (1 − t_min)·((u_i/n + i/n) mod 1)` with `n = uniforms.len()`.
    pub fn transform(&self, uniforms: &[f64], out: &mut [f64]) -> Result<()> {
        check_out(out)?;
        crate::validate::len("out", out.len(), uniforms.len())?;
        let n = uniforms.len() as f64;
        for (i, (&u, o)) in uniforms.iter().zip(out.iter_mut()).enumerate() {
            if !(0.0..=1.0).contains(&u) {
                return Err(Error::invalid(
                    "uniforms",
                    format!("entry {i} = {u} is outside [0, 1]"),
                ));
            }
            let v = (u / n + i as f64 / n) % 1.0;
            *o = to_time(self.t_min, v);
        }
        Ok(())
    }
}

impl TimeSampler for Antithetic {
    fn sample_into(&self, key: RngKey, step: u32, out: &mut [f64]) -> Result<()> {
        check_out(out)?;
        let u: Vec<f64> = (0..out.len()).map(|i| unit(key, step, i)).collect();
        self.transform(&u, out)
    }
}

/// Systematic stratified sampling with one shared offset (the "low-discrepancy" sampler of
/// VDM, Kingma et al. 2021, used by MD4's `antithetic_time_sampling`): with one `u ~ U[0, 1)`
/// (position 0), `v_i = (u + i/n) mod 1` and `t_i = t_min + (1 − t_min) v_i`.
///
/// Every `t_i` is marginally uniform; the batch is an evenly spaced lattice with a random
/// rotation, so `Σ_i f(t_i)/n` has lower variance than i.i.d. sampling for smooth `f`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stratified {
    t_min: f64,
}

impl Stratified {
    /// Systematic stratified sampling on `[t_min, 1)`, `t_min ∈ [0, 1)`.
    pub fn new(t_min: f64) -> Result<Self> {
        Ok(Stratified {
            t_min: check_t_min(t_min)?,
        })
    }
}

impl TimeSampler for Stratified {
    fn sample_into(&self, key: RngKey, step: u32, out: &mut [f64]) -> Result<()> {
        check_out(out)?;
        let u = unit(key, step, 0);
        let n = out.len() as f64;
        for (i, o) in out.iter_mut().enumerate() {
            *o = to_time(self.t_min, (u + i as f64 / n) % 1.0);
        }
        Ok(())
    }
}

/// Logit-normal times (Esser et al. 2024, "Scaling Rectified Flow Transformers"):
/// `t = 1/(1 + e^{−(mean + std·z)})`, `z ~ N(0, 1)` by Box–Muller from two uniforms at the
/// element's address. Support `(0, 1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogitNormal {
    mean: f64,
    std: f64,
}

impl LogitNormal {
    /// `mean` finite, `std > 0` finite.
    pub fn new(mean: f64, std: f64) -> Result<Self> {
        if !mean.is_finite() {
            return Err(Error::NonFinite {
                arg: "mean",
                index: 0,
                value: mean,
            });
        }
        super::positive("std", std)?;
        Ok(LogitNormal { mean, std })
    }
}

impl TimeSampler for LogitNormal {
    fn sample_into(&self, key: RngKey, step: u32, out: &mut [f64]) -> Result<()> {
        check_out(out)?;
        for (i, o) in out.iter_mut().enumerate() {
            let mut rng = CounterRng::new(key, Purpose::TIME, step, i as u32);
            let u1 = u64_to_open_unit_f64(rng.next_u64());
            let u2 = rng.uniform();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let x = self.mean + self.std * z;
            *o = 1.0 / (1.0 + (-x).exp());
        }
        Ok(())
    }
}

/// MDLM's importance sampling (`importance_sampling=True`): draw `u` with a base sampler,
/// then return [`LogLinear::importance_sampling_transformation`]`(u)`, i.e. times with density
/// `∝ 1/t` (the log-linear NELBO weight), so that the weighted loss has lower variance.
#[derive(Clone, Debug)]
pub struct LogLinearImportance<S> {
    base: S,
    schedule: LogLinear,
}

impl<S: TimeSampler> LogLinearImportance<S> {
    /// Wrap `base` (typically [`Uniform`] or [`Antithetic`] with MDLM's `sampling_eps`).
    pub fn new(base: S, schedule: LogLinear) -> Self {
        LogLinearImportance { base, schedule }
    }
}

impl<S: TimeSampler> TimeSampler for LogLinearImportance<S> {
    fn sample_into(&self, key: RngKey, step: u32, out: &mut [f64]) -> Result<()> {
        self.base.sample_into(key, step, out)?;
        for o in out.iter_mut() {
            *o = self.schedule.importance_sampling_transformation(*o)?;
        }
        Ok(())
    }
}
