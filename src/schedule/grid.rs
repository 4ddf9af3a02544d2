//! Inference time grids: `n` reverse steps over `n + 1` strictly descending times
//! `1 ≥ t_0 > t_1 > … > t_n ≥ 0` (step `k` goes from `t = t_k` to `s = t_{k+1}`).

use super::Schedule;
use crate::error::{Error, Result};

/// A validated descending time grid (`n ≥ 1` steps, `n + 1` points in `[0, 1]`).
///
/// ```
/// use discrete_diffusion::schedule::{LogLinear, TimeGrid};
/// let g = TimeGrid::uniform(4, 0.0)?;
/// assert_eq!(g.points(), &[1.0, 0.75, 0.5, 0.25, 0.0]);
/// let (t, s) = g.step(1)?;
/// assert_eq!((t, s), (0.75, 0.5));
/// // equal steps in α(t):
/// let a = TimeGrid::alpha_uniform(&LogLinear::default(), 4, 1e-5)?;
/// assert_eq!(a.num_steps(), 4);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TimeGrid {
    points: Vec<f64>,
}

/// The two sampling grids of MD4 (`MD4.get_sampling_grid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Md4GridKind {
    /// `t_k = (n − k)/n`.
    Linear,
    /// `t_k = cos(π/2 · (1 − u_k)) = sin(π u_k/2)` with `u_k = (n − k)/n`.
    Cosine,
}

fn check_n(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("n", "a grid needs at least one step"));
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

impl TimeGrid {
    /// From explicit points: at least 2, each in `[0, 1]`, strictly descending.
    pub fn from_points(points: Vec<f64>) -> Result<Self> {
        if points.len() < 2 {
            return Err(Error::invalid(
                "points",
                format!("a grid needs at least 2 points, got {}", points.len()),
            ));
        }
        for (i, &p) in points.iter().enumerate() {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(
                    "points",
                    format!("point {i} = {p} is outside [0, 1]"),
                ));
            }
            if i > 0 && p >= points[i - 1] {
                return Err(Error::invalid(
                    "points",
                    format!("not strictly descending at {i}: {} then {p}", points[i - 1]),
                ));
            }
        }
        Ok(TimeGrid { points })
    }

    /// Uniform in `t` from 1 to `t_min`: `t_k = 1 − (k/n)(1 − t_min)`. With `t_min = ε` this
    /// is MDLM/SEDD's `linspace(1, eps, steps + 1)` (step `dt = (1 − ε)/n`; MDLM samples with
    /// `ε = 10⁻⁵`). `t_min ∈ [0, 1)`.
    pub fn uniform(n: usize, t_min: f64) -> Result<Self> {
        check_n(n)?;
        let t_min = check_t_min(t_min)?;
        let nf = n as f64;
        let points = (0..=n)
            .map(|k| {
                if k == n {
                    t_min
                } else {
                    1.0 - (k as f64) * ((1.0 - t_min) / nf)
                }
            })
            .collect();
        Self::from_points(points)
    }

    /// Power grid: `t_k = t_min + (1 − t_min)((n − k)/n)^p`, `p > 0` (`p > 1` takes smaller
    /// steps near the data, `p < 1` near the prior).
    pub fn power(n: usize, p: f64, t_min: f64) -> Result<Self> {
        check_n(n)?;
        let t_min = check_t_min(t_min)?;
        super::positive("p", p)?;
        let nf = n as f64;
        let points = (0..=n)
            .map(|k| t_min + (1.0 - t_min) * (((n - k) as f64) / nf).powf(p))
            .collect();
        Self::from_points(points)
    }

    /// Equal steps in `α`: `α(t_k) = α(1) + (k/n)(α(t_min) − α(1))`, `t_k` by
    /// [`Schedule::time_of_alpha`]. Each step then unmasks the same expected fraction of
    /// tokens. Errors if the schedule is flat so that two points coincide.
    pub fn alpha_uniform(schedule: &dyn Schedule, n: usize, t_min: f64) -> Result<Self> {
        check_n(n)?;
        let t_min = check_t_min(t_min)?;
        let a_hi = schedule.alpha(t_min)?;
        let a_lo = schedule.alpha(1.0)?;
        let nf = n as f64;
        let mut points = Vec::with_capacity(n + 1);
        points.push(1.0);
        for k in 1..n {
            let a = a_lo + (k as f64 / nf) * (a_hi - a_lo);
            points.push(schedule.time_of_alpha(a)?);
        }
        points.push(t_min);
        Self::from_points(points)
    }

    /// MD4's sampling grid (`get_sampling_grid`): step `i = 0..n` runs from `t = u_i` to
    /// `s = u_{i+1}` with `u_k = (n − k)/n`, mapped by `u ↦ sin(πu/2)` for the cosine grid.
    pub fn md4(n: usize, kind: Md4GridKind) -> Result<Self> {
        check_n(n)?;
        let nf = n as f64;
        let points = (0..=n)
            .map(|k| {
                let u = ((n - k) as f64) / nf;
                match kind {
                    Md4GridKind::Linear => u,
                    Md4GridKind::Cosine => (std::f64::consts::FRAC_PI_2 * u).sin(),
                }
            })
            .collect();
        Self::from_points(points)
    }

    /// The points `t_0 > … > t_n`.
    pub fn points(&self) -> &[f64] {
        &self.points
    }

    /// Number of steps `n`.
    pub fn num_steps(&self) -> usize {
        self.points.len() - 1
    }

    /// Step `k ∈ 0..n` as `(t, s) = (t_k, t_{k+1})`, `t > s`.
    pub fn step(&self, k: usize) -> Result<(f64, f64)> {
        if k >= self.num_steps() {
            return Err(Error::invalid(
                "k",
                format!("step {k} is outside 0..{}", self.num_steps()),
            ));
        }
        Ok((self.points[k], self.points[k + 1]))
    }

    /// Iterate over the steps `(t_k, t_{k+1})`.
    pub fn steps(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.points.windows(2).map(|w| (w[0], w[1]))
    }

    /// The grid in flow-matching time `s = 1 − t` (ascending).
    pub fn to_flow_matching_time(&self) -> Vec<f64> {
        self.points.iter().map(|&t| 1.0 - t).collect()
    }
}

