//! Classifier-free guidance (CFG) in logit space (Ho & Salimans 2022), with LLaDA's
//! parameterisation and a time interval outside which guidance is off.
//!
//! # The formula and its two spellings
//!
//! With conditional logits `c = ln p(x_0 | x_t, y)` and unconditional logits
//! `u = ln p(x_0 | x_t)`, LLaDA (Nie et al. 2025, `generate.py`, `cfg_scale = w`) uses
//!
//! ```text
//! g = u + (1 + w)(c − u) = (1 + w) c − w u,        w ≥ 0,
//! ```
//!
//! so `w = 0` is the plain conditional model. Much of the literature (Ho & Salimans;
//! Nisonoff et al.'s predictor-free guidance `R^γ = R_c^γ R_u^{1−γ}` in rate space) writes
//! the same family as `g = (1 − γ) u + γ c = u + γ (c − u)`, where `γ = 1` is the plain
//! conditional model: the two are one family with `γ = 1 + w`. In probability space
//! `softmax(g) ∝ p_c^{1+w} / p_u^{w}`; if the two models are Bayes-consistent,
//! `p_c ∝ p_u · p(y | x_0, x_t)`, this is `p_u · p(y | x_0, x_t)^{1+w}`: the implicit
//! classifier raised to the power `1 + w`.
//!
//! # The unconditional pass
//!
//! Either a separate [`Denoiser`] ([`ClassifierFree::with_model`]) or the conditional
//! model itself on the tokens with every prompt position replaced by the mask token
//! ([`ClassifierFree::masking_prompt`]): this is exactly what LLaDA does (`un_x[prompt_index]
//! = mask_id`, `prompt_index = x != mask_id` at the start of generation), and like LLaDA the
//! conditional and unconditional rows are evaluated in **one** call of the model (the batch
//! `[x; un_x]`).
//!
//! # Interval guidance
//!
//! Guidance is applied to a batch row only when its time lies in `[t_lo, t_hi]` (guidance
//! in a limited interval, Kynkäänniemi et al. 2024) and `w > 0`; other rows get the
//! conditional logits **exactly** and cost no unconditional evaluation.
//!
//! # `-inf` logits
//!
//! Entries where the conditional logit is `-inf` stay `-inf` (impossible under the
//! condition stays impossible). An entry where the unconditional logit is `-inf` but the
//! conditional one is finite makes `p_c^{1+w}/p_u^{w}` infinite for `w > 0`; this is an
//! [`Error::ZeroProbability`] rather than a silent `+inf`.
//!
//! References: J. Ho, T. Salimans, "Classifier-free diffusion guidance", 2022; S. Nie et al.,
//! "Large language diffusion models", 2025; T. Kynkäänniemi et al., "Applying guidance in a
//! limited interval improves sample and distribution quality in diffusion models", 2024;
//! H. Nisonoff et al., "Unlocking guidance for discrete state-space diffusion and flow
//! models", ICLR 2025.

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3, Axis, s};

use super::{check_call, logits_of_rows, strength};
use crate::error::{Error, Result};
use crate::model::Denoiser;
use crate::sample::driver::BlockModel;
use crate::validate;

/// Guidance weight `w` (LLaDA's `cfg_scale`) and the time interval `[t_lo, t_hi]` in which
/// it is applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CfgConfig {
    weight: f64,
    t_lo: f64,
    t_hi: f64,
}

impl CfgConfig {
    /// Guidance of weight `w ≥ 0` for times `t ∈ [t_lo, t_hi]`.
    ///
    /// Errors: `w` negative or not finite; `t_lo`, `t_hi` outside `[0, 1]`, or `t_lo > t_hi`.
    pub fn new(weight: f64, t_lo: f64, t_hi: f64) -> Result<Self> {
        strength("weight", weight)?;
        validate::time("t_lo", t_lo)?;
        validate::time("t_hi", t_hi)?;
        if t_lo > t_hi {
            return Err(Error::invalid(
                "t_lo",
                format!("interval [{t_lo}, {t_hi}] is empty (t_lo > t_hi)"),
            ));
        }
        Ok(CfgConfig { weight, t_lo, t_hi })
    }

    /// Guidance of weight `w ≥ 0` at every time (`[0, 1]`). Errors as [`new`](Self::new).
    pub fn always(weight: f64) -> Result<Self> {
        Self::new(weight, 0.0, 1.0)
    }

    /// The weight `w` (`g = u + (1 + w)(c − u)`).
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The interval `(t_lo, t_hi)`.
    pub fn interval(&self) -> (f64, f64) {
        (self.t_lo, self.t_hi)
    }

    /// Whether guidance changes the logits at time `t`: `w > 0` and `t_lo ≤ t ≤ t_hi`.
    pub fn is_active(&self, t: f64) -> bool {
        self.weight > 0.0 && self.t_lo <= t && t <= self.t_hi
    }
}

