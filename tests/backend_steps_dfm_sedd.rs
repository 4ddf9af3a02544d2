//! Behaviour tests of the DFM Euler-jump and SEDD analytic absorbing steps: laws against the
//! anchors, DFM ≡ MDLM and SEDD (exact scores) ≡ MDLM identities, bad input.

mod common;
mod steps_common;

use common::{cases, load_anchor, num, vec1, vec2};
use discrete_diffusion::Error;
use discrete_diffusion::backend::steps::{
    DfmEulerStep, JumpRule, MdlmStep, SeddAbsorbingStep, StepRng, dfm_euler_step,
    dfm_jump_probability, mdlm_ancestral_step, mdlm_stay_probability,
    sedd_absorbing_stay_probability, sedd_analytic_absorbing_step,
};
use discrete_diffusion::schedule::{FlowPolynomial, Geometric, Kappa, Linear, LogLinear, Schedule};
use ndarray::{Array2, Array3, s};
use serde_json::Value;
use steps_common::*;

// ---------------------------------------------------------------------------------------
// DFM Euler step
// ---------------------------------------------------------------------------------------

fn fm_kappa(c: &Value) -> Kappa<Box<dyn Schedule>> {
    match c["inputs"]["scheduler"].as_str().unwrap() {
        "condot" => Kappa::convex(Box::new(Linear::new())),
        "polynomial" => Kappa::convex(Box::new(
            FlowPolynomial::new(num(&c["inputs"]["n"])).unwrap(),
        )),
        other => panic!("scheduler {other}"),
    }
}

#[test]
fn dfm_step_matches_flow_matching_solver_law() {
    // With div_free = 0 the solver's step is the masked-path step for x_t = the mask
    // (source point mass), X1 drawn from the full p_{1|t}.
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "euler_step_") {
        if num(&c["inputs"]["div_free"]) != 0.0 {
            continue;
        }
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let kappa = fm_kappa(c);
        let (s, h) = (num(&inp["t"]), num(&inp["h"]));
        let mask = num(&inp["x_t"]) as u32;
        let p1 = vec1(&inp["p_1t"]);
        let want = vec1(&c["expected"]["probs"]);
        let pj = dfm_jump_probability(&kappa, s, s + h, JumpRule::Exponential).unwrap();
        let other = (0..p1.len()).find(|&y| y as u32 != mask).unwrap();
        let pg = vec2(&c["expected"]["probs_given_x1"]);
        assert!(
            (pj - pg[other][other]).abs() < 1e-12,
            "{name}: jump probability"
        );
        let row: Vec<f64> = p1.iter().map(|p| p.ln()).collect();
        let (b, l) = (2, 8000);
        let logits = tiled(&row, b, l);
        let mut tokens = Array2::from_elem((b, l), mask);
        let st = streams(b);
        let rng = StepRng {
            seed: 21,
            streams: &st,
            step: 5,
        };
        let params = DfmEulerStep {
            mask_id: mask,
            s,
            s_next: s + h,
            rule: JumpRule::Exponential,
            final_step: false,
            exclude_mask: false,
        };
        dfm_euler_step(&BK, &kappa, logits.view(), tokens.view_mut(), &params, &rng).unwrap();
        assert_chi2(name, &histogram(&tokens, p1.len()), &want);
        n += 1;
    }
    assert!(n >= 4);
}

