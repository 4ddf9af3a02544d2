//! Every public entry point of the reverse-rate and CTMC-sampler layers rejects bad input
//! with an error (never a panic).

use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator};
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::param::reverse::*;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::ctmc::*;
use discrete_diffusion::schedule::{Linear, LogLinear};
use ndarray::{Array2, ArrayView2};

fn rng() -> CounterRng {
    CounterRng::new(RngKey::new(1), Purpose::CATEGORICAL, 0, 0)
}

#[test]
fn reverse_rate_conversions() {
    let g = MixtureGenerator::uniform(3).unwrap();
    let mut ws = RateWorkspace::new(3).unwrap();
    let mut out = [0.0; 3];
    assert!(RateWorkspace::new(0).is_err());
    assert!(reverse_rates_from_score(&g, f64::NAN, 0, &[1.0; 3], &mut ws, &mut out).is_err());
    assert!(reverse_rates_from_score(&g, 1.0, 3, &[1.0; 3], &mut ws, &mut out).is_err());
    assert!(reverse_rates_from_score(&g, 1.0, 0, &[1.0; 2], &mut ws, &mut out).is_err());
    assert!(
        reverse_rates_from_score(&g, 1.0, 0, &[1.0, f64::INFINITY, 1.0], &mut ws, &mut out)
            .is_err()
    );
    assert!(reverse_rates_from_x0(&g, 1.0, 0.5, 0, &[0.5, 0.6, 0.0], &mut ws, &mut out).is_err());
    assert!(reverse_rates_from_x0(&g, 1.0, -0.5, 0, &[0.5, 0.5, 0.0], &mut ws, &mut out).is_err());
    assert!(
        reverse_rates_from_x0(&g, 1.0, 0.5, 0, &[0.5, 0.5, 0.0], &mut ws, &mut [0.0; 4]).is_err()
    );
    assert!(
        reverse_rates_from_logits(&g, 1.0, 0.5, 0, &[0.0, f32::NAN, 0.0], &mut ws, &mut out)
            .is_err()
    );
    assert!(
        reverse_rates_from_logits(&g, 1.0, 0.5, 0, &[f32::NEG_INFINITY; 3], &mut ws, &mut out)
            .is_err()
    );
    assert!(reverse_rates_from_logits(&g, 1.0, 0.5, 0, &[0.0; 2], &mut ws, &mut out).is_err());
    let a = MixtureGenerator::absorbing(3, 2).unwrap();
    // x = 0 unmasked cannot come from x0 = 1.
    assert!(reverse_rates_from_x0(&a, 1.0, 0.5, 0, &[0.0, 1.0, 0.0], &mut ws, &mut out).is_err());
    assert!(CtmcChannel::new(&g, f64::NAN).is_err());
    assert!(CtmcChannel::new(&g, -1.0).is_err());
    let ctmc = Ctmc::new(g.clone(), LogLinear::new(1e-3).unwrap());
    assert!(CtmcChannel::at(&ctmc, 1.5).is_err());
}

