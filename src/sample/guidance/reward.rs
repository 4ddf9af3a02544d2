//! Reward guidance by gradient ascent on the logits (TESS 2, Tae et al. 2025).
//!
//! TESS 2 steers a diffusion language model toward a reward `R` (a reward model scoring
//! the softmax of the predicted logits) by moving the model's predicted logits up the
//! reward gradient at each sampling step. Here the update is `n` steps of
//!
//! ```text
//! ℓ ← ℓ + η ∇_ℓ R(ℓ; x_t, t),
//! ```
//!
//! with the gradient supplied by the caller ([`RewardGradient`]): it already contains the
//! chain rule through whatever map from logits the reward reads (softmax, a simplex
//! embedding, …). `n = 1` is the single update; more steps follow the reward further at the
//! risk of leaving the model's support. `-inf` logits (impossible states) stay `-inf`.
//! Reward guidance is a heuristic: it samples no closed-form target law.
//!
//! Reference: J. Tae, H. Ivison, S. Kumar, A. Cohan, "TESS 2: a large-scale generalist
//! diffusion language model", 2025.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3};

use super::{strength, tilt_rows};
use crate::error::{Error, Result};
use crate::model::Denoiser;
use crate::validate;

/// The gradient of a scalar reward with respect to one sequence's logits.
pub trait RewardGradient {
    /// Write `out[i, v] = ∂R / ∂ℓ[i, v]` at logits `ℓ` (`[L, V]`) of the sequence whose
    /// current tokens are `x` at time `t`. Entries at `-inf` logits are ignored.
    fn gradient(
        &self,
        x: &[u32],
        t: f64,
        logits: ArrayView2<'_, f32>,
        out: ArrayViewMut2<'_, f64>,
    ) -> Result<()>;
}

/// `n = steps` gradient-ascent updates `ℓ ← ℓ + η ∇_ℓ R` starting from `logits` (`[L, V]`,
/// `L = x.len()`), written to `out` (module docs). Each update is computed in f64 and rounded
/// to f32; `steps = 0` or `η = 0` copies `logits` bit for bit.
///
/// Errors: `x` empty or of a length other than `L`, `t ∉ [0, 1]`, `η` negative or not
/// finite, `out` of another shape, a NaN or `+inf` logit, the callback's error, a
/// non-finite gradient at a finite logit, or an update that overflows f32
/// ([`Error::Numerical`]). Nothing is written on error.
pub fn reward_ascent(
    reward: &dyn RewardGradient,
    x: &[u32],
    t: f64,
    logits: ArrayView2<'_, f32>,
    steps: usize,
    eta: f64,
    mut out: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    strength("eta", eta)?;
    validate::time("t", t)?;
    let (l, v) = logits.dim();
    if l == 0 || v == 0 {
        return Err(Error::invalid("logits", "empty logits"));
    }
    validate::len("x", x.len(), l)?;
    validate::tokens("x", x, v)?;
    if out.dim() != (l, v) {
        return Err(Error::shape(
            "out",
            format!("[{l}, {v}]"),
            format!("{:?}", out.shape()),
        ));
    }
    for (k, &a) in logits.iter().enumerate() {
        if a.is_nan() || a == f32::INFINITY {
            return Err(Error::NonFinite {
                arg: "logits",
                index: k,
                value: a as f64,
            });
        }
    }
    let mut cur = logits.to_owned();
    if steps > 0 && eta > 0.0 {
        let mut g = Array2::<f64>::zeros((l, v));
        for _ in 0..steps {
            g.fill(0.0);
            reward.gradient(x, t, cur.view(), g.view_mut())?;
            for (k, (c, &gk)) in cur.iter_mut().zip(g.iter()).enumerate() {
                if *c == f32::NEG_INFINITY {
                    continue;
                }
                if !gk.is_finite() {
                    return Err(Error::NonFinite {
                        arg: "reward",
                        index: k,
                        value: gk,
                    });
                }
                let n = *c as f64 + eta * gk;
                let n32 = n as f32;
                if !n32.is_finite() {
                    return Err(Error::Numerical {
                        what: "reward guidance",
                        reason: format!("updated logit {n} at flat index {k} overflows f32"),
                    });
                }
                *c = n32;
            }
        }
    }
    out.assign(&cur);
    Ok(())
}

/// A [`Denoiser`] whose logits are the inner model's after [`reward_ascent`] on each batch
/// row.
#[derive(Clone, Debug)]
pub struct RewardGuided<D, R> {
    inner: D,
    reward: R,
    steps: usize,
    eta: f64,
}

impl<D: Denoiser, R: RewardGradient> RewardGuided<D, R> {
    /// `steps` ascent steps of size `η ≥ 0` per call. Errors: `η` negative or not finite.
    pub fn new(inner: D, reward: R, steps: usize, eta: f64) -> Result<Self> {
        strength("eta", eta)?;
        Ok(RewardGuided {
            inner,
            reward,
            steps,
            eta,
        })
    }

    /// The wrapped denoiser.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Denoiser, R: RewardGradient> Denoiser for RewardGuided<D, R> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Inner logits, then [`reward_ascent`] per row. Errors: the usual shape/token/time
    /// checks, the inner model's errors, and those of [`reward_ascent`].
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let tilt = |x: &[u32], t: f64, row: ArrayView2<'_, f32>, guided: ArrayViewMut2<'_, f32>| {
            reward_ascent(&self.reward, x, t, row, self.steps, self.eta, guided)?;
            Ok(true)
        };
        tilt_rows(&self.inner, tokens, times, out, true, tilt)
    }
}

forward_hooks_to_inner!(RewardGuided<D, R: RewardGradient>);
