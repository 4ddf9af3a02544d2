//! Reparameterized discrete diffusion (RDM): routed law ≡ Bayes posterior, sampler exactness
//! with an exact denoiser, reweighted cross-entropy gradients, bad input.
//!
//! Kernels are the crate's mixture kernels (`Absorbing` with the mask not last, `Uniform`,
//! `Mixture`), and the sampler's `MixtureSchedule` is read off the same kernel object
//! (`MixtureSchedule::from_absorbing` / `from_uniform` / `from_mixture`) that the exact
//! denoiser (`OracleDenoiser` over an `EnumerationOracle`) uses as its noise process. The
//! Bayes reference of the routed law is built from `kernel::dense::Dense` products of
//! one-step matrices written out here.

use discrete_diffusion::Error;
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::dense::Dense;
use discrete_diffusion::kernel::mixture::Mixture;
use discrete_diffusion::kernel::uniform::Uniform;
use discrete_diffusion::loss::rdm::{RdmWeighting, rdm_loss};
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::rdm::{
    MixtureSchedule, RdmOptions, Renoise, Routing, Scorer, X0Estimate, cosine_alpha_bar,
    linear_alpha_bar, sample_rdm,
};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3, array};
use statrs::distribution::{ChiSquared, ContinuousCDF};

// ---------------------------------------------------------------- kernels and oracles

/// `ᾱ_t = Π_{s ≤ t} keep_s`.
fn alpha_bar_of(keep: &[f64]) -> Vec<f64> {
    let mut a = vec![1.0];
    for &b in keep {
        let last = *a.last().unwrap();
        a.push(last * b);
    }
    a
}

/// D3PM step probabilities `β_t = 1 − ᾱ_t / ᾱ_{t−1}` of a cumulative keep schedule.
fn betas_of(alpha_bar: &[f64]) -> Vec<f64> {
    alpha_bar.windows(2).map(|w| 1.0 - w[1] / w[0]).collect()
}

/// The absorbing kernel with cumulative keep `alpha_bar` (mask at `mask`) and its RDM
/// schedule, read off the kernel; checks the schedule reproduces `alpha_bar`.
fn absorbing_setup(alpha_bar: &[f64], v: usize, mask: u32) -> (Absorbing, MixtureSchedule) {
    let kernel = Absorbing::new(v, mask, &betas_of(alpha_bar)).unwrap();
    let sch = MixtureSchedule::from_absorbing(&kernel).unwrap();
    for (a, b) in sch.alpha_bar().iter().zip(alpha_bar) {
        assert!((a - b).abs() < 1e-15, "ᾱ from the kernel {a} vs {b}");
    }
    assert_eq!(sch.mask_token(), Some(mask));
    (kernel, sch)
}

/// The exact denoiser of `data` (over `V^L`) under `kernel`.
fn oracle<K: ForwardKernel>(
    kernel: K,
    data: &[(Vec<u32>, f64)],
) -> OracleDenoiser<EnumerationOracle, K> {
    let v = kernel.vocab_size();
    let l = data[0].0.len();
    OracleDenoiser::new(EnumerationOracle::from_pairs(v, l, data).unwrap(), kernel).unwrap()
}

/// `Q_t = keep_t I + (1 − keep_t) 1 πᵀ` written out densely (independent of `Mixture`).
fn dense_mixture(keep: &[f64], pi: &[f64]) -> Dense {
    let v = pi.len();
    let steps = keep
        .iter()
        .map(|&b| {
            Array2::from_shape_fn((v, v), |(i, j)| {
                b * (i == j) as u8 as f64 + (1.0 - b) * pi[j]
            })
        })
        .collect();
    Dense::new(steps, pi).unwrap()
}

/// `Q_{s→t} = Q_{s+1} ⋯ Q_t` from the dense one-step matrices.
fn between(d: &Dense, s: usize, t: usize) -> Array2<f64> {
    let v = d.vocab_size();
    let mut m = Array2::eye(v);
    for k in s + 1..=t {
        m = m.dot(&d.step_matrix(k).unwrap());
    }
    m
}

