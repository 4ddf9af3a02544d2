//! Every forward kernel of the crate through the same exact identities (DESIGN §4):
//!
//! * `kernel_checks::check_all` on every kernel type — rows of `Q_t`, `Q̄_t` are
//!   distributions, `Q̄_0 = I`, `Q̄_t = Q̄_{t−1} Q_t` by dense products, columns ≡ rows,
//!   `pᵀQ_t`, `pᵀQ̄_t` and `Q̄_t r` ≡ dense products, `q_posterior` ≡ Bayes on dense
//!   matrices, marginalising the posterior over `x_t` recovers `q(x_{t−1} | x_0)`, and both
//!   reverse forms ≡ their dense definitions; plus `πᵀQ_t = π` wherever `stationary` is an
//!   invariant law;
//! * cross-route identities: the O(V) closed forms (`Uniform`, `Absorbing`, `Marginal`,
//!   `MaskAndUniform`) ≡ `Dense` products of their one-step matrices written out here ≡
//!   `MatrixExponentialKernel` (`exp(S_t R)` by the eigen and Padé routes) with
//!   `τ_t = −ln(1 − β_t)`; `Similarity` (eigen route) ≡ `Dense` products; the banded
//!   uniform kernel with a full band ≡ `Uniform`; eigen ≡ Padé for symmetric generators;
//! * property tests of the cross routes over random sizes, masks and schedules.
#![allow(clippy::needless_range_loop)]

#[path = "common/kernel_checks.rs"]
mod kernel_checks;

use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::banded_uniform::BandedUniform;
use discrete_diffusion::kernel::dense::Dense;
use discrete_diffusion::kernel::gaussian::DiscretizedGaussian;
use discrete_diffusion::kernel::generator::{
    ExpRoute, Generator, MatrixExponentialKernel, exponents_from_betas,
};
use discrete_diffusion::kernel::marginal::Marginal;
use discrete_diffusion::kernel::mask_uniform::MaskAndUniform;
use discrete_diffusion::kernel::mixture::Mixture;
use discrete_diffusion::kernel::similarity::Similarity;
use discrete_diffusion::kernel::uniform::Uniform;
use kernel_checks::{
    check_all, check_all_invariant, check_converged, check_same_matrices, test_vector,
};
use ndarray::Array2;
use proptest::prelude::*;

/// Tolerance of the generic identities for kernels computed in closed form or by one
/// eigendecomposition / Padé approximant.
const TOL: f64 = 1e-12;
/// Similarity kernels: entries are exact to ~1e-16 absolute, but the reverse mixture form
/// divides by likelihoods `Q̄_t(x0, x_t)` down to ~1e-6 (BLOSUM62 at temperature 1), which
/// leaves ~1e-11 relative error.
const SIM_TOL: f64 = 1e-10;
/// Cross-route agreement (absolute, entries are probabilities).
const ROUTE_TOL: f64 = 1e-12;

const BETAS: [f64; 5] = [0.02, 0.1, 0.3, 0.25, 0.6];

// ------------------------------------------------------------------ random test objects

/// Deterministic uniforms in `[0, 1)`.
fn uniforms(n: usize, salt: u64) -> Vec<f64> {
    test_vector(n, salt)
}

/// A random `V×V` row-stochastic matrix with a heavy diagonal (every entry positive).
fn random_stochastic(v: usize, salt: u64) -> Array2<f64> {
    let u = uniforms(v * v, salt);
    let mut m = Array2::from_shape_fn((v, v), |(i, j)| u[i * v + j] + 2.0 * (i == j) as u8 as f64);
    for mut row in m.rows_mut() {
        let s = row.sum();
        row /= s;
    }
    m
}

/// A random generator: off-diagonal rates in `[0.1, 1.1)`, symmetric when asked.
fn random_generator(v: usize, symmetric: bool, salt: u64) -> Array2<f64> {
    let u = uniforms(v * v, salt);
    let mut r = Array2::from_shape_fn((v, v), |(i, j)| {
        if i == j {
            0.0
        } else if symmetric && j < i {
            0.1 + u[j * v + i]
        } else {
            0.1 + u[i * v + j]
        }
    });
    for i in 0..v {
        let s: f64 = r.row(i).sum();
        r[[i, i]] = -s;
    }
    r
}

