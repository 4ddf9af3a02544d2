//! Monte Carlo estimators of the masked-diffusion NELBO of one sequence, factored the way a
//! training loop needs them: [`ElboDraws::new`] builds the noisy inputs (no model involved),
//! the caller runs its network on them, and [`ElboDraws::evaluate`] returns the estimate and
//! its gradient with respect to the logits. [`nelbo_estimate`] does all three with a
//! [`Denoiser`].
//!
//! # The quantity
//!
//! For clean tokens `x_0` whose positions `≥ prompt_len` form the answer (all positions when
//! `prompt_len = 0`), masking answer tokens independently with probability `1 − α(t)`:
//!
//! ```text
//! NELBO(x_0) = ∫_0^1 w(t) E_{M ~ Bern(1−α(t))}[ Σ_{i∈M} −log p_θ(x_0^i | x_0 with M masked) ] dt
//!            = Σ_{m=1}^{A} (1/m) E_{|M| = m}[ Σ_{i∈M} −log p_θ(x_0^i | …) ]      (w = ELBO weight)
//! ```
//!
//! with `A` the answer length; the second line (integrating `w(t)·Binom(m; A, 1 − α(t))`
//! over `t` gives `1/m` for every schedule) holds whenever the model ignores `t` (MDLM,
//! LLaDA, exact oracles). With the exact posterior it equals `−log p(answer | prompt)`
//! exactly (every unmasking order is a chain-rule factorisation).
//!
//! # Estimators ([`ElboSampling`])
//!
//! * **Time** — `n_t` times from any [`TimeSampler`] (i.i.d. [`Uniform`](crate::schedule::Uniform),
//!   MDLM's [`Antithetic`](crate::schedule::Antithetic), VDM/MD4's
//!   [`Stratified`](crate::schedule::Stratified)), `masks_per_time` Bernoulli masks each,
//!   value `w(t)·Σ_{i∈M} CE_i`. With `masks_per_time = 1` this is VRPO's optimal allocation
//!   (LLaDA 1.5, Zhu et al. 2025, Thm. 2: spend the budget on distinct times).
//! * **MaskCount** — LLaDA's likelihood evaluation (Nie et al. 2025, App. B.6, Algorithm 3;
//!   `get_log_likelihood.py`): draw the number of masked tokens `m ∈ {1..A}`, mask a uniform
//!   subset of exactly `m` answer positions, value `(A/m)·Σ_{i∈M} CE_i`. `stratified`:
//!   LLaDA's k-stratified counts `m_j = ((round(k + jA/n) − 1) mod A) + 1`, `j < n`,
//!   `k ~ U{1..A}`, so the `n` counts cover `{1..A}` evenly. Rounding here is half-up
//!   (`⌊x + ½⌋`): it makes `m_j` a shift of `k` and hence exactly uniform, whereas the
//!   reference's `torch.round` (half-to-even) is not a shift when `jA/n` ends in `.5` and
//!   then biases the estimate.
//!
//! # Randomness
//!
//! Under `key = RngKey::for_stream(seed, sequence_id)`: times at `(key, TIME, step, j)`
//! (through the sampler), counts at `(key, TIME, step, j)`, and draw `d`'s position
//! uniforms at `(key, FORWARD_NOISE, step, i, index d)` ([`MaskAddress`]). Two sequences
//! estimated under one key share their times and, position by position, their masks: this
//! is the shared-noise coupling that [VRPO](super::vrpo) needs.

use ndarray::{Array2, Array3, ArrayView3, ArrayViewMut3, Axis};
use num_traits::Float;

use super::masks::{MaskAddress, apply_mask, bernoulli_mask, exact_count_mask};
use crate::error::{Error, Result};
use crate::loss::masked::{PositionWeights, masked_diffusion_loss};
use crate::loss::weight::ElboWeight;
use crate::model::Denoiser;
use crate::rng::{Purpose, RngKey, u64_at, u64_to_unit_f64};
use crate::schedule::{Schedule, TimeSampler};
use crate::validate;