fn data_law(data: &[(Vec<u32>, f64)], v: usize, l: usize) -> Vec<f64> {
    let table = EnumerationOracle::from_pairs(v, l, data).unwrap();
    table.probs().to_vec()
}

fn index_of(seq: &[u32], v: usize) -> usize {
    seq.iter().fold(0, |acc, &x| acc * v + x as usize)
}

/// A correlated law over {0, 2, 3}^3 (mask = 1 excluded): weights ∝ 1 + 3·[x_0 = x_2] + x_1.
fn correlated_data() -> Vec<(Vec<u32>, f64)> {
    let toks = [0u32, 2, 3];
    let mut out = Vec::new();
    for &a in &toks {
        for &b in &toks {
            for &c in &toks {
                let w = 1.0 + 3.0 * (a == c) as u8 as f64 + b as f64;
                out.push((vec![a, b, c], w));
            }
        }
    }
    let z: f64 = out.iter().map(|x| x.1).sum();
    out.iter_mut().for_each(|x| x.1 /= z);
    out
}

/// Pearson's χ² statistic of `counts` against `probs` and the `1 − alpha` quantile of
/// χ²(cells − 1) (statrs); cells of probability 0 must be empty.
fn chi2(counts: &[u64], probs: &[f64], alpha: f64) -> (f64, f64) {
    let n: u64 = counts.iter().sum();
    let (mut stat, mut cells) = (0.0, 0);
    for (&c, &p) in counts.iter().zip(probs) {
        if p == 0.0 {
            assert_eq!(c, 0, "sampled an impossible outcome");
            continue;
        }
        let e = p * n as f64;
        stat += (c as f64 - e).powi(2) / e;
        cells += 1;
    }
    let crit = ChiSquared::new((cells - 1) as f64)
        .unwrap()
        .inverse_cdf(1.0 - alpha);
    (stat, crit)
}

fn counts_of(tokens: &Array2<u32>, v: usize) -> Vec<u64> {
    let mut c = vec![0u64; v.pow(tokens.ncols() as u32)];
    for row in tokens.rows() {
        c[index_of(row.as_slice().unwrap(), v)] += 1;
    }
    c
}

// ---------------------------------------------------------------- routed law ≡ posterior

