//! Per-step events and observers of the driver.

use crate::backend::steps::Commit;

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
