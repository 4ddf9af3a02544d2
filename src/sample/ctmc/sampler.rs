//! The CTMC sampling loop: a predictor (Euler, τ-leaping, analytic/Tweedie) over a time
//! grid, optional Campbell correctors, and exact reuse of denoiser outputs.
//!
//! Randomness: position `i` of predictor step `k` draws from
//! `CounterRng::new(RngKey::for_stream(seed, stream), Purpose::CATEGORICAL, k·(n+1), i)`
//! and corrector `j` of that step from step index `k·(n+1) + j + 1` (`n` correctors per
//! step), so a sequence's result depends only on `(seed, stream)`, never on its batch mates.

use ndarray::{Array2, ArrayView2};

use crate::backend::cpu::CpuBackend;
use crate::backend::steps::{MdlmStep, StepRng, mdlm_ancestral_step};
use crate::error::{Error, Result};
use crate::kernel::ctmc::{Ctmc, RateGenerator};
use crate::math::softmax_into;
use crate::model::Denoiser;
use crate::param::reverse::{
    RateWorkspace, denoiser_logits, rate_and_total, reverse_rates_from_logits,
};
use crate::rng::categorical::sample_masses;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::sample::ctmc::{
    TauLeapMode, corrector_rates, euler_draw, tau_leaping_draw, tweedie_law_from_x0,
};
use crate::schedule::Schedule;
use crate::validate;

/// Exact reuse of a denoiser's output: the call is skipped when the tokens are unchanged
/// since the last call and either the time is the same or the denoiser is declared
/// time-independent (RADD's time-free conditionals; MDLM/MD4 absorbing posteriors, which
/// do not depend on `t`). Counts the function evaluations it makes.
#[derive(Debug)]
pub struct DenoiserCache<'a, D: ?Sized> {
    denoiser: &'a D,
    time_independent: bool,
    last: Option<(Vec<u32>, f64, Array2<f32>)>,
    nfe: usize,
}

impl<'a, D: Denoiser + ?Sized> DenoiserCache<'a, D> {
    /// A cache in front of `denoiser`; `time_independent` allows reuse across times.
    pub fn new(denoiser: &'a D, time_independent: bool) -> Self {
        DenoiserCache {
            denoiser,
            time_independent,
            last: None,
            nfe: 0,
        }
    }

    /// The number of denoiser calls made so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }

    /// The logits `[L, V]` of `tokens` at time `t`, from the cache when allowed.
    ///
    /// # Errors
    /// `t ∉ [0, 1]`, empty `tokens`, ids `≥ V`, and the denoiser's errors.
    pub fn logits(&mut self, tokens: &[u32], t: f64) -> Result<ArrayView2<'_, f32>> {
        let hit = matches!(&self.last, Some((x, s, _))
            if x.as_slice() == tokens && (self.time_independent || *s == t));
        if !hit {
            let v = self.denoiser.vocab_size();
            let logits = denoiser_logits(self.denoiser, tokens, t, v)?;
            self.nfe += 1;
            self.last = Some((tokens.to_vec(), t, logits));
        }
        match &self.last {
            Some((_, _, l)) => Ok(l.view()),
            None => Err(Error::invalid("cache", "empty")), // unreachable: filled above
        }
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
    /// fused MDLM ancestral step (the same law as [`Predictor::Tweedie`] there, reading only
    /// the rows that unmask; use it for large `V`).
    AbsorbingTweedie {
        /// The mask token id.
        mask_id: u32,
    },
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
    /// An optional corrector.
    pub corrector: Option<Corrector>,
    /// Strictly decreasing times `t_0 > t_1 > … > t_K` in `[0, 1]` (the grid).
    pub times: Vec<f64>,
    /// The seed.
    pub seed: u64,
    /// The sequence's stream id.
    pub stream: u64,
    /// Reuse the denoiser output across times when the tokens did not change (only exact
    /// for a time-independent denoiser; reuse at an unchanged `(tokens, t)` is always on).
    pub time_independent_denoiser: bool,
}

/// What [`sample_ctmc`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtmcSampleOutput {
    /// Denoiser calls made.
    pub nfe: usize,
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

