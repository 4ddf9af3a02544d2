//! Dense CTMC generators: a validated `V×V` rate matrix with `exp(sQ)` by one symmetric
//! eigendecomposition (symmetric or reversible generators) or by Padé scaling-and-squaring
//! (any generator).
//!
//! * **Symmetric eigen** (`Q = Qᵀ`, e.g. birth–death, discretised-Gaussian or similarity
//!   generators): `Q = U Λ Uᵀ` once ([`symmetric_eigen`], f64); then
//!   `exp(sQ)[x, ·] = Σ_k U[x, k] e^{sλ_k} U[·, k]`, so a row, a column (`exp(sQ)` is
//!   symmetric) or `pᵀ exp(sQ)` costs `O(V²)` for any `s`, including `s = ∞` (the projection
//!   on the null space of `Q`). Memory `2V²` f64.
//! * **Reversible eigen** (detailed balance `π_x Q[x, y] = π_y Q[y, x]` with `π > 0`, e.g.
//!   tauLDR's Gaussian-target rate [`gaussian_target`](super::ordinal::gaussian_target)):
//!   with `D = diag(π)` the matrix `S = D^{1/2} Q D^{−1/2}`,
//!   `S[x, y] = √(π_x/π_y)·Q[x, y]`, is symmetric; one symmetric eigendecomposition
//!   `S = U Λ Uᵀ` gives
//!
//!   ```text
//!   exp(sQ) = D^{−1/2} U e^{sΛ} Uᵀ D^{1/2},   exp(sQ)[x, y] = √(π_y/π_x) Σ_k U[x,k] e^{sλ_k} U[y,k],
//!   ```
//!
//!   so rows, columns and `pᵀ exp(sQ)` again cost `O(V²)`, and `s = ∞` gives `1πᵀ`.
//!   Round-off in `U` is amplified by at most `κ_π = √(π_max/π_min)`: the route is only taken
//!   when `κ_π ≤` [`MAX_SYMMETRISATION_CONDITION`] (absolute entry error `≲ 1e-16·V·κ_π`).
//!   [`DenseGenerator::new`] detects reversibility itself ([`reversible_stationary`]:
//!   irreducible, symmetric support, and the law built along a spanning tree of ratios
//!   `π_y/π_x = Q[x, y]/Q[y, x]` satisfies detailed balance on every pair within `1e-9`);
//!   [`DenseGenerator::reversible`] takes a known `π`.
//! * **Padé** (any other `Q`): `exp(sQ)` by [`expm`] (`O(V³)`), cached for the last `s`
//!   only: repeated rows at the same `s` (a sampler step, a loss over a batch sharing `t`)
//!   cost `O(V)` each after one `O(V³)` evaluation; a new `s` evicts it. Memory `2V²` f64.
//!   `s = ∞` is an error (no limit is known for a general generator). The cache sits behind
//!   a mutex (one lock per call): threads that work at different `s` should each hold their
//!   own clone (a clone starts with an empty cache).
//!
//! All routes clamp the round-off negatives (`|·| ~ 1e-16`) of the exact non-negative entries
//! of `exp(sQ)` to 0.
//!
//! **Inverse transition** ([`DenseGenerator::inverse_transition_vecmat`], also as
//! [`InverseTransition`](crate::sample::ctmc::InverseTransition), SEDD's staggered score
//! `pᵀ exp(−δQ)`):
//! the eigen routes apply `e^{−δΛ}`, `O(V²)`; Padé evaluates `expm(−δQ)` (cached for the
//! last `δ`, separately from the forward cache). `exp(−δQ)` is ill-conditioned: the
//! eigenvalues `λ_k ≤ 0` of `Q` become growth factors `e^{δ|λ_k|}`, so round-off in `p`
//! (or in the eigenvectors) is amplified by up to `e^{δρ}`, `ρ = max_k |λ_k|` (Padé: the
//! Gershgorin bound `ρ ≤ 2 max_x |Q[x, x]|`). The result is returned only when
//! `e^{δρ} ≤` [`MAX_INVERSE_GROWTH`] (`δρ ≤ ln 1e8 ≈ 18.4`, absolute error
//! `≲ 1e-8·‖p‖_∞`); beyond it the call returns [`Error::Numerical`] instead of garbage.
//! Take smaller steps (or use [`tweedie_law_from_x0`](crate::sample::ctmc::tweedie_law_from_x0),
//! which needs no inverse) when that happens.

