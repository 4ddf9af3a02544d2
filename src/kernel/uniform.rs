//! The uniform D3PM kernel (Austin et al. 2021 §3.1 / App. A.2.1; Hoogeboom et al. 2021,
//! multinomial diffusion): `Q_t = (1 − β_t) I + β_t 11ᵀ/V`.

use crate::error::Result;
use crate::kernel::mixture::{Mixture, delegate_mixture_kernel};
use crate::validate;

/// Uniform corruption: each step keeps the token with probability `1 − β_t` and otherwise
/// resamples it uniformly over all `V` states (possibly itself), so
/// `Q_t(i, j) = (1 − β_t) δ_{ij} + β_t / V` and `Q̄_t = ᾱ_t I + (1 − ᾱ_t) 11ᵀ/V` with
/// `ᾱ_t = Π_{s ≤ t}(1 − β_s)`. Doubly stochastic; stationary law uniform. All methods O(V).
///
/// This is D3PM's `uniform` transition (the images anchor's `_get_full_transition_mat`; the
/// text anchor's `BetaDiagonalDiffusion`).
///
/// ```
/// use discrete_diffusion::kernel::ForwardKernel;
/// use discrete_diffusion::kernel::uniform::Uniform;
///
/// let k = Uniform::new(4, &[0.5, 0.5]).unwrap();
/// let mut row = [0.0; 4];
/// k.step_row(1, 0, &mut row).unwrap();
/// assert_eq!(row, [0.625, 0.125, 0.125, 0.125]);
/// k.cumulative_row(2, 0, &mut row).unwrap(); // ᾱ_2 = 0.25
/// assert_eq!(row, [0.4375, 0.1875, 0.1875, 0.1875]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Uniform {
    inner: Mixture,
}

impl Uniform {
    /// `V ≥ 2` states, step schedule `betas = [β_1, …, β_T]`, each `β_t ∈ [0, 1]`.
    pub fn new(vocab_size: usize, betas: &[f64]) -> Result<Self> {
        validate::vocab("vocab_size", vocab_size)?;
        let pi = vec![1.0 / vocab_size as f64; vocab_size];
        Ok(Uniform {
            inner: Mixture::new(pi, betas)?,
        })
    }

    /// The underlying mixture kernel (`π = 1/V`).
    pub fn as_mixture(&self) -> &Mixture {
        &self.inner
    }
}

delegate_mixture_kernel!(Uniform, inner);