#[test]
fn sequence_level_rates() {
    let ctmc = Ctmc::new(MixtureGenerator::absorbing(3, 2).unwrap(), Linear::new());
    let oracle = MarkovChainOracle::iid(2, 2, vec![0.5, 0.5])
        .unwrap()
        .embed(&[0, 1], 3)
        .unwrap();
    let process = MixtureProcess::from_schedule(vec![0.0, 0.0, 1.0], Linear::new()).unwrap();
    let den = OracleDenoiser::new(oracle.clone(), process).unwrap();
    let mut out = Array2::zeros((2, 3));
    // σ(1) = ∞ for the linear schedule.
    assert!(reverse_rates_from_denoiser(&ctmc, &den, &[2, 2], 1.0, out.view_mut()).is_err());
    assert!(reverse_rates_exact(&ctmc, &oracle, &[2, 2], 1.0, out.view_mut()).is_err());
    assert!(reverse_rates_from_denoiser(&ctmc, &den, &[2, 2], -0.1, out.view_mut()).is_err());
    assert!(reverse_rates_from_denoiser(&ctmc, &den, &[2, 5], 0.5, out.view_mut()).is_err());
    assert!(reverse_rates_from_denoiser(&ctmc, &den, &[2], 0.5, out.view_mut()).is_err());
    assert!(
        reverse_rates_exact(
            &ctmc,
            &oracle,
            &[2, 2, 2],
            0.5,
            Array2::zeros((3, 3)).view_mut()
        )
        .is_err()
    );
    assert!(
        reverse_rates_exact(
            &ctmc,
            &oracle,
            &[2, 2],
            0.5,
            Array2::zeros((2, 4)).view_mut()
        )
        .is_err()
    );
    assert!(reverse_rates_from_denoiser(&ctmc, &den, &[2, 2], 0.5, out.view_mut()).is_ok());
    assert!(reverse_rates_exact(&ctmc, &oracle, &[2, 2], 0.5, out.view_mut()).is_ok());
    // Wrong V for the denoiser.
    let small = Ctmc::new(MixtureGenerator::uniform(2).unwrap(), Linear::new());
    assert!(
        reverse_rates_from_denoiser(&small, &den, &[0, 1], 0.5, Array2::zeros((2, 2)).view_mut())
            .is_err()
    );
}

#[test]
fn step_laws() {
    let r = [0.0, 1.0, 2.0];
    let mut out = [0.0; 3];
    for bad_h in [f64::NAN, -1.0, f64::INFINITY] {
        assert!(euler_law(&r, 0, bad_h, &mut out).is_err());
        assert!(tau_leaping_law(&r, 0, bad_h, TauLeapMode::Ordinal, &mut out).is_err());
        assert!(tau_leaping_draw(&r, 0, bad_h, TauLeapMode::RejectMultiple, &mut rng()).is_err());
        assert!(euler_draw(&r, 0, bad_h, 0.5).is_err());
    }
    assert!(euler_law(&r, 3, 0.1, &mut out).is_err());
    assert!(euler_law(&[1.0], 0, 0.1, &mut [0.0]).is_err());
    assert!(euler_law(&[0.0, f64::NAN, 1.0], 0, 0.1, &mut out).is_err());
    assert!(euler_law(&r, 0, 0.1, &mut [0.0; 2]).is_err());
    assert!(euler_draw(&r, 0, 0.1, -0.1).is_err());
    assert!(euler_draw(&r, 0, 0.1, f64::NAN).is_err());
    assert!(tau_leaping_law(&[0.0, -1.0, 2.0], 0, 0.1, TauLeapMode::Ordinal, &mut out).is_err());
    assert!(tau_leaping_law(&r, 0, 0.1, TauLeapMode::RejectMultiple, &mut [0.0; 4]).is_err());
    assert!(tau_leaping_law(&[0.0, 1e12, 1e12], 0, 1.0, TauLeapMode::Ordinal, &mut out).is_err());
    assert!(tau_leaping_draw(&r, 7, 0.1, TauLeapMode::Ordinal, &mut rng()).is_err());
    assert!(poisson(-0.5, &mut rng()).is_err());
    assert!(poisson(f64::INFINITY, &mut rng()).is_err());
    // Huge rates still draw (no panic, clamped).
    assert!(tau_leaping_draw(&[0.0, 1e9, 1e9], 0, 1.0, TauLeapMode::Ordinal, &mut rng()).is_ok());
    let g = MixtureGenerator::uniform(3).unwrap();
    let (mut s, mut o) = ([0.0; 3], [0.0; 3]);
    assert!(staggered_score(&g, &[1.0, f64::NAN, 1.0], 0.1, &mut o).is_err());
    assert!(staggered_score(&g, &[1.0; 3], -0.1, &mut o).is_err());
    assert!(staggered_score(&g, &[1.0; 2], 0.1, &mut o).is_err());
    assert!(tweedie_law_from_score(&g, 0.1, 3, &[1.0; 3], &mut s, &mut o).is_err());
    assert!(tweedie_law_from_score(&g, 0.1, 0, &[1.0; 3], &mut [0.0; 2], &mut o).is_err());
    assert!(tweedie_law_from_score(&g, 0.1, 0, &[-1.0; 3], &mut s, &mut o).is_err());
    let mut ws = RateWorkspace::new(3).unwrap();
    let p = [0.2, 0.3, 0.5];
    assert!(tweedie_law_from_x0(&g, 0.5, 1.0, 0, &p, &mut ws, &mut o).is_err());
    assert!(tweedie_law_from_x0(&g, f64::NAN, 0.1, 0, &p, &mut ws, &mut o).is_err());
    assert!(tweedie_law_from_x0(&g, 0.5, -0.1, 0, &p, &mut ws, &mut o).is_err());
    assert!(tweedie_law_from_x0(&g, 0.5, 0.1, 0, &[0.2, 0.3, 0.6], &mut ws, &mut o).is_err());
    assert!(
        tweedie_law_from_x0(
            &g,
            0.5,
            0.1,
            0,
            &p,
            &mut RateWorkspace::new(2).unwrap(),
            &mut o
        )
        .is_err()
    );
    assert!(corrector_rates(&g, f64::NAN, 0, &r, &mut s, &mut o).is_err());
    assert!(corrector_rates(&g, 1.0, 3, &r, &mut s, &mut o).is_err());
    assert!(corrector_rates(&g, 1.0, 0, &[0.0, 1.0], &mut s, &mut o).is_err());
}

