//! Presets: the decoders of LLaDA, Fast-dLLM, Dream, Dimple, MDLM, ReMDM, FUDOKI, the
//! EB-sampler and the default diffusion-LM policies of the serving engines (SGLang's
//! `LowConfidence`, the vLLM dLLM plugin's LLaDA loop) as [`SamplerConfig`]s with their exact semantics (`docs/inference.md` has
//! the table: `≥` vs `>`, probability vs log-probability, before/after temperature, mask
//! token in or out).
//!
//! Common to the LLaDA-family presets: the draw `x0 ~ softmax(ℓ/τ)` is the backend's
//! inverse CDF (distributionally identical to LLaDA's float64 Gumbel race
//! `exp(ℓ)/(−ln U)^τ`); the confidence is the **untempered probability** `softmax(ℓ)[x0]`;
//! the mask id is **not** excluded (the anchors' softmax includes it; a drawn mask leaves
//! the position masked). Set `exclude_mask = true` on the returned config to remove it.

use std::sync::Arc;

use crate::backend::steps::JumpRule;
use crate::error::{Error, Result};
use crate::sample::driver::{Blocks, Policy, SamplerConfig};
use crate::sample::remask::{RemdmLoop, RemdmSigma};
use crate::sample::select::{BaseScore, Budget, Rounding, Score, Selector, Unmasking};
use crate::sample::transform::LogitTransform;
use crate::schedule::{Linear, Schedule};

/// The layout of a LLaDA-style generation: `prompt_len` prompt positions, then
/// `gen_length` generated positions in blocks of `block_length`, `steps` in total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LladaLayout {
    /// Prompt length (the first block starts here).
    pub prompt_len: usize,
    /// Generated length (a multiple of `block_length`).
    pub gen_length: usize,
    /// Block length.
    pub block_length: usize,
    /// Total steps (a multiple of the number of blocks; LLaDA asserts both).
    pub steps: usize,
}

impl LladaLayout {
    fn blocks(&self) -> Result<(Blocks, usize)> {
        if self.block_length == 0
            || self.gen_length == 0
            || !self.gen_length.is_multiple_of(self.block_length)
        {
            return Err(Error::invalid(
                "gen_length",
                format!(
                    "{} must be a positive multiple of block_length {}",
                    self.gen_length, self.block_length
                ),
            ));
        }
        let n = self.gen_length / self.block_length;
        if self.steps == 0 || !self.steps.is_multiple_of(n) {
            return Err(Error::invalid(
                "steps",
                format!(
                    "{} must be a positive multiple of the {n} blocks",
                    self.steps
                ),
            ));
        }
        Ok((
            Blocks {
                start: self.prompt_len,
                length: self.block_length,
            },
            self.steps / n,
        ))
    }
}

fn base(mask_id: u32, steps: usize, policy: Policy) -> SamplerConfig {
    SamplerConfig {
        mask_id,
        steps,
        t_min: 0.0,
        transforms: Vec::new(),
        draw_temperature: 0.0,
        exclude_mask: false,
        original_confidence: false,
        policy,
        blocks: None,
        stop: Vec::new(),
        eos: None,
    }
}

/// LLaDA `generate` (ML-GSAI/LLaDA): semi-autoregressive blocks, `steps/num_blocks` steps
/// per block, the block's masks split uniformly over them (`get_num_transfer_tokens`),
/// top-k by untempered confidence `p(x0)` (`random = false`, `remasking='low_confidence'`)
/// or by a uniform (`random = true`), ties to the lower position, draw temperature τ.
///
/// # Errors
/// A layout LLaDA rejects (`gen_length % block_length ≠ 0`, `steps % num_blocks ≠ 0`).
pub fn llada(
    mask_id: u32,
    layout: LladaLayout,
    temperature: f64,
    random: bool,
) -> Result<SamplerConfig> {
    let (blocks, per) = layout.blocks()?;
    let score = if random {
        Score::Random
    } else {
        Score::Base(BaseScore::Confidence)
    };
    let mut c = base(
        mask_id,
        per,
        Policy::Unmask(Unmasking {
            score,
            budget: Budget::UniformSplit,
            selector: Selector::TopK,
        }),
    );
    c.blocks = Some(blocks);
    c.draw_temperature = temperature;
    Ok(c)
}

