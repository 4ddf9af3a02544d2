//! Dense forward kernels: the validated fallback for arbitrary one-step matrices, and the
//! lean dense-cumulative representation of banded symmetric kernels.
//!
//! A D3PM forward process (Austin et al. 2021, "Structured Denoising Diffusion Models in
//! Discrete State-Spaces", §3) is given by row-stochastic one-step matrices
//! `Q_t[i, j] = q(x_t = j | x_{t−1} = i)`, `t = 1..=T`, and its marginals by the cumulative
//! products `Q̄_t = Q_1 Q_2 ⋯ Q_t` (`Q̄_0 = I`).
//!
//! * [`Dense`] stores every user-provided `Q_t` and precomputes every
//!   `Q̄_t = Q̄_{t−1} Q_t` in f64. **Memory** `(2T + 1)·V²` f64 values (`T` one-step and
//!   `T + 1` cumulative matrices, `8·(2T + 1)·V²` bytes); construction costs `T` dense
//!   `V×V` products (`O(T·V³)` flops). Construction fails with a clear error when
//!   `(2T + 1)·V²` exceeds [`MAX_DENSE_ENTRIES`] (`2²⁸` values, 2 GiB).
//! * [`BandedToeplitz`] is the representation of D3PM images' kernels
//!   ([`DiscretizedGaussian`](super::gaussian::DiscretizedGaussian),
//!   [`BandedUniform`](super::banded_uniform::BandedUniform)), whose one-step matrices are
//!   symmetric, banded, and Toeplitz off the diagonal. Each `Q_t` is kept as its profile
//!   (`B` numbers) and its diagonal (`V` numbers), so one-step rows, columns and `pᵀ Q_t`
//!   cost `O(V)` / `O(V·B)` with no `V²` storage; only `Q̄_1, …, Q̄_T` are stored (`Q̄_0 = I`
//!   is implicit), `T·V²` f64 values, built by banded products
//!   `Q̄_t = Q̄_{t−1} Q_t` in `O(V²·B)` each. At D3PM's 8-bit image setting (`V = 256`,
//!   `T = 1000`) that is 0.5 GiB instead of `Dense`'s 1 GiB.
//!
//! Prefer the structured kernels (uniform, absorbing, marginal, similarity) wherever they
//! apply (DESIGN §3.1); these exist for kernels with no closed form.

use ndarray::{Array2, ArrayView2};

mod banded;

pub(crate) use banded::toeplitz_matrix;
pub use banded::{BANDED_BLOCK, BandedToeplitz};

use crate::error::{Error, Result};
use crate::kernel::{ForwardKernel, check_state_out, check_step, check_vec_out};
use crate::validate;

/// Largest number of f64 values a dense-cumulative kernel may store (`2²⁸`, 2 GiB):
/// `(2T + 1)·V²` for [`Dense`], `T·V²` for [`BandedToeplitz`].
pub const MAX_DENSE_ENTRIES: usize = 1 << 28;

/// A forward kernel given by explicit row-stochastic one-step matrices, with all
/// cumulative products precomputed in f64 (see the [module docs](self) for memory).
///
/// * `step_row(t, x)` is row `x` of `Q_t`; `cumulative_row(t, x0)` is row `x0` of
///   `Q̄_t = Q̄_{t−1} Q_t`, `Q̄_0 = I`.
/// * `cumulative_vecmat(t, p) = pᵀ Q̄_t` and `step_vecmat(t, p) = pᵀ Q_t` cost `O(V²)`.
/// * `stationary` returns the prior supplied at construction (D3PM's reference
///   distribution for `L_T`); it is validated as a distribution but not required to be an
///   exact fixed point of every `Q_t`.
#[derive(Debug, Clone)]
pub struct Dense {
    v: usize,
    /// `Q_1..=Q_T` at indices `0..T`.
    steps: Vec<Array2<f64>>,
    /// `Q̄_0 = I, Q̄_1, …, Q̄_T` at indices `0..=T`.
    cumulative: Vec<Array2<f64>>,
    stationary: Vec<f64>,
}

