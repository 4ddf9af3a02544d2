//! Golden tests: each preset, run by the driver, reproduces a straightforward independent
//! re-implementation of its reference loop, token for token, on a deterministic
//! token-dependent "model".

use std::sync::Arc;

use discrete_diffusion::Result;
use discrete_diffusion::backend::ReferenceBackend;
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::steps::Commit;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::driver::{NoHook, Observer, SamplerConfig, StepEvent, run};
use discrete_diffusion::sample::presets::*;
use discrete_diffusion::schedule::Linear;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut3};

const V: usize = 12;
const MASK: u32 = 11;

/// `ℓ(x)[i, v]`: a fixed table plus a term that depends on the current tokens, the mask id
/// strongly penalised.
fn model_row(tokens: &[u32], i: usize) -> Vec<f32> {
    let h: u32 = tokens.iter().filter(|&&x| x != MASK).map(|&x| x + 1).sum();
    (0..V)
        .map(|v| {
            if v as u32 == MASK {
                return -30.0;
            }
            let a = ((i * 7 + v * 13) % 17) as f32 / 4.0;
            let b = ((h as usize + i * 3 + v * 5) % 11) as f32 / 9.0;
            a + b
        })
        .collect()
}

struct Toy;
impl Denoiser for Toy {
    fn vocab_size(&self) -> usize {
        V
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        _: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        for (b, row) in tokens.outer_iter().enumerate() {
            let x: Vec<u32> = row.to_vec();
            for i in 0..x.len() {
                for (v, l) in model_row(&x, i).into_iter().enumerate() {
                    out[[b, i, v]] = l;
                }
            }
        }
        Ok(())
    }
}

