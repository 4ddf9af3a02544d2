//! Mixture-to-π kernels: the shared O(V) machinery behind [`Uniform`](super::uniform::Uniform),
//! [`Absorbing`](super::absorbing::Absorbing) and [`Marginal`](super::marginal::Marginal)
//! (DESIGN §3.1), plus the continuous-time [`MixtureChannel`] / [`MixtureProcess`].
//!
//! One step moves to a fixed law `π` with probability `β_t` and stays otherwise
//! (Austin et al. 2021, D3PM, §3.1; Vignac et al. 2023, DiGress, §4.1):
//!
//! ```text
//! Q_t = (1 − β_t) I + β_t 1 πᵀ,            t ∈ 1..=T
//! Q̄_t = Q_1 ⋯ Q_t = ᾱ_t I + (1 − ᾱ_t) 1 πᵀ,  ᾱ_t = Π_{s ≤ t} (1 − β_s),  ᾱ_0 = 1.
//! ```
//!
//! The closed form holds because `1πᵀ` is idempotent and `(1πᵀ)·I = I·(1πᵀ)`, so products of
//! such matrices stay in the two-dimensional algebra spanned by `I` and `1πᵀ`, with the
//! coefficient of `I` multiplying. Every row, column and vector–matrix product is therefore
//! O(V).

use std::fmt;

use crate::error::{Error, Result};
use crate::kernel::{
    Channel, ForwardKernel, NoiseProcess, check_state_out, check_step, check_vec_out,
};
use crate::schedule::Schedule;
use crate::validate;

/// Validate a D3PM step schedule `β_1..β_T`: at least one step, every entry a finite
/// probability in `[0, 1]`.
pub(crate) fn validate_betas(arg: &'static str, betas: &[f64]) -> Result<()> {
    if betas.is_empty() {
        return Err(Error::invalid(
            arg,
            "the schedule needs at least one step (T ≥ 1)",
        ));
    }
    for (i, &b) in betas.iter().enumerate() {
        if !b.is_finite() {
            return Err(Error::NonFinite {
                arg,
                index: i,
                value: b,
            });
        }
        if !(0.0..=1.0).contains(&b) {
            return Err(Error::invalid(
                arg,
                format!(
                    "{arg}[{i}] = {b} (step {}) is not a probability in [0, 1]",
                    i + 1
                ),
            ));
        }
    }
    Ok(())
}

/// Cumulative keep probabilities `ᾱ_t = Π_{s ≤ t}(1 − β_s)` and their complements
/// `1 − ᾱ_t`, for `t ∈ 0..=T`.
///
/// Both come from the log-sum `L_t = Σ_{s ≤ t} log1p(−β_s)`: `ᾱ_t = exp(L_t)` and
/// `1 − ᾱ_t = −expm1(L_t)`, so the complement keeps full relative accuracy when `ᾱ_t` is
/// close to 1 (tiny `β`), and `β_s = 1` gives exactly `ᾱ = 0`, `1 − ᾱ = 1`.
pub(crate) fn cumulative_keep(betas: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut keep = Vec::with_capacity(betas.len() + 1);
    let mut flip = Vec::with_capacity(betas.len() + 1);
    keep.push(1.0);
    flip.push(0.0);
    let mut log_keep = 0.0_f64;
    for &b in betas {
        log_keep += (-b).ln_1p();
        keep.push(log_keep.exp());
        flip.push(-log_keep.exp_m1());
    }
    (keep, flip)
}

/// A mixture-to-π forward kernel: `Q_t = (1 − β_t) I + β_t 1πᵀ`,
/// `Q̄_t = ᾱ_t I + (1 − ᾱ_t) 1πᵀ` (module docs; Austin et al. 2021 §3.1).
///
/// This is the general form; [`Uniform`](super::uniform::Uniform) (`π = 1/V`),
/// [`Absorbing`](super::absorbing::Absorbing) (`π = e_mask`) and
/// [`Marginal`](super::marginal::Marginal) (`π` = data marginal) are named wrappers.
/// All [`ForwardKernel`] methods are O(V).
///
/// ```
/// use discrete_diffusion::kernel::ForwardKernel;
/// use discrete_diffusion::kernel::mixture::Mixture;
///
/// let k = Mixture::new(vec![0.5, 0.25, 0.25], &[0.1, 0.5]).unwrap();
/// // ᾱ_2 = 0.9 · 0.5 = 0.45: stay with 0.45, else draw from π.
/// let mut row = [0.0; 3];
/// k.cumulative_row(2, 1, &mut row).unwrap();
/// assert!((row[1] - (0.45 + 0.55 * 0.25)).abs() < 1e-15);
/// assert!((row[0] - 0.55 * 0.5).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture {
    pi: Vec<f64>,
    betas: Vec<f64>,
    keep: Vec<f64>,
    flip: Vec<f64>,
}

