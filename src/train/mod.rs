//! The diffusion-specific half of a training loop (survey §III-B, §IV): what to corrupt, how
//! to weight it, how to estimate likelihoods, with gradients with respect to logits. The
//! network and the optimiser are the caller's.
//!
//! | concern | module |
//! |---|---|
//! | masks from counter-based uniforms: Bernoulli, exact-count (LLaDA), complementary pairs (LaViDa), nested across noise levels (DPLM/RDM) | [`masks`] |
//! | per-token schedules: shared, DiffusionBERT spindle, MD4's GenMD4; Dream's CART weights | [`token_schedule`] |
//! | `(t, x_t)` for a batch under any time sampler and any [`NoiseProcess`](crate::kernel::NoiseProcess) | [`corrupt`] |
//! | NELBO estimators (uniform / antithetic / stratified times, LLaDA's k-stratified mask counts) with gradients | [`elbo`] |
//! | VRPO (LLaDA 1.5): shared-noise ELBO differences and the DPO loss | [`vrpo`] |
//! | AR initialisation: the one-position logit shift and its adjoint (Dream, DiffuLLaMA) | [`shift`] |
//!
//! Weights `w(t)` ([`ElboWeight`](crate::loss::weight::ElboWeight)) and the SUBS masked loss
//! with its gradient ([`masked_diffusion_loss`](crate::loss::masked::masked_diffusion_loss))
//! live in [`crate::loss`]; every estimator here goes through them.
//!
//! All randomness is keyed by `(seed, sequence id, purpose, step, position)` (and a draw
//! index), so a sequence's corruption never depends on its batch mates.

pub mod corrupt;
pub mod elbo;
pub mod masks;
pub mod shift;
pub mod token_schedule;
pub mod vrpo;