use std::sync::Mutex;

use ndarray::{Array1, Array2};

use super::{RateGenerator, check_total_noise};
use crate::error::{Error, Result};
use crate::kernel::generator::{ExpRoute, Generator};
use crate::kernel::{check_state_out, check_vec_out};
use crate::linalg::expm::expm;
use crate::linalg::symmetric_eigen;
use crate::validate;

/// The largest growth factor `e^{δρ}` that [`DenseGenerator::inverse_transition_vecmat`]
/// accepts on a [`DenseGenerator`] (module docs): `1e8`.
pub const MAX_INVERSE_GROWTH: f64 = 1e8;

/// The largest `κ_π = √(π_max/π_min)` for which the reversible eigen route is used (module
/// docs): `1e6`.
pub const MAX_SYMMETRISATION_CONDITION: f64 = 1e6;

/// Relative tolerance of the detailed-balance check.
const BALANCE_TOL: f64 = 1e-9;

type Cache = Mutex<Option<(f64, Array2<f64>)>>;

#[derive(Debug)]
enum Repr {
    Eigen {
        /// Eigenvalues of `Q` (of `S` on the reversible route), round-off positives and
        /// near-zeros snapped to exactly 0.
        lambda: Array1<f64>,
        /// Eigenvectors in columns.
        u: Array2<f64>,
        /// `√π` on the reversible route, `None` for a symmetric generator.
        sqrt_pi: Option<Vec<f64>>,
    },
    Pade {
        /// `(s, exp(sQ))` for the last `s` asked.
        cache: Cache,
        /// `(δ, exp(−δQ))` for the last `δ` asked.
        inverse: Cache,
    },
}

/// How a [`DenseGenerator`] evaluates `exp(sQ)` (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseRoute {
    /// One eigendecomposition of the symmetric `Q`.
    Symmetric,
    /// One eigendecomposition of `D^{1/2} Q D^{−1/2}`, `D = diag(π)`, for a reversible `Q`.
    Reversible,
    /// Padé scaling-and-squaring, cached for the last `s`.
    Pade,
}

/// The stationary law `π` of `Q` if `Q` is irreducible and **reversible**
/// (`π_x Q[x, y] = π_y Q[y, x]` for all pairs), `None` otherwise.
///
/// `O(V²)`: the support must be symmetric (`Q[x, y] > 0 ⇔ Q[y, x] > 0`); a breadth-first
/// spanning tree from state 0 fixes `ln π_y = ln π_x + ln Q[x, y] − ln Q[y, x]` (every
/// state must be reached); then every pair is checked,
/// `|π_x Q[x, y] − π_y Q[y, x]| ≤ 1e-9·max(π_x Q[x, y], π_y Q[y, x])` (Kolmogorov's
/// criterion in its detailed-balance form). `π` is normalised to sum to 1.
///
/// ```
/// use discrete_diffusion::kernel::ctmc::dense::reversible_stationary;
/// use discrete_diffusion::kernel::generator::Generator;
/// use ndarray::array;
/// // Birth–death chain 0 ⇄ 1 with rates 2 (0→1) and 1 (1→0): π = (1/3, 2/3).
/// let g = Generator::new(array![[-2.0, 2.0], [1.0, -1.0]])?;
/// let pi = reversible_stationary(&g).unwrap();
/// assert!((pi[0] - 1.0 / 3.0).abs() < 1e-15 && (pi[1] - 2.0 / 3.0).abs() < 1e-15);
/// // Absorbing: not irreducible.
/// assert!(reversible_stationary(&Generator::absorbing(3, 0)?).is_none());
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn reversible_stationary(generator: &Generator) -> Option<Vec<f64>> {
    let q = generator.matrix();
    let v = q.nrows();
    for x in 0..v {
        for y in 0..v {
            if x != y && (q[[x, y]] > 0.0) != (q[[y, x]] > 0.0) {
                return None;
            }
        }
    }
    let mut log_pi = vec![f64::NAN; v];
    log_pi[0] = 0.0;
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(x) = queue.pop_front() {
        for y in 0..v {
            if y != x && q[[x, y]] > 0.0 && log_pi[y].is_nan() {
                log_pi[y] = log_pi[x] + q[[x, y]].ln() - q[[y, x]].ln();
                queue.push_back(y);
            }
        }
    }
    if log_pi.iter().any(|l| l.is_nan()) {
        return None;
    }
    let m = log_pi.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let mut pi: Vec<f64> = log_pi.iter().map(|&l| (l - m).exp()).collect();
    let total: f64 = pi.iter().sum();
    pi.iter_mut().for_each(|p| *p /= total);
    if pi.iter().any(|&p| p.is_nan() || p <= 0.0) || !balanced(generator, &pi) {
        return None;
    }
    Some(pi)
}

