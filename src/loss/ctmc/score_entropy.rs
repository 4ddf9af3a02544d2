//! SEDD's denoising score entropy (Lou et al. 2024, "Discrete Diffusion Modeling by
//! Estimating the Ratios of the Data Distribution", eqs. 5 and 8) and concrete score
//! matching (Meng et al. 2022, "Concrete Score Matching").
//!
//! For one token in state `x` at total noise `s = σ̄(t)`, clean token `x0`, and the network's
//! **log** concrete score `ℓ_y ≈ log p_t(…y…)/p_t(…x…)`, the denoising score entropy is
//!
//! ```text
//! SE = Σ_{y ≠ x} Q[y, x] · ( e^{ℓ_y} − r_y ℓ_y + K(r_y) ),   r_y = q_s(y | x0)/q_s(x | x0),
//! K(a) = a (log a − 1)  (K(0) = 0),
//! ```
//!
//! (row convention: `Q[y, x]` is the forward rate `y → x`, SEDD's `Q[x, y]` in its column
//! convention; louaaron/Score-Entropy-Discrete-Diffusion `graph_lib.{Uniform,Absorbing}.score_entropy`).
//! Each summand is a Bregman divergence of `e^{ℓ}` from `r`, so `SE ≥ 0` with equality iff
//! `e^{ℓ_y} = r_y` wherever `Q[y, x] > 0`; the constant `K` makes the value itself, not just
//! its gradient, meaningful. Gradient: `∂SE/∂ℓ_y = Q[y, x] (e^{ℓ_y} − r_y)`; entries with
//! `Q[y, x] = 0` (including `y = x`) are ignored and get gradient 0.
//!
//! The DWDSE (eq. 8) of a sequence weights every token by the noise rate:
//! `L_DWDSE(t) = σ(t) Σ_i SE_i` ([`dwdse`]); `∫_0^1 E_{x_t} L_DWDSE dt ≥ −log p(x0)`
//! (minus the prior term), with equality for the exact score and a noise schedule that
//! reaches the prior.

use num_traits::Float;

use super::{cast, check_grad, f64_of};
use crate::error::{Error, Result};
use crate::kernel::ctmc::{Ctmc, RateGenerator};
use crate::schedule::Schedule;
use crate::validate;

/// Reusable work buffers (two of length `V`) for the per-token CTMC losses.
#[derive(Debug, Clone)]
pub struct CtmcLossWorkspace {
    pub(crate) rate: Vec<f64>,
    pub(crate) ratio: Vec<f64>,
}

impl CtmcLossWorkspace {
    /// Buffers for vocabulary size `v`.
    pub fn new(v: usize) -> Self {
        CtmcLossWorkspace {
            rate: vec![0.0; v],
            ratio: vec![0.0; v],
        }
    }

    fn fit(&mut self, v: usize) {
        self.rate.resize(v, 0.0);
        self.ratio.resize(v, 0.0);
    }
}

/// The conditional ratios `r_y = q_s(y | x0)/q_s(x | x0)` into `ws.ratio`, the rates into `x`
/// (`Q[·, x]`) into `ws.rate`.
pub(crate) fn conditional_ratios<G: RateGenerator + ?Sized>(
    generator: &G,
    s: f64,
    x: u32,
    x0: u32,
    ws: &mut CtmcLossWorkspace,
) -> Result<()> {
    let v = generator.vocab_size();
    ws.fit(v);
    validate::token("x", x, v)?;
    validate::token("x0", x0, v)?;
    generator.rate_col(x, &mut ws.rate)?;
    generator.transition_row(x0, s, &mut ws.ratio)?;
    let qx = ws.ratio[x as usize];
    if qx <= 0.0 {
        return Err(Error::ZeroProbability {
            what: format!("q(x_t = {x} | x0 = {x0}) at total noise {s}: x cannot come from x0"),
        });
    }
    ws.ratio.iter_mut().for_each(|r| *r /= qx);
    Ok(())
}

/// `K(a) = a (log a − 1)`, `K(0) = 0`.
#[inline]
pub fn score_entropy_constant(a: f64) -> f64 {
    if a == 0.0 { 0.0 } else { a * (a.ln() - 1.0) }
}

/// Per-token denoising score entropy `SE` (module docs) at total noise `sigma_bar`, for a
/// token observed in state `x` whose clean value is `x0`, from the network's log concrete
/// score `log_score` (length `V`); optionally writes `∂SE/∂ℓ` into `grad`.
///
/// ```
/// use discrete_diffusion::kernel::ctmc::MixtureGenerator;
/// use discrete_diffusion::loss::ctmc::score_entropy::{CtmcLossWorkspace, score_entropy};
/// let g = MixtureGenerator::absorbing(3, 2)?;
/// let s = 0.7f64;
/// let r = 1.0 / s.exp_m1(); // the true ratio to x0 at the mask
/// let mut ws = CtmcLossWorkspace::new(3);
/// let exact = [r.ln(), -30.0, 0.0];
/// let se = score_entropy(&g, s, 2, 0, &exact[..], &mut ws, None)?;
/// assert!(se.abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
///
/// # Errors
/// Token, length and non-finite errors naming the argument; a bad `sigma_bar`;
/// [`Error::ZeroProbability`] if `x` cannot be reached from `x0`.
pub fn score_entropy<G: RateGenerator + ?Sized, F: Float>(
    generator: &G,
    sigma_bar: f64,
    x: u32,
    x0: u32,
    log_score: &[F],
    ws: &mut CtmcLossWorkspace,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let v = generator.vocab_size();
    validate::len("log_score", log_score.len(), v)?;
    validate::all_finite("log_score", log_score)?;
    check_grad(&grad, v)?;
    conditional_ratios(generator, sigma_bar, x, x0, ws)?;
    let xi = x as usize;
    let mut total = 0.0;
    let mut g = grad;
    for y in 0..v {
        let q = ws.rate[y];
        let mut dy = 0.0;
        if y != xi && q > 0.0 {
            let l = f64_of(log_score[y]);
            let (e, r) = (l.exp(), ws.ratio[y]);
            total += q * (e - r * l + score_entropy_constant(r));
            dy = q * (e - r);
        }
        if let Some(g) = g.as_deref_mut() {
            g[y] = cast(dy);
        }
    }
    Ok(total)
}

