//! Budgets: how many candidates a step reveals.

use std::sync::Arc;

use crate::backend::steps::llada_num_transfer_tokens;
use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// How a fractional expected count becomes an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// `⌊n·p⌋` (Dream: `int(num_mask_token * (1 − s/t))`).
    Truncate,
    /// `round(n·p)`, halves away from zero.
    Round,
    /// `Binomial(n, p)`: the number of candidates whose [`Purpose::ROUTING`](crate::rng::Purpose::ROUTING)
    /// uniform at `(seed, stream, step, position)` is `< p` (the count of MDLM's independent
    /// per-position reveals).
    Binomial,
}

/// The number of tokens a step reveals (before the selector; threshold-type selectors
/// ignore it). On the **last step of a block** every budget is "all remaining candidates"
/// (Dream's explicit rule; LLaDA's split reaches it by construction).
#[derive(Clone, Debug)]
pub enum Budget {
    /// LLaDA `get_num_transfer_tokens`: the `m` candidates present at the block's start are
    /// split over its `n` steps, `⌊m/n⌋` each and one more for the first `m mod n`
    /// ([`llada_num_transfer_tokens`]). Counts sum to `m`; a step may get 0 when `n > m`.
    UniformSplit,
    /// From the schedule: `n·p` with `n` the current candidate count and
    /// `p = 1 − (1 − α(s))/(1 − α(t))` the reveal probability of a masked token over
    /// `t → s`, rounded by `rounding`. With `α(t) = 1 − t` and [`Rounding::Truncate`]
    /// this is Dream's `int(n (1 − s/t))`.
    Schedule {
        /// The masking schedule `α`.
        schedule: Arc<dyn Schedule>,
        /// How `n·p` is made an integer.
        rounding: Rounding,
    },
    /// `min(k, n)` per step.
    Fixed(usize),
    /// `⌈n / r⌉` with `r` the steps left in the block including this one (spreads the
    /// remaining candidates as evenly as possible; never 0 while candidates remain).
    CeilRemaining,
    /// Dimple's fallback count (yu-rp/Dimple `generation_utils.py`, `decoding_pipeline='dim'`):
    /// on the grid `s_j = linspace(1, eps, steps + 1)`, with the current masked ratio
    /// `t = n / n₀` (`n₀` the count at the block's start) as the time, the first grid point
    /// `s_j < t` with `j ≥ step + 1` for which `⌊n (1 − s_j/t)⌋ ≥ 1` gives the count
    /// (`n` at `s = eps`, and when no grid point lies below `t`). Never 0 while candidates
    /// remain.
    DimpleRatio {
        /// The grid end `eps ∈ [0, 1)`.
        eps: f64,
    },
}

/// What a budget sees at one step of one sequence.
#[derive(Clone, Copy, Debug)]
pub struct BudgetCtx {
    /// Candidates of the block at its first step.
    pub at_block_start: usize,
    /// Candidates now.
    pub now: usize,
    /// This step's index within the block (`0..steps`).
    pub step: usize,
    /// Steps in the block.
    pub steps: usize,
    /// Current time `t`.
    pub t: f64,
    /// Next time `s < t`.
    pub s: f64,
}

impl Budget {
    /// Check the parameters.
    ///
    /// # Errors
    /// `Fixed(0)`.
    pub fn validate(&self) -> Result<()> {
        if let Budget::Fixed(0) = self {
            return Err(Error::invalid("Budget::Fixed", "k must be ≥ 1"));
        }
        if let Budget::DimpleRatio { eps } = self
            && !(0.0..1.0).contains(eps)
        {
            return Err(Error::invalid(
                "Budget::DimpleRatio.eps",
                format!("{eps} ∉ [0, 1)"),
            ));
        }
        Ok(())
    }

    /// The reveal probability `p` of [`Budget::Schedule`] (`None` for other budgets).
    ///
    /// # Errors
    /// Schedule errors; `1 − α(t) = 0`.
    pub fn reveal_probability(&self, t: f64, s: f64) -> Result<Option<f64>> {
        let Budget::Schedule { schedule, .. } = self else {
            return Ok(None);
        };
        let mt = schedule.move_chance(t)?;
        let ms = schedule.move_chance(s)?;
        if mt <= 0.0 {
            return Err(Error::ZeroProbability {
                what: format!("masked token at t = {t}: 1 − α(t) = {mt}"),
            });
        }
        Ok(Some((1.0 - ms / mt).clamp(0.0, 1.0)))
    }

    /// Whether [`count`](Self::count) needs one routing uniform per candidate.
    pub fn needs_uniforms(&self) -> bool {
        matches!(
            self,
            Budget::Schedule {
                rounding: Rounding::Binomial,
                ..
            }
        )
    }

    /// The count for `ctx`; `uniforms` are the candidates' routing uniforms (used only by
    /// [`Rounding::Binomial`]). Always `≤ ctx.now`; `ctx.now` on the block's last step.
    ///
    /// # Errors
    /// `ctx.step ≥ ctx.steps`, schedule errors.
    pub fn count(&self, ctx: &BudgetCtx, uniforms: &[f64]) -> Result<usize> {
        if ctx.step >= ctx.steps {
            return Err(Error::invalid(
                "ctx.step",
                format!("step {} outside 0..{}", ctx.step, ctx.steps),
            ));
        }
        if ctx.step + 1 == ctx.steps {
            return Ok(ctx.now);
        }
        let k = match self {
            Budget::UniformSplit => {
                llada_num_transfer_tokens(ctx.at_block_start, ctx.steps)?[ctx.step]
            }
            Budget::Fixed(k) => *k,
            Budget::CeilRemaining => ctx.now.div_ceil(ctx.steps - ctx.step),
            Budget::DimpleRatio { eps } => dimple_count(ctx, *eps),
            Budget::Schedule { rounding, .. } => {
                let p = self.reveal_probability(ctx.t, ctx.s)?.unwrap_or(1.0);
                let x = ctx.now as f64 * p;
                match rounding {
                    Rounding::Truncate => x.floor() as usize,
                    Rounding::Round => x.round() as usize,
                    Rounding::Binomial => uniforms.iter().filter(|&&u| u < p).count(),
                }
            }
        };
        Ok(k.min(ctx.now))
    }
}

/// [`Budget::DimpleRatio`].
fn dimple_count(ctx: &BudgetCtx, eps: f64) -> usize {
    let (n, n0, steps) = (ctx.now, ctx.at_block_start.max(ctx.now), ctx.steps);
    if n == 0 {
        return 0;
    }
    let grid = |j: usize| {
        if j == steps {
            eps
        } else {
            1.0 - j as f64 * (1.0 - eps) / steps as f64
        }
    };
    let t = n as f64 / n0 as f64;
    let Some(first) = (0..=steps).find(|&j| grid(j) < t) else {
        return n;
    };
    let mut k = n;
    for j in first.max(ctx.step + 1)..=steps {
        let s = grid(j);
        k = if s > eps {
            (n as f64 * (1.0 - s / t)) as usize
        } else {
            n
        };
        if k >= 1 {
            break;
        }
    }
    k.max(1)
}
