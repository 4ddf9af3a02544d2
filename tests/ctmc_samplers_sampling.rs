//! The samplers' draws: χ² of first hitting against a Markov chain at L = 64, χ² of one
//! predictor step against its exact law, exact reuse of denoiser outputs (NFE), and
//! reproducibility by (seed, stream).

use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator};
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::{ExactPosterior, OracleDenoiser};
use discrete_diffusion::param::reverse::reverse_rates_exact;
use discrete_diffusion::param::reverse::{CtmcChannel, RateWorkspace};
use discrete_diffusion::sample::ctmc::{
    CtmcSampler, FirstHitting, ModelOutput, Predictor, TauLeapMode, euler_law,
    first_hitting_sample, sample_ctmc, tau_leaping_law, tweedie_law_from_x0,
};
use discrete_diffusion::schedule::{Geometric, Linear, LogLinear};
use ndarray::Array2;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Pearson's statistic over cells with positive expectation; returns (χ², df).
fn chi2(counts: &[f64], probs: &[f64], n: f64) -> (f64, f64) {
    let mut stat = 0.0;
    let mut cells = 0.0;
    for (&c, &p) in counts.iter().zip(probs) {
        if p > 0.0 {
            stat += (c - n * p).powi(2) / (n * p);
            cells += 1.0;
        } else {
            assert_eq!(c, 0.0, "a draw in a zero-probability cell");
        }
    }
    (stat, cells - 1.0)
}

fn quantile(df: f64, q: f64) -> f64 {
    ChiSquared::new(df).unwrap().inverse_cdf(q)
}

const P: [f64; 9] = [0.7, 0.2, 0.1, 0.3, 0.3, 0.4, 0.05, 0.15, 0.8];
const INIT: [f64; 3] = [0.5, 0.3, 0.2];

#[test]
fn first_hitting_matches_a_markov_chain_at_length_64() {
    let l = 64;
    let chain = MarkovChainOracle::new(3, 1, l, INIT.to_vec(), P.to_vec()).unwrap();
    // Data tokens 0, 2, 3; the mask at index 1 (not the last id).
    let ids = [0u32, 2, 3];
    let mask = 1u32;
    let oracle = chain.embed(&ids, 4).unwrap();
    let mut pi = vec![0.0; 4];
    pi[mask as usize] = 1.0;
    let process = MixtureProcess::from_schedule(pi, Linear::new()).unwrap();
    let den = OracleDenoiser::new(oracle, process).unwrap();
    let n = 1200;
    let pairs = [(0usize, 1usize), (40, 41)];
    let mut counts = vec![vec![0.0; 9]; pairs.len()];
    for stream in 0..n {
        let mut x = vec![mask; l];
        let cfg = FirstHitting {
            mask_id: mask,
            t_start: 1.0,
            seed: 2024,
            stream,
        };
        let out = first_hitting_sample(&Linear::new(), &den, &mut x, &cfg).unwrap();
        assert_eq!(out.nfe, l);
        assert!(
            out.reveals.windows(2).all(|w| w[1].0 <= w[0].0),
            "times decrease"
        );
        let back = |tok: u32| {
            ids.iter()
                .position(|&i| i == tok)
                .expect("unmasked data token")
        };
        for (k, &(a, b)) in pairs.iter().enumerate() {
            counts[k][back(x[a]) * 3 + back(x[b])] += 1.0;
        }
    }
    for (k, &(a, _)) in pairs.iter().enumerate() {
        // p(x_a) = INIT·P^a, then p(x_a, x_{a+1}) = p(x_a) P.
        let mut m = INIT.to_vec();
        for _ in 0..a {
            m = (0..3)
                .map(|j| (0..3).map(|i| m[i] * P[i * 3 + j]).sum())
                .collect();
        }
        let probs: Vec<f64> = (0..9).map(|c| m[c / 3] * P[c]).collect();
        let (stat, df) = chi2(&counts[k], &probs, n as f64);
        assert!(
            stat < quantile(df, 0.999),
            "pair {pairs:?}[{k}]: χ² = {stat} (df {df})"
        );
    }
}

