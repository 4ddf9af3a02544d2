//! Rate-space guidance: exact conditional reverse rates of a masked process (γ = 1, exact
//! noisy classifier), validity of tilted rows, γ = 0 identity, and bad inputs.

mod guidance_common;

use discrete_diffusion::Error;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::guidance::{exact_log_ratios, tilt_rate_row};
use discrete_diffusion::schedule::Linear;
use guidance_common::{L, N, NoisyClassifier, V, clean_of, hash01, law_without_mask, seq};
use ndarray::{Array1, Array2, Array3};
use proptest::prelude::*;

const MASK: u32 = 2;

fn clean(x: &[u32]) -> bool {
    clean_of(x, MASK)
}

fn data_law() -> Vec<f64> {
    law_without_mask(MASK, 0.1, 11)
}

fn p_y() -> Vec<f64> {
    (0..N).map(|k| 0.05 + 0.9 * hash01(k, 5)).collect()
}

fn posterior(p: Vec<f64>, x: &[u32], t: f64) -> Array3<f64> {
    let mut pi = vec![0.0; V];
    pi[MASK as usize] = 1.0;
    let process = MixtureProcess::from_schedule(pi, Linear::new()).unwrap();
    let d = OracleDenoiser::new(EnumerationOracle::new(V, L, p).unwrap(), process).unwrap();
    let mut out = Array3::<f64>::zeros((1, L, V));
    let tokens = Array2::from_shape_vec((1, L), x.to_vec()).unwrap();
    d.probabilities(
        tokens.view(),
        Array1::from_elem(1, t).view(),
        out.view_mut(),
    )
    .unwrap();
    out
}

/// Reverse rate row of masked diffusion with α(t) = 1 − t at a masked position:
/// `R(x, x^{i←v}) = (1/t) p(x_0^i = v | x_t)`, diagonal `−1/t`.
fn reverse_row(post: &Array3<f64>, i: usize, t: f64) -> Vec<f64> {
    let mut row: Vec<f64> = (0..V).map(|v| post[[0, i, v]] / t).collect();
    row[MASK as usize] = 0.0;
    let s: f64 = row.iter().sum();
    row[MASK as usize] = -s;
    row
}

#[test]
fn gamma_one_gives_the_conditional_reverse_rates() {
    let (data, py) = (data_law(), p_y());
    let mut cond: Vec<f64> = data.iter().zip(&py).map(|(a, b)| a * b).collect();
    let z: f64 = cond.iter().sum();
    cond.iter_mut().for_each(|q| *q /= z);
    let classifier = NoisyClassifier {
        mask: MASK,
        data: data.clone(),
        py,
    };
    let t = 0.6;
    let mut max_gap = 0.0f64;
    let mut unguided_gap = 0.0f64;
    for k in 0..N {
        let x = seq(k);
        if clean(&x) {
            continue;
        }
        let (pu, pc) = (
            posterior(data.clone(), &x, t),
            posterior(cond.clone(), &x, t),
        );
        let mut r = Array2::<f64>::zeros((L, V));
        exact_log_ratios(&classifier, &x, t, None, r.view_mut()).unwrap();
        for (i, &xi) in x.iter().enumerate() {
            if xi != MASK {
                continue;
            }
            let mut row = reverse_row(&pu, i, t);
            let want = reverse_row(&pc, i, t);
            for (a, b) in row.iter().zip(&want) {
                unguided_gap = unguided_gap.max((a - b).abs());
            }
            tilt_rate_row(&mut row, MASK as usize, r.row(i).as_slice().unwrap(), 1.0).unwrap();
            for (a, b) in row.iter().zip(&want) {
                max_gap = max_gap.max((a - b).abs() / (1.0 + b.abs()));
            }
        }
    }
    assert!(max_gap < 1e-12, "max relative gap {max_gap}");
    assert!(unguided_gap > 0.05, "test has no power: {unguided_gap}");
}

#[test]
fn examples() {
    let mut row = [1.0, -3.0, 2.0];
    tilt_rate_row(&mut row, 1, &[1.0, 0.0, 0.0], 2.0).unwrap();
    let e2 = 2f64.exp();
    assert_eq!(row, [e2, -(e2 + 2.0), 2.0]);
    // Zero rates stay zero even toward a much likelier state.
    let mut row = [0.0, 0.0, 0.0];
    tilt_rate_row(&mut row, 0, &[0.0, 50.0, -1.0], 1.0).unwrap();
    assert_eq!(row, [0.0, 0.0, 0.0]);
}

