//! Conformance of the `schedule` layer against the anchors' own formulas
//! (`tests/fixtures/anchors/*.json`, see `/work/shared/conformance/README.md`).
//!
//! Time conventions: SEDD and MDLM times are ours (their samplers run `t` from 1 to ε);
//! MD4's `t` is ours; flow matching's `t` is our `1 − t` (handled by `Kappa`).
//! D3PM images code step `k` (0-based) is our step `k + 1`; D3PM text schedule functions are
//! evaluated at `step = t − 1` as well.

mod common;

use common::{assert_close, assert_close1, cases, load_anchor, num, tol, vec1};
use discrete_diffusion::schedule::{
    Antithetic, BetaSchedule, D3pmTextKind, ExponentialFamily, FlowPolynomial, Geometric, Kappa,
    Linear, LinearTotalNoise, LogLinear, Md4Cosine, Md4GridKind, MdlmCosine, MdlmCosineSqr,
    MutualInformationExponents, MutualInformationKind, MutualInformationSchedule, Polynomial,
    Schedule, TimeGrid, VariancePreserving, discretize_time, flow_matching_time_grid,
};
use serde_json::Value;

fn f(v: &Value) -> f64 {
    num(v)
}

/// Evaluate `q` on each t and compare with `expected[field]`.
fn check_on_t(
    name: &str,
    field: &str,
    ts: &[f64],
    exp: &Value,
    t: (f64, f64),
    q: impl Fn(f64) -> f64,
) {
    let got: Vec<f64> = ts.iter().map(|&x| q(x)).collect();
    assert_close(&format!("{name}.{field}"), &got, &vec1(exp), t);
}

fn mdlm_schedule(kind: &str, params: &Value) -> Box<dyn Schedule> {
    let eps = || f(&params["eps"]);
    match kind {
        "loglinear" => Box::new(LogLinear::new(eps()).unwrap()),
        "cosine" => Box::new(MdlmCosine::new(eps()).unwrap()),
        "cosinesqr" => Box::new(MdlmCosineSqr::new(eps()).unwrap()),
        "linear" => Box::new(
            LinearTotalNoise::new(f(&params["sigma_min"]), f(&params["sigma_max"])).unwrap(),
        ),
        "geometric" => {
            Box::new(Geometric::new(f(&params["sigma_min"]), f(&params["sigma_max"])).unwrap())
        }
        other => panic!("unknown MDLM noise kind {other}"),
    }
}

#[test]
fn mdlm_noise_schedules() {
    let file = load_anchor("mdlm");
    let mut n = 0;
    for c in cases(&file, "noise_") {
        let name = c["name"].as_str().unwrap();
        let s = mdlm_schedule(
            c["inputs"]["kind"].as_str().unwrap(),
            &c["inputs"]["params"],
        );
        let ts = vec1(&c["inputs"]["t"]);
        let e = &c["expected"];
        let t = tol(c);
        check_on_t(name, "total_noise", &ts, &e["total_noise"], t, |x| {
            s.total_noise(x).unwrap()
        });
        check_on_t(name, "rate_noise", &ts, &e["rate_noise"], t, |x| {
            s.noise_rate(x).unwrap()
        });
        check_on_t(name, "alpha", &ts, &e["alpha"], t, |x| s.alpha(x).unwrap());
        check_on_t(
            name,
            "continuous_loss_weight",
            &ts,
            &e["continuous_loss_weight"],
            t,
            |x| s.elbo_weight(x).unwrap(),
        );
        n += 1;
    }
    assert!(n >= 4, "expected the MDLM noise cases, found {n}");
}

// The public fixture subset holds no `loglinear_importance*`, `sample_t_antithetic` or
// `sampling_timesteps*` case (they are among the held-back cases), so these three are
// known-answer tests written from the anchor's formulas (kuleshov-group/mdlm
// `noise_schedule.py:LogLinearNoise.importance_sampling_transformation`,
// `diffusion.py:Diffusion._sample_t`, `diffusion.py:Diffusion._sample`), evaluated here in a
// different algebraic form than the library's.

#[test]
fn mdlm_importance_sampling_transformation() {
    // MDLM: σ_max = σ̄(1) = −ln ε, σ_min = ε (its quirk), f_T = ln(1 − e^{−σ_max}),
    // f_0 = ln(1 − e^{−σ_min}), σ_u = −ln(1 − e^{u f_T + (1−u) f_0}), t = (1 − e^{−σ_u})/(1 − ε)
    //   = (1 − ε)^u (1 − e^{−ε})^{1−u} / (1 − ε).
    for eps in [1e-3f64, 1e-2] {
        let s = LogLinear::new(eps).unwrap();
        for &u in &[0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
            let exp = (1.0 - eps).powf(u) * (1.0 - (-eps).exp()).powf(1.0 - u) / (1.0 - eps);
            let got = s.importance_sampling_transformation(u).unwrap();
            assert_close1(&format!("eps={eps} u={u}"), got, exp, (1e-15, 1e-12));
        }
    }
}