fn softmax(r: &[f32]) -> Vec<f64> {
    let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = r.iter().map(|&x| (x as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

fn argmax(p: &[f64]) -> usize {
    let mut k = 0;
    for (i, &x) in p.iter().enumerate() {
        if x > p[k] {
            k = i;
        }
    }
    k
}

/// Indices of the `k` largest (ties: lower index first).
fn topk(conf: &[(usize, f64)], k: usize) -> Vec<usize> {
    let mut c = conf.to_vec();
    c.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    c.into_iter().take(k).map(|x| x.0).collect()
}

#[derive(Default)]
struct Log(Vec<Commit>);
impl Observer for Log {
    fn on_step(&mut self, e: &StepEvent<'_>) {
        self.0.extend_from_slice(e.reveals);
    }
}

fn drive(cfg: &SamplerConfig, x: &[u32]) -> (Vec<u32>, Log) {
    let mut t = Array2::from_shape_vec((1, x.len()), x.to_vec()).unwrap();
    let mut log = Log::default();
    run(
        &mut NoHook(&Toy),
        &CpuBackend::new(),
        cfg,
        t.view_mut(),
        None,
        5,
        &[3],
        &mut log,
    )
    .unwrap();
    (t.into_raw_vec_and_offset().0, log)
}

fn prompt(p: usize, glen: usize) -> Vec<u32> {
    let mut x: Vec<u32> = (0..p as u32).map(|i| i % 10).collect();
    x.extend(std::iter::repeat_n(MASK, glen));
    x
}

/// The LLaDA loop (generate.py, temperature 0, low confidence).
fn llada_ref(mut x: Vec<u32>, p: usize, glen: usize, bl: usize, steps: usize) -> Vec<u32> {
    let nb = glen / bl;
    let spb = steps / nb;
    for j in 0..nb {
        let (a, e) = (p + j * bl, p + (j + 1) * bl);
        let m = x[a..e].iter().filter(|&&t| t == MASK).count();
        let nt: Vec<usize> = (0..spb)
            .map(|k| m / spb + usize::from(k < m % spb))
            .collect();
        for &n in &nt {
            let rows: Vec<Vec<f64>> = (0..x.len()).map(|i| softmax(&model_row(&x, i))).collect();
            let conf: Vec<(usize, f64)> = (0..e)
                .filter(|&i| x[i] == MASK)
                .map(|i| (i, rows[i][argmax(&rows[i])]))
                .collect();
            for i in topk(&conf, n) {
                x[i] = argmax(&rows[i]) as u32;
            }
        }
    }
    x
}

#[test]
fn llada_preset_matches_reference_loop() {
    for &(p, glen, bl, steps) in &[
        (3usize, 12usize, 4usize, 6usize),
        (2, 8, 8, 5),
        (0, 9, 3, 9),
    ] {
        let cfg = llada(
            MASK,
            LladaLayout {
                prompt_len: p,
                gen_length: glen,
                block_length: bl,
                steps,
            },
            0.0,
            false,
        )
        .unwrap();
        let x = prompt(p, glen);
        let (got, log) = drive(&cfg, &x);
        assert_eq!(
            got,
            llada_ref(x.clone(), p, glen, bl, steps),
            "layout {p} {glen} {bl} {steps}"
        );
        assert_eq!(log.0.len(), glen);
        for c in &log.0 {
            assert!(c.logprob <= 0.0 && c.token != MASK);
        }
    }
}

/// Fast-dLLM threshold and factor loops (temperature 0).
fn fast_ref(
    mut x: Vec<u32>,
    p: usize,
    glen: usize,
    bl: usize,
    thr: Option<f64>,
    factor: f64,
) -> Vec<u32> {
    for j in 0..glen / bl {
        let (a, e) = (p + j * bl, p + (j + 1) * bl);
        while x[a..e].contains(&MASK) {
            let rows: Vec<Vec<f64>> = (0..x.len()).map(|i| softmax(&model_row(&x, i))).collect();
            let conf: Vec<(usize, f64)> = (a..e)
                .filter(|&i| x[i] == MASK)
                .map(|i| (i, rows[i][argmax(&rows[i])]))
                .collect();
            let order = topk(&conf, conf.len());
            let take: Vec<usize> = match thr {
                Some(t) => order
                    .iter()
                    .enumerate()
                    .filter(|&(r, &i)| r == 0 || rows[i][argmax(&rows[i])] >= t)
                    .map(|(_, &i)| i)
                    .collect(),
                None => {
                    let sorted: Vec<f64> =
                        order.iter().map(|&i| rows[i][argmax(&rows[i])]).collect();
                    let n = sorted.len();
                    let mut th: Vec<f64> =
                        (1..=n).map(|k| 1.0 - factor / (k as f64 + 1.0)).collect();
                    th[0] = -1.0;
                    let mut top = 0;
                    for (ti, thv) in th.iter().enumerate() {
                        top = ti;
                        if sorted[ti] < *thv {
                            break;
                        }
                    }
                    if top == 0 || top == n - 1 {
                        top += 1;
                    }
                    order[..top].to_vec()
                }
            };
            for i in take {
                x[i] = argmax(&rows[i]) as u32;
            }
        }
    }
    x
}

#[test]
fn fast_dllm_presets_match_reference_loops() {
    for &(p, glen, bl) in &[(3usize, 12usize, 4usize), (1, 10, 10)] {
        let layout = LladaLayout {
            prompt_len: p,
            gen_length: glen,
            block_length: bl,
            steps: glen,
        };
        let x = prompt(p, glen);
        for &thr in &[0.9, 0.3, 0.15] {
            let cfg = fast_dllm_threshold(MASK, layout, 0.0, thr).unwrap();
            assert_eq!(
                drive(&cfg, &x).0,
                fast_ref(x.clone(), p, glen, bl, Some(thr), 0.0),
                "threshold {thr}"
            );
        }
        for &f in &[1.0, 2.5, 0.3] {
            let cfg = fast_dllm_factor(MASK, layout, 0.0, f).unwrap();
            assert_eq!(
                drive(&cfg, &x).0,
                fast_ref(x.clone(), p, glen, bl, None, f),
                "factor {f}"
            );
        }
    }
}

/// Dream's `_sample` loop at temperature 0 (maskgit_plus / topk_margin / entropy / Dimple).
fn dream_ref(
    mut x: Vec<u32>,
    steps: usize,
    eps: f64,
    top_k: Option<usize>,
    alg: &str,
    dimple: Option<(f64, bool)>,
) -> Vec<u32> {
    let ts: Vec<f64> = (0..=steps)
        .map(|k| {
            if k == steps {
                eps
            } else {
                1.0 - k as f64 * (1.0 - eps) / steps as f64
            }
        })
        .collect();
    let n0 = x.iter().filter(|&&t| t == MASK).count();
    for i in 0..steps {
        let masked: Vec<usize> = (0..x.len()).filter(|&j| x[j] == MASK).collect();
        if masked.is_empty() {
            break;
        }
        let (t, s) = (ts[i], ts[i + 1]);
        let mut conf = Vec::new();
        let mut x0 = vec![0u32; x.len()];
        for &j in &masked {
            let mut r = model_row(&x, j);
            let original = softmax(&r);
            if let Some(k) = top_k {
                let mut sorted = r.clone();
                sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
                let kth = sorted[k - 1];
                r.iter_mut()
                    .filter(|v| **v < kth)
                    .for_each(|v| *v = f32::NEG_INFINITY);
            }
            let p = softmax(&r);
            let a = argmax(&p);
            x0[j] = a as u32;
            let mut q = p.clone();
            q.sort_by(|a, b| b.partial_cmp(a).unwrap());
            let c = match alg {
                "margin" => q[0] - q[1],
                "entropy" => p.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum(),
                // Dimple `use_original_confidence`: the unfiltered row's probability.
                _ if matches!(dimple, Some((_, true))) => original[a],
                _ => p[a],
            };
            conf.push((j, c));
        }
        let take = match dimple {
            Some(_) if i == steps - 1 => masked.clone(),
            Some((th, _)) => {
                let v: Vec<usize> = conf.iter().filter(|c| c.1 > th).map(|c| c.0).collect();
                if v.is_empty() {
                    // Dimple's fallback count on the masked ratio.
                    let n = masked.len();
                    let tr = n as f64 / n0 as f64;
                    let first = (0..=steps).find(|&j| ts[j] < tr).unwrap();
                    let mut k = n;
                    for j in first.max(i + 1)..=steps {
                        k = if ts[j] > ts[steps] {
                            (n as f64 * (1.0 - ts[j] / tr)) as usize
                        } else {
                            n
                        };
                        if k >= 1 {
                            break;
                        }
                    }
                    topk(&conf, k)
                } else {
                    v
                }
            }
            None => {
                let n = masked.len();
                let k = if i < steps - 1 {
                    (n as f64 * (1.0 - s / t)) as usize
                } else {
                    n
                };
                topk(&conf, k)
            }
        };
        for j in take {
            x[j] = x0[j];
        }
    }
    x
}

#[test]
fn dream_and_dimple_presets_match_reference_loops() {
    let x = prompt(2, 10);
    for &(steps, top_k) in &[(5usize, None), (8, Some(3)), (3, Some(2))] {
        let o = DreamOptions {
            steps,
            top_k,
            ..DreamOptions::default()
        };
        for (alg, name) in [
            (DreamAlg::MaskgitPlus, "conf"),
            (DreamAlg::TopkMargin, "margin"),
            (DreamAlg::Entropy, "entropy"),
        ] {
            let got = drive(&dream(MASK, alg, &o).unwrap(), &x).0;
            assert_eq!(
                got,
                dream_ref(x.clone(), steps, 1e-3, top_k, name, None),
                "{name} {steps} {top_k:?}"
            );
        }
        let o = DreamOptions {
            steps: 10,
            top_k,
            ..DreamOptions::default()
        };
        for th in [0.2, 0.5, 0.9] {
            for orig in [false, true] {
                let got = drive(&dimple(MASK, &o, th, orig).unwrap(), &x).0;
                assert_eq!(
                    got,
                    dream_ref(x.clone(), 10, 1e-3, top_k, "conf", Some((th, orig))),
                    "dimple {th} original {orig}"
                );
            }
        }
    }
}

/// MDLM ancestral sampling with the crate's documented random-number addresses.
#[test]
fn mdlm_preset_matches_reference_loop() {
    let x = prompt(2, 9);
    let steps = 6;
    let cfg = mdlm(MASK, steps, 1e-5, Arc::new(Linear::new())).unwrap();
    let mut t = Array2::from_shape_vec((1, x.len()), x.clone()).unwrap();
    run(
        &mut NoHook(&Toy),
        &ReferenceBackend,
        &cfg,
        t.view_mut(),
        None,
        5,
        &[3],
        &mut (),
    )
    .unwrap();
    let key = RngKey::for_stream(5, 3);
    let mut y = x.clone();
    let ts: Vec<f64> = (0..=steps)
        .map(|k| {
            if k == steps {
                1e-5
            } else {
                1.0 - k as f64 * (1.0 - 1e-5) / steps as f64
            }
        })
        .collect();
    let mut last = Vec::new();
    for k in 0..steps {
        if !y.contains(&MASK) {
            break;
        }
        let (tt, s) = (ts[k], ts[k + 1]);
        let stay = s / tt;
        let z = y.clone();
        last = (0..y.len()).map(|i| model_row(&z, i)).collect::<Vec<_>>();
        for i in 0..y.len() {
            if z[i] == MASK
                && CounterRng::new(key, Purpose::ROUTING, k as u32, i as u32).uniform() >= stay
            {
                let mut r: Vec<f64> = last[i].iter().map(|&v| v as f64).collect();
                r[MASK as usize] = f64::NEG_INFINITY;
                let u = CounterRng::new(key, Purpose::CATEGORICAL, k as u32, i as u32).uniform();
                y[i] = discrete_diffusion::rng::categorical::sample_logits_inverse_cdf(&r, u)
                    .unwrap()
                    .token;
            }
        }
    }
    let _ = last;
    // Positions still masked after the grid are filled from the last logits (none expected
    // here with t_min = 1e-5 almost surely); compare the rest.
    let got = t.into_raw_vec_and_offset().0;
    for i in 0..x.len() {
        if y[i] != MASK {
            assert_eq!(got[i], y[i], "position {i}");
        }
        assert_ne!(got[i], MASK);
    }
}

#[test]
fn dimple_original_confidence_changes_the_decode() {
    // With top-k = 2 the filtered probability of the argmax is p₁/(p₁ + p₂) > p₁: the two
    // confidences straddle some thresholds, and the decodes differ there.
    let x = prompt(2, 10);
    let o = DreamOptions {
        steps: 10,
        top_k: Some(2),
        ..DreamOptions::default()
    };
    let mut differ = 0;
    for th in [0.2, 0.3, 0.4, 0.5, 0.6, 0.7] {
        let a = drive(&dimple(MASK, &o, th, true).unwrap(), &x);
        let b = drive(&dimple(MASK, &o, th, false).unwrap(), &x);
        assert_eq!(
            a.0,
            dream_ref(x.clone(), 10, 1e-3, Some(2), "conf", Some((th, true)))
        );
        let order = |l: &Log| l.0.iter().map(|c| c.pos).collect::<Vec<_>>();
        differ += usize::from(a.0 != b.0 || order(&a.1) != order(&b.1));
    }
    assert!(
        differ > 0,
        "original and filtered confidence never differed"
    );
}

/// SGLang `LowConfidence` (low_confidence.py): blocks aligned to multiples of `bs`, at most
/// `bs` iterations per block; argmax over the full vocabulary; reveal `p > th`, else the
/// single most confident (ties: lower position).
fn sglang_ref(mut x: Vec<u32>, p: usize, bs: usize, th: f64) -> (Vec<u32>, usize) {
    let mut nfe = 0;
    let mut a = p - p % bs;
    while a < x.len() {
        let e = a + bs;
        for _ in 0..bs {
            let masked: Vec<usize> = (a..e).filter(|&i| x[i] == MASK).collect();
            if masked.is_empty() {
                break;
            }
            nfe += 1;
            let rows: Vec<Vec<f64>> = (0..x.len()).map(|i| softmax(&model_row(&x, i))).collect();
            let conf: Vec<(usize, f64)> = masked
                .iter()
                .map(|&i| (i, rows[i][argmax(&rows[i])]))
                .collect();
            let mut take: Vec<usize> = conf.iter().filter(|c| c.1 > th).map(|c| c.0).collect();
            if take.is_empty() {
                take = topk(&conf, 1);
            }
            for i in take {
                x[i] = argmax(&rows[i]) as u32;
            }
        }
        a = e;
    }
    (x, nfe)
}

#[test]
fn sglang_low_confidence_matches_reference_loop() {
    // Whether some iteration revealed several positions (the threshold branch).
    let mut parallel = false;
    for &(p, glen, bs) in &[(2usize, 10usize, 4usize), (4, 8, 4), (5, 7, 6), (0, 6, 3)] {
        let x = prompt(p, glen);
        for th in [SGLANG_THRESHOLD, 0.2, 0.3, 0.45] {
            let cfg = sglang_low_confidence(MASK, p, glen, bs, th).unwrap();
            let mut t = Array2::from_shape_vec((1, x.len()), x.clone()).unwrap();
            let rep = run(
                &mut NoHook(&Toy),
                &CpuBackend::new(),
                &cfg,
                t.view_mut(),
                None,
                5,
                &[3],
                &mut (),
            )
            .unwrap();
            let (want, nfe) = sglang_ref(x.clone(), p, bs, th);
            assert_eq!(t.row(0).to_vec(), want, "p {p} glen {glen} bs {bs} th {th}");
            assert_eq!(rep.nfe, nfe, "p {p} glen {glen} bs {bs} th {th}");
            parallel |= rep.nfe < glen;
        }
    }
    assert!(parallel);
    // Bad layouts and thresholds.
    assert!(sglang_low_confidence(MASK, 2, 9, 4, 0.95).is_err());
    assert!(sglang_low_confidence(MASK, 2, 10, 0, 0.95).is_err());
    assert!(sglang_low_confidence(MASK, 2, 10, 4, 0.0).is_err());
    assert!(sglang_low_confidence(MASK, 2, 10, 4, 1.5).is_err());
    assert!(sglang_low_confidence(MASK, 2, 10, 4, f64::NAN).is_err());
}

/// Certain rows: `p(x0) = 1` exactly (one finite logit). SGLang compares `p > threshold`
/// strictly, so at `threshold = 1` nothing passes and each iteration reveals exactly one
/// position, left to right (`≥` would reveal the whole block in one call).
#[test]
fn sglang_threshold_is_strict() {
    struct Certain;
    impl Denoiser for Certain {
        fn vocab_size(&self) -> usize {
            3
        }
        fn logits(
            &self,
            _: ArrayView2<'_, u32>,
            _: ArrayView1<'_, f64>,
            mut out: ArrayViewMut3<'_, f32>,
        ) -> Result<()> {
            out.fill(f32::NEG_INFINITY);
            out.slice_mut(ndarray::s![.., .., 1]).fill(0.0);
            Ok(())
        }
    }
    let cfg = sglang_low_confidence(2, 0, 4, 4, 1.0).unwrap();
    let mut t = Array2::from_elem((1, 4), 2u32);
    let mut log = Log::default();
    let rep = run(
        &mut NoHook(&Certain),
        &CpuBackend::new(),
        &cfg,
        t.view_mut(),
        None,
        0,
        &[0],
        &mut log,
    )
    .unwrap();
    assert_eq!(t.row(0).to_vec(), vec![1; 4]);
    assert_eq!(rep.nfe, 4);
    assert_eq!(
        log.0.iter().map(|c| c.pos).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
}

#[test]
fn vllm_preset_is_the_plugins_llada_loop() {
    // The plugin's layout rules.
    let lay = |max_tokens, block_size, steps| {
        VllmDllmOptions {
            max_tokens,
            block_size,
            steps,
            temperature: 0.0,
        }
        .layout(3)
        .unwrap()
    };
    let l = lay(10, 4, 7);
    assert_eq!((l.gen_length, l.block_length, l.steps), (12, 4, 6));
    let l = lay(3, 4, 7);
    assert_eq!((l.gen_length, l.block_length, l.steps), (3, 3, 7));
    let l = lay(500, 32, 128);
    assert_eq!((l.gen_length, l.block_length, l.steps), (128, 32, 128));
    let l = lay(64, 32, 3);
    assert_eq!((l.gen_length, l.block_length, l.steps), (64, 32, 2));
    let d = VllmDllmOptions::default();
    assert_eq!(
        (d.max_tokens, d.block_size, d.steps, d.temperature),
        (128, 32, 128, 0.0)
    );
    assert!(VllmDllmOptions { block_size: 0, ..d }.layout(3).is_err());
    // The preset is LLaDA's loop on that layout.
    for &(mt, bs, st) in &[(10usize, 4usize, 7usize), (8, 4, 8), (6, 6, 3)] {
        let o = VllmDllmOptions {
            max_tokens: mt,
            block_size: bs,
            steps: st,
            temperature: 0.0,
        };
        let l = o.layout(3).unwrap();
        let x = prompt(3, l.gen_length);
        let got = drive(&vllm(MASK, 3, &o).unwrap(), &x).0;
        assert_eq!(
            got,
            llada_ref(x.clone(), 3, l.gen_length, l.block_length, l.steps)
        );
        assert_eq!(got, drive(&llada(MASK, l, 0.0, false).unwrap(), &x).0);
    }
}
