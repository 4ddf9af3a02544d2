//! AR-initialisation helpers: the one-position logit shift of diffusion models adapted from
//! autoregressive ones (DiffuLLaMA, Gong et al. 2025, §3.2; Dream 7B, Ye et al. 2025, §2).
//!
//! An AR model's logits at position `i` predict token `i + 1`. Keeping that geometry when
//! the model becomes a denoiser, the prediction for token `i` is read from the row `i − 1`:
//!
//! ```text
//! diffusion[b, i] = ar[b, i − 1]   for i ≥ 1,
//! diffusion[b, 0] = ar[b, 0]       (FirstPosition::Duplicate, Dream/DiffuLLaMA:
//!                                   torch.cat([logits[:, :1], logits[:, :-1]], 1))
//!                 = 0              (FirstPosition::Zero: a uniform prediction)
//! ```
//!
//! Position 0 has no left neighbour, so no row predicts it; both reference codes keep the
//! first token clean (a BOS or prompt token that is never masked), so its row is never
//! scored. Put a BOS token first, or never mask position 0, and the choice is immaterial.
//!
//! [`unshift_logits`] is the inverse on the rows that carry information
//! (`ar[b, i] = diffusion[b, i + 1]`, `i < L − 1`); the AR row `L − 1` (the prediction of a
//! token after the sequence) is not represented in the shifted logits, so the inverse
//! returns `L − 1` rows. [`shift_gradient_to_ar`] is the exact adjoint of the shift, for
//! back-propagating a loss gradient from the diffusion rows to the AR rows.
//!
//! These are pure data movements: values (including NaN) are copied, not validated.

use ndarray::{ArrayView3, ArrayViewMut3, Axis, s};
use num_traits::Float;

use crate::error::{Error, Result};

/// What the shifted row of position 0 holds (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstPosition {
    /// A copy of the AR row 0 (Dream, DiffuLLaMA).
    Duplicate,
    /// Zeros (a uniform prediction).
    Zero,
}

fn check_same(
    arg: &'static str,
    got: (usize, usize, usize),
    want: (usize, usize, usize),
) -> Result<()> {
    if got != want {
        return Err(Error::shape(arg, format!("{want:?}"), format!("{got:?}")));
    }
    Ok(())
}

fn check_nonempty(arg: &'static str, d: (usize, usize, usize)) -> Result<()> {
    if d.0 == 0 || d.1 == 0 || d.2 == 0 {
        return Err(Error::invalid(
            arg,
            format!("empty array of shape {d:?} (B, L, V must be ≥ 1)"),
        ));
    }
    Ok(())
}

/// AR logits `[B, L, V]` → diffusion logits `[B, L, V]`: `out[b, i] = ar[b, i − 1]`,
/// `out[b, 0]` by `first` (module docs).
///
/// Errors: an empty `ar`; `out` of another shape.
///
/// ```
/// use discrete_diffusion::train::shift::{FirstPosition, shift_logits, unshift_logits};
/// use ndarray::{Array3, array};
/// let ar = Array3::from_shape_vec((1, 3, 1), vec![10.0f32, 11.0, 12.0]).unwrap();
/// let mut d = Array3::<f32>::zeros((1, 3, 1));
/// shift_logits(ar.view(), FirstPosition::Duplicate, d.view_mut())?;
/// assert_eq!(d.iter().copied().collect::<Vec<_>>(), vec![10.0, 10.0, 11.0]);
/// let mut back = Array3::<f32>::zeros((1, 2, 1));
/// unshift_logits(d.view(), back.view_mut())?;
/// assert_eq!(back.iter().copied().collect::<Vec<_>>(), vec![10.0, 11.0]);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn shift_logits<F: Float>(
    ar: ArrayView3<'_, F>,
    first: FirstPosition,
    mut out: ArrayViewMut3<'_, F>,
) -> Result<()> {
    check_nonempty("ar", ar.dim())?;
    check_same("out", out.dim(), ar.dim())?;
    let l = ar.dim().1;
    out.slice_mut(s![.., 1.., ..])
        .assign(&ar.slice(s![.., ..l - 1, ..]));
    let mut row0 = out.index_axis_mut(Axis(1), 0);
    match first {
        FirstPosition::Duplicate => row0.assign(&ar.index_axis(Axis(1), 0)),
        FirstPosition::Zero => row0.fill(F::zero()),
    }
    Ok(())
}

/// Diffusion logits `[B, L, V]` (`L ≥ 2`) → the AR rows they determine, `[B, L − 1, V]`:
/// `out[b, i] = diffusion[b, i + 1]`. The inverse of [`shift_logits`] on rows `0..L − 1`.
///
/// Errors: an empty input or `L < 2`; `out` not `[B, L − 1, V]`.
pub fn unshift_logits<F: Float>(
    diffusion: ArrayView3<'_, F>,
    mut out: ArrayViewMut3<'_, F>,
) -> Result<()> {
    let (b, l, v) = diffusion.dim();
    check_nonempty("diffusion", (b, l, v))?;
    if l < 2 {
        return Err(Error::invalid(
            "diffusion",
            "L = 1: no AR row is determined by the shifted logits",
        ));
    }
    check_same("out", out.dim(), (b, l - 1, v))?;
    out.assign(&diffusion.slice(s![.., 1.., ..]));
    Ok(())
}

/// The adjoint of [`shift_logits`]: given `g = ∂loss/∂diffusion` `[B, L, V]`, write
/// `out = ∂loss/∂ar` `[B, L, V]`: `out[b, i] = g[b, i + 1]` for `i < L − 1`,
/// `out[b, L − 1] = 0`, and with [`FirstPosition::Duplicate`] also `out[b, 0] += g[b, 0]`.
///
/// Errors: an empty `grad`; `out` of another shape.
pub fn shift_gradient_to_ar<F: Float>(
    grad: ArrayView3<'_, F>,
    first: FirstPosition,
    mut out: ArrayViewMut3<'_, F>,
) -> Result<()> {
    check_nonempty("grad", grad.dim())?;
    check_same("out", out.dim(), grad.dim())?;
    let l = grad.dim().1;
    out.slice_mut(s![.., ..l - 1, ..])
        .assign(&grad.slice(s![.., 1.., ..]));
    out.index_axis_mut(Axis(1), l - 1).fill(F::zero());
    if first == FirstPosition::Duplicate {
        let g0 = grad.index_axis(Axis(1), 0);
        out.index_axis_mut(Axis(1), 0)
            .zip_mut_with(&g0, |o, &g| *o = *o + g);
    }
    Ok(())
}
