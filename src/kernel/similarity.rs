//! Similarity kernels: symmetric doubly-stochastic forward processes built from a similarity
//! matrix or from token embeddings (DESIGN §2 `kernel`, §3.1).
//!
//! One step mixes the identity with a symmetric doubly-stochastic matrix `S`,
//!
//! ```text
//! Q_t = (1 − β_t) I + β_t S,        t ∈ 1..=T,
//! ```
//!
//! so every `Q_t` is symmetric and doubly stochastic and the uniform law is stationary
//! (Austin et al. 2021, "Structured Denoising Diffusion Models in Discrete State-Spaces",
//! D3PM §3–4: structured transition matrices, nearest-neighbour kernels over embeddings;
//! EvoDiff's D3PM-BLOSUM, Alamdari et al. 2023, is the case `S = Sinkhorn(exp(BLOSUM62))`,
//! see [`super::blosum`]).
//!
//! All `Q_t` share the eigenvectors of `S`. With one f64 eigendecomposition
//! `S = U diag(λ) Uᵀ` at construction,
//!
//! ```text
//! Q̄_t = Q_1 ⋯ Q_t = U diag(d_t) Uᵀ,     d_{t,i} = Π_{s ≤ t} (1 − β_s + β_s λ_i),
//! ```
//!
//! and the continuous-time view with generator `R = S − I` (rows sum to 0) has
//! `exp(σ̄ R) = U diag(exp(σ̄ (λ − 1))) Uᵀ`. The `T × V` numbers `d_t` are precomputed, so a
//! cumulative row, column, `pᵀ Q̄_t` or `Q̄_t r` costs O(V²) and a one-step row O(V).
//!
//! `S` comes from a symmetric non-negative weight matrix `W` by symmetric Sinkhorn–Knopp
//! scaling ([`sinkhorn_symmetric`]): the positive diagonal `D` with `D W D` doubly stochastic
//! (Sinkhorn & Knopp 1967), computed by the symmetric iteration `d ← sqrt(d / (W d))` of
//! Knight 2008 ("The Sinkhorn–Knopp algorithm: convergence and applications", SIAM J.
//! Matrix Anal. Appl. 30(1)) and, where that crawls (nearly bipartite `S`), Newton's method
//! on the convex potential whose gradient is the row-sum error (cf. Knight & Ruiz 2013).
//!
//! **Round-off.** Entries computed through the eigenvectors carry an absolute error of a few
//! ulps times `V` (relative to the ℓ1 norm of the transformed vector). Values below
//! `4·V·ε` times that norm — true zeros, or probabilities too small for the eigen route to
//! resolve — are set to exactly 0, the same way in rows, columns and products, so that a
//! state is impossible in a row exactly when it is impossible in the matching column. Rows
//! are valid probability vectors that sum to 1 within ~`1e-13`.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::error::{Error, Result};
use crate::kernel::{ForwardKernel, check_state_out, check_step, check_vec_out};
use crate::linalg::symmetric_eigen;
use crate::validate;

mod knn;
mod sinkhorn;

pub use knn::knn_affinity;
pub use sinkhorn::{
    SINKHORN_FIXED_POINT_ITERS, SINKHORN_NEWTON_ITERS, SINKHORN_TOL, sinkhorn_symmetric,
    sinkhorn_symmetric_log,
};

/// Tolerance of [`Similarity::from_doubly_stochastic`] on row sums (`|Σ_j S_ij − 1|`).
/// Symmetry is checked to `1e-12` absolute.
pub const DOUBLY_STOCHASTIC_TOL: f64 = 1e-9;

