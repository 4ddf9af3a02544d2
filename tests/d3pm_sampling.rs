//! D3PM ancestral sampling against exact oracles (DESIGN §4).
//!
//! Kernels are the crate's: `Absorbing` (mask not the last index), `Uniform`, and
//! `kernel::dense::Dense` for a random dense kernel whose last step mixes to `π`. The exact
//! denoiser is the crate's `OracleDenoiser` around an `EnumerationOracle` (product and
//! correlated laws) or a `MarkovChainOracle` (i.i.d. law), with the same kernel as the
//! noise process, so the sampler, the oracle and the exact law propagation all read
//! `q(x_t | x_0)` from one object.

use discrete_diffusion::Error;
use discrete_diffusion::kernel::absorbing::Absorbing;
use discrete_diffusion::kernel::dense::Dense;
use discrete_diffusion::kernel::uniform::Uniform;
use discrete_diffusion::kernel::{AtStep, ForwardKernel};
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::{ExactPosterior, OracleDenoiser};
use discrete_diffusion::sample::d3pm::{
    D3pmOptions, ReverseForm, Start, reverse_probs, sample_d3pm,
};
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3, array};
use statrs::distribution::{ChiSquared, ContinuousCDF};

// ---------------------------------------------------------------- kernels

/// Absorbing kernel with linear `ᾱ_t = 1 − t/T` (`β_t = 1/(T − t + 1)`, `β_T = 1`).
fn absorbing(steps: usize, v: usize, mask: u32) -> Absorbing {
    let betas: Vec<f64> = (1..=steps).map(|t| 1.0 / (steps - t + 1) as f64).collect();
    Absorbing::new(v, mask, &betas).unwrap()
}

/// Random positive row-stochastic steps, the last one fully mixing to `π`.
fn random_dense(v: usize, steps: usize, seed: u64) -> Dense {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / (1u64 << 53) as f64
    };
    let pi: Vec<f64> = {
        let w: Vec<f64> = (0..v).map(|_| 0.5 + next()).collect();
        let s: f64 = w.iter().sum();
        w.iter().map(|x| x / s).collect()
    };
    let mut q = Vec::new();
    for t in 0..steps {
        if t + 1 == steps {
            q.push(Array2::from_shape_fn((v, v), |(_, j)| pi[j]));
        } else {
            let mut m =
                Array2::from_shape_fn((v, v), |(i, j)| next() + if i == j { 2.0 } else { 0.0 });
            for mut row in m.rows_mut() {
                let s = row.sum();
                row /= s;
            }
            q.push(m);
        }
    }
    Dense::new(q, &pi).unwrap()
}

// ---------------------------------------------------------------- data and oracles

/// A product law over `support^L` with the given per-position marginals.
fn product_data(marginals: &[Vec<(u32, f64)>]) -> Vec<(Vec<u32>, f64)> {
    let mut out = vec![(vec![], 1.0)];
    for m in marginals {
        let mut next = Vec::new();
        for (seq, p) in &out {
            for &(x, q) in m {
                let mut s = seq.clone();
                s.push(x);
                next.push((s, p * q));
            }
        }
        out = next;
    }
    out
}

/// Absorbing (mask = 1) data over tokens {0, 2, 3}; product law, distinct marginals.
fn product_absorbing_data() -> Vec<(Vec<u32>, f64)> {
    product_data(&[
        vec![(0, 0.5), (2, 0.3), (3, 0.2)],
        vec![(0, 0.1), (2, 0.6), (3, 0.3)],
        vec![(0, 0.25), (2, 0.25), (3, 0.5)],
    ])
}