#[test]
fn first_hitting_inputs() {
    let sch = Linear::new();
    assert!(first_hitting_time(&sch, 1.5, 2, 0.5).is_err());
    assert!(first_hitting_time(&sch, 0.5, 0, 0.5).is_err());
    assert!(first_hitting_time(&sch, 0.5, 2, 0.0).is_err());
    assert!(first_hitting_time(&sch, 0.5, 2, 1.5).is_err());
    assert!(first_hitting_time(&sch, 0.0, 2, 0.5).is_err()); // nothing masked at t = 0
    let oracle = MarkovChainOracle::iid(2, 3, vec![0.5, 0.5])
        .unwrap()
        .embed(&[0, 1], 3)
        .unwrap();
    let process = MixtureProcess::from_schedule(vec![0.0, 0.0, 1.0], Linear::new()).unwrap();
    let den = OracleDenoiser::new(oracle, process).unwrap();
    let cfg = FirstHitting {
        mask_id: 2,
        t_start: 1.0,
        seed: 0,
        stream: 0,
    };
    assert!(first_hitting_sample(&sch, &den, &mut [], &cfg).is_err());
    assert!(first_hitting_sample(&sch, &den, &mut [2, 2, 9], &cfg).is_err());
    let bad = FirstHitting { mask_id: 3, ..cfg };
    assert!(first_hitting_sample(&sch, &den, &mut [2, 2, 2], &bad).is_err());
    let bad = FirstHitting {
        t_start: f64::NAN,
        ..cfg
    };
    assert!(first_hitting_sample(&sch, &den, &mut [2, 2, 2], &bad).is_err());
    let bad = FirstHitting {
        t_start: 0.0,
        ..cfg
    };
    assert!(first_hitting_sample(&sch, &den, &mut [2, 2, 2], &bad).is_err());
    // Nothing masked: nothing to do.
    let out = first_hitting_sample(&sch, &den, &mut [0, 1, 0], &cfg).unwrap();
    assert_eq!(out.nfe, 0);
}

