//! Exact propagation of whole distributions through the CTMC samplers' kernels on an
//! enumerable space (shared by tests/ctmc_samplers_convergence.rs and
//! examples/samplers_report.rs).
//!
//! A sampler step moves every position independently given the current sequence, with a
//! per-position law (Euler, τ-leaping, analytic). Its kernel over the `V^L` joint states is
//! the product of those laws; applying it to the exact law of `x_t` gives the exact law of
//! the sampler's output, so errors are measured without Monte-Carlo noise.
#![allow(dead_code, clippy::needless_range_loop)]

use discrete_diffusion::kernel::ctmc::{Ctmc, RateGenerator};
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::ExactPosterior;
use discrete_diffusion::param::reverse::{CtmcChannel, RateWorkspace, reverse_rates_exact};
use discrete_diffusion::sample::ctmc::{
    TauLeapMode, corrector_rates, euler_law, tau_leaping_law, tweedie_law_from_x0,
};
use discrete_diffusion::schedule::Schedule;
use ndarray::Array2;

/// A predictor's per-position law.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheme {
    Euler,
    Tau(TauLeapMode),
    Tweedie,
}

/// A sampler: a predictor and `correctors` corrector steps of step `multiplier·h`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    pub predictor: Scheme,
    pub correctors: usize,
    pub multiplier: f64,
}

impl Sampler {
    pub fn plain(predictor: Scheme) -> Self {
        Sampler {
            predictor,
            correctors: 0,
            multiplier: 0.0,
        }
    }
    /// Function evaluations per step (one per predictor and per corrector).
    pub fn nfe_per_step(&self) -> usize {
        1 + self.correctors
    }
}

/// All `V^L` sequences in the oracle's lexicographic order.
pub fn states(oracle: &EnumerationOracle) -> Vec<Vec<u32>> {
    (0..oracle.probs().len())
        .map(|i| oracle.sequence(i).unwrap())
        .collect()
}

/// The exact law of `x_t` over the `V^L` states.
pub fn marginal<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    oracle: &EnumerationOracle,
    t: f64,
) -> Vec<f64> {
    let ch = CtmcChannel::at(ctmc, t).unwrap();
    oracle.marginal_xt(&ch).unwrap()
}

/// Apply one joint kernel whose per-position laws `laws[i]` (`[L, V]`) depend on the state.
fn apply<F>(p: &[f64], states: &[Vec<u32>], oracle: &EnumerationOracle, mut law_of: F) -> Vec<f64>
where
    F: FnMut(&[u32]) -> Array2<f64>,
{
    let mut next = vec![0.0; p.len()];
    let l = states[0].len();
    for (x, &px) in states.iter().zip(p) {
        if px == 0.0 {
            continue;
        }
        let laws = law_of(x);
        for (yi, y) in states.iter().enumerate() {
            let mut w = px;
            for i in 0..l {
                w *= laws[[i, y[i] as usize]];
                if w == 0.0 {
                    break;
                }
            }
            next[yi] += w;
        }
    }
    let _ = oracle;
    next
}

/// Per-position laws of a predictor step `t → s` at state `x`, with exact rates/posteriors.
fn predictor_laws<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    oracle: &EnumerationOracle,
    scheme: Scheme,
    x: &[u32],
    t: f64,
    s: f64,
) -> Array2<f64> {
    let v = ctmc.vocab_size();
    let l = x.len();
    let mut laws = Array2::zeros((l, v));
    let h = t - s;
    match scheme {
        Scheme::Euler | Scheme::Tau(_) => {
            let mut rates = Array2::zeros((l, v));
            reverse_rates_exact(ctmc, oracle, x, t, rates.view_mut()).unwrap();
            for i in 0..l {
                let r = rates.row(i).to_vec();
                let mut out = vec![0.0; v];
                match scheme {
                    Scheme::Euler => euler_law(&r, x[i], h, &mut out).unwrap(),
                    Scheme::Tau(m) => {
                        tau_leaping_law(&r, x[i], h, m, &mut out).unwrap();
                    }
                    Scheme::Tweedie => unreachable!(),
                }
                laws.row_mut(i).assign(&ndarray::ArrayView1::from(&out[..]));
            }
        }
        Scheme::Tweedie => {
            let st = ctmc.total_noise(t).unwrap();
            let ss = ctmc.total_noise(s).unwrap();
            let ch = CtmcChannel::new(ctmc.generator(), st).unwrap();
            let mut post = Array2::zeros((l, v));
            oracle.posterior_x0(x, &ch, post.view_mut()).unwrap();
            let mut ws = RateWorkspace::new(v).unwrap();
            for i in 0..l {
                let p = post.row(i).to_vec();
                let mut out = vec![0.0; v];
                tweedie_law_from_x0(ctmc.generator(), st, ss, x[i], &p, &mut ws, &mut out).unwrap();
                laws.row_mut(i).assign(&ndarray::ArrayView1::from(&out[..]));
            }
        }
    }
    laws
}

/// Per-position laws of one corrector step at time `s` with step `dt`.
fn corrector_laws<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    oracle: &EnumerationOracle,
    x: &[u32],
    s: f64,
    dt: f64,
) -> Array2<f64> {
    let v = ctmc.vocab_size();
    let l = x.len();
    let sigma = ctmc.noise_rate(s).unwrap();
    let mut rates = Array2::zeros((l, v));
    reverse_rates_exact(ctmc, oracle, x, s, rates.view_mut()).unwrap();
    let mut laws = Array2::zeros((l, v));
    let (mut c, mut scratch, mut out) = (vec![0.0; v], vec![0.0; v], vec![0.0; v]);
    for i in 0..l {
        let r = rates.row(i).to_vec();
        corrector_rates(ctmc.generator(), sigma, x[i], &r, &mut scratch, &mut c).unwrap();
        tau_leaping_law(&c, x[i], dt, TauLeapMode::RejectMultiple, &mut out).unwrap();
        laws.row_mut(i).assign(&ndarray::ArrayView1::from(&out[..]));
    }
    laws
}

