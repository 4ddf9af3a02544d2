//! Continuous-time Markov chain (CTMC) generators and their transition rows (survey §II-C/D).
//!
//! A continuous-time discrete diffusion (Campbell et al. 2022, "A Continuous Time Framework
//! for Discrete Denoising Models"; Lou et al. 2024, SEDD) corrupts every token independently
//! with a time-inhomogeneous rate matrix that is a scalar multiple of one base generator:
//!
//! ```text
//! Q_t = σ(t) · Q,        q_{t|0} = exp(σ̄(t) · Q),        σ̄(t) = ∫_0^t σ,
//! ```
//!
//! where `σ` and `σ̄` are the noise rate and total noise of a [`Schedule`]
//! (`σ̄ = −ln α`). Orientation is the crate's **row** convention: `Q[x, y] ≥ 0` is the rate
//! of `x → y` (`x ≠ y`), rows sum to 0 and `exp(sQ)[x0, x]` is `q(x_t = x | x_0 = x0)`
//! (SEDD/MDLM write the transpose, see `docs/conventions.md`).
//!
//! [`RateGenerator`] is the minimal interface the CTMC samplers and losses need: rows and
//! columns of `Q` and of `exp(sQ)`, and `pᵀ exp(sQ)`. [`MixtureGenerator`] is the closed-form
//! family `Q = 1πᵀ − I` that covers SEDD's *uniform* and *absorbing* graphs and the
//! marginal (DiGress) generator in `O(V)` per row.
//!
//! [`concrete_score_from_x0`] is the identity every reverse-rate and score conversion rests on:
//! for a factorised forward process, the ratio of the noisy marginals at a single-token change
//! is an expectation over the clean-token posterior,
//!
//! ```text
//! p_t(… y …) / p_t(… x …) = Σ_{x0} p(x0 | x_t) · q_t(y | x0) / q_t(x | x0),
//! ```
//!
//! and [`reverse_rate_row`] turns such ratios into the time-reversal's rates
//! `R̂_t(x, y) = Q_t(y, x) · p_t(y)/p_t(x)` (Campbell et al. 2022, Prop. 1; SEDD eq. 3).

pub mod dense;
pub mod ordinal;

use std::fmt::Debug;

use crate::error::{Error, Result};
use crate::kernel::{check_named_vec_out, check_state_out, check_vec_out};
use crate::schedule::Schedule;
use crate::validate;

/// Validate a total noise (matrix-exponential time) `s ∈ [0, ∞]`.
pub(crate) fn check_total_noise(s: f64) -> Result<f64> {
    if s.is_nan() || s < 0.0 {
        return Err(Error::invalid(
            "sigma_bar",
            format!("total noise must be in [0, ∞], got {s}"),
        ));
    }
    Ok(s)
}

/// A time-homogeneous CTMC base generator `Q` over `V` states (row convention: `Q[x, y]` is
/// the rate `x → y`, off-diagonal entries `≥ 0`, rows sum to 0) together with its matrix
/// exponential `exp(sQ)` for any total noise `s ≥ 0`.
///
/// Required: [`vocab_size`](RateGenerator::vocab_size), [`rate_row`](RateGenerator::rate_row)
/// and [`transition_row`](RateGenerator::transition_row). The column and vector products
/// have `O(V²)` defaults built on the rows; structured generators override them.
///
/// Every method validates its arguments (state `< V`, buffers of length `V`, `s ∈ [0, ∞]`)
/// and returns an [`Error`] naming the argument otherwise. `s = +∞` means the limit
/// `lim_{s→∞} exp(sQ)` where an implementation knows it (e.g. [`MixtureGenerator`]: every row
/// is `π`); implementations without a known limit return an error for it.
pub trait RateGenerator: Send + Sync + Debug {
    /// Number of states `V`.
    fn vocab_size(&self) -> usize;

    /// `out[y] = Q[x, y]`: the rates out of state `x` (the diagonal is `−Σ_{y≠x} Q[x, y]`).
    fn rate_row(&self, x: u32, out: &mut [f64]) -> Result<()>;

