//! D3PM's mutual-information schedule for matrix-exponential forward processes
//! (Austin et al. 2021, §4 and App. A.3; google-research `d3pm/text/model_utils.py`
//! `compute_information_removal_samples_closed_form` / `build_mutual_information_schedule`
//! and `diffusion.py` `ClosedFormMatrixExponentialDiffusion`).
//!
//! The forward process is `Q̄_t = exp(τ_t R)` for a fixed rate matrix `R`; the schedule
//! chooses the exponents `τ_0 = 0 < τ_1 < …` so that the *relative information removal*
//! `r(τ) = 1 − I(x_0; x_t)/H(x_0) = H(x_0 | x_t)/H(x_0)` grows linearly in the step. `r` is
//! tabulated on a geometric grid of exponents and inverted by monotone (PCHIP)
//! interpolation, exactly as the anchor does. The kernel `Q_t = exp((τ_t − τ_{t−1}) R)`
//! itself belongs to the `kernel` layer, which consumes [`MutualInformationExponents::exponents`].

use crate::error::{Error, Result};
use crate::validate;

/// The closed-form matrix-exponential families of the anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExponentialFamily {
    /// `exp(τR)` for the absorbing rate matrix: keep with probability `e^{−τ}`, else move to
    /// `mask` (`mask_matrix_exponential`). The mask index is any state.
    Mask {
        /// The absorbing state.
        mask: usize,
    },
    /// `exp(τR)` for the uniform rate matrix `R = 11ᵀ/d − I`:
    /// `e^{−τ}(I − 11ᵀ/d) + 11ᵀ/d` (`uniform_diagonal_matrix_exponential`).
    Uniform,
}

/// How the target information removals are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutualInformationKind {
    /// `r_k = k/(T' + 1)`, `k = 1..=T'` (`linspace(0, 1, T' + 2)[1:-1]`).
    Linear,
    /// `r_k = 1 − cos((k/T' + 0.008)/1.008 · π/2)`, `k = 0..T'`.
    Cosine,
}

/// Relative information removal `r(τ) = (H(x_0, x_t) − H(x_t))/H(x_0)` after the transition
/// `exp(τR)` of `family`, for `x_0 ~ initial` (`compute_relative_information_removal`).
///
/// O(d) closed forms; `0 ln 0 = 0`. `initial` must be a distribution over `d ≥ 2` states with
/// positive entropy; `tau ≥ 0` finite. For `Mask` with no initial mass on the mask,
/// `r(τ) = 1 − e^{−τ}` exactly.
pub fn relative_information_removal(
    family: ExponentialFamily,
    tau: f64,
    initial: &[f64],
) -> Result<f64> {
    validate::distribution("initial", initial, 1e-9)?;
    validate::vocab("initial.len()", initial.len())?;
    if !(tau.is_finite() && tau >= 0.0) {
        return Err(Error::invalid(
            "tau",
            format!("{tau} must be finite and ≥ 0"),
        ));
    }
    if let ExponentialFamily::Mask { mask } = family
        && mask >= initial.len()
    {
        return Err(Error::TokenOutOfRange {
            arg: "mask",
            index: 0,
            token: mask as u64,
            vocab: initial.len(),
        });
    }
    let h0 = entropy(initial.iter().copied());
    if h0 <= 0.0 {
        return Err(Error::invalid(
            "initial",
            "has zero entropy (a point mass): information removal is undefined",
        ));
    }
    Ok(removal_unchecked(family, tau, initial, h0))
}

fn xlogx(p: f64) -> f64 {
    if p > 0.0 { p * p.ln() } else { 0.0 }
}

fn entropy(p: impl Iterator<Item = f64>) -> f64 {
    -p.map(xlogx).sum::<f64>()
}

