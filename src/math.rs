//! Numerically careful reductions over logits and probability vectors.
//!
//! Every function here is a pure reduction over the caller's data (DESIGN §3.2): inputs are
//! read, never written; results go into caller buffers (`*_into`) so nothing allocates.
//!
//! # Inputs and accumulation
//!
//! * **Logits** are any `num_traits::Float` (model logits arrive as `f32`, reference
//!   paths use `f64`) given as anything that iterates `&F` and can be iterated twice:
//!   `&[f32]`, `&Vec<f64>`, `ndarray::ArrayView1<f32>` (also non-contiguous rows and
//!   columns), `&Array1<f64>`. Every element is converted to `f64` before any arithmetic
//!   and every reduction is accumulated in `f64` (DESIGN §1 "Numbers").
//! * `-inf` logits are allowed and mean *impossible state* (probability exactly 0, as
//!   produced by masking, top-k or SUBS carry-over). `NaN` and `+inf` are rejected with
//!   [`Error::NonFinite`] naming the index; an empty input or one whose entries are all
//!   `-inf` (no state has positive probability) is rejected with
//!   [`Error::InvalidArgument`].
//! * **Probability vectors** (`p`, `q`) are `&[f64]` validated as distributions: finite,
//!   non-negative, summing to 1 within `1e-9`.
//!
//! # Stability
//!
//! All reductions are written in the max-shifted form: with `m = max_i ℓ_i` and
//! `s = Σ_i exp(ℓ_i − m) ∈ [1, V]`, no exponential overflows and `s` never underflows, so
//! logits of magnitude `1e4` (or `f32::MAX`) are handled exactly as well as small ones.
//! Entropies and cross-entropies are written as sums of non-negative terms, so they
//! suffer no cancellation and are `≥ 0` by construction. Sums of exponentials use
//! Neumaier's compensated summation: plain left-to-right `f64` accumulation would have a
//! relative error up to `V · 2⁻⁵³` (`3·10⁻¹¹` at `V = 2¹⁸`); compensated, the normaliser is
//! accurate to a few ulps whatever `V`. Entropy and cross-entropy accumulate their
//! non-negative terms the same way.

use num_traits::Float;

use crate::error::{Error, Result};
use crate::validate;

/// Neumaier's compensated sum (Neumaier 1974, the improved Kahan–Babuška algorithm): the
/// rounding error of each addition is recovered exactly (Fast2Sum on the larger operand)
/// and carried, so the error of the total is `O(2⁻⁵³)·Σ|x_i|` independent of the count.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CompensatedSum {
    sum: f64,
    comp: f64,
}

impl CompensatedSum {
    /// Adds one finite term.
    #[inline(always)]
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// Multiplies the running total by `r` (one extra rounding, relative `2⁻⁵³`).
    #[inline(always)]
    pub(crate) fn scale(&mut self, r: f64) {
        self.sum *= r;
        self.comp *= r;
    }

    /// The compensated total.
    #[inline(always)]
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// `x` as `f64`; a `Float` that cannot be represented becomes NaN (and is then rejected).
#[inline(always)]
fn f64_of<F: Float>(x: F) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

/// One validating pass: the maximum of the logits and their count.
///
/// `-inf` is allowed; `NaN`/`+inf` → [`Error::NonFinite`]; empty or all `-inf` →
/// [`Error::InvalidArgument`].
fn scan_max<'a, F, L>(arg: &'static str, logits: L) -> Result<(f64, usize)>
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F>,
{
    let mut m = f64::NEG_INFINITY;
    let mut n = 0usize;
    for (index, &l) in logits.into_iter().enumerate() {
        let x = f64_of(l);
        if x.is_nan() || x == f64::INFINITY {
            return Err(Error::NonFinite {
                arg,
                index,
                value: x,
            });
        }
        if x > m {
            m = x;
        }
        n += 1;
    }
    if n == 0 {
        return Err(Error::invalid(
            arg,
            "empty: a categorical distribution needs at least one state",
        ));
    }
    if m == f64::NEG_INFINITY {
        return Err(Error::invalid(
            arg,
            format!("all {n} entries are -inf: no state has positive probability"),
        ));
    }
    Ok((m, n))
}

