//! Forward corruption for training: `(t, x_t)` per sequence for any schedule, kernel or
//! per-token schedule, from the crate's counter-based RNG.
//!
//! * [`corrupt`]: `x_t^i ~ q(x_t^i | x_0^i)` through any [`NoiseProcess`] (every
//!   [`ForwardKernel`](crate::kernel::ForwardKernel), every
//!   [`MixtureProcess`](crate::kernel::mixture::MixtureProcess)) by inverse CDF of the
//!   channel's transition row at the position uniform `u_i` of a
//!   [`MaskAddress`] (so the draw depends only on `(seed, sequence id, step, draw, i)`).
//! * [`mask_with_token_schedule`]: absorbing corruption under a per-token
//!   [`TokenSchedule`], returning the per-position NELBO weights the loss needs.
//! * [`corrupt_batch`]: a whole training batch, times from any
//!   [`TimeSampler`].

use ndarray::{Array2, ArrayView2};

use super::masks::{MaskAddress, apply_mask, bernoulli_mask};
use super::token_schedule::{TokenSchedule, token_mask_probs_and_weights};
use crate::error::{Error, Result};
use crate::kernel::NoiseProcess;
use crate::rng::{RngKey, sample_masses};
use crate::schedule::TimeSampler;
use crate::validate;

/// `out[i] ~ q(x_t = · | x_0 = x0[i])` at time `t`: the inverse CDF of
/// `process.channel(t).transition_row(x0[i])` at the position uniform `u_i` of `addr`.
///
/// For an absorbing [`MixtureProcess`](crate::kernel::mixture::MixtureProcess) this masks
/// each token with probability `1 − α(t)`; for uniform noise it resamples with probability
/// `1 − α(t)`; for a discrete kernel `t` must lie on its grid `k/T`.
///
/// Errors: `x0` empty or with a token `≥ V`; `out` of another length; the process's errors
/// for `t`; a transition row that is not a distribution.
pub fn corrupt(
    process: &dyn NoiseProcess,
    x0: &[u32],
    t: f64,
    addr: MaskAddress,
    out: &mut [u32],
) -> Result<()> {
    if x0.is_empty() {
        return Err(Error::invalid("x0", "empty sequence (L = 0)"));
    }
    let v = process.vocab_size();
    validate::tokens("x0", x0, v)?;
    validate::len("out", out.len(), x0.len())?;
    let channel = process.channel(t)?;
    let mut row = vec![0.0; v];
    for (i, (o, &x)) in out.iter_mut().zip(x0).enumerate() {
        channel.transition_row(x, &mut row)?;
        *o = sample_masses(&row, addr.uniform(i))?.token;
    }
    Ok(())
}

/// Absorbing corruption under a per-token schedule: position `i` is masked iff
/// `u_i < 1 − α_i(t)` (positions `< prompt_len` never), `xt` receives the noisy tokens and
/// `weights[i] = −α_i'(t)/(1 − α_i(t))` the per-position NELBO weight for
/// [`PositionWeights::PerPosition`](crate::loss::masked::PositionWeights) (0 at unmasked
/// positions, where it is unused). Returns the number of masked positions.
///
/// Masks from one address at increasing `t` are nested (see [`super::masks`]).
///
/// Errors: those of [`TokenSchedule::alphas`]; `mask_token ≥ V`; `x0` containing the mask;
/// `prompt_len > L`; outputs of another length.
#[allow(clippy::too_many_arguments)]
pub fn mask_with_token_schedule(
    schedule: &dyn TokenSchedule,
    x0: &[u32],
    t: f64,
    mask_token: u32,
    prompt_len: usize,
    addr: MaskAddress,
    xt: &mut [u32],
    weights: &mut [f64],
) -> Result<usize> {
    validate::token("mask_token", mask_token, schedule.vocab_size())?;
    let l = x0.len();
    if prompt_len > l {
        return Err(Error::invalid(
            "prompt_len",
            format!("{prompt_len} exceeds the sequence length {l}"),
        ));
    }
    if let Some(i) = x0.iter().position(|&x| x == mask_token) {
        return Err(Error::invalid(
            "x0",
            format!("x0[{i}] is the mask token {mask_token}"),
        ));
    }
    validate::len("xt", xt.len(), l)?;
    let mut probs = vec![0.0; l];
    token_mask_probs_and_weights(schedule, t, x0, &mut probs, weights)?;
    probs[..prompt_len].fill(0.0);
    let mut mask = vec![false; l];
    bernoulli_mask(addr, &probs, &mut mask)?;
    for (w, &m) in weights.iter_mut().zip(&mask) {
        if !m {
            *w = 0.0;
        }
    }
    apply_mask(x0, &mask, mask_token, xt)?;
    Ok(mask.iter().filter(|&&m| m).count())
}

/// A corrupted training batch.
#[derive(Clone, Debug, PartialEq)]
pub struct CorruptedBatch {
    /// `t_b` per sequence.
    pub times: Vec<f64>,
    /// `x_t` `[B, L]`.
    pub xt: Array2<u32>,
}

/// Corrupt a batch `x0 [B, L]`: times `t_b` from `sampler` at training step `step` under the
/// key `RngKey::for_stream(seed, time_stream)` (one key per batch, since stratified
/// samplers couple the batch; use a [`Uniform`](crate::schedule::Uniform) sampler and
/// `B = 1` calls for fully per-sequence times), then `x_t[b] ~ q(· | x0[b])` at `t_b` by
/// [`corrupt`] with the address `MaskAddress::new(seed, ids[b], step, 0)`.
///
/// Errors: `B = 0` or `L = 0`, `ids` of another length, the sampler's and [`corrupt`]'s
/// errors.
pub fn corrupt_batch(
    sampler: &dyn TimeSampler,
    process: &dyn NoiseProcess,
    x0: ArrayView2<'_, u32>,
    seed: u64,
    time_stream: u64,
    ids: &[u64],
    step: u32,
) -> Result<CorruptedBatch> {
    let (b, l) = x0.dim();
    if b == 0 || l == 0 {
        return Err(Error::invalid(
            "x0",
            format!("empty batch [{b}, {l}] (B and L must be ≥ 1)"),
        ));
    }
    validate::len("ids", ids.len(), b)?;
    let mut times = vec![0.0; b];
    sampler.sample_into(RngKey::for_stream(seed, time_stream), step, &mut times)?;
    let mut xt = Array2::<u32>::zeros((b, l));
    let mut row = vec![0u32; l];
    let mut out = vec![0u32; l];
    for bi in 0..b {
        row.iter_mut().zip(x0.row(bi)).for_each(|(d, &s)| *d = s);
        corrupt(
            process,
            &row,
            times[bi],
            MaskAddress::new(seed, ids[bi], step, 0),
            &mut out,
        )?;
        xt.row_mut(bi)
            .iter_mut()
            .zip(&out)
            .for_each(|(d, &s)| *d = s);
    }
    Ok(CorruptedBatch { times, xt })
}