/// A similarity (embedding / BLOSUM) forward kernel: `Q_t = (1 − β_t) I + β_t S` with `S`
/// symmetric and doubly stochastic (Austin et al. 2021, D3PM; Alamdari et al. 2023, EvoDiff).
///
/// Construct it from `S` ([`Similarity::from_doubly_stochastic`]), from a symmetric
/// similarity matrix ([`Similarity::from_similarity`]), from embeddings
/// ([`Similarity::from_embeddings_knn`]) or from BLOSUM62 ([`Similarity::blosum62`]).
/// See the [module documentation](self) for the eigen route and its costs.
#[derive(Debug, Clone)]
pub struct Similarity {
    /// `S`, `V × V`, exactly symmetric.
    s: Array2<f64>,
    /// Eigenvalues `λ` of `S` (non-decreasing).
    lambda: Array1<f64>,
    /// Orthonormal eigenvectors of `S` in the columns.
    u: Array2<f64>,
    /// `β_1..β_T`.
    betas: Vec<f64>,
    /// `(T + 1) × V`: row `t` holds `d_t` (row 0 is all ones).
    d: Array2<f64>,
}

impl Similarity {
    /// Kernel from a given symmetric doubly-stochastic `S` and schedule `β_1..β_T`:
    /// `Q_t = (1 − β_t) I + β_t S`.
    ///
    /// Validation: `S` square with `V ≥ 2`, finite, non-negative, symmetric to `1e-12`
    /// (absolute), every row summing to 1 within [`DOUBLY_STOCHASTIC_TOL`]; it is then
    /// symmetrised exactly, `(S + Sᵀ)/2`. `betas` non-empty, every `β_t ∈ [0, 1]`.
    /// Computes one eigendecomposition (`crate::linalg::symmetric_eigen`) and the table
    /// `d_{t,i} = Π_{s ≤ t} (1 − β_s + β_s λ_i)`. Row sums of `Q̄_t` are exact up to
    /// round-off when `S` is; a residual row-sum error `e` of `S` grows to at most `t·e`.
    ///
    /// ```
    /// use discrete_diffusion::kernel::{ForwardKernel, similarity::Similarity};
    /// let s = ndarray::array![[0.8, 0.2], [0.2, 0.8]];
    /// let k = Similarity::from_doubly_stochastic(s, &[0.5, 0.5]).unwrap();
    /// let mut row = [0.0; 2];
    /// k.cumulative_row(2, 0, &mut row).unwrap();
    /// // λ = {1, 0.6}: Q̄_2(0, 1) = (1 − 0.8²) / 2 = 0.18.
    /// assert!((row[1] - 0.18).abs() < 1e-15);
    /// ```
    pub fn from_doubly_stochastic(s: Array2<f64>, betas: &[f64]) -> Result<Self> {
        let v = check_square("s", s.view())?;
        check_betas(betas)?;
        for (idx, &x) in s.iter().enumerate() {
            if x < 0.0 {
                return Err(Error::invalid(
                    "s",
                    format!("entry ({}, {}) is negative ({x})", idx / v, idx % v),
                ));
            }
        }
        check_symmetric("s", s.view(), 1e-12)?;
        for (i, row) in s.rows().into_iter().enumerate() {
            let sum: f64 = row.sum();
            if (sum - 1.0).abs() > DOUBLY_STOCHASTIC_TOL {
                return Err(Error::invalid(
                    "s",
                    format!(
                        "row {i} sums to {sum}, not 1 (tolerance {DOUBLY_STOCHASTIC_TOL}); \
                         S must be doubly stochastic"
                    ),
                ));
            }
        }
        let s = symmetrised(s.view());
        let (lambda, u) = symmetric_eigen(s.view())?;
        let t_max = betas.len();
        let mut d = Array2::<f64>::ones((t_max + 1, v));
        for t in 1..=t_max {
            let b = betas[t - 1];
            for i in 0..v {
                d[[t, i]] = d[[t - 1, i]] * (1.0 - b + b * lambda[i]);
            }
        }
        Ok(Similarity {
            s,
            lambda,
            u,
            betas: betas.to_vec(),
            d,
        })
    }

