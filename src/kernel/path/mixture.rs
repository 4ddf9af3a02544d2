//! The mixture probability path of discrete flow matching (Gat et al. 2024, §2.2;
//! facebookresearch/flow_matching `path/mixture.py:MixtureDiscreteProbPath`).
//!
//! Per token, with a convex scheduler `κ` ([`Kappa`], `κ(s) = α(1 − s)`) and a source law
//! `p_0` (a point mass on the mask, uniform, or any `π`):
//!
//! ```text
//! X_s = X_0 with probability 1 − κ(s), else X_1,     X_0 ~ p_0 ⟂ X_1,
//! p_s(x | x_0, x_1) = (1 − κ(s)) δ_{x_0}(x) + κ(s) δ_{x_1}(x),
//! p_s(x | x_1)      = (1 − κ(s)) p_0(x)     + κ(s) δ_{x_1}(x).
//! ```
//!
//! In the crate's time `t = 1 − s` this is the continuous-time mixture process towards
//! `π = p_0` with keep probability `α(t)` ([`MixturePath::noise_process`]), so exact
//! oracles ([`OracleDenoiser`](crate::model::oracle::OracleDenoiser)) give its exact
//! posterior `p_{1|s}`.
//!
//! # Velocities and the divergence-free term
//!
//! Conditionally on `x_1`, with `A = κ̇/(1 − κ)` ([`Kappa::forward_rate`]) and
//! `B = κ̇/κ` ([`Kappa::backward_rate`]), the forward velocity
//! `û(x | z, x_1) = A (δ_{x_1}(x) − δ_z(x))` and the backward velocity
//! `ǔ(x | z) = B (δ_z(x) − p_0(x))` both generate `p_s(· | x_1)` (forward in `s`: `û ≥ 0`
//! off the diagonal; backward: `ǔ ≤ 0` off the diagonal). Gat et al.'s corrector
//! `ū = (1 + c) û − c ǔ`, `c ≥ 0`, therefore generates the same path, and the added part
//! `c (û − ǔ) = c κ̇/(κ(1 − κ)) ((1 − κ) p_0 + κ δ_{x_1} − δ_z) = c κ̇/(κ(1 − κ)) (p_s(· | x_1) − δ_z)`
//! is divergence-free: it resamples from `p_s(· | x_1)` itself. This is flow_matching's
//! `div_free` term.
//!
//! **Singular points, handled explicitly** (flow_matching divides by zero at `κ = 0`):
//! * `κ(s) = 0`: `B = ∞`. The term `c(û − ǔ)` is an infinitely fast resampling from
//!   `p_s(· | x_1) = p_0`, the law `X_s` already has independently of `X_1`; dropping it
//!   leaves the joint law of `(X_s, X_1)` unchanged, so the velocity is taken as `û` alone.
//! * `κ(s) = 1` (or `κ̇(s) = ∞`): `A = ∞`; the path is at (or jumps surely to) the data:
//!   the step law is `δ_{x_1}` and the velocity row is not finite (an error).

use ndarray::{Array2, ArrayView1, ArrayView2};

use crate::backend::steps::{JumpRule, StepRng};
use crate::error::{Error, Result};
use crate::kernel::mixture::MixtureProcess;
use crate::rng::categorical::sample_masses;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::schedule::{Kappa, Schedule, SigmaConvention};
use crate::validate;

/// The source law `p_0` of a mixture path.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceLaw {
    /// A point mass on the mask token (masked / absorbing path; any id `< V`).
    Mask(u32),
    /// Uniform over the `V` states.
    Uniform,
    /// Any distribution `π` over the `V` states (renormalised exactly on construction).
    Distribution(Vec<f64>),
}

