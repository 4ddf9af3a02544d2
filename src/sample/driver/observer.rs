//! Per-step events, observers and the block hook of the driver.

use std::ops::Range;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut3};

use crate::backend::steps::Commit;
use crate::error::Result;
use crate::model::Denoiser;

/// What one driver step did. Observers see every step as it happens; the driver never
/// stores a `[steps × B × L × V]` trajectory.
#[derive(Clone, Copy, Debug)]
pub struct StepEvent<'a> {
    /// The global step index (also the RNG step address).
    pub step: u32,
    /// The block index (0 without blocks).
    pub block: usize,
    /// Current time `t` of the block's grid.
    pub t: f64,
    /// Next time `s < t`.
    pub s: f64,
    /// Denoiser calls so far (this step's included).
    pub nfe: usize,
    /// Revealed positions with their token and its log-probability at reveal time (under
    /// the row the backend read, i.e. after the logit transforms).
    pub reveals: &'a [Commit],
    /// Positions set back to the mask by a remasking policy.
    pub remasked: &'a [(usize, usize)],
    /// Positions filled with padding after an end-of-sequence token.
    pub padded: &'a [(usize, usize)],
}

/// Receives the driver's per-step events.
pub trait Observer {
    /// Called after every step (and after the final fill, if any).
    fn on_step(&mut self, event: &StepEvent<'_>);
}

/// The observer that ignores everything.
impl Observer for () {
    fn on_step(&mut self, _: &StepEvent<'_>) {}
}

/// A [`Denoiser`] the driver can tell about blocks (semi-autoregressive and block
/// diffusion). A denoiser with a key/value cache of the committed prefix (BD3, Fast-dLLM
/// prefix cache) overrides [`begin_block`](BlockModel::begin_block) to rebuild its cache:
/// when it is called, every position before `block.start` is final (except under a
/// remasking policy, which only touches the current block).
pub trait BlockModel: Denoiser {
    /// The driver starts block `block` (positions) with these tokens. Default: nothing.
    ///
    /// # Errors
    /// The implementation's; the driver stops and returns it.
    fn begin_block(&mut self, block: Range<usize>, tokens: ArrayView2<'_, u32>) -> Result<()> {
        let _ = (block, tokens);
        Ok(())
    }
}

/// A plain [`Denoiser`] as a [`BlockModel`] with the no-op hook.
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
