//! Guidance: steering a sampler toward a condition `y` without retraining the denoiser
//! (survey §V; DESIGN §2 `sample`).
//!
//! Every guidance method here is either a [`Denoiser`](crate::model::Denoiser) wrapper (so a sampler or the driver
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

use ndarray::{ArrayView1, ArrayView2};

use crate::error::{Error, Result};
use crate::validate;

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
