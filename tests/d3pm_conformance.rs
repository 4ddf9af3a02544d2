//! Conformance of the uniform and absorbing kernels, posteriors and D3PM losses against
//! `tests/fixtures/anchors/d3pm.json` (google-research `d3pm/images` and `d3pm/text`).
//!
//! Conventions at this boundary (README of the fixtures):
//! * images: row-stochastic, code `t = 0..T−1` is paper/crate step `t + 1`; absorbing
//!   index `K // 2`; the anchor's `t = 0` reverse step returns the model's x0 logits
//!   themselves (our `Decoder::Direct`).
//! * text: column-stochastic `M[i, j] = q(x_{t+1} = i | x_t = j)`, i.e. `M = Qᵀ`; the
//!   posterior case `t` conditions on `x_{t+1}`, i.e. crate step `t + 1`; mask `dim − 1`;
//!   the `t = 0` loss is the joint-form decoder (our `Decoder::Joint`).
//!
//! Kernels are built per `transition_mat_type` by [`kernel_for`] (uniform, banded uniform,
//! absorbing, discretized Gaussian); no case is skipped, and [`every_case_is_covered`]
//! checks that every public case of `d3pm.json` is run by some test in `tests/`.

#![allow(clippy::needless_range_loop)]

mod common;

use common::{assert_close, assert_close1, cases, load_anchor, num, tol, vec1, vec2};
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::banded_uniform::BandedUniform;
use discrete_diffusion::kernel::gaussian::DiscretizedGaussian;
use discrete_diffusion::kernel::posterior::{
    PosteriorWorkspace, p_reverse_joint, p_reverse_mixture, q_posterior,
};
use discrete_diffusion::kernel::uniform::Uniform;
use discrete_diffusion::loss::d3pm::{
    D3pmWorkspace, Decoder, decoder_nll, hybrid_loss, posterior_kl, prior_bits, to_bits,
    x0_cross_entropy,
};
use serde_json::Value;

/// The anchor's smoothing constant inside its logs (images).
const EPS: f64 = 1e-6;

/// The kernel of an images case: `uniform` without bands is the O(V) closed form
/// [`Uniform`], with `transition_bands` the dense [`BandedUniform`]; `absorbing` is
/// [`Absorbing`] with the anchor's mask `K // 2`; `gaussian` is [`DiscretizedGaussian`]
/// (images grid, optional bands).
fn kernel_for(inputs: &Value) -> Box<dyn ForwardKernel> {
    let k = inputs["K"].as_u64().unwrap() as usize;
    let betas = vec1(&inputs["betas"]);
    let bands = inputs["transition_bands"].as_u64().map(|b| b as usize);
    match (inputs["transition_mat_type"].as_str().unwrap(), bands) {
        ("uniform", None) => Box::new(Uniform::new(k, &betas).unwrap()),
        ("uniform", Some(_)) => Box::new(BandedUniform::new(k, &betas, bands).unwrap()),
        ("absorbing", None) => Box::new(Absorbing::new(k, (k / 2) as u32, &betas).unwrap()),
        ("gaussian", _) => Box::new(DiscretizedGaussian::new(k, &betas, bands).unwrap()),
        (other, b) => panic!("unknown transition_mat_type {other} (bands {b:?})"),
    }
}

fn row(k: &dyn ForwardKernel, cumulative: bool, t: usize, x: usize) -> Vec<f64> {
    let mut r = vec![0.0; k.vocab_size()];
    if cumulative {
        k.cumulative_row(t, x as u32, &mut r).unwrap();
    } else {
        k.step_row(t, x as u32, &mut r).unwrap();
    }
    r
}

fn col(k: &dyn ForwardKernel, cumulative: bool, t: usize, y: usize) -> Vec<f64> {
    let mut c = vec![0.0; k.vocab_size()];
    if cumulative {
        k.cumulative_col(t, y as u32, &mut c).unwrap();
    } else {
        k.step_col(t, y as u32, &mut c).unwrap();
    }
    c
}

