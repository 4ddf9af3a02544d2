//! The denoiser boundary and exact reference models (DESIGN §2 `model`, §4).
//!
//! A [`Denoiser`] maps a batch of noisy token sequences and their times to logits of the
//! clean tokens, `log p_θ(x_0^i = v | x_t)`. Exact oracles compute these in f64 from a known
//! data distribution, so every sampler and loss in the crate can be checked against ground
//! truth.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut3};

use crate::error::Result;

pub mod enumeration;
pub mod markov;
pub mod oracle;

/// A model of the clean data given a noisy sequence: the `x_0`-prediction network of
/// D3PM/MDLM/LLaDA, or an exact oracle.
///
/// Time convention: `times[b] ∈ [0, 1]`, `t = 0` clean data, `t = 1` the prior. A
/// discrete-time process with `T` steps calls its denoiser at `t = k / T`.
pub trait Denoiser {
    /// Number of states `V` of the logits' last axis.
    fn vocab_size(&self) -> usize;

    /// Write `out[b, i, v] = log p(x_0^i = v | x_t = tokens[b], t = times[b])` up to an
    /// additive constant per `(b, i)` row. Shapes: `tokens [B, L]`, `times [B]`,
    /// `out [B, L, V]`. Impossible states get `-inf`.
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        out: ArrayViewMut3<'_, f32>,
    ) -> Result<()>;
}

macro_rules! forward_denoiser {
    ($($ty:ty),*) => {$(
        impl<D: Denoiser + ?Sized> Denoiser for $ty {
            fn vocab_size(&self) -> usize {
                (**self).vocab_size()
            }
            fn logits(
                &self,
                tokens: ArrayView2<'_, u32>,
                times: ArrayView1<'_, f64>,
                out: ArrayViewMut3<'_, f32>,
            ) -> Result<()> {
                (**self).logits(tokens, times, out)
            }
        }
    )*};
}

// A borrowed or shared denoiser is a denoiser, so wrappers (guidance, caches) can hold `&D`,
// `Box<dyn Denoiser>` or `Arc<D>` without copying the model.
forward_denoiser!(&D, Box<D>, std::sync::Arc<D>);