#[test]
fn routed_law_equals_bayes_posterior() {
    let keep = [0.9, 0.7, 0.85, 0.5, 0.6, 0.0];
    let betas: Vec<f64> = keep.iter().map(|k| 1.0 - k).collect();
    let a = alpha_bar_of(&keep);
    let v = 4;
    // absorbing (mask = 1, not last), multinomial, general mixture to π — each schedule
    // read off the crate's kernel object.
    let cases: [(Vec<f64>, MixtureSchedule); 3] = [
        (
            vec![0.0, 1.0, 0.0, 0.0],
            MixtureSchedule::from_absorbing(&Absorbing::new(v, 1, &betas).unwrap()).unwrap(),
        ),
        (
            vec![0.25; 4],
            MixtureSchedule::from_uniform(&Uniform::new(v, &betas).unwrap()).unwrap(),
        ),
        (
            vec![0.1, 0.2, 0.3, 0.4],
            MixtureSchedule::from_mixture(&Mixture::new(vec![0.1, 0.2, 0.3, 0.4], &betas).unwrap())
                .unwrap(),
        ),
    ];
    for (pi, sch) in &cases {
        assert_eq!(sch.noise(), &pi[..]);
        for (x, y) in sch.alpha_bar().iter().zip(&a) {
            assert!((x - y).abs() < 1e-15);
        }
        let dense = dense_mixture(&keep, pi);
        let mut routed = vec![0.0; v];
        let mut checked = 0;
        for t in 1..=keep.len() {
            let qbar_t = dense.cumulative_matrix(t).unwrap();
            for s in 0..t {
                let qbar_s = dense.cumulative_matrix(s).unwrap();
                let qst = between(&dense, s, t);
                for x0 in 0..v {
                    for xt in 0..v {
                        let lik = qbar_t[[x0, xt]];
                        let r = sch.routed_law(s, t, xt as u32, x0 as u32, &mut routed);
                        if lik == 0.0 {
                            assert!(matches!(r, Err(Error::ZeroProbability { .. })));
                            continue;
                        }
                        r.unwrap();
                        // Bayes: q(x_s = k | x_t, x_0) ∝ Q̄_s(x0, k) Q_{s→t}(k, x_t)
                        let mut post: Vec<f64> =
                            (0..v).map(|k| qbar_s[[x0, k]] * qst[[k, xt]]).collect();
                        let z: f64 = post.iter().sum();
                        post.iter_mut().for_each(|p| *p /= z);
                        for k in 0..v {
                            assert!(
                                (post[k] - routed[k]).abs() < 1e-13,
                                "π={pi:?} s={s} t={t} x0={x0} xt={xt}: {post:?} vs {routed:?}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100);
    }
}

#[test]
fn routing_probabilities_match_the_paper_for_one_step() {
    let betas = [0.8, 0.6, 0.3];
    let a = alpha_bar_of(&betas);
    let pi = vec![0.1, 0.2, 0.3, 0.4];
    let sch = MixtureSchedule::new(a.clone(), pi.clone()).unwrap();
    for t in 1..=3 {
        for y in 0..4u32 {
            let r = sch.routing(t - 1, t, y).unwrap();
            let p = pi[y as usize];
            let l1 = 1.0 - (1.0 - betas[t - 1]) * (1.0 - a[t - 1]) * p / (a[t] + (1.0 - a[t]) * p);
            let l2 = (a[t - 1] - a[t]) / (1.0 - a[t]);
            assert!((r.stay - l1).abs() < 1e-15 && (r.denoise - l2).abs() < 1e-15);
            assert!((r.carry - betas[t - 1]).abs() < 1e-15);
        }
    }
}

// ---------------------------------------------------------------- sampler exactness (χ²)

/// Absorbing diffusion, T = L, linear ᾱ: top-k routing leaves `K_s = s` masks, i.e. exactly
/// one token is denoised per step; with a random order and `x̂_0` sampled from the exact
/// conditional this is an exact sampler of the (correlated) data law.
#[test]
fn one_token_per_step_random_order_is_exact_chi2() {
    let (kernel, sch) = absorbing_setup(&linear_alpha_bar(3), 4, 1);
    let data = correlated_data();
    let den = oracle(kernel, &data);
    let streams: Vec<u64> = (0..20_000).collect();
    let opts = RdmOptions {
        seed: 2023,
        x0: X0Estimate::Sample { temperature: 1.0 },
        routing: Routing::TopK {
            scorer: Scorer::Random,
            renoise: Renoise::Never,
        },
    };
    let out = sample_rdm(&sch, &den, &streams, 3, &opts).unwrap();
    assert_eq!(out.nfe, 3);
    let (stat, crit) = chi2(&counts_of(&out.tokens, 4), &data_law(&data, 4, 3), 1e-4);
    eprintln!("χ² = {stat:.2}, critical value (α = 1e-4) {crit:.2}");
    assert!(stat < crit, "χ² = {stat} ≥ {crit}");
}

/// Stochastic routing on absorbing diffusion is the factorised D3PM reverse: exact for a
/// product data law.
#[test]
fn stochastic_routing_is_exact_for_product_data_chi2() {
    let (kernel, sch) = absorbing_setup(&linear_alpha_bar(4), 4, 1);
    let m = [
        [(0u32, 0.5), (2, 0.3), (3, 0.2)],
        [(0, 0.1), (2, 0.6), (3, 0.3)],
        [(0, 0.25), (2, 0.25), (3, 0.5)],
    ];
    let mut data = Vec::new();
    for &(a, pa) in &m[0] {
        for &(b, pb) in &m[1] {
            for &(c, pc) in &m[2] {
                data.push((vec![a, b, c], pa * pb * pc));
            }
        }
    }
    let den = oracle(kernel, &data);
    let streams: Vec<u64> = (0..20_000).collect();
    let opts = RdmOptions {
        seed: 7,
        x0: X0Estimate::Sample { temperature: 1.0 },
        routing: Routing::Stochastic,
    };
    let out = sample_rdm(&sch, &den, &streams, 3, &opts).unwrap();
    let (stat, crit) = chi2(&counts_of(&out.tokens, 4), &data_law(&data, 4, 3), 1e-4);
    eprintln!("χ² = {stat:.2}, critical value (α = 1e-4) {crit:.2}");
    assert!(stat < crit, "χ² = {stat} ≥ {crit}");
}

/// Multinomial (uniform) diffusion, `L = 1`, `T = 2`, stochastic routing: RDM tracks its
/// own routing bit `b_t` while the exact denoiser `p(x_0 | x_t)` does not know it, so the
/// sampler is *not* exact for multinomial noise (unlike absorbing noise, where
/// `b_t = [x_t ≠ mask]`). With `ᾱ = (1, a, 0)` the output law is, in closed form,
///
/// ```text
/// P(x_0) = a·d(x_0) + (1 − a)·Σ_{x_1} π(x_1) d(x_0) q(x_1 | x_0) / q_1(x_1),
/// q(x_1 | x_0) = a δ + (1 − a) π(x_1),   q_1(x_1) = a d(x_1) + (1 − a) π(x_1):
/// ```
///
/// step 2 denoises to `x̂_0 ~ d` with probability `λ⁽²⁾ = a` (then step 1 keeps it), else
/// leaves a fresh uniform `x_1` with `b_1 = 0`, and step 1 draws `x̂_0 ~ p(x_0 | x_1)` as if
/// `x_1` were a typical noisy token. The sampler matches this law (χ² at α = 1e-4) and is
/// rejected against the data law (measured bias, fixed seed).
#[test]
fn stochastic_routing_multinomial_single_token_measured_bias_chi2() {
    let a = 0.5;
    let kernel = Uniform::new(5, &[1.0 - a, 1.0]).unwrap();
    let sch = MixtureSchedule::from_uniform(&kernel).unwrap();
    let d = [0.4, 0.05, 0.25, 0.1, 0.2];
    let pi = 0.2;
    let q1: Vec<f64> = d.iter().map(|&x| a * x + (1.0 - a) * pi).collect();
    let law: Vec<f64> = (0..5)
        .map(|x0| {
            let mix: f64 = (0..5)
                .map(|x1| {
                    let lik = a * (x1 == x0) as u8 as f64 + (1.0 - a) * pi;
                    pi * d[x0] * lik / q1[x1]
                })
                .sum();
            a * d[x0] + (1.0 - a) * mix
        })
        .collect();
    assert!((law.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    let tv: f64 = 0.5 * law.iter().zip(&d).map(|(x, y)| (x - y).abs()).sum::<f64>();
    let data: Vec<(Vec<u32>, f64)> = d
        .iter()
        .enumerate()
        .map(|(x, &q)| (vec![x as u32], q))
        .collect();
    let den = oracle(kernel, &data);
    let streams: Vec<u64> = (0..20_000).collect();
    let opts = RdmOptions {
        seed: 77,
        x0: X0Estimate::Sample { temperature: 1.0 },
        routing: Routing::Stochastic,
    };
    let out = sample_rdm(&sch, &den, &streams, 1, &opts).unwrap();
    let counts = counts_of(&out.tokens, 5);
    let (stat, crit) = chi2(&counts, &law, 1e-4);
    eprintln!(
        "multinomial L = 1 vs closed-form law: χ² = {stat:.2} (critical {crit:.2}); TV(law, data) = {tv:.4}"
    );
    assert!(stat < crit, "χ² = {stat} ≥ {crit}");
    let (stat, crit) = chi2(&counts, &d, 1e-4);
    assert!(stat > crit, "bias not detected: χ² = {stat} < {crit}");
}

#[test]
fn deterministic_confidence_topk_with_argmax_is_deterministic_and_in_support() {
    let (kernel, sch) = absorbing_setup(&linear_alpha_bar(3), 4, 1);
    let data = correlated_data();
    let den = oracle(kernel, &data);
    let law = data_law(&data, 4, 3);
    for renoise in [Renoise::Unconditional, Renoise::Conditional, Renoise::Never] {
        let opts = RdmOptions {
            seed: 1,
            x0: X0Estimate::Argmax,
            routing: Routing::TopK {
                scorer: Scorer::Confidence { gumbel_scale: 0.0 },
                renoise,
            },
        };
        let out = sample_rdm(&sch, &den, &[0, 1, 2, 3], 3, &opts).unwrap();
        for row in out.tokens.rows() {
            assert_eq!(row, out.tokens.row(0));
            assert!(law[index_of(row.as_slice().unwrap(), 4)] > 0.0);
        }
    }
    // Gumbel-perturbed confidence and tempered sampling still end in the support.
    let opts = RdmOptions {
        seed: 3,
        x0: X0Estimate::Sample { temperature: 0.7 },
        routing: Routing::TopK {
            scorer: Scorer::Confidence { gumbel_scale: 2.0 },
            renoise: Renoise::Unconditional,
        },
    };
    let streams: Vec<u64> = (0..200).collect();
    let out = sample_rdm(&sch, &den, &streams, 3, &opts).unwrap();
    for row in out.tokens.rows() {
        assert!(law[index_of(row.as_slice().unwrap(), 4)] > 0.0, "{row}");
    }
}

#[test]
fn cosine_schedule_topk_leaves_no_mask() {
    let (kernel, sch) = absorbing_setup(&cosine_alpha_bar(4), 4, 1);
    let den = oracle(kernel, &correlated_data());
    let opts = RdmOptions {
        seed: 9,
        x0: X0Estimate::Sample { temperature: 1.0 },
        routing: Routing::TopK {
            scorer: Scorer::Random,
            renoise: Renoise::Never,
        },
    };
    let out = sample_rdm(&sch, &den, &(0..100).collect::<Vec<_>>(), 3, &opts).unwrap();
    assert!(out.tokens.iter().all(|&x| x != 1));
}

#[test]
fn batch_permutation_invariance_multinomial() {
    let keep = [0.9, 0.6, 0.3, 0.0];
    let betas: Vec<f64> = keep.iter().map(|k| 1.0 - k).collect();
    let kernel = Uniform::new(4, &betas).unwrap();
    let sch = MixtureSchedule::from_uniform(&kernel).unwrap();
    let data: Vec<(Vec<u32>, f64)> = (0..16u32)
        .map(|i| {
            let s = vec![i / 4, i % 4];
            let w = 1.0 + (s[0] == s[1]) as u8 as f64 * 4.0;
            (s, w / 32.0)
        })
        .collect();
    let den = oracle(kernel, &data);
    for routing in [
        Routing::Stochastic,
        Routing::TopK {
            scorer: Scorer::Confidence { gumbel_scale: 1.0 },
            renoise: Renoise::Conditional,
        },
    ] {
        let opts = RdmOptions {
            seed: 5,
            x0: X0Estimate::Sample { temperature: 1.0 },
            routing,
        };
        let a = sample_rdm(&sch, &den, &[7, 8, 9, 10], 2, &opts).unwrap();
        let b = sample_rdm(&sch, &den, &[10, 8, 7, 9], 2, &opts).unwrap();
        let perm = [3usize, 1, 0, 2];
        for (row, &p) in perm.iter().enumerate() {
            assert_eq!(b.tokens.row(row), a.tokens.row(p));
        }
        let single = sample_rdm(&sch, &den, &[9], 2, &opts).unwrap();
        assert_eq!(single.tokens.row(0), a.tokens.row(2));
        assert_eq!(a.nfe, 4);
    }
}

// ---------------------------------------------------------------- loss

fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 11) as f64) / (1u64 << 53) as f64
}

#[test]
fn loss_value_by_hand() {
    let sch = MixtureSchedule::absorbing(linear_alpha_bar(4), 2, 1).unwrap();
    let logits = array![[[0.0f64, 0.0], [3f64.ln(), 0.0]]];
    let x0 = array![[0u32, 1]];
    let xt = array![[1u32, 0]];
    let steps = Array1::from(vec![2usize]);
    let l = rdm_loss(
        logits.view(),
        x0.view(),
        xt.view(),
        steps.view(),
        &sch,
        RdmWeighting::Constant,
        None,
    )
    .unwrap();
    assert!((l - (2f64.ln() + 4f64.ln()) / 2.0).abs() < 1e-15);
    let l = rdm_loss(
        logits.view(),
        x0.view(),
        xt.view(),
        steps.view(),
        &sch,
        RdmWeighting::Elbo,
        None,
    )
    .unwrap();
    assert!((l - 0.5 * (2f64.ln() + 4f64.ln()) / 2.0).abs() < 1e-15);
    // positions with x_t = x_0 do not count
    let xt2 = array![[0u32, 0]];
    let l = rdm_loss(
        logits.view(),
        x0.view(),
        xt2.view(),
        steps.view(),
        &sch,
        RdmWeighting::Constant,
        None,
    )
    .unwrap();
    assert!((l - 4f64.ln() / 2.0).abs() < 1e-15);
}

#[test]
fn loss_gradient_matches_finite_differences() {
    let (b, l, v, t_max) = (3, 4, 5, 6);
    let sch = MixtureSchedule::uniform(linear_alpha_bar(t_max), v).unwrap();
    let mut st = 17u64;
    let logits = Array3::from_shape_fn((b, l, v), |_| 4.0 * lcg(&mut st) - 2.0);
    let x0 = Array2::from_shape_fn((b, l), |_| (lcg(&mut st) * v as f64) as u32);
    let xt = Array2::from_shape_fn((b, l), |(i, j)| {
        if (i + j) % 3 == 0 {
            x0[[i, j]]
        } else {
            (x0[[i, j]] + 1 + (lcg(&mut st) * 3.0) as u32) % v as u32
        }
    });
    let steps = Array1::from(vec![1usize, 3, 6]);
    for w in [
        RdmWeighting::Elbo,
        RdmWeighting::Reciprocal,
        RdmWeighting::Linear,
        RdmWeighting::Constant,
    ] {
        let mut grad = Array3::<f64>::zeros((b, l, v));
        let f0 = rdm_loss(
            logits.view(),
            x0.view(),
            xt.view(),
            steps.view(),
            &sch,
            w,
            Some(grad.view_mut()),
        )
        .unwrap();
        assert!(f0 > 0.0);
        let h = 1e-5;
        let mut max_err: f64 = 0.0;
        for idx in 0..b * l * v {
            let (i, j, k) = (idx / (l * v), (idx / v) % l, idx % v);
            let mut lp = logits.clone();
            lp[[i, j, k]] += h;
            let mut lm = logits.clone();
            lm[[i, j, k]] -= h;
            let fp =
                rdm_loss(lp.view(), x0.view(), xt.view(), steps.view(), &sch, w, None).unwrap();
            let fm =
                rdm_loss(lm.view(), x0.view(), xt.view(), steps.view(), &sch, w, None).unwrap();
            let fd = (fp - fm) / (2.0 * h);
            max_err = max_err.max((fd - grad[[i, j, k]]).abs());
        }
        assert!(max_err < 1e-9, "{w:?}: max |fd − grad| = {max_err:e}");
        // f32 logits give the same value to f32 precision
        let l32 = logits.mapv(|x| x as f32);
        let mut g32 = Array3::<f32>::zeros((b, l, v));
        let f32v = rdm_loss(
            l32.view(),
            x0.view(),
            xt.view(),
            steps.view(),
            &sch,
            w,
            Some(g32.view_mut()),
        )
        .unwrap();
        assert!((f32v - f0).abs() < 1e-6);
        assert!(
            g32.iter()
                .zip(grad.iter())
                .all(|(a, b)| (*a as f64 - b).abs() < 1e-6)
        );
    }
}

#[test]
fn loss_bad_inputs() {
    let sch = MixtureSchedule::absorbing(linear_alpha_bar(4), 3, 0).unwrap();
    let logits = Array3::<f64>::zeros((2, 2, 3));
    let x0 = array![[1u32, 2], [2, 1]];
    let xt = array![[0u32, 2], [0, 0]];
    let steps = Array1::from(vec![1usize, 4]);
    let call = |lg: &Array3<f64>, x0: &Array2<u32>, xt: &Array2<u32>, st: &Array1<usize>| {
        rdm_loss(
            lg.view(),
            x0.view(),
            xt.view(),
            st.view(),
            &sch,
            RdmWeighting::Linear,
            None,
        )
    };
    assert!(call(&logits, &x0, &xt, &steps).is_ok());
    assert!(matches!(
        call(&Array3::zeros((2, 2, 4)), &x0, &xt, &steps),
        Err(Error::Shape { arg: "logits", .. })
    ));
    assert!(matches!(
        call(&Array3::zeros((0, 2, 3)), &x0, &xt, &steps),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        call(&logits, &array![[1u32, 2]], &xt, &steps),
        Err(Error::Shape { arg: "x0", .. })
    ));
    assert!(matches!(
        call(&logits, &x0, &array![[1u32], [2]], &steps),
        Err(Error::Shape { arg: "xt", .. })
    ));
    assert!(matches!(
        call(&logits, &x0, &xt, &Array1::from(vec![1usize])),
        Err(Error::Shape { arg: "steps", .. })
    ));
    assert!(matches!(
        call(&logits, &array![[1u32, 3], [2, 1]], &xt, &steps),
        Err(Error::TokenOutOfRange { arg: "x0", .. })
    ));
    assert!(matches!(
        call(&logits, &x0, &array![[1u32, 2], [9, 1]], &steps),
        Err(Error::TokenOutOfRange { arg: "xt", .. })
    ));
    assert!(matches!(
        call(&logits, &x0, &xt, &Array1::from(vec![0usize, 1])),
        Err(Error::InvalidArgument { arg: "steps", .. })
    ));
    assert!(matches!(
        call(&logits, &x0, &xt, &Array1::from(vec![5usize, 1])),
        Err(Error::InvalidArgument { arg: "steps", .. })
    ));
    let mut bad = logits.clone();
    bad[[1, 1, 2]] = f64::NAN;
    assert!(matches!(
        call(&bad, &x0, &xt, &steps),
        Err(Error::NonFinite {
            arg: "logits",
            index: 11,
            ..
        })
    ));
    let mut bad = logits.clone();
    bad[[0, 0, 1]] = f64::NEG_INFINITY; // target of a counted position
    assert!(matches!(
        call(&bad, &x0, &xt, &steps),
        Err(Error::ZeroProbability { .. })
    ));
    let mut ok = logits.clone();
    ok[[0, 0, 2]] = f64::NEG_INFINITY; // a non-target −∞ is fine
    assert!(call(&ok, &x0, &xt, &steps).unwrap().is_finite());
    let mut g = Array3::<f64>::zeros((2, 2, 2));
    let r = rdm_loss(
        logits.view(),
        x0.view(),
        xt.view(),
        steps.view(),
        &sch,
        RdmWeighting::Elbo,
        Some(g.view_mut()),
    );
    assert!(matches!(r, Err(Error::Shape { arg: "grad", .. })));
}

// ---------------------------------------------------------------- sampler / schedule bad input

struct Const {
    v: usize,
    value: f32,
}

impl Denoiser for Const {
    fn vocab_size(&self) -> usize {
        self.v
    }
    fn logits(
        &self,
        _tokens: ArrayView2<'_, u32>,
        _times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        out.fill(self.value);
        Ok(())
    }
}

#[test]
fn sampler_and_schedule_bad_inputs() {
    let sch = MixtureSchedule::absorbing(linear_alpha_bar(3), 3, 1).unwrap();
    let ok = Const { v: 3, value: 0.0 };
    let base = RdmOptions {
        seed: 0,
        x0: X0Estimate::Argmax,
        routing: Routing::Stochastic,
    };
    let out = sample_rdm(&sch, &ok, &[0], 4, &base).unwrap();
    assert!(out.tokens.iter().all(|&x| x != 1));
    let e = |r: discrete_diffusion::Result<_>| r.expect_err("expected an error");
    assert!(matches!(
        e(sample_rdm(&sch, &ok, &[], 4, &base)),
        Error::InvalidArgument { arg: "streams", .. }
    ));
    assert!(matches!(
        e(sample_rdm(&sch, &ok, &[0], 0, &base)),
        Error::InvalidArgument { arg: "length", .. }
    ));
    assert!(matches!(
        e(sample_rdm(
            &sch,
            &Const { v: 4, value: 0.0 },
            &[0],
            2,
            &base
        )),
        Error::InvalidArgument {
            arg: "denoiser",
            ..
        }
    ));
    for temperature in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let o = RdmOptions {
            x0: X0Estimate::Sample { temperature },
            ..base
        };
        assert!(matches!(
            e(sample_rdm(&sch, &ok, &[0], 2, &o)),
            Error::InvalidArgument {
                arg: "temperature",
                ..
            }
        ));
    }
    for gumbel_scale in [-0.5, f64::NAN] {
        let o = RdmOptions {
            routing: Routing::TopK {
                scorer: Scorer::Confidence { gumbel_scale },
                renoise: Renoise::Never,
            },
            ..base
        };
        assert!(matches!(
            e(sample_rdm(&sch, &ok, &[0], 2, &o)),
            Error::InvalidArgument {
                arg: "gumbel_scale",
                ..
            }
        ));
    }
    assert!(matches!(
        e(sample_rdm(
            &sch,
            &Const {
                v: 3,
                value: f32::NAN
            },
            &[0],
            2,
            &base
        )),
        Error::NonFinite { .. }
    ));
    // all mass on the mask token
    struct MaskOnly;
    impl Denoiser for MaskOnly {
        fn vocab_size(&self) -> usize {
            3
        }
        fn logits(
            &self,
            _: ArrayView2<'_, u32>,
            _: ArrayView1<'_, f64>,
            mut out: ArrayViewMut3<'_, f32>,
        ) -> discrete_diffusion::Result<()> {
            out.fill(f32::NEG_INFINITY);
            out.slice_mut(ndarray::s![.., .., 1]).fill(0.0);
            Ok(())
        }
    }
    assert!(matches!(
        e(sample_rdm(&sch, &MaskOnly, &[0], 2, &base)),
        Error::ZeroProbability { .. }
    ));

    // schedule and routing arguments
    let mut out = [0.0; 3];
    assert!(sch.routing(3, 3, 0).is_err());
    assert!(sch.routing(0, 4, 0).is_err());
    assert!(sch.routing(0, 0, 0).is_err());
    assert!(sch.routing(0, 1, 3).is_err());
    assert!(sch.routed_law(0, 1, 1, 3, &mut out).is_err());
    assert!(sch.routed_law(0, 1, 1, 0, &mut [0.0; 2]).is_err());
    assert!(matches!(
        sch.routed_law(0, 1, 2, 0, &mut out),
        Err(Error::ZeroProbability { .. })
    ));
    assert!(MixtureSchedule::absorbing(linear_alpha_bar(3), 1, 0).is_err());
    assert!(MixtureSchedule::uniform(vec![1.0, 1.2], 3).is_err());
    assert_eq!(sch.mask_token(), Some(1));
    assert_eq!(
        MixtureSchedule::uniform(linear_alpha_bar(2), 3)
            .unwrap()
            .mask_token(),
        None
    );
}

/// Power check of the χ² test above: with the same N, routing that decodes several tokens at
/// once from their marginals (stochastic routing on correlated data) is rejected.
#[test]
fn chi2_rejects_parallel_decoding_on_correlated_data() {
    let (kernel, sch) = absorbing_setup(&linear_alpha_bar(3), 4, 1);
    let data = correlated_data();
    let den = oracle(kernel, &data);
    let streams: Vec<u64> = (0..20_000).collect();
    let opts = RdmOptions {
        seed: 2023,
        x0: X0Estimate::Sample { temperature: 1.0 },
        routing: Routing::Stochastic,
    };
    let out = sample_rdm(&sch, &den, &streams, 3, &opts).unwrap();
    let (stat, crit) = chi2(&counts_of(&out.tokens, 4), &data_law(&data, 4, 3), 1e-4);
    eprintln!("parallel decoding: χ² = {stat}, critical value {crit}");
    assert!(stat > crit, "χ² = {stat} < {crit}: the test has no power");
}