/// `s = Σ_i exp(ℓ_i − m)` for a known maximum `m` (each term in `[0, 1]`, `s ∈ [1, V]`).
fn shifted_sum<'a, F, L>(logits: L, m: f64) -> f64
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F>,
{
    let mut s = CompensatedSum::default();
    for &l in logits {
        s.add((f64_of(l) - m).exp());
    }
    s.value()
}

/// The largest logit, `m = max_i ℓ_i`, as `f64`, after validating the logits.
///
/// `-inf` entries are allowed (impossible states) but at least one entry must be finite.
///
/// # Errors
/// [`Error::NonFinite`] naming the first `NaN` or `+inf` entry;
/// [`Error::InvalidArgument`] if `logits` is empty or every entry is `-inf`.
///
/// ```
/// use discrete_diffusion::math::max_finite;
/// assert_eq!(max_finite(&[f32::NEG_INFINITY, -3.0, 2.5]).unwrap(), 2.5);
/// assert!(max_finite(&[f32::NEG_INFINITY; 3]).is_err());
/// ```
pub fn max_finite<'a, F, L>(logits: L) -> Result<f64>
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F>,
{
    scan_max("logits", logits).map(|(m, _)| m)
}

/// `log Σ_i exp(ℓ_i)` in `f64`, computed stably as `m + ln Σ_i exp(ℓ_i − m)`, `m = max ℓ`.
///
/// `-inf` entries contribute 0. The result is finite whenever the inputs are valid (it
/// lies in `[m, m + ln V]`). Two passes (max, then the shifted sum).
///
/// # Errors
/// As [`max_finite`].
///
/// ```
/// use discrete_diffusion::math::logsumexp;
/// let lse = logsumexp(&[1e4_f32, 1e4]).unwrap();
/// assert!((lse - (1e4 + 2f64.ln())).abs() < 1e-9);
/// ```
pub fn logsumexp<'a, F, L>(logits: L) -> Result<f64>
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F> + Clone,
{
    let (m, _) = scan_max("logits", logits.clone())?;
    Ok(m + shifted_sum(logits, m).ln())
}

/// Softmax into a caller buffer: `out_i = exp(ℓ_i − m) / Σ_j exp(ℓ_j − m)`; returns
/// `logsumexp(ℓ)`.
///
/// `-inf` logits give exactly `out_i = 0`. Every `out_i` is correctly scaled to within a
/// few ulps and `Σ out_i = 1` to within `V · 2⁻⁵³`. Nothing is written unless the inputs
/// are valid.
///
/// # Errors
/// As [`max_finite`]; [`Error::Shape`] if `out.len()` differs from the number of logits.
///
/// ```
/// use discrete_diffusion::math::softmax_into;
/// let mut p = [0.0; 3];
/// softmax_into(&[0.0_f32, 2f32.ln(), f32::NEG_INFINITY], &mut p).unwrap();
/// assert!((p[0] - 1.0 / 3.0).abs() < 1e-7 && (p[1] - 2.0 / 3.0).abs() < 1e-7 && p[2] == 0.0);
/// ```
pub fn softmax_into<'a, F, L>(logits: L, out: &mut [f64]) -> Result<f64>
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F> + Clone,
{
    let (m, n) = scan_max("logits", logits.clone())?;
    validate::len("out", out.len(), n)?;
    let mut acc = CompensatedSum::default();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (f64_of(l) - m).exp();
        acc.add(*o);
    }
    let s = acc.value();
    let inv = 1.0 / s;
    for o in out.iter_mut() {
        *o *= inv;
    }
    Ok(m + s.ln())
}

