//! D3PM ancestral sampling (Austin et al. 2021, "Structured Denoising Diffusion Models in
//! Discrete State-Spaces", §3 and Appendix A).
//!
//! Starting from `x_T` (a draw from the kernel's stationary law, or caller-given tokens), the
//! sampler walks `t = T, …, 1`; at each step the denoiser is called **once for the whole
//! batch** at time `t / T` and every position draws `x_{t−1}` from the x0-parameterised
//! reverse transition computed by [`reverse_probs`]:
//!
//! * [`ReverseForm::Joint`] (D3PM eq. 4, the form of the official code):
//!   `p_θ(x_{t−1} = k | x_t) ∝ Σ_{x̃0} q(x_{t−1} = k, x_t | x̃0) p̃(x̃0 | x_t)
//!                         = Q_t(k, x_t) · (p̃ᵀ Q̄_{t−1})[k]`;
//! * [`ReverseForm::PosteriorMixture`]:
//!   `p_θ(x_{t−1} = k | x_t) = Σ_{x̃0} q(x_{t−1} = k | x_t, x̃0) p̃(x̃0 | x_t)
//!                         = Q_t(k, x_t) · (wᵀ Q̄_{t−1})[k]`, `w(x̃0) = p̃(x̃0) / Q̄_t(x̃0, x_t)`.
//!
//! The two forms coincide when `Q̄_t(·, x_t)` is constant on the support of `p̃` (absorbing
//! kernels: a masked `x_t` is equally likely from every clean token); otherwise the joint
//! form weights each `x̃0` by `p̃(x̃0) Q̄_t(x̃0, x_t)`, i.e. it counts the likelihood of `x_t`
//! twice when `p̃` is the *true* posterior `p(x0 | x_t)`. With an exact denoiser the mixture
//! form is the exact per-position reverse marginal `q(x_{t−1}^i | x_t)`.
//!
//! At `t = 1` both forms draw `x_0` from `p̃` directly: D3PM's decoder
//! `p_θ(x_0 | x_1) = p̃_θ(x_0 | x_1)` (the `L_0` term). For the mixture form this is the same
//! law (`q(x_0 | x_1, x̃0) = δ_{x̃0}`).
//!
//! # Exactness
//!
//! Positions are drawn independently given `x_t` (the factorised reverse of D3PM). With an
//! exact denoiser this reproduces the data law exactly when `L = 1`, or when the data law is
//! a product over positions, provided `Q̄_T(x0, ·)` equals the stationary law for every `x0`;
//! for correlated data the factorisation is biased, the bias vanishing as the steps get finer
//! (see `tests/d3pm_sampling.rs`).
//!
//! # Randomness
//!
//! All draws use Philox keyed by `(seed, stream)` of each sequence
//! ([`RngKey::for_stream`]) with [`Purpose::CATEGORICAL`], counter step = the index `s` of
//! the state being drawn (`x_T` at `s = T`, `x_{t−1}` at `s = t − 1`) and counter position =
//! the token index. A sequence's result depends only on `(seed, stream, start)`, never on its
//! batch mates or their order.

use ndarray::{Array1, Array2, Array3, ArrayView2};

use crate::error::{Error, Result};
use crate::kernel::ForwardKernel;
use crate::kernel::posterior::{PosteriorWorkspace, p_reverse_joint, p_reverse_mixture};
use crate::math::softmax_into;
use crate::model::Denoiser;
use crate::rng::categorical::sample_masses;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::validate;

/// Which x0-parameterised reverse transition to sample from (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReverseForm {
    /// `p(x_{t−1} = k | x_t) ∝ Q_t(k, x_t) · (p̃ᵀ Q̄_{t−1})[k]` (D3PM eq. 4 and its code).
    #[default]
    Joint,
    /// `p(x_{t−1} | x_t) = Σ_{x̃0} p̃(x̃0) q(x_{t−1} | x_t, x̃0)`, renormalised over the clean
    /// states with `Q̄_t(x̃0, x_t) > 0` (mass that `p̃` puts on clean states that cannot
    /// produce `x_t` is dropped).
    PosteriorMixture,
}

