//! Conformance of the CTMC sampler steps with the anchors' own formulas
//! (tests/fixtures/anchors/{sedd,radd,tauldr,mdlm}.json; conventions in
//! /work/shared/conformance/README.md: SEDD/RADD/MDLM time 1 → eps with column-convention
//! rates, tauLDR row convention). Every comparison is of exact next-state laws.

mod common;

use common::{assert_close, cases, load_anchor, num, tol, vec1, vec2};
use discrete_diffusion::kernel::ctmc::{MixtureGenerator, RateGenerator};
use discrete_diffusion::param::reverse::{
    RateWorkspace, reverse_rates_from_score, reverse_rates_from_x0,
};
use discrete_diffusion::sample::ctmc::{
    TauLeapMode, corrector_rates, euler_law, staggered_score, tau_leaping_law,
    tweedie_law_from_score, tweedie_law_from_x0,
};
use discrete_diffusion::schedule::{Geometric, LogLinear, Schedule};
use serde_json::Value;

/// SEDD's graphs: `uniform` over N states, `absorb` over N + 1 with the mask last.
fn sedd_graph(inputs: &Value) -> MixtureGenerator {
    let n = inputs["n_tokens"].as_u64().unwrap() as usize;
    match inputs["graph"].as_str().unwrap() {
        "uniform" => MixtureGenerator::uniform(n).unwrap(),
        "absorb" => MixtureGenerator::absorbing(n + 1, n as u32).unwrap(),
        g => panic!("graph {g}"),
    }
}

fn sedd_noise(inputs: &Value) -> Box<dyn Schedule> {
    let p = &inputs["noise_params"];
    match inputs["noise"].as_str().unwrap() {
        "loglinear" => Box::new(LogLinear::new(num(&p["eps"])).unwrap()),
        "geometric" => {
            Box::new(Geometric::new(num(&p["sigma_min"]), num(&p["sigma_max"])).unwrap())
        }
        n => panic!("noise {n}"),
    }
}

#[test]
fn sedd_reverse_rate_and_staggered_score() {
    let f = load_anchor("sedd");
    let mut n = 0;
    for c in cases(&f, "reverse_rate_") {
        let g = sedd_graph(&c["inputs"]);
        let v = g.vocab_size();
        let x = c["inputs"]["x"].as_u64().unwrap() as u32;
        let score = vec1(&c["inputs"]["score"]);
        let mut ws = RateWorkspace::new(v).unwrap();
        let mut out = vec![0.0; v];
        reverse_rates_from_score(&g, 1.0, x, &score, &mut ws, &mut out).unwrap();
        assert_close(
            c["name"].as_str().unwrap(),
            &out,
            &vec1(&c["expected"]["reverse_rate"]),
            tol(c),
        );
        n += 1;
    }
    for c in cases(&f, "staggered_score_") {
        let g = sedd_graph(&c["inputs"]);
        let score = vec1(&c["inputs"]["score"]);
        let mut out = vec![0.0; g.vocab_size()];
        staggered_score(&g, &score, num(&c["inputs"]["dsigma"]), &mut out).unwrap();
        assert_close(
            c["name"].as_str().unwrap(),
            &out,
            &vec1(&c["expected"]["staggered_score"]),
            tol(c),
        );
        n += 1;
    }
    assert!(n >= 15);
}

#[test]
fn sedd_euler_and_analytic_predictors() {
    let f = load_anchor("sedd");
    let mut n = 0;
    for c in cases(&f, "predictors_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let exp = &c["expected"];
        let g = sedd_graph(inp);
        let sched = sedd_noise(inp);
        let v = g.vocab_size();
        let (t, dt) = (num(&inp["t"]), num(&inp["step_size"]));
        let x = inp["x"].as_u64().unwrap() as u32;
        let score = vec1(&inp["score"]);
        let sigma_bar = sched.total_noise(t).unwrap();
        let rate = sched.noise_rate(t).unwrap();
        assert_close(
            name,
            &[sigma_bar, rate],
            &[num(&exp["sigma_t"]), num(&exp["rate_t"])],
            (1e-9, 1e-9),
        );
        // Euler: rates σ(t)·Q[y, x]·score[y], step dt.
        let mut ws = RateWorkspace::new(v).unwrap();
        let mut rates = vec![0.0; v];
        reverse_rates_from_score(&g, rate, x, &score, &mut ws, &mut rates).unwrap();
        let mut law = vec![0.0; v];
        euler_law(&rates, x, dt, &mut law).unwrap();
        assert_close(
            &format!("{name} euler"),
            &law,
            &vec1(&exp["euler_probs"]),
            tol(c),
        );
        // Analytic: δ = σ̄(t) − σ̄(t − dt).
        let delta = sigma_bar - sched.total_noise(t - dt).unwrap();
        assert_close(name, &[delta], &[num(&exp["analytic_dsigma"])], tol(c));
        let mut scratch = vec![0.0; v];
        tweedie_law_from_score(&g, delta, x, &score, &mut scratch, &mut law).unwrap();
        assert_close(
            &format!("{name} analytic"),
            &law,
            &vec1(&exp["analytic_probs"]),
            tol(c),
        );
        n += 1;
    }
    assert!(n >= 20);
}