fn softmax(l: &[f64]) -> Vec<f64> {
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = l.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

fn uint(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

/// Runs `f` over every case with `prefix` (none is skipped); returns the number run.
fn run_cases(prefix: &str, mut f: impl FnMut(&str, &Value, &dyn ForwardKernel)) -> usize {
    let file = load_anchor("d3pm");
    let mut run = 0;
    for case in cases(&file, prefix) {
        let name = case["name"].as_str().unwrap();
        let k = kernel_for(&case["inputs"]);
        f(name, case, k.as_ref());
        run += 1;
    }
    assert!(run > 0, "no case with prefix {prefix}");
    run
}

#[test]
fn one_step_matrices() {
    let file = load_anchor("d3pm");
    let mut n = 0;
    for case in cases(&file, "images_Q_uniform_K").chain(cases(&file, "images_Q_absorbing_")) {
        let name = case["name"].as_str().unwrap();
        let inp = &case["inputs"];
        let k = uint(&inp["K"]);
        let beta = num(&inp["beta"]);
        let kern: Box<dyn ForwardKernel> = if name.contains("absorbing") {
            Box::new(Absorbing::new(k, uint(&inp["absorbing_index"]) as u32, &[beta]).unwrap())
        } else {
            assert!(inp["transition_bands"].is_null());
            Box::new(Uniform::new(k, &[beta]).unwrap())
        };
        for (i, want) in vec2(&case["expected"]["Q"]).iter().enumerate() {
            assert_close(
                &format!("{name} row {i}"),
                &row(kern.as_ref(), false, 1, i),
                want,
                tol(case),
            );
        }
        n += 1;
    }
    assert_eq!(n, 7);
}

#[test]
fn qmats_and_q_probs() {
    run_cases("images_qmats_", |name, case, k| {
        let e = &case["expected"];
        let one = e["q_onestep_mats"].as_array().unwrap();
        let cum = e["q_mats"].as_array().unwrap();
        assert_eq!(one.len(), k.num_steps());
        for t in 0..k.num_steps() {
            for (i, want) in vec2(&one[t]).iter().enumerate() {
                assert_close(
                    &format!("{name} Q_{t} row {i}"),
                    &row(k, false, t + 1, i),
                    want,
                    tol(case),
                );
            }
            for (i, want) in vec2(&cum[t]).iter().enumerate() {
                assert_close(
                    &format!("{name} Q̄_{t} row {i}"),
                    &row(k, true, t + 1, i),
                    want,
                    tol(case),
                );
            }
        }
    });
    run_cases("images_q_probs_", |name, case, k| {
        let inp = &case["inputs"];
        let got = row(k, true, uint(&inp["t"]) + 1, uint(&inp["x_start"]));
        assert_close(name, &got, &vec1(&case["expected"]["probs"]), tol(case));
    });
}

#[test]
fn q_sample_law() {
    run_cases("images_q_sample_law_", |name, case, k| {
        let inp = &case["inputs"];
        let q = row(k, true, uint(&inp["t"]) + 1, uint(&inp["x_start"]));
        assert_close(
            &format!("{name} q_probs"),
            &q,
            &vec1(&case["expected"]["q_probs"]),
            tol(case),
        );
        // The anchor draws argmax(log(q + 1e-6) + Gumbel): law (q + ε)/Σ(q + ε).
        let z: f64 = q.iter().map(|x| x + EPS).sum();
        let law: Vec<f64> = q.iter().map(|x| (x + EPS) / z).collect();
        assert_close(
            &format!("{name} sample_probs"),
            &law,
            &vec1(&case["expected"]["sample_probs"]),
            tol(case),
        );
    });
}

#[test]
fn prior_bpd() {
    run_cases("images_prior_bpd_", |name, case, k| {
        let x0 = uint(&case["inputs"]["x_start"]);
        let want = num(&case["expected"]["prior_bpd"]);
        // Anchor: KL with ε = 1e-6 inside both logs, over q(x_{T−1}|x0) (code index).
        let q = row(k, true, k.num_steps(), x0);
        let mut pi = vec![0.0; k.vocab_size()];
        k.stationary(&mut pi).unwrap();
        let anchor: f64 = q
            .iter()
            .zip(&pi)
            .map(|(a, b)| a * ((a + EPS).ln() - (b + EPS).ln()))
            .sum::<f64>()
            / std::f64::consts::LN_2;
        assert_close1(&format!("{name} (ε convention)"), anchor, want, tol(case));
        // Exact KL (no smoothing) ≡ Σ_j q_j log2(q_j / π_j) from the kernel's rows.
        let exact = prior_bits(k, x0 as u32, &mut D3pmWorkspace::default()).unwrap();
        let kl: f64 = q
            .iter()
            .zip(&pi)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| a * (a / b).ln())
            .sum::<f64>()
            / std::f64::consts::LN_2;
        assert_close1(&format!("{name} exact KL"), exact, kl, (1e-12, 1e-10));
        // It differs from the anchor's smoothed value by exactly
        // Σ_j q_j [ln(1 + ε/π_j) − ln(1 + ε/q_j)], bounded by the sum of absolute values.
        let bound: f64 = q
            .iter()
            .zip(&pi)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| a * ((EPS / a).ln_1p() + (EPS / b).ln_1p()))
            .sum::<f64>()
            / std::f64::consts::LN_2;
        assert!(
            (exact - want).abs() <= bound + 1e-12,
            "{name}: exact {exact:e} vs anchor {want:e} (bound {bound:e})"
        );
    });
}

