//! Exactness and bias of unmasking orders against an exact Markov-chain denoiser
//! (MarkovChainOracle + OracleDenoiser under the absorbing MixtureProcess with α = 1 − t).

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::driver::{NoHook, Policy, SamplerConfig, run};
use discrete_diffusion::sample::select::{Budget, Score, Selector, Unmasking};
use discrete_diffusion::schedule::Linear;
use ndarray::Array2;
use statrs::distribution::{ChiSquared, ContinuousCDF};

fn denoiser(
    chain: MarkovChainOracle,
    data_vocab: usize,
) -> OracleDenoiser<MarkovChainOracle, MixtureProcess> {
    let v = data_vocab + 1;
    let ids: Vec<u32> = (0..data_vocab as u32).collect();
    let chain = chain.embed(&ids, v).unwrap();
    let mut e = vec![0.0; v];
    e[data_vocab] = 1.0;
    let process = MixtureProcess::from_schedule(e, Linear::new()).unwrap();
    OracleDenoiser::new(chain, process).unwrap()
}

fn config(mask: u32, steps: usize, per_step: usize, score: Score) -> SamplerConfig {
    SamplerConfig {
        mask_id: mask,
        steps,
        t_min: 0.0,
        transforms: vec![],
        draw_temperature: 1.0,
        exclude_mask: true,
        original_confidence: false,
        policy: Policy::Unmask(Unmasking {
            score,
            budget: Budget::Fixed(per_step),
            selector: Selector::TopK,
        }),
        blocks: None,
        stop: vec![],
        eos: None,
    }
}

fn sample(
    d: &OracleDenoiser<MarkovChainOracle, MixtureProcess>,
    cfg: &SamplerConfig,
    n: usize,
    l: usize,
    seed: u64,
) -> Array2<u32> {
    let mut x = Array2::from_elem((n, l), cfg.mask_id);
    let streams: Vec<u64> = (0..n as u64).collect();
    let rep = run(
        &mut NoHook(d),
        &CpuBackend::new(),
        cfg,
        x.view_mut(),
        None,
        seed,
        &streams,
        &mut (),
    )
    .unwrap();
    assert!(rep.nfe <= cfg.steps);
    x
}

#[test]
fn one_token_per_step_in_random_order_is_exact() {
    let (v, l) = (3usize, 4usize);
    let init = vec![0.4, 0.35, 0.25];
    let p = vec![0.5, 0.3, 0.2, 0.2, 0.5, 0.3, 0.3, 0.2, 0.5];
    let chain = MarkovChainOracle::new(v, 1, l, init.clone(), p.clone()).unwrap();
    let d = denoiser(chain, v);
    let n = 8000;
    let x = sample(&d, &config(v as u32, l, 1, Score::Random), n, l, 11);
    let mut counts = vec![0usize; v.pow(l as u32)];
    for row in x.outer_iter() {
        let idx = row.iter().fold(0usize, |a, &t| a * v + t as usize);
        counts[idx] += 1;
    }
    let mut chi2 = 0.0;
    for (idx, &c) in counts.iter().enumerate() {
        let digits: Vec<usize> = (0..l).rev().map(|k| (idx / v.pow(k as u32)) % v).collect();
        let mut prob = init[digits[0]];
        for w in digits.windows(2) {
            prob *= p[w[0] * v + w[1]];
        }
        let e = prob * n as f64;
        assert!(e >= 5.0);
        chi2 += (c as f64 - e).powi(2) / e;
    }
    let df = (counts.len() - 1) as f64;
    let crit = ChiSquared::new(df).unwrap().inverse_cdf(0.999);
    assert!(chi2 < crit, "χ² = {chi2} ≥ {crit} (df {df})");
}

#[test]
fn parallel_decoding_of_xor_is_biased_exactly_one_half() {
    // x1 ≠ x2, each marginally uniform on {0, 1}.
    let chain = MarkovChainOracle::new(2, 1, 2, vec![0.5, 0.5], vec![0.0, 1.0, 1.0, 0.0]).unwrap();
    let d = denoiser(chain, 2);
    let n = 20000;
    // Both positions in one step (top-2 of any score): independent marginal draws.
    let both = sample(
        &d,
        &config(
            2,
            1,
            2,
            Score::Base(discrete_diffusion::sample::select::BaseScore::Confidence),
        ),
        n,
        2,
        3,
    );
    let valid = both.outer_iter().filter(|r| r[0] != r[1]).count() as f64 / n as f64;
    // P(valid) = 1/2 exactly; 5 standard errors.
    let se = (0.25 / n as f64).sqrt();
    assert!((valid - 0.5).abs() < 5.0 * se, "P(valid) = {valid}");
    // One at a time: always valid.
    let seq = sample(&d, &config(2, 2, 1, Score::Random), 2000, 2, 4);
    assert!(seq.outer_iter().all(|r| r[0] != r[1]));
}
