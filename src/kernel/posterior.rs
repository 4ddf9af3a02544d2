//! Forward-process posteriors and the x0-parameterised reverse step of D3PM (Austin et al.
//! 2021, §3.3 and eq. 4), generic over every [`ForwardKernel`].
//!
//! All functions write into a caller buffer `out` of length `V` and take a reusable
//! [`PosteriorWorkspace`] for their scratch vectors, so repeated calls at a fixed `V` never
//! allocate (the workspace grows once, on first use or when `V` grows). Each costs a
//! constant number of kernel row/column/vecmat calls: O(V) for structured kernels.
//!
//! Conventions: row-stochastic `Q_t[from, to]`, steps `t ∈ 1..=T`, `Q̄_0 = I`.

use crate::error::{Error, Result};
use crate::kernel::{ForwardKernel, check_step};
use crate::validate;

/// Reusable scratch space for the posterior functions: two `f64` buffers, resized to `V`
/// on demand (allocation happens only when `V` grows). One workspace per thread.
#[derive(Debug, Clone, Default)]
pub struct PosteriorWorkspace {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl PosteriorWorkspace {
    /// A workspace pre-sized for vocabularies of `V` states.
    pub fn new(v: usize) -> Self {
        PosteriorWorkspace {
            a: vec![0.0; v],
            b: vec![0.0; v],
        }
    }

