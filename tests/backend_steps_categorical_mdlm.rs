//! Behaviour tests of the fused categorical and MDLM steps over the reference backend: laws
//! against the anchors (χ² with statrs quantiles), rows read, batch-permutation invariance,
//! bad input.

mod common;
mod steps_common;

use common::{cases, load_anchor, num, vec1};
use discrete_diffusion::Error;
use discrete_diffusion::backend::RowSpec;
use discrete_diffusion::backend::steps::{
    MdlmStep, StepRng, mdlm_ancestral_step, mdlm_stay_probability, sample_categorical,
};
use discrete_diffusion::rng::Purpose;
use discrete_diffusion::schedule::{LogLinear, MdlmCosine, Polynomial, Schedule};
use ndarray::{Array2, Array3, s};
use serde_json::Value;
use steps_common::*;

// ---------------------------------------------------------------------------------------
// Plain categorical sampling
// ---------------------------------------------------------------------------------------

#[test]
fn categorical_law_temperature_and_logprob() {
    let row = [0.3, -1.0, 1.2, 2.0, 0.0];
    let (b, l) = (2, 6000);
    let logits = tiled(&row, b, l);
    let st = streams(b);
    let rng = StepRng {
        seed: 11,
        streams: &st,
        step: 3,
    };
    let spec = RowSpec {
        temperature: 0.7,
        excluded: vec![3],
        ..RowSpec::default()
    };
    let mut tokens = Array2::<u32>::zeros((b, l));
    let out = sample_categorical(&BK, logits.view(), None, &spec, &rng, tokens.view_mut()).unwrap();
    assert_eq!(out.commits.len(), b * l);
    let mut tempered: Vec<f64> = row.iter().map(|x| x / 0.7).collect();
    tempered[3] = f64::NEG_INFINITY;
    assert_chi2(
        "categorical τ=0.7",
        &histogram(&tokens, 5),
        &softmax(&tempered),
    );
    // Log-probabilities are untempered, over the allowed ids.
    let mut untempered = row.to_vec();
    untempered[3] = f64::NEG_INFINITY;
    let p = softmax(&untempered);
    for c in out.commits.iter().take(50) {
        assert_eq!(tokens[[c.seq, c.pos]], c.token);
        assert!((c.logprob - p[c.token as usize].ln()).abs() < 1e-6);
    }
}

#[test]
fn categorical_greedy_select_and_permutation() {
    let (b, l, v) = (3, 5, 4);
    let mut logits = Array3::from_shape_fn((b, l, v), |(bi, i, k)| {
        ((bi * 7 + i * 3 + k * 5) % 11) as f32 * 0.3
    });
    let mut select = Array2::from_elem((b, l), true);
    select[[1, 2]] = false;
    logits.slice_mut(s![1, 2, ..]).fill(f32::NAN); // an unselected row is never read
    let st = streams(b);
    let rng = StepRng {
        seed: 5,
        streams: &st,
        step: 0,
    };
    let mut tokens = Array2::from_elem((b, l), 99u32);
    let greedy = RowSpec {
        temperature: 0.0,
        ..RowSpec::default()
    };
    sample_categorical(
        &BK,
        logits.view(),
        Some(select.view()),
        &greedy,
        &rng,
        tokens.view_mut(),
    )
    .unwrap();
    assert_eq!(tokens[[1, 2]], 99);
    for bi in 0..b {
        for i in 0..l {
            if select[[bi, i]] {
                let r = logits.slice(s![bi, i, ..]);
                let am = (0..v).fold(0, |a, k| if r[k] > r[a] { k } else { a });
                assert_eq!(tokens[[bi, i]], am as u32);
            }
        }
    }
    // Batch permutation: rows carry their stream, so the draws follow them.
    let spec = RowSpec::default();
    let mut t1 = Array2::<u32>::zeros((b, l));
    sample_categorical(
        &BK,
        logits.view(),
        Some(select.view()),
        &spec,
        &rng,
        t1.view_mut(),
    )
    .unwrap();
    let perm = [2usize, 0, 1];
    let lp = Array3::from_shape_fn((b, l, v), |(bi, i, k)| logits[[perm[bi], i, k]]);
    let sp = Array2::from_shape_fn((b, l), |(bi, i)| select[[perm[bi], i]]);
    let stp: Vec<u64> = perm.iter().map(|&p| st[p]).collect();
    let rngp = StepRng {
        streams: &stp,
        ..rng
    };
    let mut t2 = Array2::<u32>::zeros((b, l));
    sample_categorical(&BK, lp.view(), Some(sp.view()), &spec, &rngp, t2.view_mut()).unwrap();
    for (bi, &p) in perm.iter().enumerate() {
        assert_eq!(t2.row(bi), t1.row(p));
    }
}