/// One step of `sample_ctmc` at L = 1 against the exact per-position law.
#[test]
fn one_predictor_step_draws_its_law() {
    let v = 4;
    let sched = Geometric::new(0.05, 2.0).unwrap();
    let ctmc = Ctmc::new(MixtureGenerator::uniform(v).unwrap(), sched);
    let oracle = MarkovChainOracle::iid(v, 1, vec![0.1, 0.2, 0.3, 0.4]).unwrap();
    let process =
        MixtureProcess::from_schedule(vec![1.0 / v as f64; v], Geometric::new(0.05, 2.0).unwrap())
            .unwrap();
    let den = OracleDenoiser::new(oracle.clone(), process).unwrap();
    let (t, s, x0) = (0.6, 0.35, 2u32);
    let mut rates = Array2::zeros((1, v));
    reverse_rates_exact(&ctmc, &oracle, &[x0], t, rates.view_mut()).unwrap();
    let r = rates.row(0).to_vec();
    let predictors = [
        Predictor::Euler,
        Predictor::TauLeaping(TauLeapMode::RejectMultiple),
        Predictor::TauLeaping(TauLeapMode::Ordinal),
        Predictor::Tweedie,
    ];
    for pred in predictors {
        let mut law = vec![0.0; v];
        match pred {
            Predictor::Euler => euler_law(&r, x0, t - s, &mut law).unwrap(),
            Predictor::TauLeaping(m) => {
                tau_leaping_law(&r, x0, t - s, m, &mut law).unwrap();
            }
            _ => {
                let (st, ss) = (ctmc.total_noise(t).unwrap(), ctmc.total_noise(s).unwrap());
                let ch = CtmcChannel::new(ctmc.generator(), st).unwrap();
                let mut post = Array2::zeros((1, v));
                oracle.posterior_x0(&[x0], &ch, post.view_mut()).unwrap();
                let mut ws = RateWorkspace::new(v).unwrap();
                let p = post.row(0).to_vec();
                tweedie_law_from_x0(ctmc.generator(), st, ss, x0, &p, &mut ws, &mut law).unwrap();
            }
        }
        let n = 6000;
        let mut counts = vec![0.0; v];
        for stream in 0..n {
            let mut x = [x0];
            let cfg = CtmcSampler {
                predictor: pred,
                corrector: None,
                times: vec![t, s],
                output: ModelOutput::X0Logits,
                seed: 11,
                time_independent_denoiser: false,
            };
            let out = sample_ctmc(&ctmc, &den, &mut x, stream, &cfg).unwrap();
            assert_eq!(out.nfe, 1);
            counts[x[0] as usize] += 1.0;
        }
        let (stat, df) = chi2(&counts, &law, n as f64);
        assert!(
            stat < quantile(df, 0.999),
            "{pred:?}: χ² = {stat}, law {law:?}, counts {counts:?}"
        );
    }
}