#[test]
fn dfm_integrated_step_is_the_mdlm_step() {
    let sch = LogLinear::new(1e-3).unwrap();
    let kappa = Kappa::convex(sch);
    let (b, l, v) = (2, 3000, 5);
    let mask = 1u32;
    let row = [0.2, 0.0, -0.5, 1.0, 0.4];
    let logits = tiled(&row, b, l);
    let st = streams(b);
    let rng = StepRng {
        seed: 77,
        streams: &st,
        step: 12,
    };
    for (s, s_next) in [(0.25, 0.5), (0.5, 0.75), (0.0, 0.125)] {
        // The same law ...
        let stay_mdlm = mdlm_stay_probability(&sch, 1.0 - s, 1.0 - s_next).unwrap();
        let jump = dfm_jump_probability(&kappa, s, s_next, JumpRule::Integrated).unwrap();
        assert!((stay_mdlm + jump - 1.0).abs() < 1e-12);
        // ... and the same tokens from the same random numbers.
        let mut t_dfm = Array2::from_elem((b, l), mask);
        let p = DfmEulerStep {
            mask_id: mask,
            s,
            s_next,
            rule: JumpRule::Integrated,
            final_step: false,
            exclude_mask: true,
        };
        dfm_euler_step(&BK, &kappa, logits.view(), t_dfm.view_mut(), &p, &rng).unwrap();
        let mut t_mdlm = Array2::from_elem((b, l), mask);
        let m = MdlmStep {
            mask_id: mask,
            t: 1.0 - s,
            s: 1.0 - s_next,
        };
        mdlm_ancestral_step(&BK, &sch, logits.view(), t_mdlm.view_mut(), &m, &rng).unwrap();
        assert_eq!(t_dfm, t_mdlm);
        let mut law: Vec<f64> = softmax(&[0.2, f64::NEG_INFINITY, -0.5, 1.0, 0.4])
            .iter()
            .map(|p| p * jump)
            .collect();
        law[mask as usize] = 1.0 - jump;
        assert_chi2("dfm integrated", &histogram(&t_dfm, v), &law);
    }
}

#[test]
fn dfm_rules_final_step_and_errors() {
    let kappa = Kappa::convex(Linear::new());
    // κ(s) = s, κ̇ = 1: λ(s) = 1/(1 − s).
    let (s, h) = (0.5, 0.25);
    let lam = 1.0 / (1.0 - s);
    let e = dfm_jump_probability(&kappa, s, s + h, JumpRule::Exponential).unwrap();
    assert!((e - (1.0 - (-h * lam).exp())).abs() < 1e-15);
    let eu = dfm_jump_probability(&kappa, s, s + h, JumpRule::Euler).unwrap();
    assert!((eu - h * lam).abs() < 1e-15);
    assert_eq!(
        dfm_jump_probability(&kappa, 0.5, 1.0, JumpRule::Euler).unwrap(),
        1.0
    );
    let ex = dfm_jump_probability(&kappa, s, s + h, JumpRule::Integrated).unwrap();
    assert!((ex - h / (1.0 - s)).abs() < 1e-15);
    assert!(dfm_jump_probability(&kappa, 0.5, 0.5, JumpRule::Euler).is_err());
    assert!(dfm_jump_probability(&kappa, 0.5, 1.5, JumpRule::Euler).is_err());
    assert!(dfm_jump_probability(&kappa, 1.0, 1.0, JumpRule::Euler).is_err());
    // κ(s) = 1 before the end: no masked token can exist.
    let flat = Kappa::convex(FlowPolynomial::new(1e-300).unwrap()); // κ(0.5) rounds to 1
    assert!(matches!(
        dfm_jump_probability(&flat, 0.5, 0.75, JumpRule::Integrated),
        Err(Error::ZeroProbability { .. })
    ));
    // The final step jumps every masked position; unmasked ones are carried over.
    let (b, l, v) = (2, 50, 4);
    let mask = 3u32;
    let logits = Array3::from_shape_fn((b, l, v), |(_, i, k)| (k as f32) * 0.1 + (i % 3) as f32);
    let tokens0 = Array2::from_shape_fn((b, l), |(_, i)| if i % 5 == 0 { 0 } else { mask });
    let st = streams(b);
    let rng = StepRng {
        seed: 1,
        streams: &st,
        step: 0,
    };
    let p = DfmEulerStep {
        mask_id: mask,
        s: 0.1,
        s_next: 0.2,
        rule: JumpRule::Exponential,
        final_step: true,
        exclude_mask: true,
    };
    let mut t = tokens0.clone();
    let out = dfm_euler_step(&BK, &kappa, logits.view(), t.view_mut(), &p, &rng).unwrap();
    assert_eq!(out.commits.len(), b * l - b * 10);
    assert!(t.iter().all(|&x| x != mask));
    for ((bi, i), &x) in tokens0.indexed_iter() {
        if x != mask {
            assert_eq!(t[[bi, i]], x);
        }
    }
    let bad = DfmEulerStep { s_next: 0.05, ..p };
    let mut t = tokens0.clone();
    assert!(dfm_euler_step(&BK, &kappa, logits.view(), t.view_mut(), &bad, &rng).is_err());
    let bad = DfmEulerStep { mask_id: 4, ..p };
    assert!(dfm_euler_step(&BK, &kappa, logits.view(), t.view_mut(), &bad, &rng).is_err());
    assert_eq!(t, tokens0);
}

