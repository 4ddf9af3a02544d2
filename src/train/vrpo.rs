//! VRPO, variance-reduced preference optimisation for masked diffusion models (LLaDA 1.5,
//! Zhu et al. 2025, §3–4).
//!
//! DPO needs `log π(y)`; a masked diffusion model only has the ELBO `B(y) = −NELBO(y)`,
//! estimated by Monte Carlo ([`super::elbo`]). VRPO plugs the estimates into the DPO loss,
//!
//! ```text
//! s    = β [ (B̂_π(y_w) − B̂_ref(y_w)) − (B̂_π(y_l) − B̂_ref(y_l)) ],
//! loss = −log σ(s) = softplus(−s),
//! ```
//!
//! and reduces the variance of `s` by (i) spending the sampling budget on distinct times
//! with one mask each (the optimal allocation, Thm. 2: `masks_per_time = 1` in
//! [`ElboSampling::Time`], or [`ElboSampling::MaskCount`]) and (ii) **antithetic sampling**:
//! the policy and the reference model are evaluated on the *same* `(t, mask)` draws, so the
//! noise common to both ELBOs cancels in their difference. Here the winner and the loser
//! also share the times and (position by position) the masks, because all four estimates
//! are drawn under one key ([`VrpoConfig::shared_noise`]); with `shared_noise = false` the
//! four estimates use independent keys (the baseline VRPO improves on).
//!
//! The gradient with respect to the policy's logits is
//! `∂loss/∂ℓ = d_policy_winner · ∂N̂_π(y_w)/∂ℓ + d_policy_loser · ∂N̂_π(y_l)/∂ℓ`, with the
//! NELBO gradients from [`ElboDraws::evaluate`] and the two coefficients from [`vrpo_loss`].

use super::elbo::{ElboDraws, ElboSampling};
use crate::error::{Error, Result};
use crate::model::Denoiser;
use crate::rng::{RngKey, philox4x32_10};

/// The DPO loss of VRPO from the four NELBO estimates, with the coefficients that chain it
/// to the policy's NELBO gradients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VrpoLoss {
    /// The preference score `s` (module docs).
    pub score: f64,
    /// `−log σ(s)`, computed as `softplus(−s)` without overflow.
    pub loss: f64,
    /// `∂loss/∂N̂_π(y_w) = β σ(−s)`.
    pub d_policy_winner: f64,
    /// `∂loss/∂N̂_π(y_l) = −β σ(−s)`.
    pub d_policy_loser: f64,
}

/// Four NELBO estimates (nats) of a preference pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairNelbos {
    /// `N̂_π(y_w)`.
    pub policy_winner: f64,
    /// `N̂_ref(y_w)`.
    pub reference_winner: f64,
    /// `N̂_π(y_l)`.
    pub policy_loser: f64,
    /// `N̂_ref(y_l)`.
    pub reference_loser: f64,
}

/// VRPO's loss from four NELBO estimates (`B = −N`):
/// `s = β[(N_ref(y_w) − N_π(y_w)) − (N_ref(y_l) − N_π(y_l))]`, `loss = softplus(−s)`.
///
/// Errors: a non-finite estimate; `beta` not finite and `> 0`.
///
/// ```
/// use discrete_diffusion::train::vrpo::{PairNelbos, vrpo_loss};
/// let n = PairNelbos { policy_winner: 1.0, reference_winner: 1.5, policy_loser: 2.0, reference_loser: 2.0 };
/// let l = vrpo_loss(n, 0.1)?;
/// assert!((l.score - 0.05).abs() < 1e-15);
/// assert!((l.loss - (1.0 + (-0.05f64).exp()).ln()).abs() < 1e-15);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn vrpo_loss(nelbos: PairNelbos, beta: f64) -> Result<VrpoLoss> {
    if !(beta.is_finite() && beta > 0.0) {
        return Err(Error::invalid(
            "beta",
            format!("{beta} must be finite and > 0"),
        ));
    }
    for (i, x) in [
        nelbos.policy_winner,
        nelbos.reference_winner,
        nelbos.policy_loser,
        nelbos.reference_loser,
    ]
    .into_iter()
    .enumerate()
    {
        if !x.is_finite() {
            return Err(Error::NonFinite {
                arg: "nelbos",
                index: i,
                value: x,
            });
        }
    }
    let s = beta
        * ((nelbos.reference_winner - nelbos.policy_winner)
            - (nelbos.reference_loser - nelbos.policy_loser));
    // softplus(−s) = max(−s, 0) + ln(1 + e^{−|s|}); σ(−s) = 1/(1 + e^{s}).
    let loss = (-s).max(0.0) + (-s.abs()).exp().ln_1p();
    let sig = if s >= 0.0 {
        let e = (-s).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + s.exp())
    };
    Ok(VrpoLoss {
        score: s,
        loss,
        d_policy_winner: beta * sig,
        d_policy_loser: -beta * sig,
    })
}

