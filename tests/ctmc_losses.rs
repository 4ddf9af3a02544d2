//! CTMC losses: SEDD / RADD / tauLDR conformance, score entropy ≥ 0 with equality at the
//! truth (proptest), finite-difference gradients for every loss, bad inputs.
#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the formulas

mod common;

use common::*;
use discrete_diffusion::kernel::ctmc::ordinal::{ExponentialRate, birth_death, gaussian_target};
use discrete_diffusion::kernel::ctmc::{Ctmc, MixtureGenerator, RateGenerator};
use discrete_diffusion::loss::ctmc::ct_elbo::ct_elbo_given_tilde;
use discrete_diffusion::loss::ctmc::radd::{DceForm, k_dce, lambda_dce, t_dce, t_dse};
use discrete_diffusion::loss::ctmc::ratio_matching::categorical_ratio_matching;
use discrete_diffusion::loss::ctmc::score_entropy::{
    CtmcLossWorkspace, concrete_score_matching, dwdse, score_entropy,
};
use discrete_diffusion::schedule::{Geometric, LinearTotalNoise, LogLinear, Schedule};
use proptest::prelude::*;

fn sedd_graph(case: &serde_json::Value) -> MixtureGenerator {
    let inp = &case["inputs"];
    let nt = inp["n_tokens"].as_u64().unwrap() as usize;
    match inp["graph"].as_str().unwrap() {
        "uniform" => MixtureGenerator::uniform(nt).unwrap(),
        _ => MixtureGenerator::absorbing(nt + 1, nt as u32).unwrap(),
    }
}

#[test]
fn sedd_score_entropy_cases() {
    let f = load_anchor("sedd");
    let mut n = 0;
    for case in cases(&f, "score_entropy_") {
        let tl = tol(case);
        let g = sedd_graph(case);
        let v = g.vocab_size();
        let inp = &case["inputs"];
        let (x, x0) = (
            inp["x"].as_u64().unwrap() as u32,
            inp["x0"].as_u64().unwrap() as u32,
        );
        let s = num(&inp["sigma"]);
        let mut ws = CtmcLossWorkspace::new(v);
        let ls = vec1(&inp["log_score"]);
        let got = score_entropy(&g, s, x, x0, &ls, &mut ws, None).unwrap();
        assert_close1(
            case["name"].as_str().unwrap(),
            got,
            num(&case["expected"]["score_entropy"]),
            tl,
        );
        // At the exact conditional ratios the entropy vanishes.
        let truth = vec1(&case["expected"]["true_conditional_score"]);
        let lt: Vec<f64> = truth
            .iter()
            .map(|&r| if r > 0.0 { r.ln() } else { -800.0 })
            .collect();
        let at = score_entropy(&g, s, x, x0, &lt, &mut ws, None).unwrap();
        assert!(at.abs() < 1e-12, "{}: {at}", case["name"]);
        // The exact ratios themselves.
        let mut row = vec![0.0; v];
        g.transition_row(x0, s, &mut row).unwrap();
        let r: Vec<f64> = row.iter().map(|q| q / row[x as usize]).collect();
        let mut qcol = vec![0.0; v];
        g.rate_col(x, &mut qcol).unwrap();
        for y in 0..v {
            if qcol[y] > 0.0 || y == x as usize {
                assert!(close(r[y], truth[y], tl), "{} ratio {y}", case["name"]);
            }
        }
        n += 1;
    }
    assert!(n >= 20);
}

