//! Exact propagation of distributions through the samplers' kernels (V = 3, L = 3): the
//! error to the exact law falls as `O(1/steps)` for Euler and τ-leaping, the analytic step
//! is exact for one token, first hitting is exact, and a corrector beats its predictor at
//! equal function evaluations.

mod ctmc_samplers_support;

use ctmc_samplers_support::*;
use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator};
use discrete_diffusion::sample::ctmc::TauLeapMode;
use discrete_diffusion::schedule::{Geometric, LogLinear};

fn uniform_setup() -> (
    Ctmc<MixtureGenerator, Geometric>,
    discrete_diffusion::model::enumeration::EnumerationOracle,
) {
    let ctmc = Ctmc::new(
        MixtureGenerator::uniform(3).unwrap(),
        Geometric::new(0.01, 3.0).unwrap(),
    );
    (ctmc, data_law(3, 3, 3))
}

fn errors(sampler: Sampler, ns: &[usize]) -> Vec<f64> {
    let (ctmc, oracle) = uniform_setup();
    let target = marginal(&ctmc, &oracle, 0.0);
    ns.iter()
        .map(|&n| tv(&propagate(&ctmc, &oracle, sampler, n, 1.0, 0.0), &target))
        .collect()
}

const NS: [usize; 3] = [32, 64, 128];

#[test]
fn euler_is_first_order() {
    let e = errors(Sampler::plain(Scheme::Euler), &NS);
    let k = -slope(&NS, &e);
    assert!((0.8..=1.2).contains(&k), "Euler order {k}, errors {e:?}");
}

#[test]
fn tau_leaping_is_first_order() {
    for mode in [TauLeapMode::RejectMultiple, TauLeapMode::Ordinal] {
        let e = errors(Sampler::plain(Scheme::Tau(mode)), &NS);
        let k = -slope(&NS, &e);
        assert!((0.8..=1.2).contains(&k), "{mode:?} order {k}, errors {e:?}");
    }
}

#[test]
fn analytic_step_is_first_order_across_positions() {
    // Per position the analytic step is the exact reversal; positions move independently
    // within a step, so the joint law still carries an O(h) factorisation error.
    let e = errors(Sampler::plain(Scheme::Tweedie), &NS);
    let k = -slope(&NS, &e);
    assert!((0.8..=1.2).contains(&k), "analytic order {k}, errors {e:?}");
}

#[test]
fn analytic_step_is_exact_for_one_token() {
    // L = 1: the per-position law is the whole kernel, and it is the exact reversal.
    let ctmc = Ctmc::new(
        MixtureGenerator::uniform(3).unwrap(),
        Geometric::new(0.01, 3.0).unwrap(),
    );
    let oracle = data_law(3, 3, 1);
    let target = marginal(&ctmc, &oracle, 0.0);
    for n in [1, 3, 10] {
        let p = propagate(&ctmc, &oracle, Sampler::plain(Scheme::Tweedie), n, 1.0, 0.0);
        assert!(tv(&p, &target) < 1e-13, "{n}: {}", tv(&p, &target));
    }
    // Absorbing too.
    let ctmc = Ctmc::new(
        MixtureGenerator::absorbing(3, 2).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    let oracle = data_law(2, 3, 1);
    let target = marginal(&ctmc, &oracle, 0.0);
    let p = propagate(&ctmc, &oracle, Sampler::plain(Scheme::Tweedie), 4, 1.0, 0.0);
    assert!(tv(&p, &target) < 1e-13);
}

#[test]
fn first_hitting_is_exact() {
    let ctmc = Ctmc::new(
        MixtureGenerator::absorbing(3, 2).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    let oracle = data_law(2, 3, 3);
    for t in [0.3, 0.9] {
        let p = first_hitting_law(&ctmc, &oracle, 2, t);
        assert!(tv(&p, oracle.probs()) < 1e-14, "{}", tv(&p, oracle.probs()));
    }
}

#[test]
fn corrector_beats_its_predictor_at_equal_nfe() {
    // Started where samplers start, at the prior π^{⊗L} (≠ p_1 since σ̄(1) = 1.5), the
    // predictor keeps the start's error; the corrector (which leaves p_t invariant) removes
    // it. Compared at equal NFE: PC with n steps and one corrector vs 2n predictor steps.
    let ctmc = Ctmc::new(
        MixtureGenerator::uniform(3).unwrap(),
        Geometric::new(0.01, 1.5).unwrap(),
    );
    let oracle = data_law(3, 3, 3);
    let target = marginal(&ctmc, &oracle, 0.0);
    let start = prior(&ctmc, &oracle);
    for (predictor, multiplier) in [
        (Scheme::Tau(TauLeapMode::RejectMultiple), 1.0),
        (Scheme::Euler, 0.5),
    ] {
        let pred = Sampler::plain(predictor);
        let pc = Sampler {
            predictor,
            correctors: 1,
            multiplier,
        };
        for n in [16, 32] {
            let e_pc = tv(
                &propagate_from(&ctmc, &oracle, pc, n, 1.0, 0.0, start.clone()),
                &target,
            );
            let e_p = tv(
                &propagate_from(&ctmc, &oracle, pred, 2 * n, 1.0, 0.0, start.clone()),
                &target,
            );
            assert!(
                e_pc < e_p,
                "{predictor:?} {n}: PC {e_pc} vs predictor {e_p} at {} NFE",
                2 * n
            );
        }
    }
}
