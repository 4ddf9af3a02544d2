//! Dense generators: the reversible eigen route against Padé, the inverse transition
//! `pᵀ exp(−δQ)` and its growth bound, and SEDD's score-based analytic (Tweedie) step on
//! symmetric and reversible dense generators — exact against the one-token reverse
//! transition, and in the sampling loop (χ² of the final law against the data law).

use discrete_diffusion::kernel::ctmc::dense::{
    DenseGenerator, DenseRoute, MAX_INVERSE_GROWTH, reversible_stationary,
};
use discrete_diffusion::kernel::ctmc::ordinal::{birth_death, gaussian_target};
use discrete_diffusion::kernel::ctmc::{Ctmc, RateGenerator};
use discrete_diffusion::kernel::generator::{ExpRoute, Generator};
use discrete_diffusion::linalg::expm::expm;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::rng::categorical::sample_masses;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::ctmc::{
    CtmcSampler, InverseTransition, ModelOutput, Predictor, sample_ctmc_batch,
    sample_ctmc_batch_with_inverse, staggered_score, tweedie_law_from_score,
};
use discrete_diffusion::schedule::{LinearTotalNoise, Schedule};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut3};
use statrs::distribution::{ChiSquared, ContinuousCDF};

fn dense(g: &dyn RateGenerator) -> Array2<f64> {
    let v = g.vocab_size();
    let mut q = Array2::zeros((v, v));
    let mut row = vec![0.0; v];
    for x in 0..v {
        g.rate_row(x as u32, &mut row).unwrap();
        for y in 0..v {
            q[[x, y]] = row[y];
        }
    }
    q
}

/// A discretised-Gaussian-like banded symmetric generator: `Q[x, y] = e^{−(x−y)²/(2w²)}`
/// for `0 < |x − y| ≤ band`.
fn banded(v: usize, band: usize, w: f64) -> DenseGenerator {
    let mut q = Array2::zeros((v, v));
    for x in 0..v {
        for y in 0..v {
            let d = x.abs_diff(y);
            if d > 0 && d <= band {
                q[[x, y]] = (-((d * d) as f64) / (2.0 * w * w)).exp();
            }
        }
    }
    for x in 0..v {
        q[[x, x]] = -q.row(x).sum();
    }
    DenseGenerator::new(Generator::new(q).unwrap()).unwrap()
}

/// A random reversible generator: `Q[x, y] = W[x, y]·√(π_y/π_x)` with `W` symmetric.
fn random_reversible(pi: &[f64]) -> Generator {
    let v = pi.len();
    let mut q = Array2::zeros((v, v));
    for x in 0..v {
        for y in (x + 1)..v {
            let w = 0.2 + ((x * 7 + y * 3) % 5) as f64 * 0.3;
            q[[x, y]] = w * (pi[y] / pi[x]).sqrt();
            q[[y, x]] = w * (pi[x] / pi[y]).sqrt();
        }
    }
    for x in 0..v {
        q[[x, x]] = -q.row(x).sum();
    }
    Generator::new(q).unwrap()
}

fn assert_routes_agree(a: &DenseGenerator, b: &DenseGenerator, tol: f64) {
    let v = a.vocab_size();
    let p: Vec<f64> = (0..v).map(|i| 1.0 + (i % 3) as f64).collect();
    let (mut ra, mut rb) = (vec![0.0; v], vec![0.0; v]);
    for &s in &[0.0, 1e-4, 0.3, 2.0, 9.0] {
        for x in 0..v as u32 {
            a.transition_row(x, s, &mut ra).unwrap();
            b.transition_row(x, s, &mut rb).unwrap();
            for y in 0..v {
                assert!((ra[y] - rb[y]).abs() < tol, "row {x} s {s}: {ra:?} {rb:?}");
            }
            a.transition_col(x, s, &mut ra).unwrap();
            b.transition_col(x, s, &mut rb).unwrap();
            for y in 0..v {
                assert!((ra[y] - rb[y]).abs() < tol, "col {x} s {s}");
            }
        }
        a.transition_vecmat(&p, s, &mut ra).unwrap();
        b.transition_vecmat(&p, s, &mut rb).unwrap();
        for y in 0..v {
            assert!((ra[y] - rb[y]).abs() < tol * 4.0, "vecmat s {s}");
        }
        if s * b.spectral_radius_bound() < 18.0 {
            a.inverse_transition_vecmat(&p, s, &mut ra).unwrap();
            b.inverse_transition_vecmat(&p, s, &mut rb).unwrap();
            let scale = rb.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            for y in 0..v {
                assert!((ra[y] - rb[y]).abs() < 1e-9 * scale, "inverse s {s}");
            }
        }
    }
}

