//! D3PM ancestral sampling against exact enumeration (DESIGN §4).
//!
//! Test-local pieces: a dense row-stochastic kernel (`Dense`, with an absorbing
//! constructor whose mask is *not* the last index) and an exact denoiser (`Exact`) that
//! enumerates a data law over `V^L`.

use discrete_diffusion::Error;
use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::sample::d3pm::{
    D3pmOptions, ReverseForm, Start, reverse_probs, sample_d3pm,
};
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3, array};
use statrs::distribution::{ChiSquared, ContinuousCDF};

// ---------------------------------------------------------------- test-local kernel

#[derive(Debug, Clone)]
struct Dense {
    v: usize,
    q: Vec<Array2<f64>>,    // Q_1..Q_T (index t-1)
    qbar: Vec<Array2<f64>>, // Q̄_0..Q̄_T
    pi: Vec<f64>,
}

impl Dense {
    fn from_steps(q: Vec<Array2<f64>>, pi: Vec<f64>) -> Self {
        let v = pi.len();
        let mut qbar = vec![Array2::eye(v)];
        for m in &q {
            let next = qbar.last().unwrap().dot(m);
            qbar.push(next);
        }
        Dense { v, q, qbar, pi }
    }

    /// `Q_t = β_t I + (1 − β_t) 1 πᵀ`.
    fn mixture(betas: &[f64], pi: &[f64]) -> Self {
        let v = pi.len();
        let q = betas
            .iter()
            .map(|&b| {
                Array2::from_shape_fn((v, v), |(i, j)| {
                    b * (i == j) as u8 as f64 + (1.0 - b) * pi[j]
                })
            })
            .collect();
        Self::from_steps(q, pi.to_vec())
    }

    /// Random positive row-stochastic steps, the last one fully mixing to `π`.
    fn random(v: usize, steps: usize, seed: u64) -> Self {
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
        Self::from_steps(q, pi)
    }

    fn check(&self, t: usize, zero: bool) -> discrete_diffusion::Result<()> {
        if (!zero && t == 0) || t > self.q.len() {
            return Err(Error::invalid("t", format!("{t}")));
        }
        Ok(())
    }
}

impl ForwardKernel for Dense {
    fn vocab_size(&self) -> usize {
        self.v
    }
    fn num_steps(&self) -> usize {
        self.q.len()
    }
    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> discrete_diffusion::Result<()> {
        self.check(t, false)?;
        out.copy_from_slice(self.q[t - 1].row(x as usize).as_slice().unwrap());
        Ok(())
    }
    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> discrete_diffusion::Result<()> {
        self.check(t, false)?;
        for (o, x) in out.iter_mut().zip(self.q[t - 1].column(y as usize)) {
            *o = *x;
        }
        Ok(())
    }
    fn cumulative_row(&self, t: usize, x: u32, out: &mut [f64]) -> discrete_diffusion::Result<()> {
        self.check(t, true)?;
        out.copy_from_slice(self.qbar[t].row(x as usize).as_slice().unwrap());
        Ok(())
    }
    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> discrete_diffusion::Result<()> {
        self.check(t, true)?;
        for (o, x) in out.iter_mut().zip(self.qbar[t].column(y as usize)) {
            *o = *x;
        }
        Ok(())
    }
    fn cumulative_vecmat(
        &self,
        t: usize,
        p: &[f64],
        out: &mut [f64],
    ) -> discrete_diffusion::Result<()> {
        self.check(t, true)?;
        let r = ndarray::ArrayView1::from(p).dot(&self.qbar[t]);
        out.copy_from_slice(r.as_slice().unwrap());
        Ok(())
    }
    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> discrete_diffusion::Result<()> {
        self.check(t, false)?;
        let r = ndarray::ArrayView1::from(p).dot(&self.q[t - 1]);
        out.copy_from_slice(r.as_slice().unwrap());
        Ok(())
    }
    fn stationary(&self, out: &mut [f64]) -> discrete_diffusion::Result<()> {
        out.copy_from_slice(&self.pi);
        Ok(())
    }
}

// ---------------------------------------------------------------- exact denoiser

/// All sequences of `V^L` in lexicographic order (position 0 most significant).
fn all_seqs(v: usize, l: usize) -> Vec<Vec<u32>> {
    let n = v.pow(l as u32);
    (0..n)
        .map(|mut k| {
            let mut s = vec![0u32; l];
            for i in (0..l).rev() {
                s[i] = (k % v) as u32;
                k /= v;
            }
            s
        })
        .collect()
}

fn index_of(seq: &[u32], v: usize) -> usize {
    seq.iter().fold(0, |acc, &x| acc * v + x as usize)
}

struct Exact<'a> {
    kernel: &'a Dense,
    data: Vec<(Vec<u32>, f64)>,
    l: usize,
}

