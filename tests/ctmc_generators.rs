//! CTMC generators: tauLDR/SEDD conformance, Kolmogorov forward equation by finite
//! differences for every generator, and closed form ≡ eigen ≡ Padé.
#![allow(clippy::needless_range_loop)] // index arithmetic mirrors the formulas

mod common;

use common::*;
use discrete_diffusion::kernel::ctmc::dense::DenseGenerator;
use discrete_diffusion::kernel::ctmc::ordinal::{ExponentialRate, birth_death, gaussian_target};
use discrete_diffusion::kernel::ctmc::{
    Ctmc, MixtureGenerator, RateGenerator, concrete_score_from_x0, reverse_rate_row,
};
use discrete_diffusion::kernel::generator::{ExpRoute, Generator};
use discrete_diffusion::schedule::{Geometric, LinearTotalNoise, LogLinear, Schedule};
use ndarray::Array2;
use serde_json::Value;

fn tauldr_process(case: &Value) -> (Box<dyn RateGenerator>, Box<dyn Schedule>) {
    let inp = &case["inputs"];
    let s = inp["S"].as_u64().unwrap() as usize;
    let p = &inp["params"];
    match inp["process"].as_str().unwrap() {
        "birth_death" => (
            Box::new(birth_death(s).unwrap()),
            Box::new(
                ExponentialRate::birth_death(num(&p["sigma_min"]), num(&p["sigma_max"])).unwrap(),
            ),
        ),
        "gaussian_target" => (
            Box::new(gaussian_target(s, num(&p["rate_sigma"]), num(&p["Q_sigma"])).unwrap()),
            Box::new(
                ExponentialRate::gaussian_target(num(&p["time_base"]), num(&p["time_exponential"]))
                    .unwrap(),
            ),
        ),
        "uniform" => (
            Box::new(MixtureGenerator::uniform(s).unwrap()),
            Box::new(LinearTotalNoise::new(0.0, num(&p["rate_const"]) * s as f64).unwrap()),
        ),
        other => panic!("unknown process {other}"),
    }
}