#[test]
fn q_posterior_cases() {
    let mut ws = PosteriorWorkspace::default();
    run_cases("images_q_posterior_", |name, case, k| {
        let inp = &case["inputs"];
        let e = &case["expected"];
        let (t, x0, xt) = (uint(&inp["t"]), uint(&inp["x_start"]), uint(&inp["x_t"]));
        let v = k.vocab_size();
        let feasible = col(k, true, t + 1, xt)[x0] > 0.0;
        let mut out = vec![0.0; v];
        let res = q_posterior(k, t + 1, xt as u32, x0 as u32, &mut ws, &mut out);
        if t == 0 {
            // The anchor's t = 0 returns δ_{x0} whatever x_t is (and calls it feasible); our
            // q(x_0 | x_1, x0) is δ_{x0} where Q_1(x0, x_1) > 0 and undefined elsewhere.
            assert!(e["feasible"].as_bool().unwrap(), "{name} feasible");
            if !feasible {
                assert!(res.is_err(), "{name}: Q_1(x0, x_1) = 0 must be infeasible");
                let delta: Vec<f64> = (0..v).map(|j| (j == x0) as u8 as f64).collect();
                assert_close(
                    &format!("{name} probs_exact"),
                    &delta,
                    &vec1(&e["probs_exact"]),
                    tol(case),
                );
            }
        } else {
            assert_eq!(
                feasible,
                e["feasible"].as_bool().unwrap(),
                "{name} feasible"
            );
        }
        if t == 0 && !feasible {
            // checked above
        } else if e["probs_exact"].is_null() {
            assert!(res.is_err(), "{name}: expected ZeroProbability");
        } else {
            res.unwrap();
            assert_close(
                &format!("{name} probs_exact"),
                &out,
                &vec1(&e["probs_exact"]),
                tol(case),
            );
        }
        // The anchor's smoothed logits, rebuilt from our rows and columns.
        let logits: Vec<f64> = if t == 0 {
            (0..v)
                .map(|j| (((j == x0) as u8 as f64) + EPS).ln())
                .collect()
        } else {
            let c = col(k, false, t + 1, xt);
            let r = row(k, true, t, x0);
            c.iter()
                .zip(&r)
                .map(|(a, b)| (a + EPS).ln() + (b + EPS).ln())
                .collect()
        };
        assert_close(
            &format!("{name} logits_anchor"),
            &logits,
            &vec1(&e["logits_anchor"]),
            tol(case),
        );
        assert_close(
            &format!("{name} probs_anchor"),
            &softmax(&logits),
            &vec1(&e["probs_anchor"]),
            tol(case),
        );
    });
}