/// The mixture path `p_s(x | x_1) = (1 − κ(s)) p_0(x) + κ(s) δ_{x_1}(x)` over `V` states
/// (see the module docs).
///
/// ```
/// use discrete_diffusion::kernel::path::{MixturePath, SourceLaw};
/// use discrete_diffusion::schedule::Kappa;
/// let path = MixturePath::new(Kappa::cond_ot(), SourceLaw::Mask(0), 4)?;
/// let mut p = [0.0; 4];
/// path.probs_given_data(0.3, 3, &mut p)?;
/// assert!((p[0] - 0.7).abs() < 1e-15 && (p[3] - 0.3).abs() < 1e-15);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MixturePath<S> {
    kappa: Kappa<S>,
    source: SourceLaw,
    vocab: usize,
}

impl<S: Schedule> MixturePath<S> {
    /// The path with scheduler `kappa` (convex `σ` convention only: the VP schedulers of
    /// flow_matching define no mixture path) and source `source` over `vocab ≥ 2` states.
    ///
    /// # Errors
    /// `vocab < 2`; a VP `kappa`; a mask id `≥ vocab`; a `Distribution` of another length
    /// or not a distribution.
    pub fn new(kappa: Kappa<S>, source: SourceLaw, vocab: usize) -> Result<Self> {
        validate::vocab("vocab", vocab)?;
        if kappa.sigma_convention() != SigmaConvention::Convex {
            return Err(Error::invalid(
                "kappa",
                "a mixture path needs a convex scheduler (σ = 1 − κ), not a VP one",
            ));
        }
        let source = match source {
            SourceLaw::Mask(m) => {
                validate::token("source.mask", m, vocab)?;
                SourceLaw::Mask(m)
            }
            SourceLaw::Uniform => SourceLaw::Uniform,
            SourceLaw::Distribution(p) => {
                validate::len("source.distribution", p.len(), vocab)?;
                validate::distribution("source.distribution", &p, validate::SIMPLEX_TOL)?;
                let z: f64 = p.iter().sum();
                SourceLaw::Distribution(p.into_iter().map(|x| x / z).collect())
            }
        };
        Ok(MixturePath {
            kappa,
            source,
            vocab,
        })
    }

    /// The scheduler.
    pub fn kappa(&self) -> &Kappa<S> {
        &self.kappa
    }
    /// The source law.
    pub fn source(&self) -> &SourceLaw {
        &self.source
    }
    /// The number of states `V`.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }
    /// The mask id when the source is a point mass on it.
    pub fn mask_id(&self) -> Option<u32> {
        match self.source {
            SourceLaw::Mask(m) => Some(m),
            _ => None,
        }
    }

    /// `p_0(x)`; 0 for `x ≥ V`.
    pub fn source_prob(&self, x: u32) -> f64 {
        let x = x as usize;
        if x >= self.vocab {
            return 0.0;
        }
        match &self.source {
            SourceLaw::Mask(m) => f64::from(u8::from(*m as usize == x)),
            SourceLaw::Uniform => 1.0 / self.vocab as f64,
            SourceLaw::Distribution(p) => p[x],
        }
    }

    /// The vector `p_0` (length `V`).
    pub fn source_probs(&self) -> Vec<f64> {
        (0..self.vocab as u32)
            .map(|x| self.source_prob(x))
            .collect()
    }

    /// The crate-time noise process of this path: the mixture process towards `π = p_0`
    /// with keep probability `α(t) = κ(1 − t)`, for
    /// [`OracleDenoiser`](crate::model::oracle::OracleDenoiser) (its posterior at
    /// `t = 1 − s` is `p_{1|s}`).
    pub fn noise_process(&self) -> Result<MixtureProcess>
    where
        S: Clone + 'static,
    {
        MixtureProcess::from_schedule(self.source_probs(), self.kappa.schedule().clone())
    }

    /// `out = p_s(· | x_0, x_1) = (1 − κ(s)) δ_{x_0} + κ(s) δ_{x_1}` (flow_matching
    /// `MixtureDiscreteProbPath.sample`'s law). Returns `κ(s)`.
    ///
    /// # Errors
    /// `s ∉ [0, 1]`, tokens `≥ V`, `out` of length `≠ V`.
    pub fn probs_given_endpoints(&self, s: f64, x0: u32, x1: u32, out: &mut [f64]) -> Result<f64> {
        validate::token("x0", x0, self.vocab)?;
        validate::token("x1", x1, self.vocab)?;
        validate::len("out", out.len(), self.vocab)?;
        let k = self.kappa.kappa(s)?;
        out.iter_mut().for_each(|o| *o = 0.0);
        out[x0 as usize] += 1.0 - k;
        out[x1 as usize] += k;
        Ok(k)
    }

