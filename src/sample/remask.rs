//! ReMDM remasking (Wang et al. 2025, "Remasking Discrete Diffusion Models with Inference-
//! Time Scaling"; kuleshov-group/remdm `Diffusion._ddpm_caching_update`).
//!
//! With `α_t < α_s` the survival at the current and next time and a remasking probability
//! `σ_t ∈ [0, σ_max]`, `σ_max = min(1, (1 − α_s)/α_t)` (`1` when `α_t = 0`), the ReMDM
//! reverse step is, per position (ReMDM eq. 5 with SUBS `p_θ(x0)`):
//!
//! ```text
//! unmasked x:  q(· | x)    = (1 − σ) δ_x + σ δ_mask
//! masked:      q(· | mask) = (α_s − (1 − σ) α_t)/(1 − α_t) · p_θ(x0)
//!                          + (1 − α_s − σ α_t)/(1 − α_t) · δ_mask
//! ```
//!
//! `σ = 0` is the MDLM ancestral step. The strategies ([`RemdmSigma`]): `max-capped`
//! `σ = min(η, σ_max)`, `rescaled` `σ = η σ_max`, `confidence` `σ_l = softmax_l(conf) σ_max`
//! over the unmasked positions (`conf_l = −p_θ(x_l)` at its reveal time: low-confidence
//! tokens are remasked first), `forward-backward` `σ = (α_s − α_t)/α_t`, and the `loop`
//! schedule ([`RemdmLoop`]).
//!
//! **Capping.** Here σ is capped at `σ_max` at **every** step. The public code does not
//! cap `forward-backward`: at the last step its `σ = (α_s − α_t)/α_t` exceeds `σ_max`, which
//! makes the mask weight of a masked position negative (`−0.9998` for `α_t ≈ 0.9`,
//! `α_s ≈ 1`; conformance `remdm_forward-backward_*_step9_*`). The anchor then renormalises
//! after clipping to `p_θ(x0)`; the capped σ gives that law directly (mask weight exactly 0),
//! and [`remdm_sigma`] still returns the uncapped value for comparison.

use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2};

use crate::backend::steps::{Commit, StepOutput, StepRng};
use crate::backend::{Backend, RowSpec};
use crate::error::{Error, Result};
use crate::rng::Purpose;

/// How σ is chosen at a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RemdmSigma {
    /// `σ = 0` (plain MDLM).
    None,
    /// `σ = min(η, σ_max)` (`remdm-cap`).
    Cap {
        /// `η ∈ [0, 1]`.
        eta: f64,
    },
    /// `σ = η σ_max` (`remdm-rescale`).
    Rescale {
        /// `η ∈ [0, 1]`.
        eta: f64,
    },
    /// `σ_l = softmax_l(conf) σ_max` over the unmasked positions (`remdm-conf`).
    Confidence,
    /// `σ = (α_s − α_t)/α_t` capped at `σ_max` (`forward-backward`; see the module docs).
    ForwardBackward,
}

/// σ at one step: the strategy's value and the cap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SigmaAt {
    /// The strategy's own σ (`min(η, σ_max)` for `Cap`, the uncapped `(α_s − α_t)/α_t` for
    /// `ForwardBackward`; `1.0` placeholder for [`RemdmSigma::Confidence`],
    /// whose σ is per position: see [`remdm_conf_sigmas`]).
    pub raw: f64,
    /// `σ_max = min(1, (1 − α_s)/α_t)`, `1` when `α_t = 0`.
    pub max: f64,
    /// `min(raw, max)`, the σ used.
    pub used: f64,
}

fn check_alphas(alpha_t: f64, alpha_s: f64) -> Result<()> {
    crate::validate::probability("alpha_t", alpha_t)?;
    crate::validate::probability("alpha_s", alpha_s)?;
    if alpha_s < alpha_t {
        return Err(Error::invalid(
            "alpha_s",
            format!("α_s = {alpha_s} must be ≥ α_t = {alpha_t} (s is the less noisy time)"),
        ));
    }
    Ok(())
}

