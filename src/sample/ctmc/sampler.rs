//! The CTMC sampling loop: a predictor (Euler, τ-leaping, analytic/Tweedie) over a time
//! grid, optional Campbell correctors, and exact reuse of denoiser outputs.
//!
//! Randomness: position `i` of sequence `stream`, predictor step `k`, draws from
//! `CounterRng::new(RngKey::for_stream(seed, stream), Purpose::CATEGORICAL, k·(n+1), i)`
//! and corrector `j` of that step from step index `k·(n+1) + j + 1` (`n` correctors per
//! step), so a sequence's result depends only on `(seed, stream)`, never on its batch mates.
//! [`Predictor::AbsorbingTweedie`] uses the backend steps' addressing at the same
//! `(seed, stream, step, position)`: a [`Purpose::ROUTING`] decision uniform and a
//! [`Purpose::CATEGORICAL`] draw uniform.

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2, Axis};

use crate::backend::cpu::CpuBackend;
use crate::backend::steps::{
    MdlmStep, SeddAbsorbingStep, StepRng, mdlm_ancestral_step, sedd_analytic_absorbing_step,
};
use crate::error::{Error, Result};
use crate::kernel::ctmc::{Ctmc, RateGenerator};
use crate::math::softmax_into;
use crate::model::Denoiser;
use crate::param::reverse::{
    RateWorkspace, rate_and_total, reverse_rates_from_logits, reverse_rates_from_score,
};
use crate::rng::categorical::sample_masses;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::sample::ctmc::{
    InverseTransition, TauLeapMode, corrector_rates, euler_draw, tau_leaping_draw,
    tweedie_law_from_score, tweedie_law_from_x0,
};
use crate::schedule::Schedule;
use crate::validate;

/// Exact reuse of a denoiser's outputs over a batch: row `b` is re-evaluated only when its
/// tokens changed since its last evaluation, or its time changed and the denoiser is not
/// declared time-independent (RADD's time-free conditionals and the MDLM/MD4 absorbing
/// posteriors do not depend on `t`; then reuse across times is exact). The rows that need an
/// evaluation go to the denoiser together in one call; rows are independent, so the result
/// is the same as evaluating every row. Counts calls and row evaluations.
#[derive(Debug)]
pub struct DenoiserCache<'a, D: ?Sized> {
    denoiser: &'a D,
    time_independent: bool,
    tokens: Array2<u32>,
    times: Vec<f64>,
    logits: Array3<f32>,
    valid: Vec<bool>,
    calls: usize,
    rows: usize,
}

impl<'a, D: Denoiser + ?Sized> DenoiserCache<'a, D> {
    /// A cache in front of `denoiser`; `time_independent` allows reuse across times.
    pub fn new(denoiser: &'a D, time_independent: bool) -> Self {
        DenoiserCache {
            denoiser,
            time_independent,
            tokens: Array2::zeros((0, 0)),
            times: Vec::new(),
            logits: Array3::zeros((0, 0, 0)),
            valid: Vec::new(),
            calls: 0,
            rows: 0,
        }
    }

    /// Denoiser calls made so far (the function evaluations, NFE).
    pub fn nfe(&self) -> usize {
        self.calls
    }

    /// Rows evaluated so far (`≤ NFE × B`).
    pub fn row_evaluations(&self) -> usize {
        self.rows
    }