/// Log-softmax into a caller buffer: `out_i = ℓ_i − logsumexp(ℓ) = (ℓ_i − m) − ln s`;
/// returns `logsumexp(ℓ)`.
///
/// Written as `(ℓ_i − m) − ln s` with `s = Σ_j exp(ℓ_j − m) ∈ [1, V]`, so the result keeps
/// full relative accuracy even when `|ℓ|` is large (no `ℓ_i − lse` cancellation against a
/// huge `lse`). `-inf` logits give `out_i = -inf`.
///
/// # Errors
/// As [`softmax_into`].
///
/// ```
/// use discrete_diffusion::math::log_softmax_into;
/// let mut lp = [0.0; 2];
/// log_softmax_into(&[1e4_f64, 0.0], &mut lp).unwrap();
/// assert_eq!(lp[0], 0.0);
/// assert_eq!(lp[1], -1e4);
/// ```
pub fn log_softmax_into<'a, F, L>(logits: L, out: &mut [f64]) -> Result<f64>
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F> + Clone,
{
    let (m, n) = scan_max("logits", logits.clone())?;
    validate::len("out", out.len(), n)?;
    let ln_s = shifted_sum(logits.clone(), m).ln();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (f64_of(l) - m) - ln_s;
    }
    Ok(m + ln_s)
}

/// Shannon entropy of `softmax(ℓ)` in nats: `H = −Σ_i p_i ln p_i`, `p = softmax(ℓ)`.
///
/// Computed as `H = ln s + (1/s) Σ_i w_i (m − ℓ_i)` with `w_i = exp(ℓ_i − m)`,
/// `s = Σ_i w_i`: a sum of non-negative terms, so there is no cancellation and
/// `0 ≤ H ≤ ln V` holds by construction. States with `p_i = 0` (`-inf` logits, or weights
/// that underflow) contribute `0 · ln 0 = 0`.
///
/// # Errors
/// As [`max_finite`].
///
/// ```
/// use discrete_diffusion::math::entropy;
/// let h = entropy(&[0.5_f32; 8]).unwrap();
/// assert!((h - 8f64.ln()).abs() < 1e-12);
/// assert_eq!(entropy(&[1e4_f32, -1e4]).unwrap(), 0.0);
/// ```
pub fn entropy<'a, F, L>(logits: L) -> Result<f64>
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F> + Clone,
{
    let (m, _) = scan_max("logits", logits.clone())?;
    let (mut s, mut t) = (CompensatedSum::default(), CompensatedSum::default());
    for &l in logits {
        let d = m - f64_of(l); // ≥ 0, +inf for an impossible state
        let w = (-d).exp();
        if w > 0.0 {
            s.add(w);
            t.add(w * d);
        }
    }
    Ok(s.value().ln() + t.value() / s.value())
}

/// Kullback–Leibler divergence `KL(p ‖ q) = Σ_i p_i ln(p_i / q_i)` in nats, for `f64`
/// probability vectors.
///
/// Conventions (Cover & Thomas, *Elements of Information Theory*, §2.3):
/// * `0 · ln(0 / q) = 0` for every `q` (including `q = 0`): states outside the support
///   of `p` cost nothing;
/// * `p · ln(p / 0) = +∞` for `p > 0`: the result is `f64::INFINITY` when `p` puts mass
///   where `q` has none (absolute continuity fails).
///
/// Each term is evaluated as `p_i (ln p_i − ln q_i)` so that subnormal `q_i` cannot
/// overflow the ratio. By Gibbs' inequality the exact value is `≥ 0`; a negative rounding
/// residue (possible when `p ≈ q`, or from the `1e-9` normalisation tolerance) is
/// returned as `0`.
///
/// # Errors
/// [`Error::Shape`] if the lengths differ; [`Error::NonFinite`] /
/// [`Error::NotADistribution`] if `p` or `q` is empty, has a non-finite or negative entry,
/// or does not sum to 1 within `1e-9`.
///
/// ```
/// use discrete_diffusion::math::kl_divergence;
/// let kl = kl_divergence(&[0.5, 0.5], &[0.25, 0.75]).unwrap();
/// assert!((kl - (0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln())).abs() < 1e-15);
/// assert_eq!(kl_divergence(&[0.5, 0.5], &[1.0, 0.0]).unwrap(), f64::INFINITY);
/// assert_eq!(kl_divergence(&[1.0, 0.0], &[0.5, 0.5]).unwrap(), 2f64.ln());
/// ```
pub fn kl_divergence(p: &[f64], q: &[f64]) -> Result<f64> {
    validate::len("q", q.len(), p.len())?;
    validate::distribution("p", p, validate::SIMPLEX_TOL)?;
    validate::distribution("q", q, validate::SIMPLEX_TOL)?;
    let mut kl = 0.0;
    for (&pi, &qi) in p.iter().zip(q) {
        if pi > 0.0 {
            if qi == 0.0 {
                return Ok(f64::INFINITY);
            }
            kl += pi * (pi.ln() - qi.ln());
        }
    }
    Ok(kl.max(0.0))
}

