//! Behaviour tests of the fused sampler steps (`backend::steps`) over the reference backend:
//! exact laws against the anchors' conformance vectors (χ² with statrs quantiles), the
//! anchors' selection semantics token for token, cross-step identities (DFM ≡ MDLM, SEDD
//! with exact scores ≡ MDLM), batch-permutation invariance, rows read, and bad input.

mod common;

use common::{cases, load_anchor, num, vec1, vec2};
use discrete_diffusion::Error;
use discrete_diffusion::backend::steps::{
    DfmEulerStep, JumpRule, LladaStep, MdlmStep, Scorer, SeddAbsorbingStep, StepOutput, StepRng,
    ThresholdStep, dfm_euler_step, dfm_jump_probability, llada_num_transfer_tokens, llada_step,
    mdlm_ancestral_step, mdlm_stay_probability, sample_categorical,
    sedd_absorbing_stay_probability, sedd_analytic_absorbing_step, threshold_step,
};
use discrete_diffusion::backend::{ReferenceBackend, RowSpec};
use discrete_diffusion::rng::Purpose;
use discrete_diffusion::schedule::{
    FlowPolynomial, Geometric, Kappa, Linear, LogLinear, MdlmCosine, Polynomial, Schedule,
};
use ndarray::{Array2, Array3, s};
use serde_json::Value;
use statrs::distribution::{ChiSquared, ContinuousCDF};

const BK: ReferenceBackend = ReferenceBackend;

/// Significance of every χ² test (fixed seeds: deterministic; a false alarm would show at
/// this rate over seeds).
const ALPHA: f64 = 1e-4;

fn streams(b: usize) -> Vec<u64> {
    (0..b as u64).map(|x| 1000 + 7 * x).collect()
}

/// Pearson χ² of `counts` against `probs` (entries with p = 0 must have count 0); panics
/// with the statistic and the `1 − ALPHA` quantile when the test rejects.
fn assert_chi2(what: &str, counts: &[u64], probs: &[f64]) {
    let n: u64 = counts.iter().sum();
    let mut stat = 0.0;
    let mut df = 0usize;
    for (k, (&c, &p)) in counts.iter().zip(probs).enumerate() {
        if p <= 0.0 {
            assert_eq!(c, 0, "{what}: category {k} has probability 0 but {c} draws");
            continue;
        }
        let e = p * n as f64;
        assert!(e >= 5.0, "{what}: expected count {e} too small for χ²");
        stat += (c as f64 - e).powi(2) / e;
        df += 1;
    }
    assert!(df >= 2, "{what}: degenerate law");
    let crit = ChiSquared::new((df - 1) as f64)
        .unwrap()
        .inverse_cdf(1.0 - ALPHA);
    assert!(
        stat < crit,
        "{what}: χ² = {stat:.2} ≥ {crit:.2} (df {}), counts {counts:?}, probs {probs:?}",
        df - 1
    );
}

/// `[B, L, V]` logits with every row equal to `row`.
fn tiled(row: &[f64], b: usize, l: usize) -> Array3<f32> {
    let v = row.len();
    Array3::from_shape_fn((b, l, v), |(_, _, k)| row[k] as f32)
}

/// Histogram of the tokens over `V` categories.
fn histogram(tokens: &Array2<u32>, v: usize) -> Vec<u64> {
    let mut h = vec![0u64; v];
    for &x in tokens {
        h[x as usize] += 1;
    }
    h
}

