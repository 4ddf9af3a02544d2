//! Policy invariants (proptest) and bad input of the inference toolkit.

mod infer_common;

use std::sync::Arc;

use discrete_diffusion::Result;
use discrete_diffusion::backend::ReferenceBackend;
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::steps::JumpRule;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::sample::driver::*;
use discrete_diffusion::sample::remask::*;
use discrete_diffusion::sample::select::*;
use discrete_diffusion::schedule::{Linear, TimeGrid};
use infer_common::Hashy;
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3};
use proptest::prelude::*;

fn policy(k: usize, steps: usize) -> (Policy, bool) {
    let lin: Arc<dyn discrete_diffusion::schedule::Schedule> = Arc::new(Linear::new());
    let um = |score, budget, selector| {
        Policy::Unmask(Unmasking {
            score,
            budget,
            selector,
        })
    };
    let conf = Score::Base(BaseScore::Confidence);
    match k % 10 {
        0 => (um(conf, Budget::UniformSplit, Selector::TopK), false),
        1 => (
            um(Score::Random, Budget::CeilRemaining, Selector::TopK),
            true,
        ),
        2 => (
            um(
                conf,
                Budget::Fixed(1),
                Selector::Threshold {
                    threshold: 0.4,
                    strict: false,
                },
            ),
            true,
        ),
        3 => (
            um(
                conf,
                Budget::Fixed(1),
                Selector::DynamicFactor { factor: 1.0 },
            ),
            true,
        ),
        4 => (
            um(
                Score::Base(BaseScore::Margin),
                Budget::Fixed(usize::MAX),
                Selector::EntropyBound { gamma: 0.5 },
            ),
            true,
        ),
        5 => (
            um(
                Score::AnnealedGumbel {
                    base: BaseScore::NegEntropy,
                    temperature: 0.5,
                },
                Budget::Schedule {
                    schedule: lin,
                    rounding: Rounding::Binomial,
                },
                Selector::TopK,
            ),
            false,
        ),
        6 => (Policy::Ancestral { schedule: lin }, false),
        7 => (
            Policy::Jump {
                schedule: lin,
                rule: JumpRule::Exponential,
            },
            false,
        ),
        8 => (
            um(
                Score::Leftmost,
                Budget::Schedule {
                    schedule: lin,
                    rounding: Rounding::Round,
                },
                Selector::TopK,
            ),
            steps == 1,
        ),
        _ => (
            Policy::Remdm {
                schedule: lin,
                sigma: RemdmSigma::Cap { eta: 0.3 },
            },
            false,
        ),
    }
}

type Event = (usize, Vec<(usize, usize, u32)>, Vec<(usize, usize)>);