/// The stationary law of an irreducible generator (`πᵀR = 0`), by power iteration on the
/// uniformised chain `P = I + R/c` — independent of any matrix exponential.
fn generator_stationary(r: &Array2<f64>) -> Vec<f64> {
    let v = r.nrows();
    let c = 1.01 * (0..v).map(|i| -r[[i, i]]).fold(0.0, f64::max);
    let mut pi = vec![1.0 / v as f64; v];
    for _ in 0..100_000 {
        let next: Vec<f64> = (0..v)
            .map(|j| pi[j] + (0..v).map(|i| pi[i] * r[[i, j]]).sum::<f64>() / c)
            .collect();
        let delta = next
            .iter()
            .zip(&pi)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        pi = next;
        if delta < 1e-17 {
            break;
        }
    }
    let s: f64 = pi.iter().sum();
    pi.iter().map(|p| p / s).collect()
}

/// `Q_t = (1 − β_t) I + β_t 1 πᵀ` written out densely (independent of `Mixture`).
fn mixture_steps(betas: &[f64], pi: &[f64]) -> Vec<Array2<f64>> {
    let v = pi.len();
    betas
        .iter()
        .map(|&b| {
            Array2::from_shape_fn((v, v), |(i, j)| {
                (1.0 - b) * (i == j) as u8 as f64 + b * pi[j]
            })
        })
        .collect()
}

fn uniform_pi(v: usize) -> Vec<f64> {
    vec![1.0 / v as f64; v]
}

fn point_mass(v: usize, m: u32) -> Vec<f64> {
    let mut p = vec![0.0; v];
    p[m as usize] = 1.0;
    p
}

fn random_pi(v: usize, salt: u64) -> Vec<f64> {
    let w: Vec<f64> = uniforms(v, salt).iter().map(|x| 0.1 + x).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|x| x / s).collect()
}

/// A random symmetric score matrix (the input of `Similarity::from_similarity`).
fn random_scores(v: usize, salt: u64) -> Array2<f64> {
    let u = uniforms(v * v, salt);
    Array2::from_shape_fn((v, v), |(i, j)| {
        let (a, b) = if i <= j { (i, j) } else { (j, i) };
        4.0 * u[a * v + b] - 2.0 + 3.0 * (i == j) as u8 as f64
    })
}

// ------------------------------------------------------------------ check_all, every type

#[test]
fn mixture_kernels() {
    for v in [2usize, 7] {
        check_all_invariant(&Uniform::new(v, &BETAS).unwrap(), TOL);
    }
    check_all_invariant(&Uniform::new(5, &[1e-9, 1e-7, 1.0]).unwrap(), TOL);
    for mask in [0u32, 3, 6] {
        let k = Absorbing::new(7, mask, &BETAS).unwrap();
        check_all_invariant(&k, TOL);
        let k = Absorbing::new(7, mask, &[0.1, 0.4, 1.0]).unwrap();
        check_all_invariant(&k, TOL);
        check_converged(&k, TOL);
    }
    check_all_invariant(&Marginal::new(random_pi(6, 1), &BETAS).unwrap(), TOL);
    check_all_invariant(
        &Mixture::new(random_pi(4, 2), &[0.5, 0.0, 1.0]).unwrap(),
        TOL,
    );
    let betas = [0.05, 0.1, 0.02, 0.08];
    let gammas = [0.1, 0.2, 0.3, 0.5];
    for mask in [0u32, 3, 5] {
        let k = MaskAndUniform::new(6, mask, &betas, &gammas).unwrap();
        check_all_invariant(&k, TOL);
    }
}

#[test]
fn gaussian_and_banded_kernels() {
    let betas = [0.02, 0.1, 0.3, 0.5];
    for bands in [None, Some(1), Some(3)] {
        // Unit grid spacing (stop K − 1), the spacing of the images kernel at K = 256.
        let g = DiscretizedGaussian::with_linspace_stop(9, &betas, bands, 8.0).unwrap();
        check_all_invariant(&g, TOL);
        let b = BandedUniform::new(9, &betas, bands).unwrap();
        check_all_invariant(&b, TOL);
    }
    check_all_invariant(&DiscretizedGaussian::text(6, &betas).unwrap(), TOL);

    // D3PM images' K = 2 edge case.
    check_all_invariant(
        &DiscretizedGaussian::new(2, &[0.5, 1.0], None).unwrap(),
        TOL,
    );
}