#[test]
fn reversible_route_matches_pade() {
    // tauLDR's Gaussian-target rate: reversible, detected and routed automatically.
    let g = gaussian_target(12, 3.0, 4.0).unwrap();
    assert_eq!(g.route(), DenseRoute::Reversible);
    let pade = DenseGenerator::with_route(g.generator().clone(), ExpRoute::Pade).unwrap();
    assert_routes_agree(&g, &pade, 1e-12);
    // Its stationary law is the discretised Gaussian ∝ exp(−(x + 1 − S/2)²/(2 Q_σ²)).
    let pi = g.stationary().unwrap();
    let w: Vec<f64> = (0..12)
        .map(|x| (-((x as f64 + 1.0 - 6.0).powi(2)) / 32.0).exp())
        .collect();
    let z: f64 = w.iter().sum();
    for x in 0..12 {
        assert!((pi[x] - w[x] / z).abs() < 1e-13, "π[{x}]");
    }
    // s = ∞: every row is π.
    let mut row = vec![0.0; 12];
    g.transition_row(3, f64::INFINITY, &mut row).unwrap();
    for x in 0..12 {
        assert!((row[x] - pi[x]).abs() < 1e-12);
    }
    // A random reversible generator, given π or detected.
    let pi = [0.05, 0.3, 0.1, 0.25, 0.2, 0.1];
    let r = random_reversible(&pi);
    let found = reversible_stationary(&r).unwrap();
    for x in 0..6 {
        assert!((found[x] - pi[x]).abs() < 1e-14);
    }
    let given = DenseGenerator::reversible(r.clone(), &pi).unwrap();
    let auto = DenseGenerator::new(r.clone()).unwrap();
    let pade = DenseGenerator::with_route(r.clone(), ExpRoute::Pade).unwrap();
    assert_eq!(auto.route(), DenseRoute::Reversible);
    assert_routes_agree(&given, &pade, 1e-13);
    assert_routes_agree(&auto, &pade, 1e-13);
    // A wrong π is refused; a non-reversible generator takes Padé (Eigen refused).
    assert!(DenseGenerator::reversible(r.clone(), &[1.0 / 6.0; 6]).is_err());
    assert!(DenseGenerator::reversible(r, &[0.0, 0.3, 0.1, 0.25, 0.25, 0.1]).is_err());
    let cyc = ndarray::array![[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0], [1.0, 0.0, -1.0]];
    let cyc = Generator::new(cyc).unwrap();
    assert!(reversible_stationary(&cyc).is_none());
    assert_eq!(
        DenseGenerator::new(cyc.clone()).unwrap().route(),
        DenseRoute::Pade
    );
    assert!(DenseGenerator::with_route(cyc, ExpRoute::Eigen).is_err());
    // Reversible but too ill-conditioned to symmetrise (√(π_max/π_min) = 1e7): Padé.
    let pi = [
        1e-14 / (1.0 + 2e-14),
        1.0 / (1.0 + 2e-14),
        1e-14 / (1.0 + 2e-14),
    ];
    let ill = random_reversible(&pi);
    assert!(reversible_stationary(&ill).is_some());
    assert_eq!(
        DenseGenerator::new(ill.clone()).unwrap().route(),
        DenseRoute::Pade
    );
    assert!(DenseGenerator::reversible(ill, &pi).is_err());
}

