//! Probability paths of discrete flow matching (Gat et al. 2024, "Discrete Flow Matching";
//! Shaul et al. 2024, "Flow Matching with General Discrete Paths: A Kinetic-Optimal
//! Perspective").
//!
//! A path is a family of per-token conditional laws `p_s(x | x_1)` in **flow time**
//! `s ∈ [0, 1]` (`s = 0` the source, `s = 1` the data; `s = 1 − t` in the crate's time),
//! together with a conditional velocity `u_s(x | z, x_1)` that generates it: the
//! Kolmogorov forward equation `∂_s p_s(x | x_1) = Σ_z p_s(z | x_1) u_s(x | z, x_1)` holds,
//! and every velocity row is a CTMC generator row (non-negative off the diagonal, summing to
//! 0). Marginalising `x_1` over the posterior `p_{1|s}(· | z)` gives the marginal velocity
//! of the data path (see [`crate::param::velocity`]).
//!
//! | path | `p_s(x | x_1)` | type |
//! |---|---|---|
//! | mixture (masked, uniform or general source `p_0`) | `(1 − κ(s)) p_0(x) + κ(s) δ_{x_1}(x)` | [`MixturePath`] |
//! | metric-induced (kinetic optimal) | `softmax_x(−β(s) d(x, x_1))` | [`MetricPath`] |

pub mod metric;
pub mod mixture;

pub use metric::{MetricBeta, MetricChannel, MetricPath};
pub use mixture::{MixturePath, SourceLaw};