impl Mixture {
    /// A mixture kernel towards `pi` with step schedule `betas = [β_1, …, β_T]`.
    ///
    /// `pi` must be a probability vector over `V ≥ 2` states (sum within `1e-9` of 1; it is
    /// renormalised exactly); every `β_t ∈ [0, 1]`.
    pub fn new(pi: Vec<f64>, betas: &[f64]) -> Result<Self> {
        validate::vocab("pi", pi.len())?;
        validate::distribution("pi", &pi, validate::SIMPLEX_TOL)?;
        validate_betas("betas", betas)?;
        let sum: f64 = pi.iter().sum();
        let pi = pi.into_iter().map(|p| p / sum).collect();
        let (keep, flip) = cumulative_keep(betas);
        Ok(Mixture {
            pi,
            betas: betas.to_vec(),
            keep,
            flip,
        })
    }

    /// The target law `π`.
    pub fn pi(&self) -> &[f64] {
        &self.pi
    }

    /// The step schedule `β_1..β_T` (index `t − 1` holds `β_t`).
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// The cumulative keep probability `ᾱ_t = Π_{s ≤ t}(1 − β_s)`, `t ∈ 0..=T`.
    pub fn keep(&self, t: usize) -> Result<f64> {
        check_step(t, self.betas.len(), true)?;
        Ok(self.keep[t])
    }

    /// Matrix times column vector: `out = Q̄_t r`, i.e. `out[i] = Σ_j Q̄_t(i, j) r[j]
    /// = ᾱ_t r[i] + (1 − ᾱ_t) πᵀr`, in O(V), `t ∈ 0..=T`, for any finite non-negative `r`.
    ///
    /// This is the product the gradient of D3PM's `L_{t−1}` needs (it is not the
    /// [`ForwardKernel::cumulative_vecmat`] product `rᵀQ̄_t` unless `π` is uniform).
    pub fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), true)?;
        crate::kernel::check_named_vec_out("r", r, self.pi.len(), out)?;
        let (a, b) = (self.keep[t], self.flip[t]);
        let dot: f64 = self.pi.iter().zip(r).map(|(p, x)| p * x).sum();
        for (o, &x) in out.iter_mut().zip(r) {
            *o = a * x + b * dot;
        }
        Ok(())
    }

    /// `(stay, move)` coefficients of the one-step matrix: `(1 − β_t, β_t)`.
    fn step_coeffs(&self, t: usize) -> Result<(f64, f64)> {
        check_step(t, self.betas.len(), false)?;
        let b = self.betas[t - 1];
        Ok((1.0 - b, b))
    }

    /// `(stay, move)` coefficients of the cumulative matrix: `(ᾱ_t, 1 − ᾱ_t)`.
    fn cum_coeffs(&self, t: usize) -> Result<(f64, f64)> {
        check_step(t, self.betas.len(), true)?;
        Ok((self.keep[t], self.flip[t]))
    }

    /// `out = a e_x + b π`.
    fn row(&self, (a, b): (f64, f64), x: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.pi.len(), out)?;
        for (o, &p) in out.iter_mut().zip(&self.pi) {
            *o = b * p;
        }
        out[x as usize] += a;
        Ok(())
    }

    /// `out = a e_y + b π_y 1`.
    fn col(&self, (a, b): (f64, f64), y: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.pi.len(), out)?;
        out.fill(b * self.pi[y as usize]);
        out[y as usize] += a;
        Ok(())
    }

    /// `out = a p + b (Σp) π`.
    fn vecmat(&self, (a, b): (f64, f64), p: &[f64], out: &mut [f64]) -> Result<()> {
        check_vec_out(p, self.pi.len(), out)?;
        let mass: f64 = p.iter().sum();
        for ((o, &x), &q) in out.iter_mut().zip(p).zip(&self.pi) {
            *o = a * x + b * mass * q;
        }
        Ok(())
    }
}

