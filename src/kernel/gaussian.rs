//! D3PM's discretized Gaussian kernel for ordinal data, and the discretized logistic output
//! parameterisation (Austin et al. 2021, "Structured Denoising Diffusion Models in Discrete
//! State-Spaces", App. A.2.2 and §3.2).
//!
//! The one-step matrix mimics a continuous Gaussian diffusion on the pixel grid: with
//! `x_k = k·s/(K − 1)·2/(K − 1)` the distance of `k` bins on a grid rescaled to `[0, 2]`
//! (`s = 255` in D3PM images, `s = K` in D3PM text), the off-diagonal profile is the
//! softmax over offsets `−B..=B` of `−x_k²/β_t`,
//!
//! ```text
//! w_k = exp(−x_k²/β_t) / Σ_{l=−B}^{B} exp(−x_l²/β_t),     k = 0..=B,
//! Q_t[i, j] = w_{|i−j|}            for 1 ≤ |i − j| ≤ B,
//! Q_t[i, i] = 1 − Σ_{j≠i} Q_t[i, j],
//! ```
//!
//! and 0 beyond the band `B` (`transition_bands`, all of `K − 1` when `None`). `Q_t` is
//! symmetric with unit row sums, hence doubly stochastic, so the uniform distribution is
//! stationary. This reproduces the anchor `_get_gaussian_transition_mat` of
//! google-research `d3pm/images/diffusion_categorical.py` (`s = 255`) and of
//! `d3pm/text/diffusion.py::GaussianPrecomputedDiffusion` (`s = dim`, full band).

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::kernel::dense::{
    BandedToeplitz, check_bands, check_betas, delegate_forward_kernel, toeplitz_matrix,
};
use crate::validate;

/// `linspace_stop` of D3PM images: the grid `linspace(0, 255, K)` whatever `K` is.
pub const IMAGES_LINSPACE_STOP: f64 = 255.0;

/// The Gaussian profile `w_0..=w_B` (see the [module docs](self)):
/// `w_k = exp(−x_k²/β) / Σ_{l=−B}^{B} exp(−x_l²/β)` with `x_k = k·s/(K−1)·2/(K−1)`.
///
/// `w_k` is the off-diagonal value of `Q` at distance `k ≥ 1`; `w_0` is the softmax centre
/// (the diagonal of interior rows when `B = K − 1`). `β = 0` gives the limit `w = e_0`.
///
/// # Errors
/// [`Error::InvalidArgument`] if `num_states < 2`, `beta ∉ [0, 1]`, `transition_bands` is
/// `Some(0)` or `≥ K`, or `linspace_stop` is not finite and positive.
pub fn gaussian_profile(
    num_states: usize,
    beta: f64,
    transition_bands: Option<usize>,
    linspace_stop: f64,
) -> Result<Vec<f64>> {
    validate::vocab("num_states", num_states)?;
    validate::finite("beta", beta)?;
    validate::probability("beta", beta)?;
    validate::finite("linspace_stop", linspace_stop)?;
    if linspace_stop <= 0.0 {
        return Err(Error::invalid(
            "linspace_stop",
            format!("{linspace_stop} must be positive"),
        ));
    }
    let bands = check_bands(transition_bands, num_states)?;
    Ok(profile_unchecked(num_states, beta, bands, linspace_stop))
}

fn profile_unchecked(k: usize, beta: f64, bands: usize, stop: f64) -> Vec<f64> {
    let mut w = vec![0.0; bands + 1];
    if beta == 0.0 {
        w[0] = 1.0;
        return w;
    }
    let km1 = (k - 1) as f64;
    // numpy linspace(0, stop, K)[j] = j·(stop/(K−1)), then ·2/(K−1).
    let step = stop / km1;
    for (j, wj) in w.iter_mut().enumerate() {
        let x = j as f64 * step * 2.0 / km1;
        *wj = (-x * x / beta).exp();
    }
    // Softmax over offsets −B..=B; the maximum logit is 0 at offset 0.
    let z = w[0] + 2.0 * w[1..].iter().sum::<f64>();
    for wj in &mut w {
        *wj /= z;
    }
    w
}

