//! Conformance of the inference toolkit: the public cases of `llada_dream.json` and
//! `remdm.json` (see /work/shared/conformance/README.md).
//!
//! Paths through `f32` logits (transforms, backend summaries) are compared at the README's
//! float32 tolerance (1e-6 relative); the `f64` ReMDM and budget functions at the cases'.

mod common;

use common::*;
use discrete_diffusion::backend::steps::StepRng;
use discrete_diffusion::backend::{Backend, BatchRng, ReferenceBackend, RowSpec, RowSummary};
use discrete_diffusion::rng::Purpose;
use discrete_diffusion::sample::driver::{StepPlace, unmask_step};
use discrete_diffusion::sample::remask::*;
use discrete_diffusion::sample::select::*;
use discrete_diffusion::sample::transform::{LogitTransform, apply_transforms};
use discrete_diffusion::schedule::{Linear, TimeGrid};
use ndarray::{Array2, Array3};
use std::sync::Arc;

const F32: (f64, f64) = (1e-6, 1e-6);

fn softmax(row: &[f32]) -> Vec<f64> {
    let mut p = vec![0.0; row.len()];
    discrete_diffusion::math::softmax_into(row, &mut p).unwrap();
    p
}

/// The reference backend's summary of one logit row (seed 0, stream 0, step 0).
fn summarize_row(row: Vec<f32>, spec: &RowSpec) -> RowSummary {
    let arr = Array3::from_shape_vec((1, 1, row.len()), row).unwrap();
    let mut out = Array2::from_elem((1, 1), RowSummary::default());
    let rng = BatchRng {
        seed: 0,
        streams: &[0],
        step: 0,
        purpose: Purpose::CATEGORICAL,
    };
    ReferenceBackend
        .summarize(arr.view(), None, spec, &rng, out.view_mut())
        .unwrap();
    out[[0, 0]]
}

/// Simulate a budget over a block: the counts per step.
fn counts(b: &Budget, m: usize, grid: &TimeGrid) -> Vec<usize> {
    let n = grid.num_steps();
    let mut now = m;
    let mut out = Vec::new();
    for (k, (t, s)) in grid.steps().enumerate() {
        let ctx = BudgetCtx {
            at_block_start: m,
            now,
            step: k,
            steps: n,
            t,
            s,
        };
        let c = b.count(&ctx, &[]).unwrap();
        now -= c;
        out.push(c);
    }
    out
}

