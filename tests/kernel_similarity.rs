//! Behaviour tests for the similarity kernel (`kernel::similarity`) and BLOSUM62
//! (`kernel::blosum`): Sinkhorn output, eigen route ≡ explicit products, CTMC view ≡ Taylor
//! series, kNN graph structure, BLOSUM62 against an independent copy and against EvoDiff's
//! construction, property tests, and bad input for every public entry point.
#![allow(clippy::needless_range_loop)] // dense matrix checks read clearest with indices

use discrete_diffusion::error::Error;
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::blosum::{
    BLOSUM62, BLOSUM62_ALPHABET, STANDARD_AMINO_ACIDS, blosum62_index, blosum62_score,
    blosum62_standard, blosum62_submatrix,
};
use discrete_diffusion::kernel::similarity::{
    SINKHORN_TOL, Similarity, knn_affinity, sinkhorn_symmetric, sinkhorn_symmetric_log,
};
use ndarray::{Array2, ArrayView2, array};
use proptest::prelude::*;

// ---------------------------------------------------------------- helpers

/// SplitMix64 in [0, 1): deterministic test data without the crate's RNG.
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn random_symmetric(v: usize, lo: f64, hi: f64, seed: u64) -> Array2<f64> {
    let mut r = Mix(seed);
    let mut a = Array2::zeros((v, v));
    for i in 0..v {
        for j in i..v {
            let x = lo + (hi - lo) * r.next();
            a[[i, j]] = x;
            a[[j, i]] = x;
        }
    }
    a
}

fn random_betas(t: usize, seed: u64) -> Vec<f64> {
    let mut r = Mix(seed);
    (0..t).map(|_| r.next()).collect()
}

/// Dense one-step matrix `(1 − β) I + β S`, built directly from `S`.
fn dense_step(s: ArrayView2<f64>, beta: f64) -> Array2<f64> {
    let v = s.nrows();
    Array2::from_shape_fn((v, v), |(i, j)| {
        beta * s[[i, j]] + if i == j { 1.0 - beta } else { 0.0 }
    })
}