    /// `out = p_s(· | x_1) = (1 − κ(s)) p_0 + κ(s) δ_{x_1}`. Returns `κ(s)`.
    ///
    /// # Errors
    /// As [`MixturePath::probs_given_endpoints`].
    pub fn probs_given_data(&self, s: f64, x1: u32, out: &mut [f64]) -> Result<f64> {
        validate::token("x1", x1, self.vocab)?;
        validate::len("out", out.len(), self.vocab)?;
        let k = self.kappa.kappa(s)?;
        for (x, o) in out.iter_mut().enumerate() {
            *o = (1.0 - k) * self.source_prob(x as u32);
        }
        out[x1 as usize] += k;
        Ok(k)
    }

    /// Draw `X_0 ~ p_0` at every position: the first uniform of
    /// `CounterRng(for_stream(seed, streams[b]), FORWARD_NOISE, step, i)`.
    ///
    /// # Errors
    /// `B = 0` or `L = 0`, `streams` of length `≠ B`, `L > u32::MAX`.
    pub fn sample_source(&self, shape: (usize, usize), rng: &StepRng<'_>) -> Result<Array2<u32>> {
        let (b, l) = shape;
        check_batch(b, l, rng)?;
        let mut out = Array2::zeros((b, l));
        for ((bi, i), o) in out.indexed_iter_mut() {
            let u = position_rng(rng, bi, i).uniform();
            *o = self.draw_source(u);
        }
        Ok(out)
    }

    /// Draw `X_s` per position given both endpoints: `X_s = x_0` if `U < 1 − κ(s_b)`, else
    /// `x_1` (flow_matching's rule), `U` the first uniform of
    /// `CounterRng(for_stream(seed, streams[b]), FORWARD_NOISE, step, i)`; `s[b]` is the
    /// flow time of sequence `b`.
    ///
    /// # Errors
    /// Shapes (`x0`, `x1` `[B, L]`, `s` and `streams` of length `B`), tokens `≥ V`, times
    /// outside `[0, 1]`.
    pub fn sample_given_endpoints(
        &self,
        s: ArrayView1<'_, f64>,
        x0: ArrayView2<'_, u32>,
        x1: ArrayView2<'_, u32>,
        rng: &StepRng<'_>,
    ) -> Result<Array2<u32>> {
        let (b, l) = x1.dim();
        check_batch(b, l, rng)?;
        if x0.dim() != (b, l) {
            return Err(Error::shape(
                "x0",
                format!("[{b}, {l}]"),
                format!("{:?}", x0.shape()),
            ));
        }
        validate::len("s", s.len(), b)?;
        validate::tokens("x0", x0.iter(), self.vocab)?;
        validate::tokens("x1", x1.iter(), self.vocab)?;
        let kappas = s
            .iter()
            .map(|&si| self.kappa.kappa(si))
            .collect::<Result<Vec<_>>>()?;
        Ok(Array2::from_shape_fn((b, l), |(bi, i)| {
            let u = position_rng(rng, bi, i).uniform();
            if u < 1.0 - kappas[bi] {
                x0[[bi, i]]
            } else {
                x1[[bi, i]]
            }
        }))
    }

