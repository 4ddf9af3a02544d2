//! Plain batched categorical sampling from logits at a temperature.

use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2};

use super::{Commit, StepOutput, StepRng, apply_commits, check_mask, check_shapes};
use crate::backend::{Backend, RowSpec};
use crate::error::Result;
use crate::rng::Purpose;

/// Draw `tokens[b, i] ~ softmax(logits[b, i, :] / τ)` (with `spec.excluded` removed) for
/// every selected position (all when `select` is `None`), one read of each selected row.
///
/// * `spec.temperature = τ ≥ 0`; `τ = 0` is greedy (`argmax`, lowest index on ties);
/// * the draw is the backend's inverse CDF at the uniform of [`Purpose::CATEGORICAL`] at
///   `(seed, streams[b], step, i)`;
/// * every selected position is committed (in `(b, i)` order) with
///   [`Commit::logprob`] `= ℓ_token − logsumexp(ℓ)`, the **untempered** log-probability
///   (the backend contract; the tempered one is `ℓ_token/τ − logsumexp(ℓ/τ)`, which a
///   caller who needs it computes from the same logits);
/// * the summaries also carry entropy/margin when `spec` asks for them;
/// * unselected positions are neither read nor written. `tokens` is only an output here:
///   its old values are not validated.
///
/// # Errors
/// Shapes (`logits [B, L, V]` with `B, L ≥ 1`, `V ≥ 2`; `tokens` and `select` `[B, L]`;
/// `streams` of length `B`), a bad temperature or excluded id, and a selected row with NaN,
/// `+∞` or no finite allowed logit. On error `tokens` is unchanged.
///
/// ```
/// use discrete_diffusion::backend::{ReferenceBackend, RowSpec};
/// use discrete_diffusion::backend::steps::{StepRng, sample_categorical};
/// use ndarray::{Array2, Array3};
/// let logits = Array3::from_shape_vec((1, 2, 3), vec![0.0f32, 5.0, 0.0, 9.0, 0.0, 0.0]).unwrap();
/// let mut tokens = Array2::<u32>::zeros((1, 2));
/// let spec = RowSpec { temperature: 0.0, ..RowSpec::default() };
/// let rng = StepRng { seed: 7, streams: &[0], step: 0 };
/// let out = sample_categorical(&ReferenceBackend, logits.view(), None, &spec, &rng, tokens.view_mut())?;
/// assert_eq!(tokens.as_slice().unwrap(), &[1, 0]);
/// assert_eq!(out.commits.len(), 2);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn sample_categorical<B: Backend + ?Sized>(
    backend: &B,
    logits: ArrayView3<'_, f32>,
    select: Option<ArrayView2<'_, bool>>,
    spec: &RowSpec,
    rng: &StepRng<'_>,
    tokens: ArrayViewMut2<'_, u32>,
) -> Result<StepOutput> {
    // `tokens` is write-only: its shape is validated, not its contents.
    let d = check_shapes(&logits, tokens.dim(), rng, None)?;
    check_mask("select", &select, d)?;
    let sel = match &select {
        Some(s) => s.to_owned(),
        None => Array2::from_elem((d.b, d.l), true),
    };
    let batch = rng.with_purpose(Purpose::CATEGORICAL);
    let (summaries, read) = super::summarize_selected(backend, logits, sel, spec, &batch)?;
    let mut commits = Vec::new();
    for ((bi, i), &r) in read.indexed_iter() {
        if r {
            let s = summaries[[bi, i]];
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