/// Dense `Q̄_t` for every `t ∈ 0..=T` by explicit multiplication of one-step matrices.
fn dense_products(k: &Similarity) -> Vec<Array2<f64>> {
    let v = k.vocab_size();
    let mut out = vec![Array2::eye(v)];
    for &b in k.betas() {
        let next = out.last().unwrap().dot(&dense_step(k.matrix(), b));
        out.push(next);
    }
    out
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn assert_doubly_stochastic(s: ArrayView2<f64>, tol: f64) {
    let v = s.nrows();
    for i in 0..v {
        let r: f64 = s.row(i).sum();
        let c: f64 = s.column(i).sum();
        assert!((r - 1.0).abs() <= tol, "row {i} sums to {r}");
        assert!((c - 1.0).abs() <= tol, "column {i} sums to {c}");
        for j in 0..v {
            assert_eq!(s[[i, j]], s[[j, i]], "S not exactly symmetric at ({i},{j})");
            assert!(s[[i, j]] >= 0.0);
        }
    }
}

/// The eigen route of every public accessor against the dense products, within `tol`.
fn check_against_products(k: &Similarity, tol: f64) {
    let v = k.vocab_size();
    let prods = dense_products(k);
    let mut out = vec![0.0; v];
    let mut r = Mix(7);
    let p: Vec<f64> = (0..v).map(|_| r.next()).collect();
    for (t, q) in prods.iter().enumerate() {
        for x in 0..v {
            k.cumulative_row(t, x as u32, &mut out).unwrap();
            let row: Vec<f64> = q.row(x).to_vec();
            assert!(max_abs_diff(&out, &row) <= tol, "row t={t} x={x}");
            assert!((out.iter().sum::<f64>() - 1.0).abs() <= tol);
            k.cumulative_col(t, x as u32, &mut out).unwrap();
            let col: Vec<f64> = q.column(x).to_vec();
            assert!(max_abs_diff(&out, &col) <= tol, "col t={t} y={x}");
        }
        k.cumulative_vecmat(t, &p, &mut out).unwrap();
        let pq: Vec<f64> = (0..v)
            .map(|j| (0..v).map(|i| p[i] * q[[i, j]]).sum())
            .collect();
        assert!(max_abs_diff(&out, &pq) <= tol, "vecmat t={t}");
        // Q̄_t r (the product D3PM's L_{t−1} gradient needs) against the dense product.
        let rr: Vec<f64> = (0..v)
            .map(|i| p[(i * 3 + 1) % v] * (1.0 + i as f64))
            .collect();
        k.cumulative_matvec(t, &rr, &mut out).unwrap();
        let qr: Vec<f64> = (0..v)
            .map(|i| (0..v).map(|j| q[[i, j]] * rr[j]).sum())
            .collect();
        assert!(
            max_abs_diff(&out, &qr) <= tol * v as f64,
            "matvec t={t}: {:e}",
            max_abs_diff(&out, &qr)
        );
        if t >= 1 {
            let step = dense_step(k.matrix(), k.betas()[t - 1]);
            for x in 0..v {
                k.step_row(t, x as u32, &mut out).unwrap();
                assert!(max_abs_diff(&out, &step.row(x).to_vec()) <= 1e-15);
                assert!((out.iter().sum::<f64>() - 1.0).abs() <= 1e-13);
                k.step_col(t, x as u32, &mut out).unwrap();
                assert!(max_abs_diff(&out, &step.column(x).to_vec()) <= 1e-15);
            }
            k.step_vecmat(t, &p, &mut out).unwrap();
            let ps: Vec<f64> = (0..v)
                .map(|j| (0..v).map(|i| p[i] * step[[i, j]]).sum())
                .collect();
            assert!(max_abs_diff(&out, &ps) <= 1e-14);
        }
    }
}

/// `exp(σ̄ (S − I))` by its Taylor series (no eigendecomposition); fine for `σ̄ ≤ 3`.
fn expm_taylor(s: ArrayView2<f64>, sigma: f64) -> Array2<f64> {
    let v = s.nrows();
    let r = (&s.to_owned() - &Array2::<f64>::eye(v)) * sigma;
    let mut term = Array2::<f64>::eye(v);
    let mut sum = term.clone();
    for n in 1..80 {
        term = term.dot(&r) / n as f64;
        sum += &term;
    }
    sum
}

// ---------------------------------------------------------------- Sinkhorn

#[test]
fn sinkhorn_gives_symmetric_doubly_stochastic_diagonal_scaling() {
    for (seed, v) in [(1u64, 2usize), (2, 5), (3, 17), (4, 40)] {
        let w = random_symmetric(v, 0.01, 3.0, seed);
        let s = sinkhorn_symmetric(w.view()).unwrap();
        assert_doubly_stochastic(s.view(), SINKHORN_TOL * 2.0);
        // S = D W D  ⇔  S_ij² W_ii W_jj = S_ii S_jj W_ij²  for all i, j.
        for i in 0..v {
            for j in 0..v {
                let lhs = s[[i, j]].powi(2) * w[[i, i]] * w[[j, j]];
                let rhs = s[[i, i]] * s[[j, j]] * w[[i, j]].powi(2);
                assert!(
                    (lhs - rhs).abs() <= 1e-12 * lhs.max(rhs),
                    "not a diagonal scaling"
                );
            }
        }
        // Invariant under a constant factor.
        let s2 = sinkhorn_symmetric((&w * 1e6).view()).unwrap();
        assert!((&s - &s2).iter().all(|x| x.abs() < 1e-13));
    }
}

#[test]
fn sinkhorn_handles_sparse_weights_with_positive_diagonal() {
    // A path graph with self loops: total support, sparse.
    let v = 9;
    let w = Array2::from_shape_fn((v, v), |(i, j)| match i.abs_diff(j) {
        0 => 1.0,
        1 => 0.5,
        _ => 0.0,
    });
    let s = sinkhorn_symmetric(w.view()).unwrap();
    assert_doubly_stochastic(s.view(), 2e-12);
    for i in 0..v {
        for j in 0..v {
            assert_eq!(s[[i, j]] == 0.0, w[[i, j]] == 0.0);
        }
    }
}

#[test]
fn sinkhorn_nearly_bipartite_uses_newton() {
    // Similarities that prefer the *other* token: S ≈ [[ε, 1−ε], [1−ε, ε]], λ_min ≈ −1, where
    // the fixed-point sweep crawls; the Newton phase must finish the job.
    let sim = array![[0.0, 1.35], [1.35, -2.53]];
    let tau = 0.2;
    let w = sim.mapv(|x: f64| (x / tau).exp());
    let s = sinkhorn_symmetric(w.view()).unwrap();
    assert_doubly_stochastic(s.view(), 1e-15);
    // Closed form for 2×2: ε² = (1 − ε)² W00 W11 / W01².
    let c = (w[[0, 0]] * w[[1, 1]]).sqrt() / w[[0, 1]];
    let eps = c / (1.0 + c);
    assert!((s[[0, 0]] - eps).abs() < 1e-15 && (s[[1, 1]] - eps).abs() < 1e-15);
    // A larger nearly-bipartite case: two blocks that attract each other.
    let v = 12;
    let mut r = Mix(5);
    let w = Array2::from_shape_fn((v, v), |(i, j)| {
        if (i < v / 2) != (j < v / 2) {
            1.0 + r.next()
        } else {
            1e-7
        }
    });
    let w = (&w + &w.t()) * 0.5;
    let s = sinkhorn_symmetric(w.view()).unwrap();
    assert_doubly_stochastic(s.view(), 1e-14);
}

#[test]
fn sinkhorn_support_without_total_support_tends_to_the_limit() {
    // (1,1) lies on no positive diagonal: no exact scaling, but the Sinkhorn limit is the
    // permutation [[0,1],[1,0]]; either it is reached within tolerance or an error is given.
    match sinkhorn_symmetric(array![[0.0, 1.0], [1.0, 1.0]].view()) {
        Ok(s) => {
            assert_doubly_stochastic(s.view(), 1e-12);
            assert!(s[[1, 1]] < 1e-11 && (s[[0, 1]] - 1.0).abs() < 1e-11);
        }
        Err(e) => assert!(matches!(e, Error::Numerical { .. })),
    }
}

#[test]
fn log_domain_scaling_survives_underflow() {
    // exp(sim/τ) spans e^±10⁴: in plain f64 rows 1 and 2 would be all zero, yet all
    // weights are positive, so the scaling exists.
    let extreme = array![[0.0, 0.0, 0.0], [0.0, -1e4, -1e4], [0.0, -1e4, -1e4]];
    let k = Similarity::from_similarity(extreme.view(), 1.0, &[0.5]).unwrap();
    assert_doubly_stochastic(k.matrix(), 1e-14);
    // Log and plain routes agree where both apply.
    let w = random_symmetric(6, 0.1, 2.0, 3);
    let a = sinkhorn_symmetric(w.view()).unwrap();
    let b = sinkhorn_symmetric_log(w.mapv(f64::ln).view()).unwrap();
    assert!((&a - &b).iter().all(|x| x.abs() < 1e-14));
    // −∞ entries are zero weights.
    let ninf = f64::NEG_INFINITY;
    let s = sinkhorn_symmetric_log(array![[0.0, ninf], [ninf, 5.0]].view()).unwrap();
    assert_eq!(s, array![[1.0, 0.0], [0.0, 1.0]]);
    // BLOSUM62 at a tiny temperature tends to the identity (its diagonal is each row's
    // strict maximum, so the identity is the unique optimal assignment).
    let k = Similarity::blosum62(0.01, &[0.5]).unwrap();
    assert_doubly_stochastic(k.matrix(), 1e-14);
    assert!((0..20).all(|i| k.matrix()[[i, i]] > 1.0 - 1e-12));
}

// ---------------------------------------------------------------- kernel identities

#[test]
fn eigen_route_equals_explicit_products() {
    let sim = random_symmetric(7, -2.0, 2.0, 11);
    let k = Similarity::from_similarity(sim.view(), 0.7, &random_betas(25, 12)).unwrap();
    assert_eq!(k.vocab_size(), 7);
    assert_eq!(k.num_steps(), 25);
    assert_doubly_stochastic(k.matrix(), 2e-12);
    check_against_products(&k, 1e-12);
}

#[test]
fn extreme_betas_zero_and_one() {
    // β = 0 is the identity step, β = 1 jumps by S.
    let sim = random_symmetric(5, -1.0, 1.0, 21);
    let k = Similarity::from_similarity(sim.view(), 1.0, &[0.0, 1.0, 1.0, 0.0, 0.5]).unwrap();
    check_against_products(&k, 1e-12);
}

#[test]
fn spectrum_and_accessors() {
    let sim = random_symmetric(6, -1.0, 1.0, 31);
    let betas = random_betas(4, 32);
    let k = Similarity::from_similarity(sim.view(), 0.5, &betas).unwrap();
    let lam = k.eigenvalues();
    assert!(
        (lam[lam.len() - 1] - 1.0).abs() < 1e-13,
        "largest eigenvalue is 1"
    );
    assert!(
        lam.iter()
            .all(|&l| (-1.0 - 1e-13..=1.0 + 1e-13).contains(&l))
    );
    assert!(lam.windows(2).into_iter().all(|w| w[0] <= w[1]));
    let u = k.eigenvectors();
    let back = u.dot(&Array2::from_diag(&lam)).dot(&u.t());
    assert!((&back - &k.matrix()).iter().all(|x| x.abs() < 1e-13));
    assert_eq!(k.cumulative_spectrum(0).unwrap().to_vec(), vec![1.0; 6]);
    for t in 1..=4 {
        let d = k.cumulative_spectrum(t).unwrap();
        for i in 0..6 {
            let want: f64 = betas[..t].iter().map(|&b| 1.0 - b + b * lam[i]).product();
            assert!((d[i] - want).abs() < 1e-15);
        }
    }
}

#[test]
fn stationary_is_uniform_and_invariant() {
    let sim = random_symmetric(8, -1.0, 3.0, 41);
    let k = Similarity::from_similarity(sim.view(), 2.0, &random_betas(10, 42)).unwrap();
    let mut pi = vec![0.0; 8];
    k.stationary(&mut pi).unwrap();
    assert!(pi.iter().all(|&x| x == 0.125));
    let mut out = vec![0.0; 8];
    for t in 0..=10 {
        k.cumulative_vecmat(t, &pi, &mut out).unwrap();
        assert!(max_abs_diff(&out, &pi) < 1e-14);
    }
}

#[test]
fn channel_view_is_the_cumulative_column() {
    use discrete_diffusion::kernel::NoiseProcess;
    let sim = random_symmetric(5, -1.0, 1.0, 51);
    let k = Similarity::from_similarity(sim.view(), 1.0, &random_betas(4, 52)).unwrap();
    let ch = k.channel(0.5).unwrap();
    let (mut a, mut b) = (vec![0.0; 5], vec![0.0; 5]);
    ch.likelihood(3, &mut a).unwrap();
    k.cumulative_col(2, 3, &mut b).unwrap();
    assert_eq!(a, b);
}

// ---------------------------------------------------------------- CTMC view

#[test]
fn generator_exp_matches_taylor_series_and_semigroup() {
    let sim = random_symmetric(6, -2.0, 2.0, 61);
    let k = Similarity::from_similarity(sim.view(), 0.8, &[0.5]).unwrap();
    let mut out = vec![0.0; 6];
    for &sigma in &[0.0, 0.05, 0.7, 2.5] {
        let e = expm_taylor(k.matrix(), sigma);
        for x in 0..6 {
            k.generator_exp_row(sigma, x as u32, &mut out).unwrap();
            assert!(
                max_abs_diff(&out, &e.row(x).to_vec()) < 1e-13,
                "σ̄={sigma} x={x}"
            );
            assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-13);
        }
        let p = [0.1, 0.0, 0.3, 0.2, 0.15, 0.25];
        k.generator_exp_vecmat(sigma, &p, &mut out).unwrap();
        let pe: Vec<f64> = (0..6)
            .map(|j| (0..6).map(|i| p[i] * e[[i, j]]).sum())
            .collect();
        assert!(max_abs_diff(&out, &pe) < 1e-13);
    }
    // exp(aR) exp(bR) = exp((a+b)R).
    let (mut r1, mut r2, mut r3) = (vec![0.0; 6], vec![0.0; 6], vec![0.0; 6]);
    k.generator_exp_row(0.4, 2, &mut r1).unwrap();
    k.generator_exp_vecmat(1.1, &r1, &mut r2).unwrap();
    k.generator_exp_row(1.5, 2, &mut r3).unwrap();
    assert!(max_abs_diff(&r2, &r3) < 1e-14);
    // Large σ̄ → uniform (S is irreducible here: all weights positive).
    k.generator_exp_row(200.0, 0, &mut out).unwrap();
    assert!(out.iter().all(|&x| (x - 1.0 / 6.0).abs() < 1e-12));
}

