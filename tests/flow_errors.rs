//! Bad input to every public entry point of discrete flow matching: a clear `Err`, never a
//! panic, and no write on error.

use discrete_diffusion::Error;
use discrete_diffusion::backend::ReferenceBackend;
use discrete_diffusion::backend::steps::{JumpRule, StepRng};
use discrete_diffusion::kernel::path::{MetricBeta, MetricPath, MixturePath, SourceLaw};
use discrete_diffusion::loss::flow::{generalized_kl, generalized_kl_batch, nelbo_estimate};
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::param::velocity::{
    backward_velocity, corrector_velocity, divergence_free_velocity, forward_velocity,
    forward_velocity_from_logits,
};
use discrete_diffusion::sample::flow::exact::mixture_solver_laws;
use discrete_diffusion::sample::flow::{MetricSolver, MixtureSolver};
use discrete_diffusion::schedule::{Kappa, Linear};
use ndarray::{Array1, Array2, Array3, array};

fn err<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    format!("{}", r.expect_err("expected an error"))
}

#[test]
fn kappa_rates_and_constructors() {
    let k = Kappa::cond_ot();
    assert!(k.forward_rate(1.5).is_err());
    assert!(k.backward_rate(-0.1).is_err());
    assert_eq!(k.forward_rate(1.0).unwrap(), f64::INFINITY);
    assert_eq!(k.backward_rate(0.0).unwrap(), f64::INFINITY);
    assert!(Kappa::polynomial(0.0).is_err());
    assert!(Kappa::polynomial(f64::NAN).is_err());
}

#[test]
fn mixture_path_inputs() {
    let k = Kappa::cond_ot();
    assert!(err(MixturePath::new(k.clone(), SourceLaw::Uniform, 1)).contains("vocab"));
    assert!(
        MixturePath::new(
            Kappa::variance_preserving(Linear::new()),
            SourceLaw::Uniform,
            3
        )
        .is_err()
    );
    assert!(err(MixturePath::new(k.clone(), SourceLaw::Mask(3), 3)).contains("mask"));
    assert!(MixturePath::new(k.clone(), SourceLaw::Distribution(vec![0.5, 0.5]), 3).is_err());
    assert!(MixturePath::new(k.clone(), SourceLaw::Distribution(vec![0.5, 0.6, -0.1]), 3).is_err());
    assert!(
        MixturePath::new(
            k.clone(),
            SourceLaw::Distribution(vec![0.5, f64::NAN, 0.5]),
            3
        )
        .is_err()
    );
    let p = MixturePath::new(k, SourceLaw::Mask(0), 3).unwrap();
    let mut out = [0.0; 3];
    assert!(p.probs_given_data(0.5, 3, &mut out).is_err());
    assert!(p.probs_given_data(1.5, 1, &mut out).is_err());
    assert!(p.probs_given_data(0.5, 1, &mut [0.0; 2]).is_err());
    assert!(p.probs_given_endpoints(0.5, 4, 1, &mut out).is_err());
    // Velocities: singular κ = 1, negative or NaN div_free, bad tokens.
    assert!(err(p.conditional_velocity(1.0, 0, 1, 0.0, &mut out)).contains("singular"));
    assert!(p.conditional_velocity(0.5, 0, 1, -1.0, &mut out).is_err());
    assert!(
        p.conditional_velocity(0.5, 0, 1, f64::NAN, &mut out)
            .is_err()
    );
    assert!(p.conditional_velocity(0.5, 5, 1, 0.0, &mut out).is_err());
    // Step laws.
    assert!(
        p.step_law_given_data(0.5, 0.5, 0, 1, 0.0, JumpRule::Exponential, &mut out)
            .is_err()
    );
    assert!(
        p.step_law_given_data(0.5, 0.4, 0, 1, 0.0, JumpRule::Exponential, &mut out)
            .is_err()
    );
    assert!(
        p.step_law_given_data(0.5, 0.6, 0, 1, 0.5, JumpRule::Integrated, &mut out)
            .is_err()
    );
    assert!(
        p.step_law(
            0.5,
            0.6,
            0,
            &[0.5, 0.6, 0.0],
            0.0,
            JumpRule::Exponential,
            &mut out
        )
        .is_err()
    );
    assert!(
        p.step_law(
            0.5,
            0.6,
            0,
            &[0.5, 0.5],
            0.0,
            JumpRule::Exponential,
            &mut out
        )
        .is_err()
    );
    // A = κ̇/(1 − κ) = ∞ (here κ̇(0) = ∞ for κ = √s) is explicit: jump surely to x1.
    let lin = MixturePath::new(Kappa::cond_ot(), SourceLaw::Uniform, 3).unwrap();
    let sqrt = MixturePath::new(Kappa::polynomial(0.5).unwrap(), SourceLaw::Uniform, 3).unwrap();
    sqrt.step_law_given_data(0.0, 0.1, 0, 2, 0.0, JumpRule::Exponential, &mut out)
        .unwrap();
    assert_eq!(out, [0.0, 0.0, 1.0]);
    // Sampling shapes.
    let st = [1u64, 2];
    let rng = StepRng {
        seed: 0,
        streams: &st,
        step: 0,
    };
    let x1 = Array2::<u32>::zeros((2, 3));
    assert!(
        lin.sample(Array1::from(vec![0.5]).view(), x1.view(), &rng)
            .is_err()
    );
    assert!(
        lin.sample(Array1::from(vec![0.5, 2.0]).view(), x1.view(), &rng)
            .is_err()
    );
    assert!(
        lin.sample(
            Array1::from(vec![0.5, 0.5]).view(),
            Array2::from_elem((2, 3), 7).view(),
            &rng
        )
        .is_err()
    );
    assert!(lin.sample_source((0, 3), &rng).is_err());
    assert!(lin.sample_source((3, 3), &rng).is_err());
    assert!(
        lin.sample_given_endpoints(
            Array1::from(vec![0.5, 0.5]).view(),
            Array2::zeros((2, 2)).view(),
            x1.view(),
            &rng
        )
        .is_err()
    );
}

