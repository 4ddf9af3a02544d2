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

/// `q_posterior` equals Bayes' rule on dense matrices (or errs exactly when
/// `Q̄_t(x0, x_t) = 0`), and marginalising it over `x_t ~ q(x_t | x0)` recovers
/// `q(x_{t−1} | x0)`.
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
                res.unwrap();
                for j in 0..v {
                    let want = prev[x0][j] * step[j][xt] / cum[x0][xt];
                    assert_near(
                        &format!("q(x_{{t−1}}={j}|x_t={xt},x0={x0}) t={t}"),
                        out[j],
                        want,
                        tol,
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
            // Mixture: Σ_{x0 feasible} w(x0) q(x_{t−1} | xt, x0).
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

/// Every check above.
pub fn check_all(k: &dyn ForwardKernel, tol: f64) {
    check_rows_stochastic(k, tol);
    check_chapman_kolmogorov(k, tol);
    check_cols_and_vecmat(k, tol);
    check_posterior(k, tol);
    check_reverse_forms(k, tol);
}