    /// `out[z] = Q[z, y]`: the rates into state `y`. Default: `V` rows, `O(V²)`.
    fn rate_col(&self, y: u32, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        check_state_out("y", y, v, out)?;
        let mut row = vec![0.0; v];
        for (z, o) in out.iter_mut().enumerate() {
            self.rate_row(z as u32, &mut row)?;
            *o = row[y as usize];
        }
        Ok(())
    }

    /// `out[y] = exp(sQ)[x, y] = q(x_t = y | x_0 = x)` at total noise `s`.
    fn transition_row(&self, x: u32, s: f64, out: &mut [f64]) -> Result<()>;

    /// `out[x0] = exp(sQ)[x0, y] = q(x_t = y | x_0 = x0)`: the likelihood of observing `y`.
    /// Default: `V` rows, `O(V²)`.
    fn transition_col(&self, y: u32, s: f64, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        check_state_out("y", y, v, out)?;
        check_total_noise(s)?;
        let mut row = vec![0.0; v];
        for (x0, o) in out.iter_mut().enumerate() {
            self.transition_row(x0 as u32, s, &mut row)?;
            *o = row[y as usize];
        }
        Ok(())
    }

    /// `out = pᵀ exp(sQ)`, i.e. `out[y] = Σ_x p[x] exp(sQ)[x, y]` (the law of `x_t` when
    /// `x_0 ~ p`; `p` need not be normalised, only finite and non-negative).
    /// Default: `O(V²)` over the rows with non-zero weight.
    fn transition_vecmat(&self, p: &[f64], s: f64, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        check_vec_out(p, v, out)?;
        check_total_noise(s)?;
        out.fill(0.0);
        let mut row = vec![0.0; v];
        for (x, &w) in p.iter().enumerate() {
            if w == 0.0 {
                continue;
            }
            self.transition_row(x as u32, s, &mut row)?;
            for (o, &q) in out.iter_mut().zip(&row) {
                *o += w * q;
            }
        }
        Ok(())
    }
}

impl<G: RateGenerator + ?Sized> RateGenerator for &G {
    fn vocab_size(&self) -> usize {
        (**self).vocab_size()
    }
    fn rate_row(&self, x: u32, out: &mut [f64]) -> Result<()> {
        (**self).rate_row(x, out)
    }
    fn rate_col(&self, y: u32, out: &mut [f64]) -> Result<()> {
        (**self).rate_col(y, out)
    }
    fn transition_row(&self, x: u32, s: f64, out: &mut [f64]) -> Result<()> {
        (**self).transition_row(x, s, out)
    }
    fn transition_col(&self, y: u32, s: f64, out: &mut [f64]) -> Result<()> {
        (**self).transition_col(y, s, out)
    }
    fn transition_vecmat(&self, p: &[f64], s: f64, out: &mut [f64]) -> Result<()> {
        (**self).transition_vecmat(p, s, out)
    }
}

/// The closed-form generator `Q = 1πᵀ − I` for a target law `π`: every state is "reset" at
/// rate 1 to a draw from `π`, so
///
/// ```text
/// Q[x, y] = π_y − δ_{xy},        exp(sQ) = e^{−s} I + (1 − e^{−s}) 1πᵀ.
/// ```
///
/// * [`uniform`](MixtureGenerator::uniform): `π = 1/V`, SEDD's `Uniform` graph
///   (`Q = 11ᵀ/V − I`; louaaron/Score-Entropy-Discrete-Diffusion `graph_lib.Uniform`).
/// * [`absorbing`](MixtureGenerator::absorbing): `π = e_mask`, SEDD's `Absorbing` graph
///   (every other state jumps to the mask at rate 1; `graph_lib.Absorbing`), any mask index.
/// * [`marginal`](MixtureGenerator::marginal): any `π`, e.g. the data marginal (DiGress).
///
/// With `s = σ̄(t)` the row `exp(sQ)[x0, ·] = α δ_{x0} + (1 − α) π`, `α = e^{−σ̄}`, is the
/// same law as [`MixtureProcess`](crate::kernel::mixture::MixtureProcess): one time
/// convention for discrete-time, continuous-time and flow-matching views. All operations
/// are `O(V)`; `s = +∞` gives `π` in every row.
///
/// ```
/// use discrete_diffusion::kernel::ctmc::{MixtureGenerator, RateGenerator};
/// let g = MixtureGenerator::absorbing(4, 3)?;
/// let mut row = [0.0; 4];
/// g.rate_row(1, &mut row)?;
/// assert_eq!(row, [0.0, -1.0, 0.0, 1.0]);
/// g.transition_row(1, 2f64.ln(), &mut row)?; // e^{-s} = 1/2
/// assert!((row[1] - 0.5).abs() < 1e-15 && (row[3] - 0.5).abs() < 1e-15);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MixtureGenerator {
    pi: Vec<f64>,
}

