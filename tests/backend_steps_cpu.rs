//! The fused steps give the same results over the fast `CpuBackend` as over the scalar
//! `ReferenceBackend`: same positions committed, same tokens, log-probabilities within the
//! CPU exp's error. (Tokens can differ only when a uniform falls within ~1e-7 of an
//! inverse-CDF boundary; the CPU backend's own tests bound that rate. These fixed inputs hit
//! no boundary, so any difference here is a real divergence.)

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::steps::{
    LladaStep, MdlmStep, Scorer, StepOutput, StepRng, ThresholdStep, llada_step,
    mdlm_ancestral_step, sample_categorical, threshold_step,
};
use discrete_diffusion::backend::{Backend, ReferenceBackend, RowSpec};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::schedule::LogLinear;
use ndarray::{Array2, Array3};

const B: usize = 3;
const L: usize = 48;

/// Random logits (scale 3) and tokens with about half the positions masked.
fn inputs(v: usize, mask: u32, seed: u64) -> (Array3<f32>, Array2<u32>) {
    let key = RngKey::new(seed);
    let logits = Array3::from_shape_fn((B, L, v), |(b, i, k)| {
        let mut r = CounterRng::new(key, Purpose::USER, b as u32, (i * v + k) as u32);
        (3.0 * (r.uniform() - 0.5) * 2.0) as f32
    });
    let tokens = Array2::from_shape_fn((B, L), |(b, i)| {
        let mut r = CounterRng::new(key, Purpose(Purpose::USER.0 + 1), b as u32, i as u32);
        if r.uniform() < 0.5 {
            mask
        } else {
            let x = r.next_u32() % v as u32;
            if x == mask { (x + 1) % v as u32 } else { x }
        }
    });
    (logits, tokens)
}

fn assert_same(what: &str, a: &StepOutput, b: &StepOutput, ta: &Array2<u32>, tb: &Array2<u32>) {
    assert_eq!(ta, tb, "{what}: tokens differ");
    assert_eq!(a.commits.len(), b.commits.len(), "{what}: commit counts");
    for (x, y) in a.commits.iter().zip(&b.commits) {
        assert_eq!((x.seq, x.pos, x.token), (y.seq, y.pos, y.token), "{what}");
        assert!(
            (x.logprob - y.logprob).abs() < 1e-5,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

fn backends() -> (ReferenceBackend, CpuBackend) {
    (ReferenceBackend, CpuBackend::with_threads(2).unwrap())
}

#[test]
fn categorical_and_mdlm_agree_across_backends() {
    let (r, c) = backends();
    let streams: Vec<u64> = (0..B as u64).map(|s| 100 + s).collect();
    for (v, mask) in [(7usize, 3u32), (500, 0), (4096, 4095)] {
        let (logits, tokens) = inputs(v, mask, v as u64);
        let rng = StepRng {
            seed: 11,
            streams: &streams,
            step: 5,
        };
        let spec = RowSpec {
            temperature: 0.8,
            excluded: vec![mask],
            ..RowSpec::default()
        };
        let run = |bk: &dyn Backend| {
            let mut t = tokens.clone();
            let out =
                sample_categorical(bk, logits.view(), None, &spec, &rng, t.view_mut()).unwrap();
            (out, t)
        };
        let ((oa, ta), (ob, tb)) = (run(&r), run(&c));
        assert_same(&format!("categorical V={v}"), &oa, &ob, &ta, &tb);

        let sched = LogLinear::new(1e-3).unwrap();
        let params = MdlmStep {
            mask_id: mask,
            t: 0.6,
            s: 0.4,
        };
        let run = |bk: &dyn Backend| {
            let mut t = tokens.clone();
            let out = mdlm_ancestral_step(bk, &sched, logits.view(), t.view_mut(), &params, &rng)
                .unwrap();
            (out, t)
        };
        let ((oa, ta), (ob, tb)) = (run(&r), run(&c));
        assert!(!oa.commits.is_empty());
        assert_same(&format!("mdlm V={v}"), &oa, &ob, &ta, &tb);
    }
}

#[test]
fn llada_and_threshold_agree_across_backends() {
    let (r, c) = backends();
    let streams: Vec<u64> = (0..B as u64).collect();
    for (v, mask) in [(9usize, 4u32), (2048, 17)] {
        let (logits, tokens) = inputs(v, mask, 7 + v as u64);
        let rng = StepRng {
            seed: 3,
            streams: &streams,
            step: 1,
        };
        let masked: Vec<usize> = tokens
            .rows()
            .into_iter()
            .map(|row| row.iter().filter(|&&x| x == mask).count())
            .collect();
        let k: Vec<usize> = masked.iter().map(|m| m / 3).collect();
        for (scorer, temperature) in [
            (Scorer::Confidence, 0.0),
            (Scorer::Confidence, 1.0),
            (Scorer::Margin, 0.5),
            (Scorer::NegEntropy, 1.0),
        ] {
            let params = LladaStep {
                mask_id: mask,
                temperature,
                scorer,
                exclude_mask: true,
            };
            let run = |bk: &dyn Backend| {
                let mut t = tokens.clone();
                let out =
                    llada_step(bk, logits.view(), t.view_mut(), None, &k, &params, &rng).unwrap();
                (out, t)
            };
            let ((oa, ta), (ob, tb)) = (run(&r), run(&c));
            assert_eq!(oa.commits.len(), k.iter().sum::<usize>());
            assert_same(
                &format!("llada {scorer:?} τ={temperature} V={v}"),
                &oa,
                &ob,
                &ta,
                &tb,
            );
        }
        let params = ThresholdStep {
            mask_id: mask,
            temperature: 0.0,
            threshold: 0.05,
            exclude_mask: true,
        };
        let run = |bk: &dyn Backend| {
            let mut t = tokens.clone();
            let out = threshold_step(bk, logits.view(), t.view_mut(), None, &params, &rng).unwrap();
            (out, t)
        };
        let ((oa, ta), (ob, tb)) = (run(&r), run(&c));
        assert_same(&format!("threshold V={v}"), &oa, &ob, &ta, &tb);
    }
}