#[test]
fn sampler_inputs() {
    let ctmc = Ctmc::new(
        MixtureGenerator::absorbing(3, 2).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    let oracle = MarkovChainOracle::iid(2, 3, vec![0.5, 0.5])
        .unwrap()
        .embed(&[0, 1], 3)
        .unwrap();
    let process =
        MixtureProcess::from_schedule(vec![0.0, 0.0, 1.0], LogLinear::new(1e-3).unwrap()).unwrap();
    let den = OracleDenoiser::new(oracle, process).unwrap();
    let good = CtmcSampler {
        predictor: Predictor::Euler,
        corrector: None,
        times: vec![1.0, 0.5, 0.0],
        output: ModelOutput::X0Logits,
        seed: 0,
        time_independent_denoiser: false,
    };
    let mut x = [2u32, 2, 2];
    assert!(sample_ctmc(&ctmc, &den, &mut x, 0, &good).is_ok());
    for times in [
        vec![1.0],
        vec![0.5, 0.5],
        vec![0.2, 0.5],
        vec![1.2, 0.5],
        vec![1.0, f64::NAN],
    ] {
        let cfg = CtmcSampler {
            times,
            ..good.clone()
        };
        assert!(sample_ctmc(&ctmc, &den, &mut [2, 2, 2], 0, &cfg).is_err());
    }
    assert!(sample_ctmc(&ctmc, &den, &mut [], 0, &good).is_err());
    assert!(sample_ctmc(&ctmc, &den, &mut [2, 2, 7], 0, &good).is_err());
    let cfg = CtmcSampler {
        predictor: Predictor::AbsorbingTweedie { mask_id: 3 },
        ..good.clone()
    };
    assert!(sample_ctmc(&ctmc, &den, &mut [2, 2, 2], 0, &cfg).is_err());
    let cfg = CtmcSampler {
        corrector: Some(Corrector {
            steps: 1,
            multiplier: -1.0,
            mode: TauLeapMode::RejectMultiple,
        }),
        ..good.clone()
    };
    assert!(sample_ctmc(&ctmc, &den, &mut [2, 2, 2], 0, &cfg).is_err());
    // Linear schedule: σ(1) = ∞, Euler cannot start there.
    let lin = Ctmc::new(MixtureGenerator::absorbing(3, 2).unwrap(), Linear::new());
    assert!(sample_ctmc(&lin, &den, &mut [2, 2, 2], 0, &good).is_err());
    // Wrong V.
    let small = Ctmc::new(
        MixtureGenerator::uniform(2).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    assert!(sample_ctmc(&small, &den, &mut [0, 1, 0], 0, &good).is_err());
    let mut cache = DenoiserCache::new(&den, true);
    assert!(
        cache
            .logits(ArrayView2::from_shape((1, 3), &[2, 2, 2]).unwrap(), 1.5)
            .is_err()
    );
    assert!(
        cache
            .logits(ArrayView2::from_shape((1, 0), &[]).unwrap(), 0.5)
            .is_err()
    );
    assert!(
        cache
            .logits(ArrayView2::from_shape((1, 3), &[2, 2, 9]).unwrap(), 0.5)
            .is_err()
    );
    assert_eq!(cache.nfe(), 0);
    assert!(
        cache
            .logits(ArrayView2::from_shape((1, 3), &[2, 2, 2]).unwrap(), 0.5)
            .is_ok()
    );
    assert!(
        cache
            .logits(ArrayView2::from_shape((1, 3), &[2, 2, 2]).unwrap(), 0.4)
            .is_ok()
    );
    assert_eq!(cache.nfe(), 1);
}

#[test]
fn batch_inputs() {
    let ctmc = Ctmc::new(
        MixtureGenerator::absorbing(3, 2).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    let oracle = MarkovChainOracle::iid(2, 3, vec![0.5, 0.5])
        .unwrap()
        .embed(&[0, 1], 3)
        .unwrap();
    let process =
        MixtureProcess::from_schedule(vec![0.0, 0.0, 1.0], LogLinear::new(1e-3).unwrap()).unwrap();
    let den = OracleDenoiser::new(oracle, process).unwrap();
    let cfg = CtmcSampler {
        predictor: Predictor::Tweedie,
        corrector: None,
        times: vec![1.0, 0.5, 0.0],
        output: ModelOutput::X0Logits,
        seed: 0,
        time_independent_denoiser: true,
    };
    let mut x = Array2::from_elem((2, 3), 2u32);
    assert!(sample_ctmc_batch(&ctmc, &den, x.view_mut(), &[0], &cfg).is_err());
    assert!(sample_ctmc_batch(&ctmc, &den, x.view_mut(), &[0, 1, 2], &cfg).is_err());
    let mut empty = Array2::<u32>::zeros((0, 3));
    assert!(sample_ctmc_batch(&ctmc, &den, empty.view_mut(), &[], &cfg).is_err());
    assert!(sample_ctmc_batch(&ctmc, &den, x.view_mut(), &[0, 1], &cfg).is_ok());
}