/// One-step discretized Gaussian matrix `Q` (see the [module docs](self)): `V×V`,
/// symmetric, doubly stochastic, banded with `transition_bands` off-diagonals (`None` =
/// all `K − 1`).
///
/// # Errors
/// As [`gaussian_profile`].
///
/// ```
/// use discrete_diffusion::kernel::gaussian::{gaussian_transition_matrix, IMAGES_LINSPACE_STOP};
/// let q = gaussian_transition_matrix(8, 0.5, None, IMAGES_LINSPACE_STOP).unwrap();
/// for i in 0..8 {
///     assert!((q.row(i).sum() - 1.0).abs() < 1e-15 && (q.column(i).sum() - 1.0).abs() < 1e-15);
/// }
/// ```
pub fn gaussian_transition_matrix(
    num_states: usize,
    beta: f64,
    transition_bands: Option<usize>,
    linspace_stop: f64,
) -> Result<Array2<f64>> {
    let w = gaussian_profile(num_states, beta, transition_bands, linspace_stop)?;
    Ok(toeplitz_matrix(num_states, &w[1..]))
}

/// D3PM's discretized Gaussian forward kernel (Austin et al. 2021, App. A.2.2): one-step
/// matrices from [`gaussian_transition_matrix`] with `β_t`, kept as their profiles
/// `w_{t,1..=B}` and diagonals ([`BandedToeplitz`]: one-step rows in `O(V)`), cumulative
/// products `Q̄_t = Q_1 ⋯ Q_t` precomputed by banded products (memory `T·V²` f64, 0.5 GiB
/// at `K = 256`, `T = 1000`), and the uniform stationary distribution.
#[derive(Debug, Clone)]
pub struct DiscretizedGaussian {
    banded: BandedToeplitz,
    betas: Vec<f64>,
    linspace_stop: f64,
}

impl DiscretizedGaussian {
    /// The D3PM-images kernel over `num_states` ordinal values (grid stop `255`) with
    /// `betas = [β_1, …, β_T]` (each in `[0, 1]`; the anchor's `betas[t]` is our `β_{t+1}`)
    /// and `transition_bands` off-diagonals (`None` = full).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `num_states < 2`, empty or out-of-range betas, bad
    /// bands, or cumulative storage `T·K²` over
    /// [`MAX_DENSE_ENTRIES`](super::dense::MAX_DENSE_ENTRIES); [`Error::NonFinite`] for a
    /// NaN beta.
    ///
    /// ```
    /// use discrete_diffusion::kernel::{ForwardKernel, gaussian::DiscretizedGaussian};
    /// let k = DiscretizedGaussian::new(16, &[0.02, 0.1, 0.5], Some(4)).unwrap();
    /// let mut row = vec![0.0; 16];
    /// k.cumulative_row(3, 5, &mut row).unwrap();
    /// assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    /// ```
    pub fn new(num_states: usize, betas: &[f64], transition_bands: Option<usize>) -> Result<Self> {
        Self::with_linspace_stop(num_states, betas, transition_bands, IMAGES_LINSPACE_STOP)
    }

    /// The D3PM-text variant (`GaussianPrecomputedDiffusion`): grid `linspace(0, dim, dim)`
    /// and a full band. The anchor uses it column-stochastically; the matrix is symmetric,
    /// so it is the same matrix.
    ///
    /// # Errors
    /// As [`DiscretizedGaussian::new`].
    pub fn text(dim: usize, betas: &[f64]) -> Result<Self> {
        Self::with_linspace_stop(dim, betas, None, dim as f64)
    }

