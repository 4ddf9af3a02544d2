//! Discrete flow matching against facebookresearch/flow_matching 1.0.10
//! (`tests/fixtures/anchors/flow_matching.json`; time `t` there is our flow time `s`,
//! `κ_s = alpha_t`): schedulers through the `Kappa` constructors, the mixture path's law,
//! posterior → velocity, the generalised KL loss, and one solver step (with and without the
//! divergence-free term).

mod common;

use common::{assert_close, assert_close1, cases, load_anchor, num, tol, vec1, vec2};
use discrete_diffusion::backend::steps::JumpRule;
use discrete_diffusion::kernel::path::{MixturePath, SourceLaw};
use discrete_diffusion::loss::flow::generalized_kl_batch;
use discrete_diffusion::param::velocity::forward_velocity_from_logits;
use discrete_diffusion::schedule::{Kappa, Schedule};
use ndarray::{Array1, Array2, Array3};
use serde_json::Value;

fn kappa_of(c: &Value) -> Kappa<Box<dyn Schedule>> {
    let inp = &c["inputs"];
    let kind = inp
        .get("scheduler")
        .or_else(|| inp.get("kind"))
        .and_then(Value::as_str)
        .unwrap();
    match kind {
        "condot" => Kappa::convex(Box::new(*Kappa::cond_ot().schedule())),
        "polynomial" => Kappa::convex(Box::new(
            *Kappa::polynomial(num(&inp["n"])).unwrap().schedule(),
        )),
        "cosine" => Kappa::convex(Box::new(*Kappa::cosine().schedule())),
        other => panic!("scheduler {other}"),
    }
}

fn vocab(c: &Value) -> usize {
    num(&c["inputs"]["V"]) as usize
}

#[test]
fn convex_schedulers_and_jump_coefficients() {
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "scheduler_") {
        let kind = c["inputs"]["kind"].as_str().unwrap();
        if kind != "polynomial" && kind != "cosine" {
            continue; // VP schedulers define no mixture path (covered in schedule_conformance)
        }
        let name = c["name"].as_str().unwrap();
        let k = kappa_of(c);
        let (t, e) = (vec1(&c["inputs"]["t"]), &c["expected"]);
        let a: Vec<f64> = t.iter().map(|&s| k.kappa(s).unwrap()).collect();
        let da: Vec<f64> = t.iter().map(|&s| k.kappa_derivative(s).unwrap()).collect();
        assert_close(&format!("{name} alpha_t"), &a, &vec1(&e["alpha_t"]), tol(c));
        assert_close(
            &format!("{name} d_alpha_t"),
            &da,
            &vec1(&e["d_alpha_t"]),
            tol(c),
        );
        // The jump coefficients are the ratios of the anchor's quantities.
        for ((&s, &al), &d) in t
            .iter()
            .zip(&vec1(&e["alpha_t"]))
            .zip(&vec1(&e["d_alpha_t"]))
        {
            assert_close1(name, k.forward_rate(s).unwrap(), d / (1.0 - al), tol(c));
            if al > 0.0 {
                assert_close1(name, k.backward_rate(s).unwrap(), d / al, tol(c));
            }
        }
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn mixture_path_sample_law() {
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "path_sample_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let v = vocab(c);
        let path = MixturePath::new(kappa_of(c), SourceLaw::Uniform, v).unwrap();
        let mut p = vec![0.0; v];
        let (x0, x1) = (num(&inp["x_0"]) as u32, num(&inp["x_1"]) as u32);
        let k = path
            .probs_given_endpoints(num(&inp["t"]), x0, x1, &mut p)
            .unwrap();
        assert_close1(name, k, num(&c["expected"]["kappa"]), tol(c));
        assert_close(name, &p, &vec1(&c["expected"]["probs_x_t"]), tol(c));
        n += 1;
    }
    assert!(n >= 4);
}

#[test]
fn posterior_to_velocity() {
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "posterior_to_velocity_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let logits = vec1(&inp["posterior_logits"]);
        let mut u = vec![0.0; logits.len()];
        forward_velocity_from_logits(
            &kappa_of(c),
            num(&inp["t"]),
            num(&inp["x_t"]) as u32,
            &logits,
            &mut u,
        )
        .unwrap();
        assert_close(name, &u, &vec1(&c["expected"]["velocity"]), tol(c));
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn generalized_kl_loss() {
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "generalized_kl_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let rows: Vec<Vec<Vec<f64>>> = inp["logits"].as_array().unwrap().iter().map(vec2).collect();
        let (b, l, v) = (rows.len(), rows[0].len(), rows[0][0].len());
        let logits = Array3::from_shape_fn((b, l, v), |(i, j, k)| rows[i][j][k]);
        let tok = |key: &str| {
            let m = vec2(&inp[key]);
            Array2::from_shape_fn((b, l), |(i, j)| m[i][j] as u32)
        };
        let s = Array1::from(vec1(&inp["t"]));
        let d = generalized_kl_batch(
            &kappa_of(c),
            logits.view(),
            tok("x_1").view(),
            tok("x_t").view(),
            s.view(),
            None,
        )
        .unwrap();
        let want: Vec<f64> = vec2(&c["expected"]["loss_none"]).concat();
        assert_close(name, d.as_slice().unwrap(), &want, tol(c));
        assert_close1(name, d.sum(), num(&c["expected"]["loss_sum"]), tol(c));
        assert_close1(
            name,
            d.mean().unwrap(),
            num(&c["expected"]["loss_mean"]),
            tol(c),
        );
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn euler_step_laws_with_and_without_div_free() {
    let file = load_anchor("flow_matching");
    let mut n = 0;
    for c in cases(&file, "euler_step_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let v = vocab(c);
        let source = match inp["source_distribution_p"].as_array() {
            Some(_) => SourceLaw::Distribution(vec1(&inp["source_distribution_p"])),
            None => SourceLaw::Uniform,
        };
        let path = MixturePath::new(kappa_of(c), source, v).unwrap();
        let (s, h, c_df) = (num(&inp["t"]), num(&inp["h"]), num(&inp["div_free"]));
        let z = num(&inp["x_t"]) as u32;
        let e = &c["expected"];
        let vel = vec2(&e["velocity_given_x1"]);
        let inten = vec1(&e["intensity_given_x1"]);
        let given = vec2(&e["probs_given_x1"]);
        let mut u = vec![0.0; v];
        let mut law = vec![0.0; v];
        for x1 in 0..v {
            let lam = path
                .conditional_velocity(s, z, x1 as u32, c_df, &mut u)
                .unwrap();
            assert_close1(&format!("{name} λ | x1={x1}"), lam, inten[x1], tol(c));
            u[z as usize] = 0.0; // the anchor's u[x_t] := 0 (ours holds −λ)
            assert_close(&format!("{name} u | x1={x1}"), &u, &vel[x1], tol(c));
            path.step_law_given_data(
                s,
                s + h,
                z,
                x1 as u32,
                c_df,
                JumpRule::Exponential,
                &mut law,
            )
            .unwrap();
            assert_close(&format!("{name} law | x1={x1}"), &law, &given[x1], tol(c));
        }
        path.step_law(
            s,
            s + h,
            z,
            &vec1(&inp["p_1t"]),
            c_df,
            JumpRule::Exponential,
            &mut law,
        )
        .unwrap();
        assert_close(name, &law, &vec1(&e["probs"]), tol(c));
        n += 1;
    }
    assert!(n >= 6);
}