    /// Draw `X_s ~ p_s(· | x_1)` per position (training input): with the uniforms
    /// `U_1, U_2` of `CounterRng(for_stream(seed, streams[b]), FORWARD_NOISE, step, i)`,
    /// `X_s = X_0(U_2) ~ p_0` if `U_1 < 1 − κ(s_b)`, else `x_1`.
    ///
    /// # Errors
    /// As [`MixturePath::sample_given_endpoints`].
    pub fn sample(
        &self,
        s: ArrayView1<'_, f64>,
        x1: ArrayView2<'_, u32>,
        rng: &StepRng<'_>,
    ) -> Result<Array2<u32>> {
        let (b, l) = x1.dim();
        check_batch(b, l, rng)?;
        validate::len("s", s.len(), b)?;
        validate::tokens("x1", x1.iter(), self.vocab)?;
        let kappas = s
            .iter()
            .map(|&si| self.kappa.kappa(si))
            .collect::<Result<Vec<_>>>()?;
        Ok(Array2::from_shape_fn((b, l), |(bi, i)| {
            let mut r = position_rng(rng, bi, i);
            let (u1, u2) = (r.uniform(), r.uniform());
            if u1 < 1.0 - kappas[bi] {
                self.draw_source(u2)
            } else {
                x1[[bi, i]]
            }
        }))
    }

    /// The conditional velocity row `out = ū_s(· | z, x_1)` of the corrector
    /// `(1 + c) û − c ǔ` (module docs): off the diagonal
    /// `(1 + c) A δ_{x_1}(x) + c B p_0(x)`, and `out[z] = −Σ_{x ≠ z} out[x]`; `c = div_free`.
    /// With `c = 0` this is flow_matching's `u = κ̇/(1 − κ) δ_{x_1}` with `u[z] = 0`
    /// replaced by the generator diagonal. At `κ(s) = 0` the `c` term is dropped (exact,
    /// see the module docs). Returns the exit rate `λ = −out[z]`.
    ///
    /// # Errors
    /// Bad tokens or `out` length, `s ∉ [0, 1]`, `div_free` negative or not finite, and
    /// an invalid `s` at the singularity `A = ∞` (`κ(s) = 1` or `κ̇(s) = ∞`), where no
    /// finite generator row exists.
    pub fn conditional_velocity(
        &self,
        s: f64,
        z: u32,
        x1: u32,
        div_free: f64,
        out: &mut [f64],
    ) -> Result<f64> {
        validate::token("z", z, self.vocab)?;
        validate::token("x1", x1, self.vocab)?;
        validate::len("out", out.len(), self.vocab)?;
        check_div_free(div_free)?;
        let (a, b) = self.coefficients(s, div_free)?;
        if !a.is_finite() {
            return Err(Error::invalid(
                "s",
                format!(
                    "the mixture-path velocity is singular at s = {s} (κ̇/(1 − κ) = ∞: the path is at the data)"
                ),
            ));
        }
        let mut lambda = 0.0;
        for (x, o) in out.iter_mut().enumerate() {
            if x == z as usize {
                *o = 0.0;
                continue;
            }
            let mut r = b * self.source_prob(x as u32);
            if x == x1 as usize {
                r += a;
            }
            *o = r;
            lambda += r;
        }
        out[z as usize] = -lambda;
        Ok(lambda)
    }

