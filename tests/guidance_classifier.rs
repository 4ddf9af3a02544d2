//! Classifier guidance against the exact tilted law on an enumerable space (V = 3 data
//! tokens + a mask, L = 3), TAG against exact guidance, and bad inputs.

mod guidance_common;

use discrete_diffusion::Error;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::guidance::{
    Classifier, ClassifierGuided, GuidanceMethod, GuidedPositions, exact_log_ratios,
    taylor_log_ratios, tilt_logits,
};
use discrete_diffusion::schedule::Linear;
use guidance_common::{L, N, NoisyClassifier, V, clean_of, hash01, law_without_mask, seq};
use ndarray::{Array1, Array2, Array3, ArrayViewMut2};

const MASK: u32 = 1; // deliberately not the last index

fn clean(x: &[u32]) -> bool {
    clean_of(x, MASK)
}

/// Data law: positive on every clean sequence, 0 on sequences containing the mask.
fn data_law() -> Vec<f64> {
    law_without_mask(MASK, 0.2, 1)
}

/// p(y | x0) on clean sequences: a sigmoid of a random score (non-linear in the one-hot).
fn p_y() -> Vec<f64> {
    (0..N)
        .map(|k| {
            let f = 4.0 * (hash01(k, 7) - 0.5);
            1.0 / (1.0 + (-f).exp())
        })
        .collect()
}

fn index(x: &[u32]) -> usize {
    x.iter().fold(0, |a, &t| a * V + t as usize)
}

fn process() -> MixtureProcess {
    let mut pi = vec![0.0; V];
    pi[MASK as usize] = 1.0;
    MixtureProcess::from_schedule(pi, Linear::new()).unwrap()
}

fn oracle_denoiser(p: Vec<f64>) -> OracleDenoiser<EnumerationOracle, MixtureProcess> {
    OracleDenoiser::new(EnumerationOracle::new(V, L, p).unwrap(), process()).unwrap()
}

/// `γ · ln p(y | x0)` on clean sequences, 0 (any constant) on sequences with a mask.
struct CleanClassifier {
    py: Vec<f64>,
}

impl Classifier for CleanClassifier {
    fn vocab_size(&self) -> usize {
        V
    }
    fn log_prob(&self, x: &[u32], _t: f64) -> discrete_diffusion::Result<f64> {
        Ok(if clean(x) {
            self.py[index(x)].ln()
        } else {
            0.0
        })
    }
}

