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

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayViewMut2, Axis};

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
    let mut seq = Sequence::new(tokens, cfg.mask_id, cfg.t_start, cfg.seed, cfg.stream);
    let mut row = vec![0.0f32; v];
    while !seq.masked.is_empty() {
        let logits: Array2<f32> = denoiser_logits(denoiser, tokens, seq.t, v)?;
        seq.reveal(schedule, tokens, logits.view(), cfg.mask_id, &mut row)?;
    }
    Ok(seq.out)
}

/// One sequence's first-hitting state: its masked positions, time, reveal count and record.
struct Sequence {
    key: RngKey,
    masked: Vec<usize>,
    t: f64,
    step: u32,
    out: FirstHittingOutput,
}

impl Sequence {
    fn new(tokens: &[u32], mask_id: u32, t_start: f64, seed: u64, stream: u64) -> Self {
        let masked: Vec<usize> = (0..tokens.len())
            .filter(|&i| tokens[i] == mask_id)
            .collect();
        Sequence {
            key: RngKey::for_stream(seed, stream),
            out: FirstHittingOutput {
                nfe: 0,
                reveals: Vec::with_capacity(masked.len()),
            },
            masked,
            t: t_start,
            step: 0,
        }
    }

    /// Reveal `k = self.step` from the denoiser's `logits [L, V]` at the current state
    /// (module docs of [`first_hitting_sample`] for the RNG addressing).
    fn reveal<S: Schedule + ?Sized>(
        &mut self,
        schedule: &S,
        tokens: &mut [u32],
        logits: ArrayView2<'_, f32>,
        mask_id: u32,
        row: &mut [f32],
    ) -> Result<()> {
        let (key, step) = (self.key, self.step);
        self.out.nfe += 1;
        let n = self.masked.len();
        let u_time = CounterRng::new(key, Purpose::TIME, step, 0).uniform_open();
        let tau = first_hitting_time(schedule, self.t, n, u_time)?;
        let u_pos = CounterRng::new(key, Purpose::SELECTION, step, 0).uniform();
        let j = ((u_pos * n as f64) as usize).min(n - 1);
        let pos = self.masked.swap_remove(j);
        row.iter_mut()
            .zip(logits.row(pos).iter())
            .for_each(|(r, &l)| *r = l);
        row[mask_id as usize] = f32::NEG_INFINITY;
        let u_tok = CounterRng::new(key, Purpose::CATEGORICAL, step, pos as u32).uniform();
        let draw = sample_logits_inverse_cdf(row, u_tok)?;
        tokens[pos] = draw.token;
        self.out.reveals.push((tau, pos));
        // Keep the time where a masked state is still possible (round-off guard).
        if schedule.move_chance(tau)? > 0.0 {
            self.t = tau;
        }
        self.step += 1;
        Ok(())
    }
}

/// Settings of [`first_hitting_sample_batch`] (the streams are given per sequence).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirstHittingBatch {
    /// The mask token id (any id `< V`).
    pub mask_id: u32,
    /// The time of the input sequences (`1` for fully masked starts).
    pub t_start: f64,
    /// The seed.
    pub seed: u64,
}

/// What [`first_hitting_sample_batch`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct FirstHittingBatchOutput {
    /// Denoiser calls (each covers every sequence that still had a mask).
    pub calls: usize,
    /// Per sequence: its reveals and its function evaluations, exactly as
    /// [`first_hitting_sample`] reports them for that sequence alone.
    pub sequences: Vec<FirstHittingOutput>,
}

/// The first-hitting sampler on a batch `tokens [B, L]` (in place): sequence `b` runs
/// [`first_hitting_sample`] with stream `streams[b]`, and every round calls the denoiser
/// once on all sequences that still have a mask, each at its own current time (`times[b]`
/// of the [`Denoiser`] call), then reveals one position in each.
///
/// Sequence `b`'s reveals draw from `RngKey::for_stream(cfg.seed, streams[b])` at its own
/// reveal index, exactly as the single-sequence sampler does, so its result (tokens,
/// reveal times and positions, NFE) equals a single run with the same stream, whatever the
/// batch composition or order — provided the denoiser treats rows independently, as the
/// [`Denoiser`] contract requires. Sequences with no mask are left as they are (0 NFE).
///
/// # Errors
/// An empty batch or sequence, `streams.len() ≠ B`, ids `≥ V`, `mask_id ≥ V`,
/// `t_start ∉ [0, 1]`, denoiser errors, and the per-reveal errors of [`first_hitting_sample`]. On error `tokens` holds the
/// reveals made so far.
pub fn first_hitting_sample_batch<S, D>(
    schedule: &S,
    denoiser: &D,
    mut tokens: ArrayViewMut2<'_, u32>,
    streams: &[u64],
    cfg: &FirstHittingBatch,
) -> Result<FirstHittingBatchOutput>
where
    S: Schedule + ?Sized,
    D: Denoiser + ?Sized,
{
    let v = denoiser.vocab_size();
    validate::vocab("denoiser vocab_size", v)?;
    validate::token("mask_id", cfg.mask_id, v)?;
    validate::time("t_start", cfg.t_start)?;
    let (b, l) = tokens.dim();
    if b == 0 || l == 0 {
        return Err(Error::invalid("tokens", format!("empty batch [{b}, {l}]")));
    }
    validate::len("streams", streams.len(), b)?;
    validate::tokens("tokens", tokens.iter(), v)?;
    let mut seqs: Vec<Sequence> = Vec::with_capacity(b);
    for (r, &stream) in streams.iter().enumerate() {
        let toks: Vec<u32> = tokens.row(r).to_vec();
        seqs.push(Sequence::new(
            &toks,
            cfg.mask_id,
            cfg.t_start,
            cfg.seed,
            stream,
        ));
    }
    let mut row = vec![0.0f32; v];
    let mut calls = 0;
    let mut buf = vec![0u32; l];
    loop {
        let active: Vec<usize> = (0..b).filter(|&r| !seqs[r].masked.is_empty()).collect();
        if active.is_empty() {
            break;
        }
        let n = active.len();
        let mut sub = Array2::<u32>::zeros((n, l));
        let mut times = Array1::<f64>::zeros(n);
        for (j, &r) in active.iter().enumerate() {
            sub.row_mut(j).assign(&tokens.row(r));
            times[j] = seqs[r].t;
        }
        let mut logits = Array3::<f32>::zeros((n, l, v));
        denoiser.logits(sub.view(), times.view(), logits.view_mut())?;
        calls += 1;
        for (j, &r) in active.iter().enumerate() {
            buf.iter_mut()
                .zip(tokens.row(r).iter())
                .for_each(|(a, &t)| *a = t);
            let lg = logits.index_axis(Axis(0), j);
            seqs[r].reveal(schedule, &mut buf, lg, cfg.mask_id, &mut row)?;
            tokens
                .row_mut(r)
                .iter_mut()
                .zip(&buf)
                .for_each(|(t, &a)| *t = a);
        }
    }
    Ok(FirstHittingBatchOutput {
        calls,
        sequences: seqs.into_iter().map(|s| s.out).collect(),
    })
}