/// `σ_max = min(1, (1 − α_s)/α_t)` (`1` when `α_t = 0`).
///
/// # Errors
/// `α ∉ [0, 1]` or `α_s < α_t`.
pub fn remdm_sigma_max(alpha_t: f64, alpha_s: f64) -> Result<f64> {
    check_alphas(alpha_t, alpha_s)?;
    Ok(if alpha_t == 0.0 {
        1.0
    } else {
        ((1.0 - alpha_s) / alpha_t).min(1.0)
    })
}

/// σ of a strategy at `α_t → α_s`.
///
/// # Errors
/// Bad alphas; `η ∉ [0, 1]`.
pub fn remdm_sigma(kind: RemdmSigma, alpha_t: f64, alpha_s: f64) -> Result<SigmaAt> {
    let max = remdm_sigma_max(alpha_t, alpha_s)?;
    let raw = match kind {
        RemdmSigma::None => 0.0,
        RemdmSigma::Cap { eta } => crate::validate::probability("eta", eta)?.min(max),
        RemdmSigma::Rescale { eta } => crate::validate::probability("eta", eta)? * max,
        RemdmSigma::Confidence => 1.0,
        RemdmSigma::ForwardBackward => {
            if alpha_t == 0.0 {
                1.0
            } else {
                (alpha_s - alpha_t) / alpha_t
            }
        }
    };
    Ok(SigmaAt {
        raw,
        max,
        used: raw.min(max),
    })
}

/// `σ_l = softmax(conf)_l · σ_max` over all positions, `conf_l = −∞` (masked) giving 0.
/// All `−∞`: all zeros.
///
/// # Errors
/// A NaN or `+∞` confidence; `σ_max ∉ [0, 1]`.
pub fn remdm_conf_sigmas(conf: &[f64], sigma_max: f64) -> Result<Vec<f64>> {
    crate::validate::probability("sigma_max", sigma_max)?;
    for (index, &c) in conf.iter().enumerate() {
        if c.is_nan() || c == f64::INFINITY {
            return Err(Error::NonFinite {
                arg: "conf",
                index,
                value: c,
            });
        }
    }
    let m = conf.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return Ok(vec![0.0; conf.len()]);
    }
    let e: Vec<f64> = conf.iter().map(|&c| (c - m).exp()).collect();
    let z: f64 = e.iter().sum();
    Ok(e.into_iter().map(|x| x / z * sigma_max).collect())
}

/// The probability that a masked position is revealed at this step:
/// `(α_s − (1 − σ) α_t)/(1 − α_t)`, clamped to `[0, 1]`.
///
/// # Errors
/// Bad alphas, `σ ∉ [0, 1]`, `α_t = 1` (no position can be masked).
pub fn remdm_reveal_probability(alpha_t: f64, alpha_s: f64, sigma: f64) -> Result<f64> {
    check_alphas(alpha_t, alpha_s)?;
    crate::validate::probability("sigma", sigma)?;
    if alpha_t >= 1.0 {
        return Err(Error::ZeroProbability {
            what: "masked position with α_t = 1".into(),
        });
    }
    Ok(((alpha_s - (1.0 - sigma) * alpha_t) / (1.0 - alpha_t)).clamp(0.0, 1.0))
}

/// The normalised law of the next token of one position with current token `x` (module
/// formula), written into `out` (length `V`); `p_x0` is `p_θ(x0)` (its mask entry is
/// ignored: SUBS gives the mask probability 0).
///
/// # Errors
/// Bad alphas or σ, `x` or `mask_id ≥ V`, `p_x0` not a distribution over the non-mask ids
/// (masked `x` only), length mismatch.
pub fn remdm_position_probs(
    alpha_t: f64,
    alpha_s: f64,
    sigma: f64,
    x: u32,
    mask_id: u32,
    p_x0: &[f64],
    out: &mut [f64],
) -> Result<()> {
    check_position(x, mask_id, p_x0, out)?;
    check_alphas(alpha_t, alpha_s)?;
    crate::validate::probability("sigma", sigma)?;
    out.iter_mut().for_each(|o| *o = 0.0);
    if x != mask_id {
        out[x as usize] = 1.0 - sigma;
        out[mask_id as usize] = sigma;
        return Ok(());
    }
    let c = remdm_reveal_probability(alpha_t, alpha_s, sigma)?;
    reveal_law(c, mask_id, p_x0, out)
}

