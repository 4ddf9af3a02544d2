//! [`BandedToeplitz`]: the lean dense-cumulative representation of banded symmetric
//! Toeplitz kernels (D3PM images' Gaussian and banded uniform kernels; see the
//! [parent module](super)).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, CowArray, Ix2, s};

use super::check_banded_memory;
use crate::error::{Error, Result};
use crate::kernel::{ForwardKernel, check_state_out, check_step, check_vec_out};
use crate::validate;

/// The lean representation of a D3PM kernel whose one-step matrices are symmetric, banded
/// and Toeplitz off the diagonal (see the [module docs](super)):
///
/// ```text
/// Q_t[i, j] = w_{t,|i−j|}            for 1 ≤ |i − j| ≤ B,
/// Q_t[i, j] = 0                      for |i − j| > B,
/// Q_t[i, i] = 1 − Σ_{j≠i} Q_t[i, j]  (rows near the edges have fewer neighbours).
/// ```
///
/// `Q_t` is symmetric with unit row sums, hence doubly stochastic, and the uniform law is
/// stationary. D3PM images' Gaussian and (banded) uniform kernels have this form (Austin
/// et al. 2021, App. A.2.1–A.2.2).
///
/// **Storage.** The profiles `w_{t,1..=B}` and diagonals (`T·(B + V)` values) and the
/// cumulative matrices `Q̄_1, …, Q̄_T` (`T·V²` values; `Q̄_0 = I` is implicit). One-step
/// rows and columns cost `O(V)`, `pᵀ Q_t` costs `O(V·B)`; cumulative rows, columns,
/// `pᵀ Q̄_t` and `Q̄_t r` read the stored matrix (`O(V)`, `O(V)`, `O(V²)`, `O(V²)`).
///
/// **Construction.** `Q̄_1 = Q_1` and `Q̄_t = Q̄_{t−1} Q_t`, where column `j` of the
/// product only involves columns `j − R_t ..= j + R_t` of `Q̄_{t−1}` (`R_t ≤ B` is the
/// last non-zero profile entry, so exact zeros of the profile, e.g. an underflowed
/// Gaussian tail, cost nothing):
///
/// ```text
/// Q̄_t[i, j] = Σ_{k = j − R_t}^{j + R_t} Q̄_{t−1}[i, k] Q_t[k, j].
/// ```
///
/// The product is evaluated by column blocks of width [`BANDED_BLOCK`], each one dense
/// product of `Q̄_{t−1}[:, block ± R_t]` with the matching band block of `Q_t`, so a step
/// costs `2·V²·(BANDED_BLOCK + 2R_t)` flops at the speed of a blocked matrix product
/// (one full product when `2R_t + BANDED_BLOCK ≥ V`), instead of `2·V³`.
#[derive(Debug, Clone)]
pub struct BandedToeplitz {
    v: usize,
    bands: usize,
    /// `profiles[(t − 1)·B + d − 1] = w_{t,d}`.
    profiles: Vec<f64>,
    /// `diagonals[(t − 1)·V + i] = Q_t[i, i]`.
    diagonals: Vec<f64>,
    /// `reach[t − 1] = R_t`: the largest `d` with `w_{t,d} ≠ 0` (0 when `Q_t = I`).
    reach: Vec<usize>,
    /// `cumulative[(t − 1)·V²..t·V²] = Q̄_t` in row-major order, `t = 1..=T`.
    cumulative: Vec<f64>,
}

/// Column-block width of the banded cumulative product (see [`BandedToeplitz`]).
pub const BANDED_BLOCK: usize = 32;

/// The diagonal making each row of the banded Toeplitz matrix with off-diagonal profile
/// `w` (`w[d − 1] = Q[i, i ± d]`) sum to one: `diag[i] = 1 − Σ_{j ≠ i, |i−j| ≤ B} w[|i−j| − 1]`,
/// summed over `j` in increasing order.
fn toeplitz_diagonal(w: &[f64], diag: &mut [f64]) {
    let (v, bands) = (diag.len(), w.len());
    for (i, d) in diag.iter_mut().enumerate() {
        let mut off = 0.0;
        for j in i.saturating_sub(bands)..(i + bands + 1).min(v) {
            if j != i {
                off += w[i.abs_diff(j) - 1];
            }
        }
        *d = 1.0 - off;
    }
}

