//! The marginal kernel of DiGress (Vignac et al. 2023, §4.1): corrupt towards the data's
//! marginal law `π`, `Q_t = (1 − β_t) I + β_t 1πᵀ`.

use crate::error::Result;
use crate::kernel::mixture::{Mixture, delegate_mixture_kernel};

/// Marginal corruption: each step keeps the token with probability `1 − β_t` and otherwise
/// redraws it from `π` (typically the empirical marginal of the training data, which
/// DiGress shows is the optimal prior among mixture kernels of this form).
/// `Q̄_t = ᾱ_t I + (1 − ᾱ_t) 1πᵀ`; stationary law `π`. All methods O(V).
///
/// ```
/// use discrete_diffusion::kernel::ForwardKernel;
/// use discrete_diffusion::kernel::marginal::Marginal;
///
/// let k = Marginal::new(vec![0.5, 0.3, 0.2], &[0.5]).unwrap();
/// let mut col = [0.0; 3];
/// k.step_col(1, 2, &mut col).unwrap(); // q(x_1 = 2 | x_0 = ·)
/// assert_eq!(col, [0.1, 0.1, 0.6]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Marginal {
    inner: Mixture,
}

impl Marginal {
    /// Target law `pi` (a probability vector over `V ≥ 2` states: finite, non-negative,
    /// summing to 1 within `1e-9`; renormalised exactly) and step schedule
    /// `betas = [β_1, …, β_T]`, each `β_t ∈ [0, 1]`.
    pub fn new(pi: Vec<f64>, betas: &[f64]) -> Result<Self> {
        Ok(Marginal {
            inner: Mixture::new(pi, betas)?,
        })
    }

    /// The target law `π`.
    pub fn pi(&self) -> &[f64] {
        self.inner.pi()
    }

    /// The underlying mixture kernel.
    pub fn as_mixture(&self) -> &Mixture {
        &self.inner
    }
}

delegate_mixture_kernel!(Marginal, inner);