#[test]
fn sedd_sequence_loss_cases() {
    let f = load_anchor("sedd");
    for case in cases(&f, "loss_absorb_seq_") {
        let tl = tol(case);
        let g = sedd_graph(case);
        let v = g.vocab_size();
        let inp = &case["inputs"];
        let ctmc = Ctmc::new(g, LogLinear::new(num(&inp["eps"])).unwrap());
        let t = num(&inp["t"]);
        let exp = &case["expected"];
        assert_close1(
            "sigma",
            ctmc.total_noise(t).unwrap(),
            num(&exp["sigma"]),
            tl,
        );
        assert_close1(
            "dsigma",
            ctmc.noise_rate(t).unwrap(),
            num(&exp["dsigma"]),
            tl,
        );
        let to_u32 = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let (x0, xt) = (to_u32(&inp["x0"]), to_u32(&inp["x_t"]));
        let ls: Vec<f64> = vec2(&inp["log_score"]).concat();
        let mut per = vec![0.0; x0.len()];
        let mut ws = CtmcLossWorkspace::new(v);
        let loss = dwdse(&ctmc, t, &x0, &xt, &ls, &mut ws, Some(&mut per), None).unwrap();
        assert_close(
            "per_token",
            &per,
            &vec1(&exp["per_token_score_entropy"]),
            tl,
        );
        assert_close1("loss", loss, num(&exp["loss"]), tl);
    }
}

fn pad_mask(rows: &[Vec<f64>], mask: usize) -> Vec<f64> {
    rows.iter()
        .flat_map(|r| {
            let mut r = r.clone();
            r.insert(mask, 0.0);
            r
        })
        .collect()
}

#[test]
fn radd_loss_cases() {
    let f = load_anchor("radd");
    // Per-token values before the σ(t) weight: σ̄ = 10 t and σ = 10 under LinearTotalNoise(0, 10).
    let lin = LinearTotalNoise::new(0.0, 10.0).unwrap();
    let mut n = 0;
    for case in cases(&f, "losses_token_") {
        let tl = tol(case);
        let inp = &case["inputs"];
        let c = vec1(&inp["c"]);
        let nt = c.len();
        let log_c = pad_mask(&[c.iter().map(|x| x.ln()).collect()], nt);
        let x0 = [inp["x0"].as_u64().unwrap() as u32];
        let xt = [nt as u32];
        let t = num(&inp["sigma"]) / 10.0;
        let exp = &case["expected"];
        let dse = t_dse(&lin, t, nt as u32, &x0, &xt, &log_c, None).unwrap() / 10.0;
        assert_close1("t_DSE", dse, num(&exp["t_DSE_token"]), tl);
        let paper = t_dce(&lin, t, nt as u32, &x0, &xt, &log_c, DceForm::Paper, None).unwrap();
        assert_close1(
            "t_DCE paper",
            paper / 10.0,
            num(&exp["t_DCE_token_paper"]),
            tl,
        );
        let code = t_dce(&lin, t, nt as u32, &x0, &xt, &log_c, DceForm::Code, None).unwrap();
        assert_close1("t_DCE code", code / 10.0, num(&exp["t_DCE_token_code"]), tl);
        n += 1;
    }
    assert!(n >= 5);
    for case in cases(&f, "t_losses_seq_") {
        let tl = tol(case);
        let inp = &case["inputs"];
        let mask = inp["mask_index"].as_u64().unwrap() as u32;
        let to_u32 = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let (x0, xt) = (to_u32(&inp["x0"]), to_u32(&inp["x_t"]));
        let log_c = pad_mask(&vec2(&inp["log_c"]), mask as usize);
        let sch = LogLinear::new(num(&inp["eps"])).unwrap();
        let t = num(&inp["t"]);
        let exp = &case["expected"];
        let dse = t_dse(&sch, t, mask, &x0, &xt, &log_c, None).unwrap();
        assert_close1("t_DSE", dse, num(&exp["t_DSE"]), tl);
        let code = t_dce(&sch, t, mask, &x0, &xt, &log_c, DceForm::Code, None).unwrap();
        assert_close1("t_DCE code", code, num(&exp["t_DCE_code"]), tl);
    }
}

