//! Composable, pure logit transforms applied to one row of logits in place (DESIGN §3.2).
//!
//! A transform list is applied **in list order** to a row `ℓ ∈ ℝ^V` of the sampler's own
//! buffer (never the caller's logits). Removed ids get `−∞` (probability 0; the anchors use
//! `finfo.min`, which gives the same softmax unless every id is removed, which no transform
//! here can do: each keeps at least the row's maximum).
//!
//! | transform | effect on `ℓ` | anchor |
//! |---|---|---|
//! | [`Temperature(τ)`](LogitTransform::Temperature) | `ℓ ← ℓ/τ`, `τ > 0` | Dream `sample_tokens` (`logits / temperature`) |
//! | [`TopK(k)`](LogitTransform::TopK) | keep `ℓ_v ≥ ℓ_(k)` (the `k`-th largest; ties with it kept) | Dream `top_k_logits` (`logits < topk[..., -1]` removed) |
//! | [`TopP(p)`](LogitTransform::TopP) | sort descending (ties: lower id first); remove the `j`-th (`j ≥ 1`) iff the mass of the first `j` exceeds `p` | Dream/HF `top_p_logits` (`cumsum > p`, shifted right by one) |
//! | [`MinP(p)`](LogitTransform::MinP) | keep `softmax(ℓ)_v ≥ p · max softmax(ℓ)` | min-p sampling (Nguyen et al. 2024) |
//! | [`Suppress(ids)`](LogitTransform::Suppress) | `ℓ_v = −∞` for `v ∈ ids` | padding / banned ids |
//! | [`ExcludeMask(m)`](LogitTransform::ExcludeMask) | `ℓ_m = −∞` | MDLM SUBS "zero masking probability" |
//! | [`CarryOver(m)`](LogitTransform::CarryOver) | if the current token `x ≠ m`: `ℓ = log δ_x` (0 at `x`, `−∞` elsewhere) | MDLM SUBS "carry-over unmasking" |
//!
//! Order matters: Dream applies temperature, then top-p, then top-k (so top-p sees tempered
//! probabilities); list them in that order to reproduce it. The drivers in
//! [`crate::sample::driver`] apply the list only to the rows they read.

use crate::error::{Error, Result};

/// One logit transform (see the module table for the exact semantics).
#[derive(Clone, Debug, PartialEq)]
pub enum LogitTransform {
    /// Divide by `τ > 0` (finite).
    Temperature(f64),
    /// Keep the ids whose logit is at least the `k`-th largest (`k ≥ 1`; ties kept).
    TopK(usize),
    /// Nucleus filtering with mass `p ∈ (0, 1]` (Dream/HF semantics).
    TopP(f64),
    /// Keep ids with probability at least `p ∈ [0, 1]` times the largest probability.
    MinP(f64),
    /// Give these ids probability 0.
    Suppress(Vec<u32>),
    /// Give the mask id probability 0.
    ExcludeMask(u32),
    /// SUBS carry-over: an unmasked position (current token `≠` this mask id) predicts
    /// itself with probability 1.
    CarryOver(u32),
}

impl LogitTransform {
    /// Check the parameters against a vocabulary of size `v`.
    ///
    /// # Errors
    /// `τ ≤ 0` or non-finite, `k = 0`, `p ∉ (0, 1]` (top-p), `p ∉ [0, 1]` (min-p), an id `≥ v`.
    pub fn validate(&self, v: usize) -> Result<()> {
        match self {
            LogitTransform::Temperature(t) => {
                if !(t.is_finite() && *t > 0.0) {
                    return Err(Error::invalid(
                        "Temperature",
                        format!("temperature {t} must be finite and > 0 (use a greedy draw for 0)"),
                    ));
                }
            }
            LogitTransform::TopK(k) => {
                if *k == 0 {
                    return Err(Error::invalid("TopK", "k must be ≥ 1"));
                }
            }
            LogitTransform::TopP(p) => {
                if !(*p > 0.0 && *p <= 1.0) {
                    return Err(Error::invalid(
                        "TopP",
                        format!("p = {p} must lie in (0, 1]"),
                    ));
                }
            }
            LogitTransform::MinP(p) => {
                crate::validate::probability("MinP", *p)?;
            }
            LogitTransform::Suppress(ids) => {
                crate::validate::tokens("Suppress", ids.iter(), v)?;
            }
            LogitTransform::ExcludeMask(m) | LogitTransform::CarryOver(m) => {
                crate::validate::token("mask_id", *m, v)?;
            }
        }
        Ok(())
    }

    /// Apply to `row` in place; `current` is the position's current token (used by
    /// [`CarryOver`](LogitTransform::CarryOver) only). Parameters must be valid
    /// ([`validate`](Self::validate)); `current < row.len()`.
    pub fn apply(&self, row: &mut [f32], current: u32) {
        match self {
            LogitTransform::Temperature(t) => {
                let inv = (1.0 / *t) as f32;
                if *t != 1.0 {
                    row.iter_mut().for_each(|x| *x *= inv);
                }
            }
            LogitTransform::TopK(k) => top_k(row, *k),
            LogitTransform::TopP(p) => top_p(row, *p),
            LogitTransform::MinP(p) => min_p(row, *p),
            LogitTransform::Suppress(ids) => {
                for &i in ids {
                    row[i as usize] = f32::NEG_INFINITY;
                }
            }
            LogitTransform::ExcludeMask(m) => row[*m as usize] = f32::NEG_INFINITY,
            LogitTransform::CarryOver(m) => {
                if current != *m {
                    row.iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
                    row[current as usize] = 0.0;
                }
            }
        }
    }
}