    /// Kernel from a symmetric similarity (score) matrix: `W_ij = exp(sim_ij / temperature)`,
    /// `S = D W D` its symmetric Sinkhorn scaling ([`sinkhorn_symmetric`]), and
    /// `Q_t = (1 − β_t) I + β_t S`.
    ///
    /// Higher similarity means a likelier substitution; a small temperature concentrates `S`
    /// on the most similar pairs (and on the diagonal when self-similarity dominates).
    /// The scaling is computed from the log-weights `sim / temperature`
    /// ([`sinkhorn_symmetric_log`]), so any temperature works: as it goes to 0, `S` tends
    /// to the permutation(s) maximising `Σ_i sim(i, π(i))` (the identity for BLOSUM62).
    ///
    /// Errors: `sim` not square, `V < 2`, non-finite, or not symmetric to
    /// `1e-12 · max(1, max|sim|)`; `temperature` not finite and positive; bad `betas`
    /// (see [`Similarity::from_doubly_stochastic`]); Sinkhorn not converging
    /// ([`Error::Numerical`]; not expected, since every `W_ij > 0`).
    pub fn from_similarity(
        sim: ArrayView2<'_, f64>,
        temperature: f64,
        betas: &[f64],
    ) -> Result<Self> {
        check_square("sim", sim)?;
        let scale = sim.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        check_symmetric("sim", sim, 1e-12 * scale)?;
        check_temperature(temperature)?;
        check_betas(betas)?;
        let log_w = symmetrised(sim).mapv(|x| x / temperature);
        let s = sinkhorn_symmetric_log(log_w.view())?;
        Self::from_doubly_stochastic(s, betas)
    }

    /// Kernel over token embeddings `emb` (`[V, dim]`): the symmetrised `k`-nearest-neighbour
    /// graph with Gaussian affinities ([`knn_affinity`]), Sinkhorn-scaled to a doubly
    /// stochastic `S`, and `Q_t = (1 − β_t) I + β_t S`.
    ///
    /// This is the D3PM nearest-neighbour idea (Austin et al. 2021: corruption moves a token
    /// towards tokens that are close in embedding space) in the mixture form of this module;
    /// D3PM's own text kernel instead uses the matrix exponential `exp(α_t R)` of a rate
    /// matrix built from the symmetrised kNN adjacency; the analogous continuous-time view
    /// of this `S` is [`Similarity::generator_exp_row`] (`R = S − I`).
    ///
    /// Errors: as [`knn_affinity`], bad `betas`, or Sinkhorn not converging.
    pub fn from_embeddings_knn(
        emb: ArrayView2<'_, f64>,
        k: usize,
        bandwidth: f64,
        betas: &[f64],
    ) -> Result<Self> {
        check_betas(betas)?;
        let w = knn_affinity(emb, k, bandwidth)?;
        let s = sinkhorn_symmetric(w.view())?;
        Self::from_doubly_stochastic(s, betas)
    }