/// Cross-entropy of a target distribution `p` against `softmax(ℓ)`, in nats:
/// `CE(p, ℓ) = −Σ_i p_i ln softmax(ℓ)_i = Σ_i p_i (logsumexp(ℓ) − ℓ_i)`.
///
/// This is the categorical negative log-likelihood used by every `x₀`-prediction loss
/// (D3PM, MDLM/MD4, RADD); with a one-hot `p = e_y` it is `logsumexp(ℓ) − ℓ_y`, and
/// `CE(p, ℓ) = H(p) + KL(p ‖ softmax ℓ)`.
///
/// Evaluated as `Σ_i p_i (ln s + (m − ℓ_i))` — non-negative terms, exactly invariant to
/// shifting the logits. Conventions: terms with `p_i = 0` contribute `0` (even where
/// `ℓ_i = -inf`); `p_i > 0` on a `-inf` logit gives `+∞`.
///
/// # Errors
/// As [`max_finite`] for `logits`; [`Error::Shape`] if the lengths differ;
/// [`Error::NonFinite`] / [`Error::NotADistribution`] if `p` is not a probability
/// vector (within `1e-9`).
///
/// ```
/// use discrete_diffusion::math::{cross_entropy, logsumexp};
/// let logits = [2.0_f32, -1.0, 0.5];
/// let ce = cross_entropy(&[0.0, 1.0, 0.0], &logits).unwrap();
/// assert!((ce - (logsumexp(&logits).unwrap() + 1.0)).abs() < 1e-12);
/// ```
pub fn cross_entropy<'a, F, L>(p: &[f64], logits: L) -> Result<f64>
where
    F: Float + 'a,
    L: IntoIterator<Item = &'a F> + Clone,
{
    let (m, n) = scan_max("logits", logits.clone())?;
    validate::len("p", p.len(), n)?;
    validate::distribution("p", p, validate::SIMPLEX_TOL)?;
    let ln_s = shifted_sum(logits.clone(), m).ln();
    let mut ce = CompensatedSum::default();
    for (&pi, &l) in p.iter().zip(logits) {
        if pi > 0.0 {
            let x = f64_of(l);
            if x == f64::NEG_INFINITY {
                return Ok(f64::INFINITY);
            }
            ce.add(pi * (ln_s + (m - x)));
        }
    }
    Ok(ce.value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    const NEG: f64 = f64::NEG_INFINITY;

    /// Naive reference in f64 for moderate logits.
    fn naive_softmax(l: &[f64]) -> Vec<f64> {
        let z: f64 = l.iter().map(|x| x.exp()).sum();
        l.iter().map(|x| x.exp() / z).collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn logsumexp_matches_naive_and_shifts() {
        let l = [0.3, -1.2, 2.0, 0.0, -0.7];
        let naive = l.iter().map(|x: &f64| x.exp()).sum::<f64>().ln();
        assert!(close(logsumexp(&l).unwrap(), naive, 1e-15));
        // Shift equivariance, far outside exp's range.
        for c in [1e4, -1e4, 700.0, -800.0] {
            let shifted: Vec<f64> = l.iter().map(|x| x + c).collect();
            assert!(close(logsumexp(&shifted).unwrap(), naive + c, 1e-15));
        }
    }

    #[test]
    fn extreme_logits() {
        // ±1e4: naive exp would overflow / underflow.
        let l = [1e4_f64, -1e4, 1e4 - 2f64.ln()];
        let lse = logsumexp(&l).unwrap();
        assert!(close(lse, 1e4 + 1.5f64.ln(), 1e-15));
        let mut p = [0.0; 3];
        softmax_into(&l, &mut p).unwrap();
        // `1e4 − ln 2` carries an absolute rounding error of ~1e4·2⁻⁵³ ≈ 1e-12.
        assert!(close(p[0], 2.0 / 3.0, 1e-12) && p[1] == 0.0 && close(p[2], 1.0 / 3.0, 1e-12));
        let mut lp = [0.0; 3];
        log_softmax_into(&l, &mut lp).unwrap();
        assert!(close(lp[0], -(1.5f64.ln()), 1e-12));
        assert!(close(lp[1], -2e4 - 1.5f64.ln(), 1e-15));
        let h = entropy(&l).unwrap();
        let want = -(2.0 / 3.0 * (2.0f64 / 3.0).ln() + 1.0 / 3.0 * (1.0f64 / 3.0).ln());
        assert!(close(h, want, 1e-12));
        // f32::MAX and f32::MIN as logits.
        let e = [f32::MAX, f32::MIN];
        assert_eq!(logsumexp(&e).unwrap(), f32::MAX as f64);
        assert_eq!(entropy(&e).unwrap(), 0.0);
        let ce = cross_entropy(&[0.0, 1.0], &e).unwrap();
        assert!(close(ce, 2.0 * f32::MAX as f64, 1e-15));
    }

    #[test]
    fn f32_inputs_accumulate_in_f64() {
        // 2^18 equal f32 logits: an f32 accumulator would stall; f64 gives ln V exactly.
        let v = 1usize << 18;
        let l = vec![-3.25_f32; v];
        assert!(close(
            logsumexp(&l).unwrap(),
            -3.25 + (v as f64).ln(),
            1e-13
        ));
        assert!(close(entropy(&l).unwrap(), (v as f64).ln(), 1e-13));
        let mut p = vec![0.0; v];
        softmax_into(&l, &mut p).unwrap();
        assert!(p.iter().all(|&x| close(x, 1.0 / v as f64, 1e-13)));
        // f32 and f64 versions of the same values agree exactly.
        let l32 = [0.1_f32, -2.5, 3.75];
        let l64: Vec<f64> = l32.iter().map(|&x| x as f64).collect();
        assert_eq!(logsumexp(&l32).unwrap(), logsumexp(&l64).unwrap());
        assert_eq!(entropy(&l32).unwrap(), entropy(&l64).unwrap());
    }

    #[test]
    fn softmax_and_log_softmax_agree_with_naive() {
        let l = [0.3, -1.2, 2.0, NEG, -0.7];
        let mut p = [0.0; 5];
        let mut lp = [0.0; 5];
        let lse = softmax_into(&l, &mut p).unwrap();
        assert_eq!(lse, log_softmax_into(&l, &mut lp).unwrap());
        let finite = [0.3, -1.2, 2.0, -0.7];
        let want = naive_softmax(&finite);
        let got = [p[0], p[1], p[2], p[4]];
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, *w, 1e-15));
        }
        assert_eq!(p[3], 0.0);
        assert_eq!(lp[3], NEG);
        for i in [0, 1, 2, 4] {
            assert!(close(lp[i].exp(), p[i], 1e-14));
        }
        assert!(close(p.iter().sum::<f64>(), 1.0, 1e-15));
    }

    #[test]
    fn ndarray_views_rows_and_columns() {
        let a: Array2<f32> = array![[0.0, 1.0, 2.0], [3.0, f32::NEG_INFINITY, -1.0]];
        let row: Vec<f32> = a.row(0).to_vec();
        assert_eq!(logsumexp(a.row(0)).unwrap(), logsumexp(&row).unwrap());
        let col: Vec<f32> = a.column(1).to_vec(); // non-contiguous view
        assert_eq!(logsumexp(a.column(1)).unwrap(), logsumexp(&col).unwrap());
        let mut out = [0.0; 2];
        softmax_into(a.column(1), &mut out).unwrap();
        assert_eq!(out, [1.0, 0.0]);
        assert_eq!(max_finite(&a.row(1).to_owned()).unwrap(), 3.0);
    }

    #[test]
    fn entropy_bounds_and_values() {
        assert_eq!(entropy(&[7.0_f32]).unwrap(), 0.0);
        assert_eq!(entropy(&[0.0, NEG, NEG]).unwrap(), 0.0);
        let l = [0.3, -1.2, 2.0, -0.7];
        let p = naive_softmax(&l);
        let want: f64 = -p.iter().map(|x| x * x.ln()).sum::<f64>();
        assert!(close(entropy(&l).unwrap(), want, 1e-14));
        // Uniform over the finite support.
        assert!(close(
            entropy(&[1.0, 1.0, NEG, 1.0]).unwrap(),
            3f64.ln(),
            1e-15
        ));
    }

    #[test]
    fn kl_conventions() {
        let p = [0.2, 0.3, 0.5];
        assert_eq!(kl_divergence(&p, &p).unwrap(), 0.0);
        let q = [0.5, 0.25, 0.25];
        let want: f64 = p.iter().zip(&q).map(|(a, b)| a * (a / b).ln()).sum();
        assert!(close(kl_divergence(&p, &q).unwrap(), want, 1e-15));
        // 0·log 0 = 0 on both sides, +inf when q misses p's support.
        assert!(close(
            kl_divergence(&[0.0, 1.0], &[0.5, 0.5]).unwrap(),
            2f64.ln(),
            1e-15
        ));
        assert_eq!(kl_divergence(&[0.0, 1.0], &[0.0, 1.0]).unwrap(), 0.0);
        assert_eq!(
            kl_divergence(&[0.5, 0.5], &[0.0, 1.0]).unwrap(),
            f64::INFINITY
        );
        // Subnormal q does not overflow the ratio.
        let tiny = 1e-310;
        let kl = kl_divergence(&[0.5, 0.5], &[1.0 - tiny, tiny]).unwrap();
        assert!(close(
            kl,
            0.5 * (0.5f64.ln() - tiny.ln()) + 0.5 * 0.5f64.ln(),
            1e-13
        ));
    }

    #[test]
    fn cross_entropy_identities() {
        let l = [0.3_f32, -1.2, 2.0, -0.7];
        let lse = logsumexp(&l).unwrap();
        // One-hot target.
        for y in 0..4 {
            let mut p = [0.0; 4];
            p[y] = 1.0;
            assert!(close(
                cross_entropy(&p, &l).unwrap(),
                lse - l[y] as f64,
                1e-15
            ));
        }
        // CE = H(p) + KL(p ‖ softmax ℓ).
        let p = [0.1, 0.2, 0.3, 0.4];
        let mut q = [0.0; 4];
        softmax_into(&l, &mut q).unwrap();
        let h: f64 = -p.iter().map(|x| x * x.ln()).sum::<f64>();
        let ce = cross_entropy(&p, &l).unwrap();
        assert!(close(ce, h + kl_divergence(&p, &q).unwrap(), 1e-14));
        // CE(softmax ℓ, ℓ) = H(softmax ℓ).
        assert!(close(
            cross_entropy(&q, &l).unwrap(),
            entropy(&l).unwrap(),
            1e-14
        ));
        // Zero target mass on -inf costs nothing; positive mass on -inf is infinite.
        let lm = [0.0_f32, f32::NEG_INFINITY];
        assert_eq!(cross_entropy(&[1.0, 0.0], &lm).unwrap(), 0.0);
        assert_eq!(cross_entropy(&[0.5, 0.5], &lm).unwrap(), f64::INFINITY);
        // Large shifts change nothing.
        let l64: Vec<f64> = l.iter().map(|&x| x as f64).collect();
        let big: Vec<f64> = l64.iter().map(|x| x + 1e4).collect();
        assert!(close(cross_entropy(&p, &big).unwrap(), ce, 1e-11));
    }

    #[test]
    fn bad_inputs_name_the_argument_and_index() {
        let empty: [f32; 0] = [];
        let nan = [0.0, f64::NAN];
        let pinf = [f32::INFINITY, 0.0];
        let all_neg = [NEG, NEG];
        let mut out2 = [0.0; 2];
        let mut out3 = [0.0; 3];
        let is_nonfinite = |r: Result<f64>, idx: usize| matches!(r, Err(Error::NonFinite { arg: "logits", index, .. }) if index == idx);
        let is_invalid =
            |r: Result<f64>| matches!(r, Err(Error::InvalidArgument { arg: "logits", .. }));
        assert!(is_invalid(max_finite(&empty)));
        assert!(is_invalid(logsumexp(&empty)));
        assert!(is_invalid(entropy(&all_neg)));
        assert!(is_invalid(softmax_into(&all_neg, &mut out2)));
        assert!(is_invalid(log_softmax_into(&all_neg, &mut out2)));
        assert!(is_invalid(cross_entropy(&[0.5, 0.5], &all_neg)));
        assert!(is_nonfinite(max_finite(&nan), 1));
        assert!(is_nonfinite(logsumexp(&pinf), 0));
        assert!(is_nonfinite(entropy(&nan), 1));
        assert!(is_nonfinite(softmax_into(&pinf, &mut out2), 0));
        assert!(is_nonfinite(log_softmax_into(&nan, &mut out2), 1));
        assert!(is_nonfinite(cross_entropy(&[0.5, 0.5], &nan), 1));
        // Output buffer of the wrong length; nothing written.
        assert!(matches!(
            softmax_into(&[0.0, 1.0], &mut out3),
            Err(Error::Shape { arg: "out", .. })
        ));
        assert_eq!(out3, [0.0; 3]);
        assert!(matches!(
            log_softmax_into(&[0.0, 1.0], &mut out3),
            Err(Error::Shape { arg: "out", .. })
        ));
        // Probability vectors.
        assert!(matches!(
            kl_divergence(&[0.5, 0.5], &[1.0]),
            Err(Error::Shape { arg: "q", .. })
        ));
        assert!(matches!(
            kl_divergence(&[0.5, 0.6], &[0.5, 0.5]),
            Err(Error::NotADistribution { arg: "p", .. })
        ));
        assert!(matches!(
            kl_divergence(&[0.5, 0.5], &[1.5, -0.5]),
            Err(Error::NotADistribution { arg: "q", .. })
        ));
        assert!(matches!(
            kl_divergence(&[0.5, f64::NAN], &[0.5, 0.5]),
            Err(Error::NonFinite {
                arg: "p",
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            kl_divergence(&[], &[]),
            Err(Error::NotADistribution { arg: "p", .. })
        ));
        assert!(matches!(
            cross_entropy(&[1.0], &[0.0_f32, 1.0]),
            Err(Error::Shape { arg: "p", .. })
        ));
        assert!(matches!(
            cross_entropy(&[0.7, 0.7], &[0.0_f32, 1.0]),
            Err(Error::NotADistribution { arg: "p", .. })
        ));
    }
}
