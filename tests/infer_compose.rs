//! One toolkit: the driver runs presets directly over guided and cached denoiser stacks
//! (`ClassifierFree<ExactReuse<OracleDenoiser>>`), calling the prefill hook once with the
//! prompt and the block hook at every block. On an exact oracle of an absorbing process
//! (time-independent posterior) exact reuse is bit-identical to the unwrapped run, with
//! fewer real model calls.

use std::sync::Arc;

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::cache::{
    ExactReuse, IntervalCache, IntervalConfig, TimeDependence,
};
use discrete_diffusion::sample::driver::{BlockModel, NoHook, RunReport, SamplerConfig, run};
use discrete_diffusion::sample::guidance::{CfgConfig, ClassifierFree};
use discrete_diffusion::sample::presets::{LladaLayout, llada, mdlm};
use discrete_diffusion::schedule::{Linear, LogLinear};
use ndarray::{Array1, Array2, Array3};

const V: usize = 4;
const L: usize = 5;
const MASK: u32 = 0;
const P: usize = 2;
const B: usize = 3;

type Oracle = OracleDenoiser<EnumerationOracle, MixtureProcess>;

/// The exact x0 posterior of a correlated law on `{1, 2, 3}^L` under the absorbing
/// process with the log-linear schedule (`α(1) = 10⁻³ > 0`, so a prompt token observed at
/// `t = 1` has positive probability). Absorbing: the posterior ignores `t`.
fn oracle() -> Oracle {
    let n = V.pow(L as u32);
    let mut p = vec![0.0; n];
    for (k, q) in p.iter_mut().enumerate() {
        let (mut idx, mut w, mut prev) = (k, 1.0, 0usize);
        let mut ok = true;
        for i in 0..L {
            let t = idx % V;
            idx /= V;
            ok &= t != MASK as usize;
            w *= 1.0 + ((t * 5 + i * 3 + prev * 7) % 6) as f64;
            prev = t;
        }
        *q = if ok { w } else { 0.0 };
    }
    let z: f64 = p.iter().sum();
    p.iter_mut().for_each(|q| *q /= z);
    let mut pi = vec![0.0; V];
    pi[MASK as usize] = 1.0;
    let process = MixtureProcess::from_schedule(pi, LogLinear::new(1e-3).unwrap()).unwrap();
    OracleDenoiser::new(EnumerationOracle::new(V, L, p).unwrap(), process).unwrap()
}

/// `B` sequences: prompt `[1, 2]`, then masks.
fn start() -> Array2<u32> {
    Array2::from_shape_fn((B, L), |(_, i)| if i < P { i as u32 + 1 } else { MASK })
}

fn drive<M: BlockModel>(m: &mut M, cfg: &SamplerConfig, seed: u64) -> (Array2<u32>, RunReport) {
    let mut x = start();
    let rep = run(
        m,
        &CpuBackend::new(),
        cfg,
        x.view_mut(),
        None,
        seed,
        &[0, 1, 2],
        &mut (),
    )
    .unwrap();
    (x, rep)
}

fn prompt_mask() -> Vec<bool> {
    (0..L).map(|i| i < P).collect()
}

fn presets() -> Vec<(&'static str, SamplerConfig)> {
    let mut bd = mdlm(MASK, 48, 1e-3, Arc::new(Linear::new())).unwrap();
    bd.blocks = Some(discrete_diffusion::sample::driver::Blocks {
        start: P,
        length: 3,
    });
    vec![
        (
            "mdlm",
            mdlm(MASK, 48, 1e-3, Arc::new(Linear::new())).unwrap(),
        ),
        ("mdlm+blocks", bd),
        (
            "llada",
            llada(
                MASK,
                LladaLayout {
                    prompt_len: P,
                    gen_length: 3,
                    block_length: 3,
                    steps: 3,
                },
                1.0,
                false,
            )
            .unwrap(),
        ),
    ]
}

