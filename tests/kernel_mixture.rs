//! Mixture-to-π kernels (uniform, absorbing, marginal, mask-and-uniform), their posteriors
//! and the continuous-time mixture channel: exact identities via `kernel_checks`, property
//! tests over random `V`, `π`, schedules and mask positions, and bad-input tests for every
//! public entry point.

#![allow(clippy::needless_range_loop)]

#[path = "common/kernel_checks.rs"]
mod kernel_checks;

use discrete_diffusion::Error;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::marginal::Marginal;
use discrete_diffusion::kernel::mask_uniform::MaskAndUniform;
use discrete_diffusion::kernel::mixture::{Mixture, MixtureChannel, MixtureProcess};
use discrete_diffusion::kernel::posterior::{
    PosteriorWorkspace, cumulative_matvec_by_columns, p_reverse_joint, p_reverse_mixture,
    q_posterior,
};
use discrete_diffusion::kernel::uniform::Uniform;
use discrete_diffusion::kernel::{Channel, ForwardKernel, NoiseProcess};
use kernel_checks::{check_all, dense_cumulative, dense_step, matmul, test_vector};
use proptest::prelude::*;

const TOL: f64 = 1e-12;
const BETAS: [f64; 5] = [0.02, 0.3, 0.0, 0.75, 1.0];

#[test]
fn uniform_identities() {
    check_all(&Uniform::new(2, &BETAS).unwrap(), TOL);
    check_all(&Uniform::new(7, &BETAS).unwrap(), TOL);
    check_all(&Uniform::new(5, &[1e-9, 1e-7]).unwrap(), TOL);
}

#[test]
fn absorbing_identities_mask_anywhere() {
    for mask in [0, 3, 6] {
        check_all(&Absorbing::new(7, mask, &BETAS).unwrap(), TOL);
        check_all(&Absorbing::new(7, mask, &[0.1, 0.4, 0.5]).unwrap(), TOL);
    }
}

#[test]
fn marginal_identities_with_zero_mass_states() {
    let pi = vec![0.5, 0.0, 0.2, 0.3, 0.0];
    check_all(&Marginal::new(pi.clone(), &BETAS).unwrap(), TOL);
    check_all(&Marginal::new(pi, &[0.3, 0.6]).unwrap(), TOL);
}

#[test]
fn mask_and_uniform_identities() {
    // K = 5 ordinary tokens + mask; per-step K·β + γ ≤ 1, including a full step.
    let betas = [0.01, 0.05, 0.0, 0.1, 0.0];
    let gammas = [0.05, 0.2, 0.3, 0.5, 1.0];
    for mask in [0, 2, 5] {
        check_all(&MaskAndUniform::new(6, mask, &betas, &gammas).unwrap(), TOL);
    }
    // K·β + γ = 1 exactly (α = 0).
    check_all(
        &MaskAndUniform::new(4, 1, &[0.2, 0.1], &[0.4, 0.7]).unwrap(),
        TOL,
    );
}

#[test]
fn mask_and_uniform_closed_form_matches_products() {
    let betas = [1e-9, 0.05, 0.1];
    let gammas = [1e-8, 0.2, 0.3];
    let k = MaskAndUniform::new(5, 4, &betas, &gammas).unwrap();
    let mut prod = dense_cumulative(&k, 0);
    for t in 1..=3 {
        prod = matmul(&prod, &dense_step(&k, t));
        let (a, b, g) = k.cumulative_coeffs(t).unwrap();
        // Closed form (Gu et al. 2022, eq. 6) vs explicit product, entry by entry.
        assert!((prod[0][0] - (a + b)).abs() < 1e-15);
        assert!((prod[0][1] - b).abs() < 1e-15 * (1.0 + b) + 1e-17);
        assert!((prod[0][4] - g).abs() < 1e-15);
        let (sa, sb, sg) = k.step_coeffs(t).unwrap();
        assert!((sa + 4.0 * sb + sg - 1.0).abs() < 1e-15);
    }
    // Relative accuracy of β̄_1 at tiny rates: exactly β_1.
    let (_, b1, _) = k.cumulative_coeffs(1).unwrap();
    assert!((b1 - 1e-9).abs() < 1e-22, "β̄_1 = {b1:e}");
}