/// The `remdm-loop` schedule: MDLM to `α_on` on `(t_on, 1]`, ReMDM at constant
/// `α = α_on` with `σ = min(η, σ_max)` on `(t_off, t_on]`, MDLM to 1 on `[0, t_off]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RemdmLoop {
    /// Start of the loop phase, `0 < t_off < t_on < 1`.
    pub t_on: f64,
    /// End of the loop phase.
    pub t_off: f64,
    /// Survival held during the loop, `α_on ∈ (0, 1)`.
    pub alpha_on: f64,
    /// The loop's `η ∈ [0, 1]`.
    pub eta: f64,
}

/// Survivals and σ of one loop step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoopStep {
    /// `α` at the current time.
    pub alpha_t: f64,
    /// `α` at the next time.
    pub alpha_s: f64,
    /// The σ used (0 in the MDLM phases).
    pub sigma: f64,
    /// Whether the step is in the remasking phase.
    pub remasking: bool,
}

impl RemdmLoop {
    /// Check `0 < t_off < t_on < 1`, `α_on ∈ (0, 1)`, `η ∈ [0, 1]`.
    ///
    /// # Errors
    /// The first violated condition.
    pub fn validate(&self) -> Result<()> {
        if !(0.0 < self.t_off && self.t_off < self.t_on && self.t_on < 1.0) {
            return Err(Error::invalid(
                "RemdmLoop",
                format!("need 0 < t_off ({}) < t_on ({}) < 1", self.t_off, self.t_on),
            ));
        }
        if !(self.alpha_on > 0.0 && self.alpha_on < 1.0) {
            return Err(Error::invalid(
                "RemdmLoop.alpha_on",
                format!("{} ∉ (0, 1)", self.alpha_on),
            ));
        }
        crate::validate::probability("RemdmLoop.eta", self.eta)?;
        Ok(())
    }

    /// The move chance `1 − α` of the phase of `phase_t` evaluated at `t`.
    fn move_chance(&self, phase_t: f64, t: f64) -> f64 {
        if phase_t > self.t_on {
            1.0 - (1.0 - t) * self.alpha_on / (1.0 - self.t_on)
        } else {
            t * (1.0 - self.alpha_on) / self.t_off
        }
    }

    /// The step `t → s` (`s < t`); the phase is that of `t` (the anchor's rule).
    ///
    /// # Errors
    /// Invalid parameters or times.
    pub fn step(&self, t: f64, s: f64) -> Result<LoopStep> {
        self.validate()?;
        crate::validate::time("t", t)?;
        crate::validate::time("s", s)?;
        if s >= t {
            return Err(Error::invalid("s", format!("s = {s} must be < t = {t}")));
        }
        if t > self.t_off && t <= self.t_on {
            let a = self.alpha_on;
            let sigma = self.eta.min(remdm_sigma_max(a, a)?);
            return Ok(LoopStep {
                alpha_t: a,
                alpha_s: a,
                sigma,
                remasking: true,
            });
        }
        let mt = self.move_chance(t, t).clamp(0.0, 1.0);
        let ms = self.move_chance(t, s).clamp(0.0, 1.0);
        Ok(LoopStep {
            alpha_t: 1.0 - mt,
            alpha_s: 1.0 - ms,
            sigma: 0.0,
            remasking: false,
        })
    }
}