impl ForwardKernel for Mixture {
    fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        Mixture::cumulative_matvec(self, t, r, out)
    }

    fn vocab_size(&self) -> usize {
        self.pi.len()
    }

    fn num_steps(&self) -> usize {
        self.betas.len()
    }

    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> Result<()> {
        self.row(self.step_coeffs(t)?, x, out)
    }

    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        self.col(self.step_coeffs(t)?, y, out)
    }

    fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> Result<()> {
        self.row(self.cum_coeffs(t)?, x0, out)
    }

    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        self.col(self.cum_coeffs(t)?, y, out)
    }

    fn cumulative_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        self.vecmat(self.cum_coeffs(t)?, p, out)
    }

    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        self.vecmat(self.step_coeffs(t)?, p, out)
    }

    fn stationary(&self, out: &mut [f64]) -> Result<()> {
        validate::len("out", out.len(), self.pi.len())?;
        out.copy_from_slice(&self.pi);
        Ok(())
    }
}

/// Implement [`ForwardKernel`] for a newtype whose field `$field` is a [`Mixture`].
macro_rules! delegate_mixture_kernel {
    ($ty:ty, $field:ident) => {
        impl $crate::kernel::ForwardKernel for $ty {
            fn vocab_size(&self) -> usize {
                self.$field.vocab_size()
            }
            fn num_steps(&self) -> usize {
                self.$field.num_steps()
            }
            fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> $crate::Result<()> {
                self.$field.step_row(t, x, out)
            }
            fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> $crate::Result<()> {
                self.$field.step_col(t, y, out)
            }
            fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> $crate::Result<()> {
                self.$field.cumulative_row(t, x0, out)
            }
            fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> $crate::Result<()> {
                self.$field.cumulative_col(t, y, out)
            }
            fn cumulative_vecmat(
                &self,
                t: usize,
                p: &[f64],
                out: &mut [f64],
            ) -> $crate::Result<()> {
                self.$field.cumulative_vecmat(t, p, out)
            }
            fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> $crate::Result<()> {
                self.$field.step_vecmat(t, p, out)
            }
            fn stationary(&self, out: &mut [f64]) -> $crate::Result<()> {
                self.$field.stationary(out)
            }
            fn cumulative_matvec(
                &self,
                t: usize,
                r: &[f64],
                out: &mut [f64],
            ) -> $crate::Result<()> {
                $crate::kernel::ForwardKernel::cumulative_matvec(&self.$field, t, r, out)
            }
        }
    };
}
pub(crate) use delegate_mixture_kernel;

/// The continuous-time mixture channel `q(x_t = j | x_0 = i) = a δ_{ij} + (1 − a) π_j` for a
/// keep probability `a = α(t) ∈ [0, 1]` (MDLM/MD4 masking with `π = e_mask`, uniform
/// diffusion with `π = 1/V`; Sahoo et al. 2024, Shi et al. 2024, Schiff et al. 2024).
///
/// ```
/// use discrete_diffusion::kernel::Channel;
/// use discrete_diffusion::kernel::mixture::MixtureChannel;
///
/// let pi = [0.0, 0.0, 1.0]; // absorb into state 2
/// let ch = MixtureChannel::new(&pi, 0.75).unwrap();
/// let mut lik = [0.0; 3];
/// ch.likelihood(2, &mut lik).unwrap(); // q(x_t = mask | x_0 = v)
/// assert_eq!(lik, [0.25, 0.25, 1.0]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MixtureChannel<'a> {
    pi: &'a [f64],
    keep: f64,
}

impl<'a> MixtureChannel<'a> {
    /// The channel with target law `pi` (a distribution over `V ≥ 2` states, within `1e-9`)
    /// and keep probability `keep ∈ [0, 1]`.
    pub fn new(pi: &'a [f64], keep: f64) -> Result<Self> {
        validate::vocab("pi", pi.len())?;
        validate::distribution("pi", pi, validate::SIMPLEX_TOL)?;
        validate::probability("keep", keep)?;
        Ok(MixtureChannel { pi, keep })
    }

