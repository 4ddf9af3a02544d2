//! The sampler driver: one loop over a [`Denoiser`] for every masked-diffusion decoder
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
//! cache the committed prefix). Each block runs `steps` steps on the grid
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

mod observer;
mod unmask;

pub use observer::{BlockModel, NoHook, Observer, StepEvent};
pub use unmask::{StepPlace, unmask_step};

use std::sync::Arc;

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayViewMut2, Axis, s};

use crate::backend::steps::{
    Commit, DfmEulerStep, JumpRule, MdlmStep, StepRng, dfm_euler_step, mdlm_ancestral_step,
};
use crate::backend::{Backend, RowSpec, RowSummary};
use crate::error::{Error, Result};
use crate::rng::Purpose;
use crate::sample::remask::{RemdmLoop, RemdmSigma, remdm_conf_sigmas, remdm_sigma, remdm_step};
use crate::sample::select::Unmasking;
use crate::sample::transform::{LogitTransform, validate_transforms};
use crate::schedule::{Kappa, Schedule, TimeGrid};

/// How a step moves.
#[derive(Clone, Debug)]
pub enum Policy {
    /// Scorer × budget × selector over drawn candidates (LLaDA, Fast-dLLM, Dream, Dimple,
    /// EB-sampler).
    Unmask(Unmasking),
    /// MDLM ancestral step `t → s` under `schedule` ([`mdlm_ancestral_step`]: each masked
    /// position independently stays masked with probability `(1 − α_s)/(1 − α_t)`). With
    /// `α = 1 − t` this is also Dream's `origin` algorithm.
    Ancestral {
        /// The masking schedule α.
        schedule: Arc<dyn Schedule>,
    },
    /// Continuous-time flow-matching unmasking as a jump process (FUDOKI / DFM): each masked
    /// position jumps over `[t → s]` (flow time `1 − t → 1 − s`, `κ = α(1 − ·)`) with the
    /// probability of `rule` ([`dfm_euler_step`]).
    Jump {
        /// The masking schedule α.
        schedule: Arc<dyn Schedule>,
        /// The jump probability rule (`Exponential`: `1 − exp(−hλ)`).
        rule: JumpRule,
    },
    /// ReMDM with a σ strategy ([`crate::sample::remask`]): σ capped at every step.
    Remdm {
        /// The masking schedule α.
        schedule: Arc<dyn Schedule>,
        /// The σ strategy.
        sigma: RemdmSigma,
    },
    /// ReMDM's loop schedule (its own α; the grid's times select the phase).
    RemdmLoop(RemdmLoop),
}

/// Semi-autoregressive blocks: `[start + j·length, start + (j + 1)·length)`; `L − start`
/// must be a multiple of `length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// First position of the first block (usually the prompt length).
    pub start: usize,
    /// Block length `≥ 1`.
    pub length: usize,
}

/// Early stop rules, checked after each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopRule {
    /// ([`Policy::Unmask`] only) When every candidate row of a sequence's block has
    /// entropy `< τ` nats, reveal all of them with this step's draws.
    EntropyBelow(f64),
    /// ([`Policy::Unmask`] only) When the argmax of every candidate of a sequence's block
    /// has not changed for `n ≥ 1` consecutive steps (n = 1: always), reveal all of them.
    ArgmaxStable(usize),
    /// End the run after `n ≥ 1` denoiser calls; the remaining masked positions are filled
    /// from the last logits.
    MaxNfe(usize),
}

/// End-of-sequence handling: once a sequence has an unmasked `eos_id` at position `e`,
/// every masked, non-fixed position after `e` becomes `pad_id` (and is never drawn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EosPadding {
    /// The end-of-sequence id.
    pub eos_id: u32,
    /// The padding id (excluded from every draw).
    pub pad_id: u32,
}

/// A complete sampler configuration.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    /// The mask token id.
    pub mask_id: u32,
    /// Steps per block (per run without blocks), `≥ 1`.
    pub steps: usize,
    /// Last grid time `t_min ∈ [0, 1)`.
    pub t_min: f64,
    /// Transforms applied to every row the driver reads, in order.
    pub transforms: Vec<LogitTransform>,
    /// Temperature of the backend draw `x0 ~ softmax(ℓ/τ)` (0: argmax). Scores use the
    /// row **before** this temperature (a `Temperature` transform acts before scoring).
    pub draw_temperature: f64,
    /// Remove the mask id from every draw (`false` reproduces LLaDA/Fast-dLLM exactly).
    pub exclude_mask: bool,
    /// How a step moves.
    pub policy: Policy,
    /// Blocks, or `None`.
    pub blocks: Option<Blocks>,
    /// Stop rules.
    pub stop: Vec<StopRule>,
    /// EOS/padding, or `None`.
    pub eos: Option<EosPadding>,
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Denoiser calls.
    pub nfe: usize,
    /// Steps taken (the final fill counts as one if it happened).
    pub steps: usize,
    /// Reveals (including the final fill's).
    pub reveals: usize,
    /// Remaskings.
    pub remasks: usize,
    /// Positions padded after EOS.
    pub padded: usize,
    /// Whether a [`StopRule::MaxNfe`] ended the run.
    pub stopped_early: bool,
}