    /// The law of `X_{s_next}` given `X_s = z` and `X_1 = x1` under one solver step with
    /// frozen conditional velocity (flow_matching `MixtureDiscreteEulerSolver`): jump with
    /// probability `p` (from `λ` and `rule`) to `ū(· | z, x1)/λ` off the diagonal, stay
    /// otherwise.
    ///
    /// * [`JumpRule::Exponential`]: `p = 1 − exp(−h λ)`; [`JumpRule::Euler`]:
    ///   `p = min(1, h λ)`; [`JumpRule::Integrated`] (only with `div_free = 0`): the path's
    ///   own transition `p = (κ(s_next) − κ(s))/(1 − κ(s))` towards `x1`, which makes the
    ///   step exact in law;
    /// * at the singular point `A = ∞` (`κ(s) = 1` or `κ̇(s) = ∞`) the law is `δ_{x1}`.
    ///
    /// # Errors
    /// As [`MixturePath::conditional_velocity`], plus `0 ≤ s < s_next ≤ 1` and
    /// `Integrated` with `div_free > 0`.
    #[allow(clippy::too_many_arguments)]
    pub fn step_law_given_data(
        &self,
        s: f64,
        s_next: f64,
        z: u32,
        x1: u32,
        div_free: f64,
        rule: JumpRule,
        out: &mut [f64],
    ) -> Result<()> {
        validate::token("z", z, self.vocab)?;
        validate::token("x1", x1, self.vocab)?;
        validate::len("out", out.len(), self.vocab)?;
        check_div_free(div_free)?;
        check_interval(s, s_next)?;
        if rule == JumpRule::Integrated && div_free > 0.0 {
            return Err(Error::invalid(
                "rule",
                "JumpRule::Integrated is the path's own transition and takes no divergence-free term",
            ));
        }
        let (a, b) = self.coefficients(s, div_free)?;
        out.iter_mut().for_each(|o| *o = 0.0);
        if !a.is_finite() {
            out[x1 as usize] = 1.0;
            return Ok(());
        }
        // Integrated: the path's own transition, towards x1 only (c = 0), whatever λ is
        // (λ may vanish where κ̇ does while κ(s_next) > κ(s)).
        let a = if rule == JumpRule::Integrated { 1.0 } else { a };
        let to_x1 = if x1 != z { a } else { 0.0 };
        let off_source = 1.0 - self.source_prob(z);
        let lambda = to_x1 + b * off_source;
        let h = s_next - s;
        let p = match rule {
            JumpRule::Exponential => -(-h * lambda).exp_m1(),
            JumpRule::Euler => (h * lambda).min(1.0),
            JumpRule::Integrated => {
                let k = self.kappa.kappa(s)?;
                if x1 == z {
                    0.0
                } else {
                    ((self.kappa.kappa(s_next)? - k) / (1.0 - k)).clamp(0.0, 1.0)
                }
            }
        };
        out[z as usize] = 1.0 - p;
        if lambda > 0.0 && p > 0.0 {
            for (x, o) in out.iter_mut().enumerate() {
                if x != z as usize {
                    let mut r = b * self.source_prob(x as u32);
                    if x == x1 as usize {
                        r += a;
                    }
                    *o += p * r / lambda;
                }
            }
        } else {
            out[z as usize] = 1.0;
        }
        Ok(())
    }

    /// The per-token law of one solver step from `X_s = z`: `X_1 ~ p1` is drawn first
    /// (the model's posterior `p_{1|s}(· | z)`), then [`MixturePath::step_law_given_data`]:
    /// `out = Σ_{x_1} p1(x_1) law(· | z, x_1)` (the `probs` of the `euler_step_*`
    /// conformance cases). On the solver's final step the law is `p1` itself.
    ///
    /// # Errors
    /// As [`MixturePath::step_law_given_data`], and `p1` not a distribution over `V`.
    #[allow(clippy::too_many_arguments)]
    pub fn step_law(
        &self,
        s: f64,
        s_next: f64,
        z: u32,
        p1: &[f64],
        div_free: f64,
        rule: JumpRule,
        out: &mut [f64],
    ) -> Result<()> {
        validate::len("p1", p1.len(), self.vocab)?;
        validate::distribution("p1", p1, validate::SIMPLEX_TOL)?;
        validate::len("out", out.len(), self.vocab)?;
        let mut given = vec![0.0; self.vocab];
        out.iter_mut().for_each(|o| *o = 0.0);
        for (x1, &w) in p1.iter().enumerate() {
            if w == 0.0 {
                continue;
            }
            self.step_law_given_data(s, s_next, z, x1 as u32, div_free, rule, &mut given)?;
            out.iter_mut().zip(&given).for_each(|(o, g)| *o += w * g);
        }
        Ok(())
    }

    /// `(A', B') = ((1 + c) κ̇/(1 − κ), c κ̇/κ)` with the `c` term dropped at `κ = 0`.
    pub(crate) fn coefficients(&self, s: f64, div_free: f64) -> Result<(f64, f64)> {
        let a = self.kappa.forward_rate(s)?;
        if div_free == 0.0 || self.kappa.kappa(s)? == 0.0 {
            return Ok((a, 0.0));
        }
        let b = self.kappa.backward_rate(s)?;
        Ok(((1.0 + div_free) * a, div_free * b))
    }