/// Detailed balance on every pair within [`BALANCE_TOL`].
fn balanced(generator: &Generator, pi: &[f64]) -> bool {
    let q = generator.matrix();
    let v = q.nrows();
    for x in 0..v {
        for y in (x + 1)..v {
            let (a, b) = (pi[x] * q[[x, y]], pi[y] * q[[y, x]]);
            if (a - b).abs() > BALANCE_TOL * a.max(b) {
                return false;
            }
        }
    }
    true
}

/// `√(π_max/π_min)`.
fn symmetrisation_condition(pi: &[f64]) -> f64 {
    let (lo, hi) = pi
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(l, h), &p| (l.min(p), h.max(p)));
    (hi / lo).sqrt()
}

/// A dense [`RateGenerator`] over a validated [`Generator`] (row convention, rows sum to 0);
/// see the [module docs](self) for the evaluation routes and their cost.
///
/// ```
/// use discrete_diffusion::kernel::ctmc::{RateGenerator, dense::{DenseGenerator, DenseRoute}};
/// use discrete_diffusion::kernel::generator::Generator;
/// let g = DenseGenerator::new(Generator::uniform(3)?)?; // symmetric: eigen route
/// assert_eq!(g.route(), DenseRoute::Symmetric);
/// let mut row = [0.0; 3];
/// g.transition_row(0, 0.5, &mut row)?;
/// let a = (-0.5f64).exp();
/// assert!((row[0] - (a + (1.0 - a) / 3.0)).abs() < 1e-14);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Debug)]
pub struct DenseGenerator {
    generator: Generator,
    repr: Repr,
}

impl Clone for DenseGenerator {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Eigen { lambda, u, sqrt_pi } => Repr::Eigen {
                lambda: lambda.clone(),
                u: u.clone(),
                sqrt_pi: sqrt_pi.clone(),
            },
            Repr::Pade { .. } => Repr::Pade {
                cache: Mutex::new(None),
                inverse: Mutex::new(None),
            },
        };
        DenseGenerator {
            generator: self.generator.clone(),
            repr,
        }
    }
}

fn pade_repr() -> Repr {
    Repr::Pade {
        cache: Mutex::new(None),
        inverse: Mutex::new(None),
    }
}

/// One symmetric eigendecomposition of `sym` (symmetrised exactly), eigenvalues within
/// `1e-12·max|Q|·V` of 0 (or positive) snapped to 0.
fn eigen_repr(sym: Array2<f64>, scale: f64, sqrt_pi: Option<Vec<f64>>) -> Result<Repr> {
    let s = Array2::from_shape_fn(sym.dim(), |(i, j)| 0.5 * (sym[[i, j]] + sym[[j, i]]));
    let (mut lambda, u) = symmetric_eigen(s.view())?;
    let tol = 1e-12 * scale * sym.nrows() as f64;
    lambda.mapv_inplace(|l| if l > -tol { 0.0 } else { l });
    Ok(Repr::Eigen { lambda, u, sqrt_pi })
}

impl DenseGenerator {
    /// The symmetric eigen route when `Q = Qᵀ`, the reversible eigen route when `Q` is
    /// reversible ([`reversible_stationary`]) with `√(π_max/π_min) ≤`
    /// [`MAX_SYMMETRISATION_CONDITION`], Padé otherwise.
    ///
    /// # Errors
    /// [`Error::Numerical`] if the eigendecomposition fails.
    pub fn new(generator: Generator) -> Result<Self> {
        Self::with_route(generator, ExpRoute::Auto)
    }

