//! Guidance: steering a sampler toward a condition `y` without retraining the denoiser
//! (survey §V; DESIGN §2 `sample`).
//!
//! Every guidance method here is either a [`Denoiser`] wrapper (so a sampler or the driver
//! composes it like any other model) or a pure function on logits / rate rows:
//!
//! | method | what it changes | API |
//! | --- | --- | --- |
//! | classifier-free guidance (Ho & Salimans 2022; LLaDA, Nie et al. 2025) | logits `u + (1+w)(c − u)` inside a time interval | [`ClassifierFree`], [`cfg_combine`] |
//! | classifier guidance, exact single-token changes (Nisonoff et al. 2025) | logits `+ γ [ln p(y \| x^{i←v}) − ln p(y \| x)]` | [`Classifier`], [`exact_log_ratios`], [`ClassifierGuided`] |
//! | classifier guidance, first-order Taylor (TAG, Nisonoff et al. 2025) | logits `+ γ [∇_{i,v} − ∇_{i,x_i}] ln p(y \| x)` | [`taylor_log_ratios`], [`GuidanceMethod::Taylor`] |
//! | reward guidance (TESS 2, Tae et al. 2025) | `n` steps of `ℓ ← ℓ + η ∇_ℓ R` | [`RewardGradient`], [`reward_ascent`], [`RewardGuided`] |
//! | rate-space guidance for CTMC / DFM samplers (Nisonoff et al. 2025) | off-diagonal rates `× (p(y \| z)/p(y \| x))^γ`, diagonal recomputed | [`tilt_rate_row`] |
//!
//! # Which law does guidance sample?
//!
//! Let `p` be the data law and `p(y | x)` a classifier. With the exact noisy classifier
//! `p_t(y | x_t) = Σ_{x_0} p(y | x_0) p(x_0 | x_t)` and `γ = 1`, the guided reverse rates
//! `R^y(x, z) = R(x, z) p_t(y | z) / p_t(y | x)` are exactly the reverse rates of the
//! conditional law `p(x_0 | y) ∝ p(x_0) p(y | x_0)` (Nisonoff et al.): guidance
//! over single-token changes is exact, and so is the per-position x0 posterior of an
//! absorbing (masked) process tilted at its masked positions (see
//! [`classifier`]). For `γ ≠ 1` the guided process is a heuristic
//! sharpening: it does **not** in general sample `p(x) p(y | x)^γ / Z`, except where
//! only one position is undetermined (then the tilted conditional is exact for every `γ`).
//! `tests/guidance_classifier.rs` checks each of these statements on an enumerable space.
//!
//! References: J. Ho, T. Salimans, "Classifier-free diffusion guidance", 2022; S. Nie et al.,
//! "Large language diffusion models" (LLaDA), 2025; H. Nisonoff, J. Xiong, S. Allenspach,
//! J. Listgarten, "Unlocking guidance for discrete state-space diffusion and flow models",
//! ICLR 2025; J. Tae, H. Ivison, S. Kumar, A. Cohan, "TESS 2: a large-scale generalist
//! diffusion language model", 2025.

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis};

use crate::error::{Error, Result};
use crate::model::Denoiser;
use crate::validate;

/// `impl BlockModel` for a wrapper `$ty<D, $x>` whose field `inner: D` is the wrapped model:
/// both driver hooks are forwarded to it unchanged.
macro_rules! forward_hooks_to_inner {
    ($ty:ident<D, $x:ident: $bound:path>) => {
        /// Forwards both driver hooks to the wrapped denoiser.
        impl<D: crate::sample::driver::BlockModel, $x: $bound> crate::sample::driver::BlockModel
            for $ty<D, $x>
        {
            fn prefill(&mut self, prompt: ndarray::ArrayView2<'_, u32>) -> Result<()> {
                self.inner.prefill(prompt)
            }
            fn begin_block(
                &mut self,
                block: std::ops::Range<usize>,
                tokens: ndarray::ArrayView2<'_, u32>,
            ) -> Result<()> {
                self.inner.begin_block(block, tokens)
            }
        }
    };
}

pub mod cfg;
pub mod classifier;
pub mod rate;
pub mod reward;

