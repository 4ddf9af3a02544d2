//! One unmasking step: one backend pass over the candidate rows, then scorer × budget ×
//! selector in `O(B·L)`.

use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2};

use crate::backend::steps::{Commit, StepOutput, StepRng};
use crate::backend::{Backend, RowSpec, RowSummary};
use crate::error::{Error, Result};
use crate::rng::{Purpose, RngKey};
use crate::sample::select::{BudgetCtx, Candidate, Unmasking};

/// Where a step sits in its block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepPlace {
    /// The step's index in the block, `0..steps`.
    pub step: usize,
    /// The number of steps of the block.
    pub steps: usize,
    /// Current time `t`.
    pub t: f64,
    /// Next time `s < t`.
    pub s: f64,
}

/// The summaries of the candidate rows and the positions each sequence reveals.
pub(crate) struct Plan {
    pub summaries: Array2<RowSummary>,
    pub chosen: Vec<Vec<usize>>,
}

/// Validate and plan an unmasking step (nothing is written).
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan<B: Backend + ?Sized>(
    backend: &B,
    logits: ArrayView3<'_, f32>,
    original: Option<ArrayView3<'_, f32>>,
    candidates: ArrayView2<'_, bool>,
    policy: &Unmasking,
    spec: &RowSpec,
    at_block_start: &[usize],
    place: StepPlace,
    rng: &StepRng<'_>,
) -> Result<Plan> {
    let (b, l, _) = logits.dim();
    if candidates.dim() != (b, l) {
        return Err(Error::shape(
            "candidates",
            format!("[{b}, {l}]"),
            format!("{:?}", candidates.shape()),
        ));
    }
    crate::validate::len("at_block_start", at_block_start.len(), b)?;
    crate::validate::len("rng.streams", rng.streams.len(), b)?;
    policy.validate()?;
    let mut spec = spec.clone();
    policy.score.require(&mut spec);
    spec.entropy |= policy.selector.needs_entropy();
    let mut summaries = Array2::from_elem((b, l), RowSummary::default());
    if candidates.iter().any(|&c| c) {
        backend.summarize(
            logits,
            Some(candidates),
            &spec,
            &rng.with_purpose(Purpose::CATEGORICAL),
            summaries.view_mut(),
        )?;
    }
    let scored = match original {
        Some(orig) if candidates.iter().any(|&c| c) => {
            if orig.dim() != logits.dim() {
                return Err(Error::shape(
                    "original",
                    format!("{:?}", logits.shape()),
                    format!("{:?}", orig.shape()),
                ));
            }
            Some(original_summaries(
                backend, orig, candidates, &summaries, &spec, rng,
            )?)
        }
        _ => None,
    };
    let scored_ref = scored.as_ref().unwrap_or(&summaries);
    let mut chosen = Vec::with_capacity(b);
    for bi in 0..b {
        let key = RngKey::for_stream(rng.seed, rng.streams[bi]);
        let cands: Vec<Candidate> = (0..l)
            .filter(|&i| candidates[[bi, i]])
            .map(|i| {
                let s = &scored_ref[[bi, i]];
                Candidate {
                    pos: i,
                    score: policy.score.score(s, i, key, rng.step),
                    entropy: s.entropy,
                }
            })
            .collect();
        let uniforms: Vec<f64> = if policy.budget.needs_uniforms() {
            cands
                .iter()
                .map(|c| rng.uniform(Purpose::ROUTING, bi, c.pos).unwrap_or(1.0))
                .collect()
        } else {
            Vec::new()
        };
        let ctx = BudgetCtx {
            at_block_start: at_block_start[bi],
            now: cands.len(),
            step: place.step,
            steps: place.steps,
            t: place.t,
            s: place.s,
        };
        let k = policy.budget.count(&ctx, &uniforms)?;
        if place.step + 1 == place.steps {
            // The last step of a block reveals every remaining candidate.
            chosen.push(cands.iter().map(|c| c.pos).collect());
        } else {
            chosen.push(policy.selector.select(&cands, k));
        }
    }
    Ok(Plan { summaries, chosen })
}

