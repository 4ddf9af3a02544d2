//! Classifier guidance over single-token changes: exact enumeration and the first-order
//! Taylor approximation (TAG), after Nisonoff et al., "Unlocking guidance for discrete
//! state-space diffusion and flow models" (ICLR 2025).
//!
//! # The tilt
//!
//! Samplers of factorised discrete diffusion move one token at a time (a CTMC jump
//! `x → x^{i←v}`), or draw each position from per-position logits. Bayes' rule for the
//! conditional process `p(· | y)` multiplies each single-token move by a classifier ratio:
//!
//! ```text
//! R^y_t(x, x^{i←v}) = R_t(x, x^{i←v}) · p_t(y | x^{i←v}) / p_t(y | x)
//! ```
//!
//! (Nisonoff et al., predictor guidance). In logit space this is an additive tilt of position `i`'s
//! logits, with strength `γ`:
//!
//! ```text
//! ℓ^y[i, v] = ℓ[i, v] + γ · r[i, v],     r[i, v] = ln p_t(y | x^{i←v}) − ln p_t(y | x),
//! ```
//!
//! `r[i, x_i] = 0`. [`exact_log_ratios`] computes `r` by `L·(V−1)` classifier calls;
//! [`taylor_log_ratios`] by one gradient (Taylor-approximated guidance, TAG, Nisonoff et al.):
//!
//! ```text
//! r[i, v] ≈ (e_{x^{i←v}} − e_x)ᵀ ∇_e ln p_t(y | x) = ∇_{i,v} − ∇_{i,x_i},
//! ```
//!
//! which equals the exact ratio whenever `ln p(y | x)` is linear (affine) in the one-hot
//! encoding `e` of `x`. [`tilt_logits`] applies either to logits, [`ClassifierGuided`] wraps
//! a [`Denoiser`], and [`tilt_rate_row`](super::tilt_rate_row) applies the ratio to a CTMC
//! rate row.
//!
//! # When is it exact?
//!
//! * **Rates, `γ = 1`, exact noisy classifier** `p_t(y | x_t) = Σ_{x_0} p(y|x_0) p(x_0|x_t)`:
//!   the tilted reverse rates are those of `p(x_0 | y)` (exact).
//! * **x0 logits of an absorbing (masked) process, at masked positions, `γ = 1`, exact
//!   noisy classifier**: `p(x_0^i = v | x_t, y) = p(x_0^i = v | x_t) p_t(y | x_t^{i←v}) /
//!   p_t(y | x_t)`, because revealing `x_0^i = v` at a masked position carries exactly the
//!   information of the state `x_t^{i←v}` (exact). This is not true for other kernels
//!   (uniform noise): there, tilt reverse transitions or rates, not x0 logits.
//! * **One undetermined position, any `γ`**: when every other position is clean, the tilt
//!   gives exactly the conditional of the tilted law `p(x) p(y | x)^γ / Z`.
//! * Otherwise (`γ ≠ 1` with several undetermined positions) guidance is a heuristic.
//!
//! `tests/guidance_classifier.rs` checks each case against an
//! [`EnumerationOracle`](crate::model::enumeration::EnumerationOracle).

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3};

use super::{strength, tilt_rows};
use crate::error::{Error, Result};
use crate::model::Denoiser;
use crate::validate;

/// A (possibly time-dependent, possibly noisy-input) classifier for one fixed target `y`:
/// `ln p_t(y | x)` on full token sequences of `V` states (mask included, for a noisy
/// classifier of a masked process).
pub trait Classifier {
    /// Number of token states `V` it accepts.
    fn vocab_size(&self) -> usize;

    /// `ln p_t(y | x)`; `-inf` where `y` is impossible. Ratios are all guidance uses, so an
    /// unnormalised log-likelihood (an energy) is fine.
    fn log_prob(&self, x: &[u32], t: f64) -> Result<f64>;

