//! The masked-diffusion loss under the SUBS parameterisation (MDLM, Sahoo et al. 2024, §3.2;
//! MD4, Shi et al. 2024; LLaDA, Nie et al. 2025, eq. 3), as a value **and** its gradient with
//! respect to the model's x0 logits.
//!
//! For one sequence with clean tokens `x_0`, noisy tokens `x_t` (each either `x_0^i` or the
//! mask token `m`) and logits `ℓ ∈ ℝ^{L×V}`:
//!
//! ```text
//! p_θ(· | x_t)_i = softmax over v ≠ m of ℓ_i            (SUBS: zero mass on the mask)
//! loss           = Σ_{i : x_t^i = m} w_i · CE_i,   CE_i = logsumexp_{v≠m}(ℓ_i) − ℓ_{i, x_0^i}
//! ∂loss/∂ℓ_{i,v} = w_i (p_θ(v)_i − 1[v = x_0^i])   for masked i and v ≠ m, 0 otherwise
//! ```
//!
//! Unmasked positions carry their token over (SUBS), contribute 0 and get a zero gradient;
//! their logit rows are not read. The per-position weight `w_i` is usually the shared
//! `w(t)` of an [`ElboWeight`] (then `E_{t, x_t}[loss]` is the NELBO), or a per-token weight
//! (GenMD4 / spindle schedules, Dream's CART: see [`crate::train`]).
//!
//! Logits are `f32` or `f64` (any [`num_traits::Float`], any strides); everything is
//! accumulated in `f64` and the gradient is written back in the logits' type.

use ndarray::{ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use num_traits::Float;

use super::weight::ElboWeight;
use crate::error::{Error, Result};
use crate::schedule::Schedule;
use crate::validate;

/// The weights `w_i` of the masked positions of one sequence.
#[derive(Clone, Copy, Debug)]
pub enum PositionWeights<'a> {
    /// One weight for every position (e.g. `w(t)` of an [`ElboWeight`]).
    Shared(f64),
    /// One weight per position (length `L`), e.g. per-token ELBO weights or CART weights.
    PerPosition(&'a [f64]),
}

impl PositionWeights<'_> {
    #[inline]
    fn at(&self, i: usize) -> f64 {
        match self {
            PositionWeights::Shared(w) => *w,
            PositionWeights::PerPosition(w) => w[i],
        }
    }
}

/// The value of a masked-diffusion loss for one sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskedLoss {
    /// `Σ_{masked i} w_i CE_i` in nats.
    pub value: f64,
    /// `Σ_{masked i} CE_i` (unweighted) in nats.
    pub cross_entropy: f64,
    /// The number of masked positions.
    pub masked: usize,
}

/// Validate `x0`, `xt` (length `L`, tokens `< V`, `x0` never the mask, `xt` the mask or
/// `x0`) and the weights of the masked positions; returns the masked flags.
fn check_sequence(
    x0: &[u32],
    xt: &[u32],
    mask_token: u32,
    l: usize,
    v: usize,
    weights: &PositionWeights<'_>,
) -> Result<()> {
    validate::len("x0", x0.len(), l)?;
    validate::len("xt", xt.len(), l)?;
    validate::token("mask_token", mask_token, v)?;
    validate::tokens("x0", x0, v)?;
    validate::tokens("xt", xt, v)?;
    if let PositionWeights::PerPosition(w) = weights {
        validate::len("weights", w.len(), l)?;
    }
    for i in 0..l {
        if x0[i] == mask_token {
            return Err(Error::invalid(
                "x0",
                format!("x0[{i}] is the mask token {mask_token}; clean data never contains it"),
            ));
        }
        if xt[i] != mask_token && xt[i] != x0[i] {
            return Err(Error::invalid(
                "xt",
                format!(
                    "xt[{i}] = {} is neither the mask token {mask_token} nor x0[{i}] = {} \
                     (absorbing corruption only)",
                    xt[i], x0[i]
                ),
            ));
        }
        if xt[i] == mask_token {
            let w = weights.at(i);
            if !(w.is_finite() && w >= 0.0) {
                return Err(Error::invalid(
                    "weights",
                    format!("weight {w} of masked position {i} must be finite and ≥ 0"),
                ));
            }
        }
    }
    Ok(())
}

