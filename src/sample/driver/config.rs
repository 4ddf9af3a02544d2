//! The driver's configuration: policy, blocks, stop rules, EOS padding.

use std::sync::Arc;

use crate::backend::RowSpec;
use crate::backend::steps::{Commit, JumpRule};
use crate::error::{Error, Result};
use crate::sample::remask::{RemdmLoop, RemdmSigma, remdm_sigma};
use crate::sample::select::Unmasking;
use crate::sample::transform::{LogitTransform, validate_transforms};
use crate::schedule::{Schedule, TimeGrid};

/// What a step changed: the reveals (position, token, log-probability at reveal time) and
/// the positions set back to the mask.
pub type Changes = (Vec<Commit>, Vec<(usize, usize)>);

/// How a step moves.
#[derive(Clone, Debug)]
pub enum Policy {
    /// Scorer × budget × selector over drawn candidates (LLaDA, Fast-dLLM, Dream, Dimple,
    /// EB-sampler).
    Unmask(Unmasking),
    /// MDLM ancestral step `t → s` under `schedule` ([`mdlm_ancestral_step`](crate::backend::steps::mdlm_ancestral_step): each masked
    /// position independently stays masked with probability `(1 − α_s)/(1 − α_t)`). With
    /// `α = 1 − t` this is also Dream's `origin` algorithm.
    Ancestral {
        /// The masking schedule α.
        schedule: Arc<dyn Schedule>,
    },
    /// Continuous-time flow-matching unmasking as a jump process (FUDOKI / DFM): each masked
    /// position jumps over `[t → s]` (flow time `1 − t → 1 − s`, `κ = α(1 − ·)`) with the
    /// probability of `rule` ([`dfm_euler_step`](crate::backend::steps::dfm_euler_step)).
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
    /// ([`Policy::Unmask`] only) Score the candidates on the **untransformed** row (the
    /// denoiser's logits before `transforms`: before temperature, top-p, top-k), as
    /// Dimple's `use_original_confidence = True`: the token is still drawn from the
    /// transformed row, but [`BaseScore::Confidence`](crate::sample::select::BaseScore::Confidence) is
    /// `softmax(ℓ)[x0]` of the original row `ℓ`, `Margin` and `NegEntropy` (and the
    /// entropies the selectors and the EB bound read) are those of `softmax(ℓ)`; ids in
    /// the draw's exclusion list are excluded there too. `false`: everything from the
    /// transformed row. Costs one more `[B, L, V]` buffer and one backend pass over the
    /// candidate rows per step when `transforms` is not empty (otherwise both rows agree).
    pub original_confidence: bool,
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
    pub(super) fn row_spec(&self) -> RowSpec {
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
            && (bk.length == 0 || bk.start >= l || !(l - bk.start).is_multiple_of(bk.length))
        {
            return Err(Error::invalid(
                "blocks",
                format!("blocks {bk:?} do not tile [start, {l}) (length must divide L − start)"),
            ));
        }
        for r in &self.stop {
            match *r {
                StopRule::EntropyBelow(t) if !(t.is_finite() && t >= 0.0) => {
                    return Err(Error::invalid(
                        "StopRule::EntropyBelow",
                        format!("{t} must be ≥ 0"),
                    ));
                }
                StopRule::ArgmaxStable(0) | StopRule::MaxNfe(0) => {
                    return Err(Error::invalid(
                        "stop",
                        format!("{r:?}: the count must be ≥ 1"),
                    ));
                }
                StopRule::EntropyBelow(_) | StopRule::ArgmaxStable(_)
                    if !matches!(self.policy, Policy::Unmask(_)) =>
                {
                    return Err(Error::invalid(
                        "stop",
                        format!("{r:?} needs Policy::Unmask"),
                    ));
                }
                _ => {}
            }
        }
        if let Some(e) = self.eos {
            crate::validate::token("eos.eos_id", e.eos_id, v)?;
            crate::validate::token("eos.pad_id", e.pad_id, v)?;
            if e.pad_id == self.mask_id || e.eos_id == self.mask_id {
                return Err(Error::invalid(
                    "eos",
                    "eos and pad ids must differ from the mask id",
                ));
            }
        }
        Ok(())
    }

    /// The transforms the driver applies: `transforms`, then (with [`EosPadding`]) the
    /// suppression of the padding id, so that no policy ever draws it.
    pub fn effective_transforms(&self) -> Vec<LogitTransform> {
        let mut t = self.transforms.clone();
        if let Some(e) = self.eos {
            t.push(LogitTransform::Suppress(vec![e.pad_id]));
        }
        t
    }

    /// Whether the driver keeps a copy of the untransformed logits.
    pub(super) fn keeps_original(&self) -> bool {
        self.original_confidence
            && matches!(self.policy, Policy::Unmask(_))
            && !self.effective_transforms().is_empty()
    }

    pub(super) fn remasks(&self) -> bool {
        matches!(self.policy, Policy::Remdm { .. } | Policy::RemdmLoop(_))
    }
}
