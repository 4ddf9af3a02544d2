//! Bad input for every public function of `train`, `loss::weight` and `loss::masked`:
//! each returns an error naming the argument, never panics.

mod train_common;

use discrete_diffusion::Error;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::kernel::uniform::Uniform as UniformKernel;
use discrete_diffusion::loss::masked::{
    MaskedLoss, PositionWeights, masked_diffusion_loss, masked_diffusion_loss_batch,
};
use discrete_diffusion::loss::weight::ElboWeight;
use discrete_diffusion::rng::RngKey;
use discrete_diffusion::schedule::{Linear, MdlmCosine, Uniform};
use discrete_diffusion::train::corrupt::{corrupt, corrupt_batch, mask_with_token_schedule};
use discrete_diffusion::train::elbo::{ElboDraws, ElboSampling, nelbo_estimate};
use discrete_diffusion::train::masks::{
    MaskAddress, apply_mask, bernoulli_mask, complementary_masks, exact_count_mask, nested_masks,
    position_uniforms,
};
use discrete_diffusion::train::shift::{
    FirstPosition, shift_gradient_to_ar, shift_logits, unshift_logits,
};
use discrete_diffusion::train::token_schedule::{
    GenMd4, SharedSchedule, Spindle, TokenSchedule, cart_weights, token_mask_probs_and_weights,
};
use discrete_diffusion::train::vrpo::{PairNelbos, VrpoConfig, vrpo_estimate, vrpo_loss};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut3};
use train_common::*;

/// [`masked_diffusion_loss_batch`] with the test's mask token and the MDLM cosine schedule.
fn batch(
    logits: ArrayView3<'_, f32>,
    x0: ArrayView2<'_, u32>,
    xt: ArrayView2<'_, u32>,
    times: ArrayView1<'_, f64>,
    weight: ElboWeight,
    grad: Option<ArrayViewMut3<'_, f32>>,
) -> discrete_diffusion::Result<Vec<MaskedLoss>> {
    let sch = MdlmCosine::new(0.0).unwrap();
    masked_diffusion_loss_batch(logits, x0, xt, times, MASK, &sch, weight, grad)
}

/// The error names `arg` (in its `arg` field or, for `ZeroProbability`, its message).
fn names<T: std::fmt::Debug>(r: discrete_diffusion::Result<T>, arg: &str) {
    let e = r.expect_err("expected an error");
    let ok = match &e {
        Error::InvalidArgument { arg: a, .. }
        | Error::Shape { arg: a, .. }
        | Error::TokenOutOfRange { arg: a, .. }
        | Error::NonFinite { arg: a, .. }
        | Error::NotADistribution { arg: a, .. } => *a == arg,
        other => other.to_string().contains(arg),
    };
    assert!(ok, "expected an error naming `{arg}`, got {e:?}");
}

#[test]
fn weight_bad_input() {
    let s = Linear::new();
    names(ElboWeight::Elbo.weight(&s, 1.5), "t");
    names(ElboWeight::Elbo.weight(&s, f64::NAN), "t");
    names(ElboWeight::Constant(-1.0).weight(&s, 0.5), "weight");
    names(ElboWeight::Constant(f64::INFINITY).validate(), "weight");
    names(
        ElboWeight::D3pmHybrid {
            num_steps: 0,
            lambda: 0.0,
        }
        .weight(&s, 0.5),
        "num_steps",
    );
    names(
        ElboWeight::D3pmHybrid {
            num_steps: 4,
            lambda: f64::NAN,
        }
        .weight(&s, 0.5),
        "lambda",
    );
    names(
        ElboWeight::D3pmHybrid {
            num_steps: 4,
            lambda: 0.0,
        }
        .weight(&s, 0.3),
        "t",
    );
    names(
        ElboWeight::D3pmHybrid {
            num_steps: 4,
            lambda: 0.0,
        }
        .weight(&s, 0.0),
        "t",
    );
}