/// Fast-dLLM threshold decoding (NVlabs/Fast-dLLM `get_transfer_index` with `threshold`,
/// default 0.9): per block, reveal every candidate with untempered `p(x0) ≥ threshold`
/// and always the most confident one. Fast-dLLM loops until the block is complete; the
/// preset allows `block_length` steps per block, which that loop never exceeds.
///
/// # Errors
/// As [`llada`] for the layout (its `steps` is ignored), `threshold ∉ [0, 1]`.
pub fn fast_dllm_threshold(
    mask_id: u32,
    layout: LladaLayout,
    temperature: f64,
    threshold: f64,
) -> Result<SamplerConfig> {
    crate::validate::probability("threshold", threshold)?;
    fast_dllm(
        mask_id,
        layout,
        temperature,
        Selector::Threshold {
            threshold,
            strict: false,
        },
    )
}

/// Fast-dLLM dynamic-factor decoding (`get_transfer_index_dynamic`, `factor` default 1):
/// see [`Selector::DynamicFactor`] (the anchor's loop quirk included).
///
/// # Errors
/// As [`fast_dllm_threshold`]; `factor ≤ 0`.
pub fn fast_dllm_factor(
    mask_id: u32,
    layout: LladaLayout,
    temperature: f64,
    factor: f64,
) -> Result<SamplerConfig> {
    let s = Selector::DynamicFactor { factor };
    s.validate()?;
    fast_dllm(mask_id, layout, temperature, s)
}

fn fast_dllm(
    mask_id: u32,
    layout: LladaLayout,
    temperature: f64,
    selector: Selector,
) -> Result<SamplerConfig> {
    let (blocks, _) = LladaLayout {
        steps: layout.gen_length / layout.block_length.max(1),
        ..layout
    }
    .blocks()?;
    let mut c = base(
        mask_id,
        layout.block_length,
        Policy::Unmask(Unmasking {
            score: Score::Base(BaseScore::Confidence),
            budget: Budget::CeilRemaining,
            selector,
        }),
    );
    c.blocks = Some(blocks);
    c.draw_temperature = temperature;
    Ok(c)
}

/// Dream's `alg` (HKUNLP/Dream `generation_utils.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DreamAlg {
    /// Each masked token is revealed with probability `1 − s/t` (the MDLM step under
    /// `α = 1 − t`), all at the last step.
    Origin,
    /// Confidence = the probability of the drawn token.
    MaskgitPlus,
    /// Confidence = `p₁ − p₂`.
    TopkMargin,
    /// Confidence = `Σ p ln p` (negative entropy).
    Entropy,
}

/// Dream's sampling options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DreamOptions {
    /// Steps (Dream's `steps`).
    pub steps: usize,
    /// Temperature `τ ≥ 0` (0: argmax).
    pub temperature: f64,
    /// Top-p, or `None`.
    pub top_p: Option<f64>,
    /// Top-k, or `None`.
    pub top_k: Option<usize>,
    /// Dream's `alg_temp` (`None` or 0: deterministic top-k of the confidence).
    pub alg_temp: Option<f64>,
    /// The grid end `eps` (Dream default `1e-3`).
    pub eps: f64,
}

impl Default for DreamOptions {
    fn default() -> Self {
        DreamOptions {
            steps: 512,
            temperature: 0.0,
            top_p: None,
            top_k: None,
            alg_temp: None,
            eps: 1e-3,
        }
    }
}

fn dream_transforms(o: &DreamOptions) -> (Vec<LogitTransform>, f64) {
    let mut t = Vec::new();
    if o.temperature > 0.0 {
        t.push(LogitTransform::Temperature(o.temperature));
    }
    if let Some(p) = o.top_p
        && p < 1.0
    {
        t.push(LogitTransform::TopP(p));
    }
    if let Some(k) = o.top_k {
        t.push(LogitTransform::TopK(k));
    }
    (t, if o.temperature > 0.0 { 1.0 } else { 0.0 })
}

