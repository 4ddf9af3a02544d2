//! Discrete-flow-matching training objectives: the generalised KL loss of mixture paths
//! with its gradient, and the ELBO (likelihood bound) it integrates to (Gat et al. 2024,
//! "Discrete Flow Matching"; Shaul et al. 2024, "Flow Matching with General Discrete
//! Paths", §3 and the ELBO of §5; facebookresearch/flow_matching
//! `loss/generalized_loss.py:MixturePathGeneralizedKL`).
//!
//! For a position with data token `x_1`, noisy token `x_s ~ p_s(· | x_1)` and model
//! posterior `p = softmax(ℓ)`, the model velocity `u_θ(y | x_s) = w p(y)` (`y ≠ x_s`,
//! `w = κ̇/(1 − κ)`) is compared with the conditional velocity `u(y | x_s, x_1) = w δ_{x_1}(y)`
//! by the Bregman divergence of `x ln x` summed over `y ≠ x_s`:
//!
//! ```text
//! D = Σ_{y≠x_s} [u_θ − u + u ln(u/u_θ)] = −w [p(x_s) − δ(x_1, x_s) + (1 − δ(x_1, x_s)) ln p(x_1)],
//! ```
//!
//! the `loss_none` of flow_matching. Its gradient with respect to the logits is
//!
//! ```text
//! ∂D/∂ℓ_j = −w [p(x_s)(δ_{j x_s} − p_j) + (1 − δ(x_1, x_s))(δ_{j x_1} − p_j)].
//! ```
//!
//! **ELBO.** A CTMC with rates `u_θ` started at the source (the path's `p_0`, exactly)
//! satisfies `−ln p_θ(x_1) ≤ ∫_0^1 E_{x_s ~ p_s(·|x_1)} Σ_i D_i ds` per sequence (Shaul et
//! al. 2024, ELBO of §5; Campbell et al. 2022's continuous-time ELBO). For the masked path
//! with a model that never predicts the mask it is the MDLM/MD4 NELBO
//! `∫ κ̇/(1 − κ) E[Σ_{masked i} −ln p(x_1^i)] ds`, exact (an equality) for the true
//! posterior. [`nelbo_estimate`] estimates the integral with stratified times.

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut3};
use num_traits::Float;

use crate::backend::steps::StepRng;
use crate::error::{Error, Result};
use crate::kernel::path::MixturePath;
use crate::model::Denoiser;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::schedule::{Kappa, Schedule};
use crate::validate;

fn cast<F: Float>(x: f64) -> F {
    F::from(x).unwrap_or_else(F::nan)
}

fn weight<S: Schedule>(kappa: &Kappa<S>, s: f64) -> Result<f64> {
    let w = kappa.forward_rate(s)?;
    if !w.is_finite() {
        return Err(Error::invalid(
            "s",
            format!("the loss weight κ̇/(1 − κ) is infinite at s = {s} (κ(s) = 1 or κ̇(s) = ∞)"),
        ));
    }
    Ok(w)
}

/// Logits may be `−∞` (probability 0), never NaN or `+∞`.
fn check_logits<'a, F: Float + 'a>(xs: impl Iterator<Item = &'a F>) -> Result<()> {
    for (index, x) in xs.enumerate() {
        if x.is_nan() || (x.is_infinite() && x.is_sign_positive()) {
            return Err(Error::NonFinite {
                arg: "logits",
                index,
                value: x.to_f64().unwrap_or(f64::NAN),
            });
        }
    }
    Ok(())
}