#[test]
fn inverse_transition_inverts_and_refuses_beyond_its_bound() {
    for g in [banded(9, 2, 1.0), gaussian_target(9, 2.0, 3.0).unwrap()] {
        let q = dense(&g);
        let v = 9;
        let p: Vec<f64> = (0..v).map(|i| ((i * 5) % 7) as f64 - 2.5).collect();
        let delta = 0.8;
        let e = expm((&q * -delta).view()).unwrap();
        let mut out = vec![0.0; v];
        g.inverse_transition_vecmat(&p, delta, &mut out).unwrap();
        let mut via_trait = vec![0.0; v];
        staggered_score(&g, &p, delta, &mut via_trait).unwrap();
        for y in 0..v {
            let want: f64 = (0..v).map(|z| p[z] * e[[z, y]]).sum();
            assert!((out[y] - want).abs() < 1e-11 * want.abs().max(1.0), "{y}");
            assert_eq!(out[y], via_trait[y]);
        }
        let rho = g.spectral_radius_bound();
        let edge = MAX_INVERSE_GROWTH.ln() / rho;
        assert!(
            g.inverse_transition_vecmat(&p, 0.99 * edge, &mut out)
                .is_ok()
        );
        let err = g
            .inverse_transition_vecmat(&p, 1.01 * edge, &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("smaller steps"), "{err}");
        assert!(g.inverse_transition_vecmat(&p, f64::NAN, &mut out).is_err());
        assert!(g.inverse_transition_vecmat(&p[1..], 0.1, &mut out).is_err());
        let mut bad = p.clone();
        bad[0] = f64::INFINITY;
        assert!(g.inverse_transition_vecmat(&bad, 0.1, &mut out).is_err());
    }
}

/// Tweedie with the exact concrete score is the exact one-token reverse transition
/// `p(x_s = y | x_t = x) = p_s(y)·exp(δQ)[y, x]/p_t(x)` (computed here by Padé).
#[test]
fn tweedie_with_exact_score_is_the_exact_reverse_transition() {
    let gens = [
        banded(8, 2, 1.5),
        birth_death(8).unwrap(),
        gaussian_target(8, 2.0, 2.5).unwrap(),
    ];
    let p0 = [0.3, 0.0, 0.05, 0.2, 0.1, 0.15, 0.0, 0.2];
    for g in &gens {
        let q = dense(g);
        let (st, ss) = (1.1, 0.45);
        let delta = st - ss;
        let et = expm((&q * st).view()).unwrap();
        let es = expm((&q * ss).view()).unwrap();
        let ed = expm((&q * delta).view()).unwrap();
        let pt: Vec<f64> = (0..8)
            .map(|y| (0..8).map(|z| p0[z] * et[[z, y]]).sum())
            .collect();
        let ps: Vec<f64> = (0..8)
            .map(|y| (0..8).map(|z| p0[z] * es[[z, y]]).sum())
            .collect();
        for x in 0..8u32 {
            let xi = x as usize;
            let score: Vec<f64> = pt.iter().map(|&p| p / pt[xi]).collect();
            let (mut law, mut scratch) = (vec![0.0; 8], vec![0.0; 8]);
            tweedie_law_from_score(g, delta, x, &score, &mut scratch, &mut law).unwrap();
            let mut total = 0.0;
            for y in 0..8 {
                let want = ps[y] * ed[[y, xi]] / pt[xi];
                total += want;
                assert!(
                    (law[y] - want).abs() < 1e-11,
                    "{:?} x {x} y {y}: {} vs {want}",
                    g.route(),
                    law[y]
                );
            }
            assert!((total - 1.0).abs() < 1e-12);
        }
    }
}

/// One token, exact log concrete scores `ln p_t(y)/p_t(x)` of a known `p0`.
struct OneTokenScore<'a, S> {
    ctmc: &'a Ctmc<DenseGenerator, S>,
    p0: &'a [f64],
}