/// Dream `diffusion_generate`: grid `linspace(1, eps, steps + 1)`; logits divided by τ,
/// then top-p, then top-k, **before** the confidence (Dream's confidence is a tempered,
/// filtered probability); `origin` reveals each masked token with probability `1 − s/t`;
/// the others reveal `⌊n (1 − s/t)⌋` tokens (all at the last step) by top-k of the
/// confidence, or by Gumbel-top-k of `confidence/alg_temp` (= `multinomial(softmax(·))`).
///
/// # Errors
/// Bad options (`steps = 0`, `eps ∉ [0, 1)`, bad τ, top-p, top-k, `alg_temp < 0`).
pub fn dream(mask_id: u32, alg: DreamAlg, o: &DreamOptions) -> Result<SamplerConfig> {
    let (transforms, draw) = dream_transforms(o);
    let lin: Arc<dyn Schedule> = Arc::new(Linear::new());
    let policy = match alg {
        DreamAlg::Origin => Policy::Ancestral { schedule: lin },
        _ => {
            let b = match alg {
                DreamAlg::MaskgitPlus => BaseScore::Confidence,
                DreamAlg::TopkMargin => BaseScore::Margin,
                _ => BaseScore::NegEntropy,
            };
            let score = match o.alg_temp {
                Some(a) if a != 0.0 => Score::AnnealedGumbel {
                    base: b,
                    temperature: a,
                },
                _ => Score::Base(b),
            };
            Policy::Unmask(Unmasking {
                score,
                budget: Budget::Schedule {
                    schedule: lin,
                    rounding: Rounding::Truncate,
                },
                selector: Selector::TopK,
            })
        }
    };
    let mut c = base(mask_id, o.steps, policy);
    c.t_min = o.eps;
    c.transforms = transforms;
    c.draw_temperature = draw;
    c.validate(mask_id as usize + 2, 1)?;
    Ok(c)
}

/// Dimple confident decoding (Yu et al. 2025; yu-rp/Dimple `generation_utils.py`,
/// `decoding_pipeline='dim'`, `alg='maskgit_plus'`, `alg_p_threshold = threshold`).
///
/// Dimple's `sample_tokens`: `x0` is drawn from `softmax(top_k(top_p(ℓ/τ)))` (τ first, as
/// Dream; `τ = 0`: argmax of the filtered row), here the transforms `Temperature(τ)`,
/// `TopP`, `TopK` in that order and a draw at temperature 1. The confidence is, with
/// `use_original_confidence = true` (Dimple's default, "highly recommended"), the
/// probability of `x0` under the **original** row `softmax(ℓ)` (untempered, unfiltered:
/// [`SamplerConfig::original_confidence`]), and with `false` under the transformed row (the
/// tempered, filtered probability, as Dream). Every candidate with confidence
/// **`> threshold`** is revealed; when none is, the top-k by confidence with Dimple's ratio
/// count ([`Budget::DimpleRatio`]); all at the last step.
///
/// # Errors
/// As [`dream`]; `threshold ∉ [0, 1]`.
pub fn dimple(
    mask_id: u32,
    o: &DreamOptions,
    threshold: f64,
    use_original_confidence: bool,
) -> Result<SamplerConfig> {
    crate::validate::probability("threshold", threshold)?;
    let mut c = dream(mask_id, DreamAlg::MaskgitPlus, o)?;
    c.original_confidence = use_original_confidence;
    c.policy = Policy::Unmask(Unmasking {
        score: Score::Base(BaseScore::Confidence),
        budget: Budget::DimpleRatio { eps: o.eps },
        selector: Selector::ThresholdOrBudget {
            threshold,
            strict: true,
        },
    });
    c.validate(mask_id as usize + 2, 1)?;
    Ok(c)
}

/// MDLM ancestral sampling (kuleshov-group/mdlm `_ddpm_caching_update`) over
/// `linspace(1, t_min, steps + 1)` under `schedule`, mask excluded (SUBS), temperature 1.
///
/// # Errors
/// `steps = 0`, `t_min ∉ [0, 1)`.
pub fn mdlm(
    mask_id: u32,
    steps: usize,
    t_min: f64,
    schedule: Arc<dyn Schedule>,
) -> Result<SamplerConfig> {
    let mut c = base(mask_id, steps, Policy::Ancestral { schedule });
    c.t_min = t_min;
    c.exclude_mask = true;
    c.draw_temperature = 1.0;
    c.validate(mask_id as usize + 2, 1)?;
    Ok(c)
}

/// ReMDM (kuleshov-group/remdm) with σ strategy `sigma` under `schedule` (the anchor uses
/// `α = 1 − t`), σ capped at every step.
///
/// # Errors
/// As [`mdlm`]; a bad η.
pub fn remdm(
    mask_id: u32,
    steps: usize,
    t_min: f64,
    schedule: Arc<dyn Schedule>,
    sigma: RemdmSigma,
) -> Result<SamplerConfig> {
    let mut c = mdlm(mask_id, steps, t_min, schedule.clone())?;
    c.policy = Policy::Remdm { schedule, sigma };
    c.validate(mask_id as usize + 2, 1)?;
    Ok(c)
}

