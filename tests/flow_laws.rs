//! Laws of the discrete-flow-matching solver, exactly (no sampling):
//! * one Euler-jump step of the masked mixture path is the MDLM ancestral step for
//!   `κ(s) = α(1 − s)` (law against `p_reverse_mixture` and `mdlm_stay_probability`);
//! * with an exact oracle on an enumerable space the propagated law follows the path
//!   (`P(X_s^i unmasked) = κ(s)`, the law equals `p_s` for one token), the divergence-free
//!   term leaves `p_s` stationary, the forward velocity solves the Kolmogorov equation, and
//!   the final law converges to the data at rate `O(h)`.

use discrete_diffusion::backend::steps::{JumpRule, mdlm_stay_probability};
use discrete_diffusion::kernel::NoiseProcess;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::path::{MetricBeta, MetricPath, MixturePath, SourceLaw};
use discrete_diffusion::kernel::posterior::{PosteriorWorkspace, p_reverse_mixture};
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::ExactPosterior;
use discrete_diffusion::sample::flow::exact::{metric_solver_laws, mixture_solver_laws};
use discrete_diffusion::sample::flow::{MetricSolver, MixtureSolver};
use discrete_diffusion::schedule::{FlowPolynomial, Kappa, LogLinear, Schedule};
use ndarray::Array2;

const MASK: u32 = 1;
const V: usize = 4;

/// A data law on `{0, 2, 3}^L` (never the mask), with dependence between positions.
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

fn point_mass(n: usize, idx: usize) -> Vec<f64> {
    let mut p = vec![0.0; n];
    p[idx] = 1.0;
    p
}

fn all_mask_index(l: usize) -> usize {
    (0..l).fold(0, |a, _| a * V + MASK as usize)
}