#[test]
fn masked_loss_bad_input() {
    let lg = Array2::<f32>::zeros((3, V));
    let sh = PositionWeights::Shared(1.0);
    let (x0, xt) = ([0u32, 2, 3], [MASK, 2, MASK]);
    names(
        masked_diffusion_loss(
            Array2::<f32>::zeros((0, V)).view(),
            &[],
            &[],
            MASK,
            sh,
            None,
        ),
        "logits",
    );
    names(
        masked_diffusion_loss(Array2::<f32>::zeros((3, 1)).view(), &x0, &xt, 0, sh, None),
        "logits",
    );
    names(
        masked_diffusion_loss(lg.view(), &x0[..2], &xt, MASK, sh, None),
        "x0",
    );
    names(
        masked_diffusion_loss(lg.view(), &x0, &xt[..2], MASK, sh, None),
        "xt",
    );
    names(
        masked_diffusion_loss(lg.view(), &x0, &xt, 9, sh, None),
        "mask_token",
    );
    names(
        masked_diffusion_loss(lg.view(), &[0, 7, 3], &xt, MASK, sh, None),
        "x0",
    );
    names(
        masked_diffusion_loss(lg.view(), &[0, MASK, 3], &xt, MASK, sh, None),
        "x0",
    );
    names(
        masked_diffusion_loss(lg.view(), &x0, &[MASK, 3, MASK], MASK, sh, None),
        "xt",
    );
    names(
        masked_diffusion_loss(
            lg.view(),
            &x0,
            &xt,
            MASK,
            PositionWeights::Shared(-1.0),
            None,
        ),
        "weights",
    );
    names(
        masked_diffusion_loss(
            lg.view(),
            &x0,
            &xt,
            MASK,
            PositionWeights::Shared(f64::INFINITY),
            None,
        ),
        "weights",
    );
    names(
        masked_diffusion_loss(
            lg.view(),
            &x0,
            &xt,
            MASK,
            PositionWeights::PerPosition(&[1.0]),
            None,
        ),
        "weights",
    );
    let mut g = Array2::<f32>::zeros((2, V));
    names(
        masked_diffusion_loss(lg.view(), &x0, &xt, MASK, sh, Some(g.view_mut())),
        "grad",
    );
    let mut bad = lg.clone();
    bad[[2, 3]] = f32::NAN;
    names(
        masked_diffusion_loss(bad.view(), &x0, &xt, MASK, sh, None),
        "logits",
    );
    bad[[2, 3]] = f32::NEG_INFINITY;
    names(
        masked_diffusion_loss(bad.view(), &x0, &xt, MASK, sh, None),
        "masked-diffusion loss",
    );
    bad[[2, 3]] = f32::INFINITY;
    names(
        masked_diffusion_loss(bad.view(), &x0, &xt, MASK, sh, None),
        "logits",
    );
    // Batched.
    let l3 = Array3::<f32>::zeros((2, 3, V));
    let x0b = Array2::from_shape_vec((2, 3), vec![0u32, 2, 3, 0, 2, 3]).unwrap();
    let xtb = Array2::from_shape_vec((2, 3), vec![MASK, 2, 3, 0, MASK, 3]).unwrap();
    let t = Array1::from(vec![0.5, 0.5]);
    let w = ElboWeight::Elbo;
    let empty = Array3::<f32>::zeros((0, 3, V));
    let t_short = Array1::from(vec![0.5]);
    let t_big = Array1::from(vec![0.5, 2.0]);
    let t_zero = Array1::from(vec![0.0, 0.5]);
    names(
        batch(empty.view(), x0b.view(), xtb.view(), t.view(), w, None),
        "logits",
    );
    names(
        batch(l3.view(), x0b.t(), xtb.view(), t.view(), w, None),
        "x0",
    );
    names(
        batch(l3.view(), x0b.view(), xtb.t(), t.view(), w, None),
        "xt",
    );
    names(
        batch(l3.view(), x0b.view(), xtb.view(), t_short.view(), w, None),
        "times",
    );
    names(
        batch(l3.view(), x0b.view(), xtb.view(), t_big.view(), w, None),
        "times",
    );
    names(
        batch(
            l3.view(),
            x0b.view(),
            xtb.view(),
            t.view(),
            ElboWeight::Constant(f64::NAN),
            None,
        ),
        "weight",
    );
    let mut g3 = Array3::<f32>::zeros((2, 3, 2));
    names(
        batch(
            l3.view(),
            x0b.view(),
            xtb.view(),
            t.view(),
            w,
            Some(g3.view_mut()),
        ),
        "grad",
    );

    // t = 0 with a masked token: the ELBO weight is infinite.
    names(
        batch(l3.view(), x0b.view(), xtb.view(), t_zero.view(), w, None),
        "weights",
    );
}

