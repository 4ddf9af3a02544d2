//! The discrete-flow-matching Euler step on the masked mixture path (Gat et al. 2024,
//! "Discrete Flow Matching"; facebookresearch/flow_matching
//! `solver/discrete_solver.py:MixtureDiscreteEulerSolver`).
//!
//! Flow time `s ∈ [0, 1]` runs from the source (`s = 0`, all masked) to the data (`s = 1`);
//! the path keeps the data token with probability `κ(s) = α(1 − s)` ([`Kappa`]). With the
//! source a point mass on the mask, the posterior-to-velocity map of the solver gives a
//! masked position the jump intensity `λ(s) = κ̇(s)/(1 − κ(s))` towards `X1 ~ p_{1|s}`, and
//! an unmasked position (whose posterior is its own token) intensity 0.

use ndarray::{ArrayView3, ArrayViewMut2};

use super::{Commit, StepOutput, StepRng, apply_commits, check_common};
use crate::backend::{Backend, RowSpec};
use crate::error::{Error, Result};
use crate::rng::Purpose;
use crate::schedule::{Kappa, Schedule};

/// How the jump probability of a masked position over `[s, s + h]` is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JumpRule {
    /// `1 − exp(−h·λ(s))`: the rate frozen at `s` and integrated exactly (flow_matching
    /// 1.0.10's `MixtureDiscreteEulerSolver`, conformance `euler_step_*`; DESIGN's "exact
    /// jump").
    Exponential,
    /// `min(1, h·λ(s))`: the first-order Euler probability (the solver's earlier
    /// `x_t + h·u` form, clamped).
    Euler,
    /// `(κ(s + h) − κ(s))/(1 − κ(s))`: the path's own transition probability, i.e. the rate
    /// integrated along the path. This is exactly the MDLM ancestral step under
    /// `t = 1 − s` (see [`mdlm_stay_probability`](super::mdlm_stay_probability)).
    Integrated,
}

/// Parameters of one DFM Euler step from flow time `s` to `s_next`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DfmEulerStep {
    /// The mask token id (the source state).
    pub mask_id: u32,
    /// The current flow time `s ∈ [0, 1)`.
    pub s: f64,
    /// The next flow time `s_next ∈ (s, 1]` (step `h = s_next − s`).
    pub s_next: f64,
    /// The jump probability rule.
    pub rule: JumpRule,
    /// The solver's last step: every masked position jumps, to `X1 ~ p_{1|s}` (the solver
    /// returns a sample of `p_{1|t}` at its final grid interval).
    pub final_step: bool,
    /// Remove the mask id from `p_{1|s}` (`true`: the mask is never emitted). `false`
    /// reproduces the solver, which draws `X1` from the full softmax and leaves the position
    /// masked when `X1` is the mask.
    pub exclude_mask: bool,
}

/// The probability that a masked position jumps during `[s, s_next]` under `rule`.
///
/// # Errors
/// Times outside `[0, 1]` or `s_next ≤ s`; [`Error::ZeroProbability`] when `κ(s) = 1` (no
/// position can be masked at `s`).
pub fn dfm_jump_probability<S: Schedule>(
    kappa: &Kappa<S>,
    s: f64,
    s_next: f64,
    rule: JumpRule,
) -> Result<f64> {
    crate::validate::time("s", s)?;
    crate::validate::time("s_next", s_next)?;
    if s_next <= s {
        return Err(Error::invalid(
            "s_next",
            format!("the next flow time {s_next} must exceed the current one {s}"),
        ));
    }
    let k = kappa.kappa(s)?;
    let one_minus = 1.0 - k;
    if one_minus.is_nan() || one_minus <= 0.0 {
        return Err(Error::ZeroProbability {
            what: format!("masked token at flow time s = {s}: 1 − κ(s) = {one_minus}"),
        });
    }
    let h = s_next - s;
    let p = match rule {
        JumpRule::Integrated => (kappa.kappa(s_next)? - k) / one_minus,
        JumpRule::Exponential | JumpRule::Euler => {
            let rate = kappa.kappa_derivative(s)? / one_minus;
            if rate.is_nan() {
                return Err(Error::Numerical {
                    what: "dfm_jump_probability",
                    reason: format!("jump rate κ̇/(1 − κ) is NaN at s = {s}"),
                });
            }
            if rule == JumpRule::Exponential {
                -(-h * rate).exp_m1()
            } else {
                h * rate
            }
        }
    };
    Ok(p.clamp(0.0, 1.0))
}

/// One DFM Euler step `s → s_next` on the masked mixture path, in place.
///
/// For every masked position one decision uniform `u` of [`Purpose::ROUTING`] at
/// `(seed, streams[b], step, i)` decides a jump iff `u ≥ 1 − p_jump`, with `p_jump` from
/// [`dfm_jump_probability`] (`1` on the final step). Only the jumping rows are read: the
/// backend draws `X1 ~ softmax(logits[b, i, :])` (mask excluded iff `exclude_mask`) at the
/// [`Purpose::CATEGORICAL`] uniform of the same address and writes it. Unmasked positions
/// are carried over (their posterior is a point mass on themselves: intensity 0).
///
/// The law of the new token of a masked position is `p_jump · p̃(y)` for `y ≠ mask` and
/// `1 − p_jump (1 − p̃(mask))` for the mask, `p̃` the (mask-excluded or full) softmax: the
/// solver's law with `div_free = 0`. With [`JumpRule::Integrated`], `κ(s) = α(1 − s)` and
/// `exclude_mask`, it is the MDLM ancestral step from `t = 1 − s` to `1 − s_next`, with the
/// same random numbers (same addresses and decision rule), hence the same tokens (up to
/// round-off in the two ways of computing the stay probability).
///
/// Commits are the written positions with `logprob = ln p̃(X1)` (a commit of the mask id,
/// possible only without `exclude_mask`, leaves the position masked).
///
/// # Errors
/// Shapes, token ids, `mask_id`, times (`0 ≤ s < s_next ≤ 1`), `κ(s) = 1`, and a read row
/// with NaN, `+∞` or no finite allowed logit. On error `tokens` is unchanged.
pub fn dfm_euler_step<B: Backend + ?Sized, S: Schedule>(
    backend: &B,
    kappa: &Kappa<S>,
    logits: ArrayView3<'_, f32>,
    tokens: ArrayViewMut2<'_, u32>,
    params: &DfmEulerStep,
    rng: &StepRng<'_>,
) -> Result<StepOutput> {
    check_common(&logits, &tokens.view(), rng, Some(params.mask_id))?;
    let p_jump = dfm_jump_probability(kappa, params.s, params.s_next, params.rule)?;
    let stay = if params.final_step { 0.0 } else { 1.0 - p_jump };
    let select = rng.route_masked(tokens.view(), params.mask_id, stay);
    let spec = RowSpec {
        temperature: 1.0,
        excluded: if params.exclude_mask {
            vec![params.mask_id]
        } else {
            vec![]
        },
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