/// How the `(t, mask)` draws of an estimator are made (module docs).
#[derive(Clone, Copy, Debug)]
pub enum ElboSampling<'a> {
    /// Times from `sampler`, Bernoulli(`1 − α(t)`) masks of the answer, weight
    /// `weight.weight(schedule, t)`.
    Time {
        /// Sampler of the `n_t` times.
        sampler: &'a dyn TimeSampler,
        /// The masking schedule `α(t)`.
        schedule: &'a dyn Schedule,
        /// The weight `w(t)` ([`ElboWeight::Elbo`] for the NELBO).
        weight: ElboWeight,
        /// Masks per time (`≥ 1`); draws = `n_t · masks_per_time`.
        masks_per_time: usize,
    },
    /// LLaDA: exact mask counts `m ∈ {1..A}`, weight `A/m`.
    MaskCount {
        /// LLaDA's k-stratified counts (else i.i.d. uniform counts).
        stratified: bool,
    },
}

/// The noisy inputs of one NELBO estimate (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct ElboDraws {
    x0: Vec<u32>,
    mask_token: u32,
    /// Noisy sequences, one row per draw: `[n, L]`.
    pub tokens: Array2<u32>,
    /// The time of each draw, as passed to the model (`t`, or `m/A` for mask counts).
    pub times: Vec<f64>,
    /// The weight of each draw's masked cross-entropy (`w(t)`, or `A/m`; 0 when nothing is
    /// masked).
    pub weights: Vec<f64>,
}

/// A NELBO estimate (nats) with its per-draw values.
#[derive(Clone, Debug, PartialEq)]
pub struct NelboEstimate {
    /// The estimate: the mean of `draws`.
    pub value: f64,
    /// `w_d Σ_{i∈M_d} CE_{d,i}` for each draw `d`.
    pub draws: Vec<f64>,
}

