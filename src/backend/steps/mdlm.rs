//! The MDLM ancestral step with SUBS carry-over (Sahoo et al. 2024, "Simple and Effective
//! Masked Diffusion Language Models"; kuleshov-group/mdlm `Diffusion._ddpm_caching_update`).

use ndarray::{ArrayView3, ArrayViewMut2};

use super::{Commit, StepOutput, StepRng, apply_commits, check_common, check_times};
use crate::backend::{Backend, RowSpec};
use crate::error::{Error, Result};
use crate::rng::Purpose;
use crate::schedule::Schedule;

/// Parameters of one MDLM ancestral step from time `t` to time `s < t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MdlmStep {
    /// The mask token id (any id `< V`).
    pub mask_id: u32,
    /// The current time `t ∈ (0, 1]`.
    pub t: f64,
    /// The next time `s ∈ [0, t)`.
    pub s: f64,
}

/// The probability that a masked token at time `t` is still masked at time `s < t` under the
/// reverse of the masking process with survival `α`: `(1 − α(s)) / (1 − α(t))`
/// (MDLM eq. 7; the mask entry of `_ddpm_caching_update`'s `q_xs`, `move_chance_s /
/// move_chance_t`). Clamped to `[0, 1]` against round-off.
///
/// # Errors
/// `t`, `s` outside `[0, 1]` or `s ≥ t`; [`Error::ZeroProbability`] when `1 − α(t) = 0`
/// (no token can be masked at `t`).
pub fn mdlm_stay_probability<S: Schedule + ?Sized>(schedule: &S, t: f64, s: f64) -> Result<f64> {
    check_times(t, s)?;
    let mt = schedule.move_chance(t)?;
    let ms = schedule.move_chance(s)?;
    if mt.is_nan() || mt <= 0.0 {
        return Err(Error::ZeroProbability {
            what: format!("masked token at t = {t}: move chance 1 − α(t) = {mt}"),
        });
    }
    Ok((ms / mt).clamp(0.0, 1.0))
}

/// One MDLM ancestral step `t → s` over a batch, in place.
///
/// For every masked position (`tokens[b, i] == mask_id`) one decision uniform `u` of
/// [`Purpose::ROUTING`] at `(seed, streams[b], step, i)` decides:
///
/// * `u < (1 − α(s))/(1 − α(t))` ([`mdlm_stay_probability`]): the position stays masked and
///   its row is **not read**;
/// * otherwise it is unmasked to `x0 ~ softmax(logits[b, i, :])` with the mask id excluded
///   (the SUBS parameterisation's `−∞` at the mask), drawn by the backend's inverse CDF at
///   the [`Purpose::CATEGORICAL`] uniform of the same address. Only these rows are read.
///
/// Unmasked positions are carried over unchanged (SUBS carry-over: MDLM's `copy_flag`), and
/// their rows are not read either. The law of the new token of a masked position is
/// therefore exactly the anchor's `q_xs = [p_x0·(mc_t − mc_s), mask: mc_s] / mc_t`
/// (`mc = 1 − α`). No noise tensor is formed: one decision uniform per masked position and
/// one draw uniform per unmasked row.
///
/// Returns the unmasked positions as [`Commit`]s with `logprob = ln p_θ(x0)` (untempered,
/// mask excluded), and the summaries of the rows read.
///
/// # Errors
/// Shapes, token ids `≥ V`, `mask_id ≥ V`, times (`0 ≤ s < t ≤ 1`), `1 − α(t) = 0`, and a
/// read row with NaN, `+∞` or no finite logit outside the mask. On error `tokens` is
/// unchanged.
pub fn mdlm_ancestral_step<B: Backend + ?Sized, S: Schedule + ?Sized>(
    backend: &B,
    schedule: &S,
    logits: ArrayView3<'_, f32>,
    tokens: ArrayViewMut2<'_, u32>,
    params: &MdlmStep,
    rng: &StepRng<'_>,
) -> Result<StepOutput> {
    check_common(&logits, &tokens.view(), rng, Some(params.mask_id))?;
    let stay = mdlm_stay_probability(schedule, params.t, params.s)?;
    let select = rng.route_masked(tokens.view(), params.mask_id, stay);
    let spec = RowSpec {
        temperature: 1.0,
        excluded: vec![params.mask_id],
        entropy: false,
        margin: false,
    };
    let batch = rng.with_purpose(Purpose::CATEGORICAL);
    let (summaries, read) = super::summarize_selected(backend, logits, select, &spec, &batch)?;
    let commits = read
        .indexed_iter()
        .filter(|&(_, &r)| r)
        .map(|((bi, i), _)| {
            let s = summaries[[bi, i]];
            Commit {
                seq: bi,
                pos: i,
                token: s.token,
                logprob: s.token_logprob,
            }
        })
        .collect();
    Ok(apply_commits(tokens, commits, summaries, read))
}
