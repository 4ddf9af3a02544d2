//! LLaDA low-confidence / random remasking (Nie et al. 2025, "Large Language Diffusion
//! Models"; ML-GSAI/LLaDA `generate.py`) and Fast-dLLM threshold decoding (Wu et al. 2025,
//! "Fast-dLLM"; NVlabs/Fast-dLLM `llada/generate.py:get_transfer_index`).
//!
//! Both steps draw a candidate `x0` for every eligible masked position, score it, and commit
//! a subset per sequence; the other positions stay masked (that is the "remasking"). The
//! anchors' semantics, which these functions follow:
//!
//! * `x0` is drawn at temperature `τ` (LLaDA's float64 Gumbel race `exp(ℓ)/(−ln U)^τ` is
//!   exactly a draw from `softmax(ℓ/τ)`; `τ = 0` is `argmax`, lowest index on ties);
//! * the `low_confidence` score is the **untempered** probability
//!   `softmax(ℓ)[x0]` — LLaDA computes `p = softmax(logits)` from the raw logits and gathers
//!   it at the tempered draw `x0` (conformance case `llada_low_confidence_*`);
//! * the anchors do not exclude the mask id from the softmax (LLaDA's model gives it a very
//!   low logit): set `exclude_mask = false` to reproduce them exactly, `true` to remove the
//!   mask id from the draw and the confidence (then the mask is never committed);
//! * only masked positions that are also `eligible` compete (LLaDA sets the confidence of
//!   positions at and after the current block's end to `−∞`);
//! * `torch.topk` leaves the order of equal scores unspecified; here ties go to the lowest
//!   position.

use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2};

use super::{
    Commit, StepOutput, StepRng, apply_commits, check_common, check_mask, check_temperature,
};
use crate::backend::{Backend, RowSpec, RowSummary};
use crate::error::{Error, Result};
use crate::rng::Purpose;

/// LLaDA's `get_num_transfer_tokens`: the uniform split of a block's `mask_count` masked
/// tokens over `steps` steps — every step gets `⌊m / steps⌋` and the first `m mod steps`
/// steps one more (so the counts sum to `m`, are non-increasing and differ by at most 1).
///
/// # Errors
/// `steps = 0`.
///
/// ```
/// use discrete_diffusion::backend::steps::llada_num_transfer_tokens;
/// assert_eq!(llada_num_transfer_tokens(33, 8)?, vec![5, 4, 4, 4, 4, 4, 4, 4]);
/// assert_eq!(llada_num_transfer_tokens(3, 5)?, vec![1, 1, 1, 0, 0]);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn llada_num_transfer_tokens(mask_count: usize, steps: usize) -> Result<Vec<usize>> {
    if steps == 0 {
        return Err(Error::invalid("steps", "the number of steps must be ≥ 1"));
    }
    let base = mask_count / steps;
    let rem = mask_count % steps;
    Ok((0..steps).map(|j| base + usize::from(j < rem)).collect())
}

/// How a candidate position is scored (higher = committed first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scorer {
    /// `p(x0) = softmax(ℓ)[x0]`, untempered (LLaDA `remasking='low_confidence'`).
    Confidence,
    /// `p₁ − p₂` of `softmax(ℓ)` (Dream `topk_margin` at `τ = 0`), untempered.
    Margin,
    /// `−H(softmax(ℓ))` in nats (Dream `entropy`), untempered.
    NegEntropy,
    /// A uniform of [`Purpose::SELECTION`] at `(seed, streams[b], step, i)` (LLaDA
    /// `remasking='random'`). Only the committed rows are read.
    Random,
}

/// Parameters of one LLaDA top-k step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LladaStep {
    /// The mask token id.
    pub mask_id: u32,
    /// Draw temperature `τ ≥ 0` (`0`: greedy).
    pub temperature: f64,
    /// The score ranking the candidates.
    pub scorer: Scorer,
    /// Remove the mask id from the draw and the scores (`false` reproduces LLaDA).
    pub exclude_mask: bool,
}

/// Parameters of one Fast-dLLM threshold step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdStep {
    /// The mask token id.
    pub mask_id: u32,
    /// Draw temperature `τ ≥ 0` (`0`: greedy).
    pub temperature: f64,
    /// Commit every candidate with confidence `p(x0) ≥ threshold` (`threshold ∈ [0, 1]`).
    pub threshold: f64,
    /// Remove the mask id from the draw and the confidence (`false` reproduces Fast-dLLM).
    pub exclude_mask: bool,
}

