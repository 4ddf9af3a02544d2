//! Metric-induced probability paths and their kinetic-optimal velocity (Shaul et al. 2024,
//! "Flow Matching with General Discrete Paths: A Kinetic-Optimal Perspective", §4–5; the
//! paths FUDOKI uses on embedding distances).
//!
//! For a user metric `d(x, y) ≥ 0` on `V` states (`d(x, x) = 0`, `d(x, y) > 0` for
//! `x ≠ y`, e.g. an embedding distance) and a schedule `β(s)` increasing from `β(0) = 0` to
//! `β(1) = ∞`,
//!
//! ```text
//! p_s(x | x_1) = exp(−β(s) d(x, x_1)) / Σ_y exp(−β(s) d(y, x_1)),
//! ```
//!
//! uniform at `s = 0` and `δ_{x_1}` at `s = 1`. The kinetic-optimal velocity that generates
//! it is, for `x ≠ z`,
//!
//! ```text
//! u_s(x | z, x_1) = p_s(x | x_1) β̇(s) [d(z, x_1) − d(x, x_1)]_+ ,
//! ```
//!
//! probability only flows towards states closer to `x_1`. It generates the path: with
//! `d_x = d(x, x_1)`, `Σ_z p(z)(u(x|z) − u(z|x)) = β̇ p(x) Σ_z p(z)(d_z − d_x)
//! = β̇ p(x)(E_p[d] − d_x) = ∂_s p_s(x | x_1)`. Rows cost `O(V)`, marginal velocities
//! `O(V²)`: the path is for small and medium vocabularies.
//!
//! The schedule is `β(s) = c (s/(1 − s))^a`, `c, a > 0` (Shaul et al. 2024, §6).
//!
//! # Backward velocity and the kinetic corrector
//!
//! The velocity `ǔ_s(x | z, x_1) = −β̇(s) p_s(x | x_1) [d(x, x_1) − d(z, x_1)]_+` (`x ≠ z`),
//! non-positive off the diagonal, generates the same path **backwards** in `s`: `−ǔ` sends
//! mass towards states farther from `x_1` and
//! `Σ_z p(z)(ǔ(x|z) − ǔ(z|x)) = −β̇ p(x) Σ_z p(z)([d_x − d_z]_+ − [d_z − d_x]_+)
//! = β̇ p(x)(E_p[d] − d_x)`, the same `∂_s p_s` as `û`. The corrector of Gat et al. 2024
//! built from this pair, `ū = (1 + c) û − c ǔ` (`c ≥ 0`), is therefore a valid forward
//! velocity (non-negative off the diagonal) generating the same path, and its added part
//!
//! ```text
//! c (û − ǔ)(x | z) = c β̇(s) p_s(x | x_1) |d(x, x_1) − d(z, x_1)|,     x ≠ z,
//! ```
//!
//! is divergence-free: it is the probability flux `j(x, z) = c β̇ p_s(x) p_s(z) |d_x − d_z|`
//! divided by `p_s(z)`, and `j` is symmetric, so
//! `Σ_z p_s(z)(D(x|z) − D(z|x)) = Σ_z (j(x, z) − j(z, x)) = 0` (Shaul et al. 2024: any
//! symmetric non-negative flux gives a divergence-free velocity). It is a reversible
//! (detailed-balance) move under `p_s(· | x_1)` that favours far jumps, on the path's own
//! time scale `β̇`. The metric solver takes it with a [`CorrectorSchedule`]
//! (`c = β_{s}` may depend on time).
//!
//! [`CorrectorSchedule`]: crate::sample::flow::CorrectorSchedule

use ndarray::{Array2, ArrayView1, ArrayView2};

use crate::backend::steps::{JumpRule, StepRng};
use crate::error::{Error, Result};
use crate::kernel::path::mixture::{check_batch, check_div_free, check_interval};
use crate::kernel::{Channel, NoiseProcess};
use crate::rng::categorical::sample_masses;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::validate;

/// `β(s) = c (s/(1 − s))^a`, `c > 0`, `a > 0`: `β(0) = 0`, `β(1) = ∞`,
/// `β̇(s) = c a s^{a−1} / (1 − s)^{a+1}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricBeta {
    c: f64,
    a: f64,
}