#[test]
fn similarity_kernels() {
    let betas = [0.1, 0.5, 0.3];
    let random = Similarity::from_similarity(random_scores(8, 3).view(), 0.7, &betas).unwrap();
    check_all_invariant(&random, SIM_TOL);
    let emb = Array2::from_shape_vec((10, 3), uniforms(30, 4)).unwrap();
    let knn = Similarity::from_embeddings_knn(emb.view(), 3, 0.5, &betas).unwrap();
    check_all_invariant(&knn, SIM_TOL);
    let blosum = Similarity::blosum62(1.0, &betas).unwrap();
    check_all_invariant(&blosum, SIM_TOL);
}

#[test]
fn dense_kernels() {
    // Random steps with a caller-given reference prior: the generic identities only.
    let steps: Vec<Array2<f64>> = (0..4).map(|t| random_stochastic(5, 10 + t)).collect();
    let k = Dense::new(steps, &random_pi(5, 9)).unwrap();
    check_all(&k, TOL);
    // Random steps whose last step mixes to π exactly: invariant-free but converged.
    let pi = random_pi(5, 11);
    let mut steps: Vec<Array2<f64>> = (0..3).map(|t| random_stochastic(5, 20 + t)).collect();
    steps.push(Array2::from_shape_fn((5, 5), |(_, j)| pi[j]));
    let k = Dense::new(steps, &pi).unwrap();
    check_all(&k, TOL);
    check_converged(&k, TOL);
    // A dense mixture kernel (π invariant) with the mask in the middle.
    let k = Dense::new(mixture_steps(&BETAS, &point_mass(5, 2)), &point_mass(5, 2)).unwrap();
    check_all_invariant(&k, TOL);
}

#[test]
fn matrix_exponential_kernels() {
    let tau = exponents_from_betas(&BETAS).unwrap();
    for route in [ExpRoute::Eigen, ExpRoute::Pade] {
        let k = MatrixExponentialKernel::with_route(
            Generator::uniform(6).unwrap(),
            &tau,
            &uniform_pi(6),
            route,
        )
        .unwrap();
        assert_eq!(k.route(), route);
        check_all_invariant(&k, TOL);
    }
    for mask in [0u32, 2, 5] {
        let k = MatrixExponentialKernel::absorbing(6, mask, &tau).unwrap();
        assert_eq!(k.route(), ExpRoute::Pade);
        check_all_invariant(&k, TOL);
    }
    let exps = [0.05, 0.2, 0.4, 1.0];
    let rs = random_generator(6, true, 5);
    for route in [ExpRoute::Eigen, ExpRoute::Pade] {
        let g = Generator::new(rs.clone()).unwrap();
        assert!(g.is_symmetric());
        let k = MatrixExponentialKernel::with_route(g, &exps, &uniform_pi(6), route).unwrap();
        check_all_invariant(&k, TOL);
    }
    let rn = random_generator(6, false, 6);
    let pi = generator_stationary(&rn);
    let g = Generator::new(rn).unwrap();
    assert!(!g.is_symmetric());
    let k = MatrixExponentialKernel::new(g, &exps, &pi).unwrap();
    assert_eq!(k.route(), ExpRoute::Pade);
    check_all_invariant(&k, TOL);
}

// ------------------------------------------------------------------ cross-route identities