/// The candidates of every sequence: masked and eligible positions.
fn candidates(
    tokens: &ArrayView2<'_, u32>,
    eligible: &Option<ArrayView2<'_, bool>>,
    mask_id: u32,
) -> Array2<bool> {
    let mut c = tokens.mapv(|x| x == mask_id);
    if let Some(e) = eligible {
        c.zip_mut_with(e, |c, &e| *c &= e);
    }
    c
}

fn spec_for(temperature: f64, mask_id: u32, exclude_mask: bool, scorer: Scorer) -> RowSpec {
    RowSpec {
        temperature,
        excluded: if exclude_mask { vec![mask_id] } else { vec![] },
        entropy: scorer == Scorer::NegEntropy,
        margin: scorer == Scorer::Margin,
    }
}

fn score_of(s: &RowSummary, scorer: Scorer) -> f64 {
    match scorer {
        Scorer::Confidence => s.token_logprob.exp(),
        Scorer::Margin => s.margin,
        Scorer::NegEntropy => -s.entropy,
        Scorer::Random => unreachable!("random scores do not come from rows"),
    }
}

/// The positions of `scored` (pairs `(score, i)`) in commit order: score descending, then
/// position ascending.
fn rank(scored: &mut [(f64, usize)]) {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
}

fn commit_of(summaries: &Array2<RowSummary>, b: usize, i: usize) -> Commit {
    let s = summaries[[b, i]];
    Commit {
        seq: b,
        pos: i,
        token: s.token,
        logprob: s.token_logprob,
    }
}

/// One LLaDA step: commit the `k[b]` best-scored candidates of every sequence `b`.
///
/// Candidates are the positions with `tokens[b, i] == mask_id` and `eligible[b, i]` (all
/// masked positions when `eligible` is `None`). For each candidate the backend draws
/// `x0 ~ softmax(ℓ/τ)` (mask excluded iff `exclude_mask`) with the [`Purpose::CATEGORICAL`]
/// uniform at `(seed, streams[b], step, i)` and the step scores it by `scorer` (see the
/// module docs for the anchor semantics); the `k[b]` highest scores are committed
/// (`tokens[b, i] = x0`), ties to the lowest position. `k` typically comes from
/// [`llada_num_transfer_tokens`].
///
/// Rows read: every candidate row, except with [`Scorer::Random`], where the selection is
/// made first and only the `k[b]` committed rows are read (the same tokens as reading all,
/// since draws are addressed by position).
///
/// # Errors
/// Shapes (`eligible [B, L]`, `k` of length `B`), token ids, `mask_id`, the temperature,
/// `k[b]` larger than the number of candidates of sequence `b`, and a read row with NaN,
/// `+∞` or no finite allowed logit. On error `tokens` is unchanged.
pub fn llada_step<B: Backend + ?Sized>(
    backend: &B,
    logits: ArrayView3<'_, f32>,
    tokens: ArrayViewMut2<'_, u32>,
    eligible: Option<ArrayView2<'_, bool>>,
    k: &[usize],
    params: &LladaStep,
    rng: &StepRng<'_>,
) -> Result<StepOutput> {
    let d = check_common(&logits, &tokens.view(), rng, Some(params.mask_id))?;
    check_mask("eligible", &eligible, d)?;
    check_temperature(params.temperature)?;
    crate::validate::len("k", k.len(), d.b)?;
    let cand = candidates(&tokens.view(), &eligible, params.mask_id);
    for (b, &kb) in k.iter().enumerate() {
        let n = cand.row(b).iter().filter(|&&c| c).count();
        if kb > n {
            return Err(Error::invalid(
                "k",
                format!("k[{b}] = {kb} exceeds the {n} eligible masked positions of sequence {b}"),
            ));
        }
    }
    let spec = spec_for(
        params.temperature,
        params.mask_id,
        params.exclude_mask,
        params.scorer,
    );
    let batch = rng.with_purpose(Purpose::CATEGORICAL);
    let mut chosen: Vec<Vec<usize>> = Vec::with_capacity(d.b);
    let (summaries, read) = if params.scorer == Scorer::Random {
        let mut select = Array2::from_elem((d.b, d.l), false);
        for (b, &kb) in k.iter().enumerate() {
            let mut scored: Vec<(f64, usize)> = (0..d.l)
                .filter(|&i| cand[[b, i]])
                .map(|i| (rng.uniform_at(Purpose::SELECTION, b, i), i))
                .collect();
            rank(&mut scored);
            let mut pick: Vec<usize> = scored[..kb].iter().map(|&(_, i)| i).collect();
            pick.sort_unstable();
            for &i in &pick {
                select[[b, i]] = true;
            }
            chosen.push(pick);
        }
        super::summarize_selected(backend, logits, select, &spec, &batch)?
    } else {
        let (summaries, read) =
            super::summarize_selected(backend, logits, cand.clone(), &spec, &batch)?;
        for (b, &kb) in k.iter().enumerate() {
            let mut scored: Vec<(f64, usize)> = (0..d.l)
                .filter(|&i| cand[[b, i]])
                .map(|i| (score_of(&summaries[[b, i]], params.scorer), i))
                .collect();
            rank(&mut scored);
            let mut pick: Vec<usize> = scored[..kb].iter().map(|&(_, i)| i).collect();
            pick.sort_unstable();
            chosen.push(pick);
        }
        (summaries, read)
    };
    let commits = chosen
        .iter()
        .enumerate()
        .flat_map(|(b, pick)| pick.iter().map(move |&i| (b, i)))
        .map(|(b, i)| commit_of(&summaries, b, i))
        .collect();
    Ok(apply_commits(tokens, commits, summaries, read))
}