impl MixtureGenerator {
    /// `Q = 1πᵀ − I` for a distribution `π` over `V ≥ 2` states (sums to 1 within `1e-9`;
    /// renormalised exactly).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `V < 2`; [`Error::NotADistribution`] /
    /// [`Error::NonFinite`] if `pi` is not a distribution.
    pub fn marginal(pi: Vec<f64>) -> Result<Self> {
        validate::vocab("pi", pi.len())?;
        validate::distribution("pi", &pi, 1e-9)?;
        let sum: f64 = pi.iter().sum();
        let pi = pi.into_iter().map(|p| p / sum).collect();
        Ok(MixtureGenerator { pi })
    }

    /// SEDD's uniform graph over `v ≥ 2` states, `Q = 11ᵀ/V − I`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `v < 2`.
    pub fn uniform(v: usize) -> Result<Self> {
        validate::vocab("v", v)?;
        Ok(MixtureGenerator {
            pi: vec![1.0 / v as f64; v],
        })
    }

    /// SEDD's absorbing graph over `v ≥ 2` states with the mask at index `mask`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `v < 2`; [`Error::TokenOutOfRange`] if `mask ≥ v`.
    pub fn absorbing(v: usize, mask: u32) -> Result<Self> {
        validate::vocab("v", v)?;
        let m = validate::token("mask", mask, v)?;
        let mut pi = vec![0.0; v];
        pi[m] = 1.0;
        Ok(MixtureGenerator { pi })
    }

    /// The target law `π` (the stationary distribution of `Q`).
    pub fn pi(&self) -> &[f64] {
        &self.pi
    }

    /// The absorbing state, if `π` is a point mass.
    pub fn mask(&self) -> Option<u32> {
        let m = self.pi.iter().position(|&p| p == 1.0)?;
        Some(m as u32)
    }
}

/// `e^{−s}` with `e^{−∞} = 0`.
#[inline]
fn keep(s: f64) -> f64 {
    (-s).exp()
}

impl RateGenerator for MixtureGenerator {
    fn vocab_size(&self) -> usize {
        self.pi.len()
    }

    fn rate_row(&self, x: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.pi.len(), out)?;
        out.copy_from_slice(&self.pi);
        out[x as usize] -= 1.0;
        Ok(())
    }

    fn rate_col(&self, y: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.pi.len(), out)?;
        out.fill(self.pi[y as usize]);
        out[y as usize] -= 1.0;
        Ok(())
    }

    fn transition_row(&self, x: u32, s: f64, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.pi.len(), out)?;
        let a = keep(check_total_noise(s)?);
        let m = -(-s).exp_m1(); // 1 − e^{−s}, accurate for small s
        for (o, &p) in out.iter_mut().zip(&self.pi) {
            *o = m * p;
        }
        out[x as usize] += a;
        Ok(())
    }

    fn transition_col(&self, y: u32, s: f64, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.pi.len(), out)?;
        let a = keep(check_total_noise(s)?);
        let m = -(-s).exp_m1();
        out.fill(m * self.pi[y as usize]);
        out[y as usize] += a;
        Ok(())
    }

    fn transition_vecmat(&self, p: &[f64], s: f64, out: &mut [f64]) -> Result<()> {
        check_vec_out(p, self.pi.len(), out)?;
        let a = keep(check_total_noise(s)?);
        let m = -(-s).exp_m1();
        let total: f64 = p.iter().sum();
        for ((o, &w), &q) in out.iter_mut().zip(p).zip(&self.pi) {
            *o = a * w + m * total * q;
        }
        Ok(())
    }
}

