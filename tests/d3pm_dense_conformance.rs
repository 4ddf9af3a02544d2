//! Conformance of the dense D3PM kernels against `tests/fixtures/anchors/d3pm.json`
//! (google-research `d3pm/images` row-stochastic, `d3pm/text` column-stochastic).
//!
//! Conventions at this boundary (README conventions table):
//! * D3PM images: code `t = 0..T−1` is paper/our step `t + 1`; `q_mats[t] = Q̄_{t+1}`,
//!   `q_probs(x_start, t) = Q̄_{t+1}[x_start, ·]`, `betas[t] = β_{t+1}`.
//! * D3PM text: `get(t) = M_t` is column-stochastic, `M_t = Q_{t+1}ᵀ`; `product[t] = Q̄_tᵀ`.
//!   The anchor FORCES `product[T]` (and `state[T]`) to the stationary matrix; we compute
//!   the true product and check it against `true_product_T`, and check separately that the
//!   anchor's forced value is the stationary matrix.

mod common;

use common::{assert_close, assert_close1, cases, load_anchor, num, tol, vec1, vec2};
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::banded_uniform::{BandedUniform, banded_uniform_matrix};
use discrete_diffusion::kernel::gaussian::{
    DiscretizedGaussian, discretized_logistic_logits, gaussian_profile, gaussian_transition_matrix,
};
use discrete_diffusion::kernel::generator::{
    Generator, MatrixExponentialKernel, exponents_from_betas,
};
use ndarray::Array2;
use serde_json::Value;

fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("integer") as usize
}

fn bands_of(v: &Value) -> Option<usize> {
    v.as_u64().map(|b| b as usize)
}

fn flat(m: &Array2<f64>) -> Vec<f64> {
    m.iter().copied().collect()
}

fn flat2(m: &[Vec<f64>]) -> Vec<f64> {
    m.iter().flatten().copied().collect()
}

/// Full matrix of a kernel's one-step (`cumulative = false`) or cumulative rows.
fn matrix_of(k: &dyn ForwardKernel, t: usize, cumulative: bool) -> Array2<f64> {
    let v = k.vocab_size();
    let mut m = Array2::zeros((v, v));
    let mut row = vec![0.0; v];
    for x in 0..v {
        if cumulative {
            k.cumulative_row(t, x as u32, &mut row).unwrap();
        } else {
            k.step_row(t, x as u32, &mut row).unwrap();
        }
        for (j, &p) in row.iter().enumerate() {
            m[[x, j]] = p;
        }
    }
    m
}

#[test]
fn images_q_gaussian_one_step() {
    let f = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&f, "images_Q_gaussian_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let k = usize_of(&inp["K"]);
        let beta = num(&inp["beta"]);
        let bands = bands_of(&inp["transition_bands"]);
        let stop = num(&inp["linspace_stop"]);
        let t = tol(c);
        let exp = &c["expected"];
        let q = gaussian_transition_matrix(k, beta, bands, stop).unwrap();
        let w = gaussian_profile(k, beta, bands, stop).unwrap();
        if let Some(qe) = exp.get("Q") {
            assert_close(name, &flat(&q), &flat2(&vec2(qe)), t);
            assert_close(&format!("{name} profile"), &w, &vec1(&exp["profile"]), t);
        } else {
            let pf = vec1(&exp["profile_first16"]);
            assert_close(&format!("{name} profile"), &w[..pf.len()], &pf, t);
            let diag: Vec<f64> = (0..k).map(|i| q[[i, i]]).collect();
            assert_close(&format!("{name} diag"), &diag, &vec1(&exp["diag"]), t);
            let r0 = vec1(&exp["row0_first16"]);
            assert_close(
                &format!("{name} row0"),
                &q.row(0).to_vec()[..r0.len()],
                &r0,
                t,
            );
        }
        // The kernel built from this beta uses exactly this matrix.
        let kernel = DiscretizedGaussian::with_linspace_stop(k, &[beta], bands, stop).unwrap();
        assert_close(name, &flat(&matrix_of(&kernel, 1, false)), &flat(&q), t);
        n += 1;
    }
    assert!(n >= 4, "expected the images_Q_gaussian_* cases, found {n}");
}