/// The summaries the scores read under `original_confidence`: one greedy backend pass over
/// the candidate rows of the untransformed `orig` (same exclusions, entropy/margin as
/// requested), with `token` the token drawn from the transformed row and
/// `token_logprob = ℓ_orig[token] − logsumexp(ℓ_orig)`.
fn original_summaries<B: Backend + ?Sized>(
    backend: &B,
    orig: ArrayView3<'_, f32>,
    candidates: ArrayView2<'_, bool>,
    drawn: &Array2<RowSummary>,
    spec: &RowSpec,
    rng: &StepRng<'_>,
) -> Result<Array2<RowSummary>> {
    let ospec = RowSpec {
        temperature: 0.0,
        ..spec.clone()
    };
    let mut out = Array2::from_elem(candidates.dim(), RowSummary::default());
    backend.summarize(
        orig,
        Some(candidates),
        &ospec,
        &rng.with_purpose(Purpose::CATEGORICAL),
        out.view_mut(),
    )?;
    for ((bi, i), s) in out.indexed_iter_mut() {
        if candidates[[bi, i]] {
            let tok = drawn[[bi, i]].token;
            s.token = tok;
            s.token_logprob = orig[[bi, i, tok as usize]] as f64 - s.logsumexp;
        }
    }
    Ok(out)
}

/// Write the plan's reveals: `tokens[b, i] = summaries[b, i].token`; a drawn mask id
/// (possible only when the mask is not excluded) leaves the position masked and is not a
/// reveal.
pub(crate) fn commit(
    tokens: &mut ArrayViewMut2<'_, u32>,
    summaries: &Array2<RowSummary>,
    chosen: &[Vec<usize>],
    mask_id: u32,
) -> Vec<Commit> {
    let mut out = Vec::new();
    for (bi, pick) in chosen.iter().enumerate() {
        for &i in pick {
            let s = summaries[[bi, i]];
            if s.token == mask_id {
                continue;
            }
            tokens[[bi, i]] = s.token;
            out.push(Commit {
                seq: bi,
                pos: i,
                token: s.token,
                logprob: s.token_logprob,
            });
        }
    }
    out
}

/// One unmasking step over `logits [B, L, V]` (already transformed), in place.
///
/// Every candidate row (`candidates[b, i]`) is read once by [`Backend::summarize`] with
/// `spec` (draw temperature, excluded ids; the entropy/margin the policy needs are
/// switched on), drawing `x0` at the [`Purpose::CATEGORICAL`] uniform of
/// `(seed, streams[b], step, i)`. The policy's score ranks the candidates, its budget (with
/// `at_block_start[b]` candidates at the block's start and `place`) gives `k`, its
/// selector picks the reveals (on the block's last step, `place.step + 1 = place.steps`,
/// every candidate), which are written (`tokens[b, i] = x0`) and returned with
/// their log-probability under the row read. A drawn `mask_id` (only possible when `spec`
/// does not exclude it) leaves its position masked.
///
/// # Errors
/// Shapes, invalid policy, and the backend's errors (bad spec, a candidate row with NaN,
/// `+∞` or no finite allowed logit). On error `tokens` is unchanged.
#[allow(clippy::too_many_arguments)]
pub fn unmask_step<B: Backend + ?Sized>(
    backend: &B,
    logits: ArrayView3<'_, f32>,
    mut tokens: ArrayViewMut2<'_, u32>,
    candidates: ArrayView2<'_, bool>,
    policy: &Unmasking,
    spec: &RowSpec,
    mask_id: u32,
    at_block_start: &[usize],
    place: StepPlace,
    rng: &StepRng<'_>,
) -> Result<StepOutput> {
    let (b, l, _) = logits.dim();
    if tokens.dim() != (b, l) {
        return Err(Error::shape(
            "tokens",
            format!("[{b}, {l}]"),
            format!("{:?}", tokens.shape()),
        ));
    }
    let p = plan(
        backend,
        logits,
        None,
        candidates,
        policy,
        spec,
        at_block_start,
        place,
        rng,
    )?;
    let commits = commit(&mut tokens, &p.summaries, &p.chosen, mask_id);
    Ok(StepOutput {
        commits,
        summaries: p.summaries,
        read: candidates.to_owned(),
    })
}