/// flow_matching's Euler solver discretisation (`MixtureDiscreteEulerSolver.sample`), in its
/// own time `s` (`s = 0` source, `s = 1` data):
/// `n = ⌈(s_final − s_init)/h⌉` and `[s_init + h·i for i in 0..n] + [s_final]` (`n + 1`
/// points; the last interval may be shorter). Convert with `t = 1 − s`.
pub fn flow_matching_time_grid(step_size: f64, s_init: f64, s_final: f64) -> Result<Vec<f64>> {
    if !(step_size.is_finite() && step_size > 0.0) {
        return Err(Error::invalid(
            "step_size",
            format!("{step_size} must be finite and > 0"),
        ));
    }
    for (arg, v) in [("s_init", s_init), ("s_final", s_final)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::invalid(arg, format!("{v} is outside [0, 1]")));
        }
    }
    if s_final <= s_init {
        return Err(Error::invalid(
            "s_final",
            format!("{s_final} must exceed s_init = {s_init}"),
        ));
    }
    let steps = ((s_final - s_init) / step_size).ceil();
    if steps > 1e8 {
        return Err(Error::invalid(
            "step_size",
            format!("{step_size} gives {steps} steps (more than 10⁸)"),
        ));
    }
    let n = steps as usize;
    let mut grid: Vec<f64> = (0..n).map(|i| s_init + step_size * i as f64).collect();
    grid.push(s_final);
    Ok(grid)
}

/// MDLM's discrete-time training times (`_forward_pass_diffusion` with `T > 0`):
/// `t ↦ (⌊tT⌋ + 1)/T ∈ {1/T, …, 1}`. At `t = 1` the anchor would return `1 + 1/T`; this
/// returns 1 (the step index is capped at `T`).
pub fn discretize_time(t: f64, num_steps: usize) -> Result<f64> {
    let t = super::check_t(t)?;
    if num_steps == 0 {
        return Err(Error::invalid("num_steps", "T must be at least 1"));
    }
    let tt = num_steps as f64;
    let k = ((t * tt).floor()).min(tt - 1.0);
    Ok(k / tt + 1.0 / tt)
}
