//! The matrix exponential `exp(A) = Σ_k A^k / k!` in f64.
//!
//! Two routes:
//!
//! * [`expm`]: any square matrix, by the scaling-and-squaring method with diagonal Padé
//!   approximants of degree 3, 5, 7, 9 or 13 chosen from the 1-norm (Higham 2005, "The
//!   scaling and squaring method for the matrix exponential revisited", SIAM J. Matrix
//!   Anal. Appl. 26(4), Algorithm 2.3). This is the algorithm behind MATLAB's `expm` and
//!   `scipy.linalg.expm` (without the later 2009 refinements).
//! * [`expm_symmetric`]: symmetric matrices, by one eigendecomposition `A = U Λ Uᵀ`,
//!   `exp(A) = U exp(Λ) Uᵀ`.
//!
//! Discrete diffusion uses them for CTMC transition matrices `exp(σ R)` of a generator `R`
//! (D3PM text's matrix-exponential kernels, Austin et al. 2021, App. A; SEDD; τLDR).

use faer::Mat;
use faer::linalg::solvers::Solve;
use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::linalg::symmetric_eigen;

/// Higham (2005), Table 2.3: `θ_m`, the largest `‖A‖₁` for which the degree-`m` Padé
/// approximant `r_m(A)` has backward error at most the unit roundoff `2⁻⁵³`.
const THETA: [(usize, f64); 5] = [
    (3, 1.495_585_217_958_292e-2),
    (5, 2.539_398_330_063_23e-1),
    (7, 9.504_178_996_162_932e-1),
    (9, 2.097_847_961_257_068e0),
    (13, 5.371_920_351_148_152e0),
];

/// Coefficients `b_0..=b_m` of the numerator `p_m(x) = Σ b_j x^j` of the diagonal Padé
/// approximant `r_m(x) = p_m(x) / p_m(−x)` to `eˣ` (Higham 2005, eq. 2.2 scaled to integers).
fn pade_coefficients(m: usize) -> &'static [f64] {
    match m {
        3 => &[120.0, 60.0, 12.0, 1.0],
        5 => &[30240.0, 15120.0, 3360.0, 420.0, 30.0, 1.0],
        7 => &[
            17_297_280.0,
            8_648_640.0,
            1_995_840.0,
            277_200.0,
            25_200.0,
            1_512.0,
            56.0,
            1.0,
        ],
        9 => &[
            17_643_225_600.0,
            8_821_612_800.0,
            2_075_673_600.0,
            302_702_400.0,
            30_270_240.0,
            2_162_160.0,
            110_880.0,
            3_960.0,
            90.0,
            1.0,
        ],
        _ => &[
            64_764_752_532_480_000.0,
            32_382_376_266_240_000.0,
            7_771_770_303_897_600.0,
            1_187_353_796_428_800.0,
            129_060_195_264_000.0,
            10_559_470_521_600.0,
            670_442_572_800.0,
            33_522_128_640.0,
            1_323_241_920.0,
            40_840_800.0,
            960_960.0,
            16_380.0,
            182.0,
            1.0,
        ],
    }
}

/// Validate a non-empty, square, finite matrix; returns its order `n`.
fn check_square_finite(a: ArrayView2<'_, f64>) -> Result<usize> {
    let (n, m) = a.dim();
    if n != m || n == 0 {
        return Err(Error::shape(
            "a",
            "a non-empty square matrix",
            format!("{n}×{m}"),
        ));
    }
    for (index, &x) in a.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite {
                arg: "a",
                index,
                value: x,
            });
        }
    }
    Ok(n)
}

