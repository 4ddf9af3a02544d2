//! Parameterisations: RADD conditional ↔ score, SEDD log-score head, x0 ↔ score conversions
//! (round trips and SEDD's exact-score cases), bad inputs.
#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the formulas

mod common;

use common::*;
use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator, RateGenerator};
use discrete_diffusion::param::radd::{
    conditional_from_score, radd_factor, score_from_conditional,
};
use discrete_diffusion::param::score::{
    log_score_from_x0, sedd_absorbing_log_score, x0_from_score,
};
use discrete_diffusion::schedule::{Geometric, LogLinear, Schedule};

#[test]
fn radd_score_from_conditional_cases() {
    let f = load_anchor("radd");
    let mut n = 0;
    for case in cases(&f, "score_from_conditional_") {
        let tl = tol(case);
        let mut c = vec1(&case["inputs"]["c"]);
        let nt = c.len();
        c.push(0.0); // mask = N, entry ignored
        let s = num(&case["inputs"]["sigma"]);
        let mut out = vec![0.0; nt + 1];
        score_from_conditional(&c, nt as u32, s, &mut out).unwrap();
        assert_close("score", &out, &vec1(&case["expected"]["score"]), tl);
        assert_close1(
            "factor",
            radd_factor(s).unwrap(),
            num(&case["expected"]["factor"]),
            tl,
        );
        let mut back = vec![0.0; nt + 1];
        conditional_from_score(&out, nt as u32, s, &mut back).unwrap();
        assert_close("inverse", &back, &c, (1e-15, 1e-13));
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn sedd_exact_scores_and_inversion() {
    let f = load_anchor("sedd");
    let mut n = 0;
    for case in cases(&f, "analytic_exact_score_") {
        let tl = tol(case);
        let inp = &case["inputs"];
        let nt = inp["n_tokens"].as_u64().unwrap() as usize;
        let absorbing = inp["graph"] == "absorb";
        let g = if absorbing {
            MixtureGenerator::absorbing(nt + 1, nt as u32).unwrap()
        } else {
            MixtureGenerator::uniform(nt).unwrap()
        };
        let np = &inp["noise_params"];
        let sch: Box<dyn Schedule> = match inp["noise"].as_str().unwrap() {
            "geometric" => {
                Box::new(Geometric::new(num(&np["sigma_min"]), num(&np["sigma_max"])).unwrap())
            }
            _ => Box::new(LogLinear::new(num(&np["eps"])).unwrap()),
        };
        let ctmc = Ctmc::new(&g, &*sch);
        let v = g.vocab_size();
        let (t, x) = (num(&inp["t"]), inp["x"].as_u64().unwrap() as u32);
        let s = ctmc.total_noise(t).unwrap();
        let p0 = vec1(&inp["p0"]);
        let want = vec1(&case["expected"]["true_score"]);
        // Exact marginal ratios.
        let mut ps = vec![0.0; v];
        ctmc.marginal_vecmat(&p0, t, &mut ps).unwrap();
        let ratio: Vec<f64> = ps.iter().map(|p| p / ps[x as usize]).collect();
        assert_close("true_score", &ratio, &want, tl);
        // Through the x0 posterior (Bayes) and log_score_from_x0, where Q[y, x] > 0.
        let mut col = vec![0.0; v];
        g.transition_col(x, s, &mut col).unwrap();
        let post: Vec<f64> = (0..v).map(|k| p0[k] * col[k] / ps[x as usize]).collect();
        let logits: Vec<f64> = post
            .iter()
            .map(|p| if *p > 0.0 { p.ln() } else { -800.0 })
            .collect();
        let (mut scratch, mut ls) = (vec![0.0; 2 * v], vec![0.0; v]);
        log_score_from_x0(&g, s, x, &logits, &mut scratch, &mut ls).unwrap();
        let mut qcol = vec![0.0; v];
        g.rate_col(x, &mut qcol).unwrap();
        for y in 0..v {
            if qcol[y] > 0.0 {
                assert!(close(ls[y].exp(), want[y], tl), "{} y={y}", case["name"]);
            }
        }
        // Inverse: ratios → posterior.
        let mut back = vec![0.0; v];
        x0_from_score(&g, s, x, &ratio, &mut back).unwrap();
        assert_close("x0_from_score", &back, &post, (1e-12, 1e-9));
        n += 1;
    }
    assert!(n >= 8);
}

#[test]
fn x0_score_round_trips_for_every_mixture() {
    let gens = [
        (MixtureGenerator::uniform(5).unwrap(), 3u32),
        (MixtureGenerator::absorbing(5, 0).unwrap(), 0),
        (
            MixtureGenerator::marginal(vec![0.1, 0.2, 0.3, 0.15, 0.25]).unwrap(),
            1,
        ),
    ];
    let p = [0.0, 0.1, 0.4, 0.3, 0.2];
    for (g, x) in &gens {
        for &s in &[0.05, 0.7, 3.0] {
            let logits: Vec<f64> = p
                .iter()
                .map(|q: &f64| if *q > 0.0 { q.ln() } else { -800.0 })
                .collect();
            let (mut scratch, mut ls) = ([0.0; 10], [0.0; 5]);
            log_score_from_x0(g, s, *x, &logits, &mut scratch, &mut ls).unwrap();
            let ratio: Vec<f64> = ls.iter().map(|l| l.exp()).collect();
            let mut back = [0.0; 5];
            x0_from_score(g, s, *x, &ratio, &mut back).unwrap();
            // The recovered posterior reproduces the ratios.
            let bl: Vec<f64> = back
                .iter()
                .map(|q| if *q > 0.0 { q.ln() } else { -800.0 })
                .collect();
            let mut ls2 = [0.0; 5];
            log_score_from_x0(g, s, *x, &bl, &mut scratch, &mut ls2).unwrap();
            for y in 0..5 {
                assert!(
                    (ls[y].exp() - ls2[y].exp()).abs() < 1e-10 * (1.0 + ls[y].exp()),
                    "{g:?} s={s} y={y}"
                );
            }
            if g.pi()[*x as usize] > 0.0 && *x == 0 {
                // absorbing at the mask: RADD's identity p(y) = ratio_y (e^s − 1).
                for y in 1..5 {
                    assert!((back[y] - ratio[y] * s.exp_m1()).abs() < 1e-12);
                }
            }
        }
    }
}

#[test]
fn sedd_absorbing_head() {
    let raw = [0.3f32, -1.0, 2.0, 0.5, 0.0];
    let mut out = [0.0f32; 5];
    let s = 0.3f64;
    sedd_absorbing_log_score(&raw, 4, s, &mut out).unwrap();
    let shift = s.exp_m1().ln() + 4f64.ln();
    for y in 0..4 {
        assert!((out[y] as f64 - (raw[y] as f64 - shift)).abs() < 1e-6);
    }
    assert_eq!(out[4], 0.0);
}

#[test]
fn bad_inputs_are_errors() {
    let mut out = [0.0; 3];
    assert!(radd_factor(0.0).is_err());
    assert!(radd_factor(f64::NAN).is_err());
    assert_eq!(radd_factor(f64::INFINITY).unwrap(), 0.0);
    assert!(score_from_conditional(&[0.5, 0.5, 0.0], 3, 1.0, &mut out).is_err());
    assert!(score_from_conditional(&[0.5, -0.5, 0.0], 2, 1.0, &mut out).is_err());
    assert!(score_from_conditional(&[0.5, 0.5, 0.0], 2, 1.0, &mut [0.0; 2]).is_err());
    assert!(score_from_conditional(&[1.0], 0, 1.0, &mut [0.0; 1]).is_err());
    assert!(conditional_from_score(&[1.0, 1.0, 1.0], 2, f64::INFINITY, &mut out).is_err());
    assert!(conditional_from_score(&[1.0, f64::NAN, 1.0], 2, 1.0, &mut out).is_err());
    assert!(sedd_absorbing_log_score(&[0.0f32; 3], 3, 1.0, &mut [0.0; 3]).is_err());
    assert!(sedd_absorbing_log_score(&[0.0f32; 3], 0, 0.0, &mut [0.0; 3]).is_err());
    assert!(sedd_absorbing_log_score(&[f32::NAN; 3], 0, 1.0, &mut [0.0; 3]).is_err());
    assert!(sedd_absorbing_log_score(&[0.0f32; 3], 0, 1.0, &mut [0.0; 2]).is_err());
    let g = MixtureGenerator::uniform(3).unwrap();
    let mut scratch = [0.0; 6];
    assert!(log_score_from_x0(&g, 1.0, 0, &[0.0; 2], &mut scratch, &mut out).is_err());
    assert!(log_score_from_x0(&g, 1.0, 3, &[0.0; 3], &mut scratch, &mut out).is_err());
    assert!(log_score_from_x0(&g, 1.0, 0, &[0.0; 3], &mut [0.0; 3], &mut out).is_err());
    assert!(log_score_from_x0(&g, -1.0, 0, &[0.0; 3], &mut scratch, &mut out).is_err());
    assert!(log_score_from_x0(&g, 1.0, 0, &[f64::NAN; 3], &mut scratch, &mut out).is_err());
    assert!(x0_from_score(&g, 0.0, 0, &[1.0; 3], &mut out).is_err());
    assert!(x0_from_score(&g, f64::INFINITY, 0, &[1.0; 3], &mut out).is_err());
    assert!(x0_from_score(&g, 1.0, 3, &[1.0; 3], &mut out).is_err());
    assert!(x0_from_score(&g, 1.0, 0, &[1.0, -1.0, 1.0], &mut out).is_err());
    assert!(x0_from_score(&g, 1.0, 0, &[1.0; 2], &mut out).is_err());
    // Inconsistent ratios are clamped and renormalised, not rejected.
    assert!(x0_from_score(&g, 1.0, 0, &[1.0, 0.0, 0.0], &mut out).is_ok());
    assert!(x0_from_score(&g, 30.0, 0, &[1.0, 0.0, 1e6], &mut out).is_ok());
}