#[test]
fn velocity_functions() {
    let k = Kappa::cond_ot();
    let mut out = [0.0; 3];
    assert!(forward_velocity(&k, 1.0, 0, &[0.2, 0.3, 0.5], &mut out).is_err());
    assert!(backward_velocity(&k, 0.0, 0, &[0.2, 0.3, 0.5], &mut out).is_err());
    assert!(forward_velocity(&k, 0.5, 3, &[0.2, 0.3, 0.5], &mut out).is_err());
    assert!(forward_velocity(&k, 0.5, 0, &[0.2, 0.3, 0.6], &mut out).is_err());
    assert!(forward_velocity(&k, 0.5, 0, &[0.2, 0.8], &mut out).is_err());
    assert!(forward_velocity_from_logits(&k, 0.5, 0, &[0.0f32, f32::NAN, 1.0], &mut out).is_err());
    assert!(forward_velocity_from_logits(&k, 0.5, 0, &[0.0f32, 1.0], &mut out).is_err());
    assert!(corrector_velocity(&[0.0; 3], &[0.0; 2], 0.5, &mut out).is_err());
    assert!(corrector_velocity(&[0.0; 3], &[0.0; 3], -0.5, &mut out).is_err());
    assert!(
        divergence_free_velocity(&[0.0, f64::INFINITY, 0.0], &[0.0; 3], 0.5, &mut out).is_err()
    );
}