impl<S: Schedule> Denoiser for OneTokenScore<'_, S> {
    fn vocab_size(&self) -> usize {
        self.ctmc.vocab_size()
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        let v = self.vocab_size();
        let mut pt = vec![0.0; v];
        for (b, row) in tokens.outer_iter().enumerate() {
            self.ctmc.marginal_vecmat(self.p0, times[b], &mut pt)?;
            for (i, &x) in row.iter().enumerate() {
                for y in 0..v {
                    out[[b, i, y]] = (pt[y] / pt[x as usize]).ln() as f32;
                }
            }
        }
        Ok(())
    }
}

/// The loop: SEDD's analytic predictor on exact log-scores over a 4-step grid from
/// `x_1 ~ p_1` ends with exactly the data law (χ², 20 000 draws, level 1e-3).
#[test]
fn score_tweedie_in_the_loop_recovers_the_data_law() {
    let v = 6;
    let ctmc = Ctmc::new(banded(v, 2, 1.2), LinearTotalNoise::new(0.0, 2.5).unwrap());
    let p0 = [0.35, 0.05, 0.1, 0.25, 0.2, 0.05];
    let den = OneTokenScore {
        ctmc: &ctmc,
        p0: &p0,
    };
    let n = 20_000usize;
    let mut p1 = vec![0.0; v];
    ctmc.marginal_vecmat(&p0, 1.0, &mut p1).unwrap();
    let mut tokens = Array2::<u32>::zeros((n, 1));
    for b in 0..n {
        let u = CounterRng::new(RngKey::for_stream(99, b as u64), Purpose::USER, 0, 0).uniform();
        tokens[[b, 0]] = sample_masses(&p1, u).unwrap().token;
    }
    let cfg = CtmcSampler {
        predictor: Predictor::Tweedie,
        output: ModelOutput::LogScore,
        corrector: None,
        times: vec![1.0, 0.75, 0.5, 0.25, 0.0],
        seed: 5,
        time_independent_denoiser: false,
    };
    let streams: Vec<u64> = (0..n as u64).collect();
    // The plain loop has no exp(−δQ) and refuses.
    assert!(sample_ctmc_batch(&ctmc, &den, tokens.clone().view_mut(), &streams, &cfg).is_err());
    let out =
        sample_ctmc_batch_with_inverse(&ctmc, &den, tokens.view_mut(), &streams, &cfg).unwrap();
    assert_eq!(out.steps, 4);
    let mut counts = vec![0.0; v];
    for &x in tokens.iter() {
        counts[x as usize] += 1.0;
    }
    let stat: f64 = (0..v)
        .map(|y| (counts[y] - n as f64 * p0[y]).powi(2) / (n as f64 * p0[y]))
        .sum();
    let crit = ChiSquared::new((v - 1) as f64).unwrap().inverse_cdf(0.999);
    assert!(stat < crit, "χ² = {stat} ≥ {crit}: {counts:?}");
    // A step beyond the growth bound is an error, not garbage.
    let far = Ctmc::new(banded(v, 2, 1.2), LinearTotalNoise::new(0.0, 60.0).unwrap());
    let den = OneTokenScore {
        ctmc: &far,
        p0: &p0,
    };
    let cfg = CtmcSampler {
        times: vec![1.0, 0.0],
        ..cfg
    };
    let mut t = Array2::<u32>::zeros((1, 1));
    assert!(sample_ctmc_batch_with_inverse(&far, &den, t.view_mut(), &[0], &cfg).is_err());
}

/// The trait object route: `&DenseGenerator` is an [`InverseTransition`].
#[test]
fn dense_generator_is_an_inverse_transition() {
    fn takes<G: InverseTransition>(g: G) -> usize {
        g.vocab_size()
    }
    let g = banded(5, 1, 1.0);
    assert_eq!(takes(&g), 5);
}