pub use cfg::{CfgConfig, ClassifierFree, cfg_combine};
pub use classifier::{
    Classifier, ClassifierGuided, GuidanceMethod, GuidedPositions, exact_log_ratios,
    taylor_log_ratios, tilt_logits,
};
pub use rate::tilt_rate_row;
pub use reward::{RewardGradient, RewardGuided, reward_ascent};

/// Validate a `Denoiser::logits` call: `tokens [B, L]` with `B, L ≥ 1` and tokens `< V`,
/// `times [B]` in `[0, 1]`, `out [B, L, V]`. Returns `(B, L)`.
pub(crate) fn check_call(
    vocab: usize,
    tokens: &ArrayView2<'_, u32>,
    times: &ArrayView1<'_, f64>,
    out_dim: (usize, usize, usize),
) -> Result<(usize, usize)> {
    let (b, l) = tokens.dim();
    if b == 0 {
        return Err(Error::invalid("tokens", "empty batch (B = 0)"));
    }
    if l == 0 {
        return Err(Error::invalid("tokens", "empty sequences (L = 0)"));
    }
    validate::len("times", times.len(), b)?;
    if out_dim != (b, l, vocab) {
        return Err(Error::shape(
            "out",
            format!("[{b}, {l}, {vocab}]"),
            format!("[{}, {}, {}]", out_dim.0, out_dim.1, out_dim.2),
        ));
    }
    validate::tokens("tokens", tokens.iter(), vocab)?;
    for &t in times.iter() {
        validate::time("times", t)?;
    }
    Ok((b, l))
}

/// A finite, non-negative guidance strength.
pub(crate) fn strength(arg: &'static str, x: f64) -> Result<f64> {
    validate::finite(arg, x)?;
    if x < 0.0 {
        return Err(Error::invalid(arg, format!("{x} must be non-negative")));
    }
    Ok(x)
}

/// The logits of `model` on the batch rows `rows` of `(tokens, times)` only, in one call
/// over the sub-batch `[rows.len(), L]`: row `k` of the result is batch row `rows[k]`.
/// `rows` must be non-empty and in range (the callers pass rows of a checked call).
pub(crate) fn logits_of_rows<D: Denoiser + ?Sized>(
    model: &D,
    tokens: ArrayView2<'_, u32>,
    times: ArrayView1<'_, f64>,
    rows: &[usize],
) -> Result<Array3<f32>> {
    let (n, l) = (rows.len(), tokens.ncols());
    let mut sub_tokens = Array2::<u32>::zeros((n, l));
    let mut sub_times = Array1::<f64>::zeros(n);
    for (k, &r) in rows.iter().enumerate() {
        sub_tokens.row_mut(k).assign(&tokens.row(r));
        sub_times[k] = times[r];
    }
    let mut out = Array3::<f32>::zeros((n, l, model.vocab_size()));
    model.logits(sub_tokens.view(), sub_times.view(), out.view_mut())?;
    Ok(out)
}

/// The `Denoiser::logits` body of a wrapper that rewrites the wrapped model's logits one
/// sequence at a time: validate the call ([`check_call`]), write `inner`'s logits into
/// `out`, and then, if `active`, for every batch row `r` call
/// `tilt(x_r, t_r, logits_r, guided)` (`x_r` the row's tokens, `logits_r` its `[L, V]`
/// logits, `guided` an `[L, V]` buffer); when it returns `Ok(true)`, `guided` replaces the
/// row's logits. The first error is returned as is.
pub(crate) fn tilt_rows<D: Denoiser + ?Sized>(
    inner: &D,
    tokens: ArrayView2<'_, u32>,
    times: ArrayView1<'_, f64>,
    mut out: ArrayViewMut3<'_, f32>,
    active: bool,
    mut tilt: impl FnMut(&[u32], f64, ArrayView2<'_, f32>, ArrayViewMut2<'_, f32>) -> Result<bool>,
) -> Result<()> {
    let v = inner.vocab_size();
    let (b, l) = check_call(v, &tokens, &times, out.dim())?;
    inner.logits(tokens, times, out.view_mut())?;
    if !active {
        return Ok(());
    }
    let mut guided = Array2::<f32>::zeros((l, v));
    for r in 0..b {
        let x: Vec<u32> = tokens.row(r).to_vec();
        if tilt(&x, times[r], out.index_axis(Axis(0), r), guided.view_mut())? {
            out.index_axis_mut(Axis(0), r).assign(&guided);
        }
    }
    Ok(())
}
