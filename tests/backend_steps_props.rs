//! Invariants of every fused step on random inputs (proptest).

mod common;
mod steps_common;

use discrete_diffusion::backend::steps::{
    DfmEulerStep, JumpRule, LladaStep, MdlmStep, Scorer, SeddAbsorbingStep, StepOutput, StepRng,
    ThresholdStep, dfm_euler_step, llada_num_transfer_tokens, llada_step, mdlm_ancestral_step,
    sedd_analytic_absorbing_step, threshold_step,
};
use discrete_diffusion::schedule::{Kappa, LogLinear};
use ndarray::{Array2, Array3};
use steps_common::*;

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