/// The exact law after running `sampler` on the uniform grid of `steps` steps from
/// `t_start` to `t_end`, starting from the exact law of `x_{t_start}`.
pub fn propagate<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    oracle: &EnumerationOracle,
    sampler: Sampler,
    steps: usize,
    t_start: f64,
    t_end: f64,
) -> Vec<f64> {
    let p = marginal(ctmc, oracle, t_start);
    propagate_from(ctmc, oracle, sampler, steps, t_start, t_end, p)
}

/// The product law `π^{⊗L}` of the generator's limit (`exp(∞·Q)` rows): where samplers
/// start in practice.
pub fn prior<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    oracle: &EnumerationOracle,
) -> Vec<f64> {
    let v = ctmc.vocab_size();
    let mut pi = vec![0.0; v];
    ctmc.generator()
        .transition_row(0, f64::INFINITY, &mut pi)
        .unwrap();
    states(oracle)
        .iter()
        .map(|x| x.iter().map(|&y| pi[y as usize]).product())
        .collect()
}

/// [`propagate`] from a given start law `p` (over the `V^L` states).
pub fn propagate_from<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    oracle: &EnumerationOracle,
    sampler: Sampler,
    steps: usize,
    t_start: f64,
    t_end: f64,
    mut p: Vec<f64>,
) -> Vec<f64> {
    let states = states(oracle);
    for k in 0..steps {
        let t = t_start + (t_end - t_start) * k as f64 / steps as f64;
        let s = t_start + (t_end - t_start) * (k + 1) as f64 / steps as f64;
        p = apply(&p, &states, oracle, |x| {
            predictor_laws(ctmc, oracle, sampler.predictor, x, t, s)
        });
        if s > 0.0 {
            for _ in 0..sampler.correctors {
                let dt = sampler.multiplier * (t - s);
                p = apply(&p, &states, oracle, |x| {
                    corrector_laws(ctmc, oracle, x, s, dt)
                });
            }
        }
    }
    p
}

/// The exact law of the first-hitting sampler's output from an all-masked start: each
/// reveal picks a masked position uniformly and draws its token from the exact posterior
/// (time-agnostic; evaluated under the channel of `t_eval`).
pub fn first_hitting_law<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    oracle: &EnumerationOracle,
    mask: u32,
    t_eval: f64,
) -> Vec<f64> {
    let states = states(oracle);
    let l = states[0].len();
    let v = ctmc.vocab_size();
    let ch = CtmcChannel::at(ctmc, t_eval).unwrap();
    let mut p = vec![0.0; states.len()];
    p[oracle.index(&vec![mask; l]).unwrap()] = 1.0;
    for _ in 0..l {
        let mut next = vec![0.0; p.len()];
        for (x, &px) in states.iter().zip(&p) {
            if px == 0.0 {
                continue;
            }
            let masked: Vec<usize> = (0..l).filter(|&i| x[i] == mask).collect();
            if masked.is_empty() {
                next[oracle.index(x).unwrap()] += px;
                continue;
            }
            let mut post = Array2::zeros((l, v));
            oracle.posterior_x0(x, &ch, post.view_mut()).unwrap();
            for &i in &masked {
                for tok in 0..v as u32 {
                    let w = post[[i, tok as usize]];
                    if w == 0.0 || tok == mask {
                        continue;
                    }
                    let mut y = x.clone();
                    y[i] = tok;
                    next[oracle.index(&y).unwrap()] += px * w / masked.len() as f64;
                }
            }
        }
        p = next;
    }
    p
}

/// Total variation `½ Σ |p − q|`.
pub fn tv(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// `KL(p ‖ q)` in nats (terms with `p = 0` are 0).
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| a * (a / b).ln())
        .sum()
}

/// Least-squares slope of `ln err` against `ln n`.
pub fn slope(ns: &[usize], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = ns.iter().map(|&n| (n as f64).ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let mx = xs.iter().sum::<f64>() / xs.len() as f64;
    let my = ys.iter().sum::<f64>() / ys.len() as f64;
    let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    num / den
}

/// A fixed, non-product data law over `V^L` sequences (deterministic, all states of the
/// first `k` tokens positive, correlated across positions).
pub fn data_law(v_data: usize, v: usize, l: usize) -> EnumerationOracle {
    let n = v.pow(l as u32);
    let mut probs = vec![0.0; n];
    for (idx, p) in probs.iter_mut().enumerate() {
        let mut rest = idx;
        let mut digits = Vec::with_capacity(l);
        for _ in 0..l {
            digits.push(rest % v);
            rest /= v;
        }
        if digits.iter().any(|&d| d >= v_data) {
            continue;
        }
        // Correlated weights: favour equal neighbours, plus a position-dependent tilt.
        let mut w = 1.0;
        for i in 0..l {
            w *= 1.0 + 0.7 * digits[i] as f64 * (i + 1) as f64 / l as f64;
            if i > 0 && digits[i] == digits[i - 1] {
                w *= 3.0;
            }
        }
        *p = w;
    }
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    EnumerationOracle::new(v, l, probs).unwrap()
}