#[test]
fn categorical_bad_input() {
    let logits = Array3::<f32>::zeros((2, 3, 4));
    let st = streams(2);
    let rng = StepRng {
        seed: 0,
        streams: &st,
        step: 0,
    };
    let spec = RowSpec::default();
    let mut t = Array2::<u32>::zeros((2, 3));
    let mut wrong = Array2::<u32>::zeros((2, 2));
    assert!(is_invalid(sample_categorical(
        &BK,
        logits.view(),
        None,
        &spec,
        &rng,
        wrong.view_mut()
    )));
    let short = StepRng {
        streams: &st[..1],
        ..rng
    };
    assert!(is_invalid(sample_categorical(
        &BK,
        logits.view(),
        None,
        &spec,
        &short,
        t.view_mut()
    )));
    let bad_t = RowSpec {
        temperature: f64::NAN,
        ..RowSpec::default()
    };
    assert!(is_invalid(sample_categorical(
        &BK,
        logits.view(),
        None,
        &bad_t,
        &rng,
        t.view_mut()
    )));
    let sel = Array2::from_elem((3, 2), true);
    assert!(is_invalid(sample_categorical(
        &BK,
        logits.view(),
        Some(sel.view()),
        &spec,
        &rng,
        t.view_mut()
    )));
    let mut nan = logits.clone();
    nan[[0, 1, 2]] = f32::NAN;
    t.fill(7);
    assert!(is_invalid(sample_categorical(
        &BK,
        nan.view(),
        None,
        &spec,
        &rng,
        t.view_mut()
    )));
    assert!(t.iter().all(|&x| x == 7), "tokens unchanged on error");
    let empty = Array3::<f32>::zeros((0, 3, 4));
    let mut t0 = Array2::<u32>::zeros((0, 3));
    let no = StepRng {
        streams: &[],
        ..rng
    };
    assert!(is_invalid(sample_categorical(
        &BK,
        empty.view(),
        None,
        &spec,
        &no,
        t0.view_mut()
    )));
}

// ---------------------------------------------------------------------------------------
// MDLM ancestral step
// ---------------------------------------------------------------------------------------

fn mdlm_schedule(c: &Value) -> Box<dyn Schedule> {
    let eps = num(&c["inputs"]["params"]["eps"]);
    match c["inputs"]["schedule"].as_str().unwrap() {
        "loglinear" => Box::new(LogLinear::new(eps).unwrap()),
        "cosine" => Box::new(MdlmCosine::new(eps).unwrap()),
        other => panic!("schedule {other}"),
    }
}

#[test]
fn mdlm_step_matches_anchor_laws() {
    let file = load_anchor("mdlm");
    let mut n = 0;
    for c in cases(&file, "samplers_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let sch = mdlm_schedule(c);
        let (t, dt) = (num(&inp["t"]), num(&inp["dt"]));
        let mask = num(&inp["mask_index"]) as u32;
        let x = num(&inp["x"]) as u32;
        let row = vec1(&inp["logits"]);
        let exp = vec1(&c["expected"]["ddpm_probs"]);
        let params = MdlmStep {
            mask_id: mask,
            t,
            s: t - dt,
        };
        let stay = mdlm_stay_probability(&*sch, t, t - dt).unwrap();
        if x == mask {
            assert!(
                (stay - exp[mask as usize]).abs() < 1e-9,
                "{name}: stay {stay}"
            );
        }
        let (b, l) = (2, 8000);
        let logits = tiled(&row, b, l);
        let mut tokens = Array2::from_elem((b, l), x);
        let st = streams(b);
        let rng = StepRng {
            seed: 42,
            streams: &st,
            step: 9,
        };
        let out = mdlm_ancestral_step(&BK, &*sch, logits.view(), tokens.view_mut(), &params, &rng)
            .unwrap();
        if x != mask {
            assert!(tokens.iter().all(|&y| y == x), "{name}: carry-over");
            assert_eq!(out.rows_read(), 0);
        } else {
            assert_eq!(out.rows_read(), out.commits.len());
            assert_chi2(name, &histogram(&tokens, row.len()), &exp);
        }
        n += 1;
    }
    assert!(n >= 4);
}

/// The decision uniforms the MDLM/DFM steps use.
fn decisions(st: &[u64], seed: u64, step: u32, b: usize, l: usize) -> Array2<f64> {
    let rng = StepRng {
        seed,
        streams: st,
        step,
    };
    Array2::from_shape_fn((b, l), |(bi, i)| {
        rng.uniform(Purpose::ROUTING, bi, i).unwrap()
    })
}