fn masked_setup() -> (
    Ctmc<MixtureGenerator, LogLinear>,
    OracleDenoiser<MarkovChainOracle, MixtureProcess>,
) {
    let l = 8;
    let chain = MarkovChainOracle::new(3, 1, l, INIT.to_vec(), P.to_vec()).unwrap();
    let oracle = chain.embed(&[0, 1, 2], 4).unwrap();
    let ctmc = Ctmc::new(
        MixtureGenerator::absorbing(4, 3).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    let process =
        MixtureProcess::from_schedule(vec![0.0, 0.0, 0.0, 1.0], LogLinear::new(1e-3).unwrap())
            .unwrap();
    (ctmc, OracleDenoiser::new(oracle, process).unwrap())
}

#[test]
fn caching_skips_calls_and_changes_nothing() {
    let (ctmc, den) = masked_setup();
    let steps = 64;
    let times: Vec<f64> = (0..=steps).map(|k| 1.0 - k as f64 / steps as f64).collect();
    for pred in [
        Predictor::Tweedie,
        Predictor::AbsorbingTweedie { mask_id: 3 },
    ] {
        for stream in 0..20 {
            let run = |cached: bool| {
                let mut x = vec![3u32; 8];
                let cfg = CtmcSampler {
                    predictor: pred,
                    corrector: None,
                    times: times.clone(),
                    output: ModelOutput::X0Logits,
                    seed: 5,
                    time_independent_denoiser: cached,
                };
                let out = sample_ctmc(&ctmc, &den, &mut x, stream, &cfg).unwrap();
                (x, out.nfe)
            };
            let (a, nfe_a) = run(false);
            let (b, nfe_b) = run(true);
            assert_eq!(a, b, "{pred:?} stream {stream}");
            assert_eq!(nfe_a, steps);
            assert!(nfe_b < steps && nfe_b <= 8 + 1, "{pred:?}: NFE {nfe_b}");
            assert!(a.iter().all(|&t| t != 3), "fully unmasked at t = 0");
        }
    }
}

#[test]
fn results_depend_only_on_seed_and_stream() {
    let (ctmc, den) = masked_setup();
    let times: Vec<f64> = (0..=16).map(|k| 1.0 - k as f64 / 16.0).collect();
    let cfg = CtmcSampler {
        predictor: Predictor::Tweedie,
        corrector: None,
        times: times.clone(),
        output: ModelOutput::X0Logits,
        seed: 9,
        time_independent_denoiser: true,
    };
    let draw = |stream| {
        let mut x = vec![3u32; 8];
        sample_ctmc(&ctmc, &den, &mut x, stream, &cfg).unwrap();
        x
    };
    assert_eq!(draw(4), draw(4));
    let distinct: std::collections::HashSet<Vec<u32>> = (0..8).map(draw).collect();
    assert!(distinct.len() > 1);
}

#[test]
fn corrector_runs_and_counts_its_evaluations() {
    let ctmc = Ctmc::new(
        MixtureGenerator::uniform(3).unwrap(),
        Geometric::new(0.05, 2.0).unwrap(),
    );
    let oracle = MarkovChainOracle::new(3, 1, 6, INIT.to_vec(), P.to_vec()).unwrap();
    let process =
        MixtureProcess::from_schedule(vec![1.0 / 3.0; 3], Geometric::new(0.05, 2.0).unwrap())
            .unwrap();
    let den = OracleDenoiser::new(oracle, process).unwrap();
    let mut x = vec![0u32, 1, 2, 0, 1, 2];
    let cfg = CtmcSampler {
        predictor: Predictor::TauLeaping(TauLeapMode::RejectMultiple),
        corrector: Some(discrete_diffusion::sample::ctmc::Corrector {
            steps: 2,
            multiplier: 0.5,
            mode: TauLeapMode::RejectMultiple,
        }),
        times: vec![1.0, 0.75, 0.5, 0.25, 0.0],
        output: ModelOutput::X0Logits,
        seed: 1,
        time_independent_denoiser: false,
    };
    let out = sample_ctmc(&ctmc, &den, &mut x, 0, &cfg).unwrap();
    // 4 predictor evaluations + 2 correctors at each of the 3 interior times (none at 0);
    // an unchanged (tokens, t) is reused.
    assert!(out.nfe <= 4 + 3 * 2 && out.nfe >= 4, "{}", out.nfe);
    assert_eq!(out.steps, 4);
}

/// Ordinal τ-leaping with large jump means (the PTRS Poisson path) draws the law that
/// `tau_leaping_law` computes by convolution.
#[test]
fn ordinal_tau_leaping_with_large_means_draws_its_law() {
    use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
    use discrete_diffusion::sample::ctmc::tau_leaping_draw;
    let v = 40;
    let x = 20u32;
    let mut rates = vec![0.0; v];
    rates[21] = 15.0;
    rates[19] = 12.0;
    rates[25] = 0.4;
    let mut law = vec![0.0; v];
    let tail = tau_leaping_law(&rates, x, 1.0, TauLeapMode::Ordinal, &mut law).unwrap();
    assert!(tail < 1e-13);
    let n = 20_000;
    let mut counts = vec![0.0; v];
    for i in 0..n {
        let mut rng = CounterRng::new(RngKey::for_stream(3, i), Purpose::CATEGORICAL, 0, 0);
        counts
            [tau_leaping_draw(&rates, x, 1.0, TauLeapMode::Ordinal, &mut rng).unwrap() as usize] +=
            1.0;
    }
    // Pool cells with expectation below 5 into their neighbours' tail bins.
    let (mut c2, mut p2) = (vec![], vec![]);
    let (mut cacc, mut pacc) = (0.0, 0.0);
    for (c, p) in counts.iter().zip(&law) {
        cacc += c;
        pacc += p;
        if pacc * n as f64 >= 5.0 {
            c2.push(cacc);
            p2.push(pacc);
            cacc = 0.0;
            pacc = 0.0;
        }
    }
    *c2.last_mut().unwrap() += cacc;
    *p2.last_mut().unwrap() += pacc;
    let (stat, df) = chi2(&c2, &p2, n as f64);
    assert!(stat < quantile(df, 0.999), "χ² = {stat} (df {df})");
}

/// The backend-fused absorbing analytic step draws the same law as the generic one.
#[test]
fn absorbing_tweedie_on_the_backend_draws_the_analytic_law() {
    let (ctmc, den) = masked_setup();
    let (t, s) = (0.7, 0.4);
    let x = vec![3u32, 0, 3, 3, 1, 3, 3, 2];
    // Exact per-position law of position 2 (masked) from the denoiser's posterior.
    let logits = {
        use discrete_diffusion::model::Denoiser;
        use ndarray::{Array1, Array3, ArrayView2};
        let mut out = Array3::<f32>::zeros((1, 8, 4));
        den.logits(
            ArrayView2::from_shape((1, 8), &x).unwrap(),
            Array1::from_elem(1, t).view(),
            out.view_mut(),
        )
        .unwrap();
        out
    };
    let mut p = vec![0.0; 4];
    discrete_diffusion::math::softmax_into(logits.slice(ndarray::s![0, 2, ..]).iter(), &mut p)
        .unwrap();
    let (st, ss) = (ctmc.total_noise(t).unwrap(), ctmc.total_noise(s).unwrap());
    let mut ws = RateWorkspace::new(4).unwrap();
    let mut law = vec![0.0; 4];
    tweedie_law_from_x0(ctmc.generator(), st, ss, 3, &p, &mut ws, &mut law).unwrap();
    let n = 6000;
    let mut counts = vec![0.0; 4];
    for stream in 0..n {
        let mut y = x.clone();
        let cfg = CtmcSampler {
            predictor: Predictor::AbsorbingTweedie { mask_id: 3 },
            corrector: None,
            times: vec![t, s],
            output: ModelOutput::X0Logits,
            seed: 17,
            time_independent_denoiser: true,
        };
        sample_ctmc(&ctmc, &den, &mut y, stream, &cfg).unwrap();
        assert_eq!(
            (y[1], y[4], y[7]),
            (0, 1, 2),
            "unmasked tokens are carried over"
        );
        counts[y[2] as usize] += 1.0;
    }
    let (stat, df) = chi2(&counts, &law, n as f64);
    assert!(
        stat < quantile(df, 0.999),
        "χ² = {stat}, law {law:?}, counts {counts:?}"
    );
}

/// A batch gives every sequence exactly what it gets alone (or with other batch mates, in
/// another order), for every predictor, with and without a corrector; the batch calls the
/// denoiser once per step for all rows that need it.
#[test]
fn batches_equal_single_runs() {
    use discrete_diffusion::sample::ctmc::{Corrector, sample_ctmc_batch};
    let (ctmc, den) = masked_setup();
    let times: Vec<f64> = (0..=12).map(|k| 0.95 - 0.95 * k as f64 / 12.0).collect();
    let preds = [
        (Predictor::Tweedie, None),
        (Predictor::AbsorbingTweedie { mask_id: 3 }, None),
        (Predictor::Euler, None),
        (
            Predictor::TauLeaping(TauLeapMode::RejectMultiple),
            Some(Corrector {
                steps: 1,
                multiplier: 0.5,
                mode: TauLeapMode::RejectMultiple,
            }),
        ),
    ];
    for (predictor, corrector) in preds {
        let cfg = CtmcSampler {
            predictor,
            corrector,
            times: times.clone(),
            output: ModelOutput::X0Logits,
            seed: 21,
            time_independent_denoiser: true,
        };
        let single = |stream: u64| {
            let mut x = vec![3u32; 8];
            sample_ctmc(&ctmc, &den, &mut x, stream, &cfg).unwrap();
            x
        };
        for streams in [vec![3u64, 7, 11], vec![11, 5, 3, 9]] {
            let mut batch = Array2::from_elem((streams.len(), 8), 3u32);
            let out = sample_ctmc_batch(&ctmc, &den, batch.view_mut(), &streams, &cfg).unwrap();
            assert!(out.nfe <= times.len() * 2, "{predictor:?}: {}", out.nfe);
            assert!(out.row_evaluations >= out.nfe);
            for (b, &st) in streams.iter().enumerate() {
                assert_eq!(
                    batch.row(b).to_vec(),
                    single(st),
                    "{predictor:?} stream {st}"
                );
            }
        }
    }
}

/// A denoiser whose outputs are the exact log concrete scores `ln p_t(x^{i←y})/p_t(x)` of an
/// oracle under the CTMC's channel (SEDD's parameterisation, exact).
struct ScoreOracle<'a, G, S> {
    ctmc: &'a Ctmc<G, S>,
    oracle: &'a MarkovChainOracle,
}