    /// General form with an explicit grid stop `s` (`x_k = k·s/(K−1)·2/(K−1)`).
    ///
    /// # Errors
    /// As [`DiscretizedGaussian::new`], plus `linspace_stop` not finite and positive.
    pub fn with_linspace_stop(
        num_states: usize,
        betas: &[f64],
        transition_bands: Option<usize>,
        linspace_stop: f64,
    ) -> Result<Self> {
        validate::vocab("num_states", num_states)?;
        check_betas(betas)?;
        let bands = check_bands(transition_bands, num_states)?;
        validate::finite("linspace_stop", linspace_stop)?;
        if linspace_stop <= 0.0 {
            return Err(Error::invalid(
                "linspace_stop",
                format!("{linspace_stop} must be positive"),
            ));
        }
        crate::kernel::dense::check_banded_memory(betas.len(), num_states)?;
        let mut profiles = Vec::with_capacity(betas.len() * bands);
        for &b in betas {
            profiles
                .extend_from_slice(&profile_unchecked(num_states, b, bands, linspace_stop)[1..]);
        }
        Ok(DiscretizedGaussian {
            banded: BandedToeplitz::new(num_states, bands, profiles)?,
            betas: betas.to_vec(),
            linspace_stop,
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

    /// The grid stop `s` (255 for images, `K` for text).
    pub fn linspace_stop(&self) -> f64 {
        self.linspace_stop
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

delegate_forward_kernel!(DiscretizedGaussian, banded);

/// Numerically stable `log σ(x) = −log(1 + e^{−x})`.
fn log_sigmoid(x: f64) -> f64 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

/// D3PM images' discretized logistic logits (the anchor's `_get_logits_from_logistic_pars`
/// with `utils.log_min_exp`, `eps = 1e-6`), written into `out` (length `K ≥ 2`).
///
/// With bin centres `c_i = −1 + 2i/(K − 1)`, bin width `w = 2/(K − 1)`, inverse scale
/// `s⁻¹ = exp(−(log_scale − 2))` and `σ` the logistic sigmoid:
///
/// ```text
/// a_i = log σ(s⁻¹ (c_i − loc + w/2)),   b_i = log σ(s⁻¹ (c_i − loc − w/2)),
/// logit_i = a_i + log1p(−exp(b_i − a_i) + 1e-6)   ≈ log(CDF(c_i + w/2) − CDF(c_i − w/2)).
/// ```
///
/// The logits are unnormalised (no edge bins absorb the tails); a softmax normalises them.
///
/// # Errors
/// [`Error::NonFinite`] if `loc` or `log_scale` is not finite; [`Error::InvalidArgument`]
/// if `out.len() < 2`.
pub fn discretized_logistic_logits_into(loc: f64, log_scale: f64, out: &mut [f64]) -> Result<()> {
    validate::finite("loc", loc)?;
    validate::finite("log_scale", log_scale)?;
    let k = validate::vocab("out", out.len())?;
    let inv_scale = (-(log_scale - 2.0)).exp();
    let width = 2.0 / (k as f64 - 1.0);
    let step = 2.0 / (k as f64 - 1.0);
    for (i, o) in out.iter_mut().enumerate() {
        let centre = -1.0 + i as f64 * step - loc;
        let lo = log_sigmoid(inv_scale * (centre - 0.5 * width));
        let hi = log_sigmoid(inv_scale * (centre + 0.5 * width));
        *o = hi + (-(lo - hi).exp() + 1e-6).ln_1p();
    }
    Ok(())
}

/// Allocating form of [`discretized_logistic_logits_into`]: the `num_states` logits of the
/// discretized logistic with location `loc` and log-scale `log_scale`.
///
/// # Errors
/// As [`discretized_logistic_logits_into`] (`num_states < 2` is invalid).
///
/// ```
/// let l = discrete_diffusion::kernel::gaussian::discretized_logistic_logits(0.0, 0.0, 8).unwrap();
/// assert!((l[3] - l[4]).abs() < 1e-5); // symmetric around loc = 0 up to eps
/// ```
pub fn discretized_logistic_logits(
    loc: f64,
    log_scale: f64,
    num_states: usize,
) -> Result<Vec<f64>> {
    validate::vocab("num_states", num_states)?;
    let mut out = vec![0.0; num_states];
    discretized_logistic_logits_into(loc, log_scale, &mut out)?;
    Ok(out)
}
