//! Discrete flow matching samplers (Gat et al. 2024, "Discrete Flow Matching"; Shaul et
//! al. 2024, "Flow Matching with General Discrete Paths"; facebookresearch/flow_matching
//! `MixtureDiscreteEulerSolver`).
//!
//! Flow time `s` runs from the source (`s = 0`) to the data (`s = 1`); the denoiser is
//! called at the crate's time `t = 1 − s` and returns the posterior `p_{1|s}` as logits.
//!
//! * [`MixtureSolver`]: mixture paths (masked, uniform or general source), Euler steps with
//!   the exact jump probability `1 − exp(−hλ)`, the divergence-free corrector `β_s` (remasking
//!   for the masked source) and the final step `X = X_1`; the masked case runs on the
//!   backend's fused [`dfm_euler_step`](crate::backend::steps::dfm_euler_step);
//! * [`MetricSolver`]: metric-induced, kinetic-optimal paths, with the kinetic corrector;
//! * [`CorrectorSchedule`]: the time-dependent corrector coefficient `β_s` of both solvers;
//! * [`exact`]: the solvers' exact laws on enumerable spaces.

mod corrector;
pub mod exact;
mod metric;
mod solver;

pub use corrector::CorrectorSchedule;
pub use metric::MetricSolver;
pub use solver::MixtureSolver;

use ndarray::{Array3, ArrayViewMut2};

use crate::backend::steps::StepRng;
use crate::error::{Error, Result};

/// The argument checks shared by [`MixtureSolver::step`] and [`MetricSolver::step`]: `k`
/// before the last step, the denoiser's `V` equal to the path's `v`, `logits [B, L, V]`,
/// `tokens [B, L]` with `B, L ≥ 1` and ids `< V`, `streams` of length `B`. Returns the
/// step as the RNG's `u32` counter.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_step_args(
    k: usize,
    num_steps: usize,
    v: usize,
    denoiser_vocab: usize,
    tokens: &ArrayViewMut2<'_, u32>,
    logits: &Array3<f32>,
    seed: u64,
    streams: &[u64],
) -> Result<u32> {
    if k >= num_steps {
        return Err(Error::invalid(
            "k",
            format!("step {k} is past the last step {}", num_steps - 1),
        ));
    }
    if denoiser_vocab != v {
        return Err(Error::shape(
            "denoiser",
            format!("vocab_size {v} (the path's)"),
            format!("vocab_size {denoiser_vocab}"),
        ));
    }
    let (b, l) = tokens.dim();
    if logits.dim() != (b, l, v) {
        return Err(Error::shape(
            "logits",
            format!("[{b}, {l}, {v}]"),
            format!("{:?}", logits.shape()),
        ));
    }
    crate::kernel::path::mixture::check_batch(
        b,
        l,
        &StepRng {
            seed,
            streams,
            step: 0,
        },
    )?;
    crate::validate::tokens("tokens", tokens.iter(), v)?;
    u32::try_from(k).map_err(|_| Error::invalid("k", "step exceeds u32"))
}
