//! The flow solvers by sampling, against their exact laws (`sample::flow::exact`) and
//! against each other: the fused masked-path step and the general path give the same
//! tokens under an exact oracle; samples follow the exact law (χ² over all sequences),
//! with and without the metric path's kinetic corrector.

use discrete_diffusion::backend::ReferenceBackend;
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::steps::{JumpRule, StepRng};
use discrete_diffusion::kernel::path::{MetricBeta, MetricPath, MixturePath, SourceLaw};
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::flow::exact::{metric_solver_laws, mixture_solver_laws};
use discrete_diffusion::sample::flow::{CorrectorSchedule, MetricSolver, MixtureSolver};
use discrete_diffusion::schedule::Kappa;
use ndarray::Array2;
use statrs::distribution::{ChiSquared, ContinuousCDF};

const V: usize = 4;
const MASK: u32 = 2;
const L: usize = 3;

fn data() -> EnumerationOracle {
    let n = V.pow(L as u32);
    let p: Vec<f64> = (0..n)
        .map(|idx| {
            let x: Vec<usize> = (0..L)
                .map(|i| (idx / V.pow((L - 1 - i) as u32)) % V)
                .collect();
            if x.contains(&(MASK as usize)) {
                0.0
            } else {
                (0.8 * x.windows(2).filter(|w| w[0] == w[1]).count() as f64 + 0.2 * x[0] as f64)
                    .exp()
            }
        })
        .collect();
    let z: f64 = p.iter().sum();
    EnumerationOracle::new(V, L, p.iter().map(|x| x / z).collect()).unwrap()
}

fn grid(n: usize) -> Vec<f64> {
    (0..=n).map(|k| k as f64 / n as f64).collect()
}

fn streams(b: usize) -> Vec<u64> {
    (0..b as u64).map(|x| 31 * x + 5).collect()
}

fn histogram(tokens: &Array2<u32>) -> Vec<u64> {
    let mut h = vec![0u64; V.pow(L as u32)];
    for row in tokens.rows() {
        h[row.iter().fold(0usize, |a, &x| a * V + x as usize)] += 1;
    }
    h
}

/// Pearson χ² with categories of expected count < 5 pooled; rejects at level 1e-4.
fn assert_chi2(what: &str, counts: &[u64], probs: &[f64]) {
    let n: u64 = counts.iter().sum();
    let (mut stat, mut df) = (0.0, 0usize);
    let (mut pool_c, mut pool_e) = (0.0, 0.0);
    for (&c, &p) in counts.iter().zip(probs) {
        let e = p * n as f64;
        if p == 0.0 {
            assert_eq!(c, 0, "{what}: a zero-probability sequence was drawn");
        } else if e < 5.0 {
            pool_c += c as f64;
            pool_e += e;
        } else {
            stat += (c as f64 - e).powi(2) / e;
            df += 1;
        }
    }
    if pool_e > 0.0 {
        stat += (pool_c - pool_e).powi(2) / pool_e.max(1e-300);
        df += 1;
    }
    if df < 2 {
        return; // one category: the zero-probability checks above are the whole test
    }
    let crit = ChiSquared::new((df - 1) as f64)
        .unwrap()
        .inverse_cdf(1.0 - 1e-4);
    assert!(
        stat < crit,
        "{what}: χ² = {stat:.1} ≥ {crit:.1} (df {})",
        df - 1
    );
}

#[test]
fn fused_and_general_masked_steps_agree_token_for_token() {
    let path = MixturePath::new(Kappa::cond_ot(), SourceLaw::Mask(MASK), V).unwrap();
    let den = OracleDenoiser::new(data(), path.noise_process().unwrap()).unwrap();
    let b = 500;
    let st = streams(b);
    let fused = MixtureSolver::new(path.clone(), grid(6)).unwrap();
    let general = fused.clone().with_carry_over(false);
    let mut t1 = Array2::from_elem((b, L), MASK);
    let mut t2 = t1.clone();
    let c1 = fused
        .sample(&den, &CpuBackend::new(), t1.view_mut(), 9, &st)
        .unwrap();
    let c2 = general
        .sample(&den, &ReferenceBackend, t2.view_mut(), 9, &st)
        .unwrap();
    assert_eq!(t1, t2);
    assert_eq!(c1, c2);
    assert!(t1.iter().all(|&x| x != MASK));
}