    /// The keep probability `a`.
    pub fn keep(&self) -> f64 {
        self.keep
    }
}

impl Channel for MixtureChannel<'_> {
    fn vocab_size(&self) -> usize {
        self.pi.len()
    }

    /// `out[v] = a δ_{vy} + (1 − a) π_y`.
    fn likelihood(&self, y: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.pi.len(), out)?;
        out.fill((1.0 - self.keep) * self.pi[y as usize]);
        out[y as usize] += self.keep;
        Ok(())
    }

    /// `out[j] = a δ_{x0 j} + (1 − a) π_j`.
    fn transition_row(&self, x0: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("x0", x0, self.pi.len(), out)?;
        for (o, &p) in out.iter_mut().zip(self.pi) {
            *o = (1.0 - self.keep) * p;
        }
        out[x0 as usize] += self.keep;
        Ok(())
    }
}

/// A keep-probability schedule `t ↦ α(t)` for [`MixtureProcess`].
pub type KeepFn = Box<dyn Fn(f64) -> Result<f64> + Send + Sync>;

/// A continuous-time mixture-to-π forward process: `q(x_t | x_0) = α(t) δ_{x_0} + (1 − α(t)) π`
/// for `t ∈ [0, 1]` (e.g. MDLM's masking process with `α(t) = 1 − t`, π = e_mask).
///
/// ```
/// use discrete_diffusion::kernel::{Channel, NoiseProcess};
/// use discrete_diffusion::kernel::mixture::MixtureProcess;
///
/// let p = MixtureProcess::new(vec![0.25; 4], Box::new(|t| Ok(1.0 - t))).unwrap();
/// let mut row = [0.0; 4];
/// p.channel(0.5).unwrap().transition_row(0, &mut row).unwrap();
/// assert_eq!(row, [0.625, 0.125, 0.125, 0.125]);
/// ```
pub struct MixtureProcess {
    pi: Vec<f64>,
    alpha: KeepFn,
}

impl MixtureProcess {
    /// The process towards `pi` (a distribution over `V ≥ 2` states, renormalised exactly)
    /// with keep schedule `alpha`. `alpha(t)` must return a probability for every
    /// `t ∈ [0, 1]`; this is checked each time a channel is formed.
    pub fn new(pi: Vec<f64>, alpha: KeepFn) -> Result<Self> {
        validate::vocab("pi", pi.len())?;
        validate::distribution("pi", &pi, validate::SIMPLEX_TOL)?;
        let sum: f64 = pi.iter().sum();
        let pi = pi.into_iter().map(|p| p / sum).collect();
        Ok(MixtureProcess { pi, alpha })
    }

    /// The process towards `pi` whose keep probability is a masking/noise schedule's
    /// `α(t)` ([`Schedule::alpha`]): `q(x_t | x_0) = α(t) δ_{x_0} + (1 − α(t)) π`.
    ///
    /// With `π = e_mask` this is the masked-diffusion forward process of MDLM/MD4 (Sahoo et
    /// al. 2024, eq. 2; Shi et al. 2024, eq. 1); with `π = 1/V` uniform diffusion (Schiff et
    /// al. 2024). The schedule is consulted each time a channel is formed; its errors (e.g.
    /// `t` outside `[0, 1]`) propagate, and a value outside `[0, 1]` is rejected as for
    /// [`MixtureProcess::new`]. `Box<dyn Schedule>` works too (it implements [`Schedule`]).
    ///
    /// Errors: as [`MixtureProcess::new`] (`pi` not a distribution over `V ≥ 2` states).
    ///
    /// ```
    /// use discrete_diffusion::kernel::{Channel, NoiseProcess};
    /// use discrete_diffusion::kernel::mixture::MixtureProcess;
    /// use discrete_diffusion::schedule::Linear;
    ///
    /// // MDLM masking with α(t) = 1 − t and the mask at index 0.
    /// let p = MixtureProcess::from_schedule(vec![1.0, 0.0, 0.0], Linear::new()).unwrap();
    /// let mut lik = [0.0; 3];
    /// p.channel(0.25).unwrap().likelihood(0, &mut lik).unwrap(); // q(x_t = mask | x_0 = ·)
    /// assert_eq!(lik, [1.0, 0.25, 0.25]);
    /// ```
    pub fn from_schedule<S: Schedule + 'static>(pi: Vec<f64>, schedule: S) -> Result<Self> {
        Self::new(pi, Box::new(move |t| schedule.alpha(t)))
    }

    /// The target law `π`.
    pub fn pi(&self) -> &[f64] {
        &self.pi
    }

    /// The keep probability `α(t)`, validated to lie in `[0, 1]`.
    pub fn keep(&self, t: f64) -> Result<f64> {
        validate::time("t", t)?;
        let a = (self.alpha)(t)?;
        if !(0.0..=1.0).contains(&a) {
            return Err(Error::invalid(
                "alpha",
                format!("α({t}) = {a} is not a probability in [0, 1]"),
            ));
        }
        Ok(a)
    }
}