    /// The reversible eigen route for a generator in detailed balance with the given
    /// stationary law `pi` (a distribution, all entries `> 0`, renormalised).
    ///
    /// # Errors
    /// [`Error::Shape`]/[`Error::NotADistribution`]/[`Error::NonFinite`] for a bad `pi`;
    /// [`Error::InvalidArgument`] if an entry of `pi` is 0, if detailed balance
    /// `π_x Q[x, y] = π_y Q[y, x]` fails on a pair (relative tolerance `1e-9`), or if
    /// `√(π_max/π_min) >` [`MAX_SYMMETRISATION_CONDITION`]; [`Error::Numerical`] if the
    /// eigendecomposition fails.
    pub fn reversible(generator: Generator, pi: &[f64]) -> Result<Self> {
        let v = generator.vocab_size();
        validate::len("pi", pi.len(), v)?;
        validate::distribution("pi", pi, 1e-9)?;
        let total: f64 = pi.iter().sum();
        let pi: Vec<f64> = pi.iter().map(|p| p / total).collect();
        if let Some(x) = pi.iter().position(|&p| p.is_nan() || p <= 0.0) {
            return Err(Error::invalid(
                "pi",
                format!("the reversible route needs π > 0, got π[{x}] = {}", pi[x]),
            ));
        }
        if !balanced(&generator, &pi) {
            return Err(Error::invalid(
                "pi",
                "the generator is not in detailed balance with pi (π_x Q[x,y] ≠ π_y Q[y,x])",
            ));
        }
        let kappa = symmetrisation_condition(&pi);
        if kappa > MAX_SYMMETRISATION_CONDITION {
            return Err(Error::invalid(
                "pi",
                format!(
                    "√(π_max/π_min) = {kappa:e} exceeds {MAX_SYMMETRISATION_CONDITION:e}: \
                     the symmetrised route would lose accuracy (use ExpRoute::Pade)"
                ),
            ));
        }
        let repr = Self::reversible_repr(&generator, pi)?;
        Ok(DenseGenerator { generator, repr })
    }

    fn reversible_repr(generator: &Generator, pi: Vec<f64>) -> Result<Repr> {
        let q = generator.matrix();
        let d: Vec<f64> = pi.iter().map(|p| p.sqrt()).collect();
        let s = Array2::from_shape_fn(q.dim(), |(x, y)| d[x] * q[[x, y]] / d[y]);
        let scale = q.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        eigen_repr(s, scale, Some(d))
    }

    /// An explicit route: [`ExpRoute::Pade`]; [`ExpRoute::Eigen`] (symmetric eigen route if
    /// `Q = Qᵀ`, else the reversible route with the detected `π`, whatever its condition);
    /// [`ExpRoute::Auto`] as [`DenseGenerator::new`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `Eigen` on a generator that is neither symmetric nor
    /// reversible; [`Error::Numerical`] if the eigendecomposition fails.
    pub fn with_route(generator: Generator, route: ExpRoute) -> Result<Self> {
        let q = generator.matrix();
        let scale = q.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let repr = match route {
            ExpRoute::Pade => pade_repr(),
            _ if generator.is_symmetric() => eigen_repr(q.to_owned(), scale, None)?,
            ExpRoute::Auto => match reversible_stationary(&generator) {
                Some(pi) if symmetrisation_condition(&pi) <= MAX_SYMMETRISATION_CONDITION => {
                    Self::reversible_repr(&generator, pi)?
                }
                _ => pade_repr(),
            },
            ExpRoute::Eigen => match reversible_stationary(&generator) {
                Some(pi) => Self::reversible_repr(&generator, pi)?,
                None => {
                    return Err(Error::invalid(
                        "route",
                        "the eigen route needs a symmetric or reversible generator; use Pade",
                    ));
                }
            },
        };
        Ok(DenseGenerator { generator, repr })
    }

    /// The validated rate matrix.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Whether `exp(sQ)` is evaluated by an eigen route (symmetric or reversible).
    pub fn is_eigen(&self) -> bool {
        matches!(self.repr, Repr::Eigen { .. })
    }