    /// The logits `[B, L, V]` of `tokens [B, L]` at time `t`, re-evaluating only the rows
    /// the cache cannot answer exactly. A batch of another shape resets the cache.
    ///
    /// # Errors
    /// `t ∉ [0, 1]`, an empty batch or sequence, ids `≥ V`, and the denoiser's errors (the
    /// cache is then left invalid for the rows of that call).
    pub fn logits(&mut self, tokens: ArrayView2<'_, u32>, t: f64) -> Result<ArrayView3<'_, f32>> {
        validate::time("t", t)?;
        let (b, l) = tokens.dim();
        if b == 0 || l == 0 {
            return Err(Error::invalid("tokens", format!("empty batch [{b}, {l}]")));
        }
        let v = self.denoiser.vocab_size();
        validate::vocab("denoiser vocab_size", v)?;
        validate::tokens("tokens", tokens.iter(), v)?;
        if self.tokens.dim() != (b, l) || self.logits.dim() != (b, l, v) {
            self.tokens = Array2::zeros((b, l));
            self.times = vec![f64::NAN; b];
            self.logits = Array3::zeros((b, l, v));
            self.valid = vec![false; b];
        }
        let stale: Vec<usize> = (0..b)
            .filter(|&r| {
                !self.valid[r]
                    || self.tokens.row(r) != tokens.row(r)
                    || (!self.time_independent && self.times[r] != t)
            })
            .collect();
        if !stale.is_empty() {
            let n = stale.len();
            let mut sub = Array2::<u32>::zeros((n, l));
            for (j, &r) in stale.iter().enumerate() {
                sub.row_mut(j).assign(&tokens.row(r));
                self.valid[r] = false;
            }
            let times = Array1::from_elem(n, t);
            let mut out = Array3::<f32>::zeros((n, l, v));
            self.denoiser
                .logits(sub.view(), times.view(), out.view_mut())?;
            self.calls += 1;
            self.rows += n;
            for (j, &r) in stale.iter().enumerate() {
                self.logits
                    .index_axis_mut(Axis(0), r)
                    .assign(&out.index_axis(Axis(0), j));
                self.tokens.row_mut(r).assign(&tokens.row(r));
                self.times[r] = t;
                self.valid[r] = true;
            }
        }
        Ok(self.logits.view())
    }
}

/// The predictor of one step `t → s` (`h = t − s`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Predictor {
    /// [`euler_law`](super::euler_law) on the reverse rates at `t`.
    Euler,
    /// [`tau_leaping_law`](super::tau_leaping_law) on the reverse rates at `t`.
    TauLeaping(TauLeapMode),
    /// The analytic step [`tweedie_law_from_x0`] from the x0 posterior at `t`.
    Tweedie,
    /// The analytic step on an absorbing generator with mask `mask_id`, run by the backend's
    /// fused steps (reading only the rows that unmask; use it for large `V`):
    /// [`mdlm_ancestral_step`] for x0 logits (the same law as [`Predictor::Tweedie`]),
    /// [`sedd_analytic_absorbing_step`] for log-scores.
    AbsorbingTweedie {
        /// The mask token id.
        mask_id: u32,
    },
}

/// What the denoiser's `[B, L, V]` output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelOutput {
    /// Logits of the clean-token posterior `p(x_0^i | x_t)` (MDLM, RADD, an
    /// [`OracleDenoiser`](crate::model::oracle::OracleDenoiser)); converted to ratios by
    /// [`concrete_score_from_x0`](crate::kernel::ctmc::concrete_score_from_x0).
    X0Logits,
    /// Log concrete scores `ln p_t(x^{i←y})/p_t(x)` (SEDD's `score_fn` output; the entry at
    /// the current token is ignored), used as ratios directly. [`Predictor::Tweedie`] on
    /// log-scores needs `exp(−δQ)`: run it with [`sample_ctmc_batch_with_inverse`] (SEDD's
    /// analytic predictor, [`tweedie_law_from_score`]), or
    /// use [`Predictor::AbsorbingTweedie`] (the backend's SEDD analytic absorbing step).
    LogScore,
}

/// Campbell et al.'s corrector: `steps` τ-leaping steps of the corrector rates
/// ([`corrector_rates`]) at the new time, each of length `multiplier·h`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Corrector {
    /// Corrector steps after each predictor step.
    pub steps: usize,
    /// Corrector step size as a multiple of the predictor step `h`.
    pub multiplier: f64,
    /// How corrector jumps combine.
    pub mode: TauLeapMode,
}