#[test]
fn text_q_gaussian_precomputed() {
    let f = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&f, "text_Q_gaussian_precomputed_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let dim = usize_of(&inp["dim"]);
        let beta = num(&inp["beta"]);
        assert_eq!(num(&inp["linspace_stop"]), dim as f64);
        let kernel = DiscretizedGaussian::text(dim, &[beta]).unwrap();
        // Column-stochastic in the anchor, but symmetric: compare the transpose anyway.
        let q = matrix_of(&kernel, 1, false).t().to_owned();
        assert_close(name, &flat(&q), &flat2(&vec2(&c["expected"]["Q"])), tol(c));
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn images_q_uniform_banded_one_step() {
    let f = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&f, "images_Q_uniform") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let k = usize_of(&inp["K"]);
        let beta = num(&inp["beta"]);
        let bands = bands_of(&inp["transition_bands"]);
        let q = banded_uniform_matrix(k, beta, bands).unwrap();
        assert_close(name, &flat(&q), &flat2(&vec2(&c["expected"]["Q"])), tol(c));
        let kernel = BandedUniform::new(k, &[beta], bands).unwrap();
        assert_close(
            name,
            &flat(&matrix_of(&kernel, 1, false)),
            &flat(&q),
            tol(c),
        );
        n += 1;
    }
    // images_Q_uniform_banded_* plus the full-band uniform cases (bands = null).
    assert!(n >= 5, "found {n}");
}

#[test]
fn images_logistic_logits() {
    let f = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&f, "images_logistic_logits_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let got = discretized_logistic_logits(
            num(&inp["loc"]),
            num(&inp["log_scale"]),
            usize_of(&inp["K"]),
        )
        .unwrap();
        assert_close(name, &got, &vec1(&c["expected"]["logits"]), tol(c));
        n += 1;
    }
    assert!(n >= 2);
}

/// The dense kernel of an `images_*` case with a gaussian or uniform transition type
/// (absorbing kernels are structured and tested elsewhere).
fn images_kernel(c: &Value) -> Option<Box<dyn ForwardKernel>> {
    let inp = &c["inputs"];
    let k = usize_of(&inp["K"]);
    let betas = vec1(&inp["betas"]);
    let bands = bands_of(&inp["transition_bands"]);
    match inp["transition_mat_type"].as_str().unwrap() {
        "gaussian" => Some(Box::new(
            DiscretizedGaussian::new(k, &betas, bands).unwrap(),
        )),
        "uniform" => Some(Box::new(BandedUniform::new(k, &betas, bands).unwrap())),
        _ => None,
    }
}

#[test]
fn images_qmats() {
    let f = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&f, "images_qmats_") {
        let name = c["name"].as_str().unwrap();
        let Some(kernel) = images_kernel(c) else {
            continue;
        };
        let exp = &c["expected"];
        let onestep = exp["q_onestep_mats"].as_array().unwrap();
        let qmats = exp["q_mats"].as_array().unwrap();
        assert_eq!(onestep.len(), kernel.num_steps());
        for (code_t, (qs, qm)) in onestep.iter().zip(qmats).enumerate() {
            let t = code_t + 1;
            let what = format!("{name} t={code_t}");
            assert_close(
                &what,
                &flat(&matrix_of(kernel.as_ref(), t, false)),
                &flat2(&vec2(qs)),
                tol(c),
            );
            assert_close(
                &what,
                &flat(&matrix_of(kernel.as_ref(), t, true)),
                &flat2(&vec2(qm)),
                tol(c),
            );
        }
        n += 1;
    }
    assert!(n >= 1, "found {n}");
}

#[test]
fn images_q_probs_and_sample_law() {
    let f = load_anchor("d3pm");
    let mut n = 0;
    for prefix in [
        "images_q_probs_gaussian_",
        "images_q_sample_law_gaussian_",
        "images_q_probs_uniform_",
        "images_q_sample_law_uniform_",
    ] {
        for c in cases(&f, prefix) {
            let name = c["name"].as_str().unwrap();
            let kernel = images_kernel(c).unwrap();
            let x0 = usize_of(&c["inputs"]["x_start"]) as u32;
            let t = usize_of(&c["inputs"]["t"]) + 1;
            let mut row = vec![0.0; kernel.vocab_size()];
            kernel.cumulative_row(t, x0, &mut row).unwrap();
            let exp = &c["expected"];
            if let Some(p) = exp.get("probs") {
                assert_close(name, &row, &vec1(p), tol(c));
            } else {
                assert_close(name, &row, &vec1(&exp["q_probs"]), tol(c));
                // The anchor's Gumbel-max on log(q + 1e-6) draws from (q + 1e-6)/Σ(q + 1e-6).
                let z: f64 = row.iter().map(|q| q + 1e-6).sum();
                let law: Vec<f64> = row.iter().map(|q| (q + 1e-6) / z).collect();
                assert_close(name, &law, &vec1(&exp["sample_probs"]), tol(c));
            }
            n += 1;
        }
    }
    assert!(n >= 10, "found {n}");
}