#[test]
fn closed_form_keep_matches_products_and_matvec() {
    let k = Mixture::new(vec![0.1, 0.2, 0.3, 0.4], &[0.1, 0.2, 0.3]).unwrap();
    let want = 0.9 * 0.8 * 0.7;
    assert!((k.keep(3).unwrap() - want).abs() < 1e-15);
    assert_eq!(k.keep(0).unwrap(), 1.0);
    let r = test_vector(4, 3);
    let mut out = [0.0; 4];
    let mut out2 = [0.0; 4];
    let mut col = [0.0; 4];
    for t in 0..=3 {
        k.cumulative_matvec(t, &r, &mut out).unwrap();
        cumulative_matvec_by_columns(&k, t, &r, &mut col, &mut out2).unwrap();
        let dense = dense_cumulative(&k, t);
        for i in 0..4 {
            let d: f64 = (0..4).map(|j| dense[i][j] * r[j]).sum();
            assert!((out[i] - d).abs() < 1e-14 && (out2[i] - d).abs() < 1e-14);
        }
    }
}

#[test]
fn joint_and_mixture_forms_coincide_for_absorbing_when_masked() {
    // For masking kernels, x_t = mask: q(x_t | x0) = 1 − ᾱ_t is the same for every clean x0,
    // so reweighting by the likelihood changes nothing and both forms agree.
    let k = Absorbing::new(6, 2, &[0.2, 0.3, 0.4]).unwrap();
    let mut p0 = test_vector(6, 9);
    p0[2] = 0.0;
    let s: f64 = p0.iter().sum();
    p0.iter_mut().for_each(|x| *x /= s);
    let mut ws = PosteriorWorkspace::default();
    let (mut a, mut b) = ([0.0; 6], [0.0; 6]);
    for t in 1..=3 {
        p_reverse_joint(&k, t, 2, &p0, &mut ws, &mut a).unwrap();
        p_reverse_mixture(&k, t, 2, &p0, &mut ws, &mut b).unwrap();
        for j in 0..6 {
            assert!((a[j] - b[j]).abs() < 1e-14);
        }
    }
    // But not for the uniform kernel.
    let u = Uniform::new(6, &[0.2, 0.3, 0.4]).unwrap();
    p_reverse_joint(&u, 3, 1, &p0, &mut ws, &mut a).unwrap();
    p_reverse_mixture(&u, 3, 1, &p0, &mut ws, &mut b).unwrap();
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3));
}

#[test]
fn large_vocab_is_linear_and_allocation_free_in_use() {
    // V = 50 000: every call is O(V); a dense check would be 2.5e9 entries.
    let v = 50_000;
    let k = Uniform::new(v, &[0.01; 100]).unwrap();
    let mut ws = PosteriorWorkspace::new(v);
    let mut out = vec![0.0; v];
    q_posterior(&k, 50, 7, 7, &mut ws, &mut out).unwrap();
    let s: f64 = out.iter().sum();
    assert!((s - 1.0).abs() < 1e-12);
    let p0 = vec![1.0 / v as f64; v];
    p_reverse_mixture(&k, 50, 7, &p0, &mut ws, &mut out).unwrap();
    assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn mixture_channel_and_process() {
    let pi = [0.1, 0.6, 0.3];
    let ch = MixtureChannel::new(&pi, 0.4).unwrap();
    assert_eq!(ch.keep(), 0.4);
    assert_eq!(Channel::vocab_size(&ch), 3);
    let (mut lik, mut row) = ([0.0; 3], [0.0; 3]);
    for y in 0..3u32 {
        ch.likelihood(y, &mut lik).unwrap();
        for x0 in 0..3u32 {
            ch.transition_row(x0, &mut row).unwrap();
            assert!((lik[x0 as usize] - row[y as usize]).abs() < 1e-16);
        }
    }
    ch.transition_row(1, &mut row).unwrap();
    assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);

    // The discrete kernel at step t and the process at α = ᾱ_t give the same channel.
    let k = Marginal::new(pi.to_vec(), &[0.5, 0.5]).unwrap();
    let proc = MixtureProcess::new(pi.to_vec(), Box::new(|t| Ok(1.0 - 0.75 * t))).unwrap();
    assert_eq!(proc.pi(), &pi);
    assert_eq!(NoiseProcess::vocab_size(&proc), 3);
    assert!(format!("{proc:?}").contains("MixtureProcess"));
    let c_proc = proc.channel(1.0).unwrap(); // α = 0.25 = ᾱ_2
    let c_kern = NoiseProcess::channel(&k, 1.0).unwrap(); // step 2
    let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
    for y in 0..3u32 {
        c_proc.likelihood(y, &mut a).unwrap();
        c_kern.likelihood(y, &mut b).unwrap();
        for i in 0..3 {
            assert!((a[i] - b[i]).abs() < 1e-15);
        }
    }
}

