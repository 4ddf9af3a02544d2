//! Continuous-time samplers of discrete diffusion (survey §II-C/D): the reverse CTMC
//! `R̂_t` of a factorised forward process `Q_t = σ(t)Q` ([`Ctmc`](crate::kernel::ctmc::Ctmc)),
//! simulated per position over a time grid.
//!
//! | step | law of one position over `t → s = t − h` | order | module |
//! |---|---|---|---|
//! | Euler | `p(y) = h R̂(x, y)`, stay `1 − h Σ R̂` (clamped) | 1 | [`euler`] |
//! | τ-leaping | `N_y ~ Poisson(h R̂(x, y))`; ordinal sum + clamp, or reject multiple jumps | 1 | [`tau_leaping`] |
//! | analytic / Tweedie | `[s_tᵀ exp(−δQ)]_y · exp(δQ)[y, x]` | exact per token | [`tweedie`] |
//! | first hitting (absorbing) | next reveal time `1 − α(τ) = (1 − α(t)) u^{1/n}`, one token | exact | [`first_hitting`] |
//! | corrector | τ-leaping of `σ(t)Q + R̂_t` (leaves `p_t` invariant) | — | [`corrector`] |
//!
//! The per-position *laws* ([`euler_law`], [`tau_leaping_law`], [`tweedie_law_from_x0`],
//! [`tweedie_law_from_score`]) are public, so a law can be checked exactly (the tests
//! propagate whole distributions through them); the draws use the crate's counter RNG
//! only. [`sample_ctmc_batch`] (and [`sample_ctmc`] for one sequence) composes a
//! predictor, an optional corrector and exact reuse of denoiser outputs ([`DenoiserCache`])
//! into a batched sampler whose results depend only on each sequence's `(seed, stream)`
//! ([`sample_ctmc_batch_with_inverse`] adds SEDD's analytic step on log-scores for
//! generators with `exp(−δQ)`); [`first_hitting_sample`] is the
//! event-driven sampler of masked diffusion ([`first_hitting_sample_batch`] runs it on a
//! batch, one denoiser call per round, with per-sequence streams). Reverse rates come from
//! [`param::reverse`](crate::param::reverse). Everything is generic over
//! [`RateGenerator`](crate::kernel::ctmc::RateGenerator), so any generator plugs in.
//!
//! References: A. Campbell et al., "A Continuous Time Framework for Discrete Denoising
//! Models", NeurIPS 2022; A. Lou, C. Meng, S. Ermon, "Discrete Diffusion Modeling by
//! Estimating the Ratios of the Data Distribution", ICML 2024; J. Ou et al., "Your Absorbing
//! Discrete Diffusion Secretly Models the Conditional Distributions of Clean Data", 2024;
//! K. Zheng et al., "Masked Diffusion Models are Secretly Time-Agnostic Masked Models and
//! Exploit Inaccurate Categorical Sampling", 2024.

pub mod corrector;
pub mod euler;
pub mod first_hitting;
pub mod sampler;
pub mod tau_leaping;
pub mod tweedie;

pub use corrector::corrector_rates;
pub use euler::{euler_draw, euler_law};
pub use first_hitting::{
    FirstHitting, FirstHittingBatch, FirstHittingBatchOutput, FirstHittingOutput,
    first_hitting_sample, first_hitting_sample_batch, first_hitting_time,
};
pub use sampler::{
    Corrector, CtmcSampleOutput, CtmcSampler, DenoiserCache, ModelOutput, Predictor, sample_ctmc,
    sample_ctmc_batch, sample_ctmc_batch_with_inverse,
};
pub use tau_leaping::{TauLeapMode, poisson, tau_leaping_draw, tau_leaping_law};
pub use tweedie::{
    InverseTransition, staggered_score, tweedie_law_from_score, tweedie_law_from_x0,
};