#[test]
fn tauldr_ct_elbo_cases() {
    let f = load_anchor("tauldr");
    let mut n = 0;
    for case in cases(&f, "generic_aux_") {
        let tl = tol(case);
        let inp = &case["inputs"];
        let s = inp["S"].as_u64().unwrap() as usize;
        let p = &inp["params"];
        let t = num(&inp["t"]);
        let to_u32 = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let (x0, xtl) = (to_u32(&inp["x0"]), to_u32(&inp["x_tilde"]));
        let logits: Vec<f64> = vec2(&inp["x_logits"]).concat();
        let (eps, w) = (num(&inp["eps_ratio"]), num(&inp["nll_weight"]));
        let terms = match inp["process"].as_str().unwrap() {
            "uniform" => {
                let c = Ctmc::new(
                    MixtureGenerator::uniform(s).unwrap(),
                    LinearTotalNoise::new(0.0, num(&p["rate_const"]) * s as f64).unwrap(),
                );
                check_process(&c, t, &inp["qt0"], &inp["rate"], tl);
                ct_elbo_given_tilde(&c, t, &x0, &xtl, &logits, eps, w, None).unwrap()
            }
            _ => {
                let c = Ctmc::new(
                    birth_death(s).unwrap(),
                    ExponentialRate::birth_death(num(&p["sigma_min"]), num(&p["sigma_max"]))
                        .unwrap(),
                );
                check_process(&c, t, &inp["qt0"], &inp["rate"], tl);
                ct_elbo_given_tilde(&c, t, &x0, &xtl, &logits, eps, w, None).unwrap()
            }
        };
        let e = &case["expected"];
        assert_close1("reg", terms.reg_term, num(&e["reg_term"]), tl);
        assert_close1("outer", terms.outer_sum_sig, num(&e["outer_sum_sig"]), tl);
        assert_close1("sig_norm", terms.sig_norm, num(&e["sig_norm"]), tl);
        assert_close1("sig_term", terms.sig_term, num(&e["sig_term"]), tl);
        assert_close1("neg_elbo", terms.neg_elbo, num(&e["neg_elbo"]), tl);
        assert_close1("nll", terms.nll, num(&e["nll"]), tl);
        assert_close1("loss", terms.loss, num(&e["loss"]), tl);
        n += 1;
    }
    assert_eq!(n, 2);
}

fn check_process<G: RateGenerator, S: Schedule>(
    c: &Ctmc<G, S>,
    t: f64,
    qt0: &serde_json::Value,
    rate: &serde_json::Value,
    tl: (f64, f64),
) {
    let v = c.vocab_size();
    let (q, r) = (vec2(qt0), vec2(rate));
    let mut row = vec![0.0; v];
    for x in 0..v {
        c.marginal_row(x as u32, t, &mut row).unwrap();
        assert_close("qt0", &row, &q[x], tl);
        c.rate_row(x as u32, t, &mut row).unwrap();
        assert_close("rate", &row, &r[x], tl);
    }
}

/// Central-difference check of an analytic gradient.
/// A loss as a function of the network outputs, with an optional gradient.
type LossFn<'a> = &'a dyn Fn(&[f64], Option<&mut [f64]>) -> f64;

fn check_grad(name: &str, x: &[f64], f: LossFn<'_>) {
    let mut g = vec![0.0; x.len()];
    let v0 = f(x, Some(&mut g));
    assert!(v0.is_finite(), "{name}: value {v0}");
    let h = 1e-6;
    for i in 0..x.len() {
        let mut a = x.to_vec();
        let mut b = x.to_vec();
        a[i] += h;
        b[i] -= h;
        let fd = (f(&a, None) - f(&b, None)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() < 1e-6 * (1.0 + fd.abs()),
            "{name}: d/dx[{i}] analytic {} vs fd {fd}",
            g[i]
        );
    }
}

fn logits(n: usize, seed: u32) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as f64 + 1.3) * (seed as f64 + 0.7) * 2.17).sin() * 1.5)
        .collect()
}