fn softmax(l: &[f64]) -> Vec<f64> {
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = l.iter().map(|&x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    r.is_err()
}

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

// ---------------------------------------------------------------------------------------
// LLaDA / Fast-dLLM
// ---------------------------------------------------------------------------------------

#[test]
fn llada_num_transfer_tokens_anchor_and_properties() {
    let file = load_anchor("llada_dream");
    let mut n = 0;
    for c in cases(&file, "llada_num_transfer_tokens_") {
        let m = num(&c["inputs"]["mask_num"]) as usize;
        let steps = num(&c["inputs"]["steps"]) as usize;
        let want: Vec<usize> = vec1(&c["expected"]["num_transfer_tokens"])
            .iter()
            .map(|&x| x as usize)
            .collect();
        assert_eq!(llada_num_transfer_tokens(m, steps).unwrap(), want);
        n += 1;
    }
    assert!(n >= 2);
    for c in cases(&file, "llada_block_schedule_") {
        let inp = &c["inputs"];
        let (gen_len, block, steps) = (
            num(&inp["gen_length"]) as usize,
            num(&inp["block_length"]) as usize,
            num(&inp["steps"]) as usize,
        );
        let blocks = gen_len / block;
        let per = steps / blocks;
        assert_eq!(per, num(&c["expected"]["steps_per_block"]) as usize);
        let want = vec2(&c["expected"]["per_block_num_transfer_tokens"]);
        for w in want {
            let w: Vec<usize> = w.iter().map(|&x| x as usize).collect();
            assert_eq!(llada_num_transfer_tokens(block, per).unwrap(), w);
        }
    }
    for m in 0..40 {
        for steps in 1..12 {
            let k = llada_num_transfer_tokens(m, steps).unwrap();
            assert_eq!(k.len(), steps);
            assert_eq!(k.iter().sum::<usize>(), m);
            assert!(k.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
        }
    }
    assert!(llada_num_transfer_tokens(3, 0).is_err());
}

#[test]
fn llada_low_confidence_matches_anchor() {
    let file = load_anchor("llada_dream");
    let mut n = 0;
    for c in cases(&file, "llada_low_confidence_") {
        let name = c["name"].as_str().unwrap();
        let inp = &c["inputs"];
        let x: Vec<u32> = vec1(&inp["x"]).iter().map(|&v| v as u32).collect();
        let rows = vec2(&inp["logits"]);
        let (l, v) = (rows.len(), rows[0].len());
        let mask = num(&inp["mask_id"]) as u32;
        let prompt = num(&inp["prompt_len"]) as usize;
        let block = num(&inp["block_length"]) as usize;
        let block_idx = num(&inp["block_idx"]) as usize;
        let k = num(&inp["k"]) as usize;
        let logits = Array3::from_shape_fn((1, l, v), |(_, i, j)| rows[i][j] as f32);
        let end = prompt + (block_idx + 1) * block;
        let eligible = Array2::from_shape_fn((1, l), |(_, i)| i < end);
        let mut tokens = Array2::from_shape_vec((1, l), x.clone()).unwrap();
        let st = streams(1);
        let rng = StepRng {
            seed: 1,
            streams: &st,
            step: 0,
        };
        let params = LladaStep {
            mask_id: mask,
            temperature: 0.0,
            scorer: Scorer::Confidence,
            exclude_mask: false,
        };
        let out = llada_step(
            &BK,
            logits.view(),
            tokens.view_mut(),
            Some(eligible.view()),
            &[k],
            &params,
            &rng,
        )
        .unwrap();
        let e = &c["expected"];
        let x0: Vec<u32> = vec1(&e["x0"]).iter().map(|&v| v as u32).collect();
        let conf = vec1(&e["confidence"]);
        let transfer: Vec<bool> = e["transfer_index"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect();
        let x_new: Vec<u32> = vec1(&e["x_new"]).iter().map(|&v| v as u32).collect();
        for i in 0..l {
            if out.read[[0, i]] {
                let s = out.summaries[[0, i]];
                assert_eq!(s.token, x0[i], "{name}: x0[{i}]");
                // The logits enter as f32: the confidence agrees with the f64 anchor to f32
                // precision, and exactly with the f64 softmax of the f32 logits.
                let c32 = s.token_logprob.exp();
                assert!(
                    (c32 - conf[i]).abs() < 1e-6 * conf[i].max(1e-3),
                    "{name}: conf[{i}]"
                );
                let r32: Vec<f64> = rows[i].iter().map(|&z| z as f32 as f64).collect();
                assert!((c32 - softmax(&r32)[x0[i] as usize]).abs() < 1e-12);
            } else {
                assert_eq!(
                    conf[i],
                    f64::NEG_INFINITY,
                    "{name}: position {i} not a candidate"
                );
            }
            let committed = out.commits.iter().any(|c| c.pos == i);
            assert_eq!(committed, transfer[i], "{name}: transfer[{i}]");
        }
        assert_eq!(tokens.row(0).to_vec(), x_new, "{name}: x_new");
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn llada_tempered_draw_untempered_confidence() {
    // The x0 law is softmax(ℓ/τ) (LLaDA's float64 Gumbel race), the score untempered.
    let file = load_anchor("llada_dream");
    for c in cases(&file, "llada_gumbel_temperature") {
        let name = c["name"].as_str().unwrap();
        let row = vec1(&c["inputs"]["logits"]);
        let tau = num(&c["inputs"]["temperature"]);
        let want = vec1(&c["expected"]["x0_probs"]);
        let (b, l) = (2, 6000);
        let logits = tiled(&row, b, l);
        let mask = 4u32; // ids 0..4 all allowed (exclude_mask = false)
        let mut tokens = Array2::from_elem((b, l), mask);
        let st = streams(b);
        let rng = StepRng {
            seed: 8,
            streams: &st,
            step: 1,
        };
        let params = LladaStep {
            mask_id: mask,
            temperature: tau,
            scorer: Scorer::Confidence,
            exclude_mask: false,
        };
        let out = llada_step(
            &BK,
            logits.view(),
            tokens.view_mut(),
            None,
            &[l, l],
            &params,
            &rng,
        )
        .unwrap();
        let p = softmax(&row);
        for cm in &out.commits {
            assert!((cm.logprob.exp() - p[cm.token as usize]).abs() < 1e-6);
        }
        if tau == 0.0 {
            let am = (0..row.len()).fold(0, |a, k| if row[k] > row[a] { k } else { a });
            assert!(tokens.iter().all(|&x| x == am as u32), "{name}");
            assert_eq!(want[am], 1.0);
        } else {
            assert_chi2(name, &histogram(&tokens, row.len()), &want);
        }
    }
}

#[test]
fn llada_topk_ties_window_exclusion_and_errors() {
    let (b, l, v) = (2, 8, 4);
    let mask = 0u32;
    // Identical rows: every candidate has the same confidence; ties go to the lowest index.
    let logits = tiled(&[3.0, 1.0, 0.5, 0.5], b, l);
    let st = streams(b);
    let rng = StepRng {
        seed: 2,
        streams: &st,
        step: 4,
    };
    let tokens0 = Array2::from_shape_fn((b, l), |(bi, i)| if i == 1 + bi { 3 } else { mask });
    let eligible = Array2::from_shape_fn((b, l), |(_, i)| i < 6);
    let greedy = LladaStep {
        mask_id: mask,
        temperature: 0.0,
        scorer: Scorer::Confidence,
        exclude_mask: true,
    };
    let mut tokens = tokens0.clone();
    let out = llada_step(
        &BK,
        logits.view(),
        tokens.view_mut(),
        Some(eligible.view()),
        &[2, 3],
        &greedy,
        &rng,
    )
    .unwrap();
    let pos: Vec<(usize, usize)> = out.commits.iter().map(|c| (c.seq, c.pos)).collect();
    assert_eq!(pos, vec![(0, 0), (0, 2), (1, 0), (1, 1), (1, 3)]);
    // Mask excluded: x0 = argmax over ids 1..4 = 1, confidence renormalised without id 0.
    let p = softmax(&[1.0, 0.5, 0.5]);
    for c in &out.commits {
        assert_eq!(c.token, 1);
        assert!((c.logprob - p[0].ln()).abs() < 1e-6);
    }
    // Rows outside the window or unmasked are never read.
    for ((bi, i), &r) in out.read.indexed_iter() {
        assert_eq!(r, i < 6 && tokens0[[bi, i]] == mask);
    }
    // k larger than the candidates: error, tokens unchanged.
    let mut t = tokens0.clone();
    assert!(
        llada_step(
            &BK,
            logits.view(),
            t.view_mut(),
            Some(eligible.view()),
            &[6, 1],
            &greedy,
            &rng
        )
        .is_err()
    );
    assert_eq!(t, tokens0);
    assert!(llada_step(&BK, logits.view(), t.view_mut(), None, &[1], &greedy, &rng).is_err());
    let hot = LladaStep {
        temperature: -1.0,
        ..greedy
    };
    assert!(llada_step(&BK, logits.view(), t.view_mut(), None, &[1, 1], &hot, &rng).is_err());
    let bad_mask = LladaStep {
        mask_id: v as u32,
        ..greedy
    };
    assert!(
        llada_step(
            &BK,
            logits.view(),
            t.view_mut(),
            None,
            &[1, 1],
            &bad_mask,
            &rng
        )
        .is_err()
    );
    let wrong = Array2::from_elem((b, l + 1), true);
    assert!(
        llada_step(
            &BK,
            logits.view(),
            t.view_mut(),
            Some(wrong.view()),
            &[1, 1],
            &greedy,
            &rng
        )
        .is_err()
    );
    // k = 0 commits nothing.
    let out = llada_step(
        &BK,
        logits.view(),
        t.view_mut(),
        None,
        &[0, 0],
        &greedy,
        &rng,
    )
    .unwrap();
    assert!(out.commits.is_empty());
    assert_eq!(t, tokens0);
}

#[test]
fn llada_margin_and_entropy_scorers_rank_by_their_summaries() {
    let (l, v) = (6, 5);
    let logits = Array3::from_shape_fn((1, l, v), |(_, i, k)| {
        (((i * 7 + k * 3) % 5) as f32) * (0.3 + 0.2 * i as f32)
    });
    let st = streams(1);
    let rng = StepRng {
        seed: 9,
        streams: &st,
        step: 0,
    };
    for scorer in [Scorer::Margin, Scorer::NegEntropy, Scorer::Confidence] {
        let mut tokens = Array2::from_elem((1, l), 4u32);
        let p = LladaStep {
            mask_id: 4,
            temperature: 0.0,
            scorer,
            exclude_mask: true,
        };
        let out = llada_step(&BK, logits.view(), tokens.view_mut(), None, &[2], &p, &rng).unwrap();
        let score = |i: usize| {
            let s = out.summaries[[0, i]];
            match scorer {
                Scorer::Margin => s.margin,
                Scorer::NegEntropy => -s.entropy,
                _ => s.token_logprob.exp(),
            }
        };
        let mut order: Vec<usize> = (0..l).collect();
        order.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
        let mut want = order[..2].to_vec();
        want.sort();
        let got: Vec<usize> = out.commits.iter().map(|c| c.pos).collect();
        assert_eq!(got, want, "{scorer:?}");
    }
}

#[test]
fn llada_random_remasking_reads_only_committed_rows() {
    let (b, l, v) = (2, 30, 6);
    let mask = 5u32;
    let st = streams(b);
    let rng = StepRng {
        seed: 4,
        streams: &st,
        step: 2,
    };
    let k = [4usize, 7];
    let tokens0 = Array2::from_shape_fn((b, l), |(_, i)| if i % 4 == 0 { 1 } else { mask });
    // The selection is the k largest SELECTION uniforms among the candidates.
    let mut logits = Array3::from_elem((b, l, v), f32::NAN);
    let mut want = Vec::new();
    for bi in 0..b {
        let mut sc: Vec<(f64, usize)> = (0..l)
            .filter(|&i| tokens0[[bi, i]] == mask)
            .map(|i| (rng.uniform(Purpose::SELECTION, bi, i).unwrap(), i))
            .collect();
        sc.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut pick: Vec<usize> = sc[..k[bi]].iter().map(|x| x.1).collect();
        pick.sort();
        for &i in &pick {
            logits
                .slice_mut(s![bi, i, ..])
                .assign(&ndarray::arr1(&[0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6]));
            want.push((bi, i));
        }
    }
    let p = LladaStep {
        mask_id: mask,
        temperature: 1.0,
        scorer: Scorer::Random,
        exclude_mask: true,
    };
    let mut tokens = tokens0.clone();
    let out = llada_step(&BK, logits.view(), tokens.view_mut(), None, &k, &p, &rng).unwrap();
    let got: Vec<(usize, usize)> = out.commits.iter().map(|c| (c.seq, c.pos)).collect();
    assert_eq!(got, want);
    assert_eq!(out.rows_read(), 11);
    for c in &out.commits {
        assert_ne!(c.token, mask);
        assert_eq!(tokens[[c.seq, c.pos]], c.token);
    }
}

#[test]
fn threshold_step_is_ge_with_at_least_one() {
    let (b, l, v) = (3, 6, 5);
    let mask = 1u32;
    let logits = Array3::from_shape_fn((b, l, v), |(bi, i, k)| {
        if k == (i + bi) % v {
            1.0 + 0.6 * i as f32
        } else {
            0.1 * k as f32
        }
    });
    let st = streams(b);
    let rng = StepRng {
        seed: 6,
        streams: &st,
        step: 0,
    };
    // Sequence 2 has no masked position: nothing happens there.
    let tokens0 = Array2::from_shape_fn((b, l), |(bi, i)| if bi == 2 || i == 3 { 0 } else { mask });
    let run = |thr: f64| -> (StepOutput, Array2<u32>) {
        let mut t = tokens0.clone();
        let p = ThresholdStep {
            mask_id: mask,
            temperature: 0.0,
            threshold: thr,
            exclude_mask: true,
        };
        let o = threshold_step(&BK, logits.view(), t.view_mut(), None, &p, &rng).unwrap();
        (o, t)
    };
    // Threshold 1: exactly the most confident position of each sequence with candidates.
    let (o1, _) = run(1.0);
    assert_eq!(o1.commits.len(), 2);
    let conf = |o: &StepOutput, bi: usize, i: usize| o.summaries[[bi, i]].token_logprob.exp();
    for c in &o1.commits {
        for i in (0..l).filter(|&i| tokens0[[c.seq, i]] == mask) {
            assert!(conf(&o1, c.seq, c.pos) >= conf(&o1, c.seq, i));
        }
    }
    // A confidence equal to the threshold is committed (≥); just above it is not.
    let (bi, i) = (0, 2);
    let c = conf(&o1, bi, i);
    let (o_eq, t_eq) = run(c);
    assert!(o_eq.commits.iter().any(|x| (x.seq, x.pos) == (bi, i)));
    assert_ne!(t_eq[[bi, i]], mask);
    let (o_up, _) = run(c.next_up());
    let top0 = o1.commits.iter().find(|x| x.seq == bi).unwrap().pos;
    assert_ne!(top0, i);
    assert!(!o_up.commits.iter().any(|x| (x.seq, x.pos) == (bi, i)));
    // Threshold 0 commits every candidate.
    let (o0, t0) = run(0.0);
    assert_eq!(o0.commits.len(), 10);
    assert!(t0.iter().all(|&x| x != mask));
    // Errors.
    let mut t = tokens0.clone();
    for thr in [-0.1, 1.1, f64::NAN] {
        let p = ThresholdStep {
            mask_id: mask,
            temperature: 0.0,
            threshold: thr,
            exclude_mask: true,
        };
        assert!(threshold_step(&BK, logits.view(), t.view_mut(), None, &p, &rng).is_err());
    }
    assert_eq!(t, tokens0);
}

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

// ---------------------------------------------------------------------------------------
// Invariants on random inputs
// ---------------------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    fn batch() -> impl Strategy<Value = (usize, usize, usize, Vec<u32>, Vec<bool>, Vec<f32>)> {
        (1usize..4, 1usize..12, 2usize..7).prop_flat_map(|(b, l, v)| {
            (
                Just(b),
                Just(l),
                Just(v),
                proptest::collection::vec(0u32..v as u32, b * l),
                proptest::collection::vec(any::<bool>(), b * l),
                proptest::collection::vec(-4.0f32..4.0, b * l * v),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every step touches only masked (and eligible) positions, never emits the mask
        /// where it is excluded, and reports exactly the positions it wrote.
        #[test]
        fn steps_touch_only_candidates((b, l, v, tok, elig, lg) in batch(), seed in any::<u64>(), tau in 0.0f64..2.0, thr in 0.0f64..1.0) {
            let mask = (seed % v as u64) as u32;
            let tokens0 = Array2::from_shape_vec((b, l), tok).unwrap();
            let eligible = Array2::from_shape_vec((b, l), elig).unwrap();
            let logits = Array3::from_shape_vec((b, l, v), lg).unwrap();
            let st = streams(b);
            let rng = StepRng { seed, streams: &st, step: (seed >> 40) as u32 };
            let cand = Array2::from_shape_fn((b, l), |(bi, i)| tokens0[[bi, i]] == mask && eligible[[bi, i]]);
            let check = |out: &StepOutput, t: &Array2<u32>, allowed: &Array2<bool>| {
                for ((bi, i), &x) in t.indexed_iter() {
                    let c = out.commits.iter().find(|c| (c.seq, c.pos) == (bi, i));
                    match c {
                        Some(c) => {
                            assert!(allowed[[bi, i]]);
                            assert_eq!(x, c.token);
                            assert_ne!(x, mask);
                            assert!(c.logprob <= 1e-12);
                        }
                        None => assert_eq!(x, tokens0[[bi, i]]),
                    }
                }
            };
            // LLaDA with the uniform split's first count.
            let k: Vec<usize> = (0..b)
                .map(|bi| {
                    let n = cand.row(bi).iter().filter(|&&c| c).count();
                    llada_num_transfer_tokens(n, 3).unwrap()[0]
                })
                .collect();
            for scorer in [Scorer::Confidence, Scorer::Random, Scorer::Margin] {
                let mut t = tokens0.clone();
                let p = LladaStep { mask_id: mask, temperature: tau, scorer, exclude_mask: true };
                let out = llada_step(&BK, logits.view(), t.view_mut(), Some(eligible.view()), &k, &p, &rng).unwrap();
                for (bi, &kb) in k.iter().enumerate() {
                    prop_assert_eq!(out.commits.iter().filter(|c| c.seq == bi).count(), kb);
                }
                check(&out, &t, &cand);
            }
            // Fast-dLLM: at least one per sequence with candidates.
            let mut t = tokens0.clone();
            let p = ThresholdStep { mask_id: mask, temperature: tau, threshold: thr, exclude_mask: true };
            let out = threshold_step(&BK, logits.view(), t.view_mut(), Some(eligible.view()), &p, &rng).unwrap();
            for bi in 0..b {
                let has = cand.row(bi).iter().any(|&c| c);
                let n = out.commits.iter().filter(|c| c.seq == bi).count();
                let ok = if has { n >= 1 } else { n == 0 };
                prop_assert!(ok, "sequence {} committed {} (has candidates: {})", bi, n, has);
            }
            check(&out, &t, &cand);
            // MDLM, DFM and SEDD: only masked positions change.
            let masked = tokens0.mapv(|x| x == mask);
            let sch = LogLinear::new(1e-3).unwrap();
            let mut t = tokens0.clone();
            let m = MdlmStep { mask_id: mask, t: 0.7, s: 0.3 };
            let out = mdlm_ancestral_step(&BK, &sch, logits.view(), t.view_mut(), &m, &rng).unwrap();
            check(&out, &t, &masked);
            prop_assert_eq!(out.rows_read(), out.commits.len());
            let mut t = tokens0.clone();
            let kappa = Kappa::convex(sch);
            let d = DfmEulerStep { mask_id: mask, s: 0.3, s_next: 0.7, rule: JumpRule::Exponential, final_step: false, exclude_mask: true };
            let out = dfm_euler_step(&BK, &kappa, logits.view(), t.view_mut(), &d, &rng).unwrap();
            check(&out, &t, &masked);
            let mut t = tokens0.clone();
            let q = SeddAbsorbingStep { mask_id: mask, t: 0.7, s: 0.3 };
            let out = sedd_analytic_absorbing_step(&BK, &sch, logits.view(), t.view_mut(), &q, &rng).unwrap();
            check(&out, &t, &masked);
        }
    }
}