/// Validate every transform of `list` against vocabulary `v`.
///
/// # Errors
/// The first invalid transform's error.
pub fn validate_transforms(list: &[LogitTransform], v: usize) -> Result<()> {
    list.iter().try_for_each(|t| t.validate(v))
}

/// Apply `list` in order to one row (checked: parameters, `current < V`, finite-or-`−∞`
/// logits with at least one finite).
///
/// # Errors
/// Invalid transforms, `current ≥ V`, a NaN or `+∞` logit, or no finite logit.
///
/// ```
/// use discrete_diffusion::sample::transform::{LogitTransform, apply_transforms};
/// let mut row = [2.0f32, 1.0, 0.5, -1.0];
/// apply_transforms(&[LogitTransform::TopK(2)], &mut row, 0)?;
/// assert_eq!(row[2], f32::NEG_INFINITY);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn apply_transforms(list: &[LogitTransform], row: &mut [f32], current: u32) -> Result<()> {
    validate_transforms(list, row.len())?;
    crate::validate::token("current", current, row.len())?;
    check_row(row)?;
    for t in list {
        t.apply(row, current);
    }
    Ok(())
}

/// NaN / `+∞` rejected; at least one finite logit.
pub(crate) fn check_row(row: &[f32]) -> Result<()> {
    let mut finite = false;
    for (i, &x) in row.iter().enumerate() {
        if x.is_nan() || x == f32::INFINITY {
            return Err(Error::NonFinite {
                arg: "logits",
                index: i,
                value: x as f64,
            });
        }
        finite |= x.is_finite();
    }
    if !finite {
        return Err(Error::invalid("logits", "the row has no finite logit"));
    }
    Ok(())
}

fn top_k(row: &mut [f32], k: usize) {
    if k >= row.len() {
        return;
    }
    let mut sorted: Vec<f32> = row.to_vec();
    // The k-th largest value (k ≥ 1).
    let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    row.iter_mut()
        .filter(|x| **x < kth)
        .for_each(|x| *x = f32::NEG_INFINITY);
}

/// Probabilities of a row in f64 (max-shifted).
fn probs(row: &[f32]) -> Vec<f64> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&x| ((x as f64) - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

fn top_p(row: &mut [f32], p: f64) {
    let pr = probs(row);
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    let mut cum = 0.0;
    for (j, &i) in order.iter().enumerate() {
        if j >= 1 && cum > p {
            row[i] = f32::NEG_INFINITY;
        }
        cum += pr[i];
    }
}

fn min_p(row: &mut [f32], p: f64) {
    let pr = probs(row);
    let pmax = pr.iter().copied().fold(0.0, f64::max);
    for (x, &q) in row.iter_mut().zip(&pr) {
        if q < p * pmax {
            *x = f32::NEG_INFINITY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transform() {
        let base = [2.0f32, 1.0, 0.5, -1.0, 0.2];
        let mut r = base;
        apply_transforms(&[LogitTransform::TopK(2)], &mut r, 0).unwrap();
        assert!(r[2].is_infinite() && r[1] == 1.0);
        // Ties with the k-th value are kept.
        let mut t = [1.0f32, 1.0, 1.0, 0.0];
        apply_transforms(&[LogitTransform::TopK(1)], &mut t, 0).unwrap();
        assert_eq!(t[..3], [1.0, 1.0, 1.0]);
        let mut r = base;
        apply_transforms(&[LogitTransform::TopP(0.8)], &mut r, 0).unwrap();
        assert_eq!(r.iter().filter(|x| x.is_finite()).count(), 3);
        let mut r = base;
        apply_transforms(&[LogitTransform::MinP(0.3)], &mut r, 0).unwrap();
        assert_eq!(r.iter().filter(|x| x.is_finite()).count(), 2);
        let mut r = base;
        apply_transforms(&[LogitTransform::CarryOver(4)], &mut r, 3).unwrap();
        assert_eq!(
            r,
            [
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                0.0,
                f32::NEG_INFINITY
            ]
        );
        let mut r = base;
        apply_transforms(&[LogitTransform::CarryOver(4)], &mut r, 4).unwrap();
        assert_eq!(r, base);
        let mut r = base;
        apply_transforms(
            &[
                LogitTransform::Temperature(0.5),
                LogitTransform::ExcludeMask(0),
                LogitTransform::Suppress(vec![1]),
            ],
            &mut r,
            0,
        )
        .unwrap();
        assert_eq!(r[2], 1.0);
        assert!(r[0].is_infinite() && r[1].is_infinite());
    }

    #[test]
    fn bad_input() {
        let mut r = [0.0f32; 3];
        assert!(apply_transforms(&[LogitTransform::Temperature(0.0)], &mut r, 0).is_err());
        assert!(apply_transforms(&[LogitTransform::TopK(0)], &mut r, 0).is_err());
        assert!(apply_transforms(&[LogitTransform::TopP(0.0)], &mut r, 0).is_err());
        assert!(apply_transforms(&[LogitTransform::MinP(1.5)], &mut r, 0).is_err());
        assert!(apply_transforms(&[LogitTransform::Suppress(vec![3])], &mut r, 0).is_err());
        assert!(apply_transforms(&[], &mut r, 3).is_err());
        let mut n = [f32::NAN, 0.0];
        assert!(apply_transforms(&[], &mut n, 0).is_err());
        let mut n = [f32::NEG_INFINITY; 2];
        assert!(apply_transforms(&[], &mut n, 0).is_err());
    }
}