    /// `X_0 ~ p_0` by inverse CDF at `u ∈ [0, 1)`.
    pub(crate) fn draw_source(&self, u: f64) -> u32 {
        match &self.source {
            SourceLaw::Mask(m) => *m,
            SourceLaw::Uniform => ((u * self.vocab as f64) as usize).min(self.vocab - 1) as u32,
            SourceLaw::Distribution(p) => sample_masses(p, u).map(|d| d.token).unwrap_or(0),
        }
    }

    /// `X ~ p_0(· | X ≠ z)` at `u ∈ [0, 1)`; `None` when `p_0` has no mass off `z`.
    pub(crate) fn draw_source_excluding(&self, z: u32, u: f64) -> Option<u32> {
        match &self.source {
            SourceLaw::Mask(m) => (*m != z).then_some(*m),
            SourceLaw::Uniform => {
                let k = ((u * (self.vocab - 1) as f64) as u32).min(self.vocab as u32 - 2);
                Some(if k >= z { k + 1 } else { k })
            }
            SourceLaw::Distribution(p) => {
                let mut m = p.clone();
                m[z as usize] = 0.0;
                sample_masses(&m, u).ok().map(|d| d.token)
            }
        }
    }
}

pub(crate) fn check_div_free(c: f64) -> Result<()> {
    if !(c.is_finite() && c >= 0.0) {
        return Err(Error::invalid(
            "div_free",
            format!("{c} must be finite and ≥ 0"),
        ));
    }
    Ok(())
}

pub(crate) fn check_interval(s: f64, s_next: f64) -> Result<()> {
    validate::time("s", s)?;
    validate::time("s_next", s_next)?;
    if s_next <= s {
        return Err(Error::invalid(
            "s_next",
            format!("the next flow time {s_next} must exceed the current one {s}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_batch(b: usize, l: usize, rng: &StepRng<'_>) -> Result<()> {
    if b == 0 || l == 0 {
        return Err(Error::shape("x1", "[B ≥ 1, L ≥ 1]", format!("[{b}, {l}]")));
    }
    if l > u32::MAX as usize {
        return Err(Error::invalid(
            "x1",
            format!("sequence length {l} exceeds u32 positions"),
        ));
    }
    validate::len("rng.streams", rng.streams.len(), b)
}

fn position_rng(rng: &StepRng<'_>, b: usize, i: usize) -> CounterRng {
    let key = RngKey::for_stream(rng.seed, rng.streams[b]);
    CounterRng::new(key, Purpose::FORWARD_NOISE, rng.step, i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn velocity_rows_are_generators_and_div_free_drops_at_zero() {
        let path = MixturePath::new(
            Kappa::polynomial(2.0).unwrap(),
            SourceLaw::Distribution(vec![0.1, 0.2, 0.3, 0.4]),
            4,
        )
        .unwrap();
        let mut u = [0.0; 4];
        let l = path.conditional_velocity(0.5, 1, 3, 0.7, &mut u).unwrap();
        assert!((u.iter().sum::<f64>()).abs() < 1e-12);
        assert!((l + u[1]).abs() < 1e-15);
        assert!(u.iter().enumerate().all(|(x, &r)| x == 1 || r >= 0.0));
        // κ(0) = 0: the div-free term is dropped, only the forward part remains.
        let l0 = path.conditional_velocity(0.0, 1, 3, 0.7, &mut u).unwrap();
        assert_eq!(l0, 0.0); // κ̇(0) = 0 for n = 2
        assert!(path.conditional_velocity(1.0, 1, 3, 0.0, &mut u).is_err());
    }

    #[test]
    fn source_excluding_draws() {
        let p = MixturePath::new(Kappa::cond_ot(), SourceLaw::Uniform, 3).unwrap();
        assert_eq!(p.draw_source_excluding(1, 0.0), Some(0));
        assert_eq!(p.draw_source_excluding(1, 0.99), Some(2));
        let m = MixturePath::new(Kappa::cond_ot(), SourceLaw::Mask(2), 3).unwrap();
        assert_eq!(m.draw_source_excluding(2, 0.5), None);
        assert_eq!(m.draw_source_excluding(0, 0.5), Some(2));
    }
}