#[derive(Default)]
struct Rec {
    events: Vec<Event>,
}
impl Observer for Rec {
    fn on_step(&mut self, e: &StepEvent<'_>) {
        self.events.push((
            e.nfe,
            e.reveals.iter().map(|c| (c.seq, c.pos, c.token)).collect(),
            e.remasked.to_vec(),
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]
    #[test]
    fn driver_invariants(
        b in 1usize..3, l in 2usize..11, v in 3usize..7, mask_sel in 0usize..7, seed in 0u64..1000,
        pk in 0usize..10, steps in 1usize..6, blocks in proptest::bool::ANY, fixed_bits in 0u32..2048,
        stable in proptest::bool::ANY,
    ) {
        let mask = (mask_sel % v) as u32;
        let (pol, at_least_one) = policy(pk, steps);
        let remasks = matches!(pol, Policy::Remdm { .. });
        let start = l / 3;
        let bl = if blocks && (l - start) % 2 == 0 { Some(Blocks { start, length: 2 }) } else { None };
        let mut stop = vec![StopRule::MaxNfe(40)];
        if stable && matches!(pol, Policy::Unmask(_)) {
            stop.push(StopRule::ArgmaxStable(2));
        }
        let cfg = SamplerConfig {
            mask_id: mask, steps, t_min: 0.0, transforms: vec![], draw_temperature: 1.0,
            exclude_mask: true, original_confidence: false, policy: pol, blocks: bl, stop, eos: None,
        };
        let x0 = Array2::from_shape_fn((b, l), |(bi, i)| {
            if (blocks && i < l / 3) || (fixed_bits >> ((bi * 5 + i) % 11)) & 1 == 1 { (mask + 1 + (i as u32 % (v as u32 - 1))) % v as u32 } else { mask }
        });
        let mut x = x0.clone();
        let streams: Vec<u64> = (0..b as u64).map(|s| s * 7 + 1).collect();
        let mut rec = Rec::default();
        let model = Hashy { v, seed, nan: false };
        let rep = run(&mut NoHook(&model), &CpuBackend::new(), &cfg, x.view_mut(), None, seed, &streams, &mut rec).unwrap();
        let nblocks = bl.map_or(1, |k| (l - k.start) / k.length);
        // Ends within its bound.
        prop_assert!(rep.nfe <= (steps * nblocks).min(40));
        prop_assert!(rep.steps <= steps * nblocks + 1);
        // Fixed positions untouched; nothing left masked; the mask never emitted.
        for ((bi, i), &t) in x0.indexed_iter() {
            if t != mask { prop_assert_eq!(x[[bi, i]], t); }
            prop_assert_ne!(x[[bi, i]], mask);
        }
        let masked0 = x0.iter().filter(|&&t| t == mask).count();
        let mut seen = std::collections::HashSet::new();
        for (k, (_, reveals, remasked)) in rec.events.iter().enumerate() {
            for &(bi, i, t) in reveals {
                prop_assert_ne!(t, mask);
                prop_assert_eq!(x0[[bi, i]], mask);
                // Revealed positions are never revealed again (no remasking policy).
                if !remasks { prop_assert!(seen.insert((bi, i))); }
            }
            for &(bi, i) in remasked { prop_assert_eq!(x0[[bi, i]], mask); }
            // Every step reveals at least one token (policies with that guarantee), except
            // steps where the batch has nothing left to reveal.
            if at_least_one && k + 1 < rec.events.len() && !stable && bl.is_none() && b == 1 {
                prop_assert!(!reveals.is_empty());
            }
        }
        // Budgets sum to the mask count.
        if !remasks { prop_assert_eq!(rep.reveals, masked0); }
    }

    #[test]
    fn budgets_sum_to_the_mask_count(m in 0usize..200, steps in 1usize..40, which in 0usize..4) {
        let b = match which {
            0 => Budget::UniformSplit,
            1 => Budget::CeilRemaining,
            2 => Budget::Schedule { schedule: Arc::new(Linear::new()), rounding: Rounding::Truncate },
            _ => Budget::Schedule { schedule: Arc::new(Linear::new()), rounding: Rounding::Round },
        };
        let grid = TimeGrid::uniform(steps, 1e-3).unwrap();
        let mut now = m;
        let mut total = 0;
        for (k, (t, s)) in grid.steps().enumerate() {
            let c = b.count(&BudgetCtx { at_block_start: m, now, step: k, steps, t, s }, &[]).unwrap();
            prop_assert!(c <= now);
            if which == 1 && now > 0 { prop_assert!(c >= 1); }
            now -= c;
            total += c;
        }
        prop_assert_eq!(total, m);
        // LLaDA's split itself sums to m, without the last-step rule.
        let split = discrete_diffusion::backend::steps::llada_num_transfer_tokens(m, steps).unwrap();
        prop_assert_eq!(split.iter().sum::<usize>(), m);
    }
}

#[test]
fn remdm_loop_runs_and_remasks_only_its_block() {
    let v = 5;
    let model = Hashy {
        v,
        seed: 3,
        nan: false,
    };
    let lp = RemdmLoop {
        t_on: 0.55,
        t_off: 0.05,
        alpha_on: 0.9,
        eta: 0.5,
    };
    let cfg = discrete_diffusion::sample::presets::remdm_loop(4, 40, 1e-3, lp).unwrap();
    let mut x = Array2::from_shape_fn((2, 12), |(_, i)| if i < 3 { 1 } else { 4 });
    let mut rec = Rec::default();
    let rep = run(
        &mut NoHook(&model),
        &ReferenceBackend,
        &cfg,
        x.view_mut(),
        None,
        1,
        &[0, 1],
        &mut rec,
    )
    .unwrap();
    assert!(rep.remasks > 0, "{rep:?}");
    assert!(x.iter().all(|&t| t != 4));
    assert!(x.outer_iter().all(|r| r.iter().take(3).all(|&t| t == 1)));
    for conf in [
        RemdmSigma::Confidence,
        RemdmSigma::Rescale { eta: 1.0 },
        RemdmSigma::ForwardBackward,
    ] {
        let cfg =
            discrete_diffusion::sample::presets::remdm(4, 20, 1e-3, Arc::new(Linear::new()), conf)
                .unwrap();
        let mut x = Array2::from_elem((1, 8), 4u32);
        run(
            &mut NoHook(&model),
            &CpuBackend::new(),
            &cfg,
            x.view_mut(),
            None,
            9,
            &[2],
            &mut (),
        )
        .unwrap();
        assert!(x.iter().all(|&t| t != 4));
    }
}

#[test]
fn eos_padding_and_hook() {
    struct Hooked(Hashy, Vec<std::ops::Range<usize>>, Vec<Vec<u32>>);
    impl Denoiser for Hooked {
        fn vocab_size(&self) -> usize {
            self.0.v
        }
        fn logits(
            &self,
            t: ArrayView2<'_, u32>,
            s: ArrayView1<'_, f64>,
            o: ArrayViewMut3<'_, f32>,
        ) -> Result<()> {
            self.0.logits(t, s, o)
        }
    }
    impl BlockModel for Hooked {
        fn prefill(&mut self, p: ArrayView2<'_, u32>) -> Result<()> {
            // Called once, before any block.
            assert!(self.1.is_empty());
            self.2.push(p.iter().copied().collect());
            Ok(())
        }
        fn begin_block(&mut self, r: std::ops::Range<usize>, _: ArrayView2<'_, u32>) -> Result<()> {
            self.1.push(r);
            Ok(())
        }
    }
    let mut m = Hooked(
        Hashy {
            v: 6,
            seed: 1,
            nan: false,
        },
        vec![],
        vec![],
    );
    let layout = discrete_diffusion::sample::presets::LladaLayout {
        prompt_len: 2,
        gen_length: 8,
        block_length: 4,
        steps: 8,
    };
    let mut cfg = discrete_diffusion::sample::presets::llada(5, layout, 1.0, false).unwrap();
    cfg.eos = Some(EosPadding {
        eos_id: 0,
        pad_id: 1,
    });
    cfg.exclude_mask = true;
    let mut x = Array2::from_shape_fn((1, 10), |(_, i)| if i < 2 { 3 } else { 5 });
    run(
        &mut m,
        &CpuBackend::new(),
        &cfg,
        x.view_mut(),
        None,
        4,
        &[0],
        &mut (),
    )
    .unwrap();
    assert_eq!(m.1, vec![2..6, 6..10]);
    // The prompt (the two positions before the first block), once.
    assert_eq!(m.2, vec![vec![3, 3]]);
    let row: Vec<u32> = x.row(0).to_vec();
    // Padding is never drawn before an EOS.
    let first_eos = row.iter().position(|&t| t == 0).unwrap_or(10);
    assert!(row[..first_eos].iter().all(|&t| t != 1));
}

/// Constant logits (independent of the tokens).
struct Constant(Array3<f32>);
impl Denoiser for Constant {
    fn vocab_size(&self) -> usize {
        self.0.dim().2
    }
    fn logits(
        &self,
        _: ArrayView2<'_, u32>,
        _: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        for mut row in out.outer_iter_mut() {
            row.assign(&self.0.index_axis(ndarray::Axis(0), 0));
        }
        Ok(())
    }
}

#[test]
fn reveal_logprobs_are_of_the_transformed_row_once() {
    // Dream origin at τ = 0.5 on a grid ending at 0.9: most positions are filled after the
    // grid from the last logits; each reveal's log-probability is that of softmax(ℓ/τ),
    // with the temperature applied once (not twice) to every row.
    let (l, v) = (16, 6);
    let lg = Array3::from_shape_fn((1, l, v), |(_, i, k)| {
        ((i * 3 + k * 7) % 5) as f32 * 0.7 - (k == 5) as u8 as f32 * 40.0
    });
    let model = Constant(lg.clone());
    let o = discrete_diffusion::sample::presets::DreamOptions {
        steps: 2,
        temperature: 0.5,
        eps: 0.9,
        ..Default::default()
    };
    let cfg = discrete_diffusion::sample::presets::dream(
        5,
        discrete_diffusion::sample::presets::DreamAlg::Origin,
        &o,
    )
    .unwrap();
    struct Lp(Vec<(usize, u32, f64)>);
    impl Observer for Lp {
        fn on_step(&mut self, e: &StepEvent<'_>) {
            self.0
                .extend(e.reveals.iter().map(|c| (c.pos, c.token, c.logprob)));
        }
    }
    let mut x = Array2::from_elem((1, l), 5u32);
    let mut rec = Lp(vec![]);
    let rep = run(
        &mut NoHook(&model),
        &CpuBackend::new(),
        &cfg,
        x.view_mut(),
        None,
        2,
        &[0],
        &mut rec,
    )
    .unwrap();
    assert_eq!(rec.0.len(), l);
    assert_eq!(rep.nfe, 2);
    for (i, tok, lp) in rec.0 {
        let row: Vec<f64> = (0..v).map(|k| lg[[0, i, k]] as f64 / 0.5).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|r| (r - m).exp()).sum();
        let want = row[tok as usize] - m - z.ln();
        assert!((lp - want).abs() < 1e-5, "position {i}: {lp} vs {want}");
        assert_ne!(tok, 5);
    }
}