/// A continuous-time forward process `Q_t = σ(t)·Q`, `q_{t|0} = exp(σ̄(t)·Q)`: a base
/// [`RateGenerator`] driven by a [`Schedule`]'s noise rate `σ(t)` and total noise
/// `σ̄(t) = −ln α(t)` (time `t ∈ [0, 1]`, `t = 0` data).
///
/// ```
/// use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator};
/// use discrete_diffusion::schedule::Linear;
/// let ctmc = Ctmc::new(MixtureGenerator::absorbing(3, 2)?, Linear::new());
/// let mut row = [0.0; 3];
/// ctmc.marginal_row(0, 0.25, &mut row)?; // α(0.25) = 0.75
/// assert!((row[0] - 0.75).abs() < 1e-15 && (row[2] - 0.25).abs() < 1e-15);
/// ctmc.rate_row(0, 0.25, &mut row)?; // σ(t) = −α'/α = 1/(1 − t)
/// assert!((row[2] - 4.0 / 3.0).abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Ctmc<G, S> {
    generator: G,
    schedule: S,
}

impl<G: RateGenerator, S: Schedule> Ctmc<G, S> {
    /// The process with base generator `generator` and noise schedule `schedule`.
    pub fn new(generator: G, schedule: S) -> Self {
        Ctmc {
            generator,
            schedule,
        }
    }

    /// The base generator `Q`.
    pub fn generator(&self) -> &G {
        &self.generator
    }

    /// The noise schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }

    /// Number of states `V`.
    pub fn vocab_size(&self) -> usize {
        self.generator.vocab_size()
    }

    /// `σ(t)`, the scalar multiplying `Q` at time `t` (may be `+∞` at a schedule's end).
    pub fn noise_rate(&self, t: f64) -> Result<f64> {
        self.schedule.noise_rate(t)
    }

    /// `σ̄(t) = ∫_0^t σ`, the matrix-exponential time of `q_{t|0}`.
    pub fn total_noise(&self, t: f64) -> Result<f64> {
        self.schedule.total_noise(t)
    }

    /// `out[y] = Q_t[x, y] = σ(t)·Q[x, y]`.
    ///
    /// # Errors
    /// As [`RateGenerator::rate_row`]; [`Error::Numerical`] if `σ(t)` is infinite (the rate
    /// does not exist at that time).
    pub fn rate_row(&self, x: u32, t: f64, out: &mut [f64]) -> Result<()> {
        let sigma = finite_rate(self.schedule.noise_rate(t)?, t)?;
        self.generator.rate_row(x, out)?;
        out.iter_mut().for_each(|o| *o *= sigma);
        Ok(())
    }

    /// `out[y] = q(x_t = y | x_0 = x0) = exp(σ̄(t)Q)[x0, y]`.
    pub fn marginal_row(&self, x0: u32, t: f64, out: &mut [f64]) -> Result<()> {
        let s = self.schedule.total_noise(t)?;
        self.generator.transition_row(x0, s, out)
    }

    /// `out[x0] = q(x_t = x | x_0 = x0)`: the likelihood of the observed noisy state `x`.
    pub fn marginal_col(&self, x: u32, t: f64, out: &mut [f64]) -> Result<()> {
        let s = self.schedule.total_noise(t)?;
        self.generator.transition_col(x, s, out)
    }

    /// `out = pᵀ exp(σ̄(t)Q)`: the law of `x_t` when `x_0 ~ p`.
    pub fn marginal_vecmat(&self, p: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        let s = self.schedule.total_noise(t)?;
        self.generator.transition_vecmat(p, s, out)
    }
}

fn finite_rate(sigma: f64, t: f64) -> Result<f64> {
    if sigma.is_finite() {
        Ok(sigma)
    } else {
        Err(Error::Numerical {
            what: "Ctmc::rate_row",
            reason: format!(
                "the noise rate σ(t) is {sigma} at t = {t}: the forward rate is not defined there"
            ),
        })
    }
}

