//! The generalised KL loss: gradient by finite differences, its value as the Bregman
//! divergence of velocities, and the NELBO estimate against `−ln p(x_1)` with an exact
//! oracle (masked path: the bound is tight).

use discrete_diffusion::kernel::path::{MixturePath, SourceLaw};
use discrete_diffusion::loss::flow::{generalized_kl, generalized_kl_batch, nelbo_estimate};
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::schedule::Kappa;
use ndarray::{Array1, Array2, Array3};

#[test]
fn gradient_matches_finite_differences() {
    let k = Kappa::polynomial(2.0).unwrap();
    let logits = [0.3, -1.2, 0.8, 0.05, -0.4];
    for (x1, xs) in [(2u32, 2u32), (2, 0), (4, 1), (0, 3)] {
        let mut g = [0.0; 5];
        let f0 = generalized_kl(&k, 0.6, &logits, x1, xs, Some(&mut g)).unwrap();
        for j in 0..5 {
            let e = 1e-6;
            let (mut lp, mut lm) = (logits, logits);
            lp[j] += e;
            lm[j] -= e;
            let fd = (generalized_kl(&k, 0.6, &lp, x1, xs, None).unwrap()
                - generalized_kl(&k, 0.6, &lm, x1, xs, None).unwrap())
                / (2.0 * e);
            assert!(
                (fd - g[j]).abs() < 1e-8,
                "x1={x1} xs={xs} j={j}: {fd} vs {}",
                g[j]
            );
        }
        assert!(f0 >= 0.0, "a Bregman divergence is non-negative: {f0}");
        // Shift invariance of the logits: the gradient sums to 0.
        assert!(g.iter().sum::<f64>().abs() < 1e-12);
    }
    // f32 logits and batch form agree with the scalar form.
    let l3 = Array3::from_shape_fn((1, 2, 5), |(_, i, j)| (logits[j] + i as f64) as f32);
    let x1 = Array2::from_shape_vec((1, 2), vec![2u32, 4]).unwrap();
    let xs = Array2::from_shape_vec((1, 2), vec![0u32, 4]).unwrap();
    let mut g = Array3::<f32>::zeros((1, 2, 5));
    let d = generalized_kl_batch(
        &k,
        l3.view(),
        x1.view(),
        xs.view(),
        Array1::from(vec![0.6]).view(),
        Some(g.view_mut()),
    )
    .unwrap();
    let row: Vec<f32> = l3.slice(ndarray::s![0, 0, ..]).to_vec();
    let mut g0 = [0f32; 5];
    let want = generalized_kl(&k, 0.6, &row, 2, 0, Some(&mut g0)).unwrap();
    assert!((d[[0, 0]] - want).abs() < 1e-12);
    assert_eq!(g.slice(ndarray::s![0, 0, ..]).to_vec(), g0.to_vec());
}

#[test]
fn loss_is_the_velocity_bregman_divergence() {
    // D = Σ_{y≠x_s} [u_θ − u + u ln(u/u_θ)], u_θ = w p, u = w δ_{x1}.
    let k = Kappa::cond_ot();
    let s = 0.3;
    let w = 1.0 / (1.0 - s);
    let logits = [0.1f64, 0.7, -0.3, 1.1];
    let z: f64 = logits.iter().map(|l| l.exp()).sum();
    let p: Vec<f64> = logits.iter().map(|l| l.exp() / z).collect();
    for (x1, xs) in [(1usize, 3usize), (2, 2)] {
        let mut d = 0.0;
        for (y, &py) in p.iter().enumerate() {
            if y == xs {
                continue;
            }
            let (ut, u) = (w * py, if y == x1 { w } else { 0.0 });
            d += ut - u + if u > 0.0 { u * (u / ut).ln() } else { 0.0 };
        }
        let got = generalized_kl(&k, s, &logits, x1 as u32, xs as u32, None).unwrap();
        assert!((got - d).abs() < 1e-12, "{got} vs {d}");
    }
}

#[test]
fn nelbo_is_tight_for_the_exact_masked_posterior() {
    // V = 4 with the mask at 0, L = 2; cosine κ (κ̇(1) = 0: finite variance).
    let (v, l, mask) = (4usize, 2usize, 0u32);
    let mut p = vec![0.0; v * v];
    let pairs = [
        ((1, 1), 0.3),
        ((1, 2), 0.1),
        ((2, 3), 0.25),
        ((3, 3), 0.2),
        ((3, 1), 0.15),
    ];
    for ((a, b), q) in pairs {
        p[a * v + b] = q;
    }
    let oracle = EnumerationOracle::new(v, l, p.clone()).unwrap();
    let path = MixturePath::new(Kappa::cosine(), SourceLaw::Mask(mask), v).unwrap();
    let den = OracleDenoiser::new(oracle, path.noise_process().unwrap()).unwrap();
    let b = 4000;
    let streams: Vec<u64> = (0..b as u64).collect();
    for ((a, c), q) in pairs {
        let x1 = Array2::from_shape_fn((b, l), |(_, i)| if i == 0 { a as u32 } else { c as u32 });
        let est = nelbo_estimate(&path, &den, x1.view(), 8, 17, &streams).unwrap();
        let mean = est.mean().unwrap();
        let sd = est.std(1.0) / (b as f64).sqrt();
        let want = -f64::ln(q);
        assert!(
            (mean - want).abs() < 4.5 * sd + 1e-9,
            "x1 = ({a}, {c}): NELBO {mean} ± {sd} vs −ln p = {want}"
        );
    }
}