    /// The evaluation route.
    pub fn route(&self) -> DenseRoute {
        match &self.repr {
            Repr::Eigen { sqrt_pi: None, .. } => DenseRoute::Symmetric,
            Repr::Eigen { .. } => DenseRoute::Reversible,
            Repr::Pade { .. } => DenseRoute::Pade,
        }
    }

    /// The stationary law `π` used by the reversible route (`None` on the other routes).
    pub fn stationary(&self) -> Option<Vec<f64>> {
        match &self.repr {
            Repr::Eigen {
                sqrt_pi: Some(d), ..
            } => Some(d.iter().map(|x| x * x).collect()),
            _ => None,
        }
    }

    /// The spectral radius bound `ρ` used by the inverse's growth check: `max_k |λ_k|` on
    /// the eigen routes, `2 max_x |Q[x, x]|` (Gershgorin) on Padé.
    pub fn spectral_radius_bound(&self) -> f64 {
        match &self.repr {
            Repr::Eigen { lambda, .. } => lambda.iter().fold(0.0f64, |m, l| m.max(l.abs())),
            Repr::Pade { .. } => {
                let q = self.generator.matrix();
                2.0 * (0..q.nrows()).fold(0.0f64, |m, x| m.max(q[[x, x]].abs()))
            }
        }
    }

    /// Run `f` on the Padé `exp(sQ)` (cached for the last `s`).
    fn with_pade<R>(&self, cache: &Cache, s: f64, f: impl FnOnce(&Array2<f64>) -> R) -> Result<R> {
        if s.is_infinite() {
            return Err(Error::invalid(
                "sigma_bar",
                "s = ∞ has no known limit on the Padé route (use a symmetric or reversible generator)",
            ));
        }
        let mut guard = cache.lock().map_err(|_| Error::Numerical {
            what: "DenseGenerator",
            reason: "the exp(sQ) cache lock was poisoned".into(),
        })?;
        let hit = matches!(&*guard, Some((c, _)) if c.to_bits() == s.to_bits());
        if !hit {
            let q = self.generator.matrix();
            let mut e = expm((&q * s).view())?;
            if s >= 0.0 {
                e.mapv_inplace(|x| x.max(0.0));
            }
            *guard = Some((s, e));
        }
        let (_, e) = guard.as_ref().expect("cache filled above");
        Ok(f(e))
    }
}

/// `e^{sλ}` for `λ ≤ 0`, `s ∈ [0, ∞]` (with `0·∞ = 0`: the null space is kept).
#[inline]
fn decay(s: f64, l: f64) -> f64 {
    if l == 0.0 { 1.0 } else { (s * l).exp() }
}

/// `√π_y/√π_x`, 1 on the symmetric route.
#[inline]
fn tilt(d: &Option<Vec<f64>>, x: usize, y: usize) -> f64 {
    d.as_ref().map_or(1.0, |d| d[y] / d[x])
}

/// `out = pᵀ D^{−1/2} U e^{sΛ} Uᵀ D^{1/2}` (`D = I` on the symmetric route); `s` may be
/// negative (the inverse), then nothing is clamped.
fn eigen_vecmat(
    lambda: &Array1<f64>,
    u: &Array2<f64>,
    d: &Option<Vec<f64>>,
    p: &[f64],
    s: f64,
    out: &mut [f64],
) {
    let v = p.len();
    let mut c = vec![0.0; v];
    for (x, &w) in p.iter().enumerate() {
        if w != 0.0 {
            let w = d.as_ref().map_or(w, |d| w / d[x]);
            for (ck, &uk) in c.iter_mut().zip(u.row(x)) {
                *ck += w * uk;
            }
        }
    }
    for (ck, &l) in c.iter_mut().zip(lambda) {
        *ck *= decay(s, l);
    }
    for (y, o) in out.iter_mut().enumerate() {
        let acc: f64 = u.row(y).iter().zip(&c).map(|(a, b)| a * b).sum();
        let acc = d.as_ref().map_or(acc, |d| acc * d[y]);
        *o = if s >= 0.0 { acc.max(0.0) } else { acc };
    }
}