fn product_full_data() -> Vec<(Vec<u32>, f64)> {
    product_data(&[
        vec![(0, 0.5), (1, 0.3), (2, 0.2)],
        vec![(0, 0.1), (1, 0.6), (2, 0.3)],
        vec![(0, 0.25), (1, 0.25), (2, 0.5)],
    ])
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

/// The data law as a table over `V^L` (lexicographic, the oracle's indexing).
fn law_of<O: ExactPosterior>(o: &O) -> Vec<f64> {
    EnumerationOracle::from_oracle(o).unwrap().probs().to_vec()
}

// ---------------------------------------------------------------- exact law propagation

/// The exact law of the sampler's output over `V^L`: propagate the law of `x_T` through the
/// factorised reverse kernel (the oracle's f64 posterior, `reverse_probs` per position).
fn propagate<O: ExactPosterior, K: ForwardKernel>(
    den: &OracleDenoiser<O, K>,
    form: ReverseForm,
) -> Vec<f64> {
    let (kernel, o) = (den.process(), den.oracle());
    let (v, l, steps) = (kernel.vocab_size(), o.seq_len(), kernel.num_steps());
    let table = EnumerationOracle::from_oracle(o).unwrap();
    let seqs: Vec<Vec<u32>> = (0..table.probs().len())
        .map(|i| table.sequence(i).unwrap())
        .collect();
    let mut pi = vec![0.0; v];
    kernel.stationary(&mut pi).unwrap();
    let mut law: Vec<f64> = seqs
        .iter()
        .map(|s| s.iter().map(|&x| pi[x as usize]).product())
        .collect();
    let mut r = vec![vec![0.0; v]; l];
    let mut post = Array2::<f64>::zeros((l, v));
    for t in (1..=steps).rev() {
        let channel = AtStep::new(kernel, t).unwrap();
        let mut next = vec![0.0; seqs.len()];
        for (x, &w) in seqs.iter().zip(&law) {
            if w == 0.0 {
                continue;
            }
            o.posterior_x0(x, &channel, post.view_mut()).unwrap();
            for i in 0..l {
                let p = post.row(i).to_vec();
                reverse_probs(kernel, t, x[i], &p, form, &mut r[i]).unwrap();
            }
            for (y, n) in seqs.iter().zip(next.iter_mut()) {
                let mut p = w;
                for i in 0..l {
                    p *= r[i][y[i] as usize];
                }
                *n += p;
            }
        }
        law = next;
    }
    law
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------- tests: exact laws

#[test]
fn law_is_exact_for_product_data_absorbing_both_forms() {
    let den = oracle(absorbing(5, 4, 1), &product_absorbing_data());
    let target = law_of(den.oracle());
    for form in [ReverseForm::Joint, ReverseForm::PosteriorMixture] {
        let law = propagate(&den, form);
        let d = max_abs_diff(&law, &target);
        assert!(d < 1e-12, "{form:?}: max |law − data| = {d:e}");
    }
}

#[test]
fn law_is_exact_for_product_data_mixture_form_general_kernels() {
    let data = product_full_data();
    let uniform = oracle(Uniform::new(3, &[0.1, 0.3, 0.5, 1.0]).unwrap(), &data);
    let dense = oracle(random_dense(3, 4, 7), &data);
    let target = law_of(uniform.oracle());
    let d = max_abs_diff(&propagate(&uniform, ReverseForm::PosteriorMixture), &target);
    assert!(d < 1e-12, "uniform: max |law − data| = {d:e}");
    let d = max_abs_diff(&propagate(&dense, ReverseForm::PosteriorMixture), &target);
    assert!(d < 1e-12, "dense: max |law − data| = {d:e}");
}

/// The joint form counts `q(x_t | x_0)` twice when fed the true posterior: it is biased for
/// non-absorbing kernels even with `L = 1`, while the mixture form is exact.
#[test]
fn joint_form_with_true_posterior_is_biased_for_uniform_kernel() {
    let data = vec![(vec![0], 0.7), (vec![1], 0.2), (vec![2], 0.1)];
    let den = oracle(Uniform::new(3, &[0.2, 0.4, 1.0]).unwrap(), &data);
    let target = law_of(den.oracle());
    let exact = propagate(&den, ReverseForm::PosteriorMixture);
    assert!(max_abs_diff(&exact, &target) < 1e-12);
    let joint = propagate(&den, ReverseForm::Joint);
    let d = max_abs_diff(&joint, &target);
    assert!(d > 1e-3, "joint form unexpectedly exact (d = {d:e})");
}

/// For correlated data the factorised reverse is biased; the bias falls as T grows.
#[test]
fn factorised_reverse_bias_on_correlated_data_shrinks_with_steps() {
    // XOR-like law on two positions over {0, 2} (mask = 1).
    let data = vec![
        (vec![0, 2], 0.45),
        (vec![2, 0], 0.45),
        (vec![0, 0], 0.05),
        (vec![2, 2], 0.05),
    ];
    let mut tv = Vec::new();
    for t in [1usize, 4, 16, 64] {
        let den = oracle(absorbing(t, 3, 1), &data);
        let target = law_of(den.oracle());
        let law = propagate(&den, ReverseForm::PosteriorMixture);
        let d: f64 = 0.5
            * law
                .iter()
                .zip(&target)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>();
        tv.push(d);
    }
    eprintln!("TV(sampler, data) for T = 1, 4, 16, 64: {tv:?}");
    // T = 1 decodes both positions independently from their marginals: TV = 0.4 exactly.
    assert!((tv[0] - 0.4).abs() < 1e-12);
    for w in tv.windows(2) {
        assert!(w[1] < w[0]);
    }
    assert!(tv[3] < 0.02);
    // Measured rate: TV = 0.4 / T. Under the linear schedule the two unmasking times are
    // independent and uniform on 1..=T; they coincide with probability 1/T, and only then
    // are the positions drawn independently (TV 0.4); otherwise the second is drawn from
    // its exact conditional.
    for (&d, t) in tv.iter().zip([1.0, 4.0, 16.0, 64.0]) {
        assert!((d - 0.4 / t).abs() < 1e-12, "T = {t}: TV {d} vs 0.4/T");
    }
}

// ---------------------------------------------------------------- tests: sampler (χ²)

/// Pearson's χ² statistic of `counts` against `probs` and the `1 − alpha` quantile of
/// χ²(cells − 1) (statrs); cells of probability 0 must be empty.
fn chi2_test(counts: &[u64], probs: &[f64], alpha: f64) -> (f64, f64) {
    let n: u64 = counts.iter().sum();
    let mut stat = 0.0;
    let mut cells = 0;
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

/// Counts of the sampler's outputs over `V^L`, `n` sequences from `Start::Stationary`.
fn sample_counts<O: ExactPosterior, K: ForwardKernel>(
    den: &OracleDenoiser<O, K>,
    form: ReverseForm,
    n: usize,
    seed: u64,
) -> Vec<u64> {
    let kernel = den.process();
    let table = EnumerationOracle::from_oracle(den.oracle()).unwrap();
    let streams: Vec<u64> = (0..n as u64).collect();
    let opts = D3pmOptions {
        seed,
        start: Start::Stationary,
        form,
    };
    let out = sample_d3pm(kernel, den, &streams, den.seq_len(), &opts).unwrap();
    assert_eq!(out.nfe, kernel.num_steps());
    let mut counts = vec![0u64; table.probs().len()];
    for row in out.tokens.rows() {
        counts[table.index(row.as_slice().unwrap()).unwrap()] += 1;
    }
    counts
}

/// The sampler with the exact oracle reproduces the data law (χ² at α = 1e-4, fixed seed).
fn assert_chi2<O: ExactPosterior, K: ForwardKernel>(
    what: &str,
    den: &OracleDenoiser<O, K>,
    form: ReverseForm,
    seed: u64,
) {
    let counts = sample_counts(den, form, 20_000, seed);
    let (stat, crit) = chi2_test(&counts, &law_of(den.oracle()), 1e-4);
    eprintln!("{what}: χ² = {stat:.2}, critical value (α = 1e-4) {crit:.2}");
    assert!(stat < crit, "{what}: χ² = {stat} ≥ {crit}");
}

#[test]
fn chi2_absorbing_joint_form_reproduces_product_data() {
    let den = oracle(absorbing(4, 4, 1), &product_absorbing_data());
    assert_chi2(
        "absorbing, joint, product data",
        &den,
        ReverseForm::Joint,
        11,
    );
}

#[test]
fn chi2_dense_kernel_mixture_form_reproduces_product_data() {
    let den = oracle(random_dense(3, 4, 3), &product_full_data());
    assert_chi2(
        "random dense, mixture, product data",
        &den,
        ReverseForm::PosteriorMixture,
        5,
    );
}

/// `L = 1`: any data law is reproduced (here over 6 states, uniform kernel).
#[test]
fn chi2_single_token_uniform_kernel_reproduces_data() {
    let p = [0.3, 0.05, 0.2, 0.15, 0.25, 0.05];
    let data: Vec<(Vec<u32>, f64)> = p
        .iter()
        .enumerate()
        .map(|(x, &q)| (vec![x as u32], q))
        .collect();
    let den = oracle(Uniform::new(6, &[0.1, 0.2, 0.4, 1.0]).unwrap(), &data);
    assert_chi2(
        "uniform, mixture, L = 1",
        &den,
        ReverseForm::PosteriorMixture,
        21,
    );
}

/// Independent positions from the crate's Markov-chain oracle (order 0) under absorbing
/// noise with the mask at index 0.
#[test]
fn chi2_markov_oracle_iid_data_absorbing() {
    let chain = MarkovChainOracle::iid(3, 3, vec![0.5, 0.3, 0.2]).unwrap();
    let chain = chain.embed(&[1, 2, 3], 4).unwrap(); // data on {1, 2, 3}, mask = 0
    let den = OracleDenoiser::new(chain, absorbing(6, 4, 0)).unwrap();
    let target = law_of(den.oracle());
    for form in [ReverseForm::Joint, ReverseForm::PosteriorMixture] {
        assert!(max_abs_diff(&propagate(&den, form), &target) < 1e-12);
    }
    assert_chi2(
        "absorbing, joint, Markov i.i.d.",
        &den,
        ReverseForm::Joint,
        31,
    );
}

// ---------------------------------------------------------------- reproducibility

#[test]
fn batch_permutation_invariance_and_subsets() {
    let den = oracle(random_dense(3, 5, 9), &product_full_data());
    let kernel = den.process();
    let opts = D3pmOptions {
        seed: 42,
        ..Default::default()
    };
    let a = sample_d3pm(kernel, &den, &[10, 11, 12, 13, 14, 15], 3, &opts).unwrap();
    let perm = [3usize, 0, 5, 1, 4, 2];
    let streams: Vec<u64> = perm.iter().map(|&p| 10 + p as u64).collect();
    let b = sample_d3pm(kernel, &den, &streams, 3, &opts).unwrap();
    for (row, &p) in perm.iter().enumerate() {
        assert_eq!(b.tokens.row(row), a.tokens.row(p));
    }
    let single = sample_d3pm(kernel, &den, &[13], 3, &opts).unwrap();
    assert_eq!(single.tokens.row(0), a.tokens.row(3));
    // another seed changes the result
    let c = sample_d3pm(
        kernel,
        &den,
        &[10, 11, 12, 13, 14, 15],
        3,
        &D3pmOptions { seed: 43, ..opts },
    )
    .unwrap();
    assert_ne!(a.tokens, c.tokens);
}

#[test]
fn caller_given_start_is_used() {
    // ᾱ_2 = 0.25 > 0, so partially unmasked starts are possible; with a deterministic data
    // law the output is the data.
    let den = oracle(
        Absorbing::new(3, 1, &[0.5, 0.5]).unwrap(),
        &[(vec![2, 0], 1.0)],
    );
    let start = array![[1u32, 1], [2, 1]];
    let opts = D3pmOptions {
        seed: 1,
        start: Start::Tokens(start.view()),
        form: ReverseForm::Joint,
    };
    let out = sample_d3pm(den.process(), &den, &[0, 1], 2, &opts).unwrap();
    assert_eq!(out.tokens, array![[2u32, 0], [2, 0]]);
    assert_eq!(out.nfe, 2);
}

// ---------------------------------------------------------------- bad input

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
fn bad_inputs_are_rejected() {
    let kernel = random_dense(3, 3, 1);
    let ok = Const { v: 3, value: 0.0 };
    let opts = D3pmOptions::default();
    assert!(sample_d3pm(&kernel, &ok, &[0], 2, &opts).is_ok());
    let err = |r: discrete_diffusion::Result<_>| r.expect_err("expected an error");
    assert!(matches!(
        err(sample_d3pm(&kernel, &ok, &[], 2, &opts)),
        Error::InvalidArgument { arg: "streams", .. }
    ));
    assert!(matches!(
        err(sample_d3pm(&kernel, &ok, &[0], 0, &opts)),
        Error::InvalidArgument { arg: "length", .. }
    ));
    let wrong_v = Const { v: 4, value: 0.0 };
    assert!(matches!(
        err(sample_d3pm(&kernel, &wrong_v, &[0], 2, &opts)),
        Error::InvalidArgument {
            arg: "denoiser",
            ..
        }
    ));
    let nan = Const {
        v: 3,
        value: f32::NAN,
    };
    assert!(matches!(
        err(sample_d3pm(&kernel, &nan, &[0], 2, &opts)),
        Error::NonFinite { arg: "logits", .. }
    ));
    let pinf = Const {
        v: 3,
        value: f32::INFINITY,
    };
    assert!(matches!(
        err(sample_d3pm(&kernel, &pinf, &[0], 2, &opts)),
        Error::NonFinite { .. }
    ));
    let ninf = Const {
        v: 3,
        value: f32::NEG_INFINITY,
    };
    assert!(matches!(
        err(sample_d3pm(&kernel, &ninf, &[0], 2, &opts)),
        Error::InvalidArgument { .. }
    ));
    let bad_shape = Array2::<u32>::zeros((2, 2));
    let o = D3pmOptions {
        start: Start::Tokens(bad_shape.view()),
        ..opts
    };
    assert!(matches!(
        err(sample_d3pm(&kernel, &ok, &[0], 2, &o)),
        Error::Shape { arg: "start", .. }
    ));
    let bad_tok = array![[0u32, 3]];
    let o = D3pmOptions {
        start: Start::Tokens(bad_tok.view()),
        ..opts
    };
    assert!(matches!(
        err(sample_d3pm(&kernel, &ok, &[0], 2, &o)),
        Error::TokenOutOfRange { arg: "start", .. }
    ));

    let mut out = [0.0; 3];
    let p = [0.2, 0.3, 0.5];
    assert!(reverse_probs(&kernel, 2, 1, &p, ReverseForm::Joint, &mut out).is_ok());
    assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(reverse_probs(&kernel, 0, 1, &p, ReverseForm::Joint, &mut out).is_err());
    assert!(reverse_probs(&kernel, 4, 1, &p, ReverseForm::Joint, &mut out).is_err());
    assert!(reverse_probs(&kernel, 2, 3, &p, ReverseForm::Joint, &mut out).is_err());
    assert!(
        reverse_probs(
            &kernel,
            2,
            1,
            &[0.5, 0.6, 0.0],
            ReverseForm::Joint,
            &mut out
        )
        .is_err()
    );
    assert!(reverse_probs(&kernel, 2, 1, &[0.5, 0.5], ReverseForm::Joint, &mut out).is_err());
    assert!(reverse_probs(&kernel, 2, 1, &p, ReverseForm::Joint, &mut [0.0; 2]).is_err());
    // p̃ only on clean states that cannot reach x_t: zero probability.
    let abs = absorbing(3, 3, 1);
    let r = reverse_probs(
        &abs,
        2,
        0,
        &[0.0, 0.0, 1.0],
        ReverseForm::PosteriorMixture,
        &mut out,
    );
    assert!(matches!(r, Err(Error::ZeroProbability { .. })));
    let r = reverse_probs(&abs, 2, 0, &[0.0, 0.0, 1.0], ReverseForm::Joint, &mut out);
    assert!(matches!(r, Err(Error::ZeroProbability { .. })));
    let _ = Array3::<f32>::zeros((1, 1, 1));
}
