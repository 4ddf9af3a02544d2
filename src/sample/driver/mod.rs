//! The sampler driver: one loop over a [`Denoiser`](crate::model::Denoiser) for every masked-diffusion decoder
//! (survey §V): time grid, prompts and fixed positions (infilling), blocks (LLaDA
//! semi-autoregressive and BD3 block diffusion), stop rules, EOS/padding, an observer.
//!
//! # The loop
//!
//! Positions are **fixed** (never written) when `fixed[b, i]` (default: every position
//! whose initial token is not the mask: the prompt, or the given context of an infilling
//! task). Without blocks the generation region is the whole sequence; with
//! [`Blocks`] `{ start, length }` it is cut into blocks `[start + j·length, …)` processed
//! left to right, positions after the current block staying untouched (LLaDA sets their
//! confidence to `−∞`; BD3 does not even look at them: that difference belongs to the
//! denoiser, which [`BlockModel::begin_block`] tells when a block starts so that it can
//! cache the committed prefix). Before the first block the driver calls
//! [`BlockModel::prefill`] once with the prompt `tokens[.., ..P]` (`P`: the first block's
//! start, or without blocks the longest prefix fixed in every sequence): the one place
//! where caches reset and prompt caches fill. Each block runs `steps` steps on the grid
//! `t_k = 1 − (k/steps)(1 − t_min)` ([`TimeGrid::uniform`]); for LLaDA's
//! "`steps` split over the blocks" pass `steps / num_blocks`.
//!
//! At each step the driver: calls the denoiser once on all sequences (`times[b] = t_k`),
//! applies the [logit transforms](crate::sample::transform) to the rows it reads, runs the
//! [`Policy`] over the block's candidates (masked, not fixed, in the block), sends a
//! [`StepEvent`] to the observer, fills padding after EOS if asked, and checks the stop
//! rules. A block ends when it has no masked position left (except under remasking
//! policies, which run every step) or after its last step. Any position still masked then
//! (grids ending at `t_min > 0` under the ancestral/jump/ReMDM policies, or a stop rule) is
//! filled from the last logits with the draw temperature: the final "noise removal" of
//! MDLM, without a further denoiser call. The mask id (and `pad_id`) is never drawn unless
//! `exclude_mask = false`, in which case a drawn mask leaves the position masked.
//!
//! Randomness: step `k` (global, counted across blocks) addresses every number at
//! `(seed, streams[b], purpose, k, i)` (DESIGN §3.7), so results never depend on batch
//! composition.
//!
//! Every per-row operation over `V` goes through the backend ([`Backend::summarize`] and
//! the fused steps of [`crate::backend::steps`]); the driver itself is `O(B·L)` per step
//! plus the transforms of the rows read. Memory: one `[B, L, V]` logit buffer.

mod config;
mod hooks;
mod observer;
mod policy;
mod unmask;

pub use config::{Blocks, Changes, EosPadding, Policy, RunReport, SamplerConfig, StopRule};

pub use hooks::{BlockModel, NoHook};
pub use observer::{Observer, StepEvent};
pub use unmask::{StepPlace, unmask_step};

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayViewMut2, Axis, s};

use crate::backend::steps::{Commit, StepRng};
use crate::backend::{Backend, RowSpec, RowSummary};
use crate::error::{Error, Result};
use crate::rng::Purpose;
use crate::sample::transform::LogitTransform;
use crate::schedule::TimeGrid;

/// The mutable state of one run.
pub(super) struct State<'t> {
    pub(super) tokens: ArrayViewMut2<'t, u32>,
    pub(super) fixed: Array2<bool>,
    pub(super) logits: Array3<f32>,
    /// A copy of the untransformed logits ([`SamplerConfig::original_confidence`]).
    pub(super) original: Option<Array3<f32>>,
    pub(super) conf: Array2<f64>,
    pub(super) stable: Array2<(u32, usize)>,
    /// Rows of the buffer already transformed since the last denoiser call.
    pub(super) transformed: Array2<bool>,
    pub(super) report: RunReport,
    pub(super) step: u32,
}