    /// The gradient of `ln p_t(y | x)` with respect to the one-hot encoding of `x`,
    /// `out[i, v] = ∂ ln p_t(y | e) / ∂ e[i, v]` at `e = onehot(x)` (shape `[L, V]`); what
    /// TAG needs. The default returns an error: implement it to enable
    /// [`GuidanceMethod::Taylor`].
    fn grad_one_hot(&self, x: &[u32], t: f64, out: ArrayViewMut2<'_, f64>) -> Result<()> {
        let _ = (x, t, out);
        Err(Error::invalid(
            "classifier",
            "this classifier provides no one-hot gradient (use exact guidance)",
        ))
    }
}

/// Validate the common arguments and return `(L, V)`.
fn check_args(
    classifier: &dyn Classifier,
    x: &[u32],
    t: f64,
    positions: Option<&[bool]>,
    out_dim: (usize, usize),
) -> Result<(usize, usize)> {
    let v = validate::vocab("classifier", classifier.vocab_size())?;
    let l = x.len();
    if l == 0 {
        return Err(Error::invalid("x", "empty sequence (L = 0)"));
    }
    validate::tokens("x", x, v)?;
    validate::time("t", t)?;
    if let Some(p) = positions {
        validate::len("positions", p.len(), l)?;
    }
    if out_dim != (l, v) {
        return Err(Error::shape(
            "out",
            format!("[{l}, {v}]"),
            format!("[{}, {}]", out_dim.0, out_dim.1),
        ));
    }
    Ok((l, v))
}

/// A classifier value must not be NaN or `+inf`.
fn check_log_prob(value: f64, index: usize) -> Result<f64> {
    if value.is_nan() || value == f64::INFINITY {
        return Err(Error::NonFinite {
            arg: "classifier",
            index,
            value,
        });
    }
    Ok(value)
}

/// Exact single-token log-ratios `out[i, v] = ln p_t(y | x^{i←v}) − ln p_t(y | x)` for the
/// positions with `positions[i]` (all when `None`; other rows are set to 0), by
/// `(#positions)·(V − 1) + 1` classifier calls. `out[i, x_i] = 0`; `-inf` where `y` is
/// impossible after the change.
///
/// Errors: classifier `V < 2`, empty `x`, a token `≥ V`, `t ∉ [0, 1]`, `positions` or
/// `out` of the wrong shape, a classifier value that is NaN or `+inf`
/// ([`Error::NonFinite`], index = `i·V + v`), and `ln p_t(y | x) = -inf`
/// ([`Error::ZeroProbability`]: the ratios are undefined).
pub fn exact_log_ratios(
    classifier: &dyn Classifier,
    x: &[u32],
    t: f64,
    positions: Option<&[bool]>,
    mut out: ArrayViewMut2<'_, f64>,
) -> Result<()> {
    let (l, v) = check_args(classifier, x, t, positions, out.dim())?;
    let base = check_log_prob(classifier.log_prob(x, t)?, 0)?;
    if base == f64::NEG_INFINITY {
        return Err(Error::ZeroProbability {
            what: "classifier guidance: ln p(y | x) = -inf at the current sequence".into(),
        });
    }
    let mut r = Array2::<f64>::zeros((l, v));
    let mut y = x.to_vec();
    for i in 0..l {
        if positions.is_some_and(|p| !p[i]) {
            continue;
        }
        for tok in 0..v {
            if tok == x[i] as usize {
                continue;
            }
            y[i] = tok as u32;
            let lp = check_log_prob(classifier.log_prob(&y, t)?, i * v + tok)?;
            r[[i, tok]] = lp - base;
        }
        y[i] = x[i];
    }
    out.assign(&r);
    Ok(())
}