fn arb_pi(v: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop_oneof![Just(0.0), 0.01f64..1.0], v).prop_filter_map("mass", |w| {
        let s: f64 = w.iter().sum();
        (s > 0.0).then(|| w.iter().map(|x| x / s).collect())
    })
}

fn arb_betas() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0, 1e-9f64..1e-3],
        1..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_uniform(v in 2usize..9, betas in arb_betas()) {
        check_all(&Uniform::new(v, &betas).unwrap(), 1e-11);
    }

    #[test]
    fn prop_absorbing(v in 2usize..9, m in 0u32..9, betas in arb_betas()) {
        let m = m % v as u32;
        check_all(&Absorbing::new(v, m, &betas).unwrap(), 1e-11);
    }

    #[test]
    fn prop_marginal((_v, pi) in (2usize..9).prop_flat_map(|v| (Just(v), arb_pi(v))), betas in arb_betas()) {
        check_all(&Marginal::new(pi, &betas).unwrap(), 1e-11);
    }

    #[test]
    fn prop_mask_and_uniform(
        v in 3usize..9,
        m in 0u32..9,
        steps in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0), 1..5),
    ) {
        let m = m % v as u32;
        let k = (v - 1) as f64;
        // Split each step's mass: u1 to "replace", u2 of the rest to "mask".
        let betas: Vec<f64> = steps.iter().map(|(u1, _, _)| u1 * 0.999 / k).collect();
        let gammas: Vec<f64> = steps.iter().map(|(u1, u2, _)| (1.0 - u1 * 0.999) * u2).collect();
        check_all(&MaskAndUniform::new(v, m, &betas, &gammas).unwrap(), 1e-11);
    }
}

fn is_err<T: std::fmt::Debug>(r: discrete_diffusion::Result<T>) -> Error {
    r.expect_err("expected an error")
}

#[test]
fn bad_inputs_constructors() {
    // Mixture / Marginal.
    is_err(Mixture::new(vec![1.0], &[0.1]));
    is_err(Mixture::new(vec![], &[0.1]));
    is_err(Mixture::new(vec![0.5, 0.6], &[0.1]));
    is_err(Mixture::new(vec![f64::NAN, 1.0], &[0.1]));
    is_err(Mixture::new(vec![-0.5, 1.5], &[0.1]));
    is_err(Mixture::new(vec![0.5, 0.5], &[]));
    is_err(Mixture::new(vec![0.5, 0.5], &[1.5]));
    is_err(Mixture::new(vec![0.5, 0.5], &[-0.1]));
    is_err(Mixture::new(vec![0.5, 0.5], &[f64::NAN]));
    is_err(Marginal::new(vec![0.2, 0.2], &[0.1]));
    is_err(Marginal::new(vec![0.5, 0.5], &[0.1, f64::INFINITY]));
    // Uniform / Absorbing.
    is_err(Uniform::new(1, &[0.1]));
    is_err(Uniform::new(0, &[0.1]));
    is_err(Uniform::new(4, &[]));
    is_err(Uniform::new(4, &[2.0]));
    is_err(Absorbing::new(4, 4, &[0.1]));
    is_err(Absorbing::new(1, 0, &[0.1]));
    is_err(Absorbing::new(4, 0, &[1.1]));
    // MaskAndUniform.
    is_err(MaskAndUniform::new(2, 0, &[0.1], &[0.1]));
    is_err(MaskAndUniform::new(5, 5, &[0.1], &[0.1]));
    is_err(MaskAndUniform::new(5, 0, &[0.1], &[0.1, 0.2]));
    is_err(MaskAndUniform::new(5, 0, &[0.3], &[0.5])); // 4·0.3 + 0.5 > 1
    is_err(MaskAndUniform::new(5, 0, &[-0.1], &[0.5]));
    is_err(MaskAndUniform::new(5, 0, &[0.1], &[f64::NAN]));
    is_err(MaskAndUniform::new(5, 0, &[], &[]));
    // Channel / process.
    is_err(MixtureChannel::new(&[0.5, 0.5], 1.5));
    is_err(MixtureChannel::new(&[0.5, 0.5], f64::NAN));
    is_err(MixtureChannel::new(&[0.5, 0.6], 0.5));
    is_err(MixtureChannel::new(&[1.0], 0.5));
    is_err(MixtureProcess::new(vec![0.5, 0.6], Box::new(|_| Ok(0.5))));
    is_err(MixtureProcess::new(vec![1.0], Box::new(|_| Ok(0.5))));
}