    /// The symmetric doubly-stochastic matrix `S` (`V × V`).
    pub fn matrix(&self) -> ArrayView2<'_, f64> {
        self.s.view()
    }

    /// Eigenvalues `λ` of `S`, non-decreasing; all lie in `[−1, 1]` and the largest is 1
    /// (eigenvector `1/√V`).
    pub fn eigenvalues(&self) -> ArrayView1<'_, f64> {
        self.lambda.view()
    }

    /// Orthonormal eigenvectors of `S` in the columns (`S = U diag(λ) Uᵀ`).
    pub fn eigenvectors(&self) -> ArrayView2<'_, f64> {
        self.u.view()
    }

    /// The schedule `β_1..β_T` (`betas()[t − 1] = β_t`).
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// The spectrum of `Q̄_t`: `d_{t,i} = Π_{s ≤ t} (1 − β_s + β_s λ_i)`, `t ∈ 0..=T`
    /// (`Q̄_t = U diag(d_t) Uᵀ`; `d_0 = 1`).
    pub fn cumulative_spectrum(&self, t: usize) -> Result<ArrayView1<'_, f64>> {
        check_step(t, self.betas.len(), true)?;
        Ok(self.d.row(t))
    }

    /// Generator row `R(x, ·)` of the continuous-time view `R = S − I`:
    /// `out[j] = S(x, j) − δ_{xj}` (rows sum to 0, off-diagonal rates non-negative).
    pub fn generator_row(&self, x: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.s.nrows(), out)?;
        let x = x as usize;
        for (o, &s) in out.iter_mut().zip(self.s.row(x)) {
            *o = s;
        }
        out[x] -= 1.0;
        Ok(())
    }

    /// Row of the continuous-time transition matrix `exp(σ̄ R)`, `R = S − I`:
    /// `out[j] = Σ_i U_{xi} exp(σ̄ (λ_i − 1)) U_{ji}`, from the construction-time
    /// eigendecomposition (O(V²)). `σ̄ = ∫σ` is the total noise, finite and `≥ 0`.
    ///
    /// `exp(σ̄ R)` is symmetric and doubly stochastic, so this is also its column; it tends
    /// to the uniform law as `σ̄ → ∞` when `S` is irreducible (SEDD/τLDR CTMC convention:
    /// rows of `R` sum to 0).
    pub fn generator_exp_row(&self, sigma_bar: f64, x: u32, out: &mut [f64]) -> Result<()> {
        check_sigma_bar(sigma_bar)?;
        let v = self.s.nrows();
        check_state_out("x", x, v, out)?;
        let x = x as usize;
        if sigma_bar == 0.0 {
            one_hot(x, out);
            return Ok(());
        }
        let w: Vec<f64> = (0..v)
            .map(|i| self.u[[x, i]] * (sigma_bar * (self.lambda[i] - 1.0)).exp())
            .collect();
        self.apply_u(&w, 1.0, out);
        Ok(())
    }

    /// `out = pᵀ exp(σ̄ R)`, `R = S − I`, for finite non-negative `p` of length `V` (O(V²)).
    pub fn generator_exp_vecmat(&self, sigma_bar: f64, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_sigma_bar(sigma_bar)?;
        check_vec_out(p, self.s.nrows(), out)?;
        if sigma_bar == 0.0 {
            out.copy_from_slice(p);
            return Ok(());
        }
        let mut y = self.apply_ut(p);
        for (yi, &l) in y.iter_mut().zip(self.lambda.iter()) {
            *yi *= (sigma_bar * (l - 1.0)).exp();
        }
        self.apply_u(&y, p.iter().sum(), out);
        Ok(())
    }

    /// `out = U w` with round-off snapped to 0: entries below `4·V·ε·scale` (`scale` = the
    /// ℓ1 norm of the vector being transformed, 1 for a row) are indistinguishable from
    /// round-off of a true 0 and are set to 0, identically for rows, columns and products
    /// (see the module's note on round-off).
    fn apply_u(&self, w: &[f64], scale: f64, out: &mut [f64]) {
        let floor = round_off_floor(out.len(), scale);
        for (o, row) in out.iter_mut().zip(self.u.rows()) {
            let x = dot_view(row, w);
            *o = if x < floor { 0.0 } else { x };
        }
    }

    /// `Uᵀ p`.
    fn apply_ut(&self, p: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; p.len()];
        for (&pj, row) in p.iter().zip(self.u.rows()) {
            if pj != 0.0 {
                for (yi, &uji) in y.iter_mut().zip(row.iter()) {
                    *yi += pj * uji;
                }
            }
        }
        y
    }

    /// `out = Q̄_t p = U diag(d_t) Uᵀ p` (already validated; `p` itself at `t = 0`).
    fn cumulative_apply(&self, t: usize, p: &[f64], out: &mut [f64]) {
        if t == 0 {
            out.copy_from_slice(p);
            return;
        }
        let mut y = self.apply_ut(p);
        for (yi, &di) in y.iter_mut().zip(self.d.row(t).iter()) {
            *yi *= di;
        }
        self.apply_u(&y, p.iter().map(|x| x.abs()).sum(), out);
    }

    /// Row `x` of `Q̄_t` for `t ≥ 1` (already validated).
    fn cumulative_row_unchecked(&self, t: usize, x: usize, out: &mut [f64]) {
        let d = self.d.row(t);
        let w: Vec<f64> = (0..d.len()).map(|i| self.u[[x, i]] * d[i]).collect();
        self.apply_u(&w, 1.0, out);
    }
}

