//! Correctors of the flow solvers, exactly (no sampling):
//! * a time-dependent corrector `β_s` (Gat et al.'s `10 s^{1/4}(1 − s)^{1/4}`, a custom
//!   closure) adds a divergence-free term at every `s`: `Σ_x p_s(x)(G_β − G_0)(x, y) = 0` on
//!   the space of sequences, and the master equation `ṗ = p G_{β(s)}(s)` integrated from
//!   `p_{s_0}` (RK4) reproduces the path's marginals; the solver with `β_s` converges;
//! * the metric path's kinetic corrector: valid rates, zero divergence under `p_s(· | x_1)`,
//!   the backward velocity generates the path backwards (proptest), the marginal corrector
//!   leaves the sequence marginals unchanged, and the solver with it converges;
//! * the metric solver gives the same tokens on 1 and 2 rayon threads.

use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::backend::steps::{JumpRule, StepRng};
use discrete_diffusion::kernel::NoiseProcess;
use discrete_diffusion::kernel::path::{MetricBeta, MetricPath, MixturePath, SourceLaw};
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::{ExactPosterior, OracleDenoiser};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::flow::exact::{metric_solver_laws, mixture_solver_laws};
use discrete_diffusion::sample::flow::{CorrectorSchedule, MetricSolver, MixtureSolver};
use discrete_diffusion::schedule::Kappa;
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3};
use proptest::prelude::*;

const MASK: u32 = 1;
const V: usize = 4;

/// The data law of `tests/flow_laws.rs` on `{0, 2, 3}^L`.
fn data(l: usize) -> EnumerationOracle {
    let n = V.pow(l as u32);
    let mut p = vec![0.0; n];
    for (idx, pi) in p.iter_mut().enumerate() {
        let x: Vec<usize> = (0..l)
            .map(|i| (idx / V.pow((l - 1 - i) as u32)) % V)
            .collect();
        if x.contains(&(MASK as usize)) {
            continue;
        }
        let agree = x.windows(2).filter(|w| w[0] == w[1]).count() as f64;
        let mass: f64 = x.iter().map(|&t| t as f64).sum();
        *pi = (0.9 * agree + 0.25 * mass).exp();
    }
    let z: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= z);
    EnumerationOracle::new(V, l, p).unwrap()
}

fn decode(idx: usize, l: usize) -> Vec<u32> {
    (0..l)
        .map(|i| ((idx / V.pow((l - 1 - i) as u32)) % V) as u32)
        .collect()
}