#[test]
fn bad_inputs() {
    let lp = [0.0, -1.0, -2.0];
    let check = |mut row: Vec<f64>, cur: usize, lp: &[f64], g: f64| {
        let before = row.clone();
        let r = tilt_rate_row(&mut row, cur, lp, g);
        let bits = |r: &[f64]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&row), bits(&before), "row modified on error");
        r.unwrap_err()
    };
    let good = vec![-3.0, 1.0, 2.0];
    check(vec![0.0], 0, &[0.0], 1.0);
    check(good.clone(), 3, &lp, 1.0);
    check(good.clone(), 0, &lp[..2], 1.0);
    check(good.clone(), 0, &lp, -1.0);
    check(good.clone(), 0, &lp, f64::NAN);
    assert!(matches!(
        check(vec![-3.0, f64::NAN, 2.0], 0, &lp, 1.0),
        Error::NonFinite { .. }
    ));
    check(vec![-1.0, -1.0, 2.0], 0, &lp, 1.0); // negative off-diagonal
    check(vec![-2.0, 1.0, 2.0], 0, &lp, 1.0); // does not sum to 0
    assert!(matches!(
        check(good.clone(), 0, &[0.0, f64::NAN, 0.0], 1.0),
        Error::NonFinite { .. }
    ));
    assert!(matches!(
        check(good.clone(), 0, &[0.0, f64::INFINITY, 0.0], 1.0),
        Error::NonFinite { .. }
    ));
    assert!(matches!(
        check(good.clone(), 0, &[f64::NEG_INFINITY, 0.0, 0.0], 1.0),
        Error::ZeroProbability { .. }
    ));
    assert!(matches!(
        check(vec![-3.0, 1.0, 2.0], 0, &[0.0, 800.0, 0.0], 1.0),
        Error::Numerical { .. }
    ));
}

fn row_strategy() -> impl Strategy<Value = (Vec<f64>, usize, Vec<f64>)> {
    (2usize..10).prop_flat_map(|v| {
        (
            prop::collection::vec(prop_oneof![Just(0.0), 0.0f64..10.0], v),
            0..v,
            prop::collection::vec(prop_oneof![Just(f64::NEG_INFINITY), -10.0f64..0.0], v),
        )
    })
}

fn valid((mut rates, cur, mut lp): (Vec<f64>, usize, Vec<f64>)) -> (Vec<f64>, usize, Vec<f64>) {
    rates[cur] = 0.0;
    let s: f64 = rates.iter().sum();
    rates[cur] = -s;
    if !lp[cur].is_finite() {
        lp[cur] = -1.0;
    }
    (rates, cur, lp)
}

proptest! {
    #[test]
    fn tilted_rows_are_rates(r in row_strategy(), gamma in 0.0f64..3.0) {
        let (rates, cur, lp) = valid(r);
        let mut row = rates.clone();
        tilt_rate_row(&mut row, cur, &lp, gamma).unwrap();
        let off: f64 = row.iter().enumerate().filter(|&(z, _)| z != cur).map(|(_, &x)| x).sum();
        for (z, &x) in row.iter().enumerate() {
            prop_assert!(x.is_finite());
            if z != cur {
                prop_assert!(x >= 0.0);
                if rates[z] == 0.0 || lp[z] == f64::NEG_INFINITY {
                    prop_assert_eq!(x, 0.0);
                }
            }
        }
        prop_assert!((off + row[cur]).abs() <= 1e-12 * off.max(1.0));
        // γ = 0 is the identity, bit for bit.
        let mut same = rates.clone();
        tilt_rate_row(&mut same, cur, &lp, 0.0).unwrap();
        prop_assert_eq!(&same, &rates);
        // Tilts compose: γ₁ then γ₂ equals γ₁ + γ₂.
        let mut two = rates.clone();
        tilt_rate_row(&mut two, cur, &lp, 0.5 * gamma).unwrap();
        tilt_rate_row(&mut two, cur, &lp, 0.5 * gamma).unwrap();
        for (a, b) in two.iter().zip(&row) {
            prop_assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()));
        }
    }
}
