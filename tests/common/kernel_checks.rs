//! Generic identity checks for any `&dyn ForwardKernel` (DESIGN §4, "exact identities").
//!
//! Include from a test file with
//! `#[path = "common/kernel_checks.rs"] mod kernel_checks;` and call [`check_all`] (or the
//! individual checks) on small kernels (`V ≲ 64`, dense products are O(T·V³)).
//! Every check panics with a message naming the identity, step and indices on failure.
#![allow(dead_code, clippy::needless_range_loop)]

use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::posterior::{
    PosteriorWorkspace, p_reverse_joint, p_reverse_mixture, q_posterior,
};

/// Dense one-step matrix `Q_t` from `step_row`.
pub fn dense_step(k: &dyn ForwardKernel, t: usize) -> Vec<Vec<f64>> {
    let v = k.vocab_size();
    (0..v)
        .map(|x| {
            let mut r = vec![0.0; v];
            k.step_row(t, x as u32, &mut r).unwrap();
            r
        })
        .collect()
}

/// Dense cumulative matrix `Q̄_t` from `cumulative_row`.
pub fn dense_cumulative(k: &dyn ForwardKernel, t: usize) -> Vec<Vec<f64>> {
    let v = k.vocab_size();
    (0..v)
        .map(|x| {
            let mut r = vec![0.0; v];
            k.cumulative_row(t, x as u32, &mut r).unwrap();
            r
        })
        .collect()
}

/// Dense product `A B`.
pub fn matmul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let m = b[0].len();
    let mut c = vec![vec![0.0; m]; n];
    for i in 0..n {
        for (k, bk) in b.iter().enumerate() {
            let aik = a[i][k];
            if aik != 0.0 {
                for j in 0..m {
                    c[i][j] += aik * bk[j];
                }
            }
        }
    }
    c
}

fn assert_near(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * (1.0 + want.abs()),
        "{what}: got {got:e}, want {want:e} (tol {tol:e})"
    );
}

/// A deterministic non-negative test vector (not normalised) of length `v`.
pub fn test_vector(v: usize, salt: u64) -> Vec<f64> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..v)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Rows of `Q_t` (t ∈ 1..=T) and `Q̄_t` (t ∈ 0..=T) are distributions; `Q̄_0 = I`;
/// `stationary` is a distribution.
pub fn check_rows_stochastic(k: &dyn ForwardKernel, tol: f64) {
    let (v, n) = (k.vocab_size(), k.num_steps());
    for t in 0..=n {
        let mats: Vec<(&str, Vec<Vec<f64>>)> = if t == 0 {
            vec![("Q̄", dense_cumulative(k, t))]
        } else {
            vec![("Q", dense_step(k, t)), ("Q̄", dense_cumulative(k, t))]
        };
        for (name, m) in mats {
            for (x, row) in m.iter().enumerate() {
                for (j, &e) in row.iter().enumerate() {
                    assert!(
                        e.is_finite() && e >= -tol,
                        "{name}_{t}[{x},{j}] = {e} is negative"
                    );
                }
                assert_near(
                    &format!("Σ_j {name}_{t}[{x},j]"),
                    row.iter().sum(),
                    1.0,
                    tol,
                );
            }
        }
    }
    let id = dense_cumulative(k, 0);
    for i in 0..v {
        for j in 0..v {
            assert_near(
                &format!("Q̄_0[{i},{j}]"),
                id[i][j],
                (i == j) as u8 as f64,
                tol,
            );
        }
    }
    let mut pi = vec![0.0; v];
    k.stationary(&mut pi).unwrap();
    assert!(
        pi.iter().all(|&p| p >= 0.0),
        "stationary has a negative entry"
    );
    assert_near("Σ stationary", pi.iter().sum(), 1.0, tol);
}

/// `Q̄_t = Q̄_{t−1} Q_t` by explicit dense products, for every `t ∈ 1..=T`.
pub fn check_chapman_kolmogorov(k: &dyn ForwardKernel, tol: f64) {
    let n = k.num_steps();
    let mut prod = dense_cumulative(k, 0);
    for t in 1..=n {
        prod = matmul(&prod, &dense_step(k, t));
        let cum = dense_cumulative(k, t);
        for (i, (a, b)) in prod.iter().zip(&cum).enumerate() {
            for (j, (&x, &y)) in a.iter().zip(b).enumerate() {
                assert_near(&format!("(Q_1⋯Q_{t})[{i},{j}] vs Q̄_{t}"), y, x, tol);
            }
        }
    }
}