#[test]
fn mdlm_step_reads_only_unmasking_rows_and_is_permutation_invariant() {
    let (b, l, v) = (3, 40, 7);
    let mask = 2u32; // not the last id
    let sch = LogLinear::new(1e-3).unwrap();
    let params = MdlmStep {
        mask_id: mask,
        t: 0.6,
        s: 0.4,
    };
    let stay = mdlm_stay_probability(&sch, 0.6, 0.4).unwrap();
    let st = streams(b);
    let (seed, step) = (3, 17);
    let u = decisions(&st, seed, step, b, l);
    let tokens0 = Array2::from_shape_fn((b, l), |(bi, i)| {
        if (bi + i) % 3 == 0 {
            ((bi + i) % (v - 1)) as u32 | 1
        } else {
            mask
        }
    });
    let mut logits = Array3::from_shape_fn((b, l, v), |(bi, i, k)| {
        (((bi * 13 + i * 5 + k * 3) % 17) as f32) * 0.25 - 2.0
    });
    let mut expect_read = Array2::from_elem((b, l), false);
    for ((bi, i), &x) in tokens0.indexed_iter() {
        if x == mask && u[[bi, i]] >= stay {
            expect_read[[bi, i]] = true;
        } else {
            logits.slice_mut(s![bi, i, ..]).fill(f32::NAN);
        }
    }
    let rng = StepRng {
        seed,
        streams: &st,
        step,
    };
    let mut tokens = tokens0.clone();
    let out =
        mdlm_ancestral_step(&BK, &sch, logits.view(), tokens.view_mut(), &params, &rng).unwrap();
    assert_eq!(out.read, expect_read);
    assert!(out.commits.len() > 5 && out.commits.len() < 60);
    for ((bi, i), &x) in tokens.indexed_iter() {
        if expect_read[[bi, i]] {
            assert_ne!(x, mask, "the mask is never drawn");
        } else {
            assert_eq!(x, tokens0[[bi, i]], "untouched");
        }
    }
    // Permute the batch (with the streams): every sequence gets the same tokens.
    let perm = [1usize, 2, 0];
    let lp = Array3::from_shape_fn((b, l, v), |(bi, i, k)| logits[[perm[bi], i, k]]);
    let mut tp = Array2::from_shape_fn((b, l), |(bi, i)| tokens0[[perm[bi], i]]);
    let stp: Vec<u64> = perm.iter().map(|&p| st[p]).collect();
    let rngp = StepRng {
        streams: &stp,
        ..rng
    };
    mdlm_ancestral_step(&BK, &sch, lp.view(), tp.view_mut(), &params, &rngp).unwrap();
    for (bi, &p) in perm.iter().enumerate() {
        assert_eq!(tp.row(bi), tokens.row(p));
    }
}

#[test]
fn mdlm_step_bad_input() {
    let sch = LogLinear::new(1e-3).unwrap();
    let logits = Array3::<f32>::zeros((1, 4, 5));
    let st = streams(1);
    let rng = StepRng {
        seed: 0,
        streams: &st,
        step: 0,
    };
    let ok = MdlmStep {
        mask_id: 4,
        t: 0.5,
        s: 0.25,
    };
    let mut t = Array2::from_elem((1, 4), 4u32);
    let bad = |p: MdlmStep, t: &mut Array2<u32>| {
        mdlm_ancestral_step(&BK, &sch, logits.view(), t.view_mut(), &p, &rng).is_err()
    };
    assert!(bad(MdlmStep { s: 0.5, ..ok }, &mut t));
    assert!(bad(MdlmStep { s: 0.75, ..ok }, &mut t));
    assert!(bad(MdlmStep { t: 1.5, ..ok }, &mut t));
    assert!(bad(MdlmStep { s: -0.1, ..ok }, &mut t));
    assert!(bad(MdlmStep { t: f64::NAN, ..ok }, &mut t));
    assert!(bad(MdlmStep { mask_id: 5, ..ok }, &mut t));
    // 1 − α(t) = 0: no token can be masked at t.
    let flat = Polynomial::new(1e4).unwrap(); // α(t) = 1 − t¹⁰⁰⁰⁰ rounds to 1 at t = 0.5
    assert!(matches!(
        mdlm_stay_probability(&flat, 0.5, 0.25),
        Err(Error::ZeroProbability { .. })
    ));
    let mut big = Array2::from_elem((1, 4), 5u32);
    assert!(bad(ok, &mut big));
    let mut short = Array2::from_elem((1, 3), 4u32);
    assert!(bad(ok, &mut short));
    // A NaN in a row that must be read: error, tokens unchanged.
    let mut nan = logits.clone();
    nan.fill(f32::NAN);
    let p = MdlmStep { s: 0.0, ..ok }; // everything unmasks at s = 0
    assert!(mdlm_ancestral_step(&BK, &sch, nan.view(), t.view_mut(), &p, &rng).is_err());
    assert!(t.iter().all(|&x| x == 4));
    // All logits but the mask's must not be -inf-only: a row whose only finite logit is the
    // mask has no mass to draw from.
    let mut only_mask = Array3::from_elem((1, 4, 5), f32::NEG_INFINITY);
    only_mask.slice_mut(s![.., .., 4]).fill(0.0);
    assert!(mdlm_ancestral_step(&BK, &sch, only_mask.view(), t.view_mut(), &p, &rng).is_err());
}