#[test]
fn p_logits_cases() {
    let mut ws = PosteriorWorkspace::default();
    run_cases("images_p_logits_", |name, case, k| {
        let inp = &case["inputs"];
        let e = &case["expected"];
        let (t, xt) = (uint(&inp["t"]), uint(&inp["x_t"]));
        let v = k.vocab_size();
        let logits = vec1(&inp["model_x_start_logits"]);
        let p0 = softmax(&logits);
        if t == 0 {
            // Anchor convention at its t = 0: the model's x0 prediction itself (Decoder::Direct).
            for f in [
                "probs_anchor",
                "probs_exact",
                "probs_marginal_posterior_mixture",
            ] {
                assert_close(&format!("{name} {f}"), &p0, &vec1(&e[f]), tol(case));
            }
            assert_close(
                &format!("{name} logits"),
                &logits,
                &vec1(&e["logits_anchor"]),
                tol(case),
            );
            return;
        }
        let mut out = vec![0.0; v];
        let res = p_reverse_joint(k, t + 1, xt as u32, &p0, &mut ws, &mut out);
        if e["probs_exact"].is_null() {
            assert!(res.is_err(), "{name}: joint form must be undefined");
        } else {
            res.unwrap();
            assert_close(
                &format!("{name} probs_exact"),
                &out,
                &vec1(&e["probs_exact"]),
                tol(case),
            );
        }
        let res = p_reverse_mixture(k, t + 1, xt as u32, &p0, &mut ws, &mut out);
        if e["probs_marginal_posterior_mixture"].is_null() {
            assert!(res.is_err(), "{name}: mixture form must be undefined");
        } else {
            res.unwrap();
            assert_close(
                &format!("{name} mixture"),
                &out,
                &vec1(&e["probs_marginal_posterior_mixture"]),
                tol(case),
            );
        }
        // Anchor logits: log(Q_t[:, x_t] + ε) + log(p̃ᵀQ̄_{t−1} + ε).
        let c = col(k, false, t + 1, xt);
        let mut m = vec![0.0; v];
        k.cumulative_vecmat(t, &p0, &mut m).unwrap();
        let la: Vec<f64> = c
            .iter()
            .zip(&m)
            .map(|(a, b)| (a + EPS).ln() + (b + EPS).ln())
            .collect();
        assert_close(
            &format!("{name} logits_anchor"),
            &la,
            &vec1(&e["logits_anchor"]),
            tol(case),
        );
        assert_close(
            &format!("{name} probs_anchor"),
            &softmax(&la),
            &vec1(&e["probs_anchor"]),
            tol(case),
        );
    });
}

#[test]
fn vb_hybrid_cases() {
    let mut ws = D3pmWorkspace::default();
    let mut pws = PosteriorWorkspace::default();
    let mut separated = 0;
    let n = run_cases("images_vb_hybrid_", |name, case, k| {
        let inp = &case["inputs"];
        let e = &case["expected"];
        let (t, x0, xt) = (uint(&inp["t"]), uint(&inp["x_start"]), uint(&inp["x_t"]));
        let lambda = num(&inp["hybrid_coeff"]);
        let logits = vec1(&inp["model_x_start_logits"]);
        let v = k.vocab_size();
        let ce = to_bits(x0_cross_entropy(&logits, x0 as u32, None).unwrap());
        assert_close1(
            &format!("{name} ce_bits"),
            ce,
            num(&e["ce_bits"]),
            tol(case),
        );
        let want_vb = num(&e["vb_bits"]);
        if t == 0 {
            // Decoder NLL with the model's x0 prediction (Decoder::Direct): exact match.
            let h = hybrid_loss(
                k,
                1,
                xt as u32,
                x0 as u32,
                &logits,
                lambda,
                Decoder::Direct,
                &mut ws,
                None,
            )
            .unwrap();
            assert_close1(
                &format!("{name} vb_bits"),
                to_bits(h.vb),
                want_vb,
                tol(case),
            );
            assert_close1(
                &format!("{name} hybrid_bits"),
                to_bits(h.total),
                num(&e["hybrid_bits"]),
                tol(case),
            );
            return;
        }
        // Anchor: KL(softmax(true logits) ‖ softmax(model logits)), both with ε = 1e-6 inside
        // the logs; rebuild that value from our kernel to check the conventions exactly.
        let c = col(k, false, t + 1, xt);
        let r = row(k, true, t, x0);
        let tl: Vec<f64> = c
            .iter()
            .zip(&r)
            .map(|(a, b)| (a + EPS).ln() + (b + EPS).ln())
            .collect();
        let p0 = softmax(&logits);
        let mut m = vec![0.0; v];
        k.cumulative_vecmat(t, &p0, &mut m).unwrap();
        let ml: Vec<f64> = c
            .iter()
            .zip(&m)
            .map(|(a, b)| (a + EPS).ln() + (b + EPS).ln())
            .collect();
        let (qa, pa) = (softmax(&tl), softmax(&ml));
        let anchor_kl: f64 = qa.iter().zip(&pa).map(|(q, p)| q * (q.ln() - p.ln())).sum();
        assert_close1(
            &format!("{name} vb_bits (ε convention)"),
            to_bits(anchor_kl),
            want_vb,
            tol(case),
        );
        assert_close1(
            &format!("{name} hybrid_bits (ε convention)"),
            to_bits(anchor_kl) + lambda * ce,
            num(&e["hybrid_bits"]),
            tol(case),
        );
        // Our exact loss: the same KL without smoothing; it agrees with the anchor up to the
        // ε-smoothing, and is infinite-free only on feasible (x0, x_t).
        let mut q = vec![0.0; v];
        if q_posterior(k, t + 1, xt as u32, x0 as u32, &mut pws, &mut q).is_err() {
            assert!(posterior_kl(k, t + 1, xt as u32, x0 as u32, &logits, &mut ws, None).is_err());
            return;
        }
        let h = hybrid_loss(
            k,
            t + 1,
            xt as u32,
            x0 as u32,
            &logits,
            lambda,
            Decoder::Direct,
            &mut ws,
            None,
        )
        .unwrap();
        // Exact reference from dense rows: Σ_j q_j ln(q_j / p_j).
        let pe: Vec<f64> = {
            let u: Vec<f64> = c.iter().zip(&m).map(|(a, b)| a * b).collect();
            let z: f64 = u.iter().sum();
            u.iter().map(|x| x / z).collect()
        };
        let kl_ref: f64 = q
            .iter()
            .zip(&pe)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| a * (a / b).ln())
            .sum();
        assert_close1(&format!("{name} exact vb"), h.vb, kl_ref, (1e-12, 1e-10));
        // ε-smoothing moves the anchor by at most ~V·ε·ln(1/ε) nats when every non-zero
        // factor is far above ε; near-infeasible cases (the Gaussian kernel's likelihoods
        // reach 1e-100) are dominated by ε and only the two exact checks above apply.
        let well_separated = [&c, &r, &m]
            .iter()
            .all(|f| f.iter().all(|&x| x == 0.0 || x >= 1e3 * EPS));
        if well_separated {
            let bound = 4.0 * v as f64 * EPS * (1.0 / EPS).ln();
            let dev = (h.vb - anchor_kl).abs();
            assert!(
                dev < bound,
                "{name}: exact vb {} vs anchor {anchor_kl} (bound {bound:e})",
                h.vb
            );
            separated += 1;
        }
        assert_close1(
            &format!("{name} ce (hybrid)"),
            to_bits(h.ce),
            ce,
            (1e-12, 1e-12),
        );
    });
    eprintln!("vb_hybrid: ε-deviation bound checked on {separated} of {n} cases");
    assert!(
        separated >= n / 2,
        "only {separated} of {n} cases well separated"
    );
}