/// Settings of [`sample_ctmc`].
#[derive(Clone, Debug, PartialEq)]
pub struct CtmcSampler {
    /// The predictor.
    pub predictor: Predictor,
    /// What the denoiser outputs.
    pub output: ModelOutput,
    /// An optional corrector.
    pub corrector: Option<Corrector>,
    /// Strictly decreasing times `t_0 > t_1 > … > t_K` in `[0, 1]` (the grid).
    pub times: Vec<f64>,
    /// The seed (each sequence draws under `RngKey::for_stream(seed, its stream)`).
    pub seed: u64,
    /// Reuse the denoiser output across times when the tokens did not change (only exact
    /// for a time-independent denoiser; reuse at an unchanged `(tokens, t)` is always on).
    pub time_independent_denoiser: bool,
}

/// What [`sample_ctmc`] / [`sample_ctmc_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtmcSampleOutput {
    /// Denoiser calls made (function evaluations; each call covers the rows that needed one).
    pub nfe: usize,
    /// Rows (sequences) evaluated over all calls.
    pub row_evaluations: usize,
    /// Predictor steps taken.
    pub steps: usize,
}

fn check_grid(times: &[f64]) -> Result<()> {
    if times.len() < 2 {
        return Err(Error::invalid("times", "need at least two times"));
    }
    for (k, w) in times.windows(2).enumerate() {
        validate::time("times", w[0])?;
        validate::time("times", w[1])?;
        if w[1] >= w[0] {
            return Err(Error::invalid(
                "times",
                format!(
                    "must be strictly decreasing: times[{k}] = {} ≤ times[{}] = {}",
                    w[0],
                    k + 1,
                    w[1]
                ),
            ));
        }
    }
    Ok(())
}

/// Run the reverse CTMC from `tokens` (one sequence, a draw of `x_{t_0}`) along `cfg.times`,
/// in place, with an x0 denoiser: [`sample_ctmc_batch`] with a batch of one.
///
/// # Errors
/// As [`sample_ctmc_batch`].
pub fn sample_ctmc<G, S, D>(
    ctmc: &Ctmc<G, S>,
    denoiser: &D,
    tokens: &mut [u32],
    stream: u64,
    cfg: &CtmcSampler,
) -> Result<CtmcSampleOutput>
where
    G: RateGenerator,
    S: Schedule,
    D: Denoiser + ?Sized,
{
    let l = tokens.len();
    let view = ArrayViewMut2::from_shape((1, l), tokens)
        .map_err(|e| Error::invalid("tokens", e.to_string()))?;
    sample_ctmc_batch(ctmc, denoiser, view, &[stream], cfg)
}

/// Run the reverse CTMC on a batch `tokens [B, L]` (draws of `x_{t_0}`) along `cfg.times`,
/// in place, with an x0 denoiser (its softmax is the posterior `p(x_0^i | x_t)`). Sequence
/// `b` draws under `RngKey::for_stream(cfg.seed, streams[b])`, so its result does not depend
/// on its batch mates.
///
/// Predictor step `t → s`: per position, the reverse rates at `t` (Euler, τ-leaping) or the
/// analytic law (Tweedie), drawn independently. Corrector: the rates
/// `σ(s)Q + R̂_s` by τ-leaping with step `multiplier·(t − s)`, skipped at a time where
/// `σ(s)` is infinite or at `s = 0`. The denoiser is called once per step (and per
/// corrector step) on the rows a [`DenoiserCache`] cannot answer exactly.
///
/// # Errors
/// Grid (fewer than two times, not strictly decreasing, outside `[0, 1]`), an empty batch,
/// `streams.len() ≠ B`, a denoiser of another `V`, token ids `≥ V`, an infinite noise rate
/// at a time where Euler or τ-leaping needs it, the step functions' errors, a corrector
/// multiplier that is negative or not finite. On error `tokens` holds the steps made.
pub fn sample_ctmc_batch<G, S, D>(
    ctmc: &Ctmc<G, S>,
    denoiser: &D,
    tokens: ArrayViewMut2<'_, u32>,
    streams: &[u64],
    cfg: &CtmcSampler,
) -> Result<CtmcSampleOutput>
where
    G: RateGenerator,
    S: Schedule,
    D: Denoiser + ?Sized,
{
    run_batch(ctmc, denoiser, tokens, streams, cfg, None)
}