/// The generalised KL loss `D` of one position (module docs) at flow time `s`, in nats,
/// and optionally its gradient with respect to `logits` (written into `grad`).
///
/// ```
/// use discrete_diffusion::loss::flow::generalized_kl;
/// use discrete_diffusion::schedule::Kappa;
/// // Masked position (x_s = 0 the mask, never predicted): −w ln p(x_1), w = 1/(1 − s).
/// let d = generalized_kl(&Kappa::cond_ot(), 0.5, &[f64::MIN / 2.0, 0.0, 0.0], 2, 0, None)?;
/// assert!((d - 2.0 * 2f64.ln()).abs() < 1e-12);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
///
/// # Errors
/// `V < 2`, tokens `≥ V`, NaN or `+∞` logits or no finite logit (`−∞` is probability 0:
/// the loss is `+∞` if `x_1` has it), `grad` of length `≠ V`, `s ∉ [0, 1]`, and an
/// infinite weight (`κ(s) = 1`).
pub fn generalized_kl<S: Schedule, F: Float>(
    kappa: &Kappa<S>,
    s: f64,
    logits: &[F],
    x1: u32,
    x_s: u32,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let v = logits.len();
    validate::vocab("logits", v)?;
    validate::token("x1", x1, v)?;
    validate::token("x_s", x_s, v)?;
    check_logits(logits.iter())?;
    crate::math::logsumexp(logits)?;
    if let Some(g) = &grad {
        validate::len("grad", g.len(), v)?;
    }
    let w = weight(kappa, s)?;
    Ok(kl_row(w, logits, x1 as usize, x_s as usize, grad))
}

/// [`generalized_kl`] on validated inputs.
fn kl_row<F: Float>(w: f64, logits: &[F], x1: usize, xs: usize, grad: Option<&mut [F]>) -> f64 {
    let f = |l: &F| l.to_f64().unwrap_or(f64::NAN);
    let lse = crate::math::logsumexp(logits).unwrap_or(f64::NAN);
    let p_xs = (f(&logits[xs]) - lse).exp();
    let same = x1 == xs;
    let log_p1 = f(&logits[x1]) - lse;
    let loss = if same {
        -w * (p_xs - 1.0)
    } else {
        -w * (p_xs + log_p1)
    };
    if let Some(g) = grad {
        for (j, (gj, l)) in g.iter_mut().zip(logits).enumerate() {
            let pj = (f(l) - lse).exp();
            let mut d = p_xs * (f64::from(u8::from(j == xs)) - pj);
            if !same {
                d += f64::from(u8::from(j == x1)) - pj;
            }
            *gj = cast(-w * d);
        }
    }
    loss
}

/// [`generalized_kl`] over a batch: `logits [B, L, V]`, `x1`, `x_s` `[B, L]`, `s [B]` (one
/// flow time per sequence). Returns the per-position losses `[B, L]` (flow_matching's
/// `loss_none`; `mean`/`sum` are its reductions) and writes the gradient into `grad`
/// (`[B, L, V]`) when given.
///
/// # Errors
/// Shape mismatches, `B = 0` or `L = 0`, and the per-position errors of
/// [`generalized_kl`]. Nothing is written on error.
pub fn generalized_kl_batch<S: Schedule, F: Float>(
    kappa: &Kappa<S>,
    logits: ArrayView3<'_, F>,
    x1: ArrayView2<'_, u32>,
    x_s: ArrayView2<'_, u32>,
    s: ArrayView1<'_, f64>,
    grad: Option<ArrayViewMut3<'_, F>>,
) -> Result<Array2<f64>> {
    let (b, l, v) = logits.dim();
    if b == 0 || l == 0 {
        return Err(Error::shape(
            "logits",
            "[B ≥ 1, L ≥ 1, V]",
            format!("{:?}", logits.shape()),
        ));
    }
    validate::vocab("logits.V", v)?;
    for (name, a) in [("x1", &x1), ("x_s", &x_s)] {
        if a.dim() != (b, l) {
            return Err(Error::shape(
                name,
                format!("[{b}, {l}]"),
                format!("{:?}", a.shape()),
            ));
        }
        validate::tokens(name, a.iter(), v)?;
    }
    validate::len("s", s.len(), b)?;
    check_logits(logits.iter())?;
    for row in logits.rows() {
        crate::math::logsumexp(row.iter())?;
    }
    if let Some(g) = grad.as_ref().filter(|g| g.dim() != (b, l, v)) {
        return Err(Error::shape(
            "grad",
            format!("[{b}, {l}, {v}]"),
            format!("{:?}", g.shape()),
        ));
    }
    let w = s
        .iter()
        .map(|&si| weight(kappa, si))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Array2::zeros((b, l));
    let mut grad = grad;
    let mut row = vec![F::zero(); v];
    let mut g = vec![F::zero(); v];
    for bi in 0..b {
        for i in 0..l {
            row.iter_mut()
                .zip(logits.slice(ndarray::s![bi, i, ..]))
                .for_each(|(r, &x)| *r = x);
            let gr = grad.as_ref().map(|_| g.as_mut_slice());
            out[[bi, i]] = kl_row(w[bi], &row, x1[[bi, i]] as usize, x_s[[bi, i]] as usize, gr);
            if let Some(gv) = grad.as_mut() {
                gv.slice_mut(ndarray::s![bi, i, ..])
                    .iter_mut()
                    .zip(&g)
                    .for_each(|(o, &x)| *o = x);
            }
        }
    }
    Ok(out)
}