/// D3PM text posterior/loss cases: `q(x_t | x_{t+1}, x_0)` and the losses, for the
/// `beta_diagonal` (uniform) and `mask` (absorbing at `dim − 1`) kernels.
#[test]
fn text_posterior_and_losses() {
    let file = load_anchor("d3pm");
    let mut ws = D3pmWorkspace::default();
    let mut pws = PosteriorWorkspace::default();
    let mut n = 0;
    for case in cases(&file, "text_") {
        let name = case["name"].as_str().unwrap();
        if !name.contains("_posterior_t") {
            continue;
        }
        let inp = &case["inputs"];
        let e = &case["expected"];
        let v = uint(&inp["dim"]);
        let betas = vec1(&inp["betas"]);
        let k: Box<dyn ForwardKernel> = if name.starts_with("text_beta_diagonal") {
            Box::new(Uniform::new(v, &betas).unwrap())
        } else if name.starts_with("text_mask") {
            Box::new(Absorbing::new(v, (v - 1) as u32, &betas).unwrap())
        } else {
            panic!("unexpected text case {name}");
        };
        let k = k.as_ref();
        let (t, x0, xs) = (
            uint(&inp["t"]),
            uint(&inp["x_start"]),
            uint(&inp["x_t_plus_1"]),
        );
        let s = t + 1; // crate step: q(x_{s−1} | x_s, x0)
        let logits = vec1(&inp["model_x0_logits"]);
        let lambda = num(&inp["hybrid_lambda"]);
        let tl = tol(case);
        // Smoothed logits (ε = 1e-20), rebuilt from our rows and columns.
        let c = col(k, false, s, xs);
        let r = row(k, true, s - 1, x0);
        let ql: Vec<f64> = c
            .iter()
            .zip(&r)
            .map(|(a, b)| (b + 1e-20).ln() + (a + 1e-20).ln())
            .collect();
        assert_close(&format!("{name} q_logits"), &ql, &vec1(&e["q_logits"]), tl);
        let p0 = softmax(&logits);
        let mut m = vec![0.0; v];
        k.cumulative_vecmat(s - 1, &p0, &mut m).unwrap();
        let pl: Vec<f64> = c
            .iter()
            .zip(&m)
            .map(|(a, b): (&f64, &f64)| (b + 1e-20).ln() + (a + 1e-20).ln())
            .collect();
        assert_close(&format!("{name} p_logits"), &pl, &vec1(&e["p_logits"]), tl);

        let mut q = vec![0.0; v];
        let res = q_posterior(k, s, xs as u32, x0 as u32, &mut pws, &mut q);
        if e["q_probs"].is_null() {
            assert!(res.is_err(), "{name}: infeasible");
            n += 1;
            continue;
        }
        res.unwrap();
        assert_close(&format!("{name} q_probs"), &q, &vec1(&e["q_probs"]), tl);
        let mut p: Vec<f64> = vec![0.0; v];
        p_reverse_joint(k, s, xs as u32, &p0, &mut pws, &mut p).unwrap();
        assert_close1(
            &format!("{name} t0_cross_entropy"),
            -(p[x0] as f64).ln(),
            num(&e["t0_cross_entropy_nats"]),
            tl,
        );
        let ce = x0_cross_entropy(&logits, x0 as u32, None).unwrap();
        assert_close1(
            &format!("{name} hybrid_cross_entropy"),
            ce,
            num(&e["hybrid_cross_entropy_nats"]),
            tl,
        );
        let base = if s == 1 {
            decoder_nll(
                k,
                xs as u32,
                x0 as u32,
                &logits,
                Decoder::Joint,
                &mut ws,
                None,
            )
            .unwrap()
        } else {
            let kl = posterior_kl(k, s, xs as u32, x0 as u32, &logits, &mut ws, None).unwrap();
            assert_close1(
                &format!("{name} kl_probs"),
                kl,
                num(&e["kl_probs_nats"]),
                tl,
            );
            kl
        };
        assert_close1(
            &format!("{name} base_loss"),
            base,
            num(&e["base_loss_log_space"]),
            tl,
        );
        let h = hybrid_loss(
            k,
            s,
            xs as u32,
            x0 as u32,
            &logits,
            lambda,
            Decoder::Joint,
            &mut ws,
            None,
        )
        .unwrap();
        assert_close1(
            &format!("{name} loss_log_space"),
            h.total,
            num(&e["loss_log_space"]),
            tl,
        );
        n += 1;
    }
    let all = cases(&file, "text_")
        .filter(|c| c["name"].as_str().unwrap().contains("_posterior_t"))
        .count();
    assert_eq!(n, all, "text posterior cases: {n} run of {all}");
}