impl MetricBeta {
    /// `c > 0`, `a > 0`, finite.
    pub fn new(c: f64, a: f64) -> Result<Self> {
        for (name, x) in [("c", c), ("a", a)] {
            if !(x.is_finite() && x > 0.0) {
                return Err(Error::invalid(name, format!("{x} must be finite and > 0")));
            }
        }
        Ok(MetricBeta { c, a })
    }
    /// `β(s)`; `+∞` at `s = 1`.
    pub fn beta(&self, s: f64) -> Result<f64> {
        validate::time("s", s)?;
        Ok(if s == 1.0 {
            f64::INFINITY
        } else {
            self.c * (s / (1.0 - s)).powf(self.a)
        })
    }
    /// `β̇(s)`; `+∞` at `s = 1`, and at `s = 0` when `a < 1`.
    pub fn beta_derivative(&self, s: f64) -> Result<f64> {
        validate::time("s", s)?;
        if s == 1.0 {
            return Ok(f64::INFINITY);
        }
        if s == 0.0 {
            return Ok(if self.a > 1.0 {
                0.0
            } else if self.a == 1.0 {
                self.c
            } else {
                f64::INFINITY
            });
        }
        Ok(self.c * self.a * s.powf(self.a - 1.0) / (1.0 - s).powf(self.a + 1.0))
    }
}

/// The metric-induced path `p_s(x | x_1) ∝ exp(−β(s) d(x, x_1))` and its kinetic-optimal
/// velocity (module docs). Its source (`s = 0`) is uniform.
///
/// ```
/// use discrete_diffusion::kernel::path::{MetricBeta, MetricPath};
/// use ndarray::array;
/// let d = array![[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]];
/// let path = MetricPath::new(d, MetricBeta::new(1.0, 1.0)?)?;
/// let mut u = [0.0; 3];
/// path.conditional_velocity(0.5, 0, 2, &mut u)?; // from 0 towards x_1 = 2
/// assert!(u[1] > 0.0 && u[2] > 0.0 && (u.iter().sum::<f64>()).abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MetricPath {
    dist: Array2<f64>,
    beta: MetricBeta,
}

impl MetricPath {
    /// The path for the distance matrix `distances[[x, y]] = d(x, y)` (`V × V`, `V ≥ 2`):
    /// finite, `d(x, x) = 0`, `d(x, y) > 0` for `x ≠ y` (so that `p_1 = δ_{x_1}`).
    /// Symmetry and the triangle inequality are not required.
    ///
    /// # Errors
    /// Non-square or `V < 2`; a non-finite, negative or zero off-diagonal entry; a non-zero
    /// diagonal entry.
    pub fn new(distances: Array2<f64>, beta: MetricBeta) -> Result<Self> {
        let (v, w) = distances.dim();
        if v != w {
            return Err(Error::shape("distances", "[V, V]", format!("[{v}, {w}]")));
        }
        validate::vocab("distances", v)?;
        for ((x, y), &d) in distances.indexed_iter() {
            if !d.is_finite() {
                return Err(Error::NonFinite {
                    arg: "distances",
                    index: x * v + y,
                    value: d,
                });
            }
            if x == y && d != 0.0 {
                return Err(Error::invalid(
                    "distances",
                    format!("d({x}, {x}) = {d} must be 0"),
                ));
            }
            if x != y && d <= 0.0 {
                return Err(Error::invalid(
                    "distances",
                    format!("d({x}, {y}) = {d} must be > 0 for distinct states"),
                ));
            }
        }
        Ok(MetricPath {
            dist: distances,
            beta,
        })
    }

    /// The path of Euclidean distances between the rows of `embeddings` (`[V, D]`):
    /// `d(x, y) = ‖e_x − e_y‖₂`. Errors as [`MetricPath::new`] (e.g. two equal rows).
    pub fn from_embeddings(embeddings: ArrayView2<'_, f64>, beta: MetricBeta) -> Result<Self> {
        validate::all_finite("embeddings", embeddings.iter())?;
        let v = embeddings.nrows();
        let d = Array2::from_shape_fn((v, v), |(x, y)| {
            let r = embeddings.row(x);
            let q = embeddings.row(y);
            r.iter()
                .zip(q.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt()
        });
        Self::new(d, beta)
    }

    /// `V`.
    pub fn vocab_size(&self) -> usize {
        self.dist.nrows()
    }
    /// The schedule `β`.
    pub fn beta(&self) -> &MetricBeta {
        &self.beta
    }
    /// The distance matrix.
    pub fn distances(&self) -> ArrayView2<'_, f64> {
        self.dist.view()
    }

