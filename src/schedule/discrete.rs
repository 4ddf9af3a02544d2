//! Discrete-time schedules `β_1, …, β_T` (D3PM, Austin et al. 2021).
//!
//! Step `t ∈ 1..=T` moves `x_{t−1} → x_t` with corruption probability `β_t`; the cumulative
//! keep probability is `ᾱ_t = Π_{s ≤ t}(1 − β_s)`, `t ∈ 0..=T`. The D3PM images code indexes
//! steps `0..T−1` (code `t` = paper `t + 1`); the text code evaluates its schedule function at
//! `step = t − 1` as well. This type always uses the paper's `1..=T`.

use super::Schedule;
use crate::error::{Error, Result};

/// The D3PM text schedule kinds of `create_discrete_diffusion_schedule`
/// (google-research `d3pm/text/diffusion.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum D3pmTextKind {
    /// `β_t = 1/(scale·T − (t − 1))` (Sohl-Dickstein et al. 2015); ignores `β_min`, `β_max`.
    Standard,
    /// `β_t = β_min + (β_max − β_min)(t − 1)/T` (a linear warm-up that never reaches `β_max`).
    Linear,
    /// The cosine schedule of Nichol & Dhariwal 2021 as coded by D3PM:
    /// `f(u) = cos((u + 0.008)/1.008 · π/2)`, `β_t = clip(1 − f(t/T)/f((t − 1)/T), 0, 0.999)`.
    Cosine,
}

/// A validated discrete schedule `β_1..β_T`, `β_t ∈ [0, 1]`, `T ≥ 1`, with accurate
/// cumulative products `ᾱ_t = exp(Σ_{s≤t} ln(1 − β_s))` (sums of `ln_1p`).
///
/// ```
/// use discrete_diffusion::schedule::BetaSchedule;
/// let s = BetaSchedule::mutual_information(4)?; // 1/4, 1/3, 1/2, 1
/// assert_eq!(s.betas(), &[0.25, 1.0 / 3.0, 0.5, 1.0]);
/// assert!((s.alpha_bar(2)? - 0.5).abs() < 1e-15); // ᾱ_t = 1 − t/T
/// assert_eq!(s.alpha_bar(4)?, 0.0);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BetaSchedule {
    betas: Vec<f64>,
    /// `ln ᾱ_t`, `t = 0..=T`.
    log_alpha_bar: Vec<f64>,
}

impl BetaSchedule {
    /// From explicit `β_1..β_T`: every entry finite in `[0, 1]`, at least one entry.
    pub fn from_betas(betas: Vec<f64>) -> Result<Self> {
        if betas.is_empty() {
            return Err(Error::invalid("betas", "empty schedule (T = 0)"));
        }
        for (i, &b) in betas.iter().enumerate() {
            if !b.is_finite() {
                return Err(Error::NonFinite {
                    arg: "betas",
                    index: i,
                    value: b,
                });
            }
            if !(0.0..=1.0).contains(&b) {
                return Err(Error::invalid(
                    "betas",
                    format!("beta_{} = {b} is outside [0, 1]", i + 1),
                ));
            }
        }
        let mut log_alpha_bar = Vec::with_capacity(betas.len() + 1);
        let mut acc = 0.0f64;
        log_alpha_bar.push(0.0);
        for &b in &betas {
            acc += (-b).ln_1p();
            log_alpha_bar.push(acc);
        }
        Ok(BetaSchedule {
            betas,
            log_alpha_bar,
        })
    }

    /// D3PM images "linear" (Ho et al. 2020 as used by Austin et al. 2021):
    /// `β_t = start + (t − 1)(stop − start)/(T − 1)` (numpy `linspace(start, stop, T)`; for
    /// `T = 1` just `start`). `start`, `stop` in `[0, 1]`.
    pub fn linear(num_steps: usize, start: f64, stop: f64) -> Result<Self> {
        check_steps(num_steps)?;
        check_unit("start", start)?;
        check_unit("stop", stop)?;
        let t = num_steps;
        let betas = (0..t)
            .map(|k| {
                if k + 1 == t && t > 1 {
                    stop
                } else if t == 1 {
                    start
                } else {
                    start + (k as f64) * ((stop - start) / ((t - 1) as f64))
                }
            })
            .collect();
        Self::from_betas(betas)
    }

