//! Matrix exponential: Padé scaling-and-squaring (Higham 2005) against closed forms, the
//! symmetric eigen route, and the Taylor series.

use discrete_diffusion::Error;
use discrete_diffusion::linalg::expm::{expm, expm_symmetric};
use discrete_diffusion::rng::philox::{CounterRng, Purpose, RngKey};
use ndarray::{Array2, array};

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

fn random_matrix(n: usize, scale: f64, seed: u64) -> Array2<f64> {
    let key = RngKey::for_stream(seed, 0);
    let mut rng = CounterRng::new(key, Purpose::USER, 0, 0);
    Array2::from_shape_fn((n, n), |_| scale * (2.0 * rng.uniform() - 1.0))
}

#[test]
fn two_state_generator_closed_form() {
    // R = [[−a, a], [b, −b]]: exp(sR) = π-mixture with decay e^{−(a+b)s}.
    for &(a, b, s) in &[
        (0.3, 0.7, 0.5),
        (2.0, 0.1, 3.0),
        (1e-3, 5.0, 40.0),
        (4.0, 4.0, 1e-4),
    ] {
        let r = array![[-a, a], [b, -b]] * s;
        let e = expm(r.view()).unwrap();
        let d = (-(a + b) * s).exp();
        let want = array![
            [(b + a * d) / (a + b), a * (1.0 - d) / (a + b)],
            [b * (1.0 - d) / (a + b), (a + b * d) / (a + b)]
        ];
        let err = max_abs_diff(&e, &want);
        assert!(err < 1e-14, "a={a} b={b} s={s}: err {err:e}");
    }
}

#[test]
fn uniform_generator_closed_form() {
    // exp(σ(11ᵀ/K − I)) = e^{−σ} I + (1 − e^{−σ}) 11ᵀ/K.
    for &k in &[2usize, 5, 16, 64] {
        for &sigma in &[1e-3, 0.2, 1.0, 3.0, 12.0, 200.0] {
            let r = Array2::from_shape_fn((k, k), |(i, j)| {
                sigma * (1.0 / k as f64 - if i == j { 1.0 } else { 0.0 })
            });
            let e = expm(r.view()).unwrap();
            let d = (-sigma).exp();
            let want = Array2::from_shape_fn((k, k), |(i, j)| {
                (if i == j { d } else { 0.0 }) + (1.0 - d) / k as f64
            });
            let err = max_abs_diff(&e, &want);
            assert!(err < 1e-13, "K={k} σ={sigma}: err {err:e}");
            for row in e.rows() {
                // Squaring s ≈ 7 times amplifies round-off in the row sums to ~1e-13.
                assert!(
                    (row.sum() - 1.0).abs() < 1e-12,
                    "K={k} σ={sigma}: row sum {}",
                    row.sum()
                );
            }
        }
    }
}

#[test]
fn symmetric_pade_matches_eigen_route() {
    for (case, &(n, scale)) in [
        (3, 0.01),
        (4, 0.2),
        (6, 0.5),
        (8, 1.0),
        (10, 2.0),
        (12, 8.0),
    ]
    .iter()
    .enumerate()
    {
        let m = random_matrix(n, scale, 100 + case as u64);
        let a = (&m + &m.t()) * 0.5;
        let p = expm(a.view()).unwrap();
        let e = expm_symmetric(a.view()).unwrap();
        let err = max_abs_diff(&p, &e) / max_abs(&e);
        assert!(err < 1e-12, "n={n} scale={scale}: relative err {err:e}");
    }
}

/// Taylor series `Σ_{k<60} A^k/k!`, accurate for ‖A‖ ≲ 1.
fn taylor(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut term = Array2::<f64>::eye(n);
    let mut sum = term.clone();
    for k in 1..60 {
        term = term.dot(a) / k as f64;
        sum += &term;
    }
    sum
}