#[test]
fn masks_bad_input() {
    let a = MaskAddress::new(1, 2, 3, 4);
    names(position_uniforms(a, &mut []), "out");
    names(bernoulli_mask(a, &[], &mut []), "probs");
    names(bernoulli_mask(a, &[0.5, 1.5], &mut [false; 2]), "probs");
    names(
        bernoulli_mask(a, &[0.5, f64::NAN], &mut [false; 2]),
        "probs",
    );
    names(bernoulli_mask(a, &[0.5, 0.5], &mut [false; 3]), "out");
    names(exact_count_mask(a, 1, &[], &mut []), "eligible");
    names(
        exact_count_mask(a, 2, &[true, false], &mut [false; 2]),
        "count",
    );
    names(
        exact_count_mask(a, 1, &[true, false], &mut [false; 1]),
        "out",
    );
    names(
        complementary_masks(a, 0.5, &[], &mut [], &mut []),
        "eligible",
    );
    names(
        complementary_masks(a, 1.5, &[true], &mut [false], &mut [false]),
        "prob",
    );
    names(
        complementary_masks(a, 0.5, &[true], &mut [], &mut [false]),
        "first",
    );
    names(
        complementary_masks(a, 0.5, &[true], &mut [false], &mut []),
        "second",
    );
    let p = Array2::from_shape_vec((2, 2), vec![0.5, 0.5, 0.4, 0.6]).unwrap();
    let mut o = Array2::from_elem((2, 2), false);
    names(nested_masks(a, p.view(), o.view_mut()), "probs");
    names(
        nested_masks(
            a,
            Array2::<f64>::zeros((0, 2)).view(),
            Array2::from_elem((0, 2), false).view_mut(),
        ),
        "probs",
    );
    names(
        nested_masks(
            a,
            Array2::<f64>::zeros((1, 0)).view(),
            Array2::from_elem((1, 0), false).view_mut(),
        ),
        "probs",
    );
    names(
        nested_masks(
            a,
            Array2::from_elem((1, 2), 2.0).view(),
            Array2::from_elem((1, 2), false).view_mut(),
        ),
        "probs",
    );
    names(
        nested_masks(a, Array2::from_elem((1, 2), 0.5).view(), o.view_mut()),
        "out",
    );
    names(apply_mask(&[], &[], 0, &mut []), "x0");
    names(apply_mask(&[1], &[true, false], 0, &mut [0]), "mask");
    names(apply_mask(&[1], &[true], 0, &mut [0, 0]), "out");
}