#[test]
fn mdlm_sample_t_antithetic() {
    // MDLM: e_i = (u_i / n + i / n) mod 1, t_i = (1 − ε) e_i + ε.
    let eps = 1e-3;
    let us = [0.3, 0.9, 0.1, 0.5];
    let exp: Vec<f64> = [0.075, 0.475, 0.525, 0.875]
        .iter()
        .map(|e| (1.0 - eps) * e + eps)
        .collect();
    let mut got = vec![0.0; us.len()];
    Antithetic::new(eps)
        .unwrap()
        .transform(&us, &mut got)
        .unwrap();
    assert_close("antithetic", &got, &exp, (1e-15, 1e-13));
}

#[test]
fn mdlm_discretize_t() {
    let file = load_anchor("mdlm");
    let mut n = 0;
    for c in cases(&file, "discretize_t_") {
        let name = c["name"].as_str().unwrap();
        let tt = c["inputs"]["T"].as_u64().unwrap() as usize;
        let ts = vec1(&c["inputs"]["t"]);
        check_on_t(
            name,
            "t_discrete",
            &ts,
            &c["expected"]["t_discrete"],
            tol(c),
            |x| discretize_time(x, tt).unwrap(),
        );
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn mdlm_sampling_timesteps() {
    // MDLM: timesteps = linspace(1, eps, steps + 1), dt = (1 − eps) / steps.
    let (steps, eps) = (8usize, 1e-5);
    let g = TimeGrid::uniform(steps, eps).unwrap();
    let exp: Vec<f64> = (0..=steps)
        .map(|k| 1.0 - k as f64 * (1.0 - eps) / steps as f64)
        .collect();
    assert_close("timesteps", g.points(), &exp, (1e-15, 1e-13));
    let (t0, t1) = g.step(0).unwrap();
    assert_close1("dt", t0 - t1, (1.0 - eps) / steps as f64, (1e-15, 1e-12));
}

fn md4_schedule(kind: &str, eps: f64) -> Box<dyn Schedule> {
    match kind {
        "linear" => Box::new(Linear::md4(eps).unwrap()),
        "cosine" => Box::new(Md4Cosine::md4(eps).unwrap()),
        k if k.starts_with("poly") => {
            let n: f64 = k[4..].parse().expect("polyK");
            Box::new(Polynomial::md4(n, eps).unwrap())
        }
        other => panic!("unknown MD4 schedule {other}"),
    }
}

#[test]
fn md4_masking_schedules() {
    let file = load_anchor("md4");
    let mut n = 0;
    for c in cases(&file, "masking_schedule_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let s = md4_schedule(inp["schedule_fn_type"].as_str().unwrap(), f(&inp["eps"]));
        let ts = vec1(&inp["t"]);
        let e = &c["expected"];
        let t = tol(c);
        check_on_t(name, "alpha", &ts, &e["alpha"], t, |x| s.alpha(x).unwrap());
        check_on_t(name, "dalpha", &ts, &e["dalpha"], t, |x| {
            s.alpha_derivative(x).unwrap()
        });
        check_on_t(name, "logsnr", &ts, &e["logsnr"], t, |x| {
            s.log_snr(x).unwrap()
        });
        // MD4's dgamma_times_alpha = α'/(1 − α) = −(NELBO weight).
        check_on_t(
            name,
            "dgamma_times_alpha",
            &ts,
            &e["dgamma_times_alpha"],
            t,
            |x| -s.elbo_weight(x).unwrap(),
        );
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn md4_sampling_grids() {
    let file = load_anchor("md4");
    let mut n = 0;
    for c in cases(&file, "md4_sampling_grid_") {
        let name = c["name"].as_str().unwrap();
        let steps = c["inputs"]["timesteps"].as_u64().unwrap() as usize;
        let kind = match c["inputs"]["sampling_grid"].as_str().unwrap() {
            "cosine" => Md4GridKind::Cosine,
            "linear" => Md4GridKind::Linear,
            other => panic!("unknown MD4 grid {other}"),
        };
        let g = TimeGrid::md4(steps, kind).unwrap();
        let (ts, ss): (Vec<f64>, Vec<f64>) = g.steps().unzip();
        assert_close(
            &format!("{name}.t"),
            &ts,
            &vec1(&c["expected"]["t"]),
            tol(c),
        );
        assert_close(
            &format!("{name}.s"),
            &ss,
            &vec1(&c["expected"]["s"]),
            tol(c),
        );
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn sedd_noise_schedules() {
    let file = load_anchor("sedd");
    let mut n = 0;
    for c in cases(&file, "noise_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let s: Box<dyn Schedule> = if name.starts_with("noise_geometric") {
            Box::new(Geometric::new(f(&inp["sigma_min"]), f(&inp["sigma_max"])).unwrap())
        } else if name.starts_with("noise_loglinear") {
            Box::new(LogLinear::new(f(&inp["eps"])).unwrap())
        } else {
            panic!("unknown SEDD noise case {name}")
        };
        let ts = vec1(&inp["t"]);
        let e = &c["expected"];
        let t = tol(c);
        check_on_t(name, "total_noise", &ts, &e["total_noise"], t, |x| {
            s.total_noise(x).unwrap()
        });
        check_on_t(name, "rate_noise", &ts, &e["rate_noise"], t, |x| {
            s.noise_rate(x).unwrap()
        });
        if !e["move_chance"].is_null() {
            check_on_t(name, "move_chance", &ts, &e["move_chance"], t, |x| {
                s.move_chance(x).unwrap()
            });
        }
        n += 1;
    }
    assert!(n >= 3);
}

fn fm_kappa(inp: &Value) -> Kappa<Box<dyn Schedule>> {
    let kind = inp["kind"].as_str().unwrap();
    match kind {
        "polynomial" => Kappa::convex(Box::new(FlowPolynomial::new(f(&inp["n"])).unwrap())),
        "condot" => Kappa::convex(Box::new(Linear::new())),
        "vp" => Kappa::variance_preserving(Box::new(
            VariancePreserving::new(f(&inp["vp_beta_min"]), f(&inp["vp_beta_max"])).unwrap(),
        )),
        "linear_vp" => Kappa::variance_preserving(Box::new(Linear::new())),
        "cosine" => Kappa::variance_preserving(Box::new(MdlmCosine::new(0.0).unwrap())),
        other => panic!("unknown flow-matching scheduler {other}"),
    }
}

#[test]
fn flow_matching_schedulers_through_kappa() {
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "scheduler_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let k = fm_kappa(inp);
        let ss = vec1(&inp["t"]); // flow-matching time s
        let e = &c["expected"];
        let t = tol(c);
        check_on_t(name, "alpha_t", &ss, &e["alpha_t"], t, |s| {
            k.kappa(s).unwrap()
        });
        check_on_t(name, "sigma_t", &ss, &e["sigma_t"], t, |s| {
            k.sigma(s).unwrap()
        });
        check_on_t(name, "d_alpha_t", &ss, &e["d_alpha_t"], t, |s| {
            k.kappa_derivative(s).unwrap()
        });
        check_on_t(name, "d_sigma_t", &ss, &e["d_sigma_t"], t, |s| {
            k.sigma_derivative(s).unwrap()
        });
        if !e["kappa_inverse"].is_null() {
            let ks = vec1(&e["kappa_inverse"]["kappa"]);
            check_on_t(
                name,
                "kappa_inverse",
                &ks,
                &e["kappa_inverse"]["t"],
                t,
                |x| k.kappa_inverse(x).unwrap(),
            );
        }
        if !e["snr_inverse"].is_null() {
            let snrs = vec1(&e["snr_inverse"]["snr"]);
            check_on_t(name, "snr_inverse", &snrs, &e["snr_inverse"]["t"], t, |x| {
                k.snr_inverse(x).unwrap()
            });
        }
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn flow_matching_solver_time_grids() {
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "solver_time_grid_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let g =
            flow_matching_time_grid(f(&inp["step_size"]), f(&inp["t_init"]), f(&inp["t_final"]))
                .unwrap();
        assert_eq!(
            (g.len() - 1) as u64,
            c["expected"]["n_steps"].as_u64().unwrap(),
            "{name}.n_steps"
        );
        assert_close(
            &format!("{name}.grid"),
            &g,
            &vec1(&c["expected"]["grid"]),
            tol(c),
        );
        // The same grid in the crate's time is a valid descending TimeGrid.
        let ours = TimeGrid::from_points(g.iter().map(|s| 1.0 - s).collect()).unwrap();
        assert_eq!(ours.num_steps(), g.len() - 1);
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn d3pm_images_betas() {
    let file = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&file, "images_betas_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let tt = inp["num_timesteps"].as_u64().unwrap() as usize;
        let b = match inp["type"].as_str().unwrap() {
            "linear" => BetaSchedule::linear(tt, f(&inp["start"]), f(&inp["stop"])).unwrap(),
            "cosine" => BetaSchedule::cosine(tt).unwrap(),
            "jsd" => BetaSchedule::mutual_information(tt).unwrap(),
            other => panic!("unknown D3PM beta type {other}"),
        };
        let e = &c["expected"];
        let t = tol(c);
        if !e["betas"].is_null() {
            assert_close(&format!("{name}.betas"), b.betas(), &vec1(&e["betas"]), t);
        }
        if !e["betas_first5"].is_null() {
            assert_close(name, &b.betas()[..5], &vec1(&e["betas_first5"]), t);
            assert_close(name, &b.betas()[tt - 5..], &vec1(&e["betas_last5"]), t);
            let sum: f64 = b.betas().iter().sum();
            assert_close1(&format!("{name}.betas_sum"), sum, f(&e["betas_sum"]), t);
        }
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn d3pm_text_schedules() {
    let file = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&file, "text_schedule_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let kind = match inp["kind"].as_str().unwrap() {
            "standard" => D3pmTextKind::Standard,
            "linear" => D3pmTextKind::Linear,
            "cosine" => D3pmTextKind::Cosine,
            other => panic!("unknown text schedule {other}"),
        };
        let tt = inp["num_steps"].as_u64().unwrap() as usize;
        let b = BetaSchedule::d3pm_text(
            kind,
            tt,
            f(&inp["beta_min"]),
            f(&inp["beta_max"]),
            f(&inp["scale"]),
        )
        .unwrap();
        // The anchor evaluates its schedule function at code step = our t − 1.
        let got: Vec<f64> = inp["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| b.beta(s.as_u64().unwrap() as usize + 1).unwrap())
            .collect();
        assert_close(name, &got, &vec1(&c["expected"]["betas"]), tol(c));
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn d3pm_text_mutual_information_schedules() {
    let file = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&file, "text_mutual_information_schedule_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let dim = inp["dim"].as_u64().unwrap() as usize;
        let family = match inp["builder"].as_str().unwrap() {
            // ClosedFormMatrixExponentialDiffusion's mask token is dim − 1.
            "mask_matrix_exponential" => ExponentialFamily::Mask { mask: dim - 1 },
            "uniform_matrix_exponential" => ExponentialFamily::Uniform,
            other => panic!("unknown builder {other}"),
        };
        let tt = inp["num_steps"].as_u64().unwrap() as usize;
        let mut s =
            MutualInformationSchedule::new(family, vec1(&inp["initial_distribution"]), tt).unwrap();
        s.min_exponent = f(&inp["min_exponent"]);
        s.max_exponent = f(&inp["max_exponent"]);
        s.interpolation_steps = inp["interpolation_steps"].as_u64().unwrap() as usize;
        s.override_last_step_to_mask = inp["override_last_step_to_mask"].as_bool().unwrap();
        s.kind = match inp["kind"].as_str().unwrap() {
            "linear" => MutualInformationKind::Linear,
            "cosine" => MutualInformationKind::Cosine,
            other => panic!("unknown MI kind {other}"),
        };
        let r = s.compute().unwrap();
        let e = &c["expected"];
        let t = tol(c);
        assert_close(
            &format!("{name}.query_exponents_first3"),
            &r.query_exponents[..3],
            &vec1(&e["query_exponents_first3"]),
            t,
        );
        assert_close(
            &format!("{name}.information_removals_first3"),
            &r.information_removals[..3],
            &vec1(&e["information_removals_first3"]),
            t,
        );
        assert_close(
            &format!("{name}.schedule_info_removals"),
            &r.schedule_info_removals,
            &vec1(&e["schedule_info_removals"]),
            t,
        );
        assert_close(
            &format!("{name}.exponents"),
            &r.exponents,
            &vec1(&e["exponents"]),
            t,
        );
        if !e["alpha_bar"].is_null() {
            assert_close(
                &format!("{name}.alpha_bar"),
                &r.mask_alpha_bar(),
                &vec1(&e["alpha_bar"]),
                t,
            );
        }
        if !e["alpha_bar_analytic_linear_mi"].is_null() {
            assert_close(
                &format!("{name}.alpha_bar_analytic_linear_mi"),
                &MutualInformationExponents::analytic_linear_mask_alpha_bar(
                    tt,
                    s.override_last_step_to_mask,
                ),
                &vec1(&e["alpha_bar_analytic_linear_mi"]),
                t,
            );
        }
        n += 1;
    }
    assert!(n >= 2);
}
