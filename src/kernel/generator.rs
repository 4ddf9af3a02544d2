//! Matrix-exponential forward kernels `Q_t = exp(τ_t R)` of a CTMC generator `R`.
//!
//! This is D3PM text's family of matrix-exponential diffusions (Austin et al. 2021,
//! "Structured Denoising Diffusion Models in Discrete State-Spaces", §4 and App. A.2;
//! google-research `d3pm/text/diffusion.py`: `BetaDiagonalDiffusion`, `MaskDiffusion`,
//! `ClosedFormMatrixExponentialDiffusion`). Because every step uses the same generator the
//! factors commute, so the cumulative matrix is itself one exponential:
//!
//! ```text
//! Q_t = exp(τ_t R),    Q̄_t = Q_1 ⋯ Q_t = exp(S_t R),    S_t = Σ_{s≤t} τ_s,  S_0 = 0.
//! ```
//!
//! Orientation: row-stochastic, `R[i, j] ≥ 0` is the rate `i → j` (`i ≠ j`) and rows sum
//! to 0. The anchor is column-stochastic (`M = Qᵀ`); transpose at that boundary.
//!
//! Two evaluation routes ([`ExpRoute`]):
//!
//! * **Eigen** (symmetric `R`): one f64 eigendecomposition `R = U Λ Uᵀ`; then
//!   `Q̄_t(x, ·) = Σ_k U[x, k] e^{S_t λ_k} U[·, k]`, so every row, column (`Q̄_t` is
//!   symmetric), `pᵀ Q̄_t` and `Q̄_t r` costs `O(V²)` without forming any `V×V` matrix per step.
//!   Memory `O(V² + T·V)`.
//! * **Padé** (any `R`): `exp(τ_t R)` and `exp(S_t R)` by [`expm`] for every `t`, stored
//!   densely ([`Dense`], `(2T + 1)·V²` f64).
//!
//! Both clamp the round-off negatives (`|·| ~ 1e-17`) of the exact non-negative entries to
//! zero.

use ndarray::{Array1, Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::kernel::dense::{Dense, check_memory};
use crate::kernel::{ForwardKernel, check_state_out, check_step, check_vec_out};
use crate::linalg::expm::expm;
use crate::linalg::symmetric_eigen;
use crate::validate;

/// A validated CTMC generator (rate matrix) `R` in row convention: `R[i, j] ≥ 0` for
/// `i ≠ j` and `Σ_j R[i, j] = 0` within `1e-12·V·max|R|`.
#[derive(Debug, Clone)]
pub struct Generator {
    r: Array2<f64>,
    symmetric: bool,
}

impl Generator {
    /// Validate and wrap a rate matrix `R` (`V×V`, `V ≥ 2`, finite, off-diagonal
    /// non-negative, rows summing to zero).
    ///
    /// # Errors
    /// [`Error::Shape`] if not square, [`Error::NonFinite`] for NaN/∞,
    /// [`Error::InvalidArgument`] for `V < 2`, a negative off-diagonal rate, or a row that
    /// does not sum to zero.
    pub fn new(r: Array2<f64>) -> Result<Self> {
        let (n, m) = r.dim();
        if n != m {
            return Err(Error::shape("r", "a square matrix", format!("{n}×{m}")));
        }
        validate::vocab("r", n)?;
        validate::all_finite("r", r.iter())?;
        let scale = r.iter().fold(0.0f64, |a, &x| a.max(x.abs())).max(1e-300);
        let tol = 1e-12 * n as f64 * scale;
        for i in 0..n {
            let mut sum = 0.0;
            for j in 0..n {
                let x = r[[i, j]];
                if i != j && x < 0.0 {
                    return Err(Error::invalid(
                        "r",
                        format!("off-diagonal rate r[{i},{j}] = {x} is negative"),
                    ));
                }
                sum += x;
            }
            if sum.abs() > tol {
                return Err(Error::invalid(
                    "r",
                    format!("row {i} sums to {sum}, not 0 (tolerance {tol:e})"),
                ));
            }
        }
        let symmetric =
            (0..n).all(|i| (0..i).all(|j| (r[[i, j]] - r[[j, i]]).abs() <= 1e-12 * scale));
        Ok(Generator { r, symmetric })
    }

    /// The uniform ("beta diagonal") generator `R = 11ᵀ/V − I` (anchor
    /// `uniform_diagonal_matrix_exponential`): `exp(τR) = e^{−τ} I + (1 − e^{−τ}) 11ᵀ/V`,
    /// i.e. D3PM text's `BetaDiagonalDiffusion` step with `β = 1 − e^{−τ}`. Symmetric.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `v < 2`.
    pub fn uniform(v: usize) -> Result<Self> {
        validate::vocab("v", v)?;
        let x = 1.0 / v as f64;
        let r = Array2::from_shape_fn((v, v), |(i, j)| if i == j { x - 1.0 } else { x });
        Ok(Generator { r, symmetric: true })
    }

    /// The absorbing ("mask") generator: every state `i ≠ mask` jumps to `mask` at rate 1,
    /// `R = 1 e_maskᵀ − I` with row `mask` zero (anchor `mask_matrix_exponential`, any mask
    /// index): `exp(τR) = e^{−τ} I + (1 − e^{−τ}) 1 e_maskᵀ`, i.e. D3PM text's
    /// `MaskDiffusion` step with `β = 1 − e^{−τ}`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `v < 2`; [`Error::TokenOutOfRange`] if `mask ≥ v`.
    pub fn absorbing(v: usize, mask: u32) -> Result<Self> {
        validate::vocab("v", v)?;
        let m = validate::token("mask", mask, v)?;
        let r = Array2::from_shape_fn((v, v), |(i, j)| {
            if i == m {
                0.0
            } else if j == i {
                -1.0
            } else if j == m {
                1.0
            } else {
                0.0
            }
        });
        Ok(Generator {
            r,
            symmetric: false,
        })
    }

    /// The rate matrix `R`.
    pub fn matrix(&self) -> ArrayView2<'_, f64> {
        self.r.view()
    }

    /// Number of states `V`.
    pub fn vocab_size(&self) -> usize {
        self.r.nrows()
    }

    /// Whether `R = Rᵀ` (within `1e-12·max|R|`), which enables [`ExpRoute::Eigen`].
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }
}