/// `Uniform` (O(V) closed form) ≡ `exp(S_t R_uniform)` by eigen and Padé ≡ dense products
/// of its one-step matrices ≡ banded uniform with a full band.
fn uniform_routes(v: usize, betas: &[f64], tol: f64) {
    let closed = Uniform::new(v, betas).unwrap();
    let tau = exponents_from_betas(betas).unwrap();
    let pi = uniform_pi(v);
    let eigen = MatrixExponentialKernel::uniform(v, &tau).unwrap();
    assert_eq!(eigen.route(), ExpRoute::Eigen);
    let pade = MatrixExponentialKernel::with_route(
        Generator::uniform(v).unwrap(),
        &tau,
        &pi,
        ExpRoute::Pade,
    )
    .unwrap();
    let dense = Dense::new(mixture_steps(betas, &pi), &pi).unwrap();
    check_same_matrices("Uniform vs exp (eigen)", &closed, &eigen, tol);
    check_same_matrices("Uniform vs exp (Padé)", &closed, &pade, tol);
    check_same_matrices("Uniform vs Dense", &closed, &dense, tol);
    if v >= 2 {
        let banded = BandedUniform::new(v, betas, None).unwrap();
        check_same_matrices("Uniform vs BandedUniform(full band)", &closed, &banded, tol);
    }
}

/// `Absorbing` ≡ `exp(S_t R_absorbing)` (Padé) ≡ dense products.
fn absorbing_routes(v: usize, mask: u32, betas: &[f64], tol: f64) {
    let closed = Absorbing::new(v, mask, betas).unwrap();
    let tau = exponents_from_betas(betas).unwrap();
    let expk = MatrixExponentialKernel::absorbing(v, mask, &tau).unwrap();
    let pi = point_mass(v, mask);
    let dense = Dense::new(mixture_steps(betas, &pi), &pi).unwrap();
    check_same_matrices("Absorbing vs exp (Padé)", &closed, &expk, tol);
    check_same_matrices("Absorbing vs Dense", &closed, &dense, tol);
}

#[test]
fn closed_forms_equal_products_and_matrix_exponentials() {
    for v in [2usize, 3, 8] {
        uniform_routes(v, &BETAS, ROUTE_TOL);
        for mask in [0, v as u32 / 2, v as u32 - 1] {
            absorbing_routes(v, mask, &BETAS, ROUTE_TOL);
        }
    }
    // Marginal and general mixture kernels ≡ dense products (β = 1 allowed here).
    let betas = [0.2, 0.0, 0.7, 1.0];
    let pi = random_pi(5, 30);
    let m = Marginal::new(pi.clone(), &betas).unwrap();
    let d = Dense::new(mixture_steps(&betas, &pi), &pi).unwrap();
    check_same_matrices("Marginal vs Dense", &m, &d, ROUTE_TOL);
    // MaskAndUniform (Gu et al. 2022 eq. 5) written out densely, mask in the middle.
    let (v, mask) = (6usize, 2usize);
    let (bs, gs) = ([0.05, 0.1, 0.02], [0.1, 0.3, 0.5]);
    let steps: Vec<Array2<f64>> = bs
        .iter()
        .zip(&gs)
        .map(|(&b, &g)| {
            let alpha = 1.0 - (v - 1) as f64 * b - g;
            Array2::from_shape_fn((v, v), |(i, j)| match (i == mask, j == mask) {
                (true, _) => (j == mask) as u8 as f64,
                (false, true) => g,
                (false, false) => b + alpha * (i == j) as u8 as f64,
            })
        })
        .collect();
    let vq = MaskAndUniform::new(v, mask as u32, &bs, &gs).unwrap();
    let d = Dense::new(steps, &point_mass(v, mask as u32)).unwrap();
    check_same_matrices("MaskAndUniform vs Dense", &vq, &d, ROUTE_TOL);
}

#[test]
fn similarity_equals_dense_products() {
    let betas = [0.1, 0.5, 0.3, 0.9];
    let kernels = [
        Similarity::from_similarity(random_scores(7, 40).view(), 1.3, &betas).unwrap(),
        Similarity::blosum62(2.0, &betas).unwrap(),
    ];
    for k in &kernels {
        let v = k.vocab_size();
        let s = k.matrix().to_owned();
        let steps: Vec<Array2<f64>> = betas
            .iter()
            .map(|&b| Array2::eye(v) * (1.0 - b) + &s * b)
            .collect();
        let d = Dense::new(steps, &uniform_pi(v)).unwrap();
        check_same_matrices(&format!("Similarity(V={v}) vs Dense"), k, &d, 1e-12);
    }
}

