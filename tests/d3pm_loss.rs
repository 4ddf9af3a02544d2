//! D3PM losses: analytic gradients against central finite differences (f64 logits), f32
//! logits against f64, limiting values, the prior term, and bad inputs for every function;
//! the batched entry point against the per-position functions (exactly), finite
//! differences, strided views, and its bad inputs.

#![allow(clippy::needless_range_loop)]

use discrete_diffusion::Error;
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::gaussian::DiscretizedGaussian;
use discrete_diffusion::kernel::marginal::Marginal;
use discrete_diffusion::kernel::mask_uniform::MaskAndUniform;
use discrete_diffusion::kernel::posterior::{PosteriorWorkspace, p_reverse_joint, q_posterior};
use discrete_diffusion::kernel::similarity::Similarity;
use discrete_diffusion::kernel::uniform::Uniform;
use discrete_diffusion::loss::d3pm::{
    D3pmWorkspace, Decoder, decoder_nll, hybrid_loss, hybrid_loss_batch, posterior_kl, prior_bits,
    prior_kl, to_bits, vb_term, x0_cross_entropy,
};
use ndarray::{
    Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut3, array, s,
};

fn kernels() -> Vec<Box<dyn ForwardKernel>> {
    let betas = [0.05, 0.2, 0.35, 0.5];
    vec![
        Box::new(Uniform::new(5, &betas).unwrap()),
        Box::new(Absorbing::new(5, 1, &betas).unwrap()),
        Box::new(Marginal::new(vec![0.1, 0.3, 0.0, 0.4, 0.2], &betas).unwrap()),
        Box::new(
            MaskAndUniform::new(5, 3, &[0.02, 0.05, 0.05, 0.1], &[0.1, 0.2, 0.3, 0.4]).unwrap(),
        ),
    ]
}

const LOGITS: [f64; 5] = [0.3, -1.2, 2.0, 0.7, -0.4];

/// Central finite-difference gradient of `f` at `x`.
fn fd(f: &mut dyn FnMut(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let h = 1e-5;
    (0..x.len())
        .map(|i| {
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += h;
            b[i] -= h;
            (f(&a) - f(&b)) / (2.0 * h)
        })
        .collect()
}

fn assert_grad(what: &str, got: &[f64], want: &[f64]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() < 1e-7 * (1.0 + w.abs()),
            "{what}[{i}]: analytic {g:e} vs FD {w:e}"
        );
    }
}

/// Every (t, x_t, x0) with a feasible posterior.
fn feasible(k: &dyn ForwardKernel, t: usize) -> Vec<(u32, u32)> {
    let v = k.vocab_size() as u32;
    let mut ws = PosteriorWorkspace::default();
    let mut out = vec![0.0; v as usize];
    let mut r = vec![];
    for xt in 0..v {
        for x0 in 0..v {
            if q_posterior(k, t, xt, x0, &mut ws, &mut out).is_ok() {
                r.push((xt, x0));
            }
        }
    }
    r
}

#[test]
fn posterior_kl_gradient_matches_finite_differences() {
    let mut ws = D3pmWorkspace::default();
    let mut n = 0;
    for k in kernels() {
        let k = k.as_ref();
        for t in 2..=k.num_steps() {
            for (xt, x0) in feasible(k, t) {
                let mut g = vec![0.0; 5];
                let val = posterior_kl(k, t, xt, x0, &LOGITS, &mut ws, Some(&mut g)).unwrap();
                assert!(val >= 0.0);
                let mut ws2 = D3pmWorkspace::default();
                let want = fd(
                    &mut |l| posterior_kl(k, t, xt, x0, l, &mut ws2, None).unwrap(),
                    &LOGITS,
                );
                assert_grad(&format!("{k:?} t={t} xt={xt} x0={x0}"), &g, &want);
                // Reference value from dense pieces: KL(q ‖ p_joint).
                let mut q = vec![0.0; 5];
                let mut p = vec![0.0; 5];
                let mut pws = PosteriorWorkspace::default();
                q_posterior(k, t, xt, x0, &mut pws, &mut q).unwrap();
                let sm = softmax(&LOGITS);
                p_reverse_joint(k, t, xt, &sm, &mut pws, &mut p).unwrap();
                let kl: f64 = q
                    .iter()
                    .zip(&p)
                    .filter(|(a, _)| **a > 0.0)
                    .map(|(a, b)| a * (a / b).ln())
                    .sum();
                assert!((val - kl).abs() < 1e-12 * (1.0 + kl));
                n += 1;
            }
        }
    }
    assert!(n > 100, "{n}");
}