#[test]
fn gradients_match_finite_differences() {
    let gens: Vec<MixtureGenerator> = vec![
        MixtureGenerator::uniform(5).unwrap(),
        MixtureGenerator::absorbing(5, 4).unwrap(),
        MixtureGenerator::marginal(vec![0.1, 0.2, 0.3, 0.15, 0.25]).unwrap(),
    ];
    for (k, g) in gens.iter().enumerate() {
        let x = if k == 1 { 4 } else { 2 };
        let l = logits(5, k as u32);
        let mut ws = CtmcLossWorkspace::new(5);
        let ws_cell = std::cell::RefCell::new(CtmcLossWorkspace::new(5));
        check_grad("score_entropy", &l, &|z, gr| {
            score_entropy(g, 0.8, x, 1, z, &mut ws_cell.borrow_mut(), gr).unwrap()
        });
        check_grad("csm", &l, &|z, gr| {
            concrete_score_matching(g, 0.8, x, 1, z, &mut ws_cell.borrow_mut(), gr).unwrap()
        });
        check_grad("crm", &l, &|z, gr| {
            let mut scratch = vec![0.0; 10];
            categorical_ratio_matching(g, 0.8, x, z, &mut scratch, gr).unwrap()
        });
        let _ = score_entropy(g, 0.8, x, 1, &l, &mut ws, None).unwrap();
    }
    // DWDSE over a sequence.
    let ctmc = Ctmc::new(
        MixtureGenerator::uniform(4).unwrap(),
        Geometric::new(1e-3, 4.0).unwrap(),
    );
    let (x0, xt) = ([0u32, 3, 2], [1u32, 3, 0]);
    let ls = logits(12, 3);
    check_grad("dwdse", &ls, &|z, gr| {
        let mut ws = CtmcLossWorkspace::new(4);
        dwdse(&ctmc, 0.6, &x0, &xt, z, &mut ws, None, gr).unwrap()
    });
    // CT-ELBO on a Padé generator and on the uniform mixture.
    let gt = Ctmc::new(
        gaussian_target(5, 2.0, 3.0).unwrap(),
        ExponentialRate::new(0.5, 5.0).unwrap(),
    );
    let (x0, xtl) = ([0u32, 4, 2], [1u32, 4, 3]);
    let ll = logits(15, 5);
    check_grad("ct_elbo", &ll, &|z, gr| {
        ct_elbo_given_tilde(&gt, 0.4, &x0, &xtl, z, 1e-9, 0.01, gr)
            .unwrap()
            .loss
    });
    let un = Ctmc::new(
        MixtureGenerator::uniform(5).unwrap(),
        LinearTotalNoise::new(0.0, 5.0).unwrap(),
    );
    check_grad("ct_elbo uniform", &ll, &|z, gr| {
        ct_elbo_given_tilde(&un, 0.3, &x0, &xtl, z, 0.0, 0.0, gr)
            .unwrap()
            .loss
    });
    // RADD losses (mask 3 of V = 4).
    let sch = LogLinear::new(1e-3).unwrap();
    let (x0, xt) = ([0u32, 2, 1, 2], [3u32, 2, 3, 3]);
    let lc = logits(16, 9);
    check_grad("t_dse", &lc, &|z, gr| {
        t_dse(&sch, 0.4, 3, &x0, &xt, z, gr).unwrap()
    });
    for form in [DceForm::Paper, DceForm::Code] {
        check_grad("t_dce", &lc, &|z, gr| {
            t_dce(&sch, 0.4, 3, &x0, &xt, z, form, gr).unwrap()
        });
    }
    check_grad("lambda_dce", &lc, &|z, gr| {
        lambda_dce(0.6, 3, &x0, &xt, z, gr).unwrap()
    });
    check_grad("k_dce", &lc, &|z, gr| k_dce(3, &x0, &xt, z, gr).unwrap());
}

#[test]
fn radd_losses_agree_when_normalised() {
    // With a normalised conditional, t-DSE ≡ paper t-DCE; λ-DCE is t-DCE after the change of
    // variable λ = 1 − e^{−σ̄(t)} (σ r = λ'/λ); k-DCE reweights 1/λ by L/k.
    let sch = LogLinear::new(1e-3).unwrap();
    let (x0, xt) = ([0u32, 2, 1], [3u32, 2, 3]);
    let mut lc = logits(12, 4);
    for row in lc.chunks_mut(4) {
        let m = row[..3].iter().map(|x| x.exp()).sum::<f64>().ln();
        row[..3].iter_mut().for_each(|x| *x -= m);
    }
    let t = 0.37;
    let dse = t_dse(&sch, t, 3, &x0, &xt, &lc, None).unwrap();
    let dce = t_dce(&sch, t, 3, &x0, &xt, &lc, DceForm::Paper, None).unwrap();
    assert!((dse - dce).abs() < 1e-12 * dce.abs());
    let lam = sch.move_chance(t).unwrap();
    let dlam = -sch.alpha_derivative(t).unwrap();
    let ld = lambda_dce(lam, 3, &x0, &xt, &lc, None).unwrap();
    assert!((ld * dlam - dce).abs() < 1e-12 * dce.abs());
    let kd = k_dce(3, &x0, &xt, &lc, None).unwrap();
    assert!((kd - ld * lam * 3.0 / 2.0).abs() < 1e-12 * kd);
}