impl SamplerConfig {
    fn row_spec(&self) -> RowSpec {
        let mut excluded = Vec::new();
        if self.exclude_mask {
            excluded.push(self.mask_id);
        }
        if let Some(e) = self.eos {
            excluded.push(e.pad_id);
        }
        RowSpec {
            temperature: self.draw_temperature,
            excluded,
            entropy: self
                .stop
                .iter()
                .any(|r| matches!(r, StopRule::EntropyBelow(_))),
            margin: false,
        }
    }

    /// Check the configuration against vocabulary `v` and length `l`.
    ///
    /// # Errors
    /// `steps = 0`, `t_min ∉ [0, 1)`, bad ids, transforms, policy or stop rules, blocks that
    /// do not tile `[start, l)`, a bad draw temperature.
    pub fn validate(&self, v: usize, l: usize) -> Result<()> {
        crate::validate::vocab("vocab", v)?;
        crate::validate::token("mask_id", self.mask_id, v)?;
        TimeGrid::uniform(self.steps, self.t_min)?;
        validate_transforms(&self.transforms, v)?;
        if !(self.draw_temperature.is_finite() && self.draw_temperature >= 0.0) {
            return Err(Error::invalid(
                "draw_temperature",
                format!("{} must be finite and ≥ 0", self.draw_temperature),
            ));
        }
        match &self.policy {
            Policy::Unmask(u) => u.validate()?,
            Policy::RemdmLoop(lp) => lp.validate()?,
            Policy::Remdm { sigma, .. } => {
                remdm_sigma(*sigma, 0.5, 0.5)?;
            }
            _ => {}
        }
        if let Some(bk) = self.blocks
            && (bk.length == 0 || bk.start >= l || (l - bk.start) % bk.length != 0)
        {
            return Err(Error::invalid(
                "blocks",
                format!("blocks {bk:?} do not tile [start, {l}) (length must divide L − start)"),
            ));
        }
        for r in &self.stop {
            match *r {
                StopRule::EntropyBelow(t) if !(t.is_finite() && t >= 0.0) => {
                    return Err(Error::invalid("StopRule::EntropyBelow", format!("{t} must be ≥ 0")));
                }
                StopRule::ArgmaxStable(0) | StopRule::MaxNfe(0) => {
                    return Err(Error::invalid("stop", format!("{r:?}: the count must be ≥ 1")));
                }
                StopRule::EntropyBelow(_) | StopRule::ArgmaxStable(_)
                    if !matches!(self.policy, Policy::Unmask(_)) =>
                {
                    return Err(Error::invalid("stop", format!("{r:?} needs Policy::Unmask")));
                }
                _ => {}
            }
        }
        if let Some(e) = self.eos {
            crate::validate::token("eos.eos_id", e.eos_id, v)?;
            crate::validate::token("eos.pad_id", e.pad_id, v)?;
            if e.pad_id == self.mask_id || e.eos_id == self.mask_id {
                return Err(Error::invalid("eos", "eos and pad ids must differ from the mask id"));
            }
        }
        Ok(())
    }

    fn remasks(&self) -> bool {
        matches!(self.policy, Policy::Remdm { .. } | Policy::RemdmLoop(_))
    }
}