/// [`sample_ctmc_batch`] for a generator that can apply `exp(−δQ)`
/// ([`InverseTransition`]: [`MixtureGenerator`](crate::kernel::ctmc::MixtureGenerator),
/// [`DenseGenerator`](crate::kernel::ctmc::dense::DenseGenerator)), which also runs
/// [`Predictor::Tweedie`] on [`ModelOutput::LogScore`]: SEDD's analytic predictor
/// ([`tweedie_law_from_score`]: `[s_tᵀ exp(−δQ)]_y · exp(δQ)[y, x]`, clamped at 0 and
/// normalised, `δ = σ̄(t) − σ̄(s)`), drawn from the same
/// `(seed, stream, CATEGORICAL, step, position)` uniform as every other predictor. With
/// the exact concrete score it is the exact single-token reverse transition. Every other
/// setting behaves exactly as in [`sample_ctmc_batch`].
///
/// # Errors
/// As [`sample_ctmc_batch`], and the inverse's errors (e.g. a step whose growth factor
/// `e^{δρ}` is too large on a dense generator, or `σ̄(t) = ∞`).
pub fn sample_ctmc_batch_with_inverse<G, S, D>(
    ctmc: &Ctmc<G, S>,
    denoiser: &D,
    tokens: ArrayViewMut2<'_, u32>,
    streams: &[u64],
    cfg: &CtmcSampler,
) -> Result<CtmcSampleOutput>
where
    G: InverseTransition,
    S: Schedule,
    D: Denoiser + ?Sized,
{
    let inverse: &dyn InverseTransition = ctmc.generator();
    run_batch(ctmc, denoiser, tokens, streams, cfg, Some(inverse))
}