/// Columns agree with rows; `vecmat` agrees with `Σ_i p_i row_i`, for one-step and
/// cumulative matrices.
pub fn check_cols_and_vecmat(k: &dyn ForwardKernel, tol: f64) {
    let (v, n) = (k.vocab_size(), k.num_steps());
    let mut col = vec![0.0; v];
    let mut out = vec![0.0; v];
    for t in 0..=n {
        let cum = dense_cumulative(k, t);
        let step = (t > 0).then(|| dense_step(k, t));
        for y in 0..v {
            k.cumulative_col(t, y as u32, &mut col).unwrap();
            for i in 0..v {
                assert_near(&format!("Q̄_{t} col {y} row {i}"), col[i], cum[i][y], tol);
            }
            if let Some(s) = &step {
                k.step_col(t, y as u32, &mut col).unwrap();
                for i in 0..v {
                    assert_near(&format!("Q_{t} col {y} row {i}"), col[i], s[i][y], tol);
                }
            }
        }
        let p = test_vector(v, t as u64);
        k.cumulative_vecmat(t, &p, &mut out).unwrap();
        for j in 0..v {
            let want: f64 = (0..v).map(|i| p[i] * cum[i][j]).sum();
            assert_near(&format!("(pᵀQ̄_{t})[{j}]"), out[j], want, tol);
        }
        if let Some(s) = &step {
            k.step_vecmat(t, &p, &mut out).unwrap();
            for j in 0..v {
                let want: f64 = (0..v).map(|i| p[i] * s[i][j]).sum();
                assert_near(&format!("(pᵀQ_{t})[{j}]"), out[j], want, tol);
            }
        }
    }
}

/// Likelihoods `Q̄_t(x0, x_t)` at or below this are round-off level for kernels evaluated by
/// an eigendecomposition or a Padé approximant (an exact zero may come out as `±1e-17`,
/// clamped to 0 in one access path and not in another): there `q_posterior` may either
/// err or succeed, and its value is not compared (its weight in the marginalisation check
/// is below this threshold anyway).
pub const ROUNDOFF_LIKELIHOOD: f64 = 1e-14;

/// Absolute accuracy assumed for one matrix entry (`≈ ε_f64`): posterior ratios with a small
/// denominator `Q̄_t(x0, x_t)` are compared to `tol + V·ENTRY_ABS_ERR/Q̄_t(x0, x_t)`.
pub const ENTRY_ABS_ERR: f64 = 2.3e-16;

/// `q_posterior` equals Bayes' rule on dense matrices (or errs exactly when
/// `Q̄_t(x0, x_t) = 0`), and marginalising it over `x_t ~ q(x_t | x0)` recovers
/// `q(x_{t−1} | x0)`. See [`ROUNDOFF_LIKELIHOOD`] for likelihoods at round-off level.
pub fn check_posterior(k: &dyn ForwardKernel, tol: f64) {
    let (v, n) = (k.vocab_size(), k.num_steps());
    let mut ws = PosteriorWorkspace::new(v);
    let mut out = vec![0.0; v];
    for t in 1..=n {
        let prev = dense_cumulative(k, t - 1);
        let step = dense_step(k, t);
        let cum = dense_cumulative(k, t);
        for x0 in 0..v {
            let mut marg = vec![0.0; v];
            for xt in 0..v {
                let res = q_posterior(k, t, xt as u32, x0 as u32, &mut ws, &mut out);
                if cum[x0][xt] == 0.0 {
                    assert!(
                        res.is_err(),
                        "q_posterior t={t} x0={x0} xt={xt} must be infeasible"
                    );
                    continue;
                }
                if cum[x0][xt] <= ROUNDOFF_LIKELIHOOD {
                    continue;
                }
                res.unwrap_or_else(|e| {
                    panic!(
                        "q_posterior t={t} x0={x0} xt={xt} (Q̄_t = {:e}): {e:?}",
                        cum[x0][xt]
                    )
                });
                // Entries of eigen/Padé kernels carry an absolute error of a few ulps of 1,
                // so a ratio with denominator Q̄_t(x0, x_t) is accurate to ~V·ε/Q̄_t.
                let ptol = tol + ENTRY_ABS_ERR * v as f64 / cum[x0][xt];
                for j in 0..v {
                    let want = prev[x0][j] * step[j][xt] / cum[x0][xt];
                    assert_near(
                        &format!("q(x_{{t−1}}={j}|x_t={xt},x0={x0}) t={t}"),
                        out[j],
                        want,
                        ptol,
                    );
                    marg[j] += cum[x0][xt] * out[j];
                }
            }
            for j in 0..v {
                assert_near(
                    &format!("Σ_xt q(xt|x0) q(x_{{t−1}}={j}|xt,x0) t={t} x0={x0}"),
                    marg[j],
                    prev[x0][j],
                    tol,
                );
            }
        }
    }
}