fn tv(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

fn uniform_grid(n: usize) -> Vec<f64> {
    (0..=n).map(|k| k as f64 / n as f64).collect()
}

/// The marginal generator over the `V^L` sequences at flow time `s` of the conditional
/// rows `row(i, z, x1, out)`, mixed over the exact posterior of `oracle` under `process`.
fn marginal_generator<P: NoiseProcess>(
    oracle: &EnumerationOracle,
    process: &P,
    s: f64,
    mut row: impl FnMut(usize, u32, u32, &mut [f64]),
) -> Array2<f64> {
    let l = oracle.seq_len();
    let n = V.pow(l as u32);
    let ch = process.channel(1.0 - s).unwrap();
    let mut g = Array2::zeros((n, n));
    let mut post = Array2::zeros((l, V));
    let mut u = vec![0.0; V];
    for idx in 0..n {
        let x = decode(idx, l);
        if oracle.log_prob_xt(&x, &*ch).unwrap() == f64::NEG_INFINITY {
            continue;
        }
        oracle.posterior_x0(&x, &*ch, post.view_mut()).unwrap();
        for i in 0..l {
            let w = V.pow((l - 1 - i) as u32);
            for x1 in 0..V {
                let q = post[[i, x1]];
                if q == 0.0 {
                    continue;
                }
                row(i, x[i], x1 as u32, &mut u);
                for (y, &r) in u.iter().enumerate() {
                    g[[idx, idx - x[i] as usize * w + y * w]] += q * r;
                }
            }
        }
    }
    g
}

fn vec_mat(p: &[f64], g: &Array2<f64>) -> Vec<f64> {
    (0..p.len())
        .map(|y| (0..p.len()).map(|x| p[x] * g[[x, y]]).sum())
        .collect()
}

fn sources() -> [SourceLaw; 3] {
    [
        SourceLaw::Mask(MASK),
        SourceLaw::Uniform,
        SourceLaw::Distribution(vec![0.1, 0.4, 0.2, 0.3]),
    ]
}

fn schedules() -> Vec<(&'static str, CorrectorSchedule)> {
    vec![
        ("gat_et_al", CorrectorSchedule::gat_et_al()),
        (
            "power(2, 1, 0.5)",
            CorrectorSchedule::power(2.0, 1.0, 0.5).unwrap(),
        ),
        (
            "custom 1 + sin(7s)",
            CorrectorSchedule::custom(|s| 1.0 + (7.0 * s).sin()),
        ),
    ]
}

#[test]
fn time_dependent_corrector_is_divergence_free_at_every_s() {
    let oracle = data(2);
    for source in sources() {
        let path = MixturePath::new(Kappa::polynomial(2.0).unwrap(), source.clone(), V).unwrap();
        let process = path.noise_process().unwrap();
        for (name, beta) in schedules() {
            for k in 1..10 {
                let s = k as f64 / 10.0;
                let c = beta.at(s).unwrap();
                assert!(c > 0.0, "{name} at {s}");
                let p_s = oracle
                    .marginal_xt(&*process.channel(1.0 - s).unwrap())
                    .unwrap();
                let gen_with = |c: f64| {
                    marginal_generator(&oracle, &process, s, |_, z, x1, out| {
                        path.conditional_velocity(s, z, x1, c, out).unwrap();
                    })
                };
                let (g0, gc) = (gen_with(0.0), gen_with(c));
                let diff = vec_mat(&p_s, &(&gc - &g0));
                let scale = gc.iter().map(|r| r.abs()).fold(1.0, f64::max);
                for (y, d) in diff.iter().enumerate() {
                    assert!(
                        d.abs() < 1e-12 * scale,
                        "{source:?} {name} s = {s}: divergence {d} at {y}"
                    );
                }
            }
        }
    }
}

/// RK4 for `ṗ = p G(s)` from `s0` to `s1` in `n` steps.
fn rk4(p0: &[f64], s0: f64, s1: f64, n: usize, g: impl Fn(f64) -> Array2<f64>) -> Vec<f64> {
    let h = (s1 - s0) / n as f64;
    let mut p = p0.to_vec();
    let axpy = |p: &[f64], k: &[f64], a: f64| -> Vec<f64> {
        p.iter().zip(k).map(|(x, y)| x + a * y).collect()
    };
    for j in 0..n {
        let s = s0 + j as f64 * h;
        let k1 = vec_mat(&p, &g(s));
        let k2 = vec_mat(&axpy(&p, &k1, h / 2.0), &g(s + h / 2.0));
        let k3 = vec_mat(&axpy(&p, &k2, h / 2.0), &g(s + h / 2.0));
        let k4 = vec_mat(&axpy(&p, &k3, h), &g(s + h));
        for (i, x) in p.iter_mut().enumerate() {
            *x += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
    p
}

#[test]
fn master_equation_with_time_dependent_corrector_follows_the_path() {
    // The exact continuous-time process with the corrector β_s (no time discretisation of
    // the jumps): its law stays on the path. RK4 error ~1e-10 at 200 steps.
    let oracle = data(2);
    let (s0, s1) = (0.15, 0.85);
    let beta = CorrectorSchedule::gat_et_al();
    for source in [SourceLaw::Uniform, SourceLaw::Mask(MASK)] {
        let path = MixturePath::new(Kappa::cond_ot(), source.clone(), V).unwrap();
        let process = path.noise_process().unwrap();
        let marginal = |s: f64| {
            oracle
                .marginal_xt(&*process.channel(1.0 - s).unwrap())
                .unwrap()
        };
        let errs: Vec<f64> = [100, 200]
            .iter()
            .map(|&n| {
                let p1 = rk4(&marginal(s0), s0, s1, n, |s| {
                    let c = beta.at(s).unwrap();
                    marginal_generator(&oracle, &process, s, |_, z, x1, out| {
                        path.conditional_velocity(s, z, x1, c, out).unwrap();
                    })
                });
                tv(&p1, &marginal(s1))
            })
            .collect();
        // The only error left is RK4's: fourth order in the step, towards the path.
        let ratio = errs[0] / errs[1];
        assert!(
            errs[1] < 1e-6 && (12.0..20.0).contains(&ratio),
            "{source:?}: TV {errs:?}"
        );
    }
    // The metric path with the kinetic corrector and a custom β_s.
    let emb = Array2::from_shape_fn((V, 1), |(x, _)| x as f64);
    let metric =
        MetricPath::from_embeddings(emb.view(), MetricBeta::new(3.0, 1.0).unwrap()).unwrap();
    let beta = CorrectorSchedule::custom(|s| 2.0 * s * (1.0 - s) + 0.3);
    let marginal = |s: f64| {
        oracle
            .marginal_xt(&*metric.channel(1.0 - s).unwrap())
            .unwrap()
    };
    let errs: Vec<f64> = [100, 200]
        .iter()
        .map(|&n| {
            let p1 = rk4(&marginal(0.1), 0.1, 0.7, n, |s| {
                let c = beta.at(s).unwrap();
                marginal_generator(&oracle, &metric, s, |_, z, x1, out| {
                    metric.corrector_velocity(s, z, x1, c, out).unwrap();
                })
            });
            tv(&p1, &marginal(0.7))
        })
        .collect();
    assert!(
        errs[1] < 1e-8 || (errs[1] < 1e-6 && errs[0] / errs[1] > 12.0),
        "metric: TV {errs:?}"
    );
}

#[test]
fn solver_with_time_dependent_corrector_converges() {
    let l = 3;
    let oracle = data(l);
    let n = V.pow(l as u32);
    let mut masked = vec![0.0; n];
    masked[(0..l).fold(0, |a, _| a * V + MASK as usize)] = 1.0;
    let uniform = vec![1.0 / n as f64; n];
    let steps = [16usize, 32, 64, 128];
    for (name, source, init, beta) in [
        (
            "masked, Gat",
            SourceLaw::Mask(MASK),
            &masked,
            CorrectorSchedule::gat_et_al(),
        ),
        (
            "uniform, Gat",
            SourceLaw::Uniform,
            &uniform,
            CorrectorSchedule::gat_et_al(),
        ),
        (
            "uniform, s(1 − s)",
            SourceLaw::Uniform,
            &uniform,
            CorrectorSchedule::power(1.0, 1.0, 1.0).unwrap(),
        ),
    ] {
        let path = MixturePath::new(Kappa::cond_ot(), source, V).unwrap();
        let mut errs = vec![];
        for &k in &steps {
            let solver = MixtureSolver::new(path.clone(), uniform_grid(k))
                .unwrap()
                .with_corrector(beta.clone())
                .unwrap();
            let laws = mixture_solver_laws(&solver, &oracle, init).unwrap();
            errs.push(tv(laws.last().unwrap(), oracle.probs()));
        }
        println!("{name}: {errs:?}");
        assert!(errs.windows(2).all(|w| w[1] < w[0]), "{name}: {errs:?}");
        let slope = (errs[3] / errs[0]).ln() / 8f64.ln();
        assert!(slope < -0.4, "{name}: slope {slope}, {errs:?}");
        // The local order steepens towards first order (the uniform source with Gat's
        // β ≤ 10 is pre-asymptotic here: rates ~10× those of the plain solver).
        let local: Vec<f64> = errs.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
        assert!(
            local.windows(2).all(|w| w[1] > w[0] - 0.05) && local[2] < 1.1,
            "{name}: {local:?}"
        );
    }
    // The metric solver with the kinetic corrector.
    let emb = Array2::from_shape_fn((V, 1), |(x, _)| x as f64);
    let metric =
        MetricPath::from_embeddings(emb.view(), MetricBeta::new(3.0, 1.0).unwrap()).unwrap();
    let mut errs = vec![];
    for &k in &steps {
        let solver = MetricSolver::new(metric.clone(), uniform_grid(k))
            .unwrap()
            .with_corrector(CorrectorSchedule::constant(0.5).unwrap());
        let laws = metric_solver_laws(&solver, &oracle, &uniform).unwrap();
        assert!(
            laws.iter()
                .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-12)
        );
        errs.push(tv(laws.last().unwrap(), oracle.probs()));
    }
    let slope = (errs[3] / errs[0]).ln() / 8f64.ln();
    assert!(
        (-1.1..-0.85).contains(&slope),
        "metric corrector: slope {slope}, {errs:?}"
    );
}

#[test]
fn constant_schedule_is_with_div_free_and_zero_is_the_plain_solver() {
    let oracle = data(2);
    let n = V * V;
    let init = vec![1.0 / n as f64; n];
    let path = MixturePath::new(Kappa::cond_ot(), SourceLaw::Uniform, V).unwrap();
    let a = MixtureSolver::new(path.clone(), uniform_grid(6))
        .unwrap()
        .with_div_free(0.7)
        .unwrap();
    let b = MixtureSolver::new(path.clone(), uniform_grid(6))
        .unwrap()
        .with_corrector(CorrectorSchedule::custom(|_| 0.7))
        .unwrap();
    assert_eq!(a.div_free(), 0.7);
    assert_eq!(
        mixture_solver_laws(&a, &oracle, &init).unwrap(),
        mixture_solver_laws(&b, &oracle, &init).unwrap()
    );
    // The kinetic corrector with β = 0 is the plain metric solver, bit for bit.
    let emb = Array2::from_shape_fn((V, 1), |(x, _)| x as f64);
    let metric =
        MetricPath::from_embeddings(emb.view(), MetricBeta::new(3.0, 1.0).unwrap()).unwrap();
    let plain = MetricSolver::new(metric.clone(), uniform_grid(5)).unwrap();
    let zero = plain
        .clone()
        .with_corrector(CorrectorSchedule::custom(|_| 0.0));
    assert_eq!(
        metric_solver_laws(&plain, &oracle, &init).unwrap(),
        metric_solver_laws(&zero, &oracle, &init).unwrap()
    );
    // Integrated takes no corrector; a custom schedule may not vanish.
    assert!(a.clone().with_rule(JumpRule::Integrated).is_err());
    assert!(
        MixtureSolver::new(path, uniform_grid(3))
            .unwrap()
            .with_rule(JumpRule::Integrated)
            .unwrap()
            .with_corrector(CorrectorSchedule::custom(|_| 0.0))
            .is_err()
    );
}

#[test]
fn bad_corrector_values_are_errors_and_leave_tokens_unchanged() {
    let oracle = data(2);
    let path = MixturePath::new(Kappa::cond_ot(), SourceLaw::Uniform, V).unwrap();
    let den = OracleDenoiser::new(oracle.clone(), path.noise_process().unwrap()).unwrap();
    let solver = MixtureSolver::new(path, uniform_grid(4))
        .unwrap()
        .with_corrector(CorrectorSchedule::custom(
            |s| if s > 0.3 { -1.0 } else { 0.5 },
        ))
        .unwrap();
    let mut tokens = Array2::from_elem((2, 2), 3u32);
    let st = [1u64, 2];
    let r = solver.sample(&den, &CpuBackend::new(), tokens.view_mut(), 9, &st);
    assert!(r.is_err());
    let laws = mixture_solver_laws(&solver, &oracle, &[1.0 / 16.0; 16]);
    assert!(laws.is_err());
    let emb = Array2::from_shape_fn((V, 1), |(x, _)| x as f64);
    let metric =
        MetricPath::from_embeddings(emb.view(), MetricBeta::new(3.0, 1.0).unwrap()).unwrap();
    let mut u = vec![0.0; V];
    assert!(metric.corrector_velocity(0.5, 0, 1, -0.1, &mut u).is_err());
    assert!(
        metric
            .divergence_free_velocity(0.5, 0, 1, f64::NAN, &mut u)
            .is_err()
    );
    assert!(metric.backward_velocity(1.0, 0, 1, &mut u).is_err());
    assert!(metric.backward_velocity(0.5, 9, 1, &mut u).is_err());
    assert!(
        metric
            .corrector_velocity(0.5, 0, 1, 0.5, &mut u[..2])
            .is_err()
    );
    assert!(
        metric
            .corrector_step_law_given_data(0.5, 0.6, 0, 1, 0.5, JumpRule::Integrated, &mut u)
            .is_err()
    );
    assert!(
        metric
            .corrector_step_law(0.5, 0.4, 0, &[0.25; 4], 0.5, JumpRule::Exponential, &mut u)
            .is_err()
    );
}

fn metric(v: usize, raw: &[f64], c: f64, a: f64) -> MetricPath {
    let d = Array2::from_shape_fn(
        (v, v),
        |(x, y)| if x == y { 0.0 } else { 0.05 + raw[x * v + y] },
    );
    MetricPath::new(d, MetricBeta::new(c, a).unwrap()).unwrap()
}

fn assert_rate_row(u: &[f64], z: usize, sign: f64) -> Result<(), TestCaseError> {
    for (x, &r) in u.iter().enumerate() {
        prop_assert!(r.is_finite());
        if x != z {
            prop_assert!(
                sign * r >= 0.0,
                "off-diagonal rate {r} at {x} has the wrong sign"
            );
        }
    }
    let scale = u.iter().map(|r| r.abs()).sum::<f64>().max(1.0);
    prop_assert!(u.iter().sum::<f64>().abs() < 1e-12 * scale);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn metric_kinetic_corrector_is_a_divergence_free_rate(
        v in 2usize..7,
        raw in proptest::collection::vec(0.0f64..3.0, 49),
        bc in 0.3f64..4.0,
        a in 1.0f64..2.5,
        s in 0.05f64..0.9,
        c in 0.0f64..3.0,
        x1 in 0usize..7,
    ) {
        let x1 = (x1 % v) as u32;
        let path = metric(v, &raw, bc, a);
        let mut p = vec![0.0; v];
        path.probs_given_data(s, x1, &mut p).unwrap();
        let (mut f, mut b, mut d, mut cv) = (vec![0.0; v], vec![0.0; v], vec![0.0; v], vec![0.0; v]);
        let (mut div, mut fwd, mut bwd) = (vec![0.0; v], vec![0.0; v], vec![0.0; v]);
        for z in 0..v {
            let zu = z as u32;
            path.conditional_velocity(s, zu, x1, &mut f).unwrap();
            let lb = path.backward_velocity(s, zu, x1, &mut b).unwrap();
            let ld = path.divergence_free_velocity(s, zu, x1, c, &mut d).unwrap();
            let lc = path.corrector_velocity(s, zu, x1, c, &mut cv).unwrap();
            assert_rate_row(&f, z, 1.0)?;
            assert_rate_row(&b, z, -1.0)?;
            assert_rate_row(&d, z, 1.0)?;
            assert_rate_row(&cv, z, 1.0)?;
            prop_assert!((lb - b[z]).abs() < 1e-15 && (ld + d[z]).abs() < 1e-12 * ld.max(1.0));
            prop_assert!((lc + cv[z]).abs() < 1e-12 * lc.max(1.0));
            for y in 0..v {
                // (1 + c) û − c ǔ = û + c(û − ǔ), and c(û − ǔ) is the div-free row.
                let want = (1.0 + c) * f[y] - c * b[y];
                prop_assert!((cv[y] - want).abs() < 1e-12 * want.abs().max(1.0));
                prop_assert!((d[y] - c * (f[y] - b[y])).abs() < 1e-12 * d[y].abs().max(1.0));
                div[y] += p[z] * d[y];
                fwd[y] += p[z] * f[y];
                bwd[y] += p[z] * b[y];
            }
            // Symmetric flux p(z) D(x | z) = p(x) D(z | x).
            let mut dx = vec![0.0; v];
            for x in 0..v {
                if x != z {
                    path.divergence_free_velocity(s, x as u32, x1, c, &mut dx).unwrap();
                    let (j1, j2) = (p[z] * d[x], p[x] * dx[z]);
                    prop_assert!((j1 - j2).abs() < 1e-12 * j1.abs().max(1e-300).max(1.0));
                }
            }
        }
        for y in 0..v {
            let scale = fwd.iter().map(|r| r.abs()).fold(1.0, f64::max);
            prop_assert!(div[y].abs() < 1e-13 * scale.max(c), "divergence {} at {y}", div[y]);
            // Forward and backward velocities generate the same ∂_s p.
            prop_assert!((fwd[y] - bwd[y]).abs() < 1e-12 * scale, "{} vs {}", fwd[y], bwd[y]);
        }
        // Corrector step laws are distributions.
        let post: Vec<f64> = (0..v).map(|x| (1 + x) as f64 / (v * (v + 1) / 2) as f64).collect();
        let mut law = vec![0.0; v];
        for z in 0..v as u32 {
            for rule in [JumpRule::Exponential, JumpRule::Euler] {
                path.corrector_step_law(s, (s + 0.05).min(1.0), z, &post, c, rule, &mut law).unwrap();
                prop_assert!(law.iter().all(|&q| q >= 0.0));
                prop_assert!((law.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn metric_marginal_corrector_leaves_sequence_marginals_unchanged() {
    let oracle = data(2);
    let emb = Array2::from_shape_fn((V, 2), |(x, j)| {
        if j == 0 {
            x as f64
        } else {
            (x * x) as f64 / 3.0
        }
    });
    let metric =
        MetricPath::from_embeddings(emb.view(), MetricBeta::new(2.0, 1.5).unwrap()).unwrap();
    for s in [0.1, 0.4, 0.8] {
        let p_s = oracle
            .marginal_xt(&*metric.channel(1.0 - s).unwrap())
            .unwrap();
        let g = marginal_generator(&oracle, &metric, s, |_, z, x1, out| {
            metric.divergence_free_velocity(s, z, x1, 1.3, out).unwrap();
        });
        let scale = g.iter().map(|r| r.abs()).fold(1.0, f64::max);
        for (y, d) in vec_mat(&p_s, &g).iter().enumerate() {
            assert!(d.abs() < 1e-13 * scale, "s = {s}: divergence {d} at {y}");
        }
    }
}

/// A denoiser returning a fixed logits table (sequence-independent).
struct Table(Array3<f32>);

impl Denoiser for Table {
    fn vocab_size(&self) -> usize {
        self.0.dim().2
    }
    fn logits(
        &self,
        _tokens: ArrayView2<'_, u32>,
        _times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        out.assign(&self.0);
        Ok(())
    }
}

#[test]
fn metric_solver_is_independent_of_the_thread_count() {
    let (b, l, v) = (6usize, 200usize, 7usize);
    let mut r = CounterRng::new(RngKey::new(4), Purpose::USER, 0, 0);
    let table = Table(Array3::from_shape_simple_fn((b, l, v), || {
        (2.0 * (r.uniform() - 0.5) * 3.0) as f32
    }));
    let emb = Array2::from_shape_fn((v, 2), |(x, j)| {
        if j == 0 {
            x as f64
        } else {
            ((x * 3) % v) as f64
        }
    });
    let path = MetricPath::from_embeddings(emb.view(), MetricBeta::new(2.0, 1.0).unwrap()).unwrap();
    let streams: Vec<u64> = (0..b as u64).map(|x| 11 * x + 3).collect();
    let x1 = Array2::zeros((b, l));
    let rng = StepRng {
        seed: 2,
        streams: &streams,
        step: 0,
    };
    let start = path
        .sample(Array1::zeros(b).view(), x1.view(), &rng)
        .unwrap();
    for corrector in [CorrectorSchedule::none(), CorrectorSchedule::gat_et_al()] {
        let solver = MetricSolver::new(path.clone(), uniform_grid(8))
            .unwrap()
            .with_corrector(corrector.clone());
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut tokens = start.clone();
                let changed = solver
                    .sample(&table, &CpuBackend::new(), tokens.view_mut(), 17, &streams)
                    .unwrap();
                (tokens, changed)
            })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one, two, "{corrector:?}");
        // Something moved before the final step.
        assert!(one.1[..7].iter().sum::<usize>() > 0, "{:?}", one.1);
    }
}