/// One guided logit `(1 + w) c − w u` in f64, with the `-inf` rules of the module docs.
fn combine_entry(c: f32, u: f32, w: f64, index: usize) -> Result<f32> {
    for (arg, x) in [("cond", c), ("uncond", u)] {
        if x.is_nan() || x == f32::INFINITY {
            return Err(Error::NonFinite {
                arg,
                index,
                value: x as f64,
            });
        }
    }
    if c == f32::NEG_INFINITY {
        return Ok(f32::NEG_INFINITY);
    }
    if u == f32::NEG_INFINITY {
        if w == 0.0 {
            return Ok(c);
        }
        return Err(Error::ZeroProbability {
            what: format!(
                "classifier-free guidance: unconditional logit is -inf at index {index} where the \
                 conditional logit is {c}; p_c^(1+w) / p_u^w is infinite"
            ),
        });
    }
    let g = (1.0 + w) * c as f64 - w * u as f64;
    let g32 = g as f32;
    if !g32.is_finite() {
        return Err(Error::Numerical {
            what: "classifier-free guidance",
            reason: format!("guided logit {g} at index {index} overflows f32"),
        });
    }
    Ok(g32)
}

/// `out[k] = u[k] + (1 + w)(c[k] − u[k])`, computed as `(1 + w) c − w u` in f64 (so `w = 0`
/// returns `c` bit for bit).
///
/// Errors: length mismatch, `w` negative or not finite, a NaN or `+inf` logit, an entry
/// with `u = -inf < c` and `w > 0` ([`Error::ZeroProbability`]), or a result that overflows
/// f32. Nothing is written on error.
///
/// ```
/// use discrete_diffusion::sample::guidance::cfg_combine;
/// let mut g = [0.0f32; 2];
/// cfg_combine(&[1.0, 0.0], &[0.0, 0.0], 2.0, &mut g).unwrap();
/// assert_eq!(g, [3.0, 0.0]);
/// ```
pub fn cfg_combine(cond: &[f32], uncond: &[f32], w: f64, out: &mut [f32]) -> Result<()> {
    strength("w", w)?;
    validate::len("uncond", uncond.len(), cond.len())?;
    validate::len("out", out.len(), cond.len())?;
    let mut tmp = Vec::with_capacity(cond.len());
    for (k, (&c, &u)) in cond.iter().zip(uncond).enumerate() {
        tmp.push(combine_entry(c, u, w, k)?);
    }
    out.copy_from_slice(&tmp);
    Ok(())
}

/// Where the unconditional logits come from.
#[derive(Clone, Debug)]
enum Source<U> {
    /// A separate unconditional model.
    Model(U),
    /// The conditional model with `prompt[i] = true` positions set to `mask`.
    MaskPrompt { mask: u32, prompt: Vec<bool> },
}

/// A [`Denoiser`] whose logits are the classifier-free-guided combination of a conditional
/// and an unconditional pass (module docs): `g = u + (1 + w)(c − u)` for rows with
/// `t ∈ [t_lo, t_hi]`, `g = c` exactly for the others.
///
/// Cost: one conditional call over the batch plus one unconditional call over the guided
/// rows (a separate model), or a single call over `[x; un_x]` (prompt masking, as LLaDA).
/// Rows are evaluated independently, so the result of a row never depends on its batch
/// mates provided the wrapped model's rows do not (DESIGN §3.7).
#[derive(Clone, Debug)]
pub struct ClassifierFree<C, U> {
    cond: C,
    source: Source<U>,
    config: CfgConfig,
}

impl<C: Denoiser, U: Denoiser> ClassifierFree<C, U> {
    /// CFG between `cond` and a separate unconditional model `uncond` (their vocabularies
    /// must agree).
    pub fn with_model(cond: C, uncond: U, config: CfgConfig) -> Result<Self> {
        if cond.vocab_size() != uncond.vocab_size() {
            return Err(Error::shape(
                "uncond",
                format!("vocab_size {} (the conditional model's)", cond.vocab_size()),
                format!("vocab_size {}", uncond.vocab_size()),
            ));
        }
        Ok(ClassifierFree {
            cond,
            source: Source::Model(uncond),
            config,
        })
    }
}

impl<C: Denoiser> ClassifierFree<C, C> {
    /// CFG of one model against itself with the prompt masked (LLaDA): the unconditional
    /// tokens are the input with every position `i` where `prompt[i]` replaced by `mask`.
    /// `prompt.len()` is the sequence length `L` every call must have.
    ///
    /// Errors: `mask ≥ V`, or an empty `prompt`.
    pub fn masking_prompt(
        model: C,
        mask: u32,
        prompt: Vec<bool>,
        config: CfgConfig,
    ) -> Result<Self> {
        validate::token("mask", mask, model.vocab_size())?;
        if prompt.is_empty() {
            return Err(Error::invalid("prompt", "empty position mask (L = 0)"));
        }
        Ok(ClassifierFree {
            cond: model,
            source: Source::MaskPrompt { mask, prompt },
            config,
        })
    }
}

