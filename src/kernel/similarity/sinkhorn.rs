//! Symmetric Sinkhorn–Knopp scaling to a doubly-stochastic matrix (Sinkhorn & Knopp 1967;
//! Knight 2008; Newton as in Knight & Ruiz 2013), in a log-domain-stabilised form. Part of
//! [`super`]; re-exported there.

use ndarray::{Array2, ArrayView2};

use super::{check_symmetric, dot_view, scaled, symmetrised};
use crate::error::{Error, Result};
use crate::validate;

/// Acceptance tolerance of [`sinkhorn_symmetric`]: `max_i |Σ_j S_ij − 1| ≤ max(SINKHORN_TOL,
/// 8·V·ε)` (the second term, with `ε` = `f64::EPSILON`, only matters for `V > 5600`, where
/// the round-off of a row sum itself is that large). The iteration goes on past it, down to
/// the round-off floor, so in practice rows and columns of `S` sum to 1 within a few ulps.
pub const SINKHORN_TOL: f64 = 1e-12;

/// Cap on the O(V²) fixed-point sweeps `d ← sqrt(d / (W d))` of [`sinkhorn_symmetric`]
/// before it switches to Newton's method.
pub const SINKHORN_FIXED_POINT_ITERS: usize = 300;

/// Cap on the O(V³) Newton steps of [`sinkhorn_symmetric`].
pub const SINKHORN_NEWTON_ITERS: usize = 100;

/// Symmetric Sinkhorn–Knopp scaling: the doubly-stochastic `S = D W D` of a symmetric
/// non-negative `W`, with `D = diag(d)`, `d > 0` (Sinkhorn & Knopp 1967).
///
/// Works with `u = ln d` and `log W` (see [`sinkhorn_symmetric_log`], which this calls with
/// `log W`, `−∞` for zero weights), in two phases on the row sums `r_i = d_i (W d)_i`:
///
/// 1. the symmetric fixed-point iteration `d ← sqrt(d / (W d))` (Knight 2008), O(V²) per
///    sweep, at most [`SINKHORN_FIXED_POINT_ITERS`] sweeps (in the log domain,
///    `u_i ← u_i − ½ log r_i` with log-sum-exp, when the finite `log W` span more than 600,
///    where `exp` would underflow). It converges linearly at rate `(1 − λ_min(S))/2`: fast
///    unless `S` is nearly bipartite (`λ_min(S) ≈ −1`, e.g. similarities that prefer
///    *other* tokens to self);
/// 2. if that has not reached the round-off floor `2·V·ε` (or stalls above `16·V·ε`),
///    Newton's method (cf. Knight & Ruiz 2013, "A fast algorithm for matrix balancing") on
///    the strictly convex potential `f(u) = ½ Σ_ij W_ij e^{u_i + u_j} − Σ_i u_i`, whose
///    gradient is `r − 1` and Hessian `diag(r) + D W D`: dense Cholesky solves (O(V³) per
///    step, at most [`SINKHORN_NEWTON_ITERS`] steps) with a backtracking line search, `S`
///    recomputed from `log W` at every step so that no weight is lost to underflow.
///
/// Newton stops at the floor or when a step no longer makes progress; the result is
/// accepted when `max_i |r_i − 1| ≤ max(`[`SINKHORN_TOL`]`, 8·V·ε)`. `S` is returned
/// exactly symmetric. An exact scaling exists (and is unique) iff `W` has total support
/// (e.g. a positive diagonal, or all entries positive); for a symmetric `W` it coincides
/// with the limit of alternating row/column normalisation. When `W` has support but not
/// total support, that limit is doubly stochastic with the entries on no positive
/// diagonal driven to 0, and it is returned if reached within the tolerance.
///
/// Errors: `W` not square, empty, non-finite, negative, not symmetric to
/// `1e-12 · max W`, or with an all-zero row; [`Error::Numerical`] when the tolerance is not
/// reached (no doubly-stochastic limit, e.g. no support, or pathological conditioning).
pub fn sinkhorn_symmetric(w: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
    let (n, m) = w.dim();
    if n != m || n == 0 {
        return Err(Error::shape(
            "w",
            "a non-empty square matrix",
            format!("{n}×{m}"),
        ));
    }
    validate::all_finite("w", w.iter())?;
    let mut wmax = 0.0f64;
    for (idx, &x) in w.iter().enumerate() {
        if x < 0.0 {
            return Err(Error::invalid(
                "w",
                format!("entry ({}, {}) is negative ({x})", idx / n, idx % n),
            ));
        }
        wmax = wmax.max(x);
    }
    check_symmetric("w", w, 1e-12 * wmax)?;
    for (i, row) in w.rows().into_iter().enumerate() {
        if row.iter().all(|&x| x == 0.0) {
            return Err(Error::invalid(
                "w",
                format!("row {i} is all zero: no doubly-stochastic scaling exists"),
            ));
        }
    }
    // Constant factors do not change the scaled matrix; normalise max W to 1.
    let l = symmetrised(w).mapv(|x| (x / wmax).ln());
    scale_log(&l)
}