/// A stratified Monte-Carlo estimate of the per-sequence NELBO
/// `∫_0^1 E_{x_s ~ p_s(·|x_1)} Σ_i D_i ds ≥ −ln p_θ(x_1)` (module docs), in nats.
///
/// For sequence `b` and stratum `k ∈ 0..n` (`n = num_times`):
/// `s_{b,k} = (k + U_{b,k})/n` with `U_{b,k}` the first uniform of
/// `CounterRng(for_stream(seed, streams[b]), TIME, k, 0)`; `x_s ~ p_s(· | x_1)` by
/// [`MixturePath::sample`] at `StepRng { seed, streams, step: k }`; the denoiser is called at
/// crate time `t = 1 − s_{b,k}`; the estimate is `(1/n) Σ_k Σ_i D_i`. Unbiased for every
/// `n`, and stratification removes the between-strata variance. Prefer schedules with
/// `κ̇(1) = 0` (e.g. [`Kappa::cosine`]) for finite variance: with `κ̇(1) > 0` the weight
/// `κ̇/(1 − κ)` makes the estimator's second moment diverge (logarithmically) at `s → 1`.
///
/// # Errors
/// `num_times = 0`, shapes (`x1 [B, L]`, `streams` of length `B`), tokens `≥ V`, a
/// denoiser of another `V`, its errors, and non-finite logits.
pub fn nelbo_estimate<S: Schedule, D: Denoiser + ?Sized>(
    path: &MixturePath<S>,
    denoiser: &D,
    x1: ArrayView2<'_, u32>,
    num_times: usize,
    seed: u64,
    streams: &[u64],
) -> Result<Array1<f64>> {
    if num_times == 0 {
        return Err(Error::invalid("num_times", "at least one time is needed"));
    }
    let v = path.vocab_size();
    if denoiser.vocab_size() != v {
        return Err(Error::shape(
            "denoiser",
            format!("vocab_size {v} (the path's)"),
            format!("vocab_size {}", denoiser.vocab_size()),
        ));
    }
    let (b, l) = x1.dim();
    crate::kernel::path::mixture::check_batch(
        b,
        l,
        &StepRng {
            seed,
            streams,
            step: 0,
        },
    )?;
    let n = u32::try_from(num_times).map_err(|_| Error::invalid("num_times", "exceeds u32"))?;
    let keys: Vec<RngKey> = streams
        .iter()
        .map(|&st| RngKey::for_stream(seed, st))
        .collect();
    let mut total = Array1::<f64>::zeros(b);
    let mut logits = Array3::<f32>::zeros((b, l, v));
    for k in 0..n {
        let s = Array1::from_shape_fn(b, |bi| {
            let u = CounterRng::new(keys[bi], Purpose::TIME, k, 0).uniform();
            ((f64::from(k) + u) / f64::from(n)).min(1.0)
        });
        let rng = StepRng {
            seed,
            streams,
            step: k,
        };
        let xs = path.sample(s.view(), x1, &rng)?;
        let t = s.mapv(|si| 1.0 - si);
        denoiser.logits(xs.view(), t.view(), logits.view_mut())?;
        let d = generalized_kl_batch(path.kappa(), logits.view(), x1, xs.view(), s.view(), None)?;
        total += &d.sum_axis(ndarray::Axis(1));
    }
    Ok(total / f64::from(n))
}