#[test]
fn text_beta_diagonal_and_mask_matrix_exponentials() {
    let f = load_anchor("d3pm");
    let mut n = 0;
    for kind in ["beta_diagonal", "mask"] {
        for c in cases(&f, &format!("text_{kind}_dim")) {
            let name = c["name"].as_str().unwrap();
            if name.contains("_posterior_") {
                continue; // posterior cases belong to the loss/posterior modules
            }
            let inp = &c["inputs"];
            let dim = usize_of(&inp["dim"]);
            let betas = vec1(&inp["betas"]);
            let steps = betas.len();
            let tau = exponents_from_betas(&betas).unwrap();
            let mask = (dim - 1) as u32; // the anchor's mask is the last index
            let kernel = if kind == "mask" {
                MatrixExponentialKernel::absorbing(dim, mask, &tau).unwrap()
            } else {
                MatrixExponentialKernel::uniform(dim, &tau).unwrap()
            };
            let t_ = tol(c);
            let exp = &c["expected"];
            // get(t) = M_t = Q_{t+1}ᵀ.
            for (code_t, m) in exp["get"].as_array().unwrap().iter().enumerate() {
                let q = matrix_of(&kernel, code_t + 1, false);
                assert_close(
                    &format!("{name} get[{code_t}]"),
                    &flat(&q.t().to_owned()),
                    &flat2(&vec2(m)),
                    t_,
                );
            }
            // product[t] = Q̄_tᵀ for t < T (t = 0: identity).
            let product = exp["product"].as_array().unwrap();
            assert_eq!(product.len(), steps + 1);
            for (t, m) in product.iter().enumerate().take(steps) {
                let q = matrix_of(&kernel, t, true);
                assert_close(
                    &format!("{name} product[{t}]"),
                    &flat(&q.t().to_owned()),
                    &flat2(&vec2(m)),
                    t_,
                );
            }
            // Our Q̄_T is the true product; the anchor's product[T] is forced.
            let q_t = matrix_of(&kernel, steps, true).t().to_owned();
            let true_t = flat2(&vec2(&exp["true_product_T"]));
            assert_close(&format!("{name} true_product_T"), &flat(&q_t), &true_t, t_);
            let forced = flat2(&vec2(&product[steps]));
            let stationary_matrix: Vec<f64> = (0..dim * dim)
                .map(|idx| {
                    let (i, _j) = (idx / dim, idx % dim);
                    if kind == "mask" {
                        if i == dim - 1 { 1.0 } else { 0.0 }
                    } else {
                        1.0 / dim as f64
                    }
                })
                .collect();
            assert_close(
                &format!("{name} forced product[T]"),
                &forced,
                &stationary_matrix,
                t_,
            );
            assert!(
                forced
                    .iter()
                    .zip(&true_t)
                    .any(|(a, b)| !common::close(*a, *b, t_)),
                "{name}: the forced product[T] should differ from the true product"
            );
            // state: the anchor's closed-form "stay" probability p_t = Π_{s<t}(1 − β_s)
            // (beta diagonal stores [1 − p, p]); its last entry is forced to p = 0.
            let state = exp["state"].as_array().unwrap();
            for (t, s) in state.iter().enumerate() {
                let p = if t == steps {
                    0.0
                } else {
                    let q = matrix_of(&kernel, t, true);
                    if kind == "mask" {
                        q[[0, 0]]
                    } else {
                        1.0 - dim as f64 * q[[0, 1]]
                    }
                };
                if kind == "mask" {
                    assert_close1(&format!("{name} state[{t}]"), p, num(s), t_);
                } else {
                    assert_close(&format!("{name} state[{t}]"), &[1.0 - p, p], &vec1(s), t_);
                }
            }
            n += 1;
        }
    }
    assert!(n >= 2, "found {n}");
}

#[test]
fn text_mutual_information_mask_alpha_bar_from_exponents() {
    // The schedule's cumulative exponents S_t drive exp(S_t R) with the absorbing generator:
    // the keep probability Q̄_t[x, x] (x ≠ mask) is alpha_bar_t = e^{−S_t}.
    let f = load_anchor("d3pm");
    let mut n = 0;
    for c in cases(&f, "text_mutual_information_schedule_mask_") {
        let name = c["name"].as_str().unwrap();
        let dim = usize_of(&c["inputs"]["dim"]);
        let exps = vec1(&c["expected"]["exponents"]);
        let mut prior = vec![0.0; dim];
        prior[dim - 1] = 1.0;
        let g = Generator::absorbing(dim, (dim - 1) as u32).unwrap();
        let kernel = MatrixExponentialKernel::from_cumulative_exponents(g, &exps, &prior).unwrap();
        let got: Vec<f64> = (0..exps.len())
            .map(|t| matrix_of(&kernel, t, true)[[0, 0]])
            .collect();
        assert_close(name, &got, &vec1(&c["expected"]["alpha_bar"]), tol(c));
        n += 1;
    }
    assert!(n >= 1);
}
