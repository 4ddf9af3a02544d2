//! Invariants and bad inputs of the dense kernels: `Dense`, `DiscretizedGaussian`,
//! `BandedUniform`, `MatrixExponentialKernel`.

use discrete_diffusion::Error;
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::banded_uniform::{BandedUniform, banded_uniform_matrix};
use discrete_diffusion::kernel::dense::{Dense, MAX_DENSE_ENTRIES};
use discrete_diffusion::kernel::gaussian::{
    DiscretizedGaussian, IMAGES_LINSPACE_STOP, discretized_logistic_logits,
    discretized_logistic_logits_into, gaussian_profile, gaussian_transition_matrix,
};
use discrete_diffusion::kernel::generator::{
    ExpRoute, Generator, MatrixExponentialKernel, exponents_from_betas,
};
use discrete_diffusion::linalg::expm::expm;
use ndarray::{Array2, array};
use proptest::prelude::*;

const TOL: f64 = 1e-12;

fn row_matrix(k: &dyn ForwardKernel, t: usize, cumulative: bool) -> Array2<f64> {
    let v = k.vocab_size();
    let mut m = Array2::zeros((v, v));
    let mut row = vec![0.0; v];
    for x in 0..v {
        if cumulative {
            k.cumulative_row(t, x as u32, &mut row).unwrap();
        } else {
            k.step_row(t, x as u32, &mut row).unwrap();
        }
        m.row_mut(x).assign(&ndarray::ArrayView1::from(&row[..]));
    }
    m
}

fn max_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