proptest! {
    #[test]
    fn score_entropy_nonnegative_and_zero_at_truth(
        ls in proptest::collection::vec(-6.0f64..6.0, 6),
        s in 0.01f64..8.0,
        kind in 0usize..3,
        x in 0u32..6,
        x0 in 0u32..5,
    ) {
        let g = match kind {
            0 => MixtureGenerator::uniform(6).unwrap(),
            1 => MixtureGenerator::absorbing(6, 5).unwrap(),
            _ => MixtureGenerator::marginal(vec![0.05, 0.1, 0.2, 0.3, 0.15, 0.2]).unwrap(),
        };
        let x = if kind == 1 && x != 5 { x0 } else { x };
        let mut ws = CtmcLossWorkspace::new(6);
        let v = score_entropy(&g, s, x, x0, &ls, &mut ws, None).unwrap();
        prop_assert!(v >= -1e-12, "{}", v);
        let mut row = vec![0.0; 6];
        g.transition_row(x0, s, &mut row).unwrap();
        let truth: Vec<f64> = row
            .iter()
            .map(|q| { let r = q / row[x as usize]; if r > 0.0 { r.ln() } else { -800.0 } })
            .collect();
        let z = score_entropy(&g, s, x, x0, &truth, &mut ws, None).unwrap();
        prop_assert!(z.abs() < 1e-10 * (1.0 + v.abs()), "{}", z);
        prop_assert!(v >= z - 1e-12);
        let csm = concrete_score_matching(&g, s, x, x0, &ls, &mut ws, None).unwrap();
        prop_assert!(csm >= 0.0);
    }
}