#[test]
fn tauldr_forward_processes() {
    let f = load_anchor("tauldr");
    let mut n = 0;
    for case in cases(&f, "forward_") {
        let tl = tol(case);
        let (g, sch) = tauldr_process(case);
        let ctmc = Ctmc::new(&*g, &*sch);
        let v = g.vocab_size();
        let exp = &case["expected"];
        if let Some(base) = exp.get("base_rate") {
            let base = vec2(base);
            let mut row = vec![0.0; v];
            for x in 0..v {
                g.rate_row(x as u32, &mut row).unwrap();
                assert_close("base_rate", &row, &base[x], tl);
            }
        }
        for (key, per) in exp["per_t"].as_object().unwrap() {
            let t: f64 = key.parse().unwrap();
            let sc = vec1(&exp["rate_scalar_and_integral"][key]);
            assert_close1("beta", ctmc.noise_rate(t).unwrap(), sc[0], tl);
            assert_close1("int beta", ctmc.total_noise(t).unwrap(), sc[1], tl);
            let rate = vec2(&per["rate"]);
            let trans = vec2(&per["transition_exact"]);
            let mut row = vec![0.0; v];
            for x in 0..v {
                ctmc.rate_row(x as u32, t, &mut row).unwrap();
                assert_close("rate", &row, &rate[x], tl);
                ctmc.marginal_row(x as u32, t, &mut row).unwrap();
                assert_close(
                    &format!("{} t={t} row {x}", case["name"]),
                    &row,
                    &trans[x],
                    tl,
                );
            }
        }
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn tauldr_exact_time_reversal() {
    let f = load_anchor("tauldr");
    let mut n = 0;
    for case in cases(&f, "exact_time_reversal_") {
        let tl = tol(case);
        let (g, sch) = tauldr_process(case);
        let ctmc = Ctmc::new(&*g, &*sch);
        let v = g.vocab_size();
        let t = num(&case["inputs"]["t"]);
        let p0 = vec1(&case["inputs"]["p_data"]);
        let mut pt = vec![0.0; v];
        ctmc.marginal_vecmat(&p0, t, &mut pt).unwrap();
        assert_close("p_t", &pt, &vec1(&case["expected"]["p_t"]), tl);
        let want = vec2(&case["expected"]["reverse_rate_matrix"]);
        let (sb, sigma) = (ctmc.total_noise(t).unwrap(), ctmc.noise_rate(t).unwrap());
        let (mut col, mut post, mut ratio, mut scratch, mut out) = (
            vec![0.0; v],
            vec![0.0; v],
            vec![0.0; v],
            vec![0.0; v],
            vec![0.0; v],
        );
        for x in 0..v {
            // Exact posterior p(x0 | x_t = x) by Bayes, then the score and the reverse rates.
            ctmc.marginal_col(x as u32, t, &mut col).unwrap();
            for k in 0..v {
                post[k] = p0[k] * col[k] / pt[x];
            }
            concrete_score_from_x0(&*g, sb, x as u32, &post, &mut scratch, &mut ratio).unwrap();
            reverse_rate_row(&*g, sigma, x as u32, &ratio, &mut scratch, &mut out).unwrap();
            out[x] = 0.0; // the anchor reports the diagonal as 0
            assert_close(&format!("{} x={x}", case["name"]), &out, &want[x], tl);
        }
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn sedd_graphs_column_convention() {
    let f = load_anchor("sedd");
    let mut n = 0;
    for case in cases(&f, "graph_") {
        let tl = tol(case);
        let inp = &case["inputs"];
        let nt = inp["n_tokens"].as_u64().unwrap() as usize;
        let g = match inp["graph"].as_str().unwrap() {
            "uniform" => MixtureGenerator::uniform(nt).unwrap(),
            _ => MixtureGenerator::absorbing(nt + 1, nt as u32).unwrap(),
        };
        let v = g.vocab_size();
        let exp = &case["expected"];
        let q = vec2(&exp["Q"]); // column convention: Q[y][x] = rate x → y
        let mut row = vec![0.0; v];
        for x in 0..v {
            g.rate_row(x as u32, &mut row).unwrap();
            let col: Vec<f64> = (0..v).map(|y| q[y][x]).collect();
            assert_close("Q", &row, &col, tl);
        }
        assert_close("limit", g.pi(), &vec1(&exp["limit_probs"]), tl);
        for (key, per) in exp["per_sigma"].as_object().unwrap() {
            let s: f64 = key.parse().unwrap();
            let e = vec2(&per["expm_sigmaQ"]);
            for x in 0..v {
                g.transition_row(x as u32, s, &mut row).unwrap();
                let col: Vec<f64> = (0..v).map(|y| e[y][x]).collect();
                assert_close("expm", &row, &col, tl);
            }
        }
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn sedd_reverse_rate() {
    let f = load_anchor("sedd");
    for case in cases(&f, "reverse_rate_") {
        let tl = tol(case);
        let inp = &case["inputs"];
        let nt = inp["n_tokens"].as_u64().unwrap() as usize;
        let g = match inp["graph"].as_str().unwrap() {
            "uniform" => MixtureGenerator::uniform(nt).unwrap(),
            _ => MixtureGenerator::absorbing(nt + 1, nt as u32).unwrap(),
        };
        let v = g.vocab_size();
        let x = inp["x"].as_u64().unwrap() as u32;
        let score = vec1(&inp["score"]);
        let (mut scratch, mut out) = (vec![0.0; v], vec![0.0; v]);
        reverse_rate_row(&g, 1.0, x, &score, &mut scratch, &mut out).unwrap();
        assert_close(
            "reverse_rate",
            &out,
            &vec1(&case["expected"]["reverse_rate"]),
            tl,
        );
    }
}

/// A random reversible-free general generator and a random symmetric one.
fn random_generators(v: usize, seed: u64) -> (Generator, Generator) {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut a = Array2::zeros((v, v));
    let mut s = Array2::zeros((v, v));
    for i in 0..v {
        for j in 0..v {
            if i != j {
                a[[i, j]] = 2.0 * next();
            }
            if i < j {
                let w = next();
                s[[i, j]] = w;
                s[[j, i]] = w;
            }
        }
    }
    for m in [&mut a, &mut s] {
        for i in 0..v {
            m[[i, i]] = 0.0;
            m[[i, i]] = -m.row(i).sum();
        }
    }
    (Generator::new(a).unwrap(), Generator::new(s).unwrap())
}

fn all_generators() -> Vec<(String, Box<dyn RateGenerator>)> {
    let (gen_a, gen_s) = random_generators(5, 7);
    vec![
        (
            "uniform".into(),
            Box::new(MixtureGenerator::uniform(5).unwrap()),
        ),
        (
            "absorbing".into(),
            Box::new(MixtureGenerator::absorbing(5, 1).unwrap()),
        ),
        (
            "marginal".into(),
            Box::new(MixtureGenerator::marginal(vec![0.1, 0.2, 0.3, 0.15, 0.25]).unwrap()),
        ),
        ("birth_death".into(), Box::new(birth_death(6).unwrap())),
        (
            "gaussian_target".into(),
            Box::new(gaussian_target(8, 2.0, 4.0).unwrap()),
        ),
        (
            "dense_general".into(),
            Box::new(DenseGenerator::new(gen_a).unwrap()),
        ),
        (
            "dense_symmetric".into(),
            Box::new(DenseGenerator::new(gen_s).unwrap()),
        ),
        (
            "dense_absorbing_pade".into(),
            Box::new(DenseGenerator::new(Generator::absorbing(4, 3).unwrap()).unwrap()),
        ),
    ]
}

fn all_schedules() -> Vec<Box<dyn Schedule>> {
    vec![
        Box::new(LogLinear::new(1e-3).unwrap()),
        Box::new(Geometric::new(1e-3, 5.0).unwrap()),
        Box::new(ExponentialRate::gaussian_target(0.5, 10.0).unwrap()),
    ]
}

/// dp_t/dt = p_t Q_t, with a fourth-order central difference in t.
#[test]
fn kolmogorov_forward_equation_every_generator() {
    for (name, g) in all_generators() {
        let v = g.vocab_size();
        let p0: Vec<f64> = (0..v).map(|i| (i + 1) as f64).collect();
        let z: f64 = p0.iter().sum();
        let p0: Vec<f64> = p0.iter().map(|p| p / z).collect();
        for sch in all_schedules() {
            let ctmc = Ctmc::new(&*g, &*sch);
            let law = |t: f64| {
                let mut out = vec![0.0; v];
                ctmc.marginal_vecmat(&p0, t, &mut out).unwrap();
                out
            };
            for &t in &[0.2, 0.5, 0.8] {
                let h = 1e-3;
                let (a, b, c, d) = (law(t - 2.0 * h), law(t - h), law(t + h), law(t + 2.0 * h));
                let pt = law(t);
                let mut rhs = vec![0.0; v];
                let mut row = vec![0.0; v];
                for x in 0..v {
                    ctmc.rate_row(x as u32, t, &mut row).unwrap();
                    for y in 0..v {
                        rhs[y] += pt[x] * row[y];
                    }
                }
                let scale = rhs.iter().fold(1.0f64, |m, r| m.max(r.abs()));
                for y in 0..v {
                    let fd = (a[y] - 8.0 * b[y] + 8.0 * c[y] - d[y]) / (12.0 * h);
                    assert!(
                        (fd - rhs[y]).abs() < 1e-7 * scale,
                        "{name} {} t={t} y={y}: fd {fd} vs pQ {}",
                        sch.name(),
                        rhs[y]
                    );
                }
                let total: f64 = pt.iter().sum();
                assert!((total - 1.0).abs() < 1e-12, "{name}: mass {total}");
            }
        }
    }
}

#[test]
fn closed_form_eigen_and_pade_agree() {
    let (_, gen_s) = random_generators(6, 11);
    let cases: Vec<(Generator, Option<MixtureGenerator>)> = vec![
        (
            Generator::uniform(6).unwrap(),
            Some(MixtureGenerator::uniform(6).unwrap()),
        ),
        (gen_s, None),
        (birth_death(6).unwrap().generator().clone(), None),
    ];
    for (g, closed) in cases {
        let e = DenseGenerator::with_route(g.clone(), ExpRoute::Eigen).unwrap();
        let p = DenseGenerator::with_route(g, ExpRoute::Pade).unwrap();
        let (mut a, mut b, mut c) = (vec![0.0; 6], vec![0.0; 6], vec![0.0; 6]);
        for &s in &[1e-8, 0.1, 1.0, 7.0, 40.0] {
            for x in 0..6 {
                e.transition_row(x, s, &mut a).unwrap();
                p.transition_row(x, s, &mut b).unwrap();
                assert_close("eigen vs pade", &a, &b, (1e-12, 1e-10));
                e.transition_col(x, s, &mut a).unwrap();
                p.transition_col(x, s, &mut b).unwrap();
                assert_close("cols", &a, &b, (1e-12, 1e-10));
                if let Some(m) = &closed {
                    m.transition_row(x, s, &mut c).unwrap();
                    e.transition_row(x, s, &mut a).unwrap();
                    assert_close("closed vs eigen", &a, &c, (1e-13, 1e-12));
                }
            }
            let q = [0.1, 0.0, 0.4, 0.2, 0.2, 0.1];
            e.transition_vecmat(&q, s, &mut a).unwrap();
            p.transition_vecmat(&q, s, &mut b).unwrap();
            assert_close("vecmat", &a, &b, (1e-12, 1e-10));
        }
    }
}

#[test]
fn exponential_rate_schedule_is_consistent() {
    let s = ExponentialRate::birth_death(1.0, 10.0).unwrap();
    assert_eq!(s.total_noise(0.0).unwrap(), 0.0);
    for &t in &[0.1, 0.4, 0.9] {
        let h = 1e-6;
        let fd = (s.total_noise(t + h).unwrap() - s.total_noise(t - h).unwrap()) / (2.0 * h);
        assert!((fd - s.noise_rate(t).unwrap()).abs() < 1e-6 * fd);
        let a = s.alpha(t).unwrap();
        assert!((s.time_of_alpha(a).unwrap() - t).abs() < 1e-12);
        let da = (s.alpha(t + h).unwrap() - s.alpha(t - h).unwrap()) / (2.0 * h);
        assert!((da - s.alpha_derivative(t).unwrap()).abs() < 1e-6 * da.abs().max(1e-12));
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(birth_death(1).is_err());
    assert!(gaussian_target(1, 2.0, 4.0).is_err());
    assert!(gaussian_target(8, 0.0, 4.0).is_err());
    assert!(gaussian_target(8, 2.0, f64::NAN).is_err());
    assert!(ExponentialRate::new(0.0, 2.0).is_err());
    assert!(ExponentialRate::new(1.0, 1.0).is_err());
    assert!(ExponentialRate::new(f64::INFINITY, 2.0).is_err());
    assert!(ExponentialRate::birth_death(2.0, 1.0).is_err());
    assert!(ExponentialRate::birth_death(-1.0, 1.0).is_err());
    let s = ExponentialRate::new(1.0, 2.0).unwrap();
    assert!(s.total_noise(1.5).is_err());
    assert!(s.time_of_alpha(2.0).is_err());
    assert!(s.time_of_alpha(1e-300).is_err());
    let g = gaussian_target(4, 2.0, 4.0).unwrap();
    let mut out = [0.0; 4];
    assert!(g.transition_row(4, 1.0, &mut out).is_err());
    assert!(g.transition_row(0, -1.0, &mut out).is_err());
    // Reversible route: s = ∞ is the stationary law; Padé knows no limit.
    g.transition_row(0, f64::INFINITY, &mut out).unwrap();
    let pi = g.stationary().unwrap();
    assert!(out.iter().zip(&pi).all(|(a, b)| (a - b).abs() < 1e-13));
    let pade = discrete_diffusion::kernel::ctmc::dense::DenseGenerator::with_route(
        g.generator().clone(),
        discrete_diffusion::kernel::generator::ExpRoute::Pade,
    )
    .unwrap();
    assert!(pade.transition_row(0, f64::INFINITY, &mut out).is_err());
    assert!(g.transition_row(0, 1.0, &mut [0.0; 3]).is_err());
    assert!(g.transition_col(9, 1.0, &mut out).is_err());
    assert!(
        g.transition_vecmat(&[0.1, f64::NAN, 0.0, 0.0], 1.0, &mut out)
            .is_err()
    );
    assert!(g.transition_vecmat(&[0.1; 3], 1.0, &mut out).is_err());
    assert!(g.rate_row(4, &mut out).is_err());
    assert!(g.rate_col(4, &mut out).is_err());
    let b = birth_death(4).unwrap();
    assert!(b.transition_row(0, f64::NAN, &mut out).is_err());
    b.transition_row(0, f64::INFINITY, &mut out).unwrap();
    assert!(out.iter().all(|&q| (q - 0.25).abs() < 1e-13));
}