/// [`sinkhorn_symmetric`] from log-weights: the doubly-stochastic `S = D W D` with
/// `W_ij = exp(log_w_ij)`, for log-weights of any range (`−∞` means `W_ij = 0`).
///
/// `exp(log_w)` of a wide-ranged `log_w` (e.g. similarities over a small temperature)
/// underflows to a matrix that may lack support although the scaling exists; this works
/// with `log_w + u_i + u_j` throughout instead (same algorithm and tolerances as
/// [`sinkhorn_symmetric`]).
///
/// Errors: `log_w` not square, empty, with NaN or `+∞`, not symmetric to
/// `1e-12 · max(1, max|log_w|)` over finite entries, or with a row that is all `−∞`; then
/// [`Error::Numerical`] as in [`sinkhorn_symmetric`].
pub fn sinkhorn_symmetric_log(log_w: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
    let (n, m) = log_w.dim();
    if n != m || n == 0 {
        return Err(Error::shape(
            "log_w",
            "a non-empty square matrix",
            format!("{n}×{m}"),
        ));
    }
    let mut scale = 1.0f64;
    for (idx, &x) in log_w.iter().enumerate() {
        if x.is_nan() || x == f64::INFINITY {
            return Err(Error::NonFinite {
                arg: "log_w",
                index: idx,
                value: x,
            });
        }
        if x.is_finite() {
            scale = scale.max(x.abs());
        }
    }
    for i in 0..n {
        for j in 0..i {
            let (a, b) = (log_w[[i, j]], log_w[[j, i]]);
            let same = if a.is_finite() && b.is_finite() {
                (a - b).abs() <= 1e-12 * scale
            } else {
                a == b
            };
            if !same {
                return Err(Error::invalid(
                    "log_w",
                    format!("matrix is not symmetric: [{i},{j}] = {a} but [{j},{i}] = {b}"),
                ));
            }
        }
        if log_w.row(i).iter().all(|&x| x == f64::NEG_INFINITY) {
            return Err(Error::invalid(
                "log_w",
                format!("row {i} is all −∞ (zero weight): no doubly-stochastic scaling exists"),
            ));
        }
    }
    let l = Array2::from_shape_fn((n, n), |(i, j)| {
        let (a, b) = (log_w[[i, j]], log_w[[j, i]]);
        if a.is_finite() { 0.5 * (a + b) } else { a }
    });
    scale_log(&l)
}

