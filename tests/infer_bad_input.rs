//! Bad input of the inference toolkit: every entry point returns a clear error.

mod infer_common;

use std::sync::Arc;

use discrete_diffusion::backend::RowSpec;
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::steps::StepRng;
use discrete_diffusion::sample::driver::*;
use discrete_diffusion::sample::remask::*;
use discrete_diffusion::sample::select::*;
use discrete_diffusion::schedule::Linear;
use infer_common::Hashy;
use ndarray::{Array2, Array3, ArrayView2};

#[test]
fn bad_input() {
    let model = Hashy {
        v: 5,
        seed: 0,
        nan: false,
    };
    let base =
        discrete_diffusion::sample::presets::mdlm(4, 4, 0.0, Arc::new(Linear::new())).unwrap();
    let go = |cfg: &SamplerConfig,
              x: &mut Array2<u32>,
              fixed: Option<ArrayView2<'_, bool>>,
              streams: &[u64]| {
        run(
            &mut NoHook(&model),
            &CpuBackend::new(),
            cfg,
            x.view_mut(),
            fixed,
            0,
            streams,
            &mut (),
        )
    };
    let mut x = Array2::from_elem((2, 4), 4u32);
    assert!(go(&base, &mut x, None, &[0]).is_err(), "streams length");
    let mut bad = Array2::from_elem((2, 4), 7u32);
    assert!(go(&base, &mut bad, None, &[0, 1]).is_err(), "token ≥ V");
    let f = Array2::from_elem((2, 4), true);
    assert!(
        go(&base, &mut x, Some(f.view()), &[0, 1]).is_err(),
        "fixed mask"
    );
    let f = Array2::from_elem((1, 4), false);
    assert!(
        go(&base, &mut x, Some(f.view()), &[0, 1]).is_err(),
        "fixed shape"
    );
    let mut empty = Array2::<u32>::zeros((0, 4));
    assert!(go(&base, &mut empty, None, &[]).is_err());
    let with = |f: &dyn Fn(&mut SamplerConfig)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    for c in [
        with(&|c| c.steps = 0),
        with(&|c| c.mask_id = 5),
        with(&|c| c.t_min = 1.0),
        with(&|c| c.draw_temperature = f64::NAN),
        with(&|c| {
            c.blocks = Some(Blocks {
                start: 1,
                length: 2,
            })
        }),
        with(&|c| {
            c.blocks = Some(Blocks {
                start: 0,
                length: 0,
            })
        }),
        with(&|c| c.stop = vec![StopRule::MaxNfe(0)]),
        with(&|c| c.stop = vec![StopRule::EntropyBelow(0.1)]),
        with(&|c| {
            c.eos = Some(EosPadding {
                eos_id: 4,
                pad_id: 0,
            })
        }),
        with(&|c| {
            c.transforms = vec![discrete_diffusion::sample::transform::LogitTransform::TopK(
                0,
            )]
        }),
        with(&|c| {
            c.policy = Policy::Unmask(Unmasking {
                score: Score::Random,
                budget: Budget::Fixed(0),
                selector: Selector::TopK,
            })
        }),
        with(&|c| {
            c.policy = Policy::Unmask(Unmasking {
                score: Score::AnnealedGumbel {
                    base: BaseScore::Margin,
                    temperature: -1.0,
                },
                budget: Budget::Fixed(1),
                selector: Selector::TopK,
            })
        }),
        with(&|c| {
            c.policy = Policy::Remdm {
                schedule: Arc::new(Linear::new()),
                sigma: RemdmSigma::Cap { eta: 2.0 },
            }
        }),
        with(&|c| {
            c.policy = Policy::RemdmLoop(RemdmLoop {
                t_on: 0.1,
                t_off: 0.5,
                alpha_on: 0.9,
                eta: 0.1,
            })
        }),
    ] {
        let mut y = x.clone();
        assert!(go(&c, &mut y, None, &[0, 1]).is_err(), "{c:?}");
    }
    // A NaN from the model is reported, not sampled.
    let nan = Hashy {
        v: 5,
        seed: 0,
        nan: true,
    };
    let mut y = x.clone();
    assert!(
        run(
            &mut NoHook(&nan),
            &CpuBackend::new(),
            &base,
            y.view_mut(),
            None,
            0,
            &[0, 1],
            &mut ()
        )
        .is_err()
    );
    // Step-level entry points.
    let logits = Array3::<f32>::zeros((1, 3, 4));
    let mut t = Array2::from_elem((1, 3), 3u32);
    let cand = Array2::from_elem((1, 2), true);
    let pol = Unmasking {
        score: Score::Random,
        budget: Budget::Fixed(1),
        selector: Selector::TopK,
    };
    let rng = StepRng {
        seed: 0,
        streams: &[0],
        step: 0,
    };
    let place = StepPlace {
        step: 0,
        steps: 1,
        t: 1.0,
        s: 0.0,
    };
    assert!(
        unmask_step(
            &CpuBackend::new(),
            logits.view(),
            t.view_mut(),
            cand.view(),
            &pol,
            &RowSpec::default(),
            3,
            &[3],
            place,
            &rng
        )
        .is_err()
    );
    let cand = Array2::from_elem((1, 3), true);
    assert!(
        unmask_step(
            &CpuBackend::new(),
            logits.view(),
            t.view_mut(),
            cand.view(),
            &pol,
            &RowSpec::default(),
            3,
            &[3, 3],
            place,
            &rng
        )
        .is_err()
    );
    let ctx = BudgetCtx {
        at_block_start: 3,
        now: 3,
        step: 2,
        steps: 2,
        t: 1.0,
        s: 0.5,
    };
    assert!(Budget::UniformSplit.count(&ctx, &[]).is_err());
    assert!(remdm_sigma_max(0.5, 0.4).is_err());
    assert!(remdm_sigma(RemdmSigma::Rescale { eta: -0.1 }, 0.1, 0.2).is_err());
    assert!(remdm_conf_sigmas(&[f64::NAN], 0.5).is_err());
    assert!(remdm_reveal_probability(1.0, 1.0, 0.0).is_err());
    let mut out = [0.0; 3];
    assert!(remdm_position_probs(0.1, 0.2, 0.0, 2, 2, &[0.0, 0.0, 1.0], &mut out).is_err());
    assert!(remdm_position_probs(0.1, 0.2, 0.0, 3, 2, &[0.5, 0.5, 0.0], &mut out).is_err());
    assert!(
        RemdmLoop {
            t_on: 0.5,
            t_off: 0.1,
            alpha_on: 0.9,
            eta: 0.1
        }
        .step(0.3, 0.4)
        .is_err()
    );
    assert!(
        discrete_diffusion::sample::presets::llada(
            3,
            discrete_diffusion::sample::presets::LladaLayout {
                prompt_len: 0,
                gen_length: 10,
                block_length: 4,
                steps: 4
            },
            0.0,
            false
        )
        .is_err()
    );
    assert!(
        discrete_diffusion::sample::presets::fast_dllm_threshold(
            3,
            discrete_diffusion::sample::presets::LladaLayout {
                prompt_len: 0,
                gen_length: 8,
                block_length: 4,
                steps: 4
            },
            0.0,
            1.5
        )
        .is_err()
    );
}