    /// D3PM cosine (Hoogeboom et al. 2021 as coded by D3PM, images `get_diffusion_betas`
    /// "cosine" and text `create_discrete_diffusion_schedule` "cosine"):
    /// `f(u) = cos((u + 0.008)/1.008 · π/2)` (not squared, as coded),
    /// `β_t = min(1 − f(t/T)/f((t − 1)/T), 0.999)`.
    pub fn cosine(num_steps: usize) -> Result<Self> {
        check_steps(num_steps)?;
        let t = num_steps as f64;
        let f = |k: usize| ((k as f64 / t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos();
        let betas = (1..=num_steps)
            .map(|k| (1.0 - f(k) / f(k - 1)).clamp(0.0, 0.999))
            .collect();
        Self::from_betas(betas)
    }

    /// The mutual-information / "jsd" schedule of Sohl-Dickstein et al. 2015 (D3PM images
    /// "jsd", text "standard"): `β_t = 1/(T − t + 1)`, so that `ᾱ_t = 1 − t/T` for absorbing
    /// diffusion and `β_T = 1`.
    pub fn mutual_information(num_steps: usize) -> Result<Self> {
        check_steps(num_steps)?;
        Self::from_betas(
            (1..=num_steps)
                .map(|k| 1.0 / ((num_steps - k + 1) as f64))
                .collect(),
        )
    }

    /// D3PM text "standard": `β_t = 1/(scale·T − (t − 1))`, `scale ≥ 1` (`scale = 1` is
    /// [`BetaSchedule::mutual_information`]).
    pub fn text_standard(num_steps: usize, scale: f64) -> Result<Self> {
        check_steps(num_steps)?;
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(Error::invalid(
                "scale",
                format!("{scale} must be finite and ≥ 1"),
            ));
        }
        let tt = num_steps as f64;
        Self::from_betas(
            (0..num_steps)
                .map(|step| 1.0 / (scale * tt - step as f64))
                .collect(),
        )
    }

    /// D3PM text "linear" (`constant * linear_warmup_from` over `T` steps):
    /// `β_t = β_min + (β_max − β_min)(t − 1)/T`, `0 ≤ β_min ≤ β_max ≤ 1`. Note that
    /// `β_T < β_max`.
    pub fn text_linear(num_steps: usize, beta_min: f64, beta_max: f64) -> Result<Self> {
        check_steps(num_steps)?;
        check_unit("beta_min", beta_min)?;
        check_unit("beta_max", beta_max)?;
        if beta_min > beta_max {
            return Err(Error::invalid(
                "beta_max",
                format!("{beta_max} must be ≥ beta_min = {beta_min}"),
            ));
        }
        let tt = num_steps as f64;
        Self::from_betas(
            (0..num_steps)
                .map(|step| beta_min + (beta_max - beta_min) * (step as f64 / tt))
                .collect(),
        )
    }

    /// The D3PM text `create_discrete_diffusion_schedule(kind, beta_min, beta_max, T, scale)`
    /// with the anchor's preconditions (`β_min ≤ β_max`, `T > 0`, `scale ≥ 1`) checked for
    /// every kind.
    pub fn d3pm_text(
        kind: D3pmTextKind,
        num_steps: usize,
        beta_min: f64,
        beta_max: f64,
        scale: f64,
    ) -> Result<Self> {
        check_unit("beta_min", beta_min)?;
        check_unit("beta_max", beta_max)?;
        if beta_min > beta_max {
            return Err(Error::invalid(
                "beta_max",
                format!("{beta_max} must be ≥ beta_min = {beta_min}"),
            ));
        }
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(Error::invalid(
                "scale",
                format!("{scale} must be finite and ≥ 1"),
            ));
        }
        match kind {
            D3pmTextKind::Standard => Self::text_standard(num_steps, scale),
            D3pmTextKind::Linear => Self::text_linear(num_steps, beta_min, beta_max),
            D3pmTextKind::Cosine => Self::cosine(num_steps),
        }
    }