/// SUBS cross-entropy of one row (mask entry excluded) and optionally its gradient scaled by
/// `w`. Validates the row (NaN/+∞ rejected; the target must be finite).
fn row_loss<F: Float>(
    row: ArrayView1<'_, F>,
    target: usize,
    mask: usize,
    w: f64,
    pos: usize,
    grad: Option<ndarray::ArrayViewMut1<'_, F>>,
) -> Result<f64> {
    let mut m = f64::NEG_INFINITY;
    for (v, &x) in row.iter().enumerate() {
        let x = x.to_f64().unwrap_or(f64::NAN);
        if x.is_nan() || x == f64::INFINITY {
            return Err(Error::NonFinite {
                arg: "logits",
                index: pos * row.len() + v,
                value: x,
            });
        }
        if v != mask && x > m {
            m = x;
        }
    }
    let lt = row[target].to_f64().unwrap_or(f64::NAN);
    if !lt.is_finite() {
        return Err(Error::ZeroProbability {
            what: format!(
                "masked-diffusion loss: the logit of the target x0 = {target} at position {pos} is −∞"
            ),
        });
    }
    let mut s = 0.0;
    for (v, &x) in row.iter().enumerate() {
        if v != mask {
            s += (x.to_f64().unwrap_or(0.0) - m).exp();
        }
    }
    let lse = m + s.ln();
    if let Some(mut g) = grad {
        for (v, gv) in g.iter_mut().enumerate() {
            let p = if v == mask {
                0.0
            } else {
                (row[v].to_f64().unwrap_or(0.0) - lse).exp()
            };
            let d = if v == target { p - 1.0 } else { p };
            *gv = F::from(w * d).unwrap_or_else(F::nan);
        }
    }
    Ok(lse - lt)
}

/// The masked-diffusion loss of one sequence and, if `grad` is given, its gradient with
/// respect to `logits` (module docs). `grad` is overwritten entirely (zero rows for unmasked
/// positions).
///
/// Shapes: `logits [L, V]` (V ≥ 2), `x0` and `xt` of length `L`, `mask_token < V`,
/// `grad [L, V]`.
///
/// # Errors
/// Shape mismatches (naming `logits`, `x0`, `xt`, `weights` or `grad`); `L = 0`; tokens
/// `≥ V`; `x0` containing the mask; `xt[i]` neither the mask nor `x0[i]`; a masked position
/// whose weight is negative or not finite; NaN/`+∞` in a masked row of `logits`
/// ([`Error::NonFinite`] with the flat index); [`Error::ZeroProbability`] when a masked
/// target has logit `−∞`. After an error `grad` is unspecified.
///
/// ```
/// use discrete_diffusion::loss::masked::{PositionWeights, masked_diffusion_loss};
/// use ndarray::Array2;
/// // V = 3 with the mask at index 0; position 1 is masked, position 0 is clean.
/// let logits = Array2::<f32>::zeros((2, 3));
/// let l = masked_diffusion_loss(logits.view(), &[1, 2], &[1, 0], 0, PositionWeights::Shared(2.0), None)?;
/// assert_eq!(l.masked, 1);
/// assert!((l.value - 2.0 * 2f64.ln()).abs() < 1e-12); // uniform over the 2 non-mask states
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn masked_diffusion_loss<F: Float>(
    logits: ArrayView2<'_, F>,
    x0: &[u32],
    xt: &[u32],
    mask_token: u32,
    weights: PositionWeights<'_>,
    mut grad: Option<ArrayViewMut2<'_, F>>,
) -> Result<MaskedLoss> {
    let (l, v) = logits.dim();
    if l == 0 {
        return Err(Error::invalid("logits", "empty sequence (L = 0)"));
    }
    validate::vocab("logits", v)?;
    check_sequence(x0, xt, mask_token, l, v, &weights)?;
    if let Some(g) = grad.as_ref()
        && g.dim() != (l, v)
    {
        return Err(Error::shape(
            "grad",
            format!("[{l}, {v}]"),
            format!("{:?}", g.shape()),
        ));
    }
    let mask = mask_token as usize;
    let mut out = MaskedLoss {
        value: 0.0,
        cross_entropy: 0.0,
        masked: 0,
    };
    for i in 0..l {
        let g_row = grad.as_mut().map(|g| g.index_axis_mut(Axis(0), i));
        if xt[i] != mask_token {
            if let Some(mut g) = g_row {
                g.fill(F::zero());
            }
            continue;
        }
        let w = weights.at(i);
        let ce = row_loss(logits.row(i), x0[i] as usize, mask, w, i, g_row)?;
        out.value += w * ce;
        out.cross_entropy += ce;
        out.masked += 1;
    }
    Ok(out)
}

