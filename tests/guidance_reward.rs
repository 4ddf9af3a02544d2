//! Reward guidance: the closed form of gradient ascent on a quadratic reward, identities,
//! the Denoiser wrapper, and bad inputs.

use discrete_diffusion::Error;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::sample::guidance::{RewardGradient, RewardGuided, reward_ascent};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3};

/// `R(ℓ) = −½ ‖ℓ − target‖²` over finite entries: `∇R = target − ℓ`.
struct Quadratic {
    target: Array2<f64>,
}

impl RewardGradient for Quadratic {
    fn gradient(
        &self,
        _x: &[u32],
        _t: f64,
        logits: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> discrete_diffusion::Result<()> {
        ndarray::Zip::from(&mut out)
            .and(&self.target)
            .and(&logits)
            .for_each(|o, &t, &l| *o = t - l as f64);
        Ok(())
    }
}

/// `R = ln softmax(ℓ)_0` at every position: `∇R = e_0 − softmax(ℓ)` (NaN where `ℓ = -inf`
/// would be a bug in the callback; here we return 0 there).
struct PreferZero;

impl RewardGradient for PreferZero {
    fn gradient(
        &self,
        _x: &[u32],
        _t: f64,
        logits: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> discrete_diffusion::Result<()> {
        for (row, mut o) in logits.rows().into_iter().zip(out.rows_mut()) {
            let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            for (v, (&l, g)) in row.iter().zip(o.iter_mut()).enumerate() {
                let p = (l as f64 - m).exp() / z;
                *g = if v == 0 { 1.0 - p } else { -p };
            }
        }
        Ok(())
    }
}

fn logits() -> Array2<f32> {
    Array2::from_shape_vec((2, 3), vec![0.5, -1.0, 2.0, 0.0, f32::NEG_INFINITY, 1.0]).unwrap()
}

#[test]
fn quadratic_closed_form() {
    let target = Array2::from_shape_vec((2, 3), vec![1.0, 1.0, -1.0, 0.5, 3.0, 0.0]).unwrap();
    let r = Quadratic {
        target: target.clone(),
    };
    let l0 = logits();
    let (eta, n) = (0.25, 7);
    let mut out = Array2::<f32>::zeros((2, 3));
    reward_ascent(&r, &[0, 1], 0.5, l0.view(), n, eta, out.view_mut()).unwrap();
    for ((&o, &a), &t) in out.iter().zip(l0.iter()).zip(target.iter()) {
        if a == f32::NEG_INFINITY {
            assert_eq!(o, f32::NEG_INFINITY, "-inf logits stay -inf");
            continue;
        }
        let want = t + (1.0 - eta).powi(n as i32) * (a as f64 - t);
        assert!((o as f64 - want).abs() < 1e-5, "{o} vs {want}");
    }
}

#[test]
fn identities_and_monotone_reward() {
    let l0 = logits();
    let mut out = Array2::<f32>::zeros((2, 3));
    reward_ascent(&PreferZero, &[0, 1], 0.5, l0.view(), 0, 1.0, out.view_mut()).unwrap();
    assert_eq!(out, l0);
    reward_ascent(&PreferZero, &[0, 1], 0.5, l0.view(), 5, 0.0, out.view_mut()).unwrap();
    assert_eq!(out, l0);
    // The reward ln p_0 increases with the number of small steps.
    let p0 = |l: &Array2<f32>| {
        let row = l.row(0);
        let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
        (row[0] as f64).exp() / z
    };
    let mut prev = p0(&l0);
    for n in 1..6 {
        reward_ascent(&PreferZero, &[0, 1], 0.5, l0.view(), n, 0.3, out.view_mut()).unwrap();
        let now = p0(&out);
        assert!(now > prev, "step {n}: {now} ≤ {prev}");
        prev = now;
    }
}

struct Const;
impl Denoiser for Const {
    fn vocab_size(&self) -> usize {
        3
    }
    fn logits(
        &self,
        _tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        for (b, mut plane) in out.outer_iter_mut().enumerate() {
            plane.assign(&logits().mapv(|v| v + times[b] as f32));
        }
        Ok(())
    }
}

#[test]
fn wrapper_applies_ascent_per_row() {
    let g = RewardGuided::new(Const, PreferZero, 3, 0.5).unwrap();
    let tokens = Array2::from_shape_vec((2, 2), vec![0u32, 1, 2, 2]).unwrap();
    let times = Array1::from(vec![0.25, 0.75]);
    let mut out = Array3::<f32>::zeros((2, 2, 3));
    g.logits(tokens.view(), times.view(), out.view_mut())
        .unwrap();
    for b in 0..2 {
        let base = logits().mapv(|v| v + times[b] as f32);
        let mut want = Array2::<f32>::zeros((2, 3));
        let x: Vec<u32> = tokens.row(b).to_vec();
        reward_ascent(
            &PreferZero,
            &x,
            times[b],
            base.view(),
            3,
            0.5,
            want.view_mut(),
        )
        .unwrap();
        assert_eq!(out.index_axis(ndarray::Axis(0), b), want);
    }
    assert!(RewardGuided::new(Const, PreferZero, 1, -0.1).is_err());
    assert!(RewardGuided::new(Const, PreferZero, 1, f64::NAN).is_err());
    let mut wrong = Array3::<f32>::zeros((2, 2, 4));
    assert!(
        g.logits(tokens.view(), times.view(), wrong.view_mut())
            .is_err()
    );
    assert!(
        g.logits(
            tokens.view(),
            Array1::from(vec![0.5, 2.0]).view(),
            out.view_mut()
        )
        .is_err()
    );
}

struct Failing;
impl RewardGradient for Failing {
    fn gradient(
        &self,
        _: &[u32],
        _: f64,
        _: ArrayView2<'_, f32>,
        _: ArrayViewMut2<'_, f64>,
    ) -> discrete_diffusion::Result<()> {
        Err(Error::invalid("reward", "no"))
    }
}

struct NanGrad;
impl RewardGradient for NanGrad {
    fn gradient(
        &self,
        _: &[u32],
        _: f64,
        _: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> discrete_diffusion::Result<()> {
        out.fill(f64::NAN);
        Ok(())
    }
}

#[test]
fn bad_inputs() {
    let l0 = logits();
    let x = [0u32, 1];
    let mut out = Array2::<f32>::from_elem((2, 3), 9.0);
    let r = PreferZero;
    let expect_err = |res: discrete_diffusion::Result<()>, out: &Array2<f32>| {
        assert!(res.is_err());
        assert!(out.iter().all(|&v| v == 9.0), "written on error");
    };
    expect_err(
        reward_ascent(&r, &x, 0.5, l0.view(), 1, -1.0, out.view_mut()),
        &out,
    );
    expect_err(
        reward_ascent(&r, &x, 0.5, l0.view(), 1, f64::INFINITY, out.view_mut()),
        &out,
    );
    expect_err(
        reward_ascent(&r, &x, 1.5, l0.view(), 1, 1.0, out.view_mut()),
        &out,
    );
    expect_err(
        reward_ascent(&r, &[0], 0.5, l0.view(), 1, 1.0, out.view_mut()),
        &out,
    );
    expect_err(
        reward_ascent(&r, &[0, 3], 0.5, l0.view(), 1, 1.0, out.view_mut()),
        &out,
    );
    let empty = Array2::<f32>::zeros((0, 3));
    expect_err(
        reward_ascent(&r, &[], 0.5, empty.view(), 1, 1.0, out.view_mut()),
        &out,
    );
    let mut nan = l0.clone();
    nan[[0, 0]] = f32::NAN;
    expect_err(
        reward_ascent(&r, &x, 0.5, nan.view(), 1, 1.0, out.view_mut()),
        &out,
    );
    expect_err(
        reward_ascent(&Failing, &x, 0.5, l0.view(), 1, 1.0, out.view_mut()),
        &out,
    );
    expect_err(
        reward_ascent(&NanGrad, &x, 0.5, l0.view(), 1, 1.0, out.view_mut()),
        &out,
    );
    let big = Quadratic {
        target: Array2::from_elem((2, 3), 1e38),
    };
    let res = reward_ascent(&big, &x, 0.5, l0.view(), 1, 1e3, out.view_mut());
    assert!(matches!(res, Err(Error::Numerical { .. })));
    let mut wrong = Array2::<f32>::zeros((3, 3));
    assert!(matches!(
        reward_ascent(&r, &x, 0.5, l0.view(), 1, 1.0, wrong.view_mut()),
        Err(Error::Shape { .. })
    ));
}