fn run_batch<G, S, D>(
    ctmc: &Ctmc<G, S>,
    denoiser: &D,
    mut tokens: ArrayViewMut2<'_, u32>,
    streams: &[u64],
    cfg: &CtmcSampler,
    inverse: Option<&dyn InverseTransition>,
) -> Result<CtmcSampleOutput>
where
    G: RateGenerator,
    S: Schedule,
    D: Denoiser + ?Sized,
{
    let v = ctmc.vocab_size();
    check_grid(&cfg.times)?;
    if denoiser.vocab_size() != v {
        return Err(Error::shape(
            "denoiser",
            format!("vocab_size {v}"),
            format!("vocab_size {}", denoiser.vocab_size()),
        ));
    }
    let (b, l) = tokens.dim();
    if b == 0 || l == 0 {
        return Err(Error::invalid("tokens", format!("empty batch [{b}, {l}]")));
    }
    validate::len("streams", streams.len(), b)?;
    validate::tokens("tokens", tokens.iter(), v)?;
    if let Some(c) = &cfg.corrector {
        let m = validate::finite("multiplier", c.multiplier)?;
        if m < 0.0 {
            return Err(Error::invalid(
                "multiplier",
                format!("must be ≥ 0, got {m}"),
            ));
        }
    }
    if let Predictor::AbsorbingTweedie { mask_id } = cfg.predictor {
        validate::token("mask_id", mask_id, v)?;
    }
    if cfg.predictor == Predictor::Tweedie
        && cfg.output == ModelOutput::LogScore
        && inverse.is_none()
    {
        return Err(Error::invalid(
            "predictor",
            "the analytic step on log-scores needs exp(−δQ): use \
             sample_ctmc_batch_with_inverse, AbsorbingTweedie, or x0 logits",
        ));
    }
    let keys: Vec<RngKey> = streams
        .iter()
        .map(|&s| RngKey::for_stream(cfg.seed, s))
        .collect();
    let mut cache = DenoiserCache::new(denoiser, cfg.time_independent_denoiser);
    let mut ws = RateWorkspace::new(v)?;
    let mut bufs = Buffers {
        rates: vec![0.0; v],
        law: vec![0.0; v],
        corr: vec![0.0; v],
        p: vec![0.0; v],
    };
    let n_corr = cfg.corrector.map_or(0, |c| c.steps);
    let stride = n_corr as u32 + 1;
    let backend = CpuBackend::new();
    for (k, w) in cfg.times.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        let h = t - s;
        let step = k as u32 * stride;
        let logits = cache.logits(tokens.view(), t)?;
        match cfg.predictor {
            Predictor::AbsorbingTweedie { mask_id } => {
                let rng = StepRng {
                    seed: cfg.seed,
                    streams,
                    step,
                };
                let sched = ctmc.schedule();
                if cfg.output == ModelOutput::LogScore {
                    let params = SeddAbsorbingStep { mask_id, t, s };
                    sedd_analytic_absorbing_step(
                        &backend,
                        sched,
                        logits,
                        tokens.view_mut(),
                        &params,
                        &rng,
                    )?;
                } else {
                    let params = MdlmStep { mask_id, t, s };
                    mdlm_ancestral_step(&backend, sched, logits, tokens.view_mut(), &params, &rng)?;
                }
            }
            pred => {
                let times = (t, s, h);
                for (bi, mut row) in tokens.outer_iter_mut().enumerate() {
                    let lg = logits.index_axis(Axis(0), bi);
                    let addr = (keys[bi], step);
                    predictor_row(
                        ctmc,
                        (pred, cfg.output, inverse),
                        times,
                        lg,
                        &mut row,
                        addr,
                        &mut ws,
                        &mut bufs,
                    )?;
                }
            }
        }
        let Some(c) = cfg.corrector else { continue };
        let sigma = ctmc.noise_rate(s)?;
        if s == 0.0 || !sigma.is_finite() {
            continue;
        }
        let sigma_bar = ctmc.total_noise(s)?;
        for j in 0..c.steps {
            let logits = cache.logits(tokens.view(), s)?;
            let cstep = step + j as u32 + 1;
            for (bi, mut row) in tokens.outer_iter_mut().enumerate() {
                let lg = logits.index_axis(Axis(0), bi);
                for (i, x) in row.iter_mut().enumerate() {
                    let lrow = contiguous(&lg, i)?;
                    let g = ctmc.generator();
                    let rate_args = (cfg.output, sigma, sigma_bar);
                    rates_row(
                        g,
                        rate_args,
                        *x,
                        lrow,
                        &mut ws,
                        &mut bufs.p,
                        &mut bufs.rates,
                    )?;
                    corrector_rates(g, sigma, *x, &bufs.rates, &mut bufs.law, &mut bufs.corr)?;
                    let mut rng = CounterRng::new(keys[bi], Purpose::CATEGORICAL, cstep, i as u32);
                    *x = tau_leaping_draw(&bufs.corr, *x, c.multiplier * h, c.mode, &mut rng)?;
                }
            }
        }
    }
    Ok(CtmcSampleOutput {
        nfe: cache.nfe(),
        row_evaluations: cache.row_evaluations(),
        steps: cfg.times.len() - 1,
    })
}

/// Work buffers of length `V` for one row's step.
struct Buffers {
    rates: Vec<f64>,
    law: Vec<f64>,
    corr: Vec<f64>,
    p: Vec<f64>,
}