/// Validate one row-stochastic matrix: `V×V`, finite, non-negative, rows summing to 1
/// within `1e-12·V`.
pub(crate) fn check_stochastic(
    arg: &'static str,
    index: usize,
    m: ArrayView2<'_, f64>,
    v: usize,
) -> Result<()> {
    if m.dim() != (v, v) {
        return Err(Error::shape(
            arg,
            format!("matrix {index} of shape {v}×{v}"),
            format!("{}×{}", m.nrows(), m.ncols()),
        ));
    }
    let tol = 1e-12 * v as f64;
    for (i, row) in m.rows().into_iter().enumerate() {
        let mut sum = 0.0;
        for (j, &x) in row.iter().enumerate() {
            if !x.is_finite() {
                return Err(Error::NonFinite {
                    arg,
                    index: index * v * v + i * v + j,
                    value: x,
                });
            }
            if x < 0.0 {
                return Err(Error::invalid(
                    arg,
                    format!("matrix {index} has a negative entry [{i},{j}] = {x}"),
                ));
            }
            sum += x;
        }
        if (sum - 1.0).abs() > tol {
            return Err(Error::invalid(
                arg,
                format!("row {i} of matrix {index} sums to {sum}, not 1 (tolerance {tol:e})"),
            ));
        }
    }
    Ok(())
}

/// Refuse storage beyond [`MAX_DENSE_ENTRIES`]: `(2T + 1)·V²` f64 values.
pub(crate) fn check_memory(num_steps: usize, v: usize) -> Result<()> {
    let entries = num_steps
        .checked_mul(2)
        .and_then(|x| x.checked_add(1))
        .and_then(|x| x.checked_mul(v))
        .and_then(|x| x.checked_mul(v));
    match entries {
        Some(n) if n <= MAX_DENSE_ENTRIES => Ok(()),
        _ => Err(Error::invalid(
            "steps",
            format!(
                "a dense kernel with T = {num_steps} steps over V = {v} states stores \
                 (2T + 1)·V² f64 values, more than the cap of {MAX_DENSE_ENTRIES} (2 GiB); \
                 use a structured kernel"
            ),
        )),
    }
}

/// Refuse a [`BandedToeplitz`] storing more than [`MAX_DENSE_ENTRIES`]: `T·V²` f64 values.
pub(crate) fn check_banded_memory(num_steps: usize, v: usize) -> Result<()> {
    match num_steps.checked_mul(v).and_then(|x| x.checked_mul(v)) {
        Some(n) if n <= MAX_DENSE_ENTRIES => Ok(()),
        _ => Err(Error::invalid(
            "betas",
            format!(
                "a banded kernel with T = {num_steps} steps over V = {v} states stores T·V² \
                 f64 cumulative values, more than the cap of {MAX_DENSE_ENTRIES} (2 GiB)"
            ),
        )),
    }
}

impl Dense {
    /// Build from one-step matrices `steps[t − 1] = Q_t` (`t = 1..=T`) and the prior
    /// `stationary` (length `V`).
    ///
    /// Each `Q_t` must be `V×V` with the same `V ≥ 2`, finite, non-negative, with rows
    /// summing to 1 within `1e-12·V`; `stationary` must be a distribution (sum within
    /// `1e-9`). Computes `Q̄_t = Q̄_{t−1} Q_t` for `t = 1..=T` in f64.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `steps` is empty, a row does not sum to one, an entry
    /// is negative, or the storage exceeds [`MAX_DENSE_ENTRIES`]; [`Error::Shape`] for a
    /// non-square or mismatched matrix or a wrong-length `stationary`;
    /// [`Error::NonFinite`] for NaN/∞; [`Error::NotADistribution`] for a bad `stationary`.
    ///
    /// ```
    /// use ndarray::array;
    /// use discrete_diffusion::kernel::{ForwardKernel, dense::Dense};
    /// let q = array![[0.9, 0.1], [0.2, 0.8]];
    /// let k = Dense::new(vec![q.clone(), q], &[2.0 / 3.0, 1.0 / 3.0]).unwrap();
    /// let mut row = [0.0; 2];
    /// k.cumulative_row(2, 0, &mut row).unwrap();
    /// assert!((row[0] - (0.81 + 0.02)).abs() < 1e-15);
    /// ```
    pub fn new(steps: Vec<Array2<f64>>, stationary: &[f64]) -> Result<Self> {
        let first = steps
            .first()
            .ok_or_else(|| Error::invalid("steps", "at least one step matrix is required"))?;
        let v = first.nrows();
        if first.ncols() != v {
            return Err(Error::shape(
                "steps",
                "square matrices",
                format!("{}×{}", first.nrows(), first.ncols()),
            ));
        }
        validate::vocab("steps", v)?;
        check_memory(steps.len(), v)?;
        for (index, m) in steps.iter().enumerate() {
            check_stochastic("steps", index, m.view(), v)?;
        }
        validate::len("stationary", stationary.len(), v)?;
        validate::distribution("stationary", stationary, validate::SIMPLEX_TOL)?;
        let steps: Vec<Array2<f64>> = steps.into_iter().map(row_major).collect();
        let mut cumulative = Vec::with_capacity(steps.len() + 1);
        cumulative.push(Array2::eye(v));
        for q in &steps {
            let next = cumulative[cumulative.len() - 1].dot(q);
            cumulative.push(next);
        }
        Ok(Dense {
            v,
            steps,
            cumulative,
            stationary: stationary.to_vec(),
        })
    }