/// The masked-diffusion loss over a batch, one [`MaskedLoss`] per sequence, with the shared
/// weight `w(t_b) = weight.weight(schedule, times[b])` ([`ElboWeight`]), and optionally the
/// gradient `grad[b] = ∂ loss_b / ∂ logits[b]`.
///
/// **Reduction.** Per-sequence sums over positions (nats). MDLM/LLaDA report
/// `Σ_b loss_b / (B·L)`; scale the gradient by the same factor.
///
/// Shapes: `logits [B, L, V]`, `x0` and `xt` `[B, L]`, `times [B]` in `[0, 1]`, `grad
/// [B, L, V]`. The weight is only evaluated for sequences with a masked position, so `t = 0`
/// (weight `+∞`) is accepted when nothing is masked.
///
/// # Errors
/// As [`masked_diffusion_loss`] (messages name the sequence), plus `B = 0`, a shape
/// mismatch of `x0`, `xt`, `times` or `grad`, a bad time, and the errors of
/// [`ElboWeight::weight`].
#[allow(clippy::too_many_arguments)]
pub fn masked_diffusion_loss_batch<F: Float>(
    logits: ArrayView3<'_, F>,
    x0: ArrayView2<'_, u32>,
    xt: ArrayView2<'_, u32>,
    times: ArrayView1<'_, f64>,
    mask_token: u32,
    schedule: &dyn Schedule,
    weight: ElboWeight,
    mut grad: Option<ArrayViewMut3<'_, F>>,
) -> Result<Vec<MaskedLoss>> {
    let (b, l, v) = logits.dim();
    if b == 0 {
        return Err(Error::invalid("logits", "empty batch (B = 0)"));
    }
    for (arg, d) in [("x0", x0.dim()), ("xt", xt.dim())] {
        if d != (b, l) {
            return Err(Error::shape(arg, format!("[{b}, {l}]"), format!("{d:?}")));
        }
    }
    validate::len("times", times.len(), b)?;
    if let Some(g) = grad.as_ref()
        && g.dim() != (b, l, v)
    {
        return Err(Error::shape(
            "grad",
            format!("[{b}, {l}, {v}]"),
            format!("{:?}", g.shape()),
        ));
    }
    weight.validate()?;
    let mut out = Vec::with_capacity(b);
    let (mut r0, mut rt) = (vec![0u32; l], vec![0u32; l]);
    for bi in 0..b {
        r0.iter_mut().zip(x0.row(bi)).for_each(|(d, &s)| *d = s);
        rt.iter_mut().zip(xt.row(bi)).for_each(|(d, &s)| *d = s);
        let t = times[bi];
        validate::time("times", t)?;
        let w = if rt.contains(&mask_token) {
            weight.weight(schedule, t)?
        } else {
            0.0
        };
        let g = grad.as_mut().map(|g| g.index_axis_mut(Axis(0), bi));
        let res = masked_diffusion_loss(
            logits.index_axis(Axis(0), bi),
            &r0,
            &rt,
            mask_token,
            PositionWeights::Shared(w),
            g,
        )
        .map_err(|e| in_sequence(e, bi))?;
        out.push(res);
    }
    Ok(out)
}

/// Prefix an error's message with the sequence index where that helps.
fn in_sequence(e: Error, b: usize) -> Error {
    match e {
        Error::InvalidArgument { arg, reason } => Error::InvalidArgument {
            arg,
            reason: format!("sequence {b}: {reason}"),
        },
        Error::ZeroProbability { what } => Error::ZeroProbability {
            what: format!("sequence {b}: {what}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn unmasked_rows_are_zero_and_unread() {
        let mut logits = Array2::<f64>::zeros((2, 3));
        logits[[0, 1]] = f64::NAN; // unmasked row: not read
        let mut g = Array2::<f64>::from_elem((2, 3), 7.0);
        let r = masked_diffusion_loss(
            logits.view(),
            &[1, 2],
            &[1, 0],
            0,
            PositionWeights::Shared(1.0),
            Some(g.view_mut()),
        )
        .unwrap();
        assert_eq!(r.masked, 1);
        assert_eq!(g.row(0).to_vec(), vec![0.0, 0.0, 0.0]);
        assert_eq!(g[[1, 0]], 0.0);
        assert!((g[[1, 1]] - 0.5).abs() < 1e-15 && (g[[1, 2]] + 0.5).abs() < 1e-15);
    }
}