/// How the four ELBOs of a pair are estimated.
#[derive(Clone, Copy, Debug)]
pub struct VrpoConfig<'a> {
    /// The estimator of each NELBO.
    pub sampling: ElboSampling<'a>,
    /// `n_t` (or the number of mask-count draws).
    pub num_times: usize,
    /// Shared prompt length (prompt positions are never masked).
    pub prompt_len: usize,
    /// The mask token.
    pub mask_token: u32,
    /// DPO's `β > 0`.
    pub beta: f64,
    /// Share `(t, mask)` draws between policy/reference and winner/loser (VRPO); `false`
    /// draws the four estimates under independent keys.
    pub shared_noise: bool,
}

/// A VRPO estimate for one pair: the four NELBOs and the loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VrpoEstimate {
    /// The four NELBO estimates.
    pub nelbos: PairNelbos,
    /// The loss and its coefficients.
    pub loss: VrpoLoss,
}

/// The `k`-th key derived from `key`: `philox(ctr = [k, 0, 0, 0x5EED_0002], key)[0..2]`,
/// independent streams for the four unshared estimates.
pub fn subkey(key: RngKey, k: u32) -> RngKey {
    let b = philox4x32_10([k, 0, 0, 0x5EED_0002], key.0);
    RngKey([b[0], b[1]])
}

/// Estimate the VRPO loss of a preference pair `(winner, loser)` under `policy` and
/// `reference` (module docs). With `shared_noise` every estimate uses `key`; otherwise
/// `subkey(key, 0..4)` in the order policy-winner, reference-winner, policy-loser,
/// reference-loser.
///
/// Errors: those of [`ElboDraws::new`] / [`ElboDraws::evaluate_with`] for either sequence
/// and model, and of [`vrpo_loss`].
#[allow(clippy::too_many_arguments)]
pub fn vrpo_estimate(
    policy: &dyn Denoiser,
    reference: &dyn Denoiser,
    winner: &[u32],
    loser: &[u32],
    config: &VrpoConfig<'_>,
    key: RngKey,
    step: u32,
) -> Result<VrpoEstimate> {
    let draws = |y: &[u32], k: RngKey| {
        ElboDraws::new(
            y,
            config.mask_token,
            config.prompt_len,
            config.sampling,
            config.num_times,
            k,
            step,
        )
    };
    let nelbos = if config.shared_noise {
        let dw = draws(winner, key)?;
        let dl = draws(loser, key)?;
        PairNelbos {
            policy_winner: dw.evaluate_with(policy)?.value,
            reference_winner: dw.evaluate_with(reference)?.value,
            policy_loser: dl.evaluate_with(policy)?.value,
            reference_loser: dl.evaluate_with(reference)?.value,
        }
    } else {
        PairNelbos {
            policy_winner: draws(winner, subkey(key, 0))?.evaluate_with(policy)?.value,
            reference_winner: draws(winner, subkey(key, 1))?
                .evaluate_with(reference)?
                .value,
            policy_loser: draws(loser, subkey(key, 2))?.evaluate_with(policy)?.value,
            reference_loser: draws(loser, subkey(key, 3))?
                .evaluate_with(reference)?
                .value,
        }
    };
    Ok(VrpoEstimate {
        nelbos,
        loss: vrpo_loss(nelbos, config.beta)?,
    })
}