/// The mutable state of one run.
struct State<'t> {
    tokens: ArrayViewMut2<'t, u32>,
    fixed: Array2<bool>,
    logits: Array3<f32>,
    conf: Array2<f64>,
    stable: Array2<(u32, usize)>,
    report: RunReport,
    step: u32,
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
        return Err(Error::shape("tokens", "[B ≥ 1, L ≥ 1]", format!("[{b}, {l}]")));
    }
    config.validate(v, l)?;
    crate::validate::len("streams", streams.len(), b)?;
    crate::validate::tokens("tokens", tokens.iter(), v)?;
    let fixed = match fixed {
        Some(f) if f.dim() != (b, l) => {
            return Err(Error::shape("fixed", format!("[{b}, {l}]"), format!("{:?}", f.shape())));
        }
        Some(f) => f.to_owned(),
        None => tokens.mapv(|x| x != config.mask_id),
    };
    if let Some(((bi, i), _)) = fixed
        .indexed_iter()
        .find(|&(ix, &f)| f && tokens[ix] == config.mask_id)
    {
        return Err(Error::invalid("fixed", format!("fixed position ({bi}, {i}) holds the mask")));
    }
    if let Some(bk) = config.blocks
        && let Some(((bi, i), _)) = fixed
            .indexed_iter()
            .find(|&((bi, i), &f)| i < bk.start && !f && tokens[[bi, i]] == config.mask_id)
    {
        return Err(Error::invalid(
            "tokens",
            format!("masked position ({bi}, {i}) lies before the first block (start {})", bk.start),
        ));
    }
    let mut st = State {
        tokens,
        fixed,
        logits: Array3::zeros((b, l, v)),
        conf: Array2::from_elem((b, l), f64::NEG_INFINITY),
        stable: Array2::from_elem((b, l), (u32::MAX, 0)),
        report: RunReport::default(),
        step: 0,
    };
    let blocks: Vec<(usize, usize)> = match config.blocks {
        None => vec![(0, l)],
        Some(bk) => (bk.start..l).step_by(bk.length).map(|a| (a, a + bk.length)).collect(),
    };
    let grid = TimeGrid::uniform(config.steps, config.t_min)?;
    let spec = config.row_spec();
    let max_nfe = config.stop.iter().find_map(|r| match r {
        StopRule::MaxNfe(n) => Some(*n),
        _ => None,
    });
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
        let at_start: Vec<usize> = in_block(&st).map_axis(Axis(1), |r| r.iter().filter(|&&x| x).count()).to_vec();
        let mut last_logits = false;
        for (k, (t, s)) in grid.steps().enumerate() {
            let cand = in_block(&st);
            if !config.remasks() && !cand.iter().any(|&c| c) {
                break;
            }
            if max_nfe.is_some_and(|n| st.report.nfe >= n) {
                st.report.stopped_early = true;
                fill(model, backend, config, &spec, &mut st, streams, seed, observer, (t, s), bi_block, None)?;
                break 'blocks;
            }
            let times = Array1::from_elem(b, t);
            model.logits(st.tokens.view(), times.view(), st.logits.view_mut())?;
            st.report.nfe += 1;
            last_logits = true;
            let rng = StepRng { seed, streams, step: st.step };
            let place = StepPlace { step: k, steps: config.steps, t, s };
            apply_rows(&config.transforms, &mut st, cand.view())?;
            let (reveals, remasked) =
                policy_step(backend, config, &spec, &mut st, cand.view(), &at_start, place, (a, e), &rng)?;
            finish_step(config, &mut st, &reveals, &remasked, observer, bi_block, (t, s));
        }
        if last_logits && in_block(&st).iter().any(|&c| c) {
            let (t, s) = grid.step(config.steps - 1)?;
            fill(model, backend, config, &spec, &mut st, streams, seed, observer, (t, s), bi_block, Some((a, e)))?;
        }
    }
    Ok(st.report)
}

/// Apply the transforms to the rows of `sel` (checked for NaN / `+∞` first).
fn apply_rows(list: &[LogitTransform], st: &mut State<'_>, sel: ArrayView2<'_, bool>) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    for ((bi, i), &c) in sel.indexed_iter() {
        if c {
            let cur = st.tokens[[bi, i]];
            let mut row = st.logits.slice_mut(s![bi, i, ..]);
            let row = row.as_slice_mut().ok_or_else(|| Error::invalid("logits", "non-contiguous row"))?;
            crate::sample::transform::check_row(row)?;
            for tr in list {
                tr.apply(row, cur);
            }
        }
    }
    Ok(())
}