impl NelboEstimate {
    /// The sample standard error `sd(draws)/√n` (`NaN` for one draw). Meaningful for i.i.d.
    /// draws only: stratified draws are dependent by design (measure their variance over
    /// independent repetitions).
    pub fn std_error(&self) -> f64 {
        let n = self.draws.len() as f64;
        let var = self
            .draws
            .iter()
            .map(|d| (d - self.value).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        (var / n).sqrt()
    }
}

fn check_x0(x0: &[u32], mask_token: u32, prompt_len: usize) -> Result<usize> {
    if x0.is_empty() || x0.len() > u32::MAX as usize {
        return Err(Error::invalid(
            "x0",
            format!("length {} must lie in 1..=u32::MAX", x0.len()),
        ));
    }
    if let Some(i) = x0.iter().position(|&x| x == mask_token) {
        return Err(Error::invalid(
            "x0",
            format!("x0[{i}] is the mask token {mask_token}"),
        ));
    }
    if prompt_len >= x0.len() {
        return Err(Error::invalid(
            "prompt_len",
            format!(
                "{prompt_len} leaves no answer in a sequence of length {}",
                x0.len()
            ),
        ));
    }
    Ok(x0.len() - prompt_len)
}

impl ElboDraws {
    /// Build the draws of one estimate for the clean sequence `x0` (module docs).
    ///
    /// `num_times` is `n_t` for [`ElboSampling::Time`] and the number of draws for
    /// [`ElboSampling::MaskCount`]. The draws use `key` (normally
    /// `RngKey::for_stream(seed, sequence_id)`) at training step `step`.
    ///
    /// Errors: `x0` empty or containing `mask_token`; `prompt_len ≥ L`; `num_times = 0` or
    /// above `u32::MAX`; `masks_per_time = 0`; an invalid [`ElboWeight`]; the sampler's and
    /// schedule's errors; a weight of `+∞` on a draw that masks something (e.g. the ELBO
    /// weight at `t = 0` of a schedule with `α(0) < 1`).
    pub fn new(
        x0: &[u32],
        mask_token: u32,
        prompt_len: usize,
        sampling: ElboSampling<'_>,
        num_times: usize,
        key: RngKey,
        step: u32,
    ) -> Result<Self> {
        let a = check_x0(x0, mask_token, prompt_len)?;
        if num_times == 0 || num_times > u32::MAX as usize {
            return Err(Error::invalid(
                "num_times",
                format!("{num_times} must lie in 1..=u32::MAX"),
            ));
        }
        let l = x0.len();
        let eligible: Vec<bool> = (0..l).map(|i| i >= prompt_len).collect();
        let mut mask = vec![false; l];
        let mut row = vec![0u32; l];
        let (mut rows, mut times, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        let mut push = |mask: &[bool], t: f64, w: f64, rows: &mut Vec<u32>| -> Result<()> {
            apply_mask(x0, mask, mask_token, &mut row)?;
            rows.extend_from_slice(&row);
            times.push(t);
            weights.push(if mask.iter().any(|&m| m) { w } else { 0.0 });
            Ok(())
        };
        match sampling {
            ElboSampling::Time {
                sampler,
                schedule,
                weight,
                masks_per_time,
            } => {
                weight.validate()?;
                if masks_per_time == 0 {
                    return Err(Error::invalid("masks_per_time", "must be ≥ 1"));
                }
                let mut ts = vec![0.0; num_times];
                sampler.sample_into(key, step, &mut ts)?;
                let mut probs = vec![0.0; l];
                for (j, &t) in ts.iter().enumerate() {
                    let p = schedule.move_chance(t)?;
                    probs[prompt_len..].fill(p.clamp(0.0, 1.0));
                    for r in 0..masks_per_time {
                        let d = (j * masks_per_time + r) as u64;
                        bernoulli_mask(MaskAddress { key, step, draw: d }, &probs, &mut mask)?;
                        let w = if mask.iter().any(|&m| m) {
                            let w = weight.weight(schedule, t)?;
                            if !w.is_finite() {
                                return Err(Error::invalid(
                                    "sampling",
                                    format!("weight w({t}) = {w} on a draw with masked tokens"),
                                ));
                            }
                            w
                        } else {
                            0.0
                        };
                        push(&mask, t, w, &mut rows)?;
                    }
                }
            }
            ElboSampling::MaskCount { stratified } => {
                let af = a as f64;
                let unit =
                    |j: usize| u64_to_unit_f64(u64_at(key, Purpose::TIME, step, j as u32, 0));
                let k = 1 + ((unit(0) * af) as usize).min(a - 1);
                for j in 0..num_times {
                    let m = if stratified {
                        let shift = (j as f64 * af / num_times as f64 + 0.5).floor() as usize;
                        (k - 1 + shift) % a + 1
                    } else {
                        1 + ((unit(j) * af) as usize).min(a - 1)
                    };
                    exact_count_mask(
                        MaskAddress {
                            key,
                            step,
                            draw: j as u64,
                        },
                        m,
                        &eligible,
                        &mut mask,
                    )?;
                    push(&mask, m as f64 / af, af / m as f64, &mut rows)?;
                }
            }
        }
        let n = times.len();
        let tokens = Array2::from_shape_vec((n, l), rows)
            .map_err(|e| Error::invalid("x0", format!("internal shape error: {e}")))?;
        Ok(ElboDraws {
            x0: x0.to_vec(),
            mask_token,
            tokens,
            times,
            weights,
        })
    }

    /// Number of draws `n`.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether there are no draws (never true for a constructed value).
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The estimate `(1/n) Σ_d w_d Σ_{i∈M_d} CE_{d,i}` from the model's logits on
    /// [`tokens`](Self::tokens) (`logits [n, L, V]`, SUBS cross-entropy of
    /// [`masked_diffusion_loss`]) and, if `grad` is given (`[n, L, V]`, overwritten), its
    /// gradient `∂ value / ∂ logits` — the NELBO estimate is a mean, so row `d` carries the
    /// factor `w_d / n`.
    ///
    /// Errors: shape mismatches; `V` not above the mask token; the errors of
    /// [`masked_diffusion_loss`] (non-finite logits on masked rows, a `−∞` target).
    pub fn evaluate<F: Float>(
        &self,
        logits: ArrayView3<'_, F>,
        mut grad: Option<ArrayViewMut3<'_, F>>,
    ) -> Result<NelboEstimate> {
        let (n, l) = self.tokens.dim();
        let (bn, bl, v) = logits.dim();
        if (bn, bl) != (n, l) {
            return Err(Error::shape(
                "logits",
                format!("[{n}, {l}, V]"),
                format!("[{bn}, {bl}, {v}]"),
            ));
        }
        if let Some(g) = grad.as_ref()
            && g.dim() != (n, l, v)
        {
            return Err(Error::shape(
                "grad",
                format!("[{n}, {l}, {v}]"),
                format!("{:?}", g.shape()),
            ));
        }
        let inv_n = 1.0 / n as f64;
        let mut draws = Vec::with_capacity(n);
        let mut xt = vec![0u32; l];
        for d in 0..n {
            xt.iter_mut()
                .zip(self.tokens.row(d))
                .for_each(|(o, &s)| *o = s);
            let w = self.weights[d];
            let g = grad.as_mut().map(|g| g.index_axis_mut(Axis(0), d));
            let r = masked_diffusion_loss(
                logits.index_axis(Axis(0), d),
                &self.x0,
                &xt,
                self.mask_token,
                PositionWeights::Shared(w * inv_n),
                g,
            )?;
            draws.push(w * r.cross_entropy);
        }
        let value = draws.iter().sum::<f64>() * inv_n;
        Ok(NelboEstimate { value, draws })
    }

    /// Run `denoiser` on the draws (one batched call) and evaluate them.
    ///
    /// Errors: `denoiser.vocab_size() ≤ mask_token`; the denoiser's errors; those of
    /// [`evaluate`](Self::evaluate).
    pub fn evaluate_with(&self, denoiser: &dyn Denoiser) -> Result<NelboEstimate> {
        let v = denoiser.vocab_size();
        validate::token("mask_token", self.mask_token, v)?;
        let (n, l) = self.tokens.dim();
        let mut logits = Array3::<f32>::zeros((n, l, v));
        let times = ndarray::ArrayView1::from(&self.times);
        denoiser.logits(self.tokens.view(), times, logits.view_mut())?;
        self.evaluate(logits.view(), None)
    }
}

/// Estimate the NELBO of `x0` under `denoiser` (module docs): [`ElboDraws::new`] then
/// [`ElboDraws::evaluate_with`].
///
/// ```
/// use discrete_diffusion::kernel::mixture::MixtureProcess;
/// use discrete_diffusion::model::enumeration::EnumerationOracle;
/// use discrete_diffusion::model::oracle::{ExactPosterior, OracleDenoiser};
/// use discrete_diffusion::rng::RngKey;
/// use discrete_diffusion::schedule::MdlmCosine;
/// use discrete_diffusion::train::elbo::{ElboSampling, nelbo_estimate};
///
/// // Two data tokens {0, 1} and the mask 2; L = 2, p(x) ∝ table.
/// let oracle = EnumerationOracle::new(3, 2, vec![0.4, 0.1, 0.0, 0.2, 0.3, 0.0, 0.0, 0.0, 0.0])?;
/// let process = MixtureProcess::from_schedule(vec![0.0, 0.0, 1.0], MdlmCosine::new(0.0)?)?;
/// let model = OracleDenoiser::new(oracle, process)?;
/// let est = nelbo_estimate(&model, &[0, 1], 2, 0, ElboSampling::MaskCount { stratified: true },
///                          64, RngKey::for_stream(1, 0), 0)?;
/// // With the exact posterior the NELBO is −log p(x) = −log 0.1.
/// assert!((est.value + 0.1f64.ln()).abs() < 0.3);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn nelbo_estimate(
    denoiser: &dyn Denoiser,
    x0: &[u32],
    mask_token: u32,
    prompt_len: usize,
    sampling: ElboSampling<'_>,
    num_times: usize,
    key: RngKey,
    step: u32,
) -> Result<NelboEstimate> {
    ElboDraws::new(x0, mask_token, prompt_len, sampling, num_times, key, step)?
        .evaluate_with(denoiser)
}