#[test]
fn metric_path_inputs() {
    let beta = MetricBeta::new(1.0, 1.0).unwrap();
    assert!(MetricBeta::new(-1.0, 1.0).is_err());
    assert!(MetricBeta::new(1.0, f64::INFINITY).is_err());
    assert!(MetricPath::new(Array2::zeros((2, 3)), beta).is_err());
    assert!(MetricPath::new(Array2::zeros((1, 1)), beta).is_err());
    assert!(MetricPath::new(array![[0.0, 1.0], [1.0, 0.5]], beta).is_err());
    assert!(MetricPath::new(array![[0.0, 1.0], [0.0, 0.0]], beta).is_err());
    assert!(MetricPath::new(array![[0.0, f64::NAN], [1.0, 0.0]], beta).is_err());
    assert!(MetricPath::from_embeddings(array![[1.0], [1.0]].view(), beta).is_err());
    let p = MetricPath::new(array![[0.0, 1.0], [2.0, 0.0]], beta).unwrap();
    let mut out = [0.0; 2];
    assert!(err(p.conditional_velocity(1.0, 0, 1, &mut out)).contains("singular"));
    assert!(p.conditional_velocity(0.5, 2, 1, &mut out).is_err());
    assert!(
        p.step_law_given_data(0.2, 0.3, 0, 1, JumpRule::Integrated, &mut out)
            .is_err()
    );
    assert!(p.marginal_velocity(0.5, 0, &[0.5, 0.6], &mut out).is_err());
    assert!(
        MetricSolver::new(p.clone(), vec![0.0, 1.0])
            .unwrap()
            .with_rule(JumpRule::Integrated)
            .is_err()
    );
    // β̇(0) = ∞ for a < 1: the step law takes the limit explicitly.
    let q = MetricPath::new(
        array![[0.0, 1.0], [2.0, 0.0]],
        MetricBeta::new(1.0, 0.5).unwrap(),
    )
    .unwrap();
    q.step_law_given_data(0.0, 0.1, 0, 1, JumpRule::Exponential, &mut out)
        .unwrap();
    assert_eq!(out, [0.0, 1.0]);
}

#[test]
fn solver_inputs_and_no_write_on_error() {
    let v = 3;
    let path = MixturePath::new(Kappa::cond_ot(), SourceLaw::Mask(0), v).unwrap();
    assert!(MixtureSolver::new(path.clone(), vec![0.0]).is_err());
    assert!(MixtureSolver::new(path.clone(), vec![0.0, 0.5, 0.5]).is_err());
    assert!(MixtureSolver::new(path.clone(), vec![0.0, 1.5]).is_err());
    assert!(MixtureSolver::new(path.clone(), vec![-0.1, 1.0]).is_err());
    let solver = MixtureSolver::new(path.clone(), vec![0.0, 0.5, 1.0]).unwrap();
    assert!(solver.clone().with_div_free(-1.0).is_err());
    assert!(
        solver
            .clone()
            .with_rule(JumpRule::Integrated)
            .unwrap()
            .with_div_free(0.5)
            .is_err()
    );
    assert!(
        solver
            .clone()
            .with_div_free(0.5)
            .unwrap()
            .with_rule(JumpRule::Integrated)
            .is_err()
    );
    let oracle =
        EnumerationOracle::from_pairs(v, 2, &[(vec![1, 2], 0.5), (vec![2, 2], 0.5)]).unwrap();
    let den = OracleDenoiser::new(oracle.clone(), path.noise_process().unwrap()).unwrap();
    let st = [3u64];
    let mut tokens = Array2::<u32>::zeros((1, 2));
    let mut logits = Array3::<f32>::zeros((1, 2, v));
    let bk = ReferenceBackend;
    assert!(
        solver
            .step(2, &den, &bk, tokens.view_mut(), &mut logits, 0, &st)
            .is_err()
    );
    assert!(
        solver
            .step(
                0,
                &den,
                &bk,
                tokens.view_mut(),
                &mut Array3::zeros((1, 2, 4)),
                0,
                &st
            )
            .is_err()
    );
    assert!(
        solver
            .step(0, &den, &bk, tokens.view_mut(), &mut logits, 0, &[1, 2])
            .is_err()
    );
    let mut bad = Array2::from_elem((1, 2), 9u32);
    assert!(
        solver
            .step(0, &den, &bk, bad.view_mut(), &mut logits, 0, &st)
            .is_err()
    );
    assert_eq!(bad, Array2::from_elem((1, 2), 9u32));
    let other = MixturePath::new(Kappa::cond_ot(), SourceLaw::Mask(0), 4).unwrap();
    let s4 = MixtureSolver::new(other, vec![0.0, 1.0]).unwrap();
    assert!(err(s4.sample(&den, &bk, tokens.view_mut(), 0, &st)).contains("denoiser"));
    // Exact laws: initial law of the wrong length; unreachable state.
    assert!(mixture_solver_laws(&solver, &oracle, &[1.0]).is_err());
    // An initial law off the path's support at s = 0 (all masked): the posterior is
    // undefined there.
    let mut init = vec![0.0; 9];
    init[8] = 1.0; // (2, 2)
    assert!(mixture_solver_laws(&solver, &oracle, &init).is_err());
}