/// Every invariant of the `ForwardKernel` contract, checked exhaustively over `t` and states.
fn check_kernel(k: &dyn ForwardKernel, tol: f64) {
    let v = k.vocab_size();
    let big_t = k.num_steps();
    let mut explicit = Array2::<f64>::eye(v);
    assert!(
        max_diff(&row_matrix(k, 0, true), &explicit) < tol,
        "Q̄_0 ≠ I"
    );
    let mut col = vec![0.0; v];
    let mut out = vec![0.0; v];
    for t in 0..=big_t {
        let cum = row_matrix(k, t, true);
        if t > 0 {
            let step = row_matrix(k, t, false);
            for row in step.rows() {
                assert!((row.sum() - 1.0).abs() < tol, "Q_{t} row sum {}", row.sum());
                assert!(row.iter().all(|&x| x >= 0.0));
            }
            explicit = explicit.dot(&step);
            // step_col and step_vecmat agree with the rows.
            for y in 0..v {
                k.step_col(t, y as u32, &mut col).unwrap();
                for i in 0..v {
                    assert!((col[i] - step[[i, y]]).abs() < tol);
                }
            }
            let p: Vec<f64> = (0..v).map(|i| (i as f64 + 0.5) / v as f64).collect();
            k.step_vecmat(t, &p, &mut out).unwrap();
            for j in 0..v {
                let want: f64 = (0..v).map(|i| p[i] * step[[i, j]]).sum();
                assert!((out[j] - want).abs() < tol);
            }
        }
        for row in cum.rows() {
            assert!((row.sum() - 1.0).abs() < tol, "Q̄_{t} row sum {}", row.sum());
            assert!(row.iter().all(|&x| x >= 0.0));
        }
        assert!(
            max_diff(&cum, &explicit) < tol,
            "Q̄_{t} differs from the explicit product by {:e}",
            max_diff(&cum, &explicit)
        );
        for y in 0..v {
            k.cumulative_col(t, y as u32, &mut col).unwrap();
            for i in 0..v {
                assert!((col[i] - cum[[i, y]]).abs() < tol);
            }
        }
        let p: Vec<f64> = (0..v).map(|i| ((i * 7 + 3) % 5) as f64).collect();
        k.cumulative_vecmat(t, &p, &mut out).unwrap();
        for j in 0..v {
            let want: f64 = (0..v).map(|i| p[i] * cum[[i, j]]).sum();
            assert!((out[j] - want).abs() < tol * 10.0);
        }
        // Q̄_t r against the dense product of the rows (not symmetric in general).
        let r: Vec<f64> = (0..v).map(|i| ((i * 5 + 1) % 7) as f64 / 3.0).collect();
        k.cumulative_matvec(t, &r, &mut out).unwrap();
        for i in 0..v {
            let want: f64 = (0..v).map(|j| cum[[i, j]] * r[j]).sum();
            assert!(
                (out[i] - want).abs() < tol * 10.0,
                "Q̄_{t} r [{i}]: {} vs {want}",
                out[i]
            );
        }
    }
    k.stationary(&mut out).unwrap();
    assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

/// The bad-input contract every kernel shares.
fn check_bad_inputs(k: &dyn ForwardKernel) {
    let v = k.vocab_size();
    let big_t = k.num_steps();
    let mut out = vec![0.0; v];
    let mut short = vec![0.0; v - 1];
    let inv = |r: Result<(), Error>| matches!(r, Err(Error::InvalidArgument { arg: "t", .. }));
    // t out of range (0 for one-step quantities, T + 1 everywhere).
    assert!(inv(k.step_row(0, 0, &mut out)));
    assert!(inv(k.step_row(big_t + 1, 0, &mut out)));
    assert!(inv(k.step_col(0, 0, &mut out)));
    assert!(inv(k.step_vecmat(0, &vec![0.0; v], &mut out)));
    assert!(inv(k.cumulative_row(big_t + 1, 0, &mut out)));
    assert!(inv(k.cumulative_col(big_t + 1, 0, &mut out)));
    assert!(inv(k.cumulative_vecmat(big_t + 1, &vec![0.0; v], &mut out)));
    assert!(inv(k.cumulative_matvec(big_t + 1, &vec![0.0; v], &mut out)));
    // token ≥ V.
    let tok = |r: Result<(), Error>| matches!(r, Err(Error::TokenOutOfRange { .. }));
    assert!(tok(k.step_row(1, v as u32, &mut out)));
    assert!(tok(k.step_col(1, v as u32, &mut out)));
    assert!(tok(k.cumulative_row(1, v as u32, &mut out)));
    assert!(tok(k.cumulative_col(0, u32::MAX, &mut out)));
    // wrong out length.
    let shape = |r: Result<(), Error>| matches!(r, Err(Error::Shape { .. }));
    assert!(shape(k.step_row(1, 0, &mut short)));
    assert!(shape(k.step_col(1, 0, &mut short)));
    assert!(shape(k.cumulative_row(1, 0, &mut short)));
    assert!(shape(k.cumulative_col(1, 0, &mut short)));
    assert!(shape(k.cumulative_vecmat(1, &vec![0.0; v], &mut short)));
    assert!(shape(k.step_vecmat(1, &vec![0.0; v], &mut short)));
    assert!(shape(k.cumulative_matvec(1, &vec![0.0; v], &mut short)));
    assert!(shape(k.cumulative_matvec(0, &vec![0.0; v - 1], &mut out)));
    assert!(shape(k.stationary(&mut short)));
    // wrong p length, NaN, negative p.
    assert!(shape(k.cumulative_vecmat(1, &vec![0.0; v + 1], &mut out)));
    let mut p = vec![0.1; v];
    p[1] = f64::NAN;
    assert!(matches!(
        k.cumulative_vecmat(1, &p, &mut out),
        Err(Error::NonFinite {
            arg: "p",
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        k.cumulative_matvec(big_t, &p, &mut out),
        Err(Error::NonFinite { index: 1, .. })
    ));
    p[1] = -0.1;
    assert!(matches!(
        k.step_vecmat(1, &p, &mut out),
        Err(Error::InvalidArgument { arg: "p", .. })
    ));
    assert!(matches!(
        k.cumulative_matvec(1, &p, &mut out),
        Err(Error::InvalidArgument { .. })
    ));
}

fn random_stochastic(v: usize, seed: u64) -> Array2<f64> {
    // Deterministic pseudo-random positive rows (with some exact zeros), normalised.
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut m = Array2::from_shape_fn((v, v), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (s >> 11) as f64 / (1u64 << 53) as f64;
        if u < 0.2 { 0.0 } else { u }
    });
    for mut row in m.rows_mut() {
        row[0] += 0.01;
        let z = row.sum();
        row /= z;
    }
    m
}

#[test]
fn dense_invariants() {
    let steps: Vec<_> = (0..5).map(|t| random_stochastic(6, t)).collect();
    let k = Dense::new(steps.clone(), &[1.0 / 6.0; 6]).unwrap();
    check_kernel(&k, TOL);
    check_bad_inputs(&k);
    assert_eq!(k.step_matrix(3).unwrap(), steps[2]);
    let q2 = steps[0].dot(&steps[1]);
    assert!(max_diff(&k.cumulative_matrix(2).unwrap().to_owned(), &q2) < 1e-15);
    assert_eq!(k.cumulative_matrix(0).unwrap(), Array2::<f64>::eye(6));
    assert!(k.step_matrix(0).is_err() && k.step_matrix(6).is_err());
    assert!(k.cumulative_matrix(6).is_err());
}

#[test]
fn dense_bad_construction() {
    let good = array![[0.5, 0.5], [0.25, 0.75]];
    let pi = [0.5, 0.5];
    // empty
    assert!(matches!(
        Dense::new(vec![], &pi),
        Err(Error::InvalidArgument { arg: "steps", .. })
    ));
    // non-square
    assert!(matches!(
        Dense::new(vec![Array2::from_elem((2, 3), 1.0 / 3.0)], &pi),
        Err(Error::Shape { .. })
    ));
    // mismatched sizes across steps
    assert!(matches!(
        Dense::new(vec![good.clone(), Array2::eye(3)], &pi),
        Err(Error::Shape { .. })
    ));
    // V = 1
    assert!(Dense::new(vec![Array2::eye(1)], &[1.0]).is_err());
    // NaN
    assert!(matches!(
        Dense::new(vec![array![[f64::NAN, 1.0], [0.5, 0.5]]], &pi),
        Err(Error::NonFinite { .. })
    ));
    // negative
    assert!(matches!(
        Dense::new(vec![array![[1.5, -0.5], [0.5, 0.5]]], &pi),
        Err(Error::InvalidArgument { .. })
    ));
    // rows not summing to 1
    assert!(matches!(
        Dense::new(vec![array![[0.5, 0.6], [0.5, 0.5]]], &pi),
        Err(Error::InvalidArgument { .. })
    ));
    // bad stationary: wrong length, not a distribution
    assert!(matches!(
        Dense::new(vec![good.clone()], &[1.0]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        Dense::new(vec![good.clone()], &[0.7, 0.7]),
        Err(Error::NotADistribution { .. })
    ));
    // memory cap: T·V² > 2^28 cumulative values is refused before any work.
    let v = 1 << 10;
    let t = MAX_DENSE_ENTRIES / (v * v) + 1;
    let err = BandedUniform::new(v, &vec![0.1; t], Some(1)).unwrap_err();
    assert!(err.to_string().contains("cap"), "{err}");
    let err = DiscretizedGaussian::new(v, &vec![0.1; t], Some(1)).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { arg: "betas", .. }),
        "{err}"
    );
}

#[test]
fn gaussian_invariants_and_double_stochasticity() {
    let betas = [0.02, 0.1, 0.3, 0.7, 1.0];
    for bands in [None, Some(1), Some(3)] {
        let k = DiscretizedGaussian::new(10, &betas, bands).unwrap();
        check_kernel(&k, TOL);
        check_bad_inputs(&k);
        let mut col = vec![0.0; 10];
        for t in 0..=5 {
            for y in 0..10 {
                k.cumulative_col(t, y, &mut col).unwrap();
                assert!(
                    (col.iter().sum::<f64>() - 1.0).abs() < TOL,
                    "doubly stochastic"
                );
            }
        }
        let mut pi = vec![0.0; 10];
        k.stationary(&mut pi).unwrap();
        assert!(pi.iter().all(|&p| (p - 0.1).abs() < 1e-16));
        assert_eq!(k.betas(), &betas);
        assert_eq!(k.transition_bands(), bands.unwrap_or(9));
        assert_eq!(k.linspace_stop(), IMAGES_LINSPACE_STOP);
        assert_eq!(k.banded().num_steps(), 5);
    }
    let text = DiscretizedGaussian::text(6, &[0.5, 0.5]).unwrap();
    check_kernel(&text, TOL);
    assert_eq!(text.linspace_stop(), 6.0);
    // β = 0 is the identity limit.
    let q = gaussian_transition_matrix(5, 0.0, None, 255.0).unwrap();
    assert_eq!(q, Array2::<f64>::eye(5));
}

#[test]
fn gaussian_profile_is_a_normalised_softmax() {
    let w = gaussian_profile(12, 0.4, Some(5), IMAGES_LINSPACE_STOP).unwrap();
    assert_eq!(w.len(), 6);
    let total = w[0] + 2.0 * w[1..].iter().sum::<f64>();
    assert!((total - 1.0).abs() < 1e-15);
    assert!(
        w.windows(2).all(|p| p[0] >= p[1]),
        "profile decreases with distance"
    );
}

#[test]
fn gaussian_bad_inputs() {
    let stop = IMAGES_LINSPACE_STOP;
    assert!(gaussian_profile(1, 0.1, None, stop).is_err());
    assert!(gaussian_profile(8, -0.1, None, stop).is_err());
    assert!(gaussian_profile(8, 1.1, None, stop).is_err());
    assert!(matches!(
        gaussian_profile(8, f64::NAN, None, stop),
        Err(Error::NonFinite { .. })
    ));
    assert!(gaussian_profile(8, 0.1, Some(0), stop).is_err());
    assert!(gaussian_profile(8, 0.1, Some(8), stop).is_err());
    assert!(gaussian_profile(8, 0.1, None, 0.0).is_err());
    assert!(gaussian_profile(8, 0.1, None, f64::INFINITY).is_err());
    assert!(gaussian_transition_matrix(8, 2.0, None, stop).is_err());
    assert!(DiscretizedGaussian::new(8, &[], None).is_err());
    assert!(DiscretizedGaussian::new(8, &[0.1, f64::NAN], None).is_err());
    assert!(DiscretizedGaussian::new(8, &[0.1, 1.5], None).is_err());
    assert!(DiscretizedGaussian::new(8, &[0.1], Some(0)).is_err());
    assert!(DiscretizedGaussian::new(1, &[0.1], None).is_err());
    assert!(DiscretizedGaussian::text(1, &[0.1]).is_err());
    assert!(DiscretizedGaussian::with_linspace_stop(8, &[0.1], None, -1.0).is_err());
}

#[test]
fn logistic_logits_properties_and_bad_inputs() {
    // softmax of the logits ≈ the discretized logistic bin masses (up to eps and the tails).
    let l = discretized_logistic_logits(0.1, -1.0, 16).unwrap();
    let mut into = vec![0.0; 16];
    discretized_logistic_logits_into(0.1, -1.0, &mut into).unwrap();
    assert_eq!(l, into);
    let s = (-(-1.0f64 - 2.0)).exp(); // inverse scale
    let cdf = |x: f64| 1.0 / (1.0 + (-s * x).exp());
    let w = 2.0 / 15.0;
    for (i, &li) in l.iter().enumerate() {
        let c = -1.0 + i as f64 * w - 0.1;
        let mass = cdf(c + w / 2.0) - cdf(c - w / 2.0);
        assert!((li.exp() - (mass + 1e-6 * cdf(c + w / 2.0))).abs() < 1e-12);
    }
    assert!(discretized_logistic_logits(0.0, 0.0, 1).is_err());
    assert!(discretized_logistic_logits(f64::NAN, 0.0, 8).is_err());
    assert!(discretized_logistic_logits(0.0, f64::INFINITY, 8).is_err());
    assert!(discretized_logistic_logits_into(0.0, 0.0, &mut [0.0]).is_err());
}

#[test]
fn banded_uniform_invariants_and_bad_inputs() {
    let betas = [0.1, 0.4, 0.9, 1.0];
    for bands in [None, Some(1), Some(2), Some(6)] {
        let k = BandedUniform::new(7, &betas, bands).unwrap();
        check_kernel(&k, TOL);
        check_bad_inputs(&k);
        assert_eq!(k.betas(), &betas);
        assert_eq!(k.transition_bands(), bands.unwrap_or(6));
        assert_eq!(k.banded().vocab_size(), 7);
    }
    // Full band = (1 − β) I + β 11ᵀ/K.
    let q = banded_uniform_matrix(5, 0.3, None).unwrap();
    for i in 0..5 {
        for j in 0..5 {
            let want = if i == j { 0.7 } else { 0.0 } + 0.3 / 5.0;
            assert!((q[[i, j]] - want).abs() < 1e-15);
        }
    }
    assert!(banded_uniform_matrix(1, 0.3, None).is_err());
    assert!(banded_uniform_matrix(5, -0.3, None).is_err());
    assert!(banded_uniform_matrix(5, f64::NAN, None).is_err());
    assert!(banded_uniform_matrix(5, 0.3, Some(0)).is_err());
    assert!(banded_uniform_matrix(5, 0.3, Some(5)).is_err());
    assert!(BandedUniform::new(5, &[], None).is_err());
    assert!(BandedUniform::new(5, &[1.01], None).is_err());
}

/// The banded representation: accessors equal the one-step matrix functions bit for bit,
/// the stored cumulative matrices equal the rows, and the storage is `T·V² + T·(B + V)`.
#[test]
fn banded_representation_accessors() {
    let betas = [0.05, 0.3, 0.8];
    let g = DiscretizedGaussian::new(9, &betas, Some(3)).unwrap();
    let u = BandedUniform::new(9, &betas, Some(2)).unwrap();
    for t in 1..=3 {
        let want =
            gaussian_transition_matrix(9, betas[t - 1], Some(3), IMAGES_LINSPACE_STOP).unwrap();
        assert_eq!(g.banded().step_matrix(t).unwrap(), want);
        assert_eq!(row_matrix(&g, t, false), want, "step rows are exact");
        let w = gaussian_profile(9, betas[t - 1], Some(3), IMAGES_LINSPACE_STOP).unwrap();
        assert_eq!(g.banded().step_profile(t).unwrap(), &w[1..]);
        let diag: Vec<f64> = (0..9).map(|i| want[[i, i]]).collect();
        assert_eq!(g.banded().step_diagonal(t).unwrap(), &diag[..]);
        let want = banded_uniform_matrix(9, betas[t - 1], Some(2)).unwrap();
        assert_eq!(u.banded().step_matrix(t).unwrap(), want);
        assert_eq!(
            u.banded().step_profile(t).unwrap(),
            &[betas[t - 1] / 9.0; 2]
        );
        for k in [g.banded(), u.banded()] {
            assert_eq!(
                k.cumulative_matrix(t).unwrap().to_owned(),
                row_matrix(k, t, true)
            );
        }
    }
    assert_eq!(
        g.banded().cumulative_matrix(0).unwrap(),
        Array2::<f64>::eye(9)
    );
    assert_eq!(g.banded().transition_bands(), 3);
    assert_eq!(g.banded().stored_values(), 3 * 81 + 3 * (3 + 9));
    assert_eq!(u.banded().stored_values(), 3 * 81 + 3 * (2 + 9));
    let inv = |ok: bool| assert!(ok);
    inv(g.banded().step_matrix(0).is_err() && g.banded().step_matrix(4).is_err());
    inv(g.banded().step_profile(0).is_err() && g.banded().step_diagonal(4).is_err());
    inv(g.banded().cumulative_matrix(4).is_err());
}

/// Vocabularies wide enough for the column-blocked banded product (`2R + BANDED_BLOCK < V`),
/// including a full band whose Gaussian tail underflows to exact zeros (short reach), match
/// the explicit dense products.
#[test]
fn banded_products_by_column_blocks_match_dense_products() {
    use discrete_diffusion::kernel::dense::BANDED_BLOCK;
    let v = 2 * BANDED_BLOCK + 37;
    let betas = [0.3, 0.9, 0.05, 1.0, 0.6];
    let uni = BandedUniform::new(v, &betas, Some(3)).unwrap();
    let gauss = DiscretizedGaussian::new(v, &betas, Some(5)).unwrap();
    // Small β on this grid: the Gaussian tail w_d underflows to exact zeros, so the full
    // band has a short reach R (the last non-zero w_d) and takes the blocked route.
    let tiny = DiscretizedGaussian::new(v, &[1.5e-4, 3e-4, 1e-4], None).unwrap();
    for t in 1..=3 {
        let w = tiny.banded().step_profile(t).unwrap();
        let reach = w.iter().rposition(|&x| x > 0.0).unwrap() + 1;
        assert!(reach >= 2 && 2 * reach + BANDED_BLOCK < v, "reach {reach}");
    }
    for k in [&uni as &dyn ForwardKernel, &gauss, &tiny] {
        let mut explicit = Array2::<f64>::eye(v);
        for t in 1..=k.num_steps() {
            explicit = explicit.dot(&row_matrix(k, t, false));
            let cum = row_matrix(k, t, true);
            assert!(
                max_diff(&cum, &explicit) < 1e-14,
                "t = {t}: {:e}",
                max_diff(&cum, &explicit)
            );
        }
    }
    check_kernel(&uni, TOL);
    check_bad_inputs(&gauss);
}

fn random_generator(v: usize, seed: u64) -> Array2<f64> {
    let mut r = random_stochastic(v, seed) * 2.0;
    for i in 0..v {
        r[[i, i]] = 0.0;
        let s = r.row(i).sum();
        r[[i, i]] = -s;
    }
    r
}

/// A symmetric generator: symmetrised off-diagonal rates, diagonal minus the row sum.
fn random_symmetric_generator(v: usize, seed: u64) -> Array2<f64> {
    let m = random_generator(v, seed);
    let mut r = (&m + &m.t()) * 0.5;
    for i in 0..v {
        r[[i, i]] = 0.0;
        let s = r.row(i).sum();
        r[[i, i]] = -s;
    }
    r
}

#[test]
fn generator_kernel_invariants_both_routes() {
    let tau = [0.05, 0.3, 1.0, 2.5, 0.0];
    // Symmetric generator: eigen and Padé routes agree.
    let sym = Generator::new(random_symmetric_generator(6, 11)).unwrap();
    assert!(sym.is_symmetric());
    let pi = [1.0 / 6.0; 6];
    let eig = MatrixExponentialKernel::with_route(sym.clone(), &tau, &pi, ExpRoute::Eigen).unwrap();
    let pade = MatrixExponentialKernel::with_route(sym.clone(), &tau, &pi, ExpRoute::Pade).unwrap();
    let auto = MatrixExponentialKernel::new(sym.clone(), &tau, &pi).unwrap();
    assert_eq!(eig.route(), ExpRoute::Eigen);
    assert_eq!(pade.route(), ExpRoute::Pade);
    assert_eq!(auto.route(), ExpRoute::Eigen);
    check_kernel(&eig, TOL);
    check_kernel(&pade, TOL);
    check_bad_inputs(&eig);
    check_bad_inputs(&pade);
    for t in 0..=tau.len() {
        let a = row_matrix(&eig, t, true);
        let b = row_matrix(&pade, t, true);
        assert!(max_diff(&a, &b) < 1e-13, "t={t}: {:e}", max_diff(&a, &b));
        if t > 0 {
            let a = row_matrix(&eig, t, false);
            let b = row_matrix(&pade, t, false);
            assert!(max_diff(&a, &b) < 1e-13);
        }
    }
    // Cumulative = exp(S_t R).
    let s3: f64 = tau[..3].iter().sum();
    assert!(
        max_diff(
            &row_matrix(&eig, 3, true),
            &eig.transition_matrix(s3).unwrap()
        ) < 1e-13
    );
    assert_eq!(eig.cumulative_exponents()[3], s3);
    assert_eq!(eig.exponents(), &tau);
    assert!(eig.generator().is_symmetric());

    // Non-symmetric generator: Padé route; eigen route refused.
    let g = Generator::new(random_generator(5, 3)).unwrap();
    assert!(!g.is_symmetric());
    let k = MatrixExponentialKernel::new(g.clone(), &tau, &[0.2; 5]).unwrap();
    assert_eq!(k.route(), ExpRoute::Pade);
    check_kernel(&k, TOL);
    check_bad_inputs(&k);
    let want = expm((g.matrix().to_owned() * 1.35).view()).unwrap();
    assert!(max_diff(&row_matrix(&k, 3, true), &want) < 1e-14);
    assert!(MatrixExponentialKernel::with_route(g, &tau, &[0.2; 5], ExpRoute::Eigen).is_err());
}

#[test]
fn named_generators_closed_forms() {
    let betas = [0.1, 0.3, 0.5];
    let tau = exponents_from_betas(&betas).unwrap();
    let stay: f64 = betas.iter().map(|b| 1.0 - b).product();
    // Uniform: Q̄_T = stay·I + (1 − stay)·11ᵀ/V.
    let u = MatrixExponentialKernel::uniform(4, &tau).unwrap();
    check_kernel(&u, TOL);
    let q = row_matrix(&u, 3, true);
    for i in 0..4 {
        for j in 0..4 {
            let want = if i == j { stay } else { 0.0 } + (1.0 - stay) / 4.0;
            assert!((q[[i, j]] - want).abs() < 1e-14);
        }
    }
    // Absorbing with the mask in the middle (never assumed last).
    let a = MatrixExponentialKernel::absorbing(5, 2, &tau).unwrap();
    check_kernel(&a, TOL);
    check_bad_inputs(&a);
    let q = row_matrix(&a, 3, true);
    for i in 0..5 {
        for j in 0..5 {
            let want = match (i == 2, i == j, j == 2) {
                (true, _, true) => 1.0,
                (true, _, false) => 0.0,
                (false, true, _) => stay,
                (false, false, true) => 1.0 - stay,
                _ => 0.0,
            };
            assert!((q[[i, j]] - want).abs() < 1e-14, "[{i},{j}]");
        }
    }
    let mut pi = vec![0.0; 5];
    a.stationary(&mut pi).unwrap();
    assert_eq!(pi, vec![0.0, 0.0, 1.0, 0.0, 0.0]);
    // from_cumulative_exponents ≡ per-step exponents.
    let cum: Vec<f64> = std::iter::once(0.0)
        .chain(tau.iter().scan(0.0, |s, &x| {
            *s += x;
            Some(*s)
        }))
        .collect();
    let c = MatrixExponentialKernel::from_cumulative_exponents(
        Generator::absorbing(5, 2).unwrap(),
        &cum,
        &pi,
    )
    .unwrap();
    assert!(max_diff(&row_matrix(&c, 2, false), &row_matrix(&a, 2, false)) < 1e-15);
}

#[test]
fn generator_bad_inputs() {
    assert!(matches!(
        Generator::new(Array2::zeros((2, 3))),
        Err(Error::Shape { .. })
    ));
    assert!(Generator::new(Array2::zeros((1, 1))).is_err());
    assert!(matches!(
        Generator::new(array![[f64::NAN, 0.0], [0.0, 0.0]]),
        Err(Error::NonFinite { .. })
    ));
    // negative off-diagonal rate
    assert!(Generator::new(array![[1.0, -1.0], [0.0, 0.0]]).is_err());
    // rows not summing to 0
    assert!(Generator::new(array![[-1.0, 0.5], [0.0, 0.0]]).is_err());
    assert!(Generator::uniform(1).is_err());
    assert!(Generator::absorbing(1, 0).is_err());
    assert!(matches!(
        Generator::absorbing(4, 4),
        Err(Error::TokenOutOfRange { .. })
    ));
    let g = Generator::uniform(3).unwrap();
    let pi = [1.0 / 3.0; 3];
    assert!(MatrixExponentialKernel::new(g.clone(), &[], &pi).is_err());
    assert!(MatrixExponentialKernel::new(g.clone(), &[-0.1], &pi).is_err());
    assert!(MatrixExponentialKernel::new(g.clone(), &[f64::NAN], &pi).is_err());
    assert!(MatrixExponentialKernel::new(g.clone(), &[f64::INFINITY], &pi).is_err());
    assert!(MatrixExponentialKernel::new(g.clone(), &[f64::MAX, f64::MAX], &pi).is_err());
    assert!(MatrixExponentialKernel::new(g.clone(), &[0.1], &[0.5, 0.5]).is_err());
    assert!(MatrixExponentialKernel::new(g.clone(), &[0.1], &[0.5, 0.5, 0.5]).is_err());
    assert!(MatrixExponentialKernel::uniform(1, &[0.1]).is_err());
    assert!(MatrixExponentialKernel::absorbing(3, 3, &[0.1]).is_err());
    // cumulative exponents: must start at 0, be non-decreasing, have ≥ 2 entries.
    assert!(MatrixExponentialKernel::from_cumulative_exponents(g.clone(), &[0.0], &pi).is_err());
    assert!(
        MatrixExponentialKernel::from_cumulative_exponents(g.clone(), &[0.1, 0.2], &pi).is_err()
    );
    assert!(
        MatrixExponentialKernel::from_cumulative_exponents(g.clone(), &[0.0, 0.5, 0.4], &pi)
            .is_err()
    );
    assert!(
        MatrixExponentialKernel::from_cumulative_exponents(g.clone(), &[0.0, f64::NAN], &pi)
            .is_err()
    );
    let k = MatrixExponentialKernel::new(g, &[0.1], &pi).unwrap();
    assert!(k.transition_matrix(-1.0).is_err());
    assert!(k.transition_matrix(f64::NAN).is_err());
    // exponents_from_betas
    assert!(exponents_from_betas(&[]).is_err());
    assert!(exponents_from_betas(&[1.0]).is_err());
    assert!(exponents_from_betas(&[-0.1]).is_err());
    assert!(exponents_from_betas(&[f64::NAN]).is_err());
    assert_eq!(exponents_from_betas(&[0.0]).unwrap(), vec![0.0]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_dense_random_kernels(v in 2usize..7, t in 1usize..5, seed in 0u64..1000) {
        let steps: Vec<_> = (0..t).map(|s| random_stochastic(v, seed * 31 + s as u64)).collect();
        let k = Dense::new(steps, &vec![1.0 / v as f64; v]).unwrap();
        check_kernel(&k, TOL);
    }

    #[test]
    fn prop_gaussian_and_banded(
        v in 2usize..12,
        betas in prop::collection::vec(0.0f64..=1.0, 1..5),
        band_frac in 0.0f64..1.0,
    ) {
        let bands = 1 + ((v - 1) as f64 * band_frac) as usize;
        let bands = bands.min(v - 1);
        check_kernel(&DiscretizedGaussian::new(v, &betas, Some(bands)).unwrap(), TOL);
        check_kernel(&BandedUniform::new(v, &betas, Some(bands)).unwrap(), TOL);
    }

    #[test]
    fn prop_generator_routes_agree(
        v in 2usize..7,
        tau in prop::collection::vec(0.0f64..4.0, 1..4),
        seed in 0u64..1000,
    ) {
        let sym = Generator::new(random_symmetric_generator(v, seed)).unwrap();
        let pi = vec![1.0 / v as f64; v];
        let e = MatrixExponentialKernel::with_route(sym.clone(), &tau, &pi, ExpRoute::Eigen).unwrap();
        let p = MatrixExponentialKernel::with_route(sym, &tau, &pi, ExpRoute::Pade).unwrap();
        check_kernel(&e, TOL);
        check_kernel(&p, TOL);
        for t in 0..=tau.len() {
            prop_assert!(max_diff(&row_matrix(&e, t, true), &row_matrix(&p, t, true)) < 1e-12);
        }
        let g = Generator::new(random_generator(v, seed)).unwrap();
        check_kernel(&MatrixExponentialKernel::new(g, &tau, &pi).unwrap(), TOL);
    }
}

/// D3PM images' linear schedule `β_t = 1e-4 … 0.02` over `T` steps.
fn d3pm_linear_betas(t: usize) -> Vec<f64> {
    (0..t)
        .map(|i| 1e-4 + (0.02 - 1e-4) * i as f64 / (t - 1) as f64)
        .collect()
}

/// The lean kernels against the full representation (a [`Dense`] of the same one-step
/// matrices, full `V×V` products) at `K = 64`, `T = 200`: every cumulative matrix agrees.
#[test]
fn lean_kernels_equal_dense_products() {
    let betas = d3pm_linear_betas(200);
    let uniform = vec![1.0 / 64.0; 64];
    let lean = [
        Box::new(DiscretizedGaussian::new(64, &betas, None).unwrap()) as Box<dyn ForwardKernel>,
        Box::new(BandedUniform::new(64, &betas, Some(8)).unwrap()),
    ];
    for k in &lean {
        let steps: Vec<_> = (1..=200)
            .map(|t| row_matrix(k.as_ref(), t, false))
            .collect();
        let dense = Dense::new(steps, &uniform).unwrap();
        let mut worst = 0.0f64;
        for t in 1..=200 {
            let d = dense.cumulative_matrix(t).unwrap().to_owned();
            worst = worst.max(max_diff(&row_matrix(k.as_ref(), t, true), &d));
        }
        assert!(worst < 1e-12);
    }
}