fn removal_unchecked(family: ExponentialFamily, tau: f64, pi: &[f64], h0: f64) -> f64 {
    let keep = (-tau).exp();
    let moved = -(-tau).exp_m1(); // 1 − e^{−τ}, accurate for small τ
    let d = pi.len();
    let (h_joint, h_t) = match family {
        ExponentialFamily::Mask { mask } => {
            let mut hj = 0.0;
            let mut ht = 0.0;
            let mut to_mask = 0.0;
            for (j, &p) in pi.iter().enumerate() {
                if j == mask {
                    continue;
                }
                hj -= xlogx(p * keep) + xlogx(p * moved);
                ht -= xlogx(p * keep);
                to_mask += p * moved;
            }
            hj -= xlogx(pi[mask]);
            ht -= xlogx(pi[mask] + to_mask);
            (hj, ht)
        }
        ExponentialFamily::Uniform => {
            let df = d as f64;
            let off = moved / df;
            let diag = keep + off; // e^{−τ}(1 − 1/d) + 1/d
            let mut hj = 0.0;
            let mut ht = 0.0;
            for &p in pi {
                hj -= xlogx(p * diag) + (df - 1.0) * xlogx(p * off);
                ht -= xlogx(p * diag + (1.0 - p) * off);
            }
            (hj, ht)
        }
    };
    (h_joint - h_t) / h0
}

/// Monotone piecewise-cubic Hermite interpolation (Fritsch & Carlson 1980; the derivative
/// rule of scipy's `PchipInterpolator`: weighted harmonic means inside, the one-sided
/// three-point rule with shape limits at the ends; linear for two points).
///
/// `x` strictly increasing (≥ 2 points), `y` the same length. Returns `None` for `xq`
/// outside `[x_0, x_n]` (scipy's `extrapolate=False`).
pub fn pchip_interpolate(x: &[f64], y: &[f64], xq: f64) -> Result<Option<f64>> {
    if x.len() < 2 {
        return Err(Error::invalid(
            "x",
            format!("needs ≥ 2 points, got {}", x.len()),
        ));
    }
    validate::len("y", y.len(), x.len())?;
    validate::all_finite("x", x)?;
    validate::all_finite("y", y)?;
    if x.windows(2).any(|w| w[1] <= w[0]) {
        return Err(Error::invalid("x", "knots must be strictly increasing"));
    }
    if !(xq >= x[0] && xq <= x[x.len() - 1]) {
        return Ok(None);
    }
    let d = pchip_derivatives(x, y);
    // Interval k with x_k ≤ xq < x_{k+1} (the last interval closed on the right).
    let k = match x.partition_point(|&v| v <= xq) {
        0 => 0,
        p => (p - 1).min(x.len() - 2),
    };
    let h = x[k + 1] - x[k];
    let m = (y[k + 1] - y[k]) / h;
    let c2 = (3.0 * m - 2.0 * d[k] - d[k + 1]) / h;
    let c3 = (d[k] + d[k + 1] - 2.0 * m) / (h * h);
    let s = xq - x[k];
    Ok(Some(y[k] + s * (d[k] + s * (c2 + s * c3))))
}

fn pchip_derivatives(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len();
    let h: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let m: Vec<f64> = (0..n - 1).map(|k| (y[k + 1] - y[k]) / h[k]).collect();
    if n == 2 {
        return vec![m[0], m[0]];
    }
    let mut d = vec![0.0; n];
    for k in 1..n - 1 {
        let (m0, m1) = (m[k - 1], m[k]);
        if m0 == 0.0 || m1 == 0.0 || m0.signum() != m1.signum() {
            d[k] = 0.0;
        } else {
            let w1 = 2.0 * h[k] + h[k - 1];
            let w2 = h[k] + 2.0 * h[k - 1];
            d[k] = (w1 + w2) / (w1 / m0 + w2 / m1);
        }
    }
    d[0] = pchip_edge(h[0], h[1], m[0], m[1]);
    d[n - 1] = pchip_edge(h[n - 2], h[n - 3], m[n - 2], m[n - 3]);
    d
}

fn pchip_edge(h0: f64, h1: f64, m0: f64, m1: f64) -> f64 {
    let d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1);
    let sign = |v: f64| {
        if v > 0.0 {
            1
        } else if v < 0.0 {
            -1
        } else {
            0
        }
    };
    if sign(d) != sign(m0) {
        0.0
    } else if sign(m0) != sign(m1) && d.abs() > 3.0 * m0.abs() {
        3.0 * m0
    } else {
        d
    }
}