    /// `out = p_s(· | x_1) = softmax(−β(s) d(·, x_1))` (uniform at `s = 0`, `δ_{x_1}` at
    /// `s = 1`).
    ///
    /// # Errors
    /// `s ∉ [0, 1]`, `x1 ≥ V`, `out` of length `≠ V`.
    pub fn probs_given_data(&self, s: f64, x1: u32, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        validate::token("x1", x1, v)?;
        validate::len("out", out.len(), v)?;
        let b = self.beta.beta(s)?;
        self.fill_probs(b, x1 as usize, out);
        Ok(())
    }

    fn fill_probs(&self, beta: f64, x1: usize, out: &mut [f64]) {
        if beta.is_infinite() {
            out.iter_mut().for_each(|o| *o = 0.0);
            out[x1] = 1.0;
            return;
        }
        // d(x1, x1) = 0 is the minimum: exponents are ≤ 0 and the x1 term is 1.
        let mut z = 0.0;
        for (x, o) in out.iter_mut().enumerate() {
            *o = (-beta * self.dist[[x, x1]]).exp();
            z += *o;
        }
        out.iter_mut().for_each(|o| *o /= z);
    }

    /// The kinetic-optimal conditional velocity row `out = u_s(· | z, x_1)`: off the
    /// diagonal `p_s(x | x_1) β̇(s) [d(z, x_1) − d(x, x_1)]_+`, `out[z] = −Σ_{x≠z} out[x]`.
    /// Returns the exit rate `λ = −out[z]`.
    ///
    /// # Errors
    /// Bad token / length / time, and an invalid `s` where `β̇(s) = ∞` (`s = 1`, or
    /// `s = 0` with `a < 1`).
    pub fn conditional_velocity(&self, s: f64, z: u32, x1: u32, out: &mut [f64]) -> Result<f64> {
        let db = self.checked_rate_row(s, z, x1, out)?;
        Ok(self.weight_row(db, z as usize, x1 as usize, Weights::Corrector(0.0), out))
    }

    /// The backward kinetic velocity row `out = ǔ_s(· | z, x_1)`: off the diagonal
    /// `−p_s(x | x_1) β̇(s) [d(x, x_1) − d(z, x_1)]_+` (≤ 0), `out[z] = −Σ_{x≠z} out[x]`
    /// (module docs). Returns `out[z]`.
    ///
    /// # Errors
    /// As [`MetricPath::conditional_velocity`].
    pub fn backward_velocity(&self, s: f64, z: u32, x1: u32, out: &mut [f64]) -> Result<f64> {
        let db = self.checked_rate_row(s, z, x1, out)?;
        let l = self.weight_row(db, z as usize, x1 as usize, Weights::Backward, out);
        out.iter_mut().for_each(|o| *o = -*o);
        Ok(l)
    }

    /// The divergence-free part `out = c (û − ǔ)(· | z, x_1)`: off the diagonal
    /// `c p_s(x | x_1) β̇(s) |d(x, x_1) − d(z, x_1)|`, `out[z] = −Σ_{x≠z} out[x]` (module
    /// docs): a generator row whose flux `p_s(z | x_1) out[x]` is symmetric in `(x, z)`, so
    /// that `Σ_z p_s(z | x_1) out_z[y] = 0` for every `y`. Returns the exit rate.
    ///
    /// # Errors
    /// As [`MetricPath::conditional_velocity`], and `c` negative or not finite.
    pub fn divergence_free_velocity(
        &self,
        s: f64,
        z: u32,
        x1: u32,
        c: f64,
        out: &mut [f64],
    ) -> Result<f64> {
        check_div_free(c)?;
        let db = self.checked_rate_row(s, z, x1, out)?;
        Ok(self.weight_row(db * c, z as usize, x1 as usize, Weights::Symmetric, out))
    }

    /// The corrector velocity row `out = ((1 + c) û − c ǔ)(· | z, x_1)`: off the diagonal
    /// `p_s(x | x_1) β̇(s) ((1 + c)[d_z − d_x]_+ + c [d_x − d_z]_+)` with `d_y = d(y, x_1)`,
    /// `out[z] = −Σ_{x≠z} out[x]`; it generates the same path as
    /// [`MetricPath::conditional_velocity`] (`c = 0`). Returns the exit rate.
    ///
    /// # Errors
    /// As [`MetricPath::divergence_free_velocity`].
    pub fn corrector_velocity(
        &self,
        s: f64,
        z: u32,
        x1: u32,
        c: f64,
        out: &mut [f64],
    ) -> Result<f64> {
        check_div_free(c)?;
        let db = self.checked_rate_row(s, z, x1, out)?;
        Ok(self.weight_row(db, z as usize, x1 as usize, Weights::Corrector(c), out))
    }

