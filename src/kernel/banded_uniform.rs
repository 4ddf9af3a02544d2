//! D3PM images' uniform kernel with `transition_bands` (Austin et al. 2021, "Structured
//! Denoising Diffusion Models in Discrete State-Spaces", §3.2 and App. A.2.1).
//!
//! One-step matrix for `K` states, band `B` and `β_t ∈ [0, 1]`:
//!
//! ```text
//! Q_t[i, j] = β_t / K                 for 1 ≤ |i − j| ≤ B,
//! Q_t[i, j] = 0                       for |i − j| > B,
//! Q_t[i, i] = 1 − Σ_{j≠i} Q_t[i, j]   (= 1 − n_i β_t / K, n_i = neighbours of i in the band).
//! ```
//!
//! The diagonal is **not** `1 − β_t` and rows near the edges keep more mass, exactly as the
//! anchor's `_get_transition_mat` (google-research `d3pm/images/diffusion_categorical.py`).
//! With `B = K − 1` (`None`) this is the full uniform kernel
//! `(1 − β_t) I + β_t 11ᵀ/K`. `Q_t` is symmetric with unit row sums, hence doubly
//! stochastic: the uniform distribution is stationary. One-step matrices are kept as their
//! constant profile `β_t/K` and diagonal, cumulative matrices are stored densely and built
//! by banded products ([`BandedToeplitz`], memory `T·K²` f64, `O(K²·B)` per step); for the
//! full band prefer the O(K) closed-form uniform kernel.

use ndarray::Array2;

use crate::error::Result;
use crate::kernel::dense::{
    BandedToeplitz, check_bands, check_betas, delegate_forward_kernel, toeplitz_matrix,
};
use crate::validate;

/// The one-step banded uniform matrix (see the [module docs](self)).
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `num_states < 2`, `beta ∉ [0, 1]`, or
/// `transition_bands` is `Some(0)` or `≥ K`; [`crate::Error::NonFinite`] for a NaN `beta`.
///
/// ```
/// use discrete_diffusion::kernel::banded_uniform::banded_uniform_matrix;
/// let q = banded_uniform_matrix(8, 0.3, Some(1)).unwrap();
/// assert_eq!(q[[0, 1]], 0.3 / 8.0);
/// assert_eq!(q[[0, 2]], 0.0);
/// assert!((q[[0, 0]] - (1.0 - 0.3 / 8.0)).abs() < 1e-16);
/// ```
pub fn banded_uniform_matrix(
    num_states: usize,
    beta: f64,
    transition_bands: Option<usize>,
) -> Result<Array2<f64>> {
    validate::vocab("num_states", num_states)?;
    validate::finite("beta", beta)?;
    validate::probability("beta", beta)?;
    let bands = check_bands(transition_bands, num_states)?;
    Ok(toeplitz_matrix(
        num_states,
        &vec![beta / num_states as f64; bands],
    ))
}

/// D3PM images' (banded) uniform forward kernel with banded one-step matrices, dense
/// cumulative products and the uniform stationary distribution (see the
/// [module docs](self)).
#[derive(Debug, Clone)]
pub struct BandedUniform {
    banded: BandedToeplitz,
    betas: Vec<f64>,
}

impl BandedUniform {
    /// Build from `betas = [β_1, …, β_T]` (each in `[0, 1]`; the anchor's `betas[t]` is
    /// our `β_{t+1}`) and `transition_bands` (`None` = full uniform).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for `num_states < 2`, empty or out-of-range betas,
    /// bad bands, or cumulative storage `T·K²` over
    /// [`MAX_DENSE_ENTRIES`](super::dense::MAX_DENSE_ENTRIES);
    /// [`crate::Error::NonFinite`] for a NaN beta.
    ///
    /// ```
    /// use discrete_diffusion::kernel::{ForwardKernel, banded_uniform::BandedUniform};
    /// let k = BandedUniform::new(8, &[0.1, 0.2, 0.3, 0.4], Some(2)).unwrap();
    /// let mut col = vec![0.0; 8];
    /// k.cumulative_col(4, 7, &mut col).unwrap();
    /// assert!((col.iter().sum::<f64>() - 1.0).abs() < 1e-12); // doubly stochastic
    /// ```
    pub fn new(num_states: usize, betas: &[f64], transition_bands: Option<usize>) -> Result<Self> {
        validate::vocab("num_states", num_states)?;
        check_betas(betas)?;
        let bands = check_bands(transition_bands, num_states)?;
        crate::kernel::dense::check_banded_memory(betas.len(), num_states)?;
        let mut profiles = Vec::with_capacity(betas.len() * bands);
        for &b in betas {
            profiles.extend(std::iter::repeat_n(b / num_states as f64, bands));
        }
        Ok(BandedUniform {
            banded: BandedToeplitz::new(num_states, bands, profiles)?,
            betas: betas.to_vec(),
        })
    }

    /// `β_1..=β_T`.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// The number of off-diagonal bands `B` (`K − 1` when built with `None`).
    pub fn transition_bands(&self) -> usize {
        self.banded.transition_bands()
    }

    /// The underlying banded representation: profiles, diagonals and materialised
    /// one-step matrices `Q_t` ([`BandedToeplitz::step_matrix`]), stored cumulative
    /// matrices `Q̄_t` ([`BandedToeplitz::cumulative_matrix`]).
    ///
    /// (This replaces the former `dense()`, which returned a `Dense` holding `2T + 1`
    /// matrices.)
    pub fn banded(&self) -> &BandedToeplitz {
        &self.banded
    }
}

delegate_forward_kernel!(BandedUniform, banded);