#[test]
fn mixture_samples_follow_the_exact_law() {
    let oracle = data();
    let b = 20_000;
    let st = streams(b);
    let p15 = Kappa::polynomial(1.5).unwrap();
    let sqrt = Kappa::polynomial(0.5).unwrap(); // κ̇(0) = ∞: the first step jumps surely
    let configs = [
        (
            "masked + remasking corrector",
            SourceLaw::Mask(MASK),
            &p15,
            CorrectorSchedule::constant(0.7).unwrap(),
            JumpRule::Exponential,
        ),
        (
            "uniform",
            SourceLaw::Uniform,
            &p15,
            CorrectorSchedule::none(),
            JumpRule::Exponential,
        ),
        (
            "uniform, integrated",
            SourceLaw::Uniform,
            &p15,
            CorrectorSchedule::none(),
            JumpRule::Integrated,
        ),
        (
            "uniform, κ = √s, Euler",
            SourceLaw::Uniform,
            &sqrt,
            CorrectorSchedule::none(),
            JumpRule::Euler,
        ),
        (
            "general π + corrector",
            SourceLaw::Distribution(vec![0.1, 0.2, 0.3, 0.4]),
            &p15,
            CorrectorSchedule::constant(0.5).unwrap(),
            JumpRule::Exponential,
        ),
        (
            "uniform + Gat et al.'s corrector β_s = 10 s^¼(1 − s)^¼",
            SourceLaw::Uniform,
            &p15,
            CorrectorSchedule::gat_et_al(),
            JumpRule::Exponential,
        ),
        (
            "masked + corrector β_s = 2 s (1 − s)^½, Euler",
            SourceLaw::Mask(MASK),
            &p15,
            CorrectorSchedule::power(2.0, 1.0, 0.5).unwrap(),
            JumpRule::Euler,
        ),
    ];
    for (name, source, kappa, c, rule) in configs {
        let path = MixturePath::new(kappa.clone(), source, V).unwrap();
        let den = OracleDenoiser::new(oracle.clone(), path.noise_process().unwrap()).unwrap();
        let solver = MixtureSolver::new(path.clone(), grid(3))
            .unwrap()
            .with_rule(rule)
            .unwrap()
            .with_corrector(c)
            .unwrap();
        let rng = StepRng {
            seed: 4,
            streams: &st,
            step: 0,
        };
        let mut tokens = path.sample_source((b, L), &rng).unwrap();
        // The initial law: product of the source over positions.
        let p0 = path.source_probs();
        let init: Vec<f64> = (0..V.pow(L as u32))
            .map(|idx| {
                (0..L)
                    .map(|i| p0[(idx / V.pow((L - 1 - i) as u32)) % V])
                    .product()
            })
            .collect();
        assert_chi2(&format!("{name} source"), &histogram(&tokens), &init);
        // Stop after two of three steps to test a non-final law too.
        let mut logits = ndarray::Array3::zeros((b, L, V));
        for k in 0..2 {
            solver
                .step(
                    k,
                    &den,
                    &CpuBackend::new(),
                    tokens.view_mut(),
                    &mut logits,
                    77,
                    &st,
                )
                .unwrap();
        }
        let laws = mixture_solver_laws(&solver, &oracle, &init).unwrap();
        assert_chi2(name, &histogram(&tokens), &laws[2]);
        solver
            .step(
                2,
                &den,
                &CpuBackend::new(),
                tokens.view_mut(),
                &mut logits,
                77,
                &st,
            )
            .unwrap();
        assert_chi2(&format!("{name} final"), &histogram(&tokens), &laws[3]);
    }
}

#[test]
fn metric_samples_follow_the_exact_law() {
    let oracle = data();
    let emb = Array2::from_shape_fn((V, 2), |(x, j)| {
        if j == 0 {
            x as f64
        } else {
            (x * x) as f64 / 4.0
        }
    });
    let path = MetricPath::from_embeddings(emb.view(), MetricBeta::new(2.0, 1.5).unwrap()).unwrap();
    let den = OracleDenoiser::new(oracle.clone(), path.clone()).unwrap();
    let plain = MetricSolver::new(path.clone(), grid(4)).unwrap();
    let corrected = plain
        .clone()
        .with_corrector(CorrectorSchedule::power(1.5, 0.5, 1.0).unwrap());
    for (name, solver) in [("metric", plain), ("metric + kinetic corrector", corrected)] {
        let b = 20_000;
        let st = streams(b);
        let rng = StepRng {
            seed: 8,
            streams: &st,
            step: 0,
        };
        let x1 = Array2::zeros((b, L));
        let s0 = ndarray::Array1::zeros(b);
        let mut tokens = path.sample(s0.view(), x1.view(), &rng).unwrap();
        let n = V.pow(L as u32);
        let init = vec![1.0 / n as f64; n];
        assert_chi2(&format!("{name} source"), &histogram(&tokens), &init);
        let mut logits = ndarray::Array3::zeros((b, L, V));
        for k in 0..3 {
            solver
                .step(
                    k,
                    &den,
                    &ReferenceBackend,
                    tokens.view_mut(),
                    &mut logits,
                    3,
                    &st,
                )
                .unwrap();
        }
        let laws = metric_solver_laws(&solver, &oracle, &init).unwrap();
        assert_chi2(&format!("{name} step 3"), &histogram(&tokens), &laws[3]);
    }
}