    /// Validate, fill `out = p_s(· | x_1)` and return a finite `β̇(s)`.
    fn checked_rate_row(&self, s: f64, z: u32, x1: u32, out: &mut [f64]) -> Result<f64> {
        let v = self.vocab_size();
        validate::token("z", z, v)?;
        validate::token("x1", x1, v)?;
        validate::len("out", out.len(), v)?;
        let db = self.beta.beta_derivative(s)?;
        if !db.is_finite() {
            return Err(Error::invalid(
                "s",
                format!("β̇({s}) = ∞: the metric-path velocity is singular there"),
            ));
        }
        self.fill_probs(self.beta.beta(s)?, x1 as usize, out);
        Ok(db)
    }

    /// `out ← β̇ p(x) w(d_z, d_x)` off the diagonal, `−λ` on it; returns `λ`. The weight `w`
    /// is `(1 + c)[d_z − d_x]_+ + c [d_x − d_z]_+` (corrector; `[d_z − d_x]_+` exactly for
    /// `c = 0`), `[d_x − d_z]_+` (backward, sign applied by the caller) or `|d_x − d_z|`.
    fn weight_row(&self, db: f64, z: usize, x1: usize, w: Weights, out: &mut [f64]) -> f64 {
        let dz = self.dist[[z, x1]];
        let mut lambda = 0.0;
        for (x, o) in out.iter_mut().enumerate() {
            if x == z {
                *o = 0.0;
                continue;
            }
            let dx = self.dist[[x, x1]];
            let weight = match w {
                Weights::Corrector(0.0) => (dz - dx).max(0.0),
                Weights::Corrector(c) => (1.0 + c) * (dz - dx).max(0.0) + c * (dx - dz).max(0.0),
                Weights::Backward => (dx - dz).max(0.0),
                Weights::Symmetric => (dx - dz).abs(),
            };
            *o *= db * weight;
            lambda += *o;
        }
        out[z] = -lambda;
        lambda
    }

    /// The marginal velocity `out = Σ_{x_1} p1(x_1) u_s(· | z, x_1)` for a posterior `p1`
    /// (`O(V²)`). Returns the exit rate.
    ///
    /// # Errors
    /// As [`MetricPath::conditional_velocity`], and `p1` not a distribution over `V`.
    pub fn marginal_velocity(&self, s: f64, z: u32, p1: &[f64], out: &mut [f64]) -> Result<f64> {
        let v = self.vocab_size();
        validate::len("p1", p1.len(), v)?;
        validate::distribution("p1", p1, validate::SIMPLEX_TOL)?;
        validate::len("out", out.len(), v)?;
        let mut row = vec![0.0; v];
        out.iter_mut().for_each(|o| *o = 0.0);
        for (x1, &w) in p1.iter().enumerate() {
            if w > 0.0 {
                self.conditional_velocity(s, z, x1 as u32, &mut row)?;
                out.iter_mut().zip(&row).for_each(|(o, r)| *o += w * r);
            }
        }
        Ok(-out[z as usize])
    }

    /// The law of one solver step from `X_s = z` given `X_1 = x1` with the conditional
    /// velocity frozen at `s`: jump with probability `1 − e^{−hλ}`
    /// ([`JumpRule::Exponential`]) or `min(1, hλ)` ([`JumpRule::Euler`]) to `u/λ`.
    /// Where `β̇(s) = ∞` (`s = 0`, `a < 1`) the limit is taken explicitly: jump surely to
    /// the law `∝ p_s(x | x_1)[d(z, x_1) − d(x, x_1)]_+` (stay if it is empty).
    /// [`MetricPath::corrector_step_law_given_data`] with `c = 0`.
    ///
    /// # Errors
    /// Bad token / length, `0 ≤ s < s_next ≤ 1` violated, [`JumpRule::Integrated`] (not
    /// defined for this path).
    pub fn step_law_given_data(
        &self,
        s: f64,
        s_next: f64,
        z: u32,
        x1: u32,
        rule: JumpRule,
        out: &mut [f64],
    ) -> Result<()> {
        self.corrector_step_law_given_data(s, s_next, z, x1, 0.0, rule, out)
    }