#[test]
fn bad_inputs_are_errors() {
    let g = MixtureGenerator::absorbing(4, 3).unwrap();
    let mut ws = CtmcLossWorkspace::new(4);
    let ls = [0.0f64; 4];
    assert!(score_entropy(&g, 1.0, 4, 0, &ls, &mut ws, None).is_err());
    assert!(score_entropy(&g, 1.0, 3, 4, &ls, &mut ws, None).is_err());
    assert!(score_entropy(&g, 1.0, 1, 0, &ls, &mut ws, None).is_err()); // unreachable
    assert!(score_entropy(&g, -1.0, 3, 0, &ls, &mut ws, None).is_err());
    assert!(score_entropy(&g, 1.0, 3, 0, &ls[..3], &mut ws, None).is_err());
    assert!(score_entropy(&g, 1.0, 3, 0, &[0.0, f64::NAN, 0.0, 0.0], &mut ws, None).is_err());
    assert!(score_entropy(&g, 1.0, 3, 0, &ls, &mut ws, Some(&mut [0.0; 3])).is_err());
    assert!(concrete_score_matching(&g, 1.0, 3, 0, &ls[..2], &mut ws, None).is_err());
    assert!(concrete_score_matching(&g, f64::NAN, 3, 0, &ls, &mut ws, None).is_err());
    let mut scratch = [0.0; 8];
    assert!(categorical_ratio_matching(&g, 1.0, 4, &ls, &mut scratch, None).is_err());
    assert!(categorical_ratio_matching(&g, 1.0, 0, &ls, &mut [0.0; 4], None).is_err());
    assert!(
        categorical_ratio_matching(&g, 1.0, 0, &[f64::INFINITY; 4], &mut scratch, None).is_err()
    );
    let ctmc = Ctmc::new(g.clone(), LogLinear::new(1e-3).unwrap());
    assert!(dwdse(&ctmc, 0.5, &[], &[], &ls[..0], &mut ws, None, None).is_err());
    assert!(dwdse(&ctmc, 0.5, &[0], &[3, 3], &ls, &mut ws, None, None).is_err());
    assert!(dwdse(&ctmc, 1.5, &[0], &[3], &ls, &mut ws, None, None).is_err());
    assert!(
        dwdse(
            &ctmc,
            0.5,
            &[0],
            &[3],
            &ls,
            &mut ws,
            Some(&mut [0.0; 2]),
            None
        )
        .is_err()
    );
    let lin = discrete_diffusion::schedule::Linear::new();
    let lc = [0.0f64; 8];
    assert!(t_dse(&lin, 1.0, 3, &[0, 1], &[3, 1], &lc, None).is_err()); // σ(1) = ∞
    assert!(t_dse(&lin, 0.0, 3, &[0, 1], &[3, 1], &lc, None).is_err()); // r(0) = ∞
    assert!(t_dse(&lin, 0.5, 3, &[3, 1], &[3, 1], &lc, None).is_err()); // x0 masked
    assert!(t_dse(&lin, 0.5, 3, &[0, 1], &[3, 2], &lc, None).is_err()); // not absorbing
    assert!(t_dse(&lin, 0.5, 4, &[0, 1], &[4, 1], &lc, None).is_err()); // mask ≥ V
    assert!(
        t_dce(
            &lin,
            0.5,
            3,
            &[0, 1],
            &[3, 1],
            &lc[..7],
            DceForm::Paper,
            None
        )
        .is_err()
    );
    assert!(
        t_dce(
            &lin,
            0.5,
            3,
            &[0],
            &[3],
            &[f64::NAN, 0.0, 0.0, 0.0],
            DceForm::Paper,
            None
        )
        .is_err()
    );
    assert!(lambda_dce(0.0, 3, &[0, 1], &[3, 1], &lc, None).is_err());
    assert!(lambda_dce(1.5, 3, &[0, 1], &[3, 1], &lc, None).is_err());
    assert!(k_dce(3, &[0, 1], &[0, 1], &lc, None).is_err());
    assert!(k_dce(3, &[], &[], &lc[..0], None).is_err());
    let un = Ctmc::new(
        MixtureGenerator::uniform(3).unwrap(),
        LinearTotalNoise::new(0.0, 3.0).unwrap(),
    );
    let l6 = [0.0f64; 6];
    assert!(ct_elbo_given_tilde(&un, 0.5, &[0, 1], &[0, 3], &l6, 0.0, 0.0, None).is_err());
    assert!(ct_elbo_given_tilde(&un, 0.5, &[0, 1], &[0], &l6, 0.0, 0.0, None).is_err());
    assert!(ct_elbo_given_tilde(&un, 0.5, &[0, 1], &[0, 1], &l6[..5], 0.0, 0.0, None).is_err());
    assert!(ct_elbo_given_tilde(&un, 0.5, &[0, 1], &[0, 1], &l6, -1.0, 0.0, None).is_err());
    assert!(ct_elbo_given_tilde(&un, 0.5, &[0, 1], &[0, 1], &l6, 0.0, f64::NAN, None).is_err());
    assert!(ct_elbo_given_tilde(&un, 1.5, &[0, 1], &[0, 1], &l6, 0.0, 0.0, None).is_err());
}

#[test]
fn f32_outputs_match_f64() {
    let g = MixtureGenerator::uniform(6).unwrap();
    let l64 = logits(6, 2);
    let l32: Vec<f32> = l64.iter().map(|&x| x as f32).collect();
    let l64r: Vec<f64> = l32.iter().map(|&x| x as f64).collect();
    let mut ws = CtmcLossWorkspace::new(6);
    let (mut g32, mut g64) = (vec![0.0f32; 6], vec![0.0f64; 6]);
    let a = score_entropy(&g, 0.9, 2, 4, &l32, &mut ws, Some(&mut g32)).unwrap();
    let b = score_entropy(&g, 0.9, 2, 4, &l64r, &mut ws, Some(&mut g64)).unwrap();
    assert!((a - b).abs() < 1e-15 * b.abs().max(1.0));
    for (x, y) in g32.iter().zip(&g64) {
        assert!((*x as f64 - y).abs() < 1e-6 * y.abs().max(1.0));
    }
}