/// Write row `x` of the banded Toeplitz matrix with profile `w` and diagonal `diag`.
fn toeplitz_row(w: &[f64], diag: &[f64], x: usize, out: &mut [f64]) {
    out.fill(0.0);
    out[x] = diag[x];
    for (d, &wd) in (1..).zip(w) {
        if x >= d {
            out[x - d] = wd;
        }
        if x + d < out.len() {
            out[x + d] = wd;
        }
    }
}

/// The dense `V×V` banded Toeplitz matrix with off-diagonal profile `w`
/// (`w[d − 1] = Q[i, i ± d]`, `1 ≤ B = w.len() < V`) and the diagonal that makes its rows
/// sum to one ([`toeplitz_diagonal`]).
pub(crate) fn toeplitz_matrix(v: usize, w: &[f64]) -> Array2<f64> {
    let mut diag = vec![0.0; v];
    toeplitz_diagonal(w, &mut diag);
    dense_toeplitz(w, &diag)
}

/// The dense `V×V` banded Toeplitz matrix with profile `w` and diagonal `diag`.
fn dense_toeplitz(w: &[f64], diag: &[f64]) -> Array2<f64> {
    let v = diag.len();
    let mut q = Array2::zeros((v, v));
    fill_toeplitz(w, diag, q.view_mut());
    q
}

fn fill_toeplitz(w: &[f64], diag: &[f64], mut q: ArrayViewMut2<'_, f64>) {
    q.fill(0.0);
    let v = diag.len();
    for i in 0..v {
        q[[i, i]] = diag[i];
        for (d, &wd) in (1..).zip(w) {
            if i + d >= v {
                break;
            }
            q[[i, i + d]] = wd;
            q[[i + d, i]] = wd;
        }
    }
}

/// `next = prev · Q` for `V×V` row-major `prev` and a banded `Q` with reach `r` (entries
/// `Q[k, j] = 0` for `|k − j| > r`), by column blocks (see [`BandedToeplitz`]).
fn banded_product(prev: &[f64], q: ArrayView2<'_, f64>, r: usize, next: &mut [f64]) -> Result<()> {
    let v = q.nrows();
    let prev = ArrayView2::from_shape((v, v), prev).map_err(shape_err)?;
    let mut next = ArrayViewMut2::from_shape((v, v), next).map_err(shape_err)?;
    if 2 * r + BANDED_BLOCK >= v {
        ndarray::linalg::general_mat_mul(1.0, &prev, &q, 0.0, &mut next);
        return Ok(());
    }
    let mut j0 = 0;
    while j0 < v {
        let j1 = (j0 + BANDED_BLOCK).min(v);
        let (k0, k1) = (j0.saturating_sub(r), (j1 + r).min(v));
        let a = prev.slice(s![.., k0..k1]);
        let b = q.slice(s![k0..k1, j0..j1]);
        let mut c = next.slice_mut(s![.., j0..j1]);
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        j0 = j1;
    }
    Ok(())
}