/// Run the policy on the current logits; returns reveals and remaskings.
#[allow(clippy::too_many_arguments)]
fn policy_step<B: Backend + ?Sized>(
    backend: &B,
    config: &SamplerConfig,
    spec: &RowSpec,
    st: &mut State<'_>,
    cand: ArrayView2<'_, bool>,
    at_start: &[usize],
    place: StepPlace,
    (a, e): (usize, usize),
    rng: &StepRng<'_>,
) -> Result<(Vec<Commit>, Vec<(usize, usize)>)> {
    let (b, l) = cand.dim();
    let block_view = |x: &Array3<f32>| x.slice(s![.., a..e, ..]).to_owned();
    let shift = |mut c: Vec<Commit>| {
        c.iter_mut().for_each(|c| c.pos += a);
        c
    };
    match &config.policy {
        Policy::Unmask(u) => {
            let mut p = unmask::plan(backend, st.logits.view(), cand, u, spec, at_start, place, rng)?;
            for bi in 0..b {
                let idx: Vec<usize> = (0..l).filter(|&i| cand[[bi, i]]).collect();
                let mut all = false;
                for r in &config.stop {
                    match *r {
                        StopRule::EntropyBelow(tau) => {
                            all |= idx.iter().all(|&i| p.summaries[[bi, i]].entropy < tau);
                        }
                        StopRule::ArgmaxStable(n) => {
                            let mut ok = true;
                            for &i in &idx {
                                let am = p.summaries[[bi, i]].argmax;
                                let (prev, cnt) = st.stable[[bi, i]];
                                let cnt = if prev == am { cnt + 1 } else { 1 };
                                st.stable[[bi, i]] = (am, cnt);
                                ok &= cnt >= n;
                            }
                            all |= ok;
                        }
                        StopRule::MaxNfe(_) => {}
                    }
                }
                if all && !idx.is_empty() {
                    p.chosen[bi] = idx;
                }
            }
            Ok((unmask::commit(&mut st.tokens, &p.summaries, &p.chosen, config.mask_id), Vec::new()))
        }
        Policy::Ancestral { schedule } => {
            let lg = block_view(&st.logits);
            let mut tk = st.tokens.slice_mut(s![.., a..e]);
            let params = MdlmStep { mask_id: config.mask_id, t: place.t, s: place.s };
            let out = mdlm_ancestral_step(backend, &**schedule, lg.view(), tk.view_mut(), &params, rng)?;
            Ok((shift(out.commits), Vec::new()))
        }
        Policy::Jump { schedule, rule } => {
            let lg = block_view(&st.logits);
            let mut tk = st.tokens.slice_mut(s![.., a..e]);
            let kappa = Kappa::convex(&**schedule);
            let params = DfmEulerStep {
                mask_id: config.mask_id,
                s: 1.0 - place.t,
                s_next: 1.0 - place.s,
                rule: *rule,
                final_step: false,
                exclude_mask: true,
            };
            let out = dfm_euler_step(backend, &kappa, lg.view(), tk.view_mut(), &params, rng)?;
            Ok((shift(out.commits), Vec::new()))
        }
        Policy::Remdm { schedule, sigma } => {
            let (at, as_) = (schedule.alpha(place.t)?, schedule.alpha(place.s)?);
            let sg = remdm_sigma(*sigma, at, as_)?;
            let sig = if *sigma == RemdmSigma::Confidence {
                let mut out = Array2::zeros((b, l));
                for bi in 0..b {
                    let conf: Vec<f64> = (a..e)
                        .map(|i| if st.fixed[[bi, i]] { f64::NEG_INFINITY } else { st.conf[[bi, i]] })
                        .collect();
                    for (j, x) in remdm_conf_sigmas(&conf, sg.max)?.into_iter().enumerate() {
                        out[[bi, a + j]] = x;
                    }
                }
                out
            } else {
                Array2::from_elem((b, l), sg.used)
            };
            remdm_apply(backend, config, st, sig, (at, as_), (a, e), rng)
        }
        Policy::RemdmLoop(lp) => {
            let ls = lp.step(place.t, place.s)?;
            let sig = Array2::from_elem((b, l), ls.sigma);
            remdm_apply(backend, config, st, sig, (ls.alpha_t, ls.alpha_s), (a, e), rng)
        }
    }
}

fn remdm_apply<B: Backend + ?Sized>(
    backend: &B,
    config: &SamplerConfig,
    st: &mut State<'_>,
    sigma: Array2<f64>,
    alphas: (f64, f64),
    (a, e): (usize, usize),
    rng: &StepRng<'_>,
) -> Result<(Vec<Commit>, Vec<(usize, usize)>)> {
    let (b, l) = sigma.dim();
    let elig = Array2::from_shape_fn((b, l), |(bi, i)| i >= a && i < e && !st.fixed[[bi, i]]);
    let (out, remasked) = remdm_step(
        backend,
        st.logits.view(),
        st.tokens.view_mut(),
        Some(elig.view()),
        sigma.view(),
        alphas,
        config.mask_id,
        rng,
    )?;
    for &(bi, i) in &remasked {
        st.conf[[bi, i]] = f64::NEG_INFINITY;
    }
    for c in &out.commits {
        st.conf[[c.seq, c.pos]] = -c.logprob.exp();
    }
    Ok((out.commits, remasked))
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
        st.report.nfe += 1;
    }
    apply_rows(&config.transforms, st, sel.view())?;
    let mut spec = spec.clone();
    if !spec.excluded.contains(&config.mask_id) {
        spec.excluded.push(config.mask_id);
    }
    let mut sums = Array2::from_elem((b, l), RowSummary::default());
    let rng = StepRng { seed, streams, step: st.step };
    backend.summarize(st.logits.view(), Some(sel.view()), &spec, &rng.with_purpose(Purpose::CATEGORICAL), sums.view_mut())?;
    let chosen: Vec<Vec<usize>> = (0..b).map(|bi| (0..l).filter(|&i| sel[[bi, i]]).collect()).collect();
    let reveals = unmask::commit(&mut st.tokens, &sums, &chosen, config.mask_id);
    finish_step(config, st, &reveals, &[], observer, block, (t, s));
    Ok(())
}
