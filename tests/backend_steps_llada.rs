//! Behaviour tests of the LLaDA low-confidence and Fast-dLLM threshold steps: the anchors'
//! selection semantics token for token, tie-breaking, rows read, bad input.

mod common;
mod steps_common;

use common::{cases, load_anchor, num, vec1, vec2};
use discrete_diffusion::backend::steps::{
    LladaStep, Scorer, StepOutput, StepRng, ThresholdStep, llada_num_transfer_tokens, llada_step,
    threshold_step,
};
use discrete_diffusion::rng::Purpose;
use ndarray::{Array2, Array3, s};
use steps_common::*;

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