// ------------------------------------------------------------------ coverage

/// Which test covers a group of `d3pm.json` cases: the name prefix, an optional substring
/// the name must (`Some(true)`) or must not (`Some(false)`) contain, the test file, and
/// strings that file must contain (the `cases(…)` filter that selects the group).
struct Rule {
    prefix: &'static str,
    posterior: Option<bool>,
    file: &'static str,
    markers: &'static [&'static str],
}

const THIS: &str = "d3pm_conformance.rs";
const DENSE: &str = "d3pm_dense_conformance.rs";
const SCHEDULE: &str = "schedule_conformance.rs";

const RULES: &[Rule] = &[
    Rule {
        prefix: "images_Q_uniform_K",
        posterior: None,
        file: THIS,
        markers: &["\"images_Q_uniform_K\""],
    },
    Rule {
        prefix: "images_Q_absorbing_",
        posterior: None,
        file: THIS,
        markers: &["\"images_Q_absorbing_\""],
    },
    Rule {
        prefix: "images_Q_uniform",
        posterior: None,
        file: DENSE,
        markers: &["\"images_Q_uniform\""],
    },
    Rule {
        prefix: "images_Q_gaussian_",
        posterior: None,
        file: DENSE,
        markers: &["\"images_Q_gaussian_\""],
    },
    Rule {
        prefix: "images_logistic_logits_",
        posterior: None,
        file: DENSE,
        markers: &["\"images_logistic_logits_\""],
    },
    Rule {
        prefix: "images_betas_",
        posterior: None,
        file: SCHEDULE,
        markers: &["\"images_betas_\""],
    },
    Rule {
        prefix: "images_qmats_",
        posterior: None,
        file: THIS,
        markers: &["\"images_qmats_\""],
    },
    Rule {
        prefix: "images_q_probs_",
        posterior: None,
        file: THIS,
        markers: &["\"images_q_probs_\""],
    },
    Rule {
        prefix: "images_q_sample_law_",
        posterior: None,
        file: THIS,
        markers: &["\"images_q_sample_law_\""],
    },
    Rule {
        prefix: "images_prior_bpd_",
        posterior: None,
        file: THIS,
        markers: &["\"images_prior_bpd_\""],
    },
    Rule {
        prefix: "images_q_posterior_",
        posterior: None,
        file: THIS,
        markers: &["\"images_q_posterior_\""],
    },
    Rule {
        prefix: "images_p_logits_",
        posterior: None,
        file: THIS,
        markers: &["\"images_p_logits_\""],
    },
    Rule {
        prefix: "images_vb_hybrid_",
        posterior: None,
        file: THIS,
        markers: &["\"images_vb_hybrid_\""],
    },
    Rule {
        prefix: "text_schedule_",
        posterior: None,
        file: SCHEDULE,
        markers: &["\"text_schedule_\""],
    },
    Rule {
        prefix: "text_Q_gaussian_precomputed_",
        posterior: None,
        file: DENSE,
        markers: &["\"text_Q_gaussian_precomputed_\""],
    },
    Rule {
        prefix: "text_beta_diagonal_dim",
        posterior: Some(true),
        file: THIS,
        markers: &["\"_posterior_t\"", "\"text_beta_diagonal\""],
    },
    Rule {
        prefix: "text_mask_dim",
        posterior: Some(true),
        file: THIS,
        markers: &["\"_posterior_t\"", "\"text_mask\""],
    },
    Rule {
        prefix: "text_beta_diagonal_dim",
        posterior: Some(false),
        file: DENSE,
        markers: &["\"text_{kind}_dim\"", "\"beta_diagonal\""],
    },
    Rule {
        prefix: "text_mask_dim",
        posterior: Some(false),
        file: DENSE,
        markers: &["\"text_{kind}_dim\"", "\"mask\""],
    },
    Rule {
        prefix: "text_mutual_information_schedule_",
        posterior: None,
        file: SCHEDULE,
        markers: &["\"text_mutual_information_schedule_\""],
    },
];