/// First-order Taylor (TAG) log-ratios `out[i, v] = g[i, v] − g[i, x_i]`, with
/// `g = ∇_e ln p_t(y | x)` from [`Classifier::grad_one_hot`] (one call); rows with
/// `positions[i] = false` are set to 0. Exact when `ln p_t(y | ·)` is affine in the one-hot
/// encoding.
///
/// Errors: as [`exact_log_ratios`] for the arguments, the classifier's own error if it
/// has no gradient, and a gradient entry that is not finite ([`Error::NonFinite`]).
pub fn taylor_log_ratios(
    classifier: &dyn Classifier,
    x: &[u32],
    t: f64,
    positions: Option<&[bool]>,
    mut out: ArrayViewMut2<'_, f64>,
) -> Result<()> {
    let (l, v) = check_args(classifier, x, t, positions, out.dim())?;
    let mut g = Array2::<f64>::zeros((l, v));
    classifier.grad_one_hot(x, t, g.view_mut())?;
    validate::all_finite("classifier", g.iter())?;
    for i in 0..l {
        let keep = positions.is_none_or(|p| p[i]);
        let gx = g[[i, x[i] as usize]];
        g.row_mut(i)
            .mapv_inplace(|gv| if keep { gv - gx } else { 0.0 });
    }
    out.assign(&g);
    Ok(())
}

/// `out[i, v] = logits[i, v] + γ · log_ratios[i, v]` (in f64, rounded to f32): the guided
/// logits of one sequence. `γ = 0` copies `logits` bit for bit. `-inf` logits stay `-inf`;
/// a `-inf` ratio makes the entry `-inf`.
///
/// Errors: shapes differ (`[L, V]` each), `γ` negative or not finite, a NaN or `+inf`
/// logit or ratio, a row left with no finite logit although it had one
/// ([`Error::ZeroProbability`]), or an f32 overflow ([`Error::Numerical`]). Nothing is
/// written on error.
pub fn tilt_logits(
    logits: ArrayView2<'_, f32>,
    log_ratios: ArrayView2<'_, f64>,
    gamma: f64,
    mut out: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    strength("gamma", gamma)?;
    if log_ratios.dim() != logits.dim() {
        return Err(Error::shape(
            "log_ratios",
            format!("{:?}", logits.shape()),
            format!("{:?}", log_ratios.shape()),
        ));
    }
    if out.dim() != logits.dim() {
        return Err(Error::shape(
            "out",
            format!("{:?}", logits.shape()),
            format!("{:?}", out.shape()),
        ));
    }
    let v = logits.ncols();
    for (k, (&a, &r)) in logits.iter().zip(log_ratios.iter()).enumerate() {
        if a.is_nan() || a == f32::INFINITY {
            return Err(Error::NonFinite {
                arg: "logits",
                index: k,
                value: a as f64,
            });
        }
        if r.is_nan() || r == f64::INFINITY {
            return Err(Error::NonFinite {
                arg: "log_ratios",
                index: k,
                value: r,
            });
        }
    }
    if gamma == 0.0 {
        out.assign(&logits);
        return Ok(());
    }
    let mut res = Array2::<f32>::zeros(logits.dim());
    for (i, ((src, rat), mut dst)) in logits
        .rows()
        .into_iter()
        .zip(log_ratios.rows())
        .zip(res.rows_mut())
        .enumerate()
    {
        let had_finite = src.iter().any(|a| a.is_finite());
        for (j, ((&a, &r), d)) in src.iter().zip(rat.iter()).zip(dst.iter_mut()).enumerate() {
            let g = if a == f32::NEG_INFINITY || r == f64::NEG_INFINITY {
                f32::NEG_INFINITY
            } else {
                let g = a as f64 + gamma * r;
                let g32 = g as f32;
                if !g32.is_finite() {
                    return Err(Error::Numerical {
                        what: "classifier guidance",
                        reason: format!("tilted logit {g} at [{i}, {j}] overflows f32"),
                    });
                }
                g32
            };
            *d = g;
        }
        if had_finite && !dst.iter().any(|a| a.is_finite()) {
            return Err(Error::ZeroProbability {
                what: format!(
                    "classifier guidance: every state of position {i} (of {v}) has p(y | x) = 0"
                ),
            });
        }
    }
    out.assign(&res);
    Ok(())
}