/// `p_reverse_joint` and `p_reverse_mixture` equal their dense definitions for a
/// deterministic predicted law `p̃`, at every step and every `x_t` where they are defined.
pub fn check_reverse_forms(k: &dyn ForwardKernel, tol: f64) {
    let (v, n) = (k.vocab_size(), k.num_steps());
    let mut ws = PosteriorWorkspace::new(v);
    let mut out = vec![0.0; v];
    let mut p0 = test_vector(v, 77);
    let s: f64 = p0.iter().sum();
    p0.iter_mut().for_each(|x| *x /= s);
    for t in 1..=n {
        let prev = dense_cumulative(k, t - 1);
        let step = dense_step(k, t);
        let cum = dense_cumulative(k, t);
        for xt in 0..v {
            // Joint: Σ_x0 p̃(x0) Q̄_{t−1}(x0, j) Q_t(j, xt), normalised.
            let mut joint: Vec<f64> = (0..v)
                .map(|j| (0..v).map(|x0| p0[x0] * prev[x0][j]).sum::<f64>() * step[j][xt])
                .collect();
            let z: f64 = joint.iter().sum();
            let res = p_reverse_joint(k, t, xt as u32, &p0, &mut ws, &mut out);
            if z == 0.0 {
                assert!(res.is_err(), "p_reverse_joint t={t} xt={xt} must fail");
            } else {
                res.unwrap();
                joint.iter_mut().for_each(|x| *x /= z);
                for j in 0..v {
                    assert_near(
                        &format!("p_joint t={t} xt={xt} [{j}]"),
                        out[j],
                        joint[j],
                        tol,
                    );
                }
            }
            // Mixture: Σ_{x0 feasible} w(x0) q(x_{t−1} | xt, x0). Skipped where a feasible
            // x0 has a round-off-level likelihood (its posterior is not determined by the
            // kernel's rows to any accuracy; see ROUNDOFF_LIKELIHOOD).
            if (0..v).any(|x0| cum[x0][xt] > 0.0 && cum[x0][xt] <= ROUNDOFF_LIKELIHOOD) {
                continue;
            }
            let mass: f64 = (0..v)
                .filter(|&x0| cum[x0][xt] > 0.0)
                .map(|x0| p0[x0])
                .sum();
            let res = p_reverse_mixture(k, t, xt as u32, &p0, &mut ws, &mut out);
            if mass == 0.0 {
                assert!(res.is_err(), "p_reverse_mixture t={t} xt={xt} must fail");
                continue;
            }
            res.unwrap();
            for j in 0..v {
                let want: f64 = (0..v)
                    .filter(|&x0| cum[x0][xt] > 0.0)
                    .map(|x0| p0[x0] / mass * prev[x0][j] * step[j][xt] / cum[x0][xt])
                    .sum();
                assert_near(&format!("p_mixture t={t} xt={xt} [{j}]"), out[j], want, tol);
            }
        }
    }
}

/// `cumulative_matvec(t, r) = Q̄_t r` (dense product of rows) for every `t ∈ 0..=T` and a
/// few non-negative `r` (one of them sparse).
pub fn check_matvec(k: &dyn ForwardKernel, tol: f64) {
    let (v, n) = (k.vocab_size(), k.num_steps());
    let mut out = vec![0.0; v];
    for t in 0..=n {
        let cum = dense_cumulative(k, t);
        let mut sparse = vec![0.0; v];
        sparse[v / 2] = 2.5;
        for (which, r) in [test_vector(v, 1000 + t as u64), sparse].iter().enumerate() {
            k.cumulative_matvec(t, r, &mut out).unwrap();
            for i in 0..v {
                let want: f64 = (0..v).map(|j| cum[i][j] * r[j]).sum();
                assert_near(&format!("(Q̄_{t} r{which})[{i}]"), out[i], want, tol);
            }
        }
    }
}