impl ForwardKernel for Similarity {
    fn vocab_size(&self) -> usize {
        self.s.nrows()
    }

    fn num_steps(&self) -> usize {
        self.betas.len()
    }

    /// `out[j] = (1 − β_t) δ_{xj} + β_t S(x, j)`, O(V).
    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), false)?;
        check_state_out("x", x, self.s.nrows(), out)?;
        let x = x as usize;
        let b = self.betas[t - 1];
        for (o, &s) in out.iter_mut().zip(self.s.row(x)) {
            *o = b * s;
        }
        out[x] += 1.0 - b;
        Ok(())
    }

    /// `Q_t` is symmetric: the column equals the row.
    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), false)?;
        check_state_out("y", y, self.s.nrows(), out)?;
        self.step_row(t, y, out)
    }

    /// `out[j] = Σ_i U_{x0,i} d_{t,i} U_{j,i}`, O(V²); exact one-hot at `t = 0`.
    fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), true)?;
        check_state_out("x0", x0, self.s.nrows(), out)?;
        if t == 0 {
            one_hot(x0 as usize, out);
        } else {
            self.cumulative_row_unchecked(t, x0 as usize, out);
        }
        Ok(())
    }

    /// `Q̄_t` is symmetric: the column equals the row.
    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), true)?;
        check_state_out("y", y, self.s.nrows(), out)?;
        if t == 0 {
            one_hot(y as usize, out);
        } else {
            self.cumulative_row_unchecked(t, y as usize, out);
        }
        Ok(())
    }

    /// `out = pᵀ Q̄_t = U diag(d_t) Uᵀ p`, O(V²).
    fn cumulative_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), true)?;
        check_vec_out(p, self.s.nrows(), out)?;
        self.cumulative_apply(t, p, out);
        Ok(())
    }

    /// `out = Q̄_t r = U diag(d_t) Uᵀ r`, O(V²) (`Q̄_t` is symmetric, so this is the same
    /// product as [`cumulative_vecmat`](ForwardKernel::cumulative_vecmat)).
    fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), true)?;
        crate::kernel::check_named_vec_out("r", r, self.s.nrows(), out)?;
        self.cumulative_apply(t, r, out);
        Ok(())
    }

    /// `out = (1 − β_t) p + β_t S p` (`S` symmetric), O(V²).
    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_step(t, self.betas.len(), false)?;
        check_vec_out(p, self.s.nrows(), out)?;
        let b = self.betas[t - 1];
        for ((o, row), &pj) in out.iter_mut().zip(self.s.rows()).zip(p) {
            let sp = dot_view(row, p);
            *o = (1.0 - b) * pj + b * sp;
        }
        Ok(())
    }

    /// Uniform: `out[j] = 1/V` (every `Q_t` is doubly stochastic).
    fn stationary(&self, out: &mut [f64]) -> Result<()> {
        let v = self.s.nrows();
        validate::len("out", out.len(), v)?;
        out.fill(1.0 / v as f64);
        Ok(())
    }
}

/// `Σ_i a_i b_i` with eight independent accumulators (lets the compiler vectorise; the
/// result differs from a sequential sum only by round-off).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// [`dot`] of a matrix row (contiguous for our standard-layout matrices) with a slice.
fn dot_view(row: ArrayView1<'_, f64>, b: &[f64]) -> f64 {
    match row.as_slice() {
        Some(a) => dot(a, b),
        None => row.iter().zip(b).map(|(x, y)| x * y).sum(),
    }
}

/// `D W D` with `D = diag(d)`, exactly symmetric.
fn scaled(w: &Array2<f64>, d: &[f64]) -> Array2<f64> {
    let n = d.len();
    let mut s = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in i..n {
            let x = d[i] * w[[i, j]] * d[j];
            s[[i, j]] = x;
            s[[j, i]] = x;
        }
    }
    s
}

fn one_hot(x: usize, out: &mut [f64]) {
    out.fill(0.0);
    out[x] = 1.0;
}