/// Run `config` on `tokens` (`[B, L]`, masked positions to generate) in place.
///
/// `fixed` (`[B, L]`, default: the initially unmasked positions) are never written;
/// `streams[b]` is sequence `b`'s RNG stream. Returns what happened; per-step details go
/// to `observer`.
///
/// # Errors
/// Invalid configuration, shapes (`streams` of length `B`, `fixed` `[B, L]`), tokens
/// `≥ V`, a fixed position holding the mask, and the denoiser's and backend's errors. On
/// error `tokens` may be partly decoded.
#[allow(clippy::too_many_arguments)]
pub fn run<M: BlockModel + ?Sized, B: Backend + ?Sized>(
    model: &mut M,
    backend: &B,
    config: &SamplerConfig,
    tokens: ArrayViewMut2<'_, u32>,
    fixed: Option<ArrayView2<'_, bool>>,
    seed: u64,
    streams: &[u64],
    observer: &mut dyn Observer,
) -> Result<RunReport> {
    let (b, l) = tokens.dim();
    let v = model.vocab_size();
    if b == 0 || l == 0 {
        return Err(Error::shape(
            "tokens",
            "[B ≥ 1, L ≥ 1]",
            format!("[{b}, {l}]"),
        ));
    }
    config.validate(v, l)?;
    crate::validate::len("streams", streams.len(), b)?;
    crate::validate::tokens("tokens", tokens.iter(), v)?;
    let fixed = match fixed {
        Some(f) if f.dim() != (b, l) => {
            return Err(Error::shape(
                "fixed",
                format!("[{b}, {l}]"),
                format!("{:?}", f.shape()),
            ));
        }
        Some(f) => f.to_owned(),
        None => tokens.mapv(|x| x != config.mask_id),
    };
    if let Some(((bi, i), _)) = fixed
        .indexed_iter()
        .find(|&(ix, &f)| f && tokens[ix] == config.mask_id)
    {
        return Err(Error::invalid(
            "fixed",
            format!("fixed position ({bi}, {i}) holds the mask"),
        ));
    }
    if let Some(bk) = config.blocks
        && let Some(((bi, i), _)) = fixed
            .indexed_iter()
            .find(|&((bi, i), &f)| i < bk.start && !f && tokens[[bi, i]] == config.mask_id)
    {
        return Err(Error::invalid(
            "tokens",
            format!(
                "masked position ({bi}, {i}) lies before the first block (start {})",
                bk.start
            ),
        ));
    }
    let mut st = State {
        tokens,
        fixed,
        logits: Array3::zeros((b, l, v)),
        original: config.keeps_original().then(|| Array3::zeros((b, l, v))),
        conf: Array2::from_elem((b, l), f64::NEG_INFINITY),
        stable: Array2::from_elem((b, l), (u32::MAX, 0)),
        transformed: Array2::from_elem((b, l), false),
        report: RunReport::default(),
        step: 0,
    };
    let blocks: Vec<(usize, usize)> = match config.blocks {
        None => vec![(0, l)],
        Some(bk) => (bk.start..l)
            .step_by(bk.length)
            .map(|a| (a, a + bk.length))
            .collect(),
    };
    let grid = TimeGrid::uniform(config.steps, config.t_min)?;
    let spec = config.row_spec();
    let max_nfe = config.stop.iter().find_map(|r| match r {
        StopRule::MaxNfe(n) => Some(*n),
        _ => None,
    });
    let prompt_len = prompt_len(config, st.fixed.view());
    model.prefill(st.tokens.slice(s![.., ..prompt_len]))?;
    'blocks: for (bi_block, &(a, e)) in blocks.iter().enumerate() {
        model.begin_block(a..e, st.tokens.view())?;
        let in_block = |st: &State<'_>| {
            let mut c = Array2::from_elem((b, l), false);
            for bi in 0..b {
                for i in a..e {
                    c[[bi, i]] = !st.fixed[[bi, i]] && st.tokens[[bi, i]] == config.mask_id;
                }
            }
            c
        };
        let at_start: Vec<usize> = in_block(&st)
            .map_axis(Axis(1), |r| r.iter().filter(|&&x| x).count())
            .to_vec();
        let mut last_logits = false;
        for (k, (t, s)) in grid.steps().enumerate() {
            let cand = in_block(&st);
            if !config.remasks() && !cand.iter().any(|&c| c) {
                break;
            }
            if max_nfe.is_some_and(|n| st.report.nfe >= n) {
                st.report.stopped_early = true;
                fill(
                    model,
                    backend,
                    config,
                    &spec,
                    &mut st,
                    streams,
                    seed,
                    observer,
                    (t, s),
                    bi_block,
                    None,
                )?;
                break 'blocks;
            }
            let times = Array1::from_elem(b, t);
            model.logits(st.tokens.view(), times.view(), st.logits.view_mut())?;
            if let Some(o) = st.original.as_mut() {
                o.assign(&st.logits);
            }
            st.transformed.fill(false);
            st.report.nfe += 1;
            last_logits = true;
            let rng = StepRng {
                seed,
                streams,
                step: st.step,
            };
            let place = StepPlace {
                step: k,
                steps: config.steps,
                t,
                s,
            };
            apply_rows(&config.effective_transforms(), &mut st, cand.view())?;
            let (reveals, remasked) = policy::policy_step(
                backend,
                config,
                &spec,
                &mut st,
                cand.view(),
                &at_start,
                place,
                (a, e),
                &rng,
            )?;
            finish_step(
                config,
                &mut st,
                &reveals,
                &remasked,
                observer,
                bi_block,
                (t, s),
            );
        }
        if last_logits && in_block(&st).iter().any(|&c| c) {
            let (t, s) = grid.step(config.steps - 1)?;
            fill(
                model,
                backend,
                config,
                &spec,
                &mut st,
                streams,
                seed,
                observer,
                (t, s),
                bi_block,
                Some((a, e)),
            )?;
        }
    }
    Ok(st.report)
}