// ---------------------------------------------------------------------------------------
// SEDD analytic absorbing step
// ---------------------------------------------------------------------------------------

fn sedd_schedule(c: &Value) -> Box<dyn Schedule> {
    let inp = &c["inputs"];
    let p = &inp["noise_params"];
    match inp["noise"].as_str().unwrap() {
        "loglinear" => Box::new(LogLinear::new(num(&p["eps"])).unwrap()),
        "geometric" => {
            Box::new(Geometric::new(num(&p["sigma_min"]), num(&p["sigma_max"])).unwrap())
        }
        other => panic!("noise {other}"),
    }
}

/// Run the SEDD step on `row` (scores over [tokens…, mask] as the anchor orders them, mask
/// last), with the vocabulary rotated by `shift` so the mask sits at index
/// `(N + shift) mod V`; returns the law histogram in the anchor's order.
fn sedd_histogram(
    sch: &dyn Schedule,
    scores: &[f64],
    x: u32,
    t: f64,
    s: f64,
    shift: usize,
    seed: u64,
) -> Vec<u64> {
    let v = scores.len();
    let rot = |k: usize| (k + shift) % v;
    let mut row = vec![0.0; v];
    for (k, &r) in scores.iter().enumerate() {
        row[rot(k)] = r.ln();
    }
    let (b, l) = (2, 8000);
    let logits = tiled(&row, b, l);
    let mut tokens = Array2::from_elem((b, l), rot(x as usize) as u32);
    let st = streams(b);
    let rng = StepRng {
        seed,
        streams: &st,
        step: 0,
    };
    let p = SeddAbsorbingStep {
        mask_id: rot(v - 1) as u32,
        t,
        s,
    };
    sedd_analytic_absorbing_step(&BK, sch, logits.view(), tokens.view_mut(), &p, &rng).unwrap();
    let h = histogram(&tokens, v);
    (0..v).map(|k| h[rot(k)]).collect()
}