impl fmt::Debug for MixtureProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MixtureProcess")
            .field("pi", &self.pi)
            .field("alpha", &"<fn>")
            .finish()
    }
}

impl NoiseProcess for MixtureProcess {
    fn vocab_size(&self) -> usize {
        self.pi.len()
    }

    fn channel(&self, t: f64) -> Result<Box<dyn Channel + '_>> {
        let keep = self.keep(t)?;
        Ok(Box::new(MixtureChannel { pi: &self.pi, keep }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_keep_is_accurate_for_tiny_betas() {
        let betas = vec![1e-12; 10];
        let (keep, flip) = cumulative_keep(&betas);
        // 1 − (1 − ε)^10 = 10ε − 45ε² + O(ε³).
        assert!((flip[10] - (1e-11 - 45e-24)).abs() < 1e-26);
        assert!((keep[10] - (1.0 - 1e-11)).abs() < 1e-16);
        let (keep, flip) = cumulative_keep(&[0.5, 1.0, 0.3]);
        assert_eq!((keep[2], flip[2], keep[3], flip[3]), (0.0, 1.0, 0.0, 1.0));
    }

    #[test]
    fn from_schedule_uses_alpha_as_keep_probability() {
        use crate::schedule::{LogLinear, Schedule};
        let sch = LogLinear::new(1e-3).unwrap();
        let p = MixtureProcess::from_schedule(vec![0.25; 4], sch).unwrap();
        let boxed: Box<dyn Schedule> = Box::new(sch);
        let q = MixtureProcess::from_schedule(vec![0.25; 4], boxed).unwrap();
        let mut row = [0.0; 4];
        for t in [0.0, 0.3, 0.7, 1.0] {
            let a = sch.alpha(t).unwrap();
            assert_eq!(p.keep(t).unwrap(), a);
            assert_eq!(q.keep(t).unwrap(), a);
            p.channel(t).unwrap().transition_row(2, &mut row).unwrap();
            for (j, &r) in row.iter().enumerate() {
                let want = if j == 2 { a } else { 0.0 } + (1.0 - a) * 0.25;
                assert!((r - want).abs() < 1e-15, "t={t} j={j}: {r} vs {want}");
            }
        }
        // The schedule's own validation of t propagates.
        assert!(p.channel(1.5).is_err());
        assert!(p.channel(f64::NAN).is_err());
        assert!(MixtureProcess::from_schedule(vec![0.5, 0.6], sch).is_err());
    }

    #[test]
    fn matvec_matches_rows() {
        let k = Mixture::new(vec![0.1, 0.6, 0.3], &[0.2, 0.7]).unwrap();
        let r = [0.3, 1.5, 0.0];
        let mut out = [0.0; 3];
        k.cumulative_matvec(2, &r, &mut out).unwrap();
        let mut row = [0.0; 3];
        for (i, o) in out.iter().enumerate() {
            k.cumulative_row(2, i as u32, &mut row).unwrap();
            let want: f64 = row.iter().zip(&r).map(|(a, b)| a * b).sum();
            assert!((o - want).abs() < 1e-15);
        }
    }
}