/// Where the reverse chain starts.
#[derive(Clone, Copy, Debug, Default)]
pub enum Start<'a> {
    /// `x_T^i ~ π` independently per position, `π` = [`ForwardKernel::stationary`].
    #[default]
    Stationary,
    /// Caller-given `x_T`, shape `[B, L]`.
    Tokens(ArrayView2<'a, u32>),
}

/// Options of [`sample_d3pm`].
#[derive(Clone, Copy, Debug, Default)]
pub struct D3pmOptions<'a> {
    /// Seed of the Philox key (combined with each sequence's stream id).
    pub seed: u64,
    /// Start of the chain.
    pub start: Start<'a>,
    /// Reverse transition form.
    pub form: ReverseForm,
}

/// Result of a sampler: the final tokens and the number of denoiser calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Samples {
    /// The sampled clean sequences `x_0`, shape `[B, L]`.
    pub tokens: Array2<u32>,
    /// Number of function (denoiser) evaluations; each call covers the whole batch.
    pub nfe: usize,
}

/// The x0-parameterised reverse transition of one position (Austin et al. 2021, eq. 4):
/// writes `out[k] = p_θ(x_{t−1} = k | x_t)` for step `t ∈ 2..=T` given the prediction
/// `p̃(x0 | x_t)` (`p_tilde`, a probability vector of length `V`); at `t = 1` it writes
/// `p̃` itself (the decoder `p_θ(x_0 | x_1)`).
///
/// Formulas: see [`ReverseForm`]. Errors: bad `t`, `x_t`, shapes or `p_tilde` not a
/// distribution (tolerance `1e-6`), and [`Error::ZeroProbability`] when the unnormalised
/// reverse law has no mass (`p̃` only covers clean states that cannot reach `x_t`).
pub fn reverse_probs<K: ForwardKernel + ?Sized>(
    kernel: &K,
    t: usize,
    x_t: u32,
    p_tilde: &[f64],
    form: ReverseForm,
    out: &mut [f64],
) -> Result<()> {
    let v = kernel.vocab_size();
    validate::len("p_tilde", p_tilde.len(), v)?;
    validate::len("out", out.len(), v)?;
    validate::distribution("p_tilde", p_tilde, 1e-6)?;
    validate::token("x_t", x_t, v)?;
    if t == 0 || t > kernel.num_steps() {
        return Err(Error::invalid(
            "t",
            format!("step {t} is outside 1..={}", kernel.num_steps()),
        ));
    }
    let mut ws = PosteriorWorkspace::new(v);
    reverse_probs_ws(kernel, t, x_t, p_tilde, form, &mut ws, out)
}

/// [`reverse_probs`] after validation of `p̃`, with a reusable workspace.
fn reverse_probs_ws<K: ForwardKernel + ?Sized>(
    kernel: &K,
    t: usize,
    x_t: u32,
    p_tilde: &[f64],
    form: ReverseForm,
    ws: &mut PosteriorWorkspace,
    out: &mut [f64],
) -> Result<()> {
    if t == 1 {
        out.copy_from_slice(p_tilde);
        return Ok(());
    }
    match form {
        ReverseForm::Joint => p_reverse_joint(kernel, t, x_t, p_tilde, ws, out),
        ReverseForm::PosteriorMixture => p_reverse_mixture(kernel, t, x_t, p_tilde, ws, out),
    }
}

