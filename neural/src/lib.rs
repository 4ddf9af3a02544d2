//! A small trainable neural denoiser for `discrete-diffusion`, in [candle](https://github.com/huggingface/candle)
//! on the CPU, kept out of the core crate so that it stays light.
//!
//! * [`data`]: a character vocabulary with an end/pad token and a mask token, and loaders for
//!   MOSES SMILES (`molecules/moses_*.csv.gz`) and plain text.
//! * [`protein`]: UniProt proteins as windows of `L` residues with a homology-aware
//!   train/validation/test split (single-linkage clusters of shared 12-mers), and the
//!   exchangeable composition model used as a non-Markov reference.
//! * [`model`]: [`TransformerDenoiser`](model::TransformerDenoiser), a bidirectional
//!   transformer `x_t ↦ logits [B, L, V]`, time-free (RADD, Ou et al. 2024: the absorbing
//!   diffusion posterior of `x_0` does not depend on `t` given `x_t`); it implements the
//!   crate's [`Denoiser`](discrete_diffusion::model::Denoiser), so the crate's samplers and
//!   NELBO estimators run on it.
//! * [`loss`]: the MDLM NELBO loss `w(t) Σ_{masked i} −log p_θ(x_0^i | x_t)` with SUBS
//!   (mask logit excluded) as a differentiable candle expression; a test checks that it
//!   equals [`masked_diffusion_loss`](discrete_diffusion::loss::masked::masked_diffusion_loss).
//! * [`train`]: the training loop: corruption by
//!   [`corrupt_batch`](discrete_diffusion::train::corrupt::corrupt_batch) (counter-based RNG),
//!   weights by [`ElboWeight::Elbo`](discrete_diffusion::loss::weight::ElboWeight) or the
//!   lower-variance [`TrainWeighting`](train::TrainWeighting) alternatives, AdamW; held-out
//!   NELBO by the crate's unbiased k-stratified estimator.
//! * [`ngram`]: order-`k` n-gram models fitted by counting (sparse, any `k`), the baseline;
//!   for small `k` they equal the crate's
//!   [`MarkovChainOracle::fit`](discrete_diffusion::model::markov::MarkovChainOracle::fit).
//!
//! `cargo run --release -p discrete-diffusion-neural --bin train -- --dataset protein` trains
//! on UniProt proteins and writes `docs/neural.md`; `--dataset smiles` trains on MOSES and
//! writes `docs/neural-smiles.md` (see those files for the numbers and the exact commands).
//! On proteins, held out by homology cluster, the network beats the best order-k chain
//! (chains capture little beyond the unigram there, while the network also uses the
//! window's composition and both sides' context); on SMILES, whose structure is local and
//! where 1.6 M training strings make count-based 6-grams very strong, minutes of CPU
//! training do not.

pub mod data;
pub mod loss;
pub mod model;
pub mod ngram;
pub mod protein;
pub mod train;

/// Convert a candle error into the crate's error type (the message is kept).
pub(crate) fn candle_err(e: candle_core::Error) -> discrete_diffusion::Error {
    discrete_diffusion::Error::Numerical {
        what: "candle",
        reason: e.to_string(),
    }
}