/// Per-token concrete score matching (Meng et al. 2022, eq. 4, denoising form) on the rate
/// neighbourhood of `x`, with the network's output in log space (`c_y = e^{ℓ_y} − 1` is
/// Meng et al.'s concrete score):
///
/// ```text
/// CSM = Σ_{y ≠ x} Q[y, x] (e^{ℓ_y} − r_y)²,      ∂CSM/∂ℓ_y = 2 Q[y, x] (e^{ℓ_y} − r_y) e^{ℓ_y},
/// ```
///
/// `r_y = q_s(y | x0)/q_s(x | x0)`. `≥ 0`, zero at the exact ratios. Meng et al. weight the
/// neighbourhood uniformly; weighting by the rates into `x` makes the neighbourhood the
/// generator's (for the uniform generator the two coincide up to the factor `1/V`).
///
/// # Errors
/// As [`score_entropy`].
pub fn concrete_score_matching<G: RateGenerator + ?Sized, F: Float>(
    generator: &G,
    sigma_bar: f64,
    x: u32,
    x0: u32,
    log_score: &[F],
    ws: &mut CtmcLossWorkspace,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let v = generator.vocab_size();
    validate::len("log_score", log_score.len(), v)?;
    validate::all_finite("log_score", log_score)?;
    check_grad(&grad, v)?;
    conditional_ratios(generator, sigma_bar, x, x0, ws)?;
    let xi = x as usize;
    let mut total = 0.0;
    let mut g = grad;
    for y in 0..v {
        let q = ws.rate[y];
        let mut dy = 0.0;
        if y != xi && q > 0.0 {
            let e = f64_of(log_score[y]).exp();
            let d = e - ws.ratio[y];
            total += q * d * d;
            dy = 2.0 * q * d * e;
        }
        if let Some(g) = g.as_deref_mut() {
            g[y] = cast(dy);
        }
    }
    Ok(total)
}

/// SEDD's diffusion-weighted denoising score entropy of one sequence at time `t` (eq. 8;
/// `losses.get_loss_fn`: `(dsigma · score_entropy).sum(-1)`):
///
/// ```text
/// L(t) = σ(t) Σ_i SE(x_t^i, x0^i, ℓ^i; σ̄(t)),
/// ```
///
/// `x0`, `x_t` of length `L`, `log_score` row-major `[L, V]`, optional `grad` of the same
/// shape (`σ(t)·∂SE_i/∂ℓ^i`). Returns the sum; `per_token`, when given (length `L`), gets
/// the unweighted `SE_i`.
///
/// # Errors
/// As [`score_entropy`], shape errors for the sequences, and [`Error::Numerical`] if `σ(t)`
/// is infinite.
#[allow(clippy::too_many_arguments)]
pub fn dwdse<G: RateGenerator, S: Schedule, F: Float>(
    ctmc: &Ctmc<G, S>,
    t: f64,
    x0: &[u32],
    x_t: &[u32],
    log_score: &[F],
    ws: &mut CtmcLossWorkspace,
    mut per_token: Option<&mut [f64]>,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let v = ctmc.vocab_size();
    let l = x0.len();
    if l == 0 {
        return Err(Error::invalid("x0", "empty sequence"));
    }
    validate::len("x_t", x_t.len(), l)?;
    validate::len("log_score", log_score.len(), l * v)?;
    check_grad(&grad, l * v)?;
    if let Some(p) = per_token.as_deref() {
        validate::len("per_token", p.len(), l)?;
    }
    let sigma_bar = ctmc.total_noise(t)?;
    let sigma = ctmc.noise_rate(t)?;
    if !sigma.is_finite() {
        return Err(Error::Numerical {
            what: "dwdse",
            reason: format!("the noise rate σ(t) is {sigma} at t = {t}"),
        });
    }
    let mut total = 0.0;
    let mut grad = grad;
    for i in 0..l {
        let row = &log_score[i * v..(i + 1) * v];
        let g = grad.as_deref_mut().map(|g| &mut g[i * v..(i + 1) * v]);
        let has_grad = g.is_some();
        let se = score_entropy(ctmc.generator(), sigma_bar, x_t[i], x0[i], row, ws, g)?;
        if has_grad {
            let g = &mut grad.as_deref_mut().expect("checked")[i * v..(i + 1) * v];
            g.iter_mut().for_each(|d| *d = cast(f64_of(*d) * sigma));
        }
        if let Some(p) = per_token.as_deref_mut() {
            p[i] = se;
        }
        total += sigma * se;
    }
    Ok(total)
}