#[test]
fn generator_row_sums_to_zero_and_is_the_derivative() {
    let sim = random_symmetric(5, -1.0, 1.0, 71);
    let k = Similarity::from_similarity(sim.view(), 1.0, &[0.5]).unwrap();
    let mut g = vec![0.0; 5];
    let (mut a, mut b) = (vec![0.0; 5], vec![0.0; 5]);
    let h = 1e-6;
    for x in 0..5u32 {
        k.generator_row(x, &mut g).unwrap();
        assert!(g.iter().sum::<f64>().abs() < 1e-13);
        assert!(
            g.iter()
                .enumerate()
                .all(|(j, &r)| j == x as usize || r >= 0.0)
        );
        // d/dσ̄ exp(σ̄R)(x, ·) at σ̄ = 0 is R(x, ·): forward difference, error ≈ h‖R²‖/2.
        k.generator_exp_row(h, x, &mut a).unwrap();
        k.generator_exp_row(0.0, x, &mut b).unwrap();
        let fd: Vec<f64> = a.iter().zip(&b).map(|(p, q)| (p - q) / h).collect();
        assert!(max_abs_diff(&fd, &g) < 1e-5);
    }
}

// ---------------------------------------------------------------- kNN

#[test]
fn knn_graph_on_a_line_by_hand() {
    // Points 0, 1, 3, 7, 15 with k = 1: nearest neighbours 0→1, 1→0, 2→1, 3→2, 4→3, so the
    // symmetrised graph is the path 0-1-2-3-4 (degrees 1, 2, 2, 2, 1).
    let emb = array![[0.0], [1.0], [3.0], [7.0], [15.0]];
    let h = 2.0;
    let w = knn_affinity(emb.view(), 1, h).unwrap();
    let mut want = Array2::<f64>::eye(5);
    for (i, j) in [(0, 1), (1, 2), (2, 3), (3, 4)] {
        let d: f64 = emb[[i, 0]] - emb[[j, 0]];
        want[[i, j]] = (-d * d / (h * h)).exp();
        want[[j, i]] = want[[i, j]];
    }
    assert_eq!(w, want);
}