#[test]
fn loss_inputs() {
    let k = Kappa::cond_ot();
    assert!(generalized_kl(&k, 0.5, &[0.0, f64::NAN], 0, 1, None).is_err());
    assert!(generalized_kl(&k, 0.5, &[0.0, f64::INFINITY], 0, 1, None).is_err());
    assert!(generalized_kl(&k, 0.5, &[f64::NEG_INFINITY; 2], 0, 1, None).is_err());
    assert!(generalized_kl(&k, 0.5, &[0.0], 0, 0, None).is_err());
    assert!(generalized_kl(&k, 0.5, &[0.0, 1.0], 2, 1, None).is_err());
    assert!(generalized_kl(&k, 0.5, &[0.0, 1.0], 0, 1, Some(&mut [0.0; 3])).is_err());
    assert!(err(generalized_kl(&k, 1.0, &[0.0, 1.0], 0, 1, None)).contains("infinite"));
    // −∞ logit for x1: probability 0, infinite loss, not an error.
    assert_eq!(
        generalized_kl(&k, 0.5, &[f64::NEG_INFINITY, 1.0], 0, 1, None).unwrap(),
        f64::INFINITY
    );
    let l = Array3::<f64>::zeros((1, 2, 3));
    let t = Array2::<u32>::zeros((1, 2));
    let s = Array1::from(vec![0.5]);
    assert!(
        generalized_kl_batch(
            &k,
            l.view(),
            Array2::zeros((1, 3)).view(),
            t.view(),
            s.view(),
            None
        )
        .is_err()
    );
    assert!(
        generalized_kl_batch(
            &k,
            l.view(),
            t.view(),
            t.view(),
            Array1::from(vec![0.5, 0.5]).view(),
            None
        )
        .is_err()
    );
    assert!(
        generalized_kl_batch(
            &k,
            l.view(),
            t.view(),
            t.view(),
            s.view(),
            Some(Array3::zeros((1, 2, 2)).view_mut())
        )
        .is_err()
    );
    assert!(
        generalized_kl_batch(
            &k,
            Array3::<f64>::zeros((0, 2, 3)).view(),
            t.view(),
            t.view(),
            s.view(),
            None
        )
        .is_err()
    );
    let path = MixturePath::new(Kappa::cosine(), SourceLaw::Mask(0), 3).unwrap();
    let oracle = EnumerationOracle::from_pairs(3, 2, &[(vec![1, 2], 1.0)]).unwrap();
    let den = OracleDenoiser::new(oracle, path.noise_process().unwrap()).unwrap();
    assert!(nelbo_estimate(&path, &den, t.view(), 0, 0, &[0]).is_err());
    assert!(nelbo_estimate(&path, &den, t.view(), 2, 0, &[0, 1]).is_err());
}