/// The configuration of D3PM's mutual-information schedule (`MutualInformationSchedule` plus
/// the `ClosedFormMatrixExponentialDiffusion` options). Defaults are the anchor's:
/// `min_exponent = 1e-4`, `max_exponent = 1e5`, `interpolation_steps = 128`,
/// `override_last_step_to_mask = true`, kind linear.
///
/// ```
/// use discrete_diffusion::schedule::{ExponentialFamily, MutualInformationSchedule};
/// let s = MutualInformationSchedule::new(
///     ExponentialFamily::Mask { mask: 4 }, vec![0.4, 0.3, 0.2, 0.1, 0.0], 4)?;
/// let e = s.compute()?;
/// assert_eq!(e.exponents.len(), 5); // τ_0..τ_T
/// // masking: r(τ) = 1 − e^{−τ}, so τ_k ≈ −ln(1 − k/T) up to PCHIP error
/// assert!((e.exponents[2] - 2f64.ln()).abs() < 1e-3);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MutualInformationSchedule {
    /// The matrix-exponential family.
    pub family: ExponentialFamily,
    /// `p(x_0)`, over the `d` states of the family.
    pub initial_distribution: Vec<f64>,
    /// `T ≥ 1`.
    pub num_steps: usize,
    /// Smallest queried exponent (> 0).
    pub min_exponent: f64,
    /// Largest queried exponent (> `min_exponent`).
    pub max_exponent: f64,
    /// Number of geometrically spaced query exponents (≥ 2).
    pub interpolation_steps: usize,
    /// Replace the last step by an all-to-mask step (then only `T − 1` steps are
    /// interpolated and `τ_T = τ_{T−1}`).
    pub override_last_step_to_mask: bool,
    /// Spacing of the target removals.
    pub kind: MutualInformationKind,
}

/// The result of [`MutualInformationSchedule::compute`].
#[derive(Clone, Debug, PartialEq)]
pub struct MutualInformationExponents {
    /// The queried exponents (`geomspace(min, max, interpolation_steps)`).
    pub query_exponents: Vec<f64>,
    /// `r(τ)` at each query exponent.
    pub information_removals: Vec<f64>,
    /// The target removals of the interpolated steps.
    pub schedule_info_removals: Vec<f64>,
    /// `τ_0 = 0, τ_1, …, τ_T` (`T + 1` values): `Q̄_t = exp(τ_t R)` and the one-step kernel
    /// is `exp((τ_t − τ_{t−1}) R)`. With the override the last step is all-to-mask and
    /// `τ_T = τ_{T−1}` (as coded in the anchor).
    pub exponents: Vec<f64>,
}

impl MutualInformationExponents {
    /// For the `Mask` family, the keep probability of the matrix-exponential part,
    /// `ᾱ_t = e^{−τ_t}`, `t = 0..=T`. (With the override the true `ᾱ_T` is 0, since the
    /// last step masks everything; this returns `e^{−τ_T}` as the anchor's exponents do.)
    pub fn mask_alpha_bar(&self) -> Vec<f64> {
        self.exponents.iter().map(|&e| (-e).exp()).collect()
    }

    /// The analytic keep probabilities of the linear masking MI schedule when `p(x_0)` puts
    /// no mass on the mask: `r(τ) = 1 − e^{−τ}` gives `ᾱ_t = 1 − t/(T' + 1)` for the
    /// `T'` interpolated steps (`T' = T − 1` with the override, whose `ᾱ_T` repeats
    /// `ᾱ_{T−1}` as in [`MutualInformationExponents::mask_alpha_bar`]). For `T' = T − 1` this
    /// is the D3PM `1/(T − t + 1)` schedule.
    pub fn analytic_linear_mask_alpha_bar(num_steps: usize, override_last: bool) -> Vec<f64> {
        let interp = if override_last {
            num_steps.saturating_sub(1)
        } else {
            num_steps
        };
        let denom = (interp + 1) as f64;
        (0..=num_steps)
            .map(|t| 1.0 - (t.min(interp) as f64) / denom)
            .collect()
    }
}