#[test]
fn eigen_route_equals_pade_for_symmetric_generators() {
    let exps = [0.01, 0.3, 0.7, 2.0, 5.0];
    for (v, salt) in [(2usize, 1u64), (5, 2), (9, 3)] {
        let r = random_generator(v, true, salt);
        let pi = uniform_pi(v);
        let e = MatrixExponentialKernel::with_route(
            Generator::new(r.clone()).unwrap(),
            &exps,
            &pi,
            ExpRoute::Eigen,
        )
        .unwrap();
        let p = MatrixExponentialKernel::with_route(
            Generator::new(r).unwrap(),
            &exps,
            &pi,
            ExpRoute::Pade,
        )
        .unwrap();
        check_same_matrices(&format!("eigen vs Padé V={v}"), &e, &p, 1e-12);
    }
}

// ------------------------------------------------------------------ property tests

fn betas_strategy() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.0f64..0.95, 1..=5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Closed forms ≡ dense products ≡ `expm` for random sizes, masks and schedules.
    #[test]
    fn prop_cross_routes(v in 2usize..=7, mask_pick in any::<u32>(), betas in betas_strategy()) {
        uniform_routes(v, &betas, ROUTE_TOL);
        absorbing_routes(v, mask_pick % v as u32, &betas, ROUTE_TOL);
    }

    /// The generic identities for random dense kernels and random generators.
    #[test]
    fn prop_random_dense_and_generators(
        v in 2usize..=6,
        steps in 1usize..=4,
        salt in any::<u64>(),
        symmetric in any::<bool>(),
    ) {
        let qs: Vec<Array2<f64>> =
            (0..steps).map(|t| random_stochastic(v, salt.wrapping_add(t as u64))).collect();
        check_all(&Dense::new(qs, &uniform_pi(v)).unwrap(), TOL);
        let r = random_generator(v, symmetric, salt);
        let pi = if symmetric { uniform_pi(v) } else { generator_stationary(&r) };
        let exps: Vec<f64> = uniforms(steps, salt ^ 7).iter().map(|x| 0.05 + x).collect();
        let k = MatrixExponentialKernel::new(Generator::new(r).unwrap(), &exps, &pi).unwrap();
        check_all_invariant(&k, TOL);
    }
}

// ------------------------------------------------------------------ extreme likelihoods

/// Regression test: with likelihoods near the bottom of the f64 range — D3PM's images
/// Gaussian kernel on a coarse grid (`K = 9`, grid stop 255, spacing ≈ 32 standard
/// deviations) — `q_posterior`'s normaliser is subnormal (its reciprocal used to overflow to
/// `inf`/`NaN`), and `p_reverse_mixture`'s weights `p̃(x0)/Q̄_t(x0, x_t)` overflow (they used
/// to reach `cumulative_vecmat` as `inf`). Both must give finite distributions.
#[test]
fn posterior_with_subnormal_likelihoods() {
    use discrete_diffusion::kernel::posterior::{
        PosteriorWorkspace, p_reverse_mixture, q_posterior,
    };
    let betas = [0.02, 0.1, 0.3, 0.5];
    let mut ws = PosteriorWorkspace::new(16);
    let mut out = vec![0.0; 16];
    // Q̄_3(0, ·) ⊙ Q_4(·, 3) peaks at ~1e-313 (subnormal): either a distribution or an error.
    let g = DiscretizedGaussian::new(9, &betas, None).unwrap();
    {
        q_posterior(&g, 4, 3, 0, &mut ws, &mut out[..9]).unwrap();
        assert!(
            out[..9].iter().all(|p| p.is_finite()),
            "q_posterior: {:?}",
            &out[..9]
        );
        assert!((out[..9].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    // p̃ uniform over K = 16 at step 2: u = p̃/Q̄_2(·, x_t) overflows for far-away x0
    // (Q̄_2(x_t + 4, x_t) ≈ 1e-310), and cumulative_vecmat rejects the infinite vector.
    let g = DiscretizedGaussian::new(16, &betas, Some(3)).unwrap();
    let p0 = vec![1.0 / 16.0; 16];
    for xt in 0..16u32 {
        let r = p_reverse_mixture(&g, 2, xt, &p0, &mut ws, &mut out);
        assert!(r.is_ok(), "p_reverse_mixture x_t = {xt}: {r:?}");
        assert!(out.iter().all(|p| p.is_finite()));
    }
}