/// The single-token **concrete score** (ratio of noisy marginals) from a clean-token
/// posterior, at total noise `s`:
///
/// ```text
/// out[y] = Σ_{x0} p(x0 | x_t) · q_s(y | x0) / q_s(x | x0),      q_s = exp(sQ),
/// ```
///
/// which equals `p_t(…y…)/p_t(…x…)` when `p_x0` is the true posterior of the token at a
/// position whose current state is `x` (Lou et al. 2024, SEDD §3; Ou et al. 2024, RADD
/// Thm. 1 for the absorbing case), for every `y` such that each `x0` able to produce `y`
/// can also produce `x` — in particular for every `y` with `Q[y, x] > 0` when `s > 0`,
/// which are the only entries a reverse rate uses. (Elsewhere the expectation misses the
/// mass of `x0` that cannot produce `x`: with absorbing noise and an unmasked `x`, the
/// ratio to another unmasked `y` comes out 0.) `out[x] = 1`. Terms with `q_s(x | x0) = 0` are dropped:
/// such `x0` cannot have produced `x`, so their true posterior mass is 0 (a model that
/// puts mass there is corrected rather than divided by zero). Cost: one column and one
/// [`RateGenerator::transition_vecmat`] (`O(V)` for [`MixtureGenerator`]).
///
/// `p_x0` is a distribution over `V` (sums to 1 within `1e-6`); `scratch` is a work buffer
/// of length `V` (no allocation per call).
///
/// # Errors
/// Shape, non-finite and distribution errors naming the argument;
/// [`Error::ZeroProbability`] if every `x0` with posterior mass has `q_s(x | x0) = 0`.
///
/// ```
/// use discrete_diffusion::kernel::ctmc::{MixtureGenerator, concrete_score_from_x0};
/// // absorbing, x = mask: ratio to an unmasked y is p(y)·α/(1 − α)  (RADD Thm. 1)
/// let g = MixtureGenerator::absorbing(3, 2)?;
/// let s = 0.5f64;
/// let (a, p) = ((-s).exp(), [0.25, 0.75, 0.0]);
/// let (mut out, mut scratch) = ([0.0; 3], [0.0; 3]);
/// concrete_score_from_x0(&g, s, 2, &p, &mut scratch, &mut out)?;
/// assert!((out[1] - 0.75 * a / (1.0 - a)).abs() < 1e-12 && out[2] == 1.0);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn concrete_score_from_x0<G: RateGenerator + ?Sized>(
    generator: &G,
    s: f64,
    x: u32,
    p_x0: &[f64],
    scratch: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    check_state_out("x", x, v, out)?;
    validate::len("p_x0", p_x0.len(), v)?;
    validate::len("scratch", scratch.len(), v)?;
    validate::distribution("p_x0", p_x0, 1e-6)?;
    generator.transition_col(x, s, scratch)?;
    let mut any = false;
    for (w, &p) in scratch.iter_mut().zip(p_x0) {
        *w = if *w > 0.0 && p > 0.0 {
            any = true;
            p / *w
        } else {
            0.0
        };
    }
    if !any {
        return Err(Error::ZeroProbability {
            what: format!(
                "the observed state x = {x}: every x0 with posterior mass has q(x | x0) = 0"
            ),
        });
    }
    // Renormalise the kept mass so that out[x] = 1 exactly (the dropped x0 had no true mass).
    generator.transition_vecmat(scratch, s, out)?;
    let at_x = out[x as usize];
    if !(at_x > 0.0 && at_x.is_finite()) {
        return Err(Error::Numerical {
            what: "concrete_score_from_x0",
            reason: format!("the normaliser is {at_x} at x = {x}"),
        });
    }
    out.iter_mut().for_each(|o| *o /= at_x);
    out[x as usize] = 1.0;
    Ok(())
}