/// `stationary` is invariant under every step: `πᵀQ_t = π` for `t ∈ 1..=T` (checked both
/// by `step_vecmat` and by the dense product), hence `πᵀQ̄_t = π`. Holds for mixture
/// kernels, doubly-stochastic kernels (uniform `π`) and generators with `πᵀR = 0`; not for
/// a dense kernel whose caller-given prior is merely a reference law.
pub fn check_stationary_invariant(k: &dyn ForwardKernel, tol: f64) {
    let (v, n) = (k.vocab_size(), k.num_steps());
    let mut pi = vec![0.0; v];
    k.stationary(&mut pi).unwrap();
    let mut out = vec![0.0; v];
    for t in 1..=n {
        k.step_vecmat(t, &pi, &mut out).unwrap();
        let step = dense_step(k, t);
        for j in 0..v {
            assert_near(&format!("(πᵀQ_{t})[{j}] (step_vecmat)"), out[j], pi[j], tol);
            let dense: f64 = (0..v).map(|i| pi[i] * step[i][j]).sum();
            assert_near(&format!("(πᵀQ_{t})[{j}] (dense)"), dense, pi[j], tol);
        }
        k.cumulative_vecmat(t, &pi, &mut out).unwrap();
        for j in 0..v {
            assert_near(&format!("(πᵀQ̄_{t})[{j}]"), out[j], pi[j], tol);
        }
    }
}

/// `Q̄_T(x0, ·)` equals `stationary` for every `x0` (the process has converged by `T`):
/// the condition under which ancestral sampling from `π` is exact.
pub fn check_converged(k: &dyn ForwardKernel, tol: f64) {
    let v = k.vocab_size();
    let mut pi = vec![0.0; v];
    k.stationary(&mut pi).unwrap();
    let last = dense_cumulative(k, k.num_steps());
    for (x, row) in last.iter().enumerate() {
        for j in 0..v {
            assert_near(&format!("Q̄_T[{x},{j}] vs π"), row[j], pi[j], tol);
        }
    }
}

/// Two kernels have the same `Q_t` (`t ∈ 1..=T`) and `Q̄_t` (`t ∈ 0..=T`), entrywise
/// within `tol` (absolute; all entries are probabilities).
pub fn check_same_matrices(what: &str, a: &dyn ForwardKernel, b: &dyn ForwardKernel, tol: f64) {
    assert_eq!(a.vocab_size(), b.vocab_size(), "{what}: V differs");
    assert_eq!(a.num_steps(), b.num_steps(), "{what}: T differs");
    for t in 0..=a.num_steps() {
        let mut pairs = vec![("Q̄", dense_cumulative(a, t), dense_cumulative(b, t))];
        if t > 0 {
            pairs.push(("Q", dense_step(a, t), dense_step(b, t)));
        }
        for (name, ma, mb) in pairs {
            for (i, (ra, rb)) in ma.iter().zip(&mb).enumerate() {
                for (j, (&x, &y)) in ra.iter().zip(rb).enumerate() {
                    assert!(
                        (x - y).abs() <= tol,
                        "{what}: {name}_{t}[{i},{j}] = {x:e} vs {y:e} (tol {tol:e})"
                    );
                }
            }
        }
    }
    let (mut pa, mut pb) = (vec![0.0; a.vocab_size()], vec![0.0; b.vocab_size()]);
    a.stationary(&mut pa).unwrap();
    b.stationary(&mut pb).unwrap();
    for (j, (x, y)) in pa.iter().zip(&pb).enumerate() {
        assert!((x - y).abs() <= tol, "{what}: stationary[{j}] {x} vs {y}");
    }
}

/// Every generic check above (identities that hold for any kernel).
pub fn check_all(k: &dyn ForwardKernel, tol: f64) {
    check_rows_stochastic(k, tol);
    check_chapman_kolmogorov(k, tol);
    check_cols_and_vecmat(k, tol);
    check_matvec(k, tol);
    check_posterior(k, tol);
    check_reverse_forms(k, tol);
}

/// [`check_all`] plus [`check_stationary_invariant`], for kernels whose `stationary` is a
/// true invariant law.
pub fn check_all_invariant(k: &dyn ForwardKernel, tol: f64) {
    check_all(k, tol);
    check_stationary_invariant(k, tol);
}