    /// Assemble from parts the caller has already validated and computed (crate-internal:
    /// kernels whose cumulative matrices come from a closed form, e.g. `exp(S_t R)`).
    pub(crate) fn from_parts(
        steps: Vec<Array2<f64>>,
        cumulative: Vec<Array2<f64>>,
        stationary: Vec<f64>,
    ) -> Self {
        debug_assert_eq!(cumulative.len(), steps.len() + 1);
        let v = stationary.len();
        Dense {
            v,
            steps: steps.into_iter().map(row_major).collect(),
            cumulative: cumulative.into_iter().map(row_major).collect(),
            stationary,
        }
    }

    /// The one-step matrix `Q_t`, `t ∈ 1..=T`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `t` is outside `1..=T`.
    pub fn step_matrix(&self, t: usize) -> Result<ArrayView2<'_, f64>> {
        check_step(t, self.steps.len(), false)?;
        Ok(self.steps[t - 1].view())
    }

    /// The cumulative matrix `Q̄_t = Q_1 ⋯ Q_t`, `t ∈ 0..=T` (`Q̄_0 = I`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `t` is outside `0..=T`.
    pub fn cumulative_matrix(&self, t: usize) -> Result<ArrayView2<'_, f64>> {
        check_step(t, self.steps.len(), true)?;
        Ok(self.cumulative[t].view())
    }
}

/// `out = pᵀ M` for a dense `V×V` matrix (`O(V²)`, row-major friendly).
fn vecmat(m: &Array2<f64>, p: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for (row, &w) in m.rows().into_iter().zip(p) {
        if w != 0.0 {
            // Stored matrices are in standard (row-major) layout, so rows are contiguous
            // slices and this inner loop vectorises.
            match row.as_slice() {
                Some(r) => out.iter_mut().zip(r).for_each(|(o, &x)| *o += w * x),
                None => out
                    .iter_mut()
                    .zip(row.iter())
                    .for_each(|(o, &x)| *o += w * x),
            }
        }
    }
}

/// The same matrix in standard (row-major) layout, so that rows are contiguous.
fn row_major(m: Array2<f64>) -> Array2<f64> {
    if m.is_standard_layout() {
        m
    } else {
        m.as_standard_layout().into_owned()
    }
}

impl ForwardKernel for Dense {
    /// `Q̄_t r` from the stored cumulative matrix, `O(V²)`.
    fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.steps.len(), true)?;
        crate::kernel::check_named_vec_out("r", r, self.v, out)?;
        for (o, row) in out.iter_mut().zip(self.cumulative[t].rows()) {
            *o = match row.as_slice() {
                Some(q) => q.iter().zip(r).map(|(q, x)| q * x).sum(),
                None => row.iter().zip(r).map(|(q, x)| q * x).sum(),
            };
        }
        Ok(())
    }

    fn vocab_size(&self) -> usize {
        self.v
    }

    fn num_steps(&self) -> usize {
        self.steps.len()
    }

    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.steps.len(), false)?;
        check_state_out("x", x, self.v, out)?;
        for (o, &q) in out.iter_mut().zip(self.steps[t - 1].row(x as usize)) {
            *o = q;
        }
        Ok(())
    }

    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.steps.len(), false)?;
        check_state_out("y", y, self.v, out)?;
        for (o, &q) in out.iter_mut().zip(self.steps[t - 1].column(y as usize)) {
            *o = q;
        }
        Ok(())
    }

    fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.steps.len(), true)?;
        check_state_out("x0", x0, self.v, out)?;
        for (o, &q) in out.iter_mut().zip(self.cumulative[t].row(x0 as usize)) {
            *o = q;
        }
        Ok(())
    }

    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.steps.len(), true)?;
        check_state_out("y", y, self.v, out)?;
        for (o, &q) in out.iter_mut().zip(self.cumulative[t].column(y as usize)) {
            *o = q;
        }
        Ok(())
    }

    fn cumulative_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.steps.len(), true)?;
        check_vec_out(p, self.v, out)?;
        vecmat(&self.cumulative[t], p, out);
        Ok(())
    }

    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.steps.len(), false)?;
        check_vec_out(p, self.v, out)?;
        vecmat(&self.steps[t - 1], p, out);
        Ok(())
    }

    fn stationary(&self, out: &mut [f64]) -> Result<()> {
        validate::len("out", out.len(), self.v)?;
        out.copy_from_slice(&self.stationary);
        Ok(())
    }
}