/// One Fast-dLLM threshold step: for every sequence with at least one candidate, commit the
/// most confident candidate and every other candidate whose confidence is `≥ threshold`.
///
/// Candidates and draws are as in [`llada_step`]; the confidence is the untempered
/// `p(x0) = softmax(ℓ)[x0]` (Fast-dLLM gathers `softmax(logits.float64())` at `x0`). The
/// comparison is **`≥`**: Fast-dLLM ranks all masked positions by confidence, keeps the
/// first, and drops the others whose confidence is `< threshold`. Ties for the most
/// confident go to the lowest position. Every candidate row is read.
///
/// # Errors
/// Shapes, token ids, `mask_id`, the temperature, `threshold ∉ [0, 1]`, and a read row with
/// NaN, `+∞` or no finite allowed logit. On error `tokens` is unchanged.
pub fn threshold_step<B: Backend + ?Sized>(
    backend: &B,
    logits: ArrayView3<'_, f32>,
    tokens: ArrayViewMut2<'_, u32>,
    eligible: Option<ArrayView2<'_, bool>>,
    params: &ThresholdStep,
    rng: &StepRng<'_>,
) -> Result<StepOutput> {
    let d = check_common(&logits, &tokens.view(), rng, Some(params.mask_id))?;
    check_mask("eligible", &eligible, d)?;
    check_temperature(params.temperature)?;
    crate::validate::probability("threshold", params.threshold)?;
    let cand = candidates(&tokens.view(), &eligible, params.mask_id);
    let spec = spec_for(
        params.temperature,
        params.mask_id,
        params.exclude_mask,
        Scorer::Confidence,
    );
    let batch = rng.with_purpose(Purpose::CATEGORICAL);
    let (summaries, read) =
        super::summarize_selected(backend, logits, cand.clone(), &spec, &batch)?;
    let mut commits = Vec::new();
    for b in 0..d.b {
        let mut best: Option<(f64, usize)> = None;
        for i in (0..d.l).filter(|&i| cand[[b, i]]) {
            let c = score_of(&summaries[[b, i]], Scorer::Confidence);
            if best.is_none_or(|(bc, _)| c > bc) {
                best = Some((c, i));
            }
        }
        let Some((_, top)) = best else { continue };
        for i in (0..d.l).filter(|&i| cand[[b, i]]) {
            if i == top || score_of(&summaries[[b, i]], Scorer::Confidence) >= params.threshold {
                commits.push(commit_of(&summaries, b, i));
            }
        }
    }
    Ok(apply_commits(tokens, commits, summaries, read))
}
