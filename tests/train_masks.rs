//! Masks, per-token schedules and corruption: structural invariants (proptest) and
//! distributional checks.

mod train_common;

use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::kernel::uniform::Uniform as UniformKernel;
use discrete_diffusion::schedule::{Linear, Uniform};
use discrete_diffusion::train::corrupt::{corrupt, corrupt_batch, mask_with_token_schedule};
use discrete_diffusion::train::masks::{
    MaskAddress, apply_mask, bernoulli_mask, complementary_masks, exact_count_mask, nested_masks,
    position_uniforms,
};
use discrete_diffusion::train::token_schedule::{
    GenMd4, SharedSchedule, Spindle, TokenSchedule, cart_weights, token_mask_probs_and_weights,
};
use ndarray::Array2;
use proptest::prelude::*;
use train_common::*;

proptest! {
    #[test]
    fn complementary_masks_cover_each_answer_position_exactly_once(
        seed in any::<u64>(), id in any::<u64>(), step in any::<u32>(),
        prob in 0.0f64..=1.0, eligible in prop::collection::vec(any::<bool>(), 1..64)
    ) {
        let l = eligible.len();
        let (mut a, mut b) = (vec![false; l], vec![false; l]);
        complementary_masks(MaskAddress::new(seed, id, step, 0), prob, &eligible, &mut a, &mut b).unwrap();
        for i in 0..l {
            prop_assert_eq!(a[i] as u8 + b[i] as u8, eligible[i] as u8, "position {}", i);
        }
    }

    #[test]
    fn nested_masks_are_nested(
        seed in any::<u64>(), draw in any::<u64>(),
        raw in prop::collection::vec(prop::collection::vec(0.0f64..=1.0, 1..8), 1..20)
    ) {
        // Rows of `raw` are positions; sort each position's levels to make them increasing.
        let k = raw.iter().map(|r| r.len()).min().unwrap();
        let l = raw.len();
        let mut probs = Array2::<f64>::zeros((k, l));
        for (i, r) in raw.iter().enumerate() {
            let mut r = r[..k].to_vec();
            r.sort_by(f64::total_cmp);
            for (j, &p) in r.iter().enumerate() { probs[[j, i]] = p; }
        }
        let mut out = Array2::<bool>::from_elem((k, l), false);
        let addr = MaskAddress::new(seed, 3, 9, draw);
        nested_masks(addr, probs.view(), out.view_mut()).unwrap();
        for j in 1..k {
            for i in 0..l {
                prop_assert!(!out[[j - 1, i]] || out[[j, i]]);
            }
        }
        // Row j equals the Bernoulli mask at the same level from the same address.
        let mut row = vec![false; l];
        bernoulli_mask(addr, &probs.row(k - 1).to_vec(), &mut row).unwrap();
        prop_assert_eq!(row, out.row(k - 1).to_vec());
    }

    #[test]
    fn exact_count_masks_have_the_count_and_nest(
        seed in any::<u64>(), eligible in prop::collection::vec(any::<bool>(), 1..40), c in 0usize..40
    ) {
        let n_el = eligible.iter().filter(|&&e| e).count();
        let c1 = c.min(n_el);
        let c2 = (c1 + 3).min(n_el);
        let addr = MaskAddress::new(seed, 0, 0, 1);
        let (mut m1, mut m2) = (vec![false; eligible.len()], vec![false; eligible.len()]);
        exact_count_mask(addr, c1, &eligible, &mut m1).unwrap();
        exact_count_mask(addr, c2, &eligible, &mut m2).unwrap();
        prop_assert_eq!(m1.iter().filter(|&&m| m).count(), c1);
        prop_assert_eq!(m2.iter().filter(|&&m| m).count(), c2);
        for i in 0..eligible.len() {
            prop_assert!(!m1[i] || (m2[i] && eligible[i]));
        }
    }

    #[test]
    fn spindle_endpoints_are_exact_and_alpha_is_monotone(
        scores in prop::collection::vec(-3.0f64..3.0, 2..12),
        frac in 0.0f64..=1.0,
        x0 in prop::collection::vec(0u32..12, 1..16)
    ) {
        let v = scores.len();
        let x0: Vec<u32> = x0.into_iter().map(|x| x % v as u32).collect();
        let (lo, hi) = scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &s| (a.min(s), b.max(s)));
        let lambda = if hi > lo { frac / (std::f64::consts::PI * (hi - lo)) } else { frac };
        let sp = Spindle::new(lambda, scores).unwrap();
        let l = x0.len();
        let (mut a, mut da) = (vec![0.0; l], vec![0.0; l]);
        sp.alphas(0.0, &x0, &mut a, &mut da).unwrap();
        prop_assert!(a.iter().all(|&x| x == 1.0));
        sp.alphas(1.0, &x0, &mut a, &mut da).unwrap();
        prop_assert!(a.iter().all(|&x| x == 0.0));
        let mut prev = vec![1.0; l];
        for k in 1..=50 {
            let t = k as f64 / 50.0;
            sp.alphas(t, &x0, &mut a, &mut da).unwrap();
            for i in 0..l {
                prop_assert!(a[i] <= prev[i] + 1e-15 && (0.0..=1.0).contains(&a[i]));
                prop_assert!(da[i] <= 1e-12);
            }
            prev.copy_from_slice(&a);
        }
    }
}