/// One ReMDM step over a batch, in place.
///
/// For each position `(b, i)` with `eligible[b, i]` (all when `None`) one decision uniform
/// `u` of [`Purpose::ROUTING`] at `(seed, streams[b], step, i)`:
/// * unmasked: remasked iff `u < σ_{b,i}` (`sigma[b, i]`, already capped);
/// * masked: revealed iff `u < (α_s − (1 − σ_{b,i}) α_t)/(1 − α_t)`, to `x0 ~ softmax(ℓ)`
///   with the mask excluded (the backend's inverse-CDF draw at [`Purpose::CATEGORICAL`]);
///   only these rows are read.
///
/// Decisions use the state before the step (a remasked token is not revealed again in the
/// same step). Returns the reveals as commits, and the remasked positions.
///
/// # Errors
/// Shapes, tokens, alphas, a σ outside `[0, 1]`, a read row without finite logits.
#[allow(clippy::too_many_arguments)]
pub fn remdm_step<B: Backend + ?Sized>(
    backend: &B,
    logits: ArrayView3<'_, f32>,
    mut tokens: ArrayViewMut2<'_, u32>,
    eligible: Option<ArrayView2<'_, bool>>,
    sigma: ArrayView2<'_, f64>,
    (alpha_t, alpha_s): (f64, f64),
    mask_id: u32,
    rng: &StepRng<'_>,
) -> Result<(StepOutput, Vec<(usize, usize)>)> {
    let (b, l, v) = logits.dim();
    crate::validate::vocab("logits.V", v)?;
    crate::validate::token("mask_id", mask_id, v)?;
    if tokens.dim() != (b, l)
        || sigma.dim() != (b, l)
        || eligible.is_some_and(|e| e.dim() != (b, l))
    {
        return Err(Error::shape(
            "tokens/sigma/eligible",
            format!("[{b}, {l}]"),
            "another shape",
        ));
    }
    crate::validate::len("rng.streams", rng.streams.len(), b)?;
    check_alphas(alpha_t, alpha_s)?;
    let mut select = Array2::from_elem((b, l), false);
    let mut remask = Vec::new();
    for bi in 0..b {
        for i in 0..l {
            if eligible.is_some_and(|e| !e[[bi, i]]) {
                continue;
            }
            let s = sigma[[bi, i]];
            crate::validate::probability("sigma", s)?;
            let x = tokens[[bi, i]];
            crate::validate::token("tokens", x, v)?;
            let u = rng.uniform(Purpose::ROUTING, bi, i).unwrap_or(1.0);
            if x == mask_id {
                select[[bi, i]] = u < remdm_reveal_probability(alpha_t, alpha_s, s)?;
            } else if u < s {
                remask.push((bi, i));
            }
        }
    }
    let spec = RowSpec {
        temperature: 1.0,
        excluded: vec![mask_id],
        entropy: false,
        margin: false,
    };
    let mut summaries = Array2::from_elem((b, l), Default::default());
    if select.iter().any(|&s| s) {
        backend.summarize(
            logits,
            Some(select.view()),
            &spec,
            &rng.with_purpose(Purpose::CATEGORICAL),
            summaries.view_mut(),
        )?;
    }
    let mut commits = Vec::new();
    for ((bi, i), &r) in select.indexed_iter() {
        if r {
            let s: crate::backend::RowSummary = summaries[[bi, i]];
            tokens[[bi, i]] = s.token;
            commits.push(Commit {
                seq: bi,
                pos: i,
                token: s.token,
                logprob: s.token_logprob,
            });
        }
    }
    for &(bi, i) in &remask {
        tokens[[bi, i]] = mask_id;
    }
    Ok((
        StepOutput {
            commits,
            summaries,
            read: select,
        },
        remask,
    ))
}

/// The coefficients of ReMDM's DFM corrector sampler (kuleshov-group/remdm
/// `Diffusion._dfm_caching_update`, after Gat et al. 2024's corrector schedule) at time `t`
/// with `steps` nominal steps and `α = 1 − t`:
/// `a_t = 10 t^{1/4} (1 − t)^{1/4} + 1` (forward-velocity weight), `b_t = a_t − 1`
/// (backward weight), and the adaptive step `dt = min(1/steps, 1/(a_t/t + b_t/(1 − t)))`
/// (`1/steps` at `t = 1`), which keeps every probability below in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DfmCorrector {
    /// `a_t`.
    pub a_t: f64,
    /// `b_t = a_t − 1`.
    pub b_t: f64,
    /// The step `dt`; the next time is `t − dt`.
    pub dt: f64,
}

