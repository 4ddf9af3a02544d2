//! The model hooks of the driver: one trait, [`BlockModel`], for everything a denoiser may
//! want to know about the generation beyond its `logits` calls (the prompt, the blocks).

use std::ops::Range;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut3};

use crate::error::Result;
use crate::kernel::NoiseProcess;
use crate::model::Denoiser;
use crate::model::oracle::{ExactPosterior, OracleDenoiser};

/// A [`Denoiser`] the driver ([`run`](super::run)) can drive: the denoiser plus two hooks,
/// both no-ops by default.
///
/// * [`prefill`](BlockModel::prefill) is called **once per generation**, before the first
///   denoiser call, with the prompt `tokens[.., ..P]` (`[B, P]`, possibly `P = 0`): `P` is
///   the first block's start with [`Blocks`](super::Blocks), otherwise the longest prefix of
///   positions fixed in every sequence. A cache resets itself here (a new generation must
///   never see the previous one's logits) and an interval cache takes `P` as its prompt
///   length ([`crate::sample::cache`]); a model with a prompt key/value cache fills it.
/// * [`begin_block`](BlockModel::begin_block) is called at the start of every block (once
///   without blocks, with the whole sequence), after `prefill`. When it is called every
///   position before `block.start` is final (a remasking policy only touches the current
///   block), so a model with a key/value cache of the committed prefix (BD3, Fast-dLLM's
///   prefix cache) rebuilds it here.
///
/// Wrappers forward both hooks to the models they wrap (the guidance wrappers of
/// [`crate::sample::guidance`], the caches of [`crate::sample::cache`], `Box<D>`),
/// so a stack such as `ClassifierFree<ExactReuse<D>, ExactReuse<D>>` is driven directly.
/// [`OracleDenoiser`] implements the no-op hooks; a plain `&D` is driven through [`NoHook`].
/// A custom model opts in with `impl BlockModel for MyModel {}`.
pub trait BlockModel: Denoiser {
    /// A generation starts from `prompt` (`[B, P]`). Default: nothing.
    ///
    /// # Errors
    /// The implementation's; the driver stops and returns it.
    fn prefill(&mut self, prompt: ArrayView2<'_, u32>) -> Result<()> {
        let _ = prompt;
        Ok(())
    }

    /// The driver starts block `block` (positions) with these tokens (`[B, L]`). Default:
    /// nothing.
    ///
    /// # Errors
    /// The implementation's; the driver stops and returns it.
    fn begin_block(&mut self, block: Range<usize>, tokens: ArrayView2<'_, u32>) -> Result<()> {
        let _ = (block, tokens);
        Ok(())
    }
}

/// A plain [`Denoiser`] as a [`BlockModel`] with the no-op hooks.
#[derive(Debug)]
pub struct NoHook<'a, D: ?Sized>(pub &'a D);

impl<D: Denoiser + ?Sized> Denoiser for NoHook<'_, D> {
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        self.0.logits(tokens, times, out)
    }
}

impl<D: Denoiser + ?Sized> BlockModel for NoHook<'_, D> {}

/// The exact posterior has no state: no-op hooks.
impl<O: ExactPosterior, P: NoiseProcess> BlockModel for OracleDenoiser<O, P> {}

/// Forwards both hooks.
impl<D: BlockModel + ?Sized> BlockModel for Box<D> {
    fn prefill(&mut self, prompt: ArrayView2<'_, u32>) -> Result<()> {
        (**self).prefill(prompt)
    }
    fn begin_block(&mut self, block: Range<usize>, tokens: ArrayView2<'_, u32>) -> Result<()> {
        (**self).begin_block(block, tokens)
    }
}