/// ReMDM's loop schedule (the paper's defaults: `t_on = 0.55`, `t_off = 0.05`,
/// `α_on = 0.9`).
///
/// # Errors
/// As [`mdlm`]; invalid loop parameters.
pub fn remdm_loop(mask_id: u32, steps: usize, t_min: f64, lp: RemdmLoop) -> Result<SamplerConfig> {
    lp.validate()?;
    let mut c = mdlm(mask_id, steps, t_min, Arc::new(Linear::new()))?;
    c.policy = Policy::RemdmLoop(lp);
    Ok(c)
}

/// FUDOKI-style continuous-time unmasking: every masked position jumps over a step with
/// probability `1 − exp(−h κ̇/(1 − κ))` ([`JumpRule::Exponential`]).
///
/// # Errors
/// As [`mdlm`].
pub fn fudoki(
    mask_id: u32,
    steps: usize,
    t_min: f64,
    schedule: Arc<dyn Schedule>,
) -> Result<SamplerConfig> {
    let mut c = mdlm(mask_id, steps, t_min, schedule.clone())?;
    c.policy = Policy::Jump {
        schedule,
        rule: JumpRule::Exponential,
    };
    Ok(c)
}

/// EB-sampler (Ben-Hamu et al. 2025): confidence order, entropy bound `γ`, at most
/// `steps` steps (each reveals at least one token; the last reveals the rest).
///
/// # Errors
/// `steps = 0`, `γ < 0`.
pub fn eb_sampler(mask_id: u32, steps: usize, gamma: f64) -> Result<SamplerConfig> {
    let mut c = base(
        mask_id,
        steps,
        Policy::Unmask(Unmasking {
            score: Score::Base(BaseScore::Confidence),
            budget: Budget::Fixed(usize::MAX),
            selector: Selector::EntropyBound { gamma },
        }),
    );
    c.exclude_mask = true;
    c.validate(mask_id as usize + 2, 1)?;
    Ok(c)
}

/// SGLang's default threshold for [`sglang_low_confidence`]
/// (`algorithm_config.get("threshold", 0.95)`).
pub const SGLANG_THRESHOLD: f64 = 0.95;

/// SGLang's block size for LLaDA 2.0 (`DllmConfig`: `block_size = 32` for
/// `LLaDA2MoeModelLM`, overridable by `block_size` in the algorithm config).
pub const SGLANG_BLOCK_SIZE: usize = 32;

/// SGLang's default diffusion-LM decoding, `LowConfidence`
/// (sgl-project/sglang `python/sglang/srt/dllm/algorithm/low_confidence.py`), block by
/// block:
///
/// * **Blocks** are aligned to multiples of `block_size` from position 0: SGLang appends
///   `block_size` masks to the prompt and runs the model on `block_size`-sized chunks of
///   `prompt + masks`, so the first decoded block `[⌊P/b⌋·b, ⌊P/b⌋·b + b)` holds the
///   prompt's last `P mod b` tokens (fixed) and `b − P mod b` masks. `prompt_len + gen_length`
///   must be a multiple of `block_size` (generation continues to a block boundary).
/// * **Each iteration** (at most `block_size` per block, stopping when the block has no
///   mask): `x0 = argmax ℓ` over the **whole** vocabulary (no temperature, no top-p/top-k:
///   `LowConfidence` ignores the request's sampling parameters; the mask id is not
///   excluded, and a position whose argmax is the mask stays masked); confidence
///   `p = softmax(ℓ)[x0]` (the max probability, full softmax); every masked position of
///   the block with **`p > threshold`** (strict) is revealed; when none passes, the one
///   with the highest `p` (at least one per iteration; ties to the lower position, as
///   `torch.argmax` in SGLang's vectorised path; `torch.topk(k = 1)` leaves them
///   unspecified).
///
/// Differences: the driver's last step of a block reveals every remaining candidate and
/// the final fill excludes the mask (SGLang instead leaves a mask whose argmax is the mask
/// in place: only possible when the model predicts the mask token); SGLang's model sees
/// only the committed prefix and the current block (block-causal attention, LLaDA 2.0),
/// which is the denoiser's business ([`BlockModel`](crate::sample::driver::BlockModel)).
///
/// # Errors
/// `block_size = 0`, `gen_length = 0`, `prompt_len + gen_length` not a multiple of
/// `block_size`, `threshold ∉ (0, 1]` (SGLang asserts `0 < threshold ≤ 1`).
pub fn sglang_low_confidence(
    mask_id: u32,
    prompt_len: usize,
    gen_length: usize,
    block_size: usize,
    threshold: f64,
) -> Result<SamplerConfig> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(Error::invalid(
            "threshold",
            format!("{threshold} must lie in (0, 1]"),
        ));
    }
    if block_size == 0 {
        return Err(Error::invalid("block_size", "must be at least 1 (got 0)"));
    }
    if gen_length == 0 || !(prompt_len + gen_length).is_multiple_of(block_size) {
        return Err(Error::invalid(
            "gen_length",
            format!(
                "{gen_length} must be ≥ 1 and end on a block boundary: prompt_len + gen_length = {} \
                 is not a multiple of block_size {block_size}",
                prompt_len + gen_length
            ),
        ));
    }
    let mut c = base(
        mask_id,
        block_size,
        Policy::Unmask(Unmasking {
            score: Score::Base(BaseScore::Confidence),
            budget: Budget::CeilRemaining,
            selector: Selector::Threshold {
                threshold,
                strict: true,
            },
        }),
    );
    c.blocks = Some(Blocks {
        start: prompt_len - prompt_len % block_size,
        length: block_size,
    });
    Ok(c)
}