#[test]
fn llada_transfer_counts_and_blocks() {
    let f = load_anchor("llada_dream");
    let mut n = 0;
    for c in cases(&f, "llada_num_transfer_tokens_") {
        let m = num(&c["inputs"]["mask_num"]) as usize;
        let steps = num(&c["inputs"]["steps"]) as usize;
        let want: Vec<usize> = vec1(&c["expected"]["num_transfer_tokens"])
            .iter()
            .map(|&x| x as usize)
            .collect();
        let grid = TimeGrid::uniform(steps, 0.0).unwrap();
        assert_eq!(
            counts(&Budget::UniformSplit, m, &grid),
            want,
            "{}",
            c["name"]
        );
        n += 1;
    }
    for c in cases(&f, "llada_block_schedule_") {
        let i = &c["inputs"];
        let layout = discrete_diffusion::sample::presets::LladaLayout {
            prompt_len: num(&i["prompt_len"]) as usize,
            gen_length: num(&i["gen_length"]) as usize,
            block_length: num(&i["block_length"]) as usize,
            steps: num(&i["steps"]) as usize,
        };
        let cfg = discrete_diffusion::sample::presets::llada(0, layout, 0.0, false).unwrap();
        assert_eq!(cfg.steps, num(&c["expected"]["steps_per_block"]) as usize);
        let grid = TimeGrid::uniform(cfg.steps, 0.0).unwrap();
        for w in vec2(&c["expected"]["per_block_num_transfer_tokens"]) {
            let w: Vec<usize> = w.iter().map(|&x| x as usize).collect();
            assert_eq!(counts(&Budget::UniformSplit, layout.block_length, &grid), w);
        }
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn llada_gumbel_temperature_law() {
    let f = load_anchor("llada_dream");
    let mut n = 0;
    for c in cases(&f, "llada_gumbel_temperature") {
        let logits: Vec<f32> = vec1(&c["inputs"]["logits"])
            .iter()
            .map(|&x| x as f32)
            .collect();
        let tau = num(&c["inputs"]["temperature"]);
        let want = vec1(&c["expected"]["x0_probs"]);
        let got = if tau == 0.0 {
            // Greedy: the backend's draw at temperature 0 is the argmax.
            let spec = RowSpec {
                temperature: 0.0,
                ..RowSpec::default()
            };
            let s = summarize_row(logits.clone(), &spec);
            (0..logits.len())
                .map(|v| f64::from(u8::from(v as u32 == s.token)))
                .collect()
        } else {
            let mut row = logits.clone();
            apply_transforms(&[LogitTransform::Temperature(tau)], &mut row, 0).unwrap();
            softmax(&row)
        };
        assert_close(c["name"].as_str().unwrap(), &got, &want, F32);
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn llada_low_confidence_step() {
    let f = load_anchor("llada_dream");
    let mut n = 0;
    for c in cases(&f, "llada_low_confidence_") {
        let i = &c["inputs"];
        let x: Vec<u32> = vec1(&i["x"]).iter().map(|&v| v as u32).collect();
        let rows = vec2(&i["logits"]);
        let (l, v) = (rows.len(), rows[0].len());
        let mask = num(&i["mask_id"]) as u32;
        let end = num(&i["prompt_len"]) as usize
            + (num(&i["block_idx"]) as usize + 1) * num(&i["block_length"]) as usize;
        let k = num(&i["k"]) as usize;
        let logits = Array3::from_shape_fn((1, l, v), |(_, a, b)| rows[a][b] as f32);
        let mut tokens = Array2::from_shape_vec((1, l), x.clone()).unwrap();
        let cand = Array2::from_shape_fn((1, l), |(_, a)| a < end && x[a] == mask);
        let policy = Unmasking {
            score: Score::Base(BaseScore::Confidence),
            budget: Budget::Fixed(k),
            selector: Selector::TopK,
        };
        let spec = RowSpec {
            temperature: 0.0,
            ..RowSpec::default()
        };
        let rng = StepRng {
            seed: 0,
            streams: &[0],
            step: 0,
        };
        let place = StepPlace {
            step: 0,
            steps: 2,
            t: 1.0,
            s: 0.5,
        };
        let out = unmask_step(
            &ReferenceBackend,
            logits.view(),
            tokens.view_mut(),
            cand.view(),
            &policy,
            &spec,
            mask,
            &[k],
            place,
            &rng,
        )
        .unwrap();
        let want: Vec<u32> = vec1(&c["expected"]["x_new"])
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(tokens.as_slice().unwrap(), &want[..]);
        let conf = vec1(&c["expected"]["confidence"]);
        let x0 = vec1(&c["expected"]["x0"]);
        for a in 0..l {
            if cand[[0, a]] {
                let s = out.summaries[[0, a]];
                assert_eq!(s.token as f64, x0[a]);
                assert_close1("confidence", s.token_logprob.exp(), conf[a], F32);
            } else {
                assert_eq!(conf[a], f64::NEG_INFINITY);
            }
        }
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn dream_sample_tokens() {
    let f = load_anchor("llada_dream");
    let mut n = 0;
    for c in cases(&f, "dream_sample_tokens_") {
        let i = &c["inputs"];
        let logits: Vec<f32> = vec1(&i["logits"]).iter().map(|&x| x as f32).collect();
        let mut filters = Vec::new();
        if !i["top_p"].is_null() {
            filters.push(LogitTransform::TopP(num(&i["top_p"])));
        }
        if !i["top_k"].is_null() {
            filters.push(LogitTransform::TopK(num(&i["top_k"]) as usize));
        }
        let name = c["name"].as_str().unwrap();
        let e0 = &c["expected"]["temperature0"];
        let mut row = logits.clone();
        apply_transforms(&filters, &mut row, 0).unwrap();
        assert_close(name, &softmax(&row), &vec1(&e0["probs"]), F32);
        let spec = RowSpec {
            temperature: 0.0,
            excluded: vec![],
            entropy: true,
            margin: true,
        };
        let s = summarize_row(row, &spec);
        assert_eq!(s.token as f64, num(&e0["x0"]));
        let key = discrete_diffusion::rng::RngKey::for_stream(0, 0);
        let sc = |b| Score::Base(b).score(&s, 0, key, 0);
        assert_close1(
            "maskgit_plus",
            sc(BaseScore::Confidence),
            num(&e0["confidence_maskgit_plus"]),
            F32,
        );
        assert_close1(
            "topk_margin",
            sc(BaseScore::Margin),
            num(&e0["confidence_topk_margin"]),
            F32,
        );
        assert_close1(
            "entropy",
            sc(BaseScore::NegEntropy),
            num(&e0["confidence_entropy"]),
            F32,
        );
        // Tempered: Temperature first, then the filters (Dream's order).
        let mut row = logits.clone();
        let mut list = vec![LogitTransform::Temperature(0.7)];
        list.extend(filters);
        apply_transforms(&list, &mut row, 0).unwrap();
        assert_close(
            name,
            &softmax(&row),
            &vec1(&c["expected"]["temperature0.7"]["x0_sampling_probs"]),
            F32,
        );
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn dream_transfer_schedule() {
    let f = load_anchor("llada_dream");
    let mut n = 0;
    for c in cases(&f, "dream_transfer_schedule_") {
        let i = &c["inputs"];
        let (m, steps, eps) = (
            num(&i["num_masked"]) as usize,
            num(&i["steps"]) as usize,
            num(&i["eps"]),
        );
        let t = tol(c);
        let grid = TimeGrid::uniform(steps, eps).unwrap();
        assert_close(
            "timesteps",
            grid.points(),
            &vec1(&c["expected"]["timesteps"]),
            t,
        );
        let b = Budget::Schedule {
            schedule: Arc::new(Linear::new()),
            rounding: Rounding::Truncate,
        };
        let want: Vec<usize> = vec1(&c["expected"]["number_transfer_tokens"])
            .iter()
            .map(|&x| x as usize)
            .collect();
        assert_eq!(counts(&b, m, &grid), want);
        let p: Vec<f64> = grid
            .steps()
            .enumerate()
            .map(|(k, (t, s))| {
                if k + 1 == steps {
                    1.0
                } else {
                    b.reveal_probability(t, s).unwrap().unwrap()
                }
            })
            .collect();
        assert_close(
            "origin_p_transfer",
            &p,
            &vec1(&c["expected"]["origin_p_transfer"]),
            t,
        );
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn remdm_samplers() {
    let f = load_anchor("remdm");
    let mut n = 0;
    for c in cases(&f, "remdm_") {
        let i = &c["inputs"];
        let Some(sampler) = i["sampler"].as_str() else {
            continue;
        };
        let name = c["name"].as_str().unwrap();
        let t = tol(c);
        let (tt, dt) = (num(&i["t"]), num(&i["dt"]));
        let (at, as_) = (1.0 - tt, 1.0 - (tt - dt));
        let e = &c["expected"];
        assert_close1("alpha_t", at, num(&e["alpha_t"]), t);
        assert_close1("alpha_s", as_, num(&e["alpha_s"]), t);
        let kind = match sampler {
            "mdlm" => RemdmSigma::None,
            "forward-backward" => RemdmSigma::ForwardBackward,
            "remdm-cap" => RemdmSigma::Cap {
                eta: num(&i["eta"]),
            },
            "remdm-rescale" => RemdmSigma::Rescale {
                eta: num(&i["eta"]),
            },
            other => panic!("{other}"),
        };
        let sg = remdm_sigma(kind, at, as_).unwrap();
        assert_close1(name, sg.max, num(&e["sigma_max"]), t);
        if !e["sigma"].is_null() {
            // The strategy's σ (forward-backward: uncapped, as the anchor reports it).
            assert_close1(name, sg.raw, num(&e["sigma"]), t);
        }
        let p = vec1(&i["p_x0"]);
        let mut out = vec![0.0; p.len()];
        remdm_position_probs(
            at,
            as_,
            sg.used,
            num(&i["x"]) as u32,
            num(&i["mask_index"]) as u32,
            &p,
            &mut out,
        )
        .unwrap();
        assert_close(name, &out, &vec1(&e["probs"]), t);
        n += 1;
    }
    assert!(n >= 20);
}

#[test]
fn remdm_conf_and_loop() {
    let f = load_anchor("remdm");
    let mut n = 0;
    for c in cases(&f, "remdm_conf_") {
        let i = &c["inputs"];
        let t = tol(c);
        let (tt, dt) = (num(&i["t"]), num(&i["dt"]));
        let (at, as_) = (1.0 - tt, 1.0 - (tt - dt));
        let e = &c["expected"];
        let max = remdm_sigma_max(at, as_).unwrap();
        assert_close1("sigma_max", max, num(&e["sigma_max"]), t);
        let sig = remdm_conf_sigmas(&vec1(&i["conf"]), max).unwrap();
        assert_close(
            "sigma_per_position",
            &sig,
            &vec1(&e["sigma_per_position"]),
            t,
        );
        let x = vec1(&i["x"]);
        let px = vec2(&i["p_x0"]);
        let want = vec2(&e["probs_per_position"]);
        let mask = num(&i["mask_index"]) as u32;
        for (l, w) in want.iter().enumerate() {
            let mut out = vec![0.0; w.len()];
            remdm_position_probs(at, as_, sig[l], x[l] as u32, mask, &px[l], &mut out).unwrap();
            assert_close("probs_per_position", &out, w, t);
        }
        n += 1;
    }
    for c in cases(&f, "remdm_loop_") {
        let i = &c["inputs"];
        let t = tol(c);
        let lp = RemdmLoop {
            t_on: num(&i["t_on"]),
            t_off: num(&i["t_off"]),
            alpha_on: num(&i["alpha_on"]),
            eta: num(&i["eta"]),
        };
        let tt = num(&i["t"]);
        let st = lp.step(tt, tt - num(&i["dt"])).unwrap();
        let e = &c["expected"];
        assert_eq!(st.remasking, e["phase"].as_str() != Some("mdlm"));
        if !st.remasking {
            assert_close1(
                "move_chance_t",
                1.0 - st.alpha_t,
                num(&e["move_chance_t"]),
                t,
            );
            assert_close1(
                "move_chance_s",
                1.0 - st.alpha_s,
                num(&e["move_chance_s"]),
                t,
            );
        }
        let p = vec1(&i["p_x0_masked"]);
        let mut out = vec![0.0; p.len()];
        let mask = num(&i["mask_index"]) as u32;
        remdm_position_probs(st.alpha_t, st.alpha_s, st.sigma, mask, mask, &p, &mut out).unwrap();
        assert_close("masked_probs", &out, &vec1(&e["masked_probs"]), t);
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn remdm_dfm_corrector_cases() {
    let f = load_anchor("remdm");
    let mut n = 0;
    for c in cases(&f, "remdm_dfm_") {
        let i = &c["inputs"];
        let t = tol(c);
        let (tt, steps, mask) = (
            num(&i["timestep"]),
            num(&i["steps"]) as usize,
            num(&i["mask_index"]) as u32,
        );
        let e = &c["expected"];
        let k = remdm_dfm_corrector(tt, steps).unwrap();
        assert_close1("a_t", k.a_t, num(&e["a_t"]), t);
        assert_close1("b_t", k.b_t, num(&e["b_t"]), t);
        assert_close1("dt", k.dt, num(&e["dt"]), t);
        for which in ["xmask", "x1"] {
            let p = vec1(&e[which]["p_x0"]);
            let x = if which == "xmask" { mask } else { 1 };
            let mut out = vec![0.0; p.len()];
            remdm_dfm_position_probs(tt, steps, x, mask, &p, &mut out).unwrap();
            assert_close(
                c["name"].as_str().unwrap(),
                &out,
                &vec1(&e[which]["probs"]),
                t,
            );
        }
        n += 1;
    }
    assert!(n >= 3);
}