/// The scaling core on validated, exactly symmetric log-weights `l` (`−∞` allowed, no
/// all-`−∞` row).
fn scale_log(l: &Array2<f64>) -> Result<Array2<f64>> {
    let n = l.nrows();
    let tol = SINKHORN_TOL.max(8.0 * n as f64 * f64::EPSILON);
    let floor = 2.0 * n as f64 * f64::EPSILON;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in l.iter().filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    // Start: each row's largest weight becomes ≤ 1.
    let mut u: Vec<f64> = l
        .rows()
        .into_iter()
        .map(|row| -0.5 * row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b)))
        .collect();
    let mut r = vec![0.0; n];
    let mut err = f64::INFINITY;

    // Phase 1: fixed-point sweeps.
    if hi - lo <= 600.0 {
        // Plain domain: every non-zero weight of W' = exp(l + u_i + u_j) is representable.
        let w = scaled_log(l, &u);
        let mut d = vec![1.0; n];
        for _ in 0..SINKHORN_FIXED_POINT_ITERS {
            let prev = err;
            err = row_sums(&w, &d, &mut r)?;
            if err <= floor || (err <= 8.0 * floor && err >= prev) {
                return Ok(scaled(&w, &d));
            }
            if err >= prev && err <= tol {
                break; // stalled above the round-off level: let Newton polish
            }
            for (di, &ri) in d.iter_mut().zip(&r) {
                *di /= ri.sqrt();
            }
        }
        for (ui, di) in u.iter_mut().zip(&d) {
            *ui += di.ln();
        }
    } else {
        // Log domain: log r_i = u_i + logsumexp_j(l_ij + u_j).
        for _ in 0..SINKHORN_FIXED_POINT_ITERS {
            let prev = err;
            err = 0.0;
            for (i, ri) in r.iter_mut().enumerate() {
                let row = l.row(i);
                let mx = row
                    .iter()
                    .zip(&u)
                    .map(|(a, b)| a + b)
                    .fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = row.iter().zip(&u).map(|(a, b)| (a + b - mx).exp()).sum();
                *ri = u[i] + mx + sum.ln();
                err = err.max(ri.exp_m1().abs());
            }
            if !err.is_finite() || (err >= prev && err <= tol) {
                break;
            }
            for (ui, lr) in u.iter_mut().zip(&r) {
                *ui -= 0.5 * lr;
            }
        }
    }

    // Phase 2: damped Newton on f(u) = ½ Σ W_ij e^{u_i+u_j} − Σ u_i. The iterate is
    // u + v: a base W' = exp(l + u_i + u_j), computed from `l` (so underflowed weights
    // revive), and a multiplicative correction S = diag(e^v) W' diag(e^v), which keeps
    // the final digits exact; the correction is folded into the base when it grows.
    let mut base = scaled_log(l, &u);
    let mut v = vec![0.0; n];
    let mut s = base.clone();
    err = sums_and_error(&s, &mut r);
    for _ in 0..SINKHORN_NEWTON_ITERS {
        if err <= floor {
            break;
        }
        let g: Vec<f64> = r.iter().map(|x| x - 1.0).collect();
        let mut h = s.clone();
        for i in 0..n {
            h[[i, i]] += r[i];
        }
        let Some(step) = solve_spd(h, &g) else {
            break;
        };
        // Newton direction δ = −H⁻¹ g; directional derivative gᵀδ < 0.
        let slope: f64 = -g.iter().zip(&step).map(|(a, b)| a * b).sum::<f64>();
        let sum_uv = |v: &[f64]| u.iter().sum::<f64>() + v.iter().sum::<f64>();
        let f0 = 0.5 * r.iter().sum::<f64>() - sum_uv(&v);
        let mut t = 1.0;
        let mut accepted = false;
        let mut r_new = vec![0.0; n];
        for _ in 0..60 {
            let v_new: Vec<f64> = v.iter().zip(&step).map(|(a, b)| a - t * b).collect();
            let big = v_new.iter().any(|x| x.abs() > 30.0);
            let (s_new, base_new, u_new, v_new) = if big {
                let u_new: Vec<f64> = u.iter().zip(&v_new).map(|(a, b)| a + b).collect();
                let b = scaled_log(l, &u_new);
                (b.clone(), Some(b), u_new, vec![0.0; n])
            } else {
                let e: Vec<f64> = v_new.iter().map(|x| x.exp()).collect();
                (scaled(&base, &e), None, u.clone(), v_new)
            };
            let e1 = sums_and_error(&s_new, &mut r_new);
            if e1.is_finite() {
                let f1 = 0.5 * r_new.iter().sum::<f64>()
                    - (u_new.iter().sum::<f64>() + v_new.iter().sum::<f64>());
                // Armijo on f, or (near the optimum, where f is flat to round-off) a
                // decrease of the residual.
                if f1 <= f0 + 1e-4 * t * slope || e1 < err {
                    accepted = true;
                    if let Some(b) = base_new {
                        base = b;
                    }
                    u = u_new;
                    v = v_new;
                    s = s_new;
                    r.clone_from(&r_new);
                    err = e1;
                    break;
                }
            }
            t *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    if err.is_finite() && err <= tol {
        return Ok(s);
    }
    Err(Error::Numerical {
        what: "sinkhorn_symmetric",
        reason: format!(
            "no convergence: max row-sum error {err:e} > {tol:e} after fixed-point sweeps \
             and Newton; W has no doubly-stochastic scaling or limit (it lacks support: no \
             positive diagonal)"
        ),
    })
}

/// `r_i = d_i (W d)_i`; returns `max_i |r_i − 1|`, or an error if a sum leaves `(0, ∞)`.
fn row_sums(w: &Array2<f64>, d: &[f64], r: &mut [f64]) -> Result<f64> {
    let mut err = 0.0f64;
    for (i, row) in w.rows().into_iter().enumerate() {
        r[i] = d[i] * dot_view(row, d);
        if !(r[i].is_finite() && r[i] > 0.0) {
            return Err(Error::Numerical {
                what: "sinkhorn_symmetric",
                reason: format!("row sum {i} left the positive finite range ({})", r[i]),
            });
        }
        err = err.max((r[i] - 1.0).abs());
    }
    Ok(err)
}

/// Row sums of `s` into `r`; returns `max_i |r_i − 1|` (infinite if a sum is not finite).
fn sums_and_error(s: &Array2<f64>, r: &mut [f64]) -> f64 {
    let mut err = 0.0f64;
    for (ri, row) in r.iter_mut().zip(s.rows()) {
        *ri = row.sum();
        if !ri.is_finite() {
            return f64::INFINITY;
        }
        err = err.max((*ri - 1.0).abs());
    }
    err
}

/// `exp(l_ij + u_i + u_j)`, exactly symmetric.
fn scaled_log(l: &Array2<f64>, u: &[f64]) -> Array2<f64> {
    let n = u.len();
    let mut s = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in i..n {
            let x = (l[[i, j]] + u[i] + u[j]).exp();
            s[[i, j]] = x;
            s[[j, i]] = x;
        }
    }
    s
}