impl<G, S> discrete_diffusion::model::Denoiser for ScoreOracle<'_, G, S>
where
    G: discrete_diffusion::kernel::ctmc::RateGenerator,
    S: discrete_diffusion::schedule::Schedule,
{
    fn vocab_size(&self) -> usize {
        self.ctmc.vocab_size()
    }
    fn logits(
        &self,
        tokens: ndarray::ArrayView2<'_, u32>,
        times: ndarray::ArrayView1<'_, f64>,
        mut out: ndarray::ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        let (l, v) = (tokens.ncols(), self.vocab_size());
        for (b, row) in tokens.outer_iter().enumerate() {
            let ch = CtmcChannel::at(self.ctmc, times[b])?;
            let mut sc = Array2::zeros((l, v));
            self.oracle
                .concrete_score(&row.to_vec(), &ch, sc.view_mut())?;
            out.index_axis_mut(ndarray::Axis(0), b)
                .zip_mut_with(&sc, |o, &s| *o = s.ln() as f32);
        }
        Ok(())
    }
}

/// Log-score models: Euler and τ-leaping use the scores as ratios, and the absorbing
/// analytic step runs on the backend's SEDD step; each draws its exact law.
#[test]
fn log_score_outputs_draw_the_same_laws() {
    use discrete_diffusion::model::oracle::ExactPosterior as _;
    let v = 4;
    let ctmc = Ctmc::new(
        MixtureGenerator::uniform(v).unwrap(),
        Geometric::new(0.05, 2.0).unwrap(),
    );
    let oracle = MarkovChainOracle::iid(v, 1, vec![0.1, 0.2, 0.3, 0.4]).unwrap();
    let den = ScoreOracle {
        ctmc: &ctmc,
        oracle: &oracle,
    };
    let (t, s, x0) = (0.6, 0.35, 2u32);
    let mut rates = Array2::zeros((1, v));
    reverse_rates_exact(&ctmc, &oracle, &[x0], t, rates.view_mut()).unwrap();
    let r = rates.row(0).to_vec();
    for pred in [
        Predictor::Euler,
        Predictor::TauLeaping(TauLeapMode::RejectMultiple),
    ] {
        let mut law = vec![0.0; v];
        match pred {
            Predictor::Euler => euler_law(&r, x0, t - s, &mut law).unwrap(),
            _ => {
                tau_leaping_law(&r, x0, t - s, TauLeapMode::RejectMultiple, &mut law).unwrap();
            }
        }
        let cfg = CtmcSampler {
            predictor: pred,
            output: ModelOutput::LogScore,
            corrector: None,
            times: vec![t, s],
            seed: 13,
            time_independent_denoiser: false,
        };
        let n = 6000;
        let mut counts = vec![0.0; v];
        for stream in 0..n {
            let mut x = [x0];
            sample_ctmc(&ctmc, &den, &mut x, stream, &cfg).unwrap();
            counts[x[0] as usize] += 1.0;
        }
        let (stat, df) = chi2(&counts, &law, n as f64);
        assert!(stat < quantile(df, 0.999), "{pred:?}: χ² = {stat}");
        // The generic analytic step needs x0 logits.
        let bad = CtmcSampler {
            predictor: Predictor::Tweedie,
            ..cfg.clone()
        };
        assert!(sample_ctmc(&ctmc, &den, &mut [x0], 0, &bad).is_err());
    }
    // Absorbing: SEDD's analytic step on the backend against the x0-route law.
    let actmc = Ctmc::new(
        MixtureGenerator::absorbing(4, 3).unwrap(),
        LogLinear::new(1e-3).unwrap(),
    );
    let chain = MarkovChainOracle::new(3, 1, 3, INIT.to_vec(), P.to_vec()).unwrap();
    let aoracle = chain.embed(&[0, 1, 2], 4).unwrap();
    let aden = ScoreOracle {
        ctmc: &actmc,
        oracle: &aoracle,
    };
    let x = [3u32, 1, 3];
    let (t, s) = (0.7, 0.4);
    let (st, ss) = (actmc.total_noise(t).unwrap(), actmc.total_noise(s).unwrap());
    let ch = CtmcChannel::new(actmc.generator(), st).unwrap();
    let mut post = Array2::zeros((3, 4));
    aoracle.posterior_x0(&x, &ch, post.view_mut()).unwrap();
    let mut ws = RateWorkspace::new(4).unwrap();
    let mut law = vec![0.0; 4];
    tweedie_law_from_x0(
        actmc.generator(),
        st,
        ss,
        3,
        &post.row(0).to_vec(),
        &mut ws,
        &mut law,
    )
    .unwrap();
    let cfg = CtmcSampler {
        predictor: Predictor::AbsorbingTweedie { mask_id: 3 },
        output: ModelOutput::LogScore,
        corrector: None,
        times: vec![t, s],
        seed: 14,
        time_independent_denoiser: false,
    };
    let n = 6000;
    let mut counts = vec![0.0; 4];
    for stream in 0..n {
        let mut y = x;
        sample_ctmc(&actmc, &aden, &mut y, stream, &cfg).unwrap();
        assert_eq!(y[1], 1);
        counts[y[0] as usize] += 1.0;
    }
    let (stat, df) = chi2(&counts, &law, n as f64);
    assert!(
        stat < quantile(df, 0.999),
        "absorbing log-score: χ² = {stat}, {law:?} {counts:?}"
    );
}