/// `(A + Aᵀ) / 2`.
fn symmetrised(a: ArrayView2<'_, f64>) -> Array2<f64> {
    let n = a.nrows();
    Array2::from_shape_fn((n, n), |(i, j)| 0.5 * (a[[i, j]] + a[[j, i]]))
}

/// Square, `V ≥ 2`, finite. Returns `V`.
fn check_square(arg: &'static str, a: ArrayView2<'_, f64>) -> Result<usize> {
    let (n, m) = a.dim();
    if n != m {
        return Err(Error::shape(arg, "a square matrix", format!("{n}×{m}")));
    }
    validate::vocab(arg, n)?;
    validate::all_finite(arg, a.iter())?;
    Ok(n)
}

fn check_symmetric(arg: &'static str, a: ArrayView2<'_, f64>, tol: f64) -> Result<()> {
    let n = a.nrows();
    for i in 0..n {
        for j in 0..i {
            if (a[[i, j]] - a[[j, i]]).abs() > tol {
                return Err(Error::invalid(
                    arg,
                    format!(
                        "matrix is not symmetric: [{i},{j}] = {} but [{j},{i}] = {} \
                         (tolerance {tol:e})",
                        a[[i, j]],
                        a[[j, i]]
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_betas(betas: &[f64]) -> Result<()> {
    if betas.is_empty() {
        return Err(Error::invalid(
            "betas",
            "schedule is empty (need T ≥ 1 steps)",
        ));
    }
    for (i, &b) in betas.iter().enumerate() {
        if !(0.0..=1.0).contains(&b) {
            return Err(Error::invalid(
                "betas",
                format!("β_{} = betas[{i}] = {b} is not in [0, 1]", i + 1),
            ));
        }
    }
    Ok(())
}

fn check_temperature(temperature: f64) -> Result<()> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::invalid(
            "temperature",
            format!("{temperature} must be finite and positive"),
        ));
    }
    Ok(())
}

fn check_sigma_bar(sigma_bar: f64) -> Result<()> {
    if !(sigma_bar.is_finite() && sigma_bar >= 0.0) {
        return Err(Error::invalid(
            "sigma_bar",
            format!("total noise {sigma_bar} must be finite and non-negative"),
        ));
    }
    Ok(())
}

/// `4·V·ε·scale`: the absolute round-off level of an eigen-route product of length `V`.
pub(crate) fn round_off_floor(v: usize, scale: f64) -> f64 {
    4.0 * v as f64 * f64::EPSILON * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Two states: `S = [[1−a, a], [a, 1−a]]`, `λ = {1, 1−2a}`, so
    /// `Q̄_t(0, 1) = (1 − Π(1 − 2aβ_s)) / 2` and `exp(σ̄R)(0, 1) = (1 − e^{−2aσ̄}) / 2`.
    #[test]
    fn two_state_closed_forms() {
        let a = 0.3;
        let betas = [0.1, 0.5, 0.9];
        let k =
            Similarity::from_doubly_stochastic(array![[1.0 - a, a], [a, 1.0 - a]], &betas).unwrap();
        let mut out = [0.0; 2];
        let mut prod = 1.0;
        for t in 1..=3 {
            prod *= 1.0 - 2.0 * a * betas[t - 1];
            k.cumulative_row(t, 0, &mut out).unwrap();
            assert!((out[1] - 0.5 * (1.0 - prod)).abs() < 1e-15);
            assert!((out[0] - 0.5 * (1.0 + prod)).abs() < 1e-15);
        }
        k.generator_exp_row(0.7, 0, &mut out).unwrap();
        let e = (-2.0 * a * 0.7f64).exp();
        assert!((out[1] - 0.5 * (1.0 - e)).abs() < 1e-15);
    }

    #[test]
    fn sinkhorn_of_doubly_stochastic_is_identity_map() {
        let s = array![[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]];
        let out = sinkhorn_symmetric(s.view()).unwrap();
        assert!((&out - &s).iter().all(|x| x.abs() < 1e-15));
    }
}