#[test]
fn token_schedule_derivatives_match_finite_differences() {
    let sp = Spindle::new(0.1, vec![0.0, 1.0, 2.5, -0.5]).unwrap();
    let g = GenMd4::new(vec![0.5, 1.0, 2.0, 3.5]).unwrap();
    let sh = SharedSchedule::new(Linear::new(), 4).unwrap();
    let x0 = [0u32, 2, 3, 1, 2];
    let schedules: [&dyn TokenSchedule; 3] = [&sp, &g, &sh];
    for s in schedules {
        for t in [0.1, 0.37, 0.5, 0.83] {
            let h = 1e-6;
            let (mut a, mut da) = ([0.0; 5], [0.0; 5]);
            let (mut ap, mut am, mut tmp) = ([0.0; 5], [0.0; 5], [0.0; 5]);
            s.alphas(t, &x0, &mut a, &mut da).unwrap();
            s.alphas(t + h, &x0, &mut ap, &mut tmp).unwrap();
            s.alphas(t - h, &x0, &mut am, &mut tmp).unwrap();
            for i in 0..5 {
                let fd = (ap[i] - am[i]) / (2.0 * h);
                assert!(
                    (fd - da[i]).abs() < 1e-7,
                    "{s:?} t={t} i={i}: {fd} vs {}",
                    da[i]
                );
            }
        }
    }
    // GenMD4: exact endpoints and weight w_v / t.
    let (mut p, mut w) = ([0.0; 5], [0.0; 5]);
    token_mask_probs_and_weights(&g, 0.25, &x0, &mut p, &mut w).unwrap();
    for i in 0..5 {
        let wv = [0.5, 1.0, 2.0, 3.5][x0[i] as usize];
        assert!((w[i] - wv / 0.25).abs() < 1e-12);
        assert!((p[i] - 0.25f64.powf(wv)).abs() < 1e-15);
    }
    let (mut a, mut da) = ([0.0; 5], [0.0; 5]);
    g.alphas(0.0, &x0, &mut a, &mut da).unwrap();
    assert!(a.iter().all(|&x| x == 1.0));
    g.alphas(1.0, &x0, &mut a, &mut da).unwrap();
    assert!(a.iter().all(|&x| x == 0.0));
}

#[test]
fn cart_weights_match_the_definition() {
    let p = 0.3;
    for pattern in 0u32..(1 << 9) {
        let masked: Vec<bool> = (0..9).map(|i| pattern >> i & 1 == 1).collect();
        let mut w = vec![0.0; 9];
        cart_weights(&masked, p, &mut w).unwrap();
        for n in 0..9 {
            let want = if masked[n] {
                0.5 * (0..9)
                    .filter(|&i| !masked[i])
                    .map(|i| (1.0 - p).powi((n as i32 - i as i32).abs() - 1) * p)
                    .sum::<f64>()
            } else {
                0.0
            };
            assert!(
                (w[n] - want).abs() < 1e-14,
                "{masked:?} n={n}: {} vs {want}",
                w[n]
            );
        }
    }
}