    /// Discretise a continuous schedule on an ascending grid `t_0 < t_1 < … < t_T` in
    /// `[0, 1]`: `β_k = 1 − α(t_k)/α(t_{k−1})`, so that `ᾱ_k = α(t_k)/α(t_0)`.
    ///
    /// Where `α(t_{k−1}) = 0` the step is already absorbed and `β_k = 1` is used. Errors on
    /// fewer than two points, non-finite, out-of-range or non-ascending grids.
    pub fn from_continuous(schedule: &dyn Schedule, grid: &[f64]) -> Result<Self> {
        if grid.len() < 2 {
            return Err(Error::invalid(
                "grid",
                format!("needs at least 2 points (t_0 and t_T), got {}", grid.len()),
            ));
        }
        for (i, &g) in grid.iter().enumerate() {
            if !(0.0..=1.0).contains(&g) {
                return Err(Error::invalid(
                    "grid",
                    format!("point {i} = {g} is outside [0, 1]"),
                ));
            }
            if i > 0 && g <= grid[i - 1] {
                return Err(Error::invalid(
                    "grid",
                    format!("not strictly ascending at {i}: {} then {g}", grid[i - 1]),
                ));
            }
        }
        let alphas: Vec<f64> = grid
            .iter()
            .map(|&t| schedule.alpha(t))
            .collect::<Result<_>>()?;
        let betas = alphas
            .windows(2)
            .map(|w| {
                if w[0] > 0.0 {
                    (1.0 - w[1] / w[0]).clamp(0.0, 1.0)
                } else {
                    1.0
                }
            })
            .collect();
        Self::from_betas(betas)
    }

    /// `T`.
    pub fn num_steps(&self) -> usize {
        self.betas.len()
    }

    /// `β_t`, `t ∈ 1..=T`.
    pub fn beta(&self, t: usize) -> Result<f64> {
        if t == 0 || t > self.betas.len() {
            return Err(Error::invalid(
                "t",
                format!("step {t} is outside 1..={}", self.betas.len()),
            ));
        }
        Ok(self.betas[t - 1])
    }

    /// `β_1..β_T` as a slice (index `t − 1`), the form the kernels take.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// `ᾱ_t = Π_{s≤t}(1 − β_s)`, `t ∈ 0..=T` (`ᾱ_0 = 1`).
    pub fn alpha_bar(&self, t: usize) -> Result<f64> {
        Ok(self.log_alpha_bar(t)?.exp())
    }

    /// `ln ᾱ_t = Σ_{s≤t} ln(1 − β_s)`, `t ∈ 0..=T` (`−∞` once some `β_s = 1`).
    pub fn log_alpha_bar(&self, t: usize) -> Result<f64> {
        self.log_alpha_bar.get(t).copied().ok_or_else(|| {
            Error::invalid("t", format!("step {t} is outside 0..={}", self.betas.len()))
        })
    }

    /// `ᾱ_0..ᾱ_T`.
    pub fn alpha_bars(&self) -> Vec<f64> {
        self.log_alpha_bar.iter().map(|l| l.exp()).collect()
    }
}

fn check_steps(num_steps: usize) -> Result<()> {
    if num_steps == 0 {
        return Err(Error::invalid("num_steps", "T must be at least 1"));
    }
    Ok(())
}

fn check_unit(arg: &'static str, x: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&x) {
        return Err(Error::invalid(arg, format!("{x} is outside [0, 1]")));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::LogLinear;

    #[test]
    fn from_continuous_reproduces_alpha() {
        let s = LogLinear::default();
        let grid: Vec<f64> = (0..=10).map(|k| k as f64 / 10.0).collect();
        let b = BetaSchedule::from_continuous(&s, &grid).unwrap();
        for (k, &t) in grid.iter().enumerate() {
            assert!((b.alpha_bar(k).unwrap() - s.alpha(t).unwrap()).abs() < 1e-14);
        }
    }

    #[test]
    fn linear_endpoints() {
        let b = BetaSchedule::linear(1, 0.3, 0.5).unwrap();
        assert_eq!(b.betas(), &[0.3]);
        let b = BetaSchedule::linear(3, 0.1, 0.5).unwrap();
        assert_eq!(b.betas()[2], 0.5);
    }
}
