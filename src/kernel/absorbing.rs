//! The absorbing-state (masking) D3PM kernel (Austin et al. 2021 §3.1 / App. A.2.2):
//! `Q_t = (1 − β_t) I + β_t 1 e_mᵀ` for a mask index `m` anywhere in the vocabulary.

use crate::error::Result;
use crate::kernel::mixture::{Mixture, delegate_mixture_kernel};
use crate::validate;

/// Absorbing corruption: each step sends a token to the mask `m` with probability `β_t`
/// and keeps it otherwise; the mask stays a mask. `Q̄_t = ᾱ_t I + (1 − ᾱ_t) 1 e_mᵀ` with
/// `ᾱ_t = Π_{s ≤ t}(1 − β_s)`: a clean token survives to step `t` with probability `ᾱ_t`.
/// Stationary law `e_m`. All methods O(V).
///
/// The mask may be any index (the D3PM images anchor uses `K // 2`, the text anchor
/// `V − 1`, MDLM the last index, MD4 one past the vocabulary); nothing assumes it is last.
///
/// ```
/// use discrete_diffusion::kernel::ForwardKernel;
/// use discrete_diffusion::kernel::absorbing::Absorbing;
///
/// let k = Absorbing::new(4, 2, &[0.25, 1.0]).unwrap(); // mask = 2, as in D3PM images (K//2)
/// let mut row = [0.0; 4];
/// k.step_row(1, 0, &mut row).unwrap();
/// assert_eq!(row, [0.75, 0.0, 0.25, 0.0]);
/// k.cumulative_row(2, 3, &mut row).unwrap(); // β_2 = 1: everything is masked
/// assert_eq!(row, [0.0, 0.0, 1.0, 0.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Absorbing {
    inner: Mixture,
    mask: u32,
}

impl Absorbing {
    /// `V ≥ 2` states (the mask included), mask index `mask ∈ 0..V`, step schedule
    /// `betas = [β_1, …, β_T]`, each `β_t ∈ [0, 1]`.
    pub fn new(vocab_size: usize, mask: u32, betas: &[f64]) -> Result<Self> {
        validate::vocab("vocab_size", vocab_size)?;
        validate::token("mask", mask, vocab_size)?;
        let mut pi = vec![0.0; vocab_size];
        pi[mask as usize] = 1.0;
        Ok(Absorbing {
            inner: Mixture::new(pi, betas)?,
            mask,
        })
    }

    /// The mask (absorbing) index.
    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// The underlying mixture kernel (`π = e_mask`).
    pub fn as_mixture(&self) -> &Mixture {
        &self.inner
    }
}

delegate_mixture_kernel!(Absorbing, inner);