impl DenseGenerator {
    /// `out = pᵀ exp(−δQ)`, `out[y] = Σ_z p[z]·exp(−δQ)[z, y]`, for finite `p` of any sign
    /// and `δ ∈ [0, ∞)`: SEDD's staggered score. Eigen routes:
    /// `pᵀ D^{−1/2} U e^{−δΛ} Uᵀ D^{1/2}`, `O(V²)`; Padé: `expm(−δQ)` cached for the last
    /// `δ`. Nothing is clamped (the result may be negative).
    ///
    /// # Errors
    /// Lengths, non-finite `p`, `δ` negative or not finite, and [`Error::Numerical`] when
    /// the growth factor `e^{δρ}` ([`spectral_radius_bound`](Self::spectral_radius_bound))
    /// exceeds [`MAX_INVERSE_GROWTH`] (module docs: the result would be dominated by
    /// amplified round-off).
    pub fn inverse_transition_vecmat(&self, p: &[f64], delta: f64, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        validate::len("p", p.len(), v)?;
        validate::len("out", out.len(), v)?;
        validate::all_finite("p", p)?;
        let delta = validate::finite("delta", delta)?;
        if delta < 0.0 {
            return Err(Error::invalid(
                "delta",
                format!("noise increment must be ≥ 0, got {delta}"),
            ));
        }
        let rho = self.spectral_radius_bound();
        if delta * rho > MAX_INVERSE_GROWTH.ln() {
            return Err(Error::Numerical {
                what: "DenseGenerator::inverse_transition_vecmat",
                reason: format!(
                    "exp(−δQ) amplifies round-off by e^(δρ) = e^{:.3} > {MAX_INVERSE_GROWTH:e} \
                     (δ = {delta}, ρ = {rho}); take smaller steps",
                    delta * rho
                ),
            });
        }
        match &self.repr {
            Repr::Eigen { lambda, u, sqrt_pi } => {
                eigen_vecmat(lambda, u, sqrt_pi, p, -delta, out);
                Ok(())
            }
            Repr::Pade { inverse, .. } => self.with_pade(inverse, -delta, |e| {
                out.fill(0.0);
                for (x, &w) in p.iter().enumerate() {
                    if w != 0.0 {
                        for (o, &q) in out.iter_mut().zip(e.row(x)) {
                            *o += w * q;
                        }
                    }
                }
            }),
        }
    }
}

impl RateGenerator for DenseGenerator {
    fn vocab_size(&self) -> usize {
        self.generator.vocab_size()
    }