/// The reverse-time rate row from single-token ratios (Campbell et al. 2022, Prop. 1;
/// SEDD eq. 3): for the forward rate `Q_t = σ·Q`,
///
/// ```text
/// out[y] = R̂_t(x, y) = σ · Q[y, x] · ratio[y]   (y ≠ x),     out[x] = −Σ_{y≠x} out[y],
/// ```
///
/// where `ratio[y] = p_t(…y…)/p_t(…x…)` (from [`concrete_score_from_x0`], an exact oracle or
/// a concrete-score network). `sigma ≥ 0` finite, `ratio` finite and non-negative (its
/// entry at `x` is ignored); `scratch` has length `V`.
///
/// # Errors
/// Shape and value errors naming the argument.
pub fn reverse_rate_row<G: RateGenerator + ?Sized>(
    generator: &G,
    sigma: f64,
    x: u32,
    ratio: &[f64],
    scratch: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    let v = generator.vocab_size();
    check_named_vec_out("ratio", ratio, v, out)?;
    check_state_out("x", x, v, out)?;
    validate::len("scratch", scratch.len(), v)?;
    let sigma = validate::finite("sigma", sigma)?;
    if sigma < 0.0 {
        return Err(Error::invalid("sigma", format!("must be ≥ 0, got {sigma}")));
    }
    generator.rate_col(x, scratch)?;
    let xi = x as usize;
    let mut total = 0.0;
    for (y, ((o, &q), &r)) in out.iter_mut().zip(scratch.iter()).zip(ratio).enumerate() {
        *o = if y == xi { 0.0 } else { sigma * q * r };
        total += *o;
    }
    out[xi] = -total;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::expm::expm;
    use ndarray::Array2;

    fn dense_q(g: &dyn RateGenerator) -> Array2<f64> {
        let v = g.vocab_size();
        let mut q = Array2::zeros((v, v));
        let mut row = vec![0.0; v];
        for x in 0..v {
            g.rate_row(x as u32, &mut row).unwrap();
            q.row_mut(x).assign(&ndarray::ArrayView1::from(&row));
        }
        q
    }

    /// A generator that only implements the required methods, to exercise the defaults.
    #[derive(Debug)]
    struct RowsOnly(MixtureGenerator);
    impl RateGenerator for RowsOnly {
        fn vocab_size(&self) -> usize {
            self.0.vocab_size()
        }
        fn rate_row(&self, x: u32, out: &mut [f64]) -> Result<()> {
            self.0.rate_row(x, out)
        }
        fn transition_row(&self, x: u32, s: f64, out: &mut [f64]) -> Result<()> {
            self.0.transition_row(x, s, out)
        }
    }

    #[test]
    fn closed_form_matches_pade_and_defaults() {
        let gens = [
            MixtureGenerator::uniform(5).unwrap(),
            MixtureGenerator::absorbing(5, 1).unwrap(),
            MixtureGenerator::marginal(vec![0.1, 0.2, 0.3, 0.15, 0.25]).unwrap(),
        ];
        for g in &gens {
            let q = dense_q(g);
            for x in 0..5 {
                assert!(q.row(x).sum().abs() < 1e-15);
            }
            for &s in &[1e-6, 0.3, 2.0, 7.5] {
                let e = expm((&q * s).view()).unwrap();
                let mut row = [0.0; 5];
                let mut col = [0.0; 5];
                let (mut a, mut b) = ([0.0; 5], [0.0; 5]);
                for x in 0..5u32 {
                    g.transition_row(x, s, &mut row).unwrap();
                    g.transition_col(x, s, &mut col).unwrap();
                    RowsOnly(g.clone()).transition_col(x, s, &mut a).unwrap();
                    for y in 0..5 {
                        assert!((row[y] - e[[x as usize, y]]).abs() < 1e-14);
                        assert!((col[y] - e[[y, x as usize]]).abs() < 1e-14);
                        assert!((a[y] - col[y]).abs() < 1e-15);
                    }
                    g.rate_col(x, &mut col).unwrap();
                    RowsOnly(g.clone()).rate_col(x, &mut a).unwrap();
                    assert_eq!(col, a);
                }
                let p = [0.3, 0.0, 0.5, 0.1, 0.1];
                g.transition_vecmat(&p, s, &mut a).unwrap();
                RowsOnly(g.clone())
                    .transition_vecmat(&p, s, &mut b)
                    .unwrap();
                for y in 0..5 {
                    assert!((a[y] - b[y]).abs() < 1e-15);
                }
            }
            // s = ∞: every row is π.
            let mut row = [0.0; 5];
            g.transition_row(2, f64::INFINITY, &mut row).unwrap();
            assert_eq!(&row[..], g.pi());
        }
    }

    #[test]
    fn score_matches_bayes_on_one_token() {
        // One token: x0 ~ p0, x ~ q_s(·|x0). The true ratio p_s(y)/p_s(x) must come out of the
        // true posterior p(x0 | x).
        let p0 = [0.5, 0.2, 0.3, 0.0];
        for g in [
            MixtureGenerator::uniform(4).unwrap(),
            MixtureGenerator::absorbing(4, 3).unwrap(),
            MixtureGenerator::marginal(vec![0.4, 0.3, 0.2, 0.1]).unwrap(),
        ] {
            let s = 0.8;
            let mut ps = [0.0; 4];
            g.transition_vecmat(&p0, s, &mut ps).unwrap();
            for x in 0..4u32 {
                if ps[x as usize] == 0.0 {
                    continue;
                }
                let mut col = [0.0; 4];
                g.transition_col(x, s, &mut col).unwrap();
                let post: Vec<f64> = (0..4).map(|i| p0[i] * col[i] / ps[x as usize]).collect();
                let (mut out, mut scratch) = ([0.0; 4], [0.0; 4]);
                concrete_score_from_x0(&g, s, x, &post, &mut scratch, &mut out).unwrap();
                let mut qx = [0.0; 4];
                g.rate_col(x, &mut qx).unwrap();
                for y in 0..4 {
                    if y != x as usize && qx[y] <= 0.0 {
                        continue; // the identity is only claimed where Q[y, x] > 0
                    }
                    let want = ps[y] / ps[x as usize];
                    assert!(
                        (out[y] - want).abs() < 1e-13 * want.max(1.0),
                        "{g:?} {x} {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn reverse_rates_satisfy_detailed_balance_in_flux() {
        // p_t(x) R̂(x,y) = p_t(y) Q_t(y,x): the reverse flux equals the forward flux.
        let g = MixtureGenerator::marginal(vec![0.4, 0.3, 0.2, 0.1]).unwrap();
        let sigma = 1.7;
        let ps = [0.1, 0.2, 0.3, 0.4];
        let q = dense_q(&g);
        for x in 0..4u32 {
            let ratio: Vec<f64> = (0..4).map(|y| ps[y] / ps[x as usize]).collect();
            let (mut out, mut scratch) = ([0.0; 4], [0.0; 4]);
            reverse_rate_row(&g, sigma, x, &ratio, &mut scratch, &mut out).unwrap();
            assert!(out.iter().sum::<f64>().abs() < 1e-15);
            for y in 0..4 {
                if y != x as usize {
                    let fwd = ps[y] * sigma * q[[y, x as usize]];
                    assert!((ps[x as usize] * out[y] - fwd).abs() < 1e-15);
                }
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let g = MixtureGenerator::uniform(3).unwrap();
        let mut out = [0.0; 3];
        assert!(g.transition_row(0, -1.0, &mut out).is_err());
        assert!(g.transition_row(0, f64::NAN, &mut out).is_err());
        assert!(g.transition_row(3, 1.0, &mut out).is_err());
        assert!(g.rate_row(0, &mut [0.0; 2]).is_err());
        assert!(MixtureGenerator::marginal(vec![0.5, 0.6]).is_err());
        assert!(MixtureGenerator::absorbing(3, 3).is_err());
        assert!(MixtureGenerator::uniform(1).is_err());
        let mut scratch = [0.0; 3];
        assert!(
            concrete_score_from_x0(&g, 1.0, 0, &[0.5, 0.5, 0.1], &mut scratch, &mut out).is_err()
        );
        let a = MixtureGenerator::absorbing(3, 2).unwrap();
        // x = 0 (unmasked) cannot come from x0 = 1 under absorbing noise.
        assert!(
            concrete_score_from_x0(&a, 1.0, 0, &[0.0, 1.0, 0.0], &mut scratch, &mut out).is_err()
        );
        assert!(reverse_rate_row(&g, -1.0, 0, &[1.0; 3], &mut scratch, &mut out).is_err());
        assert!(reverse_rate_row(&g, 1.0, 0, &[1.0, -1.0, 1.0], &mut scratch, &mut out).is_err());
    }
}