#[test]
fn small_norm_matches_taylor_series() {
    // Norms chosen to hit every Padé degree (3, 5, 7, 9) and the scaled degree 13.
    for (case, &target) in [0.005, 0.1, 0.6, 1.5, 3.0].iter().enumerate() {
        let mut a = random_matrix(7, 1.0, 7 + case as u64);
        let norm1 = (0..7)
            .map(|j| a.column(j).iter().map(|x| x.abs()).sum::<f64>())
            .fold(0.0, f64::max);
        a *= target / norm1;
        let got = expm(a.view()).unwrap();
        let want = taylor(&a);
        let err = max_abs_diff(&got, &want) / max_abs(&want);
        assert!(err < 1e-14, "‖A‖₁ = {target}: relative err {err:e}");
    }
}

#[test]
fn large_norm_uses_scaling_and_squaring() {
    // Nilpotent-plus-diagonal with a known exponential: A = [[λ, μ], [0, λ]] ⇒
    // exp(A) = e^λ [[1, μ], [0, 1]]; ‖A‖₁ ≫ θ₁₃ forces s > 0 squarings.
    let (lam, mu) = (-30.0, 250.0);
    let a = array![[lam, mu], [0.0, lam]];
    let e = expm(a.view()).unwrap();
    let el = f64::exp(lam);
    let want = array![[el, mu * el], [0.0, el]];
    let err = max_abs_diff(&e, &want) / max_abs(&want);
    assert!(err < 1e-12, "relative err {err:e}");

    // A large symmetric matrix: Padé ≡ eigen route.
    let m = random_matrix(9, 30.0, 991);
    let s = (&m + &m.t()) * 0.5 - Array2::<f64>::eye(9) * 60.0;
    let p = expm(s.view()).unwrap();
    let q = expm_symmetric(s.view()).unwrap();
    let err = max_abs_diff(&p, &q) / max_abs(&q);
    assert!(err < 1e-11, "relative err {err:e}");

    // A large CTMC generator keeps unit row sums after many squarings.
    let mut r = random_matrix(6, 1.0, 5).mapv(f64::abs) * 50.0;
    for i in 0..6 {
        r[[i, i]] = 0.0;
        let s: f64 = r.row(i).sum();
        r[[i, i]] = -s;
    }
    let e = expm(r.view()).unwrap();
    for row in e.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
        assert!(row.iter().all(|&x| x > -1e-14));
    }
}

#[test]
fn exp_of_zero_is_identity() {
    for n in [1usize, 2, 5] {
        let z = Array2::<f64>::zeros((n, n));
        assert_eq!(expm(z.view()).unwrap(), Array2::<f64>::eye(n));
        let e = expm_symmetric(z.view()).unwrap();
        assert!(max_abs_diff(&e, &Array2::eye(n)) < 1e-15);
    }
}

#[test]
fn bad_inputs() {
    let nonsquare = Array2::<f64>::zeros((2, 3));
    assert!(matches!(expm(nonsquare.view()), Err(Error::Shape { .. })));
    assert!(matches!(
        expm_symmetric(nonsquare.view()),
        Err(Error::Shape { .. })
    ));
    let empty = Array2::<f64>::zeros((0, 0));
    assert!(matches!(expm(empty.view()), Err(Error::Shape { .. })));
    assert!(matches!(
        expm_symmetric(empty.view()),
        Err(Error::Shape { .. })
    ));
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let a = array![[0.0, bad], [0.0, 0.0]];
        assert!(matches!(
            expm(a.view()),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            expm_symmetric(a.view()),
            Err(Error::NonFinite { .. })
        ));
    }
    // Overflow is reported, not returned as ∞.
    let huge = array![[800.0, 0.0], [0.0, 1.0]];
    assert!(matches!(expm(huge.view()), Err(Error::Numerical { .. })));
    assert!(matches!(
        expm_symmetric(huge.view()),
        Err(Error::Numerical { .. })
    ));
    // The eigen route needs symmetry.
    let asym = array![[0.0, 1.0], [0.0, 0.0]];
    assert!(matches!(
        expm_symmetric(asym.view()),
        Err(Error::InvalidArgument { .. })
    ));
}