impl BandedToeplitz {
    /// Build from the off-diagonal profiles `profiles[(t − 1)·B + d − 1] = w_{t,d}`
    /// (`t = 1..=T`, `d = 1..=B`; finite, non-negative, with every derived diagonal
    /// non-negative: the callers' constructions guarantee it) over `V` states.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (argument `betas`) when `T·V²` exceeds
    /// [`MAX_DENSE_ENTRIES`](super::MAX_DENSE_ENTRIES).
    pub(crate) fn new(v: usize, bands: usize, profiles: Vec<f64>) -> Result<Self> {
        debug_assert!(bands >= 1 && bands < v && profiles.len().is_multiple_of(bands));
        let t_max = profiles.len() / bands;
        check_banded_memory(t_max, v)?;
        let mut diagonals = vec![0.0; t_max * v];
        let mut reach = Vec::with_capacity(t_max);
        for (w, diag) in profiles
            .chunks_exact(bands)
            .zip(diagonals.chunks_exact_mut(v))
        {
            toeplitz_diagonal(w, diag);
            reach.push(w.iter().rposition(|&x| x != 0.0).map_or(0, |d| d + 1));
        }
        let vv = v * v;
        let mut cumulative = vec![0.0; t_max * vv];
        let mut q = Array2::<f64>::zeros((v, v));
        for t in 1..=t_max {
            let w = &profiles[(t - 1) * bands..t * bands];
            let diag = &diagonals[(t - 1) * v..t * v];
            if t == 1 {
                let q1 =
                    ArrayViewMut2::from_shape((v, v), &mut cumulative[..vv]).map_err(shape_err)?;
                fill_toeplitz(w, diag, q1);
                continue;
            }
            let (done, rest) = cumulative.split_at_mut((t - 1) * vv);
            let prev = &done[(t - 2) * vv..];
            let next = &mut rest[..vv];
            fill_toeplitz(&w[..reach[t - 1]], diag, q.view_mut());
            banded_product(prev, q.view(), reach[t - 1], next)?;
        }
        Ok(BandedToeplitz {
            v,
            bands,
            profiles,
            diagonals,
            reach,
            cumulative,
        })
    }

    /// The number of off-diagonal bands `B`.
    pub fn transition_bands(&self) -> usize {
        self.bands
    }

    /// The off-diagonal profile of `Q_t`, `t ∈ 1..=T`: `profile[d − 1] = Q_t[i, i ± d]`,
    /// `d = 1..=B` (length `B`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `t` is outside `1..=T`.
    pub fn step_profile(&self, t: usize) -> Result<&[f64]> {
        check_step(t, self.reach.len(), false)?;
        Ok(self.profile(t))
    }

    /// The diagonal of `Q_t`, `t ∈ 1..=T` (length `V`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `t` is outside `1..=T`.
    pub fn step_diagonal(&self, t: usize) -> Result<&[f64]> {
        check_step(t, self.reach.len(), false)?;
        Ok(self.diagonal(t))
    }

    /// The one-step matrix `Q_t`, `t ∈ 1..=T`, materialised (`O(V²)`; it is not stored).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `t` is outside `1..=T`.
    pub fn step_matrix(&self, t: usize) -> Result<Array2<f64>> {
        check_step(t, self.reach.len(), false)?;
        Ok(dense_toeplitz(self.profile(t), self.diagonal(t)))
    }

    /// The cumulative matrix `Q̄_t = Q_1 ⋯ Q_t`, `t ∈ 0..=T`: a view of the stored matrix
    /// for `t ≥ 1`, an owned identity for `t = 0` (which is not stored).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `t` is outside `0..=T`.
    pub fn cumulative_matrix(&self, t: usize) -> Result<CowArray<'_, f64, Ix2>> {
        check_step(t, self.reach.len(), true)?;
        if t == 0 {
            return Ok(CowArray::from(Array2::eye(self.v)));
        }
        ArrayView2::from_shape((self.v, self.v), self.cum(t))
            .map(CowArray::from)
            .map_err(shape_err)
    }

    /// Number of f64 values held: `T·V²` cumulative entries plus `T·(B + V)` for the
    /// one-step profiles and diagonals (times 8 for bytes).
    pub fn stored_values(&self) -> usize {
        self.cumulative.len() + self.profiles.len() + self.diagonals.len()
    }

    fn profile(&self, t: usize) -> &[f64] {
        &self.profiles[(t - 1) * self.bands..t * self.bands]
    }

    fn diagonal(&self, t: usize) -> &[f64] {
        &self.diagonals[(t - 1) * self.v..t * self.v]
    }

    /// `Q̄_t`, `t ≥ 1`, row-major.
    fn cum(&self, t: usize) -> &[f64] {
        let vv = self.v * self.v;
        &self.cumulative[(t - 1) * vv..t * vv]
    }
}