/// How a [`MatrixExponentialKernel`] evaluates `exp(S R)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpRoute {
    /// Eigen route for symmetric generators, Padé otherwise.
    Auto,
    /// Precomputed dense `exp(τ_t R)` and `exp(S_t R)` by scaling-and-squaring Padé.
    Pade,
    /// One symmetric eigendecomposition; `O(V²)` per row/column/vector product (symmetric
    /// generators only).
    Eigen,
}

#[derive(Debug, Clone)]
enum Repr {
    Eigen {
        /// Eigenvectors in columns, `R = U Λ Uᵀ`.
        u: Array2<f64>,
        /// `e^{τ_t λ_k}` at `[t − 1, k]`, `t = 1..=T`.
        step_decay: Array2<f64>,
        /// `e^{S_t λ_k}` at `[t, k]`, `t = 0..=T`.
        cum_decay: Array2<f64>,
    },
    Pade(Dense),
}

/// Forward kernel `Q_t = exp(τ_t R)`, `Q̄_t = exp(S_t R)` with `S_t = Σ_{s≤t} τ_s` (see the
/// [module docs](self)).
#[derive(Debug, Clone)]
pub struct MatrixExponentialKernel {
    generator: Generator,
    exponents: Vec<f64>,
    cumulative: Vec<f64>,
    stationary: Vec<f64>,
    repr: Repr,
}

/// `τ_t = −ln(1 − β_t)`: the per-step exponents that make `exp(τ_t R) = (1 − β_t) I + β_t Π`
/// for the uniform and absorbing generators (`R = Π − I` with `Π² = Π`, so `R² = −R` and
/// `exp(τR) = I + (1 − e^{−τ}) R`). D3PM text's `BetaDiagonalDiffusion` and
/// `MaskDiffusion` are these kernels with their `β` schedules.
///
/// # Errors
/// [`Error::InvalidArgument`] if `betas` is empty or some `β_t ∉ [0, 1)` (`β = 1` would be
/// an infinite exponent); [`Error::NonFinite`] for NaN.
pub fn exponents_from_betas(betas: &[f64]) -> Result<Vec<f64>> {
    crate::kernel::dense::check_betas(betas)?;
    betas
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if b >= 1.0 {
                Err(Error::invalid(
                    "betas",
                    format!(
                        "beta_{} = {b} gives an infinite exponent −ln(1 − β); use β < 1",
                        i + 1
                    ),
                ))
            } else {
                Ok(-(-b).ln_1p())
            }
        })
        .collect()
}