/// D3PM ancestral sampling of `B = streams.len()` sequences of length `length`.
///
/// `x_T ~ π` (or `options.start`), then for `t = T, …, 1`: `p̃ = softmax(logits)` from one
/// batched denoiser call at time `t / T`, and `x_{t−1}^i ~` [`reverse_probs`] per position
/// (at `t = 1`, `x_0^i ~ p̃`). Randomness: see the module docs; `streams[b]` is the identity
/// of sequence `b`. Returns the tokens and `nfe = T`.
///
/// Errors: empty batch, `length = 0`, `T = 0`, a denoiser whose vocabulary differs from the
/// kernel's, start tokens of the wrong shape or out of range, denoiser logits with NaN/+∞ or
/// a row that is entirely `−∞`, a stationary law that is not a distribution, and zero-mass
/// reverse laws ([`Error::ZeroProbability`]).
pub fn sample_d3pm<K, D>(
    kernel: &K,
    denoiser: &D,
    streams: &[u64],
    length: usize,
    options: &D3pmOptions<'_>,
) -> Result<Samples>
where
    K: ForwardKernel + ?Sized,
    D: Denoiser + ?Sized,
{
    let v = validate::vocab("kernel.vocab_size", kernel.vocab_size())?;
    let steps = kernel.num_steps();
    let b = streams.len();
    check_common(denoiser.vocab_size(), v, b, length, steps)?;

    let keys: Vec<RngKey> = streams
        .iter()
        .map(|&s| RngKey::for_stream(options.seed, s))
        .collect();

    let mut tokens = Array2::<u32>::zeros((b, length));
    match options.start {
        Start::Stationary => {
            let mut pi = vec![0.0; v];
            kernel.stationary(&mut pi)?;
            validate::distribution("stationary", &pi, 1e-9)?;
            for (bi, key) in keys.iter().enumerate() {
                for i in 0..length {
                    let mut rng =
                        CounterRng::new(*key, Purpose::CATEGORICAL, steps as u32, i as u32);
                    tokens[[bi, i]] = sample_masses(&pi, rng.uniform())?.token;
                }
            }
        }
        Start::Tokens(x) => {
            if x.dim() != (b, length) {
                return Err(Error::shape(
                    "start",
                    format!("[{b}, {length}]"),
                    format!("{:?}", x.shape()),
                ));
            }
            validate::tokens("start", x.iter(), v)?;
            tokens.assign(&x);
        }
    }

    let mut logits = Array3::<f32>::zeros((b, length, v));
    let mut p_tilde = vec![0.0; v];
    let mut probs = vec![0.0; v];
    let mut ws = PosteriorWorkspace::new(v);
    let mut nfe = 0;
    for t in (1..=steps).rev() {
        let times = Array1::from_elem(b, t as f64 / steps as f64);
        denoiser.logits(tokens.view(), times.view(), logits.view_mut())?;
        nfe += 1;
        for (bi, key) in keys.iter().enumerate() {
            for i in 0..length {
                let row = logits.slice(ndarray::s![bi, i, ..]);
                softmax_into(row, &mut p_tilde)?;
                let x_t = tokens[[bi, i]];
                reverse_probs_ws(kernel, t, x_t, &p_tilde, options.form, &mut ws, &mut probs)?;
                let mut rng = CounterRng::new(*key, Purpose::CATEGORICAL, (t - 1) as u32, i as u32);
                tokens[[bi, i]] = sample_masses(&probs, rng.uniform())?.token;
            }
        }
    }
    Ok(Samples { tokens, nfe })
}

/// Shared validation of the batch geometry of the samplers in this module and `rdm`.
pub(crate) fn check_common(
    denoiser_vocab: usize,
    v: usize,
    b: usize,
    length: usize,
    steps: usize,
) -> Result<()> {
    if denoiser_vocab != v {
        return Err(Error::invalid(
            "denoiser",
            format!("denoiser vocabulary {denoiser_vocab} differs from the process's {v}"),
        ));
    }
    if b == 0 {
        return Err(Error::invalid("streams", "empty batch (no stream ids)"));
    }
    if length == 0 || length > u32::MAX as usize {
        return Err(Error::invalid(
            "length",
            format!("sequence length {length} must be in 1..=2^32-1"),
        ));
    }
    if steps == 0 || steps >= u32::MAX as usize {
        return Err(Error::invalid(
            "num_steps",
            format!("the process has {steps} steps; need 1..2^32-1"),
        ));
    }
    Ok(())
}