/// The generation options of the vLLM diffusion-LM plugin (akkikiki/diffuplug,
/// `run_diffusion_generation_simple`), with the defaults it uses when they are absent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VllmDllmOptions {
    /// The request's `max_tokens` (default 128); the plugin generates
    /// `min(max_tokens, 128)` tokens.
    pub max_tokens: usize,
    /// `diffusion_block_size` (default 32).
    pub block_size: usize,
    /// `diffusion_steps` (default 128).
    pub steps: usize,
    /// The request's `temperature` (default 0: greedy).
    pub temperature: f64,
}

impl Default for VllmDllmOptions {
    fn default() -> Self {
        VllmDllmOptions {
            max_tokens: 128,
            block_size: 32,
            steps: 128,
            temperature: 0.0,
        }
    }
}

impl VllmDllmOptions {
    /// The plugin's LLaDA layout for a prompt of `prompt_len` tokens:
    /// `gen = min(max_tokens, 128)`; if `gen < block` the block shrinks to `gen`, else `gen`
    /// is rounded **up** to a multiple of the block; with `n = gen / block` blocks, `steps`
    /// is kept if `n` divides it and otherwise rounded **down** to `max(1, steps / n) · n`.
    /// The sequence is `prompt_len + gen_length` long.
    ///
    /// # Errors
    /// `max_tokens`, `block_size` or `steps` of 0 (the plugin divides by zero).
    pub fn layout(&self, prompt_len: usize) -> Result<LladaLayout> {
        for (arg, x) in [
            ("max_tokens", self.max_tokens),
            ("block_size", self.block_size),
            ("steps", self.steps),
        ] {
            if x == 0 {
                return Err(Error::invalid(arg, "must be at least 1 (got 0)"));
            }
        }
        let mut gen_length = self.max_tokens.min(128);
        let mut block_length = self.block_size;
        if gen_length < block_length {
            block_length = gen_length;
        } else if !gen_length.is_multiple_of(block_length) {
            gen_length = (gen_length / block_length + 1) * block_length;
        }
        let n = gen_length / block_length;
        let steps = if self.steps.is_multiple_of(n) {
            self.steps
        } else {
            (self.steps / n).max(1) * n
        };
        Ok(LladaLayout {
            prompt_len,
            gen_length,
            block_length,
            steps,
        })
    }
}

/// The vLLM diffusion-LM default policy. vLLM has no in-tree diffusion-LM decoding; its
/// diffusion-LM plugin (akkikiki/diffuplug, `LLaDASampler` with
/// `remasking='low_confidence'`) runs LLaDA's `generate` loop, so this preset **is**
/// [`llada`]`(mask_id, o.layout(prompt_len), o.temperature, random = false)`: blocks of
/// `block_length` after the prompt, the block's masks split uniformly over
/// `steps / num_blocks` steps, top-k by the untempered probability of the Gumbel-drawn
/// `x0`, mask id not excluded. The plugin also sets `confidence_eos_eot_inf = True`, which
/// as written overwrites entries of the noisy logits **after** `x0` is drawn and does not
/// enter the confidence (`softmax(logits)`), so it changes nothing and is not modelled.
///
/// # Errors
/// As [`VllmDllmOptions::layout`] and [`llada`]; a bad temperature.
pub fn vllm(mask_id: u32, prompt_len: usize, o: &VllmDllmOptions) -> Result<SamplerConfig> {
    let layout = o.layout(prompt_len)?;
    let c = llada(mask_id, layout, o.temperature, false)?;
    c.validate(mask_id as usize + 2, prompt_len + layout.gen_length)?;
    Ok(c)
}