impl MatrixExponentialKernel {
    /// Build from a generator, per-step exponents `τ_1..=τ_T` (finite, `≥ 0`) and the prior
    /// `stationary` (a distribution of length `V`), choosing the route automatically.
    ///
    /// # Errors
    /// See [`MatrixExponentialKernel::with_route`].
    pub fn new(generator: Generator, exponents: &[f64], stationary: &[f64]) -> Result<Self> {
        Self::with_route(generator, exponents, stationary, ExpRoute::Auto)
    }

    /// D3PM text's uniform ("beta diagonal") kernel: [`Generator::uniform`] with a uniform
    /// prior (eigen route).
    ///
    /// ```
    /// use discrete_diffusion::kernel::{ForwardKernel, generator::*};
    /// let tau = exponents_from_betas(&[0.1, 0.2]).unwrap();
    /// let k = MatrixExponentialKernel::uniform(4, &tau).unwrap();
    /// let mut row = [0.0; 4];
    /// k.cumulative_row(2, 0, &mut row).unwrap();
    /// let stay = 0.9 * 0.8; // Π(1 − β)
    /// assert!((row[0] - (stay + (1.0 - stay) / 4.0)).abs() < 1e-14);
    /// ```
    ///
    /// # Errors
    /// As [`Generator::uniform`] and [`MatrixExponentialKernel::with_route`].
    pub fn uniform(v: usize, exponents: &[f64]) -> Result<Self> {
        let g = Generator::uniform(v)?;
        Self::new(g, exponents, &vec![1.0 / v as f64; v])
    }

    /// D3PM text's absorbing ("mask") kernel: [`Generator::absorbing`] with the point mass
    /// on `mask` as prior (Padé route).
    ///
    /// # Errors
    /// As [`Generator::absorbing`] and [`MatrixExponentialKernel::with_route`].
    pub fn absorbing(v: usize, mask: u32, exponents: &[f64]) -> Result<Self> {
        let g = Generator::absorbing(v, mask)?;
        let mut prior = vec![0.0; v];
        prior[mask as usize] = 1.0;
        Self::new(g, exponents, &prior)
    }

    /// Build from cumulative exponents `S_0 = 0 ≤ S_1 ≤ … ≤ S_T` (length `T + 1`, the form
    /// D3PM text's mutual-information schedule produces), with `τ_t = S_t − S_{t−1}`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `cumulative` has fewer than 2 entries, `S_0 ≠ 0`, or
    /// it decreases; otherwise as [`MatrixExponentialKernel::new`].
    pub fn from_cumulative_exponents(
        generator: Generator,
        cumulative: &[f64],
        stationary: &[f64],
    ) -> Result<Self> {
        validate::all_finite("cumulative", cumulative.iter())?;
        if cumulative.len() < 2 || cumulative[0] != 0.0 {
            return Err(Error::invalid(
                "cumulative",
                format!(
                    "need S_0 = 0 followed by at least one exponent, got {:?}",
                    &cumulative[..cumulative.len().min(3)]
                ),
            ));
        }
        let tau: Vec<f64> = cumulative.windows(2).map(|w| w[1] - w[0]).collect();
        if let Some(i) = tau.iter().position(|&d| d < 0.0) {
            return Err(Error::invalid(
                "cumulative",
                format!(
                    "exponents decrease at step {}: {} < {}",
                    i + 1,
                    cumulative[i + 1],
                    cumulative[i]
                ),
            ));
        }
        Self::new(generator, &tau, stationary)
    }