/// Solve `H x = b` for symmetric positive (semi-)definite `H` by Cholesky, adding a growing
/// diagonal jitter if a pivot is not positive. `None` if that fails too.
fn solve_spd(h: Array2<f64>, b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = (0..n).map(|i| h[[i, i]]).fold(0.0f64, f64::max);
    let mut jitter = 0.0;
    for _ in 0..12 {
        let mut l = h.clone();
        let mut ok = true;
        for j in 0..n {
            let mut diag = l[[j, j]] + jitter;
            for k in 0..j {
                diag -= l[[j, k]] * l[[j, k]];
            }
            if !(diag > 0.0 && diag.is_finite()) {
                ok = false;
                break;
            }
            let ljj = diag.sqrt();
            l[[j, j]] = ljj;
            for i in (j + 1)..n {
                let mut x = l[[i, j]];
                for k in 0..j {
                    x -= l[[i, k]] * l[[j, k]];
                }
                l[[i, j]] = x / ljj;
            }
        }
        if ok {
            let mut y = b.to_vec();
            for i in 0..n {
                for k in 0..i {
                    y[i] -= l[[i, k]] * y[k];
                }
                y[i] /= l[[i, i]];
            }
            for i in (0..n).rev() {
                for k in (i + 1)..n {
                    y[i] -= l[[k, i]] * y[k];
                }
                y[i] /= l[[i, i]];
            }
            return Some(y);
        }
        jitter = if jitter == 0.0 {
            1e-14 * scale
        } else {
            jitter * 100.0
        };
    }
    None
}