/// The reverse rate row out of `x` from one position's model output: x0 logits through
/// [`reverse_rates_from_logits`], log-scores through `exp` and [`reverse_rates_from_score`].
fn rates_row<G: RateGenerator + ?Sized>(
    g: &G,
    (output, sigma, sigma_bar): (ModelOutput, f64, f64),
    x: u32,
    lrow: &[f32],
    ws: &mut RateWorkspace,
    ratio: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    match output {
        ModelOutput::X0Logits => reverse_rates_from_logits(g, sigma, sigma_bar, x, lrow, ws, out),
        ModelOutput::LogScore => {
            validate::len("logits", lrow.len(), ratio.len())?;
            for (r, &l) in ratio.iter_mut().zip(lrow) {
                *r = f64::from(l).exp();
            }
            ratio[x as usize] = 1.0;
            reverse_rates_from_score(g, sigma, x, ratio, ws, out)
        }
    }
}

/// The logits row of position `i` as a slice.
fn contiguous<'b>(lg: &'b ArrayView2<'_, f32>, i: usize) -> Result<&'b [f32]> {
    lg.row(i)
        .to_slice()
        .ok_or_else(|| Error::invalid("logits", "not contiguous"))
}

/// One predictor step `t → s` (`h = t − s`) of one sequence `row` with its logits `lg`
/// `[L, V]`, drawing position `i` from `CounterRng(key, CATEGORICAL, step, i)`.
#[allow(clippy::too_many_arguments)]
fn predictor_row<G: RateGenerator, S: Schedule>(
    ctmc: &Ctmc<G, S>,
    (pred, output, inverse): (Predictor, ModelOutput, Option<&dyn InverseTransition>),
    (t, s, h): (f64, f64, f64),
    lg: ArrayView2<'_, f32>,
    row: &mut ArrayViewMut1<'_, u32>,
    (key, step): (RngKey, u32),
    ws: &mut RateWorkspace,
    bufs: &mut Buffers,
) -> Result<()> {
    let g = ctmc.generator();
    match pred {
        Predictor::Euler | Predictor::TauLeaping(_) => {
            let (sigma, sigma_bar) = rate_and_total(ctmc, t)?;
            for (i, x) in row.iter_mut().enumerate() {
                let lrow = contiguous(&lg, i)?;
                let rate_args = (output, sigma, sigma_bar);
                rates_row(g, rate_args, *x, lrow, ws, &mut bufs.p, &mut bufs.rates)?;
                let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, step, i as u32);
                *x = match pred {
                    Predictor::TauLeaping(mode) => {
                        tau_leaping_draw(&bufs.rates, *x, h, mode, &mut rng)?
                    }
                    _ => euler_draw(&bufs.rates, *x, h, rng.uniform())?,
                };
            }
        }
        _ => {
            let st = ctmc.total_noise(t)?;
            let ss = ctmc.total_noise(s)?;
            for (i, x) in row.iter_mut().enumerate() {
                match (output, inverse) {
                    (ModelOutput::LogScore, Some(inv)) => {
                        let lrow = contiguous(&lg, i)?;
                        validate::len("logits", lrow.len(), bufs.p.len())?;
                        for (r, &l) in bufs.p.iter_mut().zip(lrow) {
                            *r = f64::from(l).exp();
                        }
                        bufs.p[*x as usize] = 1.0;
                        tweedie_law_from_score(
                            inv,
                            st - ss,
                            *x,
                            &bufs.p,
                            &mut bufs.corr,
                            &mut bufs.law,
                        )?;
                    }
                    _ => {
                        softmax_into(contiguous(&lg, i)?, &mut bufs.p)?;
                        tweedie_law_from_x0(g, st, ss, *x, &bufs.p, ws, &mut bufs.law)?;
                    }
                }
                let u = CounterRng::new(key, Purpose::CATEGORICAL, step, i as u32).uniform();
                *x = sample_masses(&bufs.law, u)?.token;
            }
        }
    }
    Ok(())
}