#[test]
fn corruption_masks_with_the_right_probability_and_is_addressed() {
    let process = MixtureProcess::from_schedule(mask_pi(), Linear::new()).unwrap();
    let x0: Vec<u32> = (0..200).map(|i| DATA_IDS[i % 3]).collect();
    let t = 0.37;
    let mut masked = 0usize;
    let mut out = vec![0u32; x0.len()];
    let reps = 100;
    for r in 0..reps {
        corrupt(&process, &x0, t, MaskAddress::new(11, r, 0, 0), &mut out).unwrap();
        for (o, x) in out.iter().zip(&x0) {
            assert!(*o == *x || *o == MASK);
            masked += (*o == MASK) as usize;
        }
    }
    let n = (reps as usize * x0.len()) as f64;
    let z = (masked as f64 - n * t) / (n * t * (1.0 - t)).sqrt();
    assert!(z.abs() < 4.5, "z = {z}");
    // Uniform kernel on its grid: a token is kept with probability ᾱ + (1 − ᾱ)/V.
    let k = UniformKernel::new(4, &[0.5, 0.5]).unwrap();
    let mut same = 0usize;
    for r in 0..reps {
        corrupt(&k, &x0, 1.0, MaskAddress::new(12, r, 0, 0), &mut out).unwrap();
        same += out.iter().zip(&x0).filter(|(a, b)| a == b).count();
    }
    let p = 0.25 + 0.75 * 0.25;
    let z = (same as f64 - n * p) / (n * p * (1.0 - p)).sqrt();
    assert!(z.abs() < 4.5, "z = {z}");
    // Batch rows equal single-sequence corruption at their own address and time.
    let x0b = Array2::from_shape_vec((3, 4), vec![0, 2, 3, 0, 2, 2, 0, 3, 3, 0, 0, 2]).unwrap();
    let ids = [40u64, 7, 1234];
    let b = corrupt_batch(
        &Uniform::new(0.0).unwrap(),
        &process,
        x0b.view(),
        9,
        0,
        &ids,
        5,
    )
    .unwrap();
    for (r, &id) in ids.iter().enumerate() {
        let mut o = vec![0u32; 4];
        corrupt(
            &process,
            &x0b.row(r).to_vec(),
            b.times[r],
            MaskAddress::new(9, id, 5, 0),
            &mut o,
        )
        .unwrap();
        assert_eq!(o, b.xt.row(r).to_vec());
    }
}

#[test]
fn token_schedule_masking_respects_prompt_and_weights() {
    let sp = Spindle::new(0.05, vec![0.0, 0.0, 1.0, 2.0]).unwrap();
    let x0 = [0u32, 2, 3, 3, 0, 2, 3];
    let (mut xt, mut w) = ([0u32; 7], [0.0; 7]);
    let mut total = 0;
    for r in 0..200 {
        let m = mask_with_token_schedule(
            &sp,
            &x0,
            0.6,
            MASK,
            2,
            MaskAddress::new(1, r, 0, 0),
            &mut xt,
            &mut w,
        )
        .unwrap();
        total += m;
        assert_eq!(&xt[..2], &x0[..2]);
        let (mut p, mut ww) = ([0.0; 7], [0.0; 7]);
        token_mask_probs_and_weights(&sp, 0.6, &x0, &mut p, &mut ww).unwrap();
        for i in 0..7 {
            if xt[i] == MASK {
                assert_eq!(w[i], ww[i]);
            } else {
                assert_eq!(xt[i], x0[i]);
                assert_eq!(w[i], 0.0);
            }
        }
    }
    assert!(total > 0);
}

#[test]
fn uniforms_and_apply_mask() {
    let mut u = [0.0; 5];
    let a = MaskAddress::new(1, 2, 3, 4);
    position_uniforms(a, &mut u).unwrap();
    assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
    assert_eq!(u[2], a.uniform(2));
    assert_ne!(u[2], a.with_draw(5).uniform(2));
    let mut out = [0u32; 3];
    apply_mask(&[4, 5, 6], &[true, false, true], 9, &mut out).unwrap();
    assert_eq!(out, [9, 5, 9]);
}
