//! Every training loss's gradient with respect to the logits matches central finite
//! differences: the SUBS masked loss (single and batched), the NELBO estimate, VRPO's DPO
//! loss chained through the policy's NELBO, and the adjoint of the AR logit shift.

mod train_common;

use discrete_diffusion::loss::masked::{
    PositionWeights, masked_diffusion_loss, masked_diffusion_loss_batch,
};
use discrete_diffusion::loss::weight::ElboWeight;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::schedule::{Linear, MdlmCosine, Schedule, Stratified};
use discrete_diffusion::train::elbo::{ElboDraws, ElboSampling};
use discrete_diffusion::train::shift::{
    FirstPosition, shift_gradient_to_ar, shift_logits, unshift_logits,
};
use discrete_diffusion::train::vrpo::{PairNelbos, vrpo_loss};
use ndarray::{Array1, Array2, Array3};
use train_common::*;

fn random(shape: (usize, usize, usize), seed: u64) -> Array3<f64> {
    let mut rng = CounterRng::new(RngKey::new(seed), Purpose::USER, 0, 0);
    Array3::from_shape_fn(shape, |_| 4.0 * rng.uniform() - 2.0)
}

/// Central differences of `f` at every entry of `x` against `grad` (relative-absolute 1e-6).
fn check_fd(x: &Array3<f64>, grad: &Array3<f64>, f: impl Fn(&Array3<f64>) -> f64) {
    let h = 1e-5;
    for (idx, &g) in grad.indexed_iter() {
        let mut p = x.clone();
        p[idx] += h;
        let fp = f(&p);
        p[idx] -= 2.0 * h;
        let fm = f(&p);
        let fd = (fp - fm) / (2.0 * h);
        assert!(
            (fd - g).abs() < 1e-6 * (1.0 + g.abs()),
            "{idx:?}: fd {fd} vs grad {g}"
        );
    }
}

#[test]
fn masked_loss_gradient_matches_finite_differences() {
    let x0 = [0u32, 2, 3, 3, 2];
    let xt = [MASK, 2, MASK, MASK, 2];
    let w = [0.3, 9.0, 1.7, 2.2, 0.0];
    let logits = random((1, 5, V), 1);
    let f = |l: &Array3<f64>| {
        masked_diffusion_loss(
            l.index_axis(ndarray::Axis(0), 0),
            &x0,
            &xt,
            MASK,
            PositionWeights::PerPosition(&w),
            None,
        )
        .unwrap()
        .value
    };
    let mut g = Array3::<f64>::zeros((1, 5, V));
    let r = masked_diffusion_loss(
        logits.index_axis(ndarray::Axis(0), 0),
        &x0,
        &xt,
        MASK,
        PositionWeights::PerPosition(&w),
        Some(g.index_axis_mut(ndarray::Axis(0), 0)),
    )
    .unwrap();
    assert_eq!(r.masked, 3);
    check_fd(&logits, &g, f);
    // The mask column never receives gradient (SUBS).
    assert!(
        g.index_axis(ndarray::Axis(2), MASK as usize)
            .iter()
            .all(|&x| x == 0.0)
    );
}

#[test]
fn batched_loss_gradient_matches_finite_differences() {
    let x0 = Array2::from_shape_vec((2, 3), vec![0u32, 2, 3, 3, 3, 0]).unwrap();
    let xt = Array2::from_shape_vec((2, 3), vec![MASK, 2, MASK, MASK, MASK, MASK]).unwrap();
    let times = Array1::from(vec![0.3, 0.9]);
    let sch = MdlmCosine::new(0.0).unwrap();
    let logits = random((2, 3, V), 2);
    for weight in [
        ElboWeight::Elbo,
        ElboWeight::RaddLambda,
        ElboWeight::DplmLinear,
        ElboWeight::Constant(0.7),
    ] {
        let f = |l: &Array3<f64>| {
            masked_diffusion_loss_batch(
                l.view(),
                x0.view(),
                xt.view(),
                times.view(),
                MASK,
                &sch,
                weight,
                None,
            )
            .unwrap()
            .iter()
            .map(|r| r.value)
            .sum()
        };
        let mut g = Array3::<f64>::zeros((2, 3, V));
        let res = masked_diffusion_loss_batch(
            logits.view(),
            x0.view(),
            xt.view(),
            times.view(),
            MASK,
            &sch,
            weight,
            Some(g.view_mut()),
        )
        .unwrap();
        for (b, r) in res.iter().enumerate() {
            let w = weight.weight(&sch, times[b]).unwrap();
            assert!((r.value - w * r.cross_entropy).abs() < 1e-12);
        }
        check_fd(&logits, &g, f);
    }
}

#[test]
fn nelbo_estimate_gradient_matches_finite_differences() {
    let x0 = [0u32, 2, 3, 3, 2, 0];
    let sch = MdlmCosine::new(0.0).unwrap();
    let strat = Stratified::new(0.0).unwrap();
    for sampling in [
        ElboSampling::Time {
            sampler: &strat,
            schedule: &sch,
            weight: ElboWeight::Elbo,
            masks_per_time: 2,
        },
        ElboSampling::MaskCount { stratified: true },
    ] {
        let d = ElboDraws::new(&x0, MASK, 1, sampling, 3, RngKey::for_stream(4, 1), 2).unwrap();
        let logits = random((d.len(), 6, V), 3);
        let mut g = Array3::<f64>::zeros(logits.dim());
        let est = d.evaluate(logits.view(), Some(g.view_mut())).unwrap();
        assert!((est.value - est.draws.iter().sum::<f64>() / d.len() as f64).abs() < 1e-12);
        check_fd(&logits, &g, |l| d.evaluate(l.view(), None).unwrap().value);
    }
}