#[test]
fn knn_graph_is_symmetric_with_at_least_k_neighbours() {
    let (v, dim, k) = (30, 3, 4);
    let mut r = Mix(81);
    let emb = Array2::from_shape_fn((v, dim), |_| r.next());
    let w = knn_affinity(emb.view(), k, 0.5).unwrap();
    let dist2 =
        |i: usize, j: usize| -> f64 { (0..dim).map(|c| (emb[[i, c]] - emb[[j, c]]).powi(2)).sum() };
    // Brute-force directed kNN sets.
    let knn: Vec<Vec<usize>> = (0..v)
        .map(|i| {
            let mut js: Vec<usize> = (0..v).filter(|&j| j != i).collect();
            js.sort_by(|&a, &b| dist2(i, a).partial_cmp(&dist2(i, b)).unwrap());
            js.truncate(k);
            js
        })
        .collect();
    for i in 0..v {
        assert_eq!(w[[i, i]], 1.0);
        let deg = (0..v).filter(|&j| j != i && w[[i, j]] > 0.0).count();
        assert!(deg >= k && deg < v, "degree {deg} of {i}");
        for j in 0..v {
            assert_eq!(w[[i, j]], w[[j, i]]);
            if i != j {
                let edge = knn[i].contains(&j) || knn[j].contains(&i);
                assert_eq!(w[[i, j]] > 0.0, edge, "edge ({i},{j})");
                if edge {
                    assert!((w[[i, j]] - (-dist2(i, j) / 0.25).exp()).abs() < 1e-15);
                }
            }
        }
    }
    // The kernel: S has the graph's sparsity and is doubly stochastic.
    let kern = Similarity::from_embeddings_knn(emb.view(), k, 0.5, &random_betas(6, 82)).unwrap();
    assert_doubly_stochastic(kern.matrix(), 2e-12);
    for i in 0..v {
        for j in 0..v {
            assert_eq!(kern.matrix()[[i, j]] > 0.0, w[[i, j]] > 0.0);
        }
    }
    check_against_products(&kern, 1e-12);
}

#[test]
fn knn_with_k_v_minus_1_is_complete() {
    let emb = array![[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]];
    let w = knn_affinity(emb.view(), 2, 10.0).unwrap();
    assert!(w.iter().all(|&x| x > 0.0));
}

// ---------------------------------------------------------------- BLOSUM62

/// An independent copy of BLOSUM62: the 23 NCBI letters as distributed by EvoDiff
/// (`microsoft/evodiff`, `data/blosum62-special.mat`, the first 23 of its 26 columns).
const EVODIFF_BLOSUM62: &str = "\
   A  R  N  D  C  Q  E  G  H  I  L  K  M  F  P  S  T  W  Y  V  B  Z  X  J  O  U