#[test]
fn bad_inputs_methods() {
    let kernels: Vec<Box<dyn ForwardKernel>> = vec![
        Box::new(Uniform::new(4, &[0.1, 0.2]).unwrap()),
        Box::new(Absorbing::new(4, 1, &[0.1, 0.2]).unwrap()),
        Box::new(Marginal::new(vec![0.1, 0.2, 0.3, 0.4], &[0.1, 0.2]).unwrap()),
        Box::new(Mixture::new(vec![0.25; 4], &[0.1, 0.2]).unwrap()),
        Box::new(MaskAndUniform::new(4, 1, &[0.1, 0.2], &[0.1, 0.2]).unwrap()),
    ];
    for k in &kernels {
        let k = k.as_ref();
        let mut out = [0.0; 4];
        let mut short = [0.0; 3];
        let p = [0.1, 0.2, 0.3, 0.4];
        // step index
        is_err(k.step_row(0, 0, &mut out));
        is_err(k.step_row(3, 0, &mut out));
        is_err(k.step_col(0, 0, &mut out));
        is_err(k.step_vecmat(3, &p, &mut out));
        is_err(k.cumulative_row(3, 0, &mut out));
        is_err(k.cumulative_col(3, 0, &mut out));
        is_err(k.cumulative_vecmat(3, &p, &mut out));
        // tokens
        is_err(k.step_row(1, 4, &mut out));
        is_err(k.step_col(1, 4, &mut out));
        is_err(k.cumulative_row(1, 4, &mut out));
        is_err(k.cumulative_col(1, 4, &mut out));
        // buffers
        is_err(k.step_row(1, 0, &mut short));
        is_err(k.cumulative_col(1, 0, &mut short));
        is_err(k.stationary(&mut short));
        is_err(k.cumulative_vecmat(1, &p[..3], &mut out));
        is_err(k.cumulative_vecmat(1, &p, &mut short));
        is_err(k.step_vecmat(1, &[0.1, -0.2, 0.3, 0.4], &mut out));
        is_err(k.cumulative_vecmat(1, &[0.1, f64::NAN, 0.3, 0.4], &mut out));
        // posteriors
        let mut ws = PosteriorWorkspace::default();
        is_err(q_posterior(k, 0, 0, 0, &mut ws, &mut out));
        is_err(q_posterior(k, 3, 0, 0, &mut ws, &mut out));
        is_err(q_posterior(k, 1, 4, 0, &mut ws, &mut out));
        is_err(q_posterior(k, 1, 0, 4, &mut ws, &mut out));
        is_err(q_posterior(k, 1, 0, 0, &mut ws, &mut short));
        for f in [
            p_reverse_joint::<dyn ForwardKernel>,
            p_reverse_mixture::<dyn ForwardKernel>,
        ] {
            is_err(f(k, 0, 0, &p, &mut ws, &mut out));
            is_err(f(k, 3, 0, &p, &mut ws, &mut out));
            is_err(f(k, 1, 4, &p, &mut ws, &mut out));
            is_err(f(k, 1, 0, &p[..3], &mut ws, &mut out));
            is_err(f(k, 1, 0, &[0.5, 0.5, 0.5, 0.5], &mut ws, &mut out));
            is_err(f(k, 1, 0, &[1.5, -0.5, 0.0, 0.0], &mut ws, &mut out));
            is_err(f(k, 1, 0, &[f64::NAN, 0.5, 0.5, 0.0], &mut ws, &mut out));
            is_err(f(k, 1, 0, &p, &mut ws, &mut short));
        }
        let mut col = [0.0; 4];
        is_err(cumulative_matvec_by_columns(k, 3, &p, &mut col, &mut out));
        is_err(cumulative_matvec_by_columns(
            k,
            1,
            &p[..3],
            &mut col,
            &mut out,
        ));
        is_err(cumulative_matvec_by_columns(k, 1, &p, &mut short, &mut out));
        is_err(cumulative_matvec_by_columns(
            k,
            1,
            &[-1.0, 0.0, 0.0, 0.0],
            &mut col,
            &mut out,
        ));
    }
    // Mixture-specific.
    let m = Mixture::new(vec![0.25; 4], &[0.1]).unwrap();
    let mut out = [0.0; 4];
    is_err(m.keep(2));
    is_err(m.cumulative_matvec(2, &[0.0; 4], &mut out));
    is_err(m.cumulative_matvec(1, &[0.0; 3], &mut out));
    is_err(m.cumulative_matvec(1, &[f64::INFINITY, 0.0, 0.0, 0.0], &mut out));
    let mu = MaskAndUniform::new(4, 1, &[0.1], &[0.1]).unwrap();
    is_err(mu.cumulative_coeffs(2));
    is_err(mu.step_coeffs(0));
    is_err(mu.step_coeffs(2));
    // Channel / process.
    let pi = [0.5, 0.5];
    let ch = MixtureChannel::new(&pi, 0.5).unwrap();
    is_err(ch.likelihood(2, &mut [0.0; 2]));
    is_err(ch.likelihood(0, &mut [0.0; 3]));
    is_err(ch.transition_row(2, &mut [0.0; 2]));
    is_err(ch.transition_row(0, &mut [0.0; 1]));
    let proc = MixtureProcess::new(
        pi.to_vec(),
        Box::new(|t| if t > 0.9 { Ok(1.5) } else { Ok(1.0 - t) }),
    )
    .unwrap();
    is_err(proc.channel(-0.1).map(|_| ()));
    is_err(proc.channel(f64::NAN).map(|_| ()));
    is_err(proc.channel(0.95).map(|_| ()));
    is_err(proc.keep(1.5));
    let failing = MixtureProcess::new(
        pi.to_vec(),
        Box::new(|_| Err(Error::invalid("alpha", "boom"))),
    )
    .unwrap();
    is_err(failing.channel(0.5).map(|_| ()));
}

#[test]
fn infeasible_posteriors_are_zero_probability_errors() {
    let k = Absorbing::new(4, 2, &[0.5, 0.5]).unwrap();
    let mut ws = PosteriorWorkspace::default();
    let mut out = [0.0; 4];
    // x0 = 0 cannot become 1.
    assert!(matches!(
        q_posterior(&k, 2, 1, 0, &mut ws, &mut out),
        Err(Error::ZeroProbability { .. })
    ));
    // A prediction certain of x0 = 0 cannot explain x_t = 1.
    let p0 = [1.0, 0.0, 0.0, 0.0];
    assert!(matches!(
        p_reverse_joint(&k, 2, 1, &p0, &mut ws, &mut out),
        Err(Error::ZeroProbability { .. })
    ));
    assert!(matches!(
        p_reverse_mixture(&k, 2, 1, &p0, &mut ws, &mut out),
        Err(Error::ZeroProbability { .. })
    ));
}