/// Operator 1-norm `‖A‖₁ = max_j Σ_i |A_ij|` (largest absolute column sum).
fn norm1(a: &Mat<f64>) -> f64 {
    (0..a.ncols())
        .map(|j| (0..a.nrows()).map(|i| a[(i, j)].abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

/// `Σ_k c_k P_k + c_I·I` for matrices `P_k` of order `n`.
fn combine(n: usize, terms: &[(f64, &Mat<f64>)], identity: f64) -> Mat<f64> {
    Mat::from_fn(n, n, |i, j| {
        let mut s = if i == j { identity } else { 0.0 };
        for &(c, p) in terms {
            s += c * p[(i, j)];
        }
        s
    })
}

/// The numerator/denominator pieces `(U, V)` of `r_m(A) = (V − U)⁻¹ (V + U)`: `U` holds the
/// odd powers of `p_m(A)`, `V` the even ones (Higham 2005, eqs. 2.4 and 2.5 for `m = 13`).
fn pade_uv(a: &Mat<f64>, m: usize) -> (Mat<f64>, Mat<f64>) {
    let n = a.nrows();
    let b = pade_coefficients(m);
    let a2 = a * a;
    if m == 13 {
        let a4 = &a2 * &a2;
        let a6 = &a4 * &a2;
        let inner_u = combine(n, &[(b[13], &a6), (b[11], &a4), (b[9], &a2)], 0.0);
        let outer_u = combine(n, &[(b[7], &a6), (b[5], &a4), (b[3], &a2)], b[1]);
        let u = a * &(&(&a6 * &inner_u) + &outer_u);
        let inner_v = combine(n, &[(b[12], &a6), (b[10], &a4), (b[8], &a2)], 0.0);
        let outer_v = combine(n, &[(b[6], &a6), (b[4], &a4), (b[2], &a2)], b[0]);
        let v = &(&a6 * &inner_v) + &outer_v;
        return (u, v);
    }
    // m ∈ {3, 5, 7, 9}: powers A², A⁴, …, A^{m−1}.
    let mut powers: Vec<Mat<f64>> = vec![a2];
    while 2 * (powers.len() + 1) < m {
        let next = &powers[powers.len() - 1] * &powers[0];
        powers.push(next);
    }
    let odd: Vec<(f64, &Mat<f64>)> = powers
        .iter()
        .enumerate()
        .map(|(k, p)| (b[2 * k + 3], p))
        .collect();
    let even: Vec<(f64, &Mat<f64>)> = powers
        .iter()
        .enumerate()
        .map(|(k, p)| (b[2 * k + 2], p))
        .collect();
    let u = a * &combine(n, &odd, b[1]);
    let v = combine(n, &even, b[0]);
    (u, v)
}

/// Matrix exponential `exp(A)` of a square f64 matrix, by scaling and squaring with a
/// diagonal Padé approximant (Higham 2005, Algorithm 2.3).
///
/// With `‖A‖₁` the operator 1-norm and `θ_m` Higham's Table 2.3 thresholds
/// (`θ₃ ≈ 0.0150`, `θ₅ ≈ 0.254`, `θ₇ ≈ 0.950`, `θ₉ ≈ 2.10`, `θ₁₃ ≈ 5.37`):
///
/// 1. if `‖A‖₁ ≤ θ_m` for some `m ∈ {3, 5, 7, 9}` (smallest such `m`), return
///    `r_m(A) = p_m(−A)⁻¹ p_m(A)`;
/// 2. otherwise take `s = max(0, ⌈log₂(‖A‖₁ / θ₁₃)⌉)`, compute `X = r₁₃(A / 2ˢ)` and
///    square it `s` times: `exp(A) ≈ X^{2ˢ}`.
///
/// Writing `p_m(A) = V + U` with `V` the even and `U` the odd part, `p_m(−A) = V − U`, so
/// each approximant is one LU solve `(V − U) X = (V + U)` (faer's partial-pivoting LU).
/// The backward error is at most the unit roundoff in exact arithmetic; the forward error
/// is the usual `O(κ_exp(A)·u)`.
///
/// # Errors
/// [`Error::Shape`] if `a` is empty or not square, [`Error::NonFinite`] if an entry is NaN
/// or infinite, [`Error::Numerical`] if the result overflows (e.g. `exp(800·I)`).
///
/// ```
/// use ndarray::array;
/// let r = array![[-1.0, 1.0], [2.0, -2.0]];
/// let q = discrete_diffusion::linalg::expm::expm(r.view()).unwrap();
/// // Rows of exp(R) for a CTMC generator R sum to one.
/// assert!((q[[0, 0]] + q[[0, 1]] - 1.0).abs() < 1e-14);
/// ```
pub fn expm(a: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
    let n = check_square_finite(a)?;
    let mut m = Mat::<f64>::from_fn(n, n, |i, j| a[[i, j]]);
    let norm = norm1(&m);
    let (degree, squarings) = match THETA[..4].iter().find(|&&(_, theta)| norm <= theta) {
        Some(&(deg, _)) => (deg, 0u32),
        None => {
            let s = (norm / THETA[4].1).log2().ceil().max(0.0);
            // s ≤ log2(f64::MAX / θ13) ≈ 1022 because `a` is finite.
            (13, s as u32)
        }
    };
    if squarings > 0 {
        let scale = 0.5f64.powi(squarings as i32);
        m = Mat::from_fn(n, n, |i, j| m[(i, j)] * scale);
    }
    let (u, v) = pade_uv(&m, degree);
    let denom = &v - &u;
    let numer = &v + &u;
    let mut x = denom.partial_piv_lu().solve(&numer);
    for _ in 0..squarings {
        x = &x * &x;
    }
    let out = Array2::from_shape_fn((n, n), |(i, j)| x[(i, j)]);
    if let Some((index, &value)) = out.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::Numerical {
            what: "expm",
            reason: format!(
                "result is not finite (entry {index} = {value}); ‖A‖₁ = {norm} is too large"
            ),
        });
    }
    Ok(out)
}

/// Matrix exponential of a symmetric matrix through its eigendecomposition:
/// `A = U diag(λ) Uᵀ  ⇒  exp(A) = U diag(e^λ) Uᵀ`.
///
/// Exact up to the eigensolver's backward error (`O(u‖A‖)`), and the result is symmetric
/// by construction. `A` must be square, finite and symmetric to within `1e-12·max|A|`
/// (see [`symmetric_eigen`]).
///
/// # Errors
/// [`Error::Shape`], [`Error::NonFinite`], [`Error::InvalidArgument`] (not symmetric), or
/// [`Error::Numerical`] if the eigensolver fails or `e^λ` overflows.
///
/// ```
/// use ndarray::array;
/// let a = array![[0.0, 1.0], [1.0, 0.0]];
/// let e = discrete_diffusion::linalg::expm::expm_symmetric(a.view()).unwrap();
/// assert!((e[[0, 0]] - 1f64.cosh()).abs() < 1e-14 && (e[[0, 1]] - 1f64.sinh()).abs() < 1e-14);
/// ```
pub fn expm_symmetric(a: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
    check_square_finite(a)?;
    let (lam, u) = symmetric_eigen(a)?;
    let e = lam.mapv(f64::exp);
    if let Some((index, &value)) = lam.iter().enumerate().find(|(k, _)| !e[*k].is_finite()) {
        return Err(Error::Numerical {
            what: "expm_symmetric",
            reason: format!("exp of eigenvalue {index} ({value}) overflows"),
        });
    }
    let n = lam.len();
    let mut out = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in i..n {
            let mut s = 0.0;
            for k in 0..n {
                s += u[[i, k]] * e[k] * u[[j, k]];
            }
            out[[i, j]] = s;
            out[[j, i]] = s;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn every_pade_degree_matches_scalar_exp() {
        // 1×1 matrices exercise each branch: exp(x) for x just under each θ and far above.
        for &x in &[0.01, -0.2, 0.9, 2.0, 5.0, 40.0, -40.0] {
            let e = expm(array![[x]].view()).unwrap();
            let want = f64::exp(x);
            assert!(
                (e[[0, 0]] - want).abs() <= 4e-15 * want.max(1.0) * x.abs().max(1.0),
                "x = {x}: {} vs {want}",
                e[[0, 0]]
            );
        }
    }

    #[test]
    fn coefficients_are_pade() {
        // b_j = (2m − j)! m! / ((2m)! j! (m − j)!) · b_0 scaled: check the ratio recursion
        // b_{j+1}/b_j = (m − j) / ((j + 1)(2m − j)).
        for m in [3usize, 5, 7, 9, 13] {
            let b = pade_coefficients(m);
            assert_eq!(b.len(), m + 1);
            for j in 0..m {
                let ratio = (m - j) as f64 / (((j + 1) * (2 * m - j)) as f64);
                assert!((b[j + 1] / b[j] - ratio).abs() < 1e-15 * ratio.max(1.0));
            }
        }
    }
}