    fn rate_row(&self, x: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.vocab_size(), out)?;
        for (o, &q) in out.iter_mut().zip(self.generator.matrix().row(x as usize)) {
            *o = q;
        }
        Ok(())
    }

    fn rate_col(&self, y: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.vocab_size(), out)?;
        for (o, &q) in out
            .iter_mut()
            .zip(self.generator.matrix().column(y as usize))
        {
            *o = q;
        }
        Ok(())
    }

    fn transition_row(&self, x: u32, s: f64, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.vocab_size(), out)?;
        let s = check_total_noise(s)?;
        match &self.repr {
            Repr::Eigen { lambda, u, sqrt_pi } => {
                // c_k = U[x, k] e^{sλ_k}: V exponentials, then V² multiply-adds.
                let x = x as usize;
                let c: Vec<f64> = u
                    .row(x)
                    .iter()
                    .zip(lambda)
                    .map(|(&uk, &l)| uk * decay(s, l))
                    .collect();
                for (y, o) in out.iter_mut().enumerate() {
                    let acc: f64 = u.row(y).iter().zip(&c).map(|(a, b)| a * b).sum();
                    *o = (acc * tilt(sqrt_pi, x, y)).max(0.0);
                }
                Ok(())
            }
            Repr::Pade { cache, .. } => self.with_pade(cache, s, |e| {
                for (o, &q) in out.iter_mut().zip(e.row(x as usize)) {
                    *o = q;
                }
            }),
        }
    }

    fn transition_col(&self, y: u32, s: f64, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.vocab_size(), out)?;
        let s = check_total_noise(s)?;
        match &self.repr {
            Repr::Eigen { lambda, u, sqrt_pi } => {
                // exp(sQ)[x, y] = (√π_y/√π_x)·E[y, x] with E = U e^{sΛ} Uᵀ symmetric.
                let y = y as usize;
                let c: Vec<f64> = u
                    .row(y)
                    .iter()
                    .zip(lambda)
                    .map(|(&uk, &l)| uk * decay(s, l))
                    .collect();
                for (x, o) in out.iter_mut().enumerate() {
                    let acc: f64 = u.row(x).iter().zip(&c).map(|(a, b)| a * b).sum();
                    *o = (acc * tilt(sqrt_pi, x, y)).max(0.0);
                }
                Ok(())
            }
            Repr::Pade { cache, .. } => self.with_pade(cache, s, |e| {
                for (o, &q) in out.iter_mut().zip(e.column(y as usize)) {
                    *o = q;
                }
            }),
        }
    }

    fn transition_vecmat(&self, p: &[f64], s: f64, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        check_vec_out(p, v, out)?;
        let s = check_total_noise(s)?;
        validate::all_finite("p", p)?;
        match &self.repr {
            Repr::Eigen { lambda, u, sqrt_pi } => {
                eigen_vecmat(lambda, u, sqrt_pi, p, s, out);
                Ok(())
            }
            Repr::Pade { cache, .. } => self.with_pade(cache, s, |e| {
                out.fill(0.0);
                for (x, &w) in p.iter().enumerate() {
                    if w != 0.0 {
                        for (o, &q) in out.iter_mut().zip(e.row(x)) {
                            *o += w * q;
                        }
                    }
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_and_pade_agree_and_cache_is_consistent() {
        let g = Generator::uniform(4).unwrap();
        let e = DenseGenerator::with_route(g.clone(), ExpRoute::Eigen).unwrap();
        let p = DenseGenerator::with_route(g, ExpRoute::Pade).unwrap();
        assert!(e.is_eigen() && !p.is_eigen());
        assert_eq!(e.route(), DenseRoute::Symmetric);
        let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
        for &s in &[0.0, 0.3, 0.3, 4.0] {
            for x in 0..4 {
                e.transition_row(x, s, &mut a).unwrap();
                p.transition_row(x, s, &mut b).unwrap();
                for y in 0..4 {
                    assert!((a[y] - b[y]).abs() < 1e-13);
                }
            }
        }
        e.transition_row(1, f64::INFINITY, &mut a).unwrap();
        assert!(a.iter().all(|&q| (q - 0.25).abs() < 1e-14));
        assert!(p.transition_row(1, f64::INFINITY, &mut b).is_err());
        let abs = Generator::absorbing(3, 0).unwrap();
        assert!(DenseGenerator::with_route(abs.clone(), ExpRoute::Eigen).is_err());
        assert_eq!(DenseGenerator::new(abs).unwrap().route(), DenseRoute::Pade);
    }

    #[test]
    fn inverse_undoes_forward_on_every_route() {
        // A reversible 3-state chain and a symmetric one; Padé forced for both.
        let q = ndarray::array![[-2.0, 2.0, 0.0], [1.0, -1.5, 0.5], [0.0, 1.0, -1.0]];
        let rev = Generator::new(q).unwrap();
        let gens = [
            DenseGenerator::new(rev.clone()).unwrap(),
            DenseGenerator::with_route(rev, ExpRoute::Pade).unwrap(),
            DenseGenerator::new(Generator::uniform(3).unwrap()).unwrap(),
        ];
        assert_eq!(gens[0].route(), DenseRoute::Reversible);
        let p = [0.2, -0.7, 1.3];
        for g in &gens {
            let (mut f, mut back) = ([0.0; 3], [0.0; 3]);
            // p may be negative: undo with the signed forward product on the rows.
            let mut row = [0.0; 3];
            for (x, &w) in p.iter().enumerate() {
                g.transition_row(x as u32, 0.7, &mut row).unwrap();
                for y in 0..3 {
                    f[y] += w * row[y];
                }
            }
            g.inverse_transition_vecmat(&f, 0.7, &mut back).unwrap();
            for y in 0..3 {
                assert!((back[y] - p[y]).abs() < 1e-12, "{:?}: {back:?}", g.route());
            }
            // Beyond the growth bound: an error, not garbage.
            let big = 19.0 / g.spectral_radius_bound();
            assert!(g.inverse_transition_vecmat(&p, big, &mut back).is_err());
            assert!(g.inverse_transition_vecmat(&p, -0.1, &mut back).is_err());
        }
    }
}
