//! D3PM losses: analytic gradients against central finite differences (f64 logits), f32
//! logits against f64, limiting values, the prior term, and bad inputs for every function.

#![allow(clippy::needless_range_loop)]

use discrete_diffusion::Error;
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::marginal::Marginal;
use discrete_diffusion::kernel::mask_uniform::MaskAndUniform;
use discrete_diffusion::kernel::posterior::{PosteriorWorkspace, p_reverse_joint, q_posterior};
use discrete_diffusion::kernel::uniform::Uniform;
use discrete_diffusion::loss::d3pm::{
    D3pmWorkspace, Decoder, decoder_nll, hybrid_loss, posterior_kl, prior_bits, prior_kl, to_bits,
    vb_term, x0_cross_entropy,
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