impl<C, U> ClassifierFree<C, U> {
    /// The guidance weight and interval.
    pub fn config(&self) -> CfgConfig {
        self.config
    }

    /// The conditional model.
    pub fn cond(&self) -> &C {
        &self.cond
    }

    /// The separate unconditional model, if any (`None` when the prompt is masked).
    pub fn uncond_model(&self) -> Option<&U> {
        match &self.source {
            Source::Model(u) => Some(u),
            Source::MaskPrompt { .. } => None,
        }
    }
}

/// Combine `uncond` (rows listed in `active`) into `out` in place.
fn combine_rows(
    out: &mut ArrayViewMut3<'_, f32>,
    uncond: &Array3<f32>,
    active: &[usize],
    w: f64,
) -> Result<()> {
    // Validate everything first so nothing is half-written on error.
    let mut guided = Vec::with_capacity(active.len());
    for (k, &b) in active.iter().enumerate() {
        let c = out.index_axis(Axis(0), b);
        let u = uncond.index_axis(Axis(0), k);
        let mut row = Array2::<f32>::zeros(c.dim());
        for (n, (g, (&cv, &uv))) in row.iter_mut().zip(c.iter().zip(u.iter())).enumerate() {
            *g = combine_entry(cv, uv, w, n)?;
        }
        guided.push(row);
    }
    for (&b, row) in active.iter().zip(guided) {
        out.index_axis_mut(Axis(0), b).assign(&row);
    }
    Ok(())
}

impl<C: Denoiser, U: Denoiser> Denoiser for ClassifierFree<C, U> {
    fn vocab_size(&self) -> usize {
        self.cond.vocab_size()
    }

    /// Guided logits (module docs). Errors: the usual shape/token/time checks, a prompt mask
    /// of another length than `L`, the wrapped models' errors, and those of
    /// [`cfg_combine`].
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let v = self.cond.vocab_size();
        let (b, l) = check_call(v, &tokens, &times, out.dim())?;
        if let Source::MaskPrompt { prompt, .. } = &self.source {
            validate::len("prompt", prompt.len(), l)?;
        }
        let active: Vec<usize> = (0..b)
            .filter(|&r| self.config.is_active(times[r]))
            .collect();
        if active.is_empty() {
            return self.cond.logits(tokens, times, out);
        }
        let a = active.len();
        let w = self.config.weight;
        match &self.source {
            Source::Model(uncond) => {
                self.cond.logits(tokens, times, out.view_mut())?;
                let u = logits_of_rows(uncond, tokens, times, &active)?;
                combine_rows(&mut out, &u, &active, w)
            }
            Source::MaskPrompt { mask, prompt } => {
                // One call over [x; un_x], as LLaDA's generate.py.
                let mut all_tokens = Array2::<u32>::zeros((b + a, l));
                let mut all_times = Array1::<f64>::zeros(b + a);
                all_tokens.slice_mut(s![..b, ..]).assign(&tokens);
                all_times.slice_mut(s![..b]).assign(&times);
                for (k, &r) in active.iter().enumerate() {
                    let mut row = all_tokens.row_mut(b + k);
                    row.assign(&tokens.row(r));
                    row.iter_mut()
                        .zip(prompt)
                        .filter(|(_, p)| **p)
                        .for_each(|(x, _)| *x = *mask);
                    all_times[b + k] = times[r];
                }
                let mut all = Array3::<f32>::zeros((b + a, l, v));
                self.cond
                    .logits(all_tokens.view(), all_times.view(), all.view_mut())?;
                let u = all.slice(s![b.., .., ..]).to_owned();
                out.assign(&all.slice(s![..b, .., ..]));
                combine_rows(&mut out, &u, &active, w)
            }
        }
    }
}

/// Forwards both driver hooks to the conditional model and to the separate unconditional
/// model, if any (with prompt masking the one model sees each hook once).
impl<C: BlockModel, U: BlockModel> BlockModel for ClassifierFree<C, U> {
    fn prefill(&mut self, prompt: ArrayView2<'_, u32>) -> Result<()> {
        self.cond.prefill(prompt)?;
        if let Source::Model(u) = &mut self.source {
            u.prefill(prompt)?;
        }
        Ok(())
    }
    fn begin_block(
        &mut self,
        block: std::ops::Range<usize>,
        tokens: ArrayView2<'_, u32>,
    ) -> Result<()> {
        self.cond.begin_block(block.clone(), tokens)?;
        if let Source::Model(u) = &mut self.source {
            u.begin_block(block, tokens)?;
        }
        Ok(())
    }
}
