//! Classifier-free guidance: `w = 0` is the conditional model bit for bit, rows outside the
//! interval are unguided, prompt masking reproduces LLaDA's `generate.py`, properties of the
//! combination, and bad inputs.

use std::sync::atomic::{AtomicUsize, Ordering};

use discrete_diffusion::Error;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::sample::guidance::{CfgConfig, ClassifierFree, cfg_combine};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3};
use proptest::prelude::*;

const V: usize = 5;

/// A deterministic, batch-independent, time-dependent toy model: the logit of state `v` at
/// position `i` depends on every token of the row, on `t`, and on a salt. Counts calls.
struct Toy {
    salt: u64,
    calls: AtomicUsize,
    rows: AtomicUsize,
}

impl Toy {
    fn new(salt: u64) -> Self {
        Toy {
            salt,
            calls: AtomicUsize::new(0),
            rows: AtomicUsize::new(0),
        }
    }
}

fn mix(mut z: u64) -> f64 {
    z = z.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^= z >> 31;
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 29;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Denoiser for Toy {
    fn vocab_size(&self) -> usize {
        V
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(tokens.nrows(), Ordering::Relaxed);
        for (b, row) in tokens.rows().into_iter().enumerate() {
            let h = row.iter().fold(self.salt, |a, &x| {
                a.wrapping_mul(31).wrapping_add(x as u64 + 1)
            });
            for i in 0..row.len() {
                for v in 0..V {
                    let u = mix(h ^ ((i * V + v) as u64) << 20);
                    out[[b, i, v]] = (4.0 * u - 2.0 + times[b]) as f32;
                }
            }
        }
        Ok(())
    }
}

fn run(d: &dyn Denoiser, tokens: &Array2<u32>, times: &[f64]) -> Array3<f32> {
    let (b, l) = tokens.dim();
    let mut out = Array3::<f32>::zeros((b, l, V));
    d.logits(
        tokens.view(),
        Array1::from(times.to_vec()).view(),
        out.view_mut(),
    )
    .unwrap();
    out
}

fn batch() -> Array2<u32> {
    Array2::from_shape_vec((3, 4), vec![0, 1, 4, 4, 2, 3, 4, 1, 1, 1, 4, 4]).unwrap()
}

#[test]
fn weight_zero_is_the_conditional_model_exactly() {
    let cfg = ClassifierFree::with_model(Toy::new(1), Toy::new(2), CfgConfig::always(0.0).unwrap())
        .unwrap();
    let times = [0.2, 0.5, 0.9];
    assert_eq!(
        run(&cfg, &batch(), &times),
        run(&Toy::new(1), &batch(), &times)
    );
    assert_eq!(cfg.uncond_model().unwrap().calls.load(Ordering::Relaxed), 0);
    let masked = ClassifierFree::masking_prompt(
        Toy::new(1),
        4,
        vec![true, true, false, false],
        CfgConfig::always(0.0).unwrap(),
    )
    .unwrap();
    assert_eq!(
        run(&masked, &batch(), &times),
        run(&Toy::new(1), &batch(), &times)
    );
    assert_eq!(masked.cond().rows.load(Ordering::Relaxed), 3);
}

#[test]
fn rows_outside_the_interval_are_unguided() {
    let w = 1.5;
    let cfg = ClassifierFree::with_model(
        Toy::new(1),
        Toy::new(2),
        CfgConfig::new(w, 0.4, 0.8).unwrap(),
    )
    .unwrap();
    let times = [0.2, 0.5, 0.8];
    let got = run(&cfg, &batch(), &times);
    let c = run(&Toy::new(1), &batch(), &times);
    let u = run(&Toy::new(2), &batch(), &times);
    // Row 0 (t = 0.2) unguided; rows 1, 2 (t = 0.5, 0.8: closed interval) guided.
    assert_eq!(
        got.index_axis(ndarray::Axis(0), 0),
        c.index_axis(ndarray::Axis(0), 0)
    );
    for b in 1..3 {
        for ((g, &cv), &uv) in got
            .index_axis(ndarray::Axis(0), b)
            .iter()
            .zip(c.index_axis(ndarray::Axis(0), b))
            .zip(u.index_axis(ndarray::Axis(0), b))
        {
            assert_eq!(*g, ((1.0 + w) * cv as f64 - w * uv as f64) as f32);
        }
    }
    // The unconditional model saw only the two guided rows, in one call.
    let un = cfg.uncond_model().unwrap();
    assert_eq!(
        (
            un.calls.load(Ordering::Relaxed),
            un.rows.load(Ordering::Relaxed)
        ),
        (1, 2)
    );
    // No row in the interval: no unconditional call at all.
    let before = un.calls.load(Ordering::Relaxed);
    assert_eq!(
        run(&cfg, &batch(), &[0.1, 0.9, 1.0]),
        run(&Toy::new(1), &batch(), &[0.1, 0.9, 1.0])
    );
    assert_eq!(un.calls.load(Ordering::Relaxed), before);
    assert!(cfg.config().is_active(0.4) && !cfg.config().is_active(0.39));
    assert_eq!(cfg.config().interval(), (0.4, 0.8));
}

#[test]
fn prompt_masking_matches_llada_generate() {
    // LLaDA: un_x = x with prompt positions set to mask_id; logits = un + (w + 1)(c − un),
    // with [x; un_x] in one forward pass.
    let (mask, w) = (4u32, 2.0);
    let prompt = vec![true, true, false, false];
    let cfg = ClassifierFree::masking_prompt(
        Toy::new(9),
        mask,
        prompt.clone(),
        CfgConfig::always(w).unwrap(),
    )
    .unwrap();
    let x = batch();
    let times = [0.3, 0.6, 1.0];
    let got = run(&cfg, &x, &times);
    assert_eq!(cfg.cond().calls.load(Ordering::Relaxed), 1);
    assert_eq!(cfg.cond().rows.load(Ordering::Relaxed), 6);
    let mut un_x = x.clone();
    for mut row in un_x.rows_mut() {
        row.iter_mut()
            .zip(&prompt)
            .filter(|(_, p)| **p)
            .for_each(|(t, _)| *t = mask);
    }
    let c = run(&Toy::new(9), &x, &times);
    let u = run(&Toy::new(9), &un_x, &times);
    for ((g, &cv), &uv) in got.iter().zip(c.iter()).zip(u.iter()) {
        let llada = uv + (w as f32 + 1.0) * (cv - uv); // f32 arithmetic as in PyTorch
        assert!(
            (g - llada).abs() <= 1e-5 * (1.0 + llada.abs()),
            "{g} vs {llada}"
        );
    }
}

#[test]
fn infinite_logits() {
    let mut g = [0.0f32; 3];
    cfg_combine(
        &[f32::NEG_INFINITY, 1.0, 0.5],
        &[0.0, 0.0, f32::NEG_INFINITY],
        0.0,
        &mut g,
    )
    .unwrap();
    assert_eq!(g, [f32::NEG_INFINITY, 1.0, 0.5]);
    cfg_combine(
        &[f32::NEG_INFINITY, 1.0],
        &[f32::NEG_INFINITY, 0.0],
        1.0,
        &mut g[..2],
    )
    .unwrap();
    assert_eq!(&g[..2], &[f32::NEG_INFINITY, 2.0]);
    let mut g = [9.0f32; 2];
    let e = cfg_combine(&[0.0, 1.0], &[0.0, f32::NEG_INFINITY], 0.5, &mut g).unwrap_err();
    assert!(matches!(e, Error::ZeroProbability { .. }), "{e}");
    assert_eq!(g, [9.0, 9.0], "nothing written on error");
    assert!(matches!(
        cfg_combine(&[3e38], &[-3e38], 1.0, &mut g[..1]),
        Err(Error::Numerical { .. })
    ));
}

#[test]
fn bad_inputs() {
    assert!(CfgConfig::new(-0.1, 0.0, 1.0).is_err());
    assert!(CfgConfig::new(f64::NAN, 0.0, 1.0).is_err());
    assert!(CfgConfig::new(f64::INFINITY, 0.0, 1.0).is_err());
    assert!(CfgConfig::new(1.0, -0.1, 1.0).is_err());
    assert!(CfgConfig::new(1.0, 0.0, 1.1).is_err());
    assert!(CfgConfig::new(1.0, 0.7, 0.3).is_err());
    assert!(CfgConfig::new(1.0, f64::NAN, 0.3).is_err());
    let mut o = [0.0f32; 2];
    assert!(matches!(
        cfg_combine(&[0.0, 1.0], &[0.0], 1.0, &mut o),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        cfg_combine(&[0.0], &[0.0], 1.0, &mut o),
        Err(Error::Shape { .. })
    ));
    assert!(cfg_combine(&[0.0, 1.0], &[0.0, 1.0], -1.0, &mut o).is_err());
    assert!(matches!(
        cfg_combine(&[f32::NAN, 1.0], &[0.0, 1.0], 1.0, &mut o),
        Err(Error::NonFinite { arg: "cond", .. })
    ));
    assert!(matches!(
        cfg_combine(&[0.0, 1.0], &[0.0, f32::INFINITY], 1.0, &mut o),
        Err(Error::NonFinite { arg: "uncond", .. })
    ));
    struct Wide;
    impl Denoiser for Wide {
        fn vocab_size(&self) -> usize {
            V + 1
        }
        fn logits(
            &self,
            _: ArrayView2<'_, u32>,
            _: ArrayView1<'_, f64>,
            _: ArrayViewMut3<'_, f32>,
        ) -> discrete_diffusion::Result<()> {
            Ok(())
        }
    }
    let one = CfgConfig::always(1.0).unwrap();
    assert!(matches!(
        ClassifierFree::with_model(Toy::new(1), Wide, one),
        Err(Error::Shape { .. })
    ));
    assert!(ClassifierFree::masking_prompt(Toy::new(1), V as u32, vec![true], one).is_err());
    assert!(ClassifierFree::masking_prompt(Toy::new(1), 0, vec![], one).is_err());
    // Calls: prompt mask of another length, wrong shapes, bad tokens and times.
    let m = ClassifierFree::masking_prompt(Toy::new(1), 4, vec![true, false], one).unwrap();
    let x = batch();
    let mut out = Array3::<f32>::zeros((3, 4, V));
    let t = Array1::from(vec![0.5; 3]);
    assert!(matches!(
        m.logits(x.view(), t.view(), out.view_mut()),
        Err(Error::Shape { .. })
    ));
    let c = ClassifierFree::with_model(Toy::new(1), Toy::new(2), one).unwrap();
    assert!(
        c.logits(x.view(), Array1::from(vec![0.5; 2]).view(), out.view_mut())
            .is_err()
    );
    assert!(
        c.logits(
            x.view(),
            Array1::from(vec![0.5, 1.5, 0.5]).view(),
            out.view_mut()
        )
        .is_err()
    );
    let mut wrong = Array3::<f32>::zeros((3, 4, V + 1));
    assert!(c.logits(x.view(), t.view(), wrong.view_mut()).is_err());
    let mut bad = x.clone();
    bad[[1, 2]] = V as u32;
    assert!(matches!(
        c.logits(bad.view(), t.view(), out.view_mut()),
        Err(Error::TokenOutOfRange { .. })
    ));
    let empty = Array2::<u32>::zeros((0, 4));
    let mut oe = Array3::<f32>::zeros((0, 4, V));
    assert!(
        c.logits(empty.view(), Array1::<f64>::zeros(0).view(), oe.view_mut())
            .is_err()
    );
}

fn logit() -> impl Strategy<Value = f32> {
    -20.0f32..20.0
}

fn softmax(x: &[f32]) -> Vec<f64> {
    let m = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

proptest! {
    #[test]
    fn combine_properties(
        cu in prop::collection::vec((logit(), logit()), 2..12),
        w in 0.0f64..5.0,
        a in -5.0f32..5.0,
        b in -5.0f32..5.0,
    ) {
        let (c, u): (Vec<f32>, Vec<f32>) = cu.into_iter().unzip();
        let mut g = vec![0.0f32; c.len()];
        cfg_combine(&c, &u, w, &mut g).unwrap();
        // w = 0 is c bit for bit.
        let mut g0 = vec![0.0f32; c.len()];
        cfg_combine(&c, &u, 0.0, &mut g0).unwrap();
        prop_assert_eq!(&g0, &c);
        // g − c = w (c − u): linear in w.
        for k in 0..c.len() {
            let want = c[k] as f64 + w * (c[k] as f64 - u[k] as f64);
            prop_assert!((g[k] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()));
        }
        // c = u: guidance changes nothing.
        let mut gs = vec![0.0f32; c.len()];
        cfg_combine(&c, &c, w, &mut gs).unwrap();
        for k in 0..c.len() {
            prop_assert!((gs[k] - c[k]).abs() <= 1e-5 * (1.0 + c[k].abs()));
        }
        // Softmax is invariant to per-row shifts of either input.
        let cs: Vec<f32> = c.iter().map(|x| x + a).collect();
        let us: Vec<f32> = u.iter().map(|x| x + b).collect();
        let mut g2 = vec![0.0f32; c.len()];
        cfg_combine(&cs, &us, w, &mut g2).unwrap();
        for (p, q) in softmax(&g).iter().zip(softmax(&g2)) {
            prop_assert!((p - q).abs() < 1e-4);
        }
    }
}