/// [`DfmCorrector`] at `t ∈ (0, 1]`.
///
/// # Errors
/// `t ∉ (0, 1]`, `steps = 0`.
pub fn remdm_dfm_corrector(t: f64, steps: usize) -> Result<DfmCorrector> {
    crate::validate::time("t", t)?;
    if t == 0.0 || steps == 0 {
        return Err(Error::invalid(
            "t/steps",
            format!("need t ∈ (0, 1] and steps ≥ 1 (t = {t}, steps = {steps})"),
        ));
    }
    let a_t = 10.0 * t.powf(0.25) * (1.0 - t).powf(0.25) + 1.0;
    let b_t = a_t - 1.0;
    let h = 1.0 / steps as f64;
    let dt = if t == 1.0 {
        h
    } else {
        h.min(1.0 / (a_t / t + b_t / (1.0 - t)))
    };
    Ok(DfmCorrector { a_t, b_t, dt })
}

/// The law of the next token of one position under the DFM corrector step `t → t − dt`
/// (`α = 1 − t`), written to `out`:
///
/// ```text
/// masked:    reveal with  a_t (α_s − α_t)/(1 − α_t)  to  x0 ~ p_θ(x0), else stay masked
/// unmasked:  keep with    1 − b_t (α_s/α_t − 1),  else back to the mask
/// ```
///
/// At `t = 1` the plain MDLM update (`a = 1`, `b = 0`). Probabilities are clamped to
/// `[0, 1]` (the adaptive `dt` keeps them there).
///
/// # Errors
/// As [`remdm_dfm_corrector`]; `x`, `mask_id` `≥ V`; `p_x0` not a distribution off the mask
/// (masked `x`); `out` of the wrong length.
pub fn remdm_dfm_position_probs(
    t: f64,
    steps: usize,
    x: u32,
    mask_id: u32,
    p_x0: &[f64],
    out: &mut [f64],
) -> Result<()> {
    let c = remdm_dfm_corrector(t, steps)?;
    let (a, b) = if t == 1.0 { (1.0, 0.0) } else { (c.a_t, c.b_t) };
    let (alpha_t, alpha_s) = (1.0 - t, 1.0 - (t - c.dt));
    check_position(x, mask_id, p_x0, out)?;
    out.iter_mut().for_each(|o| *o = 0.0);
    if x != mask_id {
        let keep = if alpha_t == 0.0 {
            1.0
        } else {
            (1.0 - b * (alpha_s / alpha_t - 1.0)).clamp(0.0, 1.0)
        };
        out[x as usize] = keep;
        out[mask_id as usize] = 1.0 - keep;
        return Ok(());
    }
    let reveal = (a * (alpha_s - alpha_t) / (1.0 - alpha_t)).clamp(0.0, 1.0);
    reveal_law(reveal, mask_id, p_x0, out)
}

/// The argument checks shared by the per-position laws: `p_x0` non-empty, `out` of its
/// length `V`, `x` and `mask_id` below `V`.
fn check_position(x: u32, mask_id: u32, p_x0: &[f64], out: &[f64]) -> Result<()> {
    let v = p_x0.len();
    crate::validate::vocab("p_x0", v)?;
    crate::validate::len("out", out.len(), v)?;
    crate::validate::token("x", x, v)?;
    crate::validate::token("mask_id", mask_id, v)?;
    Ok(())
}

/// The law of a masked position that is revealed with probability `reveal`: `out[v] =
/// reveal · p_x0[v] / Z` on the non-mask ids (`Z` their mass; the mask entry of `p_x0` is
/// ignored) and `out[mask_id] = 1 − reveal`. Errors ([`Error::NotADistribution`]): `Z` not
/// positive, or an entry of `p_x0` negative or not finite.
fn reveal_law(reveal: f64, mask_id: u32, p_x0: &[f64], out: &mut [f64]) -> Result<()> {
    let z: f64 = p_x0
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != mask_id as usize)
        .map(|(_, &p)| p)
        .sum();
    if z.is_nan() || z <= 0.0 || p_x0.iter().any(|p| !(p.is_finite() && *p >= 0.0)) {
        return Err(Error::NotADistribution {
            arg: "p_x0",
            reason: format!("non-mask mass {z}"),
        });
    }
    for (i, (o, &p)) in out.iter_mut().zip(p_x0).enumerate() {
        if i != mask_id as usize {
            *o = reveal * p / z;
        }
    }
    out[mask_id as usize] = 1.0 - reveal;
    Ok(())
}