#[test]
fn sedd_analytic_step_matches_anchor_laws() {
    let file = load_anchor("sedd");
    let mut n = 0;
    for c in cases(&file, "predictors_absorb_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let sch = sedd_schedule(c);
        let (t, dt) = (num(&inp["t"]), num(&inp["step_size"]));
        let scores = vec1(&inp["score"]);
        let x = num(&inp["x"]) as u32;
        let v = scores.len();
        let want = vec1(&c["expected"]["analytic_probs"]);
        let ds = sch.total_noise(t).unwrap() - sch.total_noise(t - dt).unwrap();
        assert!(
            (ds - num(&c["expected"]["analytic_dsigma"])).abs() < 1e-9,
            "{name}: Δσ"
        );
        if x as usize == v - 1 {
            let mass = scores[..v - 1].iter().sum::<f64>().ln();
            let stay = sedd_absorbing_stay_probability(ds, mass).unwrap();
            assert!((stay - want[v - 1]).abs() < 1e-9, "{name}: stay {stay}");
        }
        for shift in [0, 2] {
            let h = sedd_histogram(&*sch, &scores, x, t, t - dt, shift, 31 + shift as u64);
            if x as usize != v - 1 {
                assert_eq!(h[x as usize], h.iter().sum::<u64>(), "{name}: carry-over");
            } else if want[v - 1] > 0.0 {
                assert_chi2(name, &h, &want);
            } else {
                // The mask mass is negative before the clamp: every masked position unmasks.
                assert_eq!(h[v - 1], 0, "{name}: mask mass clamped to 0");
                assert_chi2(name, &h[..v - 1], &want[..v - 1]);
            }
        }
        n += 1;
    }
    assert!(n >= 8);
    for c in cases(&file, "analytic_exact_score_absorb_") {
        let inp = &c["inputs"];
        let sch = sedd_schedule(c);
        let (t, dt) = (num(&inp["t"]), num(&inp["step_size"]));
        let scores = vec1(&c["expected"]["true_score"]);
        let x = num(&inp["x"]) as usize;
        let v = scores.len();
        let want = vec1(&c["expected"]["probs"]);
        if x == v - 1 {
            let ds = sch.total_noise(t).unwrap() - sch.total_noise(t - dt).unwrap();
            let mass = scores[..v - 1].iter().sum::<f64>().ln();
            let stay = sedd_absorbing_stay_probability(ds, mass).unwrap();
            assert!((stay - want[v - 1]).abs() < 1e-9);
            // The exact score gives the MDLM stay probability.
            let mdlm = mdlm_stay_probability(&*sch, t, t - dt).unwrap();
            assert!((stay - mdlm).abs() < 1e-9);
            let h = sedd_histogram(&*sch, &scores, x as u32, t, t - dt, 1, 5);
            let law: Vec<f64> = want.iter().map(|&p| p.max(0.0)).collect();
            assert_chi2(c["name"].as_str().unwrap(), &h, &law);
        }
    }
}

#[test]
fn sedd_stay_probability_edges_and_errors() {
    assert_eq!(sedd_absorbing_stay_probability(0.0, 3.0).unwrap(), 1.0);
    assert_eq!(
        sedd_absorbing_stay_probability(f64::INFINITY, -3.0).unwrap(),
        0.0
    );
    assert_eq!(sedd_absorbing_stay_probability(2.0, 5.0).unwrap(), 0.0);
    let small = sedd_absorbing_stay_probability(1e-12, 0.0).unwrap();
    assert!((1.0 - small - 1e-12).abs() < 2e-16);
    assert!(sedd_absorbing_stay_probability(-1.0, 0.0).is_err());
    assert!(sedd_absorbing_stay_probability(f64::NAN, 0.0).is_err());
    assert!(sedd_absorbing_stay_probability(1.0, f64::INFINITY).is_err());
    let sch = LogLinear::new(1e-3).unwrap();
    let logits = Array3::<f32>::zeros((1, 3, 4));
    let st = streams(1);
    let rng = StepRng {
        seed: 0,
        streams: &st,
        step: 0,
    };
    let mut t = Array2::from_elem((1, 3), 3u32);
    for (tt, ss) in [(0.5, 0.5), (0.5, 0.6), (1.2, 0.5)] {
        let p = SeddAbsorbingStep {
            mask_id: 3,
            t: tt,
            s: ss,
        };
        assert!(
            sedd_analytic_absorbing_step(&BK, &sch, logits.view(), t.view_mut(), &p, &rng).is_err()
        );
    }
    // Unmasked rows are not read: NaN there is fine.
    let mut nan = Array3::<f32>::zeros((1, 3, 4));
    nan.slice_mut(s![0, 1, ..]).fill(f32::NAN);
    let mut t = Array2::from_shape_vec((1, 3), vec![3u32, 0, 3]).unwrap();
    let p = SeddAbsorbingStep {
        mask_id: 3,
        t: 0.5,
        s: 0.0,
    };
    let out = sedd_analytic_absorbing_step(&BK, &sch, nan.view(), t.view_mut(), &p, &rng).unwrap();
    assert_eq!(out.rows_read(), 2);
    assert_eq!(t[[0, 1]], 0);
}
