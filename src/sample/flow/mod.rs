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