    /// The law of one solver step from `X_s = z` given `X_1 = x1` with the corrector
    /// velocity `(1 + c) û − c ǔ` ([`MetricPath::corrector_velocity`]) frozen at `s`: jump
    /// with probability `1 − e^{−hλ}` or `min(1, hλ)` to `ū/λ`. Where `β̇(s) = ∞` (`s = 0`,
    /// `a < 1`; every rate is proportional to `β̇`) the limit is taken explicitly: jump
    /// surely to the law `∝ p_s(x | x_1)((1 + c)[d_z − d_x]_+ + c[d_x − d_z]_+)` (stay if it
    /// is empty).
    ///
    /// # Errors
    /// As [`MetricPath::step_law_given_data`], and `c` negative or not finite.
    #[allow(clippy::too_many_arguments)]
    pub fn corrector_step_law_given_data(
        &self,
        s: f64,
        s_next: f64,
        z: u32,
        x1: u32,
        c: f64,
        rule: JumpRule,
        out: &mut [f64],
    ) -> Result<()> {
        let v = self.vocab_size();
        validate::token("z", z, v)?;
        validate::token("x1", x1, v)?;
        validate::len("out", out.len(), v)?;
        check_div_free(c)?;
        check_interval(s, s_next)?;
        if rule == JumpRule::Integrated {
            return Err(Error::invalid(
                "rule",
                "JumpRule::Integrated is defined for mixture paths only",
            ));
        }
        let db = self.beta.beta_derivative(s)?;
        self.fill_probs(self.beta.beta(s)?, x1 as usize, out);
        self.jump_law(db, s_next - s, z as usize, x1 as usize, c, rule, out);
        Ok(())
    }

    /// `out` holds `p_s(· | x_1)` on entry and the step law on exit (inputs validated).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn jump_law(
        &self,
        db: f64,
        h: f64,
        z: usize,
        x1: usize,
        c: f64,
        rule: JumpRule,
        out: &mut [f64],
    ) {
        let finite = db.is_finite();
        let lambda = self.weight_row(
            if finite { db } else { 1.0 },
            z,
            x1,
            Weights::Corrector(c),
            out,
        );
        let p = if !finite {
            1.0
        } else {
            match rule {
                JumpRule::Euler => (h * lambda).min(1.0),
                _ => -(-h * lambda).exp_m1(),
            }
        };
        if lambda > 0.0 && p > 0.0 {
            out.iter_mut().for_each(|o| *o *= p / lambda);
            out[z] = 1.0 - p;
        } else {
            out.iter_mut().for_each(|o| *o = 0.0);
            out[z] = 1.0;
        }
    }

    /// `out = Σ_{x_1} p1(x_1) law(· | z, x_1)` ([`MetricPath::step_law_given_data`]): the
    /// per-token law of one solver step that draws `X_1 ~ p1` first.
    ///
    /// # Errors
    /// As [`MetricPath::step_law_given_data`], and `p1` not a distribution over `V`.
    pub fn step_law(
        &self,
        s: f64,
        s_next: f64,
        z: u32,
        p1: &[f64],
        rule: JumpRule,
        out: &mut [f64],
    ) -> Result<()> {
        self.corrector_step_law(s, s_next, z, p1, 0.0, rule, out)
    }

    /// `out = Σ_{x_1} p1(x_1) law(· | z, x_1)` with the corrector
    /// ([`MetricPath::corrector_step_law_given_data`]).
    ///
    /// # Errors
    /// As [`MetricPath::corrector_step_law_given_data`], and `p1` not a distribution over
    /// `V`.
    #[allow(clippy::too_many_arguments)]
    pub fn corrector_step_law(
        &self,
        s: f64,
        s_next: f64,
        z: u32,
        p1: &[f64],
        c: f64,
        rule: JumpRule,
        out: &mut [f64],
    ) -> Result<()> {
        let v = self.vocab_size();
        validate::len("p1", p1.len(), v)?;
        validate::distribution("p1", p1, validate::SIMPLEX_TOL)?;
        validate::len("out", out.len(), v)?;
        let mut given = vec![0.0; v];
        out.iter_mut().for_each(|o| *o = 0.0);
        for (x1, &w) in p1.iter().enumerate() {
            if w > 0.0 {
                self.corrector_step_law_given_data(s, s_next, z, x1 as u32, c, rule, &mut given)?;
                out.iter_mut().zip(&given).for_each(|(o, g)| *o += w * g);
            }
        }
        Ok(())
    }

    /// Draw `X_s ~ p_s(· | x_1)` per position at the first uniform of
    /// `CounterRng(for_stream(seed, streams[b]), FORWARD_NOISE, step, i)` (inverse CDF),
    /// `s[b]` the flow time of sequence `b`. At `s = 0` this draws from the uniform source.
    ///
    /// # Errors
    /// Shapes (`x1 [B, L]`, `s` and `streams` of length `B`), tokens `≥ V`, times outside
    /// `[0, 1]`.
    pub fn sample(
        &self,
        s: ArrayView1<'_, f64>,
        x1: ArrayView2<'_, u32>,
        rng: &StepRng<'_>,
    ) -> Result<Array2<u32>> {
        let v = self.vocab_size();
        let (b, l) = x1.dim();
        check_batch(b, l, rng)?;
        validate::len("s", s.len(), b)?;
        validate::tokens("x1", x1.iter(), v)?;
        let betas = s
            .iter()
            .map(|&si| self.beta.beta(si))
            .collect::<Result<Vec<_>>>()?;
        let mut p = vec![0.0; v];
        let mut out = Array2::zeros((b, l));
        for ((bi, i), o) in out.indexed_iter_mut() {
            let x = x1[[bi, i]];
            self.fill_probs(betas[bi], x as usize, &mut p);
            let key = RngKey::for_stream(rng.seed, rng.streams[bi]);
            let u = CounterRng::new(key, Purpose::FORWARD_NOISE, rng.step, i as u32).uniform();
            *o = sample_masses(&p, u).map(|d| d.token).unwrap_or(x);
        }
        Ok(out)
    }
}

