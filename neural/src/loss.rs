//! The masked-diffusion NELBO loss as a differentiable candle expression.
//!
//! For a batch `x_0 [B, L]`, its corruption `x_t` at times `t_b` and logits `z [B, L, V]`,
//!
//! ```text
//! loss = (1/(B·L)) Σ_b w(t_b) Σ_{i: x_t^{b,i} = mask} −log softmax_{v ≠ mask}(z_{b,i})[x_0^{b,i}]
//! ```
//!
//! with `w` an [`ElboWeight`] (MDLM's `w(t) = −α'(t)/(1 − α(t))` for the NELBO). This is the
//! batch mean of the crate's
//! [`masked_diffusion_loss_batch`](discrete_diffusion::loss::masked::masked_diffusion_loss_batch)
//! divided by `L` (nats per token); `tests/loss.rs` checks the two agree. The mask column
//! is excluded by the `−1e30` bias that [`TransformerDenoiser::forward`](crate::model::TransformerDenoiser::forward)
//! adds, which makes `exp` of it exactly 0 in f32.

use candle_core::{D, Device, Tensor};
use discrete_diffusion::loss::weight::ElboWeight;
use discrete_diffusion::schedule::Schedule;
use discrete_diffusion::{Error, Result};
use ndarray::ArrayView2;

use crate::candle_err;

/// The per-position coefficients `c[b, i] = w(t_b)/(B·L)` at masked positions, 0 elsewhere
/// (`[B, L]`, row-major), and the targets `x_0` as a u32 tensor.
///
/// Errors: shapes that disagree, a time outside `[0, 1]`, a non-finite weight on a sequence
/// with a masked position, the weight's errors.
pub fn loss_coefficients(
    x0: ArrayView2<'_, u32>,
    xt: ArrayView2<'_, u32>,
    times: &[f64],
    mask_token: u32,
    schedule: &dyn Schedule,
    weight: ElboWeight,
) -> Result<Vec<f32>> {
    let (b, l) = x0.dim();
    if xt.dim() != (b, l) {
        return Err(Error::shape(
            "xt",
            format!("[{b}, {l}]"),
            format!("{:?}", xt.dim()),
        ));
    }
    if times.len() != b || b == 0 || l == 0 {
        return Err(Error::shape(
            "times",
            format!("[{b}] with B, L ≥ 1"),
            format!("[{}]", times.len()),
        ));
    }
    let scale = 1.0 / (b * l) as f64;
    let mut c = vec![0f32; b * l];
    for bi in 0..b {
        let masked = xt.row(bi).iter().any(|&x| x == mask_token);
        if !masked {
            continue;
        }
        let w = weight.weight(schedule, times[bi])?;
        if !w.is_finite() {
            return Err(Error::invalid(
                "times",
                format!(
                    "weight w({}) = {w} on a sequence with masked tokens",
                    times[bi]
                ),
            ));
        }
        for i in 0..l {
            if xt[[bi, i]] == mask_token {
                c[bi * l + i] = (w * scale) as f32;
            }
        }
    }
    Ok(c)
}

/// The loss (module docs) as a scalar tensor, from the logits `[B, L, V]` (with the mask
/// column at `−1e30`, as [`forward`](crate::model::TransformerDenoiser::forward) gives them),
/// the clean tokens and the coefficients of [`loss_coefficients`].
///
/// Errors: shapes that disagree; candle errors.
pub fn masked_nelbo_loss(logits: &Tensor, x0: ArrayView2<'_, u32>, coef: &[f32]) -> Result<Tensor> {
    let (b, l) = x0.dim();
    let dims = logits.dims().to_vec();
    if dims.len() != 3 || dims[0] != b || dims[1] != l || coef.len() != b * l {
        return Err(Error::shape(
            "logits",
            format!("[{b}, {l}, V] with {} coefficients", b * l),
            format!("{dims:?} with {} coefficients", coef.len()),
        ));
    }
    let go = || -> candle_core::Result<Tensor> {
        let dev = Device::Cpu;
        let targets = Tensor::from_vec(x0.iter().copied().collect::<Vec<u32>>(), (b, l, 1), &dev)?;
        let c = Tensor::from_vec(coef.to_vec(), (b, l), &dev)?;
        let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        let picked = lp.gather(&targets, D::Minus1)?.squeeze(D::Minus1)?;
        (picked * c)?.sum_all()?.neg()
    };
    go().map_err(candle_err)
}