/// The prompt length `P` given to [`BlockModel::prefill`]: the first block's start with
/// blocks, otherwise the longest prefix fixed in every sequence.
fn prompt_len(config: &SamplerConfig, fixed: ArrayView2<'_, bool>) -> usize {
    match config.blocks {
        Some(bk) => bk.start,
        None => (0..fixed.ncols())
            .take_while(|&i| fixed.column(i).iter().all(|&f| f))
            .count(),
    }
}

/// One driver step on logits the caller already holds (the driver's per-step work without
/// the denoiser call): the transforms on the rows the policy reads (in place in `logits`),
/// then the policy over the candidates of `block` (masked, not `fixed`, inside
/// `block = (start, end)`). `place` locates the step in its block's grid and `step` is the
/// global RNG step. For [`Policy::Unmask`] budgets the block's candidate count at its start
/// is taken to be the current count. ReMDM's confidence memory starts empty (`−∞`).
/// Returns the reveals and the remasked positions.
///
/// # Errors
/// As [`run`] (configuration, shapes, ids), `block` outside `[0, L]` or empty.
#[allow(clippy::too_many_arguments)]
pub fn step<B: Backend + ?Sized>(
    backend: &B,
    config: &SamplerConfig,
    logits: &mut Array3<f32>,
    tokens: ArrayViewMut2<'_, u32>,
    fixed: ArrayView2<'_, bool>,
    block: (usize, usize),
    place: StepPlace,
    step: u32,
    seed: u64,
    streams: &[u64],
) -> Result<Changes> {
    let (b, l, v) = logits.dim();
    config.validate(v, l)?;
    if tokens.dim() != (b, l) || fixed.dim() != (b, l) {
        return Err(Error::shape(
            "tokens/fixed",
            format!("[{b}, {l}]"),
            "another shape",
        ));
    }
    crate::validate::len("streams", streams.len(), b)?;
    crate::validate::tokens("tokens", tokens.iter(), v)?;
    let (a, e) = block;
    if a >= e || e > l {
        return Err(Error::invalid(
            "block",
            format!("{block:?} is not a non-empty range of 0..{l}"),
        ));
    }
    let mut st = State {
        tokens,
        fixed: fixed.to_owned(),
        original: config.keeps_original().then(|| logits.clone()),
        logits: std::mem::take(logits),
        conf: Array2::from_elem((b, l), f64::NEG_INFINITY),
        stable: Array2::from_elem((b, l), (u32::MAX, 0)),
        transformed: Array2::from_elem((b, l), false),
        report: RunReport::default(),
        step,
    };
    let cand = Array2::from_shape_fn((b, l), |(bi, i)| {
        i >= a && i < e && !st.fixed[[bi, i]] && st.tokens[[bi, i]] == config.mask_id
    });
    let at_start: Vec<usize> = cand
        .map_axis(Axis(1), |r| r.iter().filter(|&&x| x).count())
        .to_vec();
    let rng = StepRng {
        seed,
        streams,
        step,
    };
    let spec = config.row_spec();
    let out = apply_rows(&config.effective_transforms(), &mut st, cand.view()).and_then(|()| {
        policy::policy_step(
            backend,
            config,
            &spec,
            &mut st,
            cand.view(),
            &at_start,
            place,
            (a, e),
            &rng,
        )
    });
    *logits = std::mem::take(&mut st.logits);
    out
}