/// Off-diagonal weights of [`MetricPath::weight_row`].
#[derive(Clone, Copy, Debug)]
enum Weights {
    /// `(1 + c)[d_z − d_x]_+ + c[d_x − d_z]_+`.
    Corrector(f64),
    /// `[d_x − d_z]_+`.
    Backward,
    /// `|d_x − d_z|`.
    Symmetric,
}

/// The metric path at crate time `t = 1 − s` as a forward channel:
/// `q(x_t = y | x_0 = x_1) = p_s(y | x_1)` (so exact oracles give `p_{1|s}`).
#[derive(Clone, Debug)]
pub struct MetricChannel<'a> {
    path: &'a MetricPath,
    beta: f64,
}

impl Channel for MetricChannel<'_> {
    fn vocab_size(&self) -> usize {
        self.path.vocab_size()
    }
    /// `out[x_1] = p_s(y | x_1)` for every `x_1`.
    fn likelihood(&self, y: u32, out: &mut [f64]) -> Result<()> {
        let v = self.path.vocab_size();
        validate::token("y", y, v)?;
        validate::len("out", out.len(), v)?;
        let mut row = vec![0.0; v];
        for (x1, o) in out.iter_mut().enumerate() {
            self.path.fill_probs(self.beta, x1, &mut row);
            *o = row[y as usize];
        }
        Ok(())
    }
    /// `out = p_s(· | x_1 = x0)`.
    fn transition_row(&self, x0: u32, out: &mut [f64]) -> Result<()> {
        let v = self.path.vocab_size();
        validate::token("x0", x0, v)?;
        validate::len("out", out.len(), v)?;
        self.path.fill_probs(self.beta, x0 as usize, out);
        Ok(())
    }
}

impl NoiseProcess for MetricPath {
    fn vocab_size(&self) -> usize {
        self.dist.nrows()
    }
    /// The channel at crate time `t`, i.e. flow time `s = 1 − t`.
    fn channel(&self, t: f64) -> Result<Box<dyn Channel + '_>> {
        validate::time("t", t)?;
        Ok(Box::new(MetricChannel {
            path: self,
            beta: self.beta.beta(1.0 - t)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn endpoints_and_beta() {
        let d = array![[0.0, 1.0], [3.0, 0.0]];
        let p = MetricPath::new(d, MetricBeta::new(2.0, 1.0).unwrap()).unwrap();
        let mut q = [0.0; 2];
        p.probs_given_data(0.0, 1, &mut q).unwrap();
        assert_eq!(q, [0.5, 0.5]);
        p.probs_given_data(1.0, 1, &mut q).unwrap();
        assert_eq!(q, [0.0, 1.0]);
        assert_eq!(p.beta().beta_derivative(0.0).unwrap(), 2.0);
        assert!(MetricBeta::new(0.0, 1.0).is_err());
        assert!(MetricPath::new(array![[0.0, 0.0], [1.0, 0.0]], *p.beta()).is_err());
    }
}