#[test]
fn sedd_final_denoiser_is_the_analytic_step_to_zero() {
    let f = load_anchor("sedd");
    for c in cases(&f, "denoiser_absorb") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let g = sedd_graph(inp);
        let v = g.vocab_size();
        let sigma = sedd_noise(inp).total_noise(num(&inp["t"])).unwrap();
        assert_close(name, &[sigma], &[num(&c["expected"]["sigma"])], tol(c));
        let x = inp["x"].as_u64().unwrap() as u32;
        let (mut law, mut scratch) = (vec![0.0; v], vec![0.0; v]);
        tweedie_law_from_score(&g, sigma, x, &vec1(&inp["score"]), &mut scratch, &mut law).unwrap();
        // SEDD drops the mask column at the final step.
        let real: f64 = law[..v - 1].iter().sum();
        let probs: Vec<f64> = law[..v - 1].iter().map(|p| p / real).collect();
        assert_close(name, &probs, &vec1(&c["expected"]["probs"]), tol(c));
    }
}

#[test]
fn sedd_analytic_step_with_the_exact_score_is_the_exact_reverse_transition() {
    let f = load_anchor("sedd");
    let mut n = 0;
    for c in cases(&f, "analytic_exact_score_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let g = sedd_graph(inp);
        let v = g.vocab_size();
        let sched = sedd_noise(inp);
        let (t, dt) = (num(&inp["t"]), num(&inp["step_size"]));
        let x = inp["x"].as_u64().unwrap() as u32;
        let mut p0 = vec1(&inp["p0"]);
        p0.resize(v, 0.0);
        let (st, ss) = (
            sched.total_noise(t).unwrap(),
            sched.total_noise(t - dt).unwrap(),
        );
        let mut pt = vec![0.0; v];
        g.transition_vecmat(&p0, st, &mut pt).unwrap();
        let score: Vec<f64> = pt.iter().map(|&p| p / pt[x as usize]).collect();
        assert_close(name, &score, &vec1(&c["expected"]["true_score"]), tol(c));
        let (mut law, mut scratch) = (vec![0.0; v], vec![0.0; v]);
        tweedie_law_from_score(&g, st - ss, x, &score, &mut scratch, &mut law).unwrap();
        let want = vec1(&c["expected"]["bayes_reverse_transition"]);
        assert_close(name, &law, &want, tol(c));
        // The x0 route with the exact posterior p(x0 | x_t) gives the same law.
        let mut col = vec![0.0; v];
        g.transition_col(x, st, &mut col).unwrap();
        let post: Vec<f64> = (0..v).map(|i| p0[i] * col[i] / pt[x as usize]).collect();
        let mut ws = RateWorkspace::new(v).unwrap();
        tweedie_law_from_x0(&g, st, ss, x, &post, &mut ws, &mut law).unwrap();
        assert_close(&format!("{name} x0"), &law, &want, tol(c));
        // And Bayes directly: p(x_s = y | x_t = x) = p_s(y) q(x | y) / p_t(x).
        let mut ps = vec![0.0; v];
        g.transition_vecmat(&p0, ss, &mut ps).unwrap();
        g.transition_col(x, st - ss, &mut col).unwrap();
        let bayes: Vec<f64> = (0..v).map(|y| ps[y] * col[y] / pt[x as usize]).collect();
        assert_close(&format!("{name} bayes"), &bayes, &want, tol(c));
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn radd_direct_sample_and_update_rate() {
    let f = load_anchor("radd");
    let mut n = 0;
    for c in cases(&f, "direct_sample_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let cond = vec1(&inp["c"]);
        let nt = cond.len();
        let v = nt + 1;
        let mask = nt as u32;
        let g = MixtureGenerator::absorbing(v, mask).unwrap();
        let mut p = cond.clone();
        p.push(0.0);
        let rate = num(&inp["update_rate"]);
        let want = vec1(&c["expected"]["probs"]);
        let mut law = vec![0.0; v];
        let mut ws = RateWorkspace::new(v).unwrap();
        // Any (σ̄_t, σ̄_s) with (α_s − α_t)/(1 − α_t) = rate gives RADD's law.
        let st = 1.0f64;
        let at = (-st).exp();
        let as_ = (at + rate * (1.0 - at)).min(1.0);
        match inp["method"].as_str().unwrap() {
            "tweedie" => {
                tweedie_law_from_x0(&g, st, -as_.ln(), mask, &p, &mut ws, &mut law).unwrap();
            }
            "euler" => {
                // h·σ·α/(1 − α) = rate with h = 1.
                let sigma = rate * (1.0 - at) / at;
                let mut rates = vec![0.0; v];
                reverse_rates_from_x0(&g, sigma, st, mask, &p, &mut ws, &mut rates).unwrap();
                euler_law(&rates, mask, 1.0, &mut law).unwrap();
            }
            m => panic!("{m}"),
        }
        assert_close(name, &law, &want, tol(c));
        n += 1;
    }
    for c in cases(&f, "update_rate_tweedie") {
        let inp = &c["inputs"];
        let s = LogLinear::new(num(&inp["noise_eps"])).unwrap();
        let ts = vec1(&inp["timesteps"]);
        let want = vec1(&c["expected"]["update_rate"]);
        let g = MixtureGenerator::absorbing(3, 2).unwrap();
        let mut ws = RateWorkspace::new(3).unwrap();
        let mut law = [0.0; 3];
        // All but the last step (RADD forces 1 + 1e-3 there).
        for i in 0..ts.len() - 2 {
            let (st, ss) = (
                s.total_noise(ts[i]).unwrap(),
                s.total_noise(ts[i + 1]).unwrap(),
            );
            tweedie_law_from_x0(&g, st, ss, 2, &[0.5, 0.5, 0.0], &mut ws, &mut law).unwrap();
            assert_close("update_rate", &[1.0 - law[2]], &[want[i]], tol(c));
        }
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn mdlm_ddpm_and_analytic_steps() {
    let f = load_anchor("mdlm");
    let mut n = 0;
    for c in cases(&f, "samplers_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let exp = &c["expected"];
        let p = vec1(&exp["p_x0"]);
        let v = p.len();
        let mask = inp["mask_index"].as_u64().unwrap() as u32;
        let x = inp["x"].as_u64().unwrap() as u32;
        let g = MixtureGenerator::absorbing(v, mask).unwrap();
        let (st, ss) = (num(&exp["sigma_t"]), num(&exp["sigma_s"]));
        let mut ws = RateWorkspace::new(v).unwrap();
        let mut law = vec![0.0; v];
        tweedie_law_from_x0(&g, st, ss, x, &p, &mut ws, &mut law).unwrap();
        assert_close(
            &format!("{name} ddpm"),
            &law,
            &vec1(&exp["ddpm_probs"]),
            tol(c),
        );
        assert_close(
            &format!("{name} analytic"),
            &law,
            &vec1(&exp["analytic_probs"]),
            tol(c),
        );
        n += 1;
    }
    assert!(n >= 4);
}

/// A generator frozen at tauLDR's matrices: `Q = rate`, `exp(sQ) = qt0` for every `s`
/// (the anchor's clamped transition), so the crate's conversions see exactly its inputs.
#[derive(Debug)]
struct Frozen {
    rate: Vec<Vec<f64>>,
    qt0: Vec<Vec<f64>>,
}

impl RateGenerator for Frozen {
    fn vocab_size(&self) -> usize {
        self.rate.len()
    }
    fn rate_row(&self, x: u32, out: &mut [f64]) -> discrete_diffusion::Result<()> {
        out.copy_from_slice(&self.rate[x as usize]);
        Ok(())
    }
    fn transition_row(&self, x: u32, _s: f64, out: &mut [f64]) -> discrete_diffusion::Result<()> {
        out.copy_from_slice(&self.qt0[x as usize]);
        Ok(())
    }
}

#[test]
fn tauldr_tau_leaping_and_corrector() {
    let f = load_anchor("tauldr");
    let mut n = 0;
    for c in cases(&f, "tau_leaping_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let exp = &c["expected"];
        let x = inp["x"].as_u64().unwrap() as u32;
        let h = num(&inp["h"]);
        let p0t = vec1(&inp["p0t"]);
        let g = Frozen {
            rate: vec2(&inp["rate_used"]),
            qt0: vec2(&inp["qt0_used"]),
        };
        let v = g.vocab_size();
        let mut ws = RateWorkspace::new(v).unwrap();
        let mut rates = vec![0.0; v];
        reverse_rates_from_x0(&g, 1.0, 1.0, x, &p0t, &mut ws, &mut rates).unwrap();
        let mut off = rates.clone();
        off[x as usize] = 0.0;
        let want = vec1(&exp["reverse_rates"]);
        // The anchor divides by q(x | x0) + eps_ratio; the crate by q(x | x0) exactly. That
        // shifts the ratio by a relative ≤ eps_ratio / min q(x | x0), added to the tolerance.
        let eps = num(&inp["eps_ratio"]);
        let qmin = g
            .qt0
            .iter()
            .map(|r| r[x as usize])
            .fold(f64::INFINITY, f64::min);
        let (a, r) = tol(c);
        let t_rates = (a, r + 2.0 * eps / qmin);
        assert_close(name, &off, &want, t_rates);
        let mut law = vec![0.0; v];
        let tail = tau_leaping_law(&want, x, h, TauLeapMode::Ordinal, &mut law).unwrap();
        assert!(tail < 1e-13);
        assert_close(
            &format!("{name} law"),
            &law,
            &vec1(&exp["next_state_probs"]),
            tol(c),
        );
        // Corrector at t − h: forward + reverse rates, step multiplier·h.
        let gc = Frozen {
            rate: vec2(&inp["rate_corrector"]),
            qt0: vec2(&inp["qt0_corrector"]),
        };
        reverse_rates_from_x0(&gc, 1.0, 1.0, x, &p0t, &mut ws, &mut rates).unwrap();
        let (mut corr, mut scratch) = (vec![0.0; v], vec![0.0; v]);
        corrector_rates(&gc, 1.0, x, &rates, &mut scratch, &mut corr).unwrap();
        let mut off = corr.clone();
        off[x as usize] = 0.0;
        let want = vec1(&exp["corrector_rates"]);
        let qmin = gc
            .qt0
            .iter()
            .map(|r| r[x as usize])
            .fold(f64::INFINITY, f64::min);
        assert_close(
            &format!("{name} corrector"),
            &off,
            &want,
            (a, r + 2.0 * eps / qmin),
        );
        let m = num(&inp["corrector_step_size_multiplier"]);
        tau_leaping_law(&want, x, m * h, TauLeapMode::Ordinal, &mut law).unwrap();
        assert_close(
            &format!("{name} corrector law"),
            &law,
            &vec1(&exp["corrector_next_state_probs"]),
            tol(c),
        );
        n += 1;
    }
    assert!(n >= 11);
}

#[test]
fn tauldr_exact_time_reversal_uniform() {
    let f = load_anchor("tauldr");
    let mut n = 0;
    for c in cases(&f, "exact_time_reversal_uniform") {
        let inp = &c["inputs"];
        let v = inp["S"].as_u64().unwrap() as usize;
        let rc = num(&inp["params"]["rate_const"]);
        let t = num(&inp["t"]);
        let pd = vec1(&inp["p_data"]);
        // tauLDR uniform: R = rate_const·(11ᵀ − S·I) = S·rate_const·(11ᵀ/S − I).
        let g = MixtureGenerator::uniform(v).unwrap();
        let sigma = v as f64 * rc;
        let mut pt = vec![0.0; v];
        g.transition_vecmat(&pd, sigma * t, &mut pt).unwrap();
        assert_close("p_t", &pt, &vec1(&c["expected"]["p_t"]), tol(c));
        let want = vec2(&c["expected"]["reverse_rate_matrix"]);
        let mut ws = RateWorkspace::new(v).unwrap();
        let mut row = vec![0.0; v];
        for x in 0..v {
            let ratio: Vec<f64> = pt.iter().map(|&p| p / pt[x]).collect();
            reverse_rates_from_score(&g, sigma, x as u32, &ratio, &mut ws, &mut row).unwrap();
            row[x] = 0.0;
            assert_close("reverse_rate_matrix", &row, &want[x], tol(c));
        }
        n += 1;
    }
    assert_eq!(n, 1);
}