#[test]
fn guided_cached_stack_equals_the_unwrapped_run_at_zero_weight() {
    for (name, cfg) in presets() {
        for seed in [1u64, 2, 3] {
            let plain = oracle();
            let (want, rep_plain) = drive(&mut NoHook(&plain), &cfg, seed);
            let mut stack = ClassifierFree::masking_prompt(
                ExactReuse::new(oracle(), TimeDependence::Independent),
                MASK,
                prompt_mask(),
                CfgConfig::always(0.0).unwrap(),
            )
            .unwrap();
            let (got, rep) = drive(&mut stack, &cfg, seed);
            assert_eq!(got, want, "{name} seed {seed}");
            assert_eq!(rep, rep_plain, "{name} seed {seed}");
            let inner = stack.cond().nfe() as usize;
            eprintln!(
                "{name} seed {seed}: driver NFE {}, real calls {inner}",
                rep.nfe
            );
            assert!(inner <= rep.nfe, "{name}");
            if name.starts_with("mdlm") {
                // Most of the 48 steps reveal nothing: the real calls drop.
                assert!(
                    2 * inner < rep.nfe,
                    "{name} seed {seed}: {inner} real calls for {} steps",
                    rep.nfe
                );
            }
        }
    }
}

#[test]
fn exact_reuse_under_guidance_is_bit_identical() {
    // w > 0: CFG over the cached model (which sees the [x; un_x] batches and reuses per
    // row) equals CFG over the plain model, token for token, with fewer real calls.
    let cfg = &presets()[0].1;
    for w in [0.5, 2.0] {
        let g = CfgConfig::always(w).unwrap();
        let mut plain = ClassifierFree::masking_prompt(oracle(), MASK, prompt_mask(), g).unwrap();
        let (want, rep_plain) = drive(&mut plain, cfg, 9);
        let mut cached = ClassifierFree::masking_prompt(
            ExactReuse::new(oracle(), TimeDependence::Independent),
            MASK,
            prompt_mask(),
            g,
        )
        .unwrap();
        let (got, rep) = drive(&mut cached, cfg, 9);
        assert_eq!(got, want, "w {w}");
        assert_eq!(rep, rep_plain);
        assert!((cached.cond().nfe() as usize) * 2 < rep.nfe);
        eprintln!(
            "w {w}: driver NFE {}, real calls {}",
            rep.nfe,
            cached.cond().nfe()
        );
        // Guidance is on: the guided logits of the start state differ from the model's.
        let logits = |d: &dyn Denoiser| {
            let mut out = Array3::<f32>::zeros((B, L, V));
            d.logits(
                start().view(),
                Array1::from_elem(B, 0.5).view(),
                out.view_mut(),
            )
            .unwrap();
            out
        };
        assert_ne!(logits(&plain), logits(&oracle()));
    }
}

#[test]
fn driver_calls_prefill_with_the_prompt() {
    // The interval cache takes P from prefill: constructed with P = 0, it holds the
    // driver's prompt length after a run (the common fixed prefix without blocks, the
    // first block's start with blocks); with k_p = k_r = 1 it is exact.
    for (name, cfg) in presets() {
        let mut cache = IntervalCache::new(oracle(), IntervalConfig::new(1, 1).unwrap(), 0);
        let (got, _) = drive(&mut cache, &cfg, 4);
        assert_eq!(cache.prompt_len(), P, "{name}");
        let (want, _) = drive(&mut NoHook(&oracle()), &cfg, 4);
        assert_eq!(got, want, "{name}");
    }
    // Without blocks and with a fixed position after a masked one, P stops at the mask.
    let cfg = &presets()[0].1;
    let mut cache = IntervalCache::new(oracle(), IntervalConfig::new(1, 1).unwrap(), 9);
    let mut x = Array2::from_shape_fn((B, L), |(b, i)| match (b, i) {
        (_, 0) => 1,
        (1, 1) => MASK,
        (_, 1) => 2,
        (_, 3) => 3,
        _ => MASK,
    });
    run(
        &mut cache,
        &CpuBackend::new(),
        cfg,
        x.view_mut(),
        None,
        0,
        &[0, 1, 2],
        &mut (),
    )
    .unwrap();
    assert_eq!(cache.prompt_len(), 1);
}