fn one_hot(x: usize, out: &mut [f64]) {
    out.fill(0.0);
    out[x] = 1.0;
}

impl ForwardKernel for BandedToeplitz {
    fn vocab_size(&self) -> usize {
        self.v
    }

    fn num_steps(&self) -> usize {
        self.reach.len()
    }

    /// Row `x` of `Q_t` from the profile and diagonal, `O(V)`.
    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.num_steps(), false)?;
        check_state_out("x", x, self.v, out)?;
        toeplitz_row(self.profile(t), self.diagonal(t), x as usize, out);
        Ok(())
    }

    /// `Q_t` is symmetric: column `y` is row `y`, `O(V)`.
    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.num_steps(), false)?;
        check_state_out("y", y, self.v, out)?;
        toeplitz_row(self.profile(t), self.diagonal(t), y as usize, out);
        Ok(())
    }

    fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.num_steps(), true)?;
        check_state_out("x0", x0, self.v, out)?;
        let x0 = x0 as usize;
        if t == 0 {
            one_hot(x0, out);
        } else {
            out.copy_from_slice(&self.cum(t)[x0 * self.v..(x0 + 1) * self.v]);
        }
        Ok(())
    }

    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.num_steps(), true)?;
        check_state_out("y", y, self.v, out)?;
        let y = y as usize;
        if t == 0 {
            one_hot(y, out);
        } else {
            for (o, row) in out.iter_mut().zip(self.cum(t).chunks_exact(self.v)) {
                *o = row[y];
            }
        }
        Ok(())
    }

    /// `pᵀ Q̄_t` from the stored matrix, `O(V²)`; `p` itself at `t = 0`.
    fn cumulative_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.num_steps(), true)?;
        check_vec_out(p, self.v, out)?;
        if t == 0 {
            out.copy_from_slice(p);
        } else {
            vecmat_rows(self.cum(t).chunks_exact(self.v), p, out);
        }
        Ok(())
    }

    /// `Q̄_t r` from the stored matrix, `O(V²)`; `r` itself at `t = 0`.
    fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.num_steps(), true)?;
        crate::kernel::check_named_vec_out("r", r, self.v, out)?;
        if t == 0 {
            out.copy_from_slice(r);
        } else {
            for (o, row) in out.iter_mut().zip(self.cum(t).chunks_exact(self.v)) {
                *o = row.iter().zip(r).map(|(q, x)| q * x).sum();
            }
        }
        Ok(())
    }

    /// `out[j] = Q_t[j, j] p_j + Σ_{d=1}^{R_t} w_{t,d} (p_{j−d} + p_{j+d})`, `O(V·B)`.
    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.num_steps(), false)?;
        check_vec_out(p, self.v, out)?;
        let v = self.v;
        for ((o, &x), &dg) in out.iter_mut().zip(p).zip(self.diagonal(t)) {
            *o = dg * x;
        }
        for (d, &wd) in (1..).zip(&self.profile(t)[..self.reach[t - 1]]) {
            for (o, &x) in out[d..].iter_mut().zip(&p[..v - d]) {
                *o += wd * x;
            }
            for (o, &x) in out[..v - d].iter_mut().zip(&p[d..]) {
                *o += wd * x;
            }
        }
        Ok(())
    }

    /// Uniform: every `Q_t` is doubly stochastic.
    fn stationary(&self, out: &mut [f64]) -> Result<()> {
        validate::len("out", out.len(), self.v)?;
        out.fill(1.0 / self.v as f64);
        Ok(())
    }
}

/// The (unreachable) error of viewing a `V²` slice as a `V×V` matrix.
fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::Numerical {
        what: "BandedToeplitz",
        reason: format!("cumulative storage has the wrong shape: {e}"),
    }
}

/// `out = pᵀ M` for a matrix given by its rows as slices (`O(V²)`).
fn vecmat_rows<'a>(rows: impl Iterator<Item = &'a [f64]>, p: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for (row, &w) in rows.zip(p) {
        if w != 0.0 {
            for (o, &x) in out.iter_mut().zip(row) {
                *o += w * x;
            }
        }
    }
}
