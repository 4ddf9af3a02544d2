//! Property tests: the metric-induced path's marginals match their definition and its
//! kinetic-optimal velocity generates them (Kolmogorov forward equation); every velocity
//! row of the metric and mixture paths is a valid rate row (non-negative off the diagonal,
//! summing to 0); the corrector combination keeps this property; step laws are
//! distributions.

use discrete_diffusion::backend::steps::JumpRule;
use discrete_diffusion::kernel::path::{MetricBeta, MetricPath, MixturePath, SourceLaw};
use discrete_diffusion::param::velocity::{
    backward_velocity, corrector_velocity, forward_velocity,
};
use discrete_diffusion::schedule::Kappa;
use ndarray::Array2;
use proptest::prelude::*;

fn metric(v: usize, raw: &[f64], c: f64, a: f64) -> MetricPath {
    let d = Array2::from_shape_fn(
        (v, v),
        |(x, y)| if x == y { 0.0 } else { 0.05 + raw[x * v + y] },
    );
    MetricPath::new(d, MetricBeta::new(c, a).unwrap()).unwrap()
}

fn assert_rate_row(u: &[f64], z: usize) -> Result<(), TestCaseError> {
    for (x, &r) in u.iter().enumerate() {
        prop_assert!(r.is_finite());
        if x != z {
            prop_assert!(r >= 0.0, "negative off-diagonal rate {r} at {x}");
        }
    }
    let scale = u.iter().map(|r| r.abs()).sum::<f64>().max(1.0);
    prop_assert!(u.iter().sum::<f64>().abs() < 1e-12 * scale);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn metric_marginals_and_velocity(
        v in 2usize..7,
        raw in proptest::collection::vec(0.0f64..3.0, 49),
        c in 0.3f64..4.0,
        a in 1.0f64..2.5,
        s in 0.05f64..0.9,
        x1 in 0usize..7,
    ) {
        let x1 = (x1 % v) as u32;
        let path = metric(v, &raw, c, a);
        let d = path.distances();
        // Marginal = softmax(−β d(·, x1)) by definition.
        let mut p = vec![0.0; v];
        path.probs_given_data(s, x1, &mut p).unwrap();
        let beta = path.beta().beta(s).unwrap();
        let w: Vec<f64> = (0..v).map(|x| (-beta * d[[x, x1 as usize]]).exp()).collect();
        let zs: f64 = w.iter().sum();
        for x in 0..v {
            prop_assert!((p[x] - w[x] / zs).abs() < 1e-12);
        }
        // Kolmogorov: ∂_s p(y) = Σ_z p(z) u(y | z) (central differences).
        let e = 1e-6;
        let (mut pp, mut pm) = (vec![0.0; v], vec![0.0; v]);
        path.probs_given_data(s + e, x1, &mut pp).unwrap();
        path.probs_given_data(s - e, x1, &mut pm).unwrap();
        let mut flow = vec![0.0; v];
        let mut u = vec![0.0; v];
        for z in 0..v {
            let lam = path.conditional_velocity(s, z as u32, x1, &mut u).unwrap();
            assert_rate_row(&u, z)?;
            prop_assert!((lam + u[z]).abs() < 1e-12 * lam.max(1.0));
            flow.iter_mut().zip(&u).for_each(|(f, r)| *f += p[z] * r);
        }
        for y in 0..v {
            let fd = (pp[y] - pm[y]) / (2.0 * e);
            let scale = fd.abs().max(1.0);
            prop_assert!((flow[y] - fd).abs() < 1e-5 * scale, "y={y}: {} vs {fd}", flow[y]);
        }
        // Marginal velocities (any posterior) and step laws are valid too.
        let post: Vec<f64> = (0..v).map(|x| 1.0 + x as f64).collect();
        let zp: f64 = post.iter().sum();
        let post: Vec<f64> = post.iter().map(|q| q / zp).collect();
        let mut law = vec![0.0; v];
        for z in 0..v as u32 {
            path.marginal_velocity(s, z, &post, &mut u).unwrap();
            assert_rate_row(&u, z as usize)?;
            path.step_law(s, (s + 0.05).min(1.0), z, &post, JumpRule::Exponential, &mut law).unwrap();
            prop_assert!(law.iter().all(|&q| q >= 0.0));
            prop_assert!((law.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn mixture_velocities_are_rate_rows(
        v in 2usize..8,
        weights in proptest::collection::vec(0.01f64..1.0, 8),
        post in proptest::collection::vec(0.0f64..1.0, 8),
        n in 0.5f64..3.0,
        s in 0.01f64..0.99,
        c in 0.0f64..3.0,
        z in 0usize..8,
        x1 in 0usize..8,
    ) {
        let (z, x1) = ((z % v) as u32, (x1 % v) as u32);
        let zw: f64 = weights[..v].iter().sum();
        let pi: Vec<f64> = weights[..v].iter().map(|w| w / zw).collect();
        let kappa = Kappa::polynomial(n).unwrap();
        let mut p1: Vec<f64> = post[..v].iter().map(|q| q + 1e-3).collect();
        let zp: f64 = p1.iter().sum();
        p1.iter_mut().for_each(|q| *q /= zp);
        for source in [SourceLaw::Mask(0), SourceLaw::Uniform, SourceLaw::Distribution(pi.clone())] {
            let path = MixturePath::new(kappa.clone(), source, v).unwrap();
            let mut u = vec![0.0; v];
            path.conditional_velocity(s, z, x1, c, &mut u).unwrap();
            assert_rate_row(&u, z as usize)?;
            let mut law = vec![0.0; v];
            path.step_law(s, (s + 0.1).min(1.0), z, &p1, c, JumpRule::Exponential, &mut law).unwrap();
            prop_assert!(law.iter().all(|&q| q >= 0.0));
            prop_assert!((law.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // Posterior → velocity, backward velocity and their corrector combination.
        let (mut f, mut b, mut cv) = (vec![0.0; v], vec![0.0; v], vec![0.0; v]);
        forward_velocity(&kappa, s, z, &p1, &mut f).unwrap();
        assert_rate_row(&f, z as usize)?;
        backward_velocity(&kappa, s, z, &pi, &mut b).unwrap();
        for (x, &r) in b.iter().enumerate() {
            if x != z as usize { prop_assert!(r <= 0.0); }
        }
        corrector_velocity(&f, &b, c, &mut cv).unwrap();
        assert_rate_row(&cv, z as usize)?;
    }
}