fn softmax(l: &[f64]) -> Vec<f64> {
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = l.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

#[test]
fn decoder_and_ce_gradients_match_finite_differences() {
    let mut ws = D3pmWorkspace::default();
    for k in kernels() {
        let k = k.as_ref();
        for (x1, x0) in feasible(k, 1) {
            for dec in [Decoder::Direct, Decoder::Joint] {
                let mut g = vec![0.0; 5];
                let val = decoder_nll(k, x1, x0, &LOGITS, dec, &mut ws, Some(&mut g)).unwrap();
                let mut ws2 = D3pmWorkspace::default();
                let want = fd(
                    &mut |l| decoder_nll(k, x1, x0, l, dec, &mut ws2, None).unwrap(),
                    &LOGITS,
                );
                assert_grad(&format!("L0 {dec:?} x1={x1} x0={x0}"), &g, &want);
                // Joint decoder = −log of the joint-form reverse law at t = 1.
                if dec == Decoder::Joint {
                    let mut p = vec![0.0; 5];
                    p_reverse_joint(
                        k,
                        1,
                        x1,
                        &softmax(&LOGITS),
                        &mut PosteriorWorkspace::default(),
                        &mut p,
                    )
                    .unwrap();
                    assert!((val + p[x0 as usize].ln()).abs() < 1e-12);
                }
            }
        }
    }
    for x0 in 0..5 {
        let mut g = vec![0.0; 5];
        x0_cross_entropy(&LOGITS, x0, Some(&mut g)).unwrap();
        let want = fd(&mut |l| x0_cross_entropy(l, x0, None).unwrap(), &LOGITS);
        assert_grad("CE", &g, &want);
    }
}

#[test]
fn hybrid_gradient_and_value() {
    let mut ws = D3pmWorkspace::default();
    for k in kernels() {
        let k = k.as_ref();
        for t in 1..=k.num_steps() {
            for (xt, x0) in feasible(k, t).into_iter().step_by(3) {
                for dec in [Decoder::Direct, Decoder::Joint] {
                    let lambda = 0.37;
                    let mut g = vec![0.0; 5];
                    let h = hybrid_loss(k, t, xt, x0, &LOGITS, lambda, dec, &mut ws, Some(&mut g))
                        .unwrap();
                    let vb = vb_term(k, t, xt, x0, &LOGITS, dec, &mut ws, None).unwrap();
                    let ce = x0_cross_entropy(&LOGITS, x0, None).unwrap();
                    assert_eq!(h.vb, vb);
                    assert_eq!(h.ce, ce);
                    assert!((h.total - (vb + lambda * ce)).abs() < 1e-14);
                    let mut ws2 = D3pmWorkspace::default();
                    let want = fd(
                        &mut |l| {
                            hybrid_loss(k, t, xt, x0, l, lambda, dec, &mut ws2, None)
                                .unwrap()
                                .total
                        },
                        &LOGITS,
                    );
                    assert_grad(&format!("hybrid t={t}"), &g, &want);
                }
            }
        }
    }
}

#[test]
fn f32_logits_agree_with_f64() {
    let k = Uniform::new(5, &[0.05, 0.2, 0.35, 0.5]).unwrap();
    let l32: Vec<f32> = LOGITS.iter().map(|&x| x as f32).collect();
    let l64: Vec<f64> = l32.iter().map(|&x| x as f64).collect();
    let mut ws = D3pmWorkspace::default();
    let (mut g32, mut g64) = (vec![0f32; 5], vec![0f64; 5]);
    let a = hybrid_loss(
        &k,
        3,
        2,
        1,
        &l32,
        0.01,
        Decoder::Direct,
        &mut ws,
        Some(&mut g32),
    )
    .unwrap();
    let b = hybrid_loss(
        &k,
        3,
        2,
        1,
        &l64,
        0.01,
        Decoder::Direct,
        &mut ws,
        Some(&mut g64),
    )
    .unwrap();
    assert_eq!(a, b, "same f64 accumulation from identical logit values");
    for (x, y) in g32.iter().zip(&g64) {
        assert!((*x as f64 - y).abs() < 1e-7);
    }
}

#[test]
fn confident_correct_model_has_vanishing_loss() {
    let mut ws = D3pmWorkspace::default();
    for k in kernels() {
        let k = k.as_ref();
        for t in 2..=k.num_steps() {
            for (xt, x0) in feasible(k, t) {
                let mut l = vec![-40.0; 5];
                l[x0 as usize] = 40.0;
                let kl = posterior_kl(k, t, xt, x0, &l, &mut ws, None).unwrap();
                assert!(kl < 1e-12, "t={t} xt={xt} x0={x0}: {kl:e}");
            }
        }
    }
}

#[test]
fn prior_term() {
    let mut ws = D3pmWorkspace::default();
    // β_T = 1 reaches the stationary law exactly.
    let u = Uniform::new(4, &[0.1, 1.0]).unwrap();
    let a = Absorbing::new(4, 0, &[0.1, 1.0]).unwrap();
    for x0 in 0..4 {
        assert!(prior_kl(&u, x0, &mut ws).unwrap().abs() < 1e-15);
        assert_eq!(prior_kl(&a, x0, &mut ws).unwrap(), 0.0);
    }
    // Absorbing short of full masking: the clean token has no stationary mass → ∞.
    let a = Absorbing::new(4, 0, &[0.1, 0.5]).unwrap();
    assert_eq!(prior_kl(&a, 2, &mut ws).unwrap(), f64::INFINITY);
    assert_eq!(prior_kl(&a, 0, &mut ws).unwrap(), 0.0);
    // Uniform closed form: q = ᾱ e_x + (1−ᾱ)/V.
    let u = Uniform::new(4, &[0.5]).unwrap();
    let (hi, lo): (f64, f64) = (0.5 + 0.5 / 4.0, 0.5 / 4.0);
    let want = hi * (hi * 4.0).ln() + 3.0 * lo * (lo * 4.0).ln();
    assert!((prior_kl(&u, 1, &mut ws).unwrap() - want).abs() < 1e-15);
    assert!((prior_bits(&u, 1, &mut ws).unwrap() - to_bits(want)).abs() < 1e-15);
}

#[test]
fn bad_inputs() {
    let k = Uniform::new(5, &[0.05, 0.2, 0.35, 0.5]).unwrap();
    let mut ws = D3pmWorkspace::default();
    let l = LOGITS;
    let mut g = vec![0.0; 5];
    let mut short = vec![0.0; 4];
    let nan = [0.0, f64::NAN, 0.0, 0.0, 0.0];
    let inf = [0.0, f64::INFINITY, 0.0, 0.0, 0.0];
    // prior
    prior_kl(&k, 5, &mut ws).unwrap_err();
    prior_bits(&k, 5, &mut ws).unwrap_err();
    // posterior_kl
    posterior_kl(&k, 1, 0, 0, &l, &mut ws, None).unwrap_err();
    posterior_kl(&k, 0, 0, 0, &l, &mut ws, None).unwrap_err();
    posterior_kl(&k, 5, 0, 0, &l, &mut ws, None).unwrap_err();
    posterior_kl(&k, 2, 5, 0, &l, &mut ws, None).unwrap_err();
    posterior_kl(&k, 2, 0, 5, &l, &mut ws, None).unwrap_err();
    posterior_kl(&k, 2, 0, 0, &l[..4], &mut ws, None).unwrap_err();
    posterior_kl(&k, 2, 0, 0, &nan, &mut ws, None).unwrap_err();
    posterior_kl(&k, 2, 0, 0, &inf, &mut ws, None).unwrap_err();
    posterior_kl(&k, 2, 0, 0, &l, &mut ws, Some(&mut short)).unwrap_err();
    let a = Absorbing::new(5, 1, &[0.05, 0.2, 0.35, 0.5]).unwrap();
    assert!(matches!(
        posterior_kl(&a, 2, 3, 0, &l, &mut ws, None),
        Err(Error::ZeroProbability { .. })
    ));
    // decoder_nll
    for dec in [Decoder::Direct, Decoder::Joint] {
        decoder_nll(&k, 5, 0, &l, dec, &mut ws, None).unwrap_err();
        decoder_nll(&k, 0, 5, &l, dec, &mut ws, None).unwrap_err();
        decoder_nll(&k, 0, 0, &l[..4], dec, &mut ws, None).unwrap_err();
        decoder_nll(&k, 0, 0, &nan, dec, &mut ws, None).unwrap_err();
        decoder_nll(&k, 0, 0, &l, dec, &mut ws, Some(&mut short)).unwrap_err();
    }
    assert!(matches!(
        decoder_nll(&a, 3, 0, &l, Decoder::Joint, &mut ws, None),
        Err(Error::ZeroProbability { .. })
    ));
    // x0_cross_entropy
    x0_cross_entropy(&l, 5, None).unwrap_err();
    x0_cross_entropy(&l[..1], 0, None).unwrap_err();
    x0_cross_entropy::<f64>(&[], 0, None).unwrap_err();
    x0_cross_entropy(&nan, 0, None).unwrap_err();
    x0_cross_entropy(&l, 0, Some(&mut short)).unwrap_err();
    // vb_term / hybrid_loss
    vb_term(&k, 0, 0, 0, &l, Decoder::Direct, &mut ws, None).unwrap_err();
    vb_term(&k, 5, 0, 0, &l, Decoder::Direct, &mut ws, None).unwrap_err();
    hybrid_loss(&k, 2, 0, 0, &l, -0.1, Decoder::Direct, &mut ws, None).unwrap_err();
    hybrid_loss(&k, 2, 0, 0, &l, f64::NAN, Decoder::Direct, &mut ws, None).unwrap_err();
    hybrid_loss(&k, 0, 0, 0, &l, 0.1, Decoder::Direct, &mut ws, None).unwrap_err();
    hybrid_loss(
        &k,
        2,
        0,
        0,
        &l,
        0.1,
        Decoder::Direct,
        &mut ws,
        Some(&mut short),
    )
    .unwrap_err();
    hybrid_loss(
        &k,
        2,
        0,
        0,
        &nan,
        0.1,
        Decoder::Direct,
        &mut ws,
        Some(&mut g),
    )
    .unwrap_err();
}

// ------------------------------------------------------------------ batched entry point

/// Deterministic pseudo-random numbers in [0, 1) (SplitMix64).
fn mix(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A batch `(logits [B, L, V], x0 [B, L], x_t [B, L], steps [B])` with every `x_t` in the
/// support of `q(x_t | x0)` at its sequence's step.
fn batch(
    k: &dyn ForwardKernel,
    b: usize,
    l: usize,
    steps: &[usize],
    seed: u64,
) -> (Array3<f64>, Array2<u32>, Array2<u32>, Array1<usize>) {
    let v = k.vocab_size();
    let logits = Array3::from_shape_fn((b, l, v), |(i, j, c)| {
        4.0 * mix(seed ^ ((i * 1000 + j * 10 + c) as u64)) - 2.0
    });
    let x0 = Array2::from_shape_fn((b, l), |(i, j)| {
        (mix(seed.wrapping_mul(7) + (i * 100 + j) as u64) * v as f64) as u32
    });
    let mut row = vec![0.0; v];
    let xt = Array2::from_shape_fn((b, l), |(i, j)| {
        k.cumulative_row(steps[i], x0[[i, j]], &mut row).unwrap();
        let start = (mix(seed.wrapping_mul(13) + (i * 100 + j) as u64) * v as f64) as usize;
        (0..v)
            .map(|d| (start + d) % v)
            // (the eigen-route kernels carry ~1e-17 round-off where the law is 0)
            .find(|&c| row[c] > 1e-12)
            .unwrap() as u32
    });
    (logits, x0, xt, Array1::from(steps.to_vec()))
}

fn batch_kernels() -> Vec<Box<dyn ForwardKernel>> {
    let betas = [0.05, 0.2, 0.35, 0.5];
    let mut ks = kernels();
    ks.push(Box::new(
        DiscretizedGaussian::new(5, &[0.02, 0.1, 0.3, 0.6], Some(2)).unwrap(),
    ));
    ks.push(Box::new(
        Similarity::from_doubly_stochastic(
            array![
                [0.6, 0.2, 0.1, 0.1, 0.0],
                [0.2, 0.5, 0.2, 0.0, 0.1],
                [0.1, 0.2, 0.4, 0.3, 0.0],
                [0.1, 0.0, 0.3, 0.4, 0.2],
                [0.0, 0.1, 0.0, 0.2, 0.7]
            ],
            &betas,
        )
        .unwrap(),
    ));
    ks
}

#[test]
fn batch_equals_the_per_position_sums_exactly() {
    let mut ws = D3pmWorkspace::default();
    let mut ws_row = D3pmWorkspace::default();
    for (ki, k) in batch_kernels().iter().enumerate() {
        let k = k.as_ref();
        let steps = [1, 4, 2];
        let (logits, x0, xt, steps) = batch(k, 3, 6, &steps, 17 + ki as u64);
        for dec in [Decoder::Direct, Decoder::Joint] {
            let lambda = 0.25;
            let mut grad = Array3::<f64>::zeros(logits.dim());
            let got = hybrid_loss_batch(
                k,
                logits.view(),
                x0.view(),
                xt.view(),
                steps.view(),
                lambda,
                dec,
                &mut ws,
                Some(grad.view_mut()),
            )
            .unwrap();
            let no_grad = hybrid_loss_batch(
                k,
                logits.view(),
                x0.view(),
                xt.view(),
                steps.view(),
                lambda,
                dec,
                &mut ws,
                None,
            )
            .unwrap();
            assert_eq!(got, no_grad);
            assert_eq!(got.len(), 3);
            for b in 0..3 {
                let (mut vb, mut ce, mut total) = (0.0, 0.0, 0.0);
                for l in 0..6 {
                    let row = logits.slice(s![b, l, ..]).to_vec();
                    let mut g = vec![0.0; 5];
                    let h = hybrid_loss(
                        k,
                        steps[b],
                        xt[[b, l]],
                        x0[[b, l]],
                        &row,
                        lambda,
                        dec,
                        &mut ws_row,
                        Some(&mut g),
                    )
                    .unwrap();
                    vb += h.vb;
                    ce += h.ce;
                    total += h.total;
                    assert_eq!(grad.slice(s![b, l, ..]).to_vec(), g, "{k:?} b={b} l={l}");
                }
                assert_eq!(got[b].vb, vb, "{k:?} {dec:?} b={b}");
                assert_eq!(got[b].ce, ce);
                assert_eq!(got[b].total, total);
            }
        }
    }
}

#[test]
fn batch_accepts_f32_and_non_contiguous_views() {
    let k = MaskAndUniform::new(5, 3, &[0.02, 0.05, 0.05, 0.1], &[0.1, 0.2, 0.3, 0.4]).unwrap();
    let (logits, x0, xt, steps) = batch(&k, 2, 4, &[3, 1], 5);
    let l32 = logits.mapv(|x| x as f32);
    let mut ws = D3pmWorkspace::new(5);
    let mut g = Array3::<f32>::zeros(l32.dim());
    let want = hybrid_loss_batch(
        &k,
        l32.view(),
        x0.view(),
        xt.view(),
        steps.view(),
        0.5,
        Decoder::Joint,
        &mut ws,
        Some(g.view_mut()),
    )
    .unwrap();
    // The same data stored [V, B, L] and [L, V, B]: strided lanes on the last axis.
    let strided = l32.clone().permuted_axes([2, 0, 1]);
    let strided = strided.as_standard_layout().into_owned();
    let strided = strided.view().permuted_axes([1, 2, 0]);
    assert!(strided.slice(s![0, 0, ..]).as_slice().is_none());
    let mut g_store = Array3::<f32>::zeros((4, 5, 2));
    let g_view = g_store.view_mut().permuted_axes([2, 0, 1]);
    let got = hybrid_loss_batch(
        &k,
        strided,
        x0.view(),
        xt.view(),
        steps.view(),
        0.5,
        Decoder::Joint,
        &mut ws,
        Some(g_view),
    )
    .unwrap();
    assert_eq!(got, want);
    assert_eq!(g_store.view().permuted_axes([2, 0, 1]), g.view());
    // f32 logits agree with the same logits in f64.
    let l64 = l32.mapv(|x| x as f64);
    let want64 = hybrid_loss_batch(
        &k,
        l64.view(),
        x0.view(),
        xt.view(),
        steps.view(),
        0.5,
        Decoder::Joint,
        &mut ws,
        None,
    )
    .unwrap();
    for (a, b) in got.iter().zip(&want64) {
        assert!((a.total - b.total).abs() < 1e-12 * (1.0 + b.total));
    }
}

#[test]
fn batch_gradient_matches_finite_differences() {
    let k = Absorbing::new(5, 1, &[0.05, 0.2, 0.35, 0.5]).unwrap();
    let (logits, x0, xt, steps) = batch(&k, 2, 3, &[3, 1], 11);
    let lambda = 0.3;
    let mut ws = D3pmWorkspace::default();
    let mut grad = Array3::<f64>::zeros(logits.dim());
    hybrid_loss_batch(
        &k,
        logits.view(),
        x0.view(),
        xt.view(),
        steps.view(),
        lambda,
        Decoder::Direct,
        &mut ws,
        Some(grad.view_mut()),
    )
    .unwrap();
    let mut totals = |l: &Array3<f64>| -> Vec<f64> {
        hybrid_loss_batch(
            &k,
            l.view(),
            x0.view(),
            xt.view(),
            steps.view(),
            lambda,
            Decoder::Direct,
            &mut ws,
            None,
        )
        .unwrap()
        .iter()
        .map(|h| h.total)
        .collect()
    };
    let h = 1e-5;
    for idx in ndarray::indices(logits.dim()) {
        let (mut a, mut b) = (logits.clone(), logits.clone());
        a[idx] += h;
        b[idx] -= h;
        let (fa, fb) = (totals(&a), totals(&b));
        for seq in 0..2 {
            let fd = (fa[seq] - fb[seq]) / (2.0 * h);
            // ∂ total_seq / ∂ logits[idx]: the analytic gradient on its own sequence, 0 on
            // the other one.
            let want = if seq == idx.0 { grad[idx] } else { 0.0 };
            assert!(
                (fd - want).abs() < 1e-7 * (1.0 + want.abs()),
                "{idx:?} seq {seq}: FD {fd:e} vs analytic {want:e}"
            );
        }
    }
}

#[test]
fn batch_bad_inputs() {
    let k = Absorbing::new(5, 1, &[0.05, 0.2, 0.35, 0.5]).unwrap();
    let (logits, x0, xt, steps) = batch(&k, 2, 3, &[3, 1], 3);
    let mut ws = D3pmWorkspace::default();
    let run = |logits: ArrayView3<f64>,
               x0: ArrayView2<u32>,
               xt: ArrayView2<u32>,
               steps: ArrayView1<usize>,
               lambda: f64,
               grad: Option<ArrayViewMut3<f64>>,
               ws: &mut D3pmWorkspace| {
        hybrid_loss_batch(&k, logits, x0, xt, steps, lambda, Decoder::Direct, ws, grad)
    };
    let arg_of = |e: Error| match e {
        Error::Shape { arg, .. }
        | Error::InvalidArgument { arg, .. }
        | Error::TokenOutOfRange { arg, .. }
        | Error::NonFinite { arg, .. } => arg,
        other => panic!("unexpected {other:?}"),
    };
    let (lv, x0v, xtv, sv) = (logits.view(), x0.view(), xt.view(), steps.view());
    // Shapes: V ≠ kernel's, tokens and steps not matching [B, L] / [B], grad shape.
    let wide = Array3::<f64>::zeros((2, 3, 6));
    let e = run(wide.view(), x0v, xtv, sv, 0.1, None, &mut ws).unwrap_err();
    assert_eq!(arg_of(e), "logits");
    let short = x0.slice(s![.., ..2]);
    let e = run(lv, short, xtv, sv, 0.1, None, &mut ws).unwrap_err();
    assert_eq!(arg_of(e), "x0");
    let e = run(lv, x0v, xt.t(), sv, 0.1, None, &mut ws).unwrap_err();
    assert_eq!(arg_of(e), "x_t");
    let e = run(lv, x0v, xtv, steps.slice(s![..1]), 0.1, None, &mut ws).unwrap_err();
    assert_eq!(arg_of(e), "steps");
    let mut g = Array3::<f64>::zeros((2, 3, 4));
    let e = run(lv, x0v, xtv, sv, 0.1, Some(g.view_mut()), &mut ws).unwrap_err();
    assert_eq!(arg_of(e), "grad");
    // Empty batch.
    let e = run(
        logits.slice(s![..0, .., ..]),
        x0.slice(s![..0, ..]),
        xt.slice(s![..0, ..]),
        steps.slice(s![..0]),
        0.1,
        None,
        &mut ws,
    )
    .unwrap_err();
    assert_eq!(arg_of(e), "logits");
    let e = run(
        logits.slice(s![.., ..0, ..]),
        x0.slice(s![.., ..0]),
        xt.slice(s![.., ..0]),
        sv,
        0.1,
        None,
        &mut ws,
    )
    .unwrap_err();
    assert_eq!(arg_of(e), "logits");
    // Steps outside 1..=T.
    for bad in [0, 5] {
        let st = Array1::from(vec![2, bad]);
        let e = run(lv, x0v, xtv, st.view(), 0.1, None, &mut ws).unwrap_err();
        assert!(e.to_string().contains("steps[1]"), "{e}");
        assert_eq!(arg_of(e), "steps");
    }
    // λ.
    for lambda in [-0.1, f64::NAN, f64::INFINITY] {
        let e = run(lv, x0v, xtv, sv, lambda, None, &mut ws).unwrap_err();
        assert_eq!(arg_of(e), "lambda");
    }
    // Tokens ≥ V (flat index) and non-finite logits (flat index).
    let mut bad = x0.clone();
    bad[[1, 2]] = 5;
    assert!(matches!(
        run(lv, bad.view(), xtv, sv, 0.1, None, &mut ws),
        Err(Error::TokenOutOfRange {
            arg: "x0",
            index: 5,
            ..
        })
    ));
    let mut bad = xt.clone();
    bad[[0, 1]] = u32::MAX;
    assert!(matches!(
        run(lv, x0v, bad.view(), sv, 0.1, None, &mut ws),
        Err(Error::TokenOutOfRange {
            arg: "x_t",
            index: 1,
            ..
        })
    ));
    let mut nan = logits.clone();
    nan[[1, 0, 3]] = f64::NAN;
    assert!(matches!(
        run(nan.view(), x0v, xtv, sv, 0.1, None, &mut ws),
        Err(Error::NonFinite {
            arg: "logits",
            index: 18,
            ..
        })
    ));
    // An infeasible (x_t, x0) pair: x_t unmasked and ≠ x0 under the absorbing kernel.
    let mut x0b = x0.clone();
    let mut xtb = xt.clone();
    x0b[[0, 2]] = 0;
    xtb[[0, 2]] = 3;
    let e = run(lv, x0b.view(), xtb.view(), sv, 0.1, None, &mut ws).unwrap_err();
    assert!(matches!(e, Error::ZeroProbability { .. }), "{e:?}");
    assert!(e.to_string().contains("sequence 0, position 2"), "{e}");
}