/// Softmax of a row of f32 logits, in f64.
fn probs(row: ndarray::ArrayView1<'_, f32>) -> Vec<f64> {
    let m = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let e: Vec<f64> = row.iter().map(|&x| (x as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|q| q / z).collect()
}

fn logits_of(d: &dyn Denoiser, x: &[u32], t: f64) -> Array3<f32> {
    let tokens = Array2::from_shape_vec((1, L), x.to_vec()).unwrap();
    let mut out = Array3::<f32>::zeros((1, L, V));
    d.logits(
        tokens.view(),
        Array1::from_elem(1, t).view(),
        out.view_mut(),
    )
    .unwrap();
    out
}

/// Max |p_guided − p_target| over the masked positions of `x`.
fn masked_gap(a: &Array3<f32>, b: &Array3<f32>, x: &[u32]) -> f64 {
    let mut gap = 0.0f64;
    for (i, &xi) in x.iter().enumerate() {
        if xi != MASK {
            continue;
        }
        let pa = probs(a.slice(ndarray::s![0, i, ..]));
        let pb = probs(b.slice(ndarray::s![0, i, ..]));
        for (u, w) in pa.iter().zip(&pb) {
            gap = gap.max((u - w).abs());
        }
    }
    gap
}

fn tilted_law(gamma: f64) -> Vec<f64> {
    let (p, py) = (data_law(), p_y());
    let mut q: Vec<f64> = p.iter().zip(&py).map(|(a, b)| a * b.powf(gamma)).collect();
    let z: f64 = q.iter().sum();
    q.iter_mut().for_each(|v| *v /= z);
    q
}

#[test]
fn gamma_one_with_exact_noisy_classifier_gives_the_conditional_posterior() {
    let base = oracle_denoiser(data_law());
    let target = oracle_denoiser(tilted_law(1.0));
    let guided = ClassifierGuided::new(
        oracle_denoiser(data_law()),
        NoisyClassifier {
            mask: MASK,
            data: data_law(),
            py: p_y(),
        },
        1.0,
        GuidanceMethod::Exact,
        GuidedPositions::Token(MASK),
    )
    .unwrap();
    let mut checked = 0;
    let mut unguided_gap = 0.0f64;
    for k in 0..N {
        let x = seq(k);
        if clean(&x) {
            continue; // nothing masked: nothing to guide
        }
        for t in [0.3, 0.9] {
            let g = logits_of(&guided, &x, t);
            let e = logits_of(&target, &x, t);
            let gap = masked_gap(&g, &e, &x);
            assert!(gap < 2e-6, "x_t = {x:?}, t = {t}: gap {gap}");
            // Unmasked positions are left as the unguided model's (carry-over).
            let b = logits_of(&base, &x, t);
            unguided_gap = unguided_gap.max(masked_gap(&b, &e, &x));
            for (i, &xi) in x.iter().enumerate() {
                if xi != MASK {
                    assert_eq!(
                        g.slice(ndarray::s![0, i, ..]),
                        b.slice(ndarray::s![0, i, ..])
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * (N - 27));
    // The test has power: without guidance the posteriors are far from the target.
    assert!(unguided_gap > 0.05, "unguided gap only {unguided_gap}");
}

#[test]
fn one_masked_position_gives_the_tilted_law_for_every_gamma() {
    for gamma in [0.0, 0.5, 1.0, 2.0, 3.5] {
        let target = oracle_denoiser(tilted_law(gamma));
        let guided = ClassifierGuided::new(
            oracle_denoiser(data_law()),
            CleanClassifier { py: p_y() },
            gamma,
            GuidanceMethod::Exact,
            GuidedPositions::Token(MASK),
        )
        .unwrap();
        for k in 0..N {
            let x = seq(k);
            if x.iter().filter(|&&t| t == MASK).count() != 1 {
                continue;
            }
            let gap = masked_gap(
                &logits_of(&guided, &x, 0.5),
                &logits_of(&target, &x, 0.5),
                &x,
            );
            assert!(gap < 2e-6, "γ = {gamma}, x_t = {x:?}: gap {gap}");
        }
    }
}

#[test]
fn gamma_two_with_several_masks_is_not_the_tilted_law() {
    // The theory's boundary: γ ≠ 1 with two undetermined positions is a heuristic.
    let gamma = 2.0;
    let target = oracle_denoiser(tilted_law(gamma));
    let noisy = NoisyClassifier {
        mask: MASK,
        data: data_law(),
        py: p_y(),
    };
    let guided = ClassifierGuided::new(
        oracle_denoiser(data_law()),
        noisy,
        gamma,
        GuidanceMethod::Exact,
        GuidedPositions::Token(MASK),
    )
    .unwrap();
    let x = [MASK, MASK, 0];
    let gap = masked_gap(
        &logits_of(&guided, &x, 0.5),
        &logits_of(&target, &x, 0.5),
        &x,
    );
    assert!(gap > 1e-3, "expected a visible bias, gap {gap}");
}

/// `ln p(y | x) = Σ_i w[i, x_i] − C`: affine in the one-hot, so TAG is exact.
struct LinearClassifier {
    w: Array2<f64>,
}

impl Classifier for LinearClassifier {
    fn vocab_size(&self) -> usize {
        V
    }
    fn log_prob(&self, x: &[u32], _t: f64) -> discrete_diffusion::Result<f64> {
        Ok(x.iter()
            .enumerate()
            .map(|(i, &v)| self.w[[i, v as usize]])
            .sum::<f64>()
            - 10.0)
    }
    fn grad_one_hot(
        &self,
        _x: &[u32],
        _t: f64,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> discrete_diffusion::Result<()> {
        out.assign(&self.w);
        Ok(())
    }
}

fn linear() -> LinearClassifier {
    LinearClassifier {
        w: Array2::from_shape_fn((L, V), |(i, v)| 2.0 * hash01(i * V + v, 3) - 1.0),
    }
}

#[test]
fn tag_equals_exact_for_a_linear_classifier() {
    let c = linear();
    for k in 0..N {
        let x = seq(k);
        let mut ex = Array2::<f64>::zeros((L, V));
        let mut ta = Array2::<f64>::zeros((L, V));
        exact_log_ratios(&c, &x, 0.4, None, ex.view_mut()).unwrap();
        taylor_log_ratios(&c, &x, 0.4, None, ta.view_mut()).unwrap();
        for (a, b) in ex.iter().zip(ta.iter()) {
            assert!((a - b).abs() < 1e-12, "x = {x:?}: {a} vs {b}");
        }
        for (i, &xi) in x.iter().enumerate() {
            assert_eq!(ex[[i, xi as usize]], 0.0);
        }
    }
    // And the wrappers agree.
    let make = |m| {
        ClassifierGuided::new(
            oracle_denoiser(data_law()),
            linear(),
            1.5,
            m,
            GuidedPositions::All,
        )
        .unwrap()
    };
    let (e, t) = (make(GuidanceMethod::Exact), make(GuidanceMethod::Taylor));
    let x = [MASK, 2, MASK];
    let (a, b) = (logits_of(&e, &x, 0.5), logits_of(&t, &x, 0.5));
    for (p, q) in a.iter().zip(b.iter()) {
        assert!(p == q || (p - q).abs() < 1e-5, "{p} vs {q}");
    }
}

#[test]
fn positions_filter_and_gamma_zero() {
    let c = linear();
    let x = [0u32, 2, 3];
    let mut r = Array2::<f64>::from_elem((L, V), 9.0);
    exact_log_ratios(&c, &x, 0.4, Some(&[false, true, false]), r.view_mut()).unwrap();
    assert!(r.row(0).iter().all(|&q| q == 0.0) && r.row(2).iter().all(|&q| q == 0.0));
    assert!(r.row(1).iter().any(|&q| q != 0.0));
    // γ = 0 is the unguided model bit for bit.
    let g = ClassifierGuided::new(
        oracle_denoiser(data_law()),
        linear(),
        0.0,
        GuidanceMethod::Exact,
        GuidedPositions::All,
    )
    .unwrap();
    let base = oracle_denoiser(data_law());
    let x = [MASK, 0, MASK];
    assert_eq!(logits_of(&g, &x, 0.5), logits_of(&base, &x, 0.5));
}

#[test]
fn tilt_logits_rules() {
    let logits = Array2::from_shape_vec((1, 3), vec![0.0f32, f32::NEG_INFINITY, 1.0]).unwrap();
    let ratios = Array2::from_shape_vec((1, 3), vec![1.0, 5.0, f64::NEG_INFINITY]).unwrap();
    let mut out = Array2::<f32>::zeros((1, 3));
    tilt_logits(logits.view(), ratios.view(), 2.0, out.view_mut()).unwrap();
    assert_eq!(
        out.row(0).to_vec(),
        vec![2.0, f32::NEG_INFINITY, f32::NEG_INFINITY]
    );
    // A row with no finite logit left is an error, and nothing is written.
    let ratios = Array2::from_shape_vec((1, 3), vec![f64::NEG_INFINITY; 3]).unwrap();
    let mut out = Array2::<f32>::from_elem((1, 3), 7.0);
    let e = tilt_logits(logits.view(), ratios.view(), 1.0, out.view_mut()).unwrap_err();
    assert!(matches!(e, Error::ZeroProbability { .. }), "{e}");
    assert!(out.iter().all(|&v| v == 7.0));
    // Overflow.
    let big = Array2::from_shape_vec((1, 2), vec![3e38f32, 0.0]).unwrap();
    let r = Array2::from_shape_vec((1, 2), vec![1e38, 0.0]).unwrap();
    let mut out = Array2::<f32>::zeros((1, 2));
    assert!(matches!(
        tilt_logits(big.view(), r.view(), 10.0, out.view_mut()),
        Err(Error::Numerical { .. })
    ));
}

struct NanClassifier;
impl Classifier for NanClassifier {
    fn vocab_size(&self) -> usize {
        V
    }
    fn log_prob(&self, x: &[u32], _t: f64) -> discrete_diffusion::Result<f64> {
        Ok(if x[0] == 2 { f64::NAN } else { -1.0 })
    }
}

struct ImpossibleClassifier;
impl Classifier for ImpossibleClassifier {
    fn vocab_size(&self) -> usize {
        V
    }
    fn log_prob(&self, _x: &[u32], _t: f64) -> discrete_diffusion::Result<f64> {
        Ok(f64::NEG_INFINITY)
    }
}

#[test]
fn bad_inputs() {
    let c = linear();
    let mut out = Array2::<f64>::zeros((L, V));
    let x = [0u32, 2, 3];
    for f in [exact_log_ratios, taylor_log_ratios] {
        assert!(matches!(
            f(&c, &[0, 4, 0], 0.5, None, out.view_mut()),
            Err(Error::TokenOutOfRange { .. })
        ));
        assert!(f(&c, &[], 0.5, None, out.view_mut()).is_err());
        assert!(f(&c, &x, 1.5, None, out.view_mut()).is_err());
        assert!(f(&c, &x, f64::NAN, None, out.view_mut()).is_err());
        assert!(matches!(
            f(&c, &x, 0.5, Some(&[true]), out.view_mut()),
            Err(Error::Shape { .. })
        ));
        let mut wrong = Array2::<f64>::zeros((L, V + 1));
        assert!(matches!(
            f(&c, &x, 0.5, None, wrong.view_mut()),
            Err(Error::Shape { .. })
        ));
    }
    // A classifier without a gradient cannot do TAG.
    assert!(
        taylor_log_ratios(
            &CleanClassifier { py: p_y() },
            &x,
            0.5,
            None,
            out.view_mut()
        )
        .is_err()
    );
    // NaN classifier values and an impossible current sequence.
    assert!(matches!(
        exact_log_ratios(&NanClassifier, &x, 0.5, None, out.view_mut()),
        Err(Error::NonFinite {
            arg: "classifier",
            ..
        })
    ));
    assert!(matches!(
        exact_log_ratios(&ImpossibleClassifier, &x, 0.5, None, out.view_mut()),
        Err(Error::ZeroProbability { .. })
    ));
    // tilt_logits.
    let lg = Array2::<f32>::zeros((2, 3));
    let r = Array2::<f64>::zeros((2, 3));
    let mut o = Array2::<f32>::zeros((2, 3));
    for g in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(tilt_logits(lg.view(), r.view(), g, o.view_mut()).is_err());
    }
    let r_bad = Array2::<f64>::zeros((2, 2));
    assert!(matches!(
        tilt_logits(lg.view(), r_bad.view(), 1.0, o.view_mut()),
        Err(Error::Shape { .. })
    ));
    let mut o_bad = Array2::<f32>::zeros((3, 3));
    assert!(matches!(
        tilt_logits(lg.view(), r.view(), 1.0, o_bad.view_mut()),
        Err(Error::Shape { .. })
    ));
    let mut lg_nan = lg.clone();
    lg_nan[[1, 1]] = f32::NAN;
    assert!(matches!(
        tilt_logits(lg_nan.view(), r.view(), 1.0, o.view_mut()),
        Err(Error::NonFinite { arg: "logits", .. })
    ));
    let mut r_inf = r.clone();
    r_inf[[0, 2]] = f64::INFINITY;
    assert!(matches!(
        tilt_logits(lg.view(), r_inf.view(), 1.0, o.view_mut()),
        Err(Error::NonFinite {
            arg: "log_ratios",
            ..
        })
    ));
    // ClassifierGuided::new and its logits.
    let mk = |g: f64, pos| {
        ClassifierGuided::new(
            oracle_denoiser(data_law()),
            linear(),
            g,
            GuidanceMethod::Exact,
            pos,
        )
    };
    assert!(mk(-0.5, GuidedPositions::All).is_err());
    assert!(mk(f64::NAN, GuidedPositions::All).is_err());
    assert!(mk(1.0, GuidedPositions::Token(V as u32)).is_err());
    struct Small;
    impl Classifier for Small {
        fn vocab_size(&self) -> usize {
            V + 1
        }
        fn log_prob(&self, _: &[u32], _: f64) -> discrete_diffusion::Result<f64> {
            Ok(0.0)
        }
    }
    assert!(matches!(
        ClassifierGuided::new(
            oracle_denoiser(data_law()),
            Small,
            1.0,
            GuidanceMethod::Exact,
            GuidedPositions::All
        ),
        Err(Error::Shape { .. })
    ));
    let g = mk(1.0, GuidedPositions::All).unwrap();
    let tokens = Array2::from_shape_vec((1, L), vec![0u32, 0, 0]).unwrap();
    let mut o3 = Array3::<f32>::zeros((1, L, V));
    assert!(
        g.logits(
            tokens.view(),
            Array1::from_elem(2, 0.5).view(),
            o3.view_mut()
        )
        .is_err()
    );
    assert!(
        g.logits(
            tokens.view(),
            Array1::from_elem(1, -0.1).view(),
            o3.view_mut()
        )
        .is_err()
    );
    let mut o_wrong = Array3::<f32>::zeros((1, L, V - 1));
    assert!(
        g.logits(
            tokens.view(),
            Array1::from_elem(1, 0.5).view(),
            o_wrong.view_mut()
        )
        .is_err()
    );
    let bad_tok = Array2::from_shape_vec((1, L), vec![0u32, 9, 0]).unwrap();
    assert!(
        g.logits(
            bad_tok.view(),
            Array1::from_elem(1, 0.5).view(),
            o3.view_mut()
        )
        .is_err()
    );
    let empty = Array2::<u32>::zeros((0, L));
    let mut o_empty = Array3::<f32>::zeros((0, L, V));
    assert!(
        g.logits(
            empty.view(),
            Array1::<f64>::zeros(0).view(),
            o_empty.view_mut()
        )
        .is_err()
    );
}