    /// Build with an explicit [`ExpRoute`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `exponents` is empty, some `τ_t < 0`, the route is
    /// `Eigen` for a non-symmetric generator, or Padé storage exceeds
    /// [`MAX_DENSE_ENTRIES`](super::dense::MAX_DENSE_ENTRIES); [`Error::NonFinite`] for a
    /// NaN/∞ exponent or cumulative sum; [`Error::Shape`]/[`Error::NotADistribution`] for
    /// a bad `stationary`; [`Error::Numerical`] if an exponential overflows.
    pub fn with_route(
        generator: Generator,
        exponents: &[f64],
        stationary: &[f64],
        route: ExpRoute,
    ) -> Result<Self> {
        let v = generator.vocab_size();
        if exponents.is_empty() {
            return Err(Error::invalid(
                "exponents",
                "at least one exponent (T ≥ 1) is required",
            ));
        }
        validate::all_finite("exponents", exponents.iter())?;
        if let Some(i) = exponents.iter().position(|&x| x < 0.0) {
            return Err(Error::invalid(
                "exponents",
                format!("tau_{} = {} is negative", i + 1, exponents[i]),
            ));
        }
        let mut cumulative = Vec::with_capacity(exponents.len() + 1);
        cumulative.push(0.0);
        for &x in exponents {
            cumulative.push(cumulative[cumulative.len() - 1] + x);
        }
        validate::all_finite("exponents", cumulative.iter())?;
        validate::len("stationary", stationary.len(), v)?;
        validate::distribution("stationary", stationary, validate::SIMPLEX_TOL)?;
        let use_eigen = match route {
            ExpRoute::Auto => generator.is_symmetric(),
            ExpRoute::Pade => false,
            ExpRoute::Eigen if generator.is_symmetric() => true,
            ExpRoute::Eigen => {
                return Err(Error::invalid(
                    "route",
                    "the eigen route needs a symmetric generator",
                ));
            }
        };
        let repr = if use_eigen {
            let (lam, u) = symmetric_eigen(generator.matrix())?;
            let decay =
                |s: &[f64]| Array2::from_shape_fn((s.len(), v), |(t, k)| (s[t] * lam[k]).exp());
            let step_decay = decay(exponents);
            let cum_decay = decay(&cumulative);
            if step_decay
                .iter()
                .chain(cum_decay.iter())
                .any(|x| !x.is_finite())
            {
                return Err(Error::Numerical {
                    what: "MatrixExponentialKernel",
                    reason: "exp(S·λ) overflows: the generator has a positive eigenvalue".into(),
                });
            }
            Repr::Eigen {
                u,
                step_decay,
                cum_decay,
            }
        } else {
            check_memory(exponents.len(), v)?;
            let exp_clamped = |s: f64| -> Result<Array2<f64>> {
                let a = generator.r.mapv(|x| x * s);
                Ok(expm(a.view())?.mapv(|x| x.max(0.0)))
            };
            let steps = exponents
                .iter()
                .map(|&s| exp_clamped(s))
                .collect::<Result<Vec<_>>>()?;
            let cums = cumulative
                .iter()
                .map(|&s| exp_clamped(s))
                .collect::<Result<Vec<_>>>()?;
            Repr::Pade(Dense::from_parts(steps, cums, stationary.to_vec()))
        };
        Ok(MatrixExponentialKernel {
            generator,
            exponents: exponents.to_vec(),
            cumulative,
            stationary: stationary.to_vec(),
            repr,
        })
    }

    /// The generator `R`.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Per-step exponents `τ_1..=τ_T`.
    pub fn exponents(&self) -> &[f64] {
        &self.exponents
    }

    /// Cumulative exponents `S_0 = 0, S_1, …, S_T`.
    pub fn cumulative_exponents(&self) -> &[f64] {
        &self.cumulative
    }

    /// The route in use ([`ExpRoute::Eigen`] or [`ExpRoute::Pade`]).
    pub fn route(&self) -> ExpRoute {
        match self.repr {
            Repr::Eigen { .. } => ExpRoute::Eigen,
            Repr::Pade(_) => ExpRoute::Pade,
        }
    }

    /// The dense matrix `exp(S R)` for any `S ≥ 0` (Padé; `O(V³)`), e.g. to inspect a
    /// kernel off the step grid.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `s < 0`; [`Error::NonFinite`] if `s` is NaN/∞.
    pub fn transition_matrix(&self, s: f64) -> Result<Array2<f64>> {
        validate::finite("s", s)?;
        if s < 0.0 {
            return Err(Error::invalid("s", format!("exponent {s} is negative")));
        }
        let a = self.generator.r.mapv(|x| x * s);
        Ok(expm(a.view())?.mapv(|x| x.max(0.0)))
    }
}

/// `out[j] = Σ_k U[x, k] d_k U[j, k]`: row `x` of `U diag(d) Uᵀ` in `O(V²)`, with entries
/// below the round-off level `4·V·ε` set to 0 (as in [`crate::kernel::similarity`]).
fn eigen_row(u: &Array2<f64>, d: ndarray::ArrayView1<'_, f64>, x: usize, out: &mut [f64]) {
    let w: Array1<f64> = Array1::from_shape_fn(d.len(), |k| u[[x, k]] * d[k]);
    let floor = crate::kernel::similarity::round_off_floor(out.len(), 1.0);
    for (j, o) in out.iter_mut().enumerate() {
        let x = u.row(j).dot(&w);
        *o = if x < floor { 0.0 } else { x };
    }
}