/// How [`ClassifierGuided`] computes the log-ratios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GuidanceMethod {
    /// [`exact_log_ratios`]: `L·(V−1)+1` classifier calls per sequence.
    #[default]
    Exact,
    /// [`taylor_log_ratios`] (TAG): one gradient per sequence.
    Taylor,
}

/// Which positions [`ClassifierGuided`] tilts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GuidedPositions {
    /// Every position.
    #[default]
    All,
    /// Only positions whose current token is this one (the mask of an absorbing process:
    /// unmasked positions are carried over and need no tilt).
    Token(u32),
}

/// A [`Denoiser`] whose logits are the inner model's, tilted per sequence by
/// `γ · r[i, v]` ([`tilt_logits`]) with `r` from the classifier evaluated on the current
/// tokens and time (module docs for when this is exact).
#[derive(Clone, Debug)]
pub struct ClassifierGuided<D, K> {
    inner: D,
    classifier: K,
    gamma: f64,
    method: GuidanceMethod,
    positions: GuidedPositions,
}

impl<D: Denoiser, K: Classifier> ClassifierGuided<D, K> {
    /// Guide `inner` by `classifier` with strength `γ ≥ 0`.
    ///
    /// Errors: vocabularies differ, `γ` negative or not finite, a
    /// [`GuidedPositions::Token`] id `≥ V`.
    pub fn new(
        inner: D,
        classifier: K,
        gamma: f64,
        method: GuidanceMethod,
        positions: GuidedPositions,
    ) -> Result<Self> {
        strength("gamma", gamma)?;
        if inner.vocab_size() != classifier.vocab_size() {
            return Err(Error::shape(
                "classifier",
                format!("vocab_size {} (the denoiser's)", inner.vocab_size()),
                format!("vocab_size {}", classifier.vocab_size()),
            ));
        }
        if let GuidedPositions::Token(m) = positions {
            validate::token("positions", m, inner.vocab_size())?;
        }
        Ok(ClassifierGuided {
            inner,
            classifier,
            gamma,
            method,
            positions,
        })
    }

    /// The wrapped denoiser.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The strength `γ`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl<D: Denoiser, K: Classifier> Denoiser for ClassifierGuided<D, K> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Inner logits, then per batch row the classifier tilt. Errors: the usual
    /// shape/token/time checks, the inner model's and classifier's errors, and those of
    /// [`exact_log_ratios`] / [`taylor_log_ratios`] / [`tilt_logits`].
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let mut ratios: Option<Array2<f64>> = None;
        let tilt = |x: &[u32], t: f64, row: ArrayView2<'_, f32>, guided: ArrayViewMut2<'_, f32>| {
            let pos: Option<Vec<bool>> = match self.positions {
                GuidedPositions::All => None,
                GuidedPositions::Token(m) => Some(x.iter().map(|&xi| xi == m).collect()),
            };
            if pos.as_ref().is_some_and(|p| !p.iter().any(|&q| q)) {
                return Ok(false);
            }
            let ratios = ratios.get_or_insert_with(|| Array2::zeros(row.dim()));
            let k = &self.classifier as &dyn Classifier;
            match self.method {
                GuidanceMethod::Exact => {
                    exact_log_ratios(k, x, t, pos.as_deref(), ratios.view_mut())?
                }
                GuidanceMethod::Taylor => {
                    taylor_log_ratios(k, x, t, pos.as_deref(), ratios.view_mut())?
                }
            }
            tilt_logits(row, ratios.view(), self.gamma, guided)?;
            Ok(true)
        };
        tilt_rows(&self.inner, tokens, times, out, self.gamma != 0.0, tilt)
    }
}

forward_hooks_to_inner!(ClassifierGuided<D, K: Classifier>);