fn tv(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

fn uniform_grid(n: usize) -> Vec<f64> {
    (0..=n).map(|k| k as f64 / n as f64).collect()
}

#[test]
fn masked_step_is_the_mdlm_ancestral_step() {
    let sch = FlowPolynomial::new(2.0).unwrap();
    let path = MixturePath::new(Kappa::convex(sch), SourceLaw::Mask(MASK), V).unwrap();
    let big_t = 8;
    // The discrete absorbing kernel with ᾱ_k = α(k/T): MDLM's process on the grid.
    let betas: Vec<f64> = (1..=big_t)
        .map(|k| {
            let (a, a_prev) = (
                sch.alpha(k as f64 / big_t as f64).unwrap(),
                sch.alpha((k - 1) as f64 / big_t as f64).unwrap(),
            );
            1.0 - a / a_prev
        })
        .collect();
    let kernel = Absorbing::new(V, MASK, &betas).unwrap();
    let mut ws = PosteriorWorkspace::new(V);
    let p0 = [0.5, 0.0, 0.2, 0.3]; // the model's p(x_0), mask excluded
    let (mut ours, mut mdlm) = (vec![0.0; V], vec![0.0; V]);
    for k in (1..=big_t).rev() {
        let (t, t_next) = (k as f64 / big_t as f64, (k - 1) as f64 / big_t as f64);
        let (s, s_next) = (1.0 - t, 1.0 - t_next);
        path.step_law(s, s_next, MASK, &p0, 0.0, JumpRule::Integrated, &mut ours)
            .unwrap();
        p_reverse_mixture(&kernel, k, MASK, &p0, &mut ws, &mut mdlm).unwrap();
        for (a, b) in ours.iter().zip(&mdlm) {
            assert!((a - b).abs() < 1e-12, "step {k}: {ours:?} vs {mdlm:?}");
        }
        // And the fused MDLM step's stay probability.
        let stay = mdlm_stay_probability(&sch, t, t_next).unwrap();
        assert!((ours[MASK as usize] - stay).abs() < 1e-12);
        // Unmasked tokens are carried over by both.
        path.step_law(
            s,
            s_next,
            2,
            &[0.0, 0.0, 1.0, 0.0],
            0.0,
            JumpRule::Integrated,
            &mut ours,
        )
        .unwrap();
        assert_eq!(ours, vec![0.0, 0.0, 1.0, 0.0]);
    }
    // The exponential (Euler-jump) rule agrees to second order in h.
    let lin = LogLinear::new(1e-3).unwrap();
    let path = MixturePath::new(Kappa::convex(lin), SourceLaw::Mask(MASK), V).unwrap();
    let mut errs = vec![];
    for h in [0.1, 0.05, 0.025] {
        let (s, s_next) = (0.4, 0.4 + h);
        path.step_law(s, s_next, MASK, &p0, 0.0, JumpRule::Exponential, &mut ours)
            .unwrap();
        let stay = mdlm_stay_probability(&lin, 1.0 - s, 1.0 - s_next).unwrap();
        errs.push((ours[MASK as usize] - stay).abs());
    }
    for w in errs.windows(2) {
        let ratio = w[0] / w[1];
        assert!(
            (3.5..4.5).contains(&ratio),
            "O(h²) ratio {ratio}, errors {errs:?}"
        );
    }
}

#[test]
fn exact_propagation_follows_the_masked_path() {
    let l = 3;
    let oracle = data(l);
    let sch = FlowPolynomial::new(1.5).unwrap();
    let path = MixturePath::new(Kappa::convex(sch), SourceLaw::Mask(MASK), V).unwrap();
    let grid = uniform_grid(10);
    let solver = MixtureSolver::new(path.clone(), grid.clone())
        .unwrap()
        .with_rule(JumpRule::Integrated)
        .unwrap();
    let n = V.pow(l as u32);
    let laws = mixture_solver_laws(&solver, &oracle, &point_mass(n, all_mask_index(l))).unwrap();
    for (k, law) in laws.iter().enumerate() {
        let kappa = if k == grid.len() - 1 {
            1.0
        } else {
            path.kappa().kappa(grid[k]).unwrap()
        };
        for i in 0..l {
            let unmasked: f64 = law
                .iter()
                .enumerate()
                .filter(|(idx, _)| (idx / V.pow((l - 1 - i) as u32)) % V != MASK as usize)
                .map(|(_, p)| p)
                .sum();
            assert!(
                (unmasked - kappa).abs() < 1e-12,
                "step {k}, position {i}: P(unmasked) = {unmasked}, κ = {kappa}"
            );
        }
    }
    assert!((laws[0].iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn one_token_law_is_the_path_marginal_and_ends_at_the_data() {
    let oracle = data(1);
    for source in [SourceLaw::Mask(MASK), SourceLaw::Uniform] {
        let path = MixturePath::new(Kappa::cosine(), source.clone(), V).unwrap();
        let process = path.noise_process().unwrap();
        let grid = uniform_grid(7);
        let solver = MixtureSolver::new(path.clone(), grid.clone())
            .unwrap()
            .with_rule(JumpRule::Integrated)
            .unwrap();
        let initial = path.source_probs();
        let laws = mixture_solver_laws(&solver, &oracle, &initial).unwrap();
        for (k, law) in laws.iter().enumerate().take(grid.len() - 1) {
            let want = oracle
                .marginal_xt(&*process.channel(1.0 - grid[k]).unwrap())
                .unwrap();
            assert!(
                tv(law, &want) < 1e-12,
                "{source:?} step {k}: {law:?} vs {want:?}"
            );
            // Masked source: X_s = X_1 exactly when unmasked, with probability κ(s).
            if let SourceLaw::Mask(m) = source {
                let k_s = path.kappa().kappa(grid[k]).unwrap();
                assert!((1.0 - law[m as usize] - k_s).abs() < 1e-12);
            }
        }
        assert!(tv(laws.last().unwrap(), oracle.probs()) < 1e-12);
    }
}

/// The generator over `V^L` sequences of a per-position velocity `rate(i, x, out)` (rows of
/// single-token changes): `G[x, y]`.
fn sequence_generator(l: usize, mut rate: impl FnMut(usize, &[u32], &mut [f64])) -> Array2<f64> {
    let n = V.pow(l as u32);
    let mut g = Array2::zeros((n, n));
    let mut row = vec![0.0; V];
    for idx in 0..n {
        let x: Vec<u32> = (0..l)
            .map(|i| ((idx / V.pow((l - 1 - i) as u32)) % V) as u32)
            .collect();
        for i in 0..l {
            rate(i, &x, &mut row);
            let w = V.pow((l - 1 - i) as u32);
            for (y, &r) in row.iter().enumerate() {
                let jdx = idx - x[i] as usize * w + y * w;
                g[[idx, jdx]] += r;
            }
        }
    }
    g
}

#[test]
fn div_free_term_is_stationary_and_forward_velocity_solves_kolmogorov() {
    let l = 2;
    let oracle = data(l);
    for source in [
        SourceLaw::Mask(MASK),
        SourceLaw::Uniform,
        SourceLaw::Distribution(vec![0.1, 0.4, 0.2, 0.3]),
    ] {
        let path = MixturePath::new(Kappa::polynomial(2.0).unwrap(), source.clone(), V).unwrap();
        let process = path.noise_process().unwrap();
        let s = 0.45;
        let marginal = |s: f64| {
            oracle
                .marginal_xt(&*process.channel(1.0 - s).unwrap())
                .unwrap()
        };
        let p_s = marginal(s);
        let ch = process.channel(1.0 - s).unwrap();
        let mut post = Array2::zeros((l, V));
        let marginal_rates = |c: f64| {
            let mut post = post.clone();
            sequence_generator(l, |i, x, out| {
                out.iter_mut().for_each(|o| *o = 0.0);
                if oracle.log_prob_xt(x, &*ch).unwrap() == f64::NEG_INFINITY {
                    return;
                }
                oracle.posterior_x0(x, &*ch, post.view_mut()).unwrap();
                let mut u = vec![0.0; V];
                for x1 in 0..V {
                    let w = post[[i, x1]];
                    if w > 0.0 {
                        path.conditional_velocity(s, x[i], x1 as u32, c, &mut u)
                            .unwrap();
                        out.iter_mut().zip(&u).for_each(|(o, r)| *o += w * r);
                    }
                }
            })
        };
        let g0 = marginal_rates(0.0);
        let gc = marginal_rates(0.8);
        let n = p_s.len();
        // dp/ds by central differences against p_s G (forward velocity).
        let e = 1e-5;
        let (pp, pm) = (marginal(s + e), marginal(s - e));
        for y in 0..n {
            let flow: f64 = (0..n).map(|x| p_s[x] * g0[[x, y]]).sum();
            let fd = (pp[y] - pm[y]) / (2.0 * e);
            assert!(
                (flow - fd).abs() < 1e-7,
                "{source:?} Kolmogorov at {y}: {flow} vs {fd}"
            );
            let div: f64 = (0..n).map(|x| p_s[x] * (gc[[x, y]] - g0[[x, y]])).sum();
            assert!(div.abs() < 1e-12, "{source:?} divergence at {y}: {div}");
        }
        post.fill(0.0);
    }
}

#[test]
fn final_law_converges_to_the_data_at_first_order() {
    // Exact TV(final law, data) for n uniform steps (docs/samplers-flow.md): first order for
    // the masked path (with and without the remasking corrector); the uniform source
    // approaches it more slowly (its noise tokens keep the singular rate κ̇/(1 − κ) busy up
    // to s = 1), but converges.
    let l = 3;
    let oracle = data(l);
    let nstates = V.pow(l as u32);
    let masked = point_mass(nstates, all_mask_index(l));
    let uniform = vec![1.0 / nstates as f64; nstates];
    type Config<'a> = (&'a str, SourceLaw, f64, &'a Vec<f64>, (f64, f64));
    let configs: Vec<Config> = vec![
        ("masked", SourceLaw::Mask(MASK), 0.0, &masked, (-1.1, -0.9)),
        (
            "masked + corrector",
            SourceLaw::Mask(MASK),
            0.5,
            &masked,
            (-1.1, -0.9),
        ),
        (
            "uniform + corrector",
            SourceLaw::Uniform,
            0.5,
            &uniform,
            (-1.1, -0.55),
        ),
    ];
    let steps = [16usize, 32, 64, 128];
    for (name, source, c, initial, (lo, hi)) in configs {
        let path = MixturePath::new(Kappa::cond_ot(), source, V).unwrap();
        let mut errs = vec![];
        for &n in &steps {
            let solver = MixtureSolver::new(path.clone(), uniform_grid(n))
                .unwrap()
                .with_div_free(c)
                .unwrap();
            let laws = mixture_solver_laws(&solver, &oracle, initial).unwrap();
            errs.push(tv(laws.last().unwrap(), oracle.probs()));
        }
        let slope = (errs[3] / errs[0]).ln() / 8f64.ln();
        assert!(errs.windows(2).all(|w| w[1] < w[0]), "{name}: {errs:?}");
        assert!(
            (lo..hi).contains(&slope),
            "{name}: slope {slope}, errors {errs:?}"
        );
        assert!(errs[3] < 0.015, "{name}: {errs:?}");
    }
}

#[test]
fn metric_path_solver_converges_at_first_order() {
    let l = 3;
    let oracle = data(l);
    let n = V.pow(l as u32);
    let emb = Array2::from_shape_fn((V, 1), |(x, _)| x as f64);
    let path = MetricPath::from_embeddings(emb.view(), MetricBeta::new(3.0, 1.0).unwrap()).unwrap();
    let init = vec![1.0 / n as f64; n];
    let mut errs = vec![];
    for steps in [16usize, 32, 64, 128] {
        let solver = MetricSolver::new(path.clone(), uniform_grid(steps)).unwrap();
        let laws = metric_solver_laws(&solver, &oracle, &init).unwrap();
        // Each intermediate law is a distribution.
        assert!(
            laws.iter()
                .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-12)
        );
        errs.push(tv(laws.last().unwrap(), oracle.probs()));
    }
    let slope = (errs[3] / errs[0]).ln() / 8f64.ln();
    assert!(
        (-1.1..-0.85).contains(&slope),
        "slope {slope}, errors {errs:?}"
    );
}

#[test]
fn remasking_is_the_backward_velocity() {
    // Masked source, corrector c: an unmasked token z = x_1 returns to the mask at rate
    // −c ǔ(mask | z) = c κ̇/κ, and nowhere else.
    use discrete_diffusion::param::velocity::backward_velocity;
    let kappa = Kappa::polynomial(2.0).unwrap();
    let path = MixturePath::new(kappa.clone(), SourceLaw::Mask(MASK), V).unwrap();
    let (s, h, c, z) = (0.4, 0.05, 0.7, 3u32);
    let mut b = vec![0.0; V];
    let mut delta_mask = vec![0.0; V];
    delta_mask[MASK as usize] = 1.0;
    backward_velocity(&kappa, s, z, &delta_mask, &mut b).unwrap();
    let rate = -c * b[MASK as usize];
    let mut u = vec![0.0; V];
    path.conditional_velocity(s, z, z, c, &mut u).unwrap();
    assert!((u[MASK as usize] - rate).abs() < 1e-12);
    assert!((rate - c * 2.0 / s).abs() < 1e-12); // κ̇/κ = 2s/s² = 2/s
    let mut law = vec![0.0; V];
    path.step_law_given_data(s, s + h, z, z, c, JumpRule::Exponential, &mut law)
        .unwrap();
    let p = -(-h * rate).exp_m1();
    assert!((law[MASK as usize] - p).abs() < 1e-12 && (law[z as usize] - (1.0 - p)).abs() < 1e-12);
}
