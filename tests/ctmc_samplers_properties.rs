//! Invariants of the reverse-rate conversions and the CTMC step laws (proptest), and the
//! agreement of the denoiser route with the exact oracle route.

use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator, RateGenerator};
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::param::reverse::*;
use discrete_diffusion::sample::ctmc::*;
use discrete_diffusion::schedule::{Geometric, LogLinear};
use ndarray::Array2;
use proptest::prelude::*;

fn dist(raw: &[f64]) -> Vec<f64> {
    let s: f64 = raw.iter().sum();
    raw.iter().map(|r| r / s).collect()
}

fn generator(kind: u8, v: usize, raw: &[f64]) -> MixtureGenerator {
    match kind % 3 {
        0 => MixtureGenerator::uniform(v).unwrap(),
        1 => MixtureGenerator::absorbing(v, (v - 1) as u32).unwrap(),
        _ => MixtureGenerator::marginal(dist(raw)).unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn step_laws_are_distributions(
        raw in prop::collection::vec(0.0f64..5.0, 2..9),
        xi in 0usize..8,
        h in 0.0f64..2.0,
        u in 0.0f64..1.0,
    ) {
        let v = raw.len();
        let x = (xi % v) as u32;
        let mut out = vec![0.0; v];
        euler_law(&raw, x, h, &mut out).unwrap();
        prop_assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        prop_assert!(out.iter().all(|&p| (0.0..=1.0 + 1e-15).contains(&p)));
        let y = euler_draw(&raw, x, h, u).unwrap();
        prop_assert!(out[y as usize] > 0.0);
        for mode in [TauLeapMode::RejectMultiple, TauLeapMode::Ordinal] {
            let tail = tau_leaping_law(&raw, x, h, mode, &mut out).unwrap();
            prop_assert!(tail < 1e-12);
            prop_assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            prop_assert!(out.iter().all(|&p| p >= 0.0));
        }
    }

    #[test]
    fn staggered_score_inverts_the_transition(
        kind in 0u8..3,
        raw in prop::collection::vec(0.01f64..1.0, 2..9),
        p in prop::collection::vec(0.0f64..1.0, 8),
        delta in 0.0f64..3.0,
    ) {
        let v = raw.len();
        let g = generator(kind, v, &raw);
        let p = &p[..v];
        let (mut fwd, mut back) = (vec![0.0; v], vec![0.0; v]);
        g.transition_vecmat(p, delta, &mut fwd).unwrap();
        staggered_score(&g, &fwd, delta, &mut back).unwrap();
        for (a, b) in back.iter().zip(p) {
            prop_assert!((a - b).abs() < 1e-10 * delta.exp().powi(2), "{back:?} {p:?}");
        }
    }

    #[test]
    fn reverse_rows_sum_to_zero_and_tweedie_is_a_law(
        kind in 0u8..3,
        raw in prop::collection::vec(0.01f64..1.0, 2..9),
        post in prop::collection::vec(0.01f64..1.0, 8),
        xi in 0usize..8,
        st in 0.05f64..4.0,
        frac in 0.0f64..1.0,
        sigma in 0.0f64..10.0,
    ) {
        let v = raw.len();
        let g = generator(kind, v, &raw);
        let x = (xi % v) as u32;
        let mut post = dist(&post[..v]);
        if kind % 3 == 1 && x != (v - 1) as u32 {
            // Absorbing, unmasked x: only x0 = x can have produced it.
            post.iter_mut().for_each(|p| *p = 0.0);
            post[x as usize] = 1.0;
        }
        let mut ws = RateWorkspace::new(v).unwrap();
        let mut rates = vec![0.0; v];
        reverse_rates_from_x0(&g, sigma, st, x, &post, &mut ws, &mut rates).unwrap();
        prop_assert!(rates.iter().sum::<f64>().abs() < 1e-9 * (1.0 + sigma));
        prop_assert!(rates.iter().enumerate().all(|(y, &r)| y == x as usize || r >= 0.0));
        let mut law = vec![0.0; v];
        tweedie_law_from_x0(&g, st, st * frac, x, &post, &mut ws, &mut law).unwrap();
        prop_assert!((law.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // δ = 0 stays put.
        tweedie_law_from_x0(&g, st, st, x, &post, &mut ws, &mut law).unwrap();
        prop_assert!((law[x as usize] - 1.0).abs() < 1e-12);
    }
}

#[test]
fn denoiser_route_equals_the_exact_route() {
    let p = [0.7, 0.2, 0.1, 0.3, 0.3, 0.4, 0.05, 0.15, 0.8];
    let chain = MarkovChainOracle::new(3, 1, 6, vec![0.5, 0.3, 0.2], p.to_vec()).unwrap();
    // Uniform graph: the x0 route gives every ratio exactly.
    let sched = || Geometric::new(0.05, 2.5).unwrap();
    let ctmc = Ctmc::new(MixtureGenerator::uniform(3).unwrap(), sched());
    let den = OracleDenoiser::new(
        chain.clone(),
        MixtureProcess::from_schedule(vec![1.0 / 3.0; 3], sched()).unwrap(),
    )
    .unwrap();
    let x = [0u32, 2, 2, 1, 0, 1];
    let (mut a, mut b) = (Array2::zeros((6, 3)), Array2::zeros((6, 3)));
    for t in [0.2, 0.6, 0.95] {
        reverse_rates_from_denoiser(&ctmc, &den, &x, t, a.view_mut()).unwrap();
        reverse_rates_exact(&ctmc, &chain, &x, t, b.view_mut()).unwrap();
        for (u, w) in a.iter().zip(b.iter()) {
            assert!((u - w).abs() <= 1e-5 * w.abs().max(1e-3), "{a} vs {b}");
        }
    }
    // Absorbing graph, mask at index 1.
    let emb = chain.embed(&[0, 2, 3], 4).unwrap();
    let ctmc = Ctmc::new(
        MixtureGenerator::absorbing(4, 1).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    let den = OracleDenoiser::new(
        emb.clone(),
        MixtureProcess::from_schedule(vec![0.0, 1.0, 0.0, 0.0], LogLinear::new(1e-3).unwrap())
            .unwrap(),
    )
    .unwrap();
    let x = [1u32, 0, 1, 1, 3, 1];
    let (mut a, mut b) = (Array2::zeros((6, 4)), Array2::zeros((6, 4)));
    reverse_rates_from_denoiser(&ctmc, &den, &x, 0.5, a.view_mut()).unwrap();
    reverse_rates_exact(&ctmc, &emb, &x, 0.5, b.view_mut()).unwrap();
    for (u, w) in a.iter().zip(b.iter()) {
        assert!((u - w).abs() <= 1e-5 * w.abs().max(1e-3), "{a} vs {b}");
    }
}
