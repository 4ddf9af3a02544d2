//! The SEDD analytic (Tweedie τ-leaping) step on the absorbing graph (Lou et al. 2024,
//! "Discrete Diffusion Modeling by Estimating the Ratios of the Data Distribution";
//! louaaron/Score-Entropy-Discrete-Diffusion `sampling.py:AnalyticPredictor` with
//! `graph_lib.py:Absorbing`).
//!
//! # The law, in closed form
//!
//! Let `Δσ = σ̄(t) − σ̄(s)` and let `r_y = exp(ℓ_y)`, `y ≠ mask`, be the model's concrete
//! score at a masked position (the ratio `p_t(y)/p_t(mask)`; the entry at the current state
//! is 1 by definition, SEDD's network writes a log-score of 0 there). The anchor's update
//! `probs = staggered_score(r, Δσ) ⊙ transp_transition(mask, Δσ)` is, for the absorbing
//! graph,
//!
//! * token `y ≠ mask`: `(e^{Δσ} − 1)·r_y`;
//! * mask: `1 − (e^{Δσ} − 1)·R`, with `R = Σ_{y≠mask} r_y`,
//!
//! which sum to 1; the sampler clamps negative entries to 0 and renormalises. Hence: **stay
//! masked with probability `max(0, 1 − (e^{Δσ} − 1)·R)`, else draw `y ∝ r_y`** (the
//! mask-excluded softmax of the log-scores). An unmasked position has `probs = onehot(x)`
//! and is carried over. With the exact score `r_y = p(x0 = y | x_t)/(e^{σ̄(t)} − 1)` the
//! stay probability is `(1 − α(s))/(1 − α(t))`: the MDLM step.

use ndarray::{ArrayView3, ArrayViewMut2};

use super::{Commit, StepOutput, StepRng, apply_commits, check_common, check_times};
use crate::backend::{Backend, RowSpec};
use crate::error::{Error, Result};
use crate::rng::Purpose;
use crate::schedule::Schedule;

/// Parameters of one SEDD analytic absorbing step from time `t` to `s < t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeddAbsorbingStep {
    /// The mask (absorbing) token id, any id `< V`.
    pub mask_id: u32,
    /// The current time `t ∈ (0, 1]`.
    pub t: f64,
    /// The next time `s ∈ [0, t)` (SEDD's `t − step_size`).
    pub s: f64,
}

/// The probability that a masked position stays masked:
/// `max(0, 1 − (e^{Δσ} − 1)·e^{log_score_mass})`, where `log_score_mass = ln Σ_{y≠mask} r_y`
/// (the log-sum-exp of the log-scores without the mask entry) and `Δσ = σ̄(t) − σ̄(s) ≥ 0`
/// (`+∞` allowed: then 0). Computed as `−expm1(ln expm1(Δσ) + log_score_mass)`.
///
/// # Errors
/// `delta_sigma` NaN or negative; `log_score_mass` NaN or `+∞`.
pub fn sedd_absorbing_stay_probability(delta_sigma: f64, log_score_mass: f64) -> Result<f64> {
    if delta_sigma.is_nan() || delta_sigma < 0.0 {
        return Err(Error::invalid(
            "delta_sigma",
            format!("noise increment {delta_sigma} must be ≥ 0"),
        ));
    }
    if log_score_mass.is_nan() || log_score_mass == f64::INFINITY {
        return Err(Error::NonFinite {
            arg: "log_score_mass",
            index: 0,
            value: log_score_mass,
        });
    }
    if delta_sigma == 0.0 || log_score_mass == f64::NEG_INFINITY {
        return Ok(1.0);
    }
    let ln_c = delta_sigma.exp_m1().ln() + log_score_mass;
    Ok(if ln_c >= 0.0 { 0.0 } else { -ln_c.exp_m1() })
}

/// One SEDD analytic step `t → s` on the absorbing graph, in place.
///
/// `log_scores[b, i, :]` are the network's log concrete scores at `(b, i)` (SEDD's
/// `score_fn` output; the mask entry is ignored). For every masked position the backend
/// reads the row once, giving `ln R` (the log-sum-exp without the mask) and a draw
/// `y ∝ r_y` at the [`Purpose::CATEGORICAL`] uniform of `(seed, streams[b], step, i)`; a
/// decision uniform of [`Purpose::ROUTING`] at the same address keeps the position masked
/// iff it is below [`sedd_absorbing_stay_probability`]`(σ̄(t) − σ̄(s), ln R)`, else `y` is
/// written. Unmasked positions are carried over and not read. When `σ̄(s) = +∞` (`α(s) = 0`)
/// every position stays masked.
///
/// Commits are the unmasked positions with `logprob = ln(r_y / R)`.
///
/// # Errors
/// Shapes, token ids, `mask_id`, times (`0 ≤ s < t ≤ 1`), and a read row with NaN, `+∞` or
/// no finite logit outside the mask. On error `tokens` is unchanged.
pub fn sedd_analytic_absorbing_step<B: Backend + ?Sized, S: Schedule + ?Sized>(
    backend: &B,
    schedule: &S,
    log_scores: ArrayView3<'_, f32>,
    tokens: ArrayViewMut2<'_, u32>,
    params: &SeddAbsorbingStep,
    rng: &StepRng<'_>,
) -> Result<StepOutput> {
    let d = check_common(&log_scores, &tokens.view(), rng, Some(params.mask_id))?;
    check_times(params.t, params.s)?;
    let sigma_t = schedule.total_noise(params.t)?;
    let sigma_s = schedule.total_noise(params.s)?;
    let frozen = sigma_s == f64::INFINITY;
    let delta = if frozen {
        0.0
    } else {
        (sigma_t - sigma_s).max(0.0)
    };
    let select = if frozen {
        ndarray::Array2::from_elem((d.b, d.l), false)
    } else {
        tokens.mapv(|x| x == params.mask_id)
    };
    let spec = RowSpec {
        temperature: 1.0,
        excluded: vec![params.mask_id],
        entropy: false,
        margin: false,
    };
    let batch = rng.with_purpose(Purpose::CATEGORICAL);
    let (summaries, read) = super::summarize_selected(backend, log_scores, select, &spec, &batch)?;
    let mut commits = Vec::new();
    for ((bi, i), &r) in read.indexed_iter() {
        if !r {
            continue;
        }
        let s = summaries[[bi, i]];
        let stay = sedd_absorbing_stay_probability(delta, s.logsumexp)?;
        if rng.uniform_at(Purpose::ROUTING, bi, i) >= stay {
            commits.push(Commit {
                seq: bi,
                pos: i,
                token: s.token,
                logprob: s.token_logprob,
            });
        }
    }
    Ok(apply_commits(tokens, commits, summaries, read))
}