    /// Two scratch slices of length `v`.
    pub(crate) fn buffers(&mut self, v: usize) -> (&mut [f64], &mut [f64]) {
        if self.a.len() < v {
            self.a.resize(v, 0.0);
        }
        if self.b.len() < v {
            self.b.resize(v, 0.0);
        }
        (&mut self.a[..v], &mut self.b[..v])
    }
}

/// Normalise `out` in place by its sum; `Err(ZeroProbability)` when the sum is 0.
///
/// Sums below `1e-290` (products of tiny likelihoods can be subnormal) are first rescaled
/// by the largest entry, so the normaliser's reciprocal never overflows.
fn normalise(out: &mut [f64], what: impl FnOnce() -> String) -> Result<f64> {
    let mut z: f64 = out.iter().sum();
    if z <= 0.0 || !z.is_finite() {
        return Err(Error::ZeroProbability { what: what() });
    }
    let scale = z;
    if z < 1e-290 {
        let m = out.iter().copied().fold(0.0f64, f64::max);
        out.iter_mut().for_each(|o| *o /= m);
        z = out.iter().sum();
    }
    let inv = 1.0 / z;
    out.iter_mut().for_each(|o| *o *= inv);
    Ok(scale)
}

/// The forward posterior `q(x_{t−1} = · | x_t, x_0)` (Austin et al. 2021, eq. 3):
///
/// ```text
/// q(x_{t−1} | x_t, x_0) = Q̄_{t−1}(x_0, x_{t−1}) · Q_t(x_{t−1}, x_t) / Q̄_t(x_0, x_t),
/// ```
///
/// for `t ∈ 1..=T` (at `t = 1` it is the point mass `δ_{x_0}`). The normaliser is computed
/// as the sum of the numerator, which equals `Q̄_t(x_0, x_t)` by `Q̄_t = Q̄_{t−1} Q_t`.
///
/// Errors: `t` outside `1..=T`, tokens out of range, `out` of the wrong length, and
/// [`Error::ZeroProbability`] when `q(x_t | x_0) = 0` (the posterior is undefined).
///
/// ```
/// use discrete_diffusion::kernel::absorbing::Absorbing;
/// use discrete_diffusion::kernel::posterior::{PosteriorWorkspace, q_posterior};
///
/// let k = Absorbing::new(4, 2, &[0.2, 0.25, 1.0 / 3.0, 0.5]).unwrap();
/// let mut ws = PosteriorWorkspace::new(4);
/// let mut out = [0.0; 4];
/// q_posterior(&k, 4, 2, 1, &mut ws, &mut out).unwrap(); // x_4 masked, x_0 = 1
/// // ᾱ_3 = 0.4, ᾱ_4 = 0.2: unmasked at step 3 with probability 0.4·0.5/0.8 = 0.25.
/// assert!((out[1] - 0.25).abs() < 1e-15 && (out[2] - 0.75).abs() < 1e-15);
/// ```
pub fn q_posterior<K: ForwardKernel + ?Sized>(
    kernel: &K,
    t: usize,
    x_t: u32,
    x0: u32,
    ws: &mut PosteriorWorkspace,
    out: &mut [f64],
) -> Result<()> {
    let v = kernel.vocab_size();
    check_step(t, kernel.num_steps(), false)?;
    validate::token("x_t", x_t, v)?;
    validate::token("x0", x0, v)?;
    validate::len("out", out.len(), v)?;
    let (col, _) = ws.buffers(v);
    kernel.cumulative_row(t - 1, x0, out)?;
    kernel.step_col(t, x_t, col)?;
    out.iter_mut().zip(col.iter()).for_each(|(o, c)| *o *= c);
    normalise(out, || {
        format!(
            "q(x_t = {x_t} | x_0 = {x0}) = 0 at step {t}: the posterior q(x_{{t−1}} | x_t, x_0) is undefined"
        )
    })?;
    Ok(())
}

/// Validate a predicted clean-token law `p̃(x_0)`: length `V`, finite, non-negative,
/// summing to 1 within `1e-6` (it usually comes from an f32 softmax).
fn check_p0(p0: &[f64], v: usize) -> Result<()> {
    validate::len("p0", p0.len(), v)?;
    validate::distribution("p0", p0, 1e-6)
}

/// D3PM's x0-parameterised reverse step in the **joint form** (Austin et al. 2021, eq. 4;
/// the images anchor's `p_logits` with `model_prediction = 'x_start'`):
///
/// ```text
/// p(x_{t−1} | x_t) ∝ Σ_{x_0} p̃(x_0) q(x_{t−1}, x_t | x_0)
///                  = Q_t(x_{t−1}, x_t) · (p̃ᵀ Q̄_{t−1})(x_{t−1}),
/// ```
///
/// for `t ∈ 1..=T`, where `p0 = p̃(x_0 | x_t)` is the model's predicted clean-token law. This
/// weights each `x_0` by `p̃(x_0) q(x_t | x_0)`, i.e. it Bayes-reweights the prediction by
/// the likelihood of the observed `x_t`; it is what D3PM's `L_{t−1}` is trained with. At
/// `t = 1` it is `∝ Q_1(·, x_1) ⊙ p̃` (the images anchor instead uses `p̃` itself at its
/// `t = 0`; see [`crate::loss::d3pm::Decoder`]). Cost: one vecmat and one column.
///
/// Errors: bad `t`, `x_t`, lengths; `p0` not a distribution (tolerance `1e-6`);
/// [`Error::ZeroProbability`] when `Σ_{x_0} p̃(x_0) Q̄_t(x_0, x_t) = 0`.
pub fn p_reverse_joint<K: ForwardKernel + ?Sized>(
    kernel: &K,
    t: usize,
    x_t: u32,
    p0: &[f64],
    ws: &mut PosteriorWorkspace,
    out: &mut [f64],
) -> Result<()> {
    let v = kernel.vocab_size();
    check_step(t, kernel.num_steps(), false)?;
    validate::token("x_t", x_t, v)?;
    check_p0(p0, v)?;
    validate::len("out", out.len(), v)?;
    let (col, _) = ws.buffers(v);
    kernel.cumulative_vecmat(t - 1, p0, out)?;
    kernel.step_col(t, x_t, col)?;
    out.iter_mut().zip(col.iter()).for_each(|(o, c)| *o *= c);
    normalise(out, || {
        format!("the predicted p(x_0) gives x_t = {x_t} probability 0 at step {t}")
    })?;
    Ok(())
}

/// The x0-parameterised reverse step in the **posterior-mixture form**:
///
/// ```text
/// p(x_{t−1} | x_t) = Σ_{x_0 ∈ F} w(x_0) q(x_{t−1} | x_t, x_0),
/// w(x_0) = p̃(x_0) / Σ_{F} p̃,     F = {x_0 : Q̄_t(x_0, x_t) > 0},
/// ```
///
/// for `t ∈ 1..=T`: the prediction is used as-is (not reweighted by `q(x_t | x_0)`),
/// restricted to the clean tokens that could have produced `x_t`. This is the form MDLM's
/// and SEDD's samplers use for masking kernels (where it coincides with the joint form),
/// and it differs from [`p_reverse_joint`] in general. Computed in O(V) for structured
/// kernels as `[(u ᵀ Q̄_{t−1})] ⊙ Q_t(·, x_t)` with `u(x_0) = w(x_0)/Q̄_t(x_0, x_t)` on `F`
/// (one column, one vecmat, one column).
///
/// Errors: as [`p_reverse_joint`]; [`Error::ZeroProbability`] when `p̃` puts no mass on
/// `F`.
pub fn p_reverse_mixture<K: ForwardKernel + ?Sized>(
    kernel: &K,
    t: usize,
    x_t: u32,
    p0: &[f64],
    ws: &mut PosteriorWorkspace,
    out: &mut [f64],
) -> Result<()> {
    let v = kernel.vocab_size();
    check_step(t, kernel.num_steps(), false)?;
    validate::token("x_t", x_t, v)?;
    check_p0(p0, v)?;
    validate::len("out", out.len(), v)?;
    let (u, col) = ws.buffers(v);
    kernel.cumulative_col(t, x_t, u)?;
    let mut mass = 0.0;
    let mut largest = 0.0f64;
    for (ui, &p) in u.iter_mut().zip(p0) {
        if *ui > 0.0 && p > 0.0 {
            mass += p;
            *ui = p / *ui;
            largest = largest.max(*ui);
        } else {
            *ui = 0.0;
        }
    }
    if mass <= 0.0 || mass.is_nan() {
        return Err(Error::ZeroProbability {
            what: format!(
                "the predicted p(x_0) puts no mass on clean tokens that can reach x_t = {x_t} at step {t}"
            ),
        });
    }
    // Only the direction of `u` matters (the result is normalised at the end). When a
    // likelihood Q̄_t(x_0, x_t) is so small that p̃/Q̄_t overflows, redo the weights in the
    // log domain relative to the largest one.
    if largest.is_finite() && largest < f64::MAX / (4.0 * v as f64) {
        u.iter_mut().for_each(|x| *x /= mass);
    } else {
        kernel.cumulative_col(t, x_t, u)?;
        let mut m = f64::NEG_INFINITY;
        for (ui, &p) in u.iter_mut().zip(p0) {
            *ui = if *ui > 0.0 && p > 0.0 {
                p.ln() - ui.ln()
            } else {
                f64::NEG_INFINITY
            };
            m = m.max(*ui);
        }
        u.iter_mut().for_each(|x| *x = (*x - m).exp());
    }
    kernel.cumulative_vecmat(t - 1, u, out)?;
    kernel.step_col(t, x_t, col)?;
    out.iter_mut().zip(col.iter()).for_each(|(o, c)| *o *= c);
    // Sums to 1 in exact arithmetic; renormalise away rounding.
    normalise(out, || format!("posterior mixture at step {t} underflowed"))?;
    Ok(())
}

/// Matrix times column vector for any kernel: `out = Q̄_t r`, `out[i] = Σ_j Q̄_t(i, j) r[j]`,
/// `t ∈ 0..=T`, computed from the columns `Q̄_t(·, j)` of the non-zero entries of `r`
/// (O(V · nnz(r))). Structured kernels offer O(V) versions (e.g.
/// [`Mixture::cumulative_matvec`](crate::kernel::mixture::Mixture::cumulative_matvec)).
/// `col` is scratch of length `V`.
pub fn cumulative_matvec_by_columns<K: ForwardKernel + ?Sized>(
    kernel: &K,
    t: usize,
    r: &[f64],
    col: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    let v = kernel.vocab_size();
    check_step(t, kernel.num_steps(), true)?;
    crate::kernel::check_named_vec_out("r", r, v, out)?;
    validate::len("col", col.len(), v)?;
    out.fill(0.0);
    for (j, &rj) in r.iter().enumerate() {
        if rj == 0.0 {
            continue;
        }
        kernel.cumulative_col(t, j as u32, col)?;
        out.iter_mut()
            .zip(col.iter())
            .for_each(|(o, c)| *o += c * rj);
    }
    Ok(())
}