A  4 -1 -2 -2  0 -1 -1  0 -2 -1 -1 -1 -1 -2 -1  1  0 -3 -2  0 -2 -1  0  0  0  0
R -1  5  0 -2 -3  1  0 -2  0 -3 -2  2 -1 -3 -2 -1 -1 -3 -2 -3 -1  0 -1  0  0  0
N -2  0  6  1 -3  0  0  0  1 -3 -3  0 -2 -3 -2  1  0 -4 -2 -3  3  0 -1  0  0  0
D -2 -2  1  6 -3  0  2 -1 -1 -3 -4 -1 -3 -3 -1  0 -1 -4 -3 -3  4  1 -1  0  0  0
C  0 -3 -3 -3  9 -3 -4 -3 -3 -1 -1 -3 -1 -2 -3 -1 -1 -2 -2 -1 -3 -3 -2  0  0  0
Q -1  1  0  0 -3  5  2 -2  0 -3 -2  1  0 -3 -1  0 -1 -2 -1 -2  0  3 -1  0  0  0
E -1  0  0  2 -4  2  5 -2  0 -3 -3  1 -2 -3 -1  0 -1 -3 -2 -2  1  4 -1  0  0  0
G  0 -2  0 -1 -3 -2 -2  6 -2 -4 -4 -2 -3 -3 -2  0 -2 -2 -3 -3 -1 -2 -1  0  0  0
H -2  0  1 -1 -3  0  0 -2  8 -3 -3 -1 -2 -1 -2 -1 -2 -2  2 -3  0  0 -1  0  0  0
I -1 -3 -3 -3 -1 -3 -3 -4 -3  4  2 -3  1  0 -3 -2 -1 -3 -1  3 -3 -3 -1  0  0  0
L -1 -2 -3 -4 -1 -2 -3 -4 -3  2  4 -2  2  0 -3 -2 -1 -2 -1  1 -4 -3 -1  0  0  0
K -1  2  0 -1 -3  1  1 -2 -1 -3 -2  5 -1 -3 -1  0 -1 -3 -2 -2  0  1 -1  0  0  0
M -1 -1 -2 -3 -1  0 -2 -3 -2  1  2 -1  5  0 -2 -1 -1 -1 -1  1 -3 -1 -1  0  0  0
F -2 -3 -3 -3 -2 -3 -3 -3 -1  0  0 -3  0  6 -4 -2 -2  1  3 -1 -3 -3 -1  0  0  0
P -1 -2 -2 -1 -3 -1 -1 -2 -2 -3 -3 -1 -2 -4  7 -1 -1 -4 -3 -2 -2 -1 -2  0  0  0
S  1 -1  1  0 -1  0  0  0 -1 -2 -2  0 -1 -2 -1  4  1 -3 -2 -2  0  0  0  0  0  0
T  0 -1  0 -1 -1 -1 -1 -2 -2 -1 -1 -1 -1 -2 -1  1  5 -2 -2  0 -1 -1  0  0  0  0
W -3 -3 -4 -4 -2 -2 -3 -2 -2 -3 -2 -3 -1  1 -4 -3 -2 11  2 -3 -4 -3 -2  0  0  0
Y -2 -2 -2 -3 -2 -1 -2 -3  2 -1 -1 -2 -1  3 -3 -2 -2  2  7 -1 -3 -2 -1  0  0  0
V  0 -3 -3 -3 -1 -2 -2 -3 -3  3  1 -2  1 -1 -2 -2  0 -3 -1  4 -3 -2 -1  0  0  0
B -2 -1  3  4 -3  0  1 -1  0 -3 -4  0 -3 -3 -2  0 -1 -4 -3 -3  4  1 -1  0  0  0
Z -1  0  0  1 -3  3  4 -2  0 -3 -3  1 -1 -3 -1  0 -1 -3 -2 -2  1  4 -1  0  0  0
X  0 -1 -1 -1 -2 -1 -1 -1 -1 -1 -1 -1 -1 -1 -2  0  0 -2 -1 -1 -1 -1 -1  0  0  0";