impl Rule {
    fn covers(&self, name: &str) -> bool {
        name.starts_with(self.prefix)
            && self
                .posterior
                .is_none_or(|p| name.contains("_posterior_") == p)
    }
}

/// Every public case of `d3pm.json` is checked by some test in `tests/` (the rule table
/// above, whose filters are verified to appear in the named files), every rule covers at
/// least one case, and no images case is skipped here: [`kernel_for`] builds a kernel for
/// every `transition_mat_type` and band setting in the file (it panics otherwise).
#[test]
fn every_case_is_covered() {
    let file = load_anchor("d3pm");
    let all = file["cases"].as_array().unwrap();
    assert_eq!(all.len() as u64, file["num_cases"].as_u64().unwrap());
    let mut counts = vec![0usize; RULES.len()];
    let mut uncovered = Vec::new();
    for case in all {
        let name = case["name"].as_str().unwrap();
        let mut hit = false;
        for (r, c) in RULES.iter().zip(counts.iter_mut()) {
            if r.covers(name) {
                *c += 1;
                hit = true;
            }
        }
        if !hit {
            uncovered.push(name.to_string());
        }
        if name.starts_with("images_") && !case["inputs"]["transition_mat_type"].is_null() {
            let k = kernel_for(&case["inputs"]);
            assert_eq!(k.vocab_size(), uint(&case["inputs"]["K"]), "{name}");
        }
    }
    assert!(
        uncovered.is_empty(),
        "cases covered by no test: {uncovered:?}"
    );
    for (r, &c) in RULES.iter().zip(&counts) {
        eprintln!(
            "{:<36} {:>13} {c:>3} cases  ({})",
            r.prefix,
            match r.posterior {
                None => "",
                Some(true) => "posterior",
                Some(false) => "non-posterior",
            },
            r.file
        );
        assert!(c > 0, "rule {} covers no case", r.prefix);
        let path = format!("{}/tests/{}", env!("CARGO_MANIFEST_DIR"), r.file);
        let src = std::fs::read_to_string(&path).unwrap();
        for m in r.markers {
            assert!(src.contains(m), "{}: {m} not found in {}", r.prefix, r.file);
        }
    }
}