/// Run the reverse CTMC from `tokens` (a draw of `x_{t_0}`) along `cfg.times`, in place,
/// with an x0 denoiser (its softmax is the posterior `p(x_0^i | x_t)`).
///
/// Predictor step `t → s`: per position, the reverse rates at `t` (Euler, τ-leaping) or the
/// analytic law (Tweedie), drawn independently. Corrector: the rates
/// `σ(s)Q + R̂_s` by τ-leaping with step `multiplier·(t − s)`, skipped at a time where
/// `σ(s)` is infinite or at `s = 0`.
///
/// # Errors
/// Grid (fewer than two times, not strictly decreasing, outside `[0, 1]`), a denoiser of
/// another `V`, token ids `≥ V`, an infinite noise rate at a time where Euler or τ-leaping
/// needs it, the step functions' errors, a corrector with a multiplier that is negative or
/// not finite.
pub fn sample_ctmc<G, S, D>(
    ctmc: &Ctmc<G, S>,
    denoiser: &D,
    tokens: &mut [u32],
    cfg: &CtmcSampler,
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
    if tokens.is_empty() {
        return Err(Error::invalid("tokens", "empty sequence"));
    }
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
    let key = RngKey::for_stream(cfg.seed, cfg.stream);
    let mut cache = DenoiserCache::new(denoiser, cfg.time_independent_denoiser);
    let mut ws = RateWorkspace::new(v)?;
    let mut rates = vec![0.0; v];
    let mut law = vec![0.0; v];
    let mut corr = vec![0.0; v];
    let mut p = vec![0.0; v];
    let n_corr = cfg.corrector.map_or(0, |c| c.steps);
    let stride = n_corr as u32 + 1;
    let backend = CpuBackend::new();
    for (k, w) in cfg.times.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        let h = t - s;
        let step = k as u32 * stride;
        let logits = cache.logits(tokens, t)?;
        match cfg.predictor {
            Predictor::Euler | Predictor::TauLeaping(_) => {
                let (sigma, sigma_bar) = rate_and_total(ctmc, t)?;
                for (i, x) in tokens.iter_mut().enumerate() {
                    let row = logits.row(i);
                    let row = row
                        .as_slice()
                        .ok_or_else(|| Error::invalid("logits", "not contiguous"))?;
                    reverse_rates_from_logits(
                        ctmc.generator(),
                        sigma,
                        sigma_bar,
                        *x,
                        row,
                        &mut ws,
                        &mut rates,
                    )?;
                    let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, step, i as u32);
                    *x = match cfg.predictor {
                        Predictor::TauLeaping(mode) => {
                            tau_leaping_draw(&rates, *x, h, mode, &mut rng)?
                        }
                        _ => euler_draw(&rates, *x, h, rng.uniform())?,
                    };
                }
            }
            Predictor::Tweedie => {
                let st = ctmc.total_noise(t)?;
                let ss = ctmc.total_noise(s)?;
                for (i, x) in tokens.iter_mut().enumerate() {
                    softmax_into(logits.row(i).iter(), &mut p)?;
                    tweedie_law_from_x0(ctmc.generator(), st, ss, *x, &p, &mut ws, &mut law)?;
                    let u = CounterRng::new(key, Purpose::CATEGORICAL, step, i as u32).uniform();
                    *x = sample_masses(&law, u)?.token;
                }
            }
            Predictor::AbsorbingTweedie { mask_id } => {
                let l = tokens.len();
                let view3 = logits
                    .view()
                    .into_shape_with_order((1, l, v))
                    .map_err(|e| Error::invalid("logits", e.to_string()))?;
                let toks = ndarray::ArrayViewMut2::from_shape((1, l), &mut *tokens)
                    .map_err(|e| Error::invalid("tokens", e.to_string()))?;
                let streams = [cfg.stream];
                let rng = StepRng {
                    seed: cfg.seed,
                    streams: &streams,
                    step,
                };
                mdlm_ancestral_step(
                    &backend,
                    ctmc.schedule(),
                    view3,
                    toks,
                    &MdlmStep { mask_id, t, s },
                    &rng,
                )?;
            }
        }
        if let Some(c) = cfg.corrector {
            let sigma = ctmc.noise_rate(s)?;
            if s == 0.0 || !sigma.is_finite() || c.steps == 0 {
                continue;
            }
            let sigma_bar = ctmc.total_noise(s)?;
            for j in 0..c.steps {
                let logits = cache.logits(tokens, s)?;
                let cstep = step + j as u32 + 1;
                for (i, x) in tokens.iter_mut().enumerate() {
                    let row = logits.row(i);
                    let row = row
                        .as_slice()
                        .ok_or_else(|| Error::invalid("logits", "not contiguous"))?;
                    reverse_rates_from_logits(
                        ctmc.generator(),
                        sigma,
                        sigma_bar,
                        *x,
                        row,
                        &mut ws,
                        &mut rates,
                    )?;
                    corrector_rates(ctmc.generator(), sigma, *x, &rates, &mut law, &mut corr)?;
                    let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, cstep, i as u32);
                    *x = tau_leaping_draw(&corr, *x, c.multiplier * h, c.mode, &mut rng)?;
                }
            }
        }
    }
    Ok(CtmcSampleOutput {
        nfe: cache.nfe(),
        steps: cfg.times.len() - 1,
    })
}