#[test]
fn token_schedules_bad_input() {
    names(Spindle::new(-0.1, vec![0.0, 1.0]), "lambda");
    names(Spindle::new(f64::NAN, vec![0.0, 1.0]), "lambda");
    names(Spindle::new(0.5, vec![0.0, 1.0]), "lambda"); // 0.5π > 1: not monotone
    names(Spindle::new(0.1, vec![0.0]), "scores");
    names(Spindle::new(0.1, vec![0.0, f64::INFINITY]), "scores");
    names(GenMd4::new(vec![1.0]), "exponents");
    names(GenMd4::new(vec![1.0, 0.0]), "exponents");
    names(GenMd4::new(vec![1.0, f64::NAN]), "exponents");
    names(SharedSchedule::new(Linear::new(), 1), "vocab");
    let g = GenMd4::new(vec![1.0, 2.0]).unwrap();
    let (mut a, mut d) = ([0.0; 2], [0.0; 2]);
    names(g.alphas(1.5, &[0, 1], &mut a, &mut d), "t");
    names(g.alphas(0.5, &[], &mut [], &mut []), "x0");
    names(g.alphas(0.5, &[0, 2], &mut a, &mut d), "x0");
    names(g.alphas(0.5, &[0, 1], &mut [0.0], &mut d), "alpha");
    names(g.alphas(0.5, &[0, 1], &mut a, &mut [0.0; 3]), "dalpha");
    names(
        token_mask_probs_and_weights(&g, 0.5, &[0, 1], &mut a, &mut [0.0]),
        "weights",
    );
    names(cart_weights(&[], 0.5, &mut []), "masked");
    names(cart_weights(&[true], 0.0, &mut [0.0]), "p");
    names(cart_weights(&[true], 1.5, &mut [0.0]), "p");
    names(cart_weights(&[true], f64::NAN, &mut [0.0]), "p");
    names(cart_weights(&[true], 0.5, &mut [0.0; 2]), "out");
}

#[test]
fn corruption_bad_input() {
    let process = MixtureProcess::from_schedule(mask_pi(), Linear::new()).unwrap();
    let a = MaskAddress::new(1, 2, 3, 4);
    let mut out = [0u32; 3];
    names(corrupt(&process, &[], 0.5, a, &mut []), "x0");
    names(corrupt(&process, &[0, 9, 2], 0.5, a, &mut out), "x0");
    names(corrupt(&process, &[0, 2, 2], 0.5, a, &mut [0; 2]), "out");
    names(corrupt(&process, &[0, 2, 2], 1.5, a, &mut out), "t");
    let k = UniformKernel::new(4, &[0.5, 0.5]).unwrap();
    names(corrupt(&k, &[0, 2, 2], 0.3, a, &mut out), "t"); // off the grid k/T
    let g = GenMd4::new(vec![1.0; V]).unwrap();
    let mut w = [0.0; 3];
    names(
        mask_with_token_schedule(&g, &[0, 2, 3], 0.5, 9, 0, a, &mut out, &mut w),
        "mask_token",
    );
    names(
        mask_with_token_schedule(&g, &[0, MASK, 3], 0.5, MASK, 0, a, &mut out, &mut w),
        "x0",
    );
    names(
        mask_with_token_schedule(&g, &[0, 2, 3], 0.5, MASK, 4, a, &mut out, &mut w),
        "prompt_len",
    );
    names(
        mask_with_token_schedule(&g, &[0, 2, 3], 0.5, MASK, 0, a, &mut [0; 2], &mut w),
        "xt",
    );
    names(
        mask_with_token_schedule(&g, &[0, 2, 3], 0.5, MASK, 0, a, &mut out, &mut [0.0; 2]),
        "weights",
    );
    names(
        mask_with_token_schedule(&g, &[0, 2, 3], -0.5, MASK, 0, a, &mut out, &mut w),
        "t",
    );
    let u = Uniform::new(0.0).unwrap();
    let x0 = Array2::from_shape_vec((2, 2), vec![0u32, 2, 3, 0]).unwrap();
    names(
        corrupt_batch(
            &u,
            &process,
            Array2::<u32>::zeros((0, 2)).view(),
            1,
            0,
            &[],
            0,
        ),
        "x0",
    );
    names(corrupt_batch(&u, &process, x0.view(), 1, 0, &[1], 0), "ids");
    let bad = Array2::from_shape_vec((2, 2), vec![0u32, 7, 3, 0]).unwrap();
    names(
        corrupt_batch(&u, &process, bad.view(), 1, 0, &[1, 2], 0),
        "x0",
    );
}