impl Exact<'_> {
    /// `p(x_0^i = · | x_t)` in f64 for every position, at step `k`.
    fn posterior(&self, xt: &[u32], k: usize) -> Vec<Vec<f64>> {
        let v = self.kernel.v;
        let mut marg = vec![vec![0.0; v]; self.l];
        let mut total = 0.0;
        for (x0, p) in &self.data {
            let mut w = *p;
            for i in 0..self.l {
                w *= self.kernel.qbar[k][[x0[i] as usize, xt[i] as usize]];
            }
            total += w;
            for i in 0..self.l {
                marg[i][x0[i] as usize] += w;
            }
        }
        assert!(total > 0.0, "x_t = {xt:?} impossible at step {k}");
        for m in &mut marg {
            m.iter_mut().for_each(|x| *x /= total);
        }
        marg
    }
}

impl Denoiser for Exact<'_> {
    fn vocab_size(&self) -> usize {
        self.kernel.v
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        let t_max = self.kernel.q.len() as f64;
        for (b, row) in tokens.rows().into_iter().enumerate() {
            let k = (times[b] * t_max).round() as usize;
            let xt: Vec<u32> = row.to_vec();
            let post = self.posterior(&xt, k);
            for i in 0..self.l {
                for (c, &p) in post[i].iter().enumerate() {
                    out[[b, i, c]] = if p > 0.0 {
                        p.ln() as f32
                    } else {
                        f32::NEG_INFINITY
                    };
                }
            }
        }
        Ok(())
    }
}

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

// ---------------------------------------------------------------- exact law propagation

