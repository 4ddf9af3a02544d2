//! Shared helpers of the fused-step behaviour tests (`backend_steps_*.rs`).
#![allow(dead_code)]

use discrete_diffusion::Error;
use discrete_diffusion::backend::ReferenceBackend;
use ndarray::{Array2, Array3};
use statrs::distribution::{ChiSquared, ContinuousCDF};

pub const BK: ReferenceBackend = ReferenceBackend;

/// Significance of every χ² test (fixed seeds: deterministic; a false alarm would show at
/// this rate over seeds).
pub const ALPHA: f64 = 1e-4;

pub fn streams(b: usize) -> Vec<u64> {
    (0..b as u64).map(|x| 1000 + 7 * x).collect()
}

/// Pearson χ² of `counts` against `probs` (entries with p = 0 must have count 0); panics
/// with the statistic and the `1 − ALPHA` quantile when the test rejects.
pub fn assert_chi2(what: &str, counts: &[u64], probs: &[f64]) {
    let n: u64 = counts.iter().sum();
    let mut stat = 0.0;
    let mut df = 0usize;
    for (k, (&c, &p)) in counts.iter().zip(probs).enumerate() {
        if p <= 0.0 {
            assert_eq!(c, 0, "{what}: category {k} has probability 0 but {c} draws");
            continue;
        }
        let e = p * n as f64;
        assert!(e >= 5.0, "{what}: expected count {e} too small for χ²");
        stat += (c as f64 - e).powi(2) / e;
        df += 1;
    }
    assert!(df >= 2, "{what}: degenerate law");
    let crit = ChiSquared::new((df - 1) as f64)
        .unwrap()
        .inverse_cdf(1.0 - ALPHA);
    assert!(
        stat < crit,
        "{what}: χ² = {stat:.2} ≥ {crit:.2} (df {}), counts {counts:?}, probs {probs:?}",
        df - 1
    );
}

/// `[B, L, V]` logits with every row equal to `row`.
pub fn tiled(row: &[f64], b: usize, l: usize) -> Array3<f32> {
    let v = row.len();
    Array3::from_shape_fn((b, l, v), |(_, _, k)| row[k] as f32)
}

/// Histogram of the tokens over `V` categories.
pub fn histogram(tokens: &Array2<u32>, v: usize) -> Vec<u64> {
    let mut h = vec![0u64; v];
    for &x in tokens {
        h[x as usize] += 1;
    }
    h
}

pub fn softmax(l: &[f64]) -> Vec<f64> {
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = l.iter().map(|&x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

pub fn is_invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    r.is_err()
}
