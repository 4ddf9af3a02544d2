//! The first-hitting sampler of masked (absorbing) diffusion (Zheng et al. 2024, "Masked
//! diffusion models are secretly time-agnostic masked models and exploit inaccurate
//! categorical sampling", §4.1, Alg. 1).
//!
//! Under the reverse of the masking process with survival `α(t)`, each of the `n` masked
//! positions at time `t` is still masked at `s < t` with probability
//! `(1 − α(s))/(1 − α(t))`, independently. The first time (going backwards) at which any of
//! them is revealed therefore has
//!
//! ```text
//! P(τ < s) = ((1 − α(s))/(1 − α(t)))^n   ⇒   1 − α(τ) = (1 − α(t))·u^{1/n},  u ~ U(0, 1],
//! ```
//!
//! the revealed position is uniform among the masked ones, and its token is drawn from
//! `p(x_0^i | x_t)` (mask excluded). Repeating until nothing is masked simulates the exact
//! reverse process one event at a time: with an exact denoiser the final sample has exactly
//! the data law, whatever the schedule, and it costs one function evaluation per masked
//! token (no wasted steps where nothing changes).

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::model::Denoiser;
use crate::param::reverse::denoiser_logits;
use crate::rng::categorical::sample_logits_inverse_cdf;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::schedule::Schedule;
use crate::validate;

/// The next (earlier) reveal time from time `t` with `n_masked ≥ 1` masked positions and a
/// uniform `u ∈ (0, 1]`: `τ = α⁻¹(1 − (1 − α(t))·u^{1/n})`.
///
/// # Errors
/// `t ∉ [0, 1]`, `n_masked = 0`, `u ∉ (0, 1]`, and [`Error::ZeroProbability`] when
/// `1 − α(t) = 0` (nothing can be masked at `t`).
///
/// ```
/// use discrete_diffusion::sample::ctmc::first_hitting_time;
/// use discrete_diffusion::schedule::Linear;
/// // Linear: 1 − α(t) = t, so τ = t·u^{1/n}.
/// let tau = first_hitting_time(&Linear::new(), 0.8, 4, 0.0625)?;
/// assert!((tau - 0.4).abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn first_hitting_time<S: Schedule + ?Sized>(
    schedule: &S,
    t: f64,
    n_masked: usize,
    u: f64,
) -> Result<f64> {
    validate::time("t", t)?;
    if n_masked == 0 {
        return Err(Error::invalid("n_masked", "no masked position"));
    }
    if !(u > 0.0 && u <= 1.0) {
        return Err(Error::invalid("u", format!("must be in (0, 1], got {u}")));
    }
    let mt = schedule.move_chance(t)?;
    if mt.is_nan() || mt <= 0.0 {
        return Err(Error::ZeroProbability {
            what: format!("a masked token at t = {t}: 1 − α(t) = {mt}"),
        });
    }
    let ms = mt * u.powf(1.0 / n_masked as f64);
    let alpha_s = (1.0 - ms).clamp(schedule.alpha(t)?, schedule.alpha(0.0)?);
    Ok(schedule.time_of_alpha(alpha_s)?.min(t))
}

/// Settings of [`first_hitting_sample`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirstHitting {
    /// The mask token id (any id `< V`).
    pub mask_id: u32,
    /// The time of the input sequence (`1` for a fully masked start).
    pub t_start: f64,
    /// The seed.
    pub seed: u64,
    /// The sequence's stream id (its identity, not its batch row).
    pub stream: u64,
}

/// What [`first_hitting_sample`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct FirstHittingOutput {
    /// Denoiser calls (one per revealed position).
    pub nfe: usize,
    /// `(time, position)` of every reveal, in order (times decreasing).
    pub reveals: Vec<(f64, usize)>,
}

/// Unmask `tokens` (in place) with the first-hitting sampler until no mask is left.
///
/// Reveal `k` (`k = 0, 1, …`) draws its time from the [`Purpose::TIME`] stream, its position
/// from [`Purpose::SELECTION`] (both at position 0) and its token from the
/// [`Purpose::CATEGORICAL`] uniform at the revealed position, all at step `k` under
/// `RngKey::for_stream(seed, stream)`. The denoiser is called on the current sequence at the
/// current time (the time at which it was observed; a masked-diffusion posterior does not
/// depend on it). The mask entry of its logits is excluded.
///
/// # Errors
/// `tokens` empty or with ids `≥ V`, `mask_id ≥ V`, `t_start ∉ (0, 1]` with masks present,
/// denoiser errors, and rows with no finite logit outside the mask. On error `tokens` holds
/// the reveals made so far.
pub fn first_hitting_sample<S, D>(
    schedule: &S,
    denoiser: &D,
    tokens: &mut [u32],
    cfg: &FirstHitting,
) -> Result<FirstHittingOutput>
where
    S: Schedule + ?Sized,
    D: Denoiser + ?Sized,
{
    let v = denoiser.vocab_size();
    validate::vocab("denoiser vocab_size", v)?;
    validate::token("mask_id", cfg.mask_id, v)?;
    validate::time("t_start", cfg.t_start)?;
    if tokens.is_empty() {
        return Err(Error::invalid("tokens", "empty sequence"));
    }
    validate::tokens("tokens", tokens.iter(), v)?;
    let key = RngKey::for_stream(cfg.seed, cfg.stream);
    let mut masked: Vec<usize> = (0..tokens.len())
        .filter(|&i| tokens[i] == cfg.mask_id)
        .collect();
    let mut out = FirstHittingOutput {
        nfe: 0,
        reveals: Vec::with_capacity(masked.len()),
    };
    let mut t = cfg.t_start;
    let mut row = vec![0.0f32; v];
    let mut step = 0u32;
    while !masked.is_empty() {
        let logits: Array2<f32> = denoiser_logits(denoiser, tokens, t, v)?;
        out.nfe += 1;
        let n = masked.len();
        let u_time = CounterRng::new(key, Purpose::TIME, step, 0).uniform_open();
        let tau = first_hitting_time(schedule, t, n, u_time)?;
        let u_pos = CounterRng::new(key, Purpose::SELECTION, step, 0).uniform();
        let j = ((u_pos * n as f64) as usize).min(n - 1);
        let pos = masked.swap_remove(j);
        row.iter_mut()
            .zip(logits.row(pos).iter())
            .for_each(|(r, &l)| *r = l);
        row[cfg.mask_id as usize] = f32::NEG_INFINITY;
        let u_tok = CounterRng::new(key, Purpose::CATEGORICAL, step, pos as u32).uniform();
        let draw = sample_logits_inverse_cdf(&row, u_tok)?;
        tokens[pos] = draw.token;
        out.reveals.push((tau, pos));
        // Keep the time where a masked state is still possible (round-off guard).
        if schedule.move_chance(tau)? > 0.0 {
            t = tau;
        }
        step += 1;
    }
    Ok(out)
}
