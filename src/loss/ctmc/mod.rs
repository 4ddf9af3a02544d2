//! Continuous-time training objectives (survey §II-C/II-D) as values **and** gradients with
//! respect to the network outputs (log concrete scores or x0 logits):
//!
//! * [`score_entropy`]: SEDD's denoising score entropy / DWDSE (Lou et al. 2024, eqs. 5, 8)
//!   and concrete score matching (Meng et al. 2022);
//! * [`ratio_matching`]: categorical ratio matching (Sun et al. 2023);
//! * [`ct_elbo`]: Campbell et al. 2022's continuous-time ELBO `L_CT` as tauLDR codes it;
//! * [`ct_elbo_exact`]: the same bound as an exact integral on an enumerable space (tight,
//!   `= −log p(x0)`, with the exact reverse rates);
//! * [`radd`]: RADD's t-DSE, t-DCE, λ-DCE and k-DCE (Ou et al. 2024).
//!
//! Time follows the crate (`t ∈ [0, 1]`, `t = 0` data); the forward process is a
//! [`Ctmc`](crate::kernel::ctmc::Ctmc) `Q_t = σ(t)Q` in row convention. Network outputs may
//! be `f32` or `f64`; values are accumulated in `f64` and are in nats.

pub mod ct_elbo;
pub mod ct_elbo_exact;
pub mod radd;
pub mod ratio_matching;
pub mod score_entropy;

use num_traits::Float;

use crate::error::Result;
use crate::validate;

pub(crate) fn check_grad<F>(grad: &Option<&mut [F]>, n: usize) -> Result<()> {
    if let Some(g) = grad {
        validate::len("grad", g.len(), n)?;
    }
    Ok(())
}

#[inline]
pub(crate) fn cast<F: Float>(x: f64) -> F {
    F::from(x).unwrap_or_else(F::nan)
}

#[inline]
pub(crate) fn f64_of<F: Float>(x: F) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}