/// Implement [`ForwardKernel`] for a wrapper type by delegating to a field that implements
/// it ([`Dense`] or [`BandedToeplitz`]).
macro_rules! delegate_forward_kernel {
    ($ty:ty, $field:ident) => {
        impl $crate::kernel::ForwardKernel for $ty {
            fn vocab_size(&self) -> usize {
                self.$field.vocab_size()
            }
            fn num_steps(&self) -> usize {
                self.$field.num_steps()
            }
            fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> $crate::error::Result<()> {
                self.$field.step_row(t, x, out)
            }
            fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> $crate::error::Result<()> {
                self.$field.step_col(t, y, out)
            }
            fn cumulative_row(
                &self,
                t: usize,
                x0: u32,
                out: &mut [f64],
            ) -> $crate::error::Result<()> {
                self.$field.cumulative_row(t, x0, out)
            }
            fn cumulative_col(
                &self,
                t: usize,
                y: u32,
                out: &mut [f64],
            ) -> $crate::error::Result<()> {
                self.$field.cumulative_col(t, y, out)
            }
            fn cumulative_vecmat(
                &self,
                t: usize,
                p: &[f64],
                out: &mut [f64],
            ) -> $crate::error::Result<()> {
                self.$field.cumulative_vecmat(t, p, out)
            }
            fn step_vecmat(
                &self,
                t: usize,
                p: &[f64],
                out: &mut [f64],
            ) -> $crate::error::Result<()> {
                self.$field.step_vecmat(t, p, out)
            }
            fn cumulative_matvec(
                &self,
                t: usize,
                r: &[f64],
                out: &mut [f64],
            ) -> $crate::error::Result<()> {
                $crate::kernel::ForwardKernel::cumulative_matvec(&self.$field, t, r, out)
            }
            fn stationary(&self, out: &mut [f64]) -> $crate::error::Result<()> {
                self.$field.stationary(out)
            }
        }
    };
}
pub(crate) use delegate_forward_kernel;

/// Validate D3PM betas `β_1..=β_T`: non-empty, each finite and in `[0, 1]`.
pub(crate) fn check_betas(betas: &[f64]) -> Result<()> {
    if betas.is_empty() {
        return Err(Error::invalid(
            "betas",
            "at least one beta (T ≥ 1) is required",
        ));
    }
    for (index, &b) in betas.iter().enumerate() {
        if !b.is_finite() {
            return Err(Error::NonFinite {
                arg: "betas",
                index,
                value: b,
            });
        }
        if !(0.0..=1.0).contains(&b) {
            return Err(Error::invalid(
                "betas",
                format!("beta_{} = {b} is outside [0, 1]", index + 1),
            ));
        }
    }
    Ok(())
}

/// Validate `transition_bands` for `V` states: `None` (full) or `Some(b)` with
/// `1 ≤ b ≤ V − 1`; returns the effective band count.
pub(crate) fn check_bands(bands: Option<usize>, v: usize) -> Result<usize> {
    match bands {
        None => Ok(v - 1),
        Some(b) if (1..v).contains(&b) => Ok(b),
        Some(b) => Err(Error::invalid(
            "transition_bands",
            format!(
                "{b} bands is outside 1..={} (use None for a full band)",
                v - 1
            ),
        )),
    }
}