#[test]
fn blosum62_matches_an_independent_copy() {
    let mut lines = EVODIFF_BLOSUM62.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let mut rows = 0;
    for line in lines {
        let mut f = line.split_whitespace();
        let a = f.next().unwrap().as_bytes()[0];
        for (col, val) in f.enumerate().take(23) {
            let b = header[col].as_bytes()[0];
            let want: i8 = val.parse().unwrap();
            assert_eq!(
                blosum62_score(a, b).unwrap(),
                want,
                "{} {}",
                a as char,
                b as char
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 23);
    // The stop row/column: −4 against everything else, 1 with itself (NCBI convention).
    for i in 0..23 {
        assert_eq!(BLOSUM62[23][i], -4);
        assert_eq!(BLOSUM62[i][23], -4);
    }
    assert_eq!(BLOSUM62[23][23], 1);
}

#[test]
fn blosum62_well_known_entries_and_symmetry() {
    let known = [
        (b'A', b'A', 4),
        (b'W', b'W', 11),
        (b'C', b'C', 9),
        (b'H', b'H', 8),
        (b'P', b'P', 7),
        (b'Y', b'Y', 7),
        (b'I', b'V', 3),
        (b'L', b'I', 2),
        (b'D', b'E', 2),
        (b'W', b'C', -2),
        (b'F', b'Y', 3),
        (b'K', b'R', 2),
        (b'G', b'I', -4),
        (b'B', b'D', 4),
        (b'Z', b'E', 4),
        (b'X', b'X', -1),
        (b'*', b'*', 1),
    ];
    for (a, b, s) in known {
        assert_eq!(blosum62_score(a, b).unwrap(), s);
        assert_eq!(blosum62_score(b, a).unwrap(), s);
    }
    for i in 0..24 {
        for j in 0..24 {
            assert_eq!(BLOSUM62[i][j], BLOSUM62[j][i]);
        }
        // In each row of the 20 standard amino acids, the diagonal is the largest score.
        if i < 20 {
            assert!((0..20).all(|j| j == i || BLOSUM62[i][j] < BLOSUM62[i][i]));
        }
    }
    assert_eq!(&BLOSUM62_ALPHABET[..20], &STANDARD_AMINO_ACIDS[..]);
    assert_eq!(blosum62_index(b'*').unwrap(), 23);
    assert_eq!(blosum62_index(b'v').unwrap(), 19);
    let std20 = blosum62_standard();
    assert_eq!(std20.dim(), (20, 20));
    assert_eq!(std20[[17, 17]], 11.0); // W
    assert_eq!(blosum62_submatrix(&STANDARD_AMINO_ACIDS).unwrap(), std20);
}

/// EvoDiff's `q_blosum` carried to convergence: column softmax of `B/τ`, then alternating
/// row and column normalisation (`evodiff/utils.py`, `double_stochastic`).
fn evodiff_alternating(b: ArrayView2<f64>, tau: f64) -> Array2<f64> {
    let v = b.nrows();
    let mut q = b.mapv(|x| (x / tau).exp());
    for j in 0..v {
        let c: f64 = q.column(j).sum();
        q.column_mut(j).mapv_inplace(|x| x / c);
    }
    for _ in 0..100_000 {
        for i in 0..v {
            let r: f64 = q.row(i).sum();
            q.row_mut(i).mapv_inplace(|x| x / r);
        }
        let mut worst = 0.0f64;
        for j in 0..v {
            let c: f64 = q.column(j).sum();
            worst = worst.max((c - 1.0).abs());
            q.column_mut(j).mapv_inplace(|x| x / c);
        }
        if worst < 1e-15 {
            break;
        }
    }
    q
}

#[test]
fn blosum62_kernel_is_converged_evodiff_construction() {
    let betas = random_betas(30, 91);
    for tau in [1.0, 2.5] {
        let k = Similarity::blosum62(tau, &betas).unwrap();
        assert_eq!(k.vocab_size(), 20);
        assert_doubly_stochastic(k.matrix(), 2e-12);
        let q = evodiff_alternating(blosum62_standard().view(), tau);
        let diff = (&q - &k.matrix())
            .iter()
            .fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(
            diff < 1e-10,
            "τ={tau}: differs from alternating Sinkhorn by {diff:e}"
        );
        check_against_products(&k, 1e-12);
    }
    // W (index 17) keeps most of its mass at τ = 1: exp(11) dominates its row.
    let k = Similarity::blosum62(1.0, &[0.5]).unwrap();
    assert!(k.matrix()[[17, 17]] > 0.9);
}

#[test]
fn blosum62_for_alphabet_permutes_states() {
    let alpha = b"WACDEFGHIKLMNPQRSTVY";
    let k1 = Similarity::blosum62(1.3, &[0.2, 0.4]).unwrap();
    let k2 = Similarity::blosum62_for_alphabet(alpha, 1.3, &[0.2, 0.4]).unwrap();
    let idx: Vec<usize> = alpha.iter().map(|&c| blosum62_index(c).unwrap()).collect();
    for a in 0..20 {
        for b in 0..20 {
            let d = k2.matrix()[[a, b]] - k1.matrix()[[idx[a], idx[b]]];
            assert!(d.abs() < 1e-13);
        }
    }
    // Lower case and the ambiguity codes are accepted.
    let k3 = Similarity::blosum62_for_alphabet(b"arndBZX", 1.0, &[0.5]).unwrap();
    assert_eq!(k3.vocab_size(), 7);
}

// ---------------------------------------------------------------- property tests

fn sym_strategy() -> impl Strategy<Value = (Array2<f64>, f64, Vec<f64>)> {
    (2usize..9).prop_flat_map(|v| {
        (
            prop::collection::vec(-4.0f64..4.0, v * v),
            0.2f64..4.0,
            prop::collection::vec(0.0f64..=1.0, 1..12),
        )
            .prop_map(move |(raw, tau, betas)| {
                let a = Array2::from_shape_fn((v, v), |(i, j)| {
                    let (i, j) = if i <= j { (i, j) } else { (j, i) };
                    raw[i * v + j]
                });
                (a, tau, betas)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_similarity_kernel_identities((sim, tau, betas) in sym_strategy()) {
        let k = Similarity::from_similarity(sim.view(), tau, &betas).unwrap();
        assert_doubly_stochastic(k.matrix(), 2e-12);
        check_against_products(&k, 1e-12);
    }

    #[test]
    fn prop_sinkhorn_rows_and_columns((sim, _tau, _b) in sym_strategy()) {
        let w = sim.mapv(f64::exp);
        let s = sinkhorn_symmetric(w.view()).unwrap();
        assert_doubly_stochastic(s.view(), 2e-12);
    }

    #[test]
    fn prop_generator_exp_rows_are_distributions(
        (sim, tau, _b) in sym_strategy(),
        sigma in 0.0f64..50.0,
    ) {
        let k = Similarity::from_similarity(sim.view(), tau, &[0.5]).unwrap();
        let v = k.vocab_size();
        let mut out = vec![0.0; v];
        for x in 0..v as u32 {
            k.generator_exp_row(sigma, x, &mut out).unwrap();
            prop_assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            prop_assert!(out.iter().all(|&p| p >= 0.0));
        }
    }
}

// ---------------------------------------------------------------- bad input

fn is_invalid(r: Result<impl std::fmt::Debug, Error>, arg: &str) {
    match r {
        Err(Error::InvalidArgument { arg: a, .. }) | Err(Error::Shape { arg: a, .. }) => {
            assert_eq!(a, arg)
        }
        Err(Error::NonFinite { arg: a, .. }) | Err(Error::TokenOutOfRange { arg: a, .. }) => {
            assert_eq!(a, arg)
        }
        other => panic!("expected an error naming `{arg}`, got {other:?}"),
    }
}

#[test]
fn bad_input_constructors() {
    let ok = array![[0.5, 0.5], [0.5, 0.5]];
    // from_doubly_stochastic
    is_invalid(
        Similarity::from_doubly_stochastic(Array2::zeros((2, 3)), &[0.5]),
        "s",
    );
    is_invalid(
        Similarity::from_doubly_stochastic(array![[1.0]], &[0.5]),
        "s",
    );
    is_invalid(
        Similarity::from_doubly_stochastic(array![[f64::NAN, 0.5], [0.5, 0.5]], &[0.5]),
        "s",
    );
    is_invalid(
        Similarity::from_doubly_stochastic(array![[1.5, -0.5], [-0.5, 1.5]], &[0.5]),
        "s",
    );
    is_invalid(
        Similarity::from_doubly_stochastic(array![[0.5, 0.6], [0.4, 0.5]], &[0.5]),
        "s",
    );
    is_invalid(
        Similarity::from_doubly_stochastic(array![[0.5, 0.4], [0.4, 0.5]], &[0.5]),
        "s",
    );
    is_invalid(Similarity::from_doubly_stochastic(ok.clone(), &[]), "betas");
    is_invalid(
        Similarity::from_doubly_stochastic(ok.clone(), &[0.5, 1.5]),
        "betas",
    );
    is_invalid(
        Similarity::from_doubly_stochastic(ok.clone(), &[-0.1]),
        "betas",
    );
    is_invalid(
        Similarity::from_doubly_stochastic(ok.clone(), &[f64::NAN]),
        "betas",
    );
    // from_similarity
    let sim = array![[1.0, 0.2], [0.2, 1.0]];
    is_invalid(
        Similarity::from_similarity(array![[1.0, 0.3], [0.2, 1.0]].view(), 1.0, &[0.5]),
        "sim",
    );
    is_invalid(
        Similarity::from_similarity(array![[1.0, f64::NAN], [f64::NAN, 1.0]].view(), 1.0, &[0.5]),
        "sim",
    );
    is_invalid(
        Similarity::from_similarity(Array2::zeros((3, 2)).view(), 1.0, &[0.5]),
        "sim",
    );
    is_invalid(
        Similarity::from_similarity(array![[1.0]].view(), 1.0, &[0.5]),
        "sim",
    );
    for tau in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        is_invalid(
            Similarity::from_similarity(sim.view(), tau, &[0.5]),
            "temperature",
        );
    }
    is_invalid(
        Similarity::from_similarity(sim.view(), 1.0, &[1.0 + 1e-12]),
        "betas",
    );
    // from_embeddings_knn / knn_affinity
    let emb = array![[0.0], [1.0], [3.0]];
    for k in [0, 3, 7] {
        is_invalid(knn_affinity(emb.view(), k, 1.0), "k");
        is_invalid(
            Similarity::from_embeddings_knn(emb.view(), k, 1.0, &[0.5]),
            "k",
        );
    }
    for h in [0.0, -2.0, f64::NAN, f64::INFINITY] {
        is_invalid(knn_affinity(emb.view(), 1, h), "bandwidth");
    }
    is_invalid(
        knn_affinity(array![[0.0], [f64::NAN], [1.0]].view(), 1, 1.0),
        "emb",
    );
    is_invalid(knn_affinity(array![[0.0, 1.0]].view(), 1, 1.0), "emb");
    is_invalid(knn_affinity(Array2::zeros((3, 0)).view(), 1, 1.0), "emb");
    is_invalid(
        Similarity::from_embeddings_knn(emb.view(), 1, 1.0, &[2.0]),
        "betas",
    );
    // sinkhorn_symmetric
    is_invalid(sinkhorn_symmetric(Array2::zeros((2, 3)).view()), "w");
    is_invalid(sinkhorn_symmetric(Array2::zeros((0, 0)).view()), "w");
    is_invalid(
        sinkhorn_symmetric(array![[1.0, f64::INFINITY], [f64::INFINITY, 1.0]].view()),
        "w",
    );
    is_invalid(
        sinkhorn_symmetric(array![[1.0, -0.1], [-0.1, 1.0]].view()),
        "w",
    );
    is_invalid(
        sinkhorn_symmetric(array![[1.0, 0.2], [0.3, 1.0]].view()),
        "w",
    );
    is_invalid(
        sinkhorn_symmetric(array![[1.0, 0.0], [0.0, 0.0]].view()),
        "w",
    );
    // No support (no positive diagonal: rows 0 and 2 both need column 1): no
    // doubly-stochastic limit exists.
    assert!(matches!(
        sinkhorn_symmetric(array![[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]].view()),
        Err(Error::Numerical { .. })
    ));
    // No support through −∞ log-weights (rows 1 and 2 both need column 0).
    let ninf = f64::NEG_INFINITY;
    let no_support = array![[0.0, 0.0, 0.0], [0.0, ninf, ninf], [0.0, ninf, ninf]];
    assert!(matches!(
        sinkhorn_symmetric_log(no_support.view()),
        Err(Error::Numerical { .. })
    ));
    // sinkhorn_symmetric_log
    is_invalid(
        sinkhorn_symmetric_log(Array2::zeros((2, 3)).view()),
        "log_w",
    );
    is_invalid(
        sinkhorn_symmetric_log(Array2::zeros((0, 0)).view()),
        "log_w",
    );
    is_invalid(
        sinkhorn_symmetric_log(array![[0.0, f64::NAN], [f64::NAN, 0.0]].view()),
        "log_w",
    );
    is_invalid(
        sinkhorn_symmetric_log(array![[0.0, f64::INFINITY], [f64::INFINITY, 0.0]].view()),
        "log_w",
    );
    is_invalid(
        sinkhorn_symmetric_log(array![[0.0, 1.0], [2.0, 0.0]].view()),
        "log_w",
    );
    is_invalid(
        sinkhorn_symmetric_log(array![[ninf, ninf], [ninf, 0.0]].view()),
        "log_w",
    );
    // BLOSUM
    is_invalid(blosum62_index(b'J'), "letter");
    is_invalid(blosum62_score(b'A', b'#'), "letter");
    is_invalid(blosum62_submatrix(b"A"), "alphabet");
    is_invalid(blosum62_submatrix(b"ARA"), "alphabet");
    is_invalid(blosum62_submatrix(b"AR-"), "alphabet");
    is_invalid(Similarity::blosum62(0.0, &[0.5]), "temperature");
    is_invalid(Similarity::blosum62(1.0, &[]), "betas");
    is_invalid(
        Similarity::blosum62_for_alphabet(b"AO", 1.0, &[0.5]),
        "alphabet",
    );
}

#[test]
fn bad_input_kernel_methods() {
    let sim = random_symmetric(4, -1.0, 1.0, 101);
    let k = Similarity::from_similarity(sim.view(), 1.0, &[0.3, 0.6, 0.9]).unwrap();
    let mut out = vec![0.0; 4];
    let mut short = vec![0.0; 3];
    let p = [0.25; 4];
    // step index: one-step methods need 1..=T, cumulative 0..=T.
    is_invalid(k.step_row(0, 0, &mut out), "t");
    is_invalid(k.step_row(4, 0, &mut out), "t");
    is_invalid(k.step_col(0, 0, &mut out), "t");
    is_invalid(k.step_vecmat(0, &p, &mut out), "t");
    is_invalid(k.step_vecmat(4, &p, &mut out), "t");
    is_invalid(k.cumulative_row(4, 0, &mut out), "t");
    is_invalid(k.cumulative_col(4, 0, &mut out), "t");
    is_invalid(k.cumulative_vecmat(4, &p, &mut out), "t");
    is_invalid(k.cumulative_matvec(4, &p, &mut out), "t");
    is_invalid(k.cumulative_spectrum(4), "t");
    is_invalid(k.at_step(4), "t");
    // tokens
    is_invalid(k.step_row(1, 4, &mut out), "x");
    is_invalid(k.step_col(1, 4, &mut out), "y");
    is_invalid(k.cumulative_row(1, 4, &mut out), "x0");
    is_invalid(k.cumulative_col(1, 9, &mut out), "y");
    is_invalid(k.generator_row(4, &mut out), "x");
    is_invalid(k.generator_exp_row(1.0, 4, &mut out), "x");
    // buffers
    is_invalid(k.step_row(1, 0, &mut short), "out");
    is_invalid(k.step_col(1, 0, &mut short), "out");
    is_invalid(k.cumulative_row(1, 0, &mut short), "out");
    is_invalid(k.cumulative_col(0, 0, &mut short), "out");
    is_invalid(k.cumulative_vecmat(1, &p, &mut short), "out");
    is_invalid(k.cumulative_matvec(0, &p, &mut short), "out");
    is_invalid(k.step_vecmat(1, &p, &mut short), "out");
    is_invalid(k.stationary(&mut short), "out");
    is_invalid(k.generator_row(0, &mut short), "out");
    is_invalid(k.generator_exp_row(1.0, 0, &mut short), "out");
    is_invalid(k.generator_exp_vecmat(1.0, &p, &mut short), "out");
    // vector arguments
    for bad in [[0.25, 0.25, f64::NAN, 0.25], [0.5, -0.1, 0.3, 0.3]] {
        is_invalid(k.cumulative_vecmat(1, &bad, &mut out), "p");
        is_invalid(k.cumulative_matvec(2, &bad, &mut out), "r");
        is_invalid(k.step_vecmat(1, &bad, &mut out), "p");
        is_invalid(k.generator_exp_vecmat(1.0, &bad, &mut out), "p");
    }
    is_invalid(k.cumulative_vecmat(1, &[0.5, 0.5], &mut out), "p");
    // total noise
    for s in [-1e-9, f64::NAN, f64::INFINITY] {
        is_invalid(k.generator_exp_row(s, 0, &mut out), "sigma_bar");
        is_invalid(k.generator_exp_vecmat(s, &p, &mut out), "sigma_bar");
    }
}