/// The exact law of the sampler's output over `V^L`: propagate the law of `x_T` through the
/// factorised reverse kernel (f64 posterior from enumeration, `reverse_probs` per position).
fn propagate(kernel: &Dense, den: &Exact, form: ReverseForm) -> Vec<f64> {
    let (v, l, steps) = (kernel.v, den.l, kernel.q.len());
    let seqs = all_seqs(v, l);
    let mut law: Vec<f64> = seqs
        .iter()
        .map(|s| s.iter().map(|&x| kernel.pi[x as usize]).product())
        .collect();
    let mut r = vec![vec![0.0; v]; l];
    for t in (1..=steps).rev() {
        let mut next = vec![0.0; seqs.len()];
        for (x, &w) in seqs.iter().zip(&law) {
            if w == 0.0 {
                continue;
            }
            let post = den.posterior(x, t);
            for i in 0..l {
                reverse_probs(kernel, t, x[i], &post[i], form, &mut r[i]).unwrap();
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

fn data_law(data: &[(Vec<u32>, f64)], v: usize, l: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.pow(l as u32)];
    for (s, p) in data {
        out[index_of(s, v)] += p;
    }
    out
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn absorbing(t: usize, v: usize, mask: usize) -> Dense {
    // linear ᾱ_t = 1 − t/T: β_t = ᾱ_t / ᾱ_{t−1}
    let betas: Vec<f64> = (1..=t)
        .map(|k| (1.0 - k as f64 / t as f64) / (1.0 - (k - 1) as f64 / t as f64))
        .collect();
    let mut pi = vec![0.0; v];
    pi[mask] = 1.0;
    Dense::mixture(&betas, &pi)
}

fn uniform(betas: &[f64], v: usize) -> Dense {
    Dense::mixture(betas, &vec![1.0 / v as f64; v])
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

// ---------------------------------------------------------------- tests: exact laws

#[test]
fn law_is_exact_for_product_data_absorbing_both_forms() {
    let kernel = absorbing(5, 4, 1);
    let data = product_absorbing_data();
    let den = Exact {
        kernel: &kernel,
        data: data.clone(),
        l: 3,
    };
    let target = data_law(&data, 4, 3);
    for form in [ReverseForm::Joint, ReverseForm::PosteriorMixture] {
        let law = propagate(&kernel, &den, form);
        let d = max_abs_diff(&law, &target);
        assert!(d < 1e-12, "{form:?}: max |law − data| = {d:e}");
    }
}

#[test]
fn law_is_exact_for_product_data_mixture_form_general_kernels() {
    let data = product_full_data();
    let target = data_law(&data, 3, 3);
    let kernels = [uniform(&[0.9, 0.7, 0.5, 0.0], 3), Dense::random(3, 4, 7)];
    for kernel in &kernels {
        let den = Exact {
            kernel,
            data: data.clone(),
            l: 3,
        };
        let law = propagate(kernel, &den, ReverseForm::PosteriorMixture);
        let d = max_abs_diff(&law, &target);
        assert!(d < 1e-12, "max |law − data| = {d:e}");
    }
}

/// The joint form counts `q(x_t | x_0)` twice when fed the true posterior: it is biased for
/// non-absorbing kernels even with `L = 1`, while the mixture form is exact.
#[test]
fn joint_form_with_true_posterior_is_biased_for_uniform_kernel() {
    let kernel = uniform(&[0.8, 0.6, 0.0], 3);
    let data = vec![(vec![0], 0.7), (vec![1], 0.2), (vec![2], 0.1)];
    let den = Exact {
        kernel: &kernel,
        data: data.clone(),
        l: 1,
    };
    let target = data_law(&data, 3, 1);
    let exact = propagate(&kernel, &den, ReverseForm::PosteriorMixture);
    assert!(max_abs_diff(&exact, &target) < 1e-12);
    let joint = propagate(&kernel, &den, ReverseForm::Joint);
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
    let target = data_law(&data, 3, 2);
    let mut tv = Vec::new();
    for t in [1usize, 4, 16, 64] {
        let kernel = absorbing(t, 3, 1);
        let den = Exact {
            kernel: &kernel,
            data: data.clone(),
            l: 2,
        };
        let law = propagate(&kernel, &den, ReverseForm::PosteriorMixture);
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
}

// ---------------------------------------------------------------- tests: sampler (χ²)

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

fn sample_counts(kernel: &Dense, den: &Exact, form: ReverseForm, n: usize, seed: u64) -> Vec<u64> {
    let v = kernel.v;
    let streams: Vec<u64> = (0..n as u64).collect();
    let opts = D3pmOptions {
        seed,
        start: Start::Stationary,
        form,
    };
    let out = sample_d3pm(kernel, den, &streams, den.l, &opts).unwrap();
    assert_eq!(out.nfe, kernel.q.len());
    let mut counts = vec![0u64; v.pow(den.l as u32)];
    for row in out.tokens.rows() {
        counts[index_of(row.as_slice().unwrap(), v)] += 1;
    }
    counts
}

#[test]
fn chi2_absorbing_joint_form_reproduces_product_data() {
    let kernel = absorbing(4, 4, 1);
    let data = product_absorbing_data();
    let den = Exact {
        kernel: &kernel,
        data: data.clone(),
        l: 3,
    };
    let counts = sample_counts(&kernel, &den, ReverseForm::Joint, 20_000, 11);
    let (stat, crit) = chi2_test(&counts, &data_law(&data, 4, 3), 1e-4);
    eprintln!("χ² = {stat:.2}, critical value (α = 1e-4) {crit:.2}");
    assert!(stat < crit, "χ² = {stat} ≥ {crit}");
}

#[test]
fn chi2_dense_kernel_mixture_form_reproduces_product_data() {
    let kernel = Dense::random(3, 4, 3);
    let data = product_full_data();
    let den = Exact {
        kernel: &kernel,
        data: data.clone(),
        l: 3,
    };
    let counts = sample_counts(&kernel, &den, ReverseForm::PosteriorMixture, 20_000, 5);
    let (stat, crit) = chi2_test(&counts, &data_law(&data, 3, 3), 1e-4);
    eprintln!("χ² = {stat:.2}, critical value (α = 1e-4) {crit:.2}");
    assert!(stat < crit, "χ² = {stat} ≥ {crit}");
}

// ---------------------------------------------------------------- reproducibility

#[test]
fn batch_permutation_invariance_and_subsets() {
    let kernel = Dense::random(3, 5, 9);
    let den = Exact {
        kernel: &kernel,
        data: product_full_data(),
        l: 3,
    };
    let opts = D3pmOptions {
        seed: 42,
        ..Default::default()
    };
    let a = sample_d3pm(&kernel, &den, &[10, 11, 12, 13, 14, 15], 3, &opts).unwrap();
    let perm = [3usize, 0, 5, 1, 4, 2];
    let streams: Vec<u64> = perm.iter().map(|&p| 10 + p as u64).collect();
    let b = sample_d3pm(&kernel, &den, &streams, 3, &opts).unwrap();
    for (row, &p) in perm.iter().enumerate() {
        assert_eq!(b.tokens.row(row), a.tokens.row(p));
    }
    let single = sample_d3pm(&kernel, &den, &[13], 3, &opts).unwrap();
    assert_eq!(single.tokens.row(0), a.tokens.row(3));
    // another seed changes the result
    let c = sample_d3pm(
        &kernel,
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
    let kernel = Dense::mixture(&[0.5, 0.5], &[0.0, 1.0, 0.0]);
    let data = vec![(vec![2, 0], 1.0)];
    let den = Exact {
        kernel: &kernel,
        data,
        l: 2,
    };
    let start = array![[1u32, 1], [2, 1]];
    let opts = D3pmOptions {
        seed: 1,
        start: Start::Tokens(start.view()),
        form: ReverseForm::Joint,
    };
    let out = sample_d3pm(&kernel, &den, &[0, 1], 2, &opts).unwrap();
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
    let kernel = Dense::random(3, 3, 1);
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