/// `out = pᵀ U diag(d) Uᵀ` in `O(V²)`, round-off below `4·V·ε·Σp` set to 0.
fn eigen_vecmat(u: &Array2<f64>, d: ndarray::ArrayView1<'_, f64>, p: &[f64], out: &mut [f64]) {
    let p = ndarray::ArrayView1::from(p);
    let c: Array1<f64> = u.t().dot(&p) * d;
    let floor = crate::kernel::similarity::round_off_floor(out.len(), p.sum());
    for (j, o) in out.iter_mut().enumerate() {
        let x = u.row(j).dot(&c);
        *o = if x < floor { 0.0 } else { x };
    }
}

impl ForwardKernel for MatrixExponentialKernel {
    fn vocab_size(&self) -> usize {
        self.generator.vocab_size()
    }

    fn num_steps(&self) -> usize {
        self.exponents.len()
    }

    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> Result<()> {
        match &self.repr {
            Repr::Pade(d) => d.step_row(t, x, out),
            Repr::Eigen { u, step_decay, .. } => {
                check_step(t, self.num_steps(), false)?;
                check_state_out("x", x, self.vocab_size(), out)?;
                eigen_row(u, step_decay.row(t - 1), x as usize, out);
                Ok(())
            }
        }
    }

    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        match &self.repr {
            Repr::Pade(d) => d.step_col(t, y, out),
            // exp(τR) is symmetric for symmetric R: column y = row y.
            Repr::Eigen { u, step_decay, .. } => {
                check_step(t, self.num_steps(), false)?;
                check_state_out("y", y, self.vocab_size(), out)?;
                eigen_row(u, step_decay.row(t - 1), y as usize, out);
                Ok(())
            }
        }
    }

    fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> Result<()> {
        match &self.repr {
            Repr::Pade(d) => d.cumulative_row(t, x0, out),
            Repr::Eigen { u, cum_decay, .. } => {
                check_step(t, self.num_steps(), true)?;
                check_state_out("x0", x0, self.vocab_size(), out)?;
                eigen_row(u, cum_decay.row(t), x0 as usize, out);
                Ok(())
            }
        }
    }

    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        match &self.repr {
            Repr::Pade(d) => d.cumulative_col(t, y, out),
            Repr::Eigen { u, cum_decay, .. } => {
                check_step(t, self.num_steps(), true)?;
                check_state_out("y", y, self.vocab_size(), out)?;
                eigen_row(u, cum_decay.row(t), y as usize, out);
                Ok(())
            }
        }
    }

    fn cumulative_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        match &self.repr {
            Repr::Pade(d) => d.cumulative_vecmat(t, p, out),
            Repr::Eigen { u, cum_decay, .. } => {
                check_step(t, self.num_steps(), true)?;
                check_vec_out(p, self.vocab_size(), out)?;
                eigen_vecmat(u, cum_decay.row(t), p, out);
                Ok(())
            }
        }
    }

    /// `Q̄_t r`: eigen route `U diag(e^{S_t λ}) Uᵀ r` (`Q̄_t` is symmetric, so this is
    /// `rᵀ Q̄_t`), `O(V²)`; Padé route from the stored `exp(S_t R)`, `O(V²)`.
    fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        match &self.repr {
            Repr::Pade(d) => d.cumulative_matvec(t, r, out),
            Repr::Eigen { u, cum_decay, .. } => {
                check_step(t, self.num_steps(), true)?;
                crate::kernel::check_named_vec_out("r", r, self.vocab_size(), out)?;
                eigen_vecmat(u, cum_decay.row(t), r, out);
                Ok(())
            }
        }
    }

    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        match &self.repr {
            Repr::Pade(d) => d.step_vecmat(t, p, out),
            Repr::Eigen { u, step_decay, .. } => {
                check_step(t, self.num_steps(), false)?;
                check_vec_out(p, self.vocab_size(), out)?;
                eigen_vecmat(u, step_decay.row(t - 1), p, out);
                Ok(())
            }
        }
    }

    fn stationary(&self, out: &mut [f64]) -> Result<()> {
        validate::len("out", out.len(), self.vocab_size())?;
        out.copy_from_slice(&self.stationary);
        Ok(())
    }
}