/// Apply the transforms to the rows of `sel` not yet transformed since the last denoiser
/// call (checked for NaN / `+∞` first), so a row is never transformed twice.
fn apply_rows(
    list: &[LogitTransform],
    st: &mut State<'_>,
    sel: ArrayView2<'_, bool>,
) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    for ((bi, i), &c) in sel.indexed_iter() {
        if c && !std::mem::replace(&mut st.transformed[[bi, i]], true) {
            let cur = st.tokens[[bi, i]];
            let mut row = st.logits.slice_mut(s![bi, i, ..]);
            let row = row
                .as_slice_mut()
                .ok_or_else(|| Error::invalid("logits", "non-contiguous row"))?;
            crate::sample::transform::check_row(row)?;
            for tr in list {
                tr.apply(row, cur);
            }
        }
    }
    Ok(())
}

/// Padding after EOS, observer event, counters.
fn finish_step(
    config: &SamplerConfig,
    st: &mut State<'_>,
    reveals: &[Commit],
    remasked: &[(usize, usize)],
    observer: &mut dyn Observer,
    block: usize,
    (t, s): (f64, f64),
) {
    let mut padded = Vec::new();
    if let Some(eos) = config.eos {
        let (b, l) = st.tokens.dim();
        for bi in 0..b {
            if let Some(p) = (0..l).find(|&i| st.tokens[[bi, i]] == eos.eos_id) {
                for i in p + 1..l {
                    if !st.fixed[[bi, i]] && st.tokens[[bi, i]] == config.mask_id {
                        st.tokens[[bi, i]] = eos.pad_id;
                        padded.push((bi, i));
                    }
                }
            }
        }
    }
    st.report.steps += 1;
    st.report.reveals += reveals.len();
    st.report.remasks += remasked.len();
    st.report.padded += padded.len();
    observer.on_step(&StepEvent {
        step: st.step,
        block,
        t,
        s,
        nfe: st.report.nfe,
        reveals,
        remasked,
        padded: &padded,
    });
    st.step += 1;
}

/// Reveal every masked, non-fixed position (of `range`, or everywhere) from the last logits
/// at the draw temperature.
#[allow(clippy::too_many_arguments)]
fn fill<M: BlockModel + ?Sized, B: Backend + ?Sized>(
    model: &mut M,
    backend: &B,
    config: &SamplerConfig,
    spec: &RowSpec,
    st: &mut State<'_>,
    streams: &[u64],
    seed: u64,
    observer: &mut dyn Observer,
    (t, s): (f64, f64),
    block: usize,
    range: Option<(usize, usize)>,
) -> Result<()> {
    let (b, l) = st.tokens.dim();
    let (a, e) = range.unwrap_or((0, l));
    let sel = Array2::from_shape_fn((b, l), |(bi, i)| {
        i >= a && i < e && !st.fixed[[bi, i]] && st.tokens[[bi, i]] == config.mask_id
    });
    if !sel.iter().any(|&x| x) {
        return Ok(());
    }
    if st.report.nfe == 0 {
        let times = Array1::from_elem(b, t);
        model.logits(st.tokens.view(), times.view(), st.logits.view_mut())?;
        st.transformed.fill(false);
        st.report.nfe += 1;
    }
    apply_rows(&config.effective_transforms(), st, sel.view())?;
    let mut spec = spec.clone();
    if !spec.excluded.contains(&config.mask_id) {
        spec.excluded.push(config.mask_id);
    }
    let mut sums = Array2::from_elem((b, l), RowSummary::default());
    let rng = StepRng {
        seed,
        streams,
        step: st.step,
    };
    backend.summarize(
        st.logits.view(),
        Some(sel.view()),
        &spec,
        &rng.with_purpose(Purpose::CATEGORICAL),
        sums.view_mut(),
    )?;
    let chosen: Vec<Vec<usize>> = (0..b)
        .map(|bi| (0..l).filter(|&i| sel[[bi, i]]).collect())
        .collect();
    let reveals = unmask::commit(&mut st.tokens, &sums, &chosen, config.mask_id);
    finish_step(config, st, &reveals, &[], observer, block, (t, s));
    Ok(())
}