#[test]
fn vrpo_loss_gradient_chains_through_the_policy_nelbo() {
    let (w, l) = ([0u32, 2, 3, 3], [0u32, 0, 2, 2]);
    let s = ElboSampling::MaskCount { stratified: true };
    let key = RngKey::for_stream(8, 0);
    let dw = ElboDraws::new(&w, MASK, 0, s, 4, key, 0).unwrap();
    let dl = ElboDraws::new(&l, MASK, 0, s, 4, key, 0).unwrap();
    let (lw, ll) = (random((4, 4, V), 10), random((4, 4, V), 11));
    let (ref_w, ref_l) = (3.1, 4.2);
    let beta = 0.7;
    let loss = |lw: &Array3<f64>, ll: &Array3<f64>| {
        let n = PairNelbos {
            policy_winner: dw.evaluate(lw.view(), None).unwrap().value,
            reference_winner: ref_w,
            policy_loser: dl.evaluate(ll.view(), None).unwrap().value,
            reference_loser: ref_l,
        };
        vrpo_loss(n, beta).unwrap()
    };
    let (mut gw, mut gl) = (
        Array3::<f64>::zeros(lw.dim()),
        Array3::<f64>::zeros(ll.dim()),
    );
    dw.evaluate(lw.view(), Some(gw.view_mut())).unwrap();
    dl.evaluate(ll.view(), Some(gl.view_mut())).unwrap();
    let c = loss(&lw, &ll);
    gw.mapv_inplace(|x| c.d_policy_winner * x);
    gl.mapv_inplace(|x| c.d_policy_loser * x);
    check_fd(&lw, &gw, |x| loss(x, &ll).loss);
    check_fd(&ll, &gl, |x| loss(&lw, x).loss);
    // The scalar derivatives themselves, and stability at extreme scores.
    let n = PairNelbos {
        policy_winner: 1.0,
        reference_winner: 2.0,
        policy_loser: 3.0,
        reference_loser: 1.5,
    };
    let h = 1e-6;
    let f = |pw: f64, pl: f64| {
        vrpo_loss(
            PairNelbos {
                policy_winner: pw,
                policy_loser: pl,
                ..n
            },
            beta,
        )
        .unwrap()
        .loss
    };
    let r = vrpo_loss(n, beta).unwrap();
    assert!(((f(1.0 + h, 3.0) - f(1.0 - h, 3.0)) / (2.0 * h) - r.d_policy_winner).abs() < 1e-8);
    assert!(((f(1.0, 3.0 + h) - f(1.0, 3.0 - h)) / (2.0 * h) - r.d_policy_loser).abs() < 1e-8);
    let big = vrpo_loss(
        PairNelbos {
            policy_winner: -1e6,
            ..n
        },
        1.0,
    )
    .unwrap();
    assert!(big.loss == 0.0 && big.d_policy_winner.abs() < 1e-300);
    let neg = vrpo_loss(
        PairNelbos {
            policy_winner: 1e6,
            ..n
        },
        1.0,
    )
    .unwrap();
    assert!((neg.loss + neg.score).abs() < 1e-6 && (neg.d_policy_winner - 1.0).abs() < 1e-15);
}

#[test]
fn shift_adjoint_and_inverse() {
    let ar = random((2, 5, 3), 20);
    let g = random((2, 5, 3), 21);
    for first in [FirstPosition::Duplicate, FirstPosition::Zero] {
        let mut d = Array3::<f64>::zeros(ar.dim());
        shift_logits(ar.view(), first, d.view_mut()).unwrap();
        let mut adj = Array3::<f64>::zeros(ar.dim());
        shift_gradient_to_ar(g.view(), first, adj.view_mut()).unwrap();
        // ⟨shift(a), g⟩ = ⟨a, shiftᵀ(g)⟩: the gradient of Σ g ⊙ shift(a) w.r.t. a.
        let lhs: f64 = d.iter().zip(g.iter()).map(|(a, b)| a * b).sum();
        let rhs: f64 = ar.iter().zip(adj.iter()).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12);
        let mut back = Array3::<f64>::zeros((2, 4, 3));
        unshift_logits(d.view(), back.view_mut()).unwrap();
        assert_eq!(back, ar.slice(ndarray::s![.., ..4, ..]));
        for b in 0..2 {
            for i in 1..5 {
                assert_eq!(
                    d.slice(ndarray::s![b, i, ..]),
                    ar.slice(ndarray::s![b, i - 1, ..])
                );
            }
        }
    }
}

#[test]
fn d3pm_hybrid_weight_tends_to_the_elbo_weight() {
    let sch = MdlmCosine::new(0.0).unwrap();
    let t = 0.5;
    let w = ElboWeight::D3pmHybrid {
        num_steps: 1 << 16,
        lambda: 0.0,
    }
    .weight(&sch, t)
    .unwrap();
    assert!((w - sch.elbo_weight(t).unwrap()).abs() < 1e-4);
    // RADD λ-DCE and the ELBO weight coincide on α = 1 − t.
    let lin = Linear::new();
    assert!(
        (ElboWeight::RaddLambda.weight(&lin, 0.3).unwrap()
            - ElboWeight::Elbo.weight(&lin, 0.3).unwrap())
        .abs()
            < 1e-12
    );
}
