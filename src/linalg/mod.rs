//! Dense f64 linear algebra on top of [`faer`] (pure Rust, builds offline; see
//! `docs/dependencies.md` for why not ndarray-linalg).
//!
//! Used only where structure runs out: the symmetric eigendecomposition behind similarity
//! kernels and symmetric generators, and the Padé-13 matrix exponential ([`expm`]).

use faer::{Mat, Side};
use ndarray::{Array1, Array2, ArrayView2};

use crate::error::{Error, Result};

pub mod expm;

/// Symmetric eigendecomposition `A = U diag(λ) Uᵀ` in f64 (faer's self-adjoint EVD).
///
/// Returns `(λ, U)` with eigenvalues in non-decreasing order and orthonormal eigenvectors
/// in the columns of `U`. `A` must be square, finite and symmetric to within
/// `1e-12·max|A|` (only its lower triangle is read).
///
/// ```
/// use ndarray::array;
/// let a = array![[2.0, 1.0], [1.0, 2.0]];
/// let (lam, u) = discrete_diffusion::linalg::symmetric_eigen(a.view()).unwrap();
/// assert!((lam[0] - 1.0).abs() < 1e-12 && (lam[1] - 3.0).abs() < 1e-12);
/// let back = u.dot(&ndarray::Array2::from_diag(&lam)).dot(&u.t());
/// assert!((&back - &a).iter().all(|d| d.abs() < 1e-12));
/// ```
pub fn symmetric_eigen(a: ArrayView2<'_, f64>) -> Result<(Array1<f64>, Array2<f64>)> {
    let (n, m) = a.dim();
    if n != m || n == 0 {
        return Err(Error::shape(
            "a",
            "a non-empty square matrix",
            format!("{n}×{m}"),
        ));
    }
    let mut scale = 0.0f64;
    for (idx, &x) in a.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite {
                arg: "a",
                index: idx,
                value: x,
            });
        }
        scale = scale.max(x.abs());
    }
    for i in 0..n {
        for j in 0..i {
            if (a[[i, j]] - a[[j, i]]).abs() > 1e-12 * scale.max(1e-300) {
                return Err(Error::invalid(
                    "a",
                    format!(
                        "matrix is not symmetric: a[{i},{j}] = {} but a[{j},{i}] = {}",
                        a[[i, j]],
                        a[[j, i]]
                    ),
                ));
            }
        }
    }
    let fa = Mat::<f64>::from_fn(n, n, |i, j| a[[i, j]]);
    let evd = fa
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Numerical {
            what: "symmetric_eigen",
            reason: format!("{e:?}"),
        })?;
    let s = evd.S();
    let u = evd.U();
    let lam = Array1::from_shape_fn(n, |i| s[i]);
    let vecs = Array2::from_shape_fn((n, n), |(i, j)| u[(i, j)]);
    Ok((lam, vecs))
}