impl MutualInformationSchedule {
    /// The anchor's defaults for `family`, `initial_distribution` and `T = num_steps`.
    pub fn new(
        family: ExponentialFamily,
        initial_distribution: Vec<f64>,
        num_steps: usize,
    ) -> Result<Self> {
        let s = MutualInformationSchedule {
            family,
            initial_distribution,
            num_steps,
            min_exponent: 1e-4,
            max_exponent: 1e5,
            interpolation_steps: 128,
            override_last_step_to_mask: true,
            kind: MutualInformationKind::Linear,
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        if self.num_steps == 0 {
            return Err(Error::invalid("num_steps", "T must be at least 1"));
        }
        if !(self.min_exponent.is_finite() && self.min_exponent > 0.0) {
            return Err(Error::invalid(
                "min_exponent",
                format!("{} must be finite and > 0", self.min_exponent),
            ));
        }
        if !(self.max_exponent.is_finite() && self.max_exponent > self.min_exponent) {
            return Err(Error::invalid(
                "max_exponent",
                format!(
                    "{} must be finite and > min_exponent = {}",
                    self.max_exponent, self.min_exponent
                ),
            ));
        }
        if self.interpolation_steps < 2 {
            return Err(Error::invalid(
                "interpolation_steps",
                format!("{} must be ≥ 2", self.interpolation_steps),
            ));
        }
        // Validates the distribution, the mask index and the entropy.
        relative_information_removal(self.family, 0.0, &self.initial_distribution)?;
        Ok(())
    }

    /// Compute the query table, the target removals and the exponents `τ_0..τ_T`.
    ///
    /// Errors if a target removal exceeds the largest tabulated one (the anchor's
    /// `allow_out_of_bounds=False`): increase `max_exponent` then.
    pub fn compute(&self) -> Result<MutualInformationExponents> {
        self.validate()?;
        let pi = &self.initial_distribution;
        let h0 = entropy(pi.iter().copied());
        let n = self.interpolation_steps;
        let (l0, l1) = (self.min_exponent.log10(), self.max_exponent.log10());
        let query_exponents: Vec<f64> = (0..n)
            .map(|i| {
                if i == 0 {
                    self.min_exponent
                } else if i == n - 1 {
                    self.max_exponent
                } else {
                    10f64.powf(l0 + (l1 - l0) * (i as f64) / ((n - 1) as f64))
                }
            })
            .collect();
        let information_removals: Vec<f64> = query_exponents
            .iter()
            .map(|&e| removal_unchecked(self.family, e, pi, h0))
            .collect();

        // Keep strictly increasing removals (drops numerical noise and the saturated tail),
        // then prepend (0, 0).
        let mut xs = vec![0.0];
        let mut ys = vec![0.0];
        let mut best = 0.0f64;
        for (&e, &r) in query_exponents.iter().zip(&information_removals) {
            if r > best {
                xs.push(r);
                ys.push(e);
                best = r;
            }
        }

        let steps = if self.override_last_step_to_mask {
            self.num_steps - 1
        } else {
            self.num_steps
        };
        let schedule_info_removals: Vec<f64> = match self.kind {
            MutualInformationKind::Linear => {
                let denom = (steps + 1) as f64;
                (1..=steps).map(|k| k as f64 / denom).collect()
            }
            MutualInformationKind::Cosine => (0..steps)
                .map(|k| {
                    1.0 - ((k as f64 / steps as f64 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                })
                .collect(),
        };
        if let Some(&last) = schedule_info_removals.last()
            && last > best
        {
            return Err(Error::invalid(
                "max_exponent",
                format!(
                    "requested information removal {last} exceeds the largest tabulated \
                     value {best}; increase max_exponent"
                ),
            ));
        }
        let mut exponents = Vec::with_capacity(self.num_steps + 1);
        exponents.push(0.0);
        for &r in &schedule_info_removals {
            let e = pchip_interpolate(&xs, &ys, r)?.ok_or_else(|| Error::Numerical {
                what: "mutual information schedule",
                reason: format!("removal {r} outside the interpolation table"),
            })?;
            exponents.push(e);
        }
        if self.override_last_step_to_mask {
            let last = *exponents.last().expect("non-empty");
            exponents.push(last);
        }
        Ok(MutualInformationExponents {
            query_exponents,
            information_removals,
            schedule_info_removals,
            exponents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_removal_is_one_minus_exp() {
        let pi = [0.4, 0.3, 0.2, 0.1, 0.0];
        for &tau in &[1e-4, 0.3, 2.0] {
            let r = relative_information_removal(ExponentialFamily::Mask { mask: 4 }, tau, &pi)
                .unwrap();
            assert!((r - (1.0 - (-tau).exp())).abs() < 1e-12);
        }
    }

    #[test]
    fn pchip_reproduces_linear_data() {
        let x = [0.0, 0.5, 1.0, 3.0];
        let y = [1.0, 2.0, 3.0, 7.0];
        for &q in &[0.0, 0.2, 0.9, 2.5, 3.0] {
            let v = pchip_interpolate(&x, &y, q).unwrap().unwrap();
            assert!((v - (1.0 + 2.0 * q)).abs() < 1e-12);
        }
        assert_eq!(pchip_interpolate(&x, &y, 3.5).unwrap(), None);
    }
}