#[test]
fn elbo_and_vrpo_bad_input() {
    let key = RngKey::for_stream(1, 0);
    let mc = ElboSampling::MaskCount { stratified: true };
    let sch = MdlmCosine::new(0.0).unwrap();
    let u = Uniform::new(0.0).unwrap();
    let time = |m: usize, w: ElboWeight| ElboSampling::Time {
        sampler: &u,
        schedule: &sch,
        weight: w,
        masks_per_time: m,
    };
    names(ElboDraws::new(&[], MASK, 0, mc, 4, key, 0), "x0");
    names(ElboDraws::new(&[0, MASK], MASK, 0, mc, 4, key, 0), "x0");
    names(
        ElboDraws::new(&[0, 2], MASK, 2, mc, 4, key, 0),
        "prompt_len",
    );
    names(ElboDraws::new(&[0, 2], MASK, 0, mc, 0, key, 0), "num_times");
    names(
        ElboDraws::new(&[0, 2], MASK, 0, time(0, ElboWeight::Elbo), 4, key, 0),
        "masks_per_time",
    );
    names(
        ElboDraws::new(
            &[0, 2],
            MASK,
            0,
            time(1, ElboWeight::Constant(-2.0)),
            4,
            key,
            0,
        ),
        "weight",
    );
    let d = ElboDraws::new(&[0, 2, 3], MASK, 0, mc, 4, key, 0).unwrap();
    names(
        d.evaluate(Array3::<f32>::zeros((3, 3, V)).view(), None),
        "logits",
    );
    let mut g = Array3::<f32>::zeros((4, 3, 2));
    names(
        d.evaluate(Array3::<f32>::zeros((4, 3, V)).view(), Some(g.view_mut())),
        "grad",
    );
    names(
        d.evaluate(Array3::from_elem((4, 3, V), f32::NAN).view(), None),
        "logits",
    );
    // A model whose vocabulary does not contain the mask token.
    let small = oracle_denoiser(3, 0.0);
    let d9 = ElboDraws::new(&[0, 2, 3], 9, 0, mc, 4, key, 0).unwrap();
    names(d9.evaluate_with(&small), "mask_token");
    names(
        nelbo_estimate(&small, &[0, 2], MASK, 0, mc, 4, key, 0),
        "tokens",
    ); // wrong length for the oracle
    let n = PairNelbos {
        policy_winner: 1.0,
        reference_winner: 1.0,
        policy_loser: 1.0,
        reference_loser: 1.0,
    };
    names(vrpo_loss(n, 0.0), "beta");
    names(vrpo_loss(n, f64::NAN), "beta");
    names(
        vrpo_loss(
            PairNelbos {
                policy_loser: f64::NAN,
                ..n
            },
            1.0,
        ),
        "nelbos",
    );
    let cfg = VrpoConfig {
        sampling: mc,
        num_times: 0,
        prompt_len: 0,
        mask_token: MASK,
        beta: 0.1,
        shared_noise: true,
    };
    names(
        vrpo_estimate(&small, &small, &[0, 2, 3], &[0, 0, 3], &cfg, key, 0),
        "num_times",
    );
    let cfg = VrpoConfig {
        num_times: 2,
        beta: -1.0,
        ..cfg
    };
    names(
        vrpo_estimate(&small, &small, &[0, 2, 3], &[0, 0, 3], &cfg, key, 0),
        "beta",
    );
}

#[test]
fn shift_bad_input() {
    let a = Array3::<f32>::zeros((1, 3, 2));
    let mut o = Array3::<f32>::zeros((1, 2, 2));
    names(
        shift_logits(
            Array3::<f32>::zeros((1, 0, 2)).view(),
            FirstPosition::Zero,
            o.view_mut(),
        ),
        "ar",
    );
    names(
        shift_logits(a.view(), FirstPosition::Zero, o.view_mut()),
        "out",
    );
    names(
        unshift_logits(Array3::<f32>::zeros((1, 1, 2)).view(), o.view_mut()),
        "diffusion",
    );
    names(
        unshift_logits(a.view(), Array3::<f32>::zeros((1, 3, 2)).view_mut()),
        "out",
    );
    names(
        shift_gradient_to_ar(
            Array3::<f32>::zeros((0, 3, 2)).view(),
            FirstPosition::Duplicate,
            o.view_mut(),
        ),
        "grad",
    );
    names(
        shift_gradient_to_ar(a.view(), FirstPosition::Duplicate, o.view_mut()),
        "out",
    );
}
